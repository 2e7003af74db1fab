"""Example run directories with smooth synthetic chunks, for the docs' images and for trying `viz`/`report` without a model.

`python -m worldpolicy.viz.examples OUT_DIR` writes `OUT_DIR/droid_run` (joint layout) and `OUT_DIR/bridge_run`
(relative-pose layout), each with actions.json, a synthetic rollout.mp4, plots, an animation and index.html.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..embodiments import get_embodiment
from ..fileio import ACTIONS_FILE, write_json_atomic
from ..processing.video import write_video
from ..results import ACTIONS_SCHEMA
from ..robot.se3 import matrix_to_rot6d
from .report import write_report
from .run import ROLLOUT_VIDEO, SETTINGS_FILE, visualize

__all__ = ["bridge_chunk", "droid_chunk", "synthetic_rollout", "write_example_runs"]


def droid_chunk(steps: int = 32) -> np.ndarray:
    """Absolute joints easing towards a grasp pose, gripper closing at 40 % of the chunk."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    home = np.array([0.0, -0.6, 0.0, -2.2, 0.0, 1.6, 0.8])
    target = home + np.array([0.35, 0.45, -0.2, 0.5, 0.1, -0.25, 0.6])
    ease = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / 0.6, 0, 1))
    joints = home + (target - home) * ease
    gripper = (t[:, 0] >= 0.4).astype(float) * np.clip((t[:, 0] - 0.4) * 8, 0, 1)
    return np.concatenate([joints, gripper[:, None]], axis=1)


def bridge_chunk(steps: int = 16) -> np.ndarray:
    """Per-step EE deltas: forward and down while turning about z, then lift; grasp closes half-way."""
    out = np.zeros((steps, 10))
    for i in range(steps):
        yaw, pitch = 0.06, 0.02 * np.sin(np.pi * i / steps)
        cz, sz, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        rot = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        descending = i < steps // 2
        out[i, :3] = [0.012, 0.004, -0.008 if descending else 0.01]
        out[i, 3:9] = matrix_to_rot6d(rot)
        out[i, 9] = 0.0 if descending else 1.0
    return out


def synthetic_rollout(frames: int, height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """A moving block over a gradient: enough structure to see the playhead and video stay in sync."""
    rng = np.random.default_rng(seed)
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0] = np.linspace(40, 200, width, dtype=np.uint8)[None, :]
    base[..., 2] = np.linspace(200, 60, height, dtype=np.uint8)[:, None]
    colour = rng.integers(100, 255, 3, dtype=np.uint8)
    video = np.repeat(base[None], frames, axis=0)
    for k in range(frames):
        x = int((width - 30) * k / max(frames - 1, 1))
        video[k, height // 2 - 15 : height // 2 + 15, x : x + 30] = colour
    return video


def _write_run(run: Path, embodiment: str, actions: np.ndarray, prompt: str) -> Path:
    e = get_embodiment(embodiment)
    run.mkdir(parents=True, exist_ok=True)
    doc = {
        "schema": ACTIONS_SCHEMA,
        "mode": "policy",
        "embodiment": e.key,
        "fps": e.fps,
        "chunk_size": int(actions.shape[0]),
        "columns": list(e.columns),
        "units": list(e.units),
        "actions": actions.tolist(),
        "actions_normalized": e.normalize(actions).tolist(),
        "video_frames": int(actions.shape[0]) + 1,
        "timings_s": {},
        "settings": {"prompt": prompt, "synthetic": True},
    }
    write_json_atomic(run / ACTIONS_FILE, doc)
    write_json_atomic(run / SETTINGS_FILE, {"command": "predict", "prompt": prompt, "synthetic": True})
    write_video(run / ROLLOUT_VIDEO, synthetic_rollout(actions.shape[0] + 1), e.fps)
    visualize(run)
    write_report(run, title=f"example {e.key} run (synthetic actions)")
    return run


def write_example_runs(out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    return [
        _write_run(out_dir / "droid_run", "droid", droid_chunk(), "pick up the marker"),
        _write_run(out_dir / "bridge_run", "bridge", bridge_chunk(), "put the spoon in the pot"),
    ]


if __name__ == "__main__":
    for path in write_example_runs(sys.argv[1] if len(sys.argv) > 1 else "example_runs"):
        print(path)
