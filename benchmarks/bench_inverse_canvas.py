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


def _seed(policy, env, seed: int, scratch: Path) -> dict[str, np.ndarray]:
    """One scene: `act`, `imagine`, `write_run`, then `infer_actions` on its rollout.mp4 both ways (errors by way)."""
    from worldpolicy.processing.observations import canvas_bin
    from worldpolicy.viz.run import ROLLOUT_VIDEO, write_run

    obs, _ = env.reset(seed=seed)
    cameras = {key: obs[key] for key in policy.embodiment.camera_keys}
    planned = policy.act(cameras, obs["prompt"], seed=seed)
    imagined = policy.imagine(cameras, planned.actions, obs["prompt"], seed=seed)
    run = scratch / f"seed{seed}"
    write_run(imagined, run)
    truth = np.asarray(planned.actions, np.float64)
    rule = canvas_bin(*imagined.video.shape[1:3], policy.resolution_tier)[1]
    errors = {}
    for name, options in (("aspect rule", {"canvas": rule}), ("recorded", {})):
        recovered = policy.infer_actions(run / ROLLOUT_VIDEO, obs["prompt"], seed=seed, **options)
        error = errors[name] = _errors(recovered, truth)
        print(f"seed {seed} {name:11s} generated on {imagined.settings['canvas_hw']}, read on "
              f"{recovered.settings['canvas_hw']}: MAE xyz {1000 * error[:, :3].mean():.2f} mm, "
              f"rot6d {error[:, 3:9].mean():.4f}", flush=True)
    return errors


def main() -> None:
    parser = parser_for(__doc__)
    parser.add_argument("--seeds", type=at_least(1), default=8, help="scenes 0..N-1 (default: 8)")
    args = parser.parse_args()

    from worldpolicy import load_policy
    from worldpolicy.models import shipped_model
    from worldpolicy.sim.env import TabletopEnv

    logging.disable(logging.WARNING)  # the stretch notes of a 360x320 composite, once per seed
    errors: dict[str, list[np.ndarray]] = {"aspect rule": [], "recorded": []}
    # the policy and the env closed however the run ends
    with load_policy(shipped_model(), seed=0) as policy, tempfile.TemporaryDirectory() as scratch:
        env = TabletopEnv("reach")
        try:
            for seed in range(args.seeds):
                for name, error in _seed(policy, env, seed, Path(scratch)).items():
                    errors[name].append(error)
        finally:
            env.close()
    for name, per_seed in errors.items():
        stacked = np.stack(per_seed)
        print(f"{name:11s}: MAE xyz {1000 * stacked[..., :3].mean():.2f} mm, rot6d {stacked[..., 3:9].mean():.4f}, "
              f"all columns {stacked.mean():.4f} ({len(stacked)} rollouts x {stacked.shape[1]} rows)")


if __name__ == "__main__":
    main()
