"""Shared action chunks for the viz tests (synthetic, physical units)."""

from __future__ import annotations

import numpy as np
import pytest

from worldpolicy.embodiments import get_embodiment
from worldpolicy.robot.se3 import matrix_to_rot6d


def yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _actions_json(embodiment: str, actions: np.ndarray, mode: str = "policy") -> dict:
    e = get_embodiment(embodiment)
    return {
        "schema": "worldpolicy.actions/v1",
        "mode": mode,
        "embodiment": e.key,
        "fps": e.fps,
        "chunk_size": int(actions.shape[0]),
        "columns": list(e.columns),
        "units": list(e.units),
        "actions": np.asarray(actions, dtype=np.float64).tolist(),
        "actions_normalized": np.zeros_like(actions).tolist(),
        "video_frames": None,
        "timings_s": {"total": 0.5},
        "settings": {"seed": 0},
    }


@pytest.fixture
def actions_json():
    """Factory: (embodiment, actions[, mode]) → a `worldpolicy.actions/v1` dict."""
    return _actions_json


@pytest.fixture
def joint_chunk() -> np.ndarray:
    """DROID joint_pos chunk [32, 8]: smooth joints, gripper closes at step 13."""
    t = np.linspace(0, 3, 32)
    a = np.zeros((32, 8))
    a[:, :7] = np.sin(t)[:, None] * np.linspace(0.2, 1.0, 7)
    a[:, 7] = (np.arange(32) >= 13).astype(float)
    return a


@pytest.fixture
def pose_chunk() -> np.ndarray:
    """RAW10 chunk [32, 10]: 1 cm forward per step while yawing 0.05 rad per step; grasp closes at step 21."""
    a = np.zeros((32, 10))
    a[:, 0] = 0.01
    a[:, 3:9] = matrix_to_rot6d(yaw(0.05))
    a[:, 9] = (np.arange(32) >= 21).astype(float)
    return a
