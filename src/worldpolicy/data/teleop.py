"""A person's demonstrations in the simulator → the dataset `dataset from-sim` writes (`worldpolicy dataset teleop`).

The person drags a target (`sim.env.TELEOP_TARGET`, a mocap body) in MuJoCo's passive viewer; each control tick the
hand follows it by IK (`robot.kinematics.IKSolver`, each step's joint change held to the cap the scripted expert's
are held to: `sim.policies.joint_step_cap`) and the env steps as a recording's does (`TabletopEnv.act`). Keys toggle the
gripper and end the episode as a success or a failure, or discard it to try its scene again (`VIEWER_KEYS`).

What decides the motion is an input source (`TeleopInput`): the viewer and keyboard (`ViewerInput`), a SpaceMouse or
a gamepad (`data.teleop_devices.DeviceInput`, the viewer showing the scene), or a script (`ScriptedInput`: tests, a
recorded path replayed), so the loop runs headless. The episodes go through
`from_sim.sim_to_dataset` (`recorder=teleop_episodes`): the same features, cameras, fps, task text, provenance
(`expert` "teleop", the `input`), periodic keeps, Ctrl-C keeping the finished episodes, `resume` and the folder lock.
Every episode ended as a success or a failure is kept, flagged in meta/episodes' `success` column; a discarded one is
not written, and its scene (seed) comes again.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..sim.rendering import RenderingUnavailable
from ..sim.scenes import DEFAULT_IMAGE_SIZE
from .from_sim import (
    TELEOP_EXPERT,
    EpisodeRows,
    ExpertEpisodes,
    _CameraFrames,
    _make_env,
    discard_frames,
    episode_task,
    expert_episodes,
)
from .layout import TELEOP_MAX_STEPS

if TYPE_CHECKING:
    from worldpolicy.sim.env import TabletopEnv

__all__ = ["EVENTS", "TELEOP_MAX_STEPS", "VIEWER_KEYS", "ScriptedInput", "TeleopInput", "TeleopQuit",
           "ViewerInput", "ViewerUnavailable", "check_display", "teleop_episodes"]

logger = logging.getLogger(__name__)

# How a person's episodes are made (the IK loop, the step cap, when an episode ends), recorded as the provenance's
# `expert_version` (as the scripted expert's `ScriptedPolicy.version`): raised with any change, so `--resume` never
# pools two
TELEOP_VERSION = 1
# What an input source says in a tick: toggle the gripper, end the episode (kept, flagged), discard it (its scene
# again), stop recording (the finished episodes kept)
EVENTS = ("gripper", "success", "failure", "discard", "quit")
# The viewer's keys (GLFW key codes), none of the letters and digits MuJoCo's viewer toggles its display with; Space
# also pauses the viewer's own physics, which a passive viewer does not run (the recording steps it). Closing the
# window quits.
VIEWER_KEYS = {32: ("gripper", "Space"), 257: ("success", "Enter"), 269: ("failure", "End"),
               261: ("discard", "Delete")}
# the provenance keys of the scripted expert's settings, which a person's episodes do not have
_EXPERT_SETTINGS = ("chunk_size", "start_jitter", "action_noise", "settle_steps")


class TeleopQuit(KeyboardInterrupt):
    """The person quit (`quit`): stops the recording as Ctrl-C does, so `sim_to_dataset` keeps the finished episodes
    (`RecordingInterrupted`)."""


class ViewerUnavailable(RenderingUnavailable):
    """MuJoCo's viewer cannot open a window here (no display, or a GL setting that conflicts with it)."""


class TeleopInput(Protocol):
    """What moves the teleop target and presses the keys. `name` is recorded in the provenance (`input`), and a
    source's `speed` where it has one (a device's: `data.teleop_devices.DeviceInput`)."""

    name: str

    def open(self, env: TabletopEnv) -> None:
        """Before the first episode (the viewer's window opens)."""

    def begin(self, env: TabletopEnv, seed: int, attempt: int) -> None:
        """An episode starts (`attempt`: 0, 1, … over the recording, redos counted), `env` reset to `seed`'s scene,
        the target on the hand."""

    def tick(self, env: TabletopEnv) -> Sequence[str]:
        """One control tick: move the target (`env.set_teleop_pose`; the viewer: the person's drag) and return the
        `EVENTS` since the last tick, in order."""

    def close(self) -> None:
        """After the last episode, however the recording ended."""


class ScriptedInput:
    """An input source run from a script: `script(env, attempt, tick)` for each control tick (0, 1, …) of each
    episode attempt moves the target (`env.set_teleop_pose`) and returns the events (`EVENTS`) of that tick."""

    name = "script"

    def __init__(self, script: Callable[[TabletopEnv, int, int], Sequence[str]]):
        if not callable(script):
            raise ValueError(f"script: expected a function (env, attempt, tick) -> events, got {script!r}")
        self.script = script
        self._attempt, self._tick = 0, 0

    def open(self, env: TabletopEnv) -> None:
        pass

    def begin(self, env: TabletopEnv, seed: int, attempt: int) -> None:
        self._attempt, self._tick = attempt, 0

    def tick(self, env: TabletopEnv) -> Sequence[str]:
        events = self.script(env, self._attempt, self._tick)
        self._tick += 1
        return events

    def close(self) -> None:
        pass


def check_display() -> None:
    """Refuse (`ViewerUnavailable`), before any work, where MuJoCo's viewer cannot open its window: on Linux without
    DISPLAY or WAYLAND_DISPLAY, and with MUJOCO_GL=glfw (the cameras recorded in this thread would draw through GLFW
    while the viewer's window uses it in its own)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise ViewerUnavailable(
            "the teleop viewer needs a display, and DISPLAY (X11) and WAYLAND_DISPLAY are both unset (a headless "
            "machine, or ssh without -X): run it in a desktop session or over `ssh -X`. The recorded cameras need "
            "none (they render offscreen, MUJOCO_GL=egl or osmesa); the window you drag the target in does")
    if os.environ.get("MUJOCO_GL", "").strip().lower() == "glfw":
        raise ViewerUnavailable(
            "MUJOCO_GL=glfw: the recorded cameras would render through GLFW while the viewer's window runs GLFW in "
            "a thread of its own; set MUJOCO_GL=egl (or osmesa), or unset it to let worldpolicy pick one")


class ViewerInput:
    """MuJoCo's passive viewer and keyboard (`VIEWER_KEYS`): double-click the green bar (the target), Ctrl+right-drag it
    (Ctrl+left-drag turns it) and the hand follows. Ticks are paced to the control rate, so the episode runs in real
    time. Closing the window quits. `say` shows the instructions (default: stderr)."""

    name = "viewer"

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say or (lambda text: print(text, file=sys.stderr, flush=True))
        self.viewer = None
        self._keys: queue.SimpleQueue[str] = queue.SimpleQueue()  # filled by the viewer's thread
        self._period, self._next = 0.0, 0.0

    def open(self, env: TabletopEnv) -> None:
        check_display()
        import mujoco.viewer

        from worldpolicy.sim.scenes import HANDLE_GROUP

        self.viewer = mujoco.viewer.launch_passive(env.model, env.data, key_callback=self._key)
        with self.viewer.lock():
            self.viewer.opt.geomgroup[HANDLE_GROUP] = 1  # the target, which the recorded cameras do not show
        self._period = 1.0 / env.control_hz
        keys = ", ".join(f"{label}: {event}" for event, label in VIEWER_KEYS.values())
        self.say(f"teleop: double-click the green bar, then Ctrl+right-drag it (Ctrl+left-drag turns it); {keys}; "
                 "close the window to stop")

    def _key(self, keycode: int) -> None:
        if keycode in VIEWER_KEYS:
            self._keys.put(VIEWER_KEYS[keycode][0])

    def begin(self, env: TabletopEnv, seed: int, attempt: int) -> None:
        while not self._keys.empty():  # keys pressed between episodes do not act on the next
            self._keys.get()
        self.say(f"teleop: episode of seed {seed}: {env.episode.prompt!r}")
        self._next = time.perf_counter()

    def tick(self, env: TabletopEnv) -> Sequence[str]:
        if self.viewer is None or not self.viewer.is_running():
            return ["quit"]
        self.viewer.sync()  # shows the last step, and moves the target where the person dragged it
        # a Ctrl-drag on another body (the cube) applies a force there, which no policy could: only the target moves
        env.data.xfrc_applied[:] = 0.0
        now = time.perf_counter()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(self._next + self._period, now)  # a slow tick is not made up by rushing the next ones
        events = []
        while not self._keys.empty():
            events.append(self._keys.get())
        return events

    def close(self) -> None:
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None


def teleop_episodes(
    task: str = "pick_place",
    num_episodes: int = 10,
    *,
    source: TeleopInput,
    seed: int = 0,
    task_options: dict[str, Any] | None = None,
    robot: str = "panda",
    image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE,
    cameras: Sequence[str] | None = None,
    control_hz: float = 15.0,
    max_steps: int | None = TELEOP_MAX_STEPS,
    perturb: Any = None,
    prompt_template: str | None = None,
    prompt_variants: str = "drawn",
    failed_seeds: list[int] | None = None,
    on_attempt: Callable[[int, bool], None] | None = None,
    spool: str | os.PathLike | None = None,
    done_seeds: Sequence[int] = (),
) -> ExpertEpisodes:
    """`num_episodes` episodes a person (`source`) records, from seeds seed, seed+1, …, as `expert_episodes` gives the
    expert's: every scene setting checked as it checks them (the same names, the same errors) before anything opens,
    the provenance as its (`expert` "teleop", `expert_version` `TELEOP_VERSION`, `input` the source's name, `speed`
    its speed where it has one, without the expert's own settings), each episode {"frames", "videos", "task",
    "seed", "success"}. `max_steps` (None: the task's) ends an episode the person has not ended, flagged as the
    task's check judges it. A discarded episode is
    recorded again from its seed; no seed is skipped, so `failed_seeds` stays as it is. `on_attempt(seed, success)`
    follows each kept episode. `quit` raises `TeleopQuit` once the finished episodes are yielded."""
    for name, method in (("open", "open"), ("begin", "begin"), ("tick", "tick"), ("close", "close")):
        if not callable(getattr(source, method, None)):
            raise ValueError(f"source: {source!r} has no {name}(): expected a TeleopInput (ViewerInput, "
                             "DeviceInput, ScriptedInput)")
    described = expert_episodes(task, num_episodes, seed=seed, task_options=task_options, robot=robot,
                                image_size=image_size, cameras=cameras, control_hz=control_hz, max_steps=max_steps,
                                perturb=perturb, prompt_template=prompt_template, prompt_variants=prompt_variants,
                                done_seeds=done_seeds)
    described.close()  # checked and described: nothing recorded
    provenance = {k: v for k, v in described.provenance.items() if k not in _EXPERT_SETTINGS}
    provenance.update(expert=teleop_episodes.expert, expert_version=TELEOP_VERSION, keep_failures=True,
                      input=str(getattr(source, "name", type(source).__name__)))
    if getattr(source, "speed", None) is not None:  # a device's rates (`--speed`), which a reader reproducing it needs
        provenance["speed"] = float(source.speed)
    return ExpertEpisodes(provenance, _teleop(provenance, source, num_episodes, seed, on_attempt,
                                              None if spool is None else Path(spool), list(done_seeds)))


# the provenance's `expert` of its episodes, read by `from_sim.sim_to_dataset` to name `dataset teleop` in its
# refusals and lock (`from_sim.recording_command`)
teleop_episodes.expert = TELEOP_EXPERT  # type: ignore[attr-defined]


def _teleop(settings: dict[str, Any], source: TeleopInput, num_episodes: int, seed: int,
            on_attempt: Callable[[int, bool], None] | None, spool: Path | None,
            done_seeds: list[int]) -> Generator[dict[str, Any], None, None]:
    from worldpolicy.robot.kinematics import IKSolver
    from worldpolicy.sim.policies import joint_step_cap

    env = _make_env(settings, teleop_target=True)
    try:
        ik = IKSolver(env.robot)
        cap = joint_step_cap(env.robot, env.control_hz)
        source.open(env)
        kept, attempt = len(done_seeds), 0
        next_seed = done_seeds[-1] + 1 if done_seeds else seed
        while kept < num_episodes:
            images = _CameraFrames(settings["cameras"], spool, next_seed)
            ending, episode = _teleop_episode(env, source, ik, cap, next_seed, attempt, images,
                                              settings["prompt_variants"])
            attempt += 1
            if ending in ("discard", "quit") or episode is None:
                if episode is not None:
                    discard_frames(episode)
                if ending == "quit":
                    raise TeleopQuit(f"quit after {kept} of {num_episodes} episodes")
                logger.info("teleop: episode of seed %d %s; its scene again", next_seed,
                            "discarded" if ending == "discard" else "ended before a step was recorded")
                continue
            kept += 1
            if on_attempt is not None:
                on_attempt(next_seed, bool(episode["success"]))
            yield episode
            next_seed += 1
    finally:
        try:
            source.close()
        finally:
            env.close()


def _teleop_episode(env: TabletopEnv, source: TeleopInput, ik, cap: np.ndarray, seed: int, attempt: int,
                    images: _CameraFrames, prompt_variants: str) -> tuple[str, dict[str, Any] | None]:
    """One episode of `source` from `seed`'s scene: how it ended (an `EVENTS` ending, or "limit": `env.max_steps`)
    and the episode as `from_sim` records one (row t: the state and frames before step t and the command of step t),
    None where no step was recorded."""
    from worldpolicy.sim.policies import limit_step

    env.reset(seed=seed)  # the target on the hand; what it returns is in the env's obs_type
    prompt = env.task_description
    source.begin(env, seed, attempt)
    command = env.joint_positions()  # the joint targets last commanded
    gripper = 0.0
    rows = EpisodeRows(images)
    ending = None
    while ending is None:
        for event in source.tick(env):
            if event not in EVENTS:
                raise ValueError(f"source: event {event!r} from {getattr(source, 'name', source)!r}; accepted: "
                                 f"{list(EVENTS)}")
            if event == "gripper":
                gripper = 1.0 - gripper
            elif ending is None:
                ending = event
        if ending is None and env.steps >= env.max_steps:
            ending = "limit"
        if ending is not None:
            break
        command = limit_step(command, ik.solve(env.teleop_pose(), command), cap)
        action = np.append(command, gripper)
        rows.add(env, action)
        env.act(action)
        rows.rewards.append(1.0 if env.success() else 0.0)
    if not rows.actions:
        return ending, None
    solved = max(rows.rewards) > 0
    success = solved if ending == "limit" else ending == "success"
    if ending == "limit":
        logger.warning("teleop: seed %d reached the step limit (%d steps); kept as %s", seed, env.max_steps,
                       "a success (the task was solved)" if solved else "a failure")
    elif ending == "success" and not solved:
        logger.warning("teleop: seed %d ended as a success, which the task's check never saw: kept as you said", seed)
    return ending, rows.episode(episode_task(env, prompt, prompt_variants), seed, success)
