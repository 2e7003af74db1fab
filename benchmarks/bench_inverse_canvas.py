"""Inverse dynamics on the model's own imagined video, side by side in one run: the clip read on the canvas bin the
aspect-ratio rule gives its decoded frames (what happened before rollout.mp4 recorded its canvas: passed here as
`canvas=`) against the canvas the mp4 records, the one it was generated on (what `infer_actions(PATH)` does now).
For each seed the demo's steps run on the shipped model: a reach scene (TabletopEnv), `act`, `imagine` of those actions,
`write_run` (rollout.mp4), then `infer_actions` on that file both ways; the error is against the actions forward
dynamics was given. Prints each seed's mean absolute error and the means over seeds.

    python benchmarks/bench_inverse_canvas.py [--seeds 8]
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
from _args import at_least, parser_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def _errors(recovered, truth: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(recovered.actions, np.float64) - truth)


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--seeds", type=at_least(1), default=8, help="scenes 0..N-1 (default: 8)")
    args = parser.parse_args()

    from worldpolicy import load_policy
    from worldpolicy.models import shipped_model
    from worldpolicy.processing.observations import canvas_bin
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.viz.run import ROLLOUT_VIDEO, write_run

    logging.disable(logging.WARNING)  # the stretch notes of a 360x320 composite, once per seed
    policy = load_policy(shipped_model(), seed=0)
    env = TabletopEnv("reach")
    errors: dict[str, list[np.ndarray]] = {"aspect rule": [], "recorded": []}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in range(args.seeds):
            obs, _ = env.reset(seed=seed)
            cameras = {key: obs[key] for key in policy.embodiment.camera_keys}
            planned = policy.act(cameras, obs["prompt"], seed=seed)
            imagined = policy.imagine(cameras, planned.actions, obs["prompt"], seed=seed)
            run = Path(scratch) / f"seed{seed}"
            write_run(imagined, run)
            truth = np.asarray(planned.actions, np.float64)
            rule = canvas_bin(*imagined.video.shape[1:3], policy.resolution_tier)[1]
            for name, options in (("aspect rule", {"canvas": rule}), ("recorded", {})):
                recovered = policy.infer_actions(run / ROLLOUT_VIDEO, obs["prompt"], seed=seed, **options)
                error = _errors(recovered, truth)
                errors[name].append(error)
                print(f"seed {seed} {name:11s} generated on {imagined.settings['canvas_hw']}, read on "
                      f"{recovered.settings['canvas_hw']}: MAE xyz {1000 * error[:, :3].mean():.2f} mm, "
                      f"rot6d {error[:, 3:9].mean():.4f}", flush=True)
    env.close()
    for name, per_seed in errors.items():
        stacked = np.stack(per_seed)
        print(f"{name:11s}: MAE xyz {1000 * stacked[..., :3].mean():.2f} mm, rot6d {stacked[..., 3:9].mean():.4f}, "
              f"all columns {stacked.mean():.4f} ({len(stacked)} rollouts x {stacked.shape[1]} rows)")


if __name__ == "__main__":
    main()
