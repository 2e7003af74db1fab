"""A policy's action chunks run one control tick at a time: which decoded action each tick sends, when to ask the policy
again and how one chunk hands over to the next. `worldpolicy sim`'s rollouts run through this same `ChunkController`,
so a strategy does on your arm what it did in the sim (docs/robot.md, "On your own robot").

Chunk strategies (`ChunkStrategy`):
- `execute`: run the first k of T actions, then ask again (k = T is fully open loop per chunk).
- `ensemble`: ask every k ticks and average, per tick, every chunk that covers it with ACT-style weights exp(-m·i)
  (i = 0 the oldest); averaging happens on decoded joint targets so relative chunks anchored at different poses are
  comparable. It smooths the jumps at chunk boundaries.
- `async`: while chunk n runs, chunk n+1 is computed in a background thread from the observation taken when chunk n
  started; it takes over k ticks later, skipping its first k (already elapsed) actions. That hand-over is fixed
  (deterministic: the sim's, which waits for a late reply), or with `realtime=True` the first tick at least k ticks on
  at which the reply has landed, skipping every action whose tick has passed; meanwhile the current chunk runs on (all
  of it is decoded), and the arm holds its last target if it runs out.

A request is in flight until its reply lands: on the tick it is asked (latency 0), or `latency` ticks later (the sim's
`--latency`: a policy that takes that long), and, with `realtime`, not before the background request has returned. How
a late reply is taken follows from whether the arm moved meanwhile, as in realtime `async`: a request that blocks the
loop (`execute`'s, `async`'s first) leaves the arm holding its last target where it was observed, so the reply starts
at its first action; a request answered while the arm runs on (`async`'s background one, `ensemble`'s) skips the
actions whose ticks have passed. So with latency d: `execute` holds d ticks after each request; `async` hands over at
max(k, d) ticks on, its current chunk running on (and the arm holding if it runs out), unless d >= T: a background
reply would then land past its whole chunk, so none is asked, and once the chunk runs out the next request blocks as
the first does; an `ensemble` chunk asked at tick t covers t + d on (so d >= T, every chunk past, is refused).

Real-time chunking (`rtc=True`, `async` only): a background request is sent at tick t, the tick the running chunk
took over, and row i of the chunk it asks for is meant for tick t + i; the running chunk's rows planned for ticks
t .. t + d - 1 run whatever that chunk says, so they go with the request as `action_prefix` (its `Prediction.actions`
rows, in the units the policy returned them) and the policy continues them instead of sampling a plan that jumps at the
hand-over. d is the ticks until the reply can take over, max(k, latency) (with `realtime`, the least: a later reply
finds more of the running chunk run), fewer where the running chunk ends first (so at most T - 1: above); a request
that blocks (the episode's first) has none.

A request that fails (a server gone or silent past its timeout, an error frame, a chunk the decoder refuses) raises from
`step` by default (`on_policy_error="raise"`). With `on_policy_error="hold"` it does not: the tick runs what is planned
for it (the running chunk's action meant for it, `async`'s or `ensemble`'s; never one whose tick has passed), else
holds the last target, the failure said on the target (`JointTarget.policy_error`), counted (`policy_errors`,
`policy_error_streak`) and logged once per streak of failures in a row; the request is sent again after a back-off
(1, 2, 4, ... ticks, at most `RETRY_TICKS_MOST`), and the `max_policy_errors`-th failure in a row raises. What the
request itself gets wrong (`REQUEST_ERRORS`), a `RemotePolicy` the caller closed and joints measured past the arm's
limits raise at once either way: no failure of the policy to ask again about.

Time is counted in control ticks (`step` calls, one per 1/fps), never read from a clock: the caller's loop keeps the
rate, and a test steps through any timing without sleeping. The one clock reading, each `JointTarget`'s `stamp`, times
nothing here: it lets whatever receives the target (a servo thread, a driver process) tell a stale command from a
fresh one (`JointTarget.fresh`), with its episode and tick numbering the commands. What each reply took, in ticks and
in seconds, and whether it ran, is kept in `ChunkController.replies` (a `Reply` each, the episode's latest
`REPLIES_KEPT`).
"""

from __future__ import annotations

import inspect
import logging
import reprlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Self

import numpy as np

from worldpolicy.errors import ClosedByCallerError, is_integer, is_real
from worldpolicy.results import Prediction
from worldpolicy.robot.decode import ActionDecoder
from worldpolicy.robot.robots import list_robots

__all__ = ["MAX_POLICY_ERRORS", "ON_POLICY_ERROR", "REPLIES_KEPT", "REQUEST_ERRORS", "RETRY_TICKS_MOST", "STRATEGIES",
           "ChunkController", "ChunkStrategy", "JointTarget", "Reply", "check_rtc"]

logger = logging.getLogger(__name__)
STRATEGIES = ("execute", "ensemble", "async")
# what the realtime warnings add: a policy slower than its chunk's span (chunk / fps) has every background reply dropped
# and the arm held after its first chunk (the shipped model on a CPU); without realtime each hand-over waits instead
REALTIME_TOO_SLOW = ("; a policy slower than its chunk's span runs with realtime=False, each hand-over waiting for its "
                     "reply: docs/robot.md")
# the replies a controller remembers (`ChunkController.replies`): a robot's loop may run for hours without a reset
REPLIES_KEPT = 10_000
# what a failed request does (`ChunkController(on_policy_error=)`): raise from `step`, or hold the arm and ask again
ON_POLICY_ERROR = ("raise", "hold")
# with "hold", the failures in a row after which `step` raises the last one (`max_policy_errors`' default): with the
# back-off below, about 6 s of retries at 15 Hz when each fails at once (a refused connection)
MAX_POLICY_ERRORS = 10
# with "hold", the most ticks between a failed request and the next: the n-th failure in a row waits 2^(n-1) ticks, up
# to this (about 1 s at 15 Hz), so a server that is down is not asked on every tick
RETRY_TICKS_MOST = 16
# what a policy's `act` raises for the request itself, as the library's input checks do (an observation without a
# camera, a bad shape or option, a server's `BadRequestError`, a server of another embodiment): raised at once with
# "hold" too, the caller's to fix; asking again would get the same
REQUEST_ERRORS = (ValueError, TypeError, LookupError)
# requests a controller dropped while they ran and did not wait for (`close(wait=False)`), by their policy's id, each
# until it finishes: the next request to that policy, from any controller (the next episode's, often a new one), or a
# reset or close, waits for them first, so no two calls race on one policy (a local Policy's pipeline takes one at a
# time). A running request holds its controller, so its policy's id names no other while it is here.
_left_running: dict[int, set[Future]] = {}
_left_running_lock = threading.Lock()


def _leave_running(policy, reply: Future) -> None:
    """Keep `reply`, a request to `policy` dropped while running, in `_left_running` until it finishes."""
    key = id(policy)
    with _left_running_lock:
        _left_running.setdefault(key, set()).add(reply)

    def finished(_: Future) -> None:
        with _left_running_lock:
            left = _left_running.get(key, set())
            left.discard(reply)
            if not left:
                _left_running.pop(key, None)

    reply.add_done_callback(finished)  # called at once where it finished already


def _wait_left_running(policy) -> None:
    """Wait for the requests to `policy` left running (`_left_running`): the policy is free after."""
    with _left_running_lock:
        left = list(_left_running.get(id(policy), ()))
    for reply in left:
        reply.exception()


@dataclass(frozen=True)
class ChunkStrategy:
    """How a policy's chunks run (module docstring): `kind` in `STRATEGIES`, k (`execute_steps`) and the ensemble's
    decay m. Checked when made, and k against each chunk's length once it is known (`steps_for`)."""

    kind: str = "execute"
    execute_steps: int | None = None  # k; None = the whole chunk for execute, 1 for ensemble, T/2 for async
    ensemble_decay: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in STRATEGIES:
            raise ValueError(f"strategy: unknown kind {self.kind!r}; accepted: {list(STRATEGIES)}")
        k = self.execute_steps
        if k is not None and (not is_integer(k) or k < 1):
            # a float k ran: steps were planned at t % 2.5 == 0
            raise ValueError(f"execute_steps: expected an int >= 1, got {k!r}")
        m = self.ensemble_decay
        if not is_real(m) or m < 0:
            # inf blended NaN targets: the newest chunk's weight exp(-inf * 0) is NaN
            raise ValueError(f"ensemble_decay: expected a finite number >= 0, got {m!r}")

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

    def max_latency(self, chunk: int) -> int | None:
        """The most ticks a reply to a `chunk`-step chunk may take and still run (module docstring): T - 1 for
        `ensemble`, whose chunk asked at tick t covers t + latency on, so a later reply is past its whole chunk and
        dropped, every time, and the arm never moves; None (any) for `execute` and `async`, whose late request
        blocks the arm where it was observed and runs its chunk from the first action."""
        return chunk - 1 if self.kind == "ensemble" else None


@dataclass(frozen=True)
class JointTarget:
    """What one control tick commands, and what counts about it (the sim's per-episode `clipped` and IK error), and
    when: `(episode, tick)` numbers the commands (a repeat or an older one is told apart by it), `stamp` says when the
    command was made (a receiver drops it once `clock() - stamp` exceeds what it accepts: `fresh`), `observed`
    how old its plan is (`tick - observed` ticks since the observation its chunk was asked with)."""

    qpos: np.ndarray  # [dof] arm joint targets, rad, in the robot's `arm_joints` order
    gripper: float | None  # g in [0, 1], 0 = open; None: the embodiment has no gripper column, keep the last command
    clipped: int  # values clipped in the chunk actions this tick runs (with ensemble, every one blended into it)
    tracking_mm: tuple[float, ...]  # IK position error of each of those actions (relative_pose chunks; else empty)
    # the newest chunk this tick runs an action of (its imagined video, when asked for); None while the arm holds
    # where it started, before the episode's first reply landed (a latency)
    prediction: Prediction | None
    index: int | None  # which of its actions: row `index` of `prediction.actions`
    # no action planned for this tick, a reply not landed yet (realtime async, a latency) or a request failed
    # (`on_policy_error="hold"`): the last target again, or before the first reply the joints measured on the first
    # tick that held
    held: bool = False
    tick: int = field(kw_only=True)  # the control tick it is for: 0 for an episode's first `step`, then one per step
    episode: int = field(kw_only=True)  # the controller's episode: 0, then one more at each `reset` after a step
    stamp: float = field(kw_only=True)  # the controller's `clock()` (time.monotonic) when `step` made it
    # the tick whose observation the newest chunk in it was asked with (its `Reply.sent`); None while the arm holds
    # where it started, before the episode's first reply
    observed: int | None = field(kw_only=True)
    # the error of the policy request that failed on this tick (`on_policy_error="hold"`: its reply, or its chunk's
    # decoding, raised and the tick ran on without it); None on every other tick
    policy_error: Exception | None = field(default=None, kw_only=True)

    def fresh(self, newest: tuple[int, int] | None, max_age_s: float, now: float | None = None) -> bool:
        """Whether whatever receives this target (a servo thread, a driver process) runs it: it is newer than the last
        command run (`newest`: that one's `(episode, tick)`; None before any) and made at most `max_age_s` seconds
        ago, `now - stamp`, `now` being the receiver's reading of the controller's clock (default `time.monotonic()`,
        the controller's own; pass a reading of the clock given as `ChunkController(clock=)` where it has another)."""
        if newest is not None and (not isinstance(newest, (tuple, list)) or len(newest) != 2
                                   or not all(is_integer(n) for n in newest)):
            raise ValueError(f"newest: expected the (episode, tick) of the last command run, or None before any; "
                             f"got {reprlib.repr(newest)}")
        if not is_real(max_age_s, finite=False) or not max_age_s > 0:  # inf: never stale
            raise ValueError(f"max_age_s: expected seconds > 0 (a command older than that is stale), got "
                             f"{reprlib.repr(max_age_s)}")
        if newest is not None and (self.episode, self.tick) <= tuple(newest):
            return False
        return (time.monotonic() if now is None else now) - self.stamp <= max_age_s


def check_rtc(rtc: bool, strategy: ChunkStrategy, policy=None) -> None:
    """`rtc` (module docstring) where it can run: with the `async` strategy, whose requests are computed while a chunk
    runs, and a policy whose `act` takes `action_prefix` (not checked while `policy` is None: a CLI checks the
    strategy before a policy loads); refused naming it (a CLI says --rtc) otherwise."""
    if not isinstance(rtc, (bool, np.bool_)):
        raise ValueError(f"rtc: expected True or False, got {rtc!r}")
    if not rtc:
        return
    if strategy.kind != "async":
        raise ValueError(f"rtc: conditions each chunk on the actions that run while it is computed, which only the "
                         f"'async' strategy does; got {strategy.kind!r}; accepted: 'async'")
    if policy is None:
        return
    try:
        params = inspect.signature(policy.act).parameters
    except (TypeError, ValueError):  # a builtin without a signature: left to the call
        return
    if "action_prefix" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise ValueError(f"rtc: policy {type(policy).__name__}'s act takes no action_prefix, so it cannot continue "
                         "the running chunk; use a model policy (a Policy, a RemotePolicy) or leave rtc off")


def _check_on_policy_error(on_policy_error: Any, max_policy_errors: Any) -> tuple[str, int | None]:
    """`ChunkController`'s `on_policy_error` and `max_policy_errors`, checked, the latter's default filled in for "hold"
    (None for "raise", whose first failure raises)."""
    if not isinstance(on_policy_error, str) or on_policy_error not in ON_POLICY_ERROR:
        raise ValueError(f"on_policy_error: expected one of {list(ON_POLICY_ERROR)}, got "
                         f"{reprlib.repr(on_policy_error)}")
    if on_policy_error == "raise":
        if max_policy_errors is not None:
            raise ValueError(f"max_policy_errors: {reprlib.repr(max_policy_errors)} counts the failed requests "
                             "on_policy_error='hold' holds the arm through; with 'raise' the first one raises: pass "
                             "on_policy_error='hold' too, or leave max_policy_errors out")
        return on_policy_error, None
    if max_policy_errors is None:
        return on_policy_error, MAX_POLICY_ERRORS
    if not is_integer(max_policy_errors) or max_policy_errors < 1:
        raise ValueError(f"max_policy_errors: expected a whole number >= 1 of failed requests in a row (the last "
                         f"raises; 1: the first, as 'raise'), got {reprlib.repr(max_policy_errors)}")
    return on_policy_error, int(max_policy_errors)


class Reply(NamedTuple):
    """One request's reply as the controller took it (`ChunkController.replies`): the latency a real-time loop lives
    with, in ticks (`taken - sent`: with `realtime`, the first tick at least max(k, latency) on at which it had
    returned) and in seconds, and what of it ran. A request that raised is not one: its error raised from `step`."""

    sent: int  # the tick it was sent, its observation read then
    taken: int  # the tick its reply was taken, or dropped
    seconds: float  # the policy call's time, measured around `act` (a RemotePolicy's: the network's too)
    skipped: int  # its first actions, meant for ticks that had passed when it was taken (the arm ran on meanwhile)
    dropped: bool  # it landed past its whole chunk (`skipped` >= its chunk size): none of it ran


class _Planned(NamedTuple):
    """One decoded chunk action for one tick, with what counts if it runs."""

    chunk: int
    sent: int  # the tick its chunk's request was sent (`_Request.sent`)
    target: np.ndarray  # joint targets, + g where the embodiment has a gripper column
    clipped: int
    tracking_mm: float | None  # IK position error (relative_pose chunks)
    prediction: Prediction
    index: int


class _Request(NamedTuple):
    """A request sent whose reply is not taken yet (module docstring)."""

    reply: Future | tuple[Prediction, float]  # a background request's, or a reply already computed: (chunk, seconds)
    sent: int  # the tick it was sent
    start: int  # the tick its action 0 is meant for: its observation's, or, when the arm held still for it, its landing
    lands: int  # the first tick it may be taken (realtime: once `reply` is done, too)
    observation: Mapping[str, Any] | None  # async's blocking request: what its follow-up is asked with
    state: Any  # and the state row with it (None: none given)


Observation = Mapping[str, Any] | Callable[[], Mapping[str, Any]]
State = Any  # a state row as `Policy.act`'s `state=` takes it, a function returning one, or None


class ChunkController:
    """Runs one policy's chunks on one robot with one strategy, a control tick per `step`. Call `step` at the
    embodiment's fps (`decoder.embodiment.fps`: the decoder's speed check assumes that rate), `reset` before each
    episode, and `close` (or use it as a context manager) to stop its thread once a background request finished
    (leaving the `with` block on an exception does not wait for it: `close`). An episode's first `step` waits for a
    whole request whatever the strategy (no chunk runs before its reply): take it before the loop's clock starts
    (docs/robot.md).

    `policy`: anything with `act(observation, prompt) -> Prediction` (a `Policy`, a `RemotePolicy`, a sim backend).
    `decoder`: an `ActionDecoder` for the policy's embodiment and your robot (another embodiment is refused: when the
    controller is made where the policy says its `embodiment`, as a `Policy` and a `RemotePolicy` do, else at its chunk;
    so is a k its `chunk_size` cannot run),
    or a function from a chunk's embodiment key to one (the sim's, whose backends say theirs only in their replies).
    `prompt`: the task instruction; None reads it from each observation's "prompt". `realtime`: for `async` only, take a
    reply as soon as it lands (at least k ticks on) instead of exactly k ticks on (module docstring). `latency`: ticks
    from a request to its reply, the time a policy is taken to think (the sim's `--latency`; 0: none, the reply is
    there on the tick that asks); with `realtime`, the least. `rtc`: for `async` only, ask each background request
    with the running chunk's actions it will not take over from as `action_prefix` (module docstring); the policy's
    `act` must take that keyword (a `Policy`, a `RemotePolicy`). `executor`: where `async` requests run, each sent as
    `submit(request, observation, action_prefix)` (the prefix None but with `rtc`) and its future's result taken at
    its hand-over, max(k, latency) >= 1 ticks on (with `realtime`, once done); by default a thread of the controller's
    own (a test passes one it completes by hand; `worldpolicy sim --num-envs` one that holds each request for the
    next tick's batched call). `clock`: what each target's `stamp` is read from (`time.monotonic`; the receiver of
    the targets compares its own reading of the same clock). `on_policy_error`: what a failed request does (module
    docstring; `ON_POLICY_ERROR`): "raise" (default) from `step`, or "hold" the arm and ask again, raising at the
    `max_policy_errors`-th failure in a row (default `MAX_POLICY_ERRORS`; "hold" only).

    After each `step`, `replies` holds a `Reply` for each reply taken or dropped this episode (the latest
    `REPLIES_KEPT`): the ticks and seconds it took and whether it ran, e.g. for the latency's percentiles; with
    `on_policy_error="hold"`, `policy_errors` counts the requests that failed this episode and `policy_error_streak`
    those since the last reply taken."""

    def __init__(self, policy, decoder: ActionDecoder | Callable[[str], ActionDecoder],
                 strategy: ChunkStrategy | None = None, *, prompt: str | None = None, realtime: bool = False,
                 latency: int = 0, rtc: bool = False, executor: Executor | None = None,
                 clock: Callable[[], float] = time.monotonic, on_policy_error: str = "raise",
                 max_policy_errors: int | None = None) -> None:
        if strategy is not None and not isinstance(strategy, ChunkStrategy):
            hint = f"; the kind alone is ChunkStrategy({strategy!r})" if strategy in STRATEGIES else ""
            raise TypeError(f"strategy: expected a ChunkStrategy, got {type(strategy).__name__} {strategy!r}{hint}")
        if not callable(getattr(policy, "act", None)):
            raise TypeError(f"policy: expected an object with act(observation, prompt), got {type(policy).__name__}")
        if not callable(clock):
            raise TypeError(f"clock: expected a function returning seconds (time.monotonic, the default), got "
                            f"{type(clock).__name__} {reprlib.repr(clock)}")
        if not (isinstance(decoder, ActionDecoder) or callable(decoder)):
            hint = ""
            if isinstance(decoder, str):  # a robot's name, or another string (an embodiment key): no robot to name
                robot = decoder.lower() in list_robots() or decoder.endswith((".json", ".xml"))
                hint = (f"; for a robot by name, ActionDecoder(policy.embodiment, {decoder!r})" if robot else
                        f"; one for the robot: ActionDecoder(policy.embodiment, robot), robot one of {list_robots()}, "
                        "a robot file (*.json) or a RobotConfig")
            raise TypeError(f"decoder: expected an ActionDecoder or a function from an embodiment key to one, got "
                            f"{type(decoder).__name__} {decoder!r}{hint}")
        announced = getattr(getattr(policy, "embodiment", None), "key", None)
        if isinstance(decoder, ActionDecoder) and isinstance(announced, str) and announced != decoder.embodiment.key:
            # known now (a RemotePolicy has it from the server's metadata): refused before the first request waits
            raise ValueError(f"decoder: decodes embodiment {decoder.embodiment.key!r}, but the policy's is "
                             f"{announced!r}; make it ActionDecoder(policy.embodiment, robot)")
        self.policy, self.prompt, self._decoder = policy, prompt, decoder
        # the decoder of the latest chunk (the given one, or the function's for its embodiment): the robot it drives
        self._active = decoder if isinstance(decoder, ActionDecoder) else None
        self.strategy = (strategy or ChunkStrategy()).for_policy(policy)
        if realtime and self.strategy.kind != "async":
            raise ValueError(f"realtime: only the 'async' strategy hands over in the background, not "
                             f"{self.strategy.kind!r}; its requests block the tick that asks")
        if not is_integer(latency) or latency < 0:
            raise ValueError(f"latency: expected a whole number of control ticks >= 0 (0: none), got "
                             f"{reprlib.repr(latency)}")
        check_rtc(rtc, self.strategy, policy)
        self.on_policy_error, self.max_policy_errors = _check_on_policy_error(on_policy_error, max_policy_errors)
        self.realtime, self.latency, self.rtc = realtime, int(latency), bool(rtc)
        announced_chunk = getattr(policy, "chunk_size", None)  # a Policy's, a server's that announces one
        if is_integer(announced_chunk):
            # a k the chunks cannot run, or a latency no reply survives, refused before any request
            self._check_chunk(int(announced_chunk))
        self._executor, self._own_executor = executor, executor is None
        self._clock = clock
        self.execute_steps: int | None = None  # k actually used, known after the first reply
        self.episode, self.tick = 0, 0  # each target's episode and tick (`JointTarget`)
        self.reset()

    def __repr__(self) -> str:
        """Its policy, decoder (embodiment and robot), strategy and timing settings, and where the episode is: the REPL
        showed `<... object at 0x...>`."""
        decoder = self._active if self._active is not None else \
            getattr(self._decoder, "__qualname__", type(self._decoder).__name__)
        return (f"ChunkController(policy={type(self.policy).__name__}, decoder={decoder}, strategy={self.strategy!r}, "
                f"realtime={self.realtime}, latency={self.latency}, rtc={self.rtc}, "
                f"on_policy_error={self.on_policy_error!r}, "
                + (f"max_policy_errors={self.max_policy_errors}, " if self.max_policy_errors is not None else "")
                + f"tick={self.tick}, chunks={self.chunks})")

    def reset(self, horizon: int | None = None) -> None:
        """Start an episode: forget every planned action (a request still running is waited for and dropped).
        `horizon`: the episode's tick limit, where there is one (the sim's step limit): no action is decoded past it,
        and nothing is asked whose answer could not run before it (`async`'s chunk starting at or past it, a reply
        landing there)."""
        if horizon is not None and (not is_integer(horizon) or horizon < 1):
            raise ValueError(f"horizon: expected an int >= 1 or None, got {horizon!r}")
        if horizon is not None and self.latency >= horizon:
            raise ValueError(f"latency: {reprlib.repr(self.latency)} ticks is at or past the horizon of {horizon} "
                             f"ticks: no reply would land before it; accepted: 0 to {horizon - 1}")
        self._drop_pending()
        self.horizon = horizon
        if self.tick:  # an episode ran: the next is another (a reset before any step keeps the number)
            self.episode += 1
        self.tick = 0  # ticks run since reset
        self.chunks = 0  # chunks taken (a reply dropped at reset or close is not one)
        self.policy_s = 0.0  # seconds the requests of the replies taken or dropped took
        self.replies: deque[Reply] = deque(maxlen=REPLIES_KEPT)  # each reply taken or dropped, oldest first
        self._plan: dict[int, list[_Planned]] = {}  # tick → the decoded chunk actions meant for it
        self._pending: deque[_Request] = deque()  # requests in flight, oldest first (ensemble's: one per k ticks)
        self._last: JointTarget | None = None
        self._held_warned = self._dropped_warned = False  # each warned once per episode
        self._reask = False  # a background request failed: a later step asks again (`step`)
        self.policy_errors = 0  # requests that failed this episode and were held through (`on_policy_error="hold"`)
        self.policy_error_streak = 0  # of them, those since the last reply taken: the failures in a row
        self._retry_at: int | None = None  # "hold": the first tick that may ask again after a failure (the back-off)
        self._error: Exception | None = None  # "hold": the failure of the step running, for its target

    def step(self, observation: Observation, q_arm: np.ndarray, state: State = None) -> JointTarget:
        """This tick's target. `observation`: what the policy is asked with (camera images and state keys), or a
        function returning it, called only on the ticks that ask and once on each (a camera capture or a render costs;
        `async`'s first tick asks twice, both from that one observation). `q_arm`: the arm joints measured now (rad): a
        chunk is decoded from them. `state`: the state row a state-conditioned embodiment is asked with when the
        observation does not carry it (`state_history` >= 1 without `state_keys`), in the embodiment's columns and
        units, as `Policy.act`'s and `RemotePolicy.act`'s `state=`; or a function returning it, called when the
        observation is read; each request carries the state read with its observation (None: no `state=`).
        A request that failed raises from the step that takes its reply, which runs no tick; the next step (the same
        tick) asks again: a background one in the background while the running chunk has an action for the tick, else
        blocking, as the first. With `on_policy_error="hold"` that step runs its tick instead (module docstring), and
        the request goes again after the back-off, as the same kind of request."""
        t = self.tick
        if self.horizon is not None and t >= self.horizon:
            raise ValueError(f"step: tick {t} is at or past the horizon of {self.horizon} ticks given to reset; "
                             "reset() starts the next episode")
        q_arm = self._measured(q_arm)
        self._error = None
        if self._reask and not self._backing_off(t):  # a background request failed: ask again now, in the background
            self._reask = False  # while the running chunk runs on; with none left, `_asks` blocks
            if t in self._plan:
                entry = self._plan[t][0]
                self._ask_next(t, entry.prediction.chunk_size, observation, state)
        if self._asks(t):
            self._send(t, observation, state)
        if self._pending and self._landed(self._pending[0], t):  # one a tick: each lands on its own tick
            self._take_chunk(t, self._pending.popleft(), observation, state, q_arm)
        entries = self._plan.pop(t, None)  # ticks run one by one, each popping its own: none older is left
        when = {"tick": t, "episode": self.episode, "stamp": self._clock(), "policy_error": self._error}
        if entries is None:  # a reply not landed yet: realtime async's chunk ran out, or a latency
            target = self._hold(t, q_arm, when)
        else:
            newest = max(entries, key=lambda e: e.chunk)
            blended = self._blend(entries, q_arm)
            dof = self._active.robot.dof
            target = JointTarget(
                qpos=blended[:dof], gripper=float(blended[dof]) if len(blended) > dof else None,
                clipped=sum(e.clipped for e in entries),
                tracking_mm=tuple(e.tracking_mm for e in entries if e.tracking_mm is not None),
                prediction=newest.prediction, index=newest.index, observed=newest.sent, **when)
        self._last = target
        self.tick = t + 1
        return target

    @property
    def asks(self) -> bool:
        """Whether the next `step` sends the policy a request: what a caller that batches several controllers'
        requests into one model call gathers before stepping them (`worldpolicy sim --num-envs`). `async`'s
        background requests are sent from `step`, not counted here."""
        return self._asks(self.tick)

    def close(self, wait: bool = True) -> None:
        """Drop a background request (its reply unused) and stop the controller's own thread, waiting for a request
        still running to finish; `wait=False` returns at once, leaving it to finish in its thread (a later `reset`
        or `close`, or the next request to the same policy, from any controller, waits for it): what leaving a `with`
        block on an exception does, so the handler that stops the arm runs now, not once the policy answers (up to a
        RemotePolicy's `timeout_s`, else its `read_timeout_s`)."""
        if not isinstance(wait, (bool, np.bool_)):
            raise ValueError(f"wait: expected True or False, got {reprlib.repr(wait)}")
        self._drop_pending(wait)
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=wait)
            self._executor = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)

    def _measured(self, q_arm) -> np.ndarray:
        """The measured joints as a float vector, refused on every tick when they are not one (not only on the ticks
        that decode, where `ActionDecoder.check_joints` also holds them to the limits)."""
        try:
            q = np.asarray(q_arm, dtype=np.float64)
        except (TypeError, ValueError):
            q = None
        dof = self._active.robot.dof if self._active is not None else None
        if q is None:
            got = ""
        elif q.ndim != 1 or (dof is not None and q.shape != (dof,)):
            got = f"shape {q.shape}: "
        elif not np.all(np.isfinite(q)):
            got = "NaN/inf at index " + ", ".join(map(str, np.flatnonzero(~np.isfinite(q)))) + ": "
        else:
            return q
        want = f"the {dof} measured arm joint angles" if dof is not None else "the measured arm joint angles"
        raise ValueError(f"q_arm: expected {want} (rad) as a finite vector, got {got}{q_arm!r}")

    def _asks(self, t: int) -> bool:
        """Whether tick `t` sends a request: `ensemble` every k ticks, the others once the chunk has run out with
        nothing in flight (`async` sends the next from `_take_chunk`); none whose reply would land at the horizon, nor
        during the back-off after a failed request (`on_policy_error="hold"`)."""
        if (self.horizon is not None and t + self.latency >= self.horizon) or self._backing_off(t):
            return False
        if self.strategy.kind == "ensemble":  # and the tick a failed request is asked again on
            return self.execute_steps is None or t % self.execute_steps == 0 or t == self._retry_at
        return not self._pending and t not in self._plan

    def _landed(self, request: _Request, t: int) -> bool:
        """Whether `request`'s reply is taken at tick `t`: from its landing tick on, and with `realtime` once the
        background request has returned (the deterministic hand-over waits for it)."""
        return t >= request.lands and (not self.realtime or not isinstance(request.reply, Future)
                                       or request.reply.done())

    def _backing_off(self, t: int) -> bool:
        """Whether tick `t` is within the back-off after a failed request (`on_policy_error="hold"`): none is sent."""
        return self._retry_at is not None and t < self._retry_at

    def _observed(self, observation: Observation, state: State) -> tuple[Mapping[str, Any], Any]:
        """What a request is asked with: the observation and the state row, each read now when it is a function; one
        without a prompt where the controller has none is refused here, the caller's error and never a failed request
        (`on_policy_error`)."""
        observed = observation() if callable(observation) else observation
        self._prompt(observed)
        return observed, (state() if callable(state) else state)

    def _prompt(self, observation: Mapping[str, Any]) -> str:
        """The prompt a request is asked with: the controller's, else the observation's "prompt"."""
        prompt = self.prompt
        if prompt is None:
            prompt = observation.get("prompt") if isinstance(observation, Mapping) else None
            if prompt is None:
                raise ValueError("prompt: none given to ChunkController and the observation has no 'prompt' key; "
                                 "pass ChunkController(..., prompt='put the cube in the bowl')")
        return prompt

    def _request(self, observation: Mapping[str, Any], action_prefix: np.ndarray | None = None, *, state: Any = None
                 ) -> tuple[Prediction, float]:
        prompt = self._prompt(observation)
        t0 = time.perf_counter()
        # each keyword only when given: a policy without rtc or a state is asked exactly as before they existed
        given = {k: v for k, v in (("action_prefix", action_prefix), ("state", state)) if v is not None}
        pred = self.policy.act(observation, prompt, **given)
        return pred, time.perf_counter() - t0

    def _policy_failed(self, t: int, error: Exception, *, asked: bool = False) -> None:
        """A request failed at tick `t` (`error`: its chunk's decoding, or `asked`: the policy's `act`). "raise": raise
        it. "hold": count it, for the step's target (`JointTarget.policy_error`), warn at the first of a streak, and
        send the next request 2^(n-1) ticks on (the n-th failure in a row; at most `RETRY_TICKS_MOST`); the
        `max_policy_errors`-th in a row raises, with a note naming the setting. An `act` that refused the request
        itself (`REQUEST_ERRORS`) or was cut by its client's `close()` raises at once: no failure to hold through."""
        if self.on_policy_error == "raise" or (asked and (isinstance(error, (*REQUEST_ERRORS, ClosedByCallerError)))):
            raise error
        self.policy_errors += 1
        self.policy_error_streak += 1
        streak = self.policy_error_streak
        if streak >= self.max_policy_errors:
            error.add_note(f"on_policy_error='hold': {streak} policy requests in a row failed, the last at tick {t} "
                           f"(this error), reaching max_policy_errors={self.max_policy_errors}; the step raised and "
                           "commanded nothing, the arm still holds the last target sent: stop it, or raise "
                           "max_policy_errors")
            raise error
        if streak == 1:
            logger.warning("tick %d: the policy request failed (%s: %s); holding the last target and asking again, "
                           "backing off up to %d ticks; raising at max_policy_errors=%d failures in a row (warned "
                           "once until a reply is taken)", t, type(error).__name__, error, RETRY_TICKS_MOST,
                           self.max_policy_errors)
        self._error = error
        self._retry_at = t + min(2 ** (streak - 1), RETRY_TICKS_MOST)
        self._reask = self.strategy.kind == "async"  # a background request again, where a chunk runs on (`step`)

    def _answered(self, t: int) -> None:
        """A reply was taken at tick `t`: a streak of failed requests, if any, ends (`_policy_failed`)."""
        if self.policy_error_streak:
            logger.info("tick %d: the policy answered again after %d failed requests in a row", t,
                        self.policy_error_streak)
        self.policy_error_streak, self._retry_at = 0, None

    def _decoder_for(self, pred: Prediction) -> ActionDecoder:
        if not isinstance(self._decoder, ActionDecoder):
            self._active = self._decoder(pred.embodiment)
            return self._active
        if pred.embodiment != self._decoder.embodiment.key:
            raise ValueError(f"decoder: decodes embodiment {self._decoder.embodiment.key!r}, but the policy returned "
                             f"a chunk of {pred.embodiment!r}; make it ActionDecoder(policy.embodiment, robot)")
        return self._decoder

    def _send(self, t: int, observation: Observation, state: State) -> None:
        """Ask the policy at tick `t`, now (in the sim, whatever the latency: a deterministic reply), its reply in
        flight until it lands (module docstring): a blocking request's actions start where it lands, an ensemble's
        from `t`."""
        observed, row = self._observed(observation, state)
        _wait_left_running(self.policy)  # none racing it (`_left_running`)
        try:
            pred, dt = self._request(observed, state=row)
        except Exception as error:  # noqa: BLE001 - any the policy's act raises (a server gone, silent, an error
            # frame, a local policy's fault): raised as it is, or held through (`_policy_failed`)
            self._policy_failed(t, error, asked=True)
            return
        if self.execute_steps is None:
            self.execute_steps = self._check_chunk(pred.chunk_size)
        kind, lands = self.strategy.kind, t + self.latency
        self._pending.append(_Request((pred, dt), t, t if kind == "ensemble" else lands, lands,
                                      observed if kind == "async" else None, row if kind == "async" else None))

    def _check_chunk(self, chunk: int) -> int:
        """k for `chunk`-step chunks (`ChunkStrategy.steps_for`), and the latency held to what such a chunk can run
        (`ChunkStrategy.max_latency`): refused when the arm would never move."""
        most = self.strategy.max_latency(chunk)
        if most is not None and self.latency > most:
            raise ValueError(f"latency: {reprlib.repr(self.latency)} ticks is at or past the policy's {chunk}-step "
                             f"chunk: with the {self.strategy.kind!r} strategy every reply lands past its whole chunk "
                             f"and is dropped, so the arm never moves; accepted: 0 to {most} ticks, or the 'execute' "
                             "or 'async' strategy, whose late request holds the arm until its chunk runs")
        return self.strategy.steps_for(chunk)

    def _take_chunk(self, t: int, request: _Request, observation: Observation, state: State, q_arm: np.ndarray
                    ) -> None:
        """Take `request`'s reply at tick `t` and plan its actions, skipping those whose ticks have passed; `async`
        then sends the request for the chunk after it, in the background."""
        kind = self.strategy.kind
        reply = request.reply
        try:
            pred, dt = reply.result() if isinstance(reply, Future) else reply
        except BaseException as error:  # only a background request's Future raises here
            if not reply.done():  # interrupted while waiting for it (Ctrl-C): the next request to the policy waits
                _leave_running(self.policy, reply)  # for it first
                raise
            # the background request raised: this step raises, running no tick, and the next asks again; or held
            self._reask = True
            if not isinstance(error, Exception):
                raise
            self._policy_failed(t, error, asked=True)
            return
        skip = t - request.start  # the actions whose ticks passed while the arm ran on
        self.policy_s += dt
        k = self.execute_steps
        handover = self._handover
        left = self.horizon - t if self.horizon is not None else pred.chunk_size
        # execute runs k actions of a chunk, async until the next one takes over (the next chunk replaces the rest);
        # ensemble blends all; realtime async runs on until a reply lands, so all that remain
        if kind == "ensemble" or self.realtime:
            steps = left
        else:
            steps = min(handover if kind == "async" else k, left)
        self.replies.append(Reply(request.sent, t, dt, skip, skip >= pred.chunk_size))
        if skip >= pred.chunk_size:  # the whole chunk is in the past: dropped (async asks again), hold meanwhile
            self._answered(t)
            if not self._dropped_warned:
                self._dropped_warned = True
                logger.warning("%s: a reply landed %d ticks after its observation, past its %d-action chunk; "
                               "dropped (a longer chunk, or a faster policy, keeps the arm moving%s; warned once per "
                               "episode)", kind, skip, pred.chunk_size, REALTIME_TOO_SLOW if self.realtime else "")
        else:
            decoder = self._decoder_for(pred)
            decoder.check_joints(q_arm)  # joints past the arm's limits (in degrees?): the caller's, raised at once
            try:
                cmd = decoder.decode(np.asarray(pred.actions, dtype=np.float64)[skip:skip + steps], q_arm)
            except Exception as error:  # noqa: BLE001 - a chunk the decoder refuses: raised, or held through as a
                # failed request (`_policy_failed`)
                self._policy_failed(t, error)
                return
            self._answered(t)
            self.chunks += 1
            if kind != "ensemble":
                self._plan = {}
            track = cmd.tracking.position_mm if cmd.tracking is not None else [None] * len(cmd)
            for i in range(len(cmd)):
                target = cmd.qpos[i] if cmd.gripper is None else np.append(cmd.qpos[i], cmd.gripper[i])
                self._plan.setdefault(t + i, []).append(
                    _Planned(self.chunks, request.sent, target, int(cmd.clipped_steps[i]), track[i], pred, i + skip))
        if kind == "async":
            if request.observation is not None:  # the first request's follow-up: asked with its observation
                observation, state = request.observation, request.state
            self._ask_next(t, pred.chunk_size, observation, state)

    def _ask_next(self, t: int, chunk: int, observation: Observation, state: State) -> None:
        """`async`: send the request for the chunk after the running one (`chunk` actions long) at tick `t`, in the
        background, its reply taking over max(k, latency) ticks on (realtime: at least). None whose reply could not
        run: landing at the horizon, or max(k, latency) >= T ticks on, past its whole chunk (every such reply would be
        dropped, and the arm hold for good); once the running chunk runs out, the next request blocks instead, as the
        first does."""
        handover = self._handover
        if handover >= chunk or (self.horizon is not None and t + handover >= self.horizon):
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="chunk-request")
        observed, row = self._observed(observation, state)
        prefix = self._prefix(t, handover) if self.rtc else None
        _wait_left_running(self.policy)  # none racing it (`_left_running`)
        sent = self._executor.submit(self._request, observed, prefix, state=row)  # None: no `state=` (_request)
        self._pending.append(_Request(sent, t, t, t + handover, None, None))

    @property
    def _handover(self) -> int:
        """`async`: the ticks from a chunk's start to the next one's reply taking over, max(k, latency)."""
        return max(self.execute_steps, self.latency)

    def _prefix(self, t: int, handover: int) -> np.ndarray | None:
        """rtc: the running chunk's rows planned for ticks t, t + 1, ... until the next chunk can take over
        (`handover` ticks, < T) or the running chunk ends (module docstring); None when none is planned (a reply
        dropped with nothing left to run)."""
        rows = []
        for tick in range(t, t + handover):
            entries = self._plan.get(tick)
            if not entries:
                break
            (entry,) = entries  # async plans one chunk's action per tick
            rows.append(np.asarray(entry.prediction.actions[entry.index]))
        return np.stack(rows) if rows else None

    def _blend(self, entries: list[_Planned], q_arm: np.ndarray) -> np.ndarray:
        if len(entries) == 1:
            return entries[0].target
        entries = sorted(entries, key=lambda e: e.chunk)  # oldest first
        weights = np.exp(-self.strategy.ensemble_decay * np.arange(len(entries)))
        stacked = np.stack([e.target for e in entries])
        blended = (weights[:, None] * stacked).sum(axis=0) / weights.sum()
        if self._active.check_velocity:
            # each chunk's targets were checked from the joints measured when it was decoded; the blend is checked
            # from now, as a chunk's first target is
            self._active.check_joint_steps(blended[None, :self._active.robot.dof], q_arm)
        return blended

    def _hold(self, t: int, q_arm: np.ndarray, when: dict[str, Any]) -> JointTarget:
        """The target of a tick with no action planned (`JointTarget.held`), made `when` (tick, episode, stamp)."""
        last = self._last
        if last is None:  # no reply has landed yet this episode (a latency, a failed request): where the arm is
            return JointTarget(q_arm.copy(), None, 0, (), None, None, held=True, observed=None, **when)
        # realtime only (a latency's holds are the timing asked for), and not while requests fail (warned of already)
        if self.realtime and not self._held_warned and not self.policy_error_streak:
            logger.warning("async: tick %d, the chunk ran out before the next reply landed; holding the last target "
                           "(a longer chunk, a smaller k or a faster policy keeps the arm moving%s)", t,
                           REALTIME_TOO_SLOW)
            self._held_warned = True
        return replace(last, clipped=0, tracking_mm=(), held=True, **when)

    def _drop_pending(self, wait: bool = True) -> None:
        """Drop the requests in flight: cancelled where not started, else (`wait`) waited for, with any left running
        by an earlier `close(wait=False)` (`_left_running`), so the policy is free for the next episode."""
        pending = getattr(self, "_pending", None)  # none before the first reset
        while pending:
            reply = pending.popleft().reply
            if isinstance(reply, Future) and not reply.cancel():  # already running
                _leave_running(self.policy, reply)
        if wait:
            _wait_left_running(self.policy)
