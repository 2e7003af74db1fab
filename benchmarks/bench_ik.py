"""IK tracking and solve-time benchmark on the shipped Panda (acceptance: mean <= 5 mm, max <= 20 mm, median <= 0.5 ms).

Two IK configurations side by side, interleaved per trajectory: `IKSolver(robot)` (no joint speed limit: offline
conversion, the sim's scripted expert) and `IKSolver(robot, fps=...)` at the embodiment's control rate, the one
`ActionDecoder` builds (each arm joint held to its speed over one period; a target further than that is met part way
and the rest reported as tracking error). Trajectories: a 32-step 17 cm line, a 64-step 8 cm-radius circle, and 20
chunks of DROID-stat-sized random deltas (uniform in normalised space, denormalised with the registry's
droid/relative_pose quantiles, re-anchored). Errors in mm (achieved vs commanded TCP position), times in ms.
Run: python benchmarks/bench_ik.py [--robot panda] [--solver daqp] [--chunks 20]
"""

from __future__ import annotations

import json
import time

import numpy as np
from _args import at_least, parser_for

from worldpolicy.embodiments import get_embodiment
from worldpolicy.robot.kinematics import IKSolver, pick_qp_solver
from worldpolicy.robot.robots import get_robot

EMBODIMENT = "droid/relative_pose"


def main() -> None:
    parser = parser_for(__doc__)
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
    emb = get_embodiment(EMBODIMENT)
    configs = {"no_speed_limit": IKSolver(robot, solver=solver),
               f"at_{emb.fps:g}fps": IKSolver(robot, solver=solver, fps=emb.fps)}
    first = next(iter(configs.values()))
    q0 = np.array(first.robot.home)
    start = first.fk(q0)

    line = np.repeat(start[None], 32, axis=0)
    line[:, 1, 3] += np.linspace(0, 0.17, 33)[1:]
    theta = np.linspace(0, 2 * np.pi, 65)[1:]
    circle = np.repeat(start[None], 64, axis=0)
    circle[:, 0, 3] += 0.08 * (np.cos(theta) - 1)
    circle[:, 1, 3] += 0.08 * np.sin(theta)
    rng = np.random.default_rng(0)
    chunks = [emb.denormalize(rng.uniform(-1, 1, size=(emb.chunk_size, emb.action_dim)))[:, :9]
              for _ in range(args.chunks)]

    solve_times: dict[str, list[float]] = {name: [] for name in configs}
    results: dict[str, dict] = {name: {} for name in configs}

    def timed_trajectory(name: str, ik: IKSolver, targets: np.ndarray) -> dict:
        q = q0.copy()
        errors = []
        for target in targets:
            t0 = time.perf_counter()
            q = ik.solve(target, q)
            solve_times[name].append(time.perf_counter() - t0)
            errors.append(1000 * np.linalg.norm(ik.fk(q)[:3, 3] - target[:3, 3]))
        return {"mean_mm": float(np.mean(errors)), "max_mm": float(np.max(errors))}

    def random_chunks(ik: IKSolver) -> dict:
        pos, drift = [], []
        t0 = time.perf_counter()
        for deltas in chunks:
            _, _, report = ik.solve_relative(deltas, q0)
            pos.append(report.position_mm)
            drift.append(report.drift_mm.max())
        pos = np.concatenate(pos)
        return {"mean_mm": float(pos.mean()), "max_mm": float(pos.max()), "max_drift_mm": float(np.max(drift)),
                "chunk_ms": 1000 * (time.perf_counter() - t0) / len(chunks)}

    for key, targets in (("line_17cm_32", line), ("circle_r8cm_64", circle)):
        for name, ik in configs.items():  # interleaved: machine noise hits both configurations alike
            results[name][key] = timed_trajectory(name, ik, targets)
    for name, ik in configs.items():
        results[name]["droid_random_reanchored"] = random_chunks(ik)
    for name, ik in configs.items():
        times_ms = 1000 * np.array(solve_times[name])
        results[name]["solve_time_ms"] = {"median": float(np.median(times_ms)),
                                          "p95": float(np.percentile(times_ms, 95)), "n": int(times_ms.size),
                                          "solver": ik.solver}
        results[name]["pass"] = bool(
            all(r["mean_mm"] <= 5 and r["max_mm"] <= 20 for r in results[name].values() if "mean_mm" in r)
            and results[name]["solve_time_ms"]["median"] <= 0.5)
    limited, free = (results[name] for name in reversed(configs))
    results["ratios_speed_limited_over_no_limit"] = {
        "solve_time_median": limited["solve_time_ms"]["median"] / free["solve_time_ms"]["median"],
        "droid_chunk_ms": limited["droid_random_reanchored"]["chunk_ms"] / free["droid_random_reanchored"]["chunk_ms"],
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
