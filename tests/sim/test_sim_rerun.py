"""`worldpolicy sim --rerun OUT.rrd` / `evaluate(watch=sim.rerun.RerunWatch(rec))`: every step of an evaluation's
episodes logged live, read back with rerun's own reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rerun_read import read_rrd, scalars, text

pytest.importorskip("mink")
pytest.importorskip("rerun", reason="rerun-sdk is not installed (the rerun extra)")

from worldpolicy.cli import main
from worldpolicy.robot.control import ChunkStrategy
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.evaluate import evaluate
from worldpolicy.sim.policies import ScriptedPolicy
from worldpolicy.sim.rerun import RerunWatch
from worldpolicy.sim.rollout import Episode, Rollout
from worldpolicy.viz.report import episode_outcome
from worldpolicy.viz.rerun import RerunTarget, recording

MAX_STEPS = 40
SEED = 10000  # `worldpolicy sim`'s default first seed
JOINTS = [f"joint{i}" for i in range(1, 8)]  # the Panda's arm joints, as the recording names their series


def _sim(out, rrd, *more: str, episodes: int = 2) -> list[str]:
    return ["sim", "--policy", "scripted", "--task", "reach", "--episodes", str(episodes),
            "--max-steps", str(MAX_STEPS), "--videos", "0", "--no-progress", "--no-plots", "--out", str(out), "--rerun", str(rrd), *more]


def _replayed(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The joints measured (arm + gripper) and the commands sent at each step of episode `seed`, run again outside
    the recording (the scripted expert is deterministic), as `on_act` sees them: the env still at the step's start."""
    env = TabletopEnv("reach", image_size=None, max_steps=MAX_STEPS)
    measured, sent = [], []

    def spy(command):
        measured.append(np.append(env.joint_positions(), env.gripper_position()))
        sent.append(np.array(command))

    try:
        Rollout(env, ScriptedPolicy(env)).run(seed, on_act=spy)
    finally:
        env.close()
    return np.array(measured), np.array(sent)


def test_sim_rerun_logs_every_step_of_each_episode_under_its_seed(tmp_path, capsys):
    out, rrd = tmp_path / "run", tmp_path / "live" / "sim.rrd"
    assert main(_sim(out, rrd)) == 0
    assert f"sim: every step of its episodes in {rrd} (open it with `rerun {rrd}`)" in capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    logged = read_rrd(rrd)
    assert {path.split("/")[1] for path in logged} == {f"episode_{SEED}", f"episode_{SEED + 1}"}
    for episode in report["episodes"]:
        root, steps = f"/episode_{episode['seed']}", episode["steps"]
        assert {f"{root}/{part}" for part in ("prompt", "held", "decision", "distance_m", "outcome",
                                              *(f"{kind}/{name}" for kind in ("joints", "target")
                                                for name in [*JOINTS, "gripper"]))} <= set(logged)
        assert any(path.startswith(f"{root}/chunk/") for path in logged)
        assert text(logged[f"{root}/prompt"]) == episode["prompt"]
        # a row per control step the report counts, on both timelines at the control rate
        joint = logged[f"{root}/joints/joint1"]
        assert joint.steps == list(range(steps)) and joint.timelines == {("step", "time")}
        assert joint.times == pytest.approx(np.arange(steps) / TabletopEnv("reach", image_size=None).actual_control_hz)
        assert joint.static["SeriesLines:names"] == ["joint1 [rad]"]
        measured, sent = _replayed(episode["seed"])
        assert len(measured) == steps
        for k, name in enumerate([*JOINTS, "gripper"]):
            assert scalars(logged[f"{root}/joints/{name}"]) == pytest.approx(measured[:, k])
            assert scalars(logged[f"{root}/target/{name}"]) == pytest.approx(sent[:, k])
        # the distance after each step, the last one report.json's; the outcome at the success step
        distance = logged[f"{root}/distance_m"]
        assert distance.steps == list(range(1, steps + 1))
        assert scalars(distance)[-1] == pytest.approx(episode["final_distance_m"], abs=1e-6)
        assert episode["success"]  # the expert reaches within MAX_STEPS: its success is logged
        outcome = logged[f"{root}/outcome"]
        assert outcome.steps == [episode["success_step"]]
        # worded as the run's page captions the episode's video (one wording: `viz.report.episode_outcome`)
        assert outcome.timed["TextLog:text"][0] == [episode_outcome(episode)]
        assert episode_outcome(episode).startswith(f"seed {episode['seed']} · success · {steps} steps · final ")
        assert outcome.timed["TextLog:level"][0] == ["INFO"]
        # its chunks (8 actions each, the expert's) as they arrived: the first at step 0, asked then
        decisions = logged[f"{root}/decision"]
        assert decisions.steps[0] == 0 and len(decisions.steps) == -(-steps // 8)
        assert logged[f"{root}/chunk/joint_0"].steps[:8] == list(range(8))
        assert "observation" not in {path.split("/")[2] for path in logged if path.startswith(root)}  # sees none


def test_sim_rerun_with_several_envs_keeps_each_episode_apart(tmp_path):
    """Episodes stepped 2 at a time (`--num-envs 2`), their steps interleaved in the stream: each episode's entities
    hold what the same episode logged run alone, step for step."""
    from test_batch import _seeded_policy

    logs = {}
    for n in (1, 2):
        rrd = tmp_path / f"n{n}.rrd"
        with recording(RerunTarget(file=rrd), f"n{n}") as rec:
            report = evaluate(TabletopEnv("reach", image_size=None, max_steps=6), _seeded_policy([]),
                              policy_name="seeded", episodes=3, seed=40, strategy=ChunkStrategy("execute", 2),
                              progress=False, num_envs=n, watch=RerunWatch(rec))
        logs[n] = read_rrd(rrd)
    assert {path.split("/")[1] for path in logs[2]} == {"episode_0040", "episode_0041", "episode_0042"}
    assert set(logs[2]) == set(logs[1])
    for path, alone in logs[1].items():
        assert logs[2][path].steps == alone.steps, path
        if "Scalars:scalars" in alone.timed:
            assert scalars(logs[2][path]) == pytest.approx(scalars(alone)), path
    for episode in report.episodes:
        assert logs[2][f"/episode_{episode.seed:04d}/joints/joint3"].steps == list(range(episode.steps))
    # the seeded chunks differ by episode: apart, not the same series thrice
    firsts = {scalars(logs[2][f"/episode_{seed:04d}/chunk/joint_0"])[0] for seed in (40, 41, 42)}
    assert len(firsts) == 3


def test_sim_rerun_interrupted_keeps_what_was_logged(tmp_path, capsys, monkeypatch):
    """Ctrl-C in the second episode: the file is written with the first episode whole and the second's steps so far."""
    real_step, stepped = Episode.step, []

    def step_then_stop(self, observation=None):
        if self.seed == SEED + 1 and self.t == 5:
            raise KeyboardInterrupt
        stepped.append(self.seed)
        return real_step(self, observation)

    monkeypatch.setattr(Episode, "step", step_then_stop)
    out, rrd = tmp_path / "run", tmp_path / "sim.rrd"
    assert main(_sim(out, rrd)) == 130
    logged = read_rrd(rrd)
    first = json.loads((out / "report.json").read_text())["episodes"][0]
    assert logged[f"/episode_{SEED}/outcome"].steps == [first["success_step"]]
    assert logged[f"/episode_{SEED + 1}/joints/joint1"].steps == list(range(5))
    assert f"/episode_{SEED + 1}/outcome" not in logged
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    # how to continue it leaves the recording out: the same file would hold the added episodes alone
    err = capsys.readouterr().err
    assert "to continue: worldpolicy sim --policy scripted" in err and "--rerun" not in err.split("to continue:")[1]
    assert f"sim: the steps of 2 episode(s) logged before the run stopped in {rrd}" in err


def _failing_at(monkeypatch, seed: int, t: int) -> None:
    """Episode `seed`'s step `t` fails as a policy server that went away does."""
    real_step = Episode.step

    def step_then_fail(self, observation=None):
        if self.seed == seed and self.t == t:
            raise ConnectionError("policy server closed the connection")
        return real_step(self, observation)

    monkeypatch.setattr(Episode, "step", step_then_fail)


def test_sim_rerun_failed_keeps_what_was_logged(tmp_path, capsys, monkeypatch):
    """A policy server gone in the second episode: as report.json keeps the first episode, the recording keeps it
    whole and the second's steps up to the failure, the ones to look at."""
    _failing_at(monkeypatch, SEED + 1, 5)
    out, rrd = tmp_path / "run", tmp_path / "sim.rrd"
    with pytest.raises(ConnectionError):
        main(_sim(out, rrd))
    logged = read_rrd(rrd)
    first = json.loads((out / "report.json").read_text())["episodes"][0]
    assert logged[f"/episode_{SEED}/outcome"].steps == [first["success_step"]]
    assert logged[f"/episode_{SEED + 1}/joints/joint1"].steps == list(range(5))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert f"sim: the steps of 2 episode(s) logged before the run stopped in {rrd}" in capsys.readouterr().err


def test_sim_rerun_failed_before_its_first_step_leaves_an_earlier_file(tmp_path, capsys, monkeypatch):
    """Nothing logged: an earlier recording under the same name is not replaced by an empty one."""
    _failing_at(monkeypatch, SEED, 0)
    rrd = tmp_path / "sim.rrd"
    rrd.write_bytes(b"an earlier recording")
    with pytest.raises(ConnectionError):
        main(_sim(tmp_path / "run", rrd))
    assert rrd.read_bytes() == b"an earlier recording"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert "logged before the run stopped" not in capsys.readouterr().err


def test_sim_rerun_resumed_records_the_added_episodes_only(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sim(out, tmp_path / "first.rrd", episodes=1)) == 0
    assert main([*_sim(out, tmp_path / "more.rrd"), "--resume"]) == 0
    assert {path.split("/")[1] for path in read_rrd(tmp_path / "more.rrd")} == {f"episode_{SEED + 1}"}
    assert {path.split("/")[1] for path in read_rrd(tmp_path / "first.rrd")} == {f"episode_{SEED}"}


def test_sim_rerun_flags_are_vizs_one_group(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*_sim(tmp_path / "run", tmp_path / "a.rrd"), "--rerun-spawn"])
    assert "argument --rerun-spawn: not allowed with argument --rerun" in capsys.readouterr().err


def test_sim_rerun_refused_with_all_checkpoints(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*_sim(out, tmp_path / "a.rrd"), "--all-checkpoints"]) == 2
    assert ("sim: error: --rerun/--rerun-spawn/--rerun-connect: a recording of one run's episodes; --all-checkpoints "
            "runs a run per checkpoint" in capsys.readouterr().err)
    assert not out.exists()


def test_sim_rerun_refuses_a_file_not_rrd_naming_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_sim(out, tmp_path / "a.txt")) == 2
    assert f"sim: error: --rerun={str(tmp_path / 'a.txt')!r}: expected a file named *.rrd" in capsys.readouterr().err
    assert not out.exists()


class _Imagining:
    """A backend that looks at the cameras and returns, with each 4-action chunk (holding the arm at home), a
    5-frame imagined future (frame j all 40 j) and a best-of-3 planner's decision, as `--imagine --plan 3` does."""

    def __init__(self):
        from worldpolicy import get_embodiment

        self.embodiment = get_embodiment("droid")
        self.chunk_size, self.calls = 4, 0

    def act(self, observation, prompt):
        from worldpolicy.planning import PLANNER
        from worldpolicy.processing.actions import to_model
        from worldpolicy.results import Prediction

        e, self.calls = self.embodiment, self.calls + 1
        chunk = np.tile(np.append(TabletopEnv("reach", image_size=None).robot.home, 0.0), (4, 1))
        chunk[:, 0] += 0.01 * self.calls  # each chunk its own rows
        video = np.stack([np.full((16, 24, 3), 40 * j, np.uint8) for j in range(5)])
        return Prediction("policy", e.key, list(e.columns), list(e.units), chunk, to_model(e, chunk), e.fps,
                          video=video, settings={"planner": PLANNER, "scores": [-0.5, -0.25, -0.75], "chosen": 1,
                                                 "tied": False})


def test_sim_rerun_logs_the_cameras_asked_with_the_imagined_future_and_the_planners_choice(tmp_path):
    from rerun_read import images

    rrd = tmp_path / "live.rrd"
    env = TabletopEnv("reach", image_size=(24, 32), max_steps=6)
    try:
        with recording(RerunTarget(file=rrd), "imagining") as rec:
            result = evaluate(env, _Imagining(), policy_name="imagining", episodes=1, seed=3,
                              strategy=ChunkStrategy("execute"), progress=False, watch=RerunWatch(rec))
    finally:
        env.close()
    logged = read_rrd(rrd)
    for camera in ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left"):
        seen = logged[f"/episode_0003/observation/{camera}"]  # named as a predict run's and a dataset's
        assert seen.steps == [0, 4]  # asked at step 0 and once the first chunk ran out
        assert all(frame.shape == (24, 32, 3) for frame in images(seen))
    assert scalars(logged["/episode_0003/chunk/joint_0"])[:4] == pytest.approx([HOME0 + 0.01] * 4)
    assert logged["/episode_0003/chunk/joint_0"].steps == [0, 1, 2, 3, 4, 5, 6, 7]
    imagined = logged["/episode_0003/imagined"]
    assert imagined.steps == [0, 1, 2, 3, 4, 4, 5, 6, 7, 8]  # chunk 2's frame 0 is its observation at step 4
    assert [frame.mean() for frame in images(imagined)][:5] == pytest.approx([40 * j for j in range(5)], abs=3)
    (first, second) = logged["/episode_0003/decision"].timed["TextLog:text"]
    assert first[0] == "chunk 1: 4 actions from step 0, asked at step 0; best of 3: #1 of scores [-0.5, -0.25, -0.75]"
    assert second[0].startswith("chunk 2: 4 actions from step 4, asked at step 4")
    # held at home, it fails at the step limit: said as the page says it, a warning
    outcome, record = logged["/episode_0003/outcome"], result.episodes[0].to_json()
    assert outcome.steps == [6] and not record["success"]
    assert outcome.timed["TextLog:text"][0] == [episode_outcome(record)]
    assert outcome.timed["TextLog:text"][0][0].startswith("seed 3 · failure · 6 steps · final distance ")
    assert outcome.timed["TextLog:level"][0] == ["WARN"]


HOME0 = float(TabletopEnv("reach", image_size=None).robot.home[0])
