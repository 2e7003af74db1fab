"""A served run as a LeRobot v3.0 dataset (`worldpolicy serve --record DIR`): what the robot saw and what the policy
answered, one episode per connection, one frame per answered request, to look at (`dataset show`); fine-tuned on
only when the client asked every control step (`execute_steps` 1: else its fps is the request rate, docs/serving.md).

`ServedRunDataset` is the `serving.recording.RecordSink` the CLI hands the server: it runs on the recorder's writer
thread, never on the request path. Every exchange goes to a spool as it comes (the hidden `.DIR.writing-spool-*`
folder beside DIR, locked by the server while it runs): its camera frames raw, its other values as one checksummed
binary record, each file written and closed per exchange (a killed process loses nothing written; the files are
fsynced at most `SYNC_S` apart, for a power loss). A connection's episode is encoded from the spool when it closes and
the dataset appears at DIR in one rename when the server stops; the spool is removed only then. A server killed
outright leaves the spool: `recover_served_run` (`worldpolicy dataset recover`) encodes every exchange that reached it
in the same way, and `serve --record DIR` refuses to start over it, naming that command.

Per frame: `observation.images.<camera>` (lossless: the pixels sent), the state keys as `observation.state.<name>` (or
the request's explicit `state` as `observation.state`), `action` (the chunk's first action), `action_chunk` (the whole
chunk received, flattened: `reshape(chunk, action_dim)`), `serving.prefix_rows` (how many of the chunk's first rows
are the request's `action_prefix`, the client's rather than the policy's; 0: none), `serving.request_id` (the
connection's request number: a gap is a dropped record), `serving.time` (UNIX seconds), `serving.queue_ms`,
`serving.infer_ms`, `serving.total_ms`, `serving.batch_size`; the prompt is the frame's task. Per episode
(meta/episodes): `serving.connection`, `serving.error` (what the connection was refused with, if it ended so) and
`serving.killed` (the server was killed while it was open: its episode is what reached the spool).
"""

from __future__ import annotations

import glob
import logging
import os
import shlex
import shutil
import struct
import tempfile
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment
from ..extras import extra_imports

with extra_imports():
    import pyarrow as pa

from ..fileio import (
    FolderInUse,
    dataset_lock,
    folder_lock,
    missing_folders,
    read_json,
    remove_empty_folders,
    sweep_scratch_folders,
    write_json_atomic,
)
from ..processing.observations import last_frame_pixels
from .checks import check_out
from .edit import BLOCK_FRAMES
from .from_sim import SpooledVideo
from .layout import STAGING_KIND
from .lerobot import LeRobotDataset, LeRobotDatasetWriter
from .observations import IMAGE_PREFIX, STATE_FEATURE

if TYPE_CHECKING:  # the hand-off's type only: importing serving.recording pulls in the server's extra
    from ..serving.recording import Exchange

__all__ = ["SOURCE", "RecoveredRun", "ServedRunDataset", "recover_served_run", "served_rate_reason"]

logger = logging.getLogger(__name__)
SOURCE = "worldpolicy serve --record"  # the recording's `provenance["source"]`: what --overwrite may replace
SYNC_S = 1.0  # a connection's spool files are fsynced at most this far apart: what a power loss may take
_TIMINGS = ("queue_ms", "infer_ms", "total_ms")
# The spool: RUN_FILE (fps, robot type, provenance: at start), FEATURES_FILE (at the first exchange), and per connection
# <conn>.values (its records), <conn>-<video feature>.u8 (raw frames, frame after frame) and <conn>.end.json (its
# `error`, once it closed: a connection without one was open when the server was killed). A record holds the
# FEATURES_FILE's non-video features in its order, so a spool describes itself: one a version without a feature left
# (`serving.prefix_rows`, say) is recovered as the dataset it was recording, without it. The half-built staging folder
# a killed server's writer leaves beside DIR is removed on recovery as every dead writer's is (`sweep_scratch_folders`).
SPOOL_INFIX = ".writing-spool-"
RUN_FILE, FEATURES_FILE, VALUES, END = "run.json", "features.json", ".values", ".end.json"
_RECORD = struct.Struct("<II")  # a record's header: payload length, CRC-32 of the payload (a torn tail fails either)


class ServedRunDataset:
    """The dataset of one served run at `root` (a new or empty folder, or with `overwrite` a dataset an earlier
    `serve --record` wrote; checked here, before a model loads, as is the spool of a killed run for `root`, which must
    be recovered first). The features are fixed by the first exchange recorded; a later one whose cameras or shapes
    differ is skipped (the frame size of a video is fixed), logged the first time per connection and counted in one
    line when it closes. The frame rate is the embodiment's request
    rate: its fps over the actions run per chunk (`execute_steps`, else the whole chunk); `serving.time` has the real
    times."""

    def __init__(self, root: str | Path, embodiment: Embodiment, *, overwrite: bool = False,
                 provenance: dict[str, Any] | None = None) -> None:
        self.root = check_out([], root, overwrite, [SOURCE], "serve --record", "recorded")
        _refuse_spools(self.root)
        self.embodiment, self.overwrite = embodiment, overwrite
        self.fps = embodiment.fps / (embodiment.execute_steps or embodiment.chunk_size)
        self.provenance = {"source": SOURCE, "embodiment": embodiment.key, **(provenance or {})}
        self._made = missing_folders(self.root.parent)  # removed when the run ends with nothing recorded
        # held until close: the dataset, which another command writing it is refused (it makes root's parent), and
        # the spool, a live server's
        self._lock = ExitStack()
        self._lock.enter_context(dataset_lock(self.root, "out", "`serve --record`"))
        try:
            # the spool follows the writer's staging convention: hidden, beside root, named as being written
            self._spool = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.root.name}{SPOOL_INFIX}"))
        except BaseException:
            self._lock.close()
            raise
        try:
            self._lock.enter_context(folder_lock(self._spool, "out"))
            write_json_atomic(self._spool / RUN_FILE, {"fps": self.fps, "robot_type": embodiment.key,
                                                       "provenance": self.provenance})
        except BaseException:  # no spool left behind that would hold the next start up
            self._lock.close()
            shutil.rmtree(self._spool, ignore_errors=True)
            raise
        self._writer: LeRobotDatasetWriter | None = None
        self._features: dict[str, dict[str, Any]] | None = None
        self._open: dict[int, float] = {}  # per open connection: when its spool files were last fsynced
        self.skipped = 0  # exchanges not recorded (their features are not the recording's), in all
        self._skips: dict[int, int] = {}  # the same, per open connection: logged in full once, then counted

    # -- RecordSink
    def exchange(self, record: Exchange) -> None:
        frame = self._frame(record)
        if self._features is None:
            self._features = self._features_of(frame)
            write_json_atomic(self._spool / FEATURES_FILE, self._features)
        elif (problem := self._mismatch(frame)) is not None:
            self.skipped += 1
            skips = self._skips[record.conn] = self._skips.get(record.conn, 0) + 1
            if skips == 1:  # a robot sends the same every tick: said once, counted to the connection's end
                logger.warning("serve --record: connection %d request %d not recorded: %s (the first request "
                               "recorded fixes the recording's cameras and frame sizes; this connection's later "
                               "requests that differ are counted, said when it closes)", record.conn,
                               record.request_id, problem)
            return
        synced = self._open.setdefault(record.conn, time.monotonic())
        sync = time.monotonic() - synced >= SYNC_S
        videos = [key for key, spec in self._features.items() if spec["dtype"] == "video"]
        for key in videos:  # the frames first, the record last: a record is whole only with its frames before it
            _append(self._spool / f"{record.conn}-{key}.u8", frame[key].tobytes(), sync)
        payload = b"".join(frame[key].tobytes() for key in self._features if key not in videos)
        payload += record.prompt.encode()
        _append(self._spool / f"{record.conn}{VALUES}", _RECORD.pack(len(payload), zlib.crc32(payload)) + payload,
                sync)
        if sync:
            self._open[record.conn] = time.monotonic()

    def end(self, conn: int, error: str | None) -> None:
        if (skips := self._skips.pop(conn, 0)) > 1:
            logger.warning("serve --record: connection %d: %d requests not recorded (cameras or frame sizes other than "
                           "the recording's)", conn, skips)
        if self._open.pop(conn, None) is None:
            return
        write_json_atomic(self._spool / f"{conn}{END}", {"error": error})
        if self._writer is None:
            self._writer = _writer(self._spool, self.root, self.overwrite)
        if dropped := _add_episode(self._writer, self._spool, self._features, conn, error, killed=False):
            logger.warning("serve --record: connection %d: %d record(s) at the end of its spool were cut short (a "
                           "spool write that failed) and are left out", conn, dropped)

    def close(self) -> None:
        """Add the episodes of connections still open, publish the dataset (none when nothing was recorded), then
        remove the spool; one that could not be published stays, to recover."""
        try:
            for conn in list(dict.fromkeys([*self._open, *self._skips])):  # one skipped throughout has no spool
                self.end(conn, None)
            if self._writer is not None:
                from ..viz.plots import plural

                self._writer.finalize()
                logger.info("serve --record: %s written to %s", plural(self._writer.num_episodes, "episode"),
                            self.root)
            else:
                logger.info("serve --record: no request was answered; nothing written to %s", self.root)
            shutil.rmtree(self._spool)
        finally:
            self._lock.close()
        if self._writer is None:  # no new empty parents left behind either (`newparent/deep/` of newparent/deep/day1)
            remove_empty_folders(self._made)

    # -- internals
    def _frame(self, record: Exchange) -> dict[str, np.ndarray]:
        """The exchange's per-frame features (video ones uint8 [H, W, 3])."""
        e, frame = self.embodiment, {}
        observation = record.observation if isinstance(record.observation, dict) else {"image": record.observation}
        state_keys = set(e.state_keys.values())
        for key, value in observation.items():
            name = key.rsplit("/", 1)[-1]
            if key in state_keys:
                if record.state is None:
                    frame[f"{STATE_FEATURE}.{name}"] = np.asarray(value, np.float32).reshape(-1)
            else:
                frame[IMAGE_PREFIX + name] = last_frame_pixels(value, key)
        if record.state is not None:
            frame[STATE_FEATURE] = np.asarray(record.state, np.float32).reshape(-1)
        actions = np.asarray(record.actions, np.float32)
        frame["action"] = actions[0]
        frame["action_chunk"] = actions.reshape(-1)
        frame["serving.prefix_rows"] = np.array([record.prefix_rows], np.int64)
        frame["serving.request_id"] = np.array([record.request_id], np.int64)
        frame["serving.time"] = np.array([record.received], np.float64)
        for name in _TIMINGS:
            frame[f"serving.{name}"] = np.array([getattr(record, name)], np.float32)
        frame["serving.batch_size"] = np.array([record.batch_size], np.int64)
        return frame

    def _features_of(self, frame: dict[str, np.ndarray]) -> dict[str, dict[str, Any]]:
        columns = list(self.embodiment.columns)
        features = {}
        for key, value in frame.items():
            if key.startswith(IMAGE_PREFIX):
                features[key] = {"dtype": "video", "shape": list(value.shape), "names": ["height", "width", "channels"]}
                continue
            names = None
            if key == "action" and len(value) == len(columns):
                names = columns
            elif key == "action_chunk" and len(value) % len(columns) == 0:
                names = [f"{k}:{c}" for k in range(len(value) // len(columns)) for c in columns]
            features[key] = {"dtype": str(value.dtype), "shape": [len(value)], "names": names}
        return features

    def _mismatch(self, frame: dict[str, np.ndarray]) -> str | None:
        if set(frame) != set(self._features):
            return f"its features {sorted(frame)} are not the recording's {sorted(self._features)}"
        for key, value in frame.items():
            shape = list(value.shape) if self._features[key]["dtype"] == "video" else [len(value)]
            if shape != self._features[key]["shape"]:
                return f"{key} has shape {shape}, the recording's {self._features[key]['shape']}"
        return None


def served_rate_reason(dataset: LeRobotDataset, embodiment: Embodiment, use: str) -> str | None:
    """Why `dataset`, at another fps than `embodiment`'s, is of no `use` (training, an open-loop evaluation) when it is
    a `serve --record` recording: its fps is the request rate, its `action` each chunk's first, so no fps setting makes
    it fit (`train` and `dataset eval` refuse it saying so); None for any other dataset."""
    if (dataset.provenance or {}).get("source") != SOURCE:
        return None
    return (f"is a `serve --record` recording at {dataset.fps:g} fps: one frame per policy request, its `action` the "
            f"first of each chunk, so it is fit for {use} only when the client asked every control step (execute_steps "
            f"1: {embodiment.fps:g} fps for embodiment {embodiment.key!r}); this one is for looking at (dataset show), "
            f"not for {use}")


@dataclass(frozen=True)
class RecoveredRun:
    """What `recover_served_run` made of a killed server's spool: the dataset (None: no whole record reached the
    spool, none at all or every one cut short, as `torn` then says), the connections open at the kill that have an
    episode (it is `serving.killed`; one whose every record was cut short has none, and is in `torn` alone) and, per
    connection, the records dropped at a torn tail (half-written at the kill)."""

    dataset: LeRobotDataset | None
    killed: list[int]
    torn: dict[int, int]


def recover_served_run(spool: str | Path, out: str | Path, *, overwrite: bool = False,
                       progress: bool = False) -> RecoveredRun:
    """Encode the spool a killed `serve --record` left (`.DIR.writing-spool-*`) as the dataset it was recording, at
    `out`, every connection an episode of the exchanges that reached it, in connection order, then remove the spool.
    A spool a server still holds is refused (`fileio.folder_lock`), untouched. `progress`: a bar on stderr counting
    the connections encoded (a day's recording is hours of frames)."""
    from tqdm.auto import tqdm

    spool = Path(spool)
    if not (spool / RUN_FILE).is_file():
        if spool.is_file() and (spool.parent / RUN_FILE).is_file():  # a file of the spool (a tab-completed run.json)
            raise ValueError(f"spool: {str(spool)!r} is a file in the spool; give the spool's folder, "
                             f"{str(spool.parent)!r}")
        beside = _spools_of(spool)  # the --record DIR given in place of its spool
        what = "does not exist" if not spool.exists() else f"is not the spool of a `serve --record` run (no {RUN_FILE})"
        hint = (f"the spool a server recording to it left is {' or '.join(map(repr, beside))}" if beside else
                f"a killed server leaves it beside its --record DIR as .DIR{SPOOL_INFIX}*")
        raise ValueError(f"spool: {str(spool)!r} {what}; {hint}")
    with _held(spool, "spool", f"spool: {str(spool)!r} belongs to a running server (PID {{pid}}), still recording to "
               "it; stop it first: it then writes the dataset itself and removes the spool"):
        out = check_out([spool], out, overwrite, [SOURCE], "dataset recover", "recovered", "spool")
        with dataset_lock(out, "out", "`dataset recover`"):
            if not (spool / FEATURES_FILE).is_file():  # said by the caller (RecoveredRun.dataset None): the command
                shutil.rmtree(spool)
                return RecoveredRun(None, [], {})
            features = read_json(spool / FEATURES_FILE, f"the spool's {FEATURES_FILE}")
            if spool.name.startswith(".") and SPOOL_INFIX in spool.name:  # the killed server's half-built dataset
                # beside its DIR, rebuilt here from the spool: removed as a dead writer's (the writer below sweeps only
                # `out`'s)
                sweep_scratch_folders(spool.parent / spool.name[1:spool.name.rindex(SPOOL_INFIX)], [STAGING_KIND])
            killed, torn = [], {}
            conns = sorted(int(path.name.removesuffix(VALUES)) for path in spool.glob(f"*{VALUES}"))
            with _writer(spool, out, overwrite) as writer:
                for conn in tqdm(conns, desc=f"recovering {len(conns)} connections", unit="conn",
                                 disable=not progress):
                    end = spool / f"{conn}{END}"
                    open_at_kill = not end.is_file()
                    error = None if open_at_kill else read_json(end, f"the spool's {end.name}")["error"]
                    episodes = writer.num_episodes
                    dropped = _add_episode(writer, spool, features, conn, error, killed=open_at_kill)
                    if open_at_kill and writer.num_episodes > episodes:  # one with no whole record has no episode
                        killed.append(conn)
                    if dropped:
                        torn[conn] = dropped
                if not writer.num_episodes:  # every record torn: nothing to publish
                    writer.abort()
            shutil.rmtree(spool)
    return RecoveredRun(LeRobotDataset.open(out) if writer.num_episodes else None, killed, torn)


def _refuse_spools(root: Path) -> None:
    """A killed server's spool for `root` holds a recording not yet in it: refused, naming the command that recovers
    it; a running server's (it holds its lock) is refused by `folder_lock`, untouched."""
    for spool in _spools_of(root):
        with _held(spool, "out", f"out: a running server (PID {{pid}}) is recording to {str(root)!r}; stop it first, "
                   "or choose another out"):
            pass
        raise ValueError(f"out: a server recording to {str(root)!r} was killed and left its recording in "
                         f"{str(spool)!r}; recover it first: worldpolicy dataset recover {shlex.quote(str(spool))} "
                         f"--out {shlex.quote(str(root))} (or remove that folder to drop it, or choose another out)")


@contextmanager
def _held(spool: Path, flag: str, busy: str) -> Iterator[None]:
    """`folder_lock` on a spool; one a live server holds is refused as `busy` says, its `{pid}` the server's."""
    lock = ExitStack()
    try:
        lock.enter_context(folder_lock(spool, flag))
    except FolderInUse as held:
        raise ValueError(busy.format(pid=held.holder)) from None
    with lock:
        yield


def _spools_of(root: Path) -> list[str]:
    """The spools beside `root` that servers recording to it made (`.DIR.writing-spool-*`)."""
    return sorted(glob.glob(glob.escape(str(root.parent / f".{root.name}{SPOOL_INFIX}")) + "*"))


def _append(path: Path, data: bytes, sync: bool) -> None:
    """Append to a spool file, opened for this write only (a server may hold a thousand connections, and its
    open-file budget is theirs); on close it is the OS's, which a killed process cannot lose."""
    with open(path, "ab") as file:
        file.write(data)
        if sync:
            file.flush()
            os.fsync(file.fileno())


def _writer(spool: Path, root: Path, overwrite: bool) -> LeRobotDatasetWriter:
    run = read_json(spool / RUN_FILE, f"the spool's {RUN_FILE}")
    features = read_json(spool / FEATURES_FILE, f"the spool's {FEATURES_FILE}")
    return LeRobotDatasetWriter(root, run["fps"], features, run["robot_type"], video_codec="libx264rgb",
                                overwrite=overwrite, provenance=run["provenance"])


def _add_episode(writer: LeRobotDatasetWriter, spool: Path, features: dict[str, dict[str, Any]], conn: int,
                 error: str | None, *, killed: bool) -> int:
    """Encode connection `conn`'s episode from the spool, its whole records that have all their camera frames; the
    records dropped after them (a torn tail) are counted in the return value, for the caller to report (`end`, the
    `dataset recover` command through `RecoveredRun.torn`)."""
    videos = [key for key, spec in features.items() if spec["dtype"] == "video"]
    row = np.dtype([(key, spec["dtype"], (spec["shape"][0],)) for key, spec in features.items() if key not in videos])
    data = (spool / f"{conn}{VALUES}").read_bytes()
    values, prompts, at = [], [], 0
    while at + _RECORD.size <= len(data):
        size, crc = _RECORD.unpack_from(data, at)
        payload = data[at + _RECORD.size:at + _RECORD.size + size]
        if len(payload) < size or size < row.itemsize or zlib.crc32(payload) != crc:
            break
        values.append(payload[:row.itemsize])
        prompts.append(payload[row.itemsize:].decode())
        at += _RECORD.size + size
    frames_there = [(spool / f"{conn}-{key}.u8").stat().st_size // int(np.prod(features[key]["shape"]))
                    if (spool / f"{conn}-{key}.u8").exists() else 0 for key in videos]
    length = min([len(values), *frames_there])
    dropped = len(values) - length + (at < len(data))
    if length == 0:
        return dropped
    rows = np.frombuffer(b"".join(values[:length]), row)
    stream = writer.stream_videos(length)
    for key in videos:  # raw frames, as `dataset from-sim` spools them
        for block in SpooledVideo(str(spool / f"{conn}-{key}.u8"), length, tuple(features[key]["shape"])).blocks(
                BLOCK_FRAMES):
            stream.append({key: block})
    writer.add_episode({key: np.array(rows[key]) for key in row.names}, stream, prompts[:length],
                       # the error typed string even where it is None: recordings with and without one merge
                       fields={"serving.connection": conn, "serving.error": pa.scalar(error, pa.string()),
                               "serving.killed": killed})
    return dropped
