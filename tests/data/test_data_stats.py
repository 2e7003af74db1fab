"""compute_stats / aggregate_stats against numpy, and dataset stats feeding an embodiment's normalisation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worldpolicy.data import QUANTILES, aggregate_stats, compute_stats


def test_compute_stats_matches_numpy():
    x = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)
    s = compute_stats(x)
    ref = x.astype(np.float64)
    np.testing.assert_allclose(s["min"], ref.min(0))
    np.testing.assert_allclose(s["max"], ref.max(0))
    np.testing.assert_allclose(s["mean"], ref.mean(0))
    np.testing.assert_allclose(s["std"], ref.std(0))
    for q in QUANTILES:
        np.testing.assert_allclose(s[f"q{round(q * 100):02d}"], np.quantile(ref, q, axis=0))
    assert s["count"].tolist() == [500]
    assert set(s) == {"min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"}
    assert compute_stats(np.arange(5))["q50"].tolist() == [2.0]


def test_image_stats_are_per_channel_in_unit_range():
    frames = np.zeros((2, 4, 4, 3), np.uint8)
    frames[..., 0] = 255
    frames[1, ..., 2] = 51
    s = compute_stats(frames, image=True)
    assert s["mean"].shape == (3, 1, 1) and s["q99"].shape == (3, 1, 1)
    np.testing.assert_allclose(s["mean"].reshape(3), [1.0, 0.0, 0.1])
    np.testing.assert_allclose(s["max"].reshape(3), [1.0, 0.0, 0.2])
    assert s["count"].tolist() == [2]


def test_image_stats_equal_numpy_on_the_float_pixels():
    """Video stats come from per-channel histograms; they must equal numpy on the [0, 1] floats, quantiles included."""
    frames = np.random.default_rng(1).integers(0, 256, size=(7, 9, 11, 3), dtype=np.uint8)
    frames[..., 1] //= 16  # a narrow channel exercises the interpolation between equal neighbours
    s = compute_stats(frames, image=True)
    pixels = frames.reshape(-1, 3) / 255.0
    ref = {"min": pixels.min(0), "max": pixels.max(0), "mean": pixels.mean(0), "std": pixels.std(0)}
    ref.update({f"q{round(q * 100):02d}": np.quantile(pixels, q, axis=0) for q in QUANTILES})
    for key, value in ref.items():
        np.testing.assert_allclose(s[key].reshape(3), value, rtol=0, atol=1e-12, err_msg=key)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_aggregate_equals_whole_for_moments(lengths, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.normal(loc=rng.normal(), size=(n, 3)) for n in lengths]
    whole = compute_stats(np.concatenate(parts))
    pooled = aggregate_stats([compute_stats(p) for p in parts])
    for key in ("min", "max", "mean", "std", "count"):
        np.testing.assert_allclose(pooled[key], whole[key], rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize(
    "values, kwargs, match",
    [
        (np.zeros((0, 3)), {}, "at least one row"),
        (np.zeros((2, 3, 4)), {}, r"\[N\] or \[N, D\]"),
        (np.array(["a", "b"]), {}, "numeric"),
        (np.zeros((2, 4, 4)), {"image": True}, r"frames \[N, H, W, 3\]"),
    ],
)
def test_bad_input(values, kwargs, match):
    with pytest.raises(ValueError, match=match):
        compute_stats(values, **kwargs)


def test_dataset_stats_register_an_embodiment(small_dataset, monkeypatch):
    """The trainer's path to a new embodiment: LeRobot stats.json → quantile normalisation to [-1, 1]."""
    from worldpolicy import embodiments
    from worldpolicy.embodiments import register_embodiment

    monkeypatch.setattr(embodiments, "_USER", {})  # keep the registration out of other tests

    ds, written = small_dataset
    emb = register_embodiment(
        {
            "name": "test_data_stats_bot",
            "domain": "test_data_stats_domain",
            "domain_id": 30,
            "action_dim": 3,
            "columns": ["x", "y", "z"],
            "chunk_size": 4,
            "fps": ds.fps,
            "normalization": "quantile",
            "stats_file": str(ds.stats_path),
        },
        overwrite=True,
    )
    action = np.concatenate([w["frames"]["action"] for w in written]).astype(np.float64)
    np.testing.assert_allclose(emb.stats["q01"], np.quantile(action, 0.01, axis=0))
    normalized = emb.normalize(action)
    assert np.mean(np.abs(normalized) <= 1.0) >= 0.9
    np.testing.assert_allclose(emb.denormalize(normalized), action, atol=1e-9)


def test_feature_stats_and_names_side_by_side(small_dataset):
    ds, written = small_dataset
    both = ds.feature_stats(["action", "next.reward"])
    action = np.concatenate([w["frames"]["action"] for w in written]).astype(np.float64)
    reward = np.concatenate([w["frames"]["next.reward"] for w in written]).astype(np.float64)
    np.testing.assert_allclose(both["q99"], np.append(np.quantile(action, 0.99, axis=0), np.quantile(reward, 0.99)))
    assert both["mean"].shape == (4,) and both["count"].tolist() == [28]
    # without meta/stats.json the same numbers come from the parquet files
    ds.stats_path.unlink()
    np.testing.assert_allclose(ds.feature_stats(["action", "next.reward"])["q99"], both["q99"])
    assert ds.feature_names(["action", "next.reward"]) == ["action_0", "action_1", "action_2", "next.reward"]
    with pytest.raises(KeyError, match="observation.images.front"):
        ds.feature_stats("observation.images.front")


def test_multi_feature_embodiment_from_feature_stats(small_dataset, monkeypatch):
    from worldpolicy import embodiments

    monkeypatch.setattr(embodiments, "_USER", {})
    ds, written = small_dataset
    keys = ["action", "next.reward"]
    emb = embodiments.register_embodiment(
        {
            "name": "test_data_two_feature_bot",
            "domain": "test_data_two_feature_domain",
            "domain_id": 31,
            "action_dim": 4,
            "columns": ds.feature_names(keys),
            "chunk_size": 4,
            "fps": ds.fps,
            "normalization": "minmax",
            "stats": {k: v.tolist() for k, v in ds.feature_stats(keys).items()},
        }
    )
    values = np.concatenate(
        [np.concatenate([w["frames"][k].reshape(len(w["frames"][k]), -1) for k in keys], 1) for w in written]
    ).astype(np.float64)
    normalized = emb.normalize(values)
    np.testing.assert_allclose(normalized.min(0), -1.0)
    np.testing.assert_allclose(normalized.max(0), 1.0)
    assert emb.columns == ("action_0", "action_1", "action_2", "next.reward")


def test_importing_the_package_stays_light():
    """`worldpolicy.data` loads pyarrow only when a dataset is opened or written, and never torch."""
    import subprocess
    import sys

    code = (
        "import sys, worldpolicy.data\n"
        "from worldpolicy.data import compute_stats\n"
        "print(sorted(m for m in ('pyarrow', 'av', 'torch', 'mujoco') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
