"""Turn dataset episodes into Cosmos3 training examples: a (chunk+1)-frame window, its action chunk and a caption.

Alignment follows the model (cosmos3-model.md §3): action i is the transition into pixel frame i+1, so a window that
starts at frame t pairs frames t..t+chunk with the actions recorded at frames t..t+chunk-1. Every mode sees the same
window; the mode says what the trainer conditions on (§7): policy keeps frame 0 clean and generates the rest and the
actions, forward dynamics also keeps the actions clean, inverse dynamics keeps every frame clean and generates actions.
Actions stay in the dataset's physical units; normalisation and gripper flips belong to `worldpolicy.processing`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embodiments import Embodiment, get_embodiment
from ..errors import is_integer, is_real
from ..processing.observations import wire_key
from ..results import MODES
from .layout import CAPTION_SEP, NUMERIC_DTYPES
from .lerobot import LeRobotDataset
from .observations import STATE_FEATURE, default_state_keys


@dataclass
class TrainingExample:
    """One training window. `frames` is the first of `video_keys`; `views` holds every requested camera."""

    mode: str
    frames: np.ndarray  # uint8 [chunk+1, H, W, 3]
    actions: np.ndarray  # float32 [chunk, action_dim], physical units
    action_is_pad: np.ndarray  # bool [chunk]: rows repeated past the episode end (mask them out of the loss)
    task: str
    episode_index: int
    start: int  # frame index of frames[0] within its episode
    state: np.ndarray | None = None  # float32 [action_dim] at frame `start`, for embodiments with a state row
    views: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def wire_views(self) -> dict[str, np.ndarray]:
        """`views` keyed like an openpi observation (`observation.image.wrist_image_left` → `observation/wrist_image_left`).

        Feed them to `worldpolicy.processing.observations.frames_from_mapping(views, emb.camera_keys, emb.composite)`
        so training composes cameras exactly as inference does.
        """
        return {wire_key(k): v for k, v in self.views.items()}


def caption_variants(task: str, sep: str | None = CAPTION_SEP) -> list[str]:
    """The phrasings a task string holds (split by `sep`, blanks dropped); the string itself when it holds one."""
    options = [c.strip() for c in task.split(sep) if c.strip()] if sep and sep in task else []
    return options or [task]


def window_starts(length: int, chunk_size: int, stride: int = 1, pad: bool = False) -> range:
    """First frames of the windows an episode of `length` frames yields (full windows unless `pad`)."""
    last = length - 2 if pad else length - 1 - chunk_size
    return range(0, max(last + 1, 0), stride)


def sample_training_examples(
    dataset: LeRobotDataset,
    embodiment: str | Embodiment,
    mode: str | Mapping[str, float] = "policy",
    chunk_size: int | None = None,
    *,
    action_keys: str | Sequence[str] = "action",
    state_keys: str | Sequence[str] | None = None,
    video_keys: str | Sequence[str] | None = None,
    episodes: Sequence[int] | None = None,
    stride: int = 1,
    pad: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    caption_sep: str | None = CAPTION_SEP,
    limit: int | None = None,
    prefix: str = "",
    run_prefix: str | None = None,
) -> Iterator[TrainingExample]:
    """Training examples, decoding each episode once. Arguments are checked here, before anything is decoded.

    `mode` is one of policy / forward_dynamics / inverse_dynamics, or weights such as
    {"policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25} drawn per example. `chunk_size` defaults to
    the embodiment's. `action_keys` (and `state_keys`, used when the embodiment conditions on a state row; default
    `observation.state`, else its `observation.state.*` parts in the dataset's order, as `dataset label` and
    `dataset frame` read them) are concatenated to the embodiment's action width. Captions holding several variants
    split by `caption_sep` yield one at random (`caption_sep=None`: the caption as stored). `shuffle` permutes
    episodes and the windows within each; everything random draws from `seed`.
    `prefix` goes before the names of the arguments a training config sets (chunk_size, stride, action_keys,
    state_keys, video_keys) in errors (`data.` names them as its settings); `run_prefix`, where given, before
    chunk_size's and stride's instead (a mixture table's keys are `data.mixture[i].`, but those two are the run's,
    `data.`); `mode`, `episodes` and `limit` are no config settings (training fixes the mode and picks the episodes
    itself), so their errors name the argument.
    """
    emb = get_embodiment(embodiment)
    modes, weights = _check_mode(mode)
    run_prefix = prefix if run_prefix is None else run_prefix
    chunk = emb.chunk_size if chunk_size is None else chunk_size
    if not is_integer(chunk) or chunk < 1:
        raise ValueError(f"{run_prefix}chunk_size={chunk_size!r} must be an int >= 1")
    if not is_integer(stride) or stride < 1:
        raise ValueError(f"{run_prefix}stride={stride!r} must be an int >= 1")
    if limit is not None and (not is_integer(limit) or limit < 0):
        raise ValueError(f"limit={limit!r} must be None or an int >= 0")
    action_keys = check_keys(dataset, action_keys, emb, f"{prefix}action_keys", f"{prefix}video_keys")
    if emb.state_history:
        if state_keys is None:  # the features `dataset label` and `dataset frame` read too
            state_keys = default_state_keys(dataset)
            if not state_keys:
                raise ValueError(
                    f"embodiment {emb.key!r} conditions on a state row: pass {prefix}state_keys (the dataset has "
                    f"no numeric '{STATE_FEATURE}' nor '{STATE_FEATURE}.*' features; features: "
                    f"{dataset.feature_keys})"
                )
        state_keys = check_keys(dataset, state_keys, emb, f"{prefix}state_keys", f"{prefix}video_keys")
    cameras = _check_videos(dataset, video_keys, f"{prefix}video_keys")
    if episodes is not None and (isinstance(episodes, str) or not all(is_integer(i) for i in episodes)):
        # int() read 1.5 as episode 1, and refused "a" naming no argument
        raise ValueError(f"episodes={episodes!r:.80} must be a sequence of episode indices (ints in [0, "
                         f"{dataset.num_episodes}))")
    chosen = list(range(dataset.num_episodes)) if episodes is None else [int(i) for i in episodes]
    bad = [i for i in chosen if not 0 <= i < dataset.num_episodes]
    if bad:
        raise ValueError(f"episodes contains {bad[:5]}, outside [0, {dataset.num_episodes})")
    lengths = dataset.episode_lengths
    if not any(len(window_starts(int(lengths[i]), chunk, 1, pad)) for i in chosen):
        longest = max((int(lengths[i]) for i in chosen), default=0)
        need = 2 if pad else chunk + 1
        raise ValueError(
            f"{run_prefix}chunk_size={chunk} needs episodes of at least {need} frames; the longest selected episode "
            f"has {longest} (pass pad=True or a smaller chunk_size)"
        )

    return _examples(
        dataset=dataset,
        emb=emb,
        modes=modes,
        weights=weights,
        chunk=chunk,
        action_keys=action_keys,
        state_keys=state_keys,
        cameras=cameras,
        chosen=chosen,
        stride=stride,
        pad=pad,
        shuffle=shuffle,
        seed=seed,
        caption_sep=caption_sep,
        limit=limit,
    )


def _examples(
    *,
    dataset,
    emb,
    modes,
    weights,
    chunk,
    action_keys,
    state_keys,
    cameras,
    chosen,
    stride,
    pad,
    shuffle,
    seed,
    caption_sep,
    limit,
) -> Iterator[TrainingExample]:
    lengths = dataset.episode_lengths
    rng = np.random.default_rng(seed)
    if shuffle:
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    produced = 0
    for index in chosen:
        starts = list(window_starts(int(lengths[index]), chunk, stride, pad))
        if not starts:
            continue
        if limit is not None and produced >= limit:
            return
        ep = dataset.episode(index, videos=cameras)
        actions = np.concatenate([ep.frames[k].reshape(ep.length, -1) for k in action_keys], axis=1)
        states = (
            np.concatenate([ep.frames[k].reshape(ep.length, -1) for k in state_keys], axis=1)
            if emb.state_history
            else None
        )
        if shuffle:
            starts = [starts[i] for i in rng.permutation(len(starts))]
        for t in starts:
            if limit is not None and produced >= limit:
                return
            frame_rows = np.minimum(np.arange(t, t + chunk + 1), ep.length - 1)
            action_rows = np.arange(t, t + chunk)
            views = {k: ep.videos[k][frame_rows] for k in cameras}
            options = caption_variants(dataset.tasks[int(ep.task_index[t])], caption_sep)
            task = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
            yield TrainingExample(
                mode=modes[0] if len(modes) == 1 else modes[int(rng.choice(len(modes), p=weights))],
                frames=views[cameras[0]],
                actions=actions[np.minimum(action_rows, ep.length - 1)].astype(np.float32),
                action_is_pad=action_rows >= ep.length,
                task=task,
                episode_index=index,
                start=t,
                state=None if states is None else states[t].astype(np.float32),
                views=views,
            )
            produced += 1


def _check_mode(mode: str | Mapping[str, float]) -> tuple[list[str], np.ndarray]:
    if isinstance(mode, str):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; accepted: {', '.join(MODES)} or a mapping of them to weights")
        return [mode], np.ones(1)
    if not isinstance(mode, Mapping) or not mode:
        raise ValueError(f"mode={mode!r}; accepted: {', '.join(MODES)} or a mapping of them to weights")
    unknown = [m for m in mode if m not in MODES]
    # a string weight ("0.5") is not read as a number, and "high" no longer fails in float() without naming `mode`
    numeric = all(is_real(w, finite=False) for w in mode.values())
    weights = np.array([float(w) for w in mode.values()]) if numeric else None
    if unknown or weights is None or np.any(~np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            f"mode={dict(mode)!r}: keys must be among {', '.join(MODES)} and weights numbers >= 0 with a positive sum"
        )
    return list(mode), weights / weights.sum()


def check_keys(dataset: LeRobotDataset, keys: str | Sequence[str], emb: Embodiment, param: str,
               videos_param: str) -> list[str]:
    """`keys` as a list: `dataset`'s numeric features, together `emb.action_dim` wide, checked before any episode is
    decoded (a video, string or missing column otherwise fails mid-iteration, naming no argument). Errors name
    `param`, and `videos_param` for a video given here. Training's sampler and `dataset frame` check action and state
    keys with it, so a frame's recorded actions are refused where training would refuse them."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    missing = [k for k in keys if k not in dataset.feature_keys]
    videos = [k for k in missing if k in dataset.video_keys]  # frames, read from the video files, not the parquet
    if videos:
        raise ValueError(
            f"{param}={keys!r}: {videos} {'is a video' if len(videos) == 1 else 'are videos'}, not per-frame numbers: "
            f"give {'it' if len(videos) == 1 else 'them'} in {videos_param}; accepted here: the dataset's numeric "
            f"features {dataset.feature_keys}"
        )
    if not keys or missing:
        raise ValueError(
            f"{param}={keys!r}: {missing or 'none given'} not among the dataset's features {dataset.feature_keys}"
            f"{dataset.unknown_note(missing, dataset.feature_keys)}"
        )
    # A string or video column would pass the width check (a [1]-shaped string) and only fail once the first
    # episode is decoded, mid-iteration; refuse it here, where the argument is named.
    for k in keys:
        dtype = dataset.features[k]["dtype"]
        if dtype not in NUMERIC_DTYPES:
            raise ValueError(
                f"{param}={keys!r}: {k!r} has dtype {dtype!r}; accepted: numeric features "
                f"({', '.join(NUMERIC_DTYPES)})"
            )
    width = sum(dataset.features[k]["shape"][0] for k in keys)
    if width != emb.action_dim:
        raise ValueError(
            f"{param}={keys!r} give {width} values per frame but embodiment {emb.key!r} has action_dim "
            f"{emb.action_dim} ({', '.join(emb.columns)})"
        )
    return keys


def _check_videos(dataset: LeRobotDataset, video_keys: str | Sequence[str] | None, param: str) -> list[str]:
    available = dataset.video_keys
    if not available:  # "ambiguous ... video features []" said nothing of what is wrong
        raise ValueError(f"{param}: the dataset has no video or image features; a training example needs frames"
                         f"{dataset.unread_note(dataset.unread_features)}")
    if video_keys is None:
        if len(available) != 1:
            raise ValueError(f"{param}=None is ambiguous: the dataset has video features {available}; name them")
        return available
    keys = [video_keys] if isinstance(video_keys, str) else list(video_keys)
    missing = [k for k in keys if k not in available]
    if not keys or missing:
        raise ValueError(
            f"{param}={keys!r}: {missing or 'none given'} not among the dataset's video features {available}"
            f"{dataset.unknown_note(missing, available)}"
        )
    return keys
