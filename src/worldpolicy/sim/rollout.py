"""Closed-loop rollouts: a policy backend drives a `TabletopEnv` at its control frequency.

Chunk strategies (`ChunkStrategy`):
- `execute`: run the first k of T actions, then ask again (k = T is fully open loop per chunk).
- `ensemble`: ask every k steps and average, per step, every chunk that covers it with ACT-style weights
  exp(-m·i) (i = 0 the oldest); averaging happens on decoded joint targets so relative chunks anchored at
  different poses are comparable.
- `async`: while chunk n executes, chunk n+1 is computed in a background thread from the observation taken when
  chunk n started; chunk n+1 starts k steps later, skipping its first k (already elapsed) actions. Deterministic:
  the hand-over step is fixed, not "whenever the reply lands".

Per-episode `clipped` and IK error count only chunk actions that ran: k per chunk for execute/async; for ensemble every
chunk action blended into a step that ran (so one step can add several). Each episode also counts the control steps in
which a joint moved faster than the robot's velocity limit (`over_velocity_steps`), without limiting it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import NamedTuple

import numpy as np

from worldpolicy.robot.decode import ActionDecoder, RobotCommand
from worldpolicy.sim.env import step_limit, unwrap_tabletop
from worldpolicy.sim.policies import as_backend
from worldpolicy.sim.scenes import CAMERAS

__all__ = ["ChunkStrategy", "EpisodeResult", "Rollout"]

logger = logging.getLogger(__name__)
STRATEGIES = ("execute", "ensemble", "async")
# A recorded frame's top caption strip: white while the episode runs, tinted on its last frame by the outcome
OUTCOME_COLORS = {None: (255, 255, 255), True: (190, 235, 190), False: (245, 200, 200)}


@dataclass(frozen=True)
class ChunkStrategy:
    kind: str = "execute"
    execute_steps: int | None = None  # k; None = the whole chunk for execute, 1 for ensemble, T/2 for async
    ensemble_decay: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in STRATEGIES:
            raise ValueError(f"strategy: unknown kind {self.kind!r}; accepted: {list(STRATEGIES)}")
        k = self.execute_steps
        if k is not None and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
            # a float k ran: steps were planned at t % 2.5 == 0
            raise ValueError(f"execute_steps: expected an int >= 1, got {k!r}")
        if not self.ensemble_decay >= 0:
            raise ValueError(f"ensemble_decay: expected >= 0, got {self.ensemble_decay}")

    def for_policy(self, policy) -> ChunkStrategy:
        """`execute` with no k takes the k the policy's embodiment recommends (its `execute_steps`), if any."""
        return self.for_embodiment(getattr(policy, "embodiment", None))

    def for_embodiment(self, embodiment) -> ChunkStrategy:
        """`for_policy` before the policy loads: from the embodiment it will have."""
        preferred = getattr(embodiment, "execute_steps", None)
        if self.kind == "execute" and self.execute_steps is None and preferred is not None:
            return replace(self, execute_steps=preferred)
        return self

    def steps_for(self, chunk: int, setting: str = "execute_steps") -> int:
        """k for `chunk`-step chunks; `setting` names k in the error (a CLI says --execute-steps)."""
        k = self.execute_steps or {"execute": chunk, "ensemble": 1, "async": max(1, chunk // 2)}[self.kind]
        if k > chunk or (self.kind == "async" and 2 * k > chunk):
            limit = chunk if self.kind != "async" else chunk // 2
            raise ValueError(f"{setting}: {k} exceeds what a {chunk}-step chunk allows for {self.kind!r} ({limit})")
        return k


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    success_step: int | None
    prompt: str
    chunks: int
    final_distance_m: float
    policy_s: float
    wall_s: float
    ik_mean_mm: float | None = None
    ik_max_mm: float | None = None
    clipped: int = 0
    over_velocity_steps: int = 0  # control steps in which a joint exceeded the robot's velocity limit
    frames: np.ndarray | None = field(default=None, repr=False)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("frames")
        return out


class _Planned(NamedTuple):
    """One decoded chunk action for one step, with what counts if it runs."""

    chunk: int
    target: np.ndarray  # joint targets + g
    clipped: int
    tracking_mm: float | None  # IK position error (relative_pose chunks)


class Rollout:
    """Runs episodes of one policy on one env with one chunk strategy. `env`: a `TabletopEnv`, or one made by
    `gymnasium.make("worldpolicy/...")`, whose TabletopEnv runs for the TimeLimit's `max_episode_steps`
    (`step_limit`). `name`: the policy as recorded frames' caption names it (`evaluate` passes its `policy_name`)."""

    def __init__(self, env, policy, strategy: ChunkStrategy | None = None, *, name: str | None = None) -> None:
        self.env, self.max_steps = unwrap_tabletop(env), step_limit(env)
        self.name = name
        policy = as_backend(policy)  # a bare Policy / RemotePolicy gets seeds from the episode's
        self.policy, self.strategy = policy, (strategy or ChunkStrategy()).for_policy(policy)
        self.execute_steps: int | None = self.strategy.execute_steps  # k actually used, known after the first chunk
        self._decoders: dict[str, ActionDecoder] = {}

    def decoder(self, key: str) -> ActionDecoder:
        if key not in self._decoders:
            own = getattr(self.policy, "embodiment", None)  # the backend's own, e.g. a server's not registered here
            # the sim measures joint speed per step and counts it (over_velocity_steps) rather than refusing a chunk;
            # likewise it clips and counts (clipped) joint targets however far past the limits an untrained model
            # puts them
            self._decoders[key] = ActionDecoder(own if own is not None and own.key == key else key, self.env.robot,
                                                check_velocity=False, check_limits=False)
        return self._decoders[key]

    def _observe(self) -> dict:
        """The observation for the next request, taken now: a backend that reads privileged sim state (the scripted
        expert) gets it as of now too, not as of whenever a background request runs. Its cameras are rendered only for
        a backend that looks at them (`uses_images`, True unless a backend says otherwise: the scripted expert and
        random actions do not), so an episode of theirs renders only the frames a recording keeps."""
        obs = self.env.observe(images=getattr(self.policy, "uses_images", True))
        snapshot = getattr(self.policy, "snapshot", None)
        return snapshot(obs) if snapshot is not None else obs

    def _request(self, obs: dict) -> tuple:
        t0 = time.perf_counter()
        pred = self.policy.act(obs, obs["prompt"])
        return pred, time.perf_counter() - t0

    def _decode(self, pred, skip: int, steps: int) -> RobotCommand:
        """The `steps` actions after the `skip` already elapsed: only those that can still run, so IK, clip counts and
        their warnings cover no action that never executes. Decoding is sequential (each step from the one before),
        so a prefix decodes exactly as it does inside the whole chunk."""
        actions = np.asarray(pred.actions, dtype=np.float64)[skip:skip + steps]
        return self.decoder(pred.embodiment).decode(actions, self.env.joint_positions())

    def run(self, seed: int, *, record: bool = False, on_step: Callable[[int], None] | None = None) -> EpisodeResult:
        """One episode seeded `seed` (`record`: keep side-by-side frames, each captioned with the task, policy, seed,
        step and time, and the last with the outcome: `_caption`); `on_step(steps run so far)` after each step (a
        progress display: one episode of a checkpoint policy on CPU can take minutes).
        `async` asks for no chunk that would start at or past the step limit: its answer could not run."""
        env, strategy = self.env, self.strategy
        wall0 = time.perf_counter()
        obs, _ = env.reset(seed=seed)
        if hasattr(self.policy, "reset"):
            self.policy.reset(seed)
        plan: dict[int, list[_Planned]] = {}  # step → the decoded chunk actions meant for it
        frames, tracking, clipped, policy_s, chunks, too_fast = [], [], 0, 0.0, 0, 0
        imagined: dict[int, np.ndarray] = {}
        pending = None
        pool = ThreadPoolExecutor(1) if strategy.kind == "async" else None
        k = None
        success_step = None
        try:
            for t in range(self.max_steps):
                need = k is None or (t % k == 0) or t not in plan
                if need:
                    if pending is not None:
                        pred, dt = pending.result()
                        skip = k
                    else:
                        pred, dt = self._request(self._observe())
                        skip = 0
                    policy_s += dt
                    if k is None:
                        k = self.execute_steps = strategy.steps_for(pred.chunk_size)
                    # execute/async run k actions of a chunk (the next chunk replaces the rest); ensemble blends all
                    left = self.max_steps - t
                    cmd = self._decode(pred, skip, left if strategy.kind == "ensemble" else min(k, left))
                    chunks += 1
                    if strategy.kind != "ensemble":
                        plan = {}
                    track = cmd.tracking.position_mm if cmd.tracking is not None else [None] * len(cmd)
                    for i in range(len(cmd)):
                        # a head without a gripper column commands none: the gripper keeps its last command
                        g = cmd.gripper[i] if cmd.gripper is not None else env.gripper_command
                        target = np.append(cmd.qpos[i], g)
                        plan.setdefault(t + i, []).append(_Planned(chunks, target, int(cmd.clipped_steps[i]), track[i]))
                    if record and pred.video is not None:
                        for i in range(len(cmd)):  # shown after action i+skip ran: the frame it leads into
                            imagined[t + i] = pred.video[_frame_after(i + skip, len(pred.video), pred.chunk_size)]
                    if pool is not None:  # the next chunk, k steps on; none where the episode ends first
                        pending = pool.submit(self._request, self._observe()) if t + k < self.max_steps else None
                entries = plan.pop(t)
                action = self._blend(entries)
                for old in [s for s in plan if s < t]:
                    plan.pop(old)
                env.act(action)
                # what ran: every chunk action blended into this step (one outside ensemble); a chunk cut short by a
                # new one, or by the episode's end, adds nothing for the actions it never ran
                clipped += sum(e.clipped for e in entries)
                tracking += [e.tracking_mm for e in entries if e.tracking_mm is not None]
                too_fast += self._check_speed(t, first=too_fast == 0)
                succeeded = env.success()
                if record:
                    ended = succeeded or t + 1 == self.max_steps
                    frames.append(self._frame(imagined.pop(t, None), seed, t + 1, succeeded if ended else None))
                if on_step is not None:
                    on_step(t + 1)
                if succeeded:
                    success_step = t + 1
                    break
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        state = env.state()
        return EpisodeResult(
            seed=seed, success=success_step is not None, steps=env.steps, success_step=success_step,
            prompt=obs["prompt"], chunks=chunks, final_distance_m=env.task.distance(state), policy_s=policy_s,
            wall_s=time.perf_counter() - wall0,
            ik_mean_mm=float(np.mean(tracking)) if tracking else None,
            ik_max_mm=float(np.max(tracking)) if tracking else None,
            clipped=clipped, over_velocity_steps=too_fast, frames=np.stack(frames) if frames else None,
        )

    def _check_speed(self, t: int, first: bool) -> int:
        """1 when a joint moved faster than the robot's velocity limit during step `t` (warned once per episode: the
        servos are not rate-limited, as the published figures were measured, but a real arm would fault)."""
        speed, limit = self.env.peak_joint_speed, np.asarray(self.env.robot.max_joint_velocity)
        fast = np.flatnonzero(speed > limit)
        if fast.size and first:
            names = self.env.robot.arm_joints
            worst = int(fast[np.argmax(speed[fast] / limit[fast])])
            logger.warning(
                "joint velocity: at step %d %s moved faster than robot %r allows (%s at %.2f rad/s, limit %g); the "
                "sim does not rate-limit its servos, a real arm would stop. Counted per episode in "
                "over_velocity_steps, warned once per episode", t, ", ".join(names[j] for j in fast),
                self.env.robot.name, names[worst], speed[worst], limit[worst],
            )
        return int(fast.size > 0)

    def _blend(self, entries: list[_Planned]) -> np.ndarray:
        if len(entries) == 1:
            return entries[0].target
        entries = sorted(entries, key=lambda e: e.chunk)  # oldest first
        weights = np.exp(-self.strategy.ensemble_decay * np.arange(len(entries)))
        stacked = np.stack([e.target for e in entries])
        return (weights[:, None] * stacked).sum(axis=0) / weights.sum()

    def _frame(self, imagined: np.ndarray | None, seed: int, steps: int, outcome: bool | None) -> np.ndarray:
        """Sim cameras side by side, and the model's imagined frame for this step when it returned video, each
        captioned (`sim: <camera>`, `model: imagined`): uncaptioned, the imagined panel passed for a fourth camera.
        Above them the episode's caption (`_caption`), tinted on the last frame by the outcome (`outcome`: None until
        the episode is decided): an mp4 watched on its own said neither which episode it was nor how it ended."""
        from PIL import ImageFont

        from worldpolicy.viz.video import caption_above, label_height, labelled_row

        views = [self.env.render_camera(key) for key in CAMERAS]
        labels = [f"sim: {name}" for name in CAMERAS.values()]
        if imagined is not None:
            views.append(np.asarray(imagined)[..., :3].astype(np.uint8))
            labels.append("model: imagined")
        row = labelled_row(views, labels, height=views[0].shape[0])
        # every frame of the episode sized for its longest caption (the last step's, either outcome): one geometry
        font = ImageFont.load_default(size=20)
        widest = max((self._caption(seed, self.max_steps, end) for end in (True, False)), key=font.getlength)
        return caption_above(row, self._caption(seed, steps, outcome), widest, label_height(views[0].shape[0]),
                             background=OUTCOME_COLORS[outcome])

    def _caption(self, seed: int, steps: int, outcome: bool | None) -> str:
        """What a recorded frame shows: `reach v1 · scripted · seed 3 · step 12/60 · 0.79 s`, the time at the env's
        actual control rate (the video's frame rate), then `· SUCCESS at step 16` or `· FAILURE: step limit` once
        decided. Its parts are separated as the animations' and side-by-sides' captions are (`viz.video.SEP`)."""
        from worldpolicy.viz.video import SEP

        env = self.env
        parts = [f"{env.task.name} v{env.task.version}", *([self.name] if self.name else []), f"seed {seed}",
                 f"step {steps}/{self.max_steps}", f"{steps / env.actual_control_hz:.2f} s"]
        if outcome is not None:
            parts.append(f"SUCCESS at step {steps}" if outcome else "FAILURE: step limit")
        return SEP.join(parts)


def _frame_after(action: int, frames: int, chunk: int) -> int:
    """Index of the imagined frame that action `action` of a `chunk`-action chunk leads into. Frame 0 is the
    observation the chunk was asked for and the last frame the end of the chunk (Cosmos3: action i → frame i+1 when
    there are chunk + 1 frames; fewer frames, e.g. temporally compressed, spread over the same span: the first frame
    at or after the action's end)."""
    return min(frames - 1, -(-(action + 1) * (frames - 1) // chunk))
