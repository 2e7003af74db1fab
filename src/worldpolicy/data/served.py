"""A served run as a LeRobot v3.0 dataset (`worldpolicy serve --record DIR`): what the robot saw and what the policy
answered, one frame per answered request, to look at (`dataset show`); fine-tuned on only when the client asked every
control step (`execute_steps` 1: else its fps is the request rate, docs/serving.md). The wire has no episode boundary
and an openpi client keeps one connection for a whole session of episodes, so a connection's episode ends where the
robot's does, as far as the sink can tell: at a change of prompt, and at a pause between a reply and the connection's
next request longer than `episode_gap_s` (the robot reset, a person asked for the next instruction); 0: one episode per
connection.

`ServedRunDataset` is the `serving.recording.RecordSink` the CLI hands the server: it runs on the recorder's writer
thread, never on the request path. Every exchange goes to a spool as it comes (the hidden `.DIR.writing-spool-*`
folder beside DIR, locked by the server while it runs): its camera frames raw, its other values as one checksummed
binary record, each file written and closed per exchange (a killed process loses nothing written; the files are
fsynced at most `SYNC_S` apart, for a power loss). An episode is encoded from the spool when it ends (its
connection's next episode starts, or the connection closes); the episodes so far are kept, published at DIR in one
rename, on the `lerobot.KeepSchedule` (a server runs for days) and the spool files of the episodes kept are removed
then, so the spool holds only what DIR lacks, also of a connection still open; the server's
stop publishes them all and removes the spool. A server killed outright leaves the spool: `recover_served_run`
(`worldpolicy dataset recover`) adds every exchange that reached it, encoded in the same way, to the episodes kept at
DIR (copied, not encoded again), and `serve --record DIR` refuses to start over it, naming that command. A recording's
provenance `recording` (an id of the server run) tells a recovery which dataset the run kept, and its episodes'
`serving.connection` and `serving.connection_episode` which episodes of which connections it holds: a kill between a
keep and the removal of its spool files loses and duplicates nothing.

Per frame: `observation.images.<camera>` (lossless: the pixels sent), the state keys as `observation.state.<name>` (or
the request's explicit `state` as `observation.state`), `action` (the chunk's first action), `action_chunk` (the whole
chunk received, flattened: `reshape(chunk, action_dim)`), `serving.prefix_rows` (how many of the chunk's first rows
are the request's `action_prefix`, the client's rather than the policy's; 0: none), `serving.request_id` (the
connection's request number: a gap is a dropped record), `serving.time` (UNIX seconds), `serving.queue_ms`,
`serving.infer_ms`, `serving.total_ms`, `serving.batch_size`; the prompt is the frame's task. Per episode
(meta/episodes): `serving.connection`, `serving.connection_episode` (the episode's index within its connection, from
0), `serving.error` (what the connection was refused with, if its last episode ended so) and `serving.killed` (the
server was killed while the episode was open: it is what reached the spool).
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
import uuid
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment
from ..errors import is_real
from ..extras import extra_imports

with extra_imports():
    import pyarrow as pa

from ..fileio import (
    FolderInUse,
    dataset_lock,
    folder_lock,
    missing_folders,
    provenance_document,
    read_json,
    remove_empty_folders,
    sweep_scratch_folders,
    write_json_atomic,
)
from ..processing.observations import last_frame_pixels
from .checks import check_out
from .edit import BLOCK_FRAMES, copy_episodes
from .from_sim import SpooledVideo
from .layout import INFO_PATH, STAGING_KIND
from .lerobot import KeepSchedule, LeRobotDataset, LeRobotDatasetWriter
from .observations import IMAGE_PREFIX, STATE_FEATURE

if TYPE_CHECKING:  # the hand-off's type only: importing serving.recording pulls in the server's extra
    from ..serving.recording import Exchange

__all__ = ["DEFAULT_EPISODE_GAP_S", "SOURCE", "RecoveredRun", "ServedRunDataset", "check_episode_gap",
           "recover_served_run", "served_rate_reason"]

logger = logging.getLogger(__name__)
SOURCE = "worldpolicy serve --record"  # the recording's `provenance["source"]`: what --overwrite may replace
SYNC_S = 1.0  # a connection's spool files are fsynced at most this far apart: what a power loss may take
# Between a reply and the connection's next request, a pause longer than this ends the episode. openpi's DROID client
# (examples/droid/main.py) asks again 8 steps at 15 Hz after a reply (0.53 s; a whole chunk of 32: 2.1 s), and between
# rollouts writes the rollout's video, asks a person whether it succeeded, whether to go on and for the next
# instruction, and moves the arm home (`env.reset()`, blocking): seconds to minutes.
DEFAULT_EPISODE_GAP_S = 5.0
EPISODE_GAP_ACCEPTED = ("seconds >= 0 (a pause longer than that between a reply and the connection's next request "
                        "starts a new episode; 0: one episode per connection)")
_TIMINGS = ("queue_ms", "infer_ms", "total_ms")
# The spool: RUN_FILE (fps, robot type, provenance: at start), FEATURES_FILE (at the first exchange), and per episode,
# named <stem> (`_stem`: <conn> for a connection's first, <conn>.<k> for its k-th after it), <stem>.values (its
# records), <stem>-<video feature>.u8 (raw frames, frame after frame) and <stem>.end.json (its `error`, once it ended:
# an episode without one was open when the server was killed), until a keep publishes the episode at DIR; KEPT_FILE
# (the episodes the last keep published, written once they are: a recovery that finds fewer says so). A record
# holds the FEATURES_FILE's non-video features in its order, so a spool describes itself: one a version without a
# feature left (`serving.prefix_rows`, say) is recovered as the dataset it was recording, without it. The half-built
# staging folder a killed server's writer leaves beside DIR is removed on recovery as every dead writer's is
# (`sweep_scratch_folders`).
SPOOL_INFIX = ".writing-spool-"
RUN_FILE, FEATURES_FILE, KEPT_FILE, VALUES, END = "run.json", "features.json", "kept.json", ".values", ".end.json"
_RECORD = struct.Struct("<II")  # a record's header: payload length, CRC-32 of the payload (a torn tail fails either)


class ServedRunDataset:
    """The dataset of one served run at `root` (a new or empty folder, or with `overwrite` a dataset an earlier
    `serve --record` wrote; checked here, before a model loads, as is the spool of a killed run for `root`, which must
    be recovered first). The features are fixed by the first exchange recorded; a later one whose cameras or shapes
    differ is skipped (the frame size of a video is fixed), logged the first time per connection and counted in one
    line when it closes. The frame rate is the embodiment's request
    rate: its fps over the actions run per chunk (`execute_steps`, else the whole chunk); `serving.time` has the real
    times. A connection's next episode starts at a request whose prompt is not the one before's, or that came more
    than `episode_gap_s` seconds after the reply before it (0: one episode per connection)."""

    def __init__(self, root: str | Path, embodiment: Embodiment, *, overwrite: bool = False,
                 provenance: dict[str, Any] | None = None, episode_gap_s: float = DEFAULT_EPISODE_GAP_S) -> None:
        self.episode_gap_s = check_episode_gap(episode_gap_s)
        _refuse_spools(Path(root).expanduser())  # first: DIR may hold what the killed server kept, to add to
        self.root = check_out([], root, overwrite, [SOURCE], "serve --record", "recorded")
        self.embodiment, self.overwrite = embodiment, overwrite
        self.fps = embodiment.fps / (embodiment.execute_steps or embodiment.chunk_size)
        # `recording`: this run, so that a recovery knows the dataset at DIR as what this run kept
        self.provenance = {"source": SOURCE, "embodiment": embodiment.key, **(provenance or {}),
                           "recording": uuid.uuid4().hex}
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
        self._keeps = KeepSchedule()
        self._kept = 0  # the writer's episodes published at root by the last keep
        self._unkept: list[tuple[int, int]] = []  # the ended episodes (connection, index) no keep has published yet
        self._features: dict[str, dict[str, Any]] | None = None
        self._open: dict[int, _Open] = {}  # per open connection with a record spooled: its episode being spooled
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
        episode = self._open.get(record.conn)
        if episode is None or self._starts_episode(episode, record):
            if episode is not None:  # the one before ends here: kept as a closed connection's is
                self._end_episode(record.conn, episode.index, None)
                self._keep_if_due()
            episode = self._open[record.conn] = _Open(0 if episode is None else episode.index + 1, time.monotonic())
        episode.prompt, episode.replied = record.prompt, record.received + record.total_ms / 1000
        sync = time.monotonic() - episode.synced >= SYNC_S
        stem = _stem(record.conn, episode.index)
        videos = [key for key, spec in self._features.items() if spec["dtype"] == "video"]
        for key in videos:  # the frames first, the record last: a record is whole only with its frames before it
            _append(self._spool / f"{stem}-{key}.u8", frame[key].tobytes(), sync)
        payload = b"".join(frame[key].tobytes() for key in self._features if key not in videos)
        payload += record.prompt.encode()
        _append(self._spool / f"{stem}{VALUES}", _RECORD.pack(len(payload), zlib.crc32(payload)) + payload, sync)
        if sync:
            episode.synced = time.monotonic()

    def end(self, conn: int, error: str | None) -> None:
        """Encode the connection's last episode; keep the episodes so far at root when the `KeepSchedule` says so."""
        self._end(conn, error)
        self._keep_if_due()

    def _starts_episode(self, episode: _Open, record: Exchange) -> bool:
        """Whether `record` starts its connection's next episode: another prompt, or a pause before it (from the reply
        before it) longer than `episode_gap_s`."""
        return bool(self.episode_gap_s) and (record.prompt != episode.prompt or
                                             record.received - episode.replied > self.episode_gap_s)

    def _end(self, conn: int, error: str | None) -> None:
        """Connection `conn` closed: its last episode into the writer."""
        if (skips := self._skips.pop(conn, 0)) > 1:
            logger.warning("serve --record: connection %d: %d requests not recorded (cameras or frame sizes other than "
                           "the recording's)", conn, skips)
        if (episode := self._open.pop(conn, None)) is not None:
            self._end_episode(conn, episode.index, error)

    def _end_episode(self, conn: int, index: int, error: str | None) -> None:
        """Episode `index` of connection `conn` into the writer, from its spool files."""
        write_json_atomic(self._spool / f"{_stem(conn, index)}{END}", {"error": error})
        if self._writer is None:
            self._writer = _writer(self._spool, self.root, self.overwrite)
        if dropped := _add_episode(self._writer, self._spool, self._features, (conn, index), error, killed=False):
            from ..viz.plots import plural

            logger.warning("serve --record: connection %d episode %d: %s at the end of its spool %s cut short (a spool "
                           "write that failed) and %s left out", conn, index, plural(dropped, "record"),
                           *(("was", "is") if dropped == 1 else ("were", "are")))
        self._unkept.append((conn, index))

    def _keep_if_due(self) -> None:
        if self._writer is not None and self._writer.num_episodes > self._kept and self._keeps.due():
            self._keep()

    def close(self) -> None:
        """Add the episodes of connections still open, publish the dataset (none when nothing was recorded), then
        remove the spool; one that could not be published stays, to recover."""
        try:
            for conn in list(dict.fromkeys([*self._open, *self._skips])):  # one skipped throughout has no spool
                self._end(conn, None)  # no keep: all are published next
            if self._writer is not None:
                from ..viz.plots import plural

                self._writer.finalize()
                logger.info("serve --record: %s written to %s", plural(self._writer.num_episodes, "episode"),
                            self.root)
            else:
                logger.info("serve --record: no request was answered; nothing written to %s", self.root)
        except Exception as exc:  # a full disk, or a writer an earlier failure (a keep's) left finished
            raise RuntimeError(f"the recording could not be published at {str(self.root)!r} ({exc}); what reached "
                               f"its spool stays: worldpolicy dataset recover {shlex.quote(str(self._spool))} --out "
                               f"{shlex.quote(str(self.root))}") from exc
        else:
            shutil.rmtree(self._spool)
        finally:
            self._lock.close()
        if self._writer is None:  # no new empty parents left behind either (`newparent/deep/` of newparent/deep/day1)
            remove_empty_folders(self._made)

    # -- internals
    def _keep(self) -> None:
        """Publish the episodes so far at root (`KeepSchedule.keep`), then remove the spool files of the episodes
        they hold: the spool keeps only what root lacks. A kill in between leaves files of episodes root holds, which
        a recovery knows by their `serving.connection` and `serving.connection_episode` and skips."""
        self._kept = self._keeps.keep(self._writer).num_episodes
        write_json_atomic(self._spool / KEPT_FILE, {"episodes": self._kept})  # before the files it accounts for go
        for stem in (_stem(*key) for key in self._unkept):
            for path in [*self._spool.glob(f"{stem}-*.u8"), self._spool / f"{stem}{VALUES}",
                         self._spool / f"{stem}{END}"]:
                path.unlink(missing_ok=True)
        from ..viz.plots import plural

        logger.info("serve --record: %s kept in %s", plural(self._kept, "episode"), self.root)
        self._unkept.clear()

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


@dataclass
class _Open:
    """A connection's episode being spooled: its index within the connection, when its spool files were last fsynced
    (monotonic), the prompt and reply time (UNIX seconds) of its last record, for `_starts_episode`."""

    index: int
    synced: float
    prompt: str = ""
    replied: float = 0.0


def check_episode_gap(seconds: float) -> float:
    """`episode_gap_s` checked: seconds >= 0 (0: one episode per connection)."""
    if not is_real(seconds) or seconds < 0:
        raise ValueError(f"episode_gap_s={seconds!r} is invalid; accepted: {EPISODE_GAP_ACCEPTED}")
    return float(seconds)


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
    spool, none at all or every one cut short, as `torn` then says), the connections open at the kill whose open
    episode has frames (it is `serving.killed`; one whose every record was cut short has none, and is in `torn`
    alone) and, per connection, the records dropped at a torn tail (half-written at the kill); `kept`: the episodes
    the server had kept (published at its DIR) before the kill, the dataset's first; `unfound`: those of its kept
    episodes neither `out` nor its DIR held (DIR moved, removed or replaced since), which the dataset lacks."""

    dataset: LeRobotDataset | None
    killed: list[int]
    torn: dict[int, int]
    kept: int = 0
    unfound: int = 0


def recover_served_run(spool: str | Path, out: str | Path, *, overwrite: bool = False,
                       progress: bool = False) -> RecoveredRun:
    """Write the recording the spool a killed `serve --record` left (`.DIR.writing-spool-*`) as the dataset it was
    recording, at `out`, then remove the spool: the episodes the server kept before the kill (`_kept_dataset`: at
    `out` or at the spool's DIR) first, copied (their videos' packets as they are, `edit.copy_episodes`: nothing is
    encoded again), then each episode of the spool they lack (by connection and index within it), encoded from the
    exchanges that reached it, in connection order. `out` holding those kept episodes is added to without
    `overwrite`. A spool a server still holds is refused (`fileio.folder_lock`), untouched. `progress`: a bar on
    stderr counting the episodes encoded (a day's recording is hours of frames)."""
    from ..logcapture import progress_bar
    from ..viz.plots import plural

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
        kept = _kept_dataset(spool, Path(out).expanduser())
        # what the server kept, as its last keep said (a kill between a keep and KEPT_FILE: the keep before's)
        said = read_json(spool / KEPT_FILE, f"the spool's {KEPT_FILE}")["episodes"] if (spool / KEPT_FILE).exists() \
            else 0
        unfound = max(0, said - (0 if kept is None else kept.num_episodes))
        in_place = kept is not None and kept.root.resolve() == Path(os.path.abspath(Path(out).expanduser())).resolve()
        out = check_out([spool] if kept is None or in_place else [spool, kept.root], out, overwrite or in_place,
                        [SOURCE], "dataset recover", "recovered", "spool")
        with dataset_lock(out, "out", "`dataset recover`"):
            if not (spool / FEATURES_FILE).is_file():  # said by the caller (RecoveredRun.dataset None): the command
                shutil.rmtree(spool)
                return RecoveredRun(None, [], {})
            features = read_json(spool / FEATURES_FILE, f"the spool's {FEATURES_FILE}")
            if (record_dir := _record_dir(spool)) is not None:  # the killed server's half-built dataset beside its
                # DIR, rebuilt here from the spool: removed as a dead writer's (the writer below sweeps only `out`'s)
                sweep_scratch_folders(record_dir, [STAGING_KIND])
            killed, torn = [], {}
            # (a dataset kept before episodes were split holds each connection's one, its first)
            done = set() if kept is None else {
                (fields["serving.connection"], fields.get("serving.connection_episode", 0))
                for fields in kept.episode_fields()}
            episodes = sorted(key for key in (_key(path.name.removesuffix(VALUES)) for path in spool.glob(f"*{VALUES}"))
                              if key not in done)  # a kill after a keep, before its episodes' files went: kept
            if in_place and not episodes:  # everything is at out already
                shutil.rmtree(spool)
                return RecoveredRun(kept, [], {}, kept.num_episodes, unfound)
            with _writer(spool, out, overwrite or in_place) as writer:
                if kept is not None:
                    copy_episodes(writer, [kept], [(0, i) for i in range(kept.num_episodes)],
                                  [kept.episode_columns()], kept.episode_success is not None)
                conns = plural(len({conn for conn, _ in episodes}), "connection")
                for key in progress_bar(episodes, desc=f"recovering {plural(len(episodes), 'episode')} of {conns}",
                                        unit="ep", disable=not progress):
                    end = spool / f"{_stem(*key)}{END}"
                    open_at_kill = not end.is_file()
                    error = None if open_at_kill else read_json(end, f"the spool's {end.name}")["error"]
                    before = writer.num_episodes
                    dropped = _add_episode(writer, spool, features, key, error, killed=open_at_kill)
                    if open_at_kill and writer.num_episodes > before:  # one with no whole record has no episode
                        killed.append(key[0])
                    if dropped:
                        torn[key[0]] = torn.get(key[0], 0) + dropped
                if not writer.num_episodes:  # every record torn: nothing to publish
                    writer.abort()
            shutil.rmtree(spool)
    return RecoveredRun(LeRobotDataset.open(out) if writer.num_episodes else None, killed, torn,
                        0 if kept is None else kept.num_episodes, unfound)


def _kept_dataset(spool: Path, out: Path) -> LeRobotDataset | None:
    """The dataset the killed server last kept (`ServedRunDataset._keep`), at `out` or at the DIR the spool's name
    gives: of those whose provenance `recording` is the spool's run's, the one with the most episodes (each keep holds
    the one before: `out` may be a copy of DIR taken at an earlier keep, whose later episodes the spool no longer
    holds), `out` on a tie. None: it kept none (or its spool is from a version that did not keep)."""
    run = read_json(spool / RUN_FILE, f"the spool's {RUN_FILE}")["provenance"].get("recording")
    found = []
    for place in [out, *filter(None, [_record_dir(spool)])] if run is not None else ():
        sweep_scratch_folders(place, ())  # a kill mid-publish left the keep before it aside: back first
        if (place / INFO_PATH).is_file() and (provenance_document(place) or {}).get("recording") == run:
            found.append(LeRobotDataset.open(place))
    return max(found, key=lambda dataset: dataset.num_episodes, default=None)


def _record_dir(spool: Path) -> Path | None:
    """The --record DIR a spool's name gives (`.DIR.writing-spool-*`); None for a spool renamed otherwise."""
    if spool.name.startswith(".") and SPOOL_INFIX in spool.name:
        return spool.parent / spool.name[1:spool.name.rindex(SPOOL_INFIX)]
    return None


def _refuse_spools(root: Path) -> None:
    """A killed server's spool for `root` holds what it recorded and had not yet kept there: refused, naming the
    command that recovers it; a running server's (it holds its lock) is refused by `folder_lock`, untouched."""
    for spool in _spools_of(root):
        with _held(spool, "out", f"out: a running server (PID {{pid}}) is recording to {str(root)!r}; stop it first, "
                   "or choose another out"):
            pass
        raise ValueError(f"out: a server recording to {str(root)!r} was killed and left what it had not yet kept "
                         f"there in {str(spool)!r}; recover it first: worldpolicy dataset recover "
                         f"{shlex.quote(str(spool))} --out {shlex.quote(str(root))} (it adds those episodes to the "
                         "ones kept there; or remove that folder to drop them, or choose another out)")


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


def _stem(conn: int, index: int) -> str:
    """The spool files' name of episode `index` of connection `conn`: a connection's first is named as a spool of a
    version that did not split connections named its one episode."""
    return f"{conn}" if index == 0 else f"{conn}.{index}"


def _key(stem: str) -> tuple[int, int]:
    """(connection, episode index) of a `_stem`."""
    conn, _, index = stem.partition(".")
    return int(conn), int(index or 0)


def _add_episode(writer: LeRobotDatasetWriter, spool: Path, features: dict[str, dict[str, Any]],
                 episode: tuple[int, int], error: str | None, *, killed: bool) -> int:
    """Encode `episode` (connection, index within it) from the spool, its whole records that have all their camera
    frames; the records dropped after them (a torn tail) are counted in the return value, for the caller to report
    (`end`, the `dataset recover` command through `RecoveredRun.torn`)."""
    stem = _stem(*episode)
    videos = [key for key, spec in features.items() if spec["dtype"] == "video"]
    row = np.dtype([(key, spec["dtype"], (spec["shape"][0],)) for key, spec in features.items() if key not in videos])
    data = (spool / f"{stem}{VALUES}").read_bytes()
    values, prompts, at = [], [], 0
    while at + _RECORD.size <= len(data):
        size, crc = _RECORD.unpack_from(data, at)
        payload = data[at + _RECORD.size:at + _RECORD.size + size]
        if len(payload) < size or size < row.itemsize or zlib.crc32(payload) != crc:
            break
        values.append(payload[:row.itemsize])
        prompts.append(payload[row.itemsize:].decode())
        at += _RECORD.size + size
    frames_there = [(spool / f"{stem}-{key}.u8").stat().st_size // int(np.prod(features[key]["shape"]))
                    if (spool / f"{stem}-{key}.u8").exists() else 0 for key in videos]
    length = min([len(values), *frames_there])
    dropped = len(values) - length + (at < len(data))
    if length == 0:
        return dropped
    rows = np.frombuffer(b"".join(values[:length]), row)
    stream = writer.stream_videos(length)
    for key in videos:  # raw frames, as `dataset from-sim` spools them
        for block in SpooledVideo(str(spool / f"{stem}-{key}.u8"), length, tuple(features[key]["shape"])).blocks(
                BLOCK_FRAMES):
            stream.append({key: block})
    writer.add_episode({key: np.array(rows[key]) for key in row.names}, stream, prompts[:length],
                       # the error typed string even where it is None: recordings with and without one merge
                       fields={"serving.connection": episode[0], "serving.connection_episode": episode[1],
                               "serving.error": pa.scalar(error, pa.string()), "serving.killed": killed})
    return dropped
