"""Fixtures for the trainer tests: a tiny random checkpoint, a tiny LeRobot dataset, and training configs on them.

Everything runs on CPU with one intra-op thread: the models are tiny, and on a small shared machine extra threads only
contend with each other (a tiny step goes from ~50 ms to seconds).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")

CAMERAS = ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]
VIDEO_KEYS = ["observation.image.exterior_image_1_left", "observation.image.exterior_image_2_left"]
CHUNK = 4
EPISODE_LENGTH = 10
IMAGE_SIZE = (64, 96)

# A new embodiment (its own action-head slot, stats from the data): joint targets + gripper with a clean state row,
# the two exterior cameras stacked — trained from the dataset's DROID-style joint columns without conversion.
TINY_EMBODIMENT: dict[str, Any] = {
    "name": "tiny_panda",
    "layout": "joint_position",
    "action_dim": 8,
    "columns": [f"joint_{i}" for i in range(7)] + ["gripper"],
    "units": ["rad"] * 7 + ["1"],
    "gripper_column": "gripper",
    "state_history": 1,
    "state_keys": {"joints": "observation/joint_position", "gripper": "observation/gripper_position"},
    "fps": 15,
    "resolution_tier": 256,
    "camera_keys": CAMERAS,
    "composite": "stacked",
    "snap_to_16": False,
    "view_point": "concat_view",
    "prompt_format": "plain",
}


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


def _episode(seed: int) -> dict[str, Any]:
    """A smooth joint-space reach near the Panda's home pose (gripper closes half-way), and two camera videos of a
    square that moves with the arm — small, deterministic, and shaped exactly like `from_sim` output."""
    from worldpolicy.data.from_sim import ACTION_KEYS, STATE_KEYS, camera_feature
    from worldpolicy.robot.robots import get_robot

    rng = np.random.default_rng(seed)
    home = np.asarray(get_robot("panda").home)
    t = np.linspace(0.0, 1.0, EPISODE_LENGTH + 1)[:, None]
    direction = rng.uniform(-0.3, 0.3, size=7)
    path = home + t * direction  # state at t, action = next state
    grip = (t[:, 0] > 0.5).astype(np.float32)
    h, w = IMAGE_SIZE
    videos = {}
    for c, camera in enumerate(CAMERAS):
        frames = np.full((EPISODE_LENGTH, h, w, 3), 40 + 60 * c, dtype=np.uint8)
        for i in range(EPISODE_LENGTH):
            y = int(8 + 40 * t[i, 0] * (1 + c) / 2)
            x = int(10 + 60 * t[i, 0] + 10 * seed)
            frames[i, y : y + 12, x : x + 12] = (220, 40 + 100 * seed, 40)
        videos[camera_feature(camera)] = frames
    return {
        "frames": {
            STATE_KEYS[0]: path[:-1].astype(np.float32),
            STATE_KEYS[1]: grip[:-1, None],
            ACTION_KEYS[0]: path[1:].astype(np.float32),
            ACTION_KEYS[1]: grip[1:, None],
            "next.reward": np.zeros(EPISODE_LENGTH, dtype=np.float32),
            "next.done": np.arange(EPISODE_LENGTH) == EPISODE_LENGTH - 1,
        },
        "videos": videos,
        "task": ["move the gripper to the red ball", "move the gripper to the blue ball"][seed % 2],
    }


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Two 10-frame episodes in the `from_sim` layout (DROID keys, two 64x96 lossless camera videos)."""
    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features

    root = tmp_path_factory.mktemp("train_data") / "ds"
    write_episodes(root, (_episode(s) for s in range(2)), fps=15, features=sim_features("panda", IMAGE_SIZE, CAMERAS),
                   robot_type="panda", video_codec="libx264rgb")
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
