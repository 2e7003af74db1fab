"""Task-progress scores read from camera frames — used to rank imagined futures in best-of-N planning.

`reach_progress` finds the target ball (its colour is named in the prompt) in each stacked view of a frame and scores
minus its mean distance to the gripper, in view widths: 0 means the gripper touches the ball in every view. In an
exterior view the gripper is the nearest light-grey robot pixel; a wrist camera never sees the arm, so there the
gripper is the fixed spot where a touched ball appears (`WRIST_CONTACT`). `reach_scorer(camera_keys)` builds the
scorer for an embodiment's stacked cameras; `scorer_for(name, embodiment)` a scorer of `SCORERS` by its name, refused
where it cannot read the embodiment's cameras; `check_plan` what a sim run's planning asks, before anything loads (this
module imports no MuJoCo: `worldpolicy sim` checks it before the simulator picks its GL). Colour rules are this scene's
(worldpolicy.sim.tasks.COLORS), not general.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from worldpolicy.sim.tasks import BUILTIN_POLICIES, COLORS

__all__ = ["NOT_FOUND", "SCORERS", "SCORER_REWARDS", "WRIST_CONTACT", "ReachScorer", "check_plan", "check_scorer_name",
           "prompt_color", "reach_progress", "reach_scorer", "scorer_for"]

# What a view where the ball (or, in an exterior view, the robot) is not found, hidden or blurred away, counts
NOT_FOUND = 0.25

# The scorers a dream's chunks may be scored by (`worldpolicy dream --score`, the agents' dream) and what the reward of
# each is, said wherever a dream's rewards are read: `dream --help`, the MCP dream tool's `score` and `rewards`,
# dream.json's `reward_meaning` and so its page (the Strands tool's docstring spells it, a test holds it to this)
SCORER_REWARDS = {
    "reach": "minus the ball-to-gripper distance in the chunk's last imagined frame, in view widths, averaged over the "
             "views (0: the gripper touches the ball; a view where the ball, or in an exterior view the robot, is not "
             f"found counts {NOT_FOUND} (-{NOT_FOUND}: found in no view))",
}
SCORERS = tuple(SCORER_REWARDS)

# Where the ball's centre sits in the wrist view (fractions of height, width) when the TCP is at the ball's centre:
# measured on scripted-expert reach episodes (0.77-0.85, 0.48-0.52 at the last steps).
WRIST_CONTACT = (0.8, 0.5)
VIEW_KINDS = ("exterior", "wrist")


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


def reach_progress(video: np.ndarray, prompt: str, views: int | Sequence[str] = 2) -> float:
    """Minus the mean ball-to-gripper distance over the stacked views of the last frame (in view widths). `views` is
    the number of exterior views, or each view's kind ("exterior" or "wrist") top to bottom. A view where the ball
    (or, in an exterior view, the robot) is not found — hidden, or blurred away — counts `NOT_FOUND`."""
    kinds = ["exterior"] * views if isinstance(views, int) else list(views)
    unknown = [k for k in kinds if k not in VIEW_KINDS]
    if not kinds or unknown:
        raise ValueError(f"views={views!r}: expected a count >= 1 or view kinds from {VIEW_KINDS}")
    frame = np.asarray(video)[-1] if np.ndim(video) == 4 else np.asarray(video)
    color = prompt_color(prompt)
    total = 0.0
    height = frame.shape[0] // len(kinds)
    for i, kind in enumerate(kinds):
        view = frame[i * height : (i + 1) * height]
        ball, robot = _masks(view, color)
        if not ball.any() or (kind == "exterior" and not robot.any()):
            total += NOT_FOUND
            continue
        by, bx = np.nonzero(ball)
        centre = np.array([by.mean(), bx.mean()])
        if kind == "wrist":
            contact = np.array([WRIST_CONTACT[0] * view.shape[0], WRIST_CONTACT[1] * view.shape[1]])
            total += float(np.linalg.norm(centre - contact)) / view.shape[1]
            continue
        ry, rx = np.nonzero(robot)
        total += float(np.sqrt(((np.stack([ry, rx], 1) - centre) ** 2).sum(1)).min()) / view.shape[1]
    return -total / len(kinds)


@dataclasses.dataclass(frozen=True)
class ReachScorer:
    """`reach_progress` of frames stacked from views of these kinds, top to bottom. `check_prompt` refuses a prompt
    naming no ball colour, which the planner and the world-model env call before any model work (`planning.
    check_prompt`), where scoring the first imagined future would be the first to find it."""

    views: tuple[str, ...]

    def __call__(self, video: np.ndarray, prompt: str) -> float:
        return reach_progress(video, prompt, self.views)

    def check_prompt(self, prompt: str) -> None:
        prompt_color(prompt)


def reach_scorer(camera_keys: Sequence[str]) -> Callable[[np.ndarray, str], float]:
    """`reach_progress` for frames stacked from these cameras (a key naming "wrist" is a wrist view)."""
    return ReachScorer(tuple("wrist" if "wrist" in key else "exterior" for key in camera_keys))


def check_scorer_name(name: Any, parameter: str) -> None:
    """`name` refused, naming `parameter`, unless it is one of `SCORERS` (`scorer_for`, `check_plan`)."""
    if name not in SCORERS:
        raise ValueError(f"{parameter}: unknown scorer {name!r}; accepted: {', '.join(SCORERS)}")


def scorer_for(name: str, embodiment, parameter: str = "scorer",
               without: str = "leave planning out") -> Callable[[np.ndarray, str], float]:
    """The scorer `name` (one of `SCORERS`) of the frames `embodiment` imagines (a planner's candidates: `sim --plan`;
    a dream's chunks: `dream --score`), refused naming `parameter`, before any model work, where it cannot read them,
    its error ending with `without` (how to do without the scorer): reach reads each view as a band of the frame,
    top to bottom, so it needs cameras (`camera_keys`), one alone or stacked (composite `stacked`); a DROID composite
    (the wrist camera on top, two exterior cameras side by side below) would be cut into three bands that are none of
    its views."""
    check_scorer_name(name, parameter)
    keys = list(embodiment.camera_keys)
    if not keys or (len(keys) > 1 and embodiment.composite != "stacked"):
        has = (f"composes its cameras {keys} as {embodiment.composite!r}" if keys else "has no camera")
        raise ValueError(f"{parameter}: {name} reads the ball and the gripper in each camera's band of the imagined "
                         f"frame, one camera alone or cameras stacked top to bottom (composite 'stacked'); embodiment "
                         f"{embodiment.key!r} {has}: use a checkpoint whose embodiment stacks its cameras (the shipped "
                         f"model's panda_reach), or {without}")
    return reach_scorer(keys)


def check_plan(plan: Any, scorer: Any, *, policy: str, num_envs: int = 1, rtc: bool = False) -> str | None:
    """A sim run's best-of-N planning (`worldpolicy sim --plan/--plan-scorer`, the agents' `plan`/`plan_scorer`),
    refused naming `plan` or `plan_scorer` before anything loads: `plan` candidates in `planning.PLAN_CANDIDATES`, a
    scorer of `SCORERS` (whether it can read the checkpoint's cameras: `scorer_for`, once its embodiment is
    known), a local checkpoint to imagine with (`policy`: the policy as given), and neither `num_envs`
    above 1 nor `rtc`, which the planner cannot run with. Returns the scorer's name (reach where none is given), None
    without `plan`."""
    from worldpolicy.models import served
    from worldpolicy.planning import check_candidates

    if plan is None:
        if scorer is not None:
            raise ValueError(f"plan_scorer: {scorer!r} ranks a planner's candidates, and no plan= is given: nothing "
                             "is planned; give plan= (the candidates, e.g. 4), or leave plan_scorer out")
        return None
    check_candidates(plan, "plan")
    if scorer is not None:
        check_scorer_name(scorer, "plan_scorer")
    if policy in BUILTIN_POLICIES or served(policy):
        raise ValueError(f"plan: {plan} imagines each candidate chunk with a local checkpoint's forward dynamics; "
                         f"policy={policy!r} has none to plan with (a ws:// server answers plain requests): give a "
                         "checkpoint, or leave plan out")
    if num_envs != 1:
        raise ValueError(f"num_envs: {num_envs} batches several episodes' plain requests; planning makes its own "
                         "batched passes for each chunk (its candidates, then their imagined futures): accepted with "
                         "a planner (plan=): 1")
    if rtc:
        raise ValueError("rtc: conditions a sampled chunk on the running chunk's actions, which a planner's imagined "
                         "futures cannot take: leave rtc out (or plan=)")
    return scorer or SCORERS[0]  # reach, the one there is
