"""Multi-episode MP4 files (LeRobot v3 keeps many episodes per file, located by from/to timestamps), via PyAV.

Writing streams through `worldpolicy.processing.video.VideoFileWriter`; reading a v3 file goes one
[from_timestamp, to_timestamp) segment at a time (`SegmentReader`): seeking to it, or decoding on where the previous
segment of the file ended.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..processing.video import RGBConverter, ffmpeg_reason
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
    """One segment of a file opened for it alone (`SegmentReader.read`, which says what the arguments are)."""
    with SegmentReader(path, codec) as reader:
        return reader.read(from_timestamp, to_timestamp, fps, expected, key, hw, context)


class SegmentReader:
    """Segments of one video file, the file kept open between them: a segment that starts where the previous one
    ended (or at its last frame, as `dataset label`'s segments overlap) goes on decoding from there; any other seeks
    to the keyframe before it, as a file opened afresh does. Decoding on gives the frames decoding the whole file
    gives; it saves decoding again from the keyframe before each block, all of a long GOP (a 250-frame one: x264's
    default, which other recorders keep). `codec` is the codec info.json names (`video.codec`), for the error when
    this PyAV cannot decode the file."""

    def __init__(self, path: Path, codec: str | None = None):
        self.path, self.codec = Path(path), codec
        self._container: Any = None
        self._stream: Any = None
        self._decoded: Iterator[Any] | None = None  # the decoder's frames from where it was last started
        self._pending: Any = None  # a frame decoded past the previous segment: the next one's first, if it continues
        self._end: int | None = None  # the frame index the previous segment ended at
        self._last: tuple[int, np.ndarray] | None = None  # its last frame, for a segment that starts there
        self._rgb = RGBConverter()

    def read(self, from_timestamp: float, to_timestamp: float, fps: float, expected: int | None, key: str,
             hw: tuple[int, int], context: str = "") -> np.ndarray:
        """Decode the frames of video feature `key` in [from_timestamp, to_timestamp) as uint8 [T, H, W, 3];
        `expected` is how many there must be (an episode's length, or the part of it asked for), `hw` the size
        info.json gives them, checked on each frame before it is converted: a small file may hold long runs of huge
        frames. Frames are matched by index round(t · fps), which tolerates the float rounding of stored timestamps.
        """
        first, last = round(from_timestamp * fps), round(to_timestamp * fps)
        try:
            frames = self._decode(from_timestamp, first, last, fps, key, hw, context)
        except BaseException:
            self.close()  # where the decoder stands is unknown: the next read opens the file afresh
            raise
        field = f"videos/{key}/to_timestamp"
        count = len(frames)
        if expected is not None and count != expected:
            raise DatasetFormatError(
                self.path,
                field,
                f"segment [{from_timestamp}, {to_timestamp}) s{context} holds {count} "
                f"frames but {expected} were expected",
            )
        if not frames:
            raise DatasetFormatError(self.path, field,
                                     f"segment [{from_timestamp}, {to_timestamp}) s{context} holds no frames")
        return np.stack(frames)

    def _decode(self, from_timestamp: float, first: int, last: int, fps: float, key: str, hw: tuple[int, int],
                context: str) -> list[np.ndarray]:
        import av

        frames: list[np.ndarray] = []
        decoder = None  # known once the file is open: before that, a failure is the container's, not the codec's
        try:
            if self._container is not None and first == self._end:
                pass  # the previous segment's continuation: decode on
            elif self._container is not None and self._last is not None and self._last[0] == first == self._end - 1:
                frames.append(self._last[1])  # it starts at the previous one's last frame, and goes on from there
            else:
                self._start(first, from_timestamp, key, context)
            decoder = self._stream.codec_context.name
            while True:
                frame, self._pending = self._pending, None
                if frame is None:
                    frame = next(self._decoded, None)
                    if frame is None:
                        break
                if frame.time is None:
                    continue
                index = round(frame.time * fps)
                if index < first:
                    continue
                if index >= last:
                    self._pending = frame
                    break
                if (frame.height, frame.width) != hw:
                    raise DatasetFormatError(self.path, f"features.{key}.shape",
                                             f"frames are {frame.height}x{frame.width} but info.json says "
                                             f"{hw[0]}x{hw[1]}")
                frames.append(self._rgb(frame))
                self._last = (index, frames[-1])
        except av.error.FFmpegError as exc:  # said once, here, for every reader of a dataset's videos; PyAV's own
            # text (an errno, the FFmpeg call that failed) is kept as the cause, which `-v` shows
            reading = f"{key}'s frames{context} could not be read"
            if decoder is None:
                why = f"{reading}: the file could not be opened as a video: {ffmpeg_reason(exc)}; {_DAMAGED}"
            elif isinstance(exc, av.error.InvalidDataError):  # a decoder that runs, on data that is not what it wrote
                why = f"{reading}: its {decoder} decoder found invalid data, so the file is damaged; {_DAMAGED}"
            else:
                why = f"{reading}: {_undecodable(self.codec, f'its {decoder} decoder failed: {ffmpeg_reason(exc)}')}"
            raise DatasetFormatError(self.path, None, why) from exc
        self._end = last
        return frames

    def _start(self, first: int, from_timestamp: float, key: str, context: str) -> None:
        """Decode from the keyframe before frame `first`: the file opened afresh for frame 0, else a seek."""
        import av

        if first == 0 or self._container is None:
            self.close()
            if not self.path.is_file():
                raise DatasetFormatError(
                    self.path, None,
                    f"video file is missing (named by videos/{key}/chunk_index and file_index{context})"
                )
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise DatasetFormatError(self.path, None, "has no video stream")
            self._stream = self._container.streams.video[0]
            if self._stream.codec_context is None:  # FFmpeg knows the container but has no decoder for what it holds
                raise DatasetFormatError(self.path, None, _undecodable(self.codec, "this build has no decoder for it"))
        if first > 0 and self._stream.time_base is not None:
            self._container.seek(int(from_timestamp / self._stream.time_base), stream=self._stream, backward=True)
        self._decoded, self._pending, self._last = self._container.decode(self._stream), None, None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._decoded = self._pending = self._end = self._last = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# what to do about a video file FFmpeg finds invalid data in
_DAMAGED = ("a copy or download cut short leaves such a file: copy or download it again, then `worldpolicy dataset "
            "check` on the dataset decodes every video to confirm it is whole")


def _undecodable(codec: str | None, why: str) -> str:
    """Why a video file cannot be read, and the way out: a dataset recorded elsewhere may use a codec (AV1 is
    LeRobot's default) that the installed PyAV build cannot decode."""
    import av

    named = f" (codec {codec!r}, as info.json says)" if codec else ""
    return (f"could not be decoded with PyAV {av.__version__}{named}: {why}. If the file plays elsewhere: PyAV's PyPI "
            "wheels bundle decoders for AV1 (libdav1d), H.264 and HEVC, and a PyAV built against a system FFmpeg may "
            "lack them; reinstall it from PyPI (pip install --force-reinstall av), or re-encode the file to H.264 "
            "keeping its frames and frame rate (ffmpeg -i FILE -c:v libx264 -pix_fmt yuv420p OUT.mp4)")
