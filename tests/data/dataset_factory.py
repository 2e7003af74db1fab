"""Builders for small synthetic episodes used by the dataset tests."""

from __future__ import annotations

import numpy as np


def frame_ramp(length: int, height: int = 16, width: int = 16, offset: int = 0) -> np.ndarray:
    """Frames whose every pixel encodes the frame index (value 5·(t + offset)), so windows can be checked exactly."""
    values = (5 * (np.arange(length) + offset)) % 256
    return np.broadcast_to(values[:, None, None, None], (length, height, width, 3)).astype(np.uint8).copy()


def make_episode(length: int, seed: int, offset: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    return {
        "frames": {
            # column 0 is the frame index, so windows are easy to check
            "action": np.stack([t + offset, -t, rng.normal(size=length)], axis=1).astype(np.float32),
            "observation.state": rng.normal(size=(length, 3)),
            "next.done": t == length - 1,
            "next.reward": rng.integers(0, 5, size=length).astype(np.int64),
        },
        "videos": {"observation.images.front": frame_ramp(length, offset=offset)},
    }
