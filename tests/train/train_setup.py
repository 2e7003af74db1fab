"""Shared setup of the trainer tests: the tiny embodiment and synthetic episodes in the `from_sim` layout."""

from __future__ import annotations

from typing import Any

import numpy as np

CAMERAS = ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]
VIDEO_KEYS = ["observation.image.exterior_image_1_left", "observation.image.exterior_image_2_left"]
REACH_CAMERAS = ["observation/exterior_image_1_left", "observation/wrist_image_left"]  # the shipped model's
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


def make_episode(seed: int, cameras: list[str] = CAMERAS) -> dict[str, Any]:
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
    for c, camera in enumerate(cameras):
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


def tiny_observation(seed: int) -> dict[str, Any]:
    """One openpi-keyed observation for `TINY_EMBODIMENT`: two random camera images and a joint/gripper state."""
    rng = np.random.default_rng(seed)
    return {
        "observation/exterior_image_1_left": rng.integers(0, 255, (64, 96, 3), dtype=np.uint8),
        "observation/exterior_image_2_left": rng.integers(0, 255, (64, 96, 3), dtype=np.uint8),
        "observation/joint_position": np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854]),
        "observation/gripper_position": np.array([0.0]),
    }
