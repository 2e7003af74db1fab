"""Batched evaluation (`worldpolicy sim --num-envs N`, `evaluate(num_envs=N)`): N episodes in flight, one per env,
stepped in lockstep, the requests their controllers send on the same control step answered by one `Policy.act_batch`
(one batched forward per sampling step), so on a GPU N episodes take little more than the time of one. As soon as an
episode ends its env starts the next seed (refill, as a gymnasium vector env's autoreset), so N episodes stay in
flight until the seeds run out: a long episode holds up no other env. With a ws:// server that call is
`RemotePolicy.act_batch`: the step's requests sent at once, one per connection (up to the server's `max_batch`),
which the server fuses into one forward pass as it fuses concurrent clients'; the connections stay open from step to
step (`keep_connections`), those no request needs closed so the server never waits on an idle one, and all of them
closed when the run ends or is cut short (`Lockstep.close`, `RemotePolicy.close`).

Each env runs its own `ChunkController`, and each episode asks with its own seed sequence (`_Seeded.request`:
`call_seed` of the episode's seed and the call's count, as one episode run alone asks), so a batched run samples the
same chunks as episodes run one after another, up to the float rounding of a batched forward (which can tip a
borderline episode, as another GPU's rounding can).

What it batches (`check_num_envs`, before anything loads): a local checkpoint's or a ws:// server's requests under
any strategy, with any latency (a request is answered on the step that sends it and lands later, as in a sequential
run). `async`'s (and `rtc`'s) background request is sent from a controller's step and taken exactly max(k, latency)
>= 1 steps later (the sim's hand-over is counted in control steps, never in wall time: `robot.control`), so each
controller's executor here holds it (`_Held`) and the next step's batched call answers it with the requests asked
then. Refused: the scripted expert and random actions, which make no model call to batch; another backend (a
planner, one of your own), which has no `act_batch` to gather into.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np

from worldpolicy.errors import is_integer
from worldpolicy.results import Prediction
from worldpolicy.sim.policies import _Seeded
from worldpolicy.sim.rollout import Episode, EpisodeResult, EpisodeWatch, Rollout
from worldpolicy.sim.tasks import BUILTIN_POLICIES

__all__ = ["Lockstep", "check_num_envs"]


def check_num_envs(num_envs: Any, *, policy: str) -> int:
    """`num_envs` as an int, refused naming it (the CLI says --num-envs) with what is accepted when it is no int >= 1
    or, above 1, cannot batch: `policy` is the policy's kind (`policies.policy_kind`'s `scripted`, `random`, `server`,
    `checkpoint`; a backend's own class name otherwise). Cheap: made before a model loads."""
    if not is_integer(num_envs) or num_envs < 1:
        raise ValueError(f"num_envs: expected an int >= 1 (episodes stepped together, their model requests batched), "
                         f"got {num_envs!r}")
    n = int(num_envs)
    if n == 1:
        return n
    if policy in BUILTIN_POLICIES:
        raise ValueError(f"num_envs: {n} batches a model's forward passes; policy={policy} makes none (its actions "
                         f"cost no model call), so its episodes run one at a time; accepted with policy={policy}: 1")
    if policy not in ("checkpoint", "server"):
        raise ValueError(f"num_envs: {n} batches a local checkpoint's or a ws:// server's requests (act_batch); "
                         f"policy {policy} is neither; accepted with it: 1")
    return n


class _Held(Executor):
    """An env's `ChunkController` executor (`async`'s background requests): each request is held, its future pending,
    until the lockstep answers it in the next step's batched call (`Lockstep._answer`). A controller takes the reply
    max(k, latency) >= 1 steps after sending it, so it is there by then; one dropped meanwhile (its episode ended) is
    cancelled and never asked."""

    def __init__(self) -> None:
        self.held: list[tuple[Future, Callable, Any, Any]] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Hold `ChunkController`'s `submit(request, observation, action_prefix, state=None)`: a rollout steps its
        controller with no `state=`, so the batched call asks without one."""
        observation, action_prefix = args
        future: Future = Future()
        self.held.append((future, fn, observation, action_prefix))
        return future

    def take(self) -> list[tuple[Future, Callable, Any, Any]]:
        """The requests held and not cancelled, oldest first; none held after. Their futures stay pending until
        answered, so a run cut short before (a failure, Ctrl-C) cancels them as it closes their episodes."""
        held, self.held = self.held, []
        return [h for h in held if not h[0].cancelled()]


class _Member(_Seeded):
    """One env's share of a batched backend: its own episode's seed sequence (`request`), and `act` answering the
    controller with the chunk the step's batch computed for the request made from the same observation (and, `rtc`,
    the same action prefix)."""

    def __init__(self, shared: _Seeded) -> None:
        super().__init__(shared.policy, shared.embodiment, shared.seed, shared.decode_video)
        self.executor = _Held()  # where its controllers' background requests wait for the next batch
        self.asked: tuple[Any, Any] | None = None  # the observation and prefix of the request the batch is answering
        self.answer: Prediction | None = None

    def act(self, observation: dict[str, Any], prompt: str, *, action_prefix: np.ndarray | None = None) -> Prediction:
        asked = self.asked or (None, None)
        if observation is not asked[0] or action_prefix is not asked[1] or self.answer is None:
            raise RuntimeError("sim.batch: a controller asked for a chunk the step's batch did not compute")
        answer, self.asked, self.answer = self.answer, None, None
        return answer


class Lockstep:
    """`rollout`'s policy (a local checkpoint's or a ws:// server's backend, `policies.wrap_policy`'s) and settings
    on `num_envs` envs: `rollout.env` and envs made like it (`TabletopEnv.replica`), each episode its own `Rollout`
    (`Rollout.on`) and `ChunkController`, their requests batched per control step (module docstring). `close` closes
    the envs it made and the server connections it kept open."""

    def __init__(self, rollout: Rollout, num_envs: int) -> None:
        # a checkpoint's or a server's (`check_num_envs`): a Policy or a RemotePolicy
        self.rollout, self.policy = rollout, rollout.policy.policy
        remote = getattr(sys.modules.get("worldpolicy.serving.client"), "RemotePolicy", None)  # imported if in use
        self._served = remote is not None and isinstance(self.policy, remote)
        # the limit the rollout runs to (`step_limit` of the env as given, a gymnasium.make one's TimeLimit), known
        self._made = [rollout.env.replica(rollout.max_steps) for _ in range(num_envs - 1)]
        self.members = [_Member(rollout.policy) for _ in range(num_envs)]
        self.rollouts = [rollout.on(env, member, executor=member.executor)
                         for env, member in zip([rollout.env, *self._made], self.members)]

    def run(self, seeds: Sequence[int], records: Sequence[bool], on_step: Callable[[int], None] | None = None, *,
            watch: EpisodeWatch | None = None) -> Iterator[tuple[int, EpisodeResult]]:
        """Episodes seeded `seeds` (`records[j]`: keep episode j's frames), `num_envs` in flight: each env starts the
        next seed as soon as its episode ends, so envs idle only once the seeds have run out. Each episode is yielded
        as (j, its result) once it ends, so in the order they end; `on_step(most steps an episode in flight has run)`
        after each control step; `watch` sees each episode's steps (`Rollout.run`'s). Each result's `policy_s` is its
        requests' shares of the batched calls they were in (a call's seconds over its requests), so the results' sum
        is the model time the run took."""
        queue = iter(enumerate(zip(seeds, records)))
        slots: list[tuple[int, Episode] | None] = [None] * len(self.rollouts)  # env s: (j, its episode) or idle
        shares = [0.0] * len(slots)
        try:
            while True:
                for s, rollout in enumerate(self.rollouts):
                    if slots[s] is None and (ahead := next(queue, None)) is not None:
                        j, (seed, record) = ahead
                        slots[s], shares[s] = (j, rollout.start(seed, record=record, watch=watch)), 0.0
                running = [s for s, slot in enumerate(slots) if slot is not None]
                if not running:
                    return
                observed = self._answer({s: slots[s][1] for s in running}, shares)
                steps = 0
                for s in running:
                    j, episode = slots[s]
                    episode.step(observed.get(s))
                    steps = max(steps, episode.t)
                    if episode.ended:
                        slots[s] = None
                        self.rollout.execute_steps = episode.rollout.execute_steps  # the k used, as `Rollout.run`
                        yield j, episode.result(policy_s=shares[s])
                if on_step is not None:
                    on_step(steps)
        finally:
            for slot in slots:
                if slot is not None:
                    slot[1].close()

    def _answer(self, episodes: dict[int, Episode], shares: list[float]) -> dict[int, dict]:
        """One batched call for this step's requests: the background ones held since the last step (`_Held`), their
        futures resolved now, and those of the envs whose controller asks on this step, answered for their `step`;
        each request's share of the call's seconds added to its env's `shares`. Returns the observations the asking
        envs asked with (env → observation), to step them with. A failure (or Ctrl-C) leaves the held futures
        pending, so closing their episodes cancels them and waits on none."""
        # (env, the held future or None, the controller's call it answers, observation, action prefix)
        asked = [(s, *h) for s in episodes for h in self.members[s].executor.take()]
        observed = {s: e.observe() for s, e in episodes.items() if e.asks}
        asked += [(s, None, None, observed[s], None) for s in observed]
        if not asked:
            return observed
        requests = [self.members[s].request(observation, observation["prompt"], action_prefix=prefix)
                    for s, _, _, observation, prefix in asked]
        t0 = time.perf_counter()
        answers = (self.policy.act_batch(requests, keep_connections=True) if self._served else
                   self.policy.act_batch(requests))
        share = (time.perf_counter() - t0) / len(asked)
        for (s, future, call, observation, prefix), answer in zip(asked, answers):
            member = self.members[s]
            shares[s] += share
            member.asked, member.answer = (observation, prefix), answer
            if future is not None:  # a background request: the controller's own call, answered by `act`
                future.set_result(call(observation, prefix))
        return observed

    def close(self) -> None:
        """Close the envs made for the run (`rollout.env` is its caller's) and a server's connections kept open for it
        (the policy's own stays: its caller's)."""
        try:
            if self._served:
                self.policy.release_connections()
        finally:
            for env in self._made:
                env.close()
