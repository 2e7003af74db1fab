"""Predict: camera images and an instruction in, an action chunk out, with the future the model imagines.

What it shows: `worldpolicy.load_policy` and `Policy.act` from Python, the chunk's named columns and units (physical
and model-normalised), the stages' timings, and `Prediction.save`, which writes what `worldpolicy predict` writes:
actions.json, the imagined future as rollout.mp4, the camera images it started from in observation/, plots/ and
index.html.

    python examples/predict.py                                     # a simulator scene, the shipped model, CPU
    python examples/predict.py --camera observation/exterior_image_1_left=ext.png \\
        --camera observation/wrist_image_left=wrist.png --prompt "move the gripper to the red ball"
    python examples/predict.py --checkpoint nvidia/Cosmos3-Nano-Policy-DROID --camera ... --state 0,0,0,-1.6,0,1.6,0.8,0

Without `--camera` the observation is a scene of the simulated reach task (the `sim` extra), whose camera images
are saved beside the run as the files `--camera` would take. Writes into `--out` (default runs/example_predict).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import worldpolicy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="shipped", help="a checkpoint folder, hub id or shipped (default)")
    p.add_argument("--camera", action="append", default=[], metavar="KEY=FILE",
                   help="one image per camera the embodiment reads (default: a simulator scene)")
    p.add_argument("--prompt", default=None, help="the instruction (default: the simulator scene's own)")
    p.add_argument("--state", default=None, help="comma-separated state row, for a state-conditioned embodiment")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed: the same seed gives the same chunk")
    p.add_argument("--scene-seed", type=int, default=0, help="the simulator scene without --camera (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any, else CPU)")
    p.add_argument("--out", type=Path, default=Path("runs/example_predict"), help="the run's folder")
    args = p.parse_args(argv)
    for item in args.camera:
        if "=" not in item:
            p.error(f"--camera {item!r}: expected KEY=FILE, e.g. observation/wrist_image_left=wrist.png")
    if args.state is not None:
        try:
            args.state = [float(v) for v in args.state.split(",")]
        except ValueError:
            p.error(f"--state {args.state!r}: expected numbers separated by commas, e.g. 0,0,0,-1.6,0,1.6,0.8,0")
    if not args.camera and args.prompt is None and args.checkpoint != "shipped":
        p.error("--prompt: needed with --checkpoint other than shipped when no --camera is given")
    return args


def sim_observation(seed: int) -> tuple[dict, str]:
    """A reach scene's observation (DROID's camera keys) and its instruction."""
    from worldpolicy.sim.env import TabletopEnv

    env = TabletopEnv("reach")
    observation, info = env.reset(seed=seed)
    env.close()
    return observation, info["prompt"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.camera:  # files are read by the policy itself, as `worldpolicy predict --camera` reads them
        observation, prompt = dict(item.split("=", 1) for item in args.camera), args.prompt
    else:
        observation, prompt = sim_observation(args.scene_seed)
        prompt = args.prompt or prompt

    with worldpolicy.load_policy(args.checkpoint, device=args.device, progress=False) as policy:
        embodiment = policy.embodiment
        print(f"{args.checkpoint}: embodiment {embodiment.name}, chunk {policy.chunk_size} at "
              f"{embodiment.fps:g} Hz, cameras {', '.join(embodiment.camera_keys)}")
        pred = policy.act(observation, prompt, state=args.state, seed=args.seed, decode_video=True)
        # actions.json, settings.json, rollout.mp4, plots/, index.html and, given the observation, its camera images
        # as the files `--camera KEY=FILE` takes for a rerun (observation/<camera>.png; the state and prompt are left)
        written = pred.save(args.out, observation=observation)

    print(f'\n"{prompt}": {pred.actions.shape[0]} actions x {pred.actions.shape[1]} columns, seed {args.seed}')
    print(" ".join(f"{f'{c} [{u}]':>14}" for c, u in zip(pred.columns, pred.units, strict=True)))
    for row in pred.actions:
        print(" ".join(f"{v:14.4f}" for v in row))
    print("model-normalised, first row:", np.round(pred.actions_normalized[0], 3))
    print("timings (s):", {stage: round(s, 3) for stage, s in pred.timings.items()})
    if pred.video is not None:
        print(f"imagined future: {pred.video.shape[0]} frames of {pred.video.shape[1]}x{pred.video.shape[2]}")
    print(f"\nwrote {len(written)} files into {args.out}: open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
