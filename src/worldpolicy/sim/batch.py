"""Batched evaluation (`worldpolicy sim --num-envs N`, `evaluate(num_envs=N)`): N episodes, one per env, stepped in
lockstep, the requests their controllers send on the same control step answered by one `Policy.act_batch` (one
batched forward per sampling step), so on a GPU N episodes take little more than the time of one. With a ws:// server
that call is `RemotePolicy.act_batch`: the step's requests sent at once, one per connection (up to the server's
`max_batch`), which the server fuses into one forward pass as it fuses concurrent clients'; the connections stay open
from step to step (`keep_connections`), those no request needs closed so the server never waits on an idle one, and
all of them closed when the run ends or is cut short (`Lockstep.close`, `RemotePolicy.close`).

Each env runs its own `ChunkController`, and each episode asks with its own seed sequence (`_Seeded.request`:
`call_seed` of the episode's seed and the call's count, as one episode run alone asks), so a batched run samples the
same chunks as episodes run one after another, up to the float rounding of a batched forward (which can tip a
borderline episode, as another GPU's rounding can). Episodes run N at a time, seeds in order (the last group may be
smaller), a group ending when its last episode does.

What it batches (`check_num_envs`, before anything loads): a local checkpoint's or a ws:// server's requests under
`execute` and `ensemble`, with any latency (a request is answered on the step that sends it and lands later, as in a
sequential run). Refused: `async` (and so `rtc`), whose next chunk is asked in the background while one runs; the
scripted expert and random actions, which make no model call to batch; another backend (a planner, one of your own),
which has no `act_batch` to gather into.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from worldpolicy.results import Prediction
from worldpolicy.sim.policies import _Seeded
from worldpolicy.sim.rollout import EpisodeResult, Rollout

__all__ = ["Lockstep", "check_num_envs"]


def check_num_envs(num_envs: Any, *, policy: str, strategy: str) -> int:
    """`num_envs` as an int, refused naming it (the CLI says --num-envs) with what is accepted when it is no int >= 1
    or, above 1, cannot batch: `policy` is the policy's kind (`policies.policy_kind`'s `scripted`, `random`, `server`,
    `checkpoint`; a backend's own class name otherwise), `strategy` the chunk strategy's kind. Cheap: made before a
    model loads."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs: expected an int >= 1 (episodes stepped together, their model requests batched), "
                         f"got {num_envs!r}")
    n = int(num_envs)
    if n == 1:
        return n
    if policy in ("scripted", "random"):
        raise ValueError(f"num_envs: {n} batches a model's forward passes; policy={policy} makes none (its actions "
                         f"cost no model call), so its episodes run one at a time; accepted with policy={policy}: 1")
    if policy not in ("checkpoint", "server"):
        raise ValueError(f"num_envs: {n} batches a local checkpoint's or a ws:// server's requests (act_batch); "
                         f"policy {policy} is neither; accepted with it: 1")
    if strategy == "async":
        raise ValueError(f"num_envs: {n} with strategy=async is not supported: its next chunk is asked in the "
                         "background while one runs, which lockstep batching does not gather; accepted with "
                         "strategy=async: 1, or strategy=execute or strategy=ensemble")
    return n


class _Member(_Seeded):
    """One env's share of a batched backend: its own episode's seed sequence (`request`), and `act` answering the
    controller with the chunk the tick's batch computed for the request made from the same observation."""

    def __init__(self, shared: _Seeded) -> None:
        super().__init__(shared.policy, shared.embodiment, shared.seed, shared.decode_video)
        self.asked: dict | None = None  # the observation of the request the batch is answering
        self.answer: Prediction | None = None

    def act(self, observation: dict[str, Any], prompt: str, *, action_prefix: np.ndarray | None = None) -> Prediction:
        if observation is not self.asked or self.answer is None or action_prefix is not None:
            raise RuntimeError("sim.batch: a controller asked for a chunk the tick's batch did not compute")
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
        self.rollouts = [rollout.on(env, member) for env, member in zip([rollout.env, *self._made], self.members)]

    def run(self, seeds: Sequence[int], records: Sequence[bool],
            on_step: Callable[[int], None] | None = None) -> Iterator[tuple[int, EpisodeResult]]:
        """Episodes seeded `seeds` (at most `num_envs`; `records[j]`: keep episode j's frames) in lockstep, each
        yielded as (j, its result) once it ends, so in the order they end; `on_step(steps run so far)` after each
        control step of the group. Each result's `policy_s` is its requests' shares of the batched calls they were
        in (a call's seconds over its requests), so a group's sum is the model time it took."""
        episodes = [r.start(seed, record=record) for r, seed, record in zip(self.rollouts, seeds, records)]
        shares = [0.0] * len(episodes)
        try:
            while not all(e.ended for e in episodes):
                asking = [j for j, e in enumerate(episodes) if e.asks]
                observed = {j: episodes[j].observe() for j in asking}
                if asking:
                    requests = [self.members[j].request(observed[j], observed[j]["prompt"]) for j in asking]
                    t0 = time.perf_counter()
                    answers = (self.policy.act_batch(requests, keep_connections=True) if self._served else
                               self.policy.act_batch(requests))
                    share = (time.perf_counter() - t0) / len(asking)
                    for j, answer in zip(asking, answers):
                        self.members[j].asked, self.members[j].answer = observed[j], answer
                        shares[j] += share
                steps = 0
                for j, episode in enumerate(episodes):
                    if episode.ended:
                        continue
                    episode.step(observed.get(j))
                    steps = max(steps, episode.t)
                    if episode.ended:
                        self.rollout.execute_steps = episode.rollout.execute_steps  # the k used, as `Rollout.run`
                        yield j, episode.result(policy_s=shares[j])
                if on_step is not None:
                    on_step(steps)
        finally:
            for episode in episodes:
                episode.close()

    def close(self) -> None:
        """Close the envs made for the run (`rollout.env` is its caller's) and a server's connections kept open for it
        (the policy's own stays: its caller's)."""
        try:
            if self._served:
                self.policy.release_connections()
        finally:
            for env in self._made:
                env.close()
