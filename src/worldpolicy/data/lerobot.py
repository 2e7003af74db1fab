"""Read and write LeRobotDataset v3.0 with pyarrow + JSON + PyAV (no `lerobot` package: its pins clash with ours).

ds = LeRobotDataset.open("path/to/dataset")
ep = ds.episode(0)                    # ep.frames["action"] [T, 7], ep.videos["observation.images.front"] [T, H, W, 3]

with LeRobotDatasetWriter("out", fps=15, robot_type="franka") as w:
    w.add_episode({"action": a, "observation.state": s}, {"observation.images.front": frames}, task="pick the cube")
# leaving the block finalises: the dataset appears at "out" in one rename, or not at all
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..errors import is_integer, is_real, typo_note
from ..extras import extra_imports

with extra_imports():
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

from ..fileio import (
    PROVENANCE_FILE,
    ScratchFolder,
    file_in_the_way,
    make_folder,
    replace_folder,
    share_tree,
    sweep_scratch_folders,
    write_bytes_atomic,
    write_json_atomic,
)
from ..hub import HUB_DATASET_EXAMPLE, dataset_snapshot, hub_id_shaped, refuse_local_owner
from ..processing.video import CODECS, EncodedSegment, VideoFileWriter, stream_signature
from .checks import check_rate
from .layout import (
    AUTO_FEATURES,
    CODEBASE_VERSION,
    DATA_PATH,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILE_MB,
    DEFAULT_VIDEO_FILE_MB,
    EPISODE_COLUMNS,
    EPISODES_DIR,
    EPISODES_PATH,
    INFO_PATH,
    NUMERIC_DTYPES,
    SCRATCH_KINDS,
    STAGING_KIND,
    STATS_PATH,
    SUCCESS_COLUMN,
    TASKS_PATH,
    VIDEO_EPISODE_FIELDS,
    VIDEO_NAMES,
    VIDEO_PATH,
    DatasetFormatError,
    check_feature,
    check_info,
    datasets_near,
    hdf5_hint,
    held_instead,
    image_hw,
    inside_dataset,
    lerobot_episode_column,
    read_json,
    read_provenance,
)
from .stats import STAT_NAMES, aggregate_stats, compute_stats, first_non_finite, stats_from_json, stats_to_json
from .video import SegmentReader, count_frames, read_segment

logger = logging.getLogger(__name__)

__all__ = ["Episode", "EpisodeVideoStream", "KeepSchedule", "LeRobotDataset", "LeRobotDatasetWriter",
           "write_episodes"]

VIDEO_STATS_FRAMES = 100  # frames sampled per episode for video stats (LeRobot samples too)
VIDEO_STATS_SIDE = 150  # spatial stride so the sampled frames are about this many pixels on a side
# How far (in frames) a stored timestamp may sit from frame_index / fps. LeRobot finds video frames at
# from_timestamp + timestamp, so a quarter frame still names one frame, and it passes float32 timestamps of day-long
# episodes and a 29.97 fps info.json over 30000/1001 fps timestamps for hours.
TIMESTAMP_TOLERANCE_FRAMES = 0.25


@dataclass
class Episode:
    """One episode in memory. `frames[key]` is [T, *shape] per feature; `videos[key]` is uint8 [T, H, W, 3].

    `tasks` are the episode's tasks as the episodes table lists them (in no particular order); `frame_tasks` is the
    task of every frame, since a task may change mid-episode (empty for an episode built in memory).
    """

    index: int
    tasks: tuple[str, ...]
    frames: dict[str, np.ndarray]
    videos: dict[str, np.ndarray] = field(default_factory=dict)
    timestamp: np.ndarray | None = None
    task_index: np.ndarray | None = None
    dataset_from_index: int = 0
    frame_tasks: tuple[str, ...] = ()
    success: bool | None = None  # whether it succeeded, where the dataset says (`LeRobotDataset.episode_success`)

    @property
    def length(self) -> int:
        if self.timestamp is not None:
            return len(self.timestamp)
        return len(next(iter({**self.frames, **self.videos}.values())))

    @property
    def task(self) -> str:
        """The task at frame 0 (the episodes table's order of `tasks` says nothing about which came first)."""
        if self.frame_tasks:
            return self.frame_tasks[0]
        return self.tasks[0] if self.tasks else ""


# ---------------------------------------------------------------------------------------------------------- reading


class LeRobotDataset:
    """A LeRobot v3.0 dataset on local disk. Metadata is read and checked on `open`; frames and videos on demand."""

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        tasks: list[str],
        episodes: dict[str, np.ndarray],
        unread_features: Mapping[str, str] | None = None,
        provenance: dict[str, Any] | None = None,
        episodes_file: str = EPISODES_DIR,
        episode_schemas: Sequence[pa.Schema] = (),
    ):
        self.root, self.info, self.tasks, self._episodes = root, info, tasks, episodes
        # each meta/episodes file's `episode_index` and own columns (`_extra_episode_tables`), as `open` read their
        # footers: `summary` names the columns' types from these, not reading every file again
        self._episode_schemas = list(episode_schemas)
        self._provenance = provenance
        # where `episodes` was read from, as the errors of reading an episode name it: a 2.x dataset read for
        # `dataset convert` (`data.convert.open_v2`) has meta/episodes.jsonl, not v3's meta/episodes folder
        self.episodes_file = episodes_file
        # features info.json declares that are not read (a 2-D column, a depth camera), each with why: not in
        # `features`, so the dataset's other columns train as if they were all it held
        self.unread_features = dict(unread_features or {})
        self._tables: OrderedDict[Path, _DataFile] = OrderedDict()  # the last data files read (`_table`)
        self._readers: dict[str, SegmentReader] | None = None  # per camera, inside `reading_in_order`

    @classmethod
    def open(cls, root: str | Path) -> LeRobotDataset:
        """The dataset at `root`: its folder, or a hub id (owner/name) that names no local folder (`dataset_folder`)."""
        local = Path(root).expanduser()
        # a dataset a killed writer was replacing: put back (`fileio.replace_folder`); a linked root's beside its
        # target, which the writer replaces (`LeRobotDatasetWriter`)
        sweep_scratch_folders(local.resolve() if local.is_symlink() else local, ())
        root = dataset_folder(root)  # as given: `./a/b` is a path, and Path() would drop its `./`
        if not root.is_dir():
            raise FileNotFoundError(f"dataset root {str(root)!r} is not a directory (give a LeRobot dataset's folder, "
                                    f"or a hub id like {HUB_DATASET_EXAMPLE!r}){hdf5_hint(root)}")
        if not (root / INFO_PATH).is_file():
            raise DatasetFormatError(root / INFO_PATH, None, _not_a_dataset(root))
        info, unread = check_info(read_json(root / INFO_PATH, "info.json"), root / INFO_PATH)
        for name, why in unread.items():
            _note_unread(str(root), name, why)
        provenance = read_provenance(root, info)
        tasks = _read_tasks(root / TASKS_PATH)
        episodes, schemas = _read_episodes(root, info, tasks)
        return cls(root, info, tasks, episodes, unread, provenance, episode_schemas=schemas)

    # -- metadata
    @property
    def fps(self) -> float:
        return float(self.info["fps"])

    @property
    def robot_type(self) -> str | None:
        return self.info.get("robot_type")

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def provenance(self) -> dict[str, Any] | None:
        """How worldpolicy made this dataset (meta/worldpolicy_provenance.json, or info.json's `worldpolicy_provenance`
        in one written before that file: for `dataset from-sim` the task and expert versions and the recording's
        settings), or None for a dataset made elsewhere."""
        return self._provenance

    @property
    def episode_success(self) -> np.ndarray | None:
        """Whether each episode succeeded (bool per episode, meta/episodes' `success` column: a `dataset from-sim
        --policy` recording), or None for a dataset that does not say."""
        success = self._episodes.get(SUCCESS_COLUMN)
        return None if success is None else success.copy()  # as episode_lengths: the dataset's own stays unchanged

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f["dtype"] in ("video", "image")]

    @property
    def feature_keys(self) -> list[str]:
        """Per-frame features stored in the parquet files, without LeRobot's automatic columns."""
        return [k for k, f in self.features.items() if f["dtype"] not in ("video", "image") and k not in AUTO_FEATURES]

    @property
    def num_episodes(self) -> int:
        return len(self._episodes["episode_index"])

    @property
    def num_frames(self) -> int:
        return int(self._episodes["length"].sum())

    @property
    def episode_lengths(self) -> np.ndarray:
        return self._episodes["length"].copy()

    def __len__(self) -> int:
        return self.num_episodes

    @property
    def episode_tasks(self) -> list[tuple[str, ...]]:
        """Per episode (in order), its tasks as the episodes table lists them, without loading it."""
        return list(self._episodes["tasks"])

    def episode_fields(self) -> list[dict[str, Any]]:
        """Per episode (in order), the columns of the episodes table beyond LeRobot's own (its rows, files, tasks,
        per-episode stats and metadata file): what a recorder added there, such as a success flag. Values as JSON
        holds them (a list or struct stays one); {} for an episode without any. Read on call: `open` reads only the
        columns it checks."""
        fields: list[dict[str, Any]] = [{} for _ in range(self.num_episodes)]
        for table in self._extra_episode_tables():
            for row in table.to_pylist():
                i = row.pop("episode_index")
                if isinstance(i, int) and 0 <= i < self.num_episodes:
                    fields[i] = row
        return fields

    def episode_columns(self) -> pa.Table:
        """`episode_fields` with their arrow types, less `success` (`episode_success`, which the writer takes as its
        own argument): one row per episode, in order (null where an episodes file lacks a column another has; no
        columns where the dataset has none), what a copy writes again (`LeRobotDatasetWriter.add_episode`'s `fields`,
        a row at a time: `episode_row`). Read on call."""
        tables = self._extra_episode_tables()
        schema = self._joined_schema([t.schema for t in tables])  # refuses files whose columns differ in type
        return pa.concat_tables(tables, promote_options="default").sort_by("episode_index").select(schema.names)

    def _joined_schema(self, schemas: list[pa.Schema]) -> pa.Schema:
        """The columns of `episode_columns` from its files' schemas (`_extra_episode_tables`'), as its rows join them;
        none where there are no files."""
        try:
            schema = pa.unify_schemas(schemas, promote_options="default") if schemas else pa.schema([])
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DatasetFormatError(self.root / EPISODES_DIR, None, f"its files' own columns differ in type: {exc}")
        return pa.schema([f for f in schema if f.name not in ("episode_index", SUCCESS_COLUMN)])

    def _extra_episode_tables(self) -> list[pa.Table]:
        """Each meta/episodes file's `episode_index` and the columns it has beyond LeRobot's own, those alone read
        (not its per-episode stats)."""
        return [_read_parquet(path, "episodes file", _extra_episode_columns) for path in _episodes_files(self.root)]

    @property
    def stats_path(self) -> Path:
        return self.root / STATS_PATH

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """meta/stats.json as numpy arrays, or None when the dataset has none."""
        if not self.stats_path.is_file():
            return None
        raw = read_json(self.stats_path, "stats.json")
        if not isinstance(raw, dict):
            raise DatasetFormatError(self.stats_path, None, "must hold a JSON object")
        for key, part in raw.items():  # stats_from_json would drop it: the feature would look as if it had none
            if not isinstance(part, dict):
                raise DatasetFormatError(self.stats_path, key,
                                         f"must be an object of statistics ({', '.join(STAT_NAMES)}), "
                                         f"got {type(part).__name__}")
        try:
            stats = stats_from_json(raw)
        except ValueError as exc:  # ragged lists
            raise DatasetFormatError(self.stats_path, None, f"holds a list numpy cannot read: {exc}") from None
        for key, part in stats.items():  # normalisation reads these: a wrong width must not reach a model
            spec = self.features.get(key)
            if spec is None or spec["dtype"] == "string":
                continue
            width = 3 if spec["dtype"] in ("video", "image") else spec["shape"][0]  # video stats are per channel
            for name in STAT_NAMES:
                wanted = 1 if name == "count" else width
                if name in part and (part[name].dtype.kind not in "biuf" or part[name].size != wanted):
                    raise DatasetFormatError(
                        self.stats_path,
                        f"{key}.{name}",
                        f"holds {part[name].size} {part[name].dtype} values; {key} needs {wanted} numbers",
                    )
                if name in part and not np.isfinite(part[name]).all():  # JSON's NaN/Infinity: normalising with it
                    raise DatasetFormatError(  # turns every action into NaN
                        self.stats_path, f"{key}.{name}", f"holds NaN or inf: {part[name].tolist()}"
                    )
        return stats

    def feature_stats(self, keys: str | Sequence[str]) -> dict[str, np.ndarray]:
        """Stats of several 1-D features side by side (e.g. joints + gripper as one action vector).

        Read from meta/stats.json; a feature missing there is computed from the parquet files.
        """
        keys = self._parquet_keys(keys, "keys")
        stored = self.stats or {}
        parts = []
        for key in keys:
            part = stored.get(key)
            if part is None or any(name not in part for name in STAT_NAMES):
                part = compute_stats(self.column(key))
            parts.append(part)
        out = {
            name: np.concatenate([np.asarray(p[name], dtype=np.float64).reshape(-1) for p in parts])
            for name in STAT_NAMES
            if name != "count"
        }
        out["count"] = np.asarray(parts[0]["count"]).reshape(-1)[:1].astype(np.int64)
        return out

    def feature_names(self, keys: str | Sequence[str]) -> list[str]:
        """Column names of several 1-D features side by side: info.json `names`, else `<key>_<i>`."""
        names: list[str] = []
        for key in self._parquet_keys(keys, "keys"):
            spec = self.features[key]
            given = spec.get("names")
            if isinstance(given, dict):  # LeRobot sometimes nests them: {"motors": [...]}
                given = next(iter(given.values()), None)
            width = spec["shape"][0]
            ok = isinstance(given, list) and len(given) == width and all(isinstance(n, str) for n in given)
            names.extend(given if ok else [key if width == 1 else f"{key}_{i}" for i in range(width)])
        return names

    def _parquet_keys(self, keys: str | Sequence[str], param: str) -> list[str]:
        keys = [keys] if isinstance(keys, str) else list(keys)
        bad = [k for k in keys if k not in self.features or self.features[k]["dtype"] in ("video", "image", "string")]
        if not keys or bad:
            raise KeyError(
                f"{param}={keys!r}: {bad or 'none given'} are not numeric per-frame features; known: "
                f"{self.feature_keys}{self.unknown_note(bad, self.feature_keys)}"
            )
        return keys

    def unread_note(self, keys: Iterable[str]) -> str:
        """For an error about `keys`: why those of them that info.json declares are not read, or ""."""
        why = [f"{k!r} ({self.unread_features[k]})" for k in keys if k in self.unread_features]
        return f"; not read from this dataset: {', '.join(why)}" if why else ""

    def unknown_note(self, keys: Iterable[str], accepted: Iterable[str]) -> str:
        """For an error refusing `keys`, features not among `accepted` (`--cameras`, `--state-keys`,
        `--drop-feature`, a training config's `data.video_keys`...): the accepted one each that info.json does not
        declare is likely a typo of (`errors.typo_note`: the error's list made no guess), then `unread_note`. Every
        such error says it with this."""
        keys = list(keys)
        return typo_note([k for k in keys if k not in self.unread_features], accepted) + self.unread_note(keys)

    def summary(self) -> dict[str, Any]:
        """The dataset in numbers, as JSON holds them: what `dataset info` (and `from-sim --json`, `label`) print, which
        users parse, and the head of `dataset show`'s page. Read from the metadata alone, no frame decoded. `root` is
        absolute: a script reading it runs elsewhere than where the dataset was named (`from-sim d2 --json`)."""
        lengths = self.episode_lengths
        codecs = {k: c for k in self.video_keys if (c := video_codec(self.features[k]))}
        return {
            "root": str(self.root.resolve()),
            "codebase_version": self.info["codebase_version"],
            "robot_type": self.robot_type,
            "fps": self.fps,
            "episodes": self.num_episodes,
            "frames": self.num_frames,
            "episode_length": (  # None for a dataset of no episodes (yet)
                {"min": int(lengths.min()), "mean": float(lengths.mean()), "max": int(lengths.max())}
                if lengths.size else None
            ),
            "tasks": len(self.tasks),
            "features": {  # a numeric feature's names, as info.json gives them: what a training config's embodiment
                # `columns` must repeat
                k: {"dtype": self.features[k]["dtype"], "shape": self.features[k]["shape"],
                    **({"names": self.features[k]["names"]}
                       if k in self.feature_keys and self.features[k].get("names") else {})}
                for k in self.feature_keys + self.video_keys
            },
            # each camera's codec, where info.json says: what decides whether PyAV here decodes its files (LeRobot's
            # recorder writes AV1)
            **({"video_codecs": codecs} if codecs else {}),
            # declared in info.json but not read (a 2-D column, a depth camera): training and predict cannot use them
            **({"not_read": dict(self.unread_features)} if self.unread_features else {}),
            "has_stats": self.stats_path.is_file(),
            # whether each episode succeeded, where it says (`dataset from-sim`): the failed ones' indices, as
            # `dataset eval`, `dataset frame` and train's --episodes take them
            **({"success": {"succeeded": int(done.sum()),
                            "failed_episodes": [i for i, ok in enumerate(done) if not ok]}}
               if (done := self.episode_success) is not None else {}),
            # the dataset's own meta/episodes columns (a recorder's operator, a score), name and arrow type: what
            # `dataset select`, `merge` and `label` carry with each episode (from the schemas `open` read: a DROID-size
            # dataset's 90 files are not read again)
            **({"episode_columns": {f.name: str(f.type) for f in columns}}
               if (columns := self._joined_schema(self._episode_schemas)) else {}),
            # how worldpolicy made it (`dataset from-sim`: task and expert versions, settings), where it says; the seed
            # of every episode stays in its file, out of a summary of a long recording
            **({"provenance": {k: v for k, v in self.provenance.items() if k != "seeds"}} if self.provenance else {}),
        }

    # -- frames
    def episode(self, index: int, videos: bool | list[str] = True) -> Episode:
        """Load episode `index` (negative counts from the end); `videos` = False or a list of keys limits decoding."""
        i = self._episode_index(index)
        ep = {k: v[i] for k, v in self._episodes.items()}
        length = int(ep["length"])
        data_path, data, rows = self._episode_rows(i)
        # copies: an episode's arrays are the caller's to change in place (flip a gripper column, normalise), as its
        # videos and `column` are, and must not reach the file's columns kept for the next episode
        frames = {k: data.column(k, self.features[k], data_path)[rows].copy() for k in self.feature_keys}
        timestamp = data.column("timestamp", AUTO_FEATURES["timestamp"], data_path)[rows, 0].copy()
        task_index = data.column("task_index", AUTO_FEATURES["task_index"], data_path)[rows, 0].copy()
        if task_index.size and (task_index.min() < 0 or task_index.max() >= len(self.tasks)):
            raise DatasetFormatError(
                data_path, "task_index", f"episode {i} refers to tasks outside [0, {len(self.tasks)}) of {TASKS_PATH}"
            )
        wanted = self.video_keys if videos is True else (list(videos) if videos else [])
        unknown = [k for k in wanted if k not in self.video_keys]
        if unknown:
            raise KeyError(f"videos={unknown} are not video features of this dataset; known: {self.video_keys}"
                           f"{self.unknown_note(unknown, self.video_keys)}")
        decoded = {key: self._camera_frames(i, key, 0, length, (data_path, data, rows)) for key in wanted}
        frame_tasks = tuple(self.tasks[t] for t in task_index.tolist())
        return Episode(
            index=i,
            tasks=tuple(ep["tasks"]) or tuple(dict.fromkeys(frame_tasks)),
            frames=frames,
            videos=decoded,
            timestamp=timestamp,
            task_index=task_index,
            dataset_from_index=int(ep["dataset_from_index"]),
            frame_tasks=frame_tasks,
            success=bool(ep[SUCCESS_COLUMN]) if SUCCESS_COLUMN in ep else None,
        )

    def camera_frames(self, index: int, key: str, start: int, stop: int) -> np.ndarray:
        """Frames [start, stop) of camera `key` in episode `index` (negative counts from the end, as `episode`'s),
        uint8 [stop - start, H, W, 3], decoding only from the keyframe before `start` to `stop` (a frame out of a long
        episode without decoding all of it)."""
        i = self._episode_index(index)
        if key not in self.video_keys:
            raise KeyError(f"key={key!r} is not a video feature of this dataset; known: {self.video_keys}"
                           f"{self.unknown_note([key], self.video_keys)}")
        length = int(self._episodes["length"][i])
        if not 0 <= start < stop <= length:
            raise IndexError(f"frames [{start}, {stop}) are out of range for episode {i} of {length} frames")
        return self._camera_frames(i, key, start, stop)

    @contextlib.contextmanager
    def reading_in_order(self) -> Iterator[None]:
        """Inside it, each camera's video file stays open between `camera_frames` (and `episode`) calls: a call that
        starts where the previous one of that file ended (or at its last frame) decodes on from there, rather than
        again from the keyframe before it (`video.SegmentReader`). For reading an episode, or a file's episodes, a
        block at a time (`dataset select`, `merge`, `label`, `show`) or episode after episode (`episodes`, `dataset
        check`); the frames are the same either way. One file per camera is held open, until the block exits; nested,
        the outer one holds them."""
        if self._readers is not None:
            yield
            return
        self._readers = {}
        try:
            yield
        finally:
            readers, self._readers = self._readers, None
            for reader in readers.values():
                reader.close()

    def _episode_index(self, index: Any) -> int:
        """An episode index as `episode` and `camera_frames` take it: an int in [-n, n), negative counting from the
        end (as a list's), returned in [0, n)."""
        n = self.num_episodes
        if not is_integer(index) or not -n <= index < n:
            raise IndexError(f"episode index={index!r} is out of range for {n} episodes")
        return int(index) % n

    def _camera_frames(
        self, i: int, key: str, start: int, stop: int, rows: tuple[Path, _DataFile, slice] | None = None
    ) -> np.ndarray:
        """`camera_frames` once its arguments are checked; `rows` are the episode's (`_episode_rows`), when read."""
        if self.features[key]["dtype"] == "image":  # stored in the data file
            data_path, data, span = rows or self._episode_rows(i)
            return _image_column(data.table.slice(span.start + start, stop - start), key, data_path, self.root,
                                 image_hw(self.features[key]), start)
        video_path = self._video_path(key, i)
        begin = float(self._episodes[f"videos/{key}/from_timestamp"][i])
        length = int(self._episodes["length"][i])
        segment = (
            begin + start / self.fps,
            # the whole episode ends at the stored to_timestamp (what LeRobot reads), a part of it at its frame
            float(self._episodes[f"videos/{key}/to_timestamp"][i]) if stop == length else begin + stop / self.fps,
            self.fps,
            stop - start,
            key,
            image_hw(self.features[key]),
            f" of episode {i} (from {self.episodes_file})",
        )
        codec = video_codec(self.features[key])
        if self._readers is None:
            return read_segment(video_path, *segment, codec)
        reader = self._readers.get(key)
        if reader is None or reader.path != video_path:  # another file of this camera: the one held is done with
            if reader is not None:
                reader.close()
            reader = self._readers[key] = SegmentReader(video_path, codec)
        return reader.read(*segment)

    def encoded_segment(self, index: int, key: str) -> EncodedSegment | str:
        """Camera `key`'s frames of episode `index` as their encoded packets (`processing.video.EncodedSegment`, to
        be closed), to copy into another dataset as they are; or why they cannot be (a camera stored as images, a
        segment that does not decode on its own)."""
        i = self._episode_index(index)
        if self.features[key]["dtype"] != "video":
            return f"{key!r} is stored as images, not a video"
        return EncodedSegment.open(self._video_path(key, i), float(self._episodes[f"videos/{key}/from_timestamp"][i]),
                                   float(self._episodes[f"videos/{key}/to_timestamp"][i]), self.fps,
                                   int(self._episodes["length"][i]))

    def episodes(self, videos: bool | list[str] = True) -> Iterator[Episode]:
        """Every episode in order (`episode`'s `videos`), each camera's file held open between them
        (`reading_in_order`) until the iteration ends."""
        with self.reading_in_order():
            for i in range(self.num_episodes):
                yield self.episode(i, videos=videos)

    def column(self, key: str) -> np.ndarray:
        """One per-frame feature over the whole dataset, in episode order: [num_frames, *shape]."""
        if key not in self.features or self.features[key]["dtype"] in ("video", "image"):
            known = self.feature_keys + list(AUTO_FEATURES)
            raise KeyError(f"key={key!r} is not a parquet feature; known: {known}{self.unknown_note([key], known)}")
        parts = []
        for i in range(self.num_episodes):
            path, data, rows = self._episode_rows(i)
            parts.append(data.column(key, self.features[key], path)[rows])
        return np.concatenate(parts)

    def _episode_rows(self, i: int) -> tuple[Path, _DataFile, slice]:
        """Episode i's data file and its rows there (in frame order: `_table`), with the index columns checked against
        meta/episodes (LeRobot locates a frame's video by from_timestamp + timestamp and its row by index)."""
        length, start = int(self._episodes["length"][i]), int(self._episodes["dataset_from_index"][i])
        path = self._data_path(i)
        data = self._table(path, i)
        # a slice of the file's grouped rows: filtering the whole file for each of its episodes made reading every
        # episode (`dataset check`, training's finiteness check) quadratic in a file's episodes
        first, end = int(np.searchsorted(data.episode_index, i, "left")), int(np.searchsorted(data.episode_index, i,
                                                                                              "right"))
        if end - first != length:
            raise DatasetFormatError(
                path, "episode_index",
                f"holds {end - first} rows of episode {i} but {self.episodes_file} gives length {length}",
            )
        rows = slice(first, end)
        if not np.array_equal(data.frame_index[rows], np.arange(length)):  # sorted: a frame missing or twice
            raise DatasetFormatError(path, "frame_index", f"episode {i} does not number its frames 0..{length - 1}")
        index = data.column("index", AUTO_FEATURES["index"], path)[rows, 0]
        if (bad := np.flatnonzero(index != start + np.arange(length))).size:
            raise DatasetFormatError(
                path,
                "index",
                f"frame {bad[0]} of episode {i} has index {index[bad[0]]}; {self.episodes_file} starts episode {i} at "
                f"frame {start} of the dataset, so frame t must have index {start} + t",
            )
        timestamp = data.column("timestamp", AUTO_FEATURES["timestamp"], path)[rows, 0]
        off = np.abs(timestamp.astype(np.float64) * self.fps - np.arange(length))
        if (bad := np.flatnonzero(off > TIMESTAMP_TOLERANCE_FRAMES)).size:
            t = bad[0]
            raise DatasetFormatError(
                path,
                "timestamp",
                f"frame {t} of episode {i} has timestamp {float(timestamp[t]):g} s but frame_index / fps is "
                f"{t / self.fps:g} s; accepted: within {TIMESTAMP_TOLERANCE_FRAMES:g} frame of it",
            )
        return path, data, rows

    def check_files(self) -> None:
        """Refuse data and video files, and video frames past the last episode of a file, that no episode in
        meta/episodes places there. A crash before the metadata was written, or a hand edit, leaves such episodes:
        LeRobot never sees them. `worldpolicy dataset check` runs this; `episode` checks the data files it reads."""
        import av

        ends: dict[Path, float] = {}  # video file -> where its last listed episode ends (s)
        for key in (k for k in self.video_keys if self.features[k]["dtype"] == "video"):
            files, which = self._files(f"videos/{key}")  # a path per file, not per episode: DROID has 90k of them
            last = np.zeros(len(files))
            np.maximum.at(last, which, self._episodes[f"videos/{key}/to_timestamp"])
            for (chunk, file), end in zip(files.tolist(), last.tolist()):
                path = self._video_file(key, chunk, file)
                ends[path] = max(ends.get(path, 0.0), end)
        listed = {self._data_file(chunk, file) for chunk, file in self._files("data")[0].tolist()} | set(ends)
        templates = [self.info["data_path"]] + ([self.info["video_path"]] if self.info.get("video_path") else [])
        unread = set()  # the files of a camera that is not read (a depth map's) are not this check's to judge
        for key in self.unread_features if self.info.get("video_path") else ():
            pattern = self.info["video_path"].replace("{video_key}", key)
            unread.update(self.root.glob(re.sub(r"\{[^}]*\}", "*", pattern)))
        for template in templates:
            for path in sorted(self.root.glob(re.sub(r"\{[^}]*\}", "*", template))):
                if path not in listed and path not in unread:
                    raise DatasetFormatError(
                        path, None, f"no episode in {EPISODES_DIR} places its frames in this file; it holds unlisted ones"
                    )
        for path, end in ends.items():
            try:
                frames = count_frames(path)
            except (av.error.FFmpegError, OSError):
                continue  # missing or undecodable: `episode` names it
            if frames > round(end * self.fps):
                raise DatasetFormatError(
                    path,
                    None,
                    f"holds {frames} frames but the episodes {EPISODES_DIR} places in it end at frame "
                    f"{round(end * self.fps)}; the rest belong to no listed episode",
                )

    def check_video_files(self, keys: Sequence[str], episodes: Iterable[int] | None = None) -> None:
        """Refuse a video file that `keys`' frames of `episodes` (default all) would be decoded from and that is not
        there: a stat per file, so training finds it before the weights load instead of at the first decode. Names
        the first missing file, the episode that needs it and how many files are missing."""
        seen: set[Path] = set()  # LeRobot v3 packs many episodes into one file: one stat each
        missing: dict[Path, tuple[str, int]] = {}
        # read once: an iterator would be spent on the first key, and the other cameras' files go unchecked
        episodes = range(self.num_episodes) if episodes is None else [int(i) for i in episodes]
        for key in (k for k in keys if self.features[k]["dtype"] == "video"):
            for i in episodes:
                path = self._video_path(key, i)
                if path not in seen:
                    seen.add(path)
                    if not path.is_file():
                        missing[path] = (key, i)
        if missing:
            path, (key, i) = next(iter(missing.items()))
            more = f"; {len(missing) - 1} more video files are missing too" if len(missing) > 1 else ""
            raise DatasetFormatError(path, None, f"video file is missing (named by videos/{key}/chunk_index and "
                                                 f"file_index of episode {i} (from {self.episodes_file})){more}")

    def _video_path(self, key: str, i: int) -> Path:
        return self._video_file(key, int(self._episodes[f"videos/{key}/chunk_index"][i]),
                                int(self._episodes[f"videos/{key}/file_index"][i]))

    def _video_file(self, key: str, chunk_index: int, file_index: int) -> Path:
        return self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk_index, file_index=file_index)

    def _files(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        """The distinct (chunk_index, file_index) rows of meta/episodes' `prefix` columns (`data`, `videos/<key>`),
        and each episode's row among them."""
        pairs = np.stack([self._episodes[f"{prefix}/chunk_index"], self._episodes[f"{prefix}/file_index"]], axis=1)
        files, which = np.unique(pairs, axis=0, return_inverse=True)
        return files, which.reshape(-1)

    def _data_path(self, i: int) -> Path:
        return self._data_file(int(self._episodes["data/chunk_index"][i]), int(self._episodes["data/file_index"][i]))

    def _data_file(self, chunk_index: int, file_index: int) -> Path:
        return self.root / self.info["data_path"].format(chunk_index=chunk_index, file_index=file_index)

    def _table(self, path: Path, i: int) -> _DataFile:
        """The data file at `path` (episode i's), checked to hold the rows of exactly the episodes placed in it."""
        if path in self._tables:
            self._tables.move_to_end(path)
            return self._tables[path]
        if not path.is_file():
            raise DatasetFormatError(path, None, f"data file is missing (referenced by {self.episodes_file})")
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DatasetFormatError(path, None, f"is not a readable parquet file: {exc}") from None
        needed = self.feature_keys + list(AUTO_FEATURES)
        for key in needed:
            if key not in table.column_names:
                raise DatasetFormatError(
                    path,
                    key,
                    f"column is missing (declared in {INFO_PATH} features)"
                    if key not in AUTO_FEATURES
                    else "column is missing",
                )
        chunk, file = self._episodes["data/chunk_index"], self._episodes["data/file_index"]
        placed = np.flatnonzero((chunk == chunk[i]) & (file == file[i]))
        listed = int(self._episodes["length"][placed].sum())
        if table.num_rows != listed:
            held = set(pc.unique(table.column("episode_index")).to_pylist())
            extra, missing = sorted(held - set(placed.tolist())), sorted(set(placed.tolist()) - held)
            raise DatasetFormatError(
                path,
                "episode_index",
                f"holds {table.num_rows} rows but the episodes {self.episodes_file} places in it have {listed}"
                + (f"; it holds rows of episodes {extra[:10]}, which {self.episodes_file} does not place here"
                   if extra else "")
                + (f"; it has no rows of episodes {missing[:10]}" if missing else ""),
            )
        data = _DataFile.grouped(table, path)
        self._tables[path] = data
        while len(self._tables) > 2:
            self._tables.popitem(last=False)
        return data

    def __repr__(self) -> str:
        return (
            f"LeRobotDataset(root={str(self.root)!r}, episodes={self.num_episodes}, frames={self.num_frames}, "
            f"fps={self.fps:g}, videos={self.video_keys})"
        )


@dataclass
class _DataFile:
    """A data file as `LeRobotDataset` reads it: its rows by episode_index, each episode's by frame_index (as LeRobot
    writes them; sorted, each key's rows in their order, where not), those two columns, and the columns converted so
    far (`_column_array` of the whole file, once: read-only, an episode takes a copy of its part)."""

    table: pa.Table
    episode_index: np.ndarray
    frame_index: np.ndarray
    columns: dict[tuple[str, str, tuple[int, ...]], np.ndarray] = field(default_factory=dict)

    @classmethod
    def grouped(cls, table: pa.Table, path: Path) -> _DataFile:
        ids, frames = (_index_column(table, k, path) for k in ("episode_index", "frame_index"))
        if np.any((ids[1:] < ids[:-1]) | ((ids[1:] == ids[:-1]) & (frames[1:] < frames[:-1]))):
            order = np.lexsort((frames, ids))
            table, ids, frames = table.take(pa.array(order)), ids[order], frames[order]
        return cls(table, ids, frames)

    def column(self, key: str, spec: Mapping[str, Any], path: Path) -> np.ndarray:
        # kept by what it was converted to: an episode reads `timestamp` as LeRobot writes it (`AUTO_FEATURES`),
        # `LeRobotDataset.column` as info.json declares it, and neither may be handed the other's
        at = (key, spec["dtype"], tuple(spec["shape"]))
        if at not in self.columns:
            self.columns[at] = _column_array(self.table, key, spec, path)
        return self.columns[at]


def _index_column(table: pa.Table, key: str, path: Path) -> np.ndarray:
    """A data file's episode_index or frame_index as int64, of any int type (uint32 too); a null is -1, no episode's
    row nor a frame's: it never matches one."""
    column = table.column(key)
    if pa.types.is_integer(column.type) or pa.types.is_null(column.type):
        try:
            return pc.fill_null(column.cast(pa.int64()), -1).to_numpy()
        except pa.ArrowInvalid:  # a uint64 past int64's range
            pass
    raise DatasetFormatError(path, key, f"column is {column.type}; expected ints in int64's range")


def dataset_folder(source: str | Path) -> Path:
    """The local folder of the dataset `source` names, the one place a dataset named by a user is found: a path, or a
    string shaped like a hub id (`hub.hub_id_shaped`; `OWNER/NAME@REV` pins a branch, tag or commit) that names nothing
    here, fetched from the hub into its cache as LeRobot does (`hub.dataset_snapshot`: HubError when it cannot be,
    ValueError naming `dataset` for a malformed revision). A path whose first part is a folder here
    (`runs/data`) is a missing path, not a hub id."""
    root = Path(source).expanduser()
    if root.exists() or not hub_id_shaped(str(source)):
        return root
    refuse_local_owner(str(source), f"dataset {str(source)!r}")
    return dataset_snapshot(str(source))


def _not_a_dataset(root: Path) -> str:
    """Why `root` is no dataset, and where the dataset may be (`datasets_near`)."""
    problem = (f"info.json is missing: root={str(root)!r} must be a LeRobot dataset's folder "
               f"(the one holding {INFO_PATH}){held_instead(root)}")
    inside, below = datasets_near(root)
    if inside is not None:
        return f"{problem}; it is inside the dataset {str(inside)!r}: give that folder"
    if below:
        more = f" and {len(below) - 5} more" if len(below) > 5 else ""
        return f"{problem}; datasets below it: {', '.join(repr(str(p)) for p in below[:5])}{more}"
    return problem


def _read_parquet(path: Path, what: str, columns: Callable[[pa.Schema], list[str]] | None = None) -> pa.Table:
    """The parquet file `path` (`what` names it in errors): every column, or those `columns` picks from its schema."""
    if not path.is_file():
        raise DatasetFormatError(path, None, f"{what} is missing")
    try:
        return pq.read_table(path, columns=None if columns is None else columns(pq.read_schema(path)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetFormatError(path, None, f"{what} is not a readable parquet file: {exc}") from None


def _read_tasks(path: Path) -> list[str]:
    """meta/tasks.parquet: pandas-written, index = task string (named 'task' or unnamed), column task_index."""
    table = _read_parquet(path, "tasks file")
    if "task_index" not in table.column_names:
        raise DatasetFormatError(path, "task_index", "column is missing")
    meta = table.schema.pandas_metadata or {}
    index_columns = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
    candidates = ["task"] + index_columns + ["__index_level_0__"]
    task_column = next((c for c in candidates if c in table.column_names), None)
    if task_column is None:
        raise DatasetFormatError(path, "task", "no task-string column (expected the pandas index 'task')")
    texts = table.column(task_column).to_pylist()
    indices = table.column("task_index").to_pylist()
    if any(not isinstance(t, str) for t in texts):
        raise DatasetFormatError(path, task_column, "task strings must be non-null strings")
    if sorted(indices) != list(range(len(indices))):
        raise DatasetFormatError(path, "task_index", f"must number the tasks 0..{len(indices) - 1}, got {indices}")
    tasks = [""] * len(indices)
    for text, idx in zip(texts, indices):
        tasks[idx] = text
    return tasks


def _episodes_files(root: Path) -> list[Path]:
    """meta/episodes' parquet files, in the order their rows are read."""
    return sorted((root / EPISODES_DIR).glob("chunk-*/file-*.parquet"))


def _extra_episode_columns(schema: pa.Schema) -> list[str]:
    """A meta/episodes file's `episode_index` and the columns it has beyond LeRobot's own."""
    return ["episode_index", *(c for c in schema.names if not lerobot_episode_column(c))]


def _read_episodes(root: Path, info: dict[str, Any], tasks: list[str]) -> tuple[dict[str, np.ndarray],
                                                                                 list[pa.Schema]]:
    """meta/episodes' columns that `LeRobotDataset` reads, checked, one value per episode in order; and each file's
    schema of `_extra_episode_columns` (`LeRobotDataset.summary` names them, the files not read again)."""
    files = _episodes_files(root)
    if not files:
        raise DatasetFormatError(root / EPISODES_DIR, None, "holds no chunk-*/file-*.parquet episode files")
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    needed = list(EPISODE_COLUMNS) + [f"videos/{k}/{f}" for k in video_keys for f in VIDEO_EPISODE_FIELDS]
    columns: dict[str, list] = {k: [] for k in needed}
    sources: list[Path] = []  # the file each row came from, for errors
    read: list[tuple[Path, pa.Table]] = []  # each file's success column alone (if any)
    wanted = {*needed, SUCCESS_COLUMN}
    schemas: list[pa.Schema] = []

    def picked(schema: pa.Schema) -> list[str]:
        schemas.append(pa.schema([schema.field(c) for c in _extra_episode_columns(schema) if c in schema.names]))
        return [c for c in schema.names if c in wanted]

    for path in files:
        # these columns only: LeRobot's files also hold every episode's stats of every feature (stats/*), most of
        # their bytes, which opening a dataset of many episodes would read and throw away
        table = _read_parquet(path, "episodes file", picked)
        read.append((path, table.select([c for c in table.column_names if c == SUCCESS_COLUMN])))
        sources.extend([path] * table.num_rows)
        for key in needed:
            if key not in table.column_names:
                raise DatasetFormatError(path, key, "column is missing")
            _check_episodes_column(table.schema.field(key).type, key, path)
            column = table.column(key)
            if key == "tasks":
                columns[key].extend(column.to_pylist())
                continue
            if column.null_count:
                raise DatasetFormatError(path, key, "has null values")
            columns[key].append(column.to_numpy())
    out = {
        k: np.concatenate(v).astype(np.float64 if k.endswith("timestamp") else np.int64)
        for k, v in columns.items()
        if k != "tasks"
    }
    success = _success_column(read)
    if success is not None:
        out[SUCCESS_COLUMN] = success
    out["tasks"] = np.empty(len(columns["tasks"]), dtype=object)
    out["tasks"][:] = [tuple(t or ()) for t in columns["tasks"]]
    order = np.argsort(out["episode_index"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    sources = [sources[i] for i in order]
    n = len(order)
    if not np.array_equal(out["episode_index"], np.arange(n)):
        raise DatasetFormatError(root / EPISODES_DIR, "episode_index", f"episodes must be numbered 0..{n - 1}")
    if n != info["total_episodes"]:
        raise DatasetFormatError(
            root / INFO_PATH, "total_episodes", f"says {info['total_episodes']} but {EPISODES_DIR} lists {n} episodes"
        )
    bad = np.flatnonzero((out["length"] < 1) | (out["dataset_to_index"] - out["dataset_from_index"] != out["length"]))
    if bad.size:
        raise DatasetFormatError(
            sources[bad[0]], "length", f"episode {bad[0]}: must be >= 1 and equal dataset_to_index - dataset_from_index"
        )
    if int(out["length"].sum()) != info["total_frames"]:
        raise DatasetFormatError(
            root / INFO_PATH,
            "total_frames",
            f"says {info['total_frames']} but the episodes hold {int(out['length'].sum())}",
        )
    for key in video_keys:
        bad = np.flatnonzero(out[f"videos/{key}/to_timestamp"] <= out[f"videos/{key}/from_timestamp"])
        if bad.size:
            raise DatasetFormatError(
                sources[bad[0]], f"videos/{key}/to_timestamp", f"episode {bad[0]}: must be greater than from_timestamp"
            )
    known = set(tasks)
    for i, names in enumerate(out["tasks"]):
        unknown = [t for t in names if t not in known]
        if unknown:
            raise DatasetFormatError(
                sources[i], "tasks", f"episode {i} names {unknown}, which {TASKS_PATH} does not list"
            )
    return out, schemas


def _success_column(read: list[tuple[Path, pa.Table]]) -> np.ndarray | None:
    """meta/episodes' `success` column in file order (as the other columns are read), where every file has one;
    None where none has. Bools, or ints 0/1 as another recorder may store them. A column that says less than one flag
    per episode (nulls, other values, some files only) is not read, and said: a filter on it would drop or keep
    episodes it says nothing of, and the dataset's frames are still good for everything else."""
    if not any(SUCCESS_COLUMN in table.column_names for _, table in read):
        return None
    values: list[Any] = []
    for path, table in read:
        problem = None
        if SUCCESS_COLUMN not in table.column_names:
            problem = "is missing here but present in other episodes files"
        elif table.column(SUCCESS_COLUMN).null_count:
            problem = "has null values"
        else:
            kind, column = table.schema.field(SUCCESS_COLUMN).type, table.column(SUCCESS_COLUMN).to_pylist()
            if not (pa.types.is_boolean(kind) or (pa.types.is_integer(kind) and set(column) <= {0, 1})):
                problem = f"holds {kind} values, not one bool (or 0/1) per episode"
        if problem:
            logger.warning("%s: column %r %s; it is not read, so this dataset does not say which episodes succeeded",
                           path, SUCCESS_COLUMN, problem)
            return None
        values.extend(column)
    return np.asarray(values, dtype=bool)


def _check_episodes_column(kind: pa.DataType, key: str, path: Path) -> None:
    """A meta/episodes column holds what LeRobot writes there: `tasks` a list of strings per episode, timestamps
    numbers, the rest ints. Cast blindly, a float length of 12.5 was read as 12 and a string `tasks` as its letters."""
    if key == "tasks":
        lists = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if pa.types.is_null(kind) or (lists and (pa.types.is_string(kind.value_type)
                                                 or pa.types.is_large_string(kind.value_type)
                                                 or pa.types.is_null(kind.value_type))):
            return
        raise DatasetFormatError(path, key, f"column is {kind}; expected a list of task strings per episode")
    if pa.types.is_integer(kind) or (key.endswith("timestamp") and pa.types.is_floating(kind)):
        return
    raise DatasetFormatError(path, key,
                             f"column is {kind}; expected {'numbers' if key.endswith('timestamp') else 'ints'}")


def _column_array(table: pa.Table, key: str, spec: Mapping[str, Any], path: Path) -> np.ndarray:
    """A parquet column as [rows, width]: scalars (LeRobot's shape [1]) and fixed or variable lists alike; perhaps a
    read-only view of the table's buffers (pyarrow hands those out), which the caller must not change."""
    if key not in table.column_names:
        raise DatasetFormatError(path, key, "column is missing")
    col = table.column(key).combine_chunks()
    width = spec["shape"][0]
    n = len(col)
    if col.null_count:
        raise DatasetFormatError(path, key, f"has {col.null_count} null values")
    kind = col.type
    if spec["dtype"] == "string":
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise DatasetFormatError(path, key, f"column is {kind} but {INFO_PATH} gives dtype string")
        arr = np.empty((n, 1), dtype=object)
        arr[:, 0] = col.to_pylist()
        return arr
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if np.any(lengths != width):
            raise DatasetFormatError(
                path, key, f"rows hold {sorted(set(lengths.tolist()))[:5]} values, info.json shape says {width}"
            )
        values = col.flatten().to_numpy(zero_copy_only=False).reshape(n, width)
    else:
        if width != 1:
            raise DatasetFormatError(path, key, f"is a scalar column but info.json shape says [{width}]")
        values = col.to_numpy(zero_copy_only=False).reshape(n, 1)
    values = _as_declared(values, np.dtype(spec["dtype"]), kind, key, path)
    return values


def _as_declared(values: np.ndarray, dtype: np.dtype, arrow_type: pa.DataType, key: str, path: Path) -> np.ndarray:
    """Cast a column to info.json's dtype only where no value changes: a bare astype would read the strings "False"
    as True and floats 0.18..0.9 as int 0, silently."""
    source = values.dtype
    if source == dtype:
        return values
    fits = dtype.kind == "f" and source.kind in "biuf"  # int -> float and float64 -> float32 are accepted widenings
    if dtype.kind in "iu" and source.kind in "biu":
        fits = np.can_cast(source, dtype) or not values.size or (
            np.iinfo(dtype).min <= values.min() and values.max() <= np.iinfo(dtype).max
        )
    if dtype.kind == "b" and source.kind in "iu":
        fits = bool(np.isin(values, (0, 1)).all())
    if not fits:
        raise DatasetFormatError(
            path,
            key,
            f"column is {arrow_type} but {INFO_PATH} gives dtype {dtype.name}, and reading it as {dtype.name} would "
            "change its values; accepted: the same type, ints or floats for a float dtype, ints in range for an int "
            "dtype, 0/1 ints for bool",
        )
    return values.astype(dtype)


def _image_column(
    table: pa.Table, key: str, path: Path, root: Path, hw: tuple[int, int], first: int = 0
) -> np.ndarray:
    """Images embedded in parquet as struct<bytes, path> (LeRobot's `image` dtype), decoded with Pillow; each must be
    info.json's `hw` (a video is checked the same way). `first` is the episode frame of the first row, for errors.
    A 16-bit or float image (a depth camera's, say: LeRobot's own writer stores 8-bit RGB only) is read as inference
    reads that file (`pil_pixels`: at its full scale, not clipped to white as an RGB conversion does) and rounded to
    the 8 bits every camera frame has here."""
    import io

    from PIL import Image

    from ..processing.observations import pil_pixels

    if key not in table.column_names:
        raise DatasetFormatError(path, key, "column is missing")
    frames = []
    for t, item in enumerate(table.column(key).to_pylist(), start=first):
        if not isinstance(item, dict) or not (item.get("bytes") or item.get("path")):
            raise DatasetFormatError(path, key, "image cells must be structs with 'bytes' or 'path'")
        if not item.get("bytes") and not (isinstance(item["path"], str) and inside_dataset(item["path"])):
            raise DatasetFormatError(path, key, f"the image of frame {t} names {item['path']!r}; accepted: a path "
                                                "inside the dataset folder (relative, without '..' parts)")
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else root / item["path"]
        try:
            with Image.open(source) as img:
                if img.size != (hw[1], hw[0]):  # from the header: a few bytes may declare gigapixels, never decoded
                    raise DatasetFormatError(path, key, f"the image of frame {t} is {img.height}x{img.width} but "
                                                        f"info.json says {hw[0]}x{hw[1]}")
                pixels = pil_pixels(img, f"{key} (frame {t})")
                if pixels.dtype != np.uint8:
                    _note_wide_images(str(root), key, img.mode)
                    pixels = (pixels * 255.0 + 0.5).astype(np.uint8)
                frames.append(pixels)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a bomb: more pixels than Pillow allows
            if isinstance(exc, DatasetFormatError):
                raise
            raise DatasetFormatError(path, key, f"holds an undecodable image: {exc}") from None
    return np.stack(frames)


def video_codec(spec: Mapping[str, Any]) -> str | None:
    """The codec info.json names for a video feature (`info.video.codec`, as LeRobot writes it), or None: for
    `dataset info`, and for the error when PyAV cannot decode the files."""
    info = spec.get("info")
    codec = info.get("video.codec") if isinstance(info, Mapping) else None
    return codec if isinstance(codec, str) else None


@cache  # once per dataset and feature: training opens a dataset more than once
def _note_unread(root: str, name: str, why: str) -> None:
    logger.warning("dataset %s: feature %r is not read (%s); the dataset opens without it", root, name, why)


@cache  # once per dataset and feature: an episode is read many times in training
def _note_wide_images(root: str, key: str, mode: str) -> None:
    logger.warning("dataset %s: image feature %r holds %s images (16-bit or float, a depth camera's?); read at their "
                   "full scale (x / 65535 for 16-bit), as inference reads such a file, and rounded to 8 bits. A model "
                   "sees them as a grey camera view", root, key, mode)


# ---------------------------------------------------------------------------------------------------------- writing


class KeepSchedule:
    """When a long run that writes a dataset an episode at a time (`dataset from-sim`, `dataset label`, `serve
    --record`) keeps what it finished (`LeRobotDatasetWriter.keep`: published as an interruption publishes it, and
    written on), so that a kill (SIGKILL) loses only what came after: every `EVERY_S` of wall time, and less often
    where a keep costs more than `COST_SHARE` of the time since the last one. A keep writes the metadata of every
    episode so far (its tables and stats) and links the published files into a new staging folder: it grows with the
    dataset, slowly; `COST_SHARE` bounds it over the whole run all the same."""

    EVERY_S = 600.0
    COST_SHARE = 0.05

    def __init__(self) -> None:
        self.since, self.cost_s = time.monotonic(), 0.0

    def due(self) -> bool:
        """Whether to keep now."""
        return time.monotonic() - self.since >= max(self.EVERY_S, self.cost_s / self.COST_SHARE)

    def keep(self, writer: LeRobotDatasetWriter) -> LeRobotDataset:
        """`writer.keep()`, timed: the next is due from its end, and what it cost spaces them."""
        started = time.monotonic()
        dataset = writer.keep()
        self.since = time.monotonic()
        self.cost_s = self.since - started
        return dataset


class LeRobotDatasetWriter:
    """Builds a LeRobot v3.0 dataset episode by episode in a hidden staging folder next to `root`.

    `finalize()` writes the metadata and renames the folder to `root` in one step, so a crash never leaves a
    half-written dataset at `root`. An episode's videos may be given whole or streamed (`stream_videos`): a long
    episode then need not sit in memory. `features` maps names to {"dtype", "shape", "names"}; video features use
    dtype "video" and shape [H, W, 3] (an "image" feature is written as a video one). Left as None, features are
    inferred from the first episode.
    `video_codec="libx264rgb"` stores frames losslessly; "libx264" (default) and "libsvtav1" (LeRobot's default)
    are lossy and need even frame sizes. `provenance` (a JSON object: what made the episodes) goes into a file of its
    own beside info.json, meta/worldpolicy_provenance.json, which LeRobot does not read; it may be changed until
    `finalize`, which also writes the dataset's card, README.md (`data.card`), from what the dataset records.
    """

    def __init__(
        self,
        root: str | Path,
        fps: float,
        features: Mapping[str, Mapping[str, Any]] | None = None,
        robot_type: str | None = None,
        *,
        video_codec: str = "libx264",
        video_gop: int = 8,
        data_files_size_in_mb: float = DEFAULT_DATA_FILE_MB,
        video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_MB,
        chunks_size: int = DEFAULT_CHUNKS_SIZE,
        overwrite: bool = False,
        provenance: Mapping[str, Any] | None = None,
    ):
        rate = check_rate(fps)  # as the dataset makers refuse it before they read anything (a numpy rate taken)
        if video_codec not in CODECS:
            raise ValueError(f"video_codec={video_codec!r}; accepted: {', '.join(CODECS)}")
        if not is_integer(video_gop) or video_gop < 1:
            raise ValueError(f"video_gop={video_gop!r} must be an int >= 1")
        for name, value in (
            ("data_files_size_in_mb", data_files_size_in_mb),
            ("video_files_size_in_mb", video_files_size_in_mb),
        ):
            if not is_real(value, finite=False) or not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0")
        if not is_integer(chunks_size) or chunks_size < 1:
            raise ValueError(f"chunks_size={chunks_size!r} must be an int >= 1")
        if robot_type is not None and not isinstance(robot_type, str):  # else written as given, or lost at finalize
            raise ValueError(f"robot_type={robot_type!r:.80} must be a string (info.json's robot_type, e.g. 'panda') "
                             "or None")
        self.provenance = None if provenance is None else _check_provenance(provenance)
        self.root = Path(root).expanduser()
        if self.root.is_symlink():  # a data folder linked from a bigger disk: the dataset goes where the link points
            self.root = self.root.resolve()  # and the link stays (renaming the link itself replaced it with a folder)
        # what killed writers to this root left (hundreds of MB), and a dataset a killed one was replacing put back
        sweep_scratch_folders(self.root, SCRATCH_KINDS)
        _check_replaceable(self.root, overwrite)
        # an int rate kept an int (info.json's video.fps as given), a numpy one a float (json writes it)
        self.fps, self.robot_type, self.overwrite = fps if isinstance(fps, int) else rate, robot_type, overwrite
        # numpy's numbers kept as the Python ones they are (`.item()`, an int an int): info.json records them all
        # (chunks_size, video.g, the file sizes) and json writes no numpy scalar
        self.video_codec, self.video_gop, self.chunks_size = video_codec, int(video_gop), int(chunks_size)
        self._data_mb, self._video_mb = (mb.item() if isinstance(mb, np.generic) else mb
                                         for mb in (data_files_size_in_mb, video_files_size_in_mb))
        self._data_limit, self._video_limit = self._data_mb * 1024**2, self._video_mb * 1024**2
        self.features = None
        if features is not None:
            self.features = _check_user_features(features, "features")
            _check_video_sizes(self.features, video_codec, "features")
        make_folder(self.root.parent)  # a failed command leaves no empty parent behind (`cli.main`)
        self._hold = ScratchFolder(self.root, STAGING_KIND)  # held while this writer lives: never swept under it
        self._stage = self._hold.make()
        self._tasks: dict[str, int] = {}
        self._rows: list[dict[str, Any]] = []
        self._fields: list[dict[str, Any]] = []  # per episode, its `fields` (Python values) ...
        self._field_types: dict[str, pa.DataType] = {}  # ... and each column's type (null while only nulls were seen)
        self._total_frames = 0
        self._data_at, self._data_buffer, self._data_bytes = (0, 0), [], 0
        self._video_at: dict[str, tuple[int, int]] = {}
        self._videos: dict[str, VideoFileWriter] = {}
        self._values: dict[str, list[np.ndarray]] = {}
        self._video_stats: dict[str, list[dict[str, np.ndarray]]] = {}
        # per video, the encoder settings (info.json's `video.g`, `video.crf`, ...) every episode so far was encoded
        # with: this writer's, or a copied episode's source's (`EpisodeVideoStream.copy`), those they agree on
        self._encoded_with: dict[str, dict[str, Any]] = {}
        self._stream: EpisodeVideoStream | None = None  # an episode's videos being streamed, not yet added
        self._encode_failed: str | None = None  # the episode whose add_episode failed encoding its videos (arrays)
        self._done = False
        # the dataset this writer last published at root (`finalize`, `keep`): what root holds, a keep that failed
        # after its publish included
        self.published: LeRobotDataset | None = None

    # -- public API
    def encoder_settings(self) -> dict[str, Any]:
        """The encoder settings this writer encodes videos with, as info.json records them (`video.g`, the codec's
        options: `video.crf`, ...)."""
        return {"video.g": self.video_gop, **{f"video.{k}": _number(v) for k, v in CODECS[self.video_codec].options}}

    @property
    def num_episodes(self) -> int:
        """Episodes added so far (what `finalize` would publish)."""
        return len(self._rows)

    def add_episode(
        self, frames: Mapping[str, Any], videos: Mapping[str, Any] | None = None, task: str | Sequence[str] = "",
        *, success: bool | None = None, fields: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one episode: per-frame arrays [T, *shape] and uint8 videos [T, H, W, 3]. Returns its index.

        `videos` may instead be an `EpisodeVideoStream` (`stream_videos`) that has taken all of the episode's frames:
        a long episode's videos need not sit in memory whole, and the files and stats are the ones its arrays give.
        `task` is one string for the whole episode, or one per frame for an episode whose task changes mid-way.
        `success` (whether the episode succeeded, where the recording knows) goes into meta/episodes' `success`
        column (`LeRobotDataset.episode_success`); given for every episode of a dataset or for none.
        `fields` are other meta/episodes columns of the episode (name → value; a pyarrow scalar keeps its column's
        type, as `LeRobotDataset.episode_columns` gives them, a Python value gets the type pyarrow infers); an episode
        without one that others have gets null there.
        """
        if self._done:
            raise RuntimeError("this writer was finalised or aborted; open a new LeRobotDatasetWriter")
        streamed = isinstance(videos, EpisodeVideoStream)
        if streamed:
            videos.check_complete(self)
        elif self._stream is not None:
            raise RuntimeError(self._stream_open)
        if success is not None and not isinstance(success, (bool, np.bool_)):
            raise ValueError(f"success={success!r} must be a bool (or None: not known)")
        if self._rows and (SUCCESS_COLUMN in self._rows[0]) != (success is not None):
            had = "have" if success is None else "lack"
            raise ValueError(f"success={success!r}: the dataset's earlier episodes {had} a success flag; give it for "
                             "every episode or for none")
        texts = _check_task(task)
        stream = videos if streamed else None
        frames, videos = dict(frames or {}), {} if streamed else dict(videos or {})
        episode_index = len(self._rows)
        where = f"episode {episode_index}"
        own = self._checked_fields(fields or {}, where)
        inferred = self.features is None
        if inferred:
            features = _infer_features(frames, videos)
            _check_video_sizes(features, self.video_codec, "videos")
            self.features = features
        try:
            columns, clips, length = self._checked_episode(frames, videos, where, stream)
            if isinstance(task, str):
                texts *= length
            elif len(texts) != length:
                raise ValueError(
                    f"task of {where} holds {len(texts)} strings for {length} frames; give one string, or one per frame"
                )
        except ValueError:
            if inferred:  # a rejected first episode must not fix the schema
                self.features = None
            raise
        names = list(dict.fromkeys(texts))  # the episode's tasks, in the order they first occur
        lookup = {name: self._tasks.setdefault(name, len(self._tasks)) for name in names}
        auto = {
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, episode_index, dtype=np.int64),
            "index": np.arange(self._total_frames, self._total_frames + length, dtype=np.int64),
            "task_index": np.array([lookup[t] for t in texts], dtype=np.int64),
        }
        row: dict[str, Any] = {"episode_index": episode_index, "tasks": names, "length": length}
        if success is not None:
            row[SUCCESS_COLUMN] = bool(success)
        row.update(self._append_data(columns, auto))
        row["dataset_from_index"], row["dataset_to_index"] = self._total_frames, self._total_frames + length
        if stream is None:
            stream = self.stream_videos(length)
            try:
                stream.append(clips)
            except BaseException:  # the files now hold part of an episode the caller has no stream of to add
                self._encode_failed = where
                raise
        row.update(stream.fields)
        row["meta/episodes/chunk_index"], row["meta/episodes/file_index"] = 0, 0
        for key, values in {**columns, **auto}.items():
            if self._dtype(key) in NUMERIC_DTYPES:
                self._values.setdefault(key, []).append(values.reshape(length, -1))
                row.update(_flat_stats(key, compute_stats(values.reshape(length, -1))))
        for key, stats in stream.stats().items():
            self._video_stats.setdefault(key, []).append(stats)
            row.update(_flat_stats(key, stats))
        for key, settings in stream.encoded_with.items():
            agreed = self._encoded_with.setdefault(key, dict(settings))
            for name in [name for name, value in agreed.items() if (name, value) not in settings.items()]:
                del agreed[name]  # episodes encoded otherwise: no one value is true of the video
        self._stream = None
        self._rows.append(row)
        self._fields.append({name: value for name, (value, _) in own.items()})
        for name, (_, kind) in own.items():
            if pa.types.is_null(self._field_types.get(name, pa.null())):
                self._field_types[name] = kind
        self._total_frames += length
        return episode_index

    def stream_videos(self, length: int) -> EpisodeVideoStream:
        """The videos of the next episode, `length` frames each, encoded as blocks of them arrive
        (`EpisodeVideoStream.append`); `add_episode(frames, stream, ...)` then adds the episode. Until it does, the
        files hold frames of no episode: nothing else may be added or finalised, only the stream added or the writer
        aborted."""
        if self._done:
            raise RuntimeError("this writer was finalised or aborted; open a new LeRobotDatasetWriter")
        if self._stream is not None:
            raise RuntimeError(self._stream_open)
        if self.features is None:
            raise ValueError("stream_videos: the writer's features are inferred from a first episode's arrays; give "
                             "features to LeRobotDatasetWriter to stream an episode's videos")
        if not is_integer(length) or length < 1:
            raise ValueError(f"length={length!r} must be a positive number of frames")
        self._stream = EpisodeVideoStream(self, int(length))
        return self._stream

    def finalize(self) -> LeRobotDataset:
        """Write metadata and move the dataset into place atomically. Returns it opened for reading."""
        if self._done:
            raise RuntimeError("this writer was already finalised or aborted")
        if self._stream is not None:
            raise RuntimeError(self._stream_open)
        if not self._rows:
            self.abort()
            raise ValueError("no episodes were added; a dataset needs at least one episode")
        try:
            self._flush_data()
            for writer in self._videos.values():
                writer.close()
            self._videos.clear()
            self._write_metadata()
            self._write_card()
            self._publish()
        except BaseException:
            self.abort()
            raise
        self._hold.release()
        self._done = True
        self.published = LeRobotDataset.open(self.root)
        return self.published

    def keep(self) -> LeRobotDataset:
        """Publish the episodes added so far at `root` as `finalize` does, and go on writing them: the next
        `finalize` (or `keep`) publishes them with the ones added after. A new staging folder takes the published
        data and video files as hard links (copies on a file system without them), and later episodes go to new
        files, so what is published is never written again and nothing is encoded or decoded again; only the
        metadata is written anew. Returns the published dataset. A failure after it is published leaves this writer
        finished (as `finalize` does), and `published` the dataset at root: what the caller says is kept."""
        dataset = self.finalize()
        hold = ScratchFolder(self.root, STAGING_KIND)
        stage = hold.make()
        try:
            for folder in ("data", "videos"):
                for source in sorted((self.root / folder).rglob("*")):
                    target = stage / source.relative_to(self.root)
                    if source.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    try:
                        os.link(source, target)
                    except OSError:
                        shutil.copy2(source, target)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            hold.release()
            raise
        # the files written so far are published: the next rows and frames go to files after them
        if (stage / DATA_PATH.format(chunk_index=self._data_at[0], file_index=self._data_at[1])).exists():
            self._data_at = _next_file(*self._data_at, self.chunks_size)
        for key, (chunk, file) in self._video_at.items():
            if (stage / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)).exists():
                self._video_at[key] = _next_file(chunk, file, self.chunks_size)
        self._hold, self._stage, self._done, self.overwrite = hold, stage, False, True
        return dataset

    def abort(self) -> None:
        """Discard everything written so far."""
        for writer in self._videos.values():
            writer.abort()
        self._videos.clear()
        self._stream = None
        shutil.rmtree(self._stage, ignore_errors=True)
        self._hold.release()
        self._done = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._done:
            self.finalize()

    # -- internals
    def _checked_fields(self, fields: Mapping[str, Any], where: str) -> dict[str, tuple[Any, pa.DataType]]:
        """`add_episode`'s `fields` as (Python value, column type), or an error naming the field: one of LeRobot's
        own columns or `success` (its own argument), a value of another type than the column's so far."""
        if not isinstance(fields, Mapping):
            raise ValueError(f"fields={fields!r:.80} of {where} must be a mapping of meta/episodes column names to "
                             "values")
        out = {}
        for name, value in fields.items():
            if not isinstance(name, str) or not name or lerobot_episode_column(name) or name == SUCCESS_COLUMN:
                why = ("the success flag: pass success=" if name == SUCCESS_COLUMN else
                       "one of LeRobot's own meta/episodes columns" if isinstance(name, str) and name else
                       "not a column name")
                raise ValueError(f"fields: {name!r} of {where} is {why}; name columns of your own")
            known = self._field_types.get(name, pa.null())
            scalar = isinstance(value, pa.Scalar)
            if scalar and not pa.types.is_null(known) and value.type != known:
                raise ValueError(f"fields: {name!r} of {where} is {value.type}, earlier episodes' {known}; give one "
                                 "type per column")
            wanted = value.type if scalar else None if pa.types.is_null(known) else known
            value = value.as_py() if scalar else value
            try:
                kind = pa.array([value], type=wanted).type
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
                raise ValueError(f"fields: {name!r} of {where} = {value!r:.80} is not a column value of type "
                                 f"{known}: {exc}") from None
            out[name] = (value, kind)
        return out

    @property
    def _stream_open(self) -> str:
        """Why nothing may be added or finalised while `_stream` is open, and what may come next."""
        if self._encode_failed is not None:
            return (f"add_episode of {self._encode_failed} failed while encoding its videos, so the dataset's files "
                    "hold part of an episode: nothing more may be added or finalised; abort the writer")
        return ("an episode's videos were streamed (stream_videos) but the episode was not added: add it "
                "(add_episode(frames, stream, ...)) or abort the writer")

    def _dtype(self, key: str) -> str:
        return AUTO_FEATURES[key]["dtype"] if key in AUTO_FEATURES else self.features[key]["dtype"]

    def _checked_episode(self, frames: dict, videos: dict, where: str, stream: EpisodeVideoStream | None):
        """The episode's columns as stored, its videos' arrays and its length, checked against the features; a
        `stream` holds the videos and gives the length."""
        assert self.features is not None
        data_keys = [k for k, f in self.features.items() if f["dtype"] != "video"]
        video_keys = [] if stream is not None else self._video_keys()
        for param, given, expected in (("frames", frames, data_keys), ("videos", videos, video_keys)):
            missing = [k for k in expected if k not in given]
            extra = [k for k in given if k not in expected]
            if missing or extra:
                raise ValueError(
                    f"{param} of {where}: missing {missing}, unexpected {extra}; "
                    f"the dataset's {param} keys are {expected}"
                )
        lengths = {k: len(v) if hasattr(v, "__len__") else -1 for k, v in {**frames, **videos}.items()}
        if stream is not None:
            lengths = {"videos (streamed)": stream.length, **lengths}
        length = next(iter(lengths.values()))
        if length < 1 or any(n != length for n in lengths.values()):
            raise ValueError(f"{where}: every array needs the same number of frames >= 1, got {lengths}")
        columns = {}
        for key in data_keys:
            spec = self.features[key]
            arr = np.asarray(frames[key])
            if spec["dtype"] == "string":
                if arr.reshape(length, -1).shape[1] != 1 or not all(isinstance(s, str) for s in arr.reshape(-1)):
                    raise ValueError(f"frames[{key!r}] of {where} must hold one string per frame")
                columns[key] = arr.reshape(length, 1).astype(object)
                continue
            if arr.ndim == 1 and spec["shape"] == [1]:
                arr = arr.reshape(length, 1)
            if arr.shape != (length, *spec["shape"]):
                raise ValueError(
                    f"frames[{key!r}] of {where} has shape {arr.shape}; expected "
                    f"({length}, {', '.join(map(str, spec['shape']))})"
                )
            if arr.dtype.kind not in "biuf" or not np.can_cast(arr.dtype, spec["dtype"], casting="same_kind"):
                raise ValueError(
                    f"frames[{key!r}] of {where} has dtype {arr.dtype}, which does not cast to the "
                    f"feature's {spec['dtype']}"
                )
            # a copy: the data buffer (pyarrow wraps numpy without copying) and the stats keep it until finalize, and a
            # recording loop that refills one array per episode wrote its last contents into every earlier episode
            columns[key] = arr.astype(spec["dtype"], copy=True)
            if (bad := first_non_finite(columns, [key])) is not None:
                raise ValueError(
                    f"frames[{key!r}] of {where} holds NaN or inf (first at frame {bad.frame}); a policy cannot learn "
                    "from it: drop or repair those frames"
                )
        clips = {}
        for key in video_keys:
            arr = np.asarray(videos[key])
            h, w = image_hw(self.features[key])
            if arr.dtype != np.uint8 or arr.shape != (length, h, w, 3):
                resize = arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[::3] == (length, 3)  # only the size
                raise ValueError(
                    f"videos[{key!r}] of {where} is {arr.dtype} {arr.shape}; expected uint8 ({length}, {h}, {w}, 3)"
                    + (f": a video feature's frames are one size in every episode ({h}x{w}, the first episode's or "
                       "features=), so resize or pad these (clips of several sizes: docs/data.md, Raw videos)"
                       if resize else "")
                )
            clips[key] = arr
        return columns, clips, length

    def _append_data(self, columns: dict[str, np.ndarray], auto: dict[str, np.ndarray]) -> dict[str, int]:
        if self._data_buffer and self._data_bytes >= self._data_limit:
            self._flush_data()
            self._data_at = _next_file(*self._data_at, self.chunks_size)
        arrays, names = [], []
        for key, values in {**columns, **auto}.items():
            names.append(key)
            arrays.append(_to_arrow(values, key in AUTO_FEATURES))
        table = pa.table(arrays, names=names)
        self._data_buffer.append(table)
        self._data_bytes += table.nbytes
        return {"data/chunk_index": self._data_at[0], "data/file_index": self._data_at[1]}

    def _flush_data(self) -> None:
        if not self._data_buffer:
            return
        path = self._stage / DATA_PATH.format(chunk_index=self._data_at[0], file_index=self._data_at[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self._data_buffer), path)
        self._data_buffer, self._data_bytes = [], 0

    def _video_keys(self) -> list[str]:
        assert self.features is not None
        return [k for k, f in self.features.items() if f["dtype"] == "video"]

    def _video_file(self, key: str, template: Any = None) -> tuple[VideoFileWriter, int, int]:
        """The file camera `key`'s next episode goes into, its chunk and file index: a new one once the current one
        is full, or holds encoded frames and `template`'s packets are to be copied (or the other way round, or packets
        of another signature): a file's packets share one SPS/PPS."""
        writer = self._videos.get(key)
        copy_of = None if template is None else stream_signature(template)
        if writer is not None and (writer.bytes_written >= self._video_limit or writer.copy_of != copy_of):
            del self._videos[key]
            if writer.num_frames:
                writer.close()
                self._video_at[key] = _next_file(*self._video_at[key], self.chunks_size)
            else:  # made for a copy that did not fit: its name is free for this one
                writer.abort()
            writer = None
        chunk, file = self._video_at.setdefault(key, (0, 0))
        if writer is None:
            path = self._stage / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            h, w = image_hw(self.features[key])
            writer = self._videos[key] = VideoFileWriter(path, self.fps, h, w, self.video_codec, self.video_gop,
                                                         template)
        return writer, chunk, file

    def _write_metadata(self) -> None:
        assert self.features is not None
        episodes = pa.Table.from_pylist(self._rows)
        for name, kind in self._field_types.items():  # other columns (`add_episode`'s `fields`), of their own types
            episodes = episodes.append_column(name, pa.array([row.get(name) for row in self._fields], type=kind))
        path = self._stage / EPISODES_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(episodes, path)
        _write_tasks(self._stage / TASKS_PATH, list(self._tasks))
        codec = CODECS[self.video_codec]
        own = self.encoder_settings()
        features: dict[str, Any] = {}
        for key, spec in self.features.items():
            spec = dict(spec)
            if spec["dtype"] == "video":
                h, w = image_hw(spec)
                facts = {  # of every file, copied packets' too (a copy is of this codec, size and rate)
                    "video.height": h,
                    "video.width": w,
                    "video.codec": codec.name,
                    "video.pix_fmt": codec.pix_fmt,
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": 3,
                    "has_audio": False,
                }
                # what the frames were encoded with: this writer's settings, or copied sources' that agree
                encoded = self._encoded_with.get(key, own)
                spec["info"] = {**facts, **{name: value for name, value in encoded.items() if name not in facts}}
            features[key] = spec
        features.update({k: dict(v) for k, v in AUTO_FEATURES.items()})
        has_video = any(f["dtype"] == "video" for f in features.values())
        n = len(self._rows)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": n,
            "total_frames": self._total_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": self._data_mb,
            "video_files_size_in_mb": self._video_mb,
            "fps": int(self.fps) if float(self.fps).is_integer() else self.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if has_video else None,
            "features": features,
        }
        if self.provenance is not None:
            write_json_atomic(self._stage / PROVENANCE_FILE, _check_provenance(self.provenance), indent=4,
                              ensure_ascii=False)
        stats = {k: compute_stats(np.concatenate(v)) for k, v in self._values.items()}
        stats.update({k: aggregate_stats(v) for k, v in self._video_stats.items()})
        write_json_atomic(self._stage / STATS_PATH, stats_to_json(stats), indent=4, ensure_ascii=False)
        write_json_atomic(self._stage / INFO_PATH, info, indent=4, ensure_ascii=False)

    def _write_card(self) -> None:
        """The dataset's card (README.md, `data.card`) from the metadata just written, in the staging folder: a
        dataset appears with its card or not at all."""
        from .card import CARD_FILE, dataset_card

        text = dataset_card(LeRobotDataset.open(self._stage), self.root.name)
        write_bytes_atomic(self._stage / CARD_FILE, text)

    def _publish(self) -> None:
        """The staging folder takes the root's name (`fileio.replace_folder`): an earlier dataset there goes aside and
        is removed once the new one is in; a kill between the two renames leaves it aside, and the next writer or
        reader of the root puts it back (`fileio.sweep_scratch_folders`)."""
        _check_replaceable(self.root, self.overwrite, "appeared while writing")
        share_tree(self._stage)  # staged privately; published like any other output
        replace_folder(self._stage, self.root)


class EpisodeVideoStream:
    """One episode's videos, `length` frames each, encoded as blocks of frames arrive (`append`), with the encoder
    settings and files of the writer that made it (`LeRobotDatasetWriter.stream_videos`). What it keeps is each
    video's stats sample (`VIDEO_STATS_FRAMES` frames, strided to about `VIDEO_STATS_SIDE` pixels), not its frames:
    the files and stats are those of the same frames given as arrays to `add_episode`, which adds the episode."""

    def __init__(self, writer: LeRobotDatasetWriter, length: int):
        self.length = length
        self._writer = writer
        self._sampled = np.unique(np.linspace(0, length - 1, min(length, VIDEO_STATS_FRAMES)).round().astype(int))
        self.counts: dict[str, int] = {}
        self.fields: dict[str, Any] = {}  # the episode's meta/episodes fields of each video, in the features' order
        self._files: dict[str, VideoFileWriter] = {}  # each video's file, chosen when its first frames come
        self._samples: dict[str, list[np.ndarray]] = {}
        # each video's encoder settings: the writer's, a copy's source's
        self.encoded_with: dict[str, dict[str, Any]] = {}
        for key in writer._video_keys():
            self.counts[key], self._samples[key] = 0, []
            self.fields.update({f"videos/{key}/{name}": None for name in VIDEO_EPISODE_FIELDS})

    def append(self, blocks: Mapping[str, Any]) -> None:
        """Encode the next frames of some or all videos: `blocks[key]` uint8 [n, H, W, 3], any n up to what the
        video still lacks of `length`. All blocks are checked before any is encoded."""
        if self._writer._stream is not self:
            raise RuntimeError("this episode's videos were added or the writer aborted; stream_videos starts another")
        checked = {}
        for key, block in blocks.items():
            if key not in self.counts:
                raise ValueError(f"blocks: {key!r} is not a video of the dataset; its videos are {list(self.counts)}")
            arr = np.asarray(block)
            h, w = image_hw(self._writer.features[key])
            if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1:] != (h, w, 3):
                raise ValueError(f"blocks[{key!r}] is {arr.dtype} {arr.shape}; expected uint8 (n, {h}, {w}, 3)")
            if self.counts[key] + len(arr) > self.length:
                raise ValueError(f"blocks[{key!r}]: {len(arr)} frames after {self.counts[key]} pass the episode's "
                                 f"{self.length}")
            checked[key] = arr
        for key, arr in checked.items():
            if not len(arr):
                continue
            first = self.counts[key] == 0
            if first:
                self._take_file(key)
                self.encoded_with[key] = self._writer.encoder_settings()
            # each episode starts on a keyframe: a copy of it takes its packets as they are (`copy`)
            start, end = self._files[key].append(arr, keyframe=first)
            self._took(key, start, end, arr)

    def copy(self, key: str, segment: EncodedSegment, encoded_with: Mapping[str, Any]) -> str | None:
        """Take all of video `key`'s frames as `segment`'s packets, muxed as they are (no encoder runs: the frames
        are the source's, bit for bit); or say why not, nothing taken (the frames are then `append`ed). The segment
        must be of this writer's codec (the caller knows the source's) and the video's size and length.
        `encoded_with`: the source video's info.json `info`: its encoder settings (`video.g`, `video.crf`, ...) are the
        copy's, recorded for it in place of this writer's."""
        if self._writer._stream is not self:
            raise RuntimeError("this episode's videos were added or the writer aborted; stream_videos starts another")
        if self.counts[key]:
            raise ValueError(f"copy: video {key!r} already holds {self.counts[key]} frames; copy a whole episode's")
        if segment.count != self.length:
            return f"its {segment.count} frames are not the episode's {self.length}"
        hw = image_hw(self._writer.features[key])
        sample = segment.sample(self._sampled, hw, _stats_stride(hw))
        if sample is None:
            return "its packets do not decode on their own to the episode's frames"
        self._take_file(key, segment.stream)
        span = self._files[key].append_packets(segment.packets, segment.first_pts, segment.count)
        if span is None:
            return "its timestamps do not follow the destination file's"
        self._took(key, *span, sample, sampled=True)
        self.encoded_with[key] = dict(encoded_with)
        return None

    def _take_file(self, key: str, template: Any = None) -> None:
        """The file video `key` of this episode goes into (`LeRobotDatasetWriter._video_file`)."""
        self._files[key], chunk, file = self._writer._video_file(key, template)
        self.fields[f"videos/{key}/chunk_index"], self.fields[f"videos/{key}/file_index"] = chunk, file

    def _took(self, key: str, start: float, end: float, arr: np.ndarray, sampled: bool = False) -> None:
        """Note frames of video `key` written, spanning [start, end) s of its file: `arr` holds them, or (`sampled`,
        a copy of the whole video) its stats sample alone, strided already."""
        if self.counts[key] == 0:
            self.fields[f"videos/{key}/from_timestamp"] = start
        self.fields[f"videos/{key}/to_timestamp"] = end
        if sampled:
            self._samples[key].append(arr)
            self.counts[key] = self.length
            return
        taken = self._sampled[(self._sampled >= self.counts[key]) & (self._sampled < self.counts[key] + len(arr))]
        stride = _stats_stride(arr.shape[1:3])
        self._samples[key].append(arr[taken - self.counts[key], ::stride, ::stride])  # a copy of the sample only
        self.counts[key] += len(arr)

    def check_complete(self, writer: LeRobotDatasetWriter) -> None:
        """Refuse a stream `writer` is not streaming, or one whose videos lack frames, before the episode is added."""
        if writer._stream is not self:
            raise ValueError("videos: an EpisodeVideoStream of another writer, or one already added; stream each "
                             "episode's videos with this writer's stream_videos")
        short = {key: n for key, n in self.counts.items() if n != self.length}
        if short:
            raise ValueError(f"videos: the streamed videos {short} hold fewer frames than the episode's {self.length}; "
                             "append the rest before add_episode")

    def stats(self) -> dict[str, dict[str, np.ndarray]]:
        return {key: compute_stats(np.concatenate(samples), image=True) for key, samples in self._samples.items()}


def _stats_stride(hw: tuple[int, ...]) -> int:
    """The spatial stride of a video's stats sample: about `VIDEO_STATS_SIDE` pixels on its longer side."""
    return max(1, max(hw) // VIDEO_STATS_SIDE)


def _check_replaceable(root: Path, overwrite: bool, state: str = "exists") -> None:
    """A dataset is written only into a missing or empty folder, or over an existing *dataset* with `overwrite`:
    never over a file or a folder of other things (`overwrite` replaces datasets, not whatever `root` names)."""
    blocking = file_in_the_way(root.parent)
    if blocking is not None:  # else an OSError naming only the file, when the staging folder is made beside root
        raise ValueError(f"root={str(root)!r} is under {str(blocking)!r}, which is a file; choose a new or empty "
                         "folder")
    if not root.exists() or (root.is_dir() and not any(root.iterdir())):
        return
    if not (root / INFO_PATH).is_file():
        raise FileExistsError(
            f"root={str(root)!r} {state} and is not a LeRobot dataset (no {INFO_PATH}); choose a new or empty folder "
            "(overwrite only replaces an existing dataset)"
        )
    if not overwrite:
        raise FileExistsError(f"root={str(root)!r} {state} and holds a dataset; pass overwrite=True to replace it")


def episode_row(columns: pa.Table, i: int) -> dict[str, pa.Scalar]:
    """Row `i` of `columns` (`LeRobotDataset.episode_columns`) as `add_episode`'s `fields`: pyarrow scalars, so a copy
    keeps each column's type (`dataset select`, `merge` and `label` carry a source episode's own columns so)."""
    return {name: columns.column(name)[i] for name in columns.column_names}


def write_episodes(
    root: str | Path,
    episodes: Iterable[Episode | Mapping[str, Any]],
    fps: float,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    robot_type: str | None = None,
    **writer_options: Any,
) -> LeRobotDataset:
    """Write an iterable of episodes as one dataset; each is an `Episode` or {"frames", "videos", "task"}.

    This is the seam for converters (sim rollouts, other formats): produce episodes lazily, one at a time. An
    `Episode` read from a dataset keeps the task of every frame and its `success` flag, where the dataset has one.
    Copying a dataset:
    `write_episodes(dst, src.episodes(), fps=src.fps, features=src.features, robot_type=src.robot_type)` (its `image`
    features become video ones).
    """
    with LeRobotDatasetWriter(root, fps, features, robot_type, **writer_options) as writer:
        for n, ep in enumerate(episodes):
            if isinstance(ep, Episode):
                writer.add_episode(ep.frames, ep.videos, ep.frame_tasks or ep.task, success=ep.success)
            elif isinstance(ep, Mapping) and "frames" in ep and "task" in ep:
                writer.add_episode(ep["frames"], ep.get("videos"), ep["task"])
            else:
                raise TypeError(
                    f"episodes[{n}] must be an Episode or a mapping with 'frames', 'videos' and 'task', "
                    f"got {type(ep).__name__}"
                )
        return writer.finalize()


# ---------------------------------------------------------------------------------------------------------- helpers


def _check_user_features(features: Mapping[str, Mapping[str, Any]], param: str) -> dict[str, dict[str, Any]]:
    """Checked features; the automatic columns are dropped when given as the writer writes them (as a dataset's
    `features` lists them, so `features=src.features` copies), and refused otherwise."""
    if not isinstance(features, Mapping) or not features:
        raise ValueError(f"{param} must be a non-empty mapping of feature name -> {{dtype, shape, names}}")
    out = {}
    for name, spec in features.items():
        if name in AUTO_FEATURES:
            auto = AUTO_FEATURES[name]
            if isinstance(spec, Mapping) and spec.get("dtype") == auto["dtype"] and spec.get("shape") in (
                auto["shape"],
                tuple(auto["shape"]),
            ):
                continue
            raise ValueError(
                f"{param}[{name!r}] is {spec!r}, but {name!r} is a column the writer fills in itself, as "
                f"dtype {auto['dtype']!r} shape {auto['shape']}; remove it"
            )
        try:
            spec = check_feature(name, spec, param, field_prefix=param)
        except DatasetFormatError as exc:
            raise ValueError(f"{exc.field}: {exc.problem}") from None
        # frames are stored [H, W, 3]: said so as LeRobot does, whatever layout was given. An `image` feature (frames
        # embedded in the data files, which this writer does not write) is written as a video: the reader returns its
        # frames as a video's, so `features=src.features` copies a dataset that holds one
        if spec["dtype"] in ("video", "image"):
            out[name] = {"dtype": "video", "shape": [*image_hw(spec), 3], "names": list(VIDEO_NAMES)}
            continue
        out[name] = {"dtype": spec["dtype"], "shape": spec["shape"], "names": spec.get("names")}
    if not out:
        raise ValueError(f"{param} names only the columns the writer fills in itself ({', '.join(AUTO_FEATURES)})")
    return out


def _check_provenance(provenance: Any) -> dict[str, Any]:
    """`provenance` as its file will hold it: a JSON object of plain values (checked when given, so a recording is
    not lost at `finalize` to a value JSON cannot hold)."""
    import json

    if not isinstance(provenance, Mapping):
        raise ValueError(f"provenance must be a mapping (a JSON object), got {type(provenance).__name__}")
    try:
        return json.loads(json.dumps(dict(provenance), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"provenance must hold only JSON values (str, finite numbers, bool, None, lists, objects "
                         f"with string keys): {exc}") from None


def _check_video_sizes(features: Mapping[str, Mapping[str, Any]], codec: str, param: str) -> None:
    """Refuse a frame size the codec cannot encode before anything is recorded or written."""
    for key, spec in features.items():
        if spec["dtype"] == "video":
            try:
                CODECS[codec].check_frame_size(*image_hw(spec))
            except ValueError as exc:
                raise ValueError(f"{param}[{key!r}]: {exc}") from None


def _check_task(task: Any) -> list[str]:
    """An episode's task strings: one for every frame, or one per frame."""
    texts = [task] if isinstance(task, str) else list(task) if isinstance(task, (Sequence, np.ndarray)) else []
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if not texts or bad:
        shown = f"task={task!r}" if isinstance(task, str) or not texts else f"task[{bad[0]}]={texts[bad[0]]!r}"
        raise ValueError(f"{shown}: give a non-empty string describing the episode, or one such string per frame")
    return texts


def _infer_features(frames: Mapping[str, Any], videos: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    features: dict[str, Any] = {}
    for key, value in frames.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "OUS":
            features[key] = {"dtype": "string", "shape": [1], "names": None}
        elif arr.dtype.name in NUMERIC_DTYPES and arr.ndim in (1, 2):
            features[key] = {"dtype": arr.dtype.name, "shape": [1 if arr.ndim == 1 else arr.shape[1]], "names": None}
        else:
            raise ValueError(
                f"frames[{key!r}] is {arr.dtype} {arr.shape}; features are [T] or [T, D] arrays of "
                f"{', '.join(NUMERIC_DTYPES)} or strings"
            )
    for key, value in videos.items():
        arr = np.asarray(value)
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"videos[{key!r}] has shape {arr.shape}; expected uint8 [T, H, W, 3]")
        features[key] = {"dtype": "video", "shape": [arr.shape[1], arr.shape[2], 3]}
    return _check_user_features(features, "features (inferred from the first episode)")


def _to_arrow(values: np.ndarray, auto: bool) -> pa.Array:
    """[T, 1] → scalar column; [T, D] → fixed_size_list<D> (HF datasets' Sequence(length=D), as LeRobot writes)."""
    if values.dtype == object:
        return pa.array(values.reshape(-1).tolist(), type=pa.string())
    if auto or values.ndim == 1 or values.shape[1] == 1:
        return pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values).reshape(-1)), values.shape[1])


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """Same bytes pandas writes for DataFrame({"task_index": ...}, index=Index(tasks, name="task"))."""
    import json

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, path)


def _flat_stats(key: str, stats: Mapping[str, np.ndarray]) -> dict[str, Any]:
    return {f"stats/{key}/{name}": np.asarray(v).tolist() for name, v in stats.items()}


def _next_file(chunk: int, file: int, chunks_size: int) -> tuple[int, int]:
    return (chunk + 1, 0) if file + 1 >= chunks_size else (chunk, file + 1)


def _number(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
