"""Closed-loop rollouts: a policy backend drives a `TabletopEnv` at its control frequency.

The chunk strategies (`execute`, `ensemble`, `async`) are `worldpolicy.robot.control`'s: each step is one tick of a
`ChunkController`, the object a real arm's control loop runs, with the sim's deterministic `async` hand-over (exactly k
steps on) and the episode's step limit as its horizon. A latency (`worldpolicy sim --latency MS`) is the controller's
`latency`, whole control steps (`latency_ticks`): the reply to each request lands that many steps after it, the sim
stepping meanwhile (the policy is still asked at once: a run is as deterministic as one without).

Per-episode `clipped` and IK error count only chunk actions that ran: k per chunk for execute/async; for ensemble every
chunk action blended into a step that ran (so one step can add several). Each episode also counts the control steps in
which a joint moved faster than the robot's velocity limit (`over_velocity_steps`), without limiting it.

How smoothly chunks hand over (`Jumps`): each step's jump is its largest joint target change from the step before
(rad), counted at hand-over steps (the first step of a newer chunk than the step before ran) and within chunks (a step
of the same chunk as the one before) apart; steps that hold, and the first chunk's first step, are neither. Hand-over
jumps well above the within-chunk ones are two plans meeting; real-time chunking (`rtc`, `worldpolicy sim --rtc`:
`ChunkController`'s) is meant to bring them down to the within-chunk size.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Self

import numpy as np

from worldpolicy.errors import is_real
from worldpolicy.planning import PLANNER
from worldpolicy.robot.control import ChunkController, ChunkStrategy, check_rtc
from worldpolicy.robot.decode import ActionDecoder
from worldpolicy.sim.env import step_limit, unwrap_tabletop
from worldpolicy.sim.policies import as_backend, chunk_size
from worldpolicy.sim.scenes import CAMERAS
from worldpolicy.sim.tasks import LATENCY_ACCEPTED

__all__ = ["STORED_FIELDS", "UNIT_DECIMALS", "Episode", "EpisodeResult", "EpisodeWatch", "Jumps", "Rollout",
           "check_chunk_timing",
           "check_latency_chunk", "check_latency_ms", "latency_as_none", "latency_ticks", "measured"]

logger = logging.getLogger(__name__)
# A recorded frame's top caption strip: white while the episode runs, tinted on its last frame by the outcome
OUTCOME_COLORS = {None: (255, 255, 255), True: (190, 235, 190), False: (245, 200, 200)}


def check_latency_ms(latency_ms: float) -> None:
    """`latency_ms` refused, naming it, when it is no number >= 0 (`LATENCY_ACCEPTED`): the part of `latency_ticks`'
    check that needs no env, so a runner can make it before it waits for or builds one."""
    if not is_real(latency_ms) or latency_ms < 0:
        raise ValueError(f"latency_ms: expected {LATENCY_ACCEPTED}, got {latency_ms!r}")


def latency_ticks(latency_ms: float, control_hz: float, max_steps: int) -> int:
    """`latency_ms` (the time a policy is taken to think) as whole control steps at `control_hz`, rounded to the
    nearest (halves up: 100 ms at 15 Hz is 1.5 steps, so 2): a reply is acted on at a tick, and the nearest tick is
    the least-biased one. Refused, naming `latency_ms`, when it is no number >= 0 or reaches the episodes' step limit
    `max_steps`, before which no reply would then land."""
    check_latency_ms(latency_ms)
    ticks = _rounded(latency_ms, control_hz)
    if ticks >= max_steps:
        below = _first_ms(max_steps, control_hz)
        raise ValueError(f"latency_ms: {latency_ms:g} ms is {ticks:g} control steps at {control_hz:g} Hz, at or past "
                         f"the {max_steps}-step limit: no reply would land before it; accepted: 0 to below "
                         f"{below:g} ms")
    return ticks


def latency_as_none(latency_ms: float, control_hz: float) -> str | None:
    """The warning for a latency > 0 under half a control step at `control_hz`, which rounds to 0 steps and so runs
    as none (`latency_ticks`); None for any other (checked by `latency_ticks`). `Rollout` logs it; the agents' sim tool
    puts it in its result's warnings, as an agent reads no log."""
    if not latency_ms or _rounded(latency_ms, control_hz):
        return None
    return f"latency: {latency_ms:g} ms is under half a control step at {control_hz:g} Hz, so it runs as none (0 steps)"


def _rounded(latency_ms: float, control_hz: float) -> int:
    """`latency_ms` as whole control steps at `control_hz`, halves up (`latency_ticks`)."""
    return math.floor(latency_ms * control_hz / 1000 + 0.5)


def _first_ms(ticks: int, control_hz: float) -> float:
    """The least latency, in ms, that rounds to `ticks` control steps at `control_hz` (`latency_ticks`)."""
    return (ticks - 0.5) * 1000 / control_hz


def check_latency_chunk(latency_ms: float, control_hz: float, strategy: ChunkStrategy, chunk: int, *,
                        rtc: bool = False) -> None:
    """A latency the strategy cannot run with `chunk`-step chunks (`ChunkStrategy.max_latency`: `ensemble` drops
    every reply that lands past its whole chunk, and the arm never moves) refused, naming `latency_ms` and `strategy`,
    in ms at `control_hz`, before any episode. So is `rtc` with one at or past the chunk: `async` then asks no
    background request (robot.control), so no chunk would continue a running one, and a run said to be rtc would
    not be."""
    ticks = _rounded(latency_ms, control_hz)
    if rtc and strategy.kind == "async" and ticks >= chunk:
        raise ValueError(f"rtc: latency_ms={latency_ms:g} ms is {ticks:g} control steps at {control_hz:g} Hz, at or "
                         f"past the policy's {chunk}-step chunk: strategy=async then sends no request while a chunk "
                         "runs (each next one blocks, as the first does), so none has running actions to continue; "
                         f"accepted with rtc=True: 0 to below {_first_ms(chunk, control_hz):g} ms, or leave rtc out")
    most = strategy.max_latency(chunk)
    if most is not None and ticks > most:
        kind = strategy.kind
        raise ValueError(f"latency_ms: {latency_ms:g} ms is {ticks:g} control steps at {control_hz:g} Hz, at or past "
                         f"the policy's {chunk}-step chunk: with strategy={kind} every reply lands past its whole "
                         f"chunk and is dropped, so the arm never moves; accepted with strategy={kind}: 0 to below "
                         f"{_first_ms(most + 1, control_hz):g} ms ({most} steps), or strategy=execute or "
                         "strategy=async, whose late request holds the arm until its chunk runs")


def check_chunk_timing(strategy: ChunkStrategy, embodiment, chunk: int, latency_ms: float, control_hz: float, *,
                       rtc: bool = False, setting: str = "execute_steps") -> None:
    """What a runner checks once the policy's chunk is known, before its weights load (the chunk is the loading
    options' `chunk_size`, else the checkpoint's embodiment's): the strategy's k fits it (`ChunkStrategy.steps_for`,
    naming `setting`) and the latency, with `rtc`, lets its replies run (`check_latency_chunk`). The loaded policy's
    `Rollout` checks the same again; refused here, no weights load for a run that cannot start."""
    strategy.for_embodiment(embodiment).steps_for(chunk, setting)
    check_latency_chunk(latency_ms, control_hz, strategy, chunk, rtc=rtc)


class Jumps:
    """An episode's joint target jumps at hand-over steps and within chunks (module docstring), step by step."""

    def __init__(self) -> None:
        self.handover: list[float] = []
        self.within: list[float] = []
        self._last = None  # the previous step's JointTarget

    def add(self, target) -> None:
        last, self._last = self._last, target
        if last is None or last.prediction is None or target.prediction is None or target.held:
            return
        jump = float(np.max(np.abs(np.asarray(target.qpos) - np.asarray(last.qpos))))
        (self.within if target.prediction is last.prediction else self.handover).append(jump)

    def fields(self) -> dict[str, float | int | None]:
        """As `EpisodeResult` keeps them: the count of hand-overs, and mean and max of either kind (None: none)."""
        out: dict[str, float | int | None] = {"handovers": len(self.handover)}
        for name, jumps in (("handover", self.handover), ("chunk", self.within)):
            out[f"{name}_jump_mean_rad"] = float(np.mean(jumps)) if jumps else None
            out[f"{name}_jump_max_rad"] = float(np.max(jumps)) if jumps else None
        return out


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
    # the joint target jumps (rad, `Jumps`) at hand-over steps and within chunks; None where there were none (and in a
    # report written before they were recorded)
    handovers: int = 0
    handover_jump_mean_rad: float | None = None
    handover_jump_max_rad: float | None = None
    chunk_jump_mean_rad: float | None = None
    chunk_jump_max_rad: float | None = None
    # a best-of-N planner's decisions (`planning.BestOfNPlanner`: `worldpolicy sim --plan`), one per chunk that ran,
    # in order: each candidate's score and the index of the one run ({"scores": [...], "chosen": i}); None for a policy
    # that does not plan, left out of report.json then
    plans: list[dict[str, Any]] | None = None
    frames: np.ndarray | None = field(default=None, repr=False)
    # of `wall_s`, the seconds spent drawing the recorded frames (`record`; 0 for an episode not recorded): what a run's
    # time left is estimated without for the episodes that record none (`sim.evaluate`); not stored
    recording_s: float = field(default=0.0, repr=False)

    def to_json(self) -> dict:
        """The episode as report.json, episodes.jsonl and episodes.csv keep it: its fields as they are (numbers, a
        string), its measurements to what they mean (`measured`): `asdict` deep-copied each, the frames too, for every
        episode at every rewrite of a long run's report. `plans` only where it planned."""
        return {name: measured(name, getattr(self, name)) for name in STORED_FIELDS
                if not (name == "plans" and self.plans is None)}


# The decimals a sim run's files keep of a measurement, by its unit (the end of its name): distances to the micrometre,
# times to the millisecond, joint jumps to the microradian. Past them a float's 17 digits (0.022743730689966064 m,
# 25.31609804800064 s) are noise of the physics and the clock; a file read back (a resume, `sim compare`) holds the
# rounded value, which rounds to itself, so a resumed run's files are the uninterrupted run's. Counts, steps and the
# success rate (and its interval: successes / n, exact) are not measurements, and are kept whole.
UNIT_DECIMALS = {"_m": 6, "_mm": 3, "_s": 3, "_s_per_episode": 3, "_rad": 6}


def measured(name: str, value: Any) -> Any:
    """`value` of the field or summary key `name` as a sim run's files keep it: a float whose name ends in a unit of
    `UNIT_DECIMALS` rounded to that many decimals (`EpisodeResult.to_json`, `EvalReport.to_json`), any other as it
    is. The one place the files' precision is said."""
    if not isinstance(value, float):
        return value
    for unit, decimals in UNIT_DECIMALS.items():
        if name.endswith(unit):
            return round(value, decimals)
    return value


# the fields of an episode that its report stores (`EpisodeResult.to_json`), in order: not its frames nor their time
STORED_FIELDS = tuple(f.name for f in fields(EpisodeResult) if f.name not in ("frames", "recording_s"))


class EpisodeWatch(Protocol):
    """What sees every step of an episode (`Rollout.run`'s `watch`; `worldpolicy sim --rerun`'s `sim.rerun.RerunWatch`):
    `observed` with each observation a request is asked with, as it is taken (at `episode.t`, the steps run so far);
    `stepped` after each step has run and been judged (`episode.t` counts it; `episode.success_step` and
    `episode.ended` are set), with the tick's `JointTarget` (`robot.control`), the joints and gripper measured as the
    tick began (the arm's joints then g, the controller's `q_arm` and the env's `gripper_position`) and the command
    sent (`on_act`'s)."""

    def observed(self, episode: Episode, observation: dict) -> None: ...

    def stepped(self, episode: Episode, target, measured: np.ndarray, command: np.ndarray) -> None: ...


class Rollout:
    """Runs episodes of one policy on one env with one chunk strategy. `env`: a `TabletopEnv`, or one made by
    `gymnasium.make("worldpolicy/...")`, whose TabletopEnv runs for the TimeLimit's `max_episode_steps`
    (`step_limit`). `name`: the policy as recorded frames' caption names it (`evaluate` passes its `policy_name`).
    `latency_ms`: how long each request is taken to think, in whole control steps (`latency_ticks`, kept as
    `latency`) from a request to its reply (module docstring; docs/robot.md). `rtc`: real-time chunking, `async` only
    (`ChunkController`'s; the policy must take `action_prefix`), refused here otherwise, before any episode."""

    def __init__(self, env, policy, strategy: ChunkStrategy | None = None, *, name: str | None = None,
                 latency_ms: float = 0.0, rtc: bool = False) -> None:
        self.env, self.max_steps = unwrap_tabletop(env), step_limit(env)
        self.name = name
        self.latency = latency_ticks(latency_ms, self.env.control_hz, self.max_steps)
        said = latency_as_none(latency_ms, self.env.control_hz)  # `worldpolicy sim` and `dataset from-sim` alike
        if said is not None:
            logger.warning("%s", said)
        policy = as_backend(policy)  # a bare Policy / RemotePolicy gets seeds from the episode's
        self.policy, self.strategy = policy, (strategy or ChunkStrategy()).for_policy(policy)
        check_rtc(rtc, self.strategy, policy)
        self.rtc = bool(rtc)
        try:
            chunk = chunk_size(policy)
        except AttributeError:  # a backend of your own that says no chunk: the controller refuses at its first reply
            chunk = None
        if chunk is not None:
            check_latency_chunk(latency_ms, self.env.control_hz, self.strategy, chunk, rtc=self.rtc)
        self.execute_steps: int | None = self.strategy.execute_steps  # k actually used, known after the first chunk
        self._decoders: dict[str, ActionDecoder] = {}
        self.executor: Executor | None = None  # where its controllers' async requests run: None, a thread of each's own

    def on(self, env, policy, *, executor: Executor | None = None) -> Rollout:
        """This rollout's settings (strategy, latency, rtc, name, step limit: checked once, here) on another env and
        backend, with decoders of its own, its episodes' `async` requests sent to `executor` (`ChunkController`'s):
        `sim.batch` runs one per env, holding them for its next batched call."""
        other = copy.copy(self)
        other.env, other.policy, other._decoders, other.executor = unwrap_tabletop(env), policy, {}, executor
        return other

    def decoder(self, key: str) -> ActionDecoder:
        if key not in self._decoders:
            own = getattr(self.policy, "embodiment", None)  # the backend's own, e.g. a server's not registered here
            # the sim measures joint speed per step and counts it (over_velocity_steps) rather than refusing a chunk;
            # likewise it clips and counts (clipped) joint targets however far past the limits an untrained model
            # puts them
            self._decoders[key] = ActionDecoder(own if own is not None and own.key == key else key, self.env.robot,
                                                check_velocity=False, check_limits=False)
        return self._decoders[key]

    def _observe(self, views: dict[str, np.ndarray] | None = None) -> dict:
        """The observation for the next request, taken now: a backend that reads privileged sim state (the scripted
        expert) gets it as of now too, not as of whenever a background request runs. Its cameras are rendered only for
        a backend that looks at them (`uses_images`, True unless a backend says otherwise: the scripted expert and
        random actions do not), so an episode of theirs renders only the frames a recording keeps. `views`: the
        cameras (`CAMERAS`) already rendered of the state as it is now (the recorded frame of the step just taken),
        used instead of rendering them again."""
        uses_images = getattr(self.policy, "uses_images", True)
        obs = self.env.observe(images=uses_images and views is None)
        if uses_images and views is not None:
            obs.update(views)  # in `CAMERAS` order, after the state, as `observe` puts them
        snapshot = getattr(self.policy, "snapshot", None)
        return snapshot(obs) if snapshot is not None else obs

    def run(self, seed: int, *, record: bool = False, on_step: Callable[[int], None] | None = None,
            on_act: Callable[[np.ndarray], None] | None = None, watch: EpisodeWatch | None = None) -> EpisodeResult:
        """One episode seeded `seed` (`record`: keep side-by-side frames, each captioned with the task, policy, seed,
        step and time, and the last with the outcome: `_caption`); `on_step(steps run so far)` after each step (a
        progress display: one episode of a checkpoint policy on CPU can take minutes); `on_act(command)` with each
        step's command (joint targets and gripper) just before it runs, the env still in the state it was chosen in
        (`dataset from-sim --policy` records the rows of the episode this runs); `watch` sees each observation asked
        with and each step (`EpisodeWatch`: `worldpolicy sim --rerun`).
        `async` asks for no chunk that would start at or past the step limit: its answer could not run."""
        with self.start(seed, record=record, on_step=on_step, on_act=on_act, watch=watch) as episode:
            while not episode.ended:
                episode.step()
        return episode.result()

    def start(self, seed: int, *, record: bool = False, on_step: Callable[[int], None] | None = None,
              on_act: Callable[[np.ndarray], None] | None = None, watch: EpisodeWatch | None = None) -> Episode:
        """The episode `run` runs (its arguments), reset and not yet stepped, to step one control step at a time:
        what `sim.batch` steps several of in lockstep. Close it (or use it as a context manager) once it has ended:
        an `async` request still in flight is waited for, as the next episode shares the backend."""
        return Episode(self, seed, record=record, on_step=on_step, on_act=on_act, watch=watch)

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

    def _frame(self, imagined: np.ndarray | None, seed: int, steps: int, outcome: bool | None,
               settings: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Sim cameras side by side, and the model's imagined frame for this step when it returned video, each
        captioned (`sim: <camera>`, `model: imagined`, with a planner's choice: `imagined_caption` of the chunk's
        `settings`): uncaptioned, the imagined panel passed for a fourth camera. The imagined frame is the policy's
        cameras composed into one picture, each part labelled with its camera's name (`_imagined_regions`).
        Above them the episode's caption (`_caption`), tinted on the last frame by the outcome (`outcome`: None until
        the episode is decided): an mp4 watched on its own said neither which episode it was nor how it ended.
        Returns the frame and the sim cameras it shows by key (`CAMERAS`): the next request's observation of this
        state (`Rollout._observe`), not rendered twice."""
        from PIL import ImageFont

        from worldpolicy.viz.video import caption_above, label_height, label_regions, labelled_row

        views = [self.env.render_camera(key) for key in CAMERAS]
        rendered = dict(zip(CAMERAS, views))
        labels = [f"sim: {name}" for name in CAMERAS.values()]
        longest_labels: list[str | None] = [None] * len(views)  # each panel's longest caption in the episode
        if imagined is not None:
            imagined = np.asarray(imagined)[..., :3].astype(np.uint8)
            regions = self._imagined_regions()
            views.append(imagined if regions is None else label_regions(imagined, regions, views[0].shape[0]))
            label, longest = imagined_caption(settings or {})
            labels.append(label)
            longest_labels.append(longest)
        row = labelled_row(views, labels, height=views[0].shape[0], widest=longest_labels)
        # every frame of the episode sized for its longest caption (the last step's, either outcome): one geometry
        font = ImageFont.load_default(size=20)
        widest = max((self._caption(seed, self.max_steps, end) for end in (True, False)), key=font.getlength)
        return caption_above(row, self._caption(seed, steps, outcome), widest, label_height(views[0].shape[0]),
                             background=OUTCOME_COLORS[outcome]), rendered

    def _imagined_regions(self) -> dict[str, tuple[float, float, float, float]] | None:
        """Where each sim camera lies in the model's imagined frame, by the camera's name as its own panel is captioned:
        the policy composes the cameras it is sent (its embodiment's composite, `composite_regions`), so the panel
        showed them composed into one picture with nothing saying which part was which. None for a backend without an
        embodiment, or one that sees no camera of the sim's."""
        from worldpolicy.processing.observations import composite_regions

        embodiment, sent = getattr(self.policy, "embodiment", None), getattr(self.policy, "keys", None)
        if embodiment is None:
            return None
        regions = composite_regions([key for key in CAMERAS if sent is None or key in sent], embodiment.camera_keys,
                                    embodiment.composite)
        return None if regions is None else {CAMERAS.get(key, key): box for key, box in regions.items()}

    def _caption(self, seed: int, steps: int, outcome: bool | None) -> str:
        """What a recorded frame shows: `reach v1 · scripted · seed 3 · step 12/60 · 0.79 s`, the time at the env's
        actual control rate (the video's frame rate), then `· SUCCESS at step 16` or `· FAILURE: step limit` once
        decided; a shifted scene's spec after the seed (`· perturb light=0.5`), so a clean and a shifted video differ
        in their caption too. Its parts are separated as the animations' and side-by-sides' captions are
        (`viz.video.SEP`)."""
        from worldpolicy.viz.video import SEP

        env = self.env
        parts = [f"{env.task.name} v{env.task.version}", *([self.name] if self.name else []), f"seed {seed}",
                 *([f"perturb {env.perturbation.spec}"] if env.perturbation else []),
                 f"step {steps}/{self.max_steps}", f"{steps / env.actual_control_hz:.2f} s"]
        if outcome is not None:
            parts.append(f"SUCCESS at step {steps}" if outcome else "FAILURE: step limit")
        return SEP.join(parts)


def imagined_caption(settings: dict[str, Any]) -> tuple[str, str]:
    """The imagined panel's caption for a chunk of these `settings`, and the longest it can be in the episode (every
    frame sized for it: one geometry): `model: imagined`; for a best-of-N planner's chunk (`planning.BestOfNPlanner`)
    also which candidate runs, its score and the best of the others (`best of 4: #2 -0.112, next -0.25`), or that all
    scored the same (`best of 4: all -0.25, tied`): the episode video showed the chosen future alone, not that it was
    chosen, among how many, or whether the scores told the candidates apart at all."""
    if settings.get("planner") != PLANNER:
        return "model: imagined", "model: imagined"
    scores, chosen = settings["scores"], settings["chosen"]
    head = f"model: imagined · best of {len(scores)}:"
    longest = f"{head} #{len(scores) - 1} -8.88e+88, next -8.88e+88"
    if settings["tied"]:
        return f"{head} all {scores[0]:.3g}, tied", longest
    others = max(score for i, score in enumerate(scores) if i != chosen)
    return f"{head} #{chosen} {scores[chosen]:.3g}, next {others:.3g}", longest


class Episode:
    """One episode of a `Rollout` (`Rollout.start`), a control step at a time (`step`) until it has `ended`; then its
    `result`. `Rollout.run` steps one to its end; `sim.batch` steps several, one per env, in lockstep."""

    def __init__(self, rollout: Rollout, seed: int, *, record: bool, on_step: Callable[[int], None] | None,
                 on_act: Callable[[np.ndarray], None] | None, watch: EpisodeWatch | None = None) -> None:
        self.rollout, self.seed, self.record, self.on_step, self.on_act = rollout, seed, record, on_step, on_act
        self.watch = watch
        env, policy = rollout.env, rollout.policy
        self._wall0 = time.perf_counter()
        env.reset(seed=seed)  # what it returns is in the env's obs_type: the episode reads `observe()`
        self.prompt = env.task_description
        if hasattr(policy, "reset"):
            policy.reset(seed)
        self.frames: list[np.ndarray] = []
        # the cameras the last recorded frame rendered of the state as it is now: the next observation's, until the
        # next step
        self._views: dict[str, np.ndarray] | None = None
        self.recording_s = 0.0  # drawing the recorded frames (`EpisodeResult.recording_s`)
        self.tracking: list[float] = []
        self.clipped, self.too_fast, self.jumps = 0, 0, Jumps()
        self.plans: list[dict[str, Any]] | None = None  # a planner's decisions (`EpisodeResult.plans`)
        self._planned = None  # the last chunk whose decision `plans` holds
        self.success_step: int | None = None
        self.t, self.ended = 0, False
        self.control = ChunkController(policy, rollout.decoder, rollout.strategy, latency=rollout.latency,
                                       rtc=rollout.rtc, executor=rollout.executor)
        self.control.reset(horizon=rollout.max_steps)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def asks(self) -> bool:
        """Whether the next `step` sends the policy a request (`ChunkController.asks`)."""
        return not self.ended and self.control.asks

    def observe(self) -> dict:
        """The observation a request of the next step is asked with (`Rollout._observe`): of a recorded episode, with
        the cameras its last frame rendered of this state; shown to the `watch`."""
        observation = self.rollout._observe(self._views)
        if self.watch is not None:
            self.watch.observed(self, observation)
        return observation

    def distance_m(self) -> float:
        """How far the task is from done now (`Task.distance`, metres): the episode's `final_distance_m` at its end."""
        env = self.rollout.env
        return env.task.distance(env.state())

    def step(self, observation: dict | None = None) -> None:
        """One control step; `observation`: the one its request is asked with, taken by `observe` since the last
        step (`sim.batch` takes it first, to batch it with the other envs'), else taken when it asks."""
        rollout, env, t = self.rollout, self.rollout.env, self.t
        joints = env.joint_positions()
        measured = np.append(joints, env.gripper_position()) if self.watch is not None else None
        target = self.control.step(self.observe if observation is None else observation, joints)
        self._views = None  # the state moves on below
        rollout.execute_steps = self.control.execute_steps
        # a head without a gripper column commands none: the gripper keeps its last command
        command = np.append(target.qpos, target.gripper if target.gripper is not None else env.gripper_command)
        if self.on_act is not None:
            self.on_act(command)
        env.act(command)
        # what ran: every chunk action blended into this step (one outside ensemble); a chunk cut short by a new one,
        # or by the episode's end, adds nothing for the actions it never ran
        self.clipped += target.clipped
        self.tracking += target.tracking_mm
        self.too_fast += rollout._check_speed(t, first=self.too_fast == 0)
        self.jumps.add(target)
        self._keep_plan(target.prediction)
        succeeded = env.success()
        self.t = t + 1
        if self.record:
            ended = succeeded or self.t == rollout.max_steps
            pred = target.prediction  # shown after its action `index` ran: the frame that action leads into
            imagined = (pred.video[_frame_after(target.index, len(pred.video), pred.chunk_size)]
                        if pred is not None and pred.video is not None else None)  # None: no reply yet
            drawn = time.perf_counter()
            frame, self._views = rollout._frame(imagined, self.seed, self.t, succeeded if ended else None,
                                                pred.settings if pred is not None else None)
            self.frames.append(frame)
            self.recording_s += time.perf_counter() - drawn
        if self.on_step is not None:
            self.on_step(self.t)
        if succeeded:
            self.success_step = self.t
        self.ended = succeeded or self.t == rollout.max_steps
        if self.watch is not None:
            self.watch.stepped(self, target, measured, command)
        if self.ended:
            self.close()

    def _keep_plan(self, prediction) -> None:
        """A planner's decision (its chunk's `settings`: `BestOfNPlanner.act`) kept once, at the first step its chunk
        runs."""
        if prediction is None or prediction is self._planned or prediction.settings.get("planner") != PLANNER:
            return
        self._planned = prediction
        self.plans = [*(self.plans or []), {"scores": [float(x) for x in prediction.settings["scores"]],
                                            "chosen": int(prediction.settings["chosen"])}]

    def close(self) -> None:
        """Let the controller's background request finish (`ChunkController.close`); closing twice is harmless."""
        self.control.close()

    def result(self, policy_s: float | None = None) -> EpisodeResult:
        """What the episode measured, once it has ended; `policy_s`: the seconds its requests took, where the
        controller did not time them (`sim.batch`: each request's share of the batched call it was in)."""
        env, tracking = self.rollout.env, self.tracking
        return EpisodeResult(
            seed=self.seed, success=self.success_step is not None, steps=env.steps, success_step=self.success_step,
            prompt=self.prompt, chunks=self.control.chunks, final_distance_m=self.distance_m(),
            policy_s=self.control.policy_s if policy_s is None else policy_s,
            wall_s=time.perf_counter() - self._wall0,
            ik_mean_mm=float(np.mean(tracking)) if tracking else None,
            ik_max_mm=float(np.max(tracking)) if tracking else None,
            clipped=self.clipped, over_velocity_steps=self.too_fast, **self.jumps.fields(), plans=self.plans,
            frames=np.stack(self.frames) if self.frames else None, recording_s=self.recording_s,
        )


def _frame_after(action: int, frames: int, chunk: int) -> int:
    """Index of the imagined frame that action `action` of a `chunk`-action chunk leads into. Frame 0 is the
    observation the chunk was asked for and the last frame the end of the chunk (Cosmos3: action i → frame i+1 when
    there are chunk + 1 frames; fewer frames, e.g. temporally compressed, spread over the same span: the first frame
    at or after the action's end)."""
    return min(frames - 1, -(-(action + 1) * (frames - 1) // chunk))
