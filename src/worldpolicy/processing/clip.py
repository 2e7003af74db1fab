"""An inverse-dynamics clip as `Policy.infer_actions` (and `RemotePolicy`'s) reads it: its options checked, its frames
read once (`read_clip`), at the embodiment's rate where asked (`resampled_frames`), and cut into windows of
chunk_size+1 frames sharing their boundary frames (`ClipWindows`)."""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embodiments import Embodiment
from ..errors import is_integer
from .actions import state_numbers
from .observations import VIDEO_SUFFIXES, clip_views, frame_keys, load_frames
from .observations import clip_fps as clip_rate
from .video import read_video, varying_rate


def frame_rate_warning(video: Any, fps: float, resample: bool = False) -> str | None:
    """A clip recorded at another rate than the embodiment's spans another stretch of time per action: what to say, for
    a file that carries its rate (a video's stream, an animated GIF's frame durations: `clip_fps`, read from the
    header), else None; a video file whose rate varies (`varying_rate`) is told so, whatever its average rate, with
    how to re-time it, and for a clip read at the embodiment's rate (`resample`) that alone: resampling evens out
    another rate, not a varying one. The run says it; `predict` says it before the weights load, from the file
    alone."""
    clip_fps = clip_rate(video)
    if not clip_fps:
        return None
    if Path(video).suffix.lower() in VIDEO_SUFFIXES and (base := varying_rate(video)) is not None:
        return (f"video {video} has a variable frame rate (on average {clip_fps:.3g} fps, its header's base rate "
                f"{base:.3g}): its frames are not evenly spaced, so each recovered action spans its own stretch of "
                "time, and resampling (infer_actions(..., resample=True), predict --resample) takes them as evenly "
                f"spaced at the average rate. Re-time it to the embodiment's {fps:g} fps first: ffmpeg -i "
                f"{shlex.quote(str(video))} -fps_mode cfr -r {fps:g} OUT.mp4")
    if resample or abs(clip_fps / fps - 1) <= 0.1:
        return None
    return (f"video {video} is {clip_fps:.3g} fps but embodiment actions are at {fps:.3g} fps: each recovered action "
            f"spans {clip_fps / fps:.2f} of its steps (infer_actions(..., resample=True), predict --resample, reads it "
            f"at {fps:.3g} fps: the frames nearest the embodiment's timestamps)")


def check_clip_options(start_frame: Any, whole_clip: Any, resample: Any, batch_size: Any) -> None:
    """`infer_actions`' clip options, refused before any frame is read."""
    for name, value in (("start_frame", start_frame), ("batch_size", batch_size)):
        least = 0 if name == "start_frame" else 1
        if not is_integer(value) or value < least:
            raise ValueError(f"{name}={value!r}; accepted: an integer >= {least}"
                             + (" (a frame of the clip as given, from 0)" if name == "start_frame" else
                                " (windows per batched forward)"))
    for name, value in (("whole_clip", whole_clip), ("resample", resample)):
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name}={value!r}; accepted: True or False")


def resampled_frames(count: int, clip_fps: float, fps: float, start_frame: int = 0) -> list[int]:
    """The frames of a clip of `count` frames at `clip_fps` nearest the timestamps of `fps` from `start_frame` on
    (ties to the later frame): a clip at 30 fps read at 15 takes every other frame, one at 10 repeats every other."""
    used, step = [], 0
    while (index := start_frame + math.floor(step * clip_fps / fps + 0.5)) < count:
        used.append(index)
        step += 1
    return used


@dataclass
class ClipWindows:
    """The frames of a clip `infer_actions` explains, read once: `frames` (one array [T,...], or each camera's of a
    dict, `extra` its other keys) hold the clip's frames from 0 as far as they are read, `frames_used` which of them
    are explained, in order (from `start_frame`, every one or those `resampled_frames` picks), and window k the
    `num_frames` of them from k*(num_frames-1): windows share their boundary frames, so their rows join end to end."""

    frames: Any
    extra: dict[str, Any]
    frames_used: list[int]
    num_frames: int
    clip_fps: float | None
    resampled: bool
    state_history: bool
    state_keys: dict[str, str]
    warnings: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        first = next(iter(self.frames.values())) if isinstance(self.frames, dict) else self.frames
        return tuple(first.shape[1:3])

    @property
    def windows(self) -> int:
        return math.ceil((len(self.frames_used) - 1) / (self.num_frames - 1))

    def rows(self, k: int) -> int:
        """The action rows of window k that explain frames of the clip (the rest explain copies of its last)."""
        return min(self.num_frames - 1, len(self.frames_used) - 1 - k * (self.num_frames - 1))

    def window(self, k: int, pad: bool = True) -> Any:
        """Window k's observation: its frames in memory (as the clip held them: a dict's with its other keys, a
        state-conditioned one's state keys at the window's first frame), the last window padded by repeating its last
        frame (as a short clip is; `pad=False`: left to the run, which says so and records `real_rows`)."""
        start = k * (self.num_frames - 1)
        picked = self.frames_used[start:start + self.num_frames]
        if pad:
            picked = picked + picked[-1:] * (self.num_frames - len(picked))
        if not isinstance(self.frames, dict):
            return self.frames[picked]
        extra = dict(self.extra)
        if self.state_history:
            for part, key in self.state_keys.items():
                if key in extra:
                    extra[key] = _state_at(extra[key], picked[0], f"observation[{key!r}]", column=part == "gripper")
        return {**{key: clip[picked] for key, clip in self.frames.items()}, **extra}

    def state(self, state: Any, k: int) -> Any:
        """A request's `state` for window k: its row at the window's first frame (a state-conditioned embodiment's
        chunk starts from it), else as given."""
        if not self.state_history:
            return state
        return _state_at(state, self.frames_used[k * (self.num_frames - 1)], "state")

    def settings(self, rows: list[int]) -> dict[str, Any]:
        """What `settings["clip"]` records: the clip's frames each result row starts from, plus the last frame
        (indexes into the clip as given), the clip's rate and whether it was resampled, the real rows per window."""
        return {"start_frame": self.frames_used[0], "frames_used": self.frames_used[:sum(rows) + 1],
                "clip_fps": self.clip_fps, "resampled": self.resampled, "window_rows": rows}


def _state_at(value: Any, row: int, name: str, column: bool = False) -> Any:
    """A state (rows [T, dim], or a dict's joints [T, n] / gripper [T] or [T, 1]: `column`) at clip frame `row`, as
    one row; row 0 is the state as given (a single row is the first frame's). A single row cannot say a later frame's
    state: refused, naming what to pass."""
    if value is None or row == 0:
        return value
    array = state_numbers(value, name)
    rows = array if array.ndim >= 2 else array[:, None] if column else None
    if rows is None or rows.shape[0] <= row:
        raise ValueError(f"{name} has shape {tuple(array.shape)}, but the window from clip frame {row} starts from "
                         f"that frame's state; accepted: one row per frame of the clip ([T, ...] with T > {row})")
    return rows[row:row + 1]


def read_clip(video: Any, embodiment: Embodiment, num_frames: int, start_frame: int = 0, whole_clip: bool = False,
              resample: bool = False, max_frames: int | None = None) -> ClipWindows:
    """The frames `infer_actions` explains (`ClipWindows`), read as far as they are used: a single window's
    `num_frames` from `start_frame` and one more (a longer clip is told apart), the whole clip for
    `whole_clip`. A video file is held as uint8 (each window converted as it runs), so a long clip costs its bytes
    once. Errors name `video` (a dict's cameras by their keys); its `warnings` (a frame rate not the embodiment's, more
    frames than a single window uses) are the caller's to log, a local `Policy` or a `RemotePolicy` alike.
    `max_frames`: for `whole_clip`, the most frames decoded (one more is, to tell a longer clip, refused naming
    `whole_clip`): a caller that serves others (the agent tools) bounds what one call holds."""
    e = embodiment
    is_dict = isinstance(video, Mapping)
    sources = [video[k] for k in frame_keys(video.keys(), e.camera_keys, e.composite, "video")] if is_dict else [video]
    rate = clip_rate(sources[0])
    if resample and not rate:
        what = "its first camera" if is_dict else "video"
        raise ValueError(f"resample=True needs the clip's frame rate, which {what} ({_described(sources[0])}) does "
                         "not carry; accepted: a video file (its stream's rate) or an "
                         "animated GIF/PNG with frame durations (resample a folder of frames or frames in memory "
                         f"yourself, to {e.fps:g} fps)")
    if whole_clip:
        bound = None if max_frames is None else max_frames + 1
    elif resample:
        bound = start_frame + math.ceil(num_frames * rate / e.fps) + 2
    else:
        bound = start_frame + num_frames + 1
    if is_dict:
        frames: Any = clip_views(video, e.camera_keys, e.composite, max_frames=bound)
        count = len(next(iter(frames.values())))
    elif isinstance(video, (str, Path)) and Path(video).suffix.lower() in VIDEO_SUFFIXES and Path(video).is_file():
        frames = read_video(video, max_frames=bound)[0]
        count = len(frames)
    else:
        frames = load_frames(video, "video", max_frames=bound)[:bound]
        count = len(frames)
    if whole_clip and max_frames is not None and count > max_frames:
        raise ValueError(f"whole_clip reads at most {max_frames} frames of a clip per call; {_described(sources[0])} "
                         "has more")
    used = resampled_frames(count, rate, e.fps, start_frame) if resample else list(range(start_frame, count))
    if not whole_clip:
        used = used[:num_frames + 1]
    if len(used) < 2:
        where = "" if start_frame == 0 else f" from start_frame={start_frame} (the clip has {count})"
        # the last start with a next frame: one frame on, or the one resampling picks next
        last = count - 1 - (math.floor(rate / e.fps + 0.5) if resample else 1)
        accepted = (f"start_frame 0 to {last}" if start_frame > 0 and last >= 0 else "a clip of at least 2 frames"
                    + (" at its frame rate" if resample else ""))
        raise ValueError(f"inverse dynamics needs a video of at least 2 frames{where}; got {len(used)} frame"
                         f"{'' if len(used) == 1 else 's'} (chunk_size+1 = {num_frames} are used; a shorter clip "
                         f"repeats its last frame); accepted: {accepted}")
    said = [frame_rate_warning(source, e.fps, bool(resample)) for source in sources]
    if not whole_clip and len(used) > num_frames:
        said.append(f"video has more than {num_frames} frames from frame {start_frame}; using {num_frames} "
                    "(chunk_size+1): whole_clip=True (predict --whole-clip) labels every frame, start_frame "
                    "(--start-frame) picks where to start")
    return ClipWindows(frames, {k: v for k, v in video.items() if k not in frames} if is_dict else {}, used,
                       num_frames, rate, bool(resample), bool(e.state_history), dict(e.state_keys),
                       [message for message in said if message is not None])


def _described(source: Any) -> str:
    return repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else type(source).__name__
