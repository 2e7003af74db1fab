"""Datasets recorded elsewhere, as a researcher brings them: features LeRobot writes that are not read here, video
files this PyAV cannot decode, and older LeRobot versions. Each says what it is and what to do, by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldpolicy.cli import main
from worldpolicy.data import DatasetFormatError, LeRobotDataset

CAM = "observation.images.front"
DATA = "data/chunk-000/file-000.parquet"
VIDEO = f"videos/{CAM}/chunk-000/file-000.mp4"


def _edit_info(root: Path, edit) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    edit(info)
    (root / "meta/info.json").write_text(json.dumps(info))


def _add_unread_features(root: Path) -> None:
    """What LeRobot writes for a [2, 3] float feature (nested lists in the data file) and a depth camera ([H, W, 1],
    its own video files), which this package does not read."""
    table = pq.read_table(root / DATA)
    grid = pa.array([[[float(i)] * 3] * 2 for i in range(table.num_rows)], pa.list_(pa.list_(pa.float32(), 3), 2))
    pq.write_table(table.append_column("grid", grid), root / DATA)
    depth = root / "videos/observation.images.depth/chunk-000/file-000.mp4"
    depth.parent.mkdir(parents=True)
    depth.write_bytes((root / VIDEO).read_bytes())  # files of a camera that is not read: `check` leaves them be
    _edit_info(root, lambda i: i["features"].update(
        grid={"dtype": "float32", "shape": [2, 3], "names": None},
        **{"observation.images.depth": {"dtype": "video", "shape": [16, 16, 1],
                                        "names": ["height", "width", "channels"]}},
    ))


def test_a_feature_lerobot_writes_but_not_read_here_is_set_aside_not_the_whole_dataset(small_dataset, capsys):
    """A 2-D column or a depth camera refused the whole dataset at `open`: its actions and RGB cameras could not be
    trained on either. The dataset opens without them, and each place that could name one says why it is not read."""
    ds, episodes = small_dataset
    _add_unread_features(ds.root)

    got = LeRobotDataset.open(ds.root)
    assert set(got.unread_features) == {"grid", "observation.images.depth"}
    assert "only 1-D per-frame features are supported, got [2, 3]" in got.unread_features["grid"]
    assert "needs [H, W, 3], got [16, 16, 1]" in got.unread_features["observation.images.depth"]
    assert "grid" not in got.features and got.video_keys == [CAM]
    np.testing.assert_array_equal(got.episode(1).frames["action"], episodes[1]["frames"]["action"])
    with pytest.raises(KeyError, match=r"not read from this dataset: 'grid' \(features.grid.shape: only 1-D"):
        got.column("grid")
    with pytest.raises(KeyError, match=r"not read from this dataset: 'observation.images.depth' \(.*got \[16, 16, 1\]"):
        got.camera_frames(0, "observation.images.depth", 0, 1)

    assert main(["dataset", "check", "--no-progress", str(ds.root)]) == 0  # the depth camera's file is not "unlisted"
    out = capsys.readouterr().out
    assert "ok: 3 episodes" in out and "not read: 'grid': features.grid.shape: only 1-D" in out
    assert main(["dataset", "info", str(ds.root)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary["not_read"]) == {"grid", "observation.images.depth"} and "grid" not in summary["features"]
    assert summary["video_codecs"] == {CAM: "h264"}  # whether PyAV here decodes it: LeRobot's recorder writes AV1


def test_a_video_this_pyav_cannot_decode_names_the_codec_and_the_way_out(small_dataset):
    """"could not be decoded: [Errno 1128613112] Decoder not found" said neither which codec nor what to do."""
    ds, _ = small_dataset
    video = ds.root / VIDEO
    video.write_bytes(video.read_bytes().replace(b"avc1", b"zzz1"))  # a codec no FFmpeg decodes
    with pytest.raises(DatasetFormatError) as info:
        LeRobotDataset.open(ds.root).episode(0)
    message = str(info.value)
    assert info.value.path == str(video)
    assert "could not be decoded with PyAV" in message and "(codec 'h264', as info.json says)" in message
    assert "this build has no decoder for it" in message
    assert "pip install --force-reinstall av" in message and "-c:v libx264" in message


@pytest.mark.parametrize("damage", ["cut short", "overwritten"])
def test_a_damaged_video_names_its_file_episode_and_the_way_out_keeping_pyavs_error(small_dataset, capsys, damage):
    """A damaged file (a copy cut short; data overwritten mid-file) said `[Errno 1094995529] Invalid data found when
    processing input: 'avcodec_send_packet()'` and advised reinstalling PyAV, naming neither the episode nor what
    fixes it. PyAV's error stays the cause (`-v` shows it)."""
    import av

    ds, _ = small_dataset
    video = ds.root / VIDEO
    data = video.read_bytes()
    third = len(data) // 3  # past the header: the decoder starts, and meets bytes the encoder never wrote
    video.write_bytes(data[:len(data) // 2] if damage == "cut short" else
                      data[:third] + bytes(range(256)) * 8 + data[third + 2048:])
    with pytest.raises(DatasetFormatError) as info:
        LeRobotDataset.open(ds.root).episode(1)
    message = str(info.value)
    assert info.value.path == str(video) and f"{CAM}'s frames of episode 1 " in message, message
    assert "copy or download it again, then `worldpolicy dataset check` on the dataset" in message
    assert "Errno" not in message and "avcodec" not in message and "reinstall" not in message, message
    assert isinstance(info.value.__cause__, av.error.InvalidDataError)
    assert main(["dataset", "check", "--no-progress", str(ds.root)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"worldpolicy dataset check: {video}: {CAM}'s frames of episode 0 ") and "Errno" not in err


@pytest.mark.parametrize(("version", "converter"), [("v2.1", True), ("v2.0", True), ("v3.1", False), (None, False)])
def test_another_version_is_refused_naming_the_converter_where_lerobot_has_one(small_dataset, version, converter):
    ds, _ = small_dataset
    _edit_info(ds.root, lambda i: i.update(codebase_version=version))
    with pytest.raises(DatasetFormatError, match=rf"field 'codebase_version': got {version!r}; only 'v3.0' is read"):
        LeRobotDataset.open(ds.root)
    with pytest.raises(DatasetFormatError) as info:
        LeRobotDataset.open(ds.root)
    assert (f"`worldpolicy dataset convert {ds.root} --out NEW`" in str(info.value)) is converter
    assert ("python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id" in str(info.value)) is converter


def test_a_folder_above_or_inside_a_dataset_names_where_the_dataset_is(small_dataset, tmp_path):
    """A hub download sits below where one points (`~/.cache/huggingface/lerobot/<user>/<name>`), and `meta/` is easily
    given for the dataset: "meta/info.json: info.json is missing" said neither."""
    ds, _ = small_dataset
    below = re.escape(f"root='{ds.root.parent}' must be a LeRobot dataset's folder (the one holding meta/info.json); "
                      f"datasets below it: '{ds.root}'") + "$"
    with pytest.raises(DatasetFormatError, match=below):
        LeRobotDataset.open(ds.root.parent)
    inside = re.escape(f"it is inside the dataset '{ds.root}': give that folder") + "$"
    with pytest.raises(DatasetFormatError, match=inside):
        LeRobotDataset.open(ds.root / "meta")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match=r"must be a LeRobot dataset's folder \(the one holding "
                                                 r"meta/info.json\)$"):
        LeRobotDataset.open(tmp_path / "empty")
    # a checkpoint given for the dataset (`dataset eval DATASET CHECKPOINT`, the two swapped) is said to be one
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model_index.json").write_text("{}")
    with pytest.raises(DatasetFormatError, match=r"\(the one holding meta/info.json\); it holds a diffusers checkpoint "
                                                 r"\(model_index.json\), not a dataset$"):
        LeRobotDataset.open(tmp_path / "ckpt")


def test_training_arguments_naming_a_feature_not_read_say_why(small_dataset):
    """`action_keys=["grid"]` said only "not among the dataset's features": the dataset declares it."""
    from worldpolicy.data import sample_training_examples

    ds, _ = small_dataset
    _add_unread_features(ds.root)
    ds = LeRobotDataset.open(ds.root)
    with pytest.raises(ValueError, match=r"action_keys=\['grid'\]: \['grid'\] not among .*; not read from this "
                                         r"dataset: 'grid' \(features.grid.shape: only 1-D"):
        sample_training_examples(ds, "pusht", chunk_size=4, action_keys=["grid"])
    with pytest.raises(ValueError, match=r"video_keys=\['observation.images.depth'\]: .*; not read from this dataset: "
                                         r"'observation.images.depth' \(features.observation.images.depth.shape"):
        sample_training_examples(ds, "pusht", chunk_size=4, action_keys=["next.reward", "next.done"],  # 2 wide
                                 video_keys=["observation.images.depth"])
    _edit_info(ds.root, lambda i: i["features"][CAM].update(shape=[16, 16, 1]))  # its only RGB camera, now not read
    with pytest.raises(ValueError, match=r"video_keys: the dataset has no video or image features; a training example "
                                         rf"needs frames; not read from this dataset: '{CAM}' \(features.{CAM}.shape"):
        sample_training_examples(LeRobotDataset.open(ds.root), "pusht", chunk_size=4,
                                 action_keys=["next.reward", "next.done"])


def test_unsigned_int_features_lerobot_writes_are_read(small_dataset):
    """LeRobot takes any numpy dtype; a motor's raw uint16/uint32 ticks refused the whole dataset ("got 'uint16'")."""
    ds, episodes = small_dataset
    table = pq.read_table(ds.root / DATA)
    reward = table.column("next.reward").cast(pa.uint16())
    pq.write_table(table.set_column(table.column_names.index("next.reward"), "next.reward", reward), ds.root / DATA)
    _edit_info(ds.root, lambda i: i["features"]["next.reward"].update(dtype="uint16"))
    got = LeRobotDataset.open(ds.root).episode(2).frames["next.reward"]
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got[:, 0], episodes[2]["frames"]["next.reward"])
