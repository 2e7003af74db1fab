"""The run's metrics sent on to the trackers researchers watch them in (`[tracking] report_to`: TensorBoard, Weights &
Biases), line by line as `metrics.jsonl` gets them, by rank 0 only. A resumed run continues the same curves; a tracker
that fails mid-run is said once and dropped, and training goes on (the metrics file keeps every line)."""

from __future__ import annotations

import importlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import is_real
from ..fileio import METRICS_FILE, write_json_atomic

logger = logging.getLogger(__name__)

# Each tracker and the module it needs (checked with the config, before anything loads)
TRACKER_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb"}
WANDB_MODES = ("online", "offline")
TENSORBOARD_DIR = "tensorboard"  # <output_dir>/tensorboard: `tensorboard --logdir` it
WANDB_RUN_FILE = "wandb_run.json"  # <output_dir>/wandb_run.json: the W&B run id a resume continues
DEFAULT_WANDB_PROJECT = "worldpolicy"


@dataclass
class TrackingConfig:
    """Where the run's metrics go besides `metrics.jsonl` (docs/training.md, "Trackers"); none by default."""

    report_to: list[str] = field(default_factory=list)  # tensorboard, wandb
    wandb_project: str | None = None  # unset: $WANDB_PROJECT, else "worldpolicy"
    wandb_entity: str | None = None  # unset: $WANDB_ENTITY, else the account's default
    wandb_mode: str | None = None  # online | offline; unset: $WANDB_MODE, else online

    def check(self) -> None:
        """Each tracker known and named once, W&B settings only where W&B is reported to, and each tracker's package
        installed (a missing one names its extra), before anything loads."""
        given = f"tracking.report_to={self.report_to!r}"
        check_report_to(self.report_to, given, "[]")
        wandb_set = [f"tracking.{name}={value!r}" for name, value in vars(self).items()
                     if name.startswith("wandb_") and value is not None]
        if wandb_set and "wandb" not in self.report_to:
            raise ValueError(f"{', '.join(wandb_set)} set, but {given} does not report to wandb: add wandb to "
                             "tracking.report_to, or remove them")
        if self.wandb_mode not in (None, *WANDB_MODES):
            raise ValueError(f"tracking.wandb_mode={self.wandb_mode!r}; accepted: {', '.join(WANDB_MODES)} (or unset: "
                             "$WANDB_MODE, else online)")
        check_installed(self.report_to)


def check_report_to(names: list[str], given: str, none: str) -> None:
    """Each tracker known and named once; an unknown name quoted, so an empty one (a stray comma) shows. `given`: the
    setting with its value as the user wrote it (the config's `tracking.report_to=[...]`, or `--report-to a,b`);
    `none`: how that setting asks for no tracker."""
    unknown = [name for name in names if name not in TRACKER_MODULES]
    if unknown:
        raise ValueError(f"{given}: unknown tracker{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(map(repr, unknown))}; accepted: {', '.join(TRACKER_MODULES)} (or none: {none})")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{given}: {', '.join(twice)} named more than once; name each tracker once")


def check_installed(names: list[str], given: str | None = None) -> None:
    """Each tracker's package importable, a missing one naming its extra after `given` (the flag as typed, `--report-to
    a,b`), or else after the config's setting that names it."""
    from ..extras import extra_imports

    for name in names:
        with extra_imports(given or f"tracking.report_to names {name}"):
            importlib.import_module(TRACKER_MODULES[name])


def scalars(line: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics line under their names, `step` aside: a tracker plots numbers (`eval_task` and
    `eval_perturb` are settings, in the config it is sent; an unset `val/action_mae` is no point)."""
    return {name: float(value) for name, value in line.items()
            if name != "step" and is_real(value)}


class _TensorBoard:
    """Scalars under `<output_dir>/tensorboard`. A resume purges what the killed session logged past the checkpoint
    (`purge_step`), as `metrics.jsonl` is trimmed: one curve."""

    name = "tensorboard"

    def __init__(self, out: Path, first_step: int, config: dict[str, Any]):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=first_step)
        self.writer.add_text("config", "```\n" + json.dumps(config, indent=1, default=str) + "\n```", first_step)
        self.writer.flush()

    def log(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()  # a killed run keeps what it logged up to its checkpoint

    def close(self, failed: bool) -> None:
        self.writer.close()


class _WandB:
    """One W&B run per output folder: its id is kept in `<output_dir>/wandb_run.json`, so a resume continues it
    (`resume="allow"`); `step` is the x-axis of every metric, so the steps a killed session logged past its checkpoint
    and logs again (the same values: training is deterministic) stay one curve, offline runs too."""

    name = "wandb"

    def __init__(self, settings: TrackingConfig, out: Path, config: dict[str, Any]):
        import wandb

        id_file = out / WANDB_RUN_FILE
        out.mkdir(parents=True, exist_ok=True)  # W&B writes its files under `dir` (<output_dir>/wandb)
        run_id = json.loads(id_file.read_text())["id"] if id_file.is_file() else None  # None: a new run, W&B's id
        try:
            self.run = wandb.init(project=settings.wandb_project or os.environ.get("WANDB_PROJECT")
                                  or DEFAULT_WANDB_PROJECT, entity=settings.wandb_entity, mode=settings.wandb_mode,
                                  dir=str(out), id=run_id, name=out.name, resume="allow")
        except Exception as exc:  # not logged in, no network: said now, before the weights load
            run = "a run" if run_id is None else f"run {run_id!r}"
            raise ValueError(f"tracking.report_to names wandb, which could not start {run}: {exc}; log in "
                             "(`wandb login`), or set tracking.wandb_mode = \"offline\" (upload later: `wandb sync "
                             f"{out / 'wandb'}/offline-run-*`), or drop wandb from tracking.report_to") from exc
        write_json_atomic(id_file, {"id": self.run.id})
        self.run.config.update(config, allow_val_change=True)  # a resume may change the RESUMABLE settings
        self.run.define_metric("step")
        self.run.define_metric("*", step_metric="step")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log({"step": step, **values})

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class Trackers:
    """The run's trackers (none on ranks other than 0, or with `report_to = []`)."""

    def __init__(self, trackers: list[_TensorBoard | _WandB] | None = None):
        self.trackers = trackers or []

    @classmethod
    def start(cls, settings: TrackingConfig, out: Path, first_step: int, config: dict[str, Any]) -> Trackers:
        """Start each tracker `settings.report_to` names for the run in `out`, whose next line is logged at
        `first_step` (0 from the start, else the resumed checkpoint's step + 1)."""
        started: list[_TensorBoard | _WandB] = []
        try:
            for name in settings.report_to:
                started.append(_TensorBoard(out, first_step, config) if name == "tensorboard"
                               else _WandB(settings, out, config))
        except BaseException:
            cls(started).close(failed=True)
            raise
        return cls(started)

    def log(self, line: dict[str, Any]) -> None:
        """Send one metrics line. A tracker that fails (a network error, a full disk) is said once and dropped."""
        values = scalars(line)
        for tracker in list(self.trackers):
            try:
                tracker.log(int(line["step"]), values)
            except Exception as exc:  # noqa: BLE001 - whatever the tracker's failure, the training goes on
                self.trackers.remove(tracker)
                logger.warning("%s stopped receiving metrics at step %s (%s: %s); training goes on, and %s keeps "
                               "every line", tracker.name, line["step"], type(exc).__name__, exc, METRICS_FILE)
                _finish(tracker, failed=True)  # its writer's file, W&B's run and process: released now

    def close(self, failed: bool) -> None:
        """Finish each tracker (`failed`: the run stopped on an error or an interruption); one that fails to is
        said, and the others still finish."""
        for tracker in self.trackers:
            _finish(tracker, failed)
        self.trackers = []


def _finish(tracker: _TensorBoard | _WandB, failed: bool) -> None:
    """Close one tracker; a failure to is said, not raised (the run's outcome stands, the others still finish)."""
    try:
        tracker.close(failed)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        logger.warning("%s could not finish (%s: %s)", tracker.name, type(exc).__name__, exc)
