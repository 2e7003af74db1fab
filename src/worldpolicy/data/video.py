"""Multi-episode MP4 files (LeRobot v3 keeps many episodes per file, located by from/to timestamps), via PyAV.

Writing streams through `worldpolicy.processing.video.VideoFileWriter`; reading a v3 file goes one
[from_timestamp, to_timestamp) segment at a time, which this module seeks to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import DatasetFormatError


def count_frames(path: Path) -> int:
    """Frames in the first video stream of `path` (0 without one). MP4 headers give the count; containers that don't
    report it (Matroska/WebM, some fragmented MP4) read 0 there, which would pass any "too many frames" check
    unchecked, so the packets are counted instead: demuxing reads the file but decodes nothing."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return 0
        stream = container.streams.video[0]
        if stream.frames:
            return stream.frames
        return sum(1 for packet in container.demux(stream) if packet.pts is not None)  # the flush packet has none


def read_segment(
    path: Path,
    from_timestamp: float,
    to_timestamp: float,
    fps: float,
    expected: int | None,
    key: str,
    hw: tuple[int, int],
    context: str = "",
) -> np.ndarray:
    """Decode the frames of video feature `key` in [from_timestamp, to_timestamp) as uint8 [T, H, W, 3]; `expected`
    is how many there must be (an episode's length, or the part of it asked for), `hw` the size info.json gives
    them, checked on each frame before it is converted: a small file may hold long runs of huge frames.

    Frames are matched by index round(t · fps), which tolerates the float rounding of stored timestamps.
    """
    import av

    if not path.is_file():
        raise DatasetFormatError(
            path, None, f"video file is missing (named by videos/{key}/chunk_index and file_index{context})"
        )
    field = f"videos/{key}/to_timestamp"
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
                if (frame.height, frame.width) != hw:
                    raise DatasetFormatError(path, f"features.{key}.shape", f"frames are {frame.height}x{frame.width} "
                                                                            f"but info.json says {hw[0]}x{hw[1]}")
                frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.FFmpegError as exc:
        raise DatasetFormatError(path, None, f"could not be decoded: {exc}") from None
    count = len(frames)
    if expected is not None and count != expected:
        raise DatasetFormatError(
            path,
            field,
            f"segment [{from_timestamp}, {to_timestamp}) s{context} holds {count} "
            f"frames but {expected} were expected",
        )
    if not frames:
        raise DatasetFormatError(path, field, f"segment [{from_timestamp}, {to_timestamp}) s{context} holds no frames")
    return np.stack(frames)
