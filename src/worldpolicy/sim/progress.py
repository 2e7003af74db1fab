"""Task-progress scores read from camera frames — used to rank imagined futures in best-of-N planning.

`reach_progress` finds the target ball (its colour is named in the prompt) and the robot (the light-grey links) in
each stacked view of a frame and scores minus their mean pixel distance, normalised by the view width: 0 means the
gripper touches the ball in every view. Colour rules are this scene's (worldpolicy.sim.tasks.COLORS), not general.
"""

from __future__ import annotations

import numpy as np

from worldpolicy.sim.tasks import COLORS

__all__ = ["prompt_color", "reach_progress"]


def prompt_color(prompt: str) -> str:
    words = prompt.lower().replace(",", " ").split()
    for name in COLORS:
        if name in words:
            return name
    raise ValueError(f"prompt {prompt!r} names none of the scene colours {list(COLORS)}")


def _masks(view: np.ndarray, color: str) -> tuple[np.ndarray, np.ndarray]:
    rgb = view[..., :3].astype(np.float32)
    target = np.asarray(COLORS[color][:3], dtype=np.float32) * 255.0
    hue = rgb / np.maximum(rgb.sum(-1, keepdims=True), 1.0)
    target_hue = target / target.sum()
    ball = (np.abs(hue - target_hue).sum(-1) < 0.12) & (rgb.max(-1) > 60)
    robot = (rgb.min(-1) > 150) & (rgb.max(-1) - rgb.min(-1) < 25)
    return ball, robot


def reach_progress(video: np.ndarray, prompt: str, views: int = 2) -> float:
    """Minus the mean ball-to-robot pixel distance over the `views` stacked views of the last frame (in view widths);
    a view where the ball is hidden (behind the arm, or blurred away) counts 0.25."""
    frame = np.asarray(video)[-1] if np.ndim(video) == 4 else np.asarray(video)
    color = prompt_color(prompt)
    total = 0.0
    height = frame.shape[0] // views
    for i in range(views):
        view = frame[i * height : (i + 1) * height]
        ball, robot = _masks(view, color)
        if not ball.any() or not robot.any():
            total += 0.25
            continue
        by, bx = np.nonzero(ball)
        ry, rx = np.nonzero(robot)
        centre = np.array([by.mean(), bx.mean()])
        total += float(np.sqrt(((np.stack([ry, rx], 1) - centre) ** 2).sum(1)).min()) / view.shape[1]
    return -total / views
