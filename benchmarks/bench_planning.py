"""Best-of-N planning vs plain policy execution on the shipped model's task, same seeded episodes.

Plain: one sampled chunk per call. Planned: N chunks sampled, each rolled forward by the model's forward dynamics,
the imagined last frame scored by `sim.progress.reach_scorer` (per view: exterior or wrist), the best executed.
Reports success rate, mean steps to success and policy seconds per chunk for both, and how often the planner's
scores tied. The model is warmed up by one plain request before either arm (the first forward's one-off costs untimed).

    python benchmarks/bench_planning.py [--checkpoint DIR] [--episodes 50] [--candidates 4] [--seed 200000]
                                        [--execute-steps K]

Both arms run K actions of each chunk before asking again (default: the model's `execute_steps`). The planner
imagines whole chunks, so K = the chunk size plans exactly what gets executed, at a quarter of the calls of K = 1.
"""

from __future__ import annotations

import json
import time

from _args import at_least, parser_for

from worldpolicy.sim.tasks import list_tasks


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--checkpoint", help="trained checkpoint folder (default: the shipped model)")
    parser.add_argument("--episodes", type=at_least(1), default=50, help="seeded episodes per arm (default 50)")
    parser.add_argument("--candidates", type=at_least(1), default=4, help="chunks the planner samples (default 4)")
    parser.add_argument("--seed", type=at_least(0), default=200_000, help="first episode's seed (default 200000)")
    parser.add_argument("--task", default="reach", choices=list_tasks(),
                        help="simulator task (default reach; the planner scores with reach_scorer, written for reach)")
    parser.add_argument("--execute-steps", type=at_least(1),
                        help="actions per chunk before asking again (default: the model's)")
    args = parser.parse_args()

    from worldpolicy import load_policy
    from worldpolicy.models import shipped_model
    from worldpolicy.planning import BestOfNPlanner
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate
    from worldpolicy.sim.policies import wrap_policy
    from worldpolicy.sim.progress import reach_scorer
    from worldpolicy.sim.rollout import ChunkStrategy

    try:
        policy = load_policy(args.checkpoint or shipped_model())
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--checkpoint {args.checkpoint}: {exc}")

    class TieCountingPlanner(BestOfNPlanner):
        """Counts the decisions where every imagined future scored the same."""

        decisions = tied = 0

        def act(self, observation, prompt, **kwargs):
            pred = super().act(observation, prompt, **kwargs)
            self.decisions += 1
            self.tied += bool(pred.settings["tied"])
            return pred

    env = TabletopEnv(args.task)
    try:
        env.reset(seed=0)
        observation = env.observe()
        # warm-up: the first forward's one-off costs untimed (they fell on the plain arm's s/chunk)
        wrap_policy(policy, seed=args.seed).act(observation, observation["prompt"])
    finally:
        env.close()
    planner = TieCountingPlanner(policy, reach_scorer(policy.embodiment.camera_keys), args.candidates)
    results = {}
    for name, backend in (
        ("plain", policy),
        (f"best_of_{args.candidates}", planner),
    ):
        env = TabletopEnv(args.task)
        started = time.perf_counter()
        try:
            report = evaluate(env, wrap_policy(backend, seed=args.seed), policy_name=name, episodes=args.episodes,
                              seed=args.seed, strategy=ChunkStrategy("execute", args.execute_steps), progress=True)
        finally:
            env.close()
        chunks = sum(e.chunks for e in report.episodes)
        steps = [e.success_step for e in report.episodes if e.success]
        results[name] = {
            "success_rate": report.success_rate,
            "ci95": report.to_json()["ci95"],
            "mean_steps_to_success": sum(steps) / len(steps) if steps else None,
            "policy_s_per_chunk": sum(e.policy_s for e in report.episodes) / max(1, chunks),
            "wall_s": round(time.perf_counter() - started, 1),
            "execute_steps": report.strategy["execute_steps"],
        }
    print(json.dumps(results, indent=1))
    plain, planned = results["plain"], results[f"best_of_{args.candidates}"]
    print(f"plain: {100 * plain['success_rate']:.0f} % success, {plain['policy_s_per_chunk']:.2f} s/chunk; "
          f"best-of-{args.candidates}: {100 * planned['success_rate']:.0f} % success, "
          f"{planned['policy_s_per_chunk']:.2f} s/chunk "
          f"({planned['policy_s_per_chunk'] / plain['policy_s_per_chunk']:.1f}x the compute)")
    print(f"best-of-{args.candidates}: the scores tied in {planner.tied} of {planner.decisions} decisions "
          "(a tie executes the first candidate, which is the plain policy's own sample)")


if __name__ == "__main__":
    main()
