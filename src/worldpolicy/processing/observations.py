"""Observations → the conditioning canvas the model sees.

Everything a user may hold (paths, PIL, numpy/torch or nested lists in HWC/CHW, uint8 or float in [0,1]/[-1,1],
frame lists, mp4 files, openpi-style dicts) becomes float32 frames in [0, 1] (floats a resize pushed a little past
their range are clipped: `FLOAT_PIXEL_SLACK`); `prepare_canvas` then applies the pipeline's exact resolution-bin,
downscale-only resize and pad rules (cosmos3-model.md §9) by calling diffusers' own video processor.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import check_resolution_tier
from ..errors import MissingKeyError, is_integer
from .video import check_frame_bounds, read_video, video_comment, video_fps

if TYPE_CHECKING:
    from ..embodiments import Embodiment

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}
DROID_COMPOSITE_SIZE = (540, 640)  # RoboLab: wrist 360x640 on top, two 180x320 exteriors side by side below
SINGLE_VIEW_KEYS = ("observation/image", "image")  # an observation dict's one image, not a named camera (`frame_keys`)


@dataclass(frozen=True)
class Canvas:
    """Where the content sits on the padded canvas and what latent grid it yields."""

    canvas_h: int
    canvas_w: int
    content_h: int
    content_w: int
    latent_h: int
    latent_w: int


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    return f"{type(x).__name__}" + (f" shape={tuple(shape)} dtype={dtype}" if shape is not None else "")


# How far float pixels may stray past their range by rounding and resampling alone: they are read as that range and
# clipped. A bicubic resize of a [0, 1] image under- and overshoots at hard edges (by up to 0.11 in torch, 0.07 in
# PIL); without the slack one pixel at -1e-6 made a whole [0, 1] image read as [-1, 1] (every pixel brightened,
# contrast halved) and one at 1 + 1e-6 was refused. The cost: a [-1, 1] image with no pixel darker than this below
# zero (none darker than 44 % grey) is read as [0, 1], as one with no negative pixel always was (the ranges overlap;
# camera images have dark pixels).
FLOAT_PIXEL_SLACK = 0.125


def _array_to_frames(arr: np.ndarray, param: str) -> np.ndarray:
    """numpy [H,W,C] / [C,H,W] / [T,H,W,C] / [T,C,H,W] (C in 1,3,4) → float32 [T,H,W,3] in [0,1]."""
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{param}: array dtype {arr.dtype} is not numeric; pass uint8 or float pixels")
    if np.iscomplexobj(arr):  # numpy would drop the imaginary parts with only a warning
        raise TypeError(f"{param}: array dtype {arr.dtype} is complex; pass uint8 or float pixels")
    given = arr.shape  # errors show the shape the caller passed, not the one padded to 4-D below
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"{param}: expected an image [H,W,C]/[C,H,W] or frames [T,H,W,C]/[T,C,H,W], got {given}")
    if arr.shape[-1] in (1, 3, 4):
        pass
    elif arr.shape[1] in (1, 3, 4):
        arr = np.moveaxis(arr, 1, -1)
    else:
        raise ValueError(f"{param}: cannot find a channel axis of size 1, 3 or 4 in shape {given}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.size == 0:
        raise ValueError(f"{param}: empty array of shape {given}; give at least one frame of at least "
                         f"{MIN_SIDE}x{MIN_SIDE} pixels")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == bool:  # a mask: False black, True white
        return arr.astype(np.float32)
    if arr.dtype == np.uint16:  # a deep camera's (12- or 16-bit) pixels: their scale is not in the array
        raise ValueError(f"{param}: uint16 pixels (in [{arr.min()}, {arr.max()}]) are a 12- or 16-bit camera's, whose "
                         "full scale the array does not say; read as 0..255 a dark frame came out 16-257x too bright "
                         "and a bright one was refused. Pass float [0, 1] pixels (x / 65535 for 16-bit, x / 4095 for "
                         "12-bit), uint8, or the image file itself (16-bit files are read)")
    if np.issubdtype(arr.dtype, np.integer):
        if arr.min() < 0 or arr.max() > 255:
            wide = np.iinfo(arr.dtype).max
            raise ValueError(f"{param}: integer pixels must lie in [0, 255], got {arr.dtype} in [{arr.min()}, "
                             f"{arr.max()}]; pass uint8 [0, 255] or float [0, 1] pixels (e.g. x / {wide} for a "
                             f"full-range {arr.dtype} image), or the image file itself (16-bit files are read)")
        return arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{param}: pixels contain NaN or inf")
    lo, hi = float(arr.min()), float(arr.max())
    if lo >= -FLOAT_PIXEL_SLACK and hi <= 1.0 + FLOAT_PIXEL_SLACK:
        return np.clip(arr, 0.0, 1.0)
    if lo >= -1.0 - FLOAT_PIXEL_SLACK and hi <= 1.0 + FLOAT_PIXEL_SLACK:
        return np.clip((arr + 1.0) * 0.5, 0.0, 1.0)
    raise ValueError(
        f"{param}: float pixels must lie in [0, 1] or [-1, 1], got [{lo:.4g}, {hi:.4g}] "
        "(pass uint8 for 0..255 images)"
    )


def _pil_to_frames(im: Any, param: str) -> np.ndarray:
    """One PIL frame → frames. 16-bit and float modes go through their values (PIL's RGB conversion clips them to
    white or black); palette, greyscale and alpha images through RGB."""
    if im.mode == "F":  # float pixels: [0, 1] or [-1, 1], checked like a float array
        return _array_to_frames(np.asarray(im), param)
    if im.mode.startswith("I"):  # 16-bit PNG/TIFF (PIL reads some as 32-bit "I"): 0..65535, or 0..255 if that fits
        values = np.asarray(im).astype(np.float32)
        full_scale = 255.0 if im.mode == "I" and values.max() <= 255 else 65535.0
        return _array_to_frames(values / full_scale, param)
    return _array_to_frames(np.asarray(im.convert("RGB")), param)


def pil_pixels(im: Any, param: str = "observation") -> np.ndarray:
    """One PIL frame as the pixels `load_frames` reads from it, without loss: uint8 RGB [H, W, 3] for 8-bit modes,
    float32 [0, 1] for 16-bit and float modes (whose RGB conversion clips them to black and white). What a client
    sends (`serving.client`) so that the server reads what the local Policy would."""
    if im.mode == "F" or im.mode.startswith("I"):
        return _pil_to_frames(im, param)[0]
    return np.asarray(im.convert("RGB"))


def image_pages(im: Any, max_frames: int | None = None, last: int | None = None) -> Iterator[Any]:
    """The pages of an open PIL image that are used, each as `im` seeked to it (valid until the next): every frame of
    an animated GIF/WebP/TIFF, the first `max_frames` or the `last` ones (`load_frames`), so a long animation is not
    converted whole; the first page alone when pages differ in size (TIFF thumbnails: not a clip)."""
    count = getattr(im, "n_frames", 1)
    sizes = set()
    for i in range(count):  # every page's size, none converted
        im.seek(i)
        sizes.add(im.size)
    for i in [0] if len(sizes) > 1 else range(count)[-last:] if last else range(count)[:max_frames]:
        im.seek(i)
        yield im


def clip_fps(source: Any) -> float | None:
    """The frame rate a clip file carries, None where it carries none: a video file's stream rate; an animated image's
    (GIF, APNG) from its pages' durations (PIL `info["duration"]`, ms), averaged since a GIF keeps them in 10 ms
    steps (15 fps is 60 or 70 ms a frame). None for a still image, a page without a duration (players substitute
    their own), an animated WebP (PIL reads its durations only by decoding every page), a folder of frames (file
    names carry no time) or frames in memory. A file that cannot be read is None too: its frames' reader says why."""
    if not isinstance(source, (str, Path)):
        return None
    path = Path(source)
    suffix = path.suffix.lower()
    if not path.is_file():
        return None
    if suffix in VIDEO_SUFFIXES:
        return video_fps(path) or None
    if suffix not in IMAGE_SUFFIXES:
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            durations = []
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                durations.append(im.info.get("duration") or 0)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if len(durations) < 2 or min(durations) <= 0:
        return None
    return 1000.0 * len(durations) / sum(durations)


def check_pixel_count(im: Any, path: Path, param: str) -> None:
    """An opened image's size from its header, before decoding: Pillow only warns between `MAX_IMAGE_PIXELS` and twice
    that, and a few bytes of PNG may declare that many (a decompression bomb); a camera frame is far smaller."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and im.width * im.height > Image.MAX_IMAGE_PIXELS:
        raise ValueError(f"{param}: image {str(path)!r} is {im.height}x{im.width} pixels; accepted: at most "
                         f"{Image.MAX_IMAGE_PIXELS} pixels (PIL.Image.MAX_IMAGE_PIXELS)")


def _read_image_file(path: Path, param: str, max_frames: int | None = None, last: int | None = None) -> np.ndarray:
    """An image file → frames (those of an animated GIF/WebP/TIFF that are used: `image_pages`); unreadable files are
    a clear error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            check_pixel_count(im, path, param)
            frames = [_pil_to_frames(page, param) for page in image_pages(im, max_frames, last)]
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as exc:  # SyntaxError: some
        # broken headers; DecompressionBombError: over twice MAX_IMAGE_PIXELS, raised by Image.open itself
        raise ValueError(f"{param}: cannot read image {str(path)!r}: {exc}") from None
    return np.concatenate(frames, axis=0)


def _natural_key(path: Path) -> list:
    """'frame_2.png' before 'frame_10.png': digit runs compare as numbers."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path, param: str) -> list[Path]:
    """A folder of frames: its image files in natural name order (frame_2 before frame_10), hidden files skipped."""
    frames = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                    key=_natural_key)
    if not frames:
        raise ValueError(f"{param}: folder {str(folder)!r} holds no image files ({sorted(IMAGE_SUFFIXES)})")
    return frames


MIN_SIDE = 16  # pixels: diffusers resizes frames to multiples of 16, so a smaller side would vanish


def load_frames(obs: Any, param: str = "observation", max_frames: int | None = None,
                last: int | None = None) -> np.ndarray:
    """Any supported image/video input → float32 frames [T, H, W, 3] in [0, 1]. Channels are taken in RGB order
    (nothing in the pixels tells an OpenCV/ROS BGR image apart; README says so).

    `max_frames` (the first ones) or `last` (the latest ones) bound what is read of a video file, an animated image, a
    folder or a list of frames, so a long clip is neither held whole nor converted to float: inverse dynamics reads
    chunk_size + 1 frames from the start, a policy or forward-dynamics observation only its current (last) frame.
    Arrays are already in memory and come back whole."""
    check_frame_bounds(max_frames, last)
    if isinstance(obs, (str, Path)):
        path = Path(obs)
        if path.is_dir():
            frames = image_files(path, param)
            return load_frames(frames[-last:] if last else frames[:max_frames], param)
        if not path.is_file():
            raise FileNotFoundError(f"{param}: file {str(path)!r} does not exist")
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            frames, _ = read_video(path, max_frames=max_frames, last=last)
            return _array_to_frames(frames, param)
        if suffix in IMAGE_SUFFIXES:
            return _read_image_file(path, param, max_frames, last)
        raise ValueError(
            f"{param}: unsupported file type {suffix!r}; accepted images {sorted(IMAGE_SUFFIXES)}, "
            f"videos {sorted(VIDEO_SUFFIXES)}"
        )
    if type(obs).__module__.startswith("PIL."):
        return _pil_to_frames(obs, param)
    if _is_array(obs):
        return _array_to_frames(_numpy(obs), param)
    if isinstance(obs, Sequence) and not isinstance(obs, (bytes, str)):
        if len(obs) == 0:
            raise ValueError(f"{param}: an empty {type(obs).__name__}; give at least one frame")
        if _nested_numbers(obs):
            return _array_to_frames(_nested_array(obs, param), param)
        if _same_frames(obs):  # one array: their pixel range ([0, 1] or [-1, 1]) is judged once, for the whole clip
            picked = obs[-last:] if last else obs[:max_frames]
            return _array_to_frames(np.stack([_numpy(frame) for frame in picked]), param)
        # items are read from the end for `last`, from the start otherwise, until the bound's frames are in (an item
        # is one frame, or several: a clip file)
        frames, held, wanted = [], 0, last or max_frames or float("inf")
        for i in reversed(range(len(obs))) if last else range(len(obs)):
            frames.append(load_frames(obs[i], f"{param}[{i}]"))
            held += len(frames[-1])
            if held >= wanted:
                break
        shapes = {f.shape[1:] for f in frames}
        if len(shapes) != 1:
            raise ValueError(f"{param}: all frames must share one size, got {sorted(shapes)}")
        return np.concatenate(frames[::-1], axis=0)[-last:] if last else np.concatenate(frames, axis=0)[:max_frames]
    raise TypeError(
        f"{param}: unsupported type {_describe(obs)}; accepted: image/video path, PIL image, numpy or torch array "
        "(HWC/CHW, uint8 or float; RGB order), nested lists of such pixels, a list of frames, or an openpi-style "
        "dict of camera keys"
    )


def last_frame_pixels(obs: Any, param: str = "observation") -> np.ndarray:
    """The last frame of any input `load_frames` reads, as uint8 RGB [H, W, 3]: what a record or a run's page keeps of
    a camera (a recording's frame, a run's observation PNG); a uint8 [H, W, 3] frame as it is."""
    if isinstance(obs, np.ndarray) and obs.dtype == np.uint8 and obs.ndim == 3 and obs.shape[-1] == 3:
        return obs
    return model_uint8(load_frames(obs, param, last=1)[-1])


def _is_array(obs: Any) -> bool:
    return isinstance(obs, np.ndarray) or type(obs).__module__.startswith("torch")


def _numpy(obs: Any) -> np.ndarray:
    """A numpy or torch array as numpy (torch floats as float32: numpy has no bfloat16)."""
    if isinstance(obs, np.ndarray):
        return obs
    return obs.detach().cpu().float().numpy() if obs.is_floating_point() else obs.cpu().numpy()


def _same_frames(obs: Sequence) -> bool:
    """Whether `obs` is a list of single frames ([H,W,C]/[C,H,W]) in memory, all of one shape and dtype: read one by
    one, each frame's float range was judged alone, so a bright frame of a [-1, 1] clip (no pixel below
    -`FLOAT_PIXEL_SLACK`) was read as [0, 1] and came out darker, with less contrast, than its neighbours."""
    if not all(_is_array(frame) and frame.ndim == 3 for frame in obs):
        return False
    return len({(str(frame.dtype), tuple(frame.shape)) for frame in obs}) == 1


def _nested_numbers(obs: Sequence) -> bool:
    """Whether `obs` is pixels as nested lists of numbers (`array.tolist()`, an image sent as JSON), not a list of
    frames: read item by item, its rows were taken for frames and its numbers refused as "unsupported type float"."""
    item: Any = obs
    while isinstance(item, (list, tuple)) and item:
        item = item[0]
    return isinstance(item, numbers.Real)


def _nested_array(obs: Sequence, param: str) -> np.ndarray:
    try:
        return np.asarray(obs)
    except ValueError:  # numpy refuses ragged nesting
        raise ValueError(f"{param}: nested lists of pixel values whose rows differ in length; accepted: a rectangular "
                         "[H,W,C]/[C,H,W] or [T,H,W,C]/[T,C,H,W] nesting (or a numpy array)") from None


def size_problem(height: int, width: int) -> str | None:
    """What is wrong with frames of this size for the model (too small a side), said before it loads; else None."""
    if min(height, width) < MIN_SIDE:
        return f"is {height}x{width} pixels; the model needs at least {MIN_SIDE} per side"
    return None


def check_source(source: str | Path, param: str, min_frames: int = 1) -> tuple[int, int]:
    """An image, clip, animated image or folder of frames read as a run reads it (`load_frames`, its first two frames
    only), checked before a model loads, for the command line and the agent tools alike: readable, at least MIN_SIDE
    pixels a side and, for inverse dynamics (`min_frames=2`), more than one picture. Returns its (height, width), what
    `single_view_warning` judges. Errors are `ValueError`s (`FileNotFoundError` for a missing path) naming `param`."""
    frames = load_frames(source, param, max_frames=2)
    height, width = frames.shape[1:3]
    if (problem := size_problem(height, width)) is not None:
        raise ValueError(f"{param}: {str(source)!r} {problem}")
    if frames.shape[0] < min_frames:
        raise ValueError(f"{param}: {str(source)!r} has 1 frame; inverse dynamics needs at least 2 (chunk_size+1 are "
                         "used; a shorter clip repeats its last frame)")
    return height, width


def _resize(frame: np.ndarray, h: int, w: int) -> np.ndarray:
    if frame.shape[:2] == (h, w):
        return frame
    from PIL import Image

    im = Image.fromarray(np.clip(frame * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.asarray(im.resize((w, h), Image.BILINEAR)).astype(np.float32) / 255.0


def _droid_places() -> tuple[tuple[int, int], tuple[int, int]]:
    """The (height, width) of the wrist camera's place in the DROID composite (the top two thirds, full width) and of
    each exterior camera's (the bottom third, half the width)."""
    H, W = DROID_COMPOSITE_SIZE
    return (H * 2 // 3, W), (H - H * 2 // 3, W // 2)


def compose_droid(wrist: np.ndarray, exterior_1: np.ndarray, exterior_2: np.ndarray) -> np.ndarray:
    """RoboLab DROID composite: wrist on top, the two exteriors side by side below, at 540x640 (per frame)."""
    top, below = _droid_places()
    out = []
    for w_f, e1, e2 in zip(wrist, exterior_1, exterior_2):
        bottom = np.concatenate([_resize(e1, *below), _resize(e2, *below)], axis=1)
        out.append(np.concatenate([_resize(w_f, *top), bottom], axis=0))
    return np.stack(out)


def composite_places(sizes: Mapping[str, tuple[int, int]], camera_keys: Sequence[str],
                     composite: str) -> dict[str, tuple[int, int]]:
    """The (height, width) each of `camera_keys` is resized to in `composite`, given each camera's own size
    (`sizes`): its fixed place (`fixed_places`), or the first camera's size when stacked (`stack_views`)."""
    fixed = fixed_places(camera_keys, composite)
    return fixed if fixed is not None else dict.fromkeys(camera_keys, tuple(sizes[camera_keys[0]]))


def fixed_places(camera_keys: Sequence[str], composite: str | None) -> dict[str, tuple[int, int]] | None:
    """The (height, width) each of `camera_keys` is resized to in `composite` whatever size it is sent at: its place
    in the DROID composite (`_droid_places`); None for a composite whose places follow the frames sent (stacked) and
    for none."""
    if composite != "droid_wrist_top":
        return None
    top, below = _droid_places()
    return {key: top if i == 0 else below for i, key in enumerate(camera_keys)}


def composite_regions(keys: Collection[str], camera_keys: Sequence[str],
                      composite: str | None) -> dict[str, tuple[float, float, float, float]] | None:
    """Where each camera of an observation with `keys` lies in the frame the model sees of it (`frames_from_mapping`),
    as fractions (top, left, bottom, right) of that frame's height and width: what a picture of the model's frames
    labels them by, so a viewer can tell which part is which camera. A DROID composite's places (`_droid_places`: the
    wrist camera on top, the other two side by side below), stacked cameras' equal bands top to bottom in
    `camera_keys`' order (`stack_views`), or the one camera's whole frame. None for a pre-composed image (its parts are
    the sender's) and for keys that make no frame (`frame_keys` refuses them)."""
    try:
        sources = frame_keys(keys, camera_keys, composite)
    except KeyError:
        return None
    if composite is None:
        return {sources[0]: (0.0, 0.0, 1.0, 1.0)}
    if sources != list(camera_keys):  # a pre-composed 'observation/image'
        return None
    if composite == "stacked":
        n = len(sources)
        return {key: (i / n, 0.0, (i + 1) / n, 1.0) for i, key in enumerate(sources)}
    (top_h, _), (_, below_w) = _droid_places()
    height, width = DROID_COMPOSITE_SIZE
    split, middle = top_h / height, below_w / width
    wrist, exterior_1, exterior_2 = sources
    return {wrist: (0.0, 0.0, split, 1.0), exterior_1: (split, 0.0, 1.0, middle), exterior_2: (split, middle, 1.0, 1.0)}


# How far (relative) a camera's aspect ratio may be from that of its place in a composite before its stretch is said:
# a few pixels cropped or snapped to a multiple of 16 stay within it; 4:3 against 16:9 (33 %) does not
STRETCH_TOLERANCE = 0.05


def stretch_warning(embodiment: Embodiment, sizes: Mapping[str, tuple[int, int]]) -> str | None:
    """The warning for cameras of an observation dict (`sizes`: each camera key's (height, width)) that the
    embodiment's composite resizes to a place of another shape, stretching the scene, or None. Nothing else says it:
    the frame-size warning needs the checkpoint's training record (`trained_size_warning`), and a stacked camera is
    resized to the first's size whatever its shape. A pre-composed image, or an embodiment that composes nothing, is
    not judged."""
    keys = list(embodiment.camera_keys)
    if embodiment.composite is None or len(keys) < 2 or any(key not in sizes for key in keys):
        return None
    places = composite_places(sizes, keys, embodiment.composite)
    off = []
    for key in keys:
        (height, width), place = sizes[key], places[key]
        if abs((height / width) / (place[0] / place[1]) - 1) > STRETCH_TOLERANCE:
            off.append(f"camera {key} is {height}x{width} (aspect {width / height:.3g}), resized to "
                       f"{_size_text(place)} (aspect {place[1] / place[0]:.3g})")
    if not off:
        return None
    where = ("each camera resized to the first's size" if embodiment.composite == "stacked"
             else "each camera resized to its place")
    return (f"embodiment {embodiment.key!r} composes its cameras ({COMPOSITE_LAYOUTS[embodiment.composite]}), {where}, "
            f"so a camera of another shape is stretched: {'; '.join(off)}. Unless the model was trained on cameras "
            "stretched alike, it sees a distorted scene: crop or pad each camera's image to its place's shape first")


def stack_views(views: Sequence[np.ndarray]) -> np.ndarray:
    """Cameras stacked top to bottom (each resized to the first's size: `composite_places`; another shape is
    stretched, and said: `stretch_warning`): a tall canvas keeps small objects larger than a side-by-side one at the
    same resolution tier."""
    h, w = views[0].shape[1:3]
    n = min(len(v) for v in views)
    views = [v[-n:] for v in views]  # the latest n: histories of unequal length end together
    return np.stack([np.concatenate([_resize(v[i], h, w) for v in views], axis=0) for i in range(n)])


# How far (relative aspect ratio) a DROID composite may be from 540x640: the model's own decoded videos are cut to
# whole latent cells, 528x640 or 256x320 (5% off), and are valid observations; one camera (180x320, 4:3) is further.
_DROID_SHAPE_TOLERANCE = 0.08
COMPOSITE_LAYOUTS = {"droid_wrist_top": "the wrist camera on top, the other two side by side below",
                     "stacked": "stacked top to bottom"}  # how each composite places the cameras, in words


def composite_mismatch(height: int, width: int, camera_keys: Sequence[str], composite: str | None) -> str | None:
    """Why one image of `height` x `width` given to an embodiment that composes several cameras looks like a single
    camera's view rather than that composite; None where it may be the composite (a pre-composed image is a valid
    observation) or the embodiment has one camera. A DROID composite has about the 540x640 shape
    (`_DROID_SHAPE_TOLERANCE`); N views stacked are N times as tall as one, so taller than wide for any camera no wider
    than N:1."""
    if composite is None or len(camera_keys) < 2:
        return None
    if composite == "droid_wrist_top":
        composite_h, composite_w = DROID_COMPOSITE_SIZE
        if abs(height * composite_w / (width * composite_h) - 1) <= _DROID_SHAPE_TOLERANCE:
            return None
        return f"it is {height}x{width} pixels, not near the composite's {composite_h}x{composite_w} shape"
    if height > width:
        return None
    return f"it is {height}x{width} pixels, not taller than wide as {len(camera_keys)} stacked cameras are"


def wire_key(dataset_key: str) -> str:
    """LeRobot camera key → openpi wire key: the last dotted part under `observation/`."""
    return "observation/" + dataset_key.rsplit(".", 1)[-1]


def frame_keys(keys: Collection[str], camera_keys: Sequence[str], composite: str | None,
               param: str = "observation") -> list[str]:
    """Which of an observation's `keys` make its frames: every camera of a composite (else a pre-composed
    'observation/image'), or the one camera, 'observation/image' or 'image' for a single-camera embodiment. A
    KeyError names `param` (`video` for a clip to explain), what is missing, the keys given and, for keys named as
    in a LeRobot dataset, their wire names (a `MissingKeyError`, which reads as its message)."""
    if composite is not None:
        missing = [k for k in camera_keys if k not in keys]
        if not missing:
            return list(camera_keys)
        if "observation/image" in keys:
            return ["observation/image"]
        need = (f"is missing camera keys {missing}; this embodiment needs {list(camera_keys)} (or a pre-composed "
                "'observation/image')")
    else:
        found = next((k for k in (*camera_keys, *SINGLE_VIEW_KEYS) if k in keys), None)
        if found is not None:
            return [found]
        need = f"has no camera key; expected one of {list(dict.fromkeys([*camera_keys, 'observation/image']))}"
    named = {wire_key(k): k for k in keys if "." in k}
    hint = [f"{named[k]!r} -> {k!r}" for k in camera_keys if k in named]
    raise MissingKeyError(f"{param} {need}, got keys {sorted(keys)}" + (
        f" (LeRobot camera keys go by their last part under 'observation/': {', '.join(hint)})" if hint else ""))


def camera_key_problems(embodiment: Embodiment, given: Sequence[str]) -> str | None:
    """What is wrong with the camera keys of per-camera files (`--camera`, the agents' `images`), or None. A composite
    takes each of the embodiment's cameras (`frame_keys`); an embodiment that composes none sees one camera, so one
    of its cameras is named, and only one (the model would see one of several, the rest silently unused)."""
    keys, composed = embodiment.camera_keys, embodiment.composite is not None
    unknown = [k for k in given if k not in keys]
    missing = [k for k in keys if k not in given] if composed else []
    extra = list(given) if not composed and len(given) > 1 else []
    problems = "; ".join(f"{what} {', '.join(found)}" for what, found in (
        ("unknown", unknown), ("missing", missing), ("it sees one camera, not a composite; given", extra)) if found)
    return problems or None


def trained_on_one_view(embodiment: Embodiment, trained: Mapping[str, Any] | None) -> bool:
    """Whether a checkpoint's run (`trained`: its record of the frames, `train.data.trained_frames`, or None) trained
    `embodiment`, which composes several cameras, on one pre-composed view (a dataset's `observation.image`, such as
    raw clips labelled with actions): its record names none of the embodiment's cameras. One image or clip is then
    what the model learned from, not a camera's view to be told apart."""
    return (trained is not None and embodiment.composite is not None
            and not set(trained["cameras"]) & set(embodiment.camera_keys))


def single_view_warning(embodiment: Embodiment, source: str, height: int, width: int, pass_each: str,
                        trained: Mapping[str, Any] | None = None) -> str | None:
    """The warning for one image or clip (`source`, e.g. "--image 'a.png'") of `height` x `width` given to an
    embodiment that composes several cameras, when it looks like one camera's view (`composite_mismatch`); None
    otherwise, and for a checkpoint trained on one view (`trained_on_one_view`: its frames' record, `trained`).
    `pass_each` says how the caller's interface takes each camera (CLI flags, the agents' `images`)."""
    keys = embodiment.camera_keys
    why = composite_mismatch(height, width, keys, embodiment.composite)
    if why is None or trained_on_one_view(embodiment, trained):
        return None
    return (f"{source} is taken as the composite the model was trained on, the {len(keys)} cameras of embodiment "
            f"{embodiment.key!r} ({', '.join(keys)}, {COMPOSITE_LAYOUTS[embodiment.composite]}), but it looks like "
            f"one camera's view: {why}. Pass each camera instead: {pass_each}")


# How far (relative, per side, and in aspect ratio) an observation's frames may be from those a checkpoint was trained
# on before it is told: a few pixels cropped or snapped to a multiple of 16 stay within it; a half-size camera or a
# 4:3 camera where 16:9 was trained do not.
TRAINED_SIZE_TOLERANCE = 0.1


def _size_text(hw: Sequence[int]) -> str:
    return f"{int(hw[0])}x{int(hw[1])}"


def trained_size_warning(trained: Mapping[str, Any], given: Mapping[str | None, tuple[int, int]],
                         checkpoint: str) -> str | None:
    """The warning for frames that differ materially from those `checkpoint` was trained on, or None.

    `trained` is the run's record of its frames (`train.data.trained_frames`: each camera's height and width, and the
    composed frame's); `given` maps each camera key of an observation to its frames' (height, width), and None (or
    `SINGLE_VIEW_KEYS`, a pre-composed image in a dict) to the one image or clip given, judged against the composed
    frame; a camera the run had none of (another embodiment's) is not judged. Frames are only ever scaled down and
    padded onto the model's canvas (`prepare_canvas`), so frames smaller than those trained on (by more than
    `TRAINED_SIZE_TOLERANCE` on a side) or of another shape show the model a scene smaller or otherwise framed than it
    learned, with nothing else telling; larger frames of the same shape are scaled down as the trained ones were, and
    are not reported."""
    cameras, composed = trained["cameras"], trained["composed"]
    off = []
    for key, (height, width) in given.items():
        want = cameras.get(key, composed if key is None or key in SINGLE_VIEW_KEYS else None)
        if want is None:
            continue
        aspect = abs((height / width) / (want[0] / want[1]) - 1)
        smaller = max(1 - height / want[0], 1 - width / want[1])
        if aspect > TRAINED_SIZE_TOLERANCE or smaller > TRAINED_SIZE_TOLERANCE:
            what = f"camera {key}" if key in cameras else "the observation"
            off.append(f"{what} is {height}x{width} where it was {_size_text(want)}")
    if not off:
        return None
    sizes = {_size_text(hw) for hw in cameras.values()}
    per_camera = (f"{sizes.pop()} per camera ({', '.join(cameras)})" if len(sizes) == 1 else
                  ", ".join(f"{key} {_size_text(hw)}" for key, hw in cameras.items()))
    if len(cameras) > 1 or next(iter(cameras.values())) != list(composed):
        per_camera += f", composed to {_size_text(composed)}"
    return (f"checkpoint {checkpoint} was trained on frames of {per_camera}, but {'; '.join(off)}: frames are only "
            "scaled down and padded onto the model's canvas, so it sees the scene smaller or framed otherwise than it "
            "learned it, and its actions and futures may be off. Give frames of the trained size (resize the camera "
            "images; `worldpolicy sim --image-size`), or fine-tune on frames of this size")


def frames_size_warning(trained: Mapping[str, Any], others: Sequence[Mapping[str, Any]],
                        given: Mapping[str | None, tuple[int, int]], checkpoint: str) -> str | None:
    """`trained_size_warning` of frames `given` against the frames a run trained on (`trained`:
    `policy.recorded_frames`), None where they are like those of one of `others`, its mixture's other datasets'
    (`policy.mixture_frames`: sources recorded at other sizes)."""
    message = trained_size_warning(trained, given, checkpoint)
    if message is None or any(trained_size_warning(other, given, checkpoint) is None for other in others):
        return None
    return message


def frames_from_mapping(obs: Mapping[str, Any], camera_keys: Sequence[str], composite: str | None,
                        last: int | None = None) -> np.ndarray:
    """openpi-style observation dict → frames. Multi-camera embodiments are composed; others use their one camera.
    `last` bounds what is read of each camera's clip (`load_frames`); histories end together, so each camera's last
    frame makes the last composite frame."""
    return compose_views(camera_views(obs, camera_keys, composite, last), camera_keys, composite)


def camera_views(obs: Mapping[str, Any], camera_keys: Sequence[str], composite: str | None,
                 last: int | None = None) -> dict[str, np.ndarray]:
    """The frames of each key of `obs` that makes its frames (`frame_keys`), before they are composed: what
    `frames_from_mapping` composes, kept apart where each camera's own size is judged (`trained_size_warning`)."""
    return {k: load_frames(obs[k], k, last=last) for k in frame_keys(obs.keys(), camera_keys, composite)}


def compose_views(views: Mapping[str, np.ndarray], camera_keys: Sequence[str], composite: str | None) -> np.ndarray:
    """`camera_views`' (or `clip_views`') frames as the model sees them: composed, or the one camera or canvas."""
    return _compose(list(views.values()), list(views), camera_keys, composite)


def clip_from_mapping(obs: Mapping[str, Any], camera_keys: Sequence[str], composite: str | None,
                      max_frames: int | None = None) -> np.ndarray:
    """openpi-style dict of camera clips → the clip inverse dynamics explains, composed as `frames_from_mapping` does.
    A clip to explain starts at its first frame, in every camera, so frame i of each camera is composed with frame i
    of the others, and cameras holding different numbers of frames (a camera cut elsewhere, or recorded at another
    rate) are refused: paired at either end, one camera would show another instant than the rest. `max_frames` bounds
    what is read of each (the first ones, `load_frames`) and what is compared."""
    return compose_views(clip_views(obs, camera_keys, composite, max_frames), camera_keys, composite)


def clip_views(obs: Mapping[str, Any], camera_keys: Sequence[str], composite: str | None,
               max_frames: int | None = None) -> dict[str, np.ndarray]:
    """`clip_from_mapping`'s camera clips before they are composed, each checked to hold as many frames as the rest."""
    sources = frame_keys(obs.keys(), camera_keys, composite, "video")
    cams = [load_frames(obs[k], k, max_frames=max_frames)[:max_frames] for k in sources]  # arrays come back whole
    counts = [len(c) for c in cams]
    if len(set(counts)) > 1:
        held = ", ".join(f"{k}: {n}{' or more' if n == max_frames else ''}" for k, n in zip(sources, counts))
        raise ValueError(f"the cameras' clips hold different numbers of frames ({held}); inverse dynamics composes "
                         "frame i of each camera, from the first, so give every camera the same frames (same start, "
                         "rate and length)")
    return dict(zip(sources, cams))


def _compose(cams: list[np.ndarray], sources: list[str], camera_keys: Sequence[str], composite: str | None) -> np.ndarray:
    """The frames of `sources` (`frame_keys`) as the model sees them: composed, or the one camera or canvas."""
    if composite is None or sources == ["observation/image"] and list(camera_keys) != sources:
        return cams[0]  # one camera, or a pre-composed canvas
    for key, cam in zip(sources, cams):  # resized to its place, a 2x2 camera would pass the canvas's size check
        if (problem := size_problem(*cam.shape[1:3])) is not None:
            raise ValueError(f"{key} {problem}")
    if composite == "stacked":
        return stack_views(cams)
    n = min(len(c) for c in cams)
    return compose_droid(*(c[-n:] for c in cams))  # the latest n: histories of unequal length end together


def resolution_bins(tier: int) -> dict[str, tuple[int, int]]:
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _ACTION_RESOLUTION_BINS

    check_resolution_tier(tier)
    return _ACTION_RESOLUTION_BINS[str(int(tier))]


def canvas_bin(height: int, width: int, tier: int, snap_to_16: bool = True) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where `prepare_canvas` puts frames of `height` x `width` at resolution `tier`: their size as diffusers'
    preprocessing leaves it (`snap_to_16`: down to multiples of 16), and the tier's canvas bin for that aspect ratio,
    each (height, width). Known from the size alone: a check before any frame is read uses it too
    (`train.data.small_frames_warning`)."""
    from diffusers.video_processor import VideoProcessor

    if snap_to_16:
        height, width = max(height - height % 16, 16), max(width - width % 16, 16)
    return (height, width), VideoProcessor.classify_height_width_bin(height, width, ratios=resolution_bins(tier))


def check_canvas(canvas: Any, tier: int, param: str = "canvas") -> tuple[int, int]:
    """A canvas asked for (`PolicyRequest.canvas`): one of the tier's bins, (height, width); refused naming `param`,
    with the bins accepted, otherwise."""
    bins = sorted(set(resolution_bins(tier).values()))
    try:
        values = tuple(canvas)
    except TypeError:
        values = ()
    whole = all(is_integer(v) for v in values)
    hw = tuple(int(v) for v in values) if whole else None
    if hw not in bins:
        raise ValueError(f"{param}={canvas!r}; accepted: None (the pipeline's bin for the frames' aspect ratio) or "
                         f"one of resolution tier {tier}'s canvas bins (height, width): "
                         f"{', '.join(f'({h}, {w})' for h, w in bins)}")
    return hw  # type: ignore[return-value]


# the comment tag's key under which a video of the model's own frames records their canvas (`canvas_comment`)
CANVAS_RECORD = "worldpolicy"
# the longest comment tag parsed for that record (one is about 70 characters): the tag is any mp4's, and its JSON is
# parsed only up to this
MAX_CANVAS_RECORD_CHARS = 1024


def canvas_comment(settings: Mapping[str, Any], frame_hw: Sequence[int]) -> str | None:
    """What a video of the model's decoded frames (`frame_hw`) records in its comment tag (`video.write_video`): the
    canvas its result's `settings` say they were generated on (`canvas_hw`), for `recorded_canvas` to put them back
    there; None for settings that name none."""
    if "canvas_hw" not in settings:
        return None
    return json.dumps({CANVAS_RECORD: {"canvas_hw": [int(v) for v in settings["canvas_hw"]],
                                       "frame_hw": [int(v) for v in frame_hw]}})


def _size_pair(value: Any) -> tuple[int, int] | None:
    """A recorded (height, width): two positive ints (JSON integers, not bools or floats), else None."""
    if (isinstance(value, list) and len(value) == 2
            and all(is_integer(v) and v > 0 for v in value)):
        return value[0], value[1]
    return None


def recorded_canvas(source: Any, frame_hw: Sequence[int], tier: int,
                    warn: Callable[[str], None] | None = None) -> tuple[int, int] | None:
    """The canvas a video file of the model's own frames records (`canvas_comment`), for frames of `frame_hw` read from
    it at resolution `tier`; None for anything else (frames in memory, images, a video without the record: the
    pipeline's bin). Decoded frames are whole latent cells cut from their bin, so the aspect-ratio rule can put them
    on another bin than the one they were generated on (the shipped model's 256x224 of its 256x256 goes to 320x256).
    A record that does not fit is said (`warn`, default `logger.warning`) and left out: frames of another size than
    recorded (the video was resized), a canvas that is not one of the tier's bins (another model's video), or a record
    that is not two sizes of two whole numbers (the tag is any file's: it is read bounded, as JSON only, and a
    malformed one never raises). Another comment a video carries (no record) is left out silently."""
    if not isinstance(source, (str, os.PathLike)) or Path(source).suffix.lower() not in VIDEO_SUFFIXES:
        return None
    say = warn or (lambda message: logger.warning("%s", message))
    text = video_comment(source)
    if not text or f'"{CANVAS_RECORD}"' not in text:  # no record: any other comment a video carries
        return None
    record = None
    if len(text) <= MAX_CANVAS_RECORD_CHARS:
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            pass
    record = record.get(CANVAS_RECORD) if isinstance(record, dict) else None
    canvas = _size_pair(record.get("canvas_hw")) if isinstance(record, dict) else None
    recorded = _size_pair(record.get("frame_hw")) if isinstance(record, dict) else None
    if canvas is None or recorded is None:
        shown = text if len(text) <= 200 else f"{text[:200]}... ({len(text)} characters)"
        say(f"{source}: its comment tag's {CANVAS_RECORD!r} record is not the canvas its frames were generated on as "
            f'worldpolicy writes it ({{"{CANVAS_RECORD}": {{"canvas_hw": [h, w], "frame_hw": [h, w]}}}}, at most '
            f"{MAX_CANVAS_RECORD_CHARS} characters), got {shown!r}: it is ignored, and the frames go on the "
            "pipeline's bin for their aspect ratio")
        return None
    if recorded != tuple(frame_hw):
        say(f"{source} records the canvas {_size_text(canvas)} its {_size_text(recorded)} frames were generated on, "
            f"but its frames are {_size_text(frame_hw)} (resized since?): they go on the pipeline's bin for their "
            "aspect ratio")
        return None
    if canvas not in resolution_bins(tier).values():
        say(f"{source} records the canvas {_size_text(canvas)} its frames were generated on, which is not a bin of "
            f"this model's resolution tier {tier} (a video of another model?): they go on the pipeline's bin for "
            "their aspect ratio")
        return None
    return canvas


# The share of a frame's area a run trained with `[augment]` crops (at random places in training, from the centre at
# inference: `center_crop`), as the Cosmos Policy recipe does: 0.9, a 212 side of 224
CROP_AREA = 0.9


def crop_hw(height: int, width: int, area: float) -> tuple[int, int]:
    """The side lengths of a crop of `area` (a share of the frame's) with the frame's aspect ratio: each side scaled by
    sqrt(area), rounded down (224 at 0.9: 212), at least 1."""
    scale = area ** 0.5
    return max(1, int(height * scale)), max(1, int(width * scale))


def center_crop(frames: np.ndarray, area: float) -> np.ndarray:
    """float [T,H,W,3] → the centre crop of `area` of each frame (`crop_hw`) resized back to HxW (bilinear): what a
    checkpoint trained with `[augment]` sees at inference, where training cropped `area` at random places."""
    import torch
    import torch.nn.functional as F

    height, width = frames.shape[1:3]
    crop_h, crop_w = crop_hw(height, width, area)
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    video = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)
    video = F.interpolate(video[:, :, top:top + crop_h, left:left + crop_w], size=(height, width), mode="bilinear",
                          align_corners=False)
    return video.permute(0, 2, 3, 1).clamp(0.0, 1.0).numpy()


def prepare_canvas(frames: np.ndarray, tier: int, num_frames: int, snap_to_16: bool = True,
                   canvas: tuple[int, int] | None = None):
    """float [T,H,W,3] in [0,1] → (canvas tensor [1,3,num_frames,Hc,Wc] in [-1,1], Canvas).

    Mirrors `Cosmos3OmniPipeline` step by step: diffusers' video preprocessing, canvas bin by aspect ratio, repeat-last
    or truncate to `num_frames`, downscale-only bicubic resize, right/bottom pad (replicate when a pad is at least the
    content size, else reflect). The content crop happens on the latent (`Canvas.latent_h/w`). diffusers first
    resizes frames to multiples of 16; the RoboLab server does not (`snap_to_16=False`: 540x640 stays 540x640).
    `canvas`: the bin (`check_canvas`) to put them on instead of the one their aspect ratio gets (`canvas_bin`): the one
    the model's own decoded frames were generated on (`recorded_canvas`, `PolicyRequest.canvas`).
    """
    import torch
    import torch.nn.functional as F
    from diffusers.video_processor import VideoProcessor

    if min(frames.shape[1:3]) < MIN_SIDE:  # before diffusers' resize to multiples of 16, which would make it empty
        raise ValueError(f"observation of {frames.shape[1]}x{frames.shape[2]} pixels is too small "
                         f"(min {MIN_SIDE} per side)")
    if snap_to_16:
        processor = VideoProcessor(vae_scale_factor=16, resample="bilinear")
        video = processor.preprocess_video(np.ascontiguousarray(frames, dtype=np.float32))
    else:
        video = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(3, 0, 1, 2)[None] * 2.0 - 1.0
    # the video is snapped already
    target_h, target_w = canvas if canvas is not None else canvas_bin(*video.shape[-2:], tier, snap_to_16=False)[1]
    if video.shape[2] < num_frames:
        pad = video[:, :, -1:].expand(-1, -1, num_frames - video.shape[2], -1, -1)
        video = torch.cat([video, pad], dim=2)
    else:
        video = video[:, :, :num_frames]
    _, c, t, h, w = video.shape
    info = _placed(h, w, target_h, target_w)
    content_h, content_w = info.content_h, info.content_w
    flat = video.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)
    if (content_h, content_w) != (h, w):
        flat = F.interpolate(flat, size=(content_h, content_w), mode="bicubic", align_corners=False, antialias=True)
    pad_right, pad_bottom = target_w - content_w, target_h - content_h
    if pad_right or pad_bottom:
        mode = "replicate" if pad_right >= content_w or pad_bottom >= content_h else "reflect"
        flat = F.pad(flat, (0, pad_right, 0, pad_bottom), mode=mode)
    canvas = flat.reshape(1, t, c, target_h, target_w).permute(0, 2, 1, 3, 4)
    return canvas.contiguous(), info


def model_frames(frames: np.ndarray, tier: int, canvas: Sequence[int], size: Sequence[int], snap_to_16: bool = True,
                 crop: float | None = None) -> np.ndarray:
    """float [T,H,W,3] in [0,1] (a request's cameras composed, `frames_from_mapping`) → uint8 [T, h, w, 3]: the frames
    as the model is given them on `canvas` (its (height, width) bin, a result's `settings["canvas_hw"]`): centre-cropped
    by `crop` where set (`center_crop`, `Policy.center_crop`), then `prepare_canvas`, cut to the top-left `size` (h, w),
    the whole latent cells of the content a model decodes (pads go right and bottom), and rounded to uint8 as `Policy`
    rounds its decoded frames (`model_uint8`): a recording compared like for like with what a model imagined of it."""
    if crop is not None:
        frames = center_crop(frames, crop)
    video, _ = prepare_canvas(frames, tier, len(frames), snap_to_16, (int(canvas[0]), int(canvas[1])))
    height, width = int(size[0]), int(size[1])
    if height > video.shape[-2] or width > video.shape[-1]:
        raise ValueError(f"size={height}x{width} is larger than the canvas {video.shape[-2]}x{video.shape[-1]}")
    return model_uint8((video[0, :, :, :height, :width].permute(1, 2, 3, 0).numpy() + 1.0) / 2.0)


def model_uint8(pixels: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] as uint8, each rounded to the nearest of the 256 levels (a level's half to the even one,
    numpy's round) and clipped: the one rounding of the frames a model decodes or is given. `Policy` rounds its
    decoded video by it, `model_frames` a recording compared with what a model imagined of it, and
    `sim.world_model.WorldModelEnv` the start frame a dream continues from, so a recorded frame, the start frame made
    of it and an imagined frame never differ by a level at a half (64.5 is 64 for each); an input's last frame kept as
    uint8 (`last_frame_pixels`) and an image an agent's tool reads are rounded by it too."""
    return np.clip(np.round(np.asarray(pixels) * 255.0), 0, 255).astype(np.uint8)


def _placed(height: int, width: int, canvas_h: int, canvas_w: int) -> Canvas:
    """Frames of `height` x `width` (snapped) on a `canvas_h` x `canvas_w` canvas: scaled down only, to fit."""
    scale = min(canvas_w / width, canvas_h / height, 1.0)
    content_h, content_w = max(1, int(scale * height + 0.5)), max(1, int(scale * width + 0.5))
    return Canvas(canvas_h=canvas_h, canvas_w=canvas_w, content_h=content_h, content_w=content_w,
                  latent_h=max(content_h // 16, 1), latent_w=max(content_w // 16, 1))


def frames_canvas(height: int, width: int, tier: int, snap_to_16: bool = True) -> Canvas:
    """The `Canvas` `prepare_canvas` gives frames of `height` x `width` at `tier`, from their size alone (`canvas_bin`):
    the latent grid a latent cache's windows take, estimated before anything is decoded."""
    snapped, canvas = canvas_bin(height, width, tier, snap_to_16)
    return _placed(*snapped, *canvas)
