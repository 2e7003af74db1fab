"""Best-of-N planning with the model's own forward dynamics (cosmos-policy.md §8, depth 1).

Per call: sample N action chunks from the policy (seeds s..s+N-1, one batched pass), imagine each chunk's future with
forward dynamics (seeds s+N..s+2N-1, one batched pass, video decoded), score the imagined last frame with a
task-progress scorer, and return the best chunk. The scorer is any `(video [T,H,W,3] uint8, prompt) -> float` (higher
is better), with, optionally, a `check_prompt(prompt)` that refuses a prompt it cannot score before any sampling
(`check_prompt`).
When every score ties (the scorer found nothing to tell the imagined futures apart) the first candidate, which is
exactly the plain policy's sample, is returned and `settings["tied"]` says so: planning then bought nothing.
`BestOfNPlanner.plan` returns every candidate (`Plan`: the chunks, their imagined futures, their scores) to look at.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import is_integer
from .policy import Policy, PolicyRequest, _request
from .results import Prediction

Scorer = Callable[[np.ndarray, str], float]

# The candidates `worldpolicy sim --plan` and the agents' `plan` take: one is the plain policy's own sample at twice its
# cost (a rollout scored that nothing is compared with), and all are sampled in one batched pass, then rolled out in
# another, so each pass holds that many requests' memory at once
PLAN_CANDIDATES = (2, 16)


def check_candidates(value: Any, parameter: str) -> int:
    """`value` as the candidates of a planned run (`PLAN_CANDIDATES`), refused naming `parameter` before anything
    loads; the Python API (`BestOfNPlanner`) takes any whole number >= 1."""
    low, high = PLAN_CANDIDATES
    if not is_integer(value) or not low <= value <= high:
        raise ValueError(f"{parameter}: expected a whole number of candidates from {low} to {high} (best of N), got "
                         f"{value!r}" + ("; 1 runs the plain policy's own sample at twice its cost: leave planning out"
                                         if value == 1 and not isinstance(value, bool) else ""))
    return int(value)


# what planning adds to a sim run's `policy_settings` (`planner_settings`); a run of a policy that does not plan has
# none of them, which `sim compare` shows as none, not as unrecorded
PLANNER_SETTINGS = ("planner", "candidates", "scorer")
# the planner's name in them and in each chosen chunk's `settings` ("planner"), by which a sim run tells a planned
# chunk (its caption, its episode's decisions)
PLANNER = "best_of_n"


def planner_settings(scorer: Scorer, num_candidates: int) -> dict[str, Any]:
    """`BestOfNPlanner.settings` of a planner of `num_candidates` scoring by `scorer`, known before any policy loads
    (`worldpolicy sim --resume` compares them before the weights load): `PLANNER_SETTINGS`."""
    name = (f"{scorer.__module__}.{scorer.__qualname__}" if inspect.isfunction(scorer) or inspect.ismethod(scorer)
            else repr(scorer))
    return dict(zip(PLANNER_SETTINGS, (PLANNER, int(num_candidates), name), strict=True))


def check_scorer(scorer: Any) -> None:
    """Up front: a scorer that cannot take (video, prompt) would otherwise fail only after both sampling passes."""
    accepted = ("expected a callable scorer(video [T,H,W,3] uint8, prompt) -> float, e.g. "
                "worldpolicy.sim.progress.reach_scorer(policy.embodiment.camera_keys)")
    if not callable(scorer):
        raise TypeError(f"scorer: {accepted}; got {scorer!r}")
    try:
        signature = inspect.signature(scorer)
    except (TypeError, ValueError):  # some builtins have none: they are called as given
        return
    try:
        signature.bind(None, None)
    except TypeError as exc:
        raise TypeError(f"scorer={scorer!r} cannot be called as scorer(video, prompt) ({exc}); {accepted}") from None


def check_prompt(scorer: Scorer, prompt: Any) -> None:
    """A scorer's own check of the prompt (its `check_prompt`, where it has one: `sim.progress.ReachScorer`'s, that the
    prompt names the ball's colour), before any model work: scoring the first imagined future would find it last."""
    check = getattr(scorer, "check_prompt", None)
    if callable(check) and isinstance(prompt, str):
        check(prompt)


def score(scorer: Scorer, video: np.ndarray, prompt: str, what: str) -> float:
    """`scorer`'s one finite number for `video` (`what` it scores, for the error): a string ("0.5") or an array would
    otherwise be read as one or fail unnamed, and NaN or inf would rank or sum as no score can. A scorer that raises
    keeps its own error, with a note naming the scorer and `what` it was scoring."""
    try:
        value = scorer(video, prompt)
    except Exception as exc:  # its error alone (KeyError: 'views') did not say it came from the scorer, after sampling
        exc.add_note(f"raised by scorer {scorer!r} scoring {what} (video {list(np.shape(video))}, prompt {prompt!r})")
        raise
    if not isinstance(value, (str, bytes)) and np.ndim(value) == 0:
        try:
            number = float(value)
        except (TypeError, ValueError):  # None, or an object that is no number
            pass
        else:
            if not np.isfinite(number):
                raise ValueError(f"scorer {scorer!r} returned {number} for {what}; scores must be finite")
            return number
    raise TypeError(f"scorer {scorer!r} returned {value!r} for {what}; expected one number (higher is better)")


@dataclass
class Plan:
    """One best-of-N decision, every candidate kept (`BestOfNPlanner.plan`): candidate i is `proposals[i]`, a sampled
    chunk (no video; its sampling seed in `settings["seed"]`), and `futures[i]`, that chunk rolled forward by the
    model's forward dynamics (its video the imagined future that was scored, its seed in `settings["seed"]`), scored
    `scores[i]`; `chosen` is the best (the first of equals). `futures[i].save(folder)` writes one imagined future's
    rollout.mp4 and page, as `predict` does."""

    proposals: list[Prediction]
    futures: list[Prediction]
    scores: list[float]
    chosen: int

    @property
    def tied(self) -> bool:
        """Every candidate scored the same: the scorer told the futures nothing apart, and the first, exactly the plain
        policy's sample, is chosen."""
        return len(set(self.scores)) == 1

    def __repr__(self) -> str:
        scores = ", ".join(f"{s:.4g}" for s in self.scores)
        return f"Plan(candidates={len(self.scores)}, scores=[{scores}], chosen={self.chosen}, tied={self.tied})"


class BestOfNPlanner:
    """Wraps a `Policy`; `act` has the policy's signature and returns the chosen chunk with the scores in `settings`;
    `plan` returns every candidate (`Plan`). Each call costs N policy samples (one batched pass, no video decoded) and
    N forward-dynamics rollouts (a second batched pass, each video decoded), then N scorer calls. `on_plan`, where
    given, is called with each `act` decision's `Plan` (every candidate, its imagined future and its score; its
    `proposals[chosen]` is the chunk `act` returns) before `act` returns: `worldpolicy sim --plan-save-candidates`
    writes every candidate's future with it, which `act` alone keeps only the chosen one of."""

    def __init__(self, policy: Policy, scorer: Scorer, num_candidates: int = 4,
                 on_plan: Callable[[Plan], None] | None = None):
        if not callable(getattr(policy, "act_batch", None)) or not callable(getattr(policy, "_seed", None)):
            raise TypeError(f"policy: expected a local worldpolicy Policy (planning draws from its seed sequence), got "
                            f"{type(policy).__name__}")
        check_scorer(scorer)
        if not is_integer(num_candidates) or num_candidates < 1:
            raise ValueError(f"num_candidates={num_candidates!r} must be an integer >= 1")
        if on_plan is not None and not callable(on_plan):
            raise TypeError(f"on_plan: expected a callable taking each decision's Plan, or None; got {on_plan!r}")
        self.policy = policy
        self.on_plan = on_plan
        self.embodiment = policy.embodiment
        self.scorer = scorer
        self.num_candidates = int(num_candidates)

    @property
    def settings(self) -> dict[str, Any]:
        """What planning adds to how the policy samples, in each chosen chunk's `settings` and a sim report's
        `policy_settings` (`sim compare` says where two runs differ in it): the scorer as a function's qualified name,
        another callable's repr (`ReachScorer(views=(...))`): `planner_settings`."""
        return planner_settings(self.scorer, self.num_candidates)

    def close(self) -> None:
        """Close the policy it samples from (`Policy.close`): a sim run that planned owns it, as it owns a plain one."""
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()

    def act(self, observation: Any, prompt: str, *, seed: int | None = None, **kwargs: Any) -> Prediction:
        """`kwargs` (state, steps, guidance, negative_prompt...) go to the proposals and to their rollouts alike.
        `decode_video` is the planner's own: the rollouts always decode (their frames are what is scored) and the
        proposals never do, so the result's `video` is the chosen chunk's forward-dynamics rollout (its seed in
        `settings["rollout_seed"]`, so `policy.imagine(observation, result, prompt, seed=...)` reproduces it), not a
        policy sample's own imagined future; `decode_video=False` leaves it out of the result, as it does for
        `Policy.act` (True or None keep it: it was decoded anyway)."""
        started = time.perf_counter()
        plan = self._plan("BestOfNPlanner.act", observation, prompt, seed, kwargs)
        if self.on_plan is not None:
            self.on_plan(plan)
        best = plan.chosen
        chosen = plan.proposals[best]
        chosen.video = None if kwargs.get("decode_video") is False else plan.futures[best].video
        chosen.settings = {**chosen.settings, **self.settings, "scores": plan.scores, "chosen": best,
                           "tied": plan.tied, "rollout_seed": plan.futures[best].settings["seed"]}
        chosen.timings = {**chosen.timings, "planning_total": time.perf_counter() - started}
        return chosen

    def plan(self, observation: Any, prompt: str, *, seed: int | None = None, **kwargs: Any) -> Plan:
        """`act`'s decision with every candidate kept: each sampled chunk, its imagined future (video decoded) and its
        score, to look at what the planner chose among and why. Takes what `act` takes (`decode_video` is ignored:
        proposals never decode, rollouts always do); seeds as `act`'s (proposal i: seed + i, its rollout: seed + N +
        i)."""
        return self._plan("BestOfNPlanner.plan", observation, prompt, seed, kwargs)

    def _plan(self, name: str, observation: Any, prompt: str, seed: int | None, kwargs: dict[str, Any]) -> Plan:
        """`plan` for `act` or `plan` (its `name`, which a refused option's error says)."""
        # what the planner sets itself (mode, the rollouts' actions) or no request takes is named with what is accepted
        _request(name, observation, prompt, {"mode": "policy", "actions": None, "actions_space": None},
                 kwargs)
        check_prompt(self.scorer, prompt)
        n = self.num_candidates
        next_seed = self.policy._next_seed
        seeds = self._seeds(seed, 2 * n)
        try:
            proposals = self.policy.act_batch(  # their futures come from the rollouts: no video decoded here
                [PolicyRequest(observation, prompt, seed=seeds[i], **{**kwargs, "decode_video": False}) for i in range(n)]
            )
            rollout_kwargs = {**kwargs, "decode_video": True}
            futures = self.policy.act_batch([
                PolicyRequest(observation, prompt, mode="forward_dynamics", actions=p.actions_normalized,
                              actions_space="normalized", seed=seeds[n + i], **rollout_kwargs)
                for i, p in enumerate(proposals)
            ])
        except Exception:
            # a refused call draws no seeds, as `Policy.act_batch`: the seeds were drawn for both stages up front, so
            # a failed rollout stage gives them back too (the retried call samples what the failed one would have)
            self.policy._next_seed = next_seed
            raise
        scores = [score(self.scorer, f.video, prompt, f"candidate {i}") for i, f in enumerate(futures)]
        return Plan(proposals, futures, scores, int(np.argmax(scores)))

    def _seeds(self, seed: int | None, count: int) -> list[int]:
        """`seed`..`seed+count-1`, or `count` draws from the policy's own sequence (so calls never share seeds)."""
        if seed is None:
            return [self.policy._seed(None) for _ in range(count)]
        base = self.policy._seed(seed)
        if base + count > 2**63:
            raise ValueError(f"seed={seed!r}: planning uses seeds seed..seed+{count - 1} (2 x num_candidates), which "
                             "must stay below 2**63")
        return [base + i for i in range(count)]
