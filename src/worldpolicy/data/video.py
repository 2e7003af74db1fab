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
    codec: str | None = None,
) -> np.ndarray:
    """Decode the frames of video feature `key` in [from_timestamp, to_timestamp) as uint8 [T, H, W, 3]; `expected`
    is how many there must be (an episode's length, or the part of it asked for), `hw` the size info.json gives
    them, checked on each frame before it is converted: a small file may hold long runs of huge frames. `codec` is
    the codec info.json names (`video.codec`), for the error when this PyAV cannot decode the file.

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
    decoder = None  # known once the file is open: before that, a failure is the container's, not the codec's
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetFormatError(path, None, "has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # FFmpeg knows the container but has no decoder for what it holds
                raise DatasetFormatError(path, None, _undecodable(codec, "this build has no decoder for it"))
            decoder = stream.codec_context.name
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
        if decoder is None:
            raise DatasetFormatError(path, None, f"could not be opened as a video: {exc}") from None
        raise DatasetFormatError(path, None, _undecodable(codec, f"its {decoder} decoder failed: {exc}")) from None
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


def _undecodable(codec: str | None, why: str) -> str:
    """Why a video file cannot be read, and the way out: a dataset recorded elsewhere may use a codec (AV1 is
    LeRobot's default) that the installed PyAV build cannot decode."""
    import av

    named = f" (codec {codec!r}, as info.json says)" if codec else ""
    return (f"could not be decoded with PyAV {av.__version__}{named}: {why}. If the file plays elsewhere: PyAV's PyPI "
            "wheels bundle decoders for AV1 (libdav1d), H.264 and HEVC, and a PyAV built against a system FFmpeg may "
            "lack them; reinstall it from PyPI (pip install --force-reinstall av), or re-encode the file to H.264 "
            "keeping its frames and frame rate (ffmpeg -i FILE -c:v libx264 -pix_fmt yuv420p OUT.mp4)")
