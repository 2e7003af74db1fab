"""`worldpolicy dataset select|merge|split` / `select_episodes`, `merge_datasets`, `split_dataset`: curating datasets
into new ones (keep some episodes, rename or drop features, join recordings, deal episodes out into train and
validation sets), written through the dataset writer, the sources only read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from dataset_factory import make_episode

from worldpolicy.cli import main
from worldpolicy.data import (
    LeRobotDataset,
    LeRobotDatasetWriter,
    merge_datasets,
    select_episodes,
    split_dataset,
    write_episodes,
)
from worldpolicy.data.edit import MERGE_SOURCE, SELECT_SOURCE, SPLIT_SOURCE

FRONT = "observation.images.front"


def _dataset(root: Path, lengths=(5, 4, 6, 3), success=None, codec: str = "libx264rgb", offset: int = 0,
             tasks=("pick the cube", "push the cube"), provenance=None, fields=None, gop: int = 8,
             **changes) -> LeRobotDataset:
    """Episodes of `make_episode` (episode i's action column 0 counts from 10·(i + offset)), their tasks in turn, each
    flagged with `success[i]` where given and with meta/episodes columns `fields(i)` (a dict); `changes` replace
    features' frames (`action=...` a function of them)."""
    with LeRobotDatasetWriter(root, 10, None, "testbot", video_codec=codec, provenance=provenance,
                              video_gop=gop) as writer:
        for i, length in enumerate(lengths):
            ep = make_episode(length, seed=i + offset, offset=10 * (i + offset))
            frames = {k: changes[k](v) if k in changes else v for k, v in ep["frames"].items()}
            writer.add_episode(frames, ep["videos"], tasks[i % len(tasks)],
                               success=None if success is None else success[i],
                               fields=None if fields is None else fields(i))
        return writer.finalize()


def _same_episode(got, want, lossless: bool = True) -> None:
    """Frames, tasks and success bit for bit; video frames exactly (lossless) or within a lossy codec's error."""
    assert got.frames.keys() == want.frames.keys()
    for key, values in want.frames.items():
        np.testing.assert_array_equal(got.frames[key], values)
    assert got.frame_tasks == want.frame_tasks and got.success == want.success
    if lossless:
        np.testing.assert_array_equal(got.videos[FRONT], want.videos[FRONT])
    else:
        diff = np.abs(got.videos[FRONT].astype(int) - want.videos[FRONT].astype(int))
        assert diff.mean() < 2 and diff.max() <= 8


def test_select_keeps_exactly_the_chosen_episodes_renumbered_with_provenance(tmp_path, capsys):
    src = _dataset(tmp_path / "src", success=[True, False, True, False])
    result = select_episodes(src, tmp_path / "out", [3, 0, 2], drop_episodes=[-2])
    out = result.dataset
    assert out.num_episodes == 2 and list(out.episode_lengths) == [5, 3]  # ascending, 2 dropped
    for new, old in enumerate((0, 3)):
        _same_episode(out.episode(new), src.episode(old))
    np.testing.assert_array_equal(out.column("episode_index").reshape(-1), [0] * 5 + [1] * 3)
    np.testing.assert_array_equal(out.column("index").reshape(-1), np.arange(8))
    assert out.episode_success.tolist() == [True, False]
    assert result.origins == ((src.root, 0), (src.root, 3)) and result.video_codec == "libx264rgb"
    prov = out.provenance
    assert prov["source"] == SELECT_SOURCE and prov["episodes"] == [0, 3]
    assert Path(prov["dataset"]) == src.root.resolve()
    # stats over what was kept, as the writer computes them
    kept = np.concatenate([src.episode(i).frames["action"] for i in (0, 3)])
    np.testing.assert_allclose(out.stats["action"]["mean"], kept.mean(axis=0), rtol=1e-6)
    assert out.stats["action"]["count"].item() == 8
    assert out.tasks == ["pick the cube", "push the cube"]
    assert main(["dataset", "check", str(out.root)]) == 0
    assert "ok: 2 episodes, 8 frames" in capsys.readouterr().out


def test_success_filter_from_the_command_line_prints_the_summary(tmp_path, capsys):
    src = _dataset(tmp_path / "src", success=[True, False, True, False])
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "ok"), "--success", "only",
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["success"] == {"succeeded": 2, "failed_episodes": []}
    assert summary["provenance"]["episodes"] == [0, 2]
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "bad"), "--success", "failures",
                 "--episodes", "1-3", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["episodes"] == [1, 3]
    bad = LeRobotDataset.open(tmp_path / "bad")
    _same_episode(bad.episode(1), src.episode(3))
    # spaces, commas and ranges alike; a rerun over an earlier select only with --overwrite
    base = ["dataset", "select", str(src.root), "--out", str(tmp_path / "ok"), "--no-progress"]
    assert main([*base, "--episodes", "0", "2,3"]) == 2
    assert "holds an earlier `dataset select` run's dataset; pass --overwrite" in capsys.readouterr().err
    assert main([*base, "--episodes", "0", "2,3", "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["provenance"]["episodes"] == [0, 2, 3]


@pytest.mark.parametrize("kwargs, match", [
    ({"episodes": [4]}, r"episodes=\[4\]: \[4\] out of range; accepted: episode indexes in 0..3"),
    ({"episodes": []}, r"episodes=\[\]: none given"),
    ({"drop_episodes": [9]}, r"drop_episodes=\[9\]: \[9\] out of range"),
    # a repeated index (a typo, likely) is refused, as training refuses it, not silently kept once
    ({"episodes": [0, 2, 1, 2]}, r"episodes=\[0, 2, 1, 2\]: \[2\] given more than once; name each episode once"),
    ({"drop_episodes": [3, -1]}, r"drop_episodes=\[3, -1\]: \[3\] given more than once \(a negative index"),
    ({"episodes": [1], "drop_episodes": [1]}, r"episodes=\[1\], drop_episodes=\[1\]: leave no episode of the 4"),
    ({"success": "only"}, (r"success='only': dataset .* does not say which episodes succeeded \(no success column in "
                           r"meta/episodes: `dataset from-sim` records one, `dataset import-hdf5` reads one from "
                           r"sparse rewards, `dataset convert` keeps a v2 dataset's\); leave success out")),
    ({"success": "yes"}, r"success='yes'; accepted: 'only', 'failures'"),
    ({"out": "src"}, r"out: .* is the dataset being selected from"),
    ({"out": "src/sub"}, r"out: .* is inside the dataset being selected from"),
    ({"video_codec": "mpeg"}, r"video_codec='mpeg'; accepted: libx264"),
])
def test_select_refuses_before_writing(tmp_path, kwargs, match):
    src = _dataset(tmp_path / "src", lengths=(3, 3, 3, 3))
    out = tmp_path / kwargs.pop("out", "out")
    with pytest.raises(ValueError, match=match):
        select_episodes(src, out, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing written, no staging folder left


def test_out_holding_another_dataset_is_refused_and_an_existing_select_needs_overwrite(tmp_path, capsys):
    src = _dataset(tmp_path / "src", lengths=(3, 3))
    other = _dataset(tmp_path / "other", lengths=(3,))
    with pytest.raises(FileExistsError, match="holds a dataset not made by `dataset select` or `dataset merge`; "
                       r".* \(overwrite=True replaces only a dataset `dataset select` or `dataset merge` made\)"):
        select_episodes(src, other.root, [0])
    merge_datasets([src, other], tmp_path / "out")  # named by what made it, which select may replace
    with pytest.raises(FileExistsError, match="earlier `dataset merge` run's dataset; pass overwrite=True"):
        select_episodes(src, tmp_path / "out", [1])
    select_episodes(src, tmp_path / "out", [0], overwrite=True)
    with pytest.raises(FileExistsError, match="earlier `dataset select` run's dataset; pass overwrite=True"):
        select_episodes(src, tmp_path / "out", [1])
    assert select_episodes(src, tmp_path / "out", [1], overwrite=True).dataset.provenance["episodes"] == [1]
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--episodes", "0,a"]) == 2
    assert "--episodes '0,a': expected episode indices" in capsys.readouterr().err
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--episodes", "7"]) == 2
    assert "--episodes=[7]: [7] out of range" in capsys.readouterr().err
    # every choosing flag of an empty selection is named as typed, not as the Python parameter
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--episodes", "1",
                 "--drop-episodes", "1"]) == 2
    assert "--episodes=[1], --drop-episodes=[1]: leave no episode of the 2" in capsys.readouterr().err
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--success", "only"]) == 2
    assert "--success='only': dataset" in (err := capsys.readouterr().err) and "leave --success out" in err


def test_an_earlier_select_written_before_the_provenance_file_is_still_ours_to_overwrite(tmp_path):
    """Datasets written before meta/worldpolicy_provenance.json said what made them in info.json: --overwrite still
    tells an earlier select's (and a from-sim source's seeds still travel); one whose provenance file cannot be read
    is not taken for ours."""
    src = _dataset(tmp_path / "src", lengths=(3, 3),
                   provenance={"source": "worldpolicy dataset from-sim", "task": "reach", "seeds": [4, 6]})
    select_episodes(src, tmp_path / "out", [0])
    for root in (src.root, tmp_path / "out"):  # as written before: in info.json, no file of its own
        info = json.loads((root / "meta/info.json").read_text())
        info["worldpolicy_provenance"] = json.loads((root / "meta/worldpolicy_provenance.json").read_text())
        (root / "meta/info.json").write_text(json.dumps(info))
        (root / "meta/worldpolicy_provenance.json").unlink()
    with pytest.raises(FileExistsError, match="earlier `dataset select` run's dataset; pass overwrite=True"):
        select_episodes(tmp_path / "src", tmp_path / "out", [1])
    prov = select_episodes(tmp_path / "src", tmp_path / "out", [1], overwrite=True).dataset.provenance
    assert prov["seeds"] == [6] and prov["dataset_provenance"] == {"source": "worldpolicy dataset from-sim",
                                                                   "task": "reach"}
    assert "worldpolicy_provenance" not in json.loads((tmp_path / "out/meta/info.json").read_text())
    (tmp_path / "out/meta/worldpolicy_provenance.json").write_text("{broken")
    with pytest.raises(FileExistsError, match="holds a dataset not made by `dataset select` or `dataset merge`"):
        select_episodes(tmp_path / "src", tmp_path / "out", [1], overwrite=True)


@pytest.mark.parametrize("codec", ["libx264rgb", "libx264"])
def test_select_and_merge_stream_videos_in_blocks_into_the_files_whole_episodes_give(tmp_path, monkeypatch, codec):
    """Videos that cannot be copied as their packets are decoded and encoded a block of frames at a time (they were
    decoded whole, so a long episode sat in memory): the result is, file for file, what writing the same episodes'
    whole arrays gives, with their tasks, success flags and own meta/episodes columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data import edit
    from worldpolicy.data.lerobot import episode_row

    rng = np.random.default_rng(0)
    wrist = "observation.images.wrist"

    def recording(root, lengths, offset):
        with LeRobotDatasetWriter(root, 10, None, "testbot", video_codec=codec) as writer:
            for i, length in enumerate(lengths):
                ep = make_episode(length, seed=i + offset, offset=10 * (i + offset))
                ep["videos"][wrist] = rng.integers(0, 256, (length, 8, 12, 3), dtype=np.uint8)
                writer.add_episode(ep["frames"], ep["videos"], ["reach"] * 2 + ["grasp"] * (length - 2),
                                   success=i % 2 == 0, fields={"operator": f"op{i + offset}",
                                                               "score": pa.scalar(i / 4, pa.float32())})
            return writer.finalize()

    a, b = recording(tmp_path / "a", (9, 4, 5), 0), recording(tmp_path / "b", (7,), 3)
    blocks, reads = [], []
    camera_frames, episode = LeRobotDataset.camera_frames, LeRobotDataset.episode
    monkeypatch.setattr(LeRobotDataset, "camera_frames",
                        lambda self, i, key, start, stop: blocks.append(stop - start) or camera_frames(self, i, key,
                                                                                                         start, stop))
    monkeypatch.setattr(LeRobotDataset, "episode",
                        lambda self, i, videos=True: reads.append(videos) or episode(self, i, videos))
    monkeypatch.setattr(edit, "BLOCK_FRAMES", 4)
    monkeypatch.setattr(LeRobotDataset, "encoded_segment", lambda self, i, key: "not copied in this test")
    runs = {"select": select_episodes(a, tmp_path / "select", [0, 2]).dataset,
            "merge": merge_datasets([a, b], tmp_path / "merge").dataset}
    # each block of 4 frames (the last one shorter) of both cameras, in turn: select's episodes, then merge's
    assert blocks == [min(4, n - s) for n in (9, 5, 9, 4, 5, 7) for s in range(0, n, 4) for _ in range(2)]
    assert reads == [False] * 6  # no episode's videos decoded whole
    monkeypatch.undo()

    for name, origins in (("select", [(a, 0), (a, 2)]), ("merge", [(a, 0), (a, 1), (a, 2), (b, 0)])):
        got = runs[name]
        # named as `got` is: its card (README.md) names the dataset
        with LeRobotDatasetWriter(tmp_path / "want" / got.root.name, got.fps, got.features, "testbot",
                                  video_codec=codec, provenance=got.provenance) as want:
            for src, i in origins:
                ep = src.episode(i)  # whole
                want.add_episode(ep.frames, ep.videos, ep.frame_tasks, success=ep.success,
                                 fields=episode_row(src.episode_columns(), i))
        files = sorted(p.relative_to(want.root) for p in want.root.rglob("*") if p.is_file())
        assert sorted(p.relative_to(got.root) for p in got.root.rglob("*") if p.is_file()) == files
        for rel in files:  # the same columns, per-episode stats and video bytes
            if rel.suffix == ".parquet":
                assert pq.read_table(got.root / rel).equals(pq.read_table(want.root / rel)), (name, rel)
            else:
                assert (got.root / rel).read_bytes() == (want.root / rel).read_bytes(), (name, rel)
    assert runs["merge"].episode_fields()[3] == {"success": True, "operator": "op3", "score": 0.0}


def test_merge_holds_one_sources_video_files_open_at_a_time(tmp_path, monkeypatch):
    """Each source is read in order (`reading_in_order`) while its episodes are written, and its files are let go
    before the next source's are opened: merging many recordings does not keep every source's decoder alive."""
    from worldpolicy.data.video import SegmentReader

    sources = [_dataset(tmp_path / f"day{k}", lengths=(3, 2), offset=2 * k) for k in range(3)]
    opened, most = set(), []  # readers with a file open; how many after each start
    start, close = SegmentReader._start, SegmentReader.close

    def tracked_start(self, *args):
        start(self, *args)  # closes the file it held, if any, then opens it again or seeks
        opened.add(id(self))
        most.append(len(opened))

    def tracked_close(self):
        opened.discard(id(self))
        close(self)

    monkeypatch.setattr(LeRobotDataset, "encoded_segment", lambda self, i, key: "decoded in this test")
    monkeypatch.setattr(SegmentReader, "_start", tracked_start)
    monkeypatch.setattr(SegmentReader, "close", tracked_close)
    merged = merge_datasets(sources, tmp_path / "merged").dataset
    assert most == [1, 1, 1] and not opened  # each source's file opened once, one at a time, all closed
    monkeypatch.undo()
    for new, (k, i) in enumerate((k, i) for k in range(3) for i in range(2)):
        _same_episode(merged.episode(new), sources[k].episode(i))


def test_interrupted_select_leaves_nothing_and_the_source_unchanged(tmp_path, monkeypatch):
    src = _dataset(tmp_path / "src", lengths=(3, 3, 3))
    select_episodes(src, tmp_path / "out", [0])
    before = {p: p.read_bytes() for p in src.root.rglob("*") if p.is_file()}
    read = LeRobotDataset.episode

    def episode(self, index, videos=True):
        if index == 2:
            raise KeyboardInterrupt
        return read(self, index, videos)

    monkeypatch.setattr(LeRobotDataset, "episode", episode)
    with pytest.raises(KeyboardInterrupt):
        select_episodes(src, tmp_path / "out", overwrite=True)
    assert LeRobotDataset.open(tmp_path / "out").provenance["episodes"] == [0]  # the earlier one as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no staging folder left
    assert before == {p: p.read_bytes() for p in src.root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", ["select", "merge", "split"])
def test_an_out_another_command_is_writing_is_refused_before_an_episode_is_read(tmp_path, capsys, monkeypatch,
                                                                               command):
    """Each command stages its own dataset and the last to finish replaced the other's: the second is refused, naming
    the first (a split: any split being written); once it ends, the lock file beside --out is gone."""
    import os

    from worldpolicy.fileio import dataset_lock

    src, other = _dataset(tmp_path / "src", lengths=(3, 3)), _dataset(tmp_path / "other", lengths=(2,))
    out = tmp_path / "out"
    held = out / "val" if command == "split" else out
    argv = {"select": ["select", str(src.root)], "merge": ["merge", str(src.root), str(other.root)],
            "split": ["split", str(src.root), "--splits", "train=0.5,val=0.5"]}[command]

    def episode(self, index, videos=True):
        raise AssertionError("an episode read")

    with monkeypatch.context() as patched, dataset_lock(held, "out", "`dataset merge`"):
        patched.setattr(LeRobotDataset, "episode", episode)
        assert main(["dataset", *argv, "--out", str(out), "--no-progress"]) == 2
    assert (f"--out: {str(held)!r} is in use by another worldpolicy process (PID {os.getpid()}, `dataset merge`, in "
            f"{str(held.parent / f'.{held.name}.lock')!r})") in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
    assert main(["dataset", *argv, "--out", str(out), "--no-progress"]) == 0  # free once the holder ended
    assert not any(p.name.endswith(".lock") for p in [*tmp_path.iterdir(), *out.iterdir()])


def test_merge_is_the_concatenation_with_one_task_table(tmp_path, capsys):
    a = _dataset(tmp_path / "a", lengths=(4, 3), success=[True, False], tasks=("pick the cube", "push the cube"))
    b = _dataset(tmp_path / "b", lengths=(5, 2, 3), success=[False, True, True], offset=5,
                 tasks=("stack the cubes", "pick the cube"))
    assert main(["dataset", "merge", str(a.root), str(b.root), "--out", str(tmp_path / "ab"), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 5 and summary["frames"] == 17 and summary["tasks"] == 3
    ab = LeRobotDataset.open(tmp_path / "ab")
    assert ab.tasks == ["pick the cube", "push the cube", "stack the cubes"]  # the same text, one index
    wanted = [a.episode(0), a.episode(1), *b.episodes()]
    for i, want in enumerate(wanted):
        _same_episode(ab.episode(i), want)
    assert ab.episode_success.tolist() == [True, False, False, True, True]
    np.testing.assert_array_equal(ab.column("action"), np.concatenate([a.column("action"), b.column("action")]))
    prov = ab.provenance
    assert prov["source"] == MERGE_SOURCE and [d["episodes"] for d in prov["datasets"]] == [2, 3]
    assert [Path(d["dataset"]) for d in prov["datasets"]] == [a.root.resolve(), b.root.resolve()]
    result = merge_datasets([a, b], tmp_path / "ab", overwrite=True)
    assert result.origins == ((a.root, 0), (a.root, 1), (b.root, 0), (b.root, 1), (b.root, 2))
    assert main(["dataset", "check", str(ab.root)]) == 0


def test_merge_keeps_recorded_seeds_and_the_source_codec(tmp_path):
    """Sim recordings of one task keep their seeds (a checkpoint trained on the merge is not evaluated on them
    unawares); lossy videos keep their own codec, copied as they are."""
    from worldpolicy.fileio import recorded_seeds

    a = _dataset(tmp_path / "a", lengths=(4, 4), codec="libx264", provenance={"task": "pick_place", "seeds": [0, 1]})
    b = _dataset(tmp_path / "b", lengths=(4,), codec="libx264", provenance={"task": "pick_place", "seeds": [7]})
    result = merge_datasets([a, b], tmp_path / "ab")
    assert result.video_codec == "libx264"
    assert recorded_seeds(tmp_path / "ab") == ("pick_place", [0, 1, 7])
    _same_episode(result.dataset.episode(2), b.episode(0))
    assert select_episodes(a, tmp_path / "one", [1]).dataset.provenance["seeds"] == [1]


@pytest.mark.parametrize("change, match", [
    ({"fps": 5}, r"datasets\[1\] \(.*\) does not fit datasets\[0\] \(.*\): it is at 5 fps, datasets\[0\] at 10"),
    ({"drop": "next.reward"}, r"features \['next.reward'\] are in datasets\[0\] and not in datasets\[1\]"),
    ({"rename": FRONT}, (r"features \['observation.images.left'\] are in datasets\[1\] and not in datasets\[0\], "
                         r"and \['observation.images.front'\] are in datasets\[0\] and not in datasets\[1\]; "
                         r"give them one name first, each as a new dataset: `worldpolicy dataset select ROOT --out DIR "
                         r"--rename-feature OLD=NEW`")),
    ({"action": lambda v: v.astype(np.float64)}, r"feature 'action' has dtype 'float64', datasets\[0\] 'float32'"),
    ({"action": lambda v: v[:, :2]}, r"feature 'action' has shape \[2\], datasets\[0\] \[3\]"),
    ({"video": 8}, (r"feature 'observation.images.front' has video size \(height, width\) \(8, 8\), "
                    r"datasets\[0\] \(16, 16\)")),
    ({"names": ["x", "y", "z"]}, r"feature 'action' has names \['x', 'y', 'z'\], datasets\[0\] None"),
])
def test_merge_refuses_datasets_that_do_not_fit_naming_what_differs(tmp_path, change, match):
    a = _dataset(tmp_path / "a", lengths=(3,))
    ep = make_episode(3, seed=0)
    features = {k: v for k, v in a.features.items()}
    if "drop" in change:
        del ep["frames"][change["drop"]], features[change["drop"]]
    if "rename" in change:  # a camera named otherwise: both names are said
        ep["videos"]["observation.images.left"] = ep["videos"].pop(change["rename"])
        features["observation.images.left"] = features.pop(change["rename"])
    if "action" in change:
        ep["frames"]["action"] = change["action"](ep["frames"]["action"])
        features["action"] = {"dtype": ep["frames"]["action"].dtype.name, "shape": [ep["frames"]["action"].shape[1]]}
    if "video" in change:
        ep["videos"][FRONT] = ep["videos"][FRONT][:, :8, :8]
        features[FRONT] = {"dtype": "video", "shape": [8, 8, 3]}
    if "names" in change:
        features["action"] = {**features["action"], "names": change["names"]}
    write_episodes(tmp_path / "b", [{**ep, "task": "t"}], fps=change.get("fps", 10), features=features,
                   video_codec="libx264rgb")
    with pytest.raises(ValueError, match=match):
        merge_datasets([a.root, tmp_path / "b"], tmp_path / "ab")
    assert not (tmp_path / "ab").exists()


def test_merge_refusals_before_writing(tmp_path, capsys):
    a = _dataset(tmp_path / "a", lengths=(3,), success=[True])
    b = _dataset(tmp_path / "b", lengths=(3,))
    with pytest.raises(ValueError, match=r"datasets\[1\] \(.*/b'\) does not say which episodes succeeded and the "
                                         r"others do .*; pass drop_success=True"):
        merge_datasets([a, b], tmp_path / "ab")
    with pytest.raises(ValueError, match="give two or more datasets to merge"):
        merge_datasets([a], tmp_path / "ab")
    with pytest.raises(ValueError, match=r"datasets\[1\] .* is datasets\[0\] again"):
        merge_datasets([a.root, tmp_path / "a" / "."], tmp_path / "ab")
    with pytest.raises(ValueError, match=r"out: .* is inside the dataset being merged \(.*/b'\)"):
        merge_datasets([a, b], tmp_path / "b" / "ab", drop_success=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert main(["dataset", "merge", str(a.root), str(b.root), "--out", str(tmp_path / "ab")]) == 2
    err = capsys.readouterr().err  # the dataset named as the user typed it: the second ROOT
    assert f"ROOT 2 ({str(b.root)!r}) does not say" in err and "pass --drop-success to merge them without it" in err
    assert main(["dataset", "merge", str(a.root), str(b.root), "--out", str(tmp_path / "ab"), "--drop-success",
                 "--no-progress"]) == 0
    assert "success" not in json.loads(capsys.readouterr().out)
    assert LeRobotDataset.open(tmp_path / "ab").episode_success is None


def test_other_meta_episodes_columns_are_carried_with_their_types(tmp_path, capsys):
    """A recorder's own meta/episodes columns (an operator, a score) were dropped with a warning; select keeps each
    kept episode's, merge the ones every dataset has of one type and refuses the others unless drop_columns."""
    import pyarrow as pa

    def own(i):
        return {"operator": f"op{i}", "score": pa.scalar(i / 2, pa.float32())}

    a = _dataset(tmp_path / "a", lengths=(3, 4, 3), fields=own)
    kept = select_episodes(a, tmp_path / "sel", [2, 0]).dataset
    assert kept.episode_fields() == [{"operator": "op0", "score": 0.0}, {"operator": "op2", "score": 1.0}]
    assert kept.episode_columns().schema == pa.schema([("operator", pa.string()), ("score", pa.float32())])
    # `dataset info` lists them, name and type (it did not); a dataset with none has no entry
    assert main(["dataset", "info", str(kept.root)]) == 0
    assert json.loads(capsys.readouterr().out)["episode_columns"] == {"operator": "string", "score": "float"}
    assert main(["dataset", "check", str(kept.root)]) == 0
    b = _dataset(tmp_path / "b", lengths=(3,), fields=lambda i: {"operator": "op9", "score": pa.scalar(1.5,
                                                                                                     pa.float32())})
    both = merge_datasets([a, b], tmp_path / "ab").dataset
    assert [f["operator"] for f in both.episode_fields()] == ["op0", "op1", "op2", "op9"]
    assert both.episode_columns().schema.field("score").type == pa.float32()
    c = _dataset(tmp_path / "c", lengths=(3,), fields=lambda i: {"operator": "op7", "score": 1.5})  # a double
    with pytest.raises(ValueError, match=r"column 'score' is not in every dataset alike: datasets\[0\] .* has it as "
                                         r"float, datasets\[1\] .* has it as double; pass drop_columns=True"):
        merge_datasets([a, c], tmp_path / "ac")
    assert not (tmp_path / "ac").exists()
    d = _dataset(tmp_path / "d", lengths=(3,))
    assert main(["dataset", "merge", str(a.root), str(d.root), "--out", str(tmp_path / "ad")]) == 2
    assert "ROOT 2 (" in (err := capsys.readouterr().err) and "lacks it" in err and "--drop-columns" in err
    assert main(["dataset", "merge", str(a.root), str(d.root), str(c.root), "--out", str(tmp_path / "ad"),
                 "--drop-columns", "--no-progress"]) == 0
    assert LeRobotDataset.open(tmp_path / "ad").episode_fields() == [{}] * 5
    assert "episode_columns" not in LeRobotDataset.open(tmp_path / "ad").summary()
    # the columns dropped are said, not dropped without a word
    said = capsys.readouterr().err
    assert "columns 'operator', 'score' are not in every dataset alike; dropped (--drop-columns)" in said
    merge_datasets([a, d], tmp_path / "ad2", drop_columns=True)  # the Python API names its parameter, not the flag
    assert "columns 'operator', 'score' are not in every dataset alike; dropped (drop_columns=True)" in (
        capsys.readouterr().err)


def test_out_under_a_file_is_refused_before_writing_and_an_os_error_is_one_line(tmp_path, capsys, monkeypatch):
    """`--out afile/x` was a traceback (the command's handler read an OSError's errno as its message); it is refused
    as `worldpolicy sim --out` refuses it, and an OSError from further down is shown as the one line it says."""
    src = _dataset(tmp_path / "src", lengths=(3,))
    other = _dataset(tmp_path / "other", lengths=(3,))
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"out: .*afile/x' is under .*afile', which is a file"):
        select_episodes(src, tmp_path / "afile" / "x")
    assert main(["dataset", "merge", str(src.root), str(other.root), "--out", str(tmp_path / "afile" / "x")]) == 2
    assert "--out: " in (err := capsys.readouterr().err) and "which is a file" in err
    from worldpolicy.data import edit

    def full(*args, **kwargs):
        raise FileExistsError(17, "File exists", "somewhere")

    monkeypatch.setattr(edit, "select_episodes", full)
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x")]) == 2
    assert "[Errno 17] File exists: 'somewhere'" in capsys.readouterr().err


def test_a_wide_range_out_of_range_is_named_in_one_short_line(tmp_path, capsys):
    """`--episodes 0-99999` on a small dataset named the hundred thousand indexes it expanded to, twice over; runs of
    them are shown as A..B (`errors.brief_list`)."""
    from worldpolicy.errors import brief_list

    src = _dataset(tmp_path / "src", lengths=(3, 3))
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--episodes", "0-1", "1"]) == 2
    assert "--episodes=[0, 1, 1]: [1] given more than once" in capsys.readouterr().err
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "x"), "--episodes", "0-99999"]) == 2
    err = capsys.readouterr().err
    assert "--episodes=[0..99999]: [2..99999] out of range; accepted: episode indexes in 0..1" in err
    assert len(err) < 300
    assert brief_list([4]) == "[4]" and brief_list([0, 1, 2]) == "[0, 1, 2]"  # short lists as Python writes them
    assert brief_list([*range(13), 20, -1]) == "[0..12, 20, -1]"
    assert brief_list(list(range(0, 200, 2))) == "[0, 2, 4, 6, 8, 10, 12, 14, 16, 18, ..., 198] (100 in all)"


def _packets(path: Path) -> list[tuple[int, bool, bytes]]:
    """A video file's packets in decode order: (pts in frames, keyframe, bytes)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(round(p.pts * stream.time_base * 10), p.is_keyframe, bytes(p)) for p in container.demux(stream)
                if p.pts is not None]


@pytest.mark.parametrize("codec", ["libx264", "libsvtav1"])
def test_lossy_videos_are_copied_as_their_packets_bit_for_bit(tmp_path, capsys, caplog, codec):
    """Every episode the writer records starts on a keyframe, so select and merge copy an episode's encoded packets
    into the new file, timestamps shifted: the frames are the source's as decoded, bit for bit (encoding them again
    changed them on every edit), and each episode's from/to timestamps are exactly where its frames are. AV1 too
    (LeRobot's default): its stream copied from a decoder's (libdav1d), which is no encoder."""
    a = _dataset(tmp_path / "a", lengths=(9, 11, 7), codec=codec)
    b = _dataset(tmp_path / "b", lengths=(6,), codec=codec, offset=3)
    noisy = _dataset(tmp_path / "noisy", lengths=(10, 12), codec=codec, offset=5)
    for src in (a, b, noisy):  # each episode's first frame is a keyframe of its file
        starts = {round(t * 10) for t in src._episodes[f"videos/{FRONT}/from_timestamp"]}
        assert starts <= {pts for pts, key, _ in _packets(src._video_path(FRONT, 0)) if key}
    with caplog.at_level("WARNING"):
        picked = select_episodes(a, tmp_path / "picked", [2, 0])
        merged = merge_datasets([a, b, noisy], tmp_path / "merged")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # nothing was encoded again
    assert picked.videos.copied == 2 and picked.videos.encoded == 0
    assert merged.videos.copied == 6 and merged.videos.encoded == 0
    for result, origins in ((picked, [(a, 0), (a, 2)]), (merged, [(a, 0), (a, 1), (a, 2), (b, 0), (noisy, 0),
                                                                  (noisy, 1)])):
        out = result.dataset
        ends = np.cumsum([0, *out.episode_lengths]) / out.fps
        np.testing.assert_array_equal(out._episodes[f"videos/{FRONT}/from_timestamp"], ends[:-1])
        np.testing.assert_array_equal(out._episodes[f"videos/{FRONT}/to_timestamp"], ends[1:])
        for new, (src, i) in enumerate(origins):
            _same_episode(out.episode(new), src.episode(i))  # the decoded frames, bit for bit
        # the packets themselves: the source episodes' ones, in order
        want = [data for src, i in origins for pts, _, data in _packets(src._video_path(FRONT, i))
                if round(src._episodes[f"videos/{FRONT}/from_timestamp"][i] * 10) <= pts
                < round(src._episodes[f"videos/{FRONT}/to_timestamp"][i] * 10)]
        assert [data for _, _, data in _packets(out._video_path(FRONT, 0))] == want
        assert main(["dataset", "check", str(out.root)]) == 0
        assert "ok:" in capsys.readouterr().out


def test_copied_videos_record_the_encoder_settings_they_were_encoded_with(tmp_path, capsys):
    """info.json's video `info` says what the files' frames were encoded with: a copy's source's settings (another
    GOP, and a crf its recorder used), not the writer's; where the episodes of a camera were encoded otherwise (sources
    that differ, frames encoded again), only the settings they share; the facts of every file (codec, pixel format,
    size, rate) always."""
    a = _dataset(tmp_path / "a", lengths=(9, 7), codec="libx264", gop=4)
    info = json.loads((a.root / "meta" / "info.json").read_text())
    info["features"][FRONT]["info"]["video.crf"] = 23  # as another recorder encodes: its packets copied as they are
    (a.root / "meta" / "info.json").write_text(json.dumps(info))
    a = LeRobotDataset.open(a.root)
    own = dict(a.features[FRONT]["info"])
    assert (own["video.g"], own["video.crf"], own["video.preset"]) == (4, 23, "veryfast")
    b = _dataset(tmp_path / "b", lengths=(6,), codec="libx264", offset=3)  # the writer's settings: g 8, crf 18
    picked = select_episodes(a, tmp_path / "picked", [1, 0])
    assert picked.videos.copied == 2 and picked.dataset.features[FRONT]["info"] == own
    merged = merge_datasets([a, b], tmp_path / "merged")
    assert merged.videos.copied == 3
    shared = {k: v for k, v in own.items() if k not in ("video.g", "video.crf")}  # a's and b's differ on those
    assert merged.dataset.features[FRONT]["info"] == shared
    again = select_episodes(a, tmp_path / "again", video_codec="libx264rgb")  # encoded again: the writer's settings
    assert again.videos.encoded == 2 and again.dataset.features[FRONT]["info"]["video.g"] == 8
    assert again.dataset.features[FRONT]["info"]["video.crf"] == 0
    for out in (picked, merged, again):
        assert main(["dataset", "check", str(out.dataset.root)]) == 0
        assert "ok:" in capsys.readouterr().out


def test_episodes_that_do_not_start_on_a_keyframe_are_encoded_again_and_said_once(tmp_path, capsys, caplog,
                                                                                    monkeypatch):
    """A source written without a keyframe at each episode's start (an older worldpolicy, another recorder) or in
    another codec than the one written: its videos are decoded and encoded again, one warning says so; a merge with a
    source that copies puts the copied packets and the encoded frames in files of their own."""
    from worldpolicy.processing.video import VideoFileWriter

    append = VideoFileWriter.append
    monkeypatch.setattr(VideoFileWriter, "append", lambda self, frames, keyframe=False: append(self, frames))
    old = _dataset(tmp_path / "old", lengths=(9, 11, 7), codec="libx264")
    monkeypatch.undo()
    starts = [round(t * 10) for t in old._episodes[f"videos/{FRONT}/from_timestamp"]]
    keys = {pts for pts, key, _ in _packets(old._video_path(FRONT, 0)) if key}
    assert starts[1] not in keys  # with the writer's GOP of 8, episode 1 (frame 9) starts between keyframes
    new = _dataset(tmp_path / "new", lengths=(5, 6), codec="libx264", offset=3)
    with caplog.at_level("WARNING"):
        merged = merge_datasets([new, old], tmp_path / "merged")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "encoded again" in warnings[0] and "not a keyframe" in warnings[0]
    # old's episode 0 starts on a keyframe, but the frame after it (episode 1's first) is none: its packets refer on
    assert merged.videos.copied == 2 and merged.videos.encoded == 3
    out = merged.dataset
    assert out.features[FRONT]["info"] == new.features[FRONT]["info"]  # copied and encoded again alike: the writer's
    for n, (src, i) in enumerate([(new, 0), (new, 1), (old, 0), (old, 1), (old, 2)]):
        _same_episode(out.episode(n), src.episode(i), lossless=src is new)
    files = out._episodes[f"videos/{FRONT}/file_index"].tolist()
    assert files == [0, 0, 1, 1, 1]  # the encoded frames go into a file of their own
    assert main(["dataset", "check", str(out.root)]) == 0
    assert "ok: 5 episodes" in capsys.readouterr().out
    again = select_episodes(new, tmp_path / "rgb", video_codec="libx264rgb")  # another codec than the source's
    assert again.videos.encoded == 2 and again.videos.copied == 0
    assert again.videos.why.endswith("its codec is not the one written (libx264rgb)")
    for i in range(2):
        _same_episode(again.dataset.episode(i), new.episode(i))  # lossless: the decoded frames again


def _hdf5_import(root: Path, wrist: str, lengths=(4, 5), offset: int = 0, extra: bool = False) -> LeRobotDataset:
    """A dataset as `dataset import-hdf5` writes one (observation.images.<obs key>, OSC_POSE action names): robomimic's
    Lift names its wrist camera robot0_eye_in_hand, LIBERO's files eye_in_hand; `extra` adds a camera only it has."""
    rng = np.random.default_rng(offset)
    cameras = ["observation.images.agentview", f"observation.images.{wrist}"] + (
        ["observation.images.frontview"] if extra else [])
    features = {"observation.state": {"dtype": "float64", "shape": [3], "names": ["x", "y", "z"]},
                "action": {"dtype": "float64", "shape": [7], "names": ["eef_dx", "eef_dy", "eef_dz", "eef_drot_x",
                                                                        "eef_drot_y", "eef_drot_z", "gripper"]},
                **{key: {"dtype": "video", "shape": [16, 16, 3]} for key in cameras}}
    with LeRobotDatasetWriter(root, 20, features, "Panda", video_codec="libx264",
                              provenance={"source": "worldpolicy dataset import-hdf5"}) as writer:
        for i, length in enumerate(lengths):
            writer.add_episode({"observation.state": rng.standard_normal((length, 3)),
                                "action": rng.standard_normal((length, 7))},
                               {key: rng.integers(0, 256, (length, 16, 16, 3), dtype=np.uint8) for key in cameras},
                               "lift the cube")
        return writer.finalize()


def test_select_renames_and_drops_features_in_columns_videos_stats_card_and_provenance(tmp_path, capsys):
    """A renamed feature is renamed wherever the dataset names it (the data parquet's column, info.json, the video
    folder, stats.json, meta/episodes' stats columns, the card), its values and video packets copied as they are; a
    dropped one is nowhere; the provenance records both."""
    import pyarrow.parquet as pq

    src = _hdf5_import(tmp_path / "lift", "robot0_eye_in_hand")
    old, new = "observation.images.robot0_eye_in_hand", "observation.images.eye_in_hand"
    assert main(["dataset", "select", str(src.root), "--out", str(tmp_path / "out"), "--rename-feature",
                 f"{old}={new}", "--rename-feature", "action=action.eef", "--drop-feature",
                 "observation.images.agentview", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["features"]) == ["observation.state", "action.eef", new]  # in the source's order
    out = LeRobotDataset.open(tmp_path / "out")
    assert out.video_keys == [new] and out.features["action.eef"]["names"] == src.features["action"]["names"]
    assert sorted(p.name for p in (out.root / "videos").iterdir()) == [new]
    columns = pq.read_table(out.root / "data/chunk-000/file-000.parquet").column_names
    assert "action.eef" in columns and "action" not in columns
    assert set(out.stats) == {"observation.state", "action.eef", new, *("timestamp", "frame_index", "episode_index",
                                                                        "index", "task_index")}
    episode_columns = pq.read_table(out.root / "meta/episodes/chunk-000/file-000.parquet").column_names
    assert f"stats/{new}/mean" in episode_columns
    assert not [c for c in episode_columns if "agentview" in c or c.startswith((f"stats/{old}", "stats/action/"))]
    card = (out.root / "README.md").read_text()
    assert f"`{new}`" in card and "`action.eef`" in card and "agentview" not in card and old not in card
    prov = out.provenance
    assert prov["renamed_features"] == {old: new, "action": "action.eef"}
    assert prov["dropped_features"] == ["observation.images.agentview"]
    for i in range(2):
        got, want = out.episode(i), src.episode(i)
        np.testing.assert_array_equal(got.frames["action.eef"], want.frames["action"])
        np.testing.assert_array_equal(got.videos[new], want.videos[old])  # the packets copied: the frames bit for bit
    np.testing.assert_allclose(out.stats["action.eef"]["mean"], src.column("action").mean(axis=0), rtol=1e-6)
    assert main(["dataset", "check", str(out.root)]) == 0
    assert "ok: 2 episodes" in capsys.readouterr().out


def test_recordings_whose_cameras_are_named_otherwise_merge_once_renamed(tmp_path, capsys):
    """A robomimic Lift import and a LIBERO one name the wrist camera otherwise (and LIBERO's has a camera Lift's
    lacks): the merge is refused naming both and the fix, `dataset select --rename-feature`, after which it merges."""
    lift = _hdf5_import(tmp_path / "lift", "robot0_eye_in_hand")
    libero = _hdf5_import(tmp_path / "libero", "eye_in_hand", lengths=(3, 6, 2), offset=7, extra=True)
    assert main(["dataset", "merge", str(lift.root), str(libero.root), "--out", str(tmp_path / "both")]) == 2
    err = capsys.readouterr().err
    assert ("features ['observation.images.eye_in_hand', 'observation.images.frontview'] are in ROOT 2 and not in "
            "ROOT 1, and ['observation.images.robot0_eye_in_hand'] are in ROOT 1 and not in ROOT 2") in err.replace(
        "datasets[0]", "ROOT 1")
    assert "`worldpolicy dataset select ROOT --out DIR --rename-feature OLD=NEW` (--drop-feature KEY" in err
    wrist = "observation.images.wrist"
    assert main(["dataset", "select", str(lift.root), "--out", str(tmp_path / "lift_w"), "--no-progress",
                 "--rename-feature", f"observation.images.robot0_eye_in_hand={wrist}"]) == 0
    assert main(["dataset", "select", str(libero.root), "--out", str(tmp_path / "libero_w"), "--no-progress",
                 "--rename-feature", f"observation.images.eye_in_hand={wrist}",
                 "--drop-feature", "observation.images.frontview"]) == 0
    capsys.readouterr()
    both = merge_datasets([tmp_path / "lift_w", tmp_path / "libero_w"], tmp_path / "both")
    assert both.videos.copied == 2 * 5 and both.videos.encoded == 0  # every video still its source's packets
    out = both.dataset
    assert out.video_keys == ["observation.images.agentview", wrist] and out.num_episodes == 5
    for n, (src, i, camera) in enumerate([(lift, 0, "robot0_eye_in_hand"), (lift, 1, "robot0_eye_in_hand"),
                                          (libero, 0, "eye_in_hand"), (libero, 1, "eye_in_hand"),
                                          (libero, 2, "eye_in_hand")]):
        got, want = out.episode(n), src.episode(i)
        np.testing.assert_array_equal(got.videos[wrist], want.videos[f"observation.images.{camera}"])
        np.testing.assert_array_equal(got.frames["action"], want.frames["action"])
    chain = out.provenance["dataset_provenance"]
    assert [p["renamed_features"] for p in chain] == [{"observation.images.robot0_eye_in_hand": wrist},
                                                      {"observation.images.eye_in_hand": wrist}]


def test_dropping_every_camera_leaves_a_dataset_without_videos(tmp_path, capsys):
    """A dataset of per-frame columns alone is a LeRobot dataset (a state/action log): every camera may be dropped."""
    src = _dataset(tmp_path / "src", lengths=(3, 4))
    out = select_episodes(src, tmp_path / "out", drop_features=[FRONT]).dataset
    assert out.video_keys == [] and not (out.root / "videos").exists()
    assert out.num_frames == 7 and out.episode(1).frames.keys() == src.episode(1).frames.keys()
    assert main(["dataset", "check", str(out.root)]) == 0
    assert "ok: 2 episodes" in capsys.readouterr().out


ALL_FEATURES = r"accepted: the features of '.*src': 'action', 'observation.state', 'next.done', 'next.reward', " + (
    r"'observation.images.front'")


@pytest.mark.parametrize("kwargs, match", [
    ({"rename_features": {"index": "idx"}}, r"rename_features: 'index' is one of the index columns every LeRobot row "
                                            r"has \(timestamp, frame_index, episode_index, index, task_index\), which "
                                            r"the writer numbers anew: it is neither renamed nor dropped; "
                                            + ALL_FEATURES),
    ({"drop_features": ["timestamp"]}, r"drop_features: 'timestamp' is one of the index columns"),
    ({"drop_features": ["observation.images.wrist"]}, r"drop_features: 'observation.images.wrist' is not a feature of "
                                                      r"the dataset; " + ALL_FEATURES),
    ({"rename_features": {"act": "x"}}, r"rename_features: 'act' is not a feature of the dataset"),
    ({"rename_features": {"action": "observation.state"}}, (r"rename_features: 'action' to 'observation.state': "
                                                          r"'observation.state' is another feature's name, kept: drop "
                                                          r"that one \(drop_features=...\) or rename it too")),
    ({"rename_features": {"action": "a", "next.done": "a"}}, r"'action' to 'a': 'a' is the new name of 'next.done'"),
    ({"rename_features": {"action": "episode_index"}}, r"'episode_index' is an index column every LeRobot row has"),
    ({"rename_features": {FRONT: "cams/front"}}, (r"to 'cams/front': feature names must be non-empty strings without "
                                                 r"'/'")),
    ({"rename_features": {"action": ".."}}, r"feature names must be non-empty strings without '/', not '.' or '..'"),
    ({"rename_features": {"action": "action"}}, r"'action' to 'action': it is its name already"),
    ({"drop_features": ["action", "action"]}, r"drop_features: 'action' given more than once; name each feature once"),
    ({"drop_features": ["action"], "rename_features": {"action": "a"}}, r"drop_features: 'action' also renamed"),
    ({"drop_features": ["action", "observation.state", "next.done", "next.reward", FRONT]},
     (r"drop_features=\[.*\]: leaves no feature of .* \(a dataset without cameras is one, a dataset of index columns "
     r"alone is not\): keep one")),
    ({"drop_features": "action"}, r"drop_features='action': give a list of feature names"),
])
def test_feature_edits_are_refused_before_writing(tmp_path, kwargs, match):
    src = _dataset(tmp_path / "src", lengths=(3,))
    with pytest.raises(ValueError, match=match):
        select_episodes(src, tmp_path / "out", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_feature_flags_are_named_as_typed(tmp_path, capsys):
    src = _dataset(tmp_path / "src", lengths=(3,))
    base = ["dataset", "select", str(src.root), "--out", str(tmp_path / "out")]
    for flags, said in ((["--rename-feature", "action"], "--rename-feature 'action': expected OLD=NEW"),
                        (["--rename-feature", "action="], "--rename-feature 'action=': expected OLD=NEW"),
                        (["--rename-feature", "action=a", "--rename-feature", "action=b"],
                         "--rename-feature: 'action' is given more than once"),
                        (["--rename-feature", "index=i"], "--rename-feature: 'index' is one of the index columns"),
                        (["--drop-feature", "nope"], "--drop-feature: 'nope' is not a feature of the dataset"),
                        # a typo is named with the feature it is likely one of
                        (["--drop-feature", "next.rewards"], ("--drop-feature: 'next.rewards' is not a feature of the "
                                                              "dataset; accepted: the features of ")),
                        (["--drop-feature", "next.rewards"], "(did you mean 'next.reward'?)\n"),
                        (["--rename-feature", "action=observation.state"],
                         "drop that one (--drop-feature) or rename it too")):
        assert main([*base, *flags]) == 2
        assert said in capsys.readouterr().err, flags
    assert not (tmp_path / "out").exists()


def test_split_deals_every_episode_into_one_split_drawn_with_the_seed(tmp_path, capsys):
    src = _dataset(tmp_path / "src", lengths=(3, 4, 5, 3, 4, 5, 3, 4, 5, 6), success=[True, False] * 5)
    assert main(["dataset", "split", str(src.root), "--out", str(tmp_path / "s"), "--splits", ("train=0.7, val=0.2,"
                 "test=0.1"), "--seed", "5", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary) == ["train", "val", "test"]
    assert [summary[n]["episodes"] for n in summary] == [7, 2, 1]
    parts = {name: LeRobotDataset.open(tmp_path / "s" / name) for name in summary}
    chosen = {name: ds.provenance["episodes"] for name, ds in parts.items()}
    assert sorted(i for episodes in chosen.values() for i in episodes) == list(range(10))  # disjoint, all of them
    assert all(episodes == sorted(episodes) for episodes in chosen.values())
    assert chosen["train"] != list(range(7))  # drawn, not the first seven
    for name, ds in parts.items():
        prov = ds.provenance
        assert prov["source"] == SPLIT_SOURCE and prov["split"] == name and prov["seed"] == 5
        assert prov["splits"] == {"train": 0.7, "val": 0.2, "test": 0.1}
        for new, old in enumerate(chosen[name]):
            _same_episode(ds.episode(new), src.episode(old))
        assert main(["dataset", "check", str(ds.root)]) == 0
    capsys.readouterr()
    # the same seed, the same splits; another, others; --overwrite replaces an earlier split only
    again = split_dataset(src, tmp_path / "again", {"train": 0.7, "val": 0.2, "test": 0.1}, seed=np.int64(5))
    assert {name: r.dataset.provenance["episodes"] for name, r in again.items()} == chosen  # numpy's seed too
    assert again["train"].dataset.provenance["seed"] == 5
    other = split_dataset(src, tmp_path / "again", {"train": 0.7, "val": 0.2, "test": 0.1}, seed=6, overwrite=True)
    assert {name: r.dataset.provenance["episodes"] for name, r in other.items()} != chosen
    with pytest.raises(FileExistsError, match="earlier `dataset split` run's dataset; pass overwrite=True"):
        split_dataset(src, tmp_path / "s", {"train": 0.7, "val": 0.2, "test": 0.1})


@pytest.mark.parametrize("splits, match", [
    ({"train": 0.8, "val": 0.1}, (r"splits=\{'train': 0.8, 'val': 0.1\}: the fractions sum to 0.9; accepted: "
                                 r"fractions that sum to 1")),
    ({"train": 0.9, "val": 0.05, "test": 0.05}, (r"'val', 'test' would get no episode of the 4 \('val' 0.05 × 4 = "
                                                 r"0.2, 'test' 0.05 × 4 = 0.2, rounded down\); accepted: fractions of "
                                                 r"at least 0.25 each")),
    ({"all": 1.0}, r"splits=\{'all': 1.0\}: give two or more"),
    ({"train": 1.5, "val": -0.5}, r"splits: 'train' is given 1.5; accepted: a fraction of the episodes in \(0, 1\]"),
    ({"train": 0.5, "a/b": 0.5}, r"splits: 'a/b' is no folder name"),
    ({"train": 0.5, "val": True}, r"splits: 'val' is given True"),
])
def test_split_refuses_before_writing(tmp_path, splits, match):
    src = _dataset(tmp_path / "src", lengths=(3, 3, 3, 3))
    with pytest.raises(ValueError, match=match):
        split_dataset(src, tmp_path / "out", splits)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_split_flags_are_named_as_typed(tmp_path, capsys):
    src = _dataset(tmp_path / "src", lengths=(3, 3))
    base = ["dataset", "split", str(src.root), "--out", str(tmp_path / "out")]
    for splits, said in (("train=0.5,val", "--splits 'val': expected NAME=FRACTION"),
                         ("train=0.5,val=half", ("--splits 'train=0.5,val=half': expected NAME=FRACTION,... with "
                          "fractions as numbers")),
                         ("a=0.5,a=0.5", "--splits: 'a' is given more than once"),
                         ("train=0.6,val=0.6", "--splits={'train': 0.6, 'val': 0.6}: the fractions sum to 1.2")):
        assert main([*base, "--splits", splits]) == 2
        assert said in capsys.readouterr().err, splits
    assert main(["dataset", "split", str(src.root), "--splits", "train=0.5,val=0.5", "--out", str(src.root / "x")]) == 2
    assert "--out: " in (err := capsys.readouterr().err) and "is inside the dataset being split" in err
    assert not (tmp_path / "out").exists()


def test_an_interrupted_split_keeps_the_splits_finished_and_says_so(tmp_path, capsys, monkeypatch):
    """Each split is published when complete: Ctrl-C while the second is written leaves the first whole, the second
    not there (no staging folder), and the message says which is which rather than that nothing was written."""
    src = _dataset(tmp_path / "src", lengths=(3, 3, 3, 3))
    read = LeRobotDataset.episode
    written = []

    def episode(self, index, videos=True):
        if len(written) == 2:  # train's two episodes are done: the first of val's
            raise KeyboardInterrupt
        written.append(index)
        return read(self, index, videos)

    monkeypatch.setattr(LeRobotDataset, "episode", episode)
    assert main(["dataset", "split", str(src.root), "--out", str(tmp_path / "s"), "--splits", "train=0.5,val=0.5",
                 "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted; the splits finished are complete under {tmp_path / 's'}, the one being written is not" in err
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["train"]
    assert LeRobotDataset.open(tmp_path / "s" / "train").provenance["episodes"] == sorted(written)
