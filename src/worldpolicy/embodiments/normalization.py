"""Per-column action (de)normalisation between model space and physical units.

Formulas follow robot-bridge.md §2 and upstream Cosmos3/LeRobot processors: every column is normalised, rot6d and
grasp included. Pure numpy so the server and robot bridge can use it without torch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import is_real

NORMALIZATION_KINDS = ("none", "meanstd", "minmax", "quantile", "quantile_rot")
REQUIRED_STATS = {
    "none": (),
    "meanstd": ("mean", "std"),
    "minmax": ("min", "max"),
    "quantile": ("q01", "q99"),
    "quantile_rot": ("q01", "q99"),
}


def check_stats(kind: str, stats: Mapping[str, Any] | None, columns: Sequence[str],
                where: str = "stats") -> dict[str, np.ndarray]:
    """Validate stats for a normalisation kind and return them as float64 arrays, one value per column. Disordered
    bounds (q01 > q99, min > max) or a negative std would turn every action into nonsense without an error."""
    if kind not in NORMALIZATION_KINDS:
        raise ValueError(f"normalization={kind!r} is not supported; accepted: {', '.join(NORMALIZATION_KINDS)}")
    needed = REQUIRED_STATS[kind]
    if not needed:
        return {}
    if not stats:
        raise ValueError(f"{where}: normalization {kind!r} needs stats fields {list(needed)}, but no stats were given")
    out = {}
    for field in needed:
        if field not in stats:
            raise ValueError(f"{where}: normalization {kind!r} needs field {field!r}; present: {sorted(stats)}")
        values = np.asarray(stats[field], dtype=np.float64).reshape(-1)
        if values.shape[0] != len(columns):
            raise ValueError(f"{where}.{field} has {values.shape[0]} values; accepted: one per column "
                             f"({len(columns)}: {', '.join(columns)})")
        _refuse_columns(values, ~np.isfinite(values), columns, f"{where}.{field}", "finite numbers")
        out[field] = values
    if kind == "meanstd":
        _refuse_columns(out["std"], out["std"] < 0, columns, f"{where}.std", "std >= 0")
    else:
        lo, hi = needed
        flipped = np.flatnonzero(out[lo] > out[hi])
        if flipped.size:
            given = ", ".join(f"{columns[i]} ({lo}={out[lo][i]:g}, {hi}={out[hi][i]:g})" for i in flipped)
            raise ValueError(f"{where}: {lo} > {hi} in column {given}; accepted: {lo} <= {hi} in every column")
    return out


def _refuse_columns(values: np.ndarray, bad: np.ndarray, columns: Sequence[str], where: str, accepted: str) -> None:
    if bad.any():
        given = ", ".join(f"{columns[i]}={values[i]:g}" for i in np.flatnonzero(bad))
        raise ValueError(f"{where}: {given}; accepted: {accepted}")


_MIN_SPAN, _MIN_STD = 1e-6, 1e-8  # floors of a column's spread: one the data held constant divides by these


def _lo_hi(kind: str, stats: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if kind == "minmax":
        lo, hi = stats["min"], stats["max"]
    else:
        lo, hi = stats["q01"], stats["q99"]
    return lo, np.maximum(hi - lo, _MIN_SPAN)


def constant_columns(kind: str, stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per column, whether the stats' spread is at its floor (the data held it constant, e.g. a gripper a reach never
    closes): there any departure from that value is huge in model space, whatever its units."""
    if kind == "meanstd":
        return np.asarray(stats["std"]) <= _MIN_STD
    return _lo_hi(kind, stats)[1] <= _MIN_SPAN


def denormalize(actions: np.ndarray, kind: str, stats: Mapping[str, np.ndarray]) -> np.ndarray:
    """Model space → physical units (last axis = columns)."""
    a = np.asarray(actions, dtype=np.float64)
    if kind == "none":
        return a.copy()
    if kind == "meanstd":
        return a * np.maximum(stats["std"], _MIN_STD) + stats["mean"]
    lo, span = _lo_hi(kind, stats)
    return 0.5 * (a + 1.0) * span + lo


def normalize(actions: np.ndarray, kind: str, stats: Mapping[str, np.ndarray], clip: bool = False) -> np.ndarray:
    """Physical units → model space. `clip` mirrors recent upstream quantile processors (clamp to [-1, 1]: values past
    the bounds held at them); it leaves meanstd alone, whose [-1, 1] is one std and not the data's range."""
    x = np.asarray(actions, dtype=np.float64)
    if kind == "none":
        return x.copy()
    if kind == "meanstd":
        return (x - stats["mean"]) / np.maximum(stats["std"], _MIN_STD)
    lo, span = _lo_hi(kind, stats)
    a = 2.0 * (x - lo) / span - 1.0
    return np.clip(a, -1.0, 1.0) if clip else a


def mirror_column(kind: str, stats: Mapping[str, Sequence[float]], index: int) -> dict[str, list[float]]:
    """`stats` with column `index` describing 1 - x instead of x: what a gripper recorded 0 open .. 1 closed has once
    an embodiment with `gripper_flip` reverses it before normalising (`processing.actions.to_model`). The bounds swap
    (q01' = 1 - q99, min' = 1 - max, ...), the mean mirrors, the std stays."""
    out = {field: [float(v) for v in values] for field, values in stats.items()}
    if kind == "meanstd":
        out["mean"][index] = 1.0 - out["mean"][index]
    elif kind != "none":
        lo, hi = REQUIRED_STATS[kind]
        out[lo][index], out[hi][index] = 1.0 - out[hi][index], 1.0 - out[lo][index]
    return out


def load_stats_file(path: str | Path, kind: str, feature: str = "action") -> dict[str, list[float]]:
    """Read stats in any of the formats seen in the field (robot-bridge.md §2).

    Accepted: a flat `{"q01": [...], "q99": [...]}` (or min/max/mean/std); an engine-style dict with a `"global"` or
    `"global_raw"` block; a LeRobot `meta/stats.json` (`{feature: {...}}`); Cosmos Policy `actions_min` / `actions_max` /
    `actions_mean` / `actions_std`.
    """
    from ..fileio import read_json

    raw = read_json(path, f"stats file {str(path)!r}")
    if not isinstance(raw, dict):
        raise ValueError(f"stats file {str(path)!r} must hold a JSON object, got {type(raw).__name__}")
    return extract_stats(raw, kind, feature=feature, where=str(path))


def _stat_values(values: Any, where: str) -> list[float]:
    """One stats field as floats, one per column (nested lists flattened). A string, null or object in a stats file
    otherwise failed as numpy's "could not convert string to float" naming neither file nor field, or became NaN."""
    leaves = np.asarray(values, dtype=object).reshape(-1).tolist() if isinstance(values, (list, tuple, np.ndarray)) \
        else [values]
    if not leaves or not all(is_real(v, finite=False) for v in leaves):
        raise ValueError(f"{where}={values!r}; accepted: a list of numbers, one per column")
    return [float(v) for v in leaves]


def extract_stats(raw: Mapping[str, Any], kind: str, feature: str = "action", where: str = "stats") -> dict[str, list]:
    needed = REQUIRED_STATS.get(kind)
    if needed is None:
        raise ValueError(f"normalization={kind!r} is not supported; accepted: {', '.join(NORMALIZATION_KINDS)}")
    candidates: list[Mapping[str, Any]] = []
    if kind == "quantile_rot" and isinstance(raw.get("global_raw"), Mapping):
        candidates.append(raw["global_raw"])
    if isinstance(raw.get("global"), Mapping):
        candidates.append(raw["global"])
    if isinstance(raw.get(feature), Mapping):
        candidates.append(raw[feature])
    candidates.append(raw)
    candidates.append({k.removeprefix("actions_"): v for k, v in raw.items() if k.startswith("actions_")})
    for block in candidates:
        if all(field in block for field in needed):
            return {field: _stat_values(block[field], f"{where}: {field}") for field in needed}
    raise ValueError(
        f"{where}: no {list(needed)} found for normalization {kind!r} (looked at top level, 'global', "
        f"'global_raw', feature {feature!r} and 'actions_*' keys)"
    )
