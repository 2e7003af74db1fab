"""Videos for people: an action chunk animated with a playhead beside the imagined clip, and side-by-side clips.

The plot is rendered once; each frame copies it and paints the playhead, so a 33-frame clip costs one matplotlib draw.
All mp4 I/O goes through `worldpolicy.processing.video`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..processing.video import to_uint8, write_video
from .plots import _check_actions, _check_fps, action_timeseries_figure

__all__ = ["animate_actions", "animation_frames", "figure_to_array", "side_by_side_frames", "write_side_by_side"]

PLAYHEAD_RGB = (20, 20, 20)
LABEL_HEIGHT = 22


def figure_to_array(fig) -> np.ndarray:
    """Render a Figure (Agg canvas) to uint8 RGB [H, W, 3]."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _check_video(video: Any, param: str) -> np.ndarray:
    v = np.asarray(video)
    if v.ndim != 4 or v.shape[-1] != 3 or v.shape[0] < 1:
        raise ValueError(f"{param} must be frames [T, H, W, 3] with T >= 1, got shape {v.shape}")
    return to_uint8(v, param)


def _streamed(video: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """A stream's frames (e.g. `processing.video.iter_video`), each checked as it comes: the clip is never held whole."""
    count = 0
    for count, frame in enumerate(video, 1):
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"video frame {count - 1} must be [H, W, 3], got {frame.shape}")
        yield to_uint8(frame, f"video frame {count - 1}")
    if not count:
        raise ValueError("video: the stream gave no frames")


def _resize(frame: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    if h == height:
        return frame
    width = max(1, round(w * height / h))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def _label(frame: np.ndarray, text: str) -> np.ndarray:
    """Put a white caption strip with `text` above the frame."""
    from PIL import Image, ImageDraw

    strip = Image.new("RGB", (frame.shape[1], LABEL_HEIGHT), (255, 255, 255))
    ImageDraw.Draw(strip).text((6, 5), text, fill=(0, 0, 0))
    return np.concatenate([np.asarray(strip), frame], axis=0)


def animation_frames(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    gripper_column: str | None = None,
    video: np.ndarray | Iterator[np.ndarray] | None = None,
    video_fps: float | None = None,
    title: str = "",
    video_label: str = "imagined video",
) -> tuple[np.ndarray, float]:
    """Frames [N, H, W, 3] and their rate: the time-series plot with a moving playhead, the video (if any) at left.

    With a video, there is one output frame per video frame, frame k at time k / video_fps (the video's frame 0 is
    the observation, i.e. t = 0); without one, one frame per action step at `fps`. `video` is frames
    [T, H, W, 3] (uint8, or float in [0, 1]), or an iterator of [H, W, 3] frames (`processing.video.iter_video`) drawn as they come.
    """
    frames, rate = _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label)
    return np.stack(list(frames)), rate


def _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label):
    """`animation_frames` as (a generator of frames, rate): checked and drawn up front, frames made one at a time."""
    a = _check_actions(actions, columns, units)
    fps = _check_fps(fps)
    fig = action_timeseries_figure(a, columns, units, fps, gripper_column, title)
    plot = figure_to_array(fig)
    height = plot.shape[0]
    axes = [ax for ax in fig.axes if ax.get_visible()]
    # pixel geometry of each axes: x of t=0 and t=1 s, and the row span (Agg's y origin is at the bottom)
    geometry = []
    for ax in axes:
        bbox = ax.get_window_extent()
        x0 = ax.transData.transform((0.0, 0.0))[0]
        x1 = ax.transData.transform((1.0, 0.0))[0]
        geometry.append((x0, x1 - x0, int(height - bbox.y1), int(height - bbox.y0), bbox.x0, bbox.x1))

    if video is not None:
        video = _streamed(video) if isinstance(video, Iterator) else iter(_check_video(video, "video"))
        rate = _check_fps(video_fps if video_fps is not None else fps, "video_fps" if video_fps is not None else "fps")
    else:
        rate = fps
    t_end = (a.shape[0] - 1) / fps

    def frames():
        if video is None:
            for k in range(a.shape[0]):
                yield _frame(k, k / rate, None)
        else:
            for k, image in enumerate(video):
                yield _frame(k, k / rate, image)

    def _frame(k: int, t: float, image: np.ndarray | None) -> np.ndarray:
        frame = plot.copy()
        tt = min(t, t_end)
        for x0, px_per_s, top, bottom, left, right in geometry:
            x = round(x0 + tt * px_per_s)
            if left <= x < right:
                frame[top:bottom, max(x - 1, 0) : x + 1] = PLAYHEAD_RGB
        if image is not None:  # each video frame resized as it is drawn
            panel = _label(_resize(image, height - LABEL_HEIGHT), f"{video_label}  t = {t:.2f} s  frame {k}")
            frame = np.concatenate([panel, frame], axis=1)
        return frame

    return frames(), rate


def animate_actions(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    path: str | Path,
    gripper_column: str | None = None,
    video: np.ndarray | Iterator[np.ndarray] | None = None,
    video_fps: float | None = None,
    title: str = "",
    video_label: str = "imagined video",
) -> Path:
    """Write `animation_frames` as an H.264 mp4 (atomically), encoding each frame as it is drawn (a streamed `video`
    is decoded as it is drawn too: neither clip is held whole)."""
    frames, rate = _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label)
    return write_video(path, frames, rate)


def side_by_side_frames(
    videos: Sequence[np.ndarray], labels: Sequence[str], height: int | None = None, gap: int = 4
) -> np.ndarray:
    """Clips (uint8, or float in [0, 1]) resized to one height and placed left to right with captions; shorter clips
    hold their last frame."""
    if len(videos) < 1:
        raise ValueError("videos: give at least one clip")
    if len(labels) != len(videos):
        raise ValueError(f"labels has {len(labels)} entries but {len(videos)} videos were given")
    clips = [_check_video(v, f"videos[{i}]") for i, v in enumerate(videos)]
    height = int(height or min(c.shape[1] for c in clips))
    if height < 16:
        raise ValueError(f"height={height} must be >= 16 pixels")
    n = max(c.shape[0] for c in clips)
    frames = []
    for k in range(n):
        row = []
        for c, label in zip(clips, labels):
            idx = min(k, c.shape[0] - 1)
            suffix = "" if k < c.shape[0] else " (ended)"
            row.append(_label(_resize(c[idx], height), f"{label}  frame {idx}{suffix}"))
            row.append(np.full((height + LABEL_HEIGHT, gap, 3), 255, np.uint8))
        frames.append(np.concatenate(row[:-1], axis=1))
    return np.stack(frames)


def write_side_by_side(
    videos: Sequence[np.ndarray], labels: Sequence[str], fps: float, path: str | Path, height: int | None = None
) -> Path:
    """E.g. simulated vs imagined rollout, written as one mp4."""
    return write_video(path, side_by_side_frames(videos, labels, height), _check_fps(fps))
