"""Gymnasium loop: the policy closed loop on a `worldpolicy/Reach-v0` env, one `env.step` per joint command.

What it shows: the simulator as a plain gymnasium env (`gymnasium.make`, `reset`, `step`, `render`), the policy's
chunk turned into joint targets by `ActionDecoder` from the joints the env measures, and each episode's frames
written as an mp4. For chunk strategies, latency and reports use `worldpolicy.sim.evaluate.evaluate` (or
`worldpolicy sim`) instead; this is the loop to adapt for a gymnasium wrapper or an RL setup of your own.

    python examples/gym_loop.py                                    # shipped model, 1 episode, CPU
    python examples/gym_loop.py --episodes 5 --execute-steps 4 --out runs/gym

Needs the `sim` extra. Writes episode-<seed>.mp4 (the env's three views) into `--out` (default runs/example_gym).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

import worldpolicy
import worldpolicy.sim  # registers the worldpolicy/... gymnasium ids
from worldpolicy.processing.trajectory import call_seed
from worldpolicy.processing.video import write_video
from worldpolicy.robot.decode import ActionDecoder


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="shipped", help="a checkpoint of a Panda embodiment (default: shipped)")
    p.add_argument("--env-id", default="worldpolicy/Reach-v0", help="a worldpolicy gymnasium id (default: reach)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to run (default: 1)")
    p.add_argument("--max-steps", type=int, default=None, help="steps per episode (default: the task's horizon)")
    p.add_argument("--execute-steps", type=int, default=None,
                   help="actions of each chunk run before asking again (default: the checkpoint's)")
    p.add_argument("--seed", type=int, default=10_000, help="the first scene's seed; episode i uses seed + i")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any, else CPU)")
    p.add_argument("--out", type=Path, default=Path("runs/example_gym"), help="where the episode videos go")
    args = p.parse_args(argv)
    for flag in ("episodes", "max_steps", "execute_steps"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            p.error(f"--{flag.replace('_', '-')}={value}: expected an int >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    options = {} if args.max_steps is None else {"max_episode_steps": args.max_steps}
    env = gym.make(args.env_id, render_mode="rgb_array", **options)
    results = []
    with worldpolicy.load_policy(args.checkpoint, device=args.device, progress=False) as policy:
        decoder = ActionDecoder(policy.embodiment, "panda")
        k = args.execute_steps or policy.embodiment.execute_steps or policy.chunk_size
        for episode in range(args.episodes):
            seed = args.seed + episode
            obs, info = env.reset(seed=seed)
            frames, done, steps, calls = [env.render()], False, 0, 0
            gripper = float(obs["observation/gripper_position"][0])
            while not done:  # request `calls` samples with the seed `worldpolicy sim` gives it: repeatable
                chunk = policy.act(obs, obs["prompt"], seed=call_seed(seed, calls)).actions
                calls += 1
                command = decoder.decode(chunk[:k], obs["observation/joint_position"])
                for i, qpos in enumerate(command.qpos):
                    if command.gripper is not None:  # None: an embodiment without a gripper column keeps the last
                        gripper = float(command.gripper[i])
                    obs, _reward, terminated, truncated, info = env.step(np.append(qpos, gripper).astype(np.float32))
                    frames.append(env.render())
                    steps += 1
                    done = terminated or truncated
                    if done:
                        break
            write_video(args.out / f"episode-{seed}.mp4", np.stack(frames), fps=env.metadata["render_fps"])
            results.append({"seed": seed, "success": bool(info["success"]), "steps": steps, "prompt": info["prompt"]})
            print(json.dumps(results[-1]))
    env.close()
    print(f"success {sum(r['success'] for r in results)}/{len(results)}; videos in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
