"""MP4 read/write through PyAV (bundled FFmpeg, in-process). Frames are uint8 [T, H, W, 3]; writers also take floats
in [0, 1] (see `to_uint8`)."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Self

import numpy as np

from ..errors import is_integer, is_real
from ..fileio import held_temp_file, make_folder, umask


def check_frame_bounds(max_frames: int | None, last: int | None) -> None:
    """The first `max_frames` or the `last` frames of a clip: each a positive count, at most one of them."""
    for name, value in (("max_frames", max_frames), ("last", last)):
        if value is not None and (not is_integer(value) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive integer (a number of frames) or None")
    if max_frames is not None and last is not None:
        raise ValueError(f"max_frames={max_frames} and last={last} were both given; ask for one of them")


class RGBConverter:
    """Decoded frames as uint8 RGB arrays [H, W, 3], through one swscale context kept from frame to frame:
    `frame.to_ndarray(format="rgb24")` sets one up for every frame (about 2 ms a 96x128 frame on the dev machine, 50
    times the conversion), and gives the same pixels. `height` and `width` scale it on the way (bilinear, PyAV's
    default), as stored: its display rotation is the caller's."""

    def __init__(self) -> None:
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()

    def __call__(self, frame: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
        return self._reformatter.reformat(frame, width=width, height=height, format="rgb24").to_ndarray()


@contextlib.contextmanager
def _video_stream(path: Path) -> Iterator:
    """`path`'s container and first video stream; FFmpeg's errors, while open or decoding, as ValueErrors naming it."""
    import av

    if not path.is_file():
        raise FileNotFoundError(f"video file {str(path)!r} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"video file {str(path)!r} has no video stream")
            yield container, container.streams.video[0]
    except av.error.FFmpegError as exc:
        raise ValueError(f"video file {str(path)!r} could not be decoded: {ffmpeg_reason(exc)}") from None


def ffmpeg_reason(exc: Exception) -> str:
    """What an FFmpeg error says of a file, without PyAV's errno and path (`[Errno 1094995529] Invalid data found when
    processing input: 'F'`, noise to a reader whose message names the file already): invalid data is said as what it
    means, a file that is not a video or a damaged one."""
    import av

    if isinstance(exc, av.error.InvalidDataError):
        return "it is not a video, or a damaged one (FFmpeg found invalid data)"
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"FFmpeg: {reason[:1].lower()}{reason[1:]}"


def stream_fps(stream: Any) -> float:
    """A video stream's frame rate from its header, 0.0 where it names none."""
    return float(stream.average_rate or stream.guessed_rate or 0.0)


def video_fps(path: str | Path) -> float:
    """A video file's frame rate (0.0 where its stream names none), read from its header without decoding a frame."""
    with _video_stream(Path(path)) as (_, stream):
        return stream_fps(stream)


def varying_rate(path: str | Path) -> float | None:
    """A video file's base rate (its stream's `base_rate`, FFmpeg's r_frame_rate: the rate its timestamps are kept at)
    where it is more than 10% off the average rate `video_fps` gives: a variable-frame-rate clip (a phone's, a screen
    recording's), whose frames are not evenly spaced; None for an even rate or a header without both rates. Read from
    the header, no frame decoded: a rate that varies around its base one is not told."""
    with _video_stream(Path(path)) as (_, stream):
        average, base = float(stream.average_rate or 0.0), float(stream.base_rate or 0.0)
    return base if average and base and abs(base / average - 1) > 0.1 else None


def read_video(path: str | Path, max_frames: int | None = None, last: int | None = None) -> tuple[np.ndarray, float]:
    """Decode a video file to uint8 RGB frames [T, H, W, 3] and its frame rate: all of them, the first `max_frames`
    (decoding stops there) or the `last` ones. Seeking to the end is unreliable (H.264 keyframes), so `last` decodes
    through the clip but keeps only a window of that many frames, converted to RGB at the end."""
    check_frame_bounds(max_frames, last)
    path = Path(path)
    with _video_stream(path) as (container, stream):
        fps = stream_fps(stream)
        kept: deque = deque(maxlen=last)
        for frame in container.decode(stream):
            kept.append(frame)
            if max_frames is not None and len(kept) >= max_frames:
                break
        if not kept:
            raise ValueError(f"video file {str(path)!r} contains no frames")
        frames, rgb = np.empty((len(kept), kept[0].height, kept[0].width, 3), np.uint8), RGBConverter()
        for i in range(len(frames)):  # each decoded frame is dropped as it is converted: one copy of the clip at a time
            frames[i] = rgb(kept.popleft())
    return frames, fps


def video_comment(path: str | Path) -> str | None:
    """A video file's comment tag, None where it has none: read from the header, no frame decoded. MP4 holds it in the
    file itself, so a copy keeps it (FFmpeg carries it over when it re-encodes, too); worldpolicy records the canvas the
    model generated its frames on there (`write_video`'s `comment`)."""
    with _video_stream(Path(path)) as (container, _):
        return container.metadata.get("comment")


def iter_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decoded uint8 RGB frames [H, W, 3] one at a time, for a consumer that uses every frame but holds none."""
    with _video_stream(Path(path)) as (container, stream):
        rgb = RGBConverter()
        for frame in container.decode(stream):
            yield rgb(frame)


@dataclass(frozen=True)
class VideoCodec:
    """An encoder setting. `lossless` codecs round-trip uint8 RGB frames bit-exactly."""

    encoder: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...]
    name: str  # the codec name as LeRobot's info.json records it (`video.codec`)
    lossless: bool = False

    def check_frame_size(self, height: int, width: int) -> None:
        """yuv420p stores colour at half resolution, so its encoders refuse odd sizes: say so before encoding."""
        if self.pix_fmt == "yuv420p" and (height % 2 or width % 2):
            raise ValueError(
                f"video_codec={self.encoder!r} needs even frame sizes, got {height}x{width}; "
                f"use video_codec='libx264rgb' for odd sizes"
            )


CODECS = {
    # mbtree=0: with x264's macroblock-tree rate control the bytes (and decoded pixels, up to ~25/255) changed with
    # whatever the process had allocated before, so one seed gave two rollout.mp4s; the price is ~30 % larger files.
    "libx264": VideoCodec("libx264", "yuv420p", (("crf", "18"), ("preset", "veryfast"), ("x264-params", "mbtree=0")),
                          "h264"),
    "libx264rgb": VideoCodec("libx264rgb", "rgb24", (("crf", "0"),), "h264", lossless=True),
    "libsvtav1": VideoCodec("libsvtav1", "yuv420p", (("crf", "30"), ("preset", "12")), "av1"),
}


MIN_FPS = Fraction(1, 1001)  # the slowest rate `fps_fraction` holds (denominators up to 1001): slower ones are lost


def fps_fraction(fps: float) -> Fraction:
    return Fraction(float(fps)).limit_denominator(1001)  # float: Fraction takes no numpy scalar (np.float32(15))


def check_fps(fps: float, where: str) -> None:
    """A rate an MP4 stream can take, refused naming `where` (the caller) otherwise: NaN and inf passed `fps <= 0`
    and then failed in `Fraction` ("cannot convert NaN to integer ratio"), naming neither the call nor the parameter."""
    if not is_real(fps) or fps < MIN_FPS:
        raise ValueError(f"{where}: fps={fps!r}; accepted: a finite number of frames per second, at least 1/1001")


@dataclass(frozen=True)
class StreamSignature:
    """What a video stream's packets need of the file they are muxed into: the same codec, frame size, pixel format,
    time base and extradata (H.264's SPS/PPS, which MP4 keeps beside the packets, not in them)."""

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    time_base: Fraction
    extradata: bytes | None


def stream_signature(stream: Any) -> StreamSignature:
    ctx = stream.codec_context
    return StreamSignature(ctx.name, ctx.width, ctx.height, ctx.pix_fmt, stream.time_base, ctx.extradata)


class VideoFileWriter:
    """Streams frames into one MP4 written to a temp file and moved into place on `close()` (`abort()` drops it).

    Whole clips go through `write_video`; LeRobot v3 files grow episode by episode through `append`, or, made with a
    `template` (a demuxed stream), through `append_packets`: another file's encoded packets taken as they are.
    `comment`: the file's comment tag (`video_comment`), or None.
    """

    def __init__(self, path: Path, fps: float, height: int, width: int, codec: str = "libx264", gop: int | None = None,
                 template: Any = None, comment: str | None = None):
        import av

        if codec not in CODECS:
            raise ValueError(f"codec={codec!r}; accepted: {', '.join(CODECS)}")
        check_mp4_path(path)
        check_fps(fps, "VideoFileWriter")
        spec = CODECS[codec]
        spec.check_frame_size(height, width)
        self.path, self.fps, self.shape = Path(path), fps_fraction(fps), (height, width, 3)
        make_folder(self.path.parent)
        self._tmp, self._held = held_temp_file(self.path, ".mp4")  # a killed writer's is removed by the next one
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        if comment is not None:
            self._container.metadata["comment"] = comment
        if template is None:
            self._stream = self._container.add_stream(spec.encoder, rate=self.fps)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, spec.pix_fmt
            self._stream.options = {**dict(spec.options), **({"g": str(gop)} if gop else {})}
        else:  # a copy of the template's codec parameters (its extradata: H.264's SPS/PPS), which its packets need
            self._stream = self._container.add_stream_from_template(template, opaque=True)
            self._stream.time_base = template.time_base
        # what another stream's packets must share to be muxed here as they are (`append_packets`); None: frames
        self.copy_of = None if template is None else stream_signature(template)
        self.num_frames = 0
        self.bytes_written = 0
        self._last_dts: int | None = None  # of the last packet `append_packets` muxed, in the stream's time base

    def append(self, frames: np.ndarray, keyframe: bool = False) -> tuple[float, float]:
        """Encode frames [T, H, W, 3] uint8, the first a keyframe with `keyframe` (an episode's start: a copy of the
        episode can take its packets from there, `append_packets`); returns their (from_timestamp, to_timestamp) in
        seconds."""
        import av

        if self.copy_of is not None:
            raise RuntimeError(f"{self.path.name} takes packets (append_packets), not frames")
        start = self.num_frames
        for k, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = self.num_frames, 1 / self.fps
            if keyframe and k == 0:
                vf.pict_type = av.video.frame.PictureType.I
            self.num_frames += 1
            self._mux(self._stream.encode(vf))
        return float(start / self.fps), float(self.num_frames / self.fps)

    def append_packets(self, packets: list[Any], first_pts: int, count: int) -> tuple[float, float] | None:
        """Mux `packets` (demuxed from a stream like the `template`, in decode order: `count` frames, the first shown
        at `first_pts`) after the frames already here, their timestamps shifted to follow them; returns their
        (from_timestamp, to_timestamp) in seconds, or None (nothing muxed) where the shift is not a whole number of
        the stream's ticks or their decode times would not follow the last packet's."""
        assert self.copy_of is not None, "append_packets needs a VideoFileWriter made with a template"
        at = Fraction(self.num_frames) / self.fps / self.copy_of.time_base
        if at.denominator != 1 or any(p.pts is None or p.dts is None for p in packets):
            return None
        shift = int(at) - first_pts
        if self._last_dts is not None and packets[0].dts + shift <= self._last_dts:
            return None
        start = self.num_frames
        for packet in packets:
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = self._stream
            self._last_dts = packet.dts
            self._mux([packet])
        self.num_frames += count
        return float(start / self.fps), float(self.num_frames / self.fps)

    def _mux(self, packets) -> None:
        for packet in packets:
            self.bytes_written += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        try:
            if self.copy_of is None:
                self._mux(self._stream.encode())
            self._container.close()
            os.chmod(self._tmp, 0o666 & ~umask())  # mkstemp makes 0600: the mode `open` gives, as atomic_path
            os.replace(self._tmp, self.path)
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)
            self._let_go()

    def abort(self) -> None:
        import av

        with contextlib.suppress(av.error.FFmpegError, OSError):  # the file is discarded either way
            self._container.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._let_go()

    def _let_go(self) -> None:
        """Let go of the temp file's hold (`held_temp_file`), once: `abort` may follow a `close` that failed."""
        if self._held is not None:
            os.close(self._held)
            self._held = None


class EncodedSegment:
    """The encoded packets of one [from_timestamp, to_timestamp) segment of a video file, for copying it into another
    file as they are (`VideoFileWriter.append_packets`: a dataset's episode, `data.lerobot.EpisodeVideoStream.copy`;
    a whole file, `join_videos`): lossless, and no encoder runs. Only a segment that decodes on its own is one: it
    starts on a keyframe and no packet of it refers past its end (the next packet in decode order is the keyframe of
    the frame after it, or the file ends), as a writer that starts each episode on a keyframe in closed GOPs (x264's
    default) leaves them, and a whole file always. `open` says why a segment is not one. The file stays open (the
    stream is the copy's template) until `close`."""

    def __init__(self, container: Any, packets: list[Any], count: int):
        self._container, self.packets, self.count = container, packets, count
        self.stream = container.streams.video[0]
        self.first_pts = packets[0].pts  # the first in decode order is the keyframe the segment's first frame is

    @classmethod
    def open(cls, path: Path, from_timestamp: float, to_timestamp: float, fps: float,
             expected: int) -> EncodedSegment | str:
        """The segment's packets, or why they cannot be copied as they are (a file that cannot be read at all says
        so when it is decoded)."""
        import av

        first, last = round(from_timestamp * fps), round(to_timestamp * fps)
        try:
            container = av.open(str(path))
        except av.error.FFmpegError as exc:
            return f"{path.name} could not be opened ({ffmpeg_reason(exc)})"
        except OSError as exc:
            return f"{path.name} could not be opened ({exc})"
        try:
            why = None
            if not container.streams.video or container.streams.video[0].time_base is None:
                why = f"{path.name} has no video stream with a time base"
            else:
                stream = container.streams.video[0]
                packets, why = _segment_packets(container, stream, from_timestamp, first, last, fps)
                if why is None and len(packets) != expected:
                    why = f"its {len(packets)} packets are not its {expected} frames"
            if why is None:
                return cls(container, packets, expected)
        except av.error.FFmpegError as exc:
            why = f"{path.name} could not be demuxed ({ffmpeg_reason(exc)})"
        container.close()
        return why

    def sample(self, indices: np.ndarray, hw: tuple[int, int], stride: int) -> np.ndarray | None:
        """Frames `indices` (of the segment's, in order) decoded from its packets, every `stride`-th pixel of them, as
        uint8 [n, H', W', 3] (a stats sample); None where the packets do not decode to the segment's frames of size
        `hw`. Call before the packets are copied."""
        import av

        wanted, out, k, rgb = set(indices.tolist()), [], 0, RGBConverter()
        decoder = self.stream.codec_context
        try:
            for packet in [*self.packets, None]:
                for frame in decoder.decode(packet):
                    if (frame.height, frame.width) != hw:
                        return None
                    if k in wanted:
                        out.append(rgb(frame)[::stride, ::stride].copy())
                    k += 1
        except av.error.FFmpegError:
            return None
        return np.stack(out) if k == self.count and len(out) == len(wanted) else None

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _segment_packets(container: Any, stream: Any, from_timestamp: float, first: int, last: int,
                     fps: float) -> tuple[list[Any], str | None]:
    """The packets of frames [first, last) in decode order, from the keyframe of `first` to the one of `last` (or the
    end of the file), or why there is no such run."""
    if first > 0:
        container.seek(int(from_timestamp / stream.time_base), stream=stream, backward=True)
    packets: list[Any] = []
    for packet in container.demux(stream):
        if packet.pts is None:  # the flush packet
            continue
        index = round(packet.pts * stream.time_base * fps)
        if not packets:
            if index < first:
                continue
            if index != first or not packet.is_keyframe:
                return [], f"frame {first} of the file is not a keyframe"
        elif index >= last:
            if index != last or not packet.is_keyframe:
                return [], f"frame {last} of the file (after the segment) is not a keyframe"
            break
        elif index < first:
            return [], f"frame {first} of the file is not where a closed GOP starts"
        packets.append(packet)
    return packets, None


def join_videos(path: str | Path, parts: Sequence[tuple[Path, int]], fps: float) -> str | None:
    """Write `path` (atomically) as the video files `parts` (each with its number of frames) end to end, their encoded
    packets muxed as they are (`EncodedSegment`, `VideoFileWriter.append_packets`): no encoder runs, and the frames
    decode to exactly the parts' (encoding their decoded frames again loses more). Where the parts do not allow it (a
    part that does not open, is not its frames or not of the first's codec, size and settings) nothing is written
    and why is returned, for the caller to encode the frames instead. The joined file keeps part 0's comment tag
    (`video_comment`: the canvas a dream's chunks were generated on)."""
    if not parts:
        return "no parts given"
    writer: VideoFileWriter | None = None
    try:
        for k, (part, count) in enumerate(parts):
            segment = EncodedSegment.open(Path(part), 0.0, count / float(fps), fps, count)
            if isinstance(segment, str):
                return f"part {k} ({Path(part).name}): {segment}"
            with segment:
                if writer is None:
                    writer = VideoFileWriter(Path(path), fps, segment.stream.height, segment.stream.width,
                                             template=segment.stream, comment=video_comment(part))
                elif stream_signature(segment.stream) != writer.copy_of:
                    return f"part {k} ({Path(part).name}) is not of part 0's codec, frame size and settings"
                if writer.append_packets(segment.packets, segment.first_pts, segment.count) is None:
                    return f"part {k} ({Path(part).name}): its timestamps do not follow the part before it"
        writer.close()
        writer = None
        return None
    finally:
        if writer is not None:  # refused, or an error: nothing is written
            writer.abort()


def to_uint8(pixels: np.ndarray, param: str) -> np.ndarray:
    """Pixels (a frame or a clip) as uint8 for encoding: uint8 as given, integers in [0, 255] cast, booleans 0/255,
    floats in [0, 1] scaled as imageio and PIL users expect. A plain cast made [0, 1] floats a black video; floats
    outside [0, 1] (a 0..255 float clip, a [-1, 1] model output) or NaN are refused with the range found, not guessed."""
    pixels = np.asarray(pixels)
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == bool:
        return pixels.astype(np.uint8) * np.uint8(255)
    if np.issubdtype(pixels.dtype, np.integer):
        lo, hi = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(f"{param}: integer pixels must lie in [0, 255], got [{lo}, {hi}]")
        return pixels.astype(np.uint8)
    if not np.issubdtype(pixels.dtype, np.floating):
        raise TypeError(f"{param}: pixels of dtype {pixels.dtype}; pass uint8 [0, 255] or float [0, 1] pixels")
    if not np.all(np.isfinite(pixels)):
        raise ValueError(f"{param}: float pixels contain NaN or inf; pass float pixels in [0, 1] or uint8")
    lo, hi = (float(pixels.min()), float(pixels.max())) if pixels.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{param}: float pixels must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; scale them to [0, 1] "
                         "(e.g. (x + 1) / 2 for [-1, 1]) or pass uint8 for 0..255 pixels")
    return (pixels.astype(np.float32) * 255.0 + 0.5).astype(np.uint8)


def check_mp4_path(path: str | os.PathLike) -> None:
    """Every video worldpolicy writes is an H.264 MP4 (`VideoFileWriter`): under another name (`anim.gif`, no suffix)
    viewers, and `read_video`, which goes by the suffix, could not open it. Refused before anything is drawn."""
    if Path(path).suffix.lower() != ".mp4":
        raise ValueError(f"path={os.fspath(path)!r}: the file written is an H.264 MP4; accepted: a name ending in .mp4")


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float,
                comment: str | None = None) -> Path:
    """Encode RGB frames (uint8, or float in [0, 1]: `to_uint8`) to an H.264 MP4, atomically. Odd sizes are padded to
    even (edge pixels). `frames` may be a generator: frames are encoded as they come, so a long clip never sits in
    memory whole. `comment`: the file's comment tag (`video_comment`; the model's own frames record their canvas
    there: `processing.observations.canvas_comment`)."""
    if isinstance(frames, (str, os.PathLike)) or not isinstance(path, (str, os.PathLike)):  # swapped: read the name
        raise TypeError(f"write_video(path, frames, fps): path={type(path).__name__}, frames={type(frames).__name__}; "
                        "the path comes first, then the uint8 frames [T, H, W, 3]")
    check_mp4_path(path)
    check_fps(fps, "write_video")
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError("write_video: no frames given")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] != 3:
        raise ValueError(f"write_video: frames must be [H, W, 3], got {first.shape}")
    h, w = first.shape[:2]
    writer = VideoFileWriter(Path(path), fps, h + h % 2, w + w % 2, comment=comment)
    try:
        for k, frame in enumerate(itertools.chain([first], iterator)):
            frame = np.asarray(frame)
            if frame.shape != first.shape:
                raise ValueError(f"write_video: all frames must share one [H, W, 3] shape ({first.shape}), got "
                                 f"{frame.shape}")
            frame = to_uint8(frame, f"write_video: frame {k}")[None]
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            writer.append(frame)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return Path(path)


def encode_mp4(frames: np.ndarray | Iterable[np.ndarray], fps: float) -> bytes:
    """`frames` as `write_video` writes them (H.264 MP4), as bytes: a clip to embed (`results.VideoPlayer`), not to
    keep. Written through a temporary folder, removed after: the writer is FFmpeg's, which writes files."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="worldpolicy-mp4-") as folder:
        return write_video(Path(folder) / "clip.mp4", frames, fps).read_bytes()
