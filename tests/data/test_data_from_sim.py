"""Scripted-expert sim rollouts → LeRobot v3 dataset → training examples (2 short episodes, small images)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")


def test_two_expert_episodes_round_trip_and_replay(tmp_path):
    from worldpolicy.data import sample_training_examples
    from worldpolicy.data.from_sim import ACTION_KEYS, STATE_KEYS, sim_to_dataset
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.sim.env import TabletopEnv

    result = sim_to_dataset(tmp_path / "sim", "reach", 2, seed=7, image_size=(32, 32), max_steps=6, keep_failures=True)
    ds = result.dataset
    assert result.seeds == [7, 8] and ds.num_episodes == 2 and ds.fps == 15 and ds.robot_type == "panda"
    assert list(ds.episode_lengths) == [6, 6]
    # each episode's outcome, as a policy's recording has it (so the two merge): 6 steps reach no target
    assert ds.episode_success.tolist() == [False, False] and result.failed_seeds == []  # kept, not skipped
    # what recorded it, in info.json: the task and expert definitions (as a sim report records them) and the settings
    from worldpolicy.sim.policies import ScriptedPolicy
    from worldpolicy.sim.tasks import get_task

    made = ds.provenance
    assert made["source"] == "worldpolicy dataset from-sim" and made["task"] == "reach" and made["expert"] == "scripted"
    assert made["task_version"] == get_task("reach").version and made["expert_version"] == ScriptedPolicy.version
    assert made["seeds"] == result.seeds and made["seed"] == 7 and made["keep_failures"] is True
    assert made["image_size"] == [32, 32] and made["max_steps"] == 6 and made["control_hz"] == 15.0
    from worldpolicy.fileio import recorded_seeds

    assert recorded_seeds(tmp_path / "sim") == ("reach", [7, 8])  # what `worldpolicy sim` checks its seeds against
    assert ds.video_keys == [
        "observation.image.exterior_image_1_left",
        "observation.image.exterior_image_2_left",
        "observation.image.wrist_image_left",
    ]
    assert ds.feature_names(list(ACTION_KEYS)) == list(get_embodiment("droid").columns)
    ep = ds.episode(1)
    assert ep.frames["action.joint_position"].shape == (6, 7) and ep.frames["action.gripper_position"].shape == (6, 1)
    assert ep.videos["observation.image.wrist_image_left"].shape == (6, 32, 32, 3)
    assert ep.task.startswith("move the gripper to the") and ep.frames["next.done"][:, 0].tolist() == [False] * 5 + [
        True
    ]

    # the recorded rows are what the simulator did: replaying the stored (float32) actions reproduces the recorded
    # states and the losslessly stored frames
    env = TabletopEnv("reach", image_size=(32, 32))
    try:
        obs, _ = env.reset(seed=8)
        assert obs["prompt"] == ep.task
        for t in range(ep.length):
            np.testing.assert_allclose(obs["observation/joint_position"], ep.frames[STATE_KEYS[0]][t], atol=1e-4)
            recorded = ep.videos["observation.image.wrist_image_left"][t].astype(int)
            assert np.abs(obs["observation/wrist_image_left"] - recorded).max() <= 2  # float32 actions: ~1 level
            env.act(np.append(ep.frames[ACTION_KEYS[0]][t], ep.frames[ACTION_KEYS[1]][t]))
            obs = env.observe()
    finally:
        env.close()

    examples = list(
        sample_training_examples(
            ds,
            "droid",
            chunk_size=4,
            action_keys=list(ACTION_KEYS),
            state_keys=list(STATE_KEYS),
            video_keys="observation.image.exterior_image_1_left",
        )
    )
    assert len(examples) == 2 * (6 - 4)
    assert examples[0].actions.shape == (4, 8) and examples[0].state.shape == (8,)
    assert examples[0].frames.shape == (5, 32, 32, 3)

    # all three cameras, composed exactly as the engine composes a DROID observation
    from worldpolicy.processing.observations import frames_from_mapping

    emb = get_embodiment("droid")
    ex = next(
        sample_training_examples(
            ds, emb, chunk_size=4, action_keys=list(ACTION_KEYS), state_keys=list(STATE_KEYS), video_keys=ds.video_keys
        )
    )
    assert sorted(ex.wire_views) == sorted(emb.camera_keys)
    composite = frames_from_mapping(ex.wire_views, emb.camera_keys, emb.composite)
    assert composite.shape[0] == 5 and composite.shape[-1] == 3


def test_parallel_workers_record_the_same_episodes():
    from worldpolicy.data.from_sim import expert_episodes

    options = {
        "seed": 3,
        "image_size": (24, 24),
        "max_steps": 4,
        "keep_failures": True,
        "cameras": ["observation/exterior_image_1_left"],
    }
    serial = list(expert_episodes("reach", 3, **options))
    parallel = list(expert_episodes("reach", 3, workers=2, **options))
    assert [e["seed"] for e in parallel] == [3, 4, 5]
    for a, b in zip(serial, parallel):
        assert a["task"] == b["task"]
        for key in a["frames"]:
            np.testing.assert_array_equal(a["frames"][key], b["frames"][key])
        np.testing.assert_array_equal(
            a["videos"]["observation.image.exterior_image_1_left"],
            b["videos"]["observation.image.exterior_image_1_left"],
        )


def test_task_options_reach_every_worker():
    from worldpolicy.data.from_sim import expert_episodes

    options = {"seed": 3, "image_size": (24, 24), "max_steps": 4, "keep_failures": True,
               "cameras": ["observation/exterior_image_1_left"]}
    key = "observation.image.exterior_image_1_left"
    high = {"upper_share": 1.0}
    default = list(expert_episodes("reach", 2, **options))
    serial = list(expert_episodes("reach", 2, task_options=high, **options))
    parallel = list(expert_episodes("reach", 2, task_options=high, workers=2, **options))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a["videos"][key], b["videos"][key])
    assert any(not np.array_equal(a["videos"][key], d["videos"][key]) for a, d in zip(serial, default))


def test_numpy_counts_record_what_python_ints_record():
    """numpy's counts and seeds are the ints they are (`max_steps` always took them; the others refused np.int64)."""
    from worldpolicy.data.from_sim import expert_episodes

    options = {"image_size": (16, 16), "max_steps": 4, "keep_failures": True,
               "cameras": ["observation/exterior_image_1_left"]}
    python = list(expert_episodes("reach", 1, seed=3, settle_steps=0, **options))
    given = list(expert_episodes("reach", np.int64(1), seed=np.int64(3), settle_steps=np.int64(0), **options))
    assert len(given) == 1
    for key, column in python[0]["frames"].items():
        np.testing.assert_array_equal(given[0]["frames"][key], column, err_msg=key)


def test_action_noise_moves_the_arm_but_records_the_experts_clean_targets():
    from worldpolicy.data.from_sim import expert_episodes

    options = {"seed": 5, "image_size": (24, 24), "cameras": ["observation/exterior_image_1_left"]}
    clean = next(iter(expert_episodes("reach", 1, **options)))
    noisy = next(iter(expert_episodes("reach", 1, action_noise=0.03, **options)))
    assert noisy["success"]
    # same start, same first plan: the label is the expert's target, not the perturbed command that was executed
    action, state = "action.joint_position", "observation.state.joint_positions"
    np.testing.assert_array_equal(clean["frames"][action][0], noisy["frames"][action][0])
    n = min(len(clean["frames"][state]), len(noisy["frames"][state]))
    assert np.abs(clean["frames"][state][1:n] - noisy["frames"][state][1:n]).max() > 0.01


def test_noisy_commands_stay_within_the_experts_joint_step_cap(monkeypatch):
    """Each chunk's offset was added at once: at 0.1 rad the command jumped past the Panda's joint speed limits at
    chunk boundaries (up to 2.5x in 10 reach episodes), which a real arm faults on. Now it joins at the expert's cap."""
    from worldpolicy.data.from_sim import expert_episodes
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import ScriptedPolicy

    commands, real_act = [], TabletopEnv.act

    def act(self, action):
        commands.append((self.steps, np.clip(action[:-1], self.lower, self.upper), ScriptedPolicy(self).step_cap()))
        real_act(self, action)

    monkeypatch.setattr(TabletopEnv, "act", act)
    options = {"image_size": (16, 16), "cameras": ["observation/exterior_image_1_left"], "keep_failures": True}
    episodes = list(expert_episodes("reach", 3, action_noise=0.1, **options))
    assert len(commands) == sum(len(e["frames"]["next.done"]) for e in episodes)
    worst = max(float(np.max(np.abs(q - before) / cap))
                for (_, before, _), (t, q, cap) in itertools.pairwise(commands) if t > 0)
    assert 0.9 < worst <= 1 + 1e-9  # the cap, reached: the noise still moves the arm as fast as the expert may


def test_bad_converter_arguments(tmp_path):
    from worldpolicy.data.from_sim import expert_episodes

    with pytest.raises(ValueError, match="num_episodes=0"):
        expert_episodes("reach", 0)
    with pytest.raises(ValueError, match=r"cameras=\['observation/top'\]: unknown \['observation/top'\]; known: "):
        expert_episodes("reach", 1, cameras=["observation/top"])
    with pytest.raises(ValueError, match=r"names \['observation/wrist_image_left'\] more than once; give each camera"):
        expert_episodes("reach", 1, cameras=["observation/wrist_image_left", "observation/wrist_image_left"])
    with pytest.raises(ValueError, match="workers=0"):
        expert_episodes("reach", 1, workers=0)
    with pytest.raises(ValueError, match="action_noise=0.5"):
        expert_episodes("reach", 1, action_noise=0.5)
    with pytest.raises(ValueError, match=r"start_jitter=True must be a number of radians in \[0, 1\]"):
        expert_episodes("reach", 1, start_jitter=True)  # a bool was taken as 1 radian
    with pytest.raises(ValueError, match=r"task 'reach': unknown option\(s\) \['upper'\]"):
        expert_episodes("reach", 1, task_options={"upper": 0.5})


UNPHYSICAL_RATE = ("--control-hz: 300 Hz is not a whole number of 2 ms physics steps (it would run at 250.00 Hz); "
                   "nearby rates that are: [166.67, 250.0, 500.0]")


@pytest.mark.parametrize("argv, message", [
    (["--max-steps", "0"], "--max-steps: expected an int >= 1 (or None: the task's default), got 0"),
    (["--image-size", "8x8"],
     "--image-size: expected (height, width), two ints of 16 to 4096 pixels, or None (no cameras), got (8, 8)"),
    # spelled as `sim --image-size` and `dataset from-videos --size` say it (`cli.pixel_size`), not in words of its own
    (["--image-size", "big"], "--image-size 'big'; accepted: HxW, the height and width in pixels, e.g. 180x320"),
    (["--settle-steps", "-1"], "--settle-steps=-1 must be an int >= 0"),
    (["--control-hz", "0"], "--control-hz: expected a positive frequency, got 0.0"),
    # the rates the physics cannot run need the built scene: refused before the bar all the same, and with workers
    # (in a worker, it broke the process pool with no word of why)
    *([["--control-hz", "300", *workers], UNPHYSICAL_RATE] for workers in ([], ["--workers", "2"])),
    (["--robot", "ur5"], ("--robot: unknown name 'ur5'; known: ['fr3', 'menagerie_panda', 'panda'], a path to a "
                          "Menagerie-layout Panda MJCF (*.xml) or a robot file (*.json: RobotConfig's fields, "
                          "docs/robot.md)")),
    (["--robot", "nowhere/panda.xml"], "--robot: MJCF file 'nowhere/panda.xml' does not exist"),
])
def test_from_sim_refuses_a_bad_number_before_the_progress_bar(tmp_path, capsys, argv, message):
    """--max-steps 0 was refused by the env, built once the progress bar was up: the error followed a bar line."""
    from worldpolicy.cli import main

    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--task", "reach", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"worldpolicy dataset from-sim: error: {message}\n"  # no "recording reach: 0%|" before it
    assert list(tmp_path.iterdir()) == []


def test_from_sim_records_at_the_control_rate_and_on_the_robot_asked_for(tmp_path):
    """The command recorded at 15 Hz only, so a robot whose embodiment runs at 10 Hz could not train on sim data (a
    training run refuses a dataset of another fps). --control-hz is the dataset's fps and the rate the expert plans
    at: the same reach takes fewer rows at 10 Hz, each a longer step. --robot records on the arm `sim --robot`
    evaluates on (the Python API's `robot=`)."""
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset

    def record(*argv):
        root = tmp_path / f"hz{'_'.join(argv) or 'default'}"
        assert main(["dataset", "from-sim", str(root), "--task", "reach", "--episodes", "1", "--image-size", "24x24",
                     "--cameras", "observation/wrist_image_left", "--no-progress", *argv]) == 0
        return LeRobotDataset.open(root)

    default, slow, fr3 = record(), record("--control-hz", "10"), record("--robot", "fr3")
    assert (default.fps, default.provenance["control_hz"]) == (15, 15)
    assert (default.robot_type, fr3.robot_type, fr3.provenance["robot"]) == ("panda", "fr3", "fr3")  # as `sim --robot`
    assert (slow.fps, slow.provenance["control_hz"], slow.provenance["seeds"]) == (10, 10, [0])
    assert slow.num_frames < default.num_frames


def test_an_expert_that_fails_every_try_is_one_line_naming_the_flags(tmp_path, capsys):
    """It was a traceback ending in `raise max_attempts or pass keep_failures=True`, Python names the command line
    has no flag for. (One step per episode: no reach is solved in one.)"""
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import ExpertFailed, sim_to_dataset

    tiny = ["--task", "reach", "--episodes", "1", "--max-steps", "1", "--image-size", "16x16", "--cameras",
            "observation/wrist_image_left", "--no-progress"]
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), *tiny]) == 2
    assert capsys.readouterr().err.endswith(
        "error: the scripted expert solved 0 of 7 episodes of task 'reach' (seeds 0..6); wanted 1. A short "
        "--max-steps, or a large --action-noise or --start-jitter, makes it fail: change those, or pass "
        "--keep-failures to record the failed episodes too\n")
    with pytest.raises(ExpertFailed, match=r"seeds 3\.\.4\); wanted 1\. A short max_steps, .* pass keep_failures=True "
                       r"or a larger max_attempts to record"):
        sim_to_dataset(tmp_path / "py", "reach", 1, seed=3, max_attempts=2, max_steps=1, image_size=(16, 16),
                       cameras=["observation/wrist_image_left"])
    assert issubclass(ExpertFailed, RuntimeError)  # what it was: callers catching that still do
    # shifts given (a distractor can block the expert's path) are named among the causes too
    assert main(["dataset", "from-sim", str(tmp_path / "shifted"), *tiny, "--perturb", "distractors=2"]) == 2
    assert capsys.readouterr().err.endswith(
        "wanted 1. A short --max-steps, a large --action-noise or --start-jitter, or the --perturb shifts "
        "('distractors=2') make it fail: change those, or pass --keep-failures to record the failed episodes too\n")
    with pytest.raises(ExpertFailed, match=r"or the perturb shifts \('light=0\.5'\) make it fail: .* pass "
                                           r"keep_failures=True or a larger max_attempts"):
        sim_to_dataset(tmp_path / "py", "reach", 1, max_attempts=1, max_steps=1, image_size=(16, 16),
                       cameras=["observation/wrist_image_left"], perturb="light=0.5")


_TINY = {"image_size": (24, 24), "max_steps": 3, "keep_failures": True, "cameras": ["observation/wrist_image_left"]}


def _ctrl_c_at(monkeypatch, seed: int) -> None:
    """Recording the episode of `seed` is interrupted, as Ctrl-C in the middle of a rollout would."""
    from worldpolicy.data import from_sim

    real = from_sim._Recorder.record

    def record(self, episode_seed: int):
        if episode_seed == seed:
            raise KeyboardInterrupt
        return real(self, episode_seed)

    monkeypatch.setattr(from_sim._Recorder, "record", record)


def _staged(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_overwrite_replaces_only_a_from_sim_recording(tmp_path, capsys):
    """--overwrite replaced any dataset, an imported or downloaded one too; as the other dataset commands' do, it now
    replaces only what `dataset from-sim` recorded, and leaves anything else as it was."""
    import json

    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.fileio import PROVENANCE_FILE

    root = tmp_path / "sim"
    sim_to_dataset(root, "reach", 1, **_TINY)
    sim_to_dataset(root, "reach", 2, overwrite=True, **_TINY)  # its own recording: replaced
    assert LeRobotDataset.open(root).num_episodes == 2
    provenance = root / PROVENANCE_FILE
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()),
                                      "source": "worldpolicy dataset import-hdf5"}))
    before = provenance.read_text()
    flags = ["--task", "reach", "--episodes", "1", "--image-size", "24x24", "--max-steps", "3", "--overwrite"]
    assert main(["dataset", "from-sim", str(root), *flags]) == 2
    assert (f"error: --overwrite: ROOT={str(root)!r} holds a dataset `dataset import-hdf5` made, not a `dataset "
            "from-sim` recording" in capsys.readouterr().err)
    assert provenance.read_text() == before and LeRobotDataset.open(root).num_episodes == 2
    assert main(["dataset", "from-sim", str(root), *flags[:-1]]) == 2  # not "pass --overwrite", refused next
    assert (f"error: ROOT={str(root)!r} holds a dataset `dataset import-hdf5` made, not a `dataset from-sim` "
            "recording; choose a new or empty folder (--overwrite replaces only a `dataset from-sim` recording that "
            "says so)" in capsys.readouterr().err)
    # no provenance at all: made elsewhere, or recorded by a version before recordings kept one (it said "not
    # recorded by `dataset from-sim`" of the user's own older recording, leaving them no way to record there again)
    provenance.unlink()
    for given in (flags, [*flags[:-1], "--resume"]):
        assert main(["dataset", "from-sim", str(root), *given]) == 2
        err = capsys.readouterr().err
        assert (f"ROOT={str(root)!r} holds a dataset that does not say `dataset from-sim` recorded it (one from "
                "elsewhere, or a recording by an older worldpolicy, which kept no meta/worldpolicy_provenance.json "
                "of its settings and seeds: delete it first to record into this folder again)") in err, err
    assert LeRobotDataset.open(root).num_episodes == 2 and _staged(tmp_path) == []


def test_ctrl_c_keeps_the_finished_episodes_as_a_complete_dataset(tmp_path, monkeypatch):
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset

    root = tmp_path / "sim"
    _ctrl_c_at(monkeypatch, 2)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, **_TINY)
    assert isinstance(caught.value, KeyboardInterrupt)  # callers that only know Ctrl-C still stop
    assert caught.value.kept == 2 and caught.value.result.seeds == [0, 1]
    assert caught.value.result.dataset.provenance["seeds"] == [0, 1]  # the kept episodes' seeds, not none
    assert caught.value.describe("--overwrite", "--resume") == (
        f"interrupted: 2 of 4 episodes kept in {root} (a complete dataset); rerun with --resume to record the other 2")
    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 2 and ds.episode(1).videos["observation.image.wrist_image_left"].shape == (3, 24, 24, 3)
    assert _staged(tmp_path) == []

    # an existing dataset is replaced only by a complete recording: Ctrl-C during --overwrite leaves it as it was
    _ctrl_c_at(monkeypatch, 1)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(root, "reach", 4, overwrite=True, **_TINY)
    assert caught.value.result is None and caught.value.recorded == 1
    assert "they were discarded and the dataset already in" in str(caught.value)
    assert LeRobotDataset.open(root).num_episodes == 2 and _staged(tmp_path) == []

    # nothing finished: nothing written, nothing staged
    _ctrl_c_at(monkeypatch, 0)
    with pytest.raises(RecordingInterrupted, match="before the first of 4 episodes was finished; nothing was written"):
        sim_to_dataset(tmp_path / "other", "reach", 4, **_TINY)
    assert not (tmp_path / "other").exists() and _staged(tmp_path) == []


def test_an_error_while_recording_keeps_the_finished_episodes(tmp_path, monkeypatch, caplog):
    """A simulator or worker crash in episode k threw away episodes 0..k-1 (hours of recording); they are now kept as
    a complete dataset, as Ctrl-C keeps them, and the error is raised as it came. An error while an episode is being
    added to the dataset keeps nothing: part of that episode may be in it."""
    from worldpolicy.data import LeRobotDataset, from_sim
    from worldpolicy.data.lerobot import LeRobotDatasetWriter

    real = from_sim._Recorder.record

    def crash_at_2(self, episode_seed: int):
        if episode_seed == 2:
            raise RuntimeError("MuJoCo: simulation unstable")
        return real(self, episode_seed)

    monkeypatch.setattr(from_sim._Recorder, "record", crash_at_2)
    root = tmp_path / "sim"
    with caplog.at_level("WARNING", logger="worldpolicy.data.from_sim"), \
            pytest.raises(RuntimeError, match="simulation unstable"):
        from_sim.sim_to_dataset(root, "reach", 4, **_TINY)
    assert LeRobotDataset.open(root).num_episodes == 2
    assert f"2 of 4 episodes recorded before the error are kept in {root}" in caplog.text
    assert _staged(tmp_path) == []

    monkeypatch.setattr(from_sim._Recorder, "record", real)
    real_add, added = LeRobotDatasetWriter.add_episode, []

    def bad_second_episode(self, *args, **kwargs):
        added.append(1)
        if len(added) == 2:
            raise ValueError("episode 1: NaN in observation/joint_position")
        return real_add(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDatasetWriter, "add_episode", bad_second_episode)
    with pytest.raises(ValueError, match="NaN"):
        from_sim.sim_to_dataset(tmp_path / "bad", "reach", 3, **_TINY)
    assert not (tmp_path / "bad").exists() and _staged(tmp_path) == []


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_streamed_frames_give_the_files_the_in_memory_writer_gives(tmp_path, monkeypatch):
    """`sim_to_dataset` spools each camera's frames as they are rendered and streams them into the videos a block at a
    time; the same episodes recorded as arrays and added whole (`add_episode`, the path it took before) give the same
    dataset, byte for byte: parquet, mp4, stats, info.json, provenance."""
    from worldpolicy.data import from_sim
    from worldpolicy.data.lerobot import EpisodeVideoStream, LeRobotDatasetWriter
    from worldpolicy.extras import run_record

    options = {"image_size": (24, 32), "max_steps": 10, "keep_failures": True,
               "cameras": ["observation/wrist_image_left", "observation/exterior_image_1_left"]}
    monkeypatch.setattr(from_sim, "BLOCK_FRAMES", 4)
    real_append, blocks = EpisodeVideoStream.append, []
    monkeypatch.setattr(EpisodeVideoStream, "append",
                        lambda self, parts: blocks.append({k: len(v) for k, v in parts.items()}) or real_append(self,
                                                                                                                 parts))
    streamed = from_sim.sim_to_dataset(tmp_path / "streamed", "reach", 2, seed=7, **options)
    keys = ["observation.image.wrist_image_left", "observation.image.exterior_image_1_left"]
    assert blocks == [dict.fromkeys(keys, 4), dict.fromkeys(keys, 4), dict.fromkeys(keys, 2)] * 2  # never whole
    assert _staged(tmp_path) == []  # the spool folder is gone

    recording = from_sim.expert_episodes("reach", 2, seed=7, **options)
    settings = recording.provenance
    features = from_sim.sim_features(settings["robot"], tuple(settings["image_size"]), settings["cameras"])
    memory = tmp_path / "memory" / "streamed"  # named as the streamed one: its card (README.md) names the dataset
    with LeRobotDatasetWriter(memory, settings["control_hz"], features, settings["robot"],
                              video_codec="libx264rgb",
                              provenance={**settings, **run_record(None), "seeds": [7, 8]}) as writer:
        for episode in recording:
            assert all(isinstance(v, np.ndarray) for v in episode["videos"].values())  # no spool: arrays
            writer.add_episode(episode["frames"], episode["videos"], episode["task"], success=episode["success"])
    expected = _files(memory)
    assert any(name.endswith(".mp4") for name in expected) and _files(streamed.dataset.root) == expected
    with pytest.raises(ValueError, match="spool='.*none': expected an existing folder"):  # before anything renders
        next(iter(from_sim.expert_episodes("reach", 1, spool=tmp_path / "none", **options)))


def test_an_error_while_an_episode_is_streamed_keeps_nothing(tmp_path, monkeypatch):
    """A failure between two blocks of an episode's frames leaves part of it in the videos: the writer is aborted (its
    contract), nothing is published, and neither its staging folder nor the spool is left behind."""
    from worldpolicy.data import from_sim
    from worldpolicy.data.lerobot import EpisodeVideoStream

    monkeypatch.setattr(from_sim, "BLOCK_FRAMES", 2)
    real_append, calls = EpisodeVideoStream.append, []

    def failing_append(self, parts):
        calls.append(1)
        if len(calls) == 4:  # the second block of the second episode
            raise OSError("No space left on device")
        return real_append(self, parts)

    monkeypatch.setattr(EpisodeVideoStream, "append", failing_append)
    with pytest.raises(OSError, match="No space left"):
        from_sim.sim_to_dataset(tmp_path / "sim", "reach", 3, **_TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_frame_size_the_codec_cannot_encode_is_refused_before_recording(tmp_path, monkeypatch):
    from worldpolicy.data import from_sim

    def record(self, seed: int):
        raise AssertionError("an episode was recorded before the frame size was checked")

    monkeypatch.setattr(from_sim._Recorder, "record", record)
    with pytest.raises(ValueError, match=r"features\['observation.image.wrist_image_left'\]: video_codec='libx264' "
                                         "needs even frame sizes, got 47x64"):
        from_sim.sim_to_dataset(tmp_path / "sim", "reach", 1, video_codec="libx264", image_size=(47, 64),
                                cameras=["observation/wrist_image_left"])
    assert list(tmp_path.iterdir()) == []


def test_a_ctrl_c_while_an_episode_is_written_lets_it_finish(tmp_path, monkeypatch):
    """The real signal: held while the writer takes an episode, so the one being written is kept whole."""
    import os
    import signal

    from worldpolicy.data import LeRobotDataset
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset
    from worldpolicy.data.lerobot import LeRobotDatasetWriter

    real = LeRobotDatasetWriter.add_episode

    def add_episode(self, *args, **kwargs):
        if self.num_episodes == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDatasetWriter, "add_episode", add_episode)
    with pytest.raises(RecordingInterrupted) as caught:
        sim_to_dataset(tmp_path / "sim", "reach", 4, **_TINY)
    assert caught.value.kept == 2 and LeRobotDataset.open(tmp_path / "sim").num_episodes == 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back


def test_a_ctrl_c_between_two_blocks_of_an_episode_lets_it_finish(tmp_path, monkeypatch):
    """The real signal, between two blocks of an episode's streamed frames: the episode is encoded and added whole."""
    import os
    import signal

    from worldpolicy.data import LeRobotDataset, from_sim
    from worldpolicy.data.lerobot import EpisodeVideoStream

    monkeypatch.setattr(from_sim, "BLOCK_FRAMES", 2)
    real, calls = EpisodeVideoStream.append, []

    def append(self, parts):
        calls.append(1)
        if len(calls) == 3:  # the first of episode 1's two blocks
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, parts)

    monkeypatch.setattr(EpisodeVideoStream, "append", append)
    with pytest.raises(from_sim.RecordingInterrupted) as caught:
        from_sim.sim_to_dataset(tmp_path / "sim", "reach", 4, **_TINY)
    ds = LeRobotDataset.open(tmp_path / "sim")
    assert caught.value.kept == 2 and ds.num_episodes == 2 and len(calls) == 4
    assert ds.episode(1).videos["observation.image.wrist_image_left"].shape == (3, 24, 24, 3)
    assert _staged(tmp_path) == []


def _dataset_made_by(root, provenance):
    """A one-episode dataset whose info.json says `provenance` made it (no rendering: only its metadata is read)."""
    from worldpolicy.data import write_episodes

    episode = {"frames": {"action": np.zeros((3, 2), np.float32)}, "task": "reach"}
    return write_episodes(root, [episode], fps=15, provenance=provenance)


def test_recorded_seeds_are_none_where_the_dataset_does_not_say(tmp_path):
    """Made elsewhere, without its seeds, or not there: `worldpolicy sim` then checks nothing, rather than failing."""
    from worldpolicy.fileio import recorded_seeds

    assert recorded_seeds(_dataset_made_by(tmp_path / "made", {"task": "push", "seeds": [4, 6]}).root) == ("push",
                                                                                                           [4, 6])
    assert recorded_seeds(_dataset_made_by(tmp_path / "plain", None).root) is None
    assert recorded_seeds(_dataset_made_by(tmp_path / "no_seeds", {"task": "push"}).root) is None
    assert recorded_seeds(_dataset_made_by(tmp_path / "bools", {"task": "push", "seeds": [True]}).root) is None
    assert recorded_seeds(tmp_path / "missing") is None


def test_check_recording_refuses_a_dataset_of_other_versions_or_settings(tmp_path, monkeypatch):
    """A recording is reused (the from-scratch recipe's rerun) only if this worldpolicy's task and expert, with the
    same settings, made it: a changed expert or task definition records other episodes, which must not be trained
    on as if they were these. A dataset that does not say counts as version 1, as a sim report does."""
    from worldpolicy.data.from_sim import check_recording, expert_episodes
    from worldpolicy.sim import policies

    options = {"seed": 3, "image_size": (32, 32), "start_jitter": 0.5}
    made = expert_episodes("reach", 1, **options).provenance
    same = _dataset_made_by(tmp_path / "same", {**made, "seeds": [3]})
    check_recording(same, "reach", **options)

    monkeypatch.setattr(policies.ScriptedPolicy, "version", made["expert_version"] + 1)
    with pytest.raises(ValueError, match=rf"{tmp_path / 'same'} was recorded by other versions: scripted expert: "
                                         rf"v{made['expert_version']} -> v{made['expert_version'] + 1}\. "):
        check_recording(same, "reach", **options)
    monkeypatch.undo()

    with pytest.raises(ValueError, match=r"other versions: .*scripted expert: v1 \(unrecorded\) -> v"):
        check_recording(_dataset_made_by(tmp_path / "elsewhere", None), "reach", **options)
    with pytest.raises(ValueError, match=r"other settings: seed: 3 -> 4; start_jitter: 0.5 -> 0.0\. Record with"):
        check_recording(same, "reach", seed=4, image_size=(32, 32))
    with pytest.raises(ValueError, match=r"other settings: task: 'reach' -> 'push'"):  # another task: not a version
        check_recording(same, "push", **options)


def test_check_recording_is_for_the_experts_recordings_and_says_so(tmp_path):
    """A policy's recording (`from-sim --policy`) is not the expert's: named as such, not a KeyError on the expert's
    version nor a list of 'unrecorded' settings."""
    from worldpolicy.data.from_sim import check_recording, expert_episodes

    options = {"image_size": (32, 32), "max_steps": 5}
    by_policy = expert_episodes("reach", 1, policy="random", **options)
    by_policy.close()
    recorded = _dataset_made_by(tmp_path / "random", {**by_policy.provenance, "seeds": [0]})
    with pytest.raises(ValueError, match=r"^policy='random': check_recording compares recordings of the scripted "
                                         r"expert"):
        check_recording(recorded, "reach", policy="random", **options)
    with pytest.raises(ValueError, match=rf"^{tmp_path / 'random'} was recorded by policy 'random' \(dataset from-sim "
                                         r"--policy\), not the scripted expert"):
        check_recording(recorded, "reach", **options)


def test_perturb_records_the_seeds_scenes_under_the_shift_and_says_so(tmp_path):
    """`--perturb light=0.5` (domain randomisation) dims what the cameras record of the same scenes and moves: the
    arm's rows are the clean recording's, its frames not; a recording without it is the clean one, frame for frame.
    The provenance says which shift, and a dataset recorded under another is not reused as this one."""
    from worldpolicy.data.from_sim import check_recording, expert_episodes

    options = {"seed": 5, "image_size": (24, 24), "max_steps": 4, "keep_failures": True,
               "cameras": ["observation/exterior_image_1_left"]}
    key = "observation.image.exterior_image_1_left"
    clean, again = (expert_episodes("reach", 1, **options) for _ in range(2))
    dim = expert_episodes("reach", 1, perturb="light=0.5", **options)
    assert clean.provenance["perturb"] is None and dim.provenance["perturb"] == "light=0.5"
    (a,), (b,), (d,) = list(clean), list(again), list(dim)
    np.testing.assert_array_equal(a["videos"][key], b["videos"][key])
    assert a["task"] == d["task"]  # the same scene, drawn before the shift
    for name in a["frames"]:
        np.testing.assert_array_equal(a["frames"][name], d["frames"][name])
    assert d["videos"][key].astype(float).mean() < a["videos"][key].astype(float).mean() - 5  # dimmer

    recorded = _dataset_made_by(tmp_path / "dim", {**dim.provenance, "seeds": [5]})
    check_recording(recorded, "reach", perturb=["light=0.5"], **options)  # the same shift, spelled as a list
    with pytest.raises(ValueError, match=r"other settings: perturb: 'light=0\.5' -> None\. Record with"):
        check_recording(recorded, "reach", **options)


def test_a_bad_perturbation_is_refused_naming_the_parameter_or_flag(tmp_path, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import expert_episodes

    with pytest.raises(ValueError, match=r"^perturb: unknown perturbation 'fog' in 'fog'; accepted: camera=<"):
        expert_episodes("reach", 1, perturb="fog")
    # the command line: refused before a checkpoint is looked for or a scene built, naming the flag
    assert main(["dataset", "from-sim", str(tmp_path / "ds"), "--task", "reach", "--policy", "no/such/checkpoint",
                 "--perturb", "light=9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("worldpolicy dataset from-sim: error: --perturb: 'light=9': light takes a number of 0.1 to "
                          "3; it means")
    assert list(tmp_path.iterdir()) == []
