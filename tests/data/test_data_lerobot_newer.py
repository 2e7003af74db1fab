"""Datasets of lerobot 0.6 (Python 3.12, not installable here): built by hand as its code lays them out, and what
this package writes checked against what its reader takes. The facts and where they were read: docs/data.md,
"Newer lerobot"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from worldpolicy.cli import main
from worldpolicy.data import LeRobotDataset, write_episodes

CAM = "observation.images.front"
DEPTH = "observation.images.front_depth"
DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"

# lerobot 0.6's DatasetInfo fields (src/lerobot/datasets/utils.py, PR huggingface/lerobot#3472): any other info.json
# key is logged as unknown on every load and dropped when lerobot rewrites info.json
DATASET_INFO_FIELDS = {
    "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits", "tools",
}
SAY_TOOL = {"type": "function", "function": {"name": "say", "description": "Speak to the user.",
                                             "parameters": {"type": "object", "properties": {}}}}


def _message_rows(n: int, with_timestamp: bool) -> pa.Array:
    """A language column as lerobot 0.6 stores it: per frame, a list of message structs (here one on frame 0)."""
    fields = [pa.field("role", pa.string(), nullable=False), pa.field("content", pa.string()),
              pa.field("style", pa.string())]
    fields += [pa.field("timestamp", pa.float32(), nullable=False)] if with_timestamp else []
    fields += [pa.field("camera", pa.string()), pa.field("tool_calls", pa.list_(pa.string()))]
    row = {"role": "assistant", "content": "grasp the cube", "style": "subtask", "camera": None, "tool_calls": None,
           **({"timestamp": 0.0} if with_timestamp else {})}
    return pa.array([[row] if i == 0 else [] for i in range(n)], pa.list_(pa.struct(fields)))


def _as_lerobot_06_writes(root: Path) -> None:
    """Add to a dataset what lerobot 0.5 and 0.6 add: 0.5's subtask column, 0.6's language annotation columns (dtype
    "language"), info.json's `tools`, a depth camera ([H, W, 1], `is_depth_map`, 12-bit HEVC, its own video files and
    episode columns), the encoder's settings in a video's `info`, and a zero-width feature (shape [0], an empty list
    per frame)."""
    table = pq.read_table(root / DATA)
    n = table.num_rows
    table = table.append_column("language_persistent", _message_rows(n, with_timestamp=True))
    table = table.append_column("language_events", _message_rows(n, with_timestamp=False))
    table = table.append_column("observation.extra", pa.array([[] for _ in range(n)], pa.list_(pa.float32())))
    # 0.5's subtask annotations (PR huggingface/lerobot#2860): an int64 column and meta/subtasks.parquet naming them
    table = table.append_column("subtask_index", pa.array([i % 2 for i in range(n)], pa.int64()))
    pq.write_table(table, root / DATA)
    pq.write_table(pa.table({"subtask": ["reach", "grasp"], "subtask_index": [0, 1]}), root / "meta/subtasks.parquet")

    episodes = pq.read_table(root / EPISODES)
    for suffix in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
        episodes = episodes.append_column(f"videos/{DEPTH}/{suffix}", episodes.column(f"videos/{CAM}/{suffix}"))
    pq.write_table(episodes, root / EPISODES)
    depth_video = root / f"videos/{DEPTH}/chunk-000/file-000.mp4"
    depth_video.parent.mkdir(parents=True)
    depth_video.write_bytes((root / f"videos/{CAM}/chunk-000/file-000.mp4").read_bytes())

    info = json.loads((root / "meta/info.json").read_text())
    info["tools"] = [SAY_TOOL]
    info["features"][CAM]["info"].update({"video.g": 2, "video.crf": 30, "video.preset": 12, "video.fast_decode": 0,
                                          "video.extra_options": {}, "video.video_backend": "pyav"})
    info["features"].update({
        "language_persistent": {"dtype": "language", "shape": [1], "names": None},
        "language_events": {"dtype": "language", "shape": [1], "names": None},
        "observation.extra": {"dtype": "float32", "shape": [0], "names": None},
        "subtask_index": {"dtype": "int64", "shape": [1], "names": None},
        DEPTH: {"dtype": "video", "shape": [16, 16, 1], "names": ["height", "width", "channels"],
                "info": {"video.height": 16, "video.width": 16, "video.codec": "hevc", "video.pix_fmt": "yuv420p12le",
                         "is_depth_map": True, "video.depth_min": 0.01, "video.depth_max": 10.0, "video.shift": 3.5,
                         "video.use_log": True, "video.fps": 10, "video.channels": 1, "has_audio": False}},
    })
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))


def test_a_dataset_lerobot_06_wrote_opens_with_its_new_columns_set_aside(small_dataset, capsys):
    """A "language" dtype refused the whole dataset ("got 'language'; accepted: float32, ..."), and so did a shape [0]
    feature: every dataset lerobot 0.6's annotation pipeline touched could not be trained on."""
    ds, episodes = small_dataset
    _as_lerobot_06_writes(ds.root)

    got = LeRobotDataset.open(ds.root)
    assert set(got.unread_features) == {"language_persistent", "language_events", "observation.extra", DEPTH}
    assert "'language' (LeRobot's language annotations) is not read" in got.unread_features["language_events"]
    assert "a zero-width feature holds no values, got [0]" in got.unread_features["observation.extra"]
    assert "needs [H, W, 3], got [16, 16, 1]" in got.unread_features[DEPTH]
    assert got.video_keys == [CAM] and "language_events" not in got.features
    np.testing.assert_array_equal(got.column("subtask_index")[:, 0], np.arange(sum(len(e["frames"]["action"])
                                                                                for e in episodes)) % 2)
    for i, ep in enumerate(episodes):
        read = got.episode(i)
        np.testing.assert_array_equal(read.frames["action"], ep["frames"]["action"])
        np.testing.assert_array_equal(read.videos[CAM], ep["videos"][CAM])  # lossless: the frames themselves
        assert read.task == ep["task"]

    assert main(["dataset", "check", "--no-progress", str(ds.root)]) == 0  # the depth camera's file is not "unlisted"
    out = capsys.readouterr().out
    assert "ok: 3 episodes" in out and "not read: 'language_events': features.language_events.dtype" in out


def test_what_the_writer_writes_is_what_lerobot_06_reads(small_dataset, tmp_path):
    """lerobot 0.6 reads info.json into a dataclass: a key it does not know is warned about on every load and lost when
    it rewrites the file, and a size or fps that is not positive refuses the dataset. So info.json holds only its
    fields, the provenance too in a file of its own that lerobot does not read."""
    ds, episodes = small_dataset
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert set(info) - DATASET_INFO_FIELDS == set()  # the fixture gives no provenance
    assert info["codebase_version"] == "v3.0"
    assert all(info[key] > 0 for key in ("fps", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"))
    assert {"codebase_version", "fps", "features"} <= set(info)  # the fields it requires

    copy = write_episodes(tmp_path / "copy", [ds.episode(i) for i in range(3)], fps=10, features=ds.features,
                          video_codec="libx264rgb", provenance={"made_by": "test"})
    assert set(json.loads((copy.root / "meta/info.json").read_text())) <= DATASET_INFO_FIELDS
    assert json.loads((copy.root / "meta/worldpolicy_provenance.json").read_text()) == {"made_by": "test"}
    assert LeRobotDataset.open(copy.root).provenance == {"made_by": "test"}

    with pytest.raises(ValueError, match=r"features.language_events.dtype: 'language' \(LeRobot's language "
                                         r"annotations\) is not read"):
        write_episodes(tmp_path / "lang", episodes, fps=10, video_codec="libx264rgb",
                       features={**ds.features, "language_events": {"dtype": "language", "shape": [1]}})
