"""Interop with the real `lerobot` package: our datasets open in its `LeRobotDataset`, and its datasets open in ours.

lerobot 0.4.4 is the last release for Python 3.11 that writes LeRobotDataset v3.0. `.ci/extra-test-installs.sh`
installs it with `--no-deps` (its pins clash with this stack), with torchcodec to decode videos.
Where torchvision is absent, lerobot imports beside a stand-in for it (`tests/lerobot_import.py`); videos are then
decoded by torchcodec inside lerobot.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
from lerobot_import import import_lerobot

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset, LeRobotDatasetWriter

lerobot_dataset, = import_lerobot("lerobot.datasets.lerobot_dataset")

FPS = 10
H, W = 48, 64
CAM = "observation.images.front"
NAMES = {"action": ["dx", "dy"], "observation.state": ["x", "y", "z"]}
PROVENANCE = {"source": "worldpolicy dataset from-sim", "task_version": 3, "seeds": [0, 1]}  # LeRobot must ignore it


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch, tmp_path):
    """Both directions are local: any call to the Hub fails the test; `datasets` caches under tmp_path."""
    import datasets
    from lerobot.datasets import utils

    def hub(*args, **kwargs):
        raise AssertionError("lerobot tried to reach the Hugging Face Hub")

    monkeypatch.setattr(lerobot_dataset, "snapshot_download", hub)
    monkeypatch.setattr(lerobot_dataset, "HfApi", hub)
    monkeypatch.setattr(utils, "HfApi", hub)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def _frames(length: int, offset: int) -> np.ndarray:
    """Flat frames whose value encodes the frame, so codec error stays small and frames cannot be confused."""
    values = (10 * (np.arange(length) + offset)) % 256
    return np.broadcast_to(values[:, None, None, None], (length, H, W, 3)).astype(np.uint8).copy()


def _episodes() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for length, offset, task in ((12, 0, "pick the cube"), (9, 12, ["push the cube"] * 4 + ["place the cube"] * 5)):
        out.append({
            "frames": {"action": rng.normal(size=(length, 2)).astype(np.float32),
                       "observation.state": rng.normal(size=(length, 3)).astype(np.float32)},
            "videos": {CAM: _frames(length, offset)},
            "task": task,
        })
    return out


def _frame_tasks(ep: dict) -> list[str]:
    n = len(ep["frames"]["action"])
    return [ep["task"]] * n if isinstance(ep["task"], str) else list(ep["task"])


def _write_ours(root: Path, success: list[bool] | None = None, fields: list[dict] | None = None) -> list[dict]:
    episodes = _episodes()
    for ep, flag in zip(episodes, success or []):  # meta/episodes' success column (`dataset from-sim --policy`)
        ep["success"] = flag
    for ep, own in zip(episodes, fields or []):  # other meta/episodes columns (a recorder's own)
        ep["fields"] = own
    for ep in episodes:  # scalar columns too (lerobot 0.4.4 itself cannot write them under numpy >= 2.4)
        length = len(ep["frames"]["action"])
        ep["frames"].update({"next.done": np.arange(length) == length - 1, "next.reward": np.arange(length) % 3})
    features = {key: {"dtype": "float32", "shape": [len(names)], "names": names} for key, names in NAMES.items()}
    features[CAM] = {"dtype": "video", "shape": [H, W, 3]}  # no axis names, as docs/data.md shows
    features.update({"next.done": {"dtype": "bool", "shape": [1]}, "next.reward": {"dtype": "int64", "shape": [1]}})
    with LeRobotDatasetWriter(root, fps=FPS, robot_type="panda", features=features, provenance=PROVENANCE) as writer:
        for ep in episodes:
            writer.add_episode(**ep)
    return episodes


def _torchcodec_problem() -> str | None:
    """Why lerobot cannot decode videos here (torchcodec loads the system FFmpeg: apt-packages.txt), or None."""
    try:
        importlib.import_module("torchcodec.decoders")
    except Exception as exc:  # noqa: BLE001 - any load failure is the reason given
        return f"{type(exc).__name__}: {exc}"
    return None


def test_lerobot_opens_a_dataset_we_wrote(tmp_path: Path):
    from lerobot.datasets.utils import dataset_to_policy_features

    episodes = _write_ours(tmp_path / "ours")
    theirs = lerobot_dataset.LeRobotDataset("local/ours", root=tmp_path / "ours")
    assert (theirs.num_episodes, theirs.num_frames, theirs.fps) == (2, 21, FPS)
    assert theirs.meta.robot_type == "panda" and theirs.meta.video_keys == [CAM]
    # provenance is a file of its own beside info.json, which lerobot leaves alone: none of it in what lerobot reads
    assert "worldpolicy_provenance" not in theirs.meta.info
    assert json.loads((tmp_path / "ours/meta/worldpolicy_provenance.json").read_text()) == PROVENANCE
    for key, names in NAMES.items():
        assert theirs.features[key]["names"] == names and tuple(theirs.features[key]["shape"]) == (len(names),)
    # what a lerobot policy is built from: it reads the video layout from the feature's names
    policy_features = dataset_to_policy_features(theirs.meta.features)
    assert policy_features[CAM].shape == (3, H, W) and policy_features["action"].shape == (2,)
    assert list(theirs.meta.tasks.index) == ["pick the cube", "push the cube", "place the cube"]
    table = theirs.meta.episodes
    assert list(table["dataset_from_index"]) == [0, 12] and list(table["dataset_to_index"]) == [12, 21]
    assert list(table["length"]) == [12, 9]
    assert sorted(table["tasks"][1]) == ["place the cube", "push the cube"]
    np.testing.assert_allclose(theirs.meta.stats["action"]["mean"],
                               np.concatenate([ep["frames"]["action"] for ep in episodes]).mean(0), rtol=1e-5)

    index = 0
    for e, ep in enumerate(episodes):
        for t, task in enumerate(_frame_tasks(ep)):
            row = theirs.hf_dataset[index]  # the frame's columns as lerobot reads them (videos apart)
            assert (row["episode_index"].item(), row["frame_index"].item(), row["index"].item()) == (e, t, index)
            assert theirs.meta.tasks.iloc[row["task_index"].item()].name == task
            assert row["timestamp"].item() == pytest.approx(t / FPS)
            for key in NAMES:
                np.testing.assert_array_equal(row[key].numpy(), ep["frames"][key][t])
            assert row["next.done"].item() == ep["frames"]["next.done"][t]
            assert row["next.reward"].item() == ep["frames"]["next.reward"][t]
            index += 1


def test_lerobot_opens_a_dataset_with_our_success_column_and_keeps_it(tmp_path: Path):
    """A policy's recording flags each episode's success in meta/episodes: LeRobot opens the dataset and keeps the
    column for a user to filter on; so it does a recorder's own columns (`add_episode`'s `fields`, null-filled)."""
    _write_ours(tmp_path / "ours", success=[True, False], fields=[{"operator": "ann"}, {"score": 0.5}])
    theirs = lerobot_dataset.LeRobotDataset("local/ours", root=tmp_path / "ours")
    assert theirs.num_episodes == 2 and list(theirs.meta.episodes["success"]) == [True, False]
    assert list(theirs.meta.episodes["operator"]) == ["ann", None]
    assert list(theirs.meta.episodes["score"]) == [None, 0.5]
    assert LeRobotDataset.open(tmp_path / "ours").episode_success.tolist() == [True, False]


def test_lerobot_decodes_the_frames_we_wrote(tmp_path: Path):
    if (problem := _torchcodec_problem()) is not None:
        pytest.skip(f"lerobot decodes videos with torchcodec, which cannot load here ({problem[:200]})")
    episodes = _write_ours(tmp_path / "ours")
    theirs = lerobot_dataset.LeRobotDataset("local/ours", root=tmp_path / "ours")
    index = 0
    for ep in episodes:
        for t, task in enumerate(_frame_tasks(ep)):
            item = theirs[index]
            assert item["task"] == task and item["frame_index"].item() == t
            frame = item[CAM]  # float CHW in [0, 1], decoded by lerobot (torchcodec)
            assert frame.shape == (3, H, W)
            got = np.round(frame.permute(1, 2, 0).numpy() * 255)
            np.testing.assert_allclose(got, ep["videos"][CAM][t], atol=3)  # libx264 yuv420p, CRF 18
            index += 1


def _lerobot_record(root: Path, episodes: list[dict], extra: dict | None = None, file_mb: float | None = None):
    """Record `episodes` with lerobot's own writer (AV1 videos, its default), as a robot's recording is made.
    `extra` maps more feature names to (spec, value at frame t); `file_mb` starts new data and video files sooner."""
    extra = extra or {}
    features = {key: {"dtype": "float32", "shape": (len(names),), "names": names} for key, names in NAMES.items()}
    features[CAM] = {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]}
    features.update({key: spec for key, (spec, _) in extra.items()})
    made = lerobot_dataset.LeRobotDataset.create(f"local/{root.name}", fps=FPS, features=features, root=root,
                                                 robot_type="so100", use_videos=True)
    if file_mb is not None:
        made.meta.update_chunk_settings(data_files_size_in_mb=file_mb, video_files_size_in_mb=file_mb)
    for ep in episodes:
        for t, task in enumerate(_frame_tasks(ep)):
            made.add_frame({CAM: ep["videos"][CAM][t], **{k: ep["frames"][k][t] for k in NAMES}, "task": task,
                            **{key: value(t) for key, (_, value) in extra.items()}})
        made.save_episode()
    made.finalize()
    return made


def _assert_episodes(ds: LeRobotDataset, episodes: list[dict]) -> None:
    """Every episode's tasks, values and frames (within AV1's error) as recorded."""
    assert ds.num_episodes == len(episodes)
    for e, ep in enumerate(episodes):
        got = ds.episode(e)
        assert list(got.frame_tasks) == _frame_tasks(ep)
        for key in NAMES:
            np.testing.assert_array_equal(got.frames[key], ep["frames"][key])
        np.testing.assert_allclose(got.timestamp, np.arange(len(ep["frames"]["action"])) / FPS, atol=1e-6)
        np.testing.assert_allclose(got.videos[CAM].astype(int), ep["videos"][CAM], atol=3)  # AV1, CRF 30


def test_we_open_a_dataset_lerobot_wrote(tmp_path: Path, capsys):
    episodes = _episodes()
    _lerobot_record(tmp_path / "made", episodes)

    ds = LeRobotDataset.open(tmp_path / "made")
    assert (ds.num_episodes, ds.num_frames, ds.fps, ds.robot_type) == (2, 21, FPS, "so100")
    assert list(ds.episode_lengths) == [12, 9] and ds.video_keys == [CAM]
    for key, names in NAMES.items():
        assert ds.feature_names(key) == names
    _assert_episodes(ds, episodes)
    assert [ds.episode(e, videos=False).dataset_from_index for e in range(2)] == [0, 12]
    np.testing.assert_allclose(ds.stats["observation.state"]["mean"],
                               np.concatenate([ep["frames"]["observation.state"] for ep in episodes]).mean(0),
                               rtol=1e-5)

    assert main(["dataset", "check", str(tmp_path / "made")]) == 0
    assert "ok: 2 episodes, 21 frames, 1 video features, with stats" in capsys.readouterr().out


def test_we_open_a_lerobot_dataset_split_over_files_with_features_not_read_here(tmp_path: Path, capsys):
    """As a recording of one's own robot comes: lerobot starts new data and video files as they fill (here after
    every episode), and keeps a string column and a [2, 3] one. The string is read; the [2, 3] feature refused the
    whole dataset, and is now set aside by name while the rest is read."""
    episodes = _episodes() + _episodes()[:1]
    _lerobot_record(tmp_path / "split", episodes, file_mb=1e-4, extra={
        "note": ({"dtype": "string", "shape": (1,), "names": None}, lambda t: f"frame {t}"),
        "grid": ({"dtype": "float32", "shape": (2, 3), "names": None}, lambda t: np.full((2, 3), t, np.float32)),
    })
    assert len(list((tmp_path / "split/data").rglob("*.parquet"))) == 3
    assert len(list((tmp_path / "split/videos").rglob("*.mp4"))) == 3

    ds = LeRobotDataset.open(tmp_path / "split")
    assert list(ds.unread_features) == ["grid"] and ds.feature_keys == [*NAMES, "note"]
    _assert_episodes(ds, episodes)
    for e in range(len(episodes)):
        got = ds.episode(e, videos=False)
        assert list(got.frames["note"][:, 0]) == [f"frame {t}" for t in range(got.length)]
    assert main(["dataset", "check", "--no-progress", str(tmp_path / "split")]) == 0
    assert "ok: 3 episodes, 33 frames, 1 video features, with stats\n  not read: 'grid'" in capsys.readouterr().out


def test_we_open_datasets_lerobot_merged_and_cut(tmp_path: Path, capsys):
    """lerobot's own dataset tools, as one combines recordings: `merge_datasets` packs the episodes of several
    datasets into one video file at growing from_timestamps; `delete_episodes` re-cuts a file around the kept ones."""
    from lerobot.datasets import dataset_tools

    first, second = _episodes(), _episodes()[::-1]
    sources = [_lerobot_record(tmp_path / "a", first), _lerobot_record(tmp_path / "b", second, file_mb=1e-4)]
    dataset_tools.merge_datasets(sources, output_repo_id="local/merged", output_dir=tmp_path / "merged")
    merged = LeRobotDataset.open(tmp_path / "merged")
    assert sorted(set(merged._episodes[f"videos/{CAM}/from_timestamp"].round(6))) == [0.0, 1.2, 2.1, 3.0]
    _assert_episodes(merged, first + second)
    dataset_tools.delete_episodes(sources[0], [0], output_dir=tmp_path / "cut", repo_id="local/cut")
    _assert_episodes(LeRobotDataset.open(tmp_path / "cut"), first[1:])
    for root in ("merged", "cut"):
        assert main(["dataset", "check", "--no-progress", str(tmp_path / root)]) == 0


def test_lerobot_opens_a_dataset_converted_from_v21(tmp_path: Path):
    """`dataset convert`'s v3.0 output is one lerobot reads: rows, tasks (one changing mid-episode), timestamps and,
    where torchcodec loads, the frames it decodes at each episode's from_timestamp in the one shared file."""
    from dataset_factory import write_v2_dataset

    from worldpolicy.data.convert import convert_dataset

    episodes = [{"frames": ep["frames"], "videos": ep["videos"], "tasks": _frame_tasks(ep)} for ep in _episodes()]
    write_v2_dataset(tmp_path / "v21", episodes, fps=FPS, codec="libx264rgb")
    convert_dataset(tmp_path / "v21", tmp_path / "v30")
    theirs = lerobot_dataset.LeRobotDataset("local/v30", root=tmp_path / "v30")
    assert (theirs.num_episodes, theirs.num_frames, theirs.fps) == (2, 21, FPS)
    assert list(theirs.meta.tasks.index) == ["pick the cube", "push the cube", "place the cube"]
    decode = _torchcodec_problem() is None
    index = 0
    for ep in episodes:
        for t, task in enumerate(ep["tasks"]):
            row = theirs.hf_dataset[index]
            assert theirs.meta.tasks.iloc[row["task_index"].item()].name == task
            assert row["timestamp"].item() == pytest.approx(t / FPS)
            np.testing.assert_array_equal(row["action"].numpy(), ep["frames"]["action"][t])
            if decode:  # libx264rgb: lossless, so lerobot's frame is the recorded one
                got = np.round(theirs[index][CAM].permute(1, 2, 0).numpy() * 255)
                np.testing.assert_array_equal(got, ep["videos"][CAM][t])
            index += 1
