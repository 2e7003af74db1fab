"""World model: forward dynamics (actions -> future video) and inverse dynamics (video -> actions), round-tripped.

What it shows: one checkpoint used three ways on one simulator scene. The policy proposes a chunk (`act`); the
simulator runs it (`ActionDecoder` turns the chunk into joint targets) and records what the cameras saw; forward
dynamics imagines the same chunk (`imagine`); inverse dynamics recovers the actions from each video
(`infer_actions`), the imagined one and the simulator's. Both recovered chunks are compared with the chunk that
was run, column by column, in its units, and each result is saved as `worldpolicy predict` saves a run.

    python examples/world_model.py                                 # shipped model, reach scene 0, CPU
    python examples/world_model.py --scene-seed 3 --seed 1 --out runs/wm3

Close recovered actions say the model's two dynamics agree with each other (imagined) and with the world
(simulator). Needs the `sim` extra. Writes into `--out` (default runs/example_world_model): forward/,
inverse_imagined/, inverse_sim/ (each a run with actions.json, plots/, index.html; forward/ with rollout.mp4),
sim.mp4 (the simulator's cameras) and comparison.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import worldpolicy
from worldpolicy.processing.video import write_video
from worldpolicy.robot.decode import ActionDecoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="shipped", help="a checkpoint of a Panda embodiment (default: shipped)")
    p.add_argument("--scene-seed", type=int, default=0, help="the reach scene (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="the sampling seed of every model call (default: 0)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any, else CPU)")
    p.add_argument("--out", type=Path, default=Path("runs/example_world_model"), help="the results' folder")
    return p.parse_args(argv)


def run_in_sim(env, decoder: ActionDecoder, actions: np.ndarray, camera_keys) -> dict[str, np.ndarray]:
    """Run a chunk on the simulated arm; each camera's clip [rows + 1, H, W, 3]: the start, then one frame per row."""
    command = decoder.decode(actions, env.joint_positions())
    frames, gripper = [env.observe()], env.gripper_position()
    for i, qpos in enumerate(command.qpos):
        if command.gripper is not None:  # None: an embodiment without a gripper column keeps the gripper where it is
            gripper = float(command.gripper[i])
        env.act(np.append(qpos, gripper))
        frames.append(env.observe())
    return {key: np.stack([f[key] for f in frames]) for key in camera_keys}


def compare(recovered: np.ndarray, reference: np.ndarray, columns, units) -> dict[str, dict[str, float]]:
    """Mean and largest absolute error of each column over the chunk."""
    error = np.abs(np.asarray(recovered) - np.asarray(reference))
    return {c: {"unit": u, "mean_abs": float(error[:, i].mean()), "max_abs": float(error[:, i].max())}
            for i, (c, u) in enumerate(zip(columns, units, strict=True))}


def main(argv: list[str] | None = None) -> int:
    from worldpolicy.sim.env import TabletopEnv

    args = parse_args(argv)
    env = TabletopEnv("reach")
    observation, info = env.reset(seed=args.scene_seed)
    prompt = info["prompt"]

    with worldpolicy.load_policy(args.checkpoint, device=args.device, progress=False) as model:
        keys = model.embodiment.camera_keys
        chunk = model.act(observation, prompt, seed=args.seed).actions  # the chunk to run, [chunk_size, dim]
        clips = run_in_sim(env, ActionDecoder(model.embodiment, "panda"), chunk, keys)

        imagined = model.imagine(observation, chunk, prompt, seed=args.seed)  # forward dynamics: .video
        from_imagined = model.infer_actions(imagined, prompt, seed=args.seed)  # on the canvas it was generated on
        from_sim = model.infer_actions(clips, prompt, seed=args.seed)  # the simulator's cameras, composed as trained
    env.close()

    imagined.save(args.out / "forward")
    from_imagined.save(args.out / "inverse_imagined")
    from_sim.save(args.out / "inverse_sim")
    write_video(args.out / "sim.mp4", np.concatenate([clips[k] for k in keys], axis=1), fps=model.embodiment.fps)
    columns, units = imagined.columns, imagined.units
    result = {"prompt": prompt, "scene_seed": args.scene_seed, "seed": args.seed, "actions_run": chunk.tolist(),
              "imagined_frames": list(imagined.video.shape),
              "inverse_of_imagined": compare(from_imagined.actions, chunk, columns, units),
              "inverse_of_sim": compare(from_sim.actions, chunk, columns, units)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(result, indent=1))

    print(f'"{prompt}": {len(chunk)} actions run, imagined video {imagined.video.shape}')
    print(f"{'column':>8} {'unit':>5} {'|imagined - run|':>17} {'|sim - run|':>12}   (mean absolute error)")
    for c, u in zip(columns, units, strict=True):
        print(f"{c:>8} {u:>5} {result['inverse_of_imagined'][c]['mean_abs']:17.5f} "
              f"{result['inverse_of_sim'][c]['mean_abs']:12.5f}")
    print(f"wrote {args.out}: forward/, inverse_imagined/, inverse_sim/, sim.mp4, comparison.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
