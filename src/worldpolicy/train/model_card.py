"""A checkpoint's model card: README.md with the Hugging Face hub's YAML front matter, as diffusers, transformers and
LeRobot write one, so a checkpoint copied to the hub or to a colleague says what it is and how to run it.

Every fact comes from what the checkpoint (or its run) already records, each from one place: the embodiment from its
`embodiment.json` (else the registered entry its `trainer_state.json` names), the training from `trainer_state.json`
(else the run's config.json, for an export that carries no state), the base from `base_model.json` (an adapter) or
the config's `checkpoint`, a recipe's stages from `training_summary.json`, and the newest validation and evaluation
lines of the run's metrics.jsonl up to the checkpoint's step. What none of them records is left out, never guessed.
The card is written into the checkpoint's staging folder (`fileio.staged_folder`), so a checkpoint is whole, card
included, or absent, and written again (atomically) once an `[eval]` of the checkpoint's step, which runs after the
save, is logged; loading never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..embodiments import Embodiment, embodiment_from_spec, get_embodiment
from ..errors import brief_list
from ..extras import package_license
from ..fileio import (
    BASE_FILE,
    MODEL_CARD_FILE,
    TRAINER_STATE_FILE,
    TRAINING_SUMMARY_FILE,
    read_json,
    read_trainer_state,
    write_bytes_atomic,
)
from ..hub import named_hub_id, shown_name
from ..models import SHIPPED_NAME, checkpoint_name, portable_checkpoint
from ..policy import checkpoint_spec, config_center_crop, recorded_embodiment
from ..viz.plots import plural
from ..viz.train_report import augmentation

TAGS = ["robotics", "world-model", "cosmos3", "worldpolicy", "lerobot"]
LIBRARY = "worldpolicy"  # a library of its own (as LeRobot's `lerobot`): the checkpoints load with `load_policy`
OBJECTIVE_TEXT = {"policy": "policy (actions from frames and a task)",
                  "forward_dynamics": "forward dynamics (the world model: future frames from actions)",
                  "inverse_dynamics": "inverse dynamics (actions from a clip)"}


def write_model_card(folder: str | Path, final: str | Path, run: str | Path | None = None) -> Path:
    """Write `folder`'s README.md (atomically) from the records in it. `final`: where the folder goes (it is written
    in a staging folder), which the card names it by; `run`: the training run's folder, for its metrics.jsonl
    (validation and evaluation figures) and, where the checkpoint's trainer_state.json holds no config, its
    config.json."""
    folder = Path(folder)
    text = model_card(folder, Path(final), None if run is None else Path(run))
    return write_bytes_atomic(folder / MODEL_CARD_FILE, text)


def model_card(folder: Path, final: Path, run: Path | None = None) -> str:
    """The card's text: front matter, then what the checkpoint is, how it was trained, its figures, how to use it."""
    from huggingface_hub import ModelCardData

    state = read_trainer_state(folder) if (folder / TRAINER_STATE_FILE).is_file() else None
    # a recipe's model keeps only part of its run's record (`scratch.model_record`): no config
    config = (state or {}).get("config") or (_record(run / "config.json") if run else None)
    adapter = _record(folder / BASE_FILE)
    summary = _record(folder / TRAINING_SUMMARY_FILE)
    embodiment = _embodiment(folder, state, config)
    base = adapter["base_model_name_or_path"] if adapter else (config or {}).get("checkpoint")
    # the hub's `base_model` and `datasets` take no path: a hub id, as the card's text shows it (`hub.shown_name`)
    base_id = named_hub_id(base, "model") if isinstance(base, str) else None
    settings = (config or {}).get("data", {})
    datasets = [settings.get("dataset")] + [source.get("dataset") for source in settings.get("mixture") or []]
    dataset_ids = [i for i in (named_hub_id(d, "dataset") for d in datasets if isinstance(d, str) and d) if i]
    data = ModelCardData(library_name=LIBRARY, pipeline_tag="robotics", tags=TAGS,
                         base_model=base_id, datasets=dataset_ids or None,
                         # a recipe trains from nothing: the model is the package's own work, under its license
                         license=package_license() if summary and not config else None)
    key = embodiment.key if isinstance(embodiment, Embodiment) else embodiment
    title = final.name if summary else f"{key or 'worldpolicy'} checkpoint"
    if state:
        title += f", step {state['step']}"
    parts = [f"---\n{data.to_yaml()}\n---\n", f"# {title}\n",
             _what(embodiment, state, adapter),
             _training(config, state, adapter, summary, base),
             _figures(run, state, summary),
             _usage(final, embodiment, adapter)]
    return "\n".join(part for part in parts if part)


def _record(path: Path) -> dict[str, Any] | None:
    return read_json(path, path.name) if path.is_file() else None


def _embodiment(folder: Path, state: Mapping[str, Any] | None,
                config: Mapping[str, Any] | None) -> Embodiment | str | None:
    """The checkpoint's own spec, else the registered entry its run names (its trainer_state.json, `state`: read once
    for the whole card), or only its name where this process cannot build it (registered in Python by the run:
    `merge-adapter` is another process); None where nothing names one. A card never stops a save."""
    spec = checkpoint_spec(folder)
    if spec is not None:
        return embodiment_from_spec(spec)
    name = recorded_embodiment(state) or (config or {}).get("embodiment")
    if not isinstance(name, str):
        return None
    try:
        return get_embodiment(name)
    except (KeyError, ValueError):
        return name


def _what(embodiment: Embodiment | str | None, state: Mapping[str, Any] | None,
          adapter: Mapping[str, Any] | None) -> str:
    lines = ["## What it is\n",
             ("A Cosmos3 video world-model policy made with worldpolicy: one model that answers action chunks from "
             "camera frames and a task (policy), and, where trained for it, imagines the frames actions lead to "
             "(world model).")]
    if adapter:
        lines.append(f"This folder is a LoRA adapter checkpoint: it loads onto its base, "
                     f"`{checkpoint_name(str(adapter['base_model_name_or_path']))}` (`{BASE_FILE}` says where it is), "
                     "which must be reachable; "
                     "`worldpolicy merge-adapter` writes it and its base as one folder.")
    if isinstance(embodiment, str):
        lines += ["", (f"**Embodiment** `{embodiment}`, registered by its training run, not in worldpolicy's "
                      "registry: register it (`worldpolicy.embodiments.register_embodiment`) to run the checkpoint.")]
    elif embodiment is not None:
        e = embodiment
        lines += ["", f"**Embodiment** `{e.key}`" + (f": {e.description}" if e.description else ""), "",
                  "| action column | unit |", "|---|---|"]
        lines += [f"| `{column}` | {unit} |" for column, unit in zip(e.columns, e.units)]
        executed = f", {e.execute_steps} of them executed before the next request" if e.execute_steps else ""
        composite = f" ({e.composite})" if e.composite else ""
        lines += ["",
                  f"- action layout `{e.layout}`, {e.action_dim} columns, normalisation `{e.normalization}`",
                  f"- chunk: {e.chunk_size} actions at {e.fps:g} fps{executed}",
                  (f"- cameras: {', '.join(f'`{key}`' for key in e.camera_keys)}{composite}, on a "
                  f"{e.resolution_tier}-pixel canvas tier")]
        frames = (state or {}).get("frames")
        if frames:
            sizes = ", ".join(f"`{camera}` {h}x{w}" for camera, (h, w) in frames["cameras"].items())
            lines.append(f"- trained on frames of {sizes} (height x width), composed "
                         f"{frames['composed'][0]}x{frames['composed'][1]}")
    return "\n".join(lines) + "\n"


def _mixture_lines(tables: list[Mapping[str, Any]], record: list[Mapping[str, Any]] | None) -> list[str]:
    """A mixture's sources (`[[data.mixture]]`) as the card lists them: each dataset, its weight and share of the batch
    positions, and the episodes trained on of its own (the checkpoint's record, `trainer_state.json`'s `mixture`)."""
    total = sum(float(t.get("weight") or 0) for t in tables) or 1.0
    lines = ["- datasets (LeRobot v3), a mixture: each batch position drawn from one of them by weight"]
    for i, table in enumerate(tables):
        dataset = table.get("dataset")
        kept = (record or [])[i] if record and i < len(record) else {}
        episodes = (f", episodes {kept['episodes']} of {kept['dataset_episodes']} ({kept['windows']} windows)"
                    if "episodes" in kept and "dataset_episodes" in kept else "")
        chosen = (f" (chosen: {brief_list(table['episodes'])})" if table.get("episodes") else "") + (
            f", leaving out {brief_list(table['exclude_episodes'])}" if table.get("exclude_episodes") else "") + (
            ", succeeded ones only" if table.get("success") == "only" else "") + (
            f"; held out for validation: {brief_list(table['validation_episodes'])}"
            if table.get("validation_episodes") else "")
        lines.append(f"  - `{shown_name(dataset, 'dataset') if isinstance(dataset, str) else dataset}`: weight "
                     f"{float(table.get('weight') or 0):g} ({100 * float(table.get('weight') or 0) / total:.0f} % of "
                     f"the batch positions){episodes}{chosen}")
    return lines


def _training(config: Mapping[str, Any] | None, state: Mapping[str, Any] | None, adapter: Mapping[str, Any] | None,
              summary: Mapping[str, Any] | None, base: Any) -> str:
    lines = ["## How it was trained\n"]
    if config:
        data, finetune = config.get("data", {}), config.get("finetune", {})
        episodes = data.get("episodes")
        held = config.get("validation", {}).get("episodes")  # never in a `data.episodes` list; else left out of all
        shipped = " (the model worldpolicy ships, trained by `worldpolicy train reach-from-scratch`)" \
            if base == SHIPPED_NAME else ""
        # a hub id, `shipped`, else a folder's own name: a local path tells only the trainer's file layout
        dataset = data.get("dataset")
        lines.append(f"- base: `{checkpoint_name(base) if isinstance(base, str) else base}`{shipped}")
        if data.get("mixture"):
            lines += _mixture_lines(data["mixture"], (state or {}).get("mixture"))
        else:
            lines += [f"- dataset: `{shown_name(dataset, 'dataset') if isinstance(dataset, str) else dataset}` "
                      "(LeRobot v3), episodes "
                      + (f"{brief_list(episodes)}" if episodes else "all" + (" but those held out" if held else ""))
                      + (f", leaving out {brief_list(data['exclude_episodes'])}" if data.get("exclude_episodes")
                         else "")
                      + (", succeeded ones only" if data.get("success") == "only" else "")
                      + (f"; held out for validation: {brief_list(held)}" if held else "")]
        weights = (state or {}).get("objective_weights")
        if weights:
            lines.append("- objectives: " + ", ".join(f"{OBJECTIVE_TEXT.get(name, name)} {share:g}"
                                                      for name, share in weights.items() if share))
        steps = state["step"] if state else config.get("optim", {}).get("steps")
        optim = config.get("optim", {})
        lines.append(f"- steps: {steps}" + (f" of {optim['steps']}" if state and optim.get("steps") else "")
                     + (f", batch {optim['batch_size']}, lr {optim['lr']:g}" if "batch_size" in optim else ""))
        if finetune.get("mode") == "lora":
            lines.append(f"- LoRA rank {finetune.get('lora_rank')}, alpha {finetune.get('lora_alpha')}, saved "
                         + ("as adapters" if adapter else "merged into the weights"))
        else:
            lines.append("- full fine-tuning (every weight trained)")
        augmented = augmentation(config.get("augment"))
        if augmented is not None:
            crop = config_center_crop(config)  # as inference reads it: none for crop_area 1
            lines.append(
                f"- image augmentation (`[augment]`, the Cosmos Policy recipe's): {augmented}. "
                + (f"At inference each frame's centre {crop:g} is cropped and resized back, as trained "
                   "(`load_policy(..., center_crop=False)`: no crop)" if crop is not None else
                   "No crop at inference (crop_area 1)"))
    if summary:
        stages = summary.get("stages", {})
        recorded = stages.get("dataset", {}).get("episodes")
        scratch = summary.get("scratch", {})
        lines.append(f"- from nothing by the `{summary.get('recipe')}` recipe (`worldpolicy train "
                     f"{summary.get('recipe')}`): " + "; ".join(filter(None, (
                         f"{recorded} expert episodes of the sim task `{scratch.get('task')}`" if recorded else "",
                         "a tiny VAE trained on them" if "base_model" in stages else "",
                         f"the transformer trained {stages['transformer']['steps']} steps"
                         if "transformer" in stages else ""))))
        if "train_wall_s" in summary:
            lines.append(f"- training took {summary['train_wall_s'] / 60:.0f} min")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""


def _figures(run: Path | None, state: Mapping[str, Any] | None, summary: Mapping[str, Any] | None) -> str:
    """The newest held-out validation and sim evaluation up to the checkpoint's step, and a recipe's evaluation."""
    lines = []
    if run is not None:
        from ..viz.train_report import metrics_lines

        step = state["step"] if state else None
        logged = [line for line in metrics_lines(run) if step is None or line.get("step", 0) <= step]
        validation = next((line for line in reversed(logged) if "val/loss" in line), None)
        if validation:
            mae = validation.get("val/action_mae")
            lines.append(f"- held-out validation at step {validation['step']}: loss {validation['val/loss']:.4g}"
                         + (f", action MAE {mae:.4g} (normalised) over {validation.get('val/action_chunks')} sampled "
                            "chunks" if mae is not None else ""))
        evaluation = next((line for line in reversed(logged) if "eval_success_rate" in line), None)
        if evaluation:
            lines.append(f"- sim evaluation at step {evaluation['step']}: `{evaluation['eval_task']}` success "
                         f"{100 * evaluation['eval_success_rate']:.0f} % over "
                         f"{plural(evaluation['eval_episodes'], 'episode')}"
                         + (f", perturbed {json.dumps(evaluation['eval_perturb'])}"
                            if evaluation.get("eval_perturb") else ""))
    result = (summary or {}).get("stages", {}).get("evaluation")
    if result:
        lines.append(f"- sim evaluation: `{result['task']}` success {result['successes']}/{result['episodes']} "
                     f"episodes (seeds from {result['seed']}, strategy `{result['strategy']['kind']}`)")
    return "## Results\n\n" + "\n".join(lines) + "\n" if lines else ""


def _usage(final: Path, embodiment: Embodiment | str | None, adapter: Mapping[str, Any] | None) -> str:
    shipped = portable_checkpoint(final.resolve()) == SHIPPED_NAME
    checkpoint = SHIPPED_NAME if shipped else f"path/to/{final.name}"
    cameras = embodiment.camera_keys if isinstance(embodiment, Embodiment) else ()
    inputs = " ".join(f"--camera {key}=FRAME_{n}.png" for n, key in enumerate(cameras)) \
        if len(cameras) > 1 else "--image FRAME.png"
    hub = ("`--checkpoint` and `load_policy` take a copy of this folder by its path, as below, or the hub repository "
           "holding it by its id (`OWNER/NAME`, fetched into the hub's cache).\n")
    return "\n".join([
        "## How to use it\n",
        *([] if shipped else [hub]),
        "```bash",
        "pip install worldpolicy",
        f"worldpolicy predict --checkpoint {checkpoint} {inputs} --prompt \"TASK\" --out run",
        f"worldpolicy serve --checkpoint {checkpoint}  # openpi WebSocket policy server on port 8000",
        "```\n",
        "```python",
        "import worldpolicy",
        "",
        f"policy = worldpolicy.load_policy(\"{checkpoint}\")",
        "prediction = policy.act(observation, \"TASK\")  # prediction.actions: [chunk, columns] in the units above",
        "```",
    ]) + ("\nThe base named above is loaded first (a hub id downloads).\n" if adapter else "\n")
