"""A folder of raw video clips (teleop recordings, downloaded videos: no actions, no states) → a LeRobot v3 dataset
that `dataset label` labels (`dataset from-videos`).

    from worldpolicy.data.from_videos import videos_to_dataset
    videos_to_dataset(["clips/"], "data/unlabelled", task="pick up the red cube", fps=15).dataset.num_episodes

One episode per clip, in the order given (a folder's video files sorted by name), its frames in the one video
`observation.image` (`VIDEO_FEATURE`: a pre-composed view, which `dataset label` and training take for any embodiment,
`data.observations.camera_sources`). A dataset has one rate and one frame size per video, so each clip is read at
`fps`: the frame nearest each of its timestamps 0, 1/fps, 2/fps, ... by the frames' own presentation timestamps (a
variable-frame-rate clip is read as it plays, not as if its frames were evenly spaced; ties to the later frame, as
`processing.clip.resampled_frames` picks them), while the timestamp is nearer the last frame than the one after it
would be; and brought to one size (`FITS`). A clip is decoded twice, holding one frame at a time: once for its
frames' timestamps (which also finds a damaged clip before any of it is written), once to write the chosen frames.
A clip stored turned or mirrored (a display matrix: a phone's portrait clip stored landscape, a front camera's
mirrored one) is turned upright and mirrored back first, as players show it. A clip that cannot be read, or that gives
fewer than 2 frames at `fps` (no transition to label), is skipped with a warning; the others are written. Audio tracks
are not read.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment, get_embodiment
from ..errors import brief_list, is_integer
from ..extras import run_record
from ..fileio import dataset_lock
from ..processing.observations import VIDEO_SUFFIXES, compose_views, fixed_places
from ..processing.video import CODECS, RGBConverter, ffmpeg_reason, stream_fps
from .checks import check_out, check_rate
from .observations import PRECOMPOSED

if TYPE_CHECKING:  # pyarrow (the `train` extra) loads when a dataset is written: `dataset --help` lists FITS without it
    from .lerobot import LeRobotDataset, LeRobotDatasetWriter

__all__ = ["FITS", "FROM_VIDEOS_SOURCE", "TASK_SOURCES", "VIDEO_FEATURE", "FromVideosResult", "clip_task",
           "letterbox", "list_clips", "videos_to_dataset"]

logger = logging.getLogger(__name__)

FROM_VIDEOS_SOURCE = "worldpolicy dataset from-videos"  # `provenance["source"]`: what --overwrite may replace
VIDEO_FEATURE = PRECOMPOSED.replace("/", ".")  # observation.image: a pre-composed view, as label and training read it
# how a clip is brought to the dataset's frame size: "pad" scales it to fit and pads the rest black (its proportions
# kept, the whole picture shown), "crop" scales it to cover and cuts the overhang evenly (proportions kept, edges
# lost), "stretch" scales each side on its own (the picture distorted where the shapes differ)
FITS = ("pad", "crop", "stretch")
# where each episode's task comes from without `task`: "filename" its file name (`clip_task`), "sidecar" the text
# file beside it of the same name, CLIP.txt for CLIP.mp4
TASK_SOURCES = ("filename", "sidecar")
SIDECAR_SUFFIX = ".txt"
MIN_FRAMES = 2  # an episode to label holds a transition at least
TIME_TOLERANCE = 1e-9  # seconds: timestamps nearer than this are one time (far under any clock's tick)


@dataclass(frozen=True)
class FromVideosResult:
    """The dataset `videos_to_dataset` wrote: episode i is `clips[i]` read at `fps` into frames of `size` (height,
    width); `skipped` the clips left out, each with why."""

    dataset: LeRobotDataset
    clips: tuple[Path, ...]
    skipped: dict[Path, str]
    fps: float
    size: tuple[int, int]
    wall_s: float


def videos_to_dataset(
    clips: Sequence[str | Path],
    out: str | Path,
    *,
    task: str | None = None,
    task_from: str | None = None,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    fit: str = "pad",
    embodiment: str | Path | Embodiment | None = None,
    video_codec: str = "libx264rgb",
    overwrite: bool = False,
    progress: bool = False,
    command: str | None = None,
) -> FromVideosResult:
    """Write each video clip of `clips` (files, and folders for their video files, `list_clips`) as an episode of a
    new LeRobot v3 dataset at `out`, its frames the video `VIDEO_FEATURE`.

    `task`: every episode's instruction; else `task_from` (one of `TASK_SOURCES`) reads each clip's own. `fps`: the
    dataset's rate (default: `embodiment`'s); `size`: (height, width) of every frame (default: the frame size
    `embodiment` composes its cameras into where that is fixed, DROID's, else the first readable clip's), each clip
    brought to it as `fit` (one of `FITS`) says. `embodiment` sets these defaults and the dataset's robot_type.
    `video_codec` as the writer takes it (default lossless). `out` as `dataset select` takes it (new or empty, or with
    `overwrite` an earlier from-videos dataset), appearing only when complete, and only with an episode in it.
    Everything given is checked, and every clip's task found, before a frame is decoded.
    meta/worldpolicy_provenance.json names the clips, the skipped ones and the settings; `command` is the command line
    that made it (`extras.run_record`; None from Python)."""
    for name, value, accepted in (("fit", fit, FITS), ("task_from", task_from, (*TASK_SOURCES, None))):
        if value not in accepted:
            raise ValueError(f"{name}={value!r}; accepted: {', '.join(map(repr, accepted))}")
    target = None if embodiment is None else get_embodiment(embodiment)
    rate = _rate(fps, target)
    if size is not None:
        size = _checked_size(size)
    elif target is not None:
        size = expected_size(target)
    if video_codec not in CODECS:
        raise ValueError(f"video_codec={video_codec!r}; accepted: {', '.join(CODECS)}")
    if size is not None:
        CODECS[video_codec].check_frame_size(*size)  # says the size and the codec
    found = list_clips(clips)
    tasks = _tasks(found, task, task_from)
    out = check_out([Path(c) for c in clips], out, overwrite, [FROM_VIDEOS_SOURCE], "`dataset from-videos`", "read",
                    "clip")
    started = time.perf_counter()
    provenance = {"source": FROM_VIDEOS_SOURCE, "clips": [], "skipped": {}, "fps": rate, "fit": fit,
                  "task": task, "task_from": task_from, "embodiment": None if target is None else target.key,
                  **run_record(command)}
    with dataset_lock(out, "out", "`dataset from-videos`"):
        dataset, written, skipped, size = _write(found, tasks, out, rate, size, fit, target, video_codec, overwrite,
                                                 provenance, progress)
    wall_s = time.perf_counter() - started
    logger.info("wrote %d of %d clips in %.1f s into %s", len(written), len(found), wall_s, dataset.root)
    return FromVideosResult(dataset, tuple(written), skipped, rate, size, wall_s)


def list_clips(clips: Sequence[str | Path]) -> list[Path]:
    """The video files `clips` names, in order: a file as it is (whatever its suffix), a folder's files with a video
    suffix (`VIDEO_SUFFIXES`; not its subfolders') sorted by name; each once. Refused naming the one not there, a
    folder without video files, or none given."""
    if isinstance(clips, (str, os.PathLike)) or not clips:
        raise ValueError(f"clips={clips!r}; accepted: a list of video files and folders of them")
    found: dict[Path, None] = {}
    for given in clips:
        path = Path(given).expanduser()
        if path.is_dir():
            held = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not held:
                raise ValueError(f"clips: {str(given)!r} holds no video files (accepted: "
                                 f"{', '.join(sorted(VIDEO_SUFFIXES))}; subfolders are not searched)")
            found.update(dict.fromkeys(held))
        elif path.is_file():
            found[path] = None
        else:
            raise FileNotFoundError(f"clips: {str(given)!r} does not exist; give video files or folders of them")
    return list(found)


def clip_task(path: Path, task_from: str) -> str | None:
    """The task a clip's own name or sidecar says (`task_from`, one of `TASK_SOURCES`), None where it says none:
    "filename": the file name without its suffix, `_` and `-` as spaces and a trailing take number left off
    (`pick_up_the_cube_003.mp4`: "pick up the cube"); "sidecar": the text of CLIP.txt beside CLIP.mp4, stripped."""
    if task_from == "filename":
        text = re.sub(r"[\s_-]+", " ", path.stem)
        return re.sub(r"(?:\s+\d+)+$", "", text).strip() or None
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return None
    return sidecar.read_text(encoding="utf-8", errors="replace").strip() or None


def expected_size(target: Embodiment) -> tuple[int, int] | None:
    """The frame size `target` composes its cameras into whatever size they come at (DROID's composite: its places
    are fixed, `processing.observations.fixed_places`), None for one whose frames keep their own size."""
    places = fixed_places(target.camera_keys, target.composite)
    if places is None:
        return None
    blank = {key: np.zeros((1, h, w, 3), np.float32) for key, (h, w) in places.items()}
    height, width = compose_views(blank, target.camera_keys, target.composite).shape[1:3]
    return int(height), int(width)


def letterbox(height: int, width: int, size: tuple[int, int], fit: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a frame of `height` x `width` goes in a frame of `size` as `fit` (one of `FITS`) brings it there: the
    (height, width) it is scaled to, and the (top, left) it is placed at (negative for "crop": that much cut off)."""
    out_h, out_w = size
    if fit == "stretch":
        return (out_h, out_w), (0, 0)
    scale = (min if fit == "pad" else max)(out_h / height, out_w / width)
    scaled = (max(1, round(height * scale)), max(1, round(width * scale)))
    return scaled, ((out_h - scaled[0]) // 2, (out_w - scaled[1]) // 2)


def chosen_frames(times: Sequence[float], last_duration: float, fps: float) -> list[int]:
    """The frames (indices into `times`, presentation timestamps in seconds, increasing) nearest the timestamps
    times[0] + k / fps, ties to the later frame, for each k whose timestamp is nearer the last frame than the one
    after it would be (it shows for `last_duration`). Times within `TIME_TOLERANCE` are the same time: a timestamp
    halfway between two frames (a clip read at twice its rate) goes to the later one whichever way rounding in
    floating point leans."""
    start, chosen = times[0], []
    end = times[-1] - start + last_duration / 2
    k = 0
    while (at := k / fps) < end - TIME_TOLERANCE:
        later = bisect.bisect_right(times, start + at)  # the first frame after the timestamp
        if later == len(times) or (later > 0 and start + at - times[later - 1]
                                   < times[later] - start - at - TIME_TOLERANCE):
            later -= 1
        chosen.append(later)
        k += 1
    return chosen


def _rate(fps: float | None, target: Embodiment | None) -> float:
    if fps is None:
        if target is None:
            raise ValueError("fps: give the dataset's frame rate, or an embodiment whose rate it takes (fps=None "
                             "takes the embodiment's)")
        return float(target.fps)
    return check_rate(fps)


def _checked_size(size: Any) -> tuple[int, int]:
    try:
        height, width = size
        ok = all(is_integer(v) and v >= 1 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size={size!r}; accepted: (height, width) in pixels, each >= 1, e.g. (480, 640)")
    return int(height), int(width)


def _tasks(clips: list[Path], task: str | None, task_from: str | None) -> list[str]:
    """Each clip's task, every one found before anything is decoded."""
    if task is not None:
        if task_from is not None:
            raise ValueError(f"task={task!r} and task_from={task_from!r}: give one of them, every episode's task or "
                             "where each clip's is read from")
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task={task!r}; accepted: the instruction the clips carry out, as text")
        return [task.strip()] * len(clips)
    if task_from is None:
        raise ValueError("task: give every episode's task (task=...), or task_from= where each clip's is read from "
                         f"({', '.join(TASK_SOURCES)}); an episode needs the instruction training conditions on")
    tasks = [clip_task(clip, task_from) for clip in clips]
    lacking = [str(clip) for clip, text in zip(clips, tasks) if text is None]
    if lacking:
        why = ("no sidecar file " + brief_list([str(Path(c).with_suffix(SIDECAR_SUFFIX)) for c in lacking])
               + " (or an empty one)" if task_from == "sidecar" else "a name without words")
        raise ValueError(f"task_from={task_from!r}: clip {brief_list(lacking)} has no task ({why}); give it one, "
                         "leave the clip out, or give task=")
    return tasks  # type: ignore[return-value]


@dataclass(frozen=True)
class _Clip:
    """What the first pass over a clip found: its decoded frames' presentation timestamps and its displayed size (its
    display matrix turned: a phone's portrait clip is stored landscape, `_orientation`)."""

    times: list[float]
    last_duration: float
    height: int
    width: int


def _opened(path: Path) -> Any:
    import av

    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise ValueError("it has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container


def _scan(path: Path) -> _Clip:
    """The first pass over a clip: every frame decoded (none kept) for its timestamp. ValueError saying why the clip
    cannot be used."""
    import av

    times: list[float] = []
    try:
        with _opened(path) as container:
            stream = container.streams.video[0]
            rate = stream_fps(stream)
            duration = 0.0
            for frame in container.decode(stream):
                if frame.time is None:
                    raise ValueError(f"its frame {len(times)} has no presentation timestamp")
                if times and frame.time <= times[-1]:
                    raise ValueError(f"its frames' timestamps do not increase (frame {len(times)} at "
                                     f"{frame.time:.4f} s, the one before at {times[-1]:.4f} s)")
                times.append(float(frame.time))
                height, width, (turns, _) = frame.height, frame.width, _orientation(frame)
                duration = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else 0.0
    except av.error.FFmpegError as exc:
        raise ValueError(f"it could not be decoded: {ffmpeg_reason(exc)}") from None
    if not times:
        raise ValueError("it holds no frames")
    if not duration:  # the container did not say: as long as the frames before it, else as the header's rate says
        duration = float(np.median(np.diff(times))) if len(times) > 1 else (1 / rate if rate else 0.0)
    return _Clip(times, duration, *((width, height) if turns % 2 else (height, width)))


def _orientation(frame: Any) -> tuple[int, bool]:
    """How `frame` is shown, as ffmpeg's player shows it: mirrored top to bottom where its display matrix mirrors
    (a negative determinant: a front camera's clip, `stream.set_display_rotation(..., hflip=True)`), then turned the
    quarter turns counterclockwise given (the matrix's rotation, PyAV's `VideoFrame.rotation`, counterclockwise
    degrees, to the nearest quarter; a mirroring matrix's rotation is the one that goes with the top-to-bottom
    mirror). No display matrix (or an older PyAV without `rotation`): (0, False)."""
    from av.sidedata.sidedata import Type

    turns = round(float(getattr(frame, "rotation", 0) or 0) / 90) % 4
    matrix = frame.side_data.get(Type.DISPLAYMATRIX)
    if matrix is None:
        return turns, False
    a, b, _, c, d = np.frombuffer(bytes(matrix), np.int32)[:5].astype(np.int64)  # [a b u; c d v; x y w], 16.16
    return turns, bool(a * d - b * c < 0)


def _frames(path: Path, chosen: list[int], size: tuple[int, int], fit: str) -> Iterator[np.ndarray]:
    """The second pass: blocks of up to `BLOCK_FRAMES` frames [n, H, W, 3] uint8 of `size`, frame i of the clip as
    often as `chosen` names it (its indices ascending), each scaled as stored and then shown upright
    (`_orientation`)."""
    from .edit import BLOCK_FRAMES

    counts = np.bincount(chosen, minlength=chosen[-1] + 1)
    rgb, block = RGBConverter(), []
    with _opened(path) as container:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i >= len(counts):
                break
            if not counts[i]:
                continue
            turns, mirrored = _orientation(frame)
            shown = (frame.width, frame.height) if turns % 2 else (frame.height, frame.width)
            (height, width), (top, left) = letterbox(*shown, size, fit)
            stored = (width, height) if turns % 2 else (height, width)  # scaled as stored, then turned
            pixels = rgb(frame, *stored)
            pixels = np.rot90(pixels[::-1] if mirrored else pixels, turns)
            canvas = np.zeros((*size, 3), np.uint8)
            rows, cols = slice(max(top, 0), max(top, 0) + min(height, size[0])), \
                slice(max(left, 0), max(left, 0) + min(width, size[1]))
            canvas[rows, cols] = pixels[max(-top, 0):max(-top, 0) + size[0], max(-left, 0):max(-left, 0) + size[1]]
            block += [canvas] * int(counts[i])
            while len(block) >= BLOCK_FRAMES:
                yield np.stack(block[:BLOCK_FRAMES])
                block = block[BLOCK_FRAMES:]
    if block:
        yield np.stack(block)


def _write(clips: list[Path], tasks: list[str], out: Path, fps: float, size: tuple[int, int] | None, fit: str,
           target: Embodiment | None, codec: str, overwrite: bool, provenance: dict[str, Any],
           progress: bool) -> tuple[LeRobotDataset, list[Path], dict[Path, str], tuple[int, int]]:
    """Each usable clip as an episode (staged, published when complete: an error or Ctrl-C leaves `out` as it was;
    the writer is made at the first usable clip, whose size is the default). Nothing is published without an
    episode. The bar counts the frames written, its total growing by each clip's once its timestamps are read (a
    single long clip moves, not one clip's step at its end)."""
    from ..logcapture import progress_bar
    from .lerobot import LeRobotDatasetWriter

    writer: LeRobotDatasetWriter | None = None
    written: list[Path] = []
    skipped: dict[Path, str] = {}
    try:
        with progress_bar(total=0, unit="frame", disable=not progress) as bar:
            for n, (clip, task) in enumerate(zip(clips, tasks), 1):
                bar.set_description(f"clip {n}/{len(clips)}: reading timestamps")
                try:
                    scanned = _scan(clip)
                except ValueError as exc:
                    skipped[clip] = str(exc)
                    logger.warning("skipped clip %s: %s", clip, exc)
                    continue
                chosen = chosen_frames(scanned.times, scanned.last_duration, fps)
                if len(chosen) < MIN_FRAMES:
                    skipped[clip] = (f"it gives {len(chosen)} frame at {fps:g} fps ({len(scanned.times)} decoded); an "
                                     f"episode needs {MIN_FRAMES} at least")
                    logger.warning("skipped clip %s: %s", clip, skipped[clip])
                    continue
                bar.total += len(chosen)
                bar.set_description(f"clip {n}/{len(clips)}: writing frames")
                if writer is None:
                    size = size or (scanned.height, scanned.width)
                    features = {VIDEO_FEATURE: {"dtype": "video", "shape": [*size, 3],
                                                "names": ["height", "width", "channels"]}}
                    writer = LeRobotDatasetWriter(out, fps, features, None if target is None else target.name,
                                                  video_codec=codec, overwrite=overwrite, provenance=provenance)
                videos = writer.stream_videos(len(chosen))
                for block in _frames(clip, chosen, size, fit):
                    videos.append({VIDEO_FEATURE: block})
                    bar.update(len(block))
                writer.add_episode({}, videos, task)
                written.append(clip)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        reasons = "; ".join(f"{clip}: {why}" for clip, why in skipped.items())
        raise ValueError(f"clips: none could be written ({reasons}); nothing was written to {str(out)!r}")
    writer.provenance = {**provenance, "clips": [os.path.abspath(c) for c in written],
                         "skipped": {os.path.abspath(c): why for c, why in skipped.items()}, "size": list(size)}
    return writer.finalize(), written, skipped, size  # finalize aborts the writer where it fails
