"""`Policy`: observation + task → action chunk (and the imagined future), plus forward and inverse dynamics.

The flow is one way: user inputs → `processing` (frames, canvas, caption, tokens, model-space actions) → `engine`
(sampling) → postprocess (physical units, named columns, uint8 video) → `Prediction`. Every input is validated before
the VAE or transformer runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import gc
import inspect
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from .embodiments import (
    EMBODIMENT_FILE,
    SPEC_FILE_SUFFIX,
    Embodiment,
    check_chunk_size,
    check_resolution_tier,
    embodiment_from_spec,
    get_embodiment,
    list_embodiments,
    read_spec_file,
    stateless_hint,
)
from .errors import is_integer, is_real
from .fileio import TRAINER_STATE_FILE, NewerFormatError, read_trainer_state
from .logcapture import quiet_loading, request_index, said_before
from .models import announced_training_seeds, portable_checkpoint, resolve_checkpoint
from .processing.actions import (
    ACTION_SPACES,
    PHYSICAL_FLOAT32_ACCEPTED,
    PREFIX_MODE,
    action_prefix_rows,
    actions_rate_warning,
    actions_where,
    beyond_float32,
    fit_to_chunk,
    load_actions,
    out_of_range_columns,
    out_of_range_warning,
    to_model,
    to_physical,
)
from .processing.actions import state_numbers as _numbers
from .processing.clip import (
    ClipWindows,
    check_clip_options,
    frame_rate_warning,
    read_clip,
)
from .processing.observations import (
    CROP_AREA,
    SINGLE_VIEW_KEYS,
    camera_views,
    canvas_bin,
    center_crop,
    check_canvas,
    clip_views,
    compose_views,
    composite_mismatch,
    fixed_places,
    frame_keys,
    frames_size_warning,
    load_frames,
    model_uint8,
    prepare_canvas,
    recorded_canvas,
    single_view_warning,
    stretch_warning,
    trained_on_one_view,
)
from .processing.prompts import build_caption, check_task, tokenize
from .processing.trajectory import (
    TrajectoryChunks,
    check_trajectory_options,
    long_rollout_warning,
    trajectory_actions,
)
from .results import MODES, Prediction

if TYPE_CHECKING:  # torch loads with the first checkpoint, not with this module
    import torch

logger = logging.getLogger(__name__)

# The modes whose video is decoded unless a request says decode_video=False: forward dynamics' answer is its imagined
# rollout; policy and inverse dynamics answer with actions, and a decode would cost a VAE pass nobody asked for.
DECODE_VIDEO_MODES = ("forward_dynamics",)


@dataclass
class PolicyRequest:
    """One call's inputs, for `Policy.act_batch` (several requests share the model's forward passes).

    `decode_video=None` follows the mode (`decodes_video`): forward dynamics returns its imagined video, as
    `Policy.imagine` and the server do, unless `decode_video=False`; the other modes only when `decode_video=True`.
    `action_prefix` (policy mode alone): real-time chunking, rows [d, action_dim] (1 <= d <= chunk_size - 1) in the
    units and columns of `Prediction.actions` that the robot runs while this chunk is computed; row i is row i of the
    chunk, conditioned clean (normalised, clamped to the training range as training holds its rows), and the result's
    first d rows are the given ones (`Policy.act`).
    `canvas`: the canvas bin (height, width) the frames go on, one of the resolution tier's
    (`processing.observations.check_canvas`). None: the bin diffusers' pipeline picks for their aspect ratio, except
    for a video file worldpolicy wrote of the model's own frames, which records the canvas they were generated on
    (`recorded_canvas`). The model decodes whole latent cells of its content, which the aspect-ratio rule can put on
    another bin (the shipped model's 256x224 of its 256x256 goes to 320x256): pass a result's `settings["canvas_hw"]`
    with its frames (`imagine(whole_trajectory=True)`, `sim.world_model` do) to read them where they were generated.
    """

    observation: Any
    prompt: str
    mode: str = "policy"
    actions: Any = None
    actions_space: str = "physical"
    state: Any = None
    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    negative_prompt: str | None = None
    decode_video: bool | None = None
    action_prefix: Any = None
    canvas: tuple[int, int] | None = None

    @property
    def decodes_video(self) -> bool:
        """Whether this request returns video: `decode_video` when given, else its mode's default
        (`DECODE_VIDEO_MODES`). Read when the request runs, so a request whose mode is set after construction (or by
        `dataclasses.replace`) gets that mode's default."""
        return self.mode in DECODE_VIDEO_MODES if self.decode_video is None else bool(self.decode_video)


# what only a request that is given actions reads: `act` and `infer_actions` generate actions instead
_ACTIONS_OPTIONS = ("actions", "actions_space")
_PREFIX_OPTION = "action_prefix"  # what only `act` reads: the other methods generate no policy chunk


def _request(method: str, observation: Any, prompt: str, fixed: dict[str, Any], options: dict[str, Any],
             own: Callable | None = None) -> PolicyRequest:
    """A `PolicyRequest` for one of the single-call methods: `fixed` is what the method sets itself (mode, actions),
    `options` the caller's keywords; an unknown or conflicting one is named with the options accepted, `own`'s
    keyword-only parameters among them (the method's own, `whole_trajectory`, `start_frame`, ...: a list without them
    read as if the method had none). `act` and `infer_actions` take no actions, so no `actions_space` either: given
    to them it changed nothing (the result holds both spaces: `actions`, `actions_normalized`), where a caller may
    have meant it to."""
    takes_actions = fixed.get("mode") == "forward_dynamics"
    takes_prefix = fixed.get("mode") == PREFIX_MODE
    accepted = [f.name for f in fields(PolicyRequest) if f.name not in ("observation", "prompt", *fixed)
                and (takes_actions or f.name not in _ACTIONS_OPTIONS) and (takes_prefix or f.name != _PREFIX_OPTION)]
    if own is not None:
        accepted += [p.name for p in inspect.signature(own).parameters.values() if p.kind is p.KEYWORD_ONLY]
    for key, value in options.items():
        if key not in accepted:
            if key in fixed:
                why = f"{method}() sets {key} itself"
            elif key in _ACTIONS_OPTIONS:
                why = (f"{method}() takes no {key}: it generates the actions, and its result holds them in both "
                       "spaces (actions, actions_normalized); imagine() takes actions")
            elif key == _PREFIX_OPTION:
                why = (f"{method}() takes no {key}: it conditions the chunk a policy generates (act(), "
                       f"mode={PREFIX_MODE!r}) on the actions that run while it is computed")
            else:
                why = f"{method}() got an unknown option {key}={value!r}"
            raise TypeError(f"{why}; accepted: {', '.join(accepted)}")
    return PolicyRequest(observation, prompt, **fixed, **options)


def prediction_clip(video: Any, method: str) -> tuple[Any, tuple[int, int] | None]:
    """`video` as `infer_actions` reads it, and the canvas it was generated on: a call's result (`imagine`'s, or
    `act(decode_video=True)`'s) gives its frames and `settings["canvas_hw"]`, so the model's own frames go back on the
    bin they were generated on without the caller passing it; anything else is itself, with no canvas."""
    if not isinstance(video, Prediction):
        return video, None
    if video.video is None:
        raise ValueError(f"{method}(video=...) got a Prediction without a video (mode {video.mode!r}, not decoded): "
                         "give the result of imagine() or act(decode_video=True), or a clip")
    canvas = video.settings.get("canvas_hw")
    return video.video, None if canvas is None else (int(canvas[0]), int(canvas[1]))


def check_requests(requests: Any) -> None:
    """`act_batch`'s argument (local or remote): a list of `PolicyRequest`; a lone request, the likeliest slip, is
    named with how to pass it."""
    if isinstance(requests, PolicyRequest):
        raise TypeError("requests must be a list of PolicyRequest, got one PolicyRequest: pass [request]")
    if not isinstance(requests, (list, tuple)):
        raise TypeError(f"requests must be a list of PolicyRequest, got {type(requests).__name__}")
    wrong = [(i, type(r).__name__) for i, r in enumerate(requests) if not isinstance(r, PolicyRequest)]
    if wrong:
        raise TypeError(f"requests must be a list of PolicyRequest, got requests[{wrong[0][0]}] of type "
                        f"{wrong[0][1]}" + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""))


def check_progress(progress: Any) -> None:
    """`act_batch`'s `progress` (local or remote): a callable or None, refused before any work (else it fails only
    after the first step's, or the first reply's)."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable (step, total) or None, got {type(progress).__name__}")


def check_clip_progress(progress: Any) -> None:
    """`infer_actions`' `progress`: a callable, called as `act_batch`'s for each batch of windows (the caller reports
    progress its own way: no bar is shown); None, a bar over the windows when there are several; or False, neither (a
    caller with a bar of its own, as `dataset label`). Refused before any work."""
    if progress is not None and progress is not False and not callable(progress):
        raise TypeError(f"progress must be a callable (step, total), None or False, got {type(progress).__name__}")


def check_decode_video(decode_video: Any) -> None:
    """A request's `decode_video` (local or remote): True, False or None; a string such as "no" would count as True."""
    if decode_video is not None and not isinstance(decode_video, (bool, np.bool_)):
        raise ValueError(f"decode_video={decode_video!r} must be True, False or None (the mode's default: decoded "
                         f"for {', '.join(DECODE_VIDEO_MODES)})")


def start_row(mode: str) -> int:
    """The row of a state history a chunk starts from: inverse dynamics explains a clip from its first frame's state;
    the other modes act from the current, last one."""
    return 0 if mode == "inverse_dynamics" else -1


# a seed drawn for a request that gives none is below it (`fresh_seed`), and a dream's drawn seed (`WorldModelEnv`)
FRESH_SEEDS = 2**31


def fresh_seed() -> int:
    """The seed of a request that gives none, which its result records to repeat it by: below FRESH_SEEDS, short
    enough to read back and type again (one drawn from all of [0, 2**63) was a 19-digit number in every result an
    agent or a person read), and as random as a sampling seed needs."""
    return secrets.randbelow(FRESH_SEEDS)


def check_seed(seed: Any) -> int:
    """Seeds are what torch generators take: integers in [0, 2**63)."""
    if not is_integer(seed) or not 0 <= seed < 2**63:
        raise ValueError(f"seed={seed!r} must be an integer in [0, 2**63)")
    return int(seed)


def checkpoint_embodiment(path_or_id: str | Path, embodiment: str | Embodiment | None) -> str | Embodiment:
    """The embodiment a checkpoint is used with: the one it ships when none is asked for or it is asked for by its
    name (or name/variant), else the one asked for, else the registered one it was trained for (`trained_embodiment`),
    else droid. The shipped spec is not registered: a checkpoint fine-tuned from `droid/relative_pose` ships a `droid`
    spec, and loading it must not change what `droid` means to every later load in the process."""
    spec_file = Path(str(path_or_id)) / EMBODIMENT_FILE
    if spec_file.is_file():
        shipped = embodiment_from_spec(spec_file, checkpoint=True)
        if embodiment is None or (isinstance(embodiment, str) and embodiment.strip().lower() in (
                shipped.name.lower(), shipped.key.lower())):
            return shipped
    if embodiment is not None:
        return embodiment
    trained = trained_embodiment(path_or_id)
    if trained is None:
        return "droid"
    try:
        get_embodiment(trained)
    except (KeyError, ValueError) as exc:  # e.g. a name its run registered in Python, which this process has not
        raise ValueError(f"checkpoint {path_or_id} was trained for embodiment {trained!r} (its {TRAINER_STATE_FILE}), "
                         f"which cannot be built here: {exc.args[0] if exc.args else exc}; register it "
                         "(worldpolicy.embodiments.register_embodiment) or name the embodiment to use") from None
    return trained


# The records `_trainer_state` read during one `from_pretrained` (`_records_read_once`), by checkpoint: its embodiment
# (`checkpoint_embodiment`), the warning of a foreign one and the Policy's modes, frames and crop all ask for the record
_RECORDS_READ: contextvars.ContextVar[dict[str, dict[str, Any] | None] | None] = contextvars.ContextVar(
    "_RECORDS_READ", default=None)


@contextlib.contextmanager
def _records_read_once() -> Iterator[None]:
    """Within the block each checkpoint's `trainer_state.json` is read once (`_trainer_state`), so one load's checks,
    warnings and Policy judge the same record; outside it every call reads the file as it is then."""
    token = _RECORDS_READ.set({})
    try:
        yield
    finally:
        _RECORDS_READ.reset(token)


def _trainer_state(path_or_id: str | Path) -> dict[str, Any] | None:
    """A checkpoint's `trainer_state.json` (its training run's record), or None: a hub id, a folder no run saved, or a
    file this version cannot read as an object (nothing to say from it, so the checkpoint is used as it always was).
    One a newer worldpolicy wrote is refused (NewerFormatError): the embodiment and objectives it names would be
    dropped, and the checkpoint run as another robot. Read once per load (`_records_read_once`)."""
    read, key = _RECORDS_READ.get(), str(path_or_id)
    if read is not None and key in read:
        return read[key]
    try:
        state = read_trainer_state(path_or_id)
    except NewerFormatError:
        raise
    except (OSError, ValueError):
        state = None
    if read is not None:
        read[key] = state
    return state


def trained_embodiment(path_or_id: str | Path) -> str | None:
    """The registered embodiment (`name` or `name/variant`) a checkpoint's own training run trained, as its
    `trainer_state.json` records it (`config.embodiment`), or None: a hub id, a folder no run saved, a run on a spec
    (its `embodiment.json` says which). `worldpolicy train` writes embodiment.json only for a spec: a run on a
    registered entry (`bridge`, `droid/relative_pose`) is named by this record alone, which every checkpoint it saves
    and `merge-adapter` carry, so the checkpoint runs with the action head, stats, caption and variant it learned."""
    return recorded_embodiment(_trainer_state(path_or_id))


def recorded_embodiment(state: Mapping[str, Any] | None) -> str | None:
    """`trained_embodiment` from the record itself (a checkpoint's `trainer_state.json` as `read_trainer_state` read
    it; None: none), for a caller that reads the record for more than its embodiment (a model card): read once."""
    try:
        name = (state or {})["config"]["embodiment"]
    except (KeyError, TypeError):  # not a run's state as this version writes it: nothing to say
        return None
    if not isinstance(name, str) or not name.strip() or name.strip().endswith(SPEC_FILE_SUFFIX):
        return None
    return name.strip()


def trained_data_keys(path_or_id: str | Path) -> dict[str, list[str]]:
    """The dataset features a checkpoint (named as a command names it: `shipped`, a hub id's snapshot, `~/...`) was
    trained on, as its run's `trainer_state.json` records them (`config.data.action_keys`, `state_keys`): those of the
    two it names as a list of feature names; {} for a folder no run saved or a record this version cannot read. What
    an open-loop evaluation and `dataset frame --actions` read by default."""
    try:
        data = (_trainer_state(resolve_checkpoint(path_or_id)) or {})["config"]["data"]
    except (KeyError, TypeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {name: list(keys) for name in ("action_keys", "state_keys")
            if isinstance(keys := data.get(name), list) and keys and all(isinstance(k, str) and k for k in keys)}


def checkpoint_spec(path_or_id: str | Path) -> dict[str, Any] | None:
    """A checkpoint's own embodiment spec (`embodiment.json`, a `stats_file` in it from its folder as
    `embodiment_from_spec` reads it: `read_spec_file`), or None (a hub id, a checkpoint without one)."""
    spec_file = Path(str(path_or_id)) / EMBODIMENT_FILE
    return read_spec_file(spec_file, checkpoint=True) if spec_file.is_file() else None


def _warn_foreign_embodiment(path_or_id: str | Path, embodiment: Embodiment, spec: Any) -> None:
    """A checkpoint `worldpolicy train` made knows its embodiment; another one's action head may never have learned.
    A spec of one's own is told apart by name (it has one action space); a registered entry by name and variant,
    whose variants are different action spaces on one action head. `spec`: the checkpoint's `checkpoint_spec`, read
    once by the load for this and `_warn_partial_spec`."""
    if spec is not None:
        own, used = spec.get("name"), embodiment.name
    else:
        own, used = trained_embodiment(path_or_id), embodiment.key
        if own is not None:
            with contextlib.suppress(KeyError, ValueError):  # an alias, or a name without its variant: the key meant
                own = get_embodiment(own).key
    if own is not None and used.lower() != str(own).lower():
        logger.warning("checkpoint %s was trained for embodiment %r, not %r: unless its base model learned %r, expect "
                       "meaningless actions (leave the embodiment out to use the checkpoint's own)",
                       path_or_id, own, embodiment.key, embodiment.key)


# what a spec names its robot by or describes it with: not a setting the model was trained under
_NOT_SETTINGS = ("name", "variant", "variants", "aliases", "description")


def _warn_partial_spec(path_or_id: str | Path, embodiment: Embodiment, spec: Any) -> None:
    """A checkpoint's embodiment.json stands alone: a field it leaves out takes this version's default, never the
    value of the registered embodiment of the same name (which a later registry edit would change under the
    checkpoint, and which may be another robot that happens to share the name). `worldpolicy train` writes every field
    (`Embodiment.to_spec`); a hand-written or older file may not, and where the registry's entry of its name disagrees
    with a default taken (a droid spec without camera_keys reads one `observation/image`), the model may be fed inputs
    unlike its training without a word. Said, naming each such field and both values, so the file can be completed.
    `spec`: the checkpoint's `checkpoint_spec`."""
    if not isinstance(spec, Mapping) or str(spec.get("name", "")).lower() != embodiment.name.lower():
        return  # no embodiment.json, or another embodiment asked for (`_warn_foreign_embodiment` judges that)
    variants = spec.get("variants") if isinstance(spec.get("variants"), Mapping) else {}
    given = set(spec) | {key for fields in variants.values() if isinstance(fields, Mapping) for key in fields}
    if "stats_file" in given:
        given |= {"stats", "normalization"}
    try:
        base = get_embodiment(embodiment.name)
        # the registered action space it describes: the variant with its columns (droid's joint_pos has 8, its
        # relative_pose 10), else none to compare with
        registered = next(r for r in (get_embodiment(embodiment.name, v) for v in base.variants or (None,))
                          if r.columns == embodiment.columns)
    except (KeyError, ValueError, StopIteration):  # not a registered name (the usual case), or no such action space
        return
    differ = [f.name for f in fields(Embodiment) if f.name not in given and f.name not in _NOT_SETTINGS
              and getattr(registered, f.name) != getattr(embodiment, f.name)]

    def values(e: Embodiment) -> str:
        shown = {k: repr(getattr(e, k)) for k in differ}
        return ", ".join(f"{k}={v if len(v) <= 60 else v[:57] + '...'}" for k, v in shown.items())

    if differ:
        logger.warning(
            "checkpoint %s: its %s leaves out %s, so they take this version's defaults (%s), not those of the "
            "registered embodiment %r (%s): a checkpoint's %s stands alone and is never merged with a registry entry "
            "of its name. If the model was trained with the registry's, add them to the file (Embodiment.to_spec() "
            "gives every field)", path_or_id, EMBODIMENT_FILE, ", ".join(differ), values(embodiment), registered.key,
            values(registered), EMBODIMENT_FILE)


def trained_objective_weights(recorded: Any, objectives: Any) -> dict[str, float] | None:
    """The objective mix a training run trained: `recorded`, the weights its trainer_state.json records, else (a run
    from before that record) its config's `objectives` table as this version reads it (a preset expands to its mix);
    None when neither is one. The one reading of it: for the warning about untrained modes and for the run report."""
    if isinstance(recorded, Mapping):
        try:
            return {str(name): float(weight) for name, weight in recorded.items()}
        except (TypeError, ValueError):
            return None
    if not isinstance(objectives, Mapping):
        return None
    from .train.config import ObjectiveConfig  # an older run's table, read as the trainer reads one

    known = {f.name for f in fields(ObjectiveConfig)}
    try:
        return ObjectiveConfig(**{k: v for k, v in objectives.items() if k in known}).weights()
    except (TypeError, ValueError):
        return None


def recorded_untrained_modes(path_or_id: str | Path, state: Mapping[str, Any] | None) -> dict[str, str]:
    """Mode → why to distrust it, for each mode checkpoint `path_or_id`'s own training run gave objective weight 0
    (`worldpolicy train`'s default is policy alone), from its record (`trainer_state.json` as `_trainer_state` read
    it, once for all the record tells: `Policy`, `input_warnings`; None: none). Its forward or inverse dynamics is
    then only what the starting checkpoint learned, if anything, and nothing else says so: the outputs look like any
    others."""
    state = state or {}
    config = state["config"] if isinstance(state.get("config"), Mapping) else {}
    weights = trained_objective_weights(state.get("objective_weights"), config.get("objectives"))
    if weights is None:  # no run's state, or not one as this version writes it
        return {}
    mix = ", ".join(f"{name} {weight:g}" for name, weight in weights.items())
    return {mode: (f"checkpoint {path_or_id} was trained with no {mode} objective (its {TRAINER_STATE_FILE}: {mix}), "
                   f"so its {mode} is what its starting checkpoint {config.get('checkpoint')!r} learned, if anything: "
                   f"expect meaningless {'actions' if mode == 'inverse_dynamics' else 'futures'} unless it did; train "
                   f"with objectives.{mode} > 0 (or preset = \"cosmos_policy\") for this mode")
            for mode, weight in weights.items() if mode != "policy" and weight <= 0}


def _sampling(embodiment: Embodiment, preset: str | None, overrides: dict[str, Any]) -> Any:
    """The `SamplingConfig` of `preset`, else the embodiment's sampling preset, else the engine's defaults, with the
    `overrides` given. A bad steps or guidance is refused naming the default it would replace and where it comes from
    (the presets differ: `engine.schedules.PRESETS`), which the engine's own message cannot know."""
    from .engine import SamplingConfig

    name = preset if preset is not None else embodiment.sampling_preset
    try:
        return SamplingConfig.from_preset(name, **overrides) if name else SamplingConfig().updated(**overrides)
    except ValueError as exc:
        if not str(exc).startswith(("steps=", "guidance=")):
            raise
        default = SamplingConfig.from_preset(name) if name else SamplingConfig()
        where = ("the engine's defaults" if not name else f"preset {name!r}" if preset is not None else
                 f"the sampling preset {name!r} of embodiment {embodiment.key!r}")
        said = f"the default: steps {default.steps}, guidance {default.guidance:g} ({where})"
        raise ValueError(f"{exc}; {said}") from None


def trained_frames(path_or_id: str | Path) -> dict[str, Any] | None:
    """The frames a checkpoint's own training run saw (`trainer_state.json`'s `frames`, `train.data.trained_frames`:
    each camera's and the composed frame's [height, width]), or None: a hub id, a folder no run saved, or a run from
    before the record (those are used as they always were, unjudged)."""
    return recorded_frames(_trainer_state(path_or_id))


def recorded_frames(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`trained_frames` from the record itself (a checkpoint's `trainer_state.json`; None: none), as
    `recorded_untrained_modes` reads it."""
    try:
        frames = (state or {})["frames"]
        sizes = [*frames["cameras"].values(), frames["composed"]]
    except (KeyError, TypeError, AttributeError):
        return None
    if not sizes[:-1] or not all(isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and v > 0 for v in hw)
                                 for hw in sizes):
        return None
    return frames


def mixture_frames(state: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The frames each other dataset of a mixture run trained on (`trainer_state.json`'s `mixture`, each source's
    `frames`, as `recorded_frames` reads them) unlike its `frames` (its first source's), or none: a run on one dataset.
    Frames like any of them were trained on (`frames_size_warning`)."""
    first = recorded_frames(state)
    sources = (state or {}).get("mixture") if first is not None else None
    frames = [recorded_frames(source) for source in sources if isinstance(source, Mapping)] \
        if isinstance(sources, list) else []
    return [f for i, f in enumerate(frames) if f is not None and f != first and f not in frames[:i]]


def trained_center_crop(path_or_id: str | Path) -> float | None:
    """The centre crop a checkpoint's frames get at inference: `augment.crop_area` where its training run's record
    (`trainer_state.json`'s config) says it trained with `[augment]` enabled, else None (no crop: trained without it,
    a run from before the setting, a hub id, a folder no run saved); a record a newer worldpolicy wrote is refused
    (`_trainer_state`)."""
    return config_center_crop((_trainer_state(path_or_id) or {}).get("config"))


def config_center_crop(config: Any) -> float | None:
    """The centre crop inference gives the frames of a model trained with training config `config` (a run's
    `trainer_state.json` "config", a dict): its `augment.crop_area` with `[augment]` enabled and the area below 1,
    else None (no crop; a config from before the setting, or none)."""
    try:
        augment = config["augment"]
        area = float(augment["crop_area"]) if augment["enabled"] is True else None
    except (KeyError, TypeError, ValueError):
        return None
    return area if area is not None and 0 < area < 1 else None


def resolved_center_crop(source: str | Path | None, center_crop: bool | float | None) -> float | None:
    """The share of each frame's area a `Policy` of `source` crops from its centre (`Policy.center_crop`), from
    `from_pretrained`'s `center_crop` (checked: `check_center_crop`) and the checkpoint's record
    (`trained_center_crop`): known before the weights load (`worldpolicy sim --resume` compares it). None: no crop."""
    return _chosen_center_crop(trained_center_crop(source) if source else None, center_crop)


def _chosen_center_crop(recorded: float | None, center_crop: bool | float | None) -> float | None:
    """`resolved_center_crop` from the crop the checkpoint's record says (`config_center_crop`; None: none)."""
    if center_crop is None or center_crop is True:
        return recorded if center_crop is None else recorded or CROP_AREA
    return None if center_crop is False or center_crop == 1 else float(center_crop)


def check_center_crop(center_crop: Any) -> None:
    """`center_crop`: None (as the checkpoint's record says), a bool, or a share of the frame's area in (0, 1]."""
    if center_crop is None or isinstance(center_crop, bool):
        return
    if not is_real(center_crop) or not 0 < center_crop <= 1:
        raise ValueError(f"center_crop={center_crop!r}: accepted: None (as the checkpoint's training record says), "
                         f"False (no crop), True (the record's crop, else the recipe's {CROP_AREA}) or a share of the "
                         "frame's area in (0, 1]")


@dataclass(frozen=True)
class ListedEmbodiment:
    """One embodiment a user may name: `shipped` and `checkpoint` say which shipped model it comes with (its own
    embodiment.json), or are None for a registry entry, which any checkpoint whose action head learned it runs."""

    embodiment: Embodiment
    shipped: str | None = None
    checkpoint: Path | None = None


def listed_embodiments() -> list[ListedEmbodiment]:
    """The registry's embodiments (each variant), then each shipped model's own, which comes with its checkpoint rather
    than the registry: a user who ran `worldpolicy demo` looks for `panda_reach`. Read as loading reads it
    (`checkpoint_embodiment`: no weights, not registered), which is why it lives here and not in `models`, below
    loading. The one listing `worldpolicy embodiments` prints and the agents' `list_embodiments` returns."""
    from .models import SHIPPED, shipped_model

    rows = []
    for name in list_embodiments():
        base = get_embodiment(name)
        for variant in base.variants or (base.variant,):
            rows.append(ListedEmbodiment(get_embodiment(name, variant if base.variants else None)))
    for name in SHIPPED:
        try:
            folder = shipped_model(name)
        except FileNotFoundError:  # an install without it
            continue
        own = checkpoint_embodiment(folder, None)
        if isinstance(own, str):  # no embodiment.json: it runs as a registry entry, listed above
            continue
        rows.append(ListedEmbodiment(own, name, folder))
    return rows


def physical_state_row(state: Any, embodiment: Embodiment, mode: str) -> np.ndarray:
    """A state as given (one row, or a history [T, dim] read at `start_row(mode)`) as the physical row a chunk starts
    from, [dim] float64, or an error naming its shape or its non-finite columns. What a run conditions on
    (`Policy._state_row`) and what `range_warnings` judges before the weights load."""
    e = embodiment
    state = _numbers(state, "state")
    if state.ndim == 2 and state.shape[1] == e.action_dim:  # a history [T, dim]: the row the chunk starts from
        state = state[start_row(mode)]
    if state.size != e.action_dim:
        # rows of joints alone ([T, 7] for droid) read as "21 values" said nothing of the shape that was wrong
        raise ValueError(f"state has shape {tuple(state.shape)} but embodiment {e.key!r} expects {e.action_dim} "
                         f"values ({', '.join(e.columns)}) or rows [T, {e.action_dim}]")
    state = state.reshape(-1)
    if (beyond := beyond_float32(state, e)).any():
        bad = [c for c, b in zip(e.columns, beyond) if b]
        raise ValueError(f"state contains NaN, inf or values beyond float32 in {', '.join(bad)} (given "
                         f"{state.tolist()}); accepted: {PHYSICAL_FLOAT32_ACCEPTED}, one per column "
                         f"({', '.join(e.columns)})")
    return state


def observation_state(observation: Mapping[str, Any], embodiment: Embodiment, mode: str) -> np.ndarray:
    """The state an observation dict carries under the embodiment's `state_keys` (joints [n] or [T, n], gripper scalar,
    [T] or [T, 1]), as one physical row [n + 1] at `start_row(mode)`: the current state, or the first frame's for a
    clip to explain. What a run conditions on when no `state=` is given (`Policy._state_row`), what a
    `RemotePolicy` sends as the wire's `state` beside an inverse-dynamics clip, and what a server reads from the keys
    a raw client sends beside `video` (`serving.adapters`); one reading, so that a dict gives the same state locally
    and remotely. KeyError naming the keys missing."""
    e, keys = embodiment, embodiment.state_keys
    missing = [k for k in (keys.get("joints"), keys.get("gripper")) if k and k not in observation]
    if missing:
        raise KeyError(
            f"observation is missing state keys {missing}; embodiment {e.key!r} conditions on the current "
            f"state ({', '.join(e.columns)}); pass them in the observation dict or as state=[...] (--state on the "
            "command line)"
        )
    at = start_row(mode)
    joints = _numbers(observation[keys["joints"]], f"observation[{keys['joints']!r}]")
    gripper = _numbers(observation[keys["gripper"]], f"observation[{keys['gripper']!r}]")
    joints = joints.reshape(-1, joints.shape[-1])[at] if joints.ndim > 1 else joints.reshape(-1)
    gripper = gripper.reshape(-1, gripper.shape[-1])[at] if gripper.ndim > 1 else gripper.reshape(-1)[at:][:1]
    n_joints = e.action_dim - 1
    if joints.shape[0] != n_joints or gripper.shape[0] != 1:
        raise ValueError(
            f"observation[{keys['joints']!r}] has {joints.shape[0]} values and observation[{keys['gripper']!r}] "
            f"{gripper.shape[0]}; embodiment {e.key!r} expects {n_joints} joints and 1 gripper value "
            f"({', '.join(e.columns)})"
        )
    return np.concatenate([joints, gripper])


class Policy:
    """A loaded Cosmos3 checkpoint bound to one embodiment (action space, stats, cameras, prompt format)."""

    def __init__(self, engine, embodiment: Embodiment, sampling, *, chunk_size: int | None = None,
                 resolution_tier: int | None = None, source: str = "", seed: int | None = None,
                 said: set[tuple[Any, ...]] | None = None, center_crop: bool | float | None = None):
        from .engine import SamplingConfig
        from .engine.loading import check_action_head
        from .engine.schedules import make_scheduler

        self.engine = engine
        self.embodiment = embodiment
        self.sampling: SamplingConfig = sampling
        # a schedule the checkpoint's scheduler cannot honour (a shift or native grid on its Karras sigmas) fails
        # here, not after a request's VAE encode (`check_pretrained` says it before a local checkpoint's weights load)
        make_scheduler(engine.scheduler, sampling, engine.use_native_flow_schedule)
        self._schedules: dict[tuple[Any, ...], dict[str, Any]] = {}  # `_schedule_used`, per distinct schedule
        self.chunk_size = int(chunk_size if chunk_size is not None else embodiment.chunk_size)
        check_chunk_size(self.chunk_size)
        self.resolution_tier = int(resolution_tier if resolution_tier is not None else embodiment.resolution_tier)
        check_resolution_tier(self.resolution_tier)
        self.source = source
        # the checkpoint as a saved setting names it (`shipped`, not this install's folder), as dream's: once, not per
        # request (`models.portable_checkpoint` resolves paths)
        self._checkpoint_setting = str(portable_checkpoint(source)) if source else source
        self._next_seed = None if seed is None else check_seed(seed)
        # the warnings said, each as its kind and what it was said of (`_once`): a control loop sends the same inputs,
        # and the same mistakes, every call. `said`: a set shared by policies built over one run (a training run's
        # validations build one on the live weights each time), so each is said once a run. A server's requests are
        # judged against their own client's record instead (`said_before`): each client is told of its own mistakes
        self._said: set[tuple[Any, ...]] = set() if said is None else said
        # the checkpoint's training record, read once for what it says of the modes, frames and crop
        record = _trainer_state(source) if source else None
        self._untrained = recorded_untrained_modes(source, record)  # each warned about once, at its first request
        self._trained_frames = recorded_frames(record)
        self._mixture_frames = mixture_frames(record)  # a mixture run's other sources' frames, judged alike
        check_action_head(engine.transformer.config, source, embodiment)
        check_center_crop(center_crop)
        # the share of each frame's area cropped from its centre and resized back before the model sees it (a run
        # with `[augment]` trained on crops of it); None: none. `center_crop`: None, as the checkpoint's record says
        self.center_crop: float | None = _chosen_center_crop(config_center_crop((record or {}).get("config")),
                                                             center_crop)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        embodiment: str | Embodiment | None = None,
        *,
        variant: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        preset: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        schedule: str | None = None,
        shift: float | None = None,
        native_grid: bool | None = None,
        chunk_size: int | None = None,
        resolution_tier: int | None = None,
        seed: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        progress: bool = True,
        center_crop: bool | float | None = None,
    ) -> Policy:
        """Load `path_or_id` (a folder, a hub id, or `shipped`: the model in the package) for `embodiment`. Sampling: `preset`, else the embodiment's preset (e.g. the released DROID
        settings for `droid/joint_pos`), else 4 steps / CFG 3 on the checkpoint's schedule; explicit args win.
        `seed` makes the per-request seeds a deterministic sequence (RoboLab's `--deterministic-seed`).
        `embodiment=None` uses the checkpoint's own (`checkpoint_embodiment`: the `embodiment.json` or the registered
        name in `trainer_state.json` that `worldpolicy train` writes), else droid. `device` and `dtype`: a torch device
        and dtype, or their names in any case (`"cuda:1"`, `"BF16"`, `"torch.float16"`); None: CUDA in bf16 where
        there is a GPU (fp32 on one older than Ampere, which lacks bf16 arithmetic), else the CPU in fp32
        (`engine.loading.resolve_device`, `resolve_dtype`). `compile=True` runs the generation tower through
        torch.compile; `cuda_graphs=True` (CUDA only) compiles it with CUDA graphs,
        the faster on a GPU: either compiles on the first call of each new shape (prompt length, batch), which then
        takes far longer (README "Speed" has both figures). `progress=False`:
        the weights load without diffusers' "Loading pipeline components" bar (`logcapture.quiet_loading`, which a
        quiet block around the call gives too). `center_crop`: the frames' centre crop (`Policy.center_crop`): None,
        the one a run trained with `[augment]` recorded (`trained_center_crop`; none otherwise); False, none; True, the
        recorded one, else the Cosmos Policy recipe's 0.9 (a checkpoint trained with its augmentation elsewhere); or a
        share of the area in (0, 1]."""
        from .engine import Engine
        from .engine.loading import load_components

        if not isinstance(progress, bool):  # a string such as "no" would count as True
            raise TypeError(f"progress={progress!r}: accepted: True (diffusers' loading bar) or False (none)")
        path_or_id = resolve_checkpoint(path_or_id)
        if seed is not None:
            check_seed(seed)
        with _records_read_once():  # the embodiment, its warning and the Policy read the one trainer_state.json
            emb, sampling, torch_device, torch_dtype = cls.check_pretrained(
                path_or_id, embodiment, variant=variant, device=device, dtype=dtype, preset=preset, steps=steps,
                guidance=guidance, schedule=schedule, shift=shift, native_grid=native_grid, chunk_size=chunk_size,
                resolution_tier=resolution_tier, compile=compile, cuda_graphs=cuda_graphs, center_crop=center_crop,
            )
            spec = checkpoint_spec(path_or_id)  # read once for both warnings
            _warn_foreign_embodiment(path_or_id, emb, spec)
            _warn_partial_spec(path_or_id, emb, spec)
            with quiet_loading(not progress):
                parts = load_components(path_or_id, torch_device, torch_dtype, checked=True)  # by check_pretrained
            engine = Engine(
                parts["transformer"], parts["vae"], parts["tokenizer"], parts["scheduler"],
                use_native_flow_schedule=parts["use_native_flow_schedule"],
                default_use_system_prompt=parts["default_use_system_prompt"],
                compile=compile, cuda_graphs=cuda_graphs,
            )
            return cls(engine, emb, sampling, chunk_size=chunk_size, resolution_tier=resolution_tier,
                       source=str(path_or_id), seed=seed, center_crop=center_crop)

    @staticmethod
    def check_pretrained(
        path_or_id: str | Path,
        embodiment: str | Embodiment | None = None,
        *,
        variant: str | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        preset: str | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        schedule: str | None = None,
        shift: float | None = None,
        native_grid: bool | None = None,
        chunk_size: int | None = None,
        resolution_tier: int | None = None,
        compile: bool = False,
        cuda_graphs: bool = False,
        memory: bool = True,
        center_crop: bool | float | None = None,
    ) -> tuple[Embodiment, Any, Any, Any]:
        """Every check `from_pretrained` makes before it reads weights, from the arguments and a local checkpoint's
        configs and file headers (a few KB); returns (embodiment, sampling, device, dtype). A caller that loads later
        (a server opening its port first) calls it up front, so a bad argument or a partial checkpoint fails at once
        and names itself. `memory=False`: the weights are not judged against this machine's memory
        (`engine.loading.check_memory`), for a caller whose model loads on other machines (`serve --replicas`'s
        Ray replicas, whose own loads judge theirs)."""
        from .engine.sources import check_checkpoint_source

        path_or_id = resolve_checkpoint(path_or_id)
        check_center_crop(center_crop)
        check_checkpoint_source(path_or_id)  # a wrong path said in a second, before torch imports (seconds)
        from .engine.loading import (
            check_action_head,
            check_compile_options,
            check_loadable,
            local_scheduler,
            local_transformer_config,
            resolve_device,
            resolve_dtype,
        )
        from .engine.schedules import make_scheduler

        chosen = checkpoint_embodiment(path_or_id, embodiment)
        if embodiment is None and variant is not None and isinstance(chosen, str):
            chosen = chosen.partition("/")[0]  # the robot it was trained for, in the variant asked for
        emb = get_embodiment(chosen, variant)
        overrides = dict(steps=steps, guidance=guidance, schedule=schedule, shift=shift, native_grid=native_grid)
        sampling = _sampling(emb, preset, overrides)
        check_chunk_size(chunk_size if chunk_size is not None else emb.chunk_size)
        check_resolution_tier(resolution_tier if resolution_tier is not None else emb.resolution_tier)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        check_compile_options(torch_device, compile, cuda_graphs)
        # what the folder holds, not only where it is: a server opening its port first, and the command line's input
        # checks, refuse a partial download (a part, shard or config missing, a file cut short) naming the file,
        # rather than the load after them; a model past the RAM is refused, not killed by the system, and before a
        # hub id's weights download
        check_loadable(path_or_id, torch_device, torch_dtype, memory=memory, located=True)  # its place: checked above
        transformer_config = local_transformer_config(path_or_id)
        if transformer_config is not None:
            check_action_head(transformer_config, str(path_or_id), emb)
        local = local_scheduler(path_or_id)
        if local is not None:  # e.g. a shift on Karras sigmas (an adapter, its base by hub id: once it is loaded)
            scheduler, native = local
            make_scheduler(scheduler, sampling, native)
        return emb, sampling, torch_device, torch_dtype

    @property
    def engine(self):
        """The loaded model (transformer, VAE, tokenizer, scheduler); gone once the policy is closed (`close`)."""
        if self._engine is None:
            raise RuntimeError(f"this Policy ({self.source or 'built in code'}) is closed: its model was released by "
                               "close() or by leaving its `with` block; load the checkpoint again "
                               "(Policy.from_pretrained) to run it")
        return self._engine

    @engine.setter
    def engine(self, engine) -> None:
        self._engine = engine

    def close(self) -> None:
        """Release the model, so a process that switches checkpoints holds one at a time: the policy drops its engine
        (transformer, VAE, text cache) and, on CUDA or MPS, the allocator's cached blocks go back to the device (MPS:
        to the RAM it shares with the system). Memory
        returns once nothing else holds the engine (a trainer's previews share the trainer's). A closed policy runs
        nothing: each later call says it is closed (unlike `RemotePolicy`, whose model lives on in the server, so a
        closed one reconnects). Closing twice is harmless."""
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is None:
            return
        kind = str(engine.device).partition(":")[0]
        del engine
        gc.collect()  # anything of the model caught in a reference cycle is freed now, not at a later collection
        if kind in ("cuda", "mps"):
            import torch

            getattr(torch, kind).empty_cache()

    def __repr__(self) -> str:
        """The checkpoint, embodiment and settings a policy runs with (or that it is closed), for a notebook or log."""
        state = ("closed" if self._engine is None else
                 f"device={str(self._engine.device)!r}, dtype={str(self._engine.dtype).removeprefix('torch.')!r}")
        return (f"Policy({self.source or 'built in code'!r}, embodiment={self.embodiment.key!r}, "
                f"chunk_size={self.chunk_size}, resolution_tier={self.resolution_tier}, steps={self.sampling.steps}, "
                f"{state})")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------------------------------

    def act(self, observation: Any, prompt: str, **kwargs: Any) -> Prediction:
        """Policy: the action chunk for `observation` and task `prompt` (video of the imagined future if
        `decode_video=True`). `observation`: image/video input or an openpi-style dict with camera and state keys.

        `action_prefix` (real-time chunking; `PolicyRequest`): the rows [d, action_dim], 1 <= d <= chunk_size - 1,
        that the robot will run while this chunk is computed, in the units and columns of `Prediction.actions` (the
        previous chunk's rows for those ticks, as it reported them). They condition the chunk as clean rows, so the
        rows after them continue them; `actions[:d]` are the given rows exactly and `settings["action_prefix_rows"]`
        is d. Without it (None) the chunk is what it always was, to the bit."""
        return self.act_batch([_request("act", observation, prompt, {"mode": "policy"}, kwargs)])[0]

    def imagine(self, observation: Any, actions: Any, prompt: str, decode_video: bool | None = None, *,
                whole_trajectory: bool = False, progress: Callable[[int, int], None] | bool | None = None,
                **kwargs: Any) -> Prediction:
        """Forward dynamics: roll the world forward from `observation` under `actions` (file, array; physical units
        unless `actions_space="normalized"`); the imagined video is decoded unless `decode_video=False`. Actions
        longer than the chunk are cut to it.

        `whole_trajectory=True` rolls out every row given ([N, dim], N of any length): consecutive chunks of
        chunk_size rows, chunk 0 from `observation`, chunk j from the last imagined frame of chunk j-1 (for a
        state-conditioned embodiment with absolute joint actions, `droid/joint_pos`, from its last action as the
        state; other state-conditioned ones are refused: `check_trajectory_embodiment`). Autoregressive, so the
        chunks run one after another, never batched. Chunk j samples with seed + j (the seed drawn once when none is
        given), so it is exactly what `imagine` of its conditioning frame and rows with that seed gives; the last
        chunk is padded by repeating its last row, as the pipeline pads, and its padding's frames are dropped. The
        video is joined without repeating boundary frames, [N+1, H, W, 3] (frame 0 the observation, frame i+1 after
        action i); `settings["trajectory"]` records which actions each frame range came from and each chunk's seed.
        A long rollout is warned about: errors compound over the chunks. `progress` as `infer_actions`'
        (`check_clip_progress`), over the chunks."""
        if isinstance(actions, str) and not isinstance(prompt, str):  # act's (observation, prompt) order, kept here:
            # refused as "prompt must be a string, got ndarray", or the task read as an actions file that is not there
            raise TypeError(f"imagine(observation, actions, prompt) got actions={actions!r:.60} and a prompt of type "
                            f"{type(prompt).__name__}: the two look swapped (act takes (observation, prompt), imagine "
                            "takes the actions between them)")
        req = _request("imagine", observation, prompt, {"mode": "forward_dynamics", "actions": actions},
                       {"decode_video": decode_video, **kwargs}, own=Policy.imagine)
        check_trajectory_options(whole_trajectory, decode_video)
        check_clip_progress(progress)
        if not whole_trajectory:
            return self.act_batch([req], progress=progress if callable(progress) else None)[0]
        started = time.perf_counter()
        e = self.embodiment
        given = trajectory_actions(req.actions, e, req.actions_space, warn_range=False)
        self._warn_range(given, actions_where(req.actions))
        self._warn_rate(req.actions)
        next_seed = self._next_seed
        trajectory = TrajectoryChunks(given, self.chunk_size, self._seed(req.seed))  # drawn once the rows are read
        for j in range(trajectory.chunks):  # said above of every row: a chunk's rows are not judged again
            self._once("range", "actions", out_of_range_columns(trajectory.chunk(j), e))
        try:
            return roll_out(self.act_batch, req, trajectory, e, progress, started, self.imagined_frame_said, True)
        except Exception:
            self._next_seed = next_seed  # a refused trajectory draws no seed, as a refused batch draws none
            raise

    def infer_actions(self, video: Any, prompt: str, *, start_frame: int = 0, whole_clip: bool = False,
                      resample: bool = False, batch_size: int = 8,
                      progress: Callable[[int, int], None] | bool | None = None, **kwargs: Any) -> Prediction:
        """Inverse dynamics: the actions that explain `video`, chunk_size+1 frames from `start_frame` (a frame of the
        clip as given, from 0; a shorter rest repeats its last frame, `settings["real_rows"]`).

        `whole_clip=True` labels every frame transition of the clip (from `start_frame`), what pseudo-labelling a
        video needs: windows of chunk_size+1 frames sharing their boundary frames (frames k*chunk_size ..
        (k+1)*chunk_size), `batch_size` windows per batched forward, one seed for every window (so a window's rows
        are what `start_frame=` its first frame gives), and the rows concatenated to [frames-1, action_dim]; the
        last window's padding rows are left out. `resample=True` reads a clip recorded at another rate than the
        embodiment's `fps` at that rate: the clip's frame nearest each of the embodiment's timestamps (the rate from
        the file: a video's stream, an animated GIF's durations); without it such a clip is warned about, since each
        action then spans another time. `settings["clip"]` records the clip's frames used (`frames_used`, indexes
        into the clip as given, one per row plus the last) and how. `progress` (`check_clip_progress`): a callable
        as `act_batch`'s, for each batch; None, a bar over several windows; False, neither. `video` may be a call's
        result (`imagine`'s, `act(decode_video=True)`'s): its frames, on the canvas they were generated on
        (`settings["canvas_hw"]`, unless `canvas=` is given; `prediction_clip`)."""
        video, canvas = prediction_clip(video, "infer_actions")
        if canvas is not None and kwargs.get("canvas") is None:  # a canvas= given is the caller's choice and wins
            kwargs = {**kwargs, "canvas": canvas}
        base = _request("infer_actions", video, prompt, {"mode": "inverse_dynamics"}, kwargs,
                        own=Policy.infer_actions)
        check_clip_options(start_frame, whole_clip, resample, batch_size)
        check_clip_progress(progress)
        if base.canvas is not None:  # before a whole clip is decoded
            check_canvas(base.canvas, self.resolution_tier)
        started = time.perf_counter()
        clip = read_clip(video, self.embodiment, self.chunk_size + 1, start_frame, whole_clip, resample)
        for message in clip.warnings:
            logger.warning("%s", message)
        if base.canvas is None:  # the file's record, read here: its windows reach `_prepare` as frames
            base = replace(base, canvas=self._recorded_canvas(video, clip.size))
        if not isinstance(video, Mapping):  # said as the file it is, before its frames are passed on in memory
            self._warn_single_view(video, *clip.size)
        if not whole_clip:
            return label_windows(self.act_batch, [replace(base, observation=clip.window(0, pad=False),
                                                          state=clip.state(base.state, 0))],
                                 clip, progress, started, False)
        next_seed = self._next_seed
        seed = self._seed(base.seed)  # one seed for every window
        try:
            requests = [replace(base, observation=clip.window(k), state=clip.state(base.state, k), seed=seed)
                        for k in range(clip.windows)]
        except Exception:
            self._next_seed = next_seed  # a refused clip draws no seed
            raise
        return label_windows(self.act_batch, requests, clip, progress, started, True, batch_size)

    def act_batch(self, requests: list[PolicyRequest], progress: Callable[[int, int], None] | None = None) -> list[Prediction]:
        """Run several requests together: their denoising steps share forward passes (grouped by step count)."""
        engine = self.engine  # a closed policy says so before judging the requests
        check_requests(requests)
        check_progress(progress)
        started = time.perf_counter()
        next_seed = self._next_seed
        prepared = []
        for i, request in enumerate(requests):
            try:
                with request_index(i):  # what reading it warns about is this request's (a server tells its client)
                    prepared.append(self._prepare(request))
            except Exception as exc:
                self._next_seed = next_seed  # a refused batch draws no seeds: the next call gets the same ones
                if len(requests) > 1:
                    exc.add_note(f"(in requests[{i}] of the batch)")
                raise
        results: list[Prediction | None] = [None] * len(requests)
        groups: dict[int, list[int]] = {}
        for i, (engine_req, _) in enumerate(prepared):
            groups.setdefault(engine_req.sampling.steps, []).append(i)
        for indexes in groups.values():
            outputs = engine.run([prepared[i][0] for i in indexes], progress=progress)
            for i, out in zip(indexes, outputs):
                results[i] = self._finish(prepared[i], out, started)
        return results  # type: ignore[return-value]

    @property
    def untrained_modes(self) -> dict[str, str]:
        """Mode → why to distrust it, for each mode this checkpoint's training run gave objective weight 0
        (`recorded_untrained_modes`, from the record read at load; {} for a Policy built in code): what an evaluation
        of that mode says beside its numbers."""
        return dict(self._untrained)

    def metadata(self) -> dict[str, Any]:
        """What a server announces on connect: embodiment, chunk, columns, units, model, the settings a
        `RemotePolicy` reports as this policy's attributes (`resolution_tier`; `sampling`, the defaults a request's
        steps, guidance and negative prompt override), the frames to send (`_frames_announced`), and the scenes the
        checkpoint was trained on (`training_seeds`, where its training data says: null otherwise), so a client
        evaluating it in the sim knows whether its scenes are held out, as it would of the checkpoint itself."""
        from . import __version__

        e = self.embodiment
        return {
            "embodiment": e.key, "domain": e.domain, "action_dim": e.action_dim, "chunk_size": self.chunk_size,
            "fps": e.fps, "columns": list(e.columns), "units": list(e.units), "camera_keys": list(e.camera_keys),
            "state_keys": dict(e.state_keys), "layout": e.layout, "model": self.source,
            "resolution_tier": self.resolution_tier, "sampling": asdict(self.sampling), "center_crop": self.center_crop,
            "worldpolicy_version": __version__, **self._frames_announced(),
            "training_seeds": self._training_seeds,
        }

    @cached_property
    def _training_seeds(self) -> dict[str, Any] | None:
        """The checkpoint's training scenes as its metadata announces them (`models.announced_training_seeds`), read
        at the first `metadata()` (a file or two), then kept; None for a policy built in code."""
        return announced_training_seeds(self.source) if self.source else None

    def _frames_announced(self) -> dict[str, Any]:
        """The frames this checkpoint was trained on, from its run's record (`trained_frames`), for a client to send
        the same: `trained_frames`, each camera's [height, width]; `composed_frame`, the frame they compose into
        (the embodiment's composite); `canvas`, the canvas bin of the resolution tier the model runs that frame at
        (`canvas_bin`). Each None for a checkpoint without the record (a hub id, a policy built in code), or whose
        record is of other cameras than this embodiment's (the shipped model served as `droid`): its canvas follows
        the frames each request sends. `expected_frames`, each camera's [height, width] a client should send: the
        record's, else each camera's place in a composite of fixed size (DROID's: the wrist 360x640, the exteriors
        180x320, as RoboLab clients send), else None: a DROID client of a hub checkpoint was told no size."""
        frames = self._trained_frames
        e = self.embodiment
        if frames is None or set(frames["cameras"]) != set(e.camera_keys):
            places = fixed_places(e.camera_keys, e.composite)  # a stacked composite follows the frames sent
            return {"trained_frames": None, "composed_frame": None, "canvas": None,
                    "expected_frames": {camera: list(hw) for camera, hw in places.items()} if places else None}
        _, canvas = canvas_bin(*frames["composed"], self.resolution_tier, e.snap_to_16)
        trained = {camera: list(hw) for camera, hw in frames["cameras"].items()}
        return {"trained_frames": trained, "composed_frame": list(frames["composed"]), "canvas": list(canvas),
                "expected_frames": trained}

    # -- processing -----------------------------------------------------------------------------------------------

    def _seed(self, seed: int | None) -> int:
        if seed is not None:
            return check_seed(seed)
        if self._next_seed is not None:
            seed, self._next_seed = self._next_seed, (self._next_seed + 1) % 2**63
            return seed
        return fresh_seed()

    def _schedule_used(self, sampling) -> dict[str, Any]:
        """The schedule a request with `sampling` runs (`schedule_in_effect`), for its settings: worked out once per
        distinct schedule and step count (a control loop asks for the same one every call), a fresh copy each time
        so a caller editing one result's settings changes no other."""
        from .engine.schedules import schedule_in_effect

        key = (sampling.schedule, sampling.shift, sampling.native_grid, sampling.steps)
        if key not in self._schedules:
            self._schedules[key] = schedule_in_effect(self.engine.scheduler, sampling,
                                                      self.engine.use_native_flow_schedule)
        used = self._schedules[key]
        return {**used, "sigmas": list(used["sigmas"])}

    def _state_row(self, request: PolicyRequest) -> np.ndarray | None:
        """Model-space state for variants conditioned on a clean state row (RoboLab DROID: joints + flipped gripper)."""
        e = self.embodiment
        if not e.state_history:
            if request.state is not None and self._once("ignored state"):  # a control loop sends it every call
                logger.warning("%s", ignored_state_warning(e, request.state))
            return None
        state = request.state
        if state is None and isinstance(request.observation, Mapping) and e.state_keys:
            state = observation_state(request.observation, e, request.mode)
        if state is None:
            raise ValueError(
                f"state is required for embodiment {e.key!r} ({', '.join(e.columns)}): pass state=[...] (--state on "
                "the command line)" + (f" or an observation dict with {sorted(e.state_keys.values())}" if e.state_keys
                                       else "; the embodiment names no state_keys an observation could carry it in")
                + stateless_hint(e, "load_policy(..., embodiment={!r})")
            )
        state = physical_state_row(state, e, request.mode)
        self._warn_range(to_model(e, state[None]), "state" if request.state is not None else
                         f"state (observation[{e.state_keys['joints']!r}], observation[{e.state_keys['gripper']!r}])")
        # clamped as training cached every state row (`train.data`): a state past the data's q01..q99 reaches the model
        # as the bound it learned, and a column the data held constant (a gripper a reach never closed: 1e-4 off read
        # as 219) as that constant, not as a value no training row held
        return to_model(e, state[None], clip=True)[0]

    def imagined_frame_said(self, frame: np.ndarray) -> None:
        """Note that `frame` is one a model imagined, which a later chunk of a trajectory (`imagine`'s own, or
        `sim.world_model`'s env and dream, which hand it to a policy) is conditioned on: decoded at the canvas size it
        was sampled on, so it is not judged as a camera's image is (one camera's view, smaller than the frames trained
        on), which would warn of what no user can change. Given back alone or in an observation dict under a
        single-view key (`sim.world_model.WorldModelEnv`'s observation), it is judged under either."""
        self._imagined_size_said(*frame.shape[:2])

    def _imagined_size_said(self, height: int, width: int) -> None:
        said = said_before(self._said)
        said.add(("view", height, width))
        said.add(_size_said({None: (height, width)}))  # alone or under a single-view key alike

    def _warn_range(self, model: np.ndarray, where: str) -> None:
        """Say `out_of_range_warning` of a request's state or actions once per input and set of columns (a control loop
        repeats the same mistake every call, with values that drift), in the words `input_warnings` gives a front end
        before the weights load, so its run does not say it again."""
        columns = out_of_range_columns(model, self.embodiment)
        if columns and self._once("range", where, columns):
            logger.warning("%s", out_of_range_warning(model, self.embodiment, where))

    def _warn_rate(self, actions: Any) -> None:
        """Say `actions_rate_warning` of forward-dynamics actions once, in the words `input_warnings` gives a front end
        before the weights load, so its run does not say it again."""
        message = actions_rate_warning(actions, self.embodiment)
        if message is not None and self._once("rate", message):
            logger.warning("%s", message)

    def single_view_said(self, height: int, width: int) -> None:
        """Note that one image or clip of `height` x `width` was warned about as one camera's view already, so a run
        does not say it again: the command line and the agent tools read a file before the model loads and say it in
        their own terms (`--camera`, `images`). This set is the one place that decides whether a run says it."""
        said_before(self._said).add(("view", height, width))

    def _once(self, *key: Any) -> bool:
        """Whether the warning `key` names (its kind, then what it is said of) is new to this policy, noting it: each
        is said once (behind a server, once to each client: `said_before`)."""
        said = said_before(self._said)
        if key in said:
            return False
        said.add(key)
        return True

    def _recorded_canvas(self, source: Any, frame_hw: Sequence[int]) -> tuple[int, int] | None:
        """`recorded_canvas` of `source` at this model's tier, a record it leaves out said once per file and reason
        (a control loop may pass the same file every call). A file with the record holds a model's own frames, whose
        size is its canvas's, not a camera's: not judged against the frames trained on (`imagined_frame_said`)."""
        def say(message: str) -> None:
            if self._once("canvas_record", message):
                logger.warning("%s", message)

        canvas = recorded_canvas(source, frame_hw, self.resolution_tier, say)
        if canvas is not None:
            self._imagined_size_said(*frame_hw[:2])
        return canvas

    def _warn_single_view(self, observation: Any, height: int, width: int) -> None:
        """One image or clip (in memory or a file) for an embodiment that composes several cameras is taken as that
        composite; one shaped like a single camera's view is said once per shape (a control loop sends the same
        camera's image every call), unless a front end said it first (`single_view_said`)."""
        said = said_before(self._said)
        if ("view", height, width) in said:
            return
        e = self.embodiment
        source = (f"the observation {os.fspath(observation)!r}" if isinstance(observation, (str, os.PathLike))
                  else "the observation")
        message = single_view_warning(e, source, height, width,
                                      "an observation dict {" + ", ".join(f"{k!r}: image" for k in e.camera_keys) + "}",
                                      self._trained_frames)
        if message is not None:
            said.add(("view", height, width))
            logger.warning("%s", message)

    def _warn_trained_size(self, views: Mapping[str, np.ndarray] | None, frames: np.ndarray) -> None:
        """Frames of another size or shape than the checkpoint's training run saw (`trained_frames`) are said once per
        set of sizes (a control loop sends the same every call): each camera of a dict, or the one image or clip
        against the composed frame. One image a composite embodiment takes for a single camera's view is left to
        `_warn_single_view`, which says what to do about it."""
        if self._trained_frames is None:
            return
        given = sizes_judged(self.embodiment, frames.shape[1:3],
                             None if views is None else {key: view.shape[1:3] for key, view in views.items()},
                             self._trained_frames)
        if given is None:
            return
        if not self._once(*_size_said(given)):
            return
        message = frames_size_warning(self._trained_frames, self._mixture_frames, given, self.source)
        if message is not None:
            logger.warning("%s", message)

    def _warn_history(self, views: Mapping[str, np.ndarray] | None, frames: np.ndarray) -> None:
        """Frames in memory ([T,H,W,C] arrays) are a history whose last frame `act` and `imagine` use, as documented;
        but a LeRobot user passes a batch ([B,C,H,W]) and would get one action chunk for the last observation alone,
        with nothing said. Said once per shape (a control loop keeping a frame buffer sends the same every call),
        naming `act_batch`. Files and lists of frames are read to their last frame only, and are not judged."""
        held = {key: view.shape for key, view in views.items()} if views is not None else {None: frames.shape}
        many = {key: shape[0] for key, shape in held.items() if shape[0] > 1}
        if not many or not self._once("history", *sorted((str(key), shape) for key, shape in held.items())):
            return
        what = ", ".join(f"observation[{key!r}]" if key is not None else "the observation" for key in many)
        logger.warning("%s %s %s frames: read as a history [T,H,W,C] whose last frame (the current one) is used. "
                       "For a batch of observations (LeRobot's [B,C,H,W]), pass one PolicyRequest per observation to "
                       "act_batch, which returns one prediction each", what, "hold" if len(many) > 1 else "holds",
                       " and ".join(sorted({str(n) for n in many.values()})))

    def _warn_stretch(self, views: Mapping[str, np.ndarray]) -> None:
        """Cameras the composite stretches (`stretch_warning`), said once per set of sizes (a control loop sends the
        same cameras every call)."""
        sizes = {key: view.shape[1:3] for key, view in views.items()}
        if not self._once("stretch", *sorted(sizes.items())):
            return
        message = stretch_warning(self.embodiment, sizes)
        if message is not None:
            logger.warning("%s", message)

    def _warn_unused_negative(self, sampling) -> None:
        """A negative prompt is the unconditional branch of classifier-free guidance, which guidance 1 turns off: the
        prompt then changes nothing (diffusers' Cosmos3 pipeline drops it without a word; its QwenImage pipelines warn,
        as this does). Said once per policy and prompt: a control loop sends the same one every call."""
        negative = sampling.negative_prompt
        if not negative.strip() or sampling.uses_cfg or not self._once("negative", negative):
            return
        logger.warning("negative_prompt=%r is ignored: guidance=%g turns classifier-free guidance off, and the "
                       "negative prompt is its unconditional branch; pass guidance other than 1 (e.g. 3.0, the "
                       "released DROID policy's) to use it, or leave negative_prompt out", negative[:80],
                       sampling.guidance)

    def _prepare(self, request: PolicyRequest):
        from .engine import EngineRequest

        tick = time.perf_counter()
        if request.mode not in MODES:
            raise ValueError(f"mode={request.mode!r} is not supported; accepted: {', '.join(MODES)}")
        check_decode_video(request.decode_video)
        if request.actions_space not in ACTION_SPACES:
            raise ValueError(f"actions_space={request.actions_space!r}; accepted: {', '.join(ACTION_SPACES)}")
        check_task(request.prompt)
        untrained = self._untrained.get(request.mode)
        if untrained is not None and self._once("untrained", request.mode):
            logger.warning(untrained)
        e = self.embodiment
        sampling = self.sampling.updated(steps=request.steps, guidance=request.guidance,
                                         negative_prompt=request.negative_prompt)
        self._warn_unused_negative(sampling)
        clean_actions = None
        if request.mode == "forward_dynamics":
            if request.actions is None:
                raise ValueError("actions are required for forward dynamics (mode='forward_dynamics' / imagine)")
            where = actions_where(request.actions)
            given = load_actions(request.actions, e, request.actions_space, warn_range=False)
            self._warn_range(given, where)
            self._warn_rate(request.actions)
            clean_actions = fit_to_chunk(given, self.chunk_size, e, where)
        elif request.actions is not None:
            raise ValueError(f"actions were given but mode={request.mode!r} generates them; use imagine() instead")
        prefix = model_prefix = None
        if request.action_prefix is not None:
            prefix = action_prefix_rows(request.action_prefix, request.mode, e, self.chunk_size)
            self._warn_range(to_model(e, prefix), "action_prefix")
            model_prefix = to_model(e, prefix, clip=True)  # as training holds its action rows (`train.data`)
        state_row = self._state_row(request)
        obs = request.observation
        num_frames = self.chunk_size + 1
        given_canvas = None if request.canvas is None else check_canvas(request.canvas, self.resolution_tier)
        if request.mode != "inverse_dynamics":
            # only the current frame is used: a clip is decoded through, holding its last frame alone
            views = camera_views(obs, e.camera_keys, e.composite, last=1) if isinstance(obs, Mapping) else None
            frames = compose_views(views, e.camera_keys, e.composite) if views is not None else load_frames(obs, last=1)
            self._warn_history(views, frames)
            # the current frame: the last of an observation with history, as the state row takes the last state
            canvas, info = prepare_canvas(self._cropped(frames[-1:]), self.resolution_tier, 1, e.snap_to_16,
                                          given_canvas or self._recorded_canvas(obs, frames.shape[1:3]))
        else:
            # inverse dynamics reads chunk_size + 1 frames; one more tells a longer clip apart without decoding it whole
            views = (clip_views(obs, e.camera_keys, e.composite, max_frames=num_frames + 1)
                     if isinstance(obs, Mapping) else None)
            frames = (compose_views(views, e.camera_keys, e.composite) if views is not None
                      else load_frames(obs, max_frames=num_frames + 1))
            # the clips composed: another key's (a camera the embodiment does not use) is not judged
            used = ([obs[k] for k in frame_keys(obs.keys(), e.camera_keys, e.composite)]
                    if isinstance(obs, Mapping) else [obs])
            for clip in used:
                warn_frame_rate(clip, e.fps)
            if frames.shape[0] < 2:
                raise ValueError(f"inverse dynamics needs a video of at least 2 frames (chunk_size+1 = {num_frames} are "
                                 "used; a shorter clip repeats its last frame), got 1 frame")
            # action i takes frame i to frame i+1: past the clip's last frame, rows explain copies of it
            real_rows = min(frames.shape[0], num_frames) - 1
            if frames.shape[0] > num_frames:
                logger.warning("video has more than %d frames; using the first %d (chunk_size+1)", num_frames,
                               num_frames)
            elif frames.shape[0] < num_frames:
                logger.warning("video has %d frames; using %d (chunk_size+1), repeating the last: only the first %d "
                               "action rows explain frames of the clip (settings real_rows)", frames.shape[0],
                               num_frames, real_rows)
            canvas, info = prepare_canvas(self._cropped(frames), self.resolution_tier, num_frames, e.snap_to_16,
                                          given_canvas or self._recorded_canvas(obs, frames.shape[1:3]))
        if given_canvas is not None and views is None and _decoded_on(info, frames.shape[1:3]):
            self._imagined_size_said(*frames.shape[1:3])  # the model's own frames, given back on their canvas
        if not isinstance(obs, Mapping):  # a dict names each camera: it is composed as trained
            self._warn_single_view(obs, *frames.shape[1:3])
        if views is not None:
            self._warn_stretch(views)
        self._warn_trained_size(views, frames)
        caption = build_caption(e.prompt_format, request.prompt, e.view_point, num_frames, e.fps,
                                info.canvas_h, info.canvas_w, e.view_description)
        tokenizer = self.engine.tokenizer
        use_system = sampling.use_system_prompt
        if use_system is None:
            use_system = self.engine.default_use_system_prompt
        seed = self._seed(request.seed)
        engine_request = EngineRequest(
            mode=request.mode, canvas=canvas, latent_hw=(info.latent_h, info.latent_w),
            cond_ids=tokenize(tokenizer, caption, use_system),
            uncond_ids=tokenize(tokenizer, sampling.negative_prompt, use_system),
            domain_id=e.domain_id, raw_dim=e.action_dim, chunk_size=self.chunk_size, fps=e.fps,
            sampling=sampling, seed=seed, clean_actions=clean_actions, state_row=state_row,
            action_prefix=model_prefix, decode_video=request.decodes_video,
        )
        settings = {
            "checkpoint": self._checkpoint_setting, "mode": request.mode, "steps": sampling.steps,
            "guidance": sampling.guidance, "schedule": sampling.schedule, "shift": sampling.shift,
            "native_grid": sampling.native_grid,
            **self._schedule_used(sampling),
            "seed": seed, "chunk_size": self.chunk_size, "fps": e.fps, "resolution_tier": self.resolution_tier,
            "center_crop": self.center_crop,
            "canvas_hw": [info.canvas_h, info.canvas_w], "content_hw": [info.content_h, info.content_w],
            "latent_hw": [info.latent_h, info.latent_w], "prompt": request.prompt, "caption": caption,
            "prompt_format": e.prompt_format, "negative_prompt": sampling.negative_prompt,
            "use_system_prompt": use_system, "device": str(self.engine.device), "dtype": str(self.engine.dtype),
        }
        if request.mode == "inverse_dynamics":
            settings["real_rows"] = real_rows
        if prefix is not None:
            settings["action_prefix_rows"] = len(prefix)
        return engine_request, {"settings": settings, "preprocess": time.perf_counter() - tick, "prefix": prefix}

    def _cropped(self, frames: np.ndarray) -> np.ndarray:
        """`frames` as the model sees them: centre-cropped by `center_crop` (resized back) where it is set."""
        return frames if self.center_crop is None else center_crop(frames, self.center_crop)

    def _finish(self, prepared, out, started: float) -> Prediction:
        engine_request, meta = prepared
        tick = time.perf_counter()
        e = self.embodiment
        model_actions = engine_request.clean_actions if out.actions is None else out.actions
        video = None
        if out.video is not None:
            video = model_uint8(out.video)
        timings = {"preprocess": meta["preprocess"], **out.timings}
        timings["postprocess"] = time.perf_counter() - tick
        timings["total"] = time.perf_counter() - started
        actions, normalized = to_physical(e, model_actions), np.array(model_actions, dtype=np.float64)
        prefix = meta["prefix"]
        if prefix is not None:  # the rows given, as given: not their round trip through model space
            actions[: len(prefix)], normalized[: len(prefix)] = prefix, engine_request.action_prefix
        return Prediction(
            mode=engine_request.mode, embodiment=e.key, columns=list(e.columns), units=list(e.units),
            actions=actions, actions_normalized=normalized,
            fps=e.fps, video=video, timings=timings, settings=meta["settings"], layout=e.layout,
            gripper_column=e.gripper_column,
        )


def _decoded_on(info: Any, frame_hw: Sequence[int]) -> bool:
    """Whether frames of `frame_hw` are what the model decodes on the canvas `info` describes (`prepare_canvas`'s):
    put on it unscaled, as whole 16-pixel latent cells, as its own decoded frames are given back with their
    `canvas=` (`infer_actions(pred, prompt)`, which passes `pred.settings["canvas_hw"]`). A camera's image the canvas
    scales, or cuts to its latent grid, is not."""
    size = (int(frame_hw[0]), int(frame_hw[1]))
    return (info.content_h, info.content_w) == size == (16 * info.latent_h, 16 * info.latent_w)


def _size_said(given: Mapping[str | None, tuple[int, int]]) -> tuple[Any, ...]:
    """The key `Policy._said` notes a trained-size warning of `given` (`sizes_judged`) under: one for
    `_warn_trained_size`, which says it once, and `imagined_frame_said`, which marks a trajectory's own frames said.
    One image under a single-view key (`SINGLE_VIEW_KEYS`) is the one image given alone: the same frame as an array
    and as `{"observation/image": frame}` was said twice."""
    return ("size", *sorted((str(None if key in SINGLE_VIEW_KEYS else key), tuple(hw)) for key, hw in given.items()))


def sizes_judged(embodiment: Embodiment, size: tuple[int, int], views: Mapping[str, tuple[int, int]] | None,
                 trained: Mapping[str, Any]) -> dict[str | None, tuple[int, int]] | None:
    """The (height, width) sizes a run judges against the frames its checkpoint was trained on (`trained`,
    `trained_size_warning`): each camera's of a dict (`views`, keyed as `frame_keys` orders them), or the one image's
    or clip's (`size`) against the composed frame; None for one image a composite embodiment takes for a single
    camera's view, which the single-view warning is about, unless the checkpoint was trained on one view
    (`trained_on_one_view`). `predict` judges its files with it before the weights load."""
    if views is not None:
        return dict(views)
    if (composite_mismatch(*size, embodiment.camera_keys, embodiment.composite) is not None
            and not trained_on_one_view(embodiment, trained)):
        return None
    return {None: size}


def input_warnings(source: str, embodiment: Embodiment, mode: str,
                   sizes: tuple[int, int] | Mapping[str, tuple[int, int]], clips: Sequence[Any] = (), *,
                   resample: bool = False, state: Any = None, actions: Any = None,
                   actions_space: str = "physical") -> list[str]:
    """What a run of checkpoint `source` would warn of that its record and the inputs tell before the weights
    load: a mode its training left out, cameras a composite stretches (`stretch_warning`), frames of another size than
    it was trained on (`sizes`: the one image's or clip's (height, width), or each camera's by key, those `frame_keys`
    names), each of `clips`' frame rate (`frame_rate_warning`: only a varying one for clips read at the embodiment's
    rate, `resample`), a `state` the embodiment ignores, a `state` (a row, or rows as a request takes them) or
    forward-dynamics `actions` (as a request takes them, in `actions_space`) far outside what the model was trained
    on. In the run's own words, so the front ends that say them first (`worldpolicy predict`, the agent tools) tell
    them apart from what the run says, and say them in every call's result, where a loaded policy says each once.
    Inputs the run would refuse are left to the front end's checks (and the run's)."""
    record = _trainer_state(source)  # read once for the modes and the frames
    said = [recorded_untrained_modes(source, record).get(mode),
            *range_warnings(embodiment, mode, state, actions, actions_space)]
    if isinstance(sizes, Mapping):
        said.append(stretch_warning(embodiment, sizes))
    trained = recorded_frames(record)
    if trained is not None:
        given = dict(sizes) if isinstance(sizes, Mapping) else sizes_judged(embodiment, sizes, None, trained)
        if given is not None:
            said.append(frames_size_warning(trained, mixture_frames(record), given, source))
    said += [frame_rate_warning(str(clip), embodiment.fps, resample) for clip in clips]
    return [message for message in said if message is not None]


def range_warnings(embodiment: Embodiment, mode: str, state: Any = None, actions: Any = None,
                   actions_space: str = "physical") -> list[str]:
    """`input_warnings`' part for a state and actions: read as a run reads them (the state's row for `mode`, every
    action row given), judged by `out_of_range_warning`, and the actions' rate (`actions_rate_warning`). A state the
    embodiment does not condition on is not judged: the run ignores it, and says so (`ignored_state_warning`)."""
    said = [ignored_state_warning(embodiment, state)]
    if state is not None and embodiment.state_history:
        with contextlib.suppress(ValueError):  # a state the run refuses: its error, not a warning, says so
            row = physical_state_row(state, embodiment, mode)
            said.append(out_of_range_warning(to_model(embodiment, row[None]), embodiment, "state"))
    if actions is not None and mode == "forward_dynamics":
        with contextlib.suppress(ValueError, FileNotFoundError):
            model = load_actions(actions, embodiment, actions_space, warn=False)
            said.append(out_of_range_warning(model, embodiment, actions_where(actions)))
            said.append(actions_rate_warning(actions, embodiment))
    return [message for message in said if message is not None]


def ignored_state_warning(embodiment: Embodiment, state: Any) -> str | None:
    """The one rule for a state given to an embodiment that does not condition on it: ignored and said, never refused,
    in Python, over the wire, on the command line and in the agent tools alike. A robot loop sends its state to every
    policy, as openpi's and LeRobot's do, whose policies ignore the observation keys they do not use; refused, a loop
    that switches checkpoints would break on this one. Said (once per policy, and before the weights load by the front
    ends that read inputs first) so that nobody believes the state steers the actions. None where there is nothing to
    say."""
    if state is None or embodiment.state_history:
        return None
    return (f"state is ignored: embodiment {embodiment.key!r} does not condition on the robot state (its actions come "
            "from the cameras and the prompt alone); leave the state out, or use an embodiment that takes it (e.g. "
            "droid/joint_pos)")


def warn_frame_rate(video: Any, fps: float) -> None:
    """Say `frame_rate_warning`'s message, if any (a local run, and `RemotePolicy` for the clips it reads itself)."""
    message = frame_rate_warning(video, fps)
    if message is not None:
        logger.warning("%s", message)


def label_windows(act_batch: Callable[..., list[Prediction]], requests: list[PolicyRequest], clip: ClipWindows,
                  progress: Callable[[int, int], None] | bool | None, started: float, whole_clip: bool,
                  batch_size: int = 1) -> Prediction:
    """`infer_actions`' windows run through `act_batch` (a local `Policy`'s, or a `RemotePolicy`'s, so a clip is
    labelled the same way on either) in batches of `batch_size` (a bar over the windows when there are several and
    `progress` is None: `check_clip_progress`), joined into one result (`join_windows`)."""
    from .logcapture import progress_bar

    batches = [requests[i:i + batch_size] for i in range(0, len(requests), batch_size)]
    results: list[Prediction] = []
    callback = progress if callable(progress) else None
    with progress_bar(total=len(requests), desc="inverse dynamics", unit="window", leave=False,
                      disable=len(requests) < 2 or progress is not None) as bar:
        for batch in batches:
            results += act_batch(batch, progress=callback)
            bar.update(len(batch))
    # `real_rows` counted from the clip, not taken from the run: a server that sends none (an older one) gives them too
    rows = [clip.rows(k) for k in range(len(results))]
    return join_windows(results, rows, {"clip": clip.settings(rows), "real_rows": sum(rows)},
                        time.perf_counter() - started, whole_clip)


def roll_out(act_batch: Callable[..., list[Prediction]], base: PolicyRequest, trajectory: TrajectoryChunks,
             embodiment: Embodiment, progress: Callable[[int, int], None] | bool | None, started: float,
             imagined_frame: Callable[[np.ndarray], None] | None = None, own_canvas: bool = False) -> Prediction:
    """`imagine(whole_trajectory=True)`: the trajectory's chunks run one after another through `act_batch` (a local
    `Policy`'s, or a `RemotePolicy`'s, so a trajectory rolls out the same way on either), chunk j from the last
    imagined frame of chunk j-1 (and, for a state-conditioned embodiment, its last action as the state:
    `check_trajectory_embodiment`). Autoregressive, so sequential: no chunk can start before the one it continues has
    been decoded. A bar over the chunks when there are several and `progress` is None (`check_clip_progress`); the
    results joined into one (`join_windows`), `settings["trajectory"]` saying which actions each frame came from.
    `imagined_frame` is told of each frame a chunk is conditioned on (a local `Policy` does not judge the model's own
    frames as it judges a camera's). `own_canvas`: chunk j is put on the canvas chunk j-1 was generated on
    (`PolicyRequest.canvas`), not on the bin its decoded frame's aspect ratio gets (a local `Policy`; the wire carries
    no canvas)."""
    from .logcapture import progress_bar

    message = long_rollout_warning(trajectory.chunks)
    if message is not None:
        logger.warning("%s", message)
    results: list[Prediction] = []
    callback = progress if callable(progress) else None
    observation, state, canvas = base.observation, base.state, base.canvas
    chained = bool(embodiment.state_history)
    with progress_bar(total=trajectory.chunks, desc="forward dynamics", unit="chunk", leave=False,
                      disable=trajectory.chunks < 2 or progress is not None) as bar:
        for j in range(trajectory.chunks):
            if j:
                observation = results[-1].video[-1]  # chunk j-1 is whole: its last frame follows its last action
                if imagined_frame is not None:
                    imagined_frame(observation)
                if chained:
                    state = trajectory.state_after(j - 1, embodiment)
                if own_canvas:
                    canvas = tuple(results[-1].settings["canvas_hw"])
            request = replace(base, observation=observation, state=state, actions=trajectory.chunk(j),
                              actions_space="normalized", seed=trajectory.seed_of(j), decode_video=True,
                              canvas=canvas)
            results += act_batch([request], progress=callback)
            bar.update(1)
    rows = [trajectory.rows(j) for j in range(trajectory.chunks)]
    return join_windows(results, rows, {"trajectory": trajectory.settings(chained)}, time.perf_counter() - started,
                        True)


def join_windows(results: list[Prediction], rows: list[int], settings: dict[str, Any], seconds: float,
                 whole: bool) -> Prediction:
    """Several runs' results as one: for a whole clip (`infer_actions`' windows) or a whole trajectory (`imagine`'s
    chunks), each run's `rows` real rows end to end and, where decoded, its frames after the first up to them (the
    boundary frame is the previous run's last; the frames of padding rows are dropped); a single window as the run
    returned it (its padding rows too). `settings` adds what the caller records of how it cut (`settings["clip"]`,
    `settings["trajectory"]`); timings are each stage summed, `total` the wall time `seconds`."""
    first = results[0]
    settings = {**first.settings, **settings}
    timings = {key: sum(r.timings.get(key, 0.0) for r in results) for key in first.timings}
    timings["total"] = seconds
    if not whole:
        return replace(first, settings=settings, timings=timings)
    video = None
    if first.video is not None:
        video = np.concatenate([first.video[:1], *(r.video[1:n + 1] for r, n in zip(results, rows))])
    return replace(first, actions=np.concatenate([r.actions[:n] for r, n in zip(results, rows)]),
                   actions_normalized=np.concatenate([r.actions_normalized[:n] for r, n in zip(results, rows)]),
                   video=video, timings=timings, settings=settings)
