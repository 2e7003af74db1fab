"""`worldpolicy train CONFIG`: fine-tune a Cosmos3 checkpoint on a LeRobot v3 dataset, or run a from-scratch recipe."""

from __future__ import annotations

import argparse
import json
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune on a LeRobot v3 dataset (or train the shipped model from scratch)",
        description="CONFIG is a TOML/JSON TrainConfig (see docs/training.md) or a recipe name "
        "(reach-from-scratch: sim data → tiny VAE → tiny transformer → 100-episode eval). Resumes from the newest "
        "checkpoint in the output folder. Multi-process: torchrun --nproc_per_node N -m worldpolicy train CONFIG.",
    )
    p.add_argument("config", help="config file (.toml/.json) or recipe name")
    p.add_argument("--out", help="output folder (overrides the config's output_dir)")
    p.add_argument("--steps", type=int, help="training steps (overrides optim.steps)")
    p.add_argument("--install", action="store_true", help="recipes: copy the result into worldpolicy/models")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from .scratch import recipe_path, run_recipe

    path = recipe_path(args.config)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps={args.steps}: must be >= 1")
    is_recipe = path.suffix == ".toml" and "[scratch]" in path.read_text()
    if is_recipe:
        if args.steps is not None:
            raise ValueError("--steps: set optim.steps in the recipe file instead (recipes are reproducible as a whole)")
        run_recipe(path, args.out, install=args.install, progress=not args.no_progress)
        return 0
    if args.install:
        raise ValueError("--install applies to from-scratch recipes only")
    from .config import load_config
    from .trainer import Trainer

    overrides = {"output_dir": args.out}
    config = load_config(path, **overrides)
    if args.steps is not None:
        config.optim.steps = args.steps
    trainer = Trainer(config, progress=not args.no_progress)
    started = time.perf_counter()
    records = trainer.run()
    if trainer.rank == 0:
        final = trainer._checkpoints()[-1] if trainer._checkpoints() else None
        print(json.dumps({"steps_run": len(records), "last_loss": records[-1].loss if records else None,
                          "checkpoint": str(final) if final else None,
                          "wall_s": round(time.perf_counter() - started, 1)}, indent=1))
    return 0
