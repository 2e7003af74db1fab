"""Fine-tune: record a small simulator dataset, fine-tune the shipped model on it, evaluate the result in the sim.

What it shows: the three steps of `worldpolicy dataset from-sim`, `worldpolicy train` and `worldpolicy sim` as the
Python functions those commands call: `worldpolicy.data.from_sim.sim_to_dataset` records scripted-expert episodes
as a LeRobot v3 dataset, `worldpolicy.train.load_config` + `worldpolicy.train.Trainer` train a checkpoint from a
config dict (a TOML file's tables, docs/training.md) and name it (`Trainer.last_checkpoint`), and
`worldpolicy.sim.evaluate.evaluate` + `write_report` run seeded episodes on scenes the model was not trained on and
write the report `worldpolicy sim` writes.

    python examples/finetune.py                                    # 2 episodes, 4 steps, 1 eval episode: CPU, ~1 min
    python examples/finetune.py --episodes 50 --steps 1000 --eval-episodes 20 --out runs/my_reach

The defaults only show the workflow: a few steps move the shipped model little. Needs the `sim` and `train`
extras. Writes into `--out` (default runs/example_finetune): data/ (the dataset), train/ (the run, its checkpoints
in train/checkpoints/step-*), eval/ (report.json, report.md, episodes.csv).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import worldpolicy

# the shipped model's cameras (panda_reach stacks the exterior camera above the wrist camera)
CAMERAS = ["observation/exterior_image_1_left", "observation/wrist_image_left"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=2, help="expert episodes to record (default: 2)")
    p.add_argument("--steps", type=int, default=4, help="training steps (default: 4)")
    p.add_argument("--batch-size", type=int, default=2, help="training windows per step (default: 2)")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (default: 1e-4)")
    p.add_argument("--eval-episodes", type=int, default=1, help="sim episodes to evaluate on (default: 1)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any, else CPU)")
    p.add_argument("--out", type=Path, default=Path("runs/example_finetune"), help="the folder for all three steps")
    args = p.parse_args(argv)
    for flag in ("episodes", "steps", "batch_size", "eval_episodes"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')}={getattr(args, flag)}: expected an int >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # imported after the flags are read: torch, diffusers and MuJoCo take seconds (`--help` needs none of them)
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import evaluate, write_report
    from worldpolicy.train import Trainer, load_config

    out = args.out.resolve()

    # 1. record: seeds 0, 1, ... of the reach task, as `worldpolicy dataset from-sim data --task reach` does;
    # `resume=True` keeps a finished recording on a rerun (and records the rest of an interrupted one)
    recording = sim_to_dataset(out / "data", "reach", args.episodes, seed=0, cameras=CAMERAS,
                               resume=(out / "data").exists())
    print(f"recorded {len(recording.seeds)} episodes (seeds {recording.seeds}) into {out / 'data'}")

    # 2. fine-tune: the config is docs/training.md's my_reach.toml as a dict; a rerun resumes the run in output_dir
    config = load_config({
        "output_dir": str(out / "train"), "checkpoint": "shipped", "save_every": args.steps, "log_every": 1,
        "device": args.device,
        "data": {"dataset": str(out / "data"), "chunk_size": 4},
        # the shipped model's own objective mix: it goes on imagining and inferring actions, not only acting
        "objectives": {"policy": 0.7, "forward_dynamics": 0.15, "inverse_dynamics": 0.15, "action_loss_weight": 4.0},
        "optim": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "warmup_steps": 0},
    })
    trainer = Trainer(config, progress=False)
    records = trainer.run()  # this session's steps: none where the run in train/ was finished
    checkpoint = trainer.last_checkpoint  # the newest one the run saved, a finished run's too
    losses = ", ".join(f"{r.loss:.4f}" for r in records)
    print(f"trained {len(records)} steps (loss {losses or 'none: the run was finished'}); checkpoint {checkpoint}")

    # 3. evaluate: seeds from 10000 (`sim.tasks.EVAL_SEED`), past the recorded ones, as `worldpolicy sim` runs
    with worldpolicy.load_policy(checkpoint, device=args.device, progress=False) as policy:
        env = TabletopEnv("reach")
        report = evaluate(env, policy, policy_name=str(checkpoint), episodes=args.eval_episodes, progress=False)
        env.close()
    write_report(report, out / "eval", plots=False)
    print(f"evaluated: {report!r}")
    print(f"wrote {out}: data/, train/, eval/report.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
