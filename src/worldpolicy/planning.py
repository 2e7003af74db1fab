"""Best-of-N planning with the model's own forward dynamics (cosmos-policy.md §8, depth 1).

Per call: sample N action chunks from the policy (seeds s..s+N-1, one batched pass), imagine each chunk's future with
forward dynamics (one batched pass, video decoded), score the imagined last frame with a task-progress scorer, and
return the best chunk. The scorer is any `(video [T,H,W,3] uint8, prompt) -> float` (higher is better).
When every score ties (the scorer found nothing to tell the imagined futures apart) the first candidate, which is
exactly the plain policy's sample, is returned and `settings["tied"]` says so: planning then bought nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .policy import Policy, PolicyRequest
from .results import Prediction

Scorer = Callable[[np.ndarray, str], float]


class BestOfNPlanner:
    """Wraps a `Policy`; `act` has the policy's signature and returns the chosen chunk with the scores in `settings`."""

    def __init__(self, policy: Policy, scorer: Scorer, num_candidates: int = 4):
        if not isinstance(num_candidates, int) or isinstance(num_candidates, bool) or num_candidates < 1:
            raise ValueError(f"num_candidates={num_candidates!r} must be an integer >= 1")
        self.policy = policy
        self.embodiment = policy.embodiment
        self.scorer = scorer
        self.num_candidates = num_candidates

    def act(self, observation: Any, prompt: str, *, seed: int | None = None, **kwargs: Any) -> Prediction:
        started = time.perf_counter()
        base = self.policy._seed(seed)
        n = self.num_candidates
        proposals = self.policy.act_batch(
            [PolicyRequest(observation, prompt, seed=base + i, **kwargs) for i in range(n)]
        )
        futures = self.policy.act_batch([
            PolicyRequest(observation, prompt, mode="forward_dynamics", actions=p.actions_normalized,
                          actions_space="normalized", seed=base + n + i, decode_video=True)
            for i, p in enumerate(proposals)
        ])
        scores = [float(self.scorer(f.video, prompt)) for f in futures]
        best = int(np.argmax(scores))
        chosen = proposals[best]
        chosen.video = futures[best].video
        chosen.settings = {**chosen.settings, "planner": "best_of_n", "candidates": n, "scores": scores,
                           "chosen": best, "tied": len(set(scores)) == 1}
        chosen.timings = {**chosen.timings, "planning_total": time.perf_counter() - started}
        return chosen
