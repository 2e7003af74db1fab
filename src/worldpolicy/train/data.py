"""Dataset windows → cached model-space training examples (frozen VAE latents, normalised actions, token ids).

The VAE is frozen during fine-tuning, so each window is encoded once and kept on disk in a folder of safetensors
shards keyed by a fingerprint of everything that shapes it (dataset files, embodiment, chunk, stride, canvas, VAE
weights, tokenizer). A second run, a resumed run, or another rank reads the folder instead of re-encoding, lazily: the
latents are memory maps of the shards (`LatentCache.load`), so a cache larger than the RAM trains. Encoding a real
dataset takes hours, so the windows encoded so far are kept in those shards as they go (`LatentCache.build_or_load`):
a build cut short by Ctrl-C, a crash or a kill continues where it stopped.
Cameras are composed exactly as at inference (`processing.observations.frames_from_mapping`), captions are built by
`processing.prompts`, and actions go through the embodiment's normalisation.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import observations
from ..data.actions import (
    DEFAULT_ROBOT,
    DEFAULT_SOURCE,
    action_converter,
    action_layout,
    check_conversion,
    default_action_keys,
    source_embodiment,
)
from ..data.layout import ACTION_KEYS, STATE_KEYS
from ..embodiments import Embodiment
from ..fileio import atomic_path, read_json, replace_folder, sigint_deferred, write_json_atomic
from ..processing.actions import flip_gripper, to_model
from ..processing.observations import center_crop, compose_views, frames_from_mapping, prepare_canvas
from ..processing.prompts import build_caption, tokenize
from .augment import augment_frames
from .config import AugmentConfig, DataConfig
from .flow import ModelExample

logger = logging.getLogger(__name__)

CACHE_VERSION = 1  # in the fingerprint: what the cached numbers mean (a change makes resumed runs refuse old data)
# in the folder name only: how they are stored (3: a folder of shards; 2: one file; 1, no version in the name: one
# file, one phrasing a caption)
CACHE_FORMAT = 3
CACHE_META = "cache.json"  # a finished cache folder's meta (`LatentCache.meta`), beside its shards
SHARD_WINDOWS = 256  # a partial build's windows are kept after this many new ones, or
SHARD_SECONDS = 60.0  # after this long, whichever comes first (and always when the build stops on an error or Ctrl-C)
SHARD_NAME = "windows-{:09d}.safetensors"  # a shard's file, by its first window's place in the build's order
SHARD_GLOB = SHARD_NAME.replace("{:09d}", "*")  # every shard of a folder, in order once sorted


@dataclass(frozen=True)
class WindowSpec:
    """Which windows a dataset yields and how their actions reach the target embodiment's columns.

    `source_embodiment` names the dataset's own action layout (its width must match `action_keys`);
    `action_conversion="joint_to_relative_pose"` turns joint targets into per-step end-effector deltas with the
    robot's forward kinematics (`data.actions.action_converter`), so joint datasets train Cartesian heads.
    `episodes` (ascending; None: all) are the episodes windows are cut from (`DataConfig.selected_episodes`); being a
    field, they are in the latent cache's fingerprint, so another selection never reads this one's cache. `windows`
    (None: all) keeps that many of those windows, spread evenly over them (`spread_windows`): the held-out ones a
    validation scores (`validation.windows`), so the others are never encoded. `augment` (`[augment]`, enabled):
    each window is encoded `augment.copies` times, each copy under its own draw (`train.augment.augment_frames`);
    `center_crop`: each window's frames are centre-cropped as inference crops them (`processing.observations.
    center_crop`: the held-out windows of a run with `augment`). Both are in the fingerprint when set.
    """

    dataset: str
    chunk_size: int
    source_embodiment: str = DEFAULT_SOURCE
    action_keys: tuple[str, ...] = ACTION_KEYS
    state_keys: tuple[str, ...] = STATE_KEYS
    video_keys: tuple[str, ...] | None = None
    action_conversion: str = "none"
    robot: str = DEFAULT_ROBOT
    stride: int = 1
    pad: bool = True
    episodes: tuple[int, ...] | None = None
    windows: int | None = None
    augment: AugmentConfig | None = None
    center_crop: float | None = None

    def __post_init__(self) -> None:
        check_conversion(self.action_conversion, "data.")


@dataclass
class RawWindow:
    """One window before normalisation: physical actions in the target columns and the composed frames."""

    frames: np.ndarray  # float [chunk+1, H, W, 3] in [0, 1]
    actions: np.ndarray  # [chunk, action_dim] physical
    state: np.ndarray | None  # [action_dim] physical (state-row embodiments)
    valid: np.ndarray  # bool [chunk]
    task: str
    episode: int
    start: int


def window_spec(data: DataConfig, target: Embodiment, held_out: Sequence[int] = (), dataset=None,
                prefix: str = "data.") -> WindowSpec:
    """`[data]`'s windows for `target`, less those of the `held_out` episodes (`validation.episodes`), checked
    against the dataset's metadata now: a wrong key, width, camera or conversion would otherwise be found only after
    the weights load. `source_embodiment` and `action_conversion` left unset are read from the dataset where that is
    unambiguous (`data.actions.action_layout`: `DEFAULT_SOURCE` for 8-wide actions, the target's own columns by name;
    `joint_to_relative_pose` where only it fits), else refused naming the setting. `dataset`: `data.dataset` opened
    already (as every function here takes it: opening a large dataset takes seconds), else opened now. `prefix`: what
    names `data`'s settings in refusals and notes (a mixture table's: `data.mixture[i].`)."""
    dataset = _opened(data.dataset, dataset)
    # left at the from-sim names on a dataset whose one action feature is LeRobot's `action`: that one
    action_keys = default_action_keys(dataset, data.action_keys)
    source, conversion = action_layout(dataset, target, action_keys, data.state_keys, data.source_embodiment,
                                       data.action_conversion, prefix=prefix)
    spec = WindowSpec(
        dataset=data.dataset, chunk_size=data.chunk_size, source_embodiment=source, action_keys=tuple(action_keys),
        state_keys=tuple(data.state_keys), video_keys=tuple(data.video_keys) if data.video_keys else None,
        action_conversion=conversion, robot=data.robot, stride=data.stride,
        episodes=data.selected_episodes(dataset.num_episodes, held_out, dataset.episode_success, prefix),
    )
    if failed := data.failed_episodes(dataset.episode_success, prefix):
        logger.info("%ssuccess=%r: episodes %s of %sdataset failed (its success column) and are not trained on",
                    prefix, data.success, failed, prefix)
    plan = _plan(spec, target, dataset, prefix)
    for name, given, used in (("source_embodiment", data.source_embodiment, source),
                              ("action_conversion", data.action_conversion, conversion)):
        if given is None:
            logger.info("%s%s unset: %r (from %sdataset's action columns and embodiment %r)", prefix, name, used,
                        prefix, target.key)
    if not data.video_keys:  # a recording of more cameras than the embodiment composes (from-sim's default three)
        used = list(dict.fromkeys(plan.cameras.values()))
        left = [video for video in dataset.video_keys if video not in used]
        logger.info("%svideo_keys unset: %r (from %sdataset's videos and the cameras of embodiment %r)%s", prefix,
                    used, prefix, target.key, f"; not trained on: {', '.join(left)}" if left else "")
    return spec


@dataclass
class _Plan:
    """What `iter_windows` needs, every part checked: the examples are lazy, nothing is decoded yet."""

    dataset: Any
    source: Embodiment
    examples: Iterator[Any]
    convert: Callable
    cameras: dict[str, str]  # the target's camera (wire key) -> the dataset video that feeds it


def _opened(source: str, dataset=None):
    """`dataset` (`source` opened already), else `source` opened now."""
    from ..data import LeRobotDataset

    return dataset if dataset is not None else LeRobotDataset.open(source)


def _plan(spec: WindowSpec, target: Embodiment, dataset=None, prefix: str = "data.") -> _Plan:
    """`spec`'s windows planned; a refusal names the setting after `prefix` (a mixture table's: `data.mixture[i].`;
    `chunk_size` and `stride` are the run's: `data.`)."""
    from ..data import sample_training_examples

    dataset = _opened(spec.dataset, dataset)
    source = source_embodiment(spec.source_embodiment, prefix, target)
    cameras = camera_sources(dataset.video_keys, spec.video_keys, target, prefix)
    examples = sample_training_examples(
        dataset,
        source,
        "policy",
        spec.chunk_size,
        action_keys=list(spec.action_keys),
        state_keys=list(spec.state_keys) if source.state_history else None,
        video_keys=list(dict.fromkeys(cameras.values())),
        episodes=list(spec.episodes) if spec.episodes is not None else None,
        stride=spec.stride,
        pad=spec.pad,
        caption_sep=None,  # the cache keeps every phrasing; the trainer draws one per step (`LatentCache.captions`)
        prefix=prefix,
        run_prefix="data.",  # chunk_size and stride: the run's, a mixture's too
    )
    convert = action_converter(spec.action_conversion, source, target, spec.robot, prefix)
    return _Plan(dataset, source, examples, convert, cameras)


def camera_sources(videos: list[str], video_keys: Sequence[str] | None, target: Embodiment,
                   prefix: str = "data.") -> dict[str, str]:
    """Which dataset video feeds each camera `target` composes (`data.observations.camera_sources`: the rule `dataset
    label` and `dataset frame` read too), refused naming `[data]`'s settings (`data.video_keys`, `data.dataset`; after
    `prefix`: a mixture table's `data.mixture[i].`)."""
    return observations.camera_sources(videos, video_keys, target, prefix)


def check_encodable(spec: WindowSpec, target: Embodiment, dataset=None, prefix: str = "data.") -> None:
    """What encoding the windows would refuse, refused before the weights load (minutes, for a large checkpoint): a
    missing video file, a NaN or infinite action or state (`iter_windows` checks the latter as it encodes unless told
    this check ran: `checked`). `prefix`: what names the settings (a mixture table's: `data.mixture[i].`)."""
    plan = _plan(spec, target, dataset, prefix)
    plan.dataset.check_video_files(list(dict.fromkeys(plan.cameras.values())), spec.episodes)
    _check_plan_finite(plan, spec, prefix)


def _check_plan_finite(plan: _Plan, spec: WindowSpec, prefix: str = "data.") -> None:
    """`check_finite` over what `plan` reads of `spec`'s episodes: the actions, and the state if the source has one."""
    keys = list(spec.action_keys) + (list(spec.state_keys) if plan.source.state_history else [])
    check_finite(plan.dataset, keys, spec.episodes if spec.episodes is not None else range(plan.dataset.num_episodes),
                 prefix)


def cache_may_serve(cache_dir: str | Path, spec: WindowSpec, embodiment: Embodiment,
                    fingerprint: str | None = None) -> bool:
    """Whether `cache_dir` holds a finished latent cache that may serve these windows without a decode: the one named
    by `fingerprint` (a resumed run's: read, or the run refused as trained on other data), else one whose `data_key`
    is these windows' (its VAE is known only once the weights load). A cache of other data (a cache folder shared by
    runs on several datasets or episode selections) serves nothing: the data is checked as if there were none."""
    folder = Path(cache_dir)
    if fingerprint is not None:
        return (cache_folder(folder, fingerprint) / CACHE_META).is_file()
    key = data_key(spec, embodiment)
    return any(_cache_meta(path).get("data_key") == key for path in folder.glob(cache_folder(folder, "*").name))


def cache_folder(cache_dir: str | Path, fingerprint: str, partial: bool = False) -> Path:
    """The folder of the finished latent cache `fingerprint` names in `cache_dir` (`LatentCache.build_or_load`), or
    (`partial`) of its build's shards until it is finished; `fingerprint` "*": every one's, as a glob pattern."""
    return Path(cache_dir) / f"latents-{fingerprint}-v{CACHE_FORMAT}{'.partial' if partial else ''}"


def _cache_meta(folder: Path) -> dict[str, Any]:
    """A latent cache folder's meta (`CACHE_META`); {} for a folder that holds none."""
    try:
        meta = read_json(folder / CACHE_META, "latent cache meta")
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def trained_frames(spec: WindowSpec, target: Embodiment, dataset=None) -> dict[str, Any]:
    """What the run's frames are, for its checkpoints (`trainer_state.json`): each camera's [height, width] and the
    dataset video that feeds it (`camera_sources`), and the composed frame's [height, width], from the dataset's
    metadata (which decoding checks every video against). Inference reads it to say when an observation's frames
    differ from these (`processing.observations.trained_size_warning`): frames are only scaled down and padded onto
    the canvas, so other sizes are quietly seen otherwise than trained."""
    from ..data.layout import image_hw

    dataset = _opened(spec.dataset, dataset)
    videos = camera_sources(dataset.video_keys, spec.video_keys, target)
    cameras = {camera: list(image_hw(dataset.features[key])) for camera, key in videos.items()}
    blank = {camera: np.zeros((1, h, w, 3), dtype=np.float32) for camera, (h, w) in cameras.items()}
    composed = compose_views(blank, target.camera_keys, target.composite).shape[1:3]
    return {"cameras": cameras, "videos": videos, "composed": [int(composed[0]), int(composed[1])]}


def window_views(spec: WindowSpec, window: RawWindow) -> list[np.ndarray]:
    """The frames encoded for `window`: each augmented copy's (drawn from the window's episode, start frame and copy
    number alone, so a continued or repeated build draws the same), or its frames centre-cropped, or as recorded."""
    if spec.augment is not None:
        return [augment_frames(window.frames, spec.augment, (window.episode, window.start, k))
                for k in range(spec.augment.copies)]
    if spec.center_crop is not None:
        return [center_crop(window.frames, spec.center_crop)]
    return [window.frames]


def window_bytes(spec: WindowSpec, target: Embodiment, frames: dict[str, Any], vae_config: dict[str, Any]) -> int:
    """About how many bytes one window takes in a `LatentCache`'s shards (read as batches need it): its float32
    latents, [z_dim, latent frames, latent height, latent width] as the checkpoint's VAE (`vae_config`: its
    config.json) encodes `spec.chunk_size + 1` frames of the composed size (`trained_frames`) on `target`'s tier canvas
    (`processing.observations.frames_canvas`), once per augmented copy (`augment.copies`), and its float64 actions
    and state, with their valid flags. Not counted: the captions' token ids and each window's Python objects
    (hundreds of bytes), so it is a lower bound."""
    from ..processing.observations import frames_canvas

    grid = frames_canvas(*frames["composed"], target.resolution_tier, target.snap_to_16)
    latent_frames = spec.chunk_size // int(vae_config.get("scale_factor_temporal", 4)) + 1
    copies = spec.augment.copies if spec.augment is not None else 1
    latents = int(vae_config.get("z_dim", 16)) * latent_frames * grid.latent_h * grid.latent_w * 4 * copies
    rows = spec.chunk_size + (1 if target.state_history else 0)
    return latents + rows * target.action_dim * 8 + spec.chunk_size


# The Python and torch objects that hold one window's actions and flags in a loaded `LatentCache` and the trainer's
# `ModelExample`, in bytes: about 1.5 KiB measured (`LatentCache.load`, then `model_examples`; torch 2.13)
WINDOW_OBJECTS = 1536


def window_ram(spec: WindowSpec, target: Embodiment) -> int:
    """About how many bytes of RAM one window takes while a run trains on its `LatentCache`, its latents left out
    (memory maps of the cache's shards, `LatentCache.load`: read as batches need them): its actions and state, physical
    (float64, the cache's) and in model space (float32, the trainer's examples), their valid flags, and the objects
    holding them (`WINDOW_OBJECTS`). Its caption ids are shared by the windows of one task, so not counted."""
    rows = spec.chunk_size + (1 if target.state_history else 0)
    return rows * target.action_dim * (8 + 4) + 2 * spec.chunk_size + WINDOW_OBJECTS


# A camera whose frames the resolution tier's canvas would show this many times larger (on each side) is said. Not 2:
# DROID's own 180x320 wrist camera fills its 360x640 place in the composite by design
SMALL_FRAMES_FACTOR = 3


def small_frames_warning(frames: dict[str, Any], target: Embodiment) -> str | None:
    """The warning for cameras whose frames (`trained_frames`) are much smaller than what `target`'s resolution tier
    gives them, or None. The tier's canvas bin for the composed frame (as `prepare_canvas` picks it) scaled to fit, and
    each camera's share of it (its place in the composite, `composite_places`): frames under 1/SMALL_FRAMES_FACTOR of
    that on each side are scaled up into their place (a composite) or padded onto the canvas, so the model trains on
    less detail than its tier holds, with nothing else telling."""
    from ..processing.observations import canvas_bin, composite_places

    cameras = {key: tuple(frames["cameras"][key]) for key in target.camera_keys if key in frames["cameras"]}
    # else one pre-composed view (`camera_sources`): its place is the whole composed frame, as an only camera's is
    composing = bool(cameras) and target.composite
    cameras = cameras or {key: tuple(hw) for key, hw in frames["cameras"].items()}
    tier = target.resolution_tier
    (height, width), (canvas_h, canvas_w) = canvas_bin(*frames["composed"], tier, target.snap_to_16)
    fit = min(canvas_h / height, canvas_w / width)
    places = composite_places(cameras, list(cameras), target.composite) if composing else cameras
    small = []
    for key, (h, w) in cameras.items():
        place_h, place_w = places[key]
        tier_h, tier_w = round(place_h * fit), round(place_w * fit)
        if min(tier_h / h, tier_w / w) >= SMALL_FRAMES_FACTOR:
            scaled = place_h > h and place_w > w
            how = "scaled up into its place in the composite" if scaled else "padded onto the canvas"
            small.append(f"camera {key}'s frames are {h}x{w}, {SMALL_FRAMES_FACTOR} times smaller or more than the "
                         f"{tier_h}x{tier_w} the tier gives it ({how})")
    if not small:
        return None
    return (f"embodiment {target.key!r} trains at resolution tier {tier} (a {canvas_h}x{canvas_w} canvas), but "
            f"{'; '.join(small)}: the model learns from less detail than its tier holds; record larger frames, or give "
            "the embodiment a lower resolution_tier")


def iter_windows(spec: WindowSpec, target: Embodiment, skip: int = 0, dataset=None,
                 checked: bool = False) -> Iterator[RawWindow]:
    """Windows of `spec.dataset` with actions in `target`'s columns (physical units), in `window_order`.

    `skip` leaves out the first windows (a latent cache continuing a build) without decoding the episodes they fill:
    only the episode the skipped windows end in is decoded, its first windows then dropped before composing.
    `checked`: `check_encodable(spec)` ran already, so the actions and states are not read for `check_finite` again
    (every episode's data: seconds per thousand episodes)."""
    episodes = _episode_starts(spec, dataset)
    whole = 0  # episodes every window of which is skipped
    while whole < len(episodes) and skip and skip >= len(episodes[whole][1]):
        skip -= len(episodes[whole][1])
        whole += 1
    if whole and whole == len(episodes):  # every window skipped
        return
    if whole or spec.windows is not None:  # an episode none of `windows` falls in is not decoded
        spec = replace(spec, episodes=tuple(i for i, _ in episodes[whole:]))
    plan = _plan(spec, target, dataset)
    if not checked:
        _check_plan_finite(plan, spec)
    examples = plan.examples
    if spec.windows is not None:  # the others are cut (lazily: an array view each), never composed nor encoded
        kept = {(i, t) for i, starts in episodes[whole:] for t in starts}
        examples = (ex for ex in examples if (ex.episode_index, ex.start) in kept)
    for ex in itertools.islice(examples, skip, None):
        views = {camera: ex.views[key] for camera, key in plan.cameras.items()}
        frames = frames_from_mapping(views, target.camera_keys, target.composite)
        actions, state = plan.convert(ex.actions.astype(np.float64), ex.state)
        yield RawWindow(frames, actions, state, ~ex.action_is_pad, ex.task, ex.episode_index, ex.start)


def _episode_starts(spec: WindowSpec, dataset=None) -> list[tuple[int, Sequence[int]]]:
    """The episodes `iter_windows(spec)` reads, in its order, with the start frames of their windows (from the episode
    lengths alone, nothing decoded); with `spec.windows`, only the episodes and starts of those it keeps."""
    from ..data.sampling import window_starts

    dataset = _opened(spec.dataset, dataset)
    lengths = dataset.episode_lengths
    chosen = range(dataset.num_episodes) if spec.episodes is None else spec.episodes
    every = [(int(i), window_starts(int(lengths[i]), spec.chunk_size, spec.stride, spec.pad)) for i in chosen]
    if spec.windows is None:
        return every
    order = [(i, t) for i, starts in every for t in starts]
    kept = {order[k] for k in spread_windows(len(order), spec.windows)}
    picked = [(i, [t for t in starts if (i, t) in kept]) for i, starts in every]
    return [(i, starts) for i, starts in picked if starts]


def spread_windows(n: int, count: int) -> list[int]:
    """`count` of `n` windows' indexes spread evenly over them, first and last included (all where `n` is fewer):
    the held-out windows a validation scores."""
    return np.linspace(0, n - 1, min(count, n)).round().astype(int).tolist() if n else []  # distinct: >= 1 apart


def window_order(spec: WindowSpec, dataset=None) -> np.ndarray:
    """(episode, start frame) of every window `iter_windows(spec)` yields, in its order, one row each (int64, shape
    (windows, 2)): what a continued latent cache checks the windows it kept against. An array, not a list of tuples:
    a DROID-size dataset has tens of millions of windows."""
    episodes = _episode_starts(spec, dataset)
    order = np.empty((sum(len(starts) for _, starts in episodes), 2), dtype=np.int64)
    at = 0
    for i, starts in episodes:  # filled in place: no temporary as large as the array
        order[at:at + len(starts), 0], order[at:at + len(starts), 1] = i, starts
        at += len(starts)
    return order


def count_windows(spec: WindowSpec, dataset=None) -> int:
    """How many windows `iter_windows(spec)` yields (one per start frame), from the episode lengths alone."""
    return sum(len(starts) for _, starts in _episode_starts(spec, dataset))


def check_finite(dataset, keys: list[str], episodes: Iterable[int], prefix: str = "data.") -> None:
    """One NaN/inf action or state turns every loss and then every checkpoint NaN: refuse the data before anything is
    encoded, naming the key, episode and frame (and the settings after `prefix`: a mixture table's
    `data.mixture[i].`)."""
    from ..data import first_non_finite

    for episode in episodes:
        bad = first_non_finite(dataset.episode(int(episode), videos=False).frames, keys)
        if bad is not None:
            raise ValueError(
                f"{prefix}dataset {str(dataset.root)!r}: {bad.key} is {bad.value} in episode {episode} (frame "
                f"{bad.frame}, column {bad.column}; frames of that episode holding NaN or inf: {bad.frames}); training "
                f"needs finite actions and states: leave the episode out with {prefix}exclude_episodes = [{episode}] "
                "(added to any already there), or fix it"
            )


def _data_hash(spec: WindowSpec, embodiment: Embodiment, tier: int, **model: Any):
    """The hash of the dataset's metadata, the window spec, the embodiment's layout and the canvas tier, with `model`
    (what the loaded VAE and tokenizer add) in the same payload: `fingerprint` and `data_key` share it."""
    h = hashlib.sha256()
    from ..data.lerobot import dataset_folder

    root = dataset_folder(spec.dataset)  # a hub id's snapshot
    for meta in sorted((root / "meta").rglob("*")):
        if meta.is_file():
            h.update(meta.relative_to(root).as_posix().encode())
            h.update(meta.read_bytes())
    payload = {
        "version": CACHE_VERSION,
        # `windows` unset is left out: the training windows' caches and a resumed run's fingerprint stay as they were
        # ... nor `augment` and `center_crop` (a run without augmentation reads the caches of before the settings)
        "spec": {k: asdict(v) if isinstance(v, AugmentConfig) else v for k, v in spec.__dict__.items()
                 if k != "dataset" and not (k in ("windows", "augment", "center_crop") and v is None)},
        # what shapes latents, captions and physical actions; stats do not (the cache keeps physical actions)
        "embodiment": {k: v for k, v in embodiment.to_dict().items() if k not in ("stats", "normalization")},
        "tier": tier,
        **model,
    }
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return h


def fingerprint(spec: WindowSpec, embodiment: Embodiment, vae, tokenizer, tier: int) -> str:
    """Everything that changes a cached example, hashed: dataset metadata, window spec, embodiment, VAE, tokenizer."""
    h = _data_hash(spec, embodiment, tier,
                   vae_config={k: v for k, v in dict(vae.config).items() if not k.startswith("_")},
                   tokenizer=tokenizer.backend_tokenizer.to_str() if hasattr(tokenizer, "backend_tokenizer")
                   else repr(tokenizer))
    with torch.no_grad():
        for name, tensor in sorted(vae.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def changed_data(dataset: str, prefix: str = "data.") -> ValueError:
    """The refusal of a resume whose data differs from the run's (`data_key` before the weights load, `fingerprint`
    once they have), naming the setting after `prefix` (a mixture table's: `data.mixture[i].`,
    `config.source_prefix`)."""
    return ValueError(f"{prefix}dataset {dataset!r} is not the data this run trained on (its files, or the layout, "
                      "VAE or tokenizer they are encoded with, changed since the run began): a resume needs the same "
                      "data; restore it, or choose a new --out / output_dir")


def data_key(spec: WindowSpec, embodiment: Embodiment, tier: int | None = None) -> str:
    """The part of `fingerprint` known before the weights load (the data, windows and layout, not the VAE and
    tokenizer): kept in each latent cache's metadata, so `cache_may_serve` tells a cache of these windows from one of
    other data without loading the model."""
    return _data_hash(spec, embodiment, int(tier or embodiment.resolution_tier)).hexdigest()[:24]


class LatentCache:
    """Encoded windows of one (dataset, embodiment layout, VAE): latents, physical actions, caption ids.

    Actions stay physical in the cache; `model_examples(embodiment)` normalises them, so a new embodiment's stats
    (computed from these very actions) never invalidate the encoded latents. `captions[i]` holds the token ids of
    every phrasing window i's task has (`data.sampling.caption_variants`): the trainer draws one per step, so a
    caption-augmented dataset keeps its variety over epochs instead of one phrasing frozen per window.
    `latents` is one tensor per window; a cache read from disk (`load`, which a build returns too) holds them as views
    of memory maps of its shards, so its latents are never in RAM together: the RAM a cache takes is its actions,
    flags and caption ids, and the pages of the windows a batch reads. A cache of augmented windows (`WindowSpec.
    augment`, its meta's `augment_copies`) holds each window's copies as one tensor, [copies, C, T, h, w]: the trainer
    picks one per step (`latent_copies`).
    """

    def __init__(self, latents: list[torch.Tensor], actions: list[np.ndarray], valid: list[np.ndarray],
                 states: list[np.ndarray] | None, captions: list[list[list[int]]], index: list[tuple[int, int]],
                 meta: dict[str, Any]):
        self.latents, self.actions, self.valid, self.states = latents, actions, valid, states
        self.captions, self.index, self.meta = captions, index, meta

    def __len__(self) -> int:
        return len(self.latents)

    @property
    def latent_copies(self) -> int:
        """How many encodings of each window the cache holds: its augmented copies, else 1."""
        return int(self.meta.get("augment_copies", 1))

    @classmethod
    def joined(cls, caches: Sequence[LatentCache]) -> LatentCache:
        """The windows of several caches (a mixture's sources, `[[data.mixture]]`) as one, in order: source i's
        windows follow those of the sources before it (`MixtureSampler` picks them there). Its `action_stats` are
        then the mixture's normalisation, in this one place: every training window of every source counted once
        (the sources' stats combined by their window counts, whatever their sampling weights), as one dataset of them
        all would give. Its meta has no fingerprint: each source's cache keeps its own."""
        joined = cls([], [], [], [], [], [], {"windows": sum(map(len, caches))})
        for cache in caches:
            joined._extend(cache)
        if caches and caches[0].latent_copies > 1:  # one `[augment]` for the run: every source's copies alike
            joined.meta["augment_copies"] = caches[0].latent_copies
        if not joined.states or joined.states[0] is None:
            joined.states = None
        return joined

    def model_examples(self, emb: Embodiment) -> list[ModelExample]:
        """One example per window, captioned with its first phrasing and, augmented, holding its first copy's latents
        (the trainer swaps in the phrasing and copy it draws)."""
        out = []
        for i, (lat, act, ok, captions) in enumerate(zip(self.latents, self.actions, self.valid, self.captions)):
            rows, ok_rows = to_model(emb, act, clip=True), ok  # as inference reads them, gripper flip included
            if emb.state_history:
                if self.states is None:
                    raise ValueError(f"embodiment {emb.key!r} conditions on a state row but the cache holds no states")
                rows = np.concatenate([to_model(emb, self.states[i][None], clip=True), rows], axis=0)
                ok_rows = np.concatenate([[True], ok])
            if "augment_copies" in self.meta:
                lat = lat[0]
            # the phrasing's list itself (shared by a task's windows, `load`): read, never changed
            out.append(ModelExample(lat, torch.as_tensor(rows, dtype=torch.float32), torch.as_tensor(ok_rows),
                                    captions[0], emb.domain_id, emb.state_history, float(emb.fps)))
        return out

    def action_stats(self, emb: Embodiment) -> dict[str, list[float]]:
        """q01/q99, min/max, mean/std over every valid action row — what a new embodiment `emb` is registered with —
        of the values its normalisation reads (a `gripper_flip` embodiment's gripper reversed)."""
        rows = flip_gripper(emb, np.concatenate([a[v] for a, v in zip(self.actions, self.valid)], axis=0))
        return {
            "q01": np.quantile(rows, 0.01, axis=0).tolist(), "q99": np.quantile(rows, 0.99, axis=0).tolist(),
            "min": rows.min(axis=0).tolist(), "max": rows.max(axis=0).tolist(),
            "mean": rows.mean(axis=0).tolist(), "std": rows.std(axis=0).tolist(),
        }

    @classmethod
    def build_or_load(
        cls,
        spec: WindowSpec,
        embodiment: Embodiment,
        vae,
        tokenizer,
        cache_dir: str | Path,
        *,
        tier: int | None = None,
        use_system_prompt: bool = False,
        batch_size: int = 8,
        progress: bool = True,
        expect: str | None = None,
        shard_windows: int = SHARD_WINDOWS,
        what: str = "windows",
        dataset=None,
        checked: bool = False,
        prefix: str = "data.",
    ) -> LatentCache:
        """The cache of these windows, encoded now or read back. `expect` (a resumed run's fingerprint) refuses data
        that changed since the run began, before anything is encoded (`changed_data`, naming the setting after
        `prefix`). `what` names the windows on the progress bar
        ("encoding held-out windows": a run with validation encodes two sets one after the other). `dataset`:
        `spec.dataset` opened already; `checked`: `check_encodable(spec)` ran already (`iter_windows`).

        Encoding keeps its windows as it goes in shards under `latents-<fingerprint>-v3.partial/` (`_build`), so a
        build stopped by Ctrl-C, an error or a kill is continued by the next call with the same fingerprint; at the
        end its meta (`CACHE_META`) is written beside them and the folder renamed to `latents-<fingerprint>-v3/`
        (`cache_folder`), the same shards an uninterrupted build writes."""
        tier = int(tier or embodiment.resolution_tier)
        key = fingerprint(spec, embodiment, vae, tokenizer, tier)
        if expect is not None and key != expect:
            raise changed_data(spec.dataset, prefix)
        path = cache_folder(cache_dir, key)
        partial = cache_folder(cache_dir, key, partial=True)  # the fingerprint in the name: others' never mix in
        for older in (f"latents-{key}.safetensors", f"latents-{key}-v2.safetensors", f"latents-{key}-v2.partial"):
            if (Path(cache_dir) / older).exists():
                kind = "an interrupted build" if older.endswith(".partial") else "a latent cache (one file)"
                logger.warning("%s: %s of an older worldpolicy, not read; delete it to free its space",
                               Path(cache_dir) / older, kind)
        if (path / CACHE_META).exists():
            logger.info("latent cache hit: %s", path)
            cache = cls.load(path)
            rows = [(i, a) for i, a in enumerate(cache.actions) if not np.isfinite(a).all()]
            rows += [(i, s) for i, s in enumerate(cache.states or []) if not np.isfinite(s).all()]
            if rows:  # written before non-finite data was refused
                episode, start = cache.index[rows[0][0]]
                raise ValueError(f"latent cache {str(path)!r} holds non-finite actions/states (episode {episode}, "
                                 f"window at frame {start}): fix the dataset and delete that folder")
            return cache
        meta = cls._build(spec, embodiment, vae, tokenizer, tier, use_system_prompt, batch_size, progress, partial,
                          shard_windows, what, dataset, checked).meta  # its maps of the shards let go before the rename
        if not (path / CACHE_META).exists():
            meta["fingerprint"] = key
            meta["data_key"] = data_key(spec, embodiment, tier)  # what `cache_may_serve` reads before weights load
            write_json_atomic(partial / CACHE_META, meta)
            try:  # one rename, which never takes the place of a folder holding anything (another run's cache)
                os.rename(partial, path)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not isinstance(exc, FileExistsError):
                    raise
                if not (path / CACHE_META).exists():  # a folder of that name that is no finished cache
                    replace_folder(partial, path)
        if os.path.lexists(partial):  # a run sharing data.cache_dir finished this very cache as this one encoded into
            # the same `partial` (renamed away from under it): read, never replaced (its ranks may be reading it)
            logger.info("latent cache finished by another run meanwhile: %s", path)
            shutil.rmtree(partial, ignore_errors=True)  # what this one wrote since: the finished cache holds it all
        return cls.load(path)  # read as a cache hit is

    @classmethod
    def _build(cls, spec, emb, vae, tokenizer, tier, use_system_prompt, batch_size, progress, partial: Path,
               shard_windows: int, what: str, dataset=None, checked: bool = False) -> LatentCache:
        """Encode the windows `partial` does not hold yet, after those it does. Every `shard_windows` new windows or
        `SHARD_SECONDS`, whichever comes first, and when the build stops on any error or Ctrl-C, the windows encoded
        since the last shard are written to a new one (atomically, Ctrl-C held until it is written): a kill loses at
        most that much, anything else nothing but the batch being encoded. Shards end where a batch does, so a
        continued build encodes the very batches an uninterrupted one would (the same `batch_size`). A shard's
        latents, once written, are held as a memory map of it (`_read_shard`): the build holds in RAM the latents of at
        most a shard and a batch, whatever the dataset's size."""
        from ..data.sampling import caption_variants
        from ..engine.sampler import encode_latents
        from ..logcapture import progress_bar

        dataset = _opened(spec.dataset, dataset)
        kept = cls._kept(partial, spec, dataset)
        latents, actions, valid, states, ids, index = (kept.latents, kept.actions, kept.valid, kept.states,
                                                       kept.captions, kept.index)
        pending: list[torch.Tensor] = []
        latent_hw = (0, 0)
        caption_ids: dict[tuple[str, int, int], list[list[int]]] = {}
        saved, last = len(kept), time.monotonic()  # windows in shards; when the last shard was written

        def flush() -> None:
            if pending:
                encoded = encode_latents(vae, torch.cat(pending))[:, :, :, : latent_hw[0], : latent_hw[1]].cpu()
                if spec.augment is not None:  # a window's copies one tensor, [copies, C, T, h, w]
                    encoded = encoded.unflatten(0, (-1, spec.augment.copies))
                latents.extend(encoded.unbind(0))
                pending.clear()

        def write_shard() -> None:
            nonlocal saved, last
            done = len(latents)  # the windows queued for the batch being encoded have actions but no latents yet
            if done > saved:
                shard = cls(latents[saved:done], actions[saved:done], valid[saved:done],
                            states[saved:done] if emb.state_history else None, ids[saved:done], index[saved:done], {})
                file = partial / SHARD_NAME.format(saved)
                with sigint_deferred():
                    shard.save(file)
                    latents[saved:done] = _read_shard(file).latents
                    saved = done
            last = time.monotonic()

        total = count_windows(spec, dataset)
        if saved:
            logger.info("continuing the latent cache: %d of %d windows already encoded (kept in %s)", saved, total,
                        partial)
        bar = progress_bar(total=total, initial=saved, desc=f"encoding {what}", unit="win", disable=not progress)
        try:
            for window in iter_windows(spec, emb, skip=saved, dataset=dataset, checked=checked):
                for frames in window_views(spec, window):
                    canvas, info = prepare_canvas(frames, tier, spec.chunk_size + 1, emb.snap_to_16)
                    pending.append(canvas)
                latent_hw = (info.latent_h, info.latent_w)
                key = (window.task, info.canvas_h, info.canvas_w)
                if key not in caption_ids:
                    caption_ids[key] = [
                        tokenize(tokenizer, build_caption(emb.prompt_format, task, emb.view_point, spec.chunk_size + 1,
                                                          emb.fps, info.canvas_h, info.canvas_w, emb.view_description),
                                 use_system_prompt)
                        for task in caption_variants(window.task)
                    ]
                actions.append(window.actions)
                valid.append(window.valid)
                states.append(window.state)
                ids.append(caption_ids[key])
                index.append((window.episode, window.start))
                if len(pending) >= batch_size:  # a window's copies together
                    flush()
                    if len(latents) - saved >= shard_windows or time.monotonic() - last >= SHARD_SECONDS:
                        write_shard()
                bar.update(1)
            flush()
            write_shard()  # the last windows too: the finished cache is its shards
        except BaseException:
            write_shard()  # what was encoded before it stopped: the next build continues after it
            if saved:
                logger.warning("latent cache stopped at %d of %d windows encoded: they are kept in %s, and a rerun on "
                               "the same data continues from them", saved, total, partial)
            raise
        finally:
            bar.close()
        if not latents:
            raise ValueError(f"data.dataset {spec.dataset!r} yielded no training windows of chunk {spec.chunk_size}")
        meta = {"embodiment": emb.key, "chunk_size": spec.chunk_size, "tier": tier, "windows": len(latents)}
        if spec.augment is not None:
            meta["augment_copies"] = spec.augment.copies
        return cls(latents, actions, valid, states if emb.state_history else None, ids, index, meta)

    @classmethod
    def _kept(cls, partial: Path, spec: WindowSpec, dataset=None) -> LatentCache:
        """The windows an interrupted build kept in `partial` (its shards in order; none when there are none), checked
        to be the first windows of `window_order(spec)`. `states` holds None per window for a layout without them."""
        kept = cls([], [], [], [], [], [], {})
        order: np.ndarray | None = None
        for shard in sorted(partial.glob(SHARD_GLOB)):
            part = _read_shard(shard)
            order = order if order is not None else window_order(spec, dataset)
            expected = order[len(kept):len(kept) + len(part)]
            got = np.asarray(part.index, dtype=np.int64).reshape(-1, 2)
            if shard.name != SHARD_NAME.format(len(kept)) or not np.array_equal(got, expected):
                raise ValueError(
                    f"{str(partial)!r} holds an interrupted latent-cache build whose {shard.name} is not the next "
                    f"windows of data.dataset after the {len(kept)} before it (windows in shards follow the dataset's "
                    "order); delete that folder to encode from the start"
                )
            kept._extend(part)
        return kept

    def _extend(self, part: LatentCache) -> None:
        """Append `part`'s windows (a shard's, `_read_shard`), its states None each where it holds none."""
        self.latents += part.latents
        self.actions += part.actions
        self.valid += part.valid
        self.states += part.states if part.states is not None else [None] * len(part)
        self.captions += part.captions
        self.index += part.index

    def save(self, path: Path) -> None:
        """Write these windows as one shard of a build (a safetensors file, its latents stacked); the cache's meta is
        not in it (`self.meta` is written beside the shards, `CACHE_META`, once the build is finished)."""
        from safetensors.torch import save_file

        rows = [tok for captions in self.captions for tok in captions]  # every phrasing of every window, in order
        lengths = [len(t) for t in rows]
        ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
        for i, tok in enumerate(rows):
            ids[i, : lengths[i]] = torch.tensor(tok)
        tensors = {
            "latents": torch.stack(self.latents).contiguous(),
            "actions": torch.from_numpy(np.stack(self.actions).astype(np.float64)),
            "valid": torch.from_numpy(np.stack(self.valid).astype(np.uint8)),
            "index": torch.tensor(self.index, dtype=torch.long),
            "token_ids": ids,
            "token_lengths": torch.tensor(lengths),
            "caption_counts": torch.tensor([len(c) for c in self.captions]),
        }
        if self.states is not None:
            tensors["states"] = torch.from_numpy(np.stack(self.states).astype(np.float64))
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp))

    @classmethod
    def load(cls, folder: str | Path) -> LatentCache:
        """The finished cache in `folder` (`cache_folder`): its shards' windows in order (`_read_shard`), its latents
        views of memory maps of them: nothing of them is read until a window's are used, then only that window's
        pages, which the system may drop again (they are the files', not the process's), and the processes of a
        multi-GPU run share them. The rest (actions, flags, caption ids: about 1-3 KiB a window with the objects
        holding them, `window_ram`) is read now."""
        folder = Path(folder)
        meta = read_json(folder / CACHE_META, f"latent cache meta {str(folder / CACHE_META)!r}")
        cache = cls([], [], [], [], [], [], meta)
        for shard in sorted(folder.glob(SHARD_GLOB)):
            cache._extend(_read_shard(shard))
        if len(cache) != meta.get("windows"):
            raise ValueError(f"latent cache {str(folder)!r} holds {len(cache)} windows in its shards, not the "
                             f"{meta.get('windows')} it was built with: delete that folder to encode it again")
        if not cache.states or cache.states[0] is None:  # a layout without states (its build wrote none)
            cache.states = None
        return cache


def _read_shard(path: Path) -> LatentCache:
    """One shard `LatentCache.save` wrote (its meta {}: the cache's is `CACHE_META`), its latents one view a window
    of safetensors' own copy-on-write memory map of the file (`get_tensor`, for torch): read when a window's are used,
    only its pages. Its caption ids are one list for the windows of one task (thousands of windows each, hundreds of
    ids a phrasing)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        t = {k: f.get_tensor(k) for k in f.keys()}
    rows = iter(row[:n].tolist() for row, n in zip(t["token_ids"], t["token_lengths"].tolist()))
    shared: dict[tuple[tuple[int, ...], ...], list[list[int]]] = {}
    captions = [shared.setdefault(tuple(map(tuple, phrasings)), phrasings)
                for phrasings in ([next(rows) for _ in range(count)] for count in t["caption_counts"].tolist())]
    states = list(t["states"].numpy()) if "states" in t else None
    return LatentCache(list(t["latents"].unbind(0)), list(t["actions"].numpy()), list(t["valid"].bool().numpy()),
                       states, captions, [tuple(x) for x in t["index"].tolist()], {})


class MixtureSampler:
    """Which window each batch position of a mixture trains on (`[[data.mixture]]`): the position's source drawn by
    the sources' weights, then that source's next window in its own order, a permutation per pass over its windows
    (each window once a pass, as a single dataset's epochs are). Reproducible from the seed alone: step s's sources
    are drawn from a generator seeded by (seed, s, 5), source j's pass e is the permutation seeded by (seed, 6, j, e).
    Which window a draw takes depends on how often its source was drawn before, the sampler's state (`state_dict`:
    the next step and each source's draws so far), saved with each checkpoint and restored on resume, so a resumed
    run draws what the unbroken one would; a sampler asked for another step than its next replays the draws from the
    start (the same numbers, only slower)."""

    def __init__(self, weights: Sequence[float], sizes: Sequence[int], seed: int, batch_size: int):
        self.probs = np.asarray(weights, dtype=np.float64) / float(np.sum(weights))
        self.sizes = [int(n) for n in sizes]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int).tolist()
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.step, self.drawn = 0, [0] * len(self.sizes)
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "drawn": list(self.drawn)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        drawn = [int(n) for n in state["drawn"]]
        if len(drawn) != len(self.sizes):
            raise ValueError(f"the mixture sampler's saved state counts draws of {len(drawn)} sources, but the run "
                             f"trains on {len(self.sizes)}")
        self.step, self.drawn = int(state["step"]), drawn

    def sources(self, step: int) -> np.ndarray:
        """The source of each batch position of step `step` (indices into the sources)."""
        rng = np.random.default_rng([self.seed, step, 5])
        return rng.choice(len(self.probs), size=self.batch_size, p=self.probs)

    def picks(self, step: int) -> list[int]:
        """Step `step`'s windows, as indices into the sources' windows joined (`LatentCache.joined`)."""
        if step < self.step:
            self.step, self.drawn = 0, [0] * len(self.sizes)
        while self.step < step:
            self._take(self.step)
        return self._take(step)

    def _take(self, step: int) -> list[int]:
        picks = []
        for source in self.sources(step).tolist():
            epoch, offset = divmod(self.drawn[source], self.sizes[source])
            key = (source, epoch)
            if key not in self._orders:
                self._orders = {k: v for k, v in self._orders.items() if k[0] != source}  # one pass kept a source
                self._orders[key] = np.random.default_rng([self.seed, 6, source, epoch]).permutation(
                    self.sizes[source])
            picks.append(self.offsets[source] + int(self._orders[key][offset]))
            self.drawn[source] += 1
        self.step = step + 1
        return picks
