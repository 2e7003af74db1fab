"""A served run as a LeRobot v3.0 dataset (`worldpolicy serve --record DIR`): what the robot saw and what the policy
answered, one episode per connection, one frame per answered request, to look at (`dataset show`) and fine-tune on.

`ServedRunDataset` is the `serving.recording.RecordSink` the CLI hands the server: it runs on the recorder's writer
thread, never on the request path. Each connection's camera frames are spooled raw to disk as they come (a robot may
stay connected for hours), and its episode is encoded from the spool when it closes; the dataset appears at DIR in one
rename when the server stops (`LeRobotDatasetWriter`'s staging: a killed server leaves its hidden `.DIR.writing-*`
folders, never a half-written dataset at DIR).

Per frame: `observation.images.<camera>` (lossless: the pixels sent), the state keys as `observation.state.<name>` (or
the request's explicit `state` as `observation.state`), `action` (the chunk's first action), `action_chunk` (the whole
chunk received, flattened: `reshape(chunk, action_dim)`), `serving.request_id` (the connection's request number: a gap
is a dropped record), `serving.time` (UNIX seconds), `serving.queue_ms`, `serving.infer_ms`, `serving.total_ms`,
`serving.batch_size`; the prompt is the frame's task. Per episode (meta/episodes): `serving.connection` and
`serving.error`, what the connection was refused with, if it ended so.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment
from ..fileio import make_folder
from ..processing.observations import load_frames
from .checks import check_out
from .lerobot import LeRobotDatasetWriter
from .observations import STATE_FEATURE

if TYPE_CHECKING:  # the hand-off's type only: importing serving.recording pulls in the server's extra
    from ..serving.recording import Exchange

__all__ = ["SOURCE", "ServedRunDataset"]

logger = logging.getLogger(__name__)
SOURCE = "worldpolicy serve --record"  # the recording's `provenance["source"]`: what --overwrite may replace
IMAGE_PREFIX = "observation.images."
BLOCK_FRAMES = 64  # frames read back from the spool and encoded at a time
_TIMINGS = ("queue_ms", "infer_ms", "total_ms")


@dataclass
class _Episode:
    """One open connection: its per-frame values, and its camera frames in spool files (raw uint8, frame after
    frame)."""

    prompts: list[str] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    spools: dict[str, Path] = field(default_factory=dict)  # video feature → its spool file (opened per frame: a
    # server may hold a thousand connections, and its open-file budget is theirs)

    @property
    def length(self) -> int:
        return len(self.prompts)


class ServedRunDataset:
    """The dataset of one served run at `root` (a new or empty folder, or with `overwrite` a dataset an earlier
    `serve --record` wrote; checked here, before a model loads). The features are fixed by the first exchange
    recorded; a later one whose cameras or shapes differ is skipped and logged (the frame size of a video is fixed).
    The frame rate is the embodiment's request rate: its fps over the actions run per chunk (`execute_steps`, else
    the whole chunk); `serving.time` has the real times."""

    def __init__(self, root: str | Path, embodiment: Embodiment, *, overwrite: bool = False,
                 provenance: dict[str, Any] | None = None) -> None:
        self.root = check_out([], root, overwrite, [SOURCE], "serve --record", "recorded")
        self.embodiment, self.overwrite = embodiment, overwrite
        self.fps = embodiment.fps / (embodiment.execute_steps or embodiment.chunk_size)
        self.provenance = {"source": SOURCE, "embodiment": embodiment.key, **(provenance or {})}
        make_folder(self.root.parent)
        # the spool follows the writer's staging convention: hidden, beside root, named as being written
        self._spool = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.root.name}.writing-spool-"))
        self._writer: LeRobotDatasetWriter | None = None
        self._features: dict[str, dict[str, Any]] | None = None
        self._open: dict[int, _Episode] = {}
        self.skipped = 0

    # -- RecordSink
    def exchange(self, record: Exchange) -> None:
        frame = self._frame(record)
        if self._features is None:
            self._features = self._features_of(frame)
        elif (problem := self._mismatch(frame)) is not None:
            self.skipped += 1
            logger.warning("serve --record: connection %d request %d not recorded: %s", record.conn,
                           record.request_id, problem)
            return
        episode = self._open.setdefault(record.conn, _Episode())
        for key, value in frame.items():
            if self._features[key]["dtype"] == "video":
                path = episode.spools.setdefault(key, self._spool / f"{record.conn}-{key}.u8")
                with open(path, "ab") as spool:
                    spool.write(value.tobytes())
            else:
                episode.values.setdefault(key, []).append(value)
        episode.prompts.append(record.prompt)

    def end(self, conn: int, error: str | None) -> None:
        episode = self._open.pop(conn, None)
        if episode is not None:
            self._add(conn, episode, error)

    def close(self) -> None:
        """Add the episodes of connections still open, publish the dataset (none when nothing was recorded) and
        remove the spool."""
        try:
            for conn in list(self._open):
                self.end(conn, None)
            if self._writer is not None:
                self._writer.finalize()
                logger.info("serve --record: %d episodes written to %s", self._writer.num_episodes, self.root)
            else:
                logger.info("serve --record: no request was answered; nothing written to %s", self.root)
        finally:
            shutil.rmtree(self._spool, ignore_errors=True)

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
                frame[IMAGE_PREFIX + name] = _pixels(value, key)
        if record.state is not None:
            frame[STATE_FEATURE] = np.asarray(record.state, np.float32).reshape(-1)
        actions = np.asarray(record.actions, np.float32)
        frame["action"] = actions[0]
        frame["action_chunk"] = actions.reshape(-1)
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

    def _add(self, conn: int, episode: _Episode, error: str | None) -> None:
        if self._writer is None:
            self._writer = LeRobotDatasetWriter(self.root, self.fps, self._features, self.embodiment.key,
                                                video_codec="libx264rgb", overwrite=self.overwrite,
                                                provenance=self.provenance)
        frames = {key: np.stack(values) for key, values in episode.values.items()}
        stream = self._writer.stream_videos(episode.length)
        for key, path in episode.spools.items():
            pixels = np.memmap(path, np.uint8, "r", shape=(episode.length, *self._features[key]["shape"]))
            for start in range(0, episode.length, BLOCK_FRAMES):
                stream.append({key: np.asarray(pixels[start:start + BLOCK_FRAMES])})
            del pixels
            path.unlink()
        self._writer.add_episode(frames, stream, episode.prompts,
                                 fields={"serving.connection": conn, "serving.error": error})


def _pixels(value: np.ndarray, key: str) -> np.ndarray:
    """A camera's frame as the adapter passed it on (uint8 or float, [H, W, 3], [3, H, W] or frames) → uint8
    [H, W, 3], its last frame."""
    if value.dtype == np.uint8 and value.ndim == 3 and value.shape[-1] == 3:
        return value
    return np.round(load_frames(value, key)[-1] * 255).astype(np.uint8)
