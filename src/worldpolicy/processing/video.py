"""MP4 read/write through PyAV (bundled FFmpeg, in-process). Frames are uint8 [T, H, W, 3]."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video file to uint8 RGB frames [T, H, W, 3] and its frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"video file {str(path)!r} has no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise ValueError(f"video file {str(path)!r} could not be decoded: {exc}") from None
    if not frames:
        raise ValueError(f"video file {str(path)!r} contains no frames")
    return np.stack(frames), fps


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float, crf: int = 18) -> Path:
    """Encode uint8 RGB frames to an H.264 MP4, atomically (temp file + rename). Odd sizes are padded to even."""
    import av

    path = Path(path)
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("write_video: no frames given")
    h, w = frames[0].shape[:2]
    if any(f.shape != frames[0].shape or f.ndim != 3 or f.shape[2] != 3 for f in frames):
        raise ValueError("write_video: all frames must share one [H, W, 3] shape")
    if fps <= 0:
        raise ValueError(f"write_video: fps={fps} must be > 0")
    ph, pw = h + h % 2, w + w % 2
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    try:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=_fraction(fps))
            stream.width, stream.height, stream.pix_fmt = pw, ph, "yuv420p"
            stream.options = {"crf": str(crf)}
            for f in frames:
                f = np.ascontiguousarray(f.astype(np.uint8, copy=False))
                if (ph, pw) != (h, w):
                    f = np.pad(f, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
                for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
