"""Policy backends for rollouts: anything with `act(observation, prompt) -> Prediction` and an `embodiment`.

`scripted` (privileged IK expert), `random` (uniform in the embodiment's normalised space), a local checkpoint
(`worldpolicy.policy.Policy`) and a `ws://` server (`worldpolicy.serving.RemotePolicy`); the last two are imported only
when asked for, so the simulator never needs torch or websockets.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from worldpolicy.embodiments import Embodiment, get_embodiment
from worldpolicy.errors import is_integer, is_real
from worldpolicy.fileio import sim_episode_name
from worldpolicy.models import checkpoint_files
from worldpolicy.processing.actions import to_model, to_physical
from worldpolicy.processing.trajectory import call_seed
from worldpolicy.results import Prediction, is_string_list
from worldpolicy.robot.kinematics import IKSolver
from worldpolicy.sim.env import unwrap_tabletop
from worldpolicy.sim.tasks import BUILTIN_POLICIES, DEFAULT_CONTROL_HZ

logger = logging.getLogger(__name__)

__all__ = ["SERVER_ANNOUNCED", "PolicyBackend", "RandomPolicy", "ScriptedPolicy", "as_backend",
           "checkpoint_settings", "chunk_size", "control_hz_for", "joint_step_cap", "limit_step", "make_policy",
           "planned", "policy_fps", "policy_kind", "policy_settings", "warn_rate_mismatch", "wrap_policy"]

_STATE_KEY = "privileged/state"  # ScriptedPolicy.snapshot: sim state taken with the observation
# The largest joint target jump per control step the scripted expert makes, in seconds at the joint's speed limit: at
# 10 Hz and below the servos reach each target within the period, so their peak speed follows the jump, not the average
_JUMP_S = 0.065
DOWN = np.diag([1.0, -1.0, -1.0])  # TCP pointing at the table, hand x along world x


@runtime_checkable
class PolicyBackend(Protocol):
    """What a rollout needs from a policy. A backend that never looks at the cameras may say so with
    `uses_images = False` (the scripted expert, random actions): its observations then come without them, rendering
    nothing (a rollout renders them for any other)."""

    embodiment: Embodiment

    def act(self, observation: dict[str, Any], prompt: str) -> Prediction: ...


def _chunk_size(policy: str, value: Any) -> int:
    """A chunk of at least one action: 0 made a rollout divide by zero (random's fell back to the default)."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"chunk_size: policy {policy!r} takes an int >= 1, got {value!r}")
    return int(value)


def joint_step_cap(robot, control_hz: float, joint_speed_share: float = 0.7) -> np.ndarray:
    """The largest change of each joint's target per control step a recording commands (rad): `joint_speed_share` of
    `robot`'s `max_joint_velocity` per period at `control_hz`, never more than `_JUMP_S` seconds of it (the margin
    `ScriptedPolicy` explains); `dataset teleop` holds a person's commands to it as the expert's are."""
    return np.asarray(robot.max_joint_velocity) * min(joint_speed_share * (1.0 / control_hz), _JUMP_S)


def limit_step(previous: np.ndarray, target: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """`target` (joint angles), its change from `previous` scaled down, all joints together so the hand keeps its
    path, until no joint moves more than its `cap`."""
    step = target - previous
    return previous + step / max(1.0, float(np.max(np.abs(step) / cap)))


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


class ScriptedPolicy:
    """Task expert: follows the task's closed-loop TCP waypoints with IK, emitting DROID joint_pos chunks.

    It reads privileged state from the env (object poses), so it is an upper bound and a data source, not a policy
    a real robot could run. Chunks are short (`chunk_size`) because waypoints are recomputed from the state each call.

    Each step's joint change is scaled down (all joints together, so the hand keeps its path) to at most
    `joint_speed_share` of the robot's `max_joint_velocity` per control period, and never more than `_JUMP_S` seconds'
    worth of it: its actions become training data, and a real arm faults above those speeds. The share is below 1
    because the servos move to each step's target faster than the average: at 15 Hz a joint commanded at 0.92 of its
    limit peaked at 1.21 within the period (push, joint 7 while the paddle turned; 9 of 20 episodes went over before).
    At 10 Hz and below the servo reaches each target early in the period, so the jump's size sets the peak: 0.7 of the
    limit reached 1.03x at 10 Hz and 1.21x at 5 Hz. With 0.7 and the jump cap, 100 seeded episodes per task at 5, 10, 15
    and 25 Hz (300 at 15 Hz, the default) stay within the limits at every step. The limit itself is the robot's one
    fact (`RobotConfig.max_joint_velocity`), which the robot bridge holds its IK to whole (`IKSolver(fps=)`) and the
    decoder checks; the share and the jump cap are the expert's own margin below it, for the data it records.
    """

    # How it turns waypoints into joint chunks (the waypoints are the task's, versioned there: `Task.version`): raised
    # with any change, recorded in a sim report's policy_settings so `--resume` never pools two experts' episodes.
    # 1: before versions were recorded; 2: each step's joint change capped (`joint_speed_share`, `_JUMP_S`).
    version = 2
    uses_images = False  # it plans from privileged state: a rollout renders it no cameras (`Rollout._observe`)

    def __init__(self, env, *, chunk_size: int = 8, max_yaw_rate: float = 2.0, joint_speed_share: float = 0.7) -> None:
        if not is_real(joint_speed_share) or not 0 < joint_speed_share <= 1:
            raise ValueError(f"joint_speed_share: policy 'scripted' takes a number in (0, 1] (a share of the robot's "
                             f"max_joint_velocity), got {joint_speed_share!r}")
        self.env = env = unwrap_tabletop(env)  # one made by gymnasium.make too
        self.embodiment = get_embodiment("droid", "joint_pos")
        if env.robot.dof + 1 != self.embodiment.action_dim:
            raise ValueError(f"scripted: robot {env.robot.name!r} has {env.robot.dof} joints; DROID joint_pos needs 7")
        self.chunk_size = _chunk_size("scripted", chunk_size)
        self.ik = IKSolver(env.robot)
        self.max_yaw_rate = max_yaw_rate
        self.joint_speed_share = float(joint_speed_share)

    def step_cap(self) -> np.ndarray:
        """The largest change of each joint's target per control step it commands (rad): `joint_speed_share` of the
        robot's `max_joint_velocity` per period, never more than `_JUMP_S` seconds of it. A recording that perturbs
        its chunks (`dataset from-sim --action-noise`) holds the perturbed command to it too (`limit_step`)."""
        return joint_step_cap(self.env.robot, self.env.control_hz, self.joint_speed_share)

    @property
    def fps(self) -> float:
        """It plans its waypoints at whatever rate the env runs."""
        return self.env.control_hz

    def snapshot(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The observation plus the privileged state as of now (the rollout calls this when it takes the observation,
        so an `async` request computed in the background plans from the same moment, run after run)."""
        return {**observation, _STATE_KEY: self.env.state()}

    def act(self, observation: dict[str, Any], prompt: str) -> Prediction:
        t0 = time.perf_counter()
        state = observation.get(_STATE_KEY)
        if state is None:
            state = self.env.state()
        waypoints = self.env.task.expert_waypoints(state)
        q = np.asarray(observation["observation/joint_position"], dtype=np.float64)
        dt = 1.0 / self.env.control_hz
        pos = state.tcp[:3, 3].copy()
        rot = state.tcp[:3, :3]
        yaw = float(np.arctan2(rot[1, 0], rot[0, 0]))
        gripper = state.gripper_command
        settle = None
        rows = []
        cap = self.step_cap()
        for _ in range(self.chunk_size):
            if waypoints:
                wp = waypoints[0]
                gripper = wp.gripper
                delta = wp.pos - pos
                dist = float(np.linalg.norm(delta))
                step = wp.speed * dt
                pos = wp.pos.copy() if dist <= step else pos + delta * (step / dist)
                dyaw = (wp.yaw - yaw + np.pi) % (2 * np.pi) - np.pi
                yaw += float(np.clip(dyaw, -self.max_yaw_rate * dt, self.max_yaw_rate * dt))
                if np.linalg.norm(wp.pos - pos) <= wp.tolerance and abs(dyaw) < 0.05:
                    settle = wp.settle if settle is None else settle - 1
                    if settle <= 0:
                        waypoints.pop(0)
                        settle = None
            target = np.eye(4)
            target[:3, :3] = _rot_z(yaw) @ DOWN
            target[:3, 3] = pos
            q = limit_step(q, self.ik.solve(target, q), cap)  # the next target is solved from this q
            rows.append([*q, gripper])
        actions = np.array(rows)
        return Prediction(
            mode="policy", embodiment=self.embodiment.key, columns=list(self.embodiment.columns),
            units=list(self.embodiment.units), actions=actions, actions_normalized=to_model(self.embodiment, actions),
            fps=self.env.control_hz, timings={"total": time.perf_counter() - t0}, settings={"backend": "scripted"},
            layout=self.embodiment.layout, gripper_column=self.embodiment.gripper_column,
        )


def _noise_rng(seed: int | None) -> np.random.Generator:
    """The random policy's generator for `seed`: a stream of its own (`[seed, 17]`), not the scene's. `reset(seed=s)`
    draws the scene from `default_rng(s)`'s stream (gymnasium's `np_random`), so noise seeded with the bare episode
    seed replayed the scene's draws: the first action's columns 2-4 were the reach ball's x, y and height, rescaled."""
    return np.random.default_rng(None if seed is None else [seed, 17])


class RandomPolicy:
    """Uniform actions in [-1, 1] of the embodiment's normalised space, denormalised (DROID-sized EE deltas by default)."""

    # Which noise a seed gives, recorded as `ScriptedPolicy.version` is. 1: before versions were recorded (noise
    # seeded with the bare episode seed); 2: its own stream (`_noise_rng`).
    version = 2
    uses_images = False  # noise: a rollout renders it no cameras (`Rollout._observe`)

    def __init__(self, embodiment: str | Embodiment = "droid/relative_pose", *, seed: int | None = None,
                 chunk_size: int | None = None) -> None:
        self.embodiment = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.rng = _noise_rng(seed)
        self.chunk_size = self.embodiment.chunk_size if chunk_size is None else _chunk_size("random", chunk_size)

    def reset(self, seed: int | None = None) -> None:
        """New episode: sampling restarts from the episode's seed (its own stream: `_noise_rng`), so an episode
        replays alone with that seed and its noise is independent of the scene drawn from the same seed."""
        if seed is not None:
            self.rng = _noise_rng(seed)

    def act(self, observation: dict[str, Any], prompt: str) -> Prediction:
        normalized = self.rng.uniform(-1.0, 1.0, size=(self.chunk_size, self.embodiment.action_dim))
        e = self.embodiment
        return Prediction(
            mode="policy", embodiment=e.key, columns=list(e.columns), units=list(e.units),
            actions=to_physical(e, normalized), actions_normalized=normalized, fps=e.fps,
            settings={"backend": "random"}, layout=e.layout, gripper_column=e.gripper_column,
        )


def policy_fps(policy: Any) -> float | None:
    """The rate a backend's actions are meant to run at: its own `fps` (scripted: the env's, a server: its metadata's),
    else its embodiment's; None for a backend with neither, and for random actions (noise has no rate)."""
    if isinstance(policy, RandomPolicy):
        return None
    own = getattr(policy, "fps", None)
    if own:
        return float(own)
    embodiment = getattr(policy, "embodiment", None)
    return float(embodiment.fps) if embodiment is not None else None


def control_hz_for(fps: float | None) -> float:
    """The control rate a policy's env is built at where none is asked for (`worldpolicy sim` without --control-hz,
    the trainer's sim eval, the agents' `evaluate_in_sim`): its actions' own (`policy_fps`; a checkpoint's
    embodiment's `fps` before it loads), so a 10 fps checkpoint runs at 10 Hz; `DEFAULT_CONTROL_HZ` for a policy with
    none (random actions; the scripted expert plans at whatever rate it is given)."""
    return float(fps) if fps is not None else DEFAULT_CONTROL_HZ


def warn_rate_mismatch(fps: float | None, control_hz: float, policy: str) -> None:
    """A policy run faster or slower than its actions' rate (`policy_fps`) moves the arm at the wrong speed: said
    before the episodes (`sim.evaluate.evaluate`: `worldpolicy sim`'s, or an env of the caller's own) or the recording
    (`dataset from-sim --policy`), naming their flags and, for a caller's own env, its argument; `control_hz_for` is
    the rate that says nothing."""
    if fps is not None and abs(control_hz / fps - 1) > 0.02:
        logger.warning("--policy %s acts at %g fps but --control-hz is %g: each action runs for %.3g s instead of %.3g "
                       "s; pass --control-hz %g (an env of one's own: TabletopEnv(..., control_hz=%g)) to run it at "
                       "its own rate", policy, fps, control_hz, 1 / control_hz, 1 / fps, fps, fps)


def chunk_size(policy: Any) -> int:
    """The chunk a backend returns: its own `chunk_size` where it has one, else its embodiment's."""
    return int(getattr(policy, "chunk_size", None) or policy.embodiment.chunk_size)


def checkpoint_settings(source: str | Path, sampling: Any, *, chunk_size: int, resolution_tier: int, device: Any,
                        dtype: Any, decode_video: bool, image_size: tuple[int, int] | None,
                        center_crop: float | None) -> dict[str, Any]:
    """What a local checkpoint's actions depend on besides the observation and the seed: which checkpoint (path and
    files), how it samples, at which chunk and resolution, on what kind of device in which dtype (a CPU's fp32 and a
    GPU's bf16 sample different numbers; which GPU does not matter), whether it decodes video, the camera size, the
    frames' centre crop (`Policy.center_crop`: a run trained with `[augment]`'s, unless turned off).
    Described from a loaded `Policy` (`policy_settings`) or, before loading, from what `Policy.check_pretrained`
    resolves (`worldpolicy sim --resume` compares it before a model loads)."""
    import torch

    return {"kind": "checkpoint", **checkpoint_files(source), "sampling": asdict(sampling), "chunk_size": chunk_size,
            "resolution_tier": resolution_tier, "device": torch.device(device).type,
            "dtype": str(dtype).removeprefix("torch."), "decode_video": bool(decode_video),
            "image_size": list(image_size) if image_size is not None else None, "center_crop": center_crop}


# What a server's metadata frame announces of how it samples, recorded where announced (`policy_settings`): a
# report from before they were recorded, or of a server that announces none (openpi's), is compared without them
SERVER_ANNOUNCED = ("sampling", "resolution_tier")


def policy_settings(policy: Any, image_size: tuple[int, int] | None) -> dict[str, Any]:
    """What shapes a backend's actions besides the scene and the seeds, as `evaluate` records it for a resumed run to
    compare: the scripted expert and random actions are their kind and chunk; a checkpoint `checkpoint_settings`; a
    server the model its metadata frame names (its address where it names none: openpi's), chunk, whether it decodes
    video, the camera size (`image_size`: the env's) and the sampling defaults and resolution it announces
    (`SERVER_ANNOUNCED`: a server restarted with other steps samples other actions); any other backend its class and
    the camera size (and, wrapped by `wrap_policy`, its chunk and whether it decodes video); a best-of-N planner its
    policy's and its own (`BestOfNPlanner.settings`: candidates, scorer). The two baselines also
    record their `version`: what they do changes with worldpolicy, not with a file a run could name."""
    if isinstance(policy, (ScriptedPolicy, RandomPolicy)):
        return {"kind": "scripted" if isinstance(policy, ScriptedPolicy) else "random", "chunk_size": policy.chunk_size,
                "version": policy.version}
    size = list(image_size) if image_size is not None else None
    if not isinstance(policy, _Seeded):
        return {"kind": type(policy).__qualname__, "image_size": size}
    inner = policy.policy
    planner = getattr(sys.modules.get("worldpolicy.planning"), "BestOfNPlanner", None)
    if planner is not None and isinstance(inner, planner):  # the policy it samples from, and how it plans
        sampled = _Seeded(inner.policy, policy.embodiment, policy.seed, policy.decode_video, policy.keys)
        return {**policy_settings(sampled, image_size), **inner.settings}
    local = getattr(sys.modules.get("worldpolicy.policy"), "Policy", None)
    if local is not None and isinstance(inner, local):
        return checkpoint_settings(inner.source, inner.sampling, chunk_size=inner.chunk_size,
                                   resolution_tier=inner.resolution_tier, device=inner.engine.device,
                                   dtype=inner.engine.dtype, decode_video=policy.decode_video, image_size=image_size,
                                   center_crop=inner.center_crop)
    wrapped = {"chunk_size": policy.chunk_size, "decode_video": policy.decode_video, "image_size": size}
    if not hasattr(inner, "url"):  # another wrapped policy (one of a user's own)
        return {"kind": type(inner).__qualname__, **wrapped}
    meta = served_metadata(policy)
    announced = {key: meta[key] for key in SERVER_ANNOUNCED if meta.get(key) is not None}
    return {"kind": "server", "model": meta.get("model") or inner.url, **wrapped, **announced}


def served_metadata(policy: Any) -> dict[str, Any]:
    """The metadata frame of the server a backend asks (`make_policy`'s for `ws://...`: its `RemotePolicy`'s, read on
    connect), {} for any other backend."""
    inner = getattr(policy, "policy", None) if isinstance(policy, _Seeded) else None
    if not hasattr(inner, "url") or not callable(getattr(inner, "metadata", None)):
        return {}
    return inner.metadata()


class _Seeded:
    """Adapts `Policy` / `RemotePolicy` to the backend protocol, passing a deterministic per-call seed (`call_seed`):
    the same on a local and a ws:// backend, and the same for an episode run alone or inside a longer run."""

    def __init__(self, policy: Any, embodiment: Embodiment, seed: int | None, decode_video: bool,
                 keys: frozenset[str] | None = None) -> None:
        self.policy, self.embodiment, self.decode_video = policy, embodiment, decode_video
        self.keys = keys  # the observation keys passed on (a server's `observation_keys`); None: all but the prompt
        self.seed = seed
        self.calls = 0

    @property
    def chunk_size(self) -> int:
        """The chunk the backend returns: its own `chunk_size` (a local Policy's; a server's as its metadata frame
        announces it: either may differ from the embodiment's default), else the embodiment's (a server that announces
        none, openpi's)."""
        return int(getattr(self.policy, "chunk_size", None) or self.embodiment.chunk_size)

    @property
    def fps(self) -> float:
        """The rate the backend's actions are meant to run at: a server's from its metadata frame, else the
        embodiment's (a local `Policy`'s `metadata()`, what its server would announce, reads its run's files)."""
        meta = served_metadata(self)
        own = meta.get("fps")
        return float(own) if isinstance(own, (int, float)) and own > 0 else float(self.embodiment.fps)

    def act(self, observation: dict[str, Any], prompt: str, *, action_prefix: np.ndarray | None = None) -> Prediction:
        """`action_prefix`: the actions the new chunk must begin with (`worldpolicy sim --rtc`: `ChunkController`'s
        real-time chunking), passed on to the model; left out of the call when None, as before it existed."""
        obs = self._observation(observation)
        prefix = {} if action_prefix is None else {"action_prefix": action_prefix}
        return self.policy.act(obs, prompt, seed=self._next_seed(), decode_video=self.decode_video, **prefix)

    def request(self, observation: dict[str, Any], prompt: str, *, action_prefix: np.ndarray | None = None):
        """The call `act(observation, prompt, action_prefix=...)` would make, as a `PolicyRequest` seeded as `act`
        seeds it (counted as a call): what `sim.batch` gathers, one per request of a control step, into one
        `Policy.act_batch`."""
        from worldpolicy.policy import PolicyRequest

        obs = self._observation(observation)
        return PolicyRequest(obs, prompt, seed=self._next_seed(), decode_video=self.decode_video,
                             action_prefix=action_prefix)

    def _observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """What the backend is given of a sim observation: the keys it reads (`keys`), never the prompt."""
        return {k: v for k, v in observation.items() if k != "prompt" and (self.keys is None or k in self.keys)}

    def _next_seed(self) -> int | None:
        """The sampling seed of the episode's next call (`call_seed`), counted."""
        seed = None if self.seed is None else call_seed(self.seed, self.calls)
        self.calls += 1
        return seed

    def reset(self, seed: int | None = None) -> None:
        """New episode: the seed sequence restarts so episode i is reproducible on any backend."""
        if seed is not None:
            self.seed = seed
        self.calls = 0

    def close(self) -> None:
        """Close what it wraps, which the run owns: a `Policy` releases its model, a `RemotePolicy` its connection;
        another wrapped backend (a planner, a user's own) may have nothing to close."""
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


def wrap_policy(policy: Any, *, seed: int | None = None, decode_video: bool = False) -> _Seeded:
    """A loaded `Policy` (or `RemotePolicy`) as a rollout backend with the per-episode seed sequence."""
    return _Seeded(policy, policy.embodiment, seed, decode_video)


def planned(backend: Any, scorer: Any, candidates: int, videos: CandidateVideos | None = None) -> _Seeded:
    """`backend` (`make_policy`'s of a local checkpoint) choosing each chunk best-of-`candidates` by `scorer`
    (`planning.BestOfNPlanner`: `worldpolicy sim --plan`, the agents' `plan`), with its seed sequence, cameras and
    `decode_video` (whether the chosen chunk's imagined future is kept for the episode videos): decision j of an
    episode samples candidate 0 with the seed the plain run's call j uses, the others with the seeds after it
    (`BestOfNPlanner.act`), so where every candidate ties the plain run's chunk runs. `videos`: every candidate's
    imagined future of each decision written by it (`CandidateVideos`, `worldpolicy sim --plan-save-candidates`)."""
    from worldpolicy.planning import BestOfNPlanner

    if not isinstance(backend, _Seeded):
        raise TypeError(f"backend: expected make_policy's backend of a local checkpoint, got {type(backend).__name__}")
    planner = BestOfNPlanner(backend.policy, scorer, candidates)
    seeded = _Seeded(planner, backend.embodiment, backend.seed, backend.decode_video, backend.keys)
    if videos is not None:  # the decision's episode and call: the seed sequence's, counted before the call ran
        planner.on_plan = lambda plan: videos.write(plan, seeded.seed, seeded.calls - 1)
    return seeded


class CandidateVideos:
    """Every candidate's imagined future of each decision of the episodes whose seed is in `seeds` (a sim run's
    recorded ones: its first --videos; `folder`: the run's `fileio.SIM_CANDIDATES_DIR`), side by side, each captioned
    with its candidate number and score and the one run marked, one mp4 per decision:
    `folder/episode_SEED_decision_J.mp4`, J the episode's policy call (0, 1, ...: report.json's `plans` of the
    episode, in order, where every chunk asked for runs). A best-of-N run's episode video shows the chosen future
    alone; these show what it was chosen among, to debug a scorer by. `written`: the files written so far."""

    def __init__(self, folder: str | Path, seeds: range) -> None:
        self.folder, self.seeds = Path(folder), seeds
        self.written: list[Path] = []

    def path(self, seed: int, call: int) -> Path:
        return self.folder / f"{sim_episode_name(seed)}_decision_{call:02d}.mp4"

    def write(self, plan: Any, seed: int | None, call: int) -> Path | None:
        """`plan` (`planning.Plan`) of the episode seeded `seed`, its policy call `call`: written where `seed` is one
        of `seeds`; None (nothing written) otherwise."""
        from worldpolicy.viz.video import write_side_by_side

        if seed not in self.seeds:
            return None
        chosen = " (run, all tied)" if plan.tied else " (run)"
        labels = [f"candidate {i}: {score:.4g}" + (chosen if i == plan.chosen else "")
                  for i, score in enumerate(plan.scores)]
        path = write_side_by_side([f.video for f in plan.futures], labels, plan.futures[0].fps, self.path(seed, call))
        self.written.append(path)
        return path


def as_backend(policy: Any) -> Any:
    """What a rollout runs: a loaded `Policy` or `RemotePolicy` given as it is gets the per-episode seed sequence
    (`wrap_policy`; the rollout's `reset(seed)` sets it), so `evaluate(..., seed=s)` replays as `worldpolicy sim` does;
    without it every request drew a fresh random sampling seed. Anything else is already a backend."""
    for module, name in (("worldpolicy.policy", "Policy"), ("worldpolicy.serving.client", "RemotePolicy")):
        cls = getattr(sys.modules.get(module), name, None)  # a loaded one's module is imported; no import here
        if cls is not None and isinstance(policy, cls):
            return wrap_policy(policy)
    return policy


def check_rtc_policy(rtc: bool, spec: str) -> None:
    """`rtc` with `--policy SPEC` whose act takes no `action_prefix` (the scripted expert, random actions), refused
    naming it before anything loads (`worldpolicy sim` and `dataset from-sim` alike; `robot.control.check_rtc` checks
    a loaded policy)."""
    if rtc and spec in BUILTIN_POLICIES:
        raise ValueError(f"rtc: asks a model to continue the running chunk's actions; policy {spec} has no model to "
                         "condition: leave rtc out, or pass a checkpoint or a ws:// server")


def policy_kind(spec: str) -> str:
    """What `--policy SPEC` names, checked without loading anything: `scripted`, `random`, `server` (a ws:// URL) or
    `checkpoint` (`shipped`, an existing folder, or a hub id: fetched into the hub's cache,
    `models.resolve_checkpoint`); anything else is refused, naming what is accepted."""
    from worldpolicy.models import SERVER_SCHEMES, SHIPPED_NAME, resolve_checkpoint

    if spec in BUILTIN_POLICIES:
        return spec
    if spec.startswith(SERVER_SCHEMES):
        return "server"
    if not Path(resolve_checkpoint(spec)).exists():
        raise FileNotFoundError(f"policy: {spec!r} is not 'scripted', 'random', a ws:// URL, {SHIPPED_NAME!r} "
                                "(the model in the package), an existing checkpoint directory or a hub id")
    return "checkpoint"


def make_policy(spec: str, *, env=None, embodiment: str | None = None, seed: int | None = None,
                decode_video: bool = False, api_key: str | None = None, ca_file: str | None = None,
                timeout_s: float | None = None, **kwargs: Any):
    """`scripted` | `random` | `ws://host:port` | `shipped` or a checkpoint directory → a backend. `kwargs` go to the
    backend's constructor (`Policy.from_pretrained` for a checkpoint); a server takes none: its settings are the
    server's."""
    from worldpolicy.models import resolve_checkpoint

    kind = policy_kind(spec)
    if kind == "scripted":
        if env is None:
            raise ValueError("policy 'scripted' needs the env (it reads privileged object state)")
        return ScriptedPolicy(env, **kwargs)
    if kind == "random":
        return RandomPolicy(embodiment or "droid/relative_pose", seed=seed, **kwargs)
    if kind == "server":
        if kwargs:  # a checkpoint's load settings: dropped here, the run would look as asked and sample as served
            raise ValueError(f"policy {spec}: {', '.join(f'{k}=' for k in sorted(kwargs))} load a local checkpoint; "
                             "a server's model, chunk and sampling are set where it is served (`worldpolicy serve`)")
        from worldpolicy.serving import RemotePolicy

        remote = RemotePolicy(spec, api_key=api_key, embodiment=embodiment or "droid", ca_file=ca_file,
                              timeout_s=timeout_s)
        emb = remote.embodiment or get_embodiment(embodiment or "droid")
        if embodiment is not None and emb.key != get_embodiment(embodiment).key:
            logger.warning("--embodiment %s is not used: the server at %s serves %r, whose columns and stats decode "
                           "its actions", embodiment, spec, emb.key)
        # the sim renders every DROID camera and sends its state: a server that announces what it reads is sent only
        # that (the rest would cross the network for nothing, and the server would say it went unread)
        read = remote.metadata().get("observation_keys")
        return _Seeded(remote, emb, seed, decode_video, frozenset(read) if is_string_list(read) else None)
    spec = str(resolve_checkpoint(spec))  # as `worldpolicy sim --policy` and `load_policy` take it
    from worldpolicy.policy import Policy

    return wrap_policy(Policy.from_pretrained(spec, embodiment, **kwargs), seed=seed, decode_video=decode_video)
