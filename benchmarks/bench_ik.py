"""IK tracking and solve-time benchmark on the shipped Panda (acceptance: mean <= 5 mm, max <= 20 mm, median <= 0.5 ms).

Trajectories: a 32-step 17 cm line, a 64-step 8 cm-radius circle, and 20 chunks of DROID-stat-sized random deltas
(uniform in normalised space, denormalised with the registry's droid/relative_pose quantiles, re-anchored).
Run: python benchmarks/bench_ik.py [--robot panda] [--solver daqp]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _args import at_least

from worldpolicy.embodiments import get_embodiment
from worldpolicy.robot.kinematics import IKSolver, pick_qp_solver
from worldpolicy.robot.robots import get_robot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--robot", default="panda", help="a robot name or an MJCF file (default panda)")
    parser.add_argument("--solver", default=None, help="a qpsolvers backend (default: the first installed)")
    parser.add_argument("--chunks", type=at_least(1), default=20, help="random-delta chunks (default 20)")
    args = parser.parse_args()

    try:
        robot = get_robot(args.robot)
    except (KeyError, OSError, ValueError) as exc:
        parser.error(f"--robot {args.robot}: {exc.args[0]}")
    try:
        solver = pick_qp_solver(args.solver)
    except (ValueError, ImportError) as exc:
        parser.error(f"--solver {args.solver}: {exc}")
    ik = IKSolver(robot, solver=solver)
    q0 = np.array(ik.robot.home)
    start = ik.fk(q0)
    results: dict[str, dict] = {}

    line = np.repeat(start[None], 32, axis=0)
    line[:, 1, 3] += np.linspace(0, 0.17, 33)[1:]
    theta = np.linspace(0, 2 * np.pi, 65)[1:]
    circle = np.repeat(start[None], 64, axis=0)
    circle[:, 0, 3] += 0.08 * (np.cos(theta) - 1)
    circle[:, 1, 3] += 0.08 * np.sin(theta)

    solve_times: list[float] = []

    def timed_trajectory(targets: np.ndarray) -> dict:
        q = q0.copy()
        errors = []
        for target in targets:
            t0 = time.perf_counter()
            q = ik.solve(target, q)
            solve_times.append(time.perf_counter() - t0)
            errors.append(1000 * np.linalg.norm(ik.fk(q)[:3, 3] - target[:3, 3]))
        return {"mean_mm": float(np.mean(errors)), "max_mm": float(np.max(errors))}

    results["line_17cm_32"] = timed_trajectory(line)
    results["circle_r8cm_64"] = timed_trajectory(circle)

    emb = get_embodiment("droid/relative_pose")
    rng = np.random.default_rng(0)
    pos, drift = [], []
    t0 = time.perf_counter()
    for _ in range(args.chunks):
        deltas = emb.denormalize(rng.uniform(-1, 1, size=(emb.chunk_size, emb.action_dim)))[:, :9]
        _, _, report = ik.solve_relative(deltas, q0)
        pos.append(report.position_mm)
        drift.append(report.drift_mm.max())
    chunk_ms = 1000 * (time.perf_counter() - t0) / args.chunks
    pos = np.concatenate(pos)
    results["droid_random_reanchored"] = {
        "mean_mm": float(pos.mean()), "max_mm": float(pos.max()), "max_drift_mm": float(np.max(drift)),
        "chunk_ms": chunk_ms,
    }
    times_ms = 1000 * np.array(solve_times)
    results["solve_time_ms"] = {
        "median": float(np.median(times_ms)), "p95": float(np.percentile(times_ms, 95)), "n": int(times_ms.size),
        "solver": ik.solver,
    }
    ok = (
        all(r["mean_mm"] <= 5 and r["max_mm"] <= 20 for k, r in results.items() if "mean_mm" in r)
        and results["solve_time_ms"]["median"] <= 0.5
    )
    results["pass"] = bool(ok)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
