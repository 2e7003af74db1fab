"""Multi-episode MP4 files (LeRobot v3 keeps many episodes per file, located by from/to timestamps), via PyAV.

`worldpolicy.processing.video` reads and writes whole clips; a v3 video file instead grows episode by episode and is
read back one [from_timestamp, to_timestamp) segment at a time, so this module streams and seeks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from .layout import DatasetFormatError


@dataclass(frozen=True)
class VideoCodec:
    """An encoder setting. `lossless` codecs round-trip uint8 RGB frames bit-exactly."""

    encoder: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...]
    name: str  # the codec name as info.json records it (`video.codec`)
    lossless: bool = False


CODECS = {
    "libx264": VideoCodec("libx264", "yuv420p", (("crf", "18"), ("preset", "veryfast")), "h264"),
    "libx264rgb": VideoCodec("libx264rgb", "rgb24", (("crf", "0"),), "h264", lossless=True),
    "libsvtav1": VideoCodec("libsvtav1", "yuv420p", (("crf", "30"), ("preset", "12")), "av1"),
}


def fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


class VideoFileWriter:
    """Appends episodes to one MP4 written to a temp file and moved into place on `close()`."""

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str, gop: int):
        import av

        spec = CODECS[codec]
        if spec.pix_fmt == "yuv420p" and (height % 2 or width % 2):
            raise ValueError(
                f"video_codec={codec!r} needs even frame sizes, got {height}x{width}; "
                f"use video_codec='libx264rgb' for odd sizes"
            )
        self.path, self.fps, self.shape = path, fps_fraction(fps), (height, width, 3)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".mp4")
        os.close(fd)
        self._container = av.open(self._tmp, mode="w", format="mp4")
        self._stream = self._container.add_stream(spec.encoder, rate=self.fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, spec.pix_fmt
        self._stream.options = {**dict(spec.options), "g": str(gop)}
        self.num_frames = 0
        self.bytes_written = 0

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        """Encode frames [T, H, W, 3] uint8; returns the episode's (from_timestamp, to_timestamp) in seconds."""
        import av

        start = self.num_frames
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = self.num_frames, 1 / self.fps
            self.num_frames += 1
            self._mux(self._stream.encode(vf))
        return float(start / self.fps), float(self.num_frames / self.fps)

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes_written += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        try:
            self._mux(self._stream.encode())
            self._container.close()
            os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def abort(self) -> None:
        import av

        with contextlib.suppress(av.error.FFmpegError, OSError):  # the file is discarded either way
            self._container.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


def read_segment(
    path: Path,
    from_timestamp: float,
    to_timestamp: float,
    fps: float,
    expected: int | None,
    field: str,
    context: str = "",
) -> np.ndarray:
    """Decode the frames of [from_timestamp, to_timestamp) as uint8 [T, H, W, 3].

    Frames are matched by index round(t · fps), which tolerates the float rounding of stored timestamps.
    """
    import av

    if not path.is_file():
        raise DatasetFormatError(path, None, f"video file is missing (referenced by {field}{context})")
    first = round(from_timestamp * fps)
    last = round(to_timestamp * fps)
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetFormatError(path, None, "has no video stream")
            stream = container.streams.video[0]
            if first > 0 and stream.time_base is not None:
                container.seek(int(from_timestamp / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                index = round(frame.time * fps)
                if index < first:
                    continue
                if index >= last:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as exc:
        raise DatasetFormatError(path, None, f"could not be decoded: {exc}") from None
    count = len(frames)
    if expected is not None and count != expected:
        raise DatasetFormatError(
            path,
            field,
            f"segment [{from_timestamp}, {to_timestamp}) s{context} holds {count} "
            f"frames but the episode has {expected}",
        )
    if not frames:
        raise DatasetFormatError(path, field, f"segment [{from_timestamp}, {to_timestamp}) s{context} holds no frames")
    return np.stack(frames)
