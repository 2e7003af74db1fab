"""Feature statistics in LeRobot's `meta/stats.json` shape: min, max, mean, std, count and quantiles.

Low-dimensional features get exact statistics (numpy, population std, linear-interpolated quantiles). Video features
are summarised per channel in [0, 1] and shaped (3, 1, 1) like LeRobot's; across episodes they are pooled with
`aggregate_stats` (exact min/max/mean/std; quantiles as count-weighted means of per-episode quantiles, as LeRobot does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STAT_NAMES = ("min", "max", "mean", "std", "count") + tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


@dataclass(frozen=True)
class NonFinite:
    """The first NaN/inf of an episode's float features: which key, frame and column, its value, and how many frames
    of that episode hold one."""

    key: str
    frame: int
    column: int
    value: float
    frames: int


def first_non_finite(frames: Mapping[str, Any], keys: Iterable[str] | None = None) -> NonFinite | None:
    """The first NaN/inf among `keys` (default: every float feature) of one episode's per-frame arrays [T, ...]:
    readable data no policy can learn from (the dataset writer refuses it, `dataset check` and training report it)."""
    for key in frames if keys is None else keys:
        values = np.asarray(frames[key])
        if values.dtype.kind != "f":
            continue
        bad = ~np.isfinite(values.reshape(len(values), -1))
        if bad.any():
            frame, column = (int(i) for i in np.argwhere(bad)[0])
            value = float(values.reshape(len(values), -1)[frame, column])
            return NonFinite(key, frame, column, value, int(bad.any(axis=1).sum()))
    return None


def compute_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """Statistics over the first axis of `values` ([N] or [N, D]), or per channel of uint8 frames [N, H, W, 3].

    Returns float64 arrays shaped [D] (or [1] for [N]), and (3, 1, 1) for images; `count` is [N].
    """
    x = np.asarray(values)
    if x.size == 0 or x.shape[0] == 0:
        raise ValueError(f"compute_stats: values has shape {x.shape}; need at least one row")
    if image:
        if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
            raise ValueError(
                f"compute_stats(image=True): values must be uint8 frames [N, H, W, 3], got {x.dtype} {x.shape}"
            )
        out = _pixel_stats(x.reshape(-1, 3))
        out = {k: v.reshape(3, 1, 1) for k, v in out.items()}
    else:
        if x.ndim not in (1, 2):
            raise ValueError(f"compute_stats: values must be [N] or [N, D], got shape {x.shape}")
        if x.dtype.kind not in "biuf":
            raise ValueError(f"compute_stats: values must be numeric, got dtype {x.dtype}")
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        out = {
            "min": flat.min(axis=0),
            "max": flat.max(axis=0),
            "mean": flat.mean(axis=0),
            "std": flat.std(axis=0),
        }
        for name, q in zip(STAT_NAMES[5:], np.quantile(flat, QUANTILES, axis=0)):
            out[name] = q
    out["count"] = np.array([x.shape[0]], dtype=np.int64)
    return {name: out[name] for name in STAT_NAMES}


def _pixel_stats(pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 pixels [P, 3] in [0, 1], from 256-bin histograms.

    Exact, and equal to numpy on the float values (quantiles use numpy's linear interpolation), at a fraction of
    the cost of sorting millions of floats.
    """
    levels = np.arange(256, dtype=np.float64) / 255.0
    n = pixels.shape[0]
    rank = (n - 1) * np.asarray(QUANTILES)
    lo = np.floor(rank).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    stats: dict[str, list[float]] = {name: [] for name in ("min", "max", "mean", "std", *STAT_NAMES[5:])}
    for c in range(3):
        counts = np.bincount(pixels[:, c], minlength=256).astype(np.float64)
        present = np.flatnonzero(counts)
        mean = counts @ levels / n
        stats["min"].append(levels[present[0]])
        stats["max"].append(levels[present[-1]])
        stats["mean"].append(mean)
        stats["std"].append(np.sqrt(counts @ (levels - mean) ** 2 / n))
        cumulative = np.cumsum(counts)
        at_lo = levels[np.searchsorted(cumulative, lo, side="right")]  # the lo-th smallest value (0-based)
        at_hi = levels[np.searchsorted(cumulative, hi, side="right")]
        for name, value in zip(STAT_NAMES[5:], at_lo + (rank - lo) * (at_hi - at_lo)):
            stats[name].append(value)
    return {k: np.asarray(v) for k, v in stats.items()}


def aggregate_stats(parts: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Pool per-episode stats of one feature: exact min/max/mean/std (parallel variance), weighted quantiles."""
    if not parts:
        raise ValueError("aggregate_stats: no stats given")
    counts = np.array([float(np.asarray(p["count"]).reshape(-1)[0]) for p in parts])
    weights = (counts / counts.sum()).reshape((-1,) + (1,) * np.asarray(parts[0]["mean"]).ndim)
    means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
    stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
    mean = (weights * means).sum(axis=0)
    var = (weights * (stds**2 + (means - mean) ** 2)).sum(axis=0)
    out = {
        "min": np.min(np.stack([np.asarray(p["min"], dtype=np.float64) for p in parts]), axis=0),
        "max": np.max(np.stack([np.asarray(p["max"], dtype=np.float64) for p in parts]), axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(counts.sum())], dtype=np.int64),
    }
    for name in STAT_NAMES[5:]:
        out[name] = (weights * np.stack([np.asarray(p[name], dtype=np.float64) for p in parts])).sum(axis=0)
    return out


def stats_to_json(stats: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {feature: {k: np.asarray(v).tolist() for k, v in s.items()} for feature, s in stats.items()}


def stats_from_json(raw: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    return {feature: {k: np.asarray(v) for k, v in s.items()} for feature, s in raw.items() if isinstance(s, Mapping)}
