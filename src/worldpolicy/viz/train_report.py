"""The part of a run report that says what a `worldpolicy train` run trained and how to use what it saved.

A training folder's page showed only its metrics plot (one point after a few steps). What someone opening it needs is
in the folder already: `config.json` (embodiment, starting checkpoint, dataset, objectives, fine-tuning, precision,
optimiser), `checkpoints/step-*/` (each one's `trainer_state.json`: step and trained frames; `embodiment.json`: the
embodiment resolved, domain slot included; `base_model.json` marking an adapter checkpoint), the dataset's
`meta/info.json` (episodes, frames), `metrics.jsonl` (losses, `val/...` held-out losses, `eval_success_rate`) and a
sweep of its checkpoints kept in it (`NAME/sweep.json`, `sim --all-checkpoints`).
Each is read if present; one missing or unreadable becomes a note naming it, never a failed page.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..embodiments import shown_unit
from ..errors import is_integer
from ..fileio import (
    BASE_FILE,
    CHECKPOINT_GLOB,
    METRICS_FILE,
    REPORT_FILE,
    SWEEP_FILE,
    TRAINER_STATE_FILE,
    read_sweep_doc,
    read_trainer_state,
    saved_checkpoints,
)
from ..models import run_training_seeds
from ..policy import EMBODIMENT_FILE, trained_objective_weights
from .report import _cards, _esc, _fmt, _href, _kv_table, _number, _pct, _read_json, source_index

__all__ = ["CHECKPOINT_GLOB", "train_sections"]

_READ_ERRORS = (OSError, ValueError)  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors


def _read(path: Path, notes: list[str], what: str) -> Any:
    """A JSON file's content, or None with a note saying which file and why (missing, unreadable)."""
    if not path.is_file():
        notes.append(f"{what} ({path.name}) is missing: not shown")
        return None
    try:
        return _read_json(path)
    except _READ_ERRORS as exc:
        notes.append(f"{what} ({path.name}) could not be read: {exc}")
        return None


def _trainer_state(checkpoint: Path, notes: list[str]) -> Mapping[str, Any]:
    """The latest checkpoint's trainer_state.json, read once for the page through the one reader of it
    (`fileio.read_trainer_state`: its format version checked, one a newer worldpolicy wrote refused rather than
    shown misread), or {} with a note saying why (missing, unreadable, newer)."""
    what = f"{checkpoint.name}'s trainer state ({TRAINER_STATE_FILE})"
    if not (checkpoint / TRAINER_STATE_FILE).is_file():
        notes.append(f"{what} is missing: not shown")
        return {}
    try:
        return read_trainer_state(checkpoint)
    except _READ_ERRORS as exc:
        notes.append(f"{what} could not be read: {exc}")
        return {}


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def metrics_lines(run_dir: Path) -> list[Mapping[str, Any]]:
    """A run's metrics.jsonl as objects, lines that do not read as one skipped (a line a kill cut short)."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return []
    lines = []
    with path.open(errors="replace") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, Mapping):
                lines.append(obj)
    return lines


def _embodiment(config: Mapping[str, Any], latest: Path | None, notes: list[str]) -> Mapping[str, Any] | None:
    """The embodiment the run trained, as its latest checkpoint runs it: that checkpoint's embodiment.json (a spec,
    resolved: domain slot and stats), else the registry's entry the config names, else the config's own table."""
    if latest is not None and (latest / EMBODIMENT_FILE).is_file():
        spec = _read(latest / EMBODIMENT_FILE, notes, f"{latest.name}'s embodiment")
        if isinstance(spec, Mapping):
            return spec
    named = config.get("embodiment")
    if isinstance(named, Mapping):
        return named
    if isinstance(named, str):
        from ..embodiments import get_embodiment

        try:
            e = get_embodiment(named)
        except (KeyError, ValueError) as exc:
            notes.append(f"embodiment {named!r} is not registered here ({exc}): its columns are not shown")
            return {"name": named}
        return {"name": e.key, "layout": e.layout, "action_dim": e.action_dim, "columns": list(e.columns),
                "units": list(e.units), "gripper_column": e.gripper_column, "fps": e.fps, "domain": e.domain,
                "camera_keys": list(e.camera_keys),
                "state_history": e.state_history, "composite": e.composite}
    return None


def _dataset_facts(data: Mapping[str, Any], notes: list[str]) -> list[tuple[str, Any]]:
    mixture = data.get("mixture")
    if isinstance(mixture, list) and mixture:  # `[[data.mixture]]`: each source, its weight and episodes
        weights = [t.get("weight") if isinstance(t, Mapping) and _number(t.get("weight")) else 0 for t in mixture]
        total = sum(weights) or 1
        return [(f"dataset {i + 1} of {len(mixture)}",
                 f"{t.get('dataset')} (weight {_fmt(w)}: {w / total:.0%} of the batch positions"
                 + (f"; episodes {chosen}" if (chosen := _episode_selection(
                     t, {"episodes": t.get("validation_episodes")})) else "") + ")")
                for i, (t, w) in enumerate(zip(mixture, weights)) if isinstance(t, Mapping)]
    dataset = data.get("dataset")
    facts: list[tuple[str, Any]] = [("dataset", dataset)]
    if not isinstance(dataset, str) or not dataset:
        return facts
    info_path = Path(dataset).expanduser() / "meta" / "info.json"
    if not info_path.is_file():
        notes.append(f"dataset {dataset!r}: no meta/info.json there (moved, or a hub id): its episodes and frames "
                     "are not shown")
        return facts
    try:
        info = _read_json(info_path)
    except _READ_ERRORS as exc:
        notes.append(f"dataset {dataset!r}: meta/info.json could not be read: {exc}")
        return facts
    if isinstance(info, Mapping):
        facts += [("episodes", info.get("total_episodes")), ("frames", info.get("total_frames")),
                  ("dataset fps", info.get("fps")), ("robot type", info.get("robot_type"))]
    return facts


def _episode_selection(data: Mapping[str, Any], validation: Mapping[str, Any]) -> str | None:
    """`data.episodes` less `data.exclude_episodes` ("all except 3"), with `data.episodes` unset less
    `validation.episodes` too ("2 held out": training leaves them out; a `data.episodes` list never names them), and
    "that succeeded" with `data.success = "only"`, when any is set: the dataset's "episodes" line counts every
    episode it holds, trained or not."""
    chosen, left_out, held = data.get("episodes"), data.get("exclude_episodes"), validation.get("episodes")
    left_out = left_out if isinstance(left_out, list) else []
    held = held if isinstance(held, list) and not isinstance(chosen, list) else []
    succeeded = data.get("success") == "only"  # older runs: not stored, every episode
    if not isinstance(chosen, list) and not left_out and not held and not succeeded:
        return None
    text = _indices(chosen) if isinstance(chosen, list) else "all"
    text += f" except {_indices(left_out)}" if left_out else ""
    text += f"{',' if left_out else ' except'} {_indices(held)} held out" if held else ""
    return text + (", those that succeeded" if succeeded else "")


def _action_prefix(objectives: Mapping[str, Any]) -> str | None:
    """`objectives.action_prefix_*` (real-time chunking), when the run gave policy examples a clean action prefix
    (older runs: not stored, none)."""
    probability, max_rows = objectives.get("action_prefix_probability"), objectives.get("action_prefix_max_rows")
    if not _number(probability) or not probability:
        return None
    return f"{probability:.0%} of policy examples, a clean prefix of 1 to {_fmt(max_rows)} actions (real-time chunking)"


def augmentation(augment: Any) -> str | None:
    """A run's `[augment]` (its config's table) in a line, as its page and its checkpoints' model card say it; None
    where it trained without (off, or a run from before the setting)."""
    if not isinstance(augment, Mapping) or augment.get("enabled") is not True:
        return None

    def span(name: str) -> str:
        pair = augment.get(name)
        return "-".join(_fmt(v) for v in pair) if isinstance(pair, list) else _fmt(pair)

    return (f"random crops of {_fmt(augment.get('crop_area'))} of the frame's area, rotation up to "
            f"±{_fmt(augment.get('rotation'))}°, brightness {span('brightness')}, contrast {span('contrast')}, "
            f"saturation {span('saturation')}, hue ±{_fmt(augment.get('hue'))}; {_fmt(augment.get('copies'))} draws "
            "of each window")


def _held_out(validation: Mapping[str, Any]) -> str | None:
    """`validation.episodes` and how often they are scored, when some are held out."""
    episodes = validation.get("episodes")
    if not isinstance(episodes, list) or not episodes:
        return None
    every = validation.get("every")
    windows = _fmt(validation.get("windows"))
    chunks = validation.get("action_chunks")  # older runs: not stored, none sampled
    sampled = f" and {_fmt(chunks)} sampled chunks" if _number(chunks) and chunks else ""
    scored = f"scored every {every} steps on up to {windows} windows{sampled}" if every else "never scored"
    return f"{'episode' if len(episodes) == 1 else 'episodes'} {_indices(episodes)} ({scored})"  # indices, not a count


def _indices(values: list[Any], shown: int = 12) -> str:
    more = f", ... ({len(values)} in all)" if len(values) > shown else ""
    return ", ".join(map(str, values[:shown])) + more


def _validation(metrics: list[Mapping[str, Any]], checkpoints: list[tuple[int, Path]], start: Any = None,
                units: Mapping[str, str] | None = None) -> str:
    """The held-out loss (`[validation]`'s `val/loss` lines) at the starting weights, its lowest and its last, each
    beside the training loss over the same stretch of steps (the mean of the lines logged since the validation
    before: one step's loss is one batch's, noisy where the held-out one is not) and the held-out action error of that
    step (`val/action_mae`, where logged), and whether a checkpoint of the lowest is kept (step 0's weights are the
    run's starting checkpoint `start`, which no save setting keeps: the fine-tune made the held-out numbers no
    better); then the action error's lowest and its last per column, with its unit (`units`: column -> unit, the
    embodiment's). Empty for a run without validation."""
    scored = [(int(m["step"]), float(m["val/loss"])) for m in metrics
              if _number(m.get("val/loss")) and isinstance(m.get("step"), int)]
    if not scored:
        return ""
    lines = {int(m["step"]): m for m in metrics if "val/loss" in m and isinstance(m.get("step"), int)}
    actions = {step: float(m["val/action_mae"]) for step, m in lines.items() if _number(m.get("val/action_mae"))}
    training = [(int(m["step"]), float(m["loss"])) for m in metrics
                if _number(m.get("loss")) and isinstance(m.get("step"), int)]
    lowest = min(scored, key=lambda point: point[1])
    shown: dict[tuple[int, float], list[str]] = {}  # one row for a step two of them are
    for name, point in (("first", scored[0]), ("lowest", lowest), ("last", scored[-1])):
        shown.setdefault(point, []).append(name)
    rows = []
    for (step, value), names in sorted(shown.items()):
        before = max((s for s, _ in scored if s < step), default=None)
        since = [loss for s, loss in training if (before is None or s > before) and s <= step]
        mean = f"{sum(since) / len(since):.5g}" if since else "—"
        label = ", ".join(names)
        action = (f"<td>{actions[step]:.4g}</td>" if step in actions else "<td>—</td>") if actions else ""
        rows.append(f"<tr><td class=k>{_esc(label)}</td><td>{step}</td><td>{value:.5g}</td><td>{mean}</td>{action}"
                    "</tr>")
    kept = {step for step, _ in checkpoints}

    def checkpoint(step: int) -> str:
        if step == 0:
            return f"the starting weights, the run's starting checkpoint ({start})" if start else "the starting weights"
        return (f"its checkpoint (step-{step:07d}) is kept" if step in kept else
                "no checkpoint of that step is kept (save_every, keep_checkpoints; validation.keep_best keeps it)")

    best = f"the lowest held-out loss is at step {lowest[0]}: {checkpoint(lowest[0])}"
    sampled = ""
    if actions:
        at = min(actions, key=actions.get)
        last = max(actions)

        def with_unit(column: str, value: float) -> str:
            unit = shown_unit(str((units or {}).get(column) or ""))
            return f"{_esc(column)} {value:.4g}" + (f" {_esc(unit)}" if unit else "")

        parts = {k.removeprefix("val/action_mae/"): v for k, v in lines[last].items()
                 if k.startswith("val/action_mae/") and _number(v)}
        columns = ", ".join(with_unit(k, v) for k, v in parts.items() if source_index(k) is None)
        # a mixture's: each source's (`val/action_mae/source_<i>`), the headline the mean weighted by their weights
        sources = ", ".join(f"data.mixture[{i}] {v:.4g}" for k, v in parts.items()
                            if (i := source_index(k)) is not None)
        sampled = (f"<p>held-out action error (val/action_mae: chunks sampled on held-out frames against the recorded "
                   f"actions, the MAE on the model's normalised action scale, unit-free, mean over the columns; "
                   f"worldpolicy dataset eval --chunks measures a checkpoint alike): lowest {actions[at]:.4g} at step "
                   f"{at}, {_esc(checkpoint(at))}; last {actions[last]:.4g} at step {last}"
                   + (f", per column in its units: {columns}" if columns else "")
                   + (f"; per mixture source (the headline their mean weighted by the tables' weights): {sources}"
                      if sources else "") + "</p>")
    return ("<section id=validation><h2>Held-out loss</h2><p class=muted>the loss on the episodes held out of training "
            "(validation.episodes), on the same windows, σ and noise at every step scored: it moves only with the "
            "weights. Training and held-out losses falling together: still learning; the held-out one rising while "
            "the training one falls: overfitting. Both curves are drawn together under Plots.</p>"
            f"<p>{_esc(best)}; {len(scored)} validations logged</p>{sampled}<table><tr><th class=k></th><th>step</th>"
            "<th>held-out loss</th><th>training loss (mean since the validation before)</th>"
            + ("<th>held-out action MAE (normalised)</th>" if actions else "")
            + f"</tr>{''.join(rows)}</table></section>")


def _columns_table(spec: Mapping[str, Any]) -> str:
    columns, units = spec.get("columns"), spec.get("units")
    if not isinstance(columns, list):
        return ""
    units = units if isinstance(units, list) and len(units) == len(columns) else [""] * len(columns)
    gripper = spec.get("gripper_column")
    rows = "".join(f"<tr><td>{i}</td><td class=k>{_esc(c)}</td><td class=k>{_esc(u)}</td>"
                   f"<td class=k>{'gripper' if c == gripper else ''}</td></tr>"
                   for i, (c, u) in enumerate(zip(columns, units)))
    # the last column headed: blank, it was a column of one unexplained "gripper"
    return ("<table class=columns><tr><th>#</th><th class=k>column</th><th class=k>unit</th><th class=k>role</th></tr>"
            f"{rows}</table>")


def _usage(latest: Path, spec: Mapping[str, Any] | None, config: Mapping[str, Any]) -> str:
    """The command lines that run the latest checkpoint, with its own cameras and state (no --embodiment: a
    checkpoint runs as the robot it was trained for)."""
    ckpt = shlex.quote(str(latest.resolve()))
    cameras = spec.get("camera_keys") if isinstance(spec, Mapping) else None
    predict = ["worldpolicy predict", f"--checkpoint {ckpt}"]
    if isinstance(cameras, list) and len(cameras) > 1:
        files = {str(c): str(c).rsplit("/", 1)[-1] + ".png" for c in cameras}
        predict += [f"--camera {shlex.quote(f'{c}={f}')}" for c, f in files.items()]
    else:
        predict.append("--image observation.png")
    if isinstance(spec, Mapping) and isinstance(spec.get("state_history"), int) and spec["state_history"] > 0:
        width = spec.get("action_dim", "N")
        predict.append(f"--state=V1,...,V{width}")
    predict += ["--prompt 'TASK'", "--out runs/predict"]
    evaluation = config.get("eval") if isinstance(config.get("eval"), Mapping) else {}
    task = evaluation.get("task") or "reach"
    lines = [
        ("predict one chunk: put in your images (one per camera), the task"
         + (" and the robot's current state" if any(p.startswith("--state") for p in predict) else ""),
         " \\\n    ".join(predict)),
    ]
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    dataset = data.get("dataset")
    if isinstance(dataset, str) and dataset and (Path(dataset).expanduser() / "meta" / "info.json").is_file():
        what = "or take a frame of the training dataset as those inputs (writes its images, prints the predict command"
        command = f"worldpolicy dataset frame {shlex.quote(dataset)} --episode 0 --frame 0 --out runs/frame"
        lines.append((f"{what} with its task)", f"{command} --checkpoint {ckpt}"))
    sim_what = "evaluate it in the MuJoCo sim (Panda arms only: another arm's embodiment is refused before it loads)"
    sim = f"worldpolicy sim --policy {ckpt} --task {shlex.quote(str(task))} --episodes 10"
    recorded = run_training_seeds(data, str(task))  # every mixture source recording the task's
    if recorded is not None and recorded[0] == task:
        # the scenes the run's own evaluation used, unless the recording reached them: then the first past it
        seed = evaluation.get("seed")
        if not is_integer(seed) or seed <= max(recorded[1]):
            seed = max(recorded[1]) + 1
        # where they are said (`models.run_training_seeds`: "its dataset D", "its datasets D, E"), named as it says
        sim_what += f", on scenes {recorded[2]} did not record ({task} seeds {min(recorded[1])}..{max(recorded[1])})"
        sim += f" --seed {seed}"
    perturb = evaluation.get("perturb")  # `[eval] perturb`: one spec or a list of them, as sim --perturb joins them
    if isinstance(perturb, list) and all(isinstance(p, str) for p in perturb):
        perturb = ",".join(perturb)
    if isinstance(perturb, str) and perturb:
        sim_what += ", under the shifts the run's own evaluation used"
        sim += f" --perturb {shlex.quote(perturb)}"
    lines += [
        ("serve it over WebSocket (docs/serving.md)", f"worldpolicy serve --checkpoint {ckpt}"),
        (sim_what, f"{sim} --out runs/sim"),
    ]
    return "".join(f"<p class=muted>{_esc(what)}</p><pre class=usage>{_esc(cmd)}</pre>" for what, cmd in lines)


def _sweeps(run_dir: Path, notes: list[str]) -> str:
    """A line per sweep of this run's checkpoints kept in its folder (`RUN/*/sweep.json` naming this run: `worldpolicy
    sim --policy RUN --all-checkpoints --out RUN/NAME`), its page linked where it has one: how many checkpoints, the
    best and its success rate. '' where there is none; one unreadable is a note."""
    lines = []
    for marker in sorted(run_dir.glob(f"*/{SWEEP_FILE}")):
        folder = marker.parent
        try:
            doc = read_sweep_doc(folder)
        except _READ_ERRORS as exc:
            notes.append(f"{folder.name}/{SWEEP_FILE} could not be read: {exc}")
            continue
        if Path(doc["run"]).resolve() != run_dir.resolve():
            continue  # another run's sweep, kept here
        rows = [r for r in doc["checkpoints"] if isinstance(r, Mapping)]
        best = next((r for r in rows if r.get("best") is True), None)
        said = "no best yet" if best is None else (
            f"best step {_esc(best.get('step'))}: {_esc(best.get('successes'))}/{_esc(best.get('n_episodes'))} = "
            + _pct(best.get("success_rate")))
        name = _esc(f"{folder.name}/")
        link = (f"<a href='{_href(f'{folder.name}/{REPORT_FILE}')}'>{name}</a>"
                if (folder / REPORT_FILE).is_file() else name)
        lines.append(f"<li>checkpoint sweep {link} ({_esc(doc.get('task'))}): {len(rows)} checkpoints evaluated "
                     f"on the same seeds, {said}</li>")
    return f"<ul class=sweeps>{''.join(lines)}</ul>" if lines else ""


def train_sections(run_dir: Path) -> tuple[list[str], list[str], dict[str, str]]:
    """(sections, notes, units) of a training run's page: what was trained, on which frames, the checkpoints saved,
    the sim evaluations logged and how to use the latest checkpoint; `units` maps each column of the embodiment to its
    unit ({} where not known), which the metrics plot groups the per-column curves by."""
    notes: list[str] = []
    sections: list[str] = []
    checkpoints = saved_checkpoints(run_dir)  # the one listing of them: each loads as a checkpoint
    latest = checkpoints[-1][1] if checkpoints else None
    state = _trainer_state(latest, notes) if latest else {}
    config = _read(run_dir / "config.json", notes, "the run's config") if (run_dir / "config.json").exists() else None
    if not isinstance(config, Mapping):  # each checkpoint's trainer_state.json holds the config too
        config = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    if not config and not checkpoints:
        return [], [("no config.json and no checkpoints/step-* here: what was trained is not known, only the logs "
                     "are shown")], {}
    metrics = metrics_lines(run_dir)

    def table(name: str) -> Mapping[str, Any]:
        value = config.get(name)
        return value if isinstance(value, Mapping) else {}

    optim, finetune, data = table("optim"), table("finetune"), table("data")
    spec = _embodiment(config, latest, notes)
    steps_done = max([int(m["step"]) for m in metrics if isinstance(m.get("step"), int)] +
                     [step for step, _ in checkpoints], default=0)
    mode = finetune.get("mode")
    if mode == "lora":
        mode = (f"LoRA (rank {_fmt(finetune.get('lora_rank'))}, alpha {_fmt(finetune.get('lora_alpha'))}, "
                f"saved {finetune.get('lora_save', 'merged')})")
    cards = [("embodiment", spec.get("name") if isinstance(spec, Mapping) else config.get("embodiment")),
             ("steps", f"{steps_done} of {_fmt(optim.get('steps'))}"), ("fine-tuning", mode),
             ("precision", optim.get("precision")), ("batch", optim.get("batch_size")), ("lr", optim.get("lr")),
             ("chunk", data.get("chunk_size"))]
    weights = trained_objective_weights(state.get("objective_weights"), config.get("objectives"))
    mix = ", ".join(f"{k} {v:g}" for k, v in weights.items() if v) if weights else None
    # the starting weights by content, and what the latest checkpoint was saved with (trainer_state.json's
    # `base_checkpoint`, `software`, `command` and `cwd`; not in a checkpoint saved by an older version): a reader
    # reproducing the run
    base, software = state.get("base_checkpoint"), state.get("software")
    start = config.get("checkpoint")
    if isinstance(base, Mapping) and base.get("files"):
        start = f"{start} (files {base['files']})"
    facts = [("starting checkpoint", start), *_dataset_facts(data, notes),
             ("episodes trained", _episode_selection(data, table("validation"))),
             ("episodes held out", _held_out(table("validation"))),
             ("dataset actions", data.get("source_embodiment")), ("action conversion", data.get("action_conversion")),
             ("objectives", mix), ("objectives preset", table("objectives").get("preset")),
             ("action prefix", _action_prefix(table("objectives"))),
             ("image augmentation", augmentation(table("augment"))),
             ("warmup steps", optim.get("warmup_steps")), ("weight decay", optim.get("weight_decay")),
             ("seed", config.get("seed")), ("data fingerprint", state.get("data_fingerprint")),
             ("software", ", ".join(f"{name} {version}" for name, version in software.items() if version)
              if isinstance(software, Mapping) else None),
             # the `worldpolicy train` line as typed, and where (its relative paths are relative to it; null
             # without a command: `extras.run_record`)
             ("command", state.get("command")), ("command typed in", state.get("cwd"))]
    sections.append(f"<section id=training><h2>What was trained</h2>{_cards([c for c in cards if c[1] is not None])}"
                    f"{_kv_table([f for f in facts if f[1] is not None], 'training')}</section>")

    if isinstance(spec, Mapping):
        about = [(k, ", ".join(map(str, v)) if isinstance(v, list) else v)
                 for k in ("name", "layout", "action_dim", "fps", "domain", "camera_keys", "composite", "state_history")
                 if (v := spec.get(k)) is not None]
        sections.append(f"<section id=embodiment><h2>Embodiment</h2>{_kv_table(about)}{_columns_table(spec)}</section>")

    frames = state.get("frames")
    if isinstance(frames, Mapping) and isinstance(frames.get("cameras"), Mapping):
        videos = frames.get("videos") if isinstance(frames.get("videos"), Mapping) else {}
        rows = "".join(f"<tr><td class=k>{_esc(cam)}</td><td class=k>{_esc(videos.get(cam, ''))}</td>"
                       f"<td>{_esc(' × '.join(str(x) for x in hw) if isinstance(hw, list) else hw)}</td></tr>"
                       for cam, hw in frames["cameras"].items())
        composed = frames.get("composed")
        composed_text = " × ".join(str(x) for x in composed) if isinstance(composed, list) else composed
        sections.append("<section id=frames><h2>Frames trained on</h2><table><tr><th class=k>camera</th>"
                        f"<th class=k>dataset video</th><th>height × width</th></tr>{rows}</table>"
                        f"<p>composed frame: {_esc(composed_text)} (height × width)</p></section>")
    elif latest is not None:
        notes.append(f"{latest.name}'s trainer_state.json records no frames (saved by an older version): the frame "
                     "sizes trained on are not shown")

    if checkpoints:
        rows = "".join(
            f"<tr><td>{step}</td><td class=k>{_esc(folder.relative_to(run_dir).as_posix())}</td>"
            f"<td>{_tree_bytes(folder) / 1e6:.2f}</td>"
            "<td class=k>"
            f"{'LoRA adapter (loaded onto its base)' if (folder / BASE_FILE).is_file() else 'full pipeline'}</td>"
            f"<td class=k>{'latest' if folder == latest else ''}</td></tr>" for step, folder in checkpoints)
        sections.append("<section id=checkpoints><h2>Checkpoints</h2><table><tr><th>step</th><th class=k>folder</th>"
                        "<th>MB (optimizer state included)</th><th class=k>kind</th><th class=k></th></tr>"
                        f"{rows}</table></section>")
        sections.append(f"<section id=usage><h2>Use the latest checkpoint ({_esc(latest.name)})</h2>"
                        f"{_usage(latest, spec, config)}</section>")
    else:
        notes.append("no checkpoint saved yet (checkpoints/step-*): nothing to run")

    evals = [m for m in metrics if isinstance(m.get("eval_success_rate"), (int, float))]
    sweeps = _sweeps(run_dir, notes)
    if evals or sweeps:
        rows = "".join(f"<tr><td>{_esc(m.get('step'))}</td><td class=k>{_esc(m.get('eval_task', ''))}"
                       f"{_esc(f' perturbed {p}' if (p := m.get('eval_perturb')) else '')}</td>"
                       f"<td>{100 * m['eval_success_rate']:.1f} %</td><td>{_esc(m.get('eval_episodes', ''))}</td></tr>"
                       for m in evals)
        logged = ("<table><tr><th>step</th><th class=k>task</th><th>success</th><th>episodes</th></tr>"
                  f"{rows}</table>") if evals else ""
        sections.append(f"<section id=evaluation><h2>Sim evaluation</h2>{logged}{sweeps}</section>")
    named = spec if isinstance(spec, Mapping) else {}
    columns, units = named.get("columns"), named.get("units")
    units = dict(zip(columns, units)) if isinstance(columns, list) and isinstance(units, list) else {}
    if validation := _validation(metrics, checkpoints, config.get("checkpoint"), units):
        sections.append(validation)
    losses = {k: (m.get("step"), v) for m in metrics for k, v in m.items() if k.startswith("loss") and _number(v)}
    if losses:  # an objective's loss is logged only at steps that drew it: each one's last value and its step
        rows = "".join(f"<tr><td class=k>{_esc(k)}</td><td>{_esc(_fmt(v))}</td><td>{_esc(step)}</td></tr>"
                       for k, (step, v) in sorted(losses.items()))
        sections.append("<section id=losses><h2>Last logged losses</h2><p class=muted>per objective where logged "
                        "(loss_action_policy: the action loss of the examples drawn as policy); the curves are under "
                        "Plots</p><table><tr><th class=k>loss</th><th>value</th><th>step</th></tr>"
                        f"{rows}</table></section>")
    return sections, notes, units
