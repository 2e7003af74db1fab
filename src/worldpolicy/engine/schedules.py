"""Sampling settings and the UniPC flow scheduler built from the checkpoint's own config.

Defaults come from the checkpoint (`scheduler/scheduler_config.json` and `model_index.json`'s
`use_native_flow_schedule`), exactly as `Cosmos3OmniPipeline` would use them. Overrides: `schedule` ("linear" flow
with `shift`, or "karras", whose sigmas ignore a flow shift: one given beside it is refused), and `native_grid` (the
reference base grid linspace(1-1/1000, 0), for linear flow only: `KARRAS_NATIVE_GRID`).
Named presets (`PRESETS`) hold the released DROID settings; embodiment variants name theirs in the registry.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import is_integer, is_real
from ..processing.prompts import check_length

SCHEDULES = ("checkpoint", "linear", "karras")
# Why the native grid is never applied to Karras sigmas (diffusers would): Karras builds its own ramp and reads a grid
# passed to it only for its ends, taken from the grid reversed, so without sigma_min/max in the scheduler config the
# noise levels rise (4 steps: 0.20, 0.29, 0.39, 0.50, starting from pure noise) and with them the grid changes nothing.
KARRAS_NATIVE_GRID = ("the native grid is a linear-flow grid; Karras sigmas build their own ramp (given the grid, "
                      "diffusers' noise levels rise instead of falling from 1)")

# Named presets; an embodiment variant names its default in the registry (`sampling_preset`).
# droid_native = the released Cosmos3-Nano-Policy-DROID (RoboLab server, cosmos3-model.md §11/§20): 4 steps, CFG 3,
# linear flow shift 5 on the native grid.
# small_no_cfg = models trained without caption dropout (the shipped from-scratch model): no CFG, 12 steps (the
# previous shipped reach model, r7, solved 79 of 100 episodes with 12 steps, 76 with 6; benchmarks/README.md).
PRESETS = {
    "droid_native": {"steps": 4, "guidance": 3.0, "schedule": "linear", "shift": 5.0, "native_grid": True},
    "small_no_cfg": {"steps": 12, "guidance": 1.0},
}


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample. `None` fields fall back to the checkpoint; `seed=None` draws a fresh seed per request."""

    steps: int = 4
    guidance: float = 3.0
    schedule: str = "checkpoint"
    shift: float | None = None
    native_grid: bool | None = None
    negative_prompt: str = ""
    use_system_prompt: bool | None = None

    def __post_init__(self) -> None:
        # numpy scalars (from np.arange / linspace sweeps) count as the numbers they are; stored as Python ones
        if is_integer(self.steps):
            object.__setattr__(self, "steps", int(self.steps))
        if is_real(self.guidance, finite=False):
            object.__setattr__(self, "guidance", float(self.guidance))
        if not is_integer(self.steps) or not 1 <= self.steps <= 1000:
            raise ValueError(f"steps={self.steps!r} must be an integer in [1, 1000]")
        if not isinstance(self.guidance, float) or not math.isfinite(self.guidance) or self.guidance < 0:
            raise ValueError(f"guidance={self.guidance!r} must be a finite number >= 0 (1.0 disables CFG)")
        if _named(self.schedule) not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r}; accepted: {', '.join(SCHEDULES)} (in any case)")
        object.__setattr__(self, "schedule", _named(self.schedule))
        if self.shift is not None:
            if not is_real(self.shift, finite=False):
                raise ValueError(f"shift={self.shift!r} must be a number > 0 (or None for the checkpoint's)")
            object.__setattr__(self, "shift", float(self.shift))
            if not math.isfinite(self.shift) or self.shift <= 0:
                raise ValueError(f"shift={self.shift!r} must be a finite number > 0")
        for name in ("native_grid", "use_system_prompt"):  # a string such as "no" would count as True
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{name}={value!r} must be True, False or None (the checkpoint's)")
            object.__setattr__(self, name, bool(value))
        if self.schedule == "karras" and self.shift is not None:
            raise ValueError("shift has no effect with schedule='karras' (Karras sigmas ignore flow_shift); drop one")
        if self.schedule == "karras" and self.native_grid:
            raise ValueError(f"native_grid=True does not apply to schedule='karras': {KARRAS_NATIVE_GRID}; drop one")
        if not isinstance(self.negative_prompt, str):
            raise TypeError(f"negative_prompt must be a string, got {type(self.negative_prompt).__name__}")
        check_length(self.negative_prompt, "negative_prompt")

    @property
    def uses_cfg(self) -> bool:
        return self.guidance != 1.0

    def updated(self, **overrides: Any) -> SamplingConfig:
        return replace(self, **_merged(vars(self), overrides))

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> SamplingConfig:
        if _named(preset) not in PRESETS:
            raise ValueError(f"preset={preset!r} is not known; accepted: {', '.join(PRESETS)} (in any case)")
        return cls(**_merged(PRESETS[_named(preset)], overrides))


def _named(name: Any) -> Any:
    """A schedule's or preset's name as the tables spell it: read in any case, as dtype and device names are
    (`--schedule Karras`, `preset="DROID_native"`); anything else as given, for the check that refuses it."""
    return name.strip().lower() if isinstance(name, str) else name


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """`base` with the given (non-None) overrides. Asking for the Karras schedule drops a shift and a native grid that
    came from the base (a preset's linear-flow settings mean nothing to it); either given beside it is still refused."""
    given = {k: v for k, v in overrides.items() if v is not None}
    merged = {**base, **given}
    if _named(given.get("schedule")) == "karras":
        for linear_only in ("shift", "native_grid"):
            if linear_only not in given:
                merged[linear_only] = None
    return merged


def make_scheduler(base, sampling: SamplingConfig, use_native_flow_schedule: bool):
    """A fresh scheduler with timesteps set, from the checkpoint's scheduler and the sampling overrides."""
    return _build_scheduler(base, sampling, use_native_flow_schedule)[0]


def schedule_in_effect(base, sampling: SamplingConfig, use_native_flow_schedule: bool) -> dict[str, Any]:
    """What `make_scheduler` runs for `sampling`, as JSON-safe values for `Prediction.settings`: the requested
    `schedule`/`shift`/`native_grid` are often None ("the checkpoint's"), which does not say what sampled. Keys:
    `schedule_used` ("linear" flow, "karras", or the scheduler's class name for another sigma spacing), `shift_used`
    (the flow shift applied; None where none is: Karras and other spacings), `native_grid_used`, and `sigmas` (the
    noise levels stepped through, ending at the final one; 4 significant digits, finer than the integer timesteps the
    model is fed)."""
    scheduler, native = _build_scheduler(base, sampling, use_native_flow_schedule)
    config = scheduler.config
    if config.get("use_karras_sigmas", False):
        kind = "karras"
    elif config.get("use_flow_sigmas", False) and not (config.get("use_exponential_sigmas", False)
                                                        or config.get("use_beta_sigmas", False)):
        kind = "linear"
    else:
        kind = type(scheduler).__name__
    shifted = kind == "linear" and not config.get("use_dynamic_shifting", False)
    return {"schedule_used": kind, "shift_used": float(config.flow_shift) if shifted else None,
            "native_grid_used": native,
            "sigmas": [float(f"{sigma:.4g}") for sigma in np.asarray(scheduler.sigmas, dtype=np.float64)]}


def _build_scheduler(base, sampling: SamplingConfig, use_native_flow_schedule: bool) -> tuple[Any, bool]:
    """`make_scheduler`'s scheduler and whether it runs on the native grid (`schedule_in_effect` records it)."""
    scheduler = copy.deepcopy(base)
    overrides: dict[str, Any] = {}
    if sampling.schedule == "linear":
        overrides["use_karras_sigmas"] = False
        overrides["use_flow_sigmas"] = True
    elif sampling.schedule == "karras":
        overrides["use_karras_sigmas"] = True
    if sampling.shift is not None:
        overrides["flow_shift"] = float(sampling.shift)
    if overrides:
        scheduler = type(base).from_config(base.config, **overrides)
    karras = bool(scheduler.config.get("use_karras_sigmas", False))
    if karras and sampling.shift is not None:  # schedule="checkpoint" on a Karras checkpoint: it would do nothing
        raise ValueError(f"shift={sampling.shift} has no effect on the checkpoint's Karras schedule (Karras sigmas "
                         "ignore flow_shift); drop shift, or pass schedule='linear' to use it")
    if karras and sampling.native_grid:
        raise ValueError(f"native_grid=True does not apply to the checkpoint's Karras schedule: {KARRAS_NATIVE_GRID}; "
                         "drop native_grid, or pass schedule='linear'")
    # The checkpoint's `use_native_flow_schedule` under Karras: where diffusers' result is sane (sigma_min/max set),
    # the grid changes nothing, so leaving it out keeps parity; elsewhere it would make the noise levels rise.
    native = use_native_flow_schedule if sampling.native_grid is None else sampling.native_grid
    if native and not karras:
        n_train = scheduler.config.num_train_timesteps
        sigmas = np.linspace(1.0 - 1.0 / n_train, 0.0, sampling.steps + 1)[:-1]
        scheduler.set_timesteps(sampling.steps, sigmas=sigmas)
    else:
        scheduler.set_timesteps(sampling.steps)
    # Sampling starts at the first timestep. Left unset, the scheduler looks its start up by timestep value, and past
    # ~200 steps the shifted grid rounds two timesteps to one integer: it then started one step late and failed on the
    # last step (`assert self.this_order > 0`). Where timesteps are distinct the start is the same either way.
    scheduler.set_begin_index(0)
    return scheduler, bool(native and not karras)
