"""Convert a LeRobot v2.0 / v2.1 dataset (one parquet and one mp4 per episode, meta/*.jsonl) into a new v3.0 one,
without LeRobot's converter, whose lerobot >= 0.5 needs Python >= 3.12 and pins torch and av below ours.

    from worldpolicy.data import convert_dataset
    convert_dataset("lerobot/aloha_sim_insertion_human", "data/aloha_v3").dataset.num_episodes

The 2.x folder is read as a v3 dataset whose every episode has a data file and, per camera, a video file of its own
(`open_v2`: info.json's episode templates as chunk/file ones, meta/episodes.jsonl and meta/tasks.jsonl as the episodes
and tasks tables), so the v3 reader checks its rows and frames as any dataset's, and `edit.copy_episodes` writes it:
each episode's video copied as its encoded packets where they decode on their own (the frames bit for bit), else
decoded and encoded again; per-frame columns, tasks and timestamps as they are, stats recomputed over the frames. The
2.x stats files are not read: v2.0 has no per-episode ones, and v2.1's meta/episodes_stats.jsonl, which LeRobot's
converter aggregates instead of decoding, has no quantiles and took its camera stats from the frames before they were
encoded (docs/data.md). The source is only read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import is_integer
from ..extras import extra_imports
from ..fileio import dataset_lock
from ..hub import HUB_DATASET_EXAMPLE, dataset_source
from .card import source_terms
from .checks import check_out
from .edit import EditResult, write_copies
from .layout import (
    CODEBASE_VERSION,
    INFO_PATH,
    SUCCESS_COLUMN,
    DatasetFormatError,
    check_info,
    hdf5_hint,
    inside_dataset,
    lerobot_episode_column,
    read_json,
    template_fields,
)
from .lerobot import LeRobotDataset, dataset_folder

with extra_imports():
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = ["CONVERT_SOURCE", "V2_VERSIONS", "V2Dataset", "convert_dataset", "open_v2"]

CONVERT_SOURCE = "worldpolicy dataset convert"  # `provenance["source"]` of a conversion: what --overwrite may replace
V2_VERSIONS = ("v2.0", "v2.1")  # the codebase_versions converted (v2.1 added meta/episodes_stats.jsonl, not read)
V2_EPISODES_PATH = "meta/episodes.jsonl"
V2_TASKS_PATH = "meta/tasks.jsonl"
# the fields 2.x path templates name, and the v3 ones they stand for here: an episode's own file is file episode_index
# of chunk episode_chunk (= episode_index // chunks_size)
V2_TEMPLATE_FIELDS = {"episode_chunk": "chunk_index", "episode_index": "file_index"}
V2_EPISODE_KEYS = ("episode_index", "tasks", "length")  # meta/episodes.jsonl's own keys; any other is carried over


@dataclass(frozen=True)
class V2Dataset:
    """A 2.x dataset read as a v3 one (`open_v2`): its codebase_version, and meta/episodes.jsonl's keys beyond
    LeRobot's own (an operator's note, a success flag), one row per episode, which the conversion carries over."""

    dataset: LeRobotDataset
    version: str
    columns: pa.Table


def convert_dataset(dataset: str | Path, out: str | Path, *, video_codec: str | None = None, overwrite: bool = False,
                    progress: bool = False) -> EditResult:
    """Write the LeRobot v2.0 / v2.1 dataset `dataset` (a folder, or a hub id fetched as `LeRobotDataset.open` fetches
    one) as a new v3.0 dataset at `out`: every episode in order, its frames, tasks, timestamps and the other keys
    meta/episodes.jsonl gives it (a `success` of bools as the success flag, `dataset select --success`'s); videos
    as `select_episodes` writes them (`video_codec`, default the source's where the writer has it: copied as their
    packets where they decode on their own, else encoded again). Its metadata, files and `out` (as `dataset select`
    takes it: an existing dataset only an earlier convert made, with `overwrite`) are checked before an episode is
    read; `out` appears only when complete, with meta/worldpolicy_provenance.json naming the source and its
    version."""
    source = open_v2(dataset)
    ds = source.dataset
    out = check_out([ds.root], out, overwrite, [CONVERT_SOURCE], "`dataset convert`", "converted")
    provenance = {"source": CONVERT_SOURCE, "dataset": dataset_source(ds.root), "codebase_version": source.version,
                  **source_terms([ds])}  # its license and citations, for the card
    with dataset_lock(out, "out", "`dataset convert`"):
        return write_copies([ds], [(0, i) for i in range(ds.num_episodes)], out, video_codec, True, [source.columns],
                            overwrite, provenance, progress)


def open_v2(dataset: str | Path) -> V2Dataset:
    """The 2.x dataset `dataset` read as a v3 one (the module's docstring says how), every metadata file and the
    episodes' data and video files checked first; a folder of another version (v3.0 included: it reads as it is) or
    without what the conversion needs is refused naming the file and field."""
    root = dataset_folder(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset={str(dataset)!r} is not a directory; accepted: a LeRobot v2.x dataset's "
                                f"folder (holding {INFO_PATH}), or a hub id like {HUB_DATASET_EXAMPLE!r}"
                                f"{hdf5_hint(root)}")
    info_path = root / INFO_PATH
    raw = read_json(info_path, "info.json")
    if not isinstance(raw, dict):
        raise DatasetFormatError(info_path, None, f"must hold a JSON object, got {type(raw).__name__}")
    version = raw.get("codebase_version")
    if version == CODEBASE_VERSION:
        raise DatasetFormatError(info_path, "codebase_version", f"got {version!r}: the dataset is v3.0 already and "
                                 "reads as it is; `dataset convert` takes " + " or ".join(map(repr, V2_VERSIONS)))
    if version not in V2_VERSIONS:
        raise DatasetFormatError(info_path, "codebase_version",
                                 f"got {version!r}; accepted: {', '.join(map(repr, V2_VERSIONS))}")
    for key in ("chunks_size", "data_path"):
        if key not in raw:
            raise DatasetFormatError(info_path, key, f"is missing (a {version} info.json has it)")
    chunks = raw["chunks_size"]
    if not is_integer(chunks) or chunks < 1:
        raise DatasetFormatError(info_path, "chunks_size", f"got {chunks!r}; accepted: a positive int")
    templates = {"data_path": _v3_template(raw, "data_path", {"episode_chunk", "episode_index"}, info_path)}
    if raw.get("video_path") is not None:
        templates["video_path"] = _v3_template(raw, "video_path", {"episode_chunk", "episode_index", "video_key"},
                                               info_path)
    info, unread = check_info({**raw, "codebase_version": CODEBASE_VERSION, **templates}, info_path)
    tasks = _read_tasks(root / V2_TASKS_PATH)
    episodes, columns = _read_episodes(root, info, tasks)
    ds = LeRobotDataset(root, info, tasks, episodes, unread, episodes_file=V2_EPISODES_PATH)
    _check_files(ds, chunks)
    return V2Dataset(ds, version, columns)


def _check_files(ds: LeRobotDataset, chunks: int) -> None:
    """Every episode's data file, holding its rows (the parquet footer says how many), and video files: a stat and a
    footer each, so a missing or short one is named before anything is written."""
    for i, length in enumerate(ds.episode_lengths.tolist()):
        named = f"(named by {INFO_PATH} %s for episode {i} of {V2_EPISODES_PATH})"
        path = ds.root / ds.info["data_path"].format(chunk_index=i // chunks, file_index=i)
        if not path.is_file():
            raise DatasetFormatError(path, None, "data file is missing " + named % "data_path")
        try:
            rows = pq.read_metadata(path).num_rows
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetFormatError(path, None, f"is not a readable parquet file: {exc}") from None
        if rows != length:
            raise DatasetFormatError(path, None, f"holds {rows} rows but {V2_EPISODES_PATH} gives episode {i} length "
                                                 f"{length}")
        for key in (k for k in ds.video_keys if ds.features[k]["dtype"] == "video"):
            path = ds.root / ds.info["video_path"].format(video_key=key, chunk_index=i // chunks, file_index=i)
            if not path.is_file():
                raise DatasetFormatError(path, None, f"video file of {key!r} is missing " + named % "video_path")


def _v3_template(info: dict[str, Any], key: str, fields: set[str], path: Path) -> str:
    """info.json's 2.x path template `key` with its episode fields spelled as the v3 reader's chunk/file ones."""
    template = info[key]
    named = template_fields(template)
    if named != fields or not inside_dataset(template):
        raise DatasetFormatError(path, key, f"got {template!r}; accepted: a path template inside the dataset folder "
                                            f"naming {', '.join(sorted(fields))}, as LeRobot v2.x writes it")
    return re.sub(r"\{(episode_chunk|episode_index)(?=[:}])", lambda m: "{" + V2_TEMPLATE_FIELDS[m.group(1)],
                  template)


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of `path`, one a line, each with its line number (blank lines skipped)."""
    if not path.is_file():
        raise DatasetFormatError(path, None, "is missing (a LeRobot v2.x dataset has it)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(path, None, f"line {n} is not valid JSON: {exc}") from None
        if not isinstance(row, dict):
            raise DatasetFormatError(path, None, f"line {n} must be a JSON object, got {type(row).__name__}")
        rows.append((n, row))
    return rows


def _read_tasks(path: Path) -> list[str]:
    """meta/tasks.jsonl: {"task_index": i, "task": text} a line, numbering the tasks 0..n-1."""
    tasks: dict[int, str] = {}
    for n, row in _read_jsonl(path):
        index, text = row.get("task_index"), row.get("task")
        if not is_integer(index) or index in tasks:
            raise DatasetFormatError(path, "task_index", f"line {n}: got {index!r}; accepted: an int no other line has")
        if not isinstance(text, str):
            raise DatasetFormatError(path, "task", f"line {n}: got {text!r}; accepted: a string")
        tasks[index] = text
    if sorted(tasks) != list(range(len(tasks))):
        raise DatasetFormatError(path, "task_index", f"must number the tasks 0..{len(tasks) - 1}, got {sorted(tasks)}")
    return [tasks[i] for i in range(len(tasks))]


def _read_episodes(root: Path, info: dict[str, Any], tasks: list[str]) -> tuple[dict[str, np.ndarray], pa.Table]:
    """meta/episodes.jsonl as the v3 reader's episodes table (each episode in files of its own, its video from 0 to
    its length), and its other keys as a table of one row per episode."""
    path = root / V2_EPISODES_PATH
    rows = sorted(_read_jsonl(path), key=lambda r: r[1].get("episode_index") if isinstance(
        r[1].get("episode_index"), int) else -1)
    indices = [row.get("episode_index") for _, row in rows]
    if indices != list(range(len(rows))) or not rows:
        raise DatasetFormatError(path, "episode_index", f"must number the episodes 0..{len(rows) - 1}, got "
                                                        f"{indices[:10]}{' ...' if len(indices) > 10 else ''}"
                                 if rows else "lists no episode")
    known = set(tasks)
    lengths = []
    for n, row in rows:
        length, names = row.get("length"), row.get("tasks")
        if not is_integer(length) or length < 1:
            raise DatasetFormatError(path, "length", f"line {n}: got {length!r}; accepted: an int >= 1")
        if not isinstance(names, list) or not all(isinstance(t, str) for t in names):
            raise DatasetFormatError(path, "tasks", f"line {n}: got {names!r}; accepted: a list of strings")
        if unknown := [t for t in names if t not in known]:
            raise DatasetFormatError(path, "tasks", f"line {n} names {unknown}, which {V2_TASKS_PATH} does not list")
        lengths.append(length)
    info_path = root / INFO_PATH
    for key, given, found in (("total_episodes", info["total_episodes"], len(rows)),
                              ("total_frames", info["total_frames"], sum(lengths))):
        if given != found:
            raise DatasetFormatError(info_path, key, f"says {given} but {V2_EPISODES_PATH} gives {found}")
    n, fps, chunks = len(rows), float(info["fps"]), info["chunks_size"]
    length = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(length)
    episodes = {"episode_index": np.arange(n), "length": length, "data/chunk_index": np.arange(n) // chunks,
                "data/file_index": np.arange(n), "dataset_from_index": ends - length, "dataset_to_index": ends}
    for key in (k for k, f in info["features"].items() if f["dtype"] == "video"):
        episodes |= {f"videos/{key}/chunk_index": episodes["data/chunk_index"],
                     f"videos/{key}/file_index": episodes["data/file_index"],
                     f"videos/{key}/from_timestamp": np.zeros(n), f"videos/{key}/to_timestamp": length / fps}
    episodes["tasks"] = np.empty(n, dtype=object)
    episodes["tasks"][:] = [tuple(row["tasks"]) for _, row in rows]
    others = [{k: v for k, v in row.items() if k not in V2_EPISODE_KEYS} for _, row in rows]
    try:
        columns = pa.Table.from_pylist(others) if any(others) else pa.table({})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DatasetFormatError(path, None, f"its keys besides {', '.join(V2_EPISODE_KEYS)} differ in type between "
                                             f"episodes: {exc}") from None
    # before anything is written: the writer takes neither as an episode's own column
    if taken := [name for name in columns.column_names if lerobot_episode_column(name)]:
        raise DatasetFormatError(path, taken[0], f"is one of LeRobot v3.0's own meta/episodes columns, which the "
                                                 f"conversion writes; accepted: other keys (rename it in {path.name})")
    if SUCCESS_COLUMN in columns.column_names:  # worldpolicy's success flag (`dataset select --success`)
        success = columns.column(SUCCESS_COLUMN)
        if not pa.types.is_boolean(success.type) or success.null_count:
            raise DatasetFormatError(path, SUCCESS_COLUMN, f"holds {success.type} values with {success.null_count} "
                                     "missing; accepted: true or false on every episode (the success flag a v3.0 "
                                     "dataset keeps), or another key")
        episodes[SUCCESS_COLUMN] = np.asarray(success.to_pylist(), dtype=bool)
        columns = columns.drop([SUCCESS_COLUMN])
    return episodes, columns
