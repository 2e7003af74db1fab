"""`worldpolicy dataset convert` / `convert_dataset`: a LeRobot v2.1 or v2.0 dataset (built here from arrays, as
LeRobot lays one out) written as a new v3.0 dataset, its videos copied as their packets, the source only read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_factory import frame_ramp, write_v2_dataset

from worldpolicy.cli import main
from worldpolicy.data import DatasetFormatError, LeRobotDataset, convert_dataset
from worldpolicy.data.convert import CONVERT_SOURCE, open_v2

FRONT, WRIST = "observation.images.front", "observation.images.wrist"


def _episodes(lengths=(5, 7, 4), cameras=(FRONT, WRIST), fields=False) -> list[dict]:
    """Episodes of random actions and state, a noise camera (what a lossy codec changes most) and a ramp one of
    another size; the last switches task halfway."""
    rng = np.random.default_rng(0)
    out = []
    for e, n in enumerate(lengths):
        videos = {FRONT: rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8),
                  WRIST: frame_ramp(n, 16, 24, offset=10 * e)}
        tasks = ["pick the cube"] * n if e < len(lengths) - 1 else ["pick the cube"] * (n // 2) + ["place it"] * (
            n - n // 2)
        out.append({"frames": {"action": rng.normal(size=(n, 3)).astype(np.float32),
                               "observation.state": rng.normal(size=(n, 2))},
                    "videos": {k: v for k, v in videos.items() if k in cameras}, "tasks": tasks,
                    **({"fields": {"operator": f"op{e}"}} if fields else {})})
    return out


@pytest.mark.parametrize(("codec", "name"), [("libx264", "h264"), ("libsvtav1", "av1")])  # AV1: LeRobot's default
def test_a_v21_dataset_converts_losslessly_and_passes_dataset_check(tmp_path, capsys, codec, name):
    src, out = tmp_path / "v21", tmp_path / "v30"
    episodes = _episodes()
    write_v2_dataset(src, episodes, chunks_size=2, codec=codec)  # lossy: a copy, not an encode, keeps its frames
    before = sorted((p.relative_to(src), p.read_bytes()) for p in src.rglob("*") if p.is_file())

    assert main(["dataset", "convert", str(src), "--out", str(out), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 3
    assert main(["dataset", "check", str(out)]) == 0
    ds, source = LeRobotDataset.open(out), open_v2(src).dataset
    assert ds.info["codebase_version"] == "v3.0" and ds.robot_type == "testbot" and ds.fps == 10
    assert ds.provenance == {"source": CONVERT_SOURCE, "dataset": str(src), "codebase_version": "v2.1"}
    assert {ds.features[key]["info"]["video.codec"] for key in ds.video_keys} == {name}
    assert ds.tasks == ["pick the cube", "place it"]
    for i, want in enumerate(episodes):
        got, decoded = ds.episode(i), source.episode(i)
        for key, values in want["frames"].items():
            np.testing.assert_array_equal(got.frames[key], values)
        for key in want["videos"]:  # the source's own decoded frames, bit for bit: its packets were copied
            np.testing.assert_array_equal(got.videos[key], decoded.videos[key])
        np.testing.assert_array_equal(got.timestamp, (np.arange(len(want["tasks"])) / 10).astype(np.float32))
        assert list(got.frame_tasks) == want["tasks"]
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    for key in (FRONT, WRIST):  # each episode's frames, one after another in one file
        assert rows[f"videos/{key}/from_timestamp"] == [0.0, 0.5, 1.2]
        assert rows[f"videos/{key}/to_timestamp"] == [0.5, 1.2, 1.6]
    actions = np.concatenate([ep["frames"]["action"] for ep in episodes])
    stats = ds.stats["action"]
    np.testing.assert_allclose(stats["min"], actions.min(0), rtol=1e-6)
    np.testing.assert_allclose(stats["max"], actions.max(0), rtol=1e-6)
    np.testing.assert_allclose(stats["mean"], actions.mean(0), rtol=1e-5)
    assert int(stats["count"][0]) == 16 and 0 <= ds.stats[FRONT]["mean"].min() <= ds.stats[FRONT]["max"].max() <= 1
    assert sorted((p.relative_to(src), p.read_bytes()) for p in src.rglob("*") if p.is_file()) == before


def test_a_v20_dataset_converts_with_its_episodes_own_keys(tmp_path):
    src = tmp_path / "v20"
    episodes = _episodes(lengths=(3, 4), cameras=(WRIST,), fields=True)
    write_v2_dataset(src, episodes, version="v2.0", codec="libx264rgb")
    result = convert_dataset(src, tmp_path / "out")
    assert (result.videos.copied, result.videos.encoded) == (2, 0) and result.video_codec == "libx264rgb"
    ds = result.dataset
    assert ds.provenance["codebase_version"] == "v2.0"
    assert [f["operator"] for f in ds.episode_fields()] == ["op0", "op1"]
    np.testing.assert_array_equal(ds.episode(1).videos[WRIST], episodes[1]["videos"][WRIST])  # lossless codec


def test_an_episodes_success_key_is_the_success_flag_and_lerobots_own_column_names_are_refused_first(tmp_path):
    """A `success` key of meta/episodes.jsonl went to the writer as an episode column of its own, which it refuses (the
    success flag is its own argument): the conversion failed at the first episode, the error naming `fields:` and
    `success=`, which the user never passed. It is the success flag now, and a key named as one of LeRobot v3's
    columns is refused naming the file and key before anything is written."""
    episodes = _episodes(lengths=(3, 4, 2), cameras=(WRIST,))
    for e, ep in enumerate(episodes):
        ep["fields"] = {"success": e != 1, "operator": f"op{e}"}
    write_v2_dataset(tmp_path / "v21", episodes)
    ds = convert_dataset(tmp_path / "v21", tmp_path / "out").dataset
    assert ds.episode_success.tolist() == [True, False, True]
    assert [f["operator"] for f in ds.episode_fields()] == ["op0", "op1", "op2"]
    for e, ep in enumerate(episodes):
        ep["fields"] = {"dataset_from_index": e}
    write_v2_dataset(tmp_path / "own", episodes)
    with pytest.raises(DatasetFormatError, match="one of LeRobot v3.0's own meta/episodes columns") as info:
        convert_dataset(tmp_path / "own", tmp_path / "out2")
    assert info.value.path == str(tmp_path / "own/meta/episodes.jsonl") and not (tmp_path / "out2").exists()


def test_an_earlier_convert_is_replaced_only_with_overwrite(tmp_path):
    src, out = tmp_path / "v21", tmp_path / "out"
    write_v2_dataset(src, _episodes(lengths=(3,), cameras=()))
    convert_dataset(src, out)
    with pytest.raises(FileExistsError, match="an earlier `dataset convert` run's dataset; pass overwrite=True"):
        convert_dataset(src, out)
    assert convert_dataset(src, out, overwrite=True).dataset.num_frames == 3
    with pytest.raises(ValueError, match="is inside the dataset being converted"):
        convert_dataset(src, src / "v3")


def _info(root: Path, **changes) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info.update(changes)
    (root / "meta/info.json").write_text(json.dumps(info))


@pytest.mark.parametrize(("spoil", "file", "match"), [
    (lambda r: _info(r, codebase_version="v1.6"), "meta/info.json",
     "field 'codebase_version': got 'v1.6'; accepted: 'v2.0', 'v2.1'"),
    (lambda r: _info(r, data_path="data/episode_{index:06d}.parquet"), "meta/info.json",
     ("field 'data_path': got 'data/episode_{index:06d}.parquet'; accepted: a path template inside the dataset "
      "folder naming episode_chunk, episode_index")),
    (lambda r: _info(r, chunks_size=0), "meta/info.json", "field 'chunks_size': got 0; accepted: a positive int"),
    (lambda r: _info(r, total_frames=99), "meta/info.json",
     "field 'total_frames': says 99 but meta/episodes.jsonl gives 16"),
    (lambda r: (r / "meta/tasks.jsonl").unlink(), "meta/tasks.jsonl", "is missing"),
    (lambda r: (r / "meta/episodes.jsonl").write_text('{"episode_index": 0, "tasks": ["x"], "length": 5}\n'),
     "meta/episodes.jsonl", r"field 'tasks': line 1 names \['x'\], which meta/tasks.jsonl does not list"),
    (lambda r: (r / "videos/chunk-001/observation.images.wrist/episode_000002.mp4").unlink(),
     "videos/chunk-001/observation.images.wrist/episode_000002.mp4",
     "video file of 'observation.images.wrist' is missing"),
    (lambda r: (r / "data/chunk-000/episode_000001.parquet").unlink(), "data/chunk-000/episode_000001.parquet",
     "data file is missing .named by meta/info.json data_path for episode 1 of meta/episodes.jsonl."),
    (lambda r: _info(r, total_frames=15) or (r / "meta/episodes.jsonl").write_text(
        (r / "meta/episodes.jsonl").read_text().replace('"length": 4', '"length": 3')),
     "data/chunk-001/episode_000002.parquet", "holds 4 rows but meta/episodes.jsonl gives episode 2 length 3"),
])
def test_what_the_conversion_needs_is_checked_before_anything_is_written(tmp_path, spoil, file, match):
    src, out = tmp_path / "v21", tmp_path / "out"
    write_v2_dataset(src, _episodes(cameras=(WRIST,)), chunks_size=2)
    spoil(src)
    with pytest.raises(DatasetFormatError, match=match) as info:
        convert_dataset(src, out)
    assert info.value.path == str(src / file)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["v21"]


def test_an_episodes_rows_found_wrong_while_converting_are_named_against_meta_episodes_jsonl(tmp_path):
    """A data file whose `index` column disagrees with where meta/episodes.jsonl's lengths put the episode is found as
    the episode is read: the error named `meta/episodes` (v3's folder, which a 2.x dataset has not) and its
    dataset_from_index column (which meta/episodes.jsonl has not)."""
    src, out = tmp_path / "v21", tmp_path / "out"
    write_v2_dataset(src, _episodes(lengths=(3, 4), cameras=()))
    path = src / "data/chunk-000/episode_000001.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index("index"), "index", pa.array(np.arange(4) + 10)), path)
    with pytest.raises(DatasetFormatError) as info:
        convert_dataset(src, out)
    assert info.value.path == str(path) and str(info.value).endswith(
        "field 'index': frame 0 of episode 1 has index 10; meta/episodes.jsonl starts episode 1 at frame 3 of the "
        "dataset, so frame t must have index 3 + t")
    assert not out.exists()


def test_a_v3_dataset_is_not_converted_and_the_command_names_the_flag(small_dataset, tmp_path, capsys):
    ds, _ = small_dataset
    with pytest.raises(DatasetFormatError, match="got 'v3.0': the dataset is v3.0 already and reads as it is"):
        convert_dataset(ds.root, tmp_path / "out")
    assert main(["dataset", "convert", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) != 0
    assert "SRC='" in capsys.readouterr().err


def test_the_reader_points_a_v2_dataset_at_convert_and_the_converted_one_reads(tmp_path):
    src = tmp_path / "v21"
    write_v2_dataset(src, _episodes(lengths=(2,), cameras=()))
    with pytest.raises(DatasetFormatError) as info:
        LeRobotDataset.open(src)
    assert f"`worldpolicy dataset convert {src} --out NEW`" in str(info.value)  # the command to run, not SRC
    spaced = tmp_path / "my data"
    write_v2_dataset(spaced, _episodes(lengths=(2,), cameras=()))
    with pytest.raises(DatasetFormatError, match=r"`worldpolicy dataset convert '[^`]*/my data' --out NEW`"):
        LeRobotDataset.open(spaced)  # quoted for the shell
    assert convert_dataset(src, tmp_path / "v30").dataset.num_episodes == 1
