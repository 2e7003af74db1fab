"""What `worldpolicy sim --rerun` costs a step: the scripted expert's reach episodes evaluated without and with the
live Rerun recording (`sim.rerun.RerunWatch` into an .rrd), alternating, side by side in one run, and their ratio;
then the same with the expert asked with the three cameras, as a model policy is (their frames rendered for it, then
logged as JPEG), which the scripted expert itself never is. What is timed is `evaluate` (physics, the expert, the
recording; no videos, no report files) in CPU seconds of the whole process, rerun's own threads too (steadier than wall
time on a shared machine), the least of the repeats; the recording's size a step is printed too.
Run: python benchmarks/bench_sim_rerun.py [--episodes 6] [--repeats 5] [--max-steps 100]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _args import at_least, parser_for

from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.evaluate import evaluate
from worldpolicy.sim.policies import ScriptedPolicy
from worldpolicy.sim.rerun import RerunWatch
from worldpolicy.viz.rerun import RerunTarget, check_rerun, recording


class SeeingScripted(ScriptedPolicy):
    """The expert, asked with the cameras rendered (a model policy's observations): what the recording logs of them."""

    uses_images = True


def timed(policy_class, live: bool, rrd: Path, episodes: int, max_steps: int) -> tuple[float, int]:
    """CPU seconds `evaluate` took and the steps it ran, with the recording into `rrd` when `live`."""
    env = TabletopEnv("reach", max_steps=max_steps)
    try:
        started = time.process_time()
        if live:
            with recording(RerunTarget(file=rrd), "bench") as rec:
                report = evaluate(env, policy_class(env), policy_name="scripted", episodes=episodes, progress=False,
                                  watch=RerunWatch(rec))
        else:
            report = evaluate(env, policy_class(env), policy_name="scripted", episodes=episodes, progress=False)
        return time.process_time() - started, sum(e.steps for e in report.episodes)
    finally:
        env.close()


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--episodes", type=at_least(1), default=6, help="episodes per timing (default 6)")
    parser.add_argument("--repeats", type=at_least(1), default=5, help="timings each way (default 5; the least kept)")
    parser.add_argument("--max-steps", type=at_least(1), default=100, help="each episode's step limit (default 100)")
    args = parser.parse_args()
    check_rerun()  # rerun imported before any timing: once a process, not a step's cost
    with tempfile.TemporaryDirectory() as tmp:
        rrd = Path(tmp) / "bench.rrd"
        for name, policy_class in (("scripted", ScriptedPolicy), ("scripted asked with the cameras", SeeingScripted)):
            seconds: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.repeats):
                for live in (False, True):  # alternating: a load that comes and goes weighs on both alike
                    spent, steps = timed(policy_class, live, rrd, args.episodes, args.max_steps)
                    seconds[live].append(spent)
            plain, live = min(seconds[False]), min(seconds[True])
            print(f"{name}: {steps} steps; without {1000 * plain / steps:.2f} ms/step, with --rerun "
                  f"{1000 * live / steps:.2f} ms/step: +{1000 * (live - plain) / steps:.2f} ms/step, ratio "
                  f"{live / plain:.2f}x; {rrd.stat().st_size / steps / 1000:.1f} kB/step in the .rrd")


if __name__ == "__main__":
    main()
