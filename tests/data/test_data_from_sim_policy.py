"""`dataset from-sim --policy`: a policy's `worldpolicy sim` rollouts recorded as a LeRobot v3 dataset, each episode
flagged with its success (meta/episodes' `success` column). Short episodes, small images."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")

_SMALL = {"image_size": (24, 24), "max_steps": 5, "cameras": ["observation/wrist_image_left"]}
_ARGV = ["--task", "reach", "--episodes", "1", "--max-steps", "2", "--image-size", "24x24", "--cameras",
         "observation/wrist_image_left", "--no-progress"]


def _argv(*argv: str) -> list[str]:
    """`_ARGV`, then `argv`, whose --max-steps replaces `_ARGV`'s (the command line refuses a flag given twice)."""
    base = _ARGV if "--max-steps" not in argv else [a for a in _ARGV if a not in ("--max-steps", "2")]
    return [*base, *argv]


def test_random_policy_records_what_sim_runs_for_each_seed_and_its_failures(tmp_path, capsys):
    """The rows are the episode `worldpolicy sim` runs for the seed (the same Rollout, its commands, the state before
    each), every episode says it failed, and info.json says which policy, settings and strategy recorded it."""
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import ACTION_KEYS, STATE_KEYS, sim_to_dataset
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import RandomPolicy, make_policy
    from worldpolicy.sim.rollout import Rollout

    result = sim_to_dataset(tmp_path / "ds", "reach", 2, seed=5, policy="random", keep_failures=True,
                            **{**_SMALL, "cameras": None})  # all three: what training's droid windows read
    ds = result.dataset
    assert result.seeds == [5, 6] and ds.episode_success.tolist() == [False, False]
    made = ds.provenance
    assert made["policy"] == "random" and made["seeds"] == [5, 6] and made["keep_failures"] is True
    assert made["embodiment"] == "droid/relative_pose"  # the one it acted in, none given
    assert made["policy_settings"] == {"kind": "random", "chunk_size": 32, "version": RandomPolicy.version}
    assert made["strategy"] == {"kind": "execute", "execute_steps": 32, "ensemble_decay": 0.1}
    assert "expert" not in made and "chunk_size" not in made and "action_noise" not in made

    env = TabletopEnv("reach", image_size=(24, 24), max_steps=5)
    commands, states = [], []

    def seen(command):
        commands.append(command)
        states.append(env.joint_positions())

    ran = Rollout(env, make_policy("random", env=env)).run(6, on_act=seen)
    env.close()
    ep = ds.episode(1)
    assert ep.success is False and ran.success is False and ep.length == ran.steps == 5
    recorded = np.column_stack([ep.frames[ACTION_KEYS[0]], ep.frames[ACTION_KEYS[1]]])
    np.testing.assert_allclose(recorded, np.stack(commands), atol=1e-5)  # stored as float32
    np.testing.assert_allclose(ep.frames[STATE_KEYS[0]], np.stack(states), atol=1e-5)
    assert ep.frames["next.reward"].sum() == 0 and ep.frames["next.done"][:, 0].tolist() == [False] * 4 + [True]

    assert main(["dataset", "info", str(tmp_path / "ds")]) == 0  # what a user filters on
    assert json.loads(capsys.readouterr().out)["success"] == {"succeeded": 0, "failed_episodes": [0, 1]}

    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.data import WindowSpec, iter_windows

    # training reads it as it reads the expert's recordings (the success column aside)
    windows = list(iter_windows(WindowSpec(dataset=str(tmp_path / "ds"), chunk_size=4), get_embodiment("droid")))
    assert {w.episode for w in windows} == {0, 1} and windows[0].actions.shape == (4, 8)


def test_a_policys_success_ends_the_run_as_sim_does_then_settles(tmp_path, monkeypatch):
    """A solved episode stops where `worldpolicy sim` stops it, then holds the last command for --settle-steps, as
    the expert's recordings do; it is kept without --keep-failures and flagged a success."""
    from worldpolicy.data.from_sim import ACTION_KEYS, sim_to_dataset
    from worldpolicy.sim.env import TabletopEnv

    monkeypatch.setattr(TabletopEnv, "success", lambda self: self.steps >= 3)
    ds = sim_to_dataset(tmp_path / "ds", "reach", 2, policy="random", settle_steps=2,
                        **{**_SMALL, "max_steps": 8}).dataset
    assert ds.episode_success.tolist() == [True, True]
    ep = ds.episode(0)
    assert ep.success is True and ep.length == 5
    assert ep.frames["next.reward"][:, 0].tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(ep.frames[ACTION_KEYS[0]][2:], ep.frames[ACTION_KEYS[0]][[2, 2, 2]])


def test_a_policy_that_solves_nothing_is_one_line_naming_it(tmp_path, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import ExpertFailed, sim_to_dataset

    with pytest.raises(ExpertFailed, match=r"policy 'random' solved 0 of 2 episodes of task 'reach' \(seeds 0\.\.1\); "
                                           r"wanted 1\. A short max_steps makes it fail; pass keep_failures=True"):
        sim_to_dataset(tmp_path / "py", "reach", 1, policy="random", max_attempts=2, **_SMALL)
    assert main(["dataset", "from-sim", str(tmp_path / "cli"), "--policy", "random", *_ARGV]) == 2
    assert "error: policy 'random' solved 0 of 7 episodes" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


@pytest.mark.parametrize("argv, message", [
    (["--policy", "random", "--chunk-size", "4"],
     "--chunk-size: shapes the scripted expert's episodes; policy 'random' runs as `worldpolicy sim` runs it"),
    (["--policy", "random", "--start-jitter", "0.1"], "--start-jitter: shapes the scripted expert's episodes"),
    (["--policy", "random", "--action-noise", "0.01"], "--action-noise: shapes the scripted expert's episodes"),
    (["--policy", "random", "--steps", "2"], "--steps: loads a local checkpoint; policy 'random' takes none"),
    (["--policy", "random", "--steps", "2", "--device", "cpu"],
     "--steps: loads a local checkpoint; policy 'random' takes none"),  # one flag named, as a flag
    (["--policy", "random", "--execute-steps", "40"],
     "--execute-steps: 40 exceeds what a 32-step chunk allows for 'execute' (32)"),
    (["--policy", "random", "--ensemble-decay", "0.2"], "--ensemble-decay 0.2 weighs the chunks --strategy ensemble"),
    (["--policy", "nowhere"], "--policy: 'nowhere' is not 'scripted', 'random', a ws:// URL"),
    (["--execute-steps", "2"], "--execute-steps: sets how a policy's chunks run; the scripted expert re-plans"),
    (["--embodiment", "droid"], "--embodiment: sets how a policy's rollouts run"),
    (["--device", "cpu"], ("--device: sets how a policy's rollouts run (a checkpoint, a ws:// server or random), not "
                           "the scripted expert, which acts in droid/joint_pos on its own plan: leave it out or record "
                           "another policy\n")),  # whole: a later 'steps: ' was made '--steps: 
    # a checkpoint's, as `worldpolicy sim` refuses it for another policy
    (["--no-center-crop"],
     "--no-center-crop: sets how a policy's rollouts run (a checkpoint, a ws:// server or random)"),
    (["--policy", "random", "--no-center-crop"],
     "--no-center-crop: loads a local checkpoint; policy 'random' takes none"),
    (["--policy", "ws://localhost:1", "--no-center-crop"],
     "--no-center-crop: loads a local checkpoint; policy 'ws://localhost:1' takes none"),
    (["--policy", "random", "--api-key", "k"],
     "--api-key is sent to a ws:// or wss:// policy server, not to --policy 'random'"),
    (["--api-key-env", "HOME"], "--api-key-env is sent to a ws:// or wss:// policy server, not to --policy 'scripted'"),
    # --latency and --rtc, parsed and checked as `worldpolicy sim` does
    (["--latency", "200"], "--latency: sets how a policy's chunks run; the scripted expert re-plans"),
    (["--rtc"], "--rtc: sets how a policy's chunks run; the scripted expert re-plans"),
    (["--policy", "random", "--latency", "200"],
     "--latency: 200 ms is 3 control steps at 15 Hz, at or past the 2-step limit: no reply would land before it"),
    (["--policy", "random", "--strategy", "ensemble", "--max-steps", "60", "--latency", "3000"],
     ("--latency: 3000 ms is 45 control steps at 15 Hz, at or past the policy's 32-step chunk: with "
      "--strategy=ensemble every reply lands past its whole chunk and is dropped, so the arm never moves; accepted "
      "with --strategy=ensemble: 0 to below 2100 ms (31 steps)")),
    (["--policy", "random", "--rtc"], "--rtc: conditions each chunk on the actions that run while it is computed"),
    (["--policy", "random", "--strategy", "async", "--rtc"],
     ("--rtc: asks a model to continue the running chunk's actions; policy random has no model to condition: leave "
      "--rtc out")),
])
def test_flags_that_do_not_apply_to_the_policy_are_refused(tmp_path, capsys, argv, message):
    from worldpolicy.cli import main

    assert main(["dataset", "from-sim", str(tmp_path / "ds"), *_argv(*argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"worldpolicy dataset from-sim: error: {message}"), err
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoints_refusals_come_before_its_weights_load(tmp_path, tiny, capsys, monkeypatch):
    """--workers, a bad --steps and a ROOT that is no dataset are each refused before the model loads."""
    from worldpolicy.cli import main
    from worldpolicy.policy import Policy

    def no_load(*args, **kwargs):
        raise AssertionError("the weights loaded before the refusal")

    monkeypatch.setattr(Policy, "from_pretrained", no_load)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for argv, message in (
        (["--workers", "2"], f"--workers=2: policy {str(tiny)!r} records in one process"),
        (["--steps", "0"], "--steps"),
        (["--root-taken"], "taken"),
        # named as the flag, as `worldpolicy sim` names it
        (["--no-checkpoint"], f"error: --policy={str(tmp_path / 'taken')!r} is a path but has no model_index.json"),
    ):
        root = tmp_path / ("taken" if argv == ["--root-taken"] else "ds")
        policy = tmp_path / "taken" if argv == ["--no-checkpoint"] else tiny
        argv = [] if argv in (["--root-taken"], ["--no-checkpoint"]) else argv
        assert main(["dataset", "from-sim", str(root), "--policy", str(policy), *_ARGV, *argv]) == 2
        err = capsys.readouterr().err
        assert "error: " in err and message in err, err
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine" and not (tmp_path / "ds").exists()
    from worldpolicy.data.from_sim import expert_episodes

    recording = expert_episodes("reach", 1, policy=tiny, **_SMALL)  # a checkpoint folder as a Path, as str
    recording.close()
    assert recording.provenance["policy"] == str(tiny)


def test_rtc_at_a_whole_chunk_latency_is_refused_before_the_weights_load(tmp_path, tiny, capsys, monkeypatch):
    """`worldpolicy sim` refuses --rtc with a latency of the policy's whole chunk (no request would carry a prefix)
    before the weights load; from-sim checked the latency against the chunk without --rtc, so the refusal came from
    the rollout, once the model had loaded."""
    from worldpolicy.cli import main
    from worldpolicy.policy import Policy

    def no_load(*args, **kwargs):
        raise AssertionError("the weights loaded before the refusal")

    monkeypatch.setattr(Policy, "from_pretrained", no_load)
    # 2200 ms at 15 Hz: 33 control steps, past the tiny checkpoint's 32-step chunk
    argv = _argv("--max-steps", "40", "--strategy", "async", "--latency", "2200", "--rtc")
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", str(tiny), *argv]) == 2
    err = capsys.readouterr().err
    assert "error: --rtc: --latency=2200 ms is 33 control steps" in err and "accepted with --rtc" in err, err
    assert not (tmp_path / "ds").exists()


def test_workers_warnings_are_the_commands_formatted_and_said_once(tmp_path, capsys):
    """Each worker process builds its own Rollout, which warns of a latency that runs as none: shown by the command
    once, formatted as its own warnings are, not printed bare once per worker."""
    from worldpolicy.cli import main

    argv = ["--task", "reach", "--episodes", "3", "--max-steps", "2", "--image-size", "24x24", "--no-progress",
            "--policy", "random", "--keep-failures", "--workers", "2", "--latency", "20"]
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), *argv]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "latency: 20 ms is under half" in line]
    assert len(said) == 1 and " WARNING worldpolicy.sim.rollout: latency: 20 ms" in said[0], said


def test_a_policys_rollouts_under_a_latency_are_what_sim_runs_and_say_it(tmp_path):
    """--latency reaches the Rollout as `worldpolicy sim --latency` does (async's first request holds the arm), and
    the provenance records it, in ms and steps, beside the strategy."""
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import ACTION_KEYS
    from worldpolicy.data.lerobot import LeRobotDataset
    from worldpolicy.robot.control import ChunkStrategy
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import make_policy
    from worldpolicy.sim.rollout import Rollout

    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", "random", "--keep-failures",
                 *_argv("--max-steps", "6", "--strategy", "async", "--latency", "200")]) == 0
    ds = LeRobotDataset.open(tmp_path / "ds")
    made = ds.provenance
    assert made["latency"] == {"ms": 200.0, "ticks": 3} and made["rtc"] is False
    assert made["strategy"]["kind"] == "async"
    env = TabletopEnv("reach", image_size=None, max_steps=6)
    commands = []
    Rollout(env, make_policy("random", env=env), ChunkStrategy("async"), latency_ms=200).run(0, on_act=commands.append)
    env.close()
    np.testing.assert_allclose(ds.episode(0).frames[ACTION_KEYS[0]], np.stack(commands)[:, :7], atol=1e-5)
    np.testing.assert_allclose(commands[0][:7], commands[2][:7])  # held where it was, 3 steps, for the first reply
    plain = main(["dataset", "from-sim", str(tmp_path / "plain"), "--policy", "random", "--keep-failures", *_ARGV])
    assert plain == 0
    assert LeRobotDataset.open(tmp_path / "plain").provenance["latency"] == {"ms": 0.0, "ticks": 0}


def test_a_latency_under_half_a_step_is_warned_as_sim_warns_it(tmp_path, capsys):
    """`Rollout`'s warning, not only `evaluate`'s: from-sim ran 20 ms as none without a word."""
    from worldpolicy.cli import main

    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", "random", "--keep-failures",
                 *_argv("--latency", "20")]) == 0
    said = capsys.readouterr().err
    assert "latency: 20 ms is under half a control step at 15 Hz, so it runs as none (0 steps)" in said


def test_a_checkpoints_rollouts_are_recorded_with_its_settings(tmp_path, tiny, caplog):
    """A checkpoint (the tiny one: droid/joint_pos, on CPU) recorded as `worldpolicy sim` runs it; info.json names the
    checkpoint's files and sampling, so the recording can be traced to the weights that made it. Recorded at another
    rate than its actions', it is warned of as `worldpolicy sim` warns."""
    from worldpolicy.data.from_sim import sim_to_dataset

    ds = sim_to_dataset(tmp_path / "ds", "reach", 1, policy=str(tiny), keep_failures=True, control_hz=10,
                        policy_options={"steps": 1, "resolution_tier": 256}, **{**_SMALL, "max_steps": 2}).dataset
    assert f"--policy {tiny} acts at 15 fps but --control-hz is 10" in caplog.text
    assert ds.fps == 10 and ds.num_episodes == 1 and ds.episode_success.tolist() == [False] and list(ds.episode_lengths) == [2]
    made = ds.provenance
    assert made["policy"] == str(tiny) and made["policy_settings"]["kind"] == "checkpoint"
    assert made["embodiment"] == "droid/joint_pos"  # the checkpoint's own, none given
    assert made["policy_settings"]["files"] and made["policy_settings"]["sampling"]["steps"] == 1
    assert made["policy_settings"]["device"] == "cpu" and made["strategy"]["kind"] == "execute"


def test_a_policys_settings_are_read_once_per_recording(tmp_path, monkeypatch):
    """`policy_settings` (a checkpoint's files, a server's metadata) is read when the policy loads, not per episode."""
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.sim import policies

    read = []
    settings = policies.policy_settings
    monkeypatch.setattr(policies, "policy_settings", lambda *a: read.append(a) or settings(*a))
    ds = sim_to_dataset(tmp_path / "ds", "reach", 3, policy="random", keep_failures=True, **_SMALL).dataset
    assert ds.num_episodes == 3 and len(read) == 1
    assert ds.provenance["policy_settings"]["kind"] == "random" and ds.provenance["strategy"]["execute_steps"] == 32


def test_recording_a_checkpoint_on_its_training_scenes_is_warned_of_as_sim_warns(tmp_path, monkeypatch, capsys):
    """The shipped model was trained on reach's seeds from 0: recording it there says so, naming --seed to pass,
    once every setting is checked and before the model loads; named `shipped`, as `--policy` takes it and every
    warning of training scenes names it (`models.checkpoint_name`), not by its install folder."""
    from worldpolicy.cli import main
    from worldpolicy.data import from_sim

    def loaded(*args, **kwargs):  # the policy's load, after every check: the warning is said before it
        raise ValueError("not loaded")

    monkeypatch.setattr(from_sim, "_rollout", loaded)
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", "shipped", "--seed", "0", *_ARGV]) == 2
    err = capsys.readouterr().err
    assert "WARNING worldpolicy.sim.tasks: --seed 0: 1 of the 1 episodes (seed 0) are reach scenes shipped " \
           "was trained on" in err and "pass --seed " in err and "error: not loaded" in err
    assert err.index("trained on") < err.index("error: not loaded")
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", "random", "--seed", "0", *_ARGV]) == 2
    assert "trained on" not in capsys.readouterr().err  # a policy of no training data


@pytest.mark.parametrize("flags, refused", [
    (["--workers", "2"], "policy 'shipped' records in one process"),  # before the scene is built
    (["--robot", "nope"], "--robot"),  # once it is
])
def test_a_refused_recording_is_not_warned_about_first(tmp_path, monkeypatch, capsys, flags, refused):
    """A recording refused is not preceded by the training-scenes warning of a run that will not happen."""
    from worldpolicy.cli import main
    from worldpolicy.data import from_sim

    monkeypatch.setattr(from_sim, "_rollout", lambda *a, **k: pytest.fail("the policy was loaded"))
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--policy", "shipped", "--seed", "0", *_ARGV,
                 *flags]) == 2
    err = capsys.readouterr().err
    assert refused in err and "trained on" not in err


def test_the_writer_takes_a_success_flag_for_every_episode_or_none(tmp_path):
    from worldpolicy.data import LeRobotDataset, LeRobotDatasetWriter, write_episodes

    frames = {"x": np.zeros((3, 1), np.float32)}
    writer = LeRobotDatasetWriter(tmp_path / "ds", 10, overwrite=False)
    writer.add_episode(frames, task="t", success=True)
    with pytest.raises(ValueError, match="earlier episodes have a success flag; give it for every episode or for none"):
        writer.add_episode(frames, task="t")
    with pytest.raises(ValueError, match="success='yes' must be a bool"):
        writer.add_episode(frames, task="t", success="yes")
    writer.add_episode(frames, task="t", success=False)
    ds = writer.finalize()
    assert ds.episode_success.tolist() == [True, False] and ds.episode(1).success is False
    assert LeRobotDataset.open(tmp_path / "ds").episode_success.tolist() == [True, False]
    # a copy (`write_episodes`' documented way) keeps the column: a filtered training on the copy needs it
    copy = write_episodes(tmp_path / "copy", ds.episodes(), fps=ds.fps, features=ds.features)
    assert copy.episode_success.tolist() == [True, False]
    plain = LeRobotDatasetWriter(tmp_path / "plain", 10)
    plain.add_episode(frames, task="t")
    assert plain.finalize().episode_success is None


def test_a_servers_key_is_given_in_python_and_kept_out_of_the_provenance(tmp_path):
    """`api_key=` (the command line's flags are tested with sim's: tests/sim/test_cli.py), refused for a policy that
    is no server, and never in the dataset's provenance."""
    from worldpolicy.data.from_sim import expert_episodes, sim_to_dataset

    recording = expert_episodes("reach", 1, policy="ws://127.0.0.1:9", api_key="s3cret-key-123", **_SMALL)
    recording.close()
    assert "s3cret" not in json.dumps(recording.provenance)
    for policy, message in (("random", "api_key: sent to a ws:// policy server; policy 'random' takes none"),
                            ("scripted", "api_key: sets how a policy's rollouts run")):
        with pytest.raises(ValueError, match=f"^{message}"):
            sim_to_dataset(tmp_path / "py", "reach", 1, policy=policy, api_key="k", **_SMALL)


def test_a_wss_servers_ca_file_is_refused_for_a_policy_that_is_no_server_and_not_recorded(tmp_path):
    """`ca_file=` (`--tls-ca`: tests/serving/test_serving_tls.py) goes where `api_key=` goes."""
    from worldpolicy.data.from_sim import expert_episodes, sim_to_dataset

    recording = expert_episodes("reach", 1, policy="wss://127.0.0.1:9", ca_file=tmp_path / "ca.pem", **_SMALL)
    recording.close()
    assert "ca.pem" not in json.dumps(recording.provenance)
    for policy, message in (("random", "ca_file: verifies a wss:// policy server's certificate; policy 'random'"),
                            ("scripted", "ca_file: sets how a policy's rollouts run")):
        with pytest.raises(ValueError, match=f"^{message}"):
            sim_to_dataset(tmp_path / "py", "reach", 1, policy=policy, ca_file="ca.pem", **_SMALL)


def test_a_servers_timeout_is_refused_for_a_policy_that_is_no_server_and_not_recorded(tmp_path):
    """`timeout_s=` (`--server-timeout-s`: tests/sim/test_cli.py) goes where `ca_file=` goes."""
    from worldpolicy.data.from_sim import expert_episodes, sim_to_dataset

    recording = expert_episodes("reach", 1, policy="ws://127.0.0.1:9", timeout_s=12.5, **_SMALL)
    recording.close()
    assert "12.5" not in json.dumps(recording.provenance)
    for policy, message in (("random", "timeout_s: bounds a ws:// policy server's requests; policy 'random'"),
                            ("scripted", "timeout_s: sets how a policy's rollouts run")):
        with pytest.raises(ValueError, match=f"^{message}"):
            sim_to_dataset(tmp_path / "py", "reach", 1, policy=policy, timeout_s=2.0, **_SMALL)


def test_recording_a_servers_model_on_its_training_scenes_is_warned_of_as_sim_warns(tmp_path, monkeypatch, caplog):
    """`sim --policy ws://...` warns when the server announces (`training_seeds`) the scenes being run as ones its
    checkpoint trained on; `dataset from-sim --policy ws://...` said nothing. Said once the server is reached, by the
    same rule (`sim.tasks.warn_training_scenes`), the run labelled as sim labels it (`models.served_name`)."""
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.sim import policies

    class Server:  # a backend as our server is to the client (`RemotePolicy`): random actions, a metadata frame
        url = "ws://box:8000"

        def __init__(self, meta):
            self.random = policies.RandomPolicy(chunk_size=6)
            self.embodiment, self.chunk_size, self.meta = self.random.embodiment, 6, meta

        def metadata(self):
            return self.meta

        def act(self, observation, prompt, seed=None, decode_video=False):
            self.random.reset(seed)
            return self.random.act(observation, prompt)

    announced = {"model": "step-0000010", "chunk_size": 6,
                 "training_seeds": {"task": "reach", "seeds": [0, 1, 2], "source": "its dataset d"}}
    for meta, seed, said in ((announced, 1, True), (announced, 3, False), ({"chunk_size": 6}, 1, False)):
        monkeypatch.setattr(policies, "make_policy", lambda *a, meta=meta, **k: policies.wrap_policy(Server(meta)))
        caplog.clear()
        sim_to_dataset(tmp_path / f"ds{seed}{len(meta)}", "reach", 2, seed=seed, policy="ws://box:8000",
                       keep_failures=True, progress=False, **_SMALL)
        warned = [r.getMessage() for r in caplog.records if "trained on" in r.getMessage()]
        assert len(warned) == said and all(w.startswith(
            f"--seed {seed}: 2 of the 2 episodes (seeds 1..2) are reach scenes step-0000010 @ ws://box:8000 was "
            "trained on (its dataset d recorded seeds 0..2)") for w in warned), warned
