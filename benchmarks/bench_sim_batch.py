"""Batched sim evaluation (`worldpolicy sim --num-envs N`): episodes per second of the shipped model one episode at a
time (N = 1) against N at a time in lockstep (default 4), each control step's requests answered by one batched
forward, side by side in one run, and their ratio. The same seeded episodes both ways (the success and steps of each
are compared too: batched-float rounding can tip a borderline one). The model is loaded once and warmed up by one
request before either timing; what is timed is `evaluate` (render, model, physics), no videos, no report files. Each
run's model calls (`Policy.act_batch`, one per batched forward) and requests are counted too: an env whose episode
ends starts the next seed (refill), so with more episodes than envs the calls stay full until the seeds run out.
Run: python benchmarks/bench_sim_batch.py [--num-envs 4] [--episodes 4] [--max-steps 8] [--device cuda]
"""

from __future__ import annotations

import time

from _args import at_least, parser_for

from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.evaluate import evaluate
from worldpolicy.sim.policies import make_policy
from worldpolicy.sim.tasks import EVAL_SEED


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--num-envs", type=at_least(2), default=4, help="episodes stepped together (default 4)")
    parser.add_argument("--episodes", type=at_least(1), default=4, help="episodes per timing (default 4)")
    parser.add_argument("--max-steps", type=at_least(1), default=8, help="each episode's step limit (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: auto)")
    args = parser.parse_args()

    env = TabletopEnv("reach", max_steps=args.max_steps)
    options = {"device": args.device} if args.device else {}
    policy = make_policy("shipped", env=env, seed=EVAL_SEED, **options)
    try:
        env.reset(seed=0)
        observation = env.observe()
        policy.act(observation, observation["prompt"])  # warm-up: the first forward's one-off costs untimed
        device = str(policy.policy.engine.device)
        calls: list[int] = []  # each model call's request count (`Policy.act` is a batch of one)
        act_batch = policy.policy.act_batch

        def counted(requests, *args, **kwargs):
            calls.append(len(requests))
            return act_batch(requests, *args, **kwargs)

        policy.policy.act_batch = counted
        rows = {}
        for n in (1, args.num_envs):
            calls.clear()
            t0 = time.perf_counter()
            report = evaluate(env, policy, policy_name="shipped", episodes=args.episodes, seed=EVAL_SEED,
                              progress=False, num_envs=n)
            wall = time.perf_counter() - t0
            rows[n] = (args.episodes / wall, wall, [(e.success, e.steps) for e in report.episodes], len(calls),
                       sum(calls))
    finally:
        policy.close()
        env.close()
    print(f"shipped model, reach, {args.episodes} episodes of <= {args.max_steps} steps, seeds {EVAL_SEED}.., "
          f"device {device}")
    print(f"{'num_envs':>8}  {'episodes/s':>10}  {'wall s':>7}  {'model calls':>11}  {'requests':>8}")
    for n, (rate, wall, _, made, asked) in rows.items():
        print(f"{n:>8}  {rate:>10.3f}  {wall:>7.1f}  {made:>11}  {asked:>8}")
    one, many = rows[1], rows[args.num_envs]
    print(f"ratio N={args.num_envs} / N=1: {many[0] / one[0]:.2f}x; same success and steps per episode: "
          f"{one[2] == many[2]}")


if __name__ == "__main__":
    main()
