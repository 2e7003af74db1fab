"""A training run's learning curve: every checkpoint it saved evaluated on the same scenes (`worldpolicy sim --policy
RUN --all-checkpoints`). Each checkpoint is an ordinary sim run in its own subfolder of the sweep (`OUT/step-NNNNNNN`,
resumed as `sim --resume` resumes a run, so a finished one loads no model on a rerun); the sweep's own files say what
they add up to: sweep.csv (a row per checkpoint), sweep.png (success rate with its Wilson 95 % interval against the
training step), sweep.json (its marker, `fileio.FOLDER_KINDS`), which names the best checkpoint, and index.html (its
page, `viz.sweep_page`: the curve, the table, each checkpoint's run page linked, the command that continues it).

A run keeps its `keep_checkpoints` newest (and its best by val/loss) and deletes the others: a checkpoint's result
stays in the sweep after the run rotates it away, so a sweep resumed while training goes on keeps the whole curve.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldpolicy.fileio import (
    SIM_REPORT_FILE,
    SWEEP_FILE,
    SWEEP_SCHEMA,
    folder_kind,
    is_checkpoint,
    make_folder,
    read_sweep_doc,
    saved_checkpoints,
    sigint_deferred,
    write_bytes_atomic,
    write_csv_atomic,
)
from worldpolicy.sim.evaluate import EvalReport, read_report, wilson_interval
from worldpolicy.sim.tasks import seed_span
from worldpolicy.viz.sweep_page import SWEEP_FIGURE

__all__ = ["SCHEMA", "SWEEP_COLUMNS", "SWEEP_CSV", "SWEEP_FIGURE", "Sweep", "SweepPoint", "read_sweep",
           "run_checkpoints", "stored_sweep", "sweep_figure", "write_sweep"]

SCHEMA = SWEEP_SCHEMA
SWEEP_CSV = "sweep.csv"  # a row per checkpoint (`SWEEP_COLUMNS`), for a spreadsheet or pandas
SWEEP_COLUMNS = ("step", "checkpoint", "run_dir", "n_episodes", "episodes_requested", "successes", "success_rate",
                 "ci95_low", "ci95_high", "mean_steps_to_success", "mean_final_distance_m", "seeds", "best")
ACCEPTED_RUN = "a training run's folder (`worldpolicy train`'s output_dir, holding checkpoints/step-*)"


def run_checkpoints(policy: str, flag: str = "--policy") -> list[tuple[int, Path]]:
    """(step, folder) of each checkpoint the training run `policy` saved, oldest first (`fileio.saved_checkpoints`);
    refused, naming `flag`, what was given and what is accepted, where `policy` is no training run (a checkpoint: its
    run named; a model policy of another kind, a missing path, another kind of folder) or holds no checkpoint yet."""
    path = Path(policy).expanduser()
    said = f"{flag} {policy}"
    if not path.is_dir():
        raise ValueError(f"{said}: --all-checkpoints evaluates each checkpoint a training run saved, and {policy!r} "
                         f"is no folder here; accepted: {ACCEPTED_RUN}")
    if is_checkpoint(path):
        run = path.absolute().parent.parent if path.absolute().parent.name == "checkpoints" else None
        name = f" its run, {str(run)!r}, or" if run is not None and saved_checkpoints(run) else ""
        raise ValueError(f"{said}: {policy!r} is one checkpoint; --all-checkpoints takes a training run's folder: give"
                         f"{name} drop --all-checkpoints to evaluate this one")
    if path.name == "checkpoints" and saved_checkpoints(path.parent):
        raise ValueError(f"{said}: {policy!r} is a training run's checkpoints folder; give the run's folder, "
                         f"{str(path.parent)!r}")
    found = folder_kind(path)
    if found is None or found[0].writer != "train":
        held = f"holds {found[0].what} ({found[1]})" if found is not None else "holds no training run"
        raise ValueError(f"{said}: {policy!r} {held}; accepted: {ACCEPTED_RUN}")
    saved = saved_checkpoints(path)
    if not saved:
        raise ValueError(f"{said}: the training run {policy!r} holds no saved checkpoint (checkpoints/step-*) yet: "
                         "training saves one every save_every steps and at its end; run this again once it has")
    return saved


@dataclass(frozen=True)
class SweepPoint:
    """One checkpoint's sim run in the sweep: its training `step`, its subfolder's name, the checkpoint it evaluated
    and its report."""

    step: int
    name: str
    checkpoint: str
    report: EvalReport

    @property
    def complete(self) -> bool:
        return len(self.report.episodes) >= self.report.requested

    def row(self, out: Path, best: bool) -> dict[str, Any]:
        doc = self.report.to_json()
        lo, hi = doc["ci95"]
        return {"step": self.step, "checkpoint": self.checkpoint, "run_dir": str((out / self.name).resolve()),
                "n_episodes": doc["n_episodes"], "episodes_requested": doc["episodes_requested"],
                "successes": doc["successes"], "success_rate": doc["success_rate"], "ci95_low": lo, "ci95_high": hi,
                "mean_steps_to_success": doc["mean_steps_to_success"],
                "mean_final_distance_m": doc["mean_final_distance_m"],
                "seeds": seed_span(sorted(e.seed for e in self.report.episodes)), "best": best}


@dataclass(frozen=True)
class Sweep:
    """The checkpoints of the training run `run` evaluated so far into `out` (`points`, oldest step first);
    `resume_command`: the command line that continues the sweep."""

    run: str
    out: Path
    points: tuple[SweepPoint, ...]
    resume_command: str | None = None

    @property
    def task(self) -> str | None:
        return self.points[0].report.task if self.points else None

    def compared(self) -> list[SweepPoint]:
        """The checkpoints the best is chosen among: those whose run is complete on the most episodes any complete
        run has, so on the same seeds (a checkpoint rotated out of the training run before a resume asked for more
        episodes keeps its fewer: on the curve, not compared, as 3/3 is no better a rate than 45/50)."""
        complete = [p for p in self.points if p.complete]
        most = max((len(p.report.episodes) for p in complete), default=0)
        return [p for p in complete if len(p.report.episodes) == most]

    def best(self) -> SweepPoint | None:
        """The checkpoint of the highest success rate among those `compared`; a tie goes to the fewer mean steps to
        success, then to the later step. None before any has finished, or where none of them succeeded."""
        done = [p for p in self.compared() if p.report.successes]
        if not done:
            return None

        def key(p: SweepPoint):
            steps = p.report.to_json()["mean_steps_to_success"]
            return p.report.success_rate, -(steps if steps is not None else math.inf), p.step

        return max(done, key=key)

    def rows(self) -> list[dict[str, Any]]:
        best = self.best()
        return [p.row(self.out, p is best) for p in self.points]

    def to_json(self) -> dict[str, Any]:
        best = self.best()
        return {"schema": SCHEMA, "run": self.run, "task": self.task, "resume_command": self.resume_command,
                "best": None if best is None else {"step": best.step, "checkpoint": best.checkpoint,
                                                   "run_dir": str((self.out / best.name).resolve())},
                "checkpoints": self.rows()}

    def best_line(self) -> str:
        """The best checkpoint in a sentence, as the command prints it, with how to test it against the newest; one the
        training run has deleted since it was evaluated (its `keep_checkpoints` rotation) said to be gone."""
        best = self.best()
        if best is None:
            compared, complete = self.compared(), [p for p in self.points if p.complete]
            if not compared:
                return "best checkpoint: none yet (no checkpoint's run is complete)"
            if len(compared) < len(complete):
                return (f"best checkpoint: none, no checkpoint run on all {len(compared[0].report.episodes)} "
                        "episodes succeeded in any")
            return "best checkpoint: none, no checkpoint succeeded in any episode"
        report = best.report
        lo, hi = wilson_interval(report.successes, len(report.episodes))
        line = (f"best checkpoint: {best.name} (success {report.successes}/{len(report.episodes)} = "
                f"{100 * report.success_rate:.1f} %, 95 % CI {100 * lo:.1f}-{100 * hi:.1f} %): {best.checkpoint}")
        if not is_checkpoint(best.checkpoint):
            line += " (deleted from the training run since: raise its keep_checkpoints to keep the best)"
        newest = self.points[-1]
        if newest is not best:  # intervals overlap long after a paired test on the same seeds tells two apart
            line += (f"; whether it beats the newest, on the same seeds: worldpolicy sim compare "
                     f"{self.out / best.name} {self.out / newest.name} --out COMPARE_DIR")
        return line


def stored_sweep(out: Path) -> dict[str, Any] | None:
    """The sweep.json in `out` (None where there is none), refused where it is no sweep this worldpolicy reads."""
    return read_sweep_doc(out) if (out / SWEEP_FILE).is_file() else None


def read_sweep(out: Path, run: str, resume_command: str | None = None) -> Sweep:
    """The sweep in `out`: each `step-NNNNNNN` subfolder holding a sim run (its checkpoint perhaps rotated out of the
    training run since), oldest step first."""
    points = []
    for folder in sorted(out.glob("step-*")):
        number = folder.name.removeprefix("step-")
        if number.isdigit() and (folder / SIM_REPORT_FILE).is_file():
            report = read_report(folder)
            if report.episodes:
                checkpoint = (report.policy_settings or {}).get("path") or str(Path(run) / "checkpoints" / folder.name)
                points.append(SweepPoint(int(number), folder.name, str(checkpoint), report))
    return Sweep(run, out, tuple(sorted(points, key=lambda p: p.step)), resume_command)


def sweep_figure(sweep: Sweep):
    """sweep.png: each checkpoint's success rate with its Wilson 95 % interval against its training step (the best
    ringed), drawn like the viz figures (a private Agg figure)."""
    from worldpolicy.viz.plots import (
        LABEL_FONTSIZE,
        LEGEND_FONTSIZE,
        LINE_COLOR,
        SUCCESS_COLOR,
        _grid_margins,
        _new_figure,
        figure_title,
        plural,
        style_ticks,
        whole_number_ticks,
    )

    points = sweep.points
    fig = _new_figure(8.0, 4.6)
    episodes = sorted({len(p.report.episodes) for p in points})
    seeds = sorted({p.report.seed for p in points})
    top = figure_title(fig, f"{sweep.task} · {Path(sweep.run).name}: {plural(len(points), 'checkpoint')}",
                       f"success rate with Wilson 95 % CI · {'/'.join(map(str, episodes))} episodes each from seed "
                       f"{'/'.join(map(str, seeds))}")
    _grid_margins(fig, 1, 1, top=top, bottom=1.0)
    ax = fig.subplots()
    steps = [p.step for p in points]
    rates = [p.report.success_rate for p in points]
    bands = [wilson_interval(p.report.successes, len(p.report.episodes)) for p in points]
    ax.errorbar(steps, rates, yerr=[[r - lo for r, (lo, _) in zip(rates, bands)],
                                    [hi - r for r, (_, hi) in zip(rates, bands)]],
                fmt="o-", color=LINE_COLOR, capsize=4, label="success rate (95 % Wilson CI)")
    from worldpolicy.viz.train_report import metrics_lines

    trained = [m for m in metrics_lines(Path(sweep.run)) if isinstance(m.get("eval_success_rate"), (int, float))
               and isinstance(m.get("step"), int)]
    if trained:  # the run's own [eval] lines, where it had them: other seeds or episodes, perhaps
        ax.plot([m["step"] for m in trained], [m["eval_success_rate"] for m in trained], "x", color="0.45",
                label="training's own [eval] (metrics.jsonl)")
    best = sweep.best()
    if best is not None:
        ax.plot([best.step], [best.report.success_rate], "o", ms=14, mfc="none", mec=SUCCESS_COLOR, mew=2,
                label=f"best: {best.name}")
    ax.set_ylim(-0.02, 1.02)
    span = max(steps) - min(steps) or max(max(steps), 1)
    ax.set_xlim(min(steps) - 0.05 * span, max(steps) + 0.05 * span)  # the end points' error bars off the frame
    ax.set_xlabel("training step", fontsize=LABEL_FONTSIZE)
    ax.set_ylabel("success rate", fontsize=LABEL_FONTSIZE)
    ax.xaxis.set_major_locator(whole_number_ticks())
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.grid(alpha=0.3)
    style_ticks(ax)
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)
    return fig


def write_sweep(sweep: Sweep, out: Path, *, plots: bool = True) -> list[Path]:
    """sweep.csv (`SWEEP_COLUMNS`), sweep.png (with `plots` and a checkpoint evaluated) and sweep.json, each written
    atomically, sweep.json last; Ctrl-C (SIGTERM) waits for the last of them. Then, with `plots` and a checkpoint
    evaluated, the sweep's page (index.html, `viz.report.write_report`: a checkpoint run's page it links written
    too where missing)."""
    out = make_folder(out)
    with sigint_deferred():
        written = [write_csv_atomic(out / SWEEP_CSV, SWEEP_COLUMNS, sweep.rows())]
        if plots and sweep.points:
            from worldpolicy.viz.plots import save_figure

            written.append(save_figure(sweep_figure(sweep), out / SWEEP_FIGURE))
        written.append(write_bytes_atomic(out / SWEEP_FILE, json.dumps(sweep.to_json(), indent=1)))
    if plots and sweep.points:
        from worldpolicy.viz.report import write_report

        written.append(write_report(out))
    return written
