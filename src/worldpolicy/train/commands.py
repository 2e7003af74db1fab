"""`worldpolicy train CONFIG`: fine-tune a Cosmos3 checkpoint on a LeRobot v3 dataset, or run a from-scratch recipe."""

from __future__ import annotations

import argparse
import json
import logging
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune on a LeRobot v3 dataset (or train the shipped model from scratch)",
        description="CONFIG is a TOML/JSON TrainConfig (see docs/training.md) or a recipe name "
        "(reach-from-scratch: sim data → tiny VAE → tiny transformer → 100-episode eval). Resumes from the newest "
        "checkpoint in the output folder. Multi-process: torchrun --nproc_per_node N -m worldpolicy train CONFIG.",
        absent_flags={"--resume": "train resumes on its own from the newest checkpoint in the output folder: run the "
                                  "same command (--steps N to train on to step N)"},
    )
    _add_train_arguments(p)
    p.set_defaults(func=_train, timed_log=True)  # its INFO lines timed, as its log file's (`cli._configure_logging`)

    m = sub.add_parser(
        "merge-adapter",
        help="write a LoRA adapter checkpoint and its base as one complete checkpoint folder",
        description="CHECKPOINT is a LoRA adapter checkpoint (`[finetune] lora_save = \"adapter\"`). Its base is "
        "loaded on the CPU, the adapters fused and the trained weights set, and the result written to --out as a "
        "diffusers-format folder with the checkpoint's embodiment.json and trainer_state.json: it serves without the "
        "base. Needs the host memory of the model in float32 (~60 GB for Cosmos3-Nano), whatever --dtype.",
    )
    m.add_argument("checkpoint", metavar="CHECKPOINT", help="LoRA adapter checkpoint folder (holds base_model.json)")
    m.add_argument("--out", required=True, help="new or empty folder for the merged checkpoint")
    m.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                   help="weights of the written checkpoint (default: %(default)s, as training writes merged "
                   "checkpoints)")
    m.set_defaults(func=_merge_adapter)


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    """`train`'s arguments (also read back by `_train`'s recorded command line, `cli.continue_command`)."""
    p.add_argument("config", help="config file (.toml/.json) or recipe name")
    p.add_argument("--out", help="output folder (overrides the config's output_dir)")
    p.add_argument("--steps", type=int, help="training steps (overrides optim.steps)")
    p.add_argument("--episodes", metavar="I,J,...",
                   help="train on these episodes only, indices from 0 or ranges A-B separated by commas (overrides "
                   "data.episodes)")
    p.add_argument("--exclude-episodes", metavar="I,J,...",
                   help="leave these episodes out, indices from 0 or ranges A-B separated by commas (overrides "
                   "data.exclude_episodes)")
    p.add_argument("--val-episodes", metavar="I,J,...",
                   help="hold these episodes out of training and log their loss every validation.every steps (set in "
                   "the config's [validation]; unset, 0: held out, never scored), indices from 0 or ranges A-B "
                   "separated by commas (overrides validation.episodes)")
    p.add_argument("--success", metavar="any|only",
                   help="only: train (and hold out) only episodes the dataset's success column flags as succeeded, "
                   "as `dataset from-sim --keep-failures` records it (filtered behaviour cloning); any: every "
                   "episode (overrides data.success; default: the config's, else any)")
    p.add_argument("--report-to", metavar="NAME,...",
                   help="send the metrics to these trackers too, as metrics.jsonl gets them: tensorboard, wandb, "
                   "separated by commas, or none (overrides tracking.report_to; W&B's project, entity and mode are "
                   "set in the config's [tracking])")
    p.add_argument("--install", action="store_true", help="recipes: copy the result into worldpolicy/models")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _train(args: argparse.Namespace) -> int:
    from ..cli import continue_command, episode_list
    from ..extras import check_extras
    from .scratch import RECIPES, recipe_path, run_recipe

    path = recipe_path(args.config)
    if path.suffix not in (".toml", ".json"):  # read as JSON otherwise: a TOML file named .txt failed as "not JSON"
        raise ValueError(f"config {args.config!r}: expected a TrainConfig file ending in .toml or .json, or a recipe "
                         f"name ({', '.join(RECIPES)})")
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps={args.steps}: must be >= 1")
    is_recipe = path.suffix == ".toml" and "[scratch]" in path.read_text()
    # the train extra's pyarrow (and a recipe's simulator, where it records its dataset), named before diffusers load
    check_extras("worldpolicy.data.lerobot", *(("worldpolicy.sim.env",) if is_recipe else ()))
    from .config import EPISODE_FLAGS, SELECTION_FLAGS

    given = {name: getattr(args, flag.removeprefix("--").replace("-", "_")) for name, flag in SELECTION_FLAGS.items()}
    selection = {name: episode_list(flag, text) if name in EPISODE_FLAGS else text
                 for name, flag in SELECTION_FLAGS.items() if (text := given[name]) is not None}
    # the line as typed (config.json holds the config its overrides resolved, not the flags), in every checkpoint
    made_by = continue_command("worldpolicy train", _add_train_arguments, args, resume=False)
    if is_recipe:
        if args.steps is not None:
            raise ValueError("--steps: set optim.steps in the recipe file instead (recipes are reproducible as a whole)")
        if args.report_to is not None:
            raise ValueError("--report-to: a recipe logs to its run's metrics.jsonl only; trackers are for a "
                             "TrainConfig's runs ([tracking] report_to)")
        if selection:
            raise ValueError(f"{SELECTION_FLAGS[next(iter(selection))]}: a recipe records its own dataset ([scratch] "
                             "episodes) and trains on all of it (recipes are reproducible as a whole)")
        summary, model = run_recipe(path, args.out, install=args.install, progress=not args.no_progress,
                                    command=made_by)
        trained = summary["stages"]["transformer"]
        _print_result(trained["steps_run"], trained["last_loss"], model, summary["total_wall_s"],
                      train_wall_s=summary["train_wall_s"], eval=summary["stages"]["evaluation"],
                      installed=summary.get("installed"))
        return 0
    if args.install:
        raise ValueError(f"--install copies a from-scratch recipe's model into the package ({', '.join(RECIPES)}, "
                         f"or a recipe file with a [scratch] table); {args.config!r} is a TrainConfig: drop --install "
                         "(its checkpoints load from the run's folder)")
    from .config import read_config

    overrides = {"output_dir": args.out, "tracking.report_to": _trackers(args.report_to), **selection}
    try:  # the selection is checked against the dataset here: named as the flag typed, not the config's setting,
        # throughout the message ("remove it from --episodes", not from a data.episodes the config does not set)
        config = read_config(path, **overrides)
        # opened once (each of a mixture's): the trainer reads them (seconds for a large dataset)
        datasets = config.checked_datasets()
    except ValueError as exc:
        text = str(exc)
        typed = {name: SELECTION_FLAGS[name] for name in selection}
        if args.report_to is not None:  # the value as typed, not as the list it became
            typed_list = f"tracking.report_to={overrides['tracking.report_to']!r}"
            text = text.replace(typed_list, f"--report-to {args.report_to}")
            typed["tracking.report_to"] = "--report-to"
        for name, flag in typed.items():
            text = re.sub(rf"(?<![\w.]){re.escape(name)}\b", flag, text)
        raise ValueError(text) from None
    if args.steps is not None:
        config.optim.steps = args.steps
    from .trainer import Trainer  # torch and diffusers: after every setting is checked (seconds to import)

    trainer = Trainer(config, progress=not args.no_progress, command=made_by, dataset=datasets)
    started = time.perf_counter()
    records = trainer.run()
    if trainer.rank == 0:
        final = trainer.last_checkpoint
        _print_result(len(records), records[-1].loss if records else None, final,
                      round(time.perf_counter() - started, 1))
        if final is not None:  # what comes next, beside the JSON (which scripts read) as the other hints are said
            print(f"worldpolicy train: next: worldpolicy report {shlex.quote(str(trainer.out))} (the run's page: "
                  "its curves, and the sim, serve and predict lines for its checkpoint)", file=sys.stderr)
    return 0


def _print_result(steps_run: int, last_loss: float | None, checkpoint: Path | None, wall_s: float,
                  **more: Any) -> None:
    """What `train` prints on stdout, as JSON (scripts read it; README "Command line"), for a TrainConfig's run and a
    recipe's alike: the steps this session trained (0 for a finished run), the last one's loss, the checkpoint it
    leaves (the recipe's exported model/; absolute, as every command's JSON gives a path) and the wall time, then what
    only a recipe has (`more`: its evaluation, where --install put the model)."""
    print(json.dumps({"steps_run": steps_run, "last_loss": last_loss,
                      "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None, "wall_s": wall_s,
                      **more}, indent=1))


def _trackers(text: str | None) -> list[str] | None:
    """`--report-to tensorboard,wandb` as `tracking.report_to` takes it (`none`: no tracker), its names checked as
    typed; unset: the config's."""
    if text is None:
        return None
    from .tracking import check_installed, check_report_to

    names = [name.strip() for name in text.split(",")]
    if names == ["none"]:
        return []
    check_report_to(names, f"--report-to {text}", "--report-to none")
    check_installed(names, f"--report-to {text}")
    return names


def _merge_adapter(args: argparse.Namespace) -> int:
    import shutil

    from ..cli import flag_named
    from ..engine.sources import adapter_base, check_checkpoint_source
    from ..fileio import BASE_FILE, output_folder, refuse_foreign_folder, staged_folder
    from ..policy import EMBODIMENT_FILE, TRAINER_STATE_FILE
    from .model_card import write_model_card

    # a folder, as --out is: not `models.resolve_checkpoint`'s `shipped` or hub id, which are no adapter checkpoints
    source = Path(args.checkpoint).expanduser()
    if not source.exists():  # the loader's own message offers hub ids and `shipped`, which are no adapters
        raise FileNotFoundError(f"CHECKPOINT={str(source)!r} does not exist; give a LoRA adapter checkpoint folder "
                                f"(it holds {BASE_FILE})")
    try:  # the API's errors name its parameter (`checkpoint=...`); here the argument typed is
        check_checkpoint_source(source)
    except (ValueError, FileNotFoundError) as exc:
        raise flag_named(exc, {"checkpoint": "CHECKPOINT"}) from None
    if adapter_base(source) is None:
        raise ValueError(f"CHECKPOINT={str(source)!r} is not a LoRA adapter checkpoint (no {BASE_FILE}); a merged or "
                         "full checkpoint is complete already")
    given = Path(args.out).expanduser()
    out = given.resolve()
    for problem, found in (("is a symbolic link", given.is_symlink()),  # the result is renamed into place there
                           ("is the working directory", out == Path.cwd().resolve()),
                           ("exists and is not an empty folder", out.exists() and not _empty_folder(out))):
        if found:
            raise ValueError(f"--out: {args.out!r} {problem}; give a new or empty folder")
    refuse_foreign_folder(out, "--out", ())  # not inside a checkpoint (rotated away with it) or a dataset
    output_folder(out.parent, "--out")
    import torch  # after the checks above, which are said in a second rather than after its import

    from ..engine.loading import DTYPES, cast_like_pretrained, load_components, save_components

    # fused and cast once, in fp32 (a bf16 base would round the fused weights twice); at Nano size loading and
    # writing take minutes each, so each is said as it starts
    source = source.resolve()  # said and printed absolute, as --out is: the JSON is read from another folder
    logger.info("merge-adapter: loading %s's base and fusing its adapters on the CPU in float32", source)
    parts = load_components(source, torch.device("cpu"), torch.float32)
    if args.dtype != "float32":
        for module in (parts["transformer"], parts["vae"]):
            cast_like_pretrained(module, DTYPES[args.dtype])
    logger.info("merge-adapter: writing the merged model in %s to %s", args.dtype, out)
    with staged_folder(out) as staging:  # whole or not at all; a killed merge's staging is removed by the next one
        save_components(staging, parts["transformer"], parts["vae"], parts["tokenizer"], parts["scheduler"],
                        parts["use_native_flow_schedule"], parts["default_use_system_prompt"])
        # the run's record travels with the model: its embodiment, and the objectives and frames it was trained on
        # (the warnings `Policy` gives from them: an untrained mode, frames of another size)
        for name in (EMBODIMENT_FILE, TRAINER_STATE_FILE):
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
        # from those records and the adapter's run (its figures), where it still lies in one
        write_model_card(staging, out, source.parent.parent if source.parent.name == "checkpoints" else None)
        if out.exists() and not _empty_folder(out):  # filled while the merge ran: never replaced
            raise ValueError(f"--out: {args.out!r} was filled while the merge ran; give a new or empty folder")
    print(json.dumps({"merged": str(out), "from": str(source), "dtype": args.dtype}, indent=1))
    return 0


def _empty_folder(path) -> bool:
    return path.is_dir() and not any(path.iterdir())
