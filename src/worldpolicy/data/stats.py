"""Feature statistics in LeRobot's `meta/stats.json` shape: min, max, mean, std, count and quantiles.

Low-dimensional features get exact statistics (numpy, population std, linear-interpolated quantiles). Video features
are summarised per channel in [0, 1] and shaped (3, 1, 1) like LeRobot's; across episodes they are pooled with
`aggregate_stats` (exact min/max/mean/std; quantiles as count-weighted means of per-episode quantiles, as LeRobot does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
STAT_NAMES = ("min", "max", "mean", "std", "count") + tuple(f"q{round(q * 100):02d}" for q in QUANTILES)


def compute_stats(values: np.ndarray, image: bool = False) -> dict[str, np.ndarray]:
    """Statistics over the first axis of `values` ([N] or [N, D]), or per channel of uint8 frames [N, H, W, 3].

    Returns float64 arrays shaped [D] (or [1] for [N]), and (3, 1, 1) for images; `count` is [N].
    """
    x = np.asarray(values)
    if x.size == 0 or x.shape[0] == 0:
        raise ValueError(f"compute_stats: values has shape {x.shape}; need at least one row")
    if image:
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"compute_stats(image=True): values must be frames [N, H, W, 3], got shape {x.shape}")
        flat = x.reshape(-1, 3).astype(np.float64) / 255.0
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
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    qs = np.quantile(flat, QUANTILES, axis=0)
    for name, q in zip(STAT_NAMES[5:], qs):
        out[name] = q
    if image:
        out = {k: v if k == "count" else v.reshape(3, 1, 1) for k, v in out.items()}
    return out


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
