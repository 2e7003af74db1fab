"""Videos for people: an action chunk animated with a playhead beside the imagined clip, and side-by-side clips.

The plot is rendered once; each frame copies it and paints the playhead, so a 33-frame clip costs one matplotlib draw.
All mp4 I/O goes through `worldpolicy.processing.video`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..processing.video import check_mp4_path, to_uint8, write_video
from .plots import ClipRows, RolloutChunks, _check_actions, _check_fps, action_timeseries_figure

__all__ = [
    "animate_actions",
    "animation_frames",
    "caption_above",
    "figure_to_array",
    "label_regions",
    "labelled_row",
    "side_by_side_frames",
    "write_side_by_side",
]

PLAYHEAD_RGB = (20, 20, 20)
LABEL_HEIGHT = 22  # the caption strip above a clip of up to LABEL_SCALE_FROM pixels; taller clips get a taller one
LABEL_SCALE_FROM = 528
MAX_LABEL_HEIGHT = 48
GAP = 4  # white pixels between clips placed side by side
# between a caption's parts (the sim's episode videos' too): two spaces drew as one at a small clip's font size,
# "imagined frame 4(ended)"
SEP = " · "
# The largest animation frame: H.264 level 5.1's 4096x2304, what hardware decoders and the Windows and macOS players
# take. A 57-column chunk beside a 16:9 clip was 6050x2276 (level 6), a file a browser could not play everywhere.
MAX_FRAME_SIZE = (4096, 2304)  # width, height
# The most frames an animation draws: past it, every k-th frame is drawn, at 1/k of the rate, so the clip keeps its
# length in seconds. A 1792x826 frame took about 0.1 s to draw and encode on one busy core (300 frames: 30 s, 11 MB):
# a whole-clip inverse dynamics run of thousands of frames would take minutes and hundreds of MB for a playhead; 600
# is 40 s at 15 fps, drawn whole.
MAX_ANIMATION_FRAMES = 600


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


def _fit(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The frame scaled down, keeping its aspect, to fit within `size` (width, height); as it is when it fits."""
    from PIL import Image

    h, w = frame.shape[:2]
    scale = min(1.0, size[0] / w, size[1] / h)
    if scale == 1.0:
        return frame
    width, height = min(size[0], round(w * scale)), min(size[1], round(h * scale))
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.LANCZOS))


def label_height(frame_height: int) -> int:
    """The caption strip's height for a clip `frame_height` pixels tall: LABEL_HEIGHT, growing with taller clips (a
    fixed strip was a 10-pixel line on an 800-pixel animation) up to MAX_LABEL_HEIGHT."""
    return min(MAX_LABEL_HEIGHT, max(LABEL_HEIGHT, round(LABEL_HEIGHT * frame_height / LABEL_SCALE_FROM)))


def _font_within(text: str, size: int, room: float, smallest: int) -> Any:
    """PIL's default font at `size`, smaller (down to `smallest`) until `text` is no wider than `room` pixels: a
    caption strip's (`caption_above`) and a region label's (`label_regions`)."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=size)
    while size > smallest and font.getlength(text) > room:
        size -= 1
        font = ImageFont.load_default(size=size)
    return font


def caption_above(frame: np.ndarray, text: str, widest: str | None = None, strip_height: int | None = None,
                  background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Put a caption strip with `text` above the frame (white unless `background` says: a sim episode's outcome
    is tinted). A caption wider than the frame is drawn smaller, and if
    it still does not fit the frame is widened with white on both sides (a cut caption hid which clip was which);
    both are sized for `widest` (default `text`), so every frame of a clip captioned with it has one geometry.
    `strip_height` defaults to `label_height` of the frame."""
    from PIL import Image, ImageDraw

    strip_h = strip_height or label_height(frame.shape[0])
    font = _font_within(widest or text, round(strip_h * 0.6), frame.shape[1] - 12, smallest=9)
    pad = max(0, int(np.ceil(font.getlength(widest or text))) + 12 - frame.shape[1])
    if pad:
        frame = np.pad(frame, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)), constant_values=255)
    strip = Image.new("RGB", (frame.shape[1], strip_h), background)
    ImageDraw.Draw(strip).text((6, strip_h / 2), text, fill=(0, 0, 0), font=font, anchor="lm")
    return np.concatenate([np.asarray(strip), frame], axis=0)


def label_regions(image: np.ndarray, regions: Mapping[str, Sequence[float]], height: int | None = None) -> np.ndarray:
    """`image` [H, W, 3] (resized to `height` first, as `labelled_row` would: the text keeps its size) with each of
    `regions`' names in a small white box at its region's top-left corner, the region given as fractions (top, left,
    bottom, right) of the image (`processing.observations.composite_regions`): a frame of the model's composed cameras
    said which part was which camera nowhere. Drawn over the image (its size kept); the text is a little under half a
    caption strip's (`label_height`), smaller where a region is too narrow for it."""
    from PIL import Image, ImageDraw

    image = _resize(np.ascontiguousarray(image, dtype=np.uint8), height or image.shape[0])
    height, width = image.shape[:2]
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    size = max(7, round(label_height(height) * 0.45))
    for name, (top, left, _, right) in regions.items():
        font = _font_within(name, size, (right - left) * width - 8, smallest=7)
        x, y = round(left * width), round(top * height)
        box = draw.textbbox((x + 2, y + 1), name, font=font)
        draw.rectangle((x, y, box[2] + 2, box[3] + 1), fill=(255, 255, 255))
        draw.text((x + 2, y + 1), name, fill=(0, 0, 0), font=font)
    return np.asarray(im)


def labelled_row(
    images: Sequence[np.ndarray],
    labels: Sequence[str],
    height: int | None = None,
    gap: int = GAP,
    widest: Sequence[str] | None = None,
) -> np.ndarray:
    """Images [H, W, 3] resized to one height (default: the smallest), each captioned, left to right with `gap` white
    pixels between: one frame of a side-by-side clip, so a viewer sees which panel is real and which imagined.
    `widest[i]`: the longest caption panel i shows in the clip (its frames keep one size)."""
    height = int(height or min(image.shape[0] for image in images))
    row = []
    for i, (image, label) in enumerate(zip(images, labels)):
        row.append(caption_above(_resize(image, height), label, widest[i] if widest is not None else None))
        row.append(np.full((row[-1].shape[0], gap, 3), 255, np.uint8))
    return np.concatenate(row[:-1], axis=1)


def animation_frames(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    gripper_column: str | Sequence[str] | None = None,
    video: np.ndarray | Iterator[np.ndarray] | None = None,
    video_fps: float | None = None,
    title: str = "",
    video_label: str = "imagined video",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
    frame_numbers: Sequence[int] | None = None,
    video_regions: Mapping[str, Sequence[float]] | None = None,
) -> tuple[np.ndarray, float]:
    """Frames [N, H, W, 3] and their rate: the time-series plot with a moving playhead, the video (if any) at left.

    With a video, there is one output frame per video frame, frame k at time k / video_fps (the video's frame 0 is
    the observation, i.e. t = 0), and a video that ends before the chunk holds its last frame (captioned "ended")
    until the playhead reaches the last action; without one, one frame per action step at `fps`. `video` is frames
    [T, H, W, 3] (uint8, or float in [0, 1]), or an iterator of [H, W, 3] frames (`processing.video.iter_video`)
    drawn as they come.
    `gripper_column`: the gripper's column, or one per arm (see `action_timeseries_figure`); `real_rows`: the steps
    from it on are hatched there too (an inverse dynamics result of a short clip, `plots.real_rows_of`), and the
    video's frames after the one that row leads into are captioned as copies of it (the input padded past its end);
    `clip` (`plots.run_rows_of`): the clip frames an inverse dynamics result's rows explain, on the plot's top axis,
    or a whole trajectory's chunk starts (`plots.RolloutChunks`), dashed on the plot, each video frame captioned with
    the chunk that imagined it (`RolloutChunks.frame_chunk` of the rollout frame at its time: "chunk 1", the
    observation, and at a chunk's last frame that the next starts from it);
    `frame_numbers`: the clip frame each video frame is (`clip.frames_used` for the run's own re-decoded clip, whose
    frame k is the clip's frame `frames_used[k]`), captioned "clip frame N" instead of its index;
    `video_regions`: the cameras composed in the video's frames (name -> region, `label_regions`), each labelled.
    An animation of more than MAX_ANIMATION_FRAMES frames draws every k-th (the fewest that keep it within), at
    1/k of the rate, each captioned with its own frame number and time.
    """
    frames, rate = _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label,
                              real_rows, clip, frame_numbers, video_regions)
    return np.stack(list(frames)), rate


def _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label, real_rows,
               clip=None, frame_numbers=None, video_regions=None):
    """`animation_frames` as (a generator of frames, rate): checked and drawn up front, frames made one at a time."""
    a = _check_actions(actions, columns, units)
    fps = _check_fps(fps)
    fig = action_timeseries_figure(a, columns, units, fps, gripper_column, title, real_rows, clip)
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

    t_end = (a.shape[0] - 1) / fps
    known = 0  # a video array's length (a streamed clip's is not known before it is read)
    if video is not None:
        if not isinstance(video, Iterator):
            video = _check_video(video, "video")
            known = len(video)
        video = _streamed(video) if isinstance(video, Iterator) else iter(video)
        rate = _check_fps(video_fps if video_fps is not None else fps, "video_fps" if video_fps is not None else "fps")
    else:
        rate = fps
    # the frames the animation would have, the chunk's span at `rate` or the clip's: every k-th drawn past
    # MAX_ANIMATION_FRAMES
    count = max(int(np.floor(t_end * rate + 1e-9)) + 1, known)
    every = int(np.ceil(count / MAX_ANIMATION_FRAMES))
    strip = label_height(height)
    # an inverse dynamics input padded past the clip's end: its frames after the one row `real_rows` leads into
    last_real = None if real_rows is None else int(np.floor(real_rows * rate / fps + 1e-9))

    def number(k: int) -> str:
        if frame_numbers is not None and k < len(frame_numbers):
            return f"clip frame {frame_numbers[k]}"
        return f"frame {k}"

    shown = "clip frame 00000" if frame_numbers is not None else "frame 00000"
    longest = "ended" if last_real is None else f"copy of {shown}"
    chunks = clip if isinstance(clip, RolloutChunks) else None
    if chunks is not None:  # its longest: the observation's, or a chunk's last frame's (the last but one chunk)
        longest = max([longest, *(chunks.frame_chunk(f) for f in (0, *chunks.window_starts()[-1:]))], key=len)
    widest = SEP.join((video_label, "t = 0000.00 s", shown, longest))  # one caption size for every frame

    def chunk_of(t: float) -> str:
        """The chunk that imagined the rollout frame at time `t`, for a whole trajectory's animation."""
        frame = min(round(t * fps), a.shape[0])
        return "" if chunks is None else f"{SEP}{chunks.frame_chunk(frame)}"

    def frames():
        if video is None:
            for k in range(0, a.shape[0], every):
                yield _frame(k / rate, None, "")
            return
        k = -1
        for k, image in enumerate(video):
            if k % every:
                continue
            copy = last_real is not None and k > last_real
            yield _frame(k / rate, image, f"{number(k)}{SEP}copy of {number(last_real)}" if copy
                         else number(k) + chunk_of(k / rate))
        last = k
        k += every - k % every if k % every else every  # the next frame drawn
        while k / rate <= t_end + 1e-9:  # a clip shorter than the chunk: the playhead still runs to its end
            yield _frame(k / rate, image, f"{number(last)}{SEP}ended")
            k += every

    def _frame(t: float, image: np.ndarray | None, shown: str) -> np.ndarray:
        frame = plot.copy()
        tt = min(t, t_end)
        for x0, px_per_s, top, bottom, left, right in geometry:
            x = round(x0 + tt * px_per_s)
            if left <= x < right:
                frame[top:bottom, max(x - 1, 0) : x + 1] = PLAYHEAD_RGB
        if image is not None:  # each video frame resized as it is drawn
            caption = SEP.join((video_label, f"t = {t:.2f} s", shown))
            panel_height = _panel_height(image, height - strip, plot.shape[1])
            shown_image = (_resize(image, panel_height) if not video_regions
                           else label_regions(image, video_regions, panel_height))
            panel = caption_above(shown_image, caption, widest, strip)
            if panel.shape[0] < height:  # a clip kept narrower than the plot is tall: white below it
                panel = np.pad(panel, ((0, height - panel.shape[0]), (0, 0), (0, 0)), constant_values=255)
            frame = np.concatenate([panel, frame], axis=1)
        return _fit(frame, MAX_FRAME_SIZE)

    return frames(), rate / every


def _panel_height(image: np.ndarray, tallest: int, plot_width: int) -> int:
    """The height a video frame is drawn at beside the plot: the plot's (`tallest`), unless the clip would then be
    wider than the room MAX_FRAME_SIZE leaves beside the plot. A 16:9 clip as tall as a 57-column chunk's plot was
    4000 pixels wide, and the frame, scaled down whole to fit, shrank the plot's 10-pixel labels past reading."""
    h, w = image.shape[:2]
    room = MAX_FRAME_SIZE[0] - plot_width
    return max(16, min(tallest, room * h // w))


def animate_actions(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    path: str | Path,
    gripper_column: str | Sequence[str] | None = None,
    video: np.ndarray | Iterator[np.ndarray] | None = None,
    video_fps: float | None = None,
    title: str = "",
    video_label: str = "imagined video",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
    frame_numbers: Sequence[int] | None = None,
    video_regions: Mapping[str, Sequence[float]] | None = None,
) -> Path:
    """Write `animation_frames` as an H.264 mp4 (atomically), encoding each frame as it is drawn (a streamed `video`
    is decoded as it is drawn too: neither clip is held whole)."""
    check_mp4_path(path)  # before the chunk's plot is drawn, which `write_video` would check only after
    frames, rate = _animation(actions, columns, units, fps, gripper_column, video, video_fps, title, video_label,
                              real_rows, clip, frame_numbers, video_regions)
    return write_video(path, frames, rate)


def side_by_side_frames(
    videos: Sequence[np.ndarray], labels: Sequence[str], height: int | None = None, gap: int = GAP
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
    widest = [f"{label}{SEP}frame {c.shape[0] - 1}{f'{SEP}ended' if c.shape[0] < n else ''}"
              for label, c in zip(labels, clips)]
    frames = []
    for k in range(n):
        shown = [min(k, c.shape[0] - 1) for c in clips]
        captions = [f"{label}{SEP}frame {i}{'' if k < c.shape[0] else f'{SEP}ended'}"
                    for label, c, i in zip(labels, clips, shown)]
        frames.append(labelled_row([c[i] for c, i in zip(clips, shown)], captions, height, gap, widest))
    return np.stack(frames)


def write_side_by_side(
    videos: Sequence[np.ndarray], labels: Sequence[str], fps: float, path: str | Path, height: int | None = None
) -> Path:
    """E.g. simulated vs imagined rollout, written as one mp4."""
    check_mp4_path(path)  # before every frame is composed
    return write_video(path, side_by_side_frames(videos, labels, height), _check_fps(fps))
