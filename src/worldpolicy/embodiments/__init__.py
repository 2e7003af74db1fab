"""Embodiment registry: every Cosmos3 domain and robot layout as data.

The table lives in `registry.json` (one place for each fact). An embodiment may have several *variants* (action
spaces), e.g. `droid` → `joint_pos` (the released Cosmos3-Nano-Policy-DROID) and `relative_pose` (general Cosmos3-Nano).
Address a variant as `"droid/relative_pose"` or with `variant=`.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import is_integer, is_real, typo_note
from ..fileio import EMBODIMENT_FILE
from .normalization import (
    NORMALIZATION_KINDS,
    REQUIRED_STATS,
    check_stats,
    constant_columns,
    denormalize,
    load_stats_file,
    mirror_column,
    normalize,
)

__all__ = [
    "GRIPPER_MARGIN",
    "LAYOUTS",
    "MAX_CHUNK_SIZE",
    "MODEL_SPACE_UNIT",
    "POSE_COLUMNS",
    "PROMPT_FORMATS",
    "RESOLUTION_TIERS",
    "SPEC_FILE_SUFFIX",
    "Embodiment",
    "check_chunk_size",
    "check_resolution_tier",
    "default_domain",
    "domain_table",
    "embodiment_from_dict",
    "embodiment_from_spec",
    "free_domain_id",
    "get_embodiment",
    "gripper_unit_hint",
    "inline_stats_file",
    "list_embodiments",
    "pose_groups",
    "read_spec_file",
    "register_embodiment",
    "shown_unit",
    "unit_label",
    "view_point_sentences",
]

logger = logging.getLogger(__name__)

LAYOUTS = ("relative_pose", "joint_position", "generic")
POSE_COLUMNS = ("tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5")  # a relative_pose arm's first columns, in order
PROMPT_FORMATS = ("json", "plain")
# how several cameras become one canvas (processing.observations) → how many cameras it composes (fewest, most)
COMPOSITES: dict[str, tuple[int, int | None]] = {"droid_wrist_top": (3, 3), "stacked": (2, None)}
STATE_ROLES = ("joints", "gripper")  # what an observation's state keys carry (`Policy` concatenates them in this order)
SPEC_FILE_SUFFIX = ".json"  # an embodiment named so is a spec file (`get_embodiment`, a training config's path)
MAX_DOMAIN_ID = 32  # DomainAwareLinear has nn.Embedding(32, ...) rows
# The unit of a column whose actions stay in the model's normalised space: the general Cosmos3-Nano heads whose stats
# are not published (umi, av, ...; robot-bridge.md s2). Their values span about [-1, 1] whatever they measure, so
# nothing may take them for metres or radians: a robot refuses them, a plot draws no end-effector path from them.
MODEL_SPACE_UNIT = "normalized"
UNITLESS = "1"  # the unit of a column with none (a rotation matrix entry, a gripper fraction): the default of `units`
# The canvas tiers Cosmos3's action pipeline has bins for (the keys of diffusers' `_ACTION_RESOLUTION_BINS`, which
# `processing.observations.resolution_bins` reads; a test holds the two equal). Here, not there, so that a registered
# embodiment's tier is checked when it is built without importing diffusers.
RESOLUTION_TIERS = (256, 480, 704, 720)
# The largest chunk size accepted. Neither the model card nor diffusers states one, and the transformer config gives
# none that matters: its positions are mRoPE (no learned table, no max_position_embeddings), distinct in float32 and
# within the lowest rotary frequency's period (rope_theta 5e6) for millions of frames. Memory binds first: a chunk
# is chunk_size+1 frames at the tier's canvas (960x960 at 720) and (chunk_size/4+1)·h'·w' generated tokens, so 10**9
# asked terabytes at the first act. 256 (65 latent frames; 8x the released DROID chunk, 5x Cosmos Policy's largest,
# 50) is under 3 GB of float32 canvas and ~59k tokens at tier 720.
MAX_CHUNK_SIZE = 256
# How far outside [0, 1] a gripper value g (the DROID convention a gripper column holds: 0 = open, 1 = closed) may be
# and still be a g: a policy's overshoot (a head's 1.1 at closing, a denormalised -0.05), which the robot bridge clips
# into [0, 1]. Further out it is another unit or convention, not a g: actuator counts (0-255), a finger width in mm
# (0-80) or percent, a [-1, 1] convention's -1; clipping read 255 (open) and 40 mm (half open) as closed, so the
# bridge refuses the chunk (`robot.decode`) and the policy warns of such a state or actions (`processing.actions`).
# Here, the lowest layer that knows a gripper column, so that both judge g by the one margin.
GRIPPER_MARGIN = 0.5


def shown_unit(unit: str) -> str:
    """A column's unit as a table, plot or page shows it beside a value: none for `UNITLESS` (a bare 1 there reads
    as a number: `gripper 0.02 1`, and in an axis label "gripper [1]" as an index), else as written. Files keep
    "1"."""
    return "" if unit == UNITLESS else unit


def unit_label(column: str, unit: str) -> str:
    """`column [unit]` as a table heading or an axis label names a column, `column` alone for no unit shown
    (`shown_unit`)."""
    return f"{column} [{shown}]" if (shown := shown_unit(unit)) else column


def gripper_unit_hint(value: float) -> str:
    """What a gripper value more than `GRIPPER_MARGIN` outside [0, 1] likely is, and how it becomes a g: the errors
    that refuse one (`robot.ActionDecoder`, `RobotConfig.gripper_to_ctrl`) and the policy's warning say the same."""
    if value < 0:
        return "likely a [-1, 1] convention ((v + 1) / 2 maps it to [0, 1]; mind which end is open)"
    return ("likely actuator units (Menagerie's 0-255, 255 = open: g = 1 - v/255), a finger width in mm (a Franka Hand "
            "opens 80 mm: g = 1 - v/80) or percent")


def pose_groups(columns: Sequence[str]) -> dict[str, list[int]]:
    """Column indexes of each relative pose in `columns` by prefix: '' for `tx..r5`, 'left_' for `left_tx..left_r5`
    (multi-arm layouts: one end-effector path per arm)."""
    groups = {}
    for column in columns:
        if column.endswith("tx"):
            prefix = column[: -len("tx")]
            if all(prefix + c in columns for c in POSE_COLUMNS):
                groups[prefix] = [list(columns).index(prefix + c) for c in POSE_COLUMNS]
    return groups


def check_chunk_size(chunk_size: int) -> None:
    """The causal VAE maps 1+4k frames to k+1 latents; other lengths are silently floored by diffusers. At most
    `MAX_CHUNK_SIZE`: a chunk size is data (a spec, a checkpoint's embodiment.json, a server's metadata), and the
    first act allocates what it asks."""
    if not is_integer(chunk_size) or chunk_size < 4 or chunk_size % 4:
        number = is_real(chunk_size)
        lower = min(MAX_CHUNK_SIZE - 4, max(4, int(chunk_size) // 4 * 4)) if number else 16
        raise ValueError(
            f"chunk_size={chunk_size!r} is not accepted: the video VAE needs chunk_size+1 = 1+4k frames, so chunk_size "
            f"must be a positive multiple of 4 (e.g. {lower} or {lower + 4}; released DROID uses 32)"
        )
    if chunk_size > MAX_CHUNK_SIZE:
        raise ValueError(
            f"chunk_size={chunk_size!r} is not accepted: at most {MAX_CHUNK_SIZE}, a multiple of 4 (released DROID "
            "uses 32). The model states no maximum (its mRoPE positions have none short of millions of frames); a "
            f"chunk is chunk_size+1 frames at the tier's canvas and their tokens, so {MAX_CHUNK_SIZE} keeps the first "
            "act within a GPU's memory"
        )


def check_resolution_tier(tier: int) -> None:
    """A tier with no canvas bins would otherwise fail only at the first request, after the weights have loaded."""
    if not is_integer(tier) or tier not in RESOLUTION_TIERS:
        raise ValueError(f"resolution_tier={tier!r} is not supported; accepted: {list(RESOLUTION_TIERS)}")


@dataclass(frozen=True)
class Embodiment:
    """One robot/action-space as the model sees it. Immutable; build new ones with `register_embodiment`."""

    name: str
    variant: str
    domain: str
    domain_id: int
    action_dim: int
    columns: tuple[str, ...]
    units: tuple[str, ...]
    chunk_size: int
    fps: float
    camera_keys: tuple[str, ...]
    view_point: str
    layout: str = "generic"
    normalization: str = "none"
    # left out of the repr: a column's six statistics each were most of it, a wall of numbers in a notebook
    stats: Mapping[str, tuple[float, ...]] | None = field(default=None, repr=False)
    aliases: tuple[str, ...] = ()
    resolution_tier: int = 480
    prompt_format: str = "json"
    # left out of the repr, as `description`: a sentence each, most of what was left of it (`.view_description`)
    view_description: str = field(default="", repr=False)
    gripper_column: str | None = None
    gripper_flip: bool = False
    state_history: int = 0
    state_keys: Mapping[str, str] = field(default_factory=dict)
    composite: str | None = None
    snap_to_16: bool = True
    sampling_preset: str | None = None
    # actions of a chunk to run before asking again (LeRobot's n_action_steps); None: the whole chunk. Measured per
    # model: a small closed-loop policy may do better re-asking every step than running its chunks open loop.
    execute_steps: int | None = None
    description: str = field(default="", repr=False)
    variants: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.name}/{self.variant}" if self.variant != "default" else self.name

    @property
    def in_model_space(self) -> bool:
        """Whether its actions come out in model space (units `MODEL_SPACE_UNIT`): no stats turn them physical."""
        return MODEL_SPACE_UNIT in self.units

    @property
    def gripper_index(self) -> int | None:
        return self.columns.index(self.gripper_column) if self.gripper_column else None

    def gripper_convention(self) -> dict[str, Any] | None:
        """The gripper column as a client reads it (a server's metadata announces it), or None without one: its
        name and index, and its values in the DROID convention (`open` 0, `closed` 1), which the actions and the
        gripper state are in on the robot's side. `model_flip`: whether the model's own space is flipped (1 - g,
        `gripper_flip`), which the policy undoes itself: a client flipping by `gripper_flip` again closes an open
        gripper."""
        if self.gripper_column is None:
            return None
        return {"column": self.gripper_column, "index": self.gripper_index, "open": 0.0, "closed": 1.0,
                "model_flip": self.gripper_flip}

    def runs_at(self, fps: float) -> bool:
        """Whether data recorded at `fps` is at this embodiment's action rate: equal but for float noise (a rate read
        back from a file), one tolerance for every command that checks it."""
        return math.isclose(fps, self.fps, rel_tol=1e-6)

    def _stats_arrays(self) -> dict[str, np.ndarray]:
        return check_stats(self.normalization, self.stats, self.columns, where=f"embodiment {self.key!r} stats")

    def denormalize(self, actions: np.ndarray) -> np.ndarray:
        """Model-space actions [..., action_dim] → physical units (float64)."""
        _check_width(actions, self.action_dim, "actions", self.key)
        return denormalize(actions, self.normalization, self._stats_arrays())

    def normalize(self, actions: np.ndarray, clip: bool = False) -> np.ndarray:
        """Physical actions [..., action_dim] → model space (float64)."""
        _check_width(actions, self.action_dim, "actions", self.key)
        return normalize(actions, self.normalization, self._stats_arrays(), clip=clip)

    def constant_columns(self) -> np.ndarray:
        """Per column, whether the stats hold it constant (`normalization.constant_columns`); none without stats."""
        if self.normalization == "none":
            return np.zeros(self.action_dim, dtype=bool)
        return constant_columns(self.normalization, self._stats_arrays())

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
            elif isinstance(v, Mapping):
                out[k] = {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
        out["key"] = self.key
        return out

    def to_spec(self) -> dict[str, Any]:
        """Every field resolved, as a spec `embodiment_from_spec`/`register_embodiment` read back to this action space
        (a checkpoint's embodiment.json): a spec as the user gave it leaves defaults (view point, prompt format,
        canvas snapping, execute_steps...) to whichever version reads it, which would then feed the model inputs unlike
        its training. One action space: a variant is named as the spec's only one, `{variant: {}}`, the form every
        version reads (its sibling variants are other action spaces, which this spec's fields do not describe)."""
        spec = {k: v for k, v in self.to_dict().items() if k not in ("key", "variants")}
        if self.variant != "default":
            spec["variants"] = {self.variant: {}}
        else:
            del spec["variant"]
        return spec


def _check_width(actions: Any, width: int, param: str, key: str) -> None:
    shape = np.shape(actions)
    if not shape or shape[-1] != width:
        raise ValueError(f"{param} has shape {tuple(shape)} but embodiment {key!r} expects a last axis of {width}")


@lru_cache(maxsize=1)
def _builtin_table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("registry.json").read_text()
    return json.loads(text)


_USER: dict[str, dict[str, Any]] = {}


def view_point_sentences() -> dict[str, str]:
    """View point → the exact framing sentence the model was trained with (cosmos3-model.md §8)."""
    return dict(_builtin_table()["view_points"])


def domain_table(include_user: bool = True) -> dict[str, dict[str, Any]]:
    """Domain name → {"id", "width"} as registered in diffusers' Cosmos3 (plus domains added by users)."""
    table = copy.deepcopy(_builtin_table()["domains"])
    for spec in _USER.values() if include_user else ():
        if spec["domain"] not in table:
            table[spec["domain"]] = {"id": int(spec["domain_id"]), "width": int(spec["action_dim"])}
    return table


def _specs() -> dict[str, dict[str, Any]]:
    return {**_builtin_table()["embodiments"], **_USER}


def _names(table: Mapping[str, Mapping[str, Any]], aliases: bool = True) -> dict[str, str]:
    """Lower-cased name (and alias) → the key it names in `table`; a name wins over another entry's alias."""
    found = {a.lower(): key for key, spec in table.items() for a in spec.get("aliases", ())} if aliases else {}
    return found | {key.lower(): key for key in table}


def _resolve_name(name: str) -> str:
    """Names before aliases, and a user's entry before a built-in one (`overwrite=True` shadows it), ignoring case."""
    wanted = name.strip().lower()
    builtin = _builtin_table()["embodiments"]
    for table, aliases in ((_USER, False), (builtin, False), (_USER, True), (builtin, True)):
        key = _names(table, aliases).get(wanted)
        if key is not None:
            return key
    shipped = _shipped_spec_files()  # read once for both messages
    if wanted in shipped:
        # `worldpolicy embodiments` lists it, so a user names it where a registered name is wanted
        raise KeyError(
            f"embodiment={name!r} is the shipped model's own embodiment, not a registered one: it comes with the "
            f"checkpoint (checkpoint 'shipped' runs with it); elsewhere pass its spec file, {str(shipped[wanted][1])!r}"
        )
    close = typo_note([name.strip()], [*list_embodiments(), *(own for own, _ in shipped.values())])
    raise KeyError(
        f"embodiment={name!r} is not registered{close}"
        + f"; known: {_known_embodiments(shipped)} "
        f"(or a spec file of your own robot, *{SPEC_FILE_SUFFIX}: worldpolicy.embodiments.register_embodiment)"
    )


def _known_embodiments(shipped: Mapping[str, tuple[str, Path]] | None = None) -> str:
    """What an embodiment name may be, for an error: the registry's names, then each shipped model's own embodiment
    (`panda_reach`), which `worldpolicy embodiments` lists beside them and which is given by its spec file.
    `shipped`: `_shipped_spec_files()`, where the caller has read them."""
    own = [f"{name} (the shipped model's own: its spec file, {str(spec)!r})"
           for name, spec in (_shipped_spec_files() if shipped is None else shipped).values()]
    return ", ".join([*list_embodiments(), *own])


def _shipped_spec_files() -> dict[str, tuple[str, Path]]:
    """Each shipped model's embodiment name, lower-cased → (the name, its embodiment.json): read only when a name is
    not registered, to say what that embodiment is and where."""
    from ..models import SHIPPED, shipped_model

    found = {}
    for model in SHIPPED:
        try:
            spec = shipped_model(model) / EMBODIMENT_FILE
            own = str(json.loads(spec.read_text()).get("name", ""))
        except (FileNotFoundError, ValueError, AttributeError):  # an install without it, or a spec not an object
            continue
        if own:
            found[own.lower()] = (own, spec)
    return found


def _build(name: str, spec: Mapping[str, Any], variant: str | None, given: str | None = None) -> Embodiment:
    """An embodiment from its registry/JSON spec (`variants` merged over the base). `given`: the `name/variant` the
    caller wrote, which an unknown variant's error names (where the user typed it: `--embodiment droid/joint_pso`),
    else it names `variant=`."""
    said = f"variant={variant!r}" if given is None else f"embodiment={given!r} names variant {variant!r}"
    base = {k: v for k, v in spec.items() if k not in ("variants", "default_variant")}
    variants = spec.get("variants") or {}
    if not isinstance(variants, Mapping):  # Embodiment.to_dict() lists them by name: {**to_dict(), ...} as a spec
        raise ValueError(f"embodiment {name!r}: variants={variants!r}; a spec's variants map each variant's name to "
                         "the fields it sets ({'joint_pos': {...}}): to start from a registered embodiment, take its "
                         "Embodiment.to_spec() (to_dict() lists the registry's variants by name, as a server's "
                         "metadata does)")
    if variants:
        chosen = variant or spec.get("default_variant") or next(iter(variants))
        chosen = next((v for v in variants if v.lower() == str(chosen).lower()), chosen)  # case-insensitive, as names
        if chosen not in variants:
            raise KeyError(f"{said}{'' if given is None else ', which'} is not defined for embodiment {name!r}; "
                           f"known: {', '.join(variants)}{typo_note([chosen], variants)}")
        base.update(variants[chosen])
    else:
        if variant not in (None, "default"):
            raise KeyError(f"{said}{' given' if given is None else ','} but embodiment {name!r} has no variants")
        chosen = "default"
    where = f"embodiment {name!r}"
    unknown = sorted(set(base) - _SPEC_KEYS)
    if unknown:  # a typo (camera_key for camera_keys) would otherwise be dropped without a word
        raise ValueError(f"{where}: unknown keys {unknown}; accepted: {', '.join(sorted(_SPEC_KEYS))}")
    domains = domain_table()
    domain = _text(where, base, "domain", _REQUIRED)
    if domain in domains:
        domain_id = _number(where, base, "domain_id", int, domains[domain]["id"])
    elif "domain_id" in base:
        domain_id = _number(where, base, "domain_id", int)
    else:
        raise ValueError(f"{where}: domain {domain!r} is unknown and no domain_id was given; accepted: a domain of "
                         f"registry.json ({', '.join(sorted(_builtin_table()['domains']))}), or domain_id set to a "
                         f"free action-head slot (the lowest: {free_domain_id()})")
    action_dim = _number(where, base, "action_dim", int)
    columns = _strings(where, base, "columns", _REQUIRED)
    return _validated(
        Embodiment(
            name=name,
            variant=chosen,
            domain=domain,
            domain_id=domain_id,
            action_dim=action_dim,
            columns=columns,
            # one per column, not per action_dim: a spec is data (a server's metadata, a checkpoint's embodiment.json),
            # and action_dim=10**9 built 8 GB of units before `_validated` compared it with the columns
            units=_strings(where, base, "units", None) or (UNITLESS,) * len(columns),
            chunk_size=_number(where, base, "chunk_size", int),
            fps=_number(where, base, "fps", float),
            camera_keys=_strings(where, base, "camera_keys", ("observation/image",)),
            view_point=_text(where, base, "view_point", "ego_view"),
            layout=_text(where, base, "layout", "generic"),
            normalization=_text(where, base, "normalization", "none"),
            stats=_stats(where, base),
            aliases=_strings(where, base, "aliases", ()),
            resolution_tier=_number(where, base, "resolution_tier", int, 480),
            prompt_format=_text(where, base, "prompt_format", "json"),
            view_description=_text(where, base, "view_description", ""),
            gripper_column=_text(where, base, "gripper_column", None),
            gripper_flip=_flag(where, base, "gripper_flip", False),
            state_history=_number(where, base, "state_history", int, 0),
            state_keys=_state_keys(where, base),
            composite=_text(where, base, "composite", None),
            snap_to_16=_flag(where, base, "snap_to_16", True),
            sampling_preset=_text(where, base, "sampling_preset", None),
            execute_steps=_number(where, base, "execute_steps", int, None),
            description=_text(where, base, "description", ""),
            variants=tuple(variants),
        )
    )


_REQUIRED = object()


def _number(where: str, base: Mapping[str, Any], key: str, kind: type, default: Any = _REQUIRED) -> Any:
    """`base[key]` as an int or float (the default when absent), refusing strings, bools and fractional ints."""
    value = base.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(f"{where}: missing required field {key}")
        return default
    wanted = "an integer" if kind is int else "a number"
    if not is_real(value, finite=False) or (kind is int and not float(value).is_integer()):
        raise ValueError(f"{where}: {key}={value!r}; expected {wanted}")
    return kind(value)


def _text(where: str, base: Mapping[str, Any], key: str, default: Any) -> Any:
    """`base[key]` as a string (the default when absent): a list or number would otherwise fail as an unhashable
    lookup or a name no list of accepted ones holds, without saying a string was wanted."""
    value = base.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(f"{where}: missing required field {key}")
        return default
    if not isinstance(value, str):
        raise ValueError(f"{where}: {key}={value!r}; expected a string")
    return value


def _strings(where: str, base: Mapping[str, Any], key: str, default: Any) -> Any:
    """A list of strings as a tuple: one bare string would otherwise become a tuple of its characters."""
    value = base.get(key)
    if value is None:
        if default is _REQUIRED:
            raise ValueError(f"{where}: missing required field {key}")
        return default
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: {key}={value!r}; expected a list of strings")
    return tuple(value)


def _stats(where: str, base: Mapping[str, Any]) -> dict[str, tuple[float, ...]] | None:
    """The stats map as tuples of floats; a bare number or string would otherwise fail obscurely or become digits."""
    stats = base.get("stats")
    if not stats:
        return None
    if base.get("normalization", "none") == "none":
        fits = [k for k, fields in REQUIRED_STATS.items() if fields and all(f in stats for f in fields)]
        kinds = ' or '.join(map(repr, fits)) or 'the kind they are for'
        if "normalization" not in base:  # e.g. q01/q99 given, kind forgotten: actions would go out in model units
            raise ValueError(f"{where}: stats are given ({', '.join(sorted(map(str, stats)))}) but no normalization, "
                             f"so they would be ignored (normalization 'none' is the default); set normalization to "
                             f"{kinds}, or drop the stats")
        _unused_stats(f"{where}: stats are given ({', '.join(sorted(map(str, stats)))})", kinds, "the stats")
        return None
    if not isinstance(stats, Mapping):
        raise ValueError(f"{where}: stats={stats!r}; expected a map of field name to a list of numbers (one per "
                         "column)")
    out = {}
    for key, values in stats.items():
        values = values.tolist() if isinstance(values, np.ndarray) else values
        if not isinstance(values, (list, tuple)) or not all(is_real(v, finite=False) for v in values):
            raise ValueError(f"{where}: stats.{key}={values!r}; expected a list of numbers (one per column)")
        out[key] = tuple(float(v) for v in values)
    return out


def _state_keys(where: str, base: Mapping[str, Any]) -> dict[str, str]:
    """The observation keys of the state's parts: exactly `STATE_ROLES`, or none (the state then comes as `state=`)."""
    value = base.get("state_keys") or {}
    if not isinstance(value, Mapping) or (value and (set(value) != set(STATE_ROLES) or not all(
            isinstance(v, str) and v for v in value.values()))):
        raise ValueError(f"{where}: state_keys={value!r}; accepted: a map of {' and '.join(STATE_ROLES)} to the "
                         "observation keys that carry them (e.g. {'joints': 'observation/joint_position', 'gripper': "
                         "'observation/gripper_position'}), or none (the state then comes as state=[...])")
    return dict(value)


def _flag(where: str, base: Mapping[str, Any], key: str, default: bool) -> bool:
    value = base.get(key, default)
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where}: {key}={value!r}; expected true or false")
    return bool(value)


_SPEC_KEYS = {f.name for f in dataclasses.fields(Embodiment)} | {"key"}  # `key` as `to_dict` writes it


def _validated(e: Embodiment) -> Embodiment:
    where = f"embodiment {e.key!r}"
    for key, values in (("name", (e.name,)), ("variant", (e.variant,)), ("domain", (e.domain,)),
                        ("aliases", e.aliases), ("columns", e.columns), ("units", e.units),
                        ("camera_keys", e.camera_keys)):
        # a newline in a name split the log line and the listing it is written in (and could forge the next one)
        if bad := next((v for v in values if isinstance(v, str) and not v.isprintable()), None):
            raise ValueError(f"{where}: {key} has {bad!r}, which holds a control character (newline, tab...); "
                             "accepted: printable text")
    if not 0 <= e.domain_id < MAX_DOMAIN_ID:
        raise ValueError(f"{where}: domain_id={e.domain_id} outside [0, {MAX_DOMAIN_ID})")
    if e.action_dim < 1 or len(e.columns) != e.action_dim or len(e.units) != e.action_dim:
        raise ValueError(
            f"{where}: action_dim={e.action_dim} but {len(e.columns)} columns and {len(e.units)} units were given"
        )
    if len(set(e.columns)) != len(e.columns):
        raise ValueError(f"{where}: column names must be unique, got {list(e.columns)}")
    for key, values, what in (("columns", e.columns, "name"), ("units", e.units, "unit")):
        if not all(v.strip() for v in values):  # a plot's axis or an actions.json column that names nothing
            raise ValueError(f"{where}: {key}={list(values)} has an empty {what}; accepted: non-empty {key}")
    if e.in_model_space and e.normalization != "none":  # e.g. umi's registry entry given stats, units left as they were
        cols = [c for c, u in zip(e.columns, e.units) if u == MODEL_SPACE_UNIT]
        raise ValueError(f"{where}: units say {MODEL_SPACE_UNIT!r} (model space) for {', '.join(cols)}, but "
                         f"normalization {e.normalization!r} turns actions into physical units; accepted: each "
                         "column's physical unit in units (e.g. 'm' for tx, ty, tz; '1' for rot6d and grasp)")
    for check, value in ((check_chunk_size, e.chunk_size), (check_resolution_tier, e.resolution_tier)):
        try:  # here, naming the embodiment, not when a policy is loaded with it
            check(value)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if e.execute_steps is not None and not 1 <= e.execute_steps <= e.chunk_size:
        raise ValueError(f"{where}: execute_steps={e.execute_steps}; accepted: 1..chunk_size ({e.chunk_size}) or none")
    if not (math.isfinite(e.fps) and e.fps > 0):
        raise ValueError(f"{where}: fps={e.fps} must be a finite number > 0")
    if e.layout not in LAYOUTS:
        raise ValueError(f"{where}: layout={e.layout!r}; accepted: {', '.join(LAYOUTS)}")
    if e.view_point not in view_point_sentences():
        raise ValueError(f"{where}: view_point={e.view_point!r}; accepted: {', '.join(view_point_sentences())}")
    if e.prompt_format not in PROMPT_FORMATS:
        raise ValueError(f"{where}: prompt_format={e.prompt_format!r}; accepted: {', '.join(PROMPT_FORMATS)}")
    if e.gripper_column is not None and e.gripper_column not in e.columns:
        raise ValueError(f"{where}: gripper_column={e.gripper_column!r} is not one of the columns {list(e.columns)}")
    if e.gripper_flip and e.gripper_column is None:  # the flip needs a column: without one nothing would be flipped
        raise ValueError(f"{where}: gripper_flip=true but no gripper_column; accepted: a gripper_column naming the "
                         f"column to flip (one of {', '.join(e.columns)}), or gripper_flip=false")
    if e.state_history not in (0, 1):
        raise ValueError(f"{where}: state_history={e.state_history}; accepted: 0 or 1")
    _check_cameras(e, where)
    _check_known_domain(e)
    check_stats(e.normalization, e.stats, e.columns, where=f"{where} stats")
    return e


def _check_cameras(e: Embodiment, where: str) -> None:
    """Cameras the composite can place: a DROID composite of two cameras, or the same camera twice, would otherwise
    register and fail (or compose nonsense) only once the weights have loaded and a frame arrives."""
    keys = e.camera_keys
    if not keys or not all(k.strip() for k in keys):
        raise ValueError(f"{where}: camera_keys={list(keys)}; accepted: one or more camera keys (non-empty), e.g. "
                         "['observation/image']")
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"{where}: camera_keys={list(keys)} names {', '.join(twice)} twice; accepted: each camera "
                         "once")
    if e.composite is None:
        return
    if e.composite not in COMPOSITES:
        raise ValueError(f"{where}: composite={e.composite!r}; accepted: {', '.join(COMPOSITES)} (or none)")
    fewest, most = COMPOSITES[e.composite]
    if len(keys) < fewest or (most is not None and len(keys) > most):
        count = f"{fewest}" if fewest == most else f"{fewest} or more"
        raise ValueError(f"{where}: composite={e.composite!r} composes {count} cameras but camera_keys has "
                         f"{len(keys)} ({', '.join(keys)}); accepted: {count} camera_keys"
                         + ("" if fewest == most else ", or no composite (one camera)"))


def _check_known_domain(e: Embodiment) -> None:
    """A domain of registry.json names an action-head row trained on actions of its width: another id or width would
    silently drive another robot's row or read columns it never learned. Accepted widths: the table's (diffusers')
    and those of the built-in embodiments on that domain (droid/joint_pos: 8 in droid_lerobot's row)."""
    known = _builtin_table()["domains"].get(e.domain)
    if known is None:
        return
    where = f"embodiment {e.key!r}"
    if e.domain_id != known["id"]:
        raise ValueError(f"{where}: domain_id={e.domain_id} but domain {e.domain!r} is action-head slot {known['id']} "
                         f"(registry.json); accepted: {known['id']} or no domain_id (another slot needs another domain "
                         "name)")
    if known["width"] is None:  # no_action, libero: no fixed width
        return
    merged = [{**spec, **variant} for spec in _builtin_table()["embodiments"].values()
              for variant in (spec.get("variants") or {"default": {}}).values()]
    widths = sorted({known["width"], *(m["action_dim"] for m in merged if m["domain"] == e.domain)})
    if e.action_dim not in widths:
        raise ValueError(f"{where}: action_dim={e.action_dim} but domain {e.domain!r} carries actions "
                         f"{' or '.join(map(str, widths))} wide (registry.json); accepted: "
                         f"{', '.join(map(str, widths))} (a robot of another width needs its own domain name)")


def default_domain(spec: Mapping[str, Any]) -> str:
    """The domain a new robot's spec that names none trains as (`worldpolicy_<name>`): its own, so its head's slot
    is never a registered robot's."""
    return f"worldpolicy_{spec.get('name', 'custom')}"


def free_domain_id(taken: set[int] | None = None, include_user: bool = True) -> int:
    """The lowest action-head slot no registered domain uses — where a new robot gets its own head.
    `include_user=False` looks at the built-in domains only (the same answer in every process)."""
    used = {int(d["id"]) for d in domain_table(include_user).values()} | set(taken or ())
    for i in range(MAX_DOMAIN_ID):
        if i not in used:
            return i
    raise ValueError(f"all {MAX_DOMAIN_ID} action-head domain slots are taken")


def get_embodiment(name: str | Path | Embodiment, variant: str | None = None) -> Embodiment:
    """Look up an embodiment by name or alias (case-insensitive); `"name/variant"` selects a variant. A spec file
    (`*.json`, as `register_embodiment` reads it) is built and not registered, as a training config's `embodiment`
    path is: a robot of one's own reaches `predict`, `serve` and `sim` without a Python call to register it."""
    if isinstance(name, Embodiment):
        if variant in (None, name.variant):
            return name
        try:  # another variant comes from the registry; an unregistered spec (a checkpoint's own) has only its own
            _resolve_name(name.name)
        except KeyError:
            known = ", ".join(name.variants) or name.variant
            raise KeyError(f"variant={variant!r} is not defined for embodiment {name.name!r}; known: {known}") from None
        return get_embodiment(name.name, variant)
    if isinstance(name, Path) or isinstance(name, str) and name.strip().endswith(SPEC_FILE_SUFFIX):
        built = embodiment_from_spec(Path(name))
        if variant not in (None, built.variant):
            raise ValueError(f"variant={variant!r} given with the spec file {str(name)!r}, which describes one "
                             f"action space ({built.key!r}); accepted: no variant")
        return built
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"embodiment must be a non-empty name, got {name!r}; known: {_known_embodiments()}")
    given = None
    if "/" in name:
        given = name
        name, _, from_name = name.partition("/")
        if variant not in (None, from_name):
            raise ValueError(f"embodiment={given!r} conflicts with variant={variant!r}")
        variant = from_name
    key = _resolve_name(name)
    return _build(key, _specs()[key], variant, given)


def stateless_variant(embodiment: Embodiment) -> Embodiment | None:
    """The variant of `embodiment` that conditions on no state (`droid/relative_pose` of `droid/joint_pos`): what runs
    where the robot's state is not known (a clip recorded elsewhere), or None: it has none, or `embodiment` is not
    registered (a spec file's has only its own variant)."""
    for variant in embodiment.variants:
        try:
            other = get_embodiment(embodiment, variant)
        except KeyError:
            return None
        if not other.state_history:
            return other
    return None


def stateless_hint(embodiment: Embodiment, spelled: str) -> str:
    """What a refusal for a missing state adds: the `stateless_variant` to run without one, its key put in `spelled`
    as the caller's interface takes it (`"--embodiment {}"`), or ""."""
    other = stateless_variant(embodiment)
    return "" if other is None else (f"; without the robot's state (a clip recorded elsewhere), "
                                     f"{spelled.format(other.key)} conditions on none")


def list_embodiments() -> list[str]:
    return sorted(_specs())


def embodiment_from_dict(spec: Mapping[str, Any]) -> Embodiment:
    """An `Embodiment` from its `to_dict()` (e.g. a policy server's metadata frame), validated like a registered one
    but not registered: a client can decode a server's actions without the server's embodiment files."""
    if not isinstance(spec, Mapping) or not {"name", "variant", "domain"} <= spec.keys():
        raise ValueError("an embodiment dict needs at least name, variant and domain (as Embodiment.to_dict() gives)")
    fields = {k: v for k, v in spec.items() if k not in ("name", "variant", "variants", "key")}
    built = _build(str(spec["name"]), fields, None)
    return dataclasses.replace(built, variant=str(spec["variant"]), variants=tuple(spec.get("variants") or ()))


def register_embodiment(source: str | Path | Mapping[str, Any], overwrite: bool = False) -> Embodiment:
    """Register a user embodiment from a JSON file or a dict, and return it.

    Required keys: `name`, `domain` (a known domain or a new name with `domain_id`), `action_dim`, `columns`,
    `chunk_size`, `fps`. Optional: everything else an `Embodiment` has, plus `stats` inline or `stats_file` (any format
    `load_stats_file` reads) with `normalization`.
    """
    name, spec, built = _user_spec(source, overwrite)
    for key in [k for k in _USER if k.lower() == name.lower()]:  # one entry per name, whatever its case
        del _USER[key]
    _USER[name] = spec
    return built


def embodiment_from_spec(source: str | Path | Mapping[str, Any], checkpoint: bool = False) -> Embodiment:
    """The embodiment a `register_embodiment` spec describes, validated the same way but not registered (a listing
    must not change what other checkpoints run with). `checkpoint`: `source` is a checkpoint's embodiment.json
    (`read_spec_file`)."""
    return _user_spec(source, overwrite=True, checkpoint=checkpoint)[2]


@cache  # once per spec and process: a checkpoint's embodiment.json is read on every listing and load
def _unused_stats(given: str, kinds: str, drop: str) -> None:
    """Stats beside normalization 'none' (named, unlike a missing normalization, which is refused) are dropped with
    this warning, not refused: checkpoints an earlier trainer saved carry the data's stats beside the 'none' their
    table asked for, and load as they always did (on raw actions)."""
    logger.warning("%s but normalization is 'none', so they are ignored: actions stay as given, in raw units. Set "
                   "normalization to %s to use them, or drop %s", given, kinds, drop)


def inline_stats_file(spec: Mapping[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """`spec` with `stats_file` (and `stats_feature`, default `action`) replaced by the stats that file holds, under
    `normalization` (default quantile): a spec that stands alone, as a checkpoint's embodiment.json must (it travels
    without the file). A relative file is taken from `base_dir`. A file describes the data as recorded; inline stats
    describe what normalisation reads, so with `gripper_flip` the file's gripper column is mirrored to 1 - g
    (`normalization.mirror_column`): else a gripper recorded over [0, 0.8] would be normalised to [-0.5, 1.5]."""
    spec = dict(spec)
    stats_file, feature = spec.pop("stats_file", None), spec.pop("stats_feature", "action")
    if stats_file:
        kind = spec.get("normalization", "quantile")
        if kind not in NORMALIZATION_KINDS:
            raise ValueError(f"normalization={kind!r}; accepted: {', '.join(NORMALIZATION_KINDS)}")
        if kind == "none":  # the file's stats were read and dropped without a word
            _unused_stats(f"stats_file={str(stats_file)!r} gives stats", "the kind they are for (left out: 'quantile')",
                          "stats_file")
            return spec
        stats = load_stats_file(Path(base_dir) / Path(stats_file).expanduser(), kind, feature=feature)
        columns, gripper = spec.get("columns"), spec.get("gripper_column")
        if (spec.get("gripper_flip") is True and isinstance(columns, list) and gripper in columns
                and all(len(v) == len(columns) for v in stats.values())):  # otherwise validation names what is wrong
            stats = mirror_column(kind, stats, columns.index(gripper))
        spec["stats"] = stats
        spec["normalization"] = kind
    return spec


def spec_document(spec: Any, what: str) -> Any:
    """A spec as written to a file, without its format version: a checkpoint's embodiment.json says it
    (`fileio.EMBODIMENT_SCHEMA`, `Trainer._write_embodiment`), a spec written by hand or before versions were recorded
    need not (read as v1). One of a newer version, or with a "schema" of another kind, is refused naming `what`
    (`fileio.check_version`); what is no JSON object is left to the caller to refuse."""
    from ..fileio import EMBODIMENT_SCHEMA, check_version

    if not isinstance(spec, dict):
        return spec
    check_version(spec, EMBODIMENT_SCHEMA, what)
    return {key: value for key, value in spec.items() if key != "schema"}


def read_spec_file(path: str | Path, checkpoint: bool = False) -> Any:
    """An embodiment spec file's JSON (`spec_document`: its version checked and left out), its `stats_file` made
    absolute against the file's folder: a spec read here and
    registered elsewhere (a training config names it) reads the stats the file's author meant. `checkpoint`: the file
    is a checkpoint's embodiment.json, data from whoever made the checkpoint (a hub download, a folder an MCP server
    lists), so its `stats_file` must be in the checkpoint's folder: one pointing out of it was read wherever it
    pointed, and an error said what that file held."""
    from ..fileio import read_json

    path = Path(path).expanduser()
    spec = spec_document(read_json(path, f"embodiment file {str(path)!r}"), f"embodiment file {str(path)!r}")
    if isinstance(spec, dict) and isinstance(spec.get("stats_file"), str):
        given = Path(spec["stats_file"]).expanduser()
        if checkpoint and (given.is_absolute() or ".." in given.parts):  # by name: a hub snapshot's files are links
            raise ValueError(f"embodiment file {str(path)!r}: stats_file={spec['stats_file']!r} is outside the "
                             "checkpoint's folder; accepted: a file in it (or the stats inline, as `worldpolicy "
                             "train` writes them)")
        spec["stats_file"] = str((path.parent / given).absolute())
    return spec


# A training config's embodiment may leave its action-head slot out (training picks a free one for the starting
# checkpoint), so the spec file a robot was trained from lacks what registering or passing it needs: say so.
_DOMAIN_HINT = ("; domain is the action head it runs on: a domain of registry.json, or a new name with domain_id (a "
                "free action-head slot). Training fills both in for a spec that leaves them out, so the "
                "embodiment.json of a checkpoint it saved has them: pass that file, or leave the embodiment out to "
                "run the checkpoint as its own robot")


def _user_spec(source: str | Path | Mapping[str, Any], overwrite: bool,
               checkpoint: bool = False) -> tuple[str, dict[str, Any], Embodiment]:
    if isinstance(source, (str, Path)):
        spec = read_spec_file(source, checkpoint)
        what = f"embodiment file {str(source)!r}"  # the CLI's --embodiment my_robot.json: say which file is wrong
    elif isinstance(source, Mapping):
        what = "embodiment spec"
        # a relative stats_file is taken from the working directory; a checkpoint's embodiment.json read as a dict
        spec = spec_document(dict(source), what)
    else:
        raise TypeError(f"register_embodiment: expected a JSON file path or a dict spec, got {type(source).__name__}")
    if not isinstance(spec, dict):
        raise ValueError(f"{what} must hold a JSON object, not {type(spec).__name__}")
    missing = [k for k in ("name", "domain", "action_dim", "columns", "chunk_size", "fps") if k not in spec]
    if missing:
        raise ValueError(f"{what} is missing required keys {missing}" + (_DOMAIN_HINT if "domain" in missing else ""))
    spec = dict(spec)
    name = spec.pop("name")
    if not isinstance(name, str) or not name.strip() or "/" in name or name != name.strip():
        raise ValueError(f"embodiment name={name!r}: expected a non-empty name without '/' or surrounding spaces "
                         "('/' separates a variant: 'droid/joint_pos')")
    builtin = _builtin_table()["embodiments"]
    if not overwrite:
        taken = _names(builtin)
        if name.lower() in taken:
            raise ValueError(f"embodiment {name!r} is built in (as {taken[name.lower()]!r}); pass overwrite=True to "
                             "shadow it")
        names = _names({**builtin, **{k: v for k, v in _USER.items() if k.lower() != name.lower()}})
        clashes = [a for a in spec.get("aliases") or () if isinstance(a, str) and a.lower() in names]
        if clashes:
            raise ValueError(f"embodiment {name!r}: aliases {clashes} already name "
                             f"{sorted({names[a.lower()] for a in clashes})}; pass overwrite=True to shadow them")
    spec = inline_stats_file(spec)  # names a missing file
    if spec.get("normalization", "none") not in NORMALIZATION_KINDS:
        raise ValueError(f"normalization={spec['normalization']!r}; accepted: {', '.join(NORMALIZATION_KINDS)}")
    built = _build(name, spec, spec.get("variant"))
    if spec["domain"] not in _builtin_table()["domains"]:
        spec["domain_id"] = built.domain_id
    return name, spec, built
