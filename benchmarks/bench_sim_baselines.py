"""Baseline success rates on every shipped task: scripted expert (bar >= 95 %) and random (bar <= 10 %).

Episode i of each run uses seed i (scene) — the same 100 scenes for both baselines. No rendering (the baselines do not
look at images). Also printed: mean steps to success, and the control steps in which a joint moved faster than the
robot allows (`over_velocity_steps`, summed, and in how many episodes): the expert's actions are training data, so
its count should be 0. Run: python benchmarks/bench_sim_baselines.py [--episodes 100] [--out bench_sim.json]
"""

from __future__ import annotations

import time

from _args import at_least, exit_if_failed, parser_for

from worldpolicy.fileio import write_json_atomic
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.evaluate import evaluate, wilson_interval
from worldpolicy.sim.policies import make_policy
from worldpolicy.sim.tasks import list_tasks

BARS = {"scripted": (">=", 0.95), "random": ("<=", 0.10)}


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--episodes", type=at_least(1), default=100, help="episodes per task and policy (default 100)")
    parser.add_argument("--tasks", nargs="+", default=list_tasks(), choices=list_tasks(), help="default: every task")
    parser.add_argument("--out", default=None, help="also write the table as JSON here")
    args = parser.parse_args()

    rows = []
    for task in args.tasks:
        env = TabletopEnv(task, image_size=None)
        for name, (op, bar) in BARS.items():
            t0 = time.perf_counter()
            # seeds 0.. as the baselines were always measured (no checkpoint: no training scenes to hold out)
            report = evaluate(env, make_policy(name, env=env, seed=0), policy_name=name, episodes=args.episodes,
                              seed=0, progress=False)
            rate = report.success_rate
            lo, hi = wilson_interval(report.successes, args.episodes)
            ok = rate >= bar if op == ">=" else rate <= bar
            doc = report.to_json()
            over, steps = doc["over_velocity_steps"], doc["mean_steps_to_success"]
            over_episodes = sum(e.over_velocity_steps > 0 for e in report.episodes)
            rows.append({"task": task, "policy": name, "successes": report.successes, "episodes": args.episodes,
                         "success_rate": rate, "ci95": [lo, hi], "bar": f"{op} {bar:.0%}", "pass": ok,
                         "mean_steps_to_success": steps, "over_velocity_steps": over,
                         "episodes_over_velocity": over_episodes, "wall_s": time.perf_counter() - t0})
            print(f"{task:<11} {name:<9} {report.successes:>3}/{args.episodes} = {100 * rate:5.1f} % "
                  f"(95 % CI {100 * lo:5.1f}-{100 * hi:5.1f})  bar {op} {bar:.0%}: {'PASS' if ok else 'FAIL'}  "
                  f"steps {steps if steps is None else round(steps, 1)}  over-speed steps {over} "
                  f"({over_episodes} episodes)  [{time.perf_counter() - t0:.1f} s]", flush=True)
        env.close()
    print("all pass" if all(r["pass"] for r in rows) else "SOME FAIL")
    if args.out:
        write_json_atomic(args.out, rows)
    exit_if_failed({f"{r['task']} {r['policy']} bar {r['bar']}": r["pass"] for r in rows})


if __name__ == "__main__":
    main()
