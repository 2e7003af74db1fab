"""LeRobot v3.0 read/write: round trip, layout, file rolling, atomic writes, malformed datasets, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dataset_factory import frame_ramp, make_episode
from hypothesis import given, settings
from hypothesis import strategies as st

from worldpolicy.data import DatasetFormatError, Episode, LeRobotDataset, LeRobotDatasetWriter, write_episodes
from worldpolicy.data.card import CARD_FILE


def test_round_trip_returns_identical_arrays(small_dataset):
    ds, written = small_dataset
    assert ds.num_episodes == 3 and ds.num_frames == 28 and ds.fps == 10 and ds.robot_type == "testbot"
    assert ds.tasks == ["pick the cube", "push the cube | shove the block"]
    assert ds.feature_keys == ["action", "observation.state", "next.done", "next.reward"]
    assert ds.video_keys == ["observation.images.front"]
    for i, src in enumerate(written):
        ep = ds.episode(i)
        assert ep.index == i and ep.length == len(src["frames"]["action"]) and ep.task == src["task"]
        for key, values in src["frames"].items():
            got = ep.frames[key]
            assert got.dtype == values.dtype, key
            np.testing.assert_array_equal(got.reshape(values.shape), values, err_msg=key)
        np.testing.assert_array_equal(ep.videos["observation.images.front"], src["videos"]["observation.images.front"])
        np.testing.assert_allclose(ep.timestamp, np.arange(ep.length) / 10, atol=1e-6)
        assert ep.dataset_from_index == sum(len(w["frames"]["action"]) for w in written[:i])
    np.testing.assert_array_equal(ds.column("action"), np.concatenate([w["frames"]["action"] for w in written]))
    assert ds.episode(-1).index == 2


def test_blocks_read_in_order_decode_on_and_give_the_whole_reads_frames(tmp_path, monkeypatch):
    """A long-GOP file (250 frames, x264's default; lossy, with B-frames) of two episodes: blocks read in order inside
    `reading_in_order` decode on from one another, across the episodes of the file too, and so do segments that
    start at the previous one's last frame (`dataset label`'s); only a read elsewhere seeks. Every part is the frames
    the whole episode's read gives."""
    from worldpolicy.data.video import SegmentReader

    yy, xx = np.mgrid[0:32, 0:48]
    rng = np.random.default_rng(0)
    clips = [np.stack([np.stack([(xx + 3 * k + 50 * e) % 256, (yy + 2 * k) % 256, np.full_like(xx, k)], -1)
                       + rng.integers(0, 8, (32, 48, 3)) for k in range(150)]).astype(np.uint8) for e in range(2)]
    key = "observation.images.front"
    with LeRobotDatasetWriter(tmp_path / "ds", 15, video_codec="libx264", video_gop=250) as writer:
        for clip in clips:
            writer.add_episode({"action": np.zeros((150, 2), np.float32)}, {key: clip}, "t")
    ds = LeRobotDataset.open(tmp_path / "ds")
    whole = [ds.episode(e).videos[key] for e in range(2)]
    assert not np.array_equal(whole[0], clips[0])  # lossy: the decoder's frames, not the written ones, are the test

    starts, real = [], SegmentReader._start
    monkeypatch.setattr(SegmentReader, "_start", lambda self, first, *rest: starts.append(first) or real(self, first,
                                                                                                        *rest))
    with ds.reading_in_order():
        blocks = [[ds.camera_frames(e, key, s, min(s + 64, 150)) for s in range(0, 150, 64)] for e in range(2)]
        overlapping = [ds.camera_frames(1, key, s, min(s + 51, 150)) for s in (0, 50, 100)]
        back = ds.camera_frames(0, key, 70, 80)
    assert starts == [0, 150, 70]  # the file opened; episode 1 read again from its start; a read back into episode 0
    for e in range(2):
        np.testing.assert_array_equal(np.concatenate(blocks[e]), whole[e])
    for part, s in zip(overlapping, (0, 50, 100)):
        np.testing.assert_array_equal(part, whole[1][s:s + 51])
    np.testing.assert_array_equal(back, whole[0][70:80])
    assert ds._readers is None  # the file is closed once the block exits


def test_episodes_decode_each_file_once_in_order(small_dataset, monkeypatch):
    """`episodes()` reads in order (`reading_in_order`): the file is opened once and every later episode decodes on
    from the previous one; the frames are the written ones, and the file is closed once the loop ends or stops."""
    from worldpolicy.data.video import SegmentReader

    ds, written = small_dataset
    key = "observation.images.front"
    starts, real = [], SegmentReader._start
    monkeypatch.setattr(SegmentReader, "_start", lambda self, first, *rest: starts.append(first) or real(self, first,
                                                                                                        *rest))
    episodes = list(ds.episodes())
    assert starts == [0] and ds._readers is None
    for ep, w in zip(episodes, written, strict=True):
        np.testing.assert_array_equal(ep.videos[key], w["videos"][key])
    for ep in ds.episodes():
        break
    assert ds._readers is None  # the stopped loop (its generator closed) let the file go


def test_camera_frames_decodes_any_part_of_an_episode(small_dataset):
    """Parts that start past a keyframe (GOP 8), in an episode that starts mid-file, and one that ends the episode
    (at its stored to_timestamp) are exactly those frames; a part outside the episode is refused, naming its length."""
    ds, written = small_dataset
    key = "observation.images.front"
    for episode, start, stop in ((0, 9, 12), (2, 3, 4), (2, 0, 9), (1, 6, 7)):
        np.testing.assert_array_equal(ds.camera_frames(episode, key, start, stop),
                                      written[episode]["videos"][key][start:stop])
    with pytest.raises(IndexError, match=r"frames \[5, 8\) are out of range for episode 1 of 7 frames"):
        ds.camera_frames(1, key, 5, 8)
    with pytest.raises(KeyError, match="not a video feature of this dataset; known: \\['observation.images.front'\\]"):
        ds.camera_frames(0, "action", 0, 1)
    # a negative episode counts from the end, as `episode(-1)` does (it was refused); the errors name the episode so
    np.testing.assert_array_equal(ds.camera_frames(-1, key, 3, 4), written[2]["videos"][key][3:4])
    with pytest.raises(IndexError, match=r"frames \[5, 8\) are out of range for episode 1 of 7 frames"):
        ds.camera_frames(-2, key, 5, 8)
    with pytest.raises(IndexError, match=r"episode index=-4 is out of range for 3 episodes"):
        ds.camera_frames(-4, key, 0, 1)


def test_layout_matches_lerobot_v3(small_dataset):
    ds, _ = small_dataset
    root = ds.root
    for rel in (
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
        "videos/observation.images.front/chunk-000/file-000.mp4",
    ):
        assert (root / rel).is_file(), rel
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["total_frames"] == 28
    assert info["total_tasks"] == 2 and info["splits"] == {"train": "0:3"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert set(info["features"]) >= {"timestamp", "frame_index", "episode_index", "index", "task_index"}
    video = info["features"]["observation.images.front"]
    assert video["dtype"] == "video" and video["shape"] == [16, 16, 3]
    assert video["info"]["video.codec"] == "h264" and video["info"]["video.height"] == 16

    data = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert pa.types.is_fixed_size_list(data.schema.field("action").type)
    assert data.schema.field("timestamp").type == pa.float32() and data.schema.field("index").type == pa.int64()
    assert data.column("index").to_pylist() == list(range(28))
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [e["length"] for e in eps] == [12, 7, 9] and eps[1]["tasks"] == ["push the cube | shove the block"]
    assert eps[1]["dataset_from_index"] == 12 and eps[1]["dataset_to_index"] == 19
    assert eps[1]["videos/observation.images.front/from_timestamp"] == pytest.approx(1.2)
    assert eps[1]["videos/observation.images.front/to_timestamp"] == pytest.approx(1.9)
    tasks = pq.read_table(root / "meta/tasks.parquet")
    assert tasks.schema.pandas_metadata["index_columns"] == ["task"]
    assert dict(zip(tasks.column("task").to_pylist(), tasks.column("task_index").to_pylist())) == {
        "pick the cube": 0,
        "push the cube | shove the block": 1,
    }


@pytest.mark.parametrize("spec", [
    {"dtype": "video", "shape": [16, 24, 3]},  # as docs/data.md shows: no axis names
    {"dtype": "video", "shape": [3, 16, 24], "names": ["channels", "height", "width"]},  # a channels-first source
])
def test_video_features_are_described_as_lerobot_writes_them(tmp_path, spec):
    # LeRobot's policies read the layout from names[2]: without names they fail on the dataset (TypeError)
    frames = np.zeros((4, 16, 24, 3), np.uint8)
    episode = {"frames": {"action": np.zeros((4, 2))}, "videos": {"cam": frames}, "task": "t"}
    ds = write_episodes(tmp_path / "ds", [episode], fps=10, video_codec="libx264rgb",
                        features={"action": {"dtype": "float64", "shape": [2]}, "cam": spec})
    video = json.loads((ds.root / "meta/info.json").read_text())["features"]["cam"]
    assert video["shape"] == [16, 24, 3] and video["names"] == ["height", "width", "channels"]
    np.testing.assert_array_equal(ds.episode(0).videos["cam"], frames)


def test_stats_match_numpy(small_dataset):
    ds, written = small_dataset
    stats = ds.stats
    action = np.concatenate([w["frames"]["action"] for w in written]).astype(np.float64)
    np.testing.assert_allclose(stats["action"]["min"], action.min(0))
    np.testing.assert_allclose(stats["action"]["max"], action.max(0))
    np.testing.assert_allclose(stats["action"]["mean"], action.mean(0))
    np.testing.assert_allclose(stats["action"]["std"], action.std(0))
    for name, q in (("q01", 0.01), ("q10", 0.10), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
        np.testing.assert_allclose(stats["action"][name], np.quantile(action, q, axis=0))
    assert stats["action"]["count"].tolist() == [28]
    assert stats["next.done"]["mean"] == pytest.approx(3 / 28)
    # video stats: per channel in [0, 1], shaped (3, 1, 1); small clips are sampled whole, so min/max/mean/std are exact
    pixels = np.concatenate([w["videos"]["observation.images.front"] for w in written]).reshape(-1, 3) / 255.0
    video = stats["observation.images.front"]
    assert video["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(video["mean"].reshape(3), pixels.mean(0))
    np.testing.assert_allclose(video["std"].reshape(3), pixels.std(0))
    np.testing.assert_allclose(video["max"].reshape(3), pixels.max(0))
    # per-episode stats columns of the episodes parquet
    eps = pq.read_table(ds.root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    np.testing.assert_allclose(eps[2]["stats/action/q99"], np.quantile(written[2]["frames"]["action"], 0.99, axis=0))


def test_lossy_default_codec_and_lerobot_av1(tmp_path):
    # smooth content, as a camera gives: lossy codecs keep it close
    yy, xx = np.mgrid[0:32, 0:48]
    base = np.stack([xx * 5, yy * 7, (xx + yy) * 3], axis=-1)
    clip = np.stack([(base + 4 * t) % 256 for t in range(10)]).astype(np.uint8)
    for codec in ("libx264", "libsvtav1"):
        ds = write_episodes(
            tmp_path / codec,
            [{"frames": {"a": np.zeros(10, np.float32)}, "videos": {"cam": clip}, "task": "t"}] * 2,
            fps=5,
            video_codec=codec,
        )
        for i in range(2):  # each episode starts on a keyframe (a copy takes its packets): none leans on the one before
            mse = np.mean((ds.episode(i).videos["cam"].astype(float) - clip) ** 2)
            assert 10 * np.log10(255**2 / mse) > 29, (codec, i)  # AV1 at crf 30 gives this clip 29.9 dB, H.264 31.9


def test_files_roll_over_into_new_files_and_chunks(tmp_path):
    episodes = [dict(make_episode(6, seed=i, offset=10 * i), task=f"task {i % 3}") for i in range(5)]
    ds = write_episodes(
        tmp_path / "ds",
        episodes,
        fps=10,
        video_codec="libx264rgb",
        chunks_size=2,
        data_files_size_in_mb=1e-6,
        video_files_size_in_mb=1e-6,
    )
    data_files = sorted(p.relative_to(ds.root).as_posix() for p in (ds.root / "data").rglob("*.parquet"))
    assert data_files == [
        "data/chunk-000/file-000.parquet",
        "data/chunk-000/file-001.parquet",
        "data/chunk-001/file-000.parquet",
        "data/chunk-001/file-001.parquet",
        "data/chunk-002/file-000.parquet",
    ]
    assert len(list((ds.root / "videos").rglob("*.mp4"))) == 5
    for i, src in enumerate(episodes):
        ep = ds.episode(i)
        np.testing.assert_array_equal(ep.frames["action"], src["frames"]["action"])
        np.testing.assert_array_equal(ep.videos["observation.images.front"], src["videos"]["observation.images.front"])
    assert ds.tasks == ["task 0", "task 1", "task 2"]


def test_copy_keeps_every_frames_task_the_names_and_the_robot(tmp_path):
    episodes = [
        dict(make_episode(5, seed=0), task="pick"),
        dict(make_episode(7, seed=1), task=["place"] * 3 + ["pick"] * 4),  # the task changes mid-episode
    ]
    first = write_episodes(tmp_path / "src", episodes, fps=10, robot_type="testbot", video_codec="libx264rgb")
    assert first.episode(1).frame_tasks == ("place",) * 3 + ("pick",) * 4
    # other writers list an episode's tasks in any order (LeRobot: set order), and name the columns
    _rewrite_parquet(first.root / EPISODES, lambda t: t.set_column(
        t.column_names.index("tasks"), "tasks", pa.array([["pick"], ["pick", "place"]])))
    _edit_info(first.root, lambda i: i["features"]["action"].update(names=["x", "y", "z"]))
    src = LeRobotDataset.open(first.root)
    assert src.episode(1).task == "place"  # frame 0's, whatever the order of `tasks`

    copy = write_episodes(tmp_path / "copy", src.episodes(), fps=src.fps, features=src.features,
                          robot_type=src.robot_type, video_codec="libx264rgb")
    assert copy.robot_type == "testbot" and copy.features["action"]["names"] == ["x", "y", "z"]
    for a, b in zip(src.episodes(), copy.episodes()):
        assert isinstance(b, Episode) and b.frame_tasks == a.frame_tasks and b.task == a.task
        for key in a.frames:
            np.testing.assert_array_equal(a.frames[key], b.frames[key])
        np.testing.assert_array_equal(a.videos["observation.images.front"], b.videos["observation.images.front"])


def test_provenance_is_a_file_of_its_own_a_copy_can_carry(tmp_path):
    """How a dataset was made (from-sim's task and expert versions) sits in meta/worldpolicy_provenance.json beside
    info.json, read back as `provenance`; a dataset made elsewhere has none. Not in info.json: lerobot 0.6 warns about
    a key there it does not know on every load and drops it when it rewrites the file."""
    made = {"source": "test", "task_version": 3, "settings": {"image_size": [32, 32]}}
    ds = write_episodes(tmp_path / "a", [dict(make_episode(4, seed=0), task="pick")], fps=10, provenance=made,
                        video_codec="libx264rgb")
    assert ds.provenance == made
    assert json.loads((ds.root / "meta/worldpolicy_provenance.json").read_text()) == made
    assert "worldpolicy_provenance" not in json.loads((ds.root / "meta/info.json").read_text())
    copy = write_episodes(tmp_path / "b", ds.episodes(), fps=ds.fps, features=ds.features, provenance=ds.provenance,
                          video_codec="libx264rgb")
    assert copy.provenance == made
    plain = write_episodes(tmp_path / "c", [dict(make_episode(4, seed=0), task="pick")], fps=10,
                           video_codec="libx264rgb")
    assert plain.provenance is None and not (plain.root / "meta/worldpolicy_provenance.json").exists()

    for bad, problem in (("[1, 2]", r"must be an object \(how worldpolicy made the dataset\), got list"),
                         ("{not json", "is not valid JSON")):
        (plain.root / "meta/worldpolicy_provenance.json").write_text(bad)
        with pytest.raises(DatasetFormatError, match=problem) as err:
            LeRobotDataset.open(plain.root)
        assert err.value.path.endswith("meta/worldpolicy_provenance.json")


def _as_written_before(root: Path) -> None:
    """The dataset at `root` as worldpolicy wrote it before provenance had a file of its own: in info.json, under
    `worldpolicy_provenance`."""
    own = root / "meta/worldpolicy_provenance.json"
    _edit_info(root, lambda i: i.update(worldpolicy_provenance=json.loads(own.read_text())))
    own.unlink()


def test_provenance_in_info_json_a_dataset_written_before_keeps_is_still_read(tmp_path):
    """Datasets written before the provenance file keep it in info.json: read as before (from-sim's seeds too, which
    `worldpolicy sim` checks its scenes against), and refused as before where it is not an object."""
    from worldpolicy.fileio import recorded_seeds

    made = {"source": "worldpolicy dataset from-sim", "task": "reach", "seeds": [3, 5]}
    ds = write_episodes(tmp_path / "old", [dict(make_episode(4, seed=0), task="pick")] * 2, fps=10, provenance=made,
                        video_codec="libx264rgb")
    _as_written_before(ds.root)
    old = LeRobotDataset.open(ds.root)
    assert old.provenance == made and old.summary()["provenance"] == {k: v for k, v in made.items() if k != "seeds"}
    assert recorded_seeds(ds.root) == ("reach", [3, 5])

    _edit_info(ds.root, lambda i: i.update(worldpolicy_provenance=["not", "an", "object"]))
    with pytest.raises(DatasetFormatError, match="field 'worldpolicy_provenance': must be an object") as err:
        LeRobotDataset.open(ds.root)
    assert err.value.path.endswith("meta/info.json")
    assert recorded_seeds(ds.root) is None  # it only looks: the dataset reader refuses


@pytest.mark.parametrize("provenance", [["a list"], {"gain": float("nan")}, {"when": object()}])
def test_provenance_json_cannot_hold_is_refused_before_anything_is_written(tmp_path, provenance):
    with pytest.raises(ValueError, match="provenance must"):
        LeRobotDatasetWriter(tmp_path / "ds", fps=10, provenance=provenance)
    assert list(tmp_path.iterdir()) == []


def test_writes_are_atomic(tmp_path):
    root = tmp_path / "ds"
    with pytest.raises(RuntimeError, match="boom"), LeRobotDatasetWriter(root, fps=10) as writer:
        writer.add_episode(**make_episode(5, seed=0), task="t")
        raise RuntimeError("boom")
    assert not root.exists() and list(tmp_path.iterdir()) == []
    # a command that fails leaves no empty parent it made for the dataset (`from-sim fs/d`: an empty fs/ was left)
    from worldpolicy.fileio import removing_empty_folders_on_failure

    with pytest.raises(RuntimeError, match="boom"), removing_empty_folders_on_failure(), \
            LeRobotDatasetWriter(tmp_path / "fs" / "d", fps=10):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []

    first = write_episodes(root, [dict(make_episode(5, seed=0), task="old")], fps=10)
    with pytest.raises(FileExistsError, match="root="):
        LeRobotDatasetWriter(root, fps=10)
    writer = LeRobotDatasetWriter(root, fps=10, overwrite=True)
    writer.add_episode(**make_episode(4, seed=1), task="new")
    assert LeRobotDataset.open(root).tasks == ["old"]  # untouched until finalize
    second = writer.finalize()
    assert first.root == second.root and second.tasks == ["new"] and second.num_frames == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging or replaced folders left behind


def test_a_killed_writers_folders_are_swept_by_the_next_writer_never_a_live_ones(tmp_path, caplog):
    """A SIGKILLed from-sim left `.ROOT.frames-*` (276 MB per worker) and `.ROOT.writing-*`, which no run removed."""
    import signal
    import subprocess
    import sys

    root = tmp_path / "ds"
    hold = ("import sys, time; from worldpolicy.fileio import ScratchFolder; "
            "p = ScratchFolder(sys.argv[1], sys.argv[2])"
            ".make(); (p / 'f.rgb').write_bytes(bytes(2_000_000)); print(p, flush=True); time.sleep(120)")

    def holder(kind: str) -> tuple[subprocess.Popen, Path]:
        proc = subprocess.Popen([sys.executable, "-c", hold, str(root), kind], stdout=subprocess.PIPE, text=True)
        return proc, Path(proc.stdout.readline().strip())

    (live_owner, live), (stage_owner, stage) = holder("writing"), holder("writing")
    frames_owner, frames = holder("frames")
    try:
        for proc in (stage_owner, frames_owner):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        spool = tmp_path / ".ds.writing-spool-k2j9abcd"  # serve --record's: recovered, never swept
        others = tmp_path / ".ds2.writing-k2j9abcd"  # another root's
        for folder in (spool, others):
            folder.mkdir()
        assert stage.name.startswith(".ds.writing-") and frames.name.startswith(".ds.frames-")
        with caplog.at_level("WARNING", logger="worldpolicy.fileio"):
            write_episodes(root, [dict(make_episode(3, seed=0), task="t")], fps=10)
        assert not stage.exists() and not frames.exists()
        assert live.is_dir() and spool.is_dir() and others.is_dir()
        removed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("removed")]
        assert len(removed) == 2 and all("(2.0 MB)" in m for m in removed)
        assert any(str(stage) in m for m in removed) and any(str(frames) in m for m in removed)
    finally:
        live_owner.kill()
        live_owner.wait()


WRITE_NEW = """
import numpy as np
from worldpolicy.data import write_episodes
write_episodes(sys.argv[2], [dict(frames={"action": np.zeros((3, 2), np.float32)}, task="new")], fps=10,
               overwrite=True)
"""


@pytest.mark.parametrize("renames", [1, 2])
def test_a_dataset_replacement_killed_midway_is_put_right_by_the_next_reader_or_writer(tmp_path, renames, caplog,
                                                                                      killed_replacing):
    """--overwrite killed (SIGKILL, power) between its two renames left no dataset at ROOT and the user's earlier one
    in `.ROOT.replaced-*`, which nothing looked in; after them, that folder stayed for good. The next opener of ROOT
    puts the earlier dataset back (the new one was never published) or removes the aside (the new one was); the next
    writer, which checks ROOT only after that, refuses to replace the restored one without overwrite."""
    root = tmp_path / "ds"
    write_episodes(root, [dict(make_episode(5, seed=0), task="old")], fps=10)
    killed_replacing(WRITE_NEW, renames, str(root))
    assert [p.name.split("-")[0] for p in tmp_path.glob(".ds.replaced-*")] == [".ds.replaced"]
    assert root.exists() == (renames == 2)
    with caplog.at_level("WARNING", logger="worldpolicy.fileio"):
        assert LeRobotDataset.open(root).tasks == (["old"] if renames == 1 else ["new"])
    assert list(tmp_path.glob(".ds.replaced-*")) == []
    assert ("restored" if renames == 1 else "removed") in caplog.text
    if renames == 1:
        with pytest.raises(FileExistsError, match="holds a dataset; pass overwrite=True"):
            LeRobotDatasetWriter(root, fps=10)
    write_episodes(root, [dict(make_episode(4, seed=1), task="newer")], fps=10, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # the killed writer's staging swept too


def test_a_linked_datasets_killed_replacement_is_put_back_by_the_next_reader(tmp_path, killed_replacing):
    """A dataset linked from a bigger disk is replaced at the link's target (the writer resolves the link), so a
    killed replacement leaves its aside there, not beside the link: the opener, given the link, looks there too."""
    (tmp_path / "big").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "big" / "ds").mkdir()
    link = tmp_path / "data" / "ds"
    link.symlink_to(tmp_path / "big" / "ds")
    write_episodes(link, [dict(make_episode(5, seed=0), task="old")], fps=10, overwrite=True)
    killed_replacing(WRITE_NEW, 1, str(link))
    assert not link.exists() and len(list((tmp_path / "big").glob(".ds.replaced-*"))) == 1
    assert LeRobotDataset.open(link).tasks == ["old"]
    assert link.is_symlink() and list((tmp_path / "big").glob(".ds.replaced-*")) == []


def test_a_commands_overwrite_check_sees_the_dataset_a_killed_replacement_left_aside(tmp_path, killed_replacing):
    """`dataset select --overwrite` replaces only a dataset `select` made (`checks.check_out`). With the dataset at
    ROOT aside after a replacement killed between its renames, the check found ROOT missing and let the writer, which
    puts the earlier dataset back first, replace it: the check must see what ROOT holds once it is settled."""
    from worldpolicy.data import select_episodes

    root = tmp_path / "ds"
    write_episodes(root, [dict(make_episode(5, seed=0), task="old")], fps=10)  # the user's own: no `select` made it
    killed_replacing(WRITE_NEW, 1, str(root))
    assert not root.exists()
    src = write_episodes(tmp_path / "src", [dict(make_episode(4, seed=1), task="src")], fps=10)
    with pytest.raises(FileExistsError, match="holds a dataset not made by `dataset select`"):
        select_episodes(src, root, [0], overwrite=True)
    assert LeRobotDataset.open(root).tasks == ["old"]


def test_a_new_datasets_folder_holding_another_kind_is_refused_naming_it(tmp_path):
    """`dataset select|merge|label|import-hdf5` and `serve --record` refused a training run's folder as one that
    "exists and is not a dataset"; the other commands' --out name the kind they found (`fileio.FOLDER_KINDS`)."""
    from worldpolicy.data import select_episodes

    src = write_episodes(tmp_path / "src", [dict(make_episode(4, seed=1), task="src")], fps=10)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(FileExistsError, match=r"^out: '.*run' holds a training run \(metrics.jsonl\); choose a new"):
        select_episodes(src, run, [0])
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "n.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"^out: '.*notes' exists and is not a dataset; choose a new"):
        select_episodes(src, tmp_path / "notes", [0])


def test_overwrite_replaces_datasets_only_and_outputs_are_shared(tmp_path):
    mine = tmp_path / "mine"
    (mine / "other_dataset").mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="is not a LeRobot dataset .*overwrite only replaces an existing dataset"):
        write_episodes(mine, [dict(make_episode(5, seed=0), task="t")], fps=10, overwrite=True)
    assert (mine / "notes.txt").read_text() == "precious" and (mine / "other_dataset").is_dir()
    with pytest.raises(ValueError, match=r"root='.*notes.txt/ds' is under '.*notes.txt', which is a file"):
        write_episodes(mine / "notes.txt" / "ds", [dict(make_episode(5, seed=0), task="t")], fps=10)
    ds = write_episodes(tmp_path / "ds", [dict(make_episode(5, seed=0), task="t")], fps=10)
    umask = os.umask(0)
    os.umask(umask)
    assert ds.root.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700


def test_a_symlinked_root_is_written_where_it_points_and_stays_a_link(tmp_path):
    """`root` a link to a folder on another disk: the dataset was published in place of the link (the link renamed
    aside, then `rmtree` refused it: OSError after the dataset was written), and an empty linked folder raised
    NotADirectoryError. Now the dataset goes where the link points and the link stays."""
    episode = dict(make_episode(4, seed=0), task="old")
    write_episodes(tmp_path / "disk" / "ds", [episode], fps=10)
    (tmp_path / "disk" / "empty").mkdir()
    for name in ("ds", "empty"):
        (tmp_path / f"link_{name}").symlink_to(tmp_path / "disk" / name)
        ds = write_episodes(tmp_path / f"link_{name}", [dict(episode, task="new")], fps=10, overwrite=True)
        assert (tmp_path / f"link_{name}").is_symlink() and ds.root == tmp_path / "disk" / name
        assert LeRobotDataset.open(tmp_path / f"link_{name}").tasks == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["disk", "link_ds", "link_empty"]  # nothing set aside
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["ds", "empty"]


def test_a_root_created_while_writing_is_not_clobbered(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10)
    writer.add_episode({"x": np.arange(3.0)}, task="t")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="appeared while writing"):
        writer.finalize()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert (tmp_path / "ds" / "precious.txt").read_text() == "keep me"


def test_an_array_refilled_for_every_episode_keeps_each_episodes_values(tmp_path):
    """A recording loop that fills one preallocated array per episode: the writer held on to it (pyarrow wraps numpy
    without copying), so every episode, and the stats, held what the array held at finalize."""
    action, reward = np.zeros((5, 3), np.float32), np.zeros(5, np.float32)
    with LeRobotDatasetWriter(tmp_path / "ds", fps=10) as writer:
        for i in range(2):
            action[:], reward[:] = i + 1, 10 * (i + 1)
            writer.add_episode({"action": action, "next.reward": reward}, task="t")
        action[:] = reward[:] = 99
    ds = LeRobotDataset.open(tmp_path / "ds")
    for i in range(2):
        np.testing.assert_array_equal(ds.episode(i).frames["action"], np.full((5, 3), i + 1, np.float32))
        np.testing.assert_array_equal(ds.episode(i).frames["next.reward"], np.full((5, 1), 10 * (i + 1), np.float32))
    np.testing.assert_array_equal(ds.stats["action"]["mean"], [1.5] * 3)
    assert ds.stats["next.reward"]["max"].tolist() == [20.0]


def test_an_episodes_arrays_can_be_changed_in_place_without_changing_the_next_read(small_dataset):
    """They were read-only views of pyarrow's buffers (`ep.frames["action"][:, 0] *= 2` raised "assignment destination
    is read-only") while the videos and `column` were writable. A data file's columns are kept, converted, while its
    episodes are read: an episode's arrays, and `column`'s, are copies, which a caller may change in place (flip a
    gripper column, normalise) without the next read seeing it."""
    ds, episodes = small_dataset
    ep = ds.episode(1)
    ep.frames["action"][:, 0] *= 2
    ep.frames["next.done"][:] = True
    ep.timestamp[:] = 0
    ep.task_index[:] = 0
    ds.column("action")[:] = 0
    again = ds.episode(1)
    np.testing.assert_array_equal(again.frames["action"], episodes[1]["frames"]["action"])
    assert again.frames["next.done"][:, 0].tolist() == episodes[1]["frames"]["next.done"].tolist()
    assert again.timestamp[1] > 0 and again.task_index[0] == 1
    np.testing.assert_array_equal(ds.column("action")[12:19], episodes[1]["frames"]["action"])


def test_episodes_without_videos(tmp_path):
    ds = write_episodes(tmp_path / "ds", [{"frames": {"x": np.arange(4.0)}, "task": "t"}], fps=2.5)
    info = json.loads((ds.root / "meta/info.json").read_text())
    assert info["video_path"] is None and info["fps"] == 2.5 and ds.video_keys == []
    np.testing.assert_array_equal(ds.episode(0).frames["x"][:, 0], np.arange(4.0))


def test_check_video_files_checks_every_cameras_files_of_episodes_given_as_an_iterator(tmp_path):
    """An iterator of episodes was spent on the first camera: the second one's missing file went unchecked."""
    clip = np.zeros((3, 16, 16, 3), np.uint8)
    episode = {"frames": {"a": np.zeros(3, np.float32)}, "videos": {"front": clip, "wrist": clip}, "task": "t"}
    ds = write_episodes(tmp_path / "ds", [episode], fps=10, video_codec="libx264rgb")
    ds.check_video_files(["front", "wrist"], iter([0]))
    [wrist] = (ds.root / "videos" / "wrist").rglob("*.mp4")
    wrist.unlink()
    with pytest.raises(DatasetFormatError, match=r"video file is missing \(named by videos/wrist/chunk_index"):
        ds.check_video_files(["front", "wrist"], iter([0]))


# ------------------------------------------------------------------------------------------------- malformed input


def _rewrite_parquet(path: Path, edit) -> None:
    pq.write_table(edit(pq.read_table(path)), path)


def _set_column(path: Path, name: str, make) -> None:
    _rewrite_parquet(path, lambda t: t.set_column(t.column_names.index(name), name, make(t.num_rows)))


def _edit_info(root: Path, edit) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    edit(info)
    (root / "meta/info.json").write_text(json.dumps(info))


EPISODES = "meta/episodes/chunk-000/file-000.parquet"
DATA = "data/chunk-000/file-000.parquet"
VIDEO = "videos/observation.images.front/chunk-000/file-000.mp4"
CORRUPTIONS = {
    "no info.json": (lambda r: (r / "meta/info.json").unlink(), "meta/info.json", None),
    "info.json not json": (lambda r: (r / "meta/info.json").write_text("{"), "meta/info.json", None),
    "old version": (
        lambda r: _edit_info(r, lambda i: i.update(codebase_version="v2.1")),
        "meta/info.json",
        "codebase_version",
    ),
    "no fps": (lambda r: _edit_info(r, lambda i: i.pop("fps")), "meta/info.json", "fps"),
    "bad dtype": (
        lambda r: _edit_info(r, lambda i: i["features"]["action"].update(dtype="float128")),
        "meta/info.json",
        "features.action.dtype",
    ),
    "bad shape": (
        lambda r: _edit_info(r, lambda i: i["features"]["action"].update(shape=[-3])),
        "meta/info.json",
        "features.action.shape",
    ),
    "frame count": (lambda r: _edit_info(r, lambda i: i.update(total_frames=99)), "meta/info.json", "total_frames"),
    "no tasks": (lambda r: (r / "meta/tasks.parquet").unlink(), "meta/tasks.parquet", None),
    "tasks without index": (
        lambda r: _rewrite_parquet(r / "meta/tasks.parquet", lambda t: t.drop(["task_index"])),
        "meta/tasks.parquet",
        "task_index",
    ),
    "episodes column": (
        lambda r: _rewrite_parquet(r / EPISODES, lambda t: t.drop(["dataset_from_index"])),
        EPISODES,
        "dataset_from_index",
    ),
    "unknown task": (
        lambda r: _rewrite_parquet(
            r / "meta/tasks.parquet", lambda t: t.set_column(1, "task", pa.array(["pick the cube", "other"]))
        ),
        EPISODES,
        "tasks",
    ),
    "bad length": (
        lambda r: _rewrite_parquet(
            r / EPISODES, lambda t: t.set_column(t.column_names.index("length"), "length", pa.array([12, 6, 9]))
        ),
        EPISODES,
        "length",
    ),
    "episode video column": (
        lambda r: _rewrite_parquet(r / EPISODES, lambda t: t.drop(["videos/observation.images.front/to_timestamp"])),
        EPISODES,
        "videos/observation.images.front/to_timestamp",
    ),
    # columns of another type were cast blindly: a length of 12.5 read as 12, a task string as its letters
    "length stored as floats": (lambda r: _set_column(r / EPISODES, "length", lambda n: pa.array([12.5, 7.0, 9.0])),
                                EPISODES, "length"),
    "tasks stored as a string": (
        lambda r: _set_column(r / EPISODES, "tasks", lambda n: pa.array(["pick the cube"] * n)), EPISODES, "tasks"),
    "timestamps stored as strings": (
        lambda r: _set_column(r / EPISODES, "videos/observation.images.front/from_timestamp",
                              lambda n: pa.array(["0"] * n)),
        EPISODES,
        "videos/observation.images.front/from_timestamp",
    ),
    # a v2.1 template: its {episode_index} was a KeyError when the first video was looked up
    "video path per episode": (
        lambda r: _edit_info(r, lambda i: i.update(video_path="videos/{video_key}/chunk-{chunk_index:03d}/"
                                                              "file-{file_index:03d}/episode_{episode_index:06d}.mp4")),
        "meta/info.json",
        "video_path",
    ),
    "data path brace": (lambda r: _edit_info(r, lambda i: i.update(data_path="data/{chunk_index}/{file_index.parquet")),
                        "meta/info.json", "data_path"),
}
LAZY_CORRUPTIONS = {  # found when the episode is loaded
    "data column": (lambda r: _rewrite_parquet(r / DATA, lambda t: t.drop(["action"])), DATA, "action"),
    "data width": (
        lambda r: _edit_info(r, lambda i: i["features"]["action"].update(shape=[4], names=None)),
        DATA,
        "action",
    ),
    "data rows": (lambda r: _rewrite_parquet(r / DATA, lambda t: t.slice(0, 15)), DATA, "episode_index"),
    "no data file": (lambda r: (r / DATA).unlink(), DATA, None),
    "no video": (lambda r: (r / VIDEO).unlink(), VIDEO, None),
    "bool stored as strings": (lambda r: _set_column(r / DATA, "next.done", lambda n: pa.array(["False"] * n)), DATA,
                               "next.done"),
    "int stored as floats": (lambda r: _set_column(r / DATA, "next.reward", lambda n: pa.array(np.linspace(0, 0.9, n))),
                             DATA, "next.reward"),
    "index column": (lambda r: _set_column(r / DATA, "index", lambda n: pa.array(np.zeros(n, np.int64))), DATA, "index"),
    "timestamps": (lambda r: _set_column(r / DATA, "timestamp", lambda n: pa.array(np.zeros(n, np.float32))), DATA,
                   "timestamp"),
    "rows of an unlisted episode": (  # a crash before the metadata was rewritten: episode 2 is in no table
        lambda r: (
            _rewrite_parquet(r / EPISODES, lambda t: t.slice(0, 2)),
            _edit_info(r, lambda i: i.update(total_episodes=2, total_frames=19)),
        ),
        DATA,
        "episode_index",
    ),
    "short video segment": (
        lambda r: _rewrite_parquet(
            r / EPISODES,
            lambda t: t.set_column(
                t.column_names.index("videos/observation.images.front/to_timestamp"),
                "videos/observation.images.front/to_timestamp",
                pa.array([1.0, 1.5, 2.8]),
            ),
        ),
        VIDEO,
        "videos/observation.images.front/to_timestamp",
    ),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS) + sorted(LAZY_CORRUPTIONS))
def test_malformed_dataset_names_file_and_field(small_dataset, name):
    ds, _ = small_dataset
    corrupt, rel, field = {**CORRUPTIONS, **LAZY_CORRUPTIONS}[name]
    corrupt(ds.root)
    with pytest.raises(DatasetFormatError) as info:
        LeRobotDataset.open(ds.root).episode(1)
    err = info.value
    assert err.path.endswith(rel), str(err)
    assert err.field == field, str(err)
    assert rel in str(err) and (field is None or repr(field) in str(err))


def test_missing_video_names_the_fields_that_place_it(small_dataset):
    ds, _ = small_dataset
    (ds.root / VIDEO).unlink()
    with pytest.raises(DatasetFormatError, match="named by videos/observation.images.front/chunk_index and file_index "
                                                 "of episode 0"):
        ds.episode(0)


def test_columns_are_read_as_declared_only_where_no_value_changes(small_dataset):
    ds, written = small_dataset
    _set_column(ds.root / DATA, "action", lambda n: pa.array(np.concatenate([w["frames"]["action"] for w in written])
                                                            .astype(np.float64).tolist(), pa.list_(pa.float64(), 3)))
    _set_column(ds.root / DATA, "next.done", lambda n: pa.array(np.arange(n) % 2))  # 0/1 ints for a bool
    _edit_info(ds.root, lambda i: i["features"]["next.reward"].update(dtype="float32"))  # ints for a float
    _edit_info(ds.root, lambda i: i["features"]["observation.state"].update(dtype="float16"))  # float64 -> float16
    ep = LeRobotDataset.open(ds.root).episode(1, videos=False)
    np.testing.assert_array_equal(ep.frames["action"], written[1]["frames"]["action"])
    assert ep.frames["next.done"][:, 0].tolist() == [i % 2 == 1 for i in range(12, 19)]
    assert ep.frames["next.reward"].dtype == np.float32
    np.testing.assert_array_equal(ep.frames["next.reward"][:, 0], written[1]["frames"]["next.reward"])

    _set_column(ds.root / DATA, "next.done", lambda n: pa.array(np.arange(n) % 3))  # 2 is no bool
    with pytest.raises(DatasetFormatError, match="'next.done': column is int64 but meta/info.json gives dtype bool"):
        LeRobotDataset.open(ds.root).episode(1)
    _edit_info(ds.root, lambda i: i["features"]["next.done"].update(dtype="int8"))
    _set_column(ds.root / DATA, "next.done", lambda n: pa.array(np.arange(n) * 10))  # 270 does not fit int8
    with pytest.raises(DatasetFormatError, match="column is int64 but meta/info.json gives dtype int8"):
        LeRobotDataset.open(ds.root).episode(2)


def test_episodes_read_the_same_from_a_data_file_whose_rows_are_in_any_order(small_dataset):
    """LeRobot writes a data file's rows episode after episode, frames in order; another writer may not. Each episode
    is its rows wherever they are, in frame order, and a row of no episode's (a null episode_index) is refused."""
    ds, _ = small_dataset
    want = [ds.episode(i, videos=False) for i in range(ds.num_episodes)]
    order = np.random.default_rng(0).permutation(ds.num_frames)
    _rewrite_parquet(ds.root / DATA, lambda t: t.take(pa.array(order)))
    shuffled = LeRobotDataset.open(ds.root)
    for i in (2, 0, 1, 2):  # the file's grouped rows are read once and kept: each episode from them
        got = shuffled.episode(i, videos=False)
        np.testing.assert_array_equal(got.frames["action"], want[i].frames["action"])
        np.testing.assert_array_equal(got.timestamp, want[i].timestamp)
        assert got.frame_tasks == want[i].frame_tasks
    _set_column(ds.root / DATA, "episode_index",
                lambda n: pa.array([None] + [int(e) for e in np.repeat([0, 1, 2], [12, 7, 9])[order][1:]], pa.int64()))
    lost = int(np.repeat([0, 1, 2], [12, 7, 9])[order][0])
    with pytest.raises(DatasetFormatError, match=f"holds {ds.episode_lengths[lost] - 1} rows of episode {lost} but"):
        LeRobotDataset.open(ds.root).episode(lost, videos=False)


def test_index_columns_of_any_int_type_are_read_and_others_refused_naming_them(small_dataset):
    """A data file's episode_index and frame_index as uint32 (LeRobot writes int64; another writer may not) read as
    any ints do: filling their nulls with -1 raised OverflowError. A column of no ints is refused naming it."""
    ds, _ = small_dataset
    want = ds.episode(1, videos=False)
    for key in ("episode_index", "frame_index"):
        _set_column(ds.root / DATA, key, lambda n, key=key: pq.read_table(ds.root / DATA).column(key).cast(pa.uint32()))
    got = LeRobotDataset.open(ds.root).episode(1, videos=False)
    np.testing.assert_array_equal(got.frames["action"], want.frames["action"])
    np.testing.assert_array_equal(got.timestamp, want.timestamp)
    _set_column(ds.root / DATA, "frame_index", lambda n: pa.array([str(i) for i in range(n)]))
    with pytest.raises(DatasetFormatError, match="'frame_index': column is string; expected ints"):
        LeRobotDataset.open(ds.root).episode(1, videos=False)


def test_a_column_reads_as_its_caller_declares_it_whichever_read_came_first(small_dataset):
    """An episode reads `timestamp` as LeRobot's float32, `column` as info.json declares it: a data file's columns are
    converted once and kept, and the first read's conversion was handed to the other (float32 for `column`, or
    info.json's float64 for `Episode.timestamp`, by which came first)."""
    ds, _ = small_dataset
    _edit_info(ds.root, lambda i: i["features"]["timestamp"].update(dtype="float64"))
    for column_first in (False, True):
        ds = LeRobotDataset.open(ds.root)
        column = ds.column("timestamp") if column_first else None
        assert ds.episode(0, videos=False).timestamp.dtype == np.float32
        column = ds.column("timestamp") if column is None else column
        assert column.dtype == np.float64 and column.shape == (ds.num_frames, 1)


def test_timestamps_pass_at_float32_precision_and_29_97_fps(tmp_path):
    """Day-long float32 timestamps and a 29.97 fps info.json over 30000/1001 fps timestamps still pass."""
    n = 100_000
    ds = write_episodes(tmp_path / "ds", [{"frames": {"x": np.zeros(n, np.float32)}, "task": "t"}], fps=29.97)
    assert ds.episode(0).length == n
    _set_column(ds.root / DATA, "timestamp", lambda _: pa.array((np.arange(n) * 1001 / 30000).astype(np.float32)))
    assert LeRobotDataset.open(ds.root).episode(0).length == n
    _set_column(ds.root / DATA, "timestamp", lambda _: pa.array((np.arange(n) / 30).astype(np.float32)))  # 30 fps
    with pytest.raises(DatasetFormatError, match="frame 250 of episode 0 has timestamp 8.33333 s but frame_index / "
                                                 "fps is 8.34168 s"):
        LeRobotDataset.open(ds.root).episode(0)


def test_stats_must_fit_the_features(small_dataset):
    ds, _ = small_dataset
    stats = json.loads(ds.stats_path.read_text())
    stats["action"]["mean"] = [1, 2]
    ds.stats_path.write_text(json.dumps(stats))
    with pytest.raises(DatasetFormatError, match=r"stats.json: field 'action.mean': holds 2 int64 values; action "
                                                 r"needs 3 numbers"):
        _ = ds.stats
    stats["action"]["mean"] = [0.0, 0.0, 0.0]
    stats["observation.images.front"]["count"] = [1, 2]
    ds.stats_path.write_text(json.dumps(stats))
    with pytest.raises(DatasetFormatError, match="'observation.images.front.count': holds 2 int64 values"):
        _ = ds.stats
    ds.stats_path.write_text(json.dumps({"action": {"q01": [[1, 2], [3]]}}))
    with pytest.raises(DatasetFormatError, match="stats.json: holds a list numpy cannot read"):
        _ = ds.stats
    ds.stats_path.write_text('{"action": {"q99": [1.0, NaN, 2.0]}}')  # JSON's NaN, as Python's json writes it
    with pytest.raises(DatasetFormatError,
                       match=r"stats.json: field 'action.q99': holds NaN or inf: \[1.0, nan, 2.0\]"):
        _ = ds.stats
    ds.stats_path.write_text(json.dumps({"action": [0.0, 1.0, 2.0]}))  # was dropped: the dataset looked stat-less
    with pytest.raises(DatasetFormatError, match="stats.json: field 'action': must be an object of statistics "
                                                 r"\(min, max, mean, .*\), got list"):
        _ = ds.stats


def test_check_files_finds_frames_no_episode_lists(small_dataset):
    ds, _ = small_dataset
    ds.check_files()
    # a crash before the metadata was rewritten: the last episode's rows and frames are on disk, but listed nowhere
    table = pq.read_table(ds.root / DATA)
    last = pc.equal(table.column("episode_index"), 2)
    pq.write_table(table.filter(pc.invert(last)), ds.root / DATA)
    pq.write_table(table.filter(last), ds.root / "data/chunk-000/file-001.parquet")
    _rewrite_parquet(ds.root / EPISODES, lambda t: t.slice(0, 2))
    _edit_info(ds.root, lambda i: i.update(total_episodes=2, total_frames=19))
    reopened = LeRobotDataset.open(ds.root)
    assert [reopened.episode(i).length for i in range(2)] == [12, 7]
    with pytest.raises(DatasetFormatError, match="data/chunk-000/file-001.parquet: no episode in meta/episodes places"):
        reopened.check_files()
    (ds.root / "data/chunk-000/file-001.parquet").unlink()
    with pytest.raises(DatasetFormatError, match=f"{VIDEO}: holds 28 frames but the episodes meta/episodes places in "
                                                 "it end at frame 19"):
        LeRobotDataset.open(ds.root).check_files()


def test_check_files_judges_each_video_file_by_the_episodes_it_holds(tmp_path):
    """`check_files` takes each file's episodes together (a path per file, not per episode: DROID lists 90k episodes):
    frames past the last episode of one file are found though the episodes of the files after it end later."""
    episodes = [dict(make_episode(6, seed=i, offset=10 * i), task="pick") for i in range(3)]
    ds = write_episodes(tmp_path / "ds", episodes, fps=10, video_codec="libx264rgb", chunks_size=2,
                        data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)  # a file each, over two chunks
    ds.check_files()
    key = "videos/observation.images.front/to_timestamp"

    def shorter(table: pa.Table) -> pa.Table:  # episode 1 ends 3 frames early: its file's last 3 are no episode's
        second = pc.equal(table.column("episode_index"), 1)
        return table.set_column(table.column_names.index(key), key,
                                pc.if_else(second, pc.subtract(table.column(key), 0.3), table.column(key)))

    for path in (ds.root / "meta/episodes").rglob("*.parquet"):
        _rewrite_parquet(path, shorter)
    with pytest.raises(DatasetFormatError, match="videos/observation.images.front/chunk-000/file-001.mp4: holds 6 "
                                                 "frames but the episodes meta/episodes places in it end at frame 3"):
        LeRobotDataset.open(ds.root).check_files()


def test_check_files_counts_the_frames_of_a_container_that_does_not_report_them(small_dataset):
    """Matroska keeps no frame count in its header (PyAV reads 0): the trailing-frames check passed such a file
    unchecked; it now counts the packets."""
    import av

    ds, _ = small_dataset
    path = ds.root / VIDEO
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    frames += frames[-2:]  # two frames past the end of the last listed episode (frame 28)
    with av.open(str(path), "w", format="matroska") as container:  # same name: PyAV probes the content
        stream = container.add_stream("libx264rgb", rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the premise: no count in the header
    reopened = LeRobotDataset.open(ds.root)
    assert reopened.episode(2).length == 9  # the file itself reads
    with pytest.raises(DatasetFormatError, match=f"{VIDEO}: holds 30 frames but the episodes meta/episodes places in "
                                                 "it end at frame 28"):
        reopened.check_files()


def test_open_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        LeRobotDataset.open(tmp_path / "nope")


def test_reads_pandas_unnamed_index_variable_lists_and_embedded_images(small_dataset):
    """Variants other writers produce: unnamed pandas index, list<float> columns, images embedded in parquet."""
    import io

    from PIL import Image

    ds, written = small_dataset
    root = ds.root
    pq.write_table(
        pa.table({"task_index": [1, 0], "__index_level_0__": ["push the cube | shove the block", "pick the cube"]}),
        root / "meta/tasks.parquet",
    )
    pngs = []
    for frame in frame_ramp(28, 4, 6):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})

    def edit(table):
        action = table.column("action").combine_chunks()
        as_list = pa.ListArray.from_arrays(pa.array(np.arange(0, 3 * 28 + 1, 3), pa.int32()), action.flatten())
        table = table.set_column(table.column_names.index("action"), "action", as_list)
        return table.append_column("observation.images.wrist", pa.array(pngs))

    _rewrite_parquet(root / DATA, edit)
    _edit_info(
        root,
        lambda i: i["features"].update(
            {
                "observation.images.wrist": {
                    "dtype": "image",
                    "shape": [4, 6, 3],
                    "names": ["height", "width", "channels"],
                }
            }
        ),
    )
    reopened = LeRobotDataset.open(root)
    assert reopened.tasks == ["pick the cube", "push the cube | shove the block"]
    ep = reopened.episode(1)
    np.testing.assert_array_equal(ep.frames["action"], written[1]["frames"]["action"])
    np.testing.assert_array_equal(ep.videos["observation.images.wrist"], frame_ramp(28, 4, 6)[12:19])
    # part of an episode, as `dataset frame` reads it: the image cells of those rows only
    np.testing.assert_array_equal(reopened.camera_frames(1, "observation.images.wrist", 2, 5),
                                  frame_ramp(28, 4, 6)[14:17])
    # an image of another size than info.json's is named by its frame (np.stack failed on it, or it passed)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(buf, format="PNG")
    pngs[15] = {"bytes": buf.getvalue(), "path": None}
    _set_column(root / DATA, "observation.images.wrist", lambda n: pa.array(pngs))
    with pytest.raises(DatasetFormatError, match=r"field 'observation.images.wrist': the image of frame 3 is 5x6 but "
                                                 "info.json says 4x6"):
        LeRobotDataset.open(root).episode(1)


def test_sixteen_bit_embedded_images_are_read_at_full_scale_not_clipped(small_dataset, caplog):
    """Embedded images went through Pillow's RGB conversion, which clips 16-bit pixels (a depth camera's PNG) to
    white: all but the darkest came out 255, silently. They are read as inference reads such a file (x / 65535),
    rounded to 8 bits, and the feature is named once in a warning."""
    import io
    import logging

    from PIL import Image

    ds, _ = small_dataset
    depth = [(np.arange(24).reshape(4, 6) * 2700 + t).astype(np.uint16) for t in range(28)]
    pngs = []
    for frame in depth:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        assert Image.open(buf).mode == "I;16"  # the premise: a 16-bit greyscale PNG
        pngs.append({"bytes": buf.getvalue(), "path": None})
    _rewrite_parquet(ds.root / DATA, lambda table: table.append_column("observation.images.depth", pa.array(pngs)))
    _edit_info(ds.root, lambda i: i["features"].update(
        {"observation.images.depth": {"dtype": "image", "shape": [4, 6, 3], "names": ["height", "width", "channels"]}}))
    reopened = LeRobotDataset.open(ds.root)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.data.lerobot"):
        frames = reopened.episode(1).videos["observation.images.depth"]
        reopened.episode(1)
    expected = np.round(np.stack(depth[12:19]) / 65535 * 255).astype(np.uint8)
    assert frames.dtype == np.uint8 and frames.shape == (7, 4, 6, 3)
    np.testing.assert_array_equal(frames, np.repeat(expected[..., None], 3, axis=-1))
    [warning] = [r.getMessage() for r in caplog.records]
    assert "'observation.images.depth' holds I;16 images" in warning and "x / 65535" in warning


def test_a_dataset_with_embedded_images_is_copied_as_the_docs_copy_one(small_dataset, tmp_path):
    """`write_episodes(dst, src.episodes(), features=src.features, ...)`, the copy docs/data.md shows, refused a dataset
    with an `image` feature ("use dtype 'video'"), though the reader returns its frames as a video's. The feature is
    written as a video, frame for frame (lossless codec)."""
    import io

    from PIL import Image

    ds, _ = small_dataset
    pngs = []
    for frame in frame_ramp(28, 4, 6):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG")
        pngs.append({"bytes": buf.getvalue(), "path": None})
    _rewrite_parquet(ds.root / DATA, lambda table: table.append_column("observation.images.wrist", pa.array(pngs)))
    _edit_info(ds.root, lambda i: i["features"].update(
        {"observation.images.wrist": {"dtype": "image", "shape": [4, 6, 3], "names": ["height", "width", "channels"]}}))
    src = LeRobotDataset.open(ds.root)
    copy = write_episodes(tmp_path / "copy", src.episodes(), fps=src.fps, features=src.features,
                          robot_type=src.robot_type, video_codec="libx264rgb")
    wrist = copy.features["observation.images.wrist"]
    assert (wrist["dtype"], wrist["shape"]) == ("video", [4, 6, 3]) and "observation.images.wrist" in copy.video_keys
    for a, b in zip(src.episodes(), copy.episodes()):
        for key in ("observation.images.front", "observation.images.wrist"):
            np.testing.assert_array_equal(a.videos[key], b.videos[key])


# ------------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda e: e["frames"].pop("action"), r"frames of episode 0: missing \['action'\]"),
        (lambda e: e["frames"].update(extra=np.zeros(5)), r"unexpected \['extra'\]"),
        (lambda e: e["frames"].update(action=np.zeros((5, 4), np.float32)), r"frames\['action'\] .* shape \(5, 4\)"),
        (lambda e: e["frames"].update(**{"next.reward": np.full(5, 0.5)}), r"frames\['next.reward'\] .* float64"),
        (lambda e: e["frames"].update(action=np.zeros((4, 3), np.float32)), "same number of frames"),
        (
            lambda e: e["videos"].update(**{"observation.images.front": np.zeros((5, 16, 16, 3), np.float32)}),
            r"videos\['observation.images.front'\] .* uint8",
        ),
        (lambda e: e.update(task=""), "task=''"),
        (lambda e: e.update(task=["t", "", "t", "t", "t"]), r"task\[1\]=''"),
        (lambda e: e.update(task=["t"] * 4), "task of episode 0 holds 4 strings for 5 frames"),
        (
            lambda e: e["frames"]["action"].__setitem__((2, 1), np.nan),
            r"frames\['action'\] of episode 0 holds NaN or inf \(first at frame 2\)",
        ),
    ],
)
def test_writer_rejects_bad_episodes(tmp_path, mutate, match):
    features = {
        **{
            k: {"dtype": str(v.dtype), "shape": [1 if v.ndim == 1 else v.shape[1]]}
            for k, v in make_episode(5, seed=0)["frames"].items()
        },
        "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]},
    }
    episode = dict(make_episode(5, seed=0), task="t")
    mutate(episode)
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10, features=features)
    with pytest.raises(ValueError, match=match):
        writer.add_episode(episode["frames"], episode["videos"], episode["task"])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"fps": 0}, "fps=0"),
        ({"video_codec": "mjpeg"}, "video_codec='mjpeg'; accepted: libx264, libx264rgb, libsvtav1"),
        (
            {"features": {"a": {"dtype": "float32", "shape": [1]}, "timestamp": {"dtype": "float64", "shape": [1]}}},
            r"features\['timestamp'\] is .*writer fills in itself, as dtype 'float32' shape \[1\]",
        ),
        ({"features": {"timestamp": {"dtype": "float32", "shape": [1]}}}, "names only the columns the writer fills"),
        (
            {"features": {"cam": {"dtype": "video", "shape": [15, 16, 3]}}},
            r"features\['cam'\]: video_codec='libx264' needs even frame sizes, got 15x16",
        ),
        ({"features": {"a": {"dtype": "float32", "shape": [2, 2]}}}, r"features.a.shape: only 1-D"),
        ({"features": {"a/b": {"dtype": "float32", "shape": [2]}}}, "without '/'"),
        ({"chunks_size": 0}, "chunks_size=0"),
        # a bool is no count nor size (True wrote a GOP of 1), as everywhere a number is asked for
        ({"video_gop": True}, r"video_gop=True must be an int >= 1"),
        ({"data_files_size_in_mb": True}, r"data_files_size_in_mb=True must be > 0"),
        # an int was written to info.json as given; a Path failed at finalize, after the whole recording
        ({"robot_type": 5}, r"robot_type=5 must be a string \(info.json's robot_type, e.g. 'panda'\) or None"),
        ({"robot_type": Path("panda")}, r"robot_type=PosixPath\('panda'\) must be a string"),
    ],
)
def test_writer_rejects_bad_settings(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LeRobotDatasetWriter(tmp_path / "ds", **{"fps": 10, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_writer_takes_a_rate_as_the_dataset_makers_check_it(tmp_path):
    """The writer refused a numpy float32 rate the makers it writes for take (`data.checks.check_rate`), in its own
    words: one check, one message."""
    with pytest.raises(ValueError, match=r"^fps=inf; accepted: a positive number of frames per second$"):
        LeRobotDatasetWriter(tmp_path / "bad", fps=float("inf"))
    episode = {"frames": {"a": np.zeros(3)}, "task": "t"}
    assert write_episodes(tmp_path / "ds", [episode], fps=np.float32(12.5)).fps == 12.5
    assert json.loads((tmp_path / "ds" / "meta" / "info.json").read_text())["fps"] == 12.5
    # numpy's counts and sizes too, info.json recording the counts as the ints they are
    write_episodes(tmp_path / "counts", [episode], fps=10, video_gop=np.int64(4), chunks_size=np.int64(2),
                   data_files_size_in_mb=np.float32(1.5))
    info = json.loads((tmp_path / "counts" / "meta" / "info.json").read_text())
    assert (info["chunks_size"], info["data_files_size_in_mb"]) == (2, 1.5)


def test_odd_frame_sizes_need_the_rgb_codec(tmp_path):
    episode = {"frames": {"a": np.zeros(3)}, "videos": {"cam": np.zeros((3, 15, 16, 3), np.uint8)}, "task": "t"}
    with pytest.raises(ValueError, match="video_codec='libx264' needs even frame sizes, got 15x16"):
        write_episodes(tmp_path / "a", [episode], fps=10)
    ds = write_episodes(tmp_path / "b", [episode], fps=10, video_codec="libx264rgb")
    assert ds.episode(0).videos["cam"].shape == (3, 15, 16, 3)


def test_finalize_without_episodes(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10)
    with pytest.raises(ValueError, match="no episodes"):
        writer.finalize()
    assert list(tmp_path.iterdir()) == []


def test_rejected_first_episode_does_not_fix_the_schema(tmp_path):
    writer = LeRobotDatasetWriter(tmp_path / "ds", fps=10)
    with pytest.raises(ValueError, match="same number of frames"):
        writer.add_episode({"a": np.zeros(3), "b": np.zeros(4)}, task="t")
    writer.add_episode({"c": np.arange(3)}, task="t")
    assert writer.finalize().feature_keys == ["c"]


_DTYPES = ("float32", "float64", "int64", "int32", "bool", "uint8")


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_DTYPES), st.integers(1, 4)), min_size=1, max_size=4),
    st.lists(st.integers(1, 9), min_size=1, max_size=3),
    st.integers(0, 2**31 - 1),
)
def test_round_trip_property(tmp_path_factory, columns, lengths, seed):
    """Any mix of dtypes, widths and episode lengths comes back bit-identical."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i, length in enumerate(lengths):
        frames = {}
        for j, (dtype, width) in enumerate(columns):
            values = rng.normal(scale=100, size=(length, width))
            frames[f"f{j}"] = (values > 0) if dtype == "bool" else values.astype(dtype)
        episodes.append({"frames": frames, "task": f"task {i % 2}"})
    ds = write_episodes(tmp_path_factory.mktemp("prop") / "ds", episodes, fps=30)
    for i, src in enumerate(episodes):
        ep = ds.episode(i)
        for key, values in src["frames"].items():
            assert ep.frames[key].dtype == values.dtype
            np.testing.assert_array_equal(ep.frames[key], values)


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_lossy_segments_seek_to_the_right_frames(tmp_path, codec):
    """Many episodes in one lossy file (GOP 8, B-frames): every episode decodes to its own frames, in order."""
    rng = np.random.default_rng(0)
    lengths = [5, 11, 3, 9, 16, 2]
    yy, xx = np.mgrid[0:32, 0:48]
    episodes, clips = [], []
    for i, length in enumerate(lengths):
        # each frame a distinct smooth pattern, so a frame off by one is far from the right one
        phases = rng.uniform(0, 2 * np.pi, size=(length, 3))
        clip = np.stack(
            [
                np.stack(
                    [
                        127 + 100 * np.sin(xx / 6 + p[0]),
                        127 + 100 * np.sin(yy / 5 + p[1]),
                        127 + 100 * np.sin((xx + yy) / 9 + p[2]),
                    ],
                    -1,
                )
                for p in phases
            ]
        ).astype(np.uint8)
        clips.append(clip)
        episodes.append({"frames": {"a": np.zeros(length, np.float32)}, "videos": {"cam": clip}, "task": "t"})
    ds = write_episodes(tmp_path / "ds", episodes, fps=15, video_codec=codec)
    assert len(list((ds.root / "videos").rglob("*.mp4"))) == 1
    for i in rng.permutation(len(lengths)):
        got = ds.episode(int(i)).videos["cam"].astype(float)
        assert got.shape[0] == lengths[i]
        for t in range(lengths[i]):
            errors = [np.mean((got[t] - src) ** 2) for src in clips[i]]
            assert int(np.argmin(errors)) == t and 10 * np.log10(255**2 / errors[t]) > 28


def test_a_home_relative_root_opens_as_the_shell_would(small_dataset, monkeypatch):
    ds, _ = small_dataset
    monkeypatch.setenv("HOME", str(ds.root.parent))
    assert LeRobotDataset.open(f"~/{ds.root.name}").num_episodes == 3


def test_a_success_column_from_another_recorder_is_read_as_0_1_or_not_read_and_said(tmp_path, caplog):
    """A recorder that stores success as ints 0/1 is read as bools; a column that says less than one flag per episode
    (nulls, other values) is not read and said, and the dataset still opens: its frames are good for all else."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data import LeRobotDataset, LeRobotDatasetWriter

    writer = LeRobotDatasetWriter(tmp_path / "ds", 10)
    for ok in (True, False):
        writer.add_episode({"x": np.zeros((3, 1), np.float32)}, task="t", success=ok)
    writer.finalize()
    [path] = (tmp_path / "ds" / "meta" / "episodes").rglob("*.parquet")
    table = pq.read_table(path)
    at = table.column_names.index("success")
    for column, expected in (([1, 0], [True, False]), ([1, None], None), ([2, 0], None)):
        pq.write_table(table.set_column(at, "success", pa.array(column, pa.int64())), path)
        caplog.clear()
        ds = LeRobotDataset.open(tmp_path / "ds")
        assert ds.num_episodes == 2
        assert (None if ds.episode_success is None else ds.episode_success.tolist()) == expected
        assert ("it is not read, so this dataset does not say which episodes succeeded" in caplog.text) == (
            expected is None)


def test_add_episode_fields_keep_their_type_and_refuse_what_they_cannot_be(tmp_path, monkeypatch):
    """`fields` carry a recorder's own meta/episodes columns (what `dataset select`/`merge` copy): a pyarrow scalar's
    type is kept, a missing one is null; LeRobot's own columns, `success` and a value of another type are refused."""
    writer = LeRobotDatasetWriter(tmp_path / "ds", 10)
    frames = {"x": np.zeros((3, 1), np.float32)}
    writer.add_episode(frames, task="t", fields={"level": pa.scalar(2, pa.int8())})
    for fields, match in (({"length": 3}, "one of LeRobot's own"), ({"stats/x/min": 0}, "one of LeRobot's own"),
                          ({"success": True}, "pass success="),
                          ({"level": pa.scalar(2, pa.int64())}, "is int64, earlier episodes' int8"),
                          ({"level": "high"}, "is not a column value of type int8")):
        with pytest.raises(ValueError, match=f"fields: .* of episode 1 .*{match}"):
            writer.add_episode(frames, task="t", fields=fields)
    writer.add_episode(frames, task="t", fields={"note": "late"})
    ds = writer.finalize()
    assert ds.num_episodes == 2 and ds.episode_fields() == [{"level": 2, "note": None}, {"level": None, "note": "late"}]
    assert ds.episode_columns().schema == pa.schema([("level", pa.int8()), ("note", pa.string())])
    # `dataset info` lists them from the schemas `open` read, no episodes file read again (DROID's 90: ~1 s), typed
    # as `episode_columns` joins them: a file's all-null column takes another file's type
    read, real = [], pq.read_table
    monkeypatch.setattr(pq, "read_table",
                        lambda path, columns=None: read.append(columns) or real(path, columns=columns))
    assert ds.summary()["episode_columns"] == {"level": "int8", "note": "string"}
    assert read == []
    monkeypatch.undo()
    first = ds.root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(first)
    pq.write_table(table.slice(1), first)
    pq.write_table(table.slice(0, 1).drop(["note"]).append_column("note", pa.nulls(1)),
                   first.with_name("file-001.parquet"))
    reopened = LeRobotDataset.open(ds.root)
    assert reopened.summary()["episode_columns"] == {"level": "int8", "note": "string"}
    assert reopened.episode_columns().schema == pa.schema([("level", pa.int8()), ("note", pa.string())])
    pq.write_table(table.slice(0, 1).drop(["note"]).append_column("note", pa.array([1.5])),
                   first.with_name("file-001.parquet"))
    with pytest.raises(DatasetFormatError, match="meta/episodes: its files' own columns differ in type"):
        LeRobotDataset.open(ds.root).summary()


def _same_dataset(got: LeRobotDataset, want: LeRobotDataset) -> None:
    """Every file of `got` holds what `want`'s does: the parquet tables, the JSON metadata, the videos' bytes."""
    files = sorted(p.relative_to(want.root) for p in want.root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(got.root) for p in got.root.rglob("*") if p.is_file()) == files
    for rel in files:
        if rel.suffix == ".parquet":
            assert pq.read_table(got.root / rel).equals(pq.read_table(want.root / rel)), rel
        elif rel == Path(CARD_FILE):  # the card names its own dataset
            named = [(ds.root / rel).read_text().replace(ds.root.name, "NAME") for ds in (got, want)]
            assert named[0] == named[1]
        else:
            assert (got.root / rel).read_bytes() == (want.root / rel).read_bytes(), rel


def test_streamed_videos_make_the_files_and_stats_of_whole_ones(tmp_path):
    """An episode's videos appended a block at a time, cameras in any order (`stream_videos`), give the dataset its
    arrays give: the same mp4 bytes, timestamps, files rolled over at the same episodes and the same video stats."""
    rng = np.random.default_rng(0)
    episodes = []
    for i, length in enumerate((7, 130, 3)):  # 130 > VIDEO_STATS_FRAMES: the stats sample some frames only
        ep = make_episode(length, seed=i, offset=10 * i)
        ep["videos"]["observation.images.wrist"] = rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8)
        episodes.append(dict(ep, task=f"task {i}"))
    options = {"video_codec": "libx264rgb", "video_files_size_in_mb": 0.02, "chunks_size": 2}
    whole = write_episodes(tmp_path / "whole", episodes, fps=10, **options)
    writer = LeRobotDatasetWriter(tmp_path / "streamed", 10, whole.features, **options)
    for ep, block in zip(episodes, (2, 50, 5)):
        stream = writer.stream_videos(len(ep["frames"]["action"]))
        front, wrist = ep["videos"]["observation.images.front"], ep["videos"]["observation.images.wrist"]
        for start in range(0, len(front), block):
            stream.append({"observation.images.wrist": wrist[start:start + block]})
            stream.append({"observation.images.front": front[start:start + block], "observation.images.wrist":
                           wrist[:0]})
        writer.add_episode(ep["frames"], stream, ep["task"])
    streamed = writer.finalize()
    assert len(list((whole.root / "videos").rglob("*.mp4"))) > 2  # the files did roll over
    _same_dataset(streamed, whole)


def test_a_streamed_episode_is_checked_and_must_be_added_or_aborted(tmp_path):
    ep = make_episode(4, seed=0)
    front = ep["videos"]["observation.images.front"]
    inferred = LeRobotDatasetWriter(tmp_path / "inferred", 10)
    with pytest.raises(ValueError, match="stream_videos: the writer's features are inferred"):
        inferred.stream_videos(4)
    inferred.abort()
    features = {"x": {"dtype": "float32", "shape": [1]},
                "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}}
    writer = LeRobotDatasetWriter(tmp_path / "ds", 10, features, video_codec="libx264rgb")
    with pytest.raises(ValueError, match=r"length=0 must be a positive number of frames"):
        writer.stream_videos(0)
    stream = writer.stream_videos(4)
    with pytest.raises(ValueError, match=r"blocks: 'x' is not a video of the dataset; its videos are "
                                         r"\['observation.images.front'\]"):
        stream.append({"observation.images.front": front[:3], "x": front})
    with pytest.raises(ValueError,
                       match=r"blocks\['observation.images.front'\]: 5 frames after 0 pass the episode's 4"):
        stream.append({"observation.images.front": np.concatenate([front, front[:1]])})
    assert stream.counts == {"observation.images.front": 0}  # nothing of a refused call is encoded
    with pytest.raises(ValueError, match=r"expected uint8 \(n, 16, 16, 3\)"):
        stream.append({"observation.images.front": front.astype(np.float32)})
    stream.append({"observation.images.front": front[:3]})
    with pytest.raises(ValueError, match=r"\{'observation.images.front': 3\} hold fewer frames than the episode's"):
        writer.add_episode({"x": np.zeros(4)}, stream, "t")
    for refused in (lambda: writer.add_episode({"x": np.zeros(4)}, {"observation.images.front": front}, "t"),
                    writer.finalize,
                    lambda: writer.stream_videos(4)):
        with pytest.raises(RuntimeError, match=r"streamed \(stream_videos\) but the episode was not added"):
            refused()
    stream.append({"observation.images.front": front[3:]})
    with pytest.raises(ValueError, match=r"every array needs the same number of frames >= 1, got \{'videos \("
                                         r"streamed\)': 4, 'x': 2\}"):
        writer.add_episode({"x": np.zeros(2)}, stream, "t")  # a wrong column: the stream waits for a right one
    other = LeRobotDatasetWriter(tmp_path / "other", 10, features, video_codec="libx264rgb")
    with pytest.raises(ValueError, match="an EpisodeVideoStream of another writer"):
        other.add_episode({"x": np.zeros(4)}, stream, "t")
    other.abort()
    assert writer.add_episode({"x": np.zeros(4)}, stream, "t") == 0
    with pytest.raises(RuntimeError, match="were added or the writer aborted"):
        stream.append({"observation.images.front": front[:1]})
    np.testing.assert_array_equal(writer.finalize().episode(0).videos["observation.images.front"], front)
    aborted = LeRobotDatasetWriter(tmp_path / "aborted", 10, features, video_codec="libx264rgb")
    aborted.stream_videos(4).append({"observation.images.front": front[:2]})
    aborted.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # nothing staged is left


def test_an_episode_whose_videos_fail_to_encode_in_add_episode_leaves_only_abort(tmp_path, monkeypatch):
    """Encoding an episode given as arrays failed part way: the writer's follow-up refusal told the caller to add the
    stream (add_episode(frames, stream, ...)), which it never held; only an abort applies, and it must say so."""
    from worldpolicy.data import lerobot

    ep = make_episode(4, seed=0)
    features = {"x": {"dtype": "float32", "shape": [1]},
                "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}}
    writer = LeRobotDatasetWriter(tmp_path / "ds", 10, features, video_codec="libx264rgb")

    def full(self, frames, keyframe=False):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lerobot.VideoFileWriter, "append", full)
    videos = {"observation.images.front": ep["videos"]["observation.images.front"]}
    with pytest.raises(OSError, match="No space left"):
        writer.add_episode({"x": np.zeros(4)}, videos, "t")
    monkeypatch.undo()
    for refused in (lambda: writer.add_episode({"x": np.zeros(4)}, videos, "t"), writer.finalize,
                    lambda: writer.stream_videos(4)):
        with pytest.raises(RuntimeError) as caught:
            refused()
        said = str(caught.value)
        assert said.startswith("add_episode of episode 0 failed while encoding its videos") and said.endswith(
            "nothing more may be added or finalised; abort the writer")
        assert "add_episode(frames, stream" not in said
    writer.abort()
    assert not any(tmp_path.iterdir())  # nothing staged is left


def test_a_kept_dataset_is_published_and_written_on_without_touching_its_files(tmp_path):
    """`keep` publishes the episodes so far (a complete dataset at root) and the writer goes on: the published files
    are never written again (a kill after the keep leaves them whole), and `finalize` publishes every episode, as one
    writer without a keep writes them."""
    episodes = [make_episode(n, seed=i, offset=10 * i) for i, n in enumerate((6, 5, 7))]
    for ep, task in zip(episodes, ("a", "b", "a")):
        ep["task"] = task
    whole = write_episodes(tmp_path / "whole", episodes, fps=10, video_codec="libx264rgb")
    root = tmp_path / "ds"
    writer = LeRobotDatasetWriter(root, fps=10, video_codec="libx264rgb")
    writer.add_episode(episodes[0]["frames"], episodes[0]["videos"], episodes[0]["task"])
    kept = writer.keep()
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    writer.add_episode(episodes[1]["frames"], episodes[1]["videos"], episodes[1]["task"])
    assert writer.keep().num_episodes == 2 and kept.num_episodes == 1
    writer.add_episode(episodes[2]["frames"], episodes[2]["videos"], episodes[2]["task"])
    # the first keep's data and video files, in the dataset now at root, as they were published
    assert {p: p.read_bytes() for p in files if "meta" not in p.parts and p.name != CARD_FILE} == {
        p: b for p, b in files.items() if "meta" not in p.parts and p.name != CARD_FILE}
    ds = writer.finalize()
    assert ds.num_episodes == 3 and ds.tasks == whole.tasks and ds.stats.keys() == whole.stats.keys()
    for i in range(3):
        got, want = ds.episode(i), whole.episode(i)
        for key in want.frames:
            np.testing.assert_array_equal(got.frames[key], want.frames[key], err_msg=key)
        np.testing.assert_array_equal(got.videos["observation.images.front"], want.videos["observation.images.front"])
    for key, stats in whole.stats.items():
        for name, value in stats.items():
            np.testing.assert_allclose(ds.stats[key][name], value, err_msg=f"{key} {name}")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_keeps_are_spaced_by_their_cost_past_every_s(monkeypatch):
    """`KeepSchedule`: a keep is due `EVERY_S` after the last one ended, or `cost / COST_SHARE` after where a keep cost
    more (a clock stands in for the wall's: no timing in the test)."""
    from worldpolicy.data import lerobot
    from worldpolicy.data.lerobot import KeepSchedule

    clock = [1000.0]
    monkeypatch.setattr(lerobot.time, "monotonic", lambda: clock[0])

    class Writer:
        def __init__(self, cost_s):
            self.cost_s = cost_s

        def keep(self):
            clock[0] += self.cost_s
            return "kept"

    keeps = KeepSchedule()
    clock[0] += KeepSchedule.EVERY_S - 1
    assert not keeps.due()
    clock[0] += 1
    assert keeps.due() and keeps.keep(Writer(1.0)) == "kept"
    clock[0] += KeepSchedule.EVERY_S
    assert keeps.due()  # a cheap keep: every EVERY_S from its end
    keeps.keep(Writer(60.0))  # 60 s: the next one 60 / 0.05 = 1200 s after it ended
    clock[0] += KeepSchedule.EVERY_S
    assert not keeps.due()
    clock[0] += 60.0 / KeepSchedule.COST_SHARE - KeepSchedule.EVERY_S
    assert keeps.due()


def test_an_episode_of_another_frame_size_is_refused_saying_one_size_per_video_feature(tmp_path):
    """Raw clips of several sizes written as episodes: the refusal gave both shapes but not that a video feature
    holds one frame size (the first episode's), nor what to do."""
    writer = LeRobotDatasetWriter(tmp_path / "ds", 10, video_codec="libx264rgb")
    writer.add_episode({}, {"observation.image": np.zeros((3, 16, 24, 3), np.uint8)}, task="t")
    with pytest.raises(ValueError, match=r"^videos\['observation.image'\] of episode 1 is uint8 \(3, 24, 16, 3\); "
                                         r"expected uint8 \(3, 16, 24, 3\): a video feature's frames are one size in "
                                         r"every episode \(16x24, the first episode's or features=\), so resize or "
                                         r"pad these"):
        writer.add_episode({}, {"observation.image": np.zeros((3, 24, 16, 3), np.uint8)}, task="t")
    with pytest.raises(ValueError, match=r"expected uint8 \(3, 16, 24, 3\)$"):  # another dtype: no more said
        writer.add_episode({}, {"observation.image": np.zeros((3, 16, 24, 3), np.float32)}, task="t")
    writer.abort()
