"""What best-of-N planning costs per decision (`worldpolicy sim --plan N`, `planning.BestOfNPlanner.act`): wall time of
one decision of the shipped model for N candidates in (1, 2, 4, 8) by default, batched as the planner makes it (N
chunks sampled in one `Policy.act_batch`, then N forward-dynamics rollouts, video decoded, in a second, then N scorer
calls) against the same work as N separate calls each (`Policy.act` per chunk and per rollout), side by side in one
run, with each way's ratio to its own N = 1 and to a plain `Policy.act` (one chunk, no rollout, no video: what a run
without --plan asks per chunk). The same seeds both ways (proposal i seed + i, its rollout seed + N + i, as the planner
draws them), so both decide among the same candidates up to batched-float rounding: how often they chose the same one
is printed too. One observation of the reach task (seed 0) and its prompt, `sim.progress.reach_scorer`. The model is
loaded once; each way at each N runs once untimed first (a batch size's one-off costs), then the timed repeats
interleave the ways and Ns, and the medians are printed.

    python benchmarks/bench_planning_cost.py [--candidates 1,2,4,8] [--repeats 3] [--checkpoint DIR] [--device cpu]

`bench_planning.py` measures what planning buys (success against plain execution over seeded episodes); this script
what each decision costs.
"""

from __future__ import annotations

import statistics
import time

from _args import at_least, parser_for


def _counts(text: str) -> list[int]:
    """--candidates: a comma list of whole numbers >= 1, each once."""
    import argparse

    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"expected a comma list of distinct whole numbers >= 1, e.g. 1,2,4,8; got "
                                         f"{text!r}")
    return sorted(counts)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--candidates", type=_counts, default=[1, 2, 4, 8],
                        help="the Ns compared, a comma list (default 1,2,4,8; the smallest is the ratios' base)")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="timed decisions per way and N (default 3)")
    parser.add_argument("--seed", type=at_least(0), default=200_000, help="proposal 0's seed (default 200000)")
    parser.add_argument("--checkpoint", help="trained checkpoint folder (default: the shipped model)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    args = parser.parse_args()

    from worldpolicy import load_policy
    from worldpolicy.models import shipped_model
    from worldpolicy.planning import BestOfNPlanner, score
    from worldpolicy.policy import PolicyRequest
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.progress import reach_scorer

    try:
        policy = load_policy(args.checkpoint or shipped_model(), device=args.device)
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"--checkpoint {args.checkpoint}: {exc}")
    env = TabletopEnv("reach")
    try:
        env.reset(seed=0)
        observed = env.observe()
    finally:
        env.close()
    prompt = observed["prompt"]
    observation = {k: v for k, v in observed.items() if k != "prompt"}  # what `sim.policies` passes a checkpoint
    scorer = reach_scorer(policy.embodiment.camera_keys)
    seed = args.seed

    def plain(_: int) -> int:
        policy.act(observation, prompt, seed=seed, decode_video=False)
        return 0

    def batched(n: int) -> int:
        return BestOfNPlanner(policy, scorer, n).act(observation, prompt, seed=seed).settings["chosen"]

    def separate(n: int) -> int:  # the planner's requests (`BestOfNPlanner._plan`), each its own call
        chunks = [policy.act(observation, prompt, seed=seed + i, decode_video=False) for i in range(n)]
        futures = [policy.act_batch([PolicyRequest(observation, prompt, mode="forward_dynamics", seed=seed + n + i,
                                                   actions=c.actions_normalized, actions_space="normalized",
                                                   decode_video=True)])[0]
                   for i, c in enumerate(chunks)]
        scores = [score(scorer, f.video, prompt, f"candidate {i}") for i, f in enumerate(futures)]
        return scores.index(max(scores))

    ways = {"batched": batched, "separate": separate}
    cases = [("plain", plain, 1), *((name, way, n) for n in args.candidates for name, way in ways.items())]
    times: dict[tuple[str, int], list[float]] = {(name, n): [] for name, _, n in cases}
    chosen: dict[tuple[str, int], list[int]] = {(name, n): [] for name, _, n in cases}
    started = time.perf_counter()
    for name, way, n in cases:  # untimed: the first call at each batch size pays its one-off costs
        way(n)
    for _ in range(args.repeats):
        for name, way, n in cases:
            t0 = time.perf_counter()
            chosen[name, n].append(way(n))
            times[name, n].append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    median = {case: statistics.median(values) for case, values in times.items()}

    base = args.candidates[0]
    print(f"{args.checkpoint or 'shipped model'}, reach seed 0, device {policy.engine.device}, chunk "
          f"{policy.chunk_size}, {policy.sampling.steps} sampling steps; medians of {args.repeats} decisions each "
          f"({wall:.0f} s in all)")
    print(f"plain Policy.act (one chunk, no rollout, no video): {median['plain', 1]:.3f} s per chunk")
    print(f"{'N':>3}  {'batched s':>9}  {f'x N={base}':>7}  {'x plain':>7}  {'separate s':>10}  {f'x N={base}':>7}  "
          f"{'x plain':>7}  {'separate / batched':>18}  {'same choice':>11}")
    for n in args.candidates:
        b, s = median["batched", n], median["separate", n]
        same = sum(x == y for x, y in zip(chosen["batched", n], chosen["separate", n], strict=True))
        print(f"{n:>3}  {b:>9.3f}  {b / median['batched', base]:>6.2f}x  {b / median['plain', 1]:>6.1f}x  "
              f"{s:>10.3f}  {s / median['separate', base]:>6.2f}x  {s / median['plain', 1]:>6.1f}x  "
              f"{s / b:>17.2f}x  {same:>5}/{args.repeats}")


if __name__ == "__main__":
    main()
