"""`worldpolicy dataset label` / `label_dataset`: pseudo-labelling a dataset's videos with an inverse-dynamics
checkpoint's actions into a new LeRobot v3 dataset (the main use of inverse dynamics)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
from dataset_factory import make_episode

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset, write_episodes
from worldpolicy.data.label import LABEL_SOURCE, LabelInterrupted, label_dataset
from worldpolicy.extras import software_versions
from worldpolicy.fileio import PROVENANCE_FILE

FRONT = "observation.images.front"
DROID_CAMERAS = ("observation.image.wrist_image_left", "observation.image.exterior_image_1_left",
                 "observation.image.exterior_image_2_left")


def _dataset(root: Path, lengths=(6, 5), fps: float = 10, provenance=None) -> LeRobotDataset:
    """Episodes with an `action` column to replace (3-wide: not pusht's), a state, a string task per episode."""
    episodes = []
    for i, length in enumerate(lengths):
        ep = make_episode(length, seed=i, offset=10 * i)
        ep["task"] = "push the T | shove the T" if i == 0 else "push it back"
        episodes.append(ep)
    return write_episodes(root, episodes, fps=fps, robot_type="testbot", video_codec="libx264rgb",
                          provenance=provenance)


def _stub(policy, monkeypatch, calls: list, stop_at: int | None = None, stop: KeyboardInterrupt | None = None):
    """`policy.infer_actions` replaced by a stand-in that records its inputs and returns a row per transition (row t
    holds t), raising `stop` (KeyboardInterrupt) at call `stop_at`: what the labeller does around the model, without
    it."""
    def infer(video, prompt, **kwargs):
        if stop_at is not None and len(calls) == stop_at:
            raise stop or KeyboardInterrupt()
        calls.append(SimpleNamespace(video=video, prompt=prompt, **kwargs))
        frames = len(next(iter(video.values())))
        return SimpleNamespace(actions=np.repeat(np.arange(frames - 1.0)[:, None], policy.embodiment.action_dim, 1))

    monkeypatch.setattr(policy, "infer_actions", infer)


def test_labels_are_infer_actions_on_each_episodes_whole_video_and_the_result_is_a_checked_dataset(policy, tmp_path,
                                                                                                   capsys):
    ds = _dataset(tmp_path / "src")
    out = label_dataset(ds, tmp_path / "out", policy, seed=5, batch_size=2)
    assert out.features["action"] == {"dtype": "float32", "shape": [2], "names": list(policy.embodiment.columns)}
    assert out.fps == ds.fps and out.num_episodes == 2 and list(out.episode_lengths) == [6, 5]
    for i in range(2):
        got, src = out.episode(i), ds.episode(i)
        # the same frames (lossless), the task's first phrasing, seed + episode index
        video = src.videos[FRONT]
        want = policy.infer_actions({"observation/image": video}, src.task.split(" | ")[0], whole_clip=True,
                                    batch_size=2, seed=5 + i)
        np.testing.assert_array_equal(got.frames["action"][:-1], want.actions.astype(np.float32))
        np.testing.assert_array_equal(got.frames["action"][-1], got.frames["action"][-2])  # the last frame repeats
        np.testing.assert_array_equal(got.videos[FRONT], video)
        np.testing.assert_array_equal(got.frames["observation.state"], src.frames["observation.state"])
        assert got.frame_tasks == src.frame_tasks
    prov = out.provenance
    assert prov["source"] == LABEL_SOURCE and prov["checkpoint"] == policy.source and prov["seed"] == 5
    assert prov["embodiment"] == "pusht" and prov["units"] == list(policy.embodiment.units)
    assert prov["episodes"] is None and prov["sampling"]["steps"] == 1  # None: all of them
    assert main(["dataset", "check", str(out.root)]) == 0
    assert "ok: 2 episodes" in capsys.readouterr().out
    # training reads it with one setting: the labels' names say whose columns they are
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import window_spec

    spec = window_spec(DataConfig(dataset=str(out.root), chunk_size=4, action_keys=["action"]), policy.embodiment)
    assert spec.source_embodiment == "pusht" and spec.action_conversion == "none"


def test_an_episode_labelled_in_segments_gets_the_whole_clips_labels(policy, tmp_path, monkeypatch):
    """A long episode runs through infer_actions a few batches of windows at a time (the frames it copies are a
    segment's): the same windows, batches and seed as the whole clip, so the same bytes."""
    import worldpolicy.data.label as label_module

    ds = _dataset(tmp_path / "src", lengths=(12, 9))  # 11 and 8 transitions: windows of 4
    infer, lengths = policy.infer_actions, []

    def spy(video, prompt, **kwargs):
        lengths.append(len(video["observation/image"]))
        return infer(video, prompt, **kwargs)

    monkeypatch.setattr(policy, "infer_actions", spy)
    monkeypatch.setattr(label_module, "SEGMENT_BATCHES", 100)
    whole = label_dataset(ds, tmp_path / "whole", policy, seed=3, batch_size=2)
    assert lengths == [12, 9]
    lengths.clear()
    monkeypatch.setattr(label_module, "SEGMENT_BATCHES", 1)  # 1 batch of 2 windows: 8 transitions a segment
    segmented = label_dataset(ds, tmp_path / "segmented", policy, seed=3, batch_size=2)
    assert lengths == [9, 4, 9]  # the next segment from the last one's last frame; 8 transitions: no 1-frame tail
    for i in range(2):
        labels = segmented.episode(i).frames["action"]
        assert labels.shape == (ds.episode_lengths[i], 2) and len(np.unique(labels[:-1], axis=0)) > 2  # not constant
        assert labels.tobytes() == whole.episode(i).frames["action"].tobytes()


def test_the_shipped_model_is_recorded_by_name_not_by_this_installs_folder(policy, tmp_path, monkeypatch):
    """`shipped` loads from the package's folder; the record names it as training does, so it resolves elsewhere."""
    from worldpolicy.models import shipped_model

    _stub(policy, monkeypatch, [])
    monkeypatch.setattr(policy, "source", str(shipped_model()))  # what loading `shipped` leaves in Policy.source
    out = label_dataset(_dataset(tmp_path / "src", lengths=(3,)), tmp_path / "out", policy)
    assert out.provenance["checkpoint"] == "shipped"


def test_each_episodes_success_flag_and_own_columns_are_kept(policy, tmp_path, monkeypatch):
    """A recording that flags each episode's outcome (`dataset from-sim --policy --keep-failures`) keeps the flags
    once labelled: the episodes are the same, and `train --success only` reads them. So are a recorder's own
    meta/episodes columns, with their types, as `dataset select` keeps them (they were dropped)."""
    import pyarrow as pa

    from worldpolicy.data import LeRobotDatasetWriter

    _stub(policy, monkeypatch, [])
    plain = _dataset(tmp_path / "src", lengths=(4, 4, 4))
    with LeRobotDatasetWriter(tmp_path / "flagged", plain.fps, plain.features, video_codec="libx264rgb") as writer:
        for i, ep in enumerate(plain.episodes()):
            writer.add_episode(ep.frames, ep.videos, ep.task, success=i == 1,
                               fields={"operator": f"op{i}", "score": pa.scalar(i / 2, pa.float32())})
        flagged = writer.finalize()
    out = label_dataset(flagged, tmp_path / "out", policy, episodes=[1, 2])
    assert out.episode_success.tolist() == [True, False]
    assert out.episode_fields() == [{"success": True, "operator": "op1", "score": 0.5},
                                    {"success": False, "operator": "op2", "score": 1.0}]
    assert out.episode_columns().schema == pa.schema([("operator", pa.string()), ("score", pa.float32())])
    assert label_dataset(plain, tmp_path / "plain", policy).episode_success is None


def test_a_subset_from_the_command_line_keeps_its_episodes_labels(policy, tmp_path, capsys, monkeypatch):
    ds = _dataset(tmp_path / "src")
    calls: list = []
    _stub(policy, monkeypatch, calls)
    import worldpolicy.policy as policy_module

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(lambda cls, *a, **k: policy))
    assert main(["dataset", "label", str(ds.root), "--checkpoint", str(policy.source), "--embodiment", "pusht",
                 "--out", str(tmp_path / "cli"), "--episodes", "-1", "--seed", "5", "--batch-size", "3",
                 "--no-progress"]) == 0
    said = capsys.readouterr()
    summary = json.loads(said.out)  # stdout: the JSON alone, which scripts parse
    assert summary["episodes"] == 1 and summary["provenance"]["episodes"] == [1]
    out = tmp_path / "cli"  # what comes next on stderr, as `dataset from-sim` and `train` say it
    assert said.err.splitlines()[-3:] == [
        "worldpolicy dataset label: next:",
        f"  worldpolicy dataset show {out} --out {out}_show   # a page: clips, columns",
        f'  worldpolicy train CONFIG.toml   # with [data] dataset = "{out}" (docs/training.md)'], said.err
    assert summary["features"]["action"]["names"] == ["x", "y"]
    assert [(c.seed, c.batch_size, c.prompt, c.whole_clip) for c in calls] == [(6, 3, "push it back", True)]
    np.testing.assert_array_equal(calls[0].video["observation/image"], ds.episode(1).videos[FRONT])


def test_episodes_are_spelled_as_train_takes_them(policy, tmp_path, capsys, monkeypatch):
    """`--episodes 2,0` as `train --episodes` takes it (it took `2 0`, and `--episodes 0 2 ROOT` read ROOT as an
    episode); a bad list is refused by flag."""
    ds = _dataset(tmp_path / "src", lengths=(3, 3, 3))
    _stub(policy, monkeypatch, [])
    import worldpolicy.policy as policy_module

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(lambda cls, *a, **k: policy))
    base = ["dataset", "label", str(ds.root), "--checkpoint", str(policy.source), "--embodiment", "pusht",
            "--no-progress"]
    for i, episodes in enumerate(("2,0", "-1, 0")):
        assert main([*base, "--out", str(tmp_path / f"o{i}"), "--episodes", episodes]) == 0
        assert json.loads(capsys.readouterr().out)["provenance"]["episodes"] == [0, 2]
    assert main([*base, "--out", str(tmp_path / "bad"), "--episodes", "0,a"]) != 0
    assert ("--episodes '0,a': expected episode indices (integers from 0) or ranges A-B (A <= B) separated by "
            "commas, e.g. --episodes 0,3,5-9" in capsys.readouterr().err)
    assert not (tmp_path / "bad").exists()


def test_ctrl_c_on_the_command_line_says_nothing_was_written(policy, tmp_path, capsys, monkeypatch):
    ds = _dataset(tmp_path / "src")
    _stub(policy, monkeypatch, [], stop_at=0)
    import worldpolicy.policy as policy_module

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(lambda cls, *a, **k: policy))
    assert main(["dataset", "label", str(ds.root), "--checkpoint", str(policy.source), "--embodiment", "pusht",
                 "--out", str(tmp_path / "out"), "--seed", "3", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before the first of 2 episodes was labelled; nothing was written to" in err
    assert "--resume" not in err  # nothing was kept: a rerun starts over
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_resample_labels_the_frames_nearest_the_embodiments_rate(policy, tmp_path, monkeypatch):
    ds = _dataset(tmp_path / "src", lengths=(9,), fps=20)
    with pytest.raises(ValueError, match=r"resample: .* at 20 fps and embodiment 'pusht'.* resample=True"):
        label_dataset(ds, tmp_path / "out", policy)
    calls: list = []
    _stub(policy, monkeypatch, calls)
    out = label_dataset(ds, tmp_path / "out", policy, resample=True, seed=np.int64(4))
    assert out.provenance["seed"] == 4 and calls[0].seed == 4
    kept = [0, 2, 4, 6, 8]
    assert out.fps == 10 and list(out.episode_lengths) == [len(kept)]
    np.testing.assert_array_equal(calls[0].video["observation/image"], ds.episode(0).videos[FRONT][kept])
    np.testing.assert_array_equal(out.episode(0).frames["observation.state"],
                                  ds.episode(0).frames["observation.state"][kept])
    assert out.provenance["resample"] is True


def test_a_state_conditioned_embodiment_gets_each_episodes_state_rows_and_its_cameras(tiny, tmp_path, monkeypatch):
    import worldpolicy
    import worldpolicy.data.label as label_module

    rng = np.random.default_rng(0)
    episodes = [{"frames": {"observation.state.joint_positions": rng.normal(size=(10, 7)).astype(np.float32),
                            "observation.state.gripper_position": rng.uniform(size=(10, 1)).astype(np.float32)},
                 "videos": {k: rng.integers(0, 255, (10, 16, 16, 3), dtype=np.uint8) for k in DROID_CAMERAS},
                 "task": "pick the cube"}]
    ds = write_episodes(tmp_path / "src", episodes, fps=15, video_codec="libx264rgb",
                        provenance={"task": "pick_place", "seeds": [41], "source": "worldpolicy dataset from-sim"})
    droid = worldpolicy.load_policy(tiny, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1)
    calls: list = []
    _stub(droid, monkeypatch, calls)
    out = label_dataset(ds, tmp_path / "out", droid)
    state = np.concatenate([episodes[0]["frames"]["observation.state.joint_positions"],
                            episodes[0]["frames"]["observation.state.gripper_position"]], axis=1)
    np.testing.assert_array_equal(calls[0].state, state)
    assert sorted(calls[0].video) == sorted(droid.embodiment.camera_keys)
    assert out.features["action"]["names"] == list(droid.embodiment.columns)
    # a sim recording's scenes stay where `worldpolicy sim` looks for a training set's seeds
    from worldpolicy.fileio import recorded_seeds

    assert recorded_seeds(out.root) == ("pick_place", [41])
    # in segments (1 window each here), each call gets the state rows of its frames: its first is its window's
    calls.clear()
    monkeypatch.setattr(label_module, "SEGMENT_BATCHES", 1)
    label_dataset(ds, tmp_path / "segmented", droid, batch_size=1)
    assert [len(c.state) for c in calls] == [5, 5, 2]
    for call, start in zip(calls, (0, 4, 8)):
        np.testing.assert_array_equal(call.state, state[start:start + len(call.state)])
        np.testing.assert_array_equal(call.video["observation/wrist_image_left"],
                                      episodes[0]["videos"][DROID_CAMERAS[0]][start:start + len(call.state)])
    with pytest.raises(ValueError, match=r"state_keys=\['observation.state.joint_positions'\] hold 7 values"):
        label_dataset(ds, tmp_path / "out2", droid, state_keys=["observation.state.joint_positions"])
    # a name that is no numeric feature is refused as `dataset frame` refuses it (`observations.named_state_keys`)
    with pytest.raises(ValueError, match=r"^state_keys=\['observation.state'\]: observation.state not among the "
                                         r"dataset's numeric features: observation.state.joint_positions, "
                                         r"observation.state.gripper_position$"):
        label_dataset(ds, tmp_path / "out2", droid, state_keys="observation.state")


def test_ctrl_c_publishes_nothing_at_out_and_an_earlier_label_run_is_replaced_only_with_overwrite(policy, tmp_path,
                                                                                                 monkeypatch):
    ds = _dataset(tmp_path / "src")
    calls: list = []
    _stub(policy, monkeypatch, calls, stop_at=1)
    with pytest.raises(LabelInterrupted) as stopped:  # still a KeyboardInterrupt
        label_dataset(ds, tmp_path / "out", policy)
    assert isinstance(stopped.value, KeyboardInterrupt) and (stopped.value.kept, stopped.value.total) == (1, 2)
    assert len(calls) == 1 and not (tmp_path / "out").exists()
    # the episode labelled is kept beside out, a complete dataset; no staging folder is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.partial", "src"]
    assert LeRobotDataset.open(tmp_path / "out.partial").num_episodes == 1
    with pytest.raises(FileExistsError, match=r"kept 1 labelled episodes in .*out.partial'; pass resume=True to "
                                              r"continue it, or overwrite=True to label anew"):
        label_dataset(ds, tmp_path / "out", policy)
    _stub(policy, monkeypatch, calls := [])
    shutil.rmtree(tmp_path / "out.partial")  # started over by hand
    first = label_dataset(ds, tmp_path / "out", policy, episodes=[0])
    assert first.num_episodes == 1
    with pytest.raises(FileExistsError, match="earlier `dataset label` run's dataset; pass overwrite=True"):
        label_dataset(ds, tmp_path / "out", policy)
    _stub(policy, monkeypatch, calls := [], stop_at=1)
    with pytest.raises(KeyboardInterrupt):  # an interrupted rerun leaves the earlier one as it was
        label_dataset(ds, tmp_path / "out", policy, overwrite=True)
    assert LeRobotDataset.open(tmp_path / "out").num_episodes == 1
    _stub(policy, monkeypatch, calls := [])
    assert label_dataset(ds, tmp_path / "out", policy, overwrite=True).num_episodes == 2


@pytest.mark.parametrize("case, match", [
    ("out_is_root", r"out: .* is the dataset being labelled"),
    ("out_inside_root", r"out: .* is inside the dataset being labelled"),
    ("out_other_dataset", r"out: .* holds a dataset not made by `dataset label`;"),
    ("no_videos", r"has no video or image features"),
    ("cameras", r"embodiment 'droid/joint_pos' takes each of the cameras"),
    ("episodes", r"episodes=\[7\]: \[7\] out of range"),
    ("action_key", r"action_key='observation.images.front' is a video of the dataset"),
    ("video_codec", r"video_codec='h265'; accepted: "),
    ("no_state", (r"^state_keys: embodiment 'droid/joint_pos' conditions on the robot state \(8 values: .*\) and "
                  r"the dataset has no 'observation.state' features; name the ones that hold it \(numeric features: "
                  r"x\)$")),
    ("nan_state", (r"^state_keys: 'observation.state' holds NaN or inf in episode 1 \(first at frame 2\), which "
                   r"no policy can take; `worldpolicy dataset check` lists such frames$")),
])
def test_bad_inputs_are_refused_before_the_weights_load(tiny, tmp_path, monkeypatch, case, match):
    from worldpolicy.policy import Policy

    monkeypatch.setattr(Policy, "from_pretrained", classmethod(lambda cls, *a, **k: pytest.fail("weights loaded")))
    ds = _dataset(tmp_path / "src", lengths=(4,))
    kwargs = {"embodiment": "pusht"}
    out = tmp_path / "out"
    if case == "out_is_root":
        out = ds.root
    elif case == "out_inside_root":
        out = ds.root / "labelled"
    elif case == "out_other_dataset":
        _dataset(out, lengths=(2,))
        kwargs["overwrite"] = True
    elif case == "no_videos":
        ds = write_episodes(tmp_path / "plain", [{"frames": {"x": np.zeros(3)}, "task": "t"}], fps=10)
    elif case == "cameras":
        kwargs["embodiment"] = "droid"
    elif case == "episodes":
        kwargs["episodes"] = [7]
    elif case == "action_key":
        kwargs["action_key"] = FRONT
    elif case == "video_codec":
        kwargs["video_codec"] = "h265"
    elif case in ("no_state", "nan_state"):  # a state-conditioned embodiment's state, checked in every chosen episode
        kwargs["embodiment"] = "droid"
        videos = {k: np.zeros((4, 16, 16, 3), np.uint8) for k in DROID_CAMERAS}
        frames = {"x": np.zeros(4)} if case == "no_state" else {"observation.state": np.zeros((4, 8), np.float32)}
        ds = write_episodes(tmp_path / "droid", [{"frames": frames, "videos": videos, "task": "t"}] * 2, fps=15,
                            video_codec="libx264rgb")
        if case == "nan_state":  # the writer refuses NaN: a dataset made elsewhere holds it
            import pyarrow as pa
            import pyarrow.parquet as pq

            data = ds.root / "data/chunk-000/file-000.parquet"
            table = pq.read_table(data)
            state = table.column("observation.state").to_pylist()
            state[4 + 2][3] = float("nan")  # episode 1, frame 2
            column = table.column_names.index("observation.state")
            pq.write_table(table.set_column(column, "observation.state",
                                            pa.array(state, table.schema.field("observation.state").type)), data)
            ds = LeRobotDataset.open(ds.root)
    with pytest.raises((ValueError, FileExistsError), match=match):
        label_dataset(ds, out, tiny, **kwargs)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # nothing staged


def test_a_checkpoint_that_fails_to_load_leaves_nothing_staged(tiny, tmp_path, monkeypatch):
    from worldpolicy.policy import Policy

    def broken(cls, *args, **kwargs):
        raise RuntimeError("weights unreadable")

    monkeypatch.setattr(Policy, "from_pretrained", classmethod(broken))
    ds = _dataset(tmp_path / "src", lengths=(4,))
    with pytest.raises(RuntimeError, match="weights unreadable"):
        label_dataset(ds, tmp_path / "out", tiny, embodiment="pusht")
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_a_label_run_into_an_out_another_command_holds_is_refused_before_the_weights_load(tiny, tmp_path, capsys,
                                                                                            monkeypatch):
    """Two runs into one --out each kept their episodes in OUT.partial and published over the other's: the second is
    refused at once, naming the first; once that ends, its lock file beside --out is gone."""
    import os

    from worldpolicy.fileio import dataset_lock
    from worldpolicy.policy import Policy

    def loaded(cls, *args, **kwargs):
        raise AssertionError("weights loaded")

    monkeypatch.setattr(Policy, "from_pretrained", classmethod(loaded))
    ds = _dataset(tmp_path / "src", lengths=(4,))
    out = tmp_path / "out"
    with dataset_lock(out, "out", "`dataset label`"):
        assert main(["dataset", "label", str(ds.root), "--checkpoint", str(tiny), "--embodiment", "pusht",
                     "--out", str(out)]) == 2
    assert (f"--out: {str(out)!r} is in use by another worldpolicy process (PID {os.getpid()}, `dataset label`, in "
            f"{str(tmp_path / '.out.lock')!r}); two commands writing one dataset") in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_the_command_names_its_flags(tiny, tmp_path, capsys):
    ds = _dataset(tmp_path / "src", lengths=(4,))
    assert main(["dataset", "label", str(ds.root), "--checkpoint", str(tiny), "--embodiment", "pusht",
                 "--out", str(ds.root / "x")]) != 0
    assert "--out: " in capsys.readouterr().err
    assert main(["dataset", "label", str(ds.root), "--checkpoint", str(tiny), "--embodiment", "pusht",
                 "--out", str(tmp_path / "o"), "--episodes", "9"]) != 0
    assert "--episodes=[9]" in capsys.readouterr().err
    assert main(["dataset", "label", str(ds.root), "--checkpoint", str(tmp_path / "nope"), "--embodiment", "pusht",
                 "--out", str(tmp_path / "o")]) != 0  # a checkpoint not there (FileNotFoundError), as eval names it
    assert f"--checkpoint={str(tmp_path / 'nope')!r} is neither" in capsys.readouterr().err


@pytest.mark.parametrize("fps", [10, 20, 5])  # every frame; every other (resampled); each frame twice (resampled)
def test_a_labelled_dataset_is_its_episodes_labelled_whole_though_read_and_written_a_segment_at_a_time(
        policy, tmp_path, monkeypatch, fps):
    """Each segment's frames of every video are decoded, labelled and written as they come, so a long episode is
    never held whole; the result is what labelling each episode's whole arrays gives: the source's columns and frames
    at the kept rows, in the same files, and labels of each transition's own two frames (a stand-in model whose row t
    is frame t's and frame t+1's mean pixel: a segment given wrong frames would show)."""
    import worldpolicy.data.label as label_module
    from worldpolicy.data import LeRobotDatasetWriter
    from worldpolicy.processing.clip import resampled_frames

    def pixel_means(video):
        means = video.reshape(len(video), -1).mean(axis=1)
        return np.stack([means[:-1], means[1:]], axis=1)

    def infer(video, prompt, **kwargs):
        calls.append(len(video["observation/image"]))
        return SimpleNamespace(actions=pixel_means(video["observation/image"]))

    calls: list = []
    monkeypatch.setattr(policy, "infer_actions", infer)
    rng = np.random.default_rng(fps)
    episodes = []
    for i, length in enumerate((23, 9)):
        ep = make_episode(length, seed=i)
        ep["videos"] = {"observation.image": rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8),  # labelled
                        "observation.images.wrist": rng.integers(0, 256, (length, 8, 12, 3), dtype=np.uint8)}  # kept
        ep["task"] = ["reach | go"] * 5 + ["grasp"] * (length - 5)
        episodes.append(ep)
    ds = write_episodes(tmp_path / "src", episodes, fps=fps, video_codec="libx264rgb")
    monkeypatch.setattr(label_module, "SEGMENT_BATCHES", 1)  # batch_size 2, chunk 4: 8 transitions a segment
    got = label_dataset(ds, tmp_path / "out", policy, seed=7, batch_size=2, resample=fps != 10)
    kept = [len(resampled_frames(n, fps, 10)) for n in (23, 9)]
    assert calls == [min(8, k - 1 - s) + 1 for k in kept for s in range(0, k - 1, 8)]  # segments of 8 transitions

    # named as `got` is, at its rate: its card (README.md) names the dataset and holds its info.json
    want = LeRobotDatasetWriter(tmp_path / "want" / got.root.name, got.fps, got.features, got.robot_type,
                                video_codec="libx264rgb", provenance=got.provenance)
    for i, ep in enumerate(episodes):
        rows = resampled_frames(len(ep["task"]), fps, 10)
        videos = {k: v[rows] for k, v in ep["videos"].items()}
        labels = pixel_means(videos["observation.image"])
        frames = {k: v[rows] for k, v in ep["frames"].items()}
        frames["action"] = np.concatenate([labels, labels[-1:]]).astype(np.float32)
        want.add_episode(frames, videos, [ep["task"][r] for r in rows])
    want = want.finalize()
    files = sorted(p.relative_to(want.root) for p in want.root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(got.root) for p in got.root.rglob("*") if p.is_file()) == files
    for rel in files:  # the same columns, per-episode stats and video bytes (lossless: the same frames)
        if rel.suffix == ".parquet":
            assert pq.read_table(got.root / rel).equals(pq.read_table(want.root / rel)), rel
        elif rel.name == "info.json":  # as JSON: a camera's rate of 10.0 Hz is 10's
            assert json.loads((got.root / rel).read_text()) == json.loads((want.root / rel).read_text()), rel
        else:
            assert (got.root / rel).read_bytes() == (want.root / rel).read_bytes(), rel
    assert got.features == want.features and got.fps == want.fps
    for i in range(2):
        np.testing.assert_array_equal(got.episode(i).videos["observation.images.wrist"],
                                      episodes[i]["videos"]["observation.images.wrist"][
                                          resampled_frames(len(episodes[i]["task"]), fps, 10)])


def _interrupting(monkeypatch, after: int) -> None:
    """Ctrl-C while labelling the episode after the first `after` (as the model runs: `_episode_labels`)."""
    import worldpolicy.data.label as label_module

    labels, done = label_module._episode_labels, []

    def labelling(*args, **kwargs):
        if len(done) == after:
            raise KeyboardInterrupt
        done.append(1)
        return labels(*args, **kwargs)

    monkeypatch.setattr(label_module, "_episode_labels", labelling)


def test_a_resumed_run_labels_as_an_uninterrupted_one(policy, tmp_path, monkeypatch):
    """Interrupted twice (after 1 episode, then after 1 more), resumed: the labels, frames, videos and record are an
    uninterrupted run's (each episode's own seed), and the kept episodes leave with the published dataset."""
    ds = _dataset(tmp_path / "src", lengths=(6, 5, 7, 4))
    whole = label_dataset(ds, tmp_path / "whole", policy, seed=2, batch_size=2, episodes=[0, 1, 3])
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    with monkeypatch.context() as m:
        _interrupting(m, after=1)
        with pytest.raises(LabelInterrupted, match=r"1 of 3 episodes labelled are kept in .*out.partial .*rerun "
                                                   r"with resume=True to label the other 2"):
            label_dataset(ds, out, policy, seed=2, batch_size=2, episodes=[0, 1, 3])
    with monkeypatch.context() as m:
        _interrupting(m, after=0)  # before a new episode: what was kept stays as it was
        with pytest.raises(LabelInterrupted, match=r"before the first of the 2 episodes left was labelled; .* is "
                                                   r"unchanged \(1 of 3 episodes\)"):
            label_dataset(ds, out, policy, seed=2, batch_size=2, episodes=[0, 1, 3], resume=True)
    with monkeypatch.context() as m:
        _interrupting(m, after=1)
        with pytest.raises(LabelInterrupted) as stopped:
            label_dataset(ds, out, policy, seed=2, batch_size=2, episodes=[0, 1, 3], resume=True)
    assert (stopped.value.kept, stopped.value.resumed) == (2, 1) and not out.exists()
    assert LeRobotDataset.open(partial).num_episodes == 2
    resumed = label_dataset(ds, out, policy, seed=2, batch_size=2, episodes=[0, 1, 3], resume=True)
    assert resumed.root == out and not partial.exists()
    assert resumed.num_episodes == 3 and list(resumed.episode_lengths) == [6, 5, 4]
    for i in range(3):
        got, want = resumed.episode(i), whole.episode(i)
        assert got.frames["action"].tobytes() == want.frames["action"].tobytes()
        assert len(np.unique(got.frames["action"][:-1], axis=0)) > 2  # the model's labels, not a constant
        np.testing.assert_array_equal(got.videos[FRONT], want.videos[FRONT])
        np.testing.assert_array_equal(got.frames["observation.state"], want.frames["observation.state"])
        assert got.frame_tasks == want.frame_tasks
    assert resumed.provenance == whole.provenance
    assert main(["dataset", "check", str(out)]) == 0


def test_resume_refuses_other_settings_naming_each(policy, tmp_path, monkeypatch):
    ds = _dataset(tmp_path / "src", lengths=(4, 4, 4))
    with pytest.raises(FileNotFoundError, match=r"resume: .*out.partial' holds no labelled episodes to continue"):
        label_dataset(ds, tmp_path / "out", policy, resume=True)
    _stub(policy, monkeypatch, calls := [], stop_at=1)
    with pytest.raises(LabelInterrupted):
        label_dataset(ds, tmp_path / "out", policy, seed=1)
    _stub(policy, monkeypatch, calls := [])
    with pytest.raises(ValueError, match=r"^resume: .*out.partial was labelled with other settings: seed: 1 -> 4; "
                                         r"batch_size: 8 -> 3; video_codec: 'libx264rgb' -> 'libx264'\. Pass the "
                                         r"settings it was labelled with"):
        label_dataset(ds, tmp_path / "out", policy, seed=4, batch_size=3, video_codec="libx264", resume=True)
    with pytest.raises(ValueError, match=r"other settings: episodes: None -> \[0, 2\]"):
        label_dataset(ds, tmp_path / "out", policy, seed=1, episodes=[0, 2], resume=True)
    again = [{**make_episode(4, seed=9 + i), "task": "push it back"} for i in range(3)]
    write_episodes(ds.root, again, fps=10, robot_type="testbot", video_codec="libx264rgb",
                   overwrite=True)  # the source recorded again in place: other frames, the same settings
    with pytest.raises(ValueError, match=r"other settings: dataset_files: '[0-9a-f]+' -> '[0-9a-f]+'"):
        label_dataset(tmp_path / "src", tmp_path / "out", policy, seed=1, resume=True)
    assert calls == [] and LeRobotDataset.open(tmp_path / "out.partial").num_episodes == 1
    # overwrite labels anew, replacing what was kept
    assert label_dataset(tmp_path / "src", tmp_path / "out", policy, overwrite=True).num_episodes == 3
    assert not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGUSR1"])
def test_ctrl_c_on_the_command_line_prints_the_command_that_resumes(policy, tmp_path, capsys, monkeypatch,
                                                                      signal_name):
    """Ctrl-C, or a scheduler's SIGTERM or SIGUSR1 (exits 130, 143 and 138: 128 + the signal; a SIGTERM exited 130,
    as Ctrl-C, so a job script could not tell a preemption from a person)."""
    import signal

    from worldpolicy.fileio import Terminated

    signum = signal.Signals[signal_name]
    stop = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    ds = _dataset(tmp_path / "src", lengths=(4, 5, 4))
    import worldpolicy.policy as policy_module

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(lambda cls, *a, **k: policy))
    _stub(policy, monkeypatch, calls := [], stop_at=2, stop=stop)
    args = ["dataset", "label", str(ds.root), "--checkpoint", str(policy.source), "--embodiment", "pusht",
            "--out", str(tmp_path / "out"), "--episodes", "0-2", "--seed", "3", "--no-progress"]
    assert main(args) == 128 + signum
    err = capsys.readouterr().err
    assert "2 of 3 episodes labelled are kept in" in err and "rerun with --resume to label the other 1" in err
    # the stop as every command's line says it (`fileio.how_stopped`): a SIGTERM was "interrupted", as Ctrl-C
    how = "interrupted" if signum == signal.SIGINT else f"terminated ({signal_name})"
    assert f"worldpolicy dataset label: {how}: 2 of 3 episodes labelled" in err
    again = shlex.split(err.split("to go on: ")[1])  # the arguments as given (in the parser's order) and --resume
    assert again[:3] == ["worldpolicy", "dataset", "label"] and again[-1] == "--resume"
    assert sorted(again[1:-1]) == sorted(args)
    _stub(policy, monkeypatch, calls := [])
    assert main(again[1:]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert [c.seed for c in calls] == [5]  # the episode left, with its own seed
    made = LeRobotDataset.open(tmp_path / "out").provenance  # the line that made it, as typed, and the software
    assert made["command"] == shlex.join(again[:-1]) and made["software"] == software_versions()
    assert made["cwd"] == os.getcwd()  # what a relative ROOT or --out is relative to


def test_a_run_kept_by_other_software_resumes_with_a_warning(policy, tmp_path, monkeypatch, caplog):
    """The software is recorded, not compared: a run interrupted before a package upgrade continues, the change
    named; the record says the resuming session's (from Python: no command)."""
    ds = _dataset(tmp_path / "src", lengths=(4, 4))
    _stub(policy, monkeypatch, calls := [], stop_at=1)
    with pytest.raises(LabelInterrupted):
        label_dataset(ds, tmp_path / "out", policy, seed=1)
    kept = tmp_path / "out.partial" / PROVENANCE_FILE
    record = json.loads(kept.read_text())
    assert record["software"] == software_versions() and record["command"] is None and record["cwd"] is None
    kept.write_text(json.dumps({**record, "software": {**record["software"], "numpy": "1.0.0"},
                                "command": "worldpolicy dataset label elsewhere"}))
    _stub(policy, monkeypatch, calls := [])
    caplog.set_level("WARNING", logger="worldpolicy")
    done = label_dataset(ds, tmp_path / "out", policy, seed=1, resume=True)
    assert f"was labelled with other software: numpy 1.0.0 -> {software_versions()['numpy']};" in caplog.text
    assert done.provenance["software"] == software_versions() and done.provenance["command"] is None
    assert [c.seed for c in calls] == [2]  # the episode left labelled, the kept one copied


def test_resume_after_the_run_finished_labels_nothing_and_refuses_other_settings(policy, tmp_path, monkeypatch,
                                                                                 caplog):
    """A requeued job passes --resume every time: once the run finished, its dataset at --out is the result (nothing
    labelled, no kept run needed), as `sim --resume` and `dataset from-sim --resume` answer a finished run; another
    setting is still refused, named."""
    ds = _dataset(tmp_path / "src", lengths=(4, 5))
    out = tmp_path / "out"
    _stub(policy, monkeypatch, calls := [])
    whole = label_dataset(ds, out, policy, seed=3)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls.clear()
    caplog.set_level("INFO", logger="worldpolicy")
    again = label_dataset(ds, out, policy, seed=3, resume=True)
    assert calls == [] and again.root == out and again.provenance == whole.provenance
    assert f"resume: {out} already holds the 2 episodes this run labels; nothing to label" in caplog.text
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    with pytest.raises(ValueError, match=r"^resume: .*out was labelled with other settings: seed: 3 -> 4; "
                                         r"episodes: None -> \[1\]\. "):
        label_dataset(ds, out, policy, seed=4, episodes=[1], resume=True)
    assert calls == [] and not (tmp_path / "out.partial").exists()


def test_resume_of_a_finished_run_on_the_command_line_loads_no_weights(tiny, tmp_path, capsys, monkeypatch):
    """The checkpoint's settings (sampling, chunk, device, dtype) are compared as `Policy.check_pretrained` resolves
    them: the finished run's record matches without a load, and --steps that differs is refused."""
    import worldpolicy.policy as policy_module

    ds = _dataset(tmp_path / "src", lengths=(4,))
    monkeypatch.setattr(policy_module.Policy, "infer_actions", lambda self, video, prompt, **kwargs: SimpleNamespace(
        actions=np.zeros((len(next(iter(video.values()))) - 1, self.embodiment.action_dim))))
    args = ["dataset", "label", str(ds.root), "--checkpoint", str(tiny), "--embodiment", "pusht",
            "--out", str(tmp_path / "out"), "--steps", "2", "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()

    def no_load(cls, *args, **kwargs):
        raise AssertionError("a finished run's resume loaded the weights")

    monkeypatch.setattr(policy_module.Policy, "from_pretrained", classmethod(no_load))
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["episodes"] == 1 and "nothing to label" in captured.err
    assert main([*args[:-3], "--steps", "3", "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "error: --resume: " in err and "'steps': 2" in err and "'steps': 3" in err


def test_a_checkpoint_trained_with_augmentation_labels_centre_cropped_unless_told_and_its_resume_compares_it(
        tiny, tmp_path, capsys, monkeypatch):
    """A checkpoint whose training record says `[augment]` labels through the centre crop it trained with
    (`Policy.center_crop`), recorded in the provenance; `--no-center-crop` is another setting a resume refuses."""
    import worldpolicy.policy as policy_module

    augmented = shutil.copytree(tiny, tmp_path / "augmented")
    (augmented / "trainer_state.json").write_text(json.dumps({"step": 1, "config": {"augment": {"enabled": True,
                                                                                                "crop_area": 0.9}}}))
    ds = _dataset(tmp_path / "src", lengths=(4,))
    crops = []
    monkeypatch.setattr(policy_module.Policy, "infer_actions", lambda self, video, prompt, **kwargs: crops.append(
        self.center_crop) or SimpleNamespace(actions=np.zeros((len(next(iter(video.values()))) - 1,
                                                                self.embodiment.action_dim))))

    def argv(out, *flags):
        return ["dataset", "label", str(ds.root), "--checkpoint", str(augmented), "--embodiment", "pusht",
                "--out", str(tmp_path / out), "--steps", "1", "--no-progress", *flags]

    assert main(argv("out")) == 0 and set(crops) == {0.9}
    assert LeRobotDataset.open(tmp_path / "out").provenance["center_crop"] == 0.9
    capsys.readouterr()
    assert main(argv("out", "--no-center-crop", "--resume")) == 2
    assert "center_crop: 0.9 -> None" in capsys.readouterr().err
    crops.clear()
    assert main(argv("whole", "--no-center-crop")) == 0
    assert set(crops) == {None} and LeRobotDataset.open(tmp_path / "whole").provenance["center_crop"] is None


def test_a_symlinked_out_is_labelled_where_it_points_and_stays_a_link(policy, tmp_path, monkeypatch):
    """`--out` a link to a folder on a bigger disk (as the dataset writer takes it): the episodes kept at an
    interruption and the dataset published lie there, beside and at the link's target; the link stays a link."""
    ds = _dataset(tmp_path / "src")
    (tmp_path / "disk" / "out").mkdir(parents=True)
    link = tmp_path / "out"
    link.symlink_to(tmp_path / "disk" / "out")
    _stub(policy, monkeypatch, [], stop_at=1)
    with pytest.raises(LabelInterrupted):
        label_dataset(ds, link, policy)
    assert LeRobotDataset.open(tmp_path / "disk" / "out.partial").num_episodes == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "out", "src"]
    _stub(policy, monkeypatch, [])
    labelled = label_dataset(ds, link, policy, resume=True)
    assert link.is_symlink() and labelled.root == tmp_path / "disk" / "out" and labelled.num_episodes == 2
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["out"]


def test_an_error_keeps_the_episodes_labelled_before_it(policy, tmp_path, monkeypatch, caplog):
    """A failure mid-run (the GPU out of memory, a lost node) keeps what was labelled, as Ctrl-C does, and raises."""
    ds = _dataset(tmp_path / "src", lengths=(4, 4, 4))
    calls: list = []
    _stub(policy, monkeypatch, calls)
    infer = policy.infer_actions

    def failing(video, prompt, **kwargs):
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory")
        return infer(video, prompt, **kwargs)

    monkeypatch.setattr(policy, "infer_actions", failing)
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        label_dataset(ds, tmp_path / "out", policy)
    assert "2 of 3 episodes labelled before the error are kept in" in caplog.text
    assert LeRobotDataset.open(tmp_path / "out.partial").num_episodes == 2 and not (tmp_path / "out").exists()
    _stub(policy, monkeypatch, calls := [])
    assert label_dataset(ds, tmp_path / "out", policy, resume=True).num_episodes == 3
    assert [c.seed for c in calls] == [2]


def test_an_error_while_an_episodes_videos_are_written_says_the_labelled_ones_are_lost(policy, tmp_path, monkeypatch,
                                                                                       caplog):
    """The disk full as episode 1 is added: the writer's files hold half of it, so nothing can be kept, and the log
    says so (not silence, as if nothing had been labelled)."""
    from worldpolicy.data.lerobot import LeRobotDatasetWriter

    ds = _dataset(tmp_path / "src", lengths=(4, 4, 4))
    _stub(policy, monkeypatch, [])
    add = LeRobotDatasetWriter.add_episode

    def full(self, *args, **kwargs):
        if self.num_episodes == 1:
            raise OSError(28, "No space left on device")
        return add(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDatasetWriter, "add_episode", full)
    with pytest.raises(OSError, match="No space left"):
        label_dataset(ds, tmp_path / "out", policy)
    assert ("the 1 episodes labelled before the error could not be kept: it came while an episode's videos"
            in caplog.text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_what_appears_at_out_while_labelling_is_not_replaced_and_the_labels_are_kept(policy, tmp_path, monkeypatch):
    """A file put into `out` during a run (hours long) is refused at the end, not deleted with the folder it is in;
    the episodes stay in OUT.partial, which resume publishes once `out` is free, labelling nothing again."""
    ds = _dataset(tmp_path / "src")
    out = tmp_path / "out"
    calls: list = []
    _stub(policy, monkeypatch, calls)
    infer = policy.infer_actions

    def appearing(video, prompt, **kwargs):
        make = not calls
        result = infer(video, prompt, **kwargs)
        if make:
            out.mkdir()
            (out / "notes.txt").write_text("mine")
        return result

    monkeypatch.setattr(policy, "infer_actions", appearing)
    with pytest.raises(FileExistsError, match=r"exists and is not a dataset; .*it appeared while labelling: every "
                                              r"episode labelled is kept in .*out.partial"):
        label_dataset(ds, out, policy)
    assert (out / "notes.txt").read_text() == "mine" and len(calls) == 2
    assert LeRobotDataset.open(tmp_path / "out.partial").num_episodes == 2
    (out / "notes.txt").unlink()
    assert label_dataset(ds, out, policy, resume=True).num_episodes == 2 and len(calls) == 2
    assert not (tmp_path / "out.partial").exists()


def test_a_keep_failing_after_its_publish_says_the_episodes_it_published_are_kept(policy, tmp_path, monkeypatch,
                                                                                   caplog):
    """A keep that published two episodes and then failed going on (the disk full as it made its next staging) said
    "the 1 episodes labelled before the error could not be kept" and "1 of 3 ... are kept": the earlier keep's count,
    with two at `OUT.partial`."""
    import errno
    import logging

    from worldpolicy.data import lerobot
    from worldpolicy.data.lerobot import KeepSchedule

    made = []

    class Full(lerobot.ScratchFolder):
        def make(self):
            made.append(self.path)
            if len(made) > 2:  # the writer's staging, the first keep's: the second keep fails after its publish
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().make()

    ds = _dataset(tmp_path / "src", lengths=(6, 5, 7))
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    monkeypatch.setattr(KeepSchedule, "due", lambda self: True)
    monkeypatch.setattr(lerobot, "ScratchFolder", Full)
    with caplog.at_level(logging.WARNING), pytest.raises(OSError, match="No space left"):
        label_dataset(ds, out, policy, seed=2, batch_size=2)
    assert LeRobotDataset.open(partial).num_episodes == 2
    assert "2 of 3 episodes labelled before the error are kept in" in caplog.text
    assert "could not be kept" not in caplog.text


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it is kept (`_keep_labelled` does nothing, as in a dead process)."""


def test_a_run_killed_after_a_keep_resumes_from_it_to_an_uninterrupted_runs_labels(policy, tmp_path, monkeypatch):
    """Kept after every episode (`KeepSchedule.due`), killed while labelling the third: `OUT.partial` holds the
    two kept, and `--resume` ends with what one uninterrupted run writes."""
    import worldpolicy.data.label as label_module
    from worldpolicy.data.lerobot import KeepSchedule

    ds = _dataset(tmp_path / "src", lengths=(6, 5, 7, 4))
    whole = label_dataset(ds, tmp_path / "whole", policy, seed=2, batch_size=2)
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    with monkeypatch.context() as m:
        m.setattr(KeepSchedule, "due", lambda self: True)
        labels, done = label_module._episode_labels, []

        def labelling(*args, **kwargs):
            if len(done) == 2:
                raise _Killed
            done.append(1)
            return labels(*args, **kwargs)

        m.setattr(label_module, "_episode_labels", labelling)
        m.setattr(label_module, "_keep_labelled", lambda writer, resumed, adding: writer._hold.release())
        with pytest.raises(_Killed):
            label_dataset(ds, out, policy, seed=2, batch_size=2)
    assert not out.exists() and LeRobotDataset.open(partial).num_episodes == 2
    resumed = label_dataset(ds, out, policy, seed=2, batch_size=2, resume=True)
    assert resumed.root == out and not partial.exists() and resumed.num_episodes == 4
    for i in range(4):
        got, want = resumed.episode(i), whole.episode(i)
        assert got.frames["action"].tobytes() == want.frames["action"].tobytes()
        np.testing.assert_array_equal(got.videos[FRONT], want.videos[FRONT])
        assert got.frame_tasks == want.frame_tasks
    assert resumed.provenance == whole.provenance
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # the killed run's staging swept


def test_ctrl_c_after_a_keep_keeps_what_it_kept(policy, tmp_path, monkeypatch):
    from worldpolicy.data.lerobot import KeepSchedule

    ds = _dataset(tmp_path / "src", lengths=(6, 5, 7))
    out, partial = tmp_path / "out", tmp_path / "out.partial"
    monkeypatch.setattr(KeepSchedule, "due", lambda self: True)
    _interrupting(monkeypatch, after=2)
    with pytest.raises(LabelInterrupted, match=r"2 of 3 episodes labelled are kept in .*out.partial"):
        label_dataset(ds, out, policy, seed=2, batch_size=2)
    assert LeRobotDataset.open(partial).num_episodes == 2


def test_the_documented_command_makes_a_folder_of_raw_clips_a_dataset_label_takes(policy, tmp_path, monkeypatch,
                                                                                  capsys):
    """docs/data.md's raw-videos command (`dataset from-videos`, which replaced the Python recipe this test ran: it
    failed looking for that recipe), run as written on clips at other rates and sizes, a damaged file and one too
    short at the embodiment's rate: the usable clips become episodes at its rate and the first clip's size, which
    `dataset label` labels; the others are skipped, said, and the rest kept."""
    import re
    import shlex

    from worldpolicy.cli import main
    from worldpolicy.processing.video import write_video

    docs = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", docs, re.DOTALL) if "dataset from-videos" in b)
    argv = shlex.split(block.splitlines()[0])
    assert argv[:3] == ["worldpolicy", "dataset", "from-videos"] and "--embodiment" in argv, argv
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    write_video(videos / "a_wide.mp4", rng.integers(0, 255, (12, 36, 64, 3), dtype=np.uint8), fps=20)  # -> 6 frames
    write_video(videos / "b_portrait.mp4", rng.integers(0, 255, (5, 64, 36, 3), dtype=np.uint8), fps=10)
    write_video(videos / "c_short.mp4", rng.integers(0, 255, (2, 36, 64, 3), dtype=np.uint8), fps=30)  # -> 1 frame
    (videos / "d_damaged.mp4").write_bytes((videos / "a_wide.mp4").read_bytes()[:300])
    monkeypatch.chdir(tmp_path)
    assert main([*argv[1:], "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "skipped videos/d_damaged.mp4: it could not be decoded" in said
    assert "skipped videos/c_short.mp4: it gives 1 frame at 10 fps" in said
    ds = LeRobotDataset.open(tmp_path / "data" / "unlabelled")
    assert ds.fps == 10 and list(ds.episode_lengths) == [6, 5] and ds.video_keys == ["observation.image"]
    assert ds.episode(0).videos["observation.image"].shape == (6, 36, 64, 3)
    _stub(policy, monkeypatch, calls := [])
    out = label_dataset(ds, tmp_path / "data" / "labelled", policy)
    assert out.num_episodes == 2 and len(calls) == 2 and out.features["action"]["names"] == ["x", "y"]
