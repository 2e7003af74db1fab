"""The training objectives and timestep sampling as names and numbers, without torch: `TrainConfig` checks its
settings against them before anything heavy loads, and `flow` (which trains them) imports them from here."""

from __future__ import annotations

import math

OBJECTIVES = ("policy", "forward_dynamics", "inverse_dynamics")
# Cosmos Policy's batch split (cosmos-policy.md §4: 50 % policy, 25 % world model, 25 % value); Cosmos3 has an
# inverse-dynamics head where Cosmos Policy had a value frame.
COSMOS_POLICY_MIX = {"policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}
TIMESTEP_SAMPLING = ("logit_normal", "uniform")


def check_timesteps(kind: str, mean: float, std: float, shift: float) -> None:
    """Refuse timestep settings `flow.TimestepSampler` cannot draw from, naming the `timesteps.*` setting."""
    if kind not in TIMESTEP_SAMPLING:
        raise ValueError(f"timesteps.kind={kind!r}; accepted: {', '.join(TIMESTEP_SAMPLING)}")
    if not math.isfinite(mean):
        raise ValueError(f"timesteps.mean={mean!r} must be finite")
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"timesteps.std={std!r} must be > 0")
    if not (math.isfinite(shift) and shift > 0):
        raise ValueError(f"timesteps.shift={shift!r} must be > 0")
