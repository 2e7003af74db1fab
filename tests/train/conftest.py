"""Fixtures for the trainer tests: a tiny random checkpoint, a tiny LeRobot dataset, and training configs on them.

Everything runs on CPU with one intra-op thread: the models are tiny, and on a small shared machine extra threads only
contend with each other (a tiny step goes from ~50 ms to seconds).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from train_setup import CAMERAS, CHUNK, IMAGE_SIZE, REACH_CAMERAS, TINY_EMBODIMENT, VIDEO_KEYS, make_episode

pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from worldpolicy.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("train_ckpt") / "tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two 10-frame episodes in the `from_sim` layout (DROID keys, two 64x96 lossless camera videos)."""
    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("train_data") / "ds"
    write_episodes(root, (make_episode(s) for s in range(2)), fps=15, features=sim_features("panda", IMAGE_SIZE, CAMERAS),
                   robot_type="panda", video_codec="libx264rgb")
    return root


@pytest.fixture(scope="session")
def reach_dataset(tmp_path_factory) -> Path:
    """What `worldpolicy dataset from-sim` writes with the shipped model's two cameras: joint targets, two videos."""
    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("reach_data") / "ds"
    write_episodes(root, (make_episode(s, REACH_CAMERAS) for s in range(2)), fps=15, robot_type="panda",
                   features=sim_features("panda", IMAGE_SIZE, REACH_CAMERAS), video_codec="libx264rgb")
    return root


@pytest.fixture(scope="session")
def latent_cache_dir(tmp_path_factory) -> Path:
    """One latent cache shared by the training runs (keyed by fingerprint, so sharing is what users get too)."""
    return tmp_path_factory.mktemp("train_cache")


@pytest.fixture(scope="session")
def train_config(tiny_checkpoint, tiny_dataset, latent_cache_dir):
    """`train_config(output_dir, **overrides)` → a raw config dict (nested tables merged one level deep)."""

    def make(output_dir: Path, **overrides: Any) -> dict[str, Any]:
        raw: dict[str, Any] = {
            "output_dir": str(output_dir),
            "checkpoint": str(tiny_checkpoint),
            "embodiment": copy.deepcopy(TINY_EMBODIMENT),
            "seed": 3,
            "log_every": 1,
            "save_every": 2,
            "keep_checkpoints": 2,
            "device": "cpu",
            "data": {"dataset": str(tiny_dataset), "chunk_size": CHUNK, "video_keys": list(VIDEO_KEYS),
                     "cache_dir": str(latent_cache_dir)},
            "objectives": {"preset": "cosmos_policy"},
            "optim": {"steps": 6, "batch_size": 2, "lr": 1e-3, "warmup_steps": 2},
        }
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict) and key != "embodiment":
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
        return raw

    return make


@pytest.fixture(scope="session")
def loaded_trainer(tiny_checkpoint, tiny_dataset, latent_cache_dir, tmp_path_factory):
    """A `Trainer` with its checkpoint and cached examples loaded (no training step taken)."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = {
        "output_dir": str(tmp_path_factory.mktemp("train_loaded")), "checkpoint": str(tiny_checkpoint),
        "embodiment": copy.deepcopy(TINY_EMBODIMENT), "device": "cpu",
        "data": {"dataset": str(tiny_dataset), "chunk_size": CHUNK, "video_keys": list(VIDEO_KEYS),
                 "cache_dir": str(latent_cache_dir)},
    }
    trainer = Trainer(load_config(raw), progress=False)
    trainer._load()
    trainer.transformer.eval()
    return trainer
