"""The index.html of a sweep of a training run's checkpoints (`worldpolicy sim --policy RUN --all-checkpoints`,
`sim.sweep`): drawn from the folder's sweep.json and sweep.png alone, in the run pages' style (`report.page_html`), so
`worldpolicy report DIR` redraws it. Each checkpoint's row links its sim run's own page (`OUT/step-NNNNNNN/index.html`,
which `report.write_report` writes first where it is missing). The numbers are `sim.sweep`'s; this only shows them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fileio import REPORT_FILE, SWEEP_FILE, folder_kind, read_sweep_doc
from .plots import plural
from .report import (
    _cards,
    _cells_table,
    _esc,
    _figure_section,
    _files_section,
    _href,
    _notes_section,
    _number,
    _pct,
    _pct_range,
    page_html,
)

__all__ = ["SWEEP_FIGURE", "SWEEP_SHOWS", "build_sweep_html", "sweep_runs"]

SWEEP_FIGURE = "sweep.png"  # `sim.sweep.sweep_figure`, drawn into the sweep's folder
# its alt text and caption
SWEEP_SHOWS = ("each checkpoint's success rate with its Wilson 95 % interval against its training step, the best "
               "ringed; the training run's own [eval] rates (metrics.jsonl) as crosses where it logged them")


def sweep_runs(folder: Path) -> list[Path]:
    """The sweep's checkpoint runs: each `step-*` subfolder of `folder` holding a sim run, in name (step) order."""
    return [sub for sub in sorted(folder.glob("step-*"))
            if sub.is_dir() and (kind := folder_kind(sub)) is not None and kind[0].writer == "sim"]


def _run_name(row: Mapping[str, Any]) -> str:
    """The checkpoint run's subfolder (`step-NNNNNNN`), by the name its row's `run_dir` ends in: the sweep folder may
    have moved since its absolute path was written."""
    step = row.get("step")
    return Path(str(row.get("run_dir") or (f"step-{step:07d}" if isinstance(step, int) else step))).name


def _run_link(folder: Path, name: str) -> str:
    """The checkpoint run's name, linked to its own page where the folder has one."""
    if not (folder / name / REPORT_FILE).is_file():
        return _esc(name)
    return f"<a href='{_href(f'{name}/{REPORT_FILE}')}'>{_esc(name)}</a>"


def _row(folder: Path, row: Mapping[str, Any]) -> list[str]:
    """A checkpoint's cells (escaped), as sweep.csv's row has them."""
    done, asked = row.get("n_episodes"), row.get("episodes_requested")
    success = f"{row.get('successes', '-')}/{done if done is not None else '-'}"
    if _number(done) and _number(asked) and done < asked:  # its run was cut short: not a candidate for best
        success += f" ({done} of {asked} ran)"
    steps, distance = row.get("mean_steps_to_success"), row.get("mean_final_distance_m")
    return [_esc(row.get("step", "-")), _run_link(folder, _run_name(row)), _esc(success),
            _esc(_pct(row.get("success_rate"))), _esc(_pct_range(row.get("ci95_low"), row.get("ci95_high"))),
            _esc(f"{steps:.1f}" if _number(steps) else "-"),
            _esc(f"{100 * distance:.1f}" if _number(distance) else "-"), _esc(row.get("seeds") or "-"),
            "<b>best</b>" if row.get("best") is True else "", _esc(row.get("checkpoint") or "-")]


def build_sweep_html(folder: str | Path, title: str | None = None) -> str:
    """The page of the sweep in `folder`: the learning curve (sweep.png), a row per checkpoint (its run's page linked,
    the best marked) and the command that continues the sweep."""
    folder = Path(folder)
    doc = read_sweep_doc(folder)
    rows = [r for r in doc["checkpoints"] if isinstance(r, Mapping)]
    best = doc.get("best") if isinstance(doc.get("best"), Mapping) else None
    best_row = next((r for r in rows if r.get("best") is True), None)
    best_said = ("none yet" if not rows else "none (no complete run succeeded)") if best is None else (
        f"step {best.get('step')}" + (f": {_pct(best_row.get('success_rate'))}" if best_row is not None else ""))
    episodes = sorted({r["episodes_requested"] for r in rows if _number(r.get("episodes_requested"))})
    cards = [("task", doc.get("task")), ("training run", doc.get("run")), ("checkpoints", len(rows)),
             ("episodes each", "/".join(map(str, episodes)) or "-"), ("best", best_said)]
    sections = ["<section id=summary><h2>Summary</h2>" + _cards(cards) + "</section>"]
    notes: list[str] = []
    plots_section = _figure_section(folder, SWEEP_FIGURE, SWEEP_SHOWS, "Learning curve", notes)
    plots = 1 if plots_section else 0
    if plots_section:
        sections.append(plots_section)
    head = ["step", "checkpoint run", "success", "rate", "95 % Wilson CI", "mean steps to success",
            "mean final distance (cm)", "seeds", "best", "checkpoint evaluated"]
    text = [False, True, False, False, False, False, False, True, True, True]
    table = _cells_table(head, [_row(folder, r) for r in rows], text) if rows else "<p>No checkpoint evaluated yet.</p>"
    sections.append("<section id=checkpoints><h2>Checkpoints</h2><p class=muted>each checkpoint's sim run on the same "
                    "seeds, linked to its own page; the best: the highest success rate of the runs complete on the "
                    "sweep's most episodes, a tie going to the fewer steps to success, then the later step (as "
                    "sim.sweep.Sweep.compared picks it)</p>" + table + "</section>")
    listed = {_run_name(r) for r in rows}
    unlisted = [sub.name for sub in sweep_runs(folder) if sub.name not in listed]
    if unlisted:  # run after sweep.json was last written: a sweep interrupted, or going on now
        notes.append(f"{plural(len(unlisted), 'checkpoint run')} in this folder {'is' if len(unlisted) == 1 else 'are'}"
                     f" not in {SWEEP_FILE} yet ({', '.join(unlisted)}): the sweep was interrupted or is still "
                     "running; the command under Continue adds them to the curve")
    command = doc.get("resume_command")
    if isinstance(command, str) and command:
        sections.append("<section id=continue><h2>Continue</h2><p class=muted>runs the checkpoints the training run "
                        "saved since, and finishes any run cut short; the finished ones are kept, not rerun</p>"
                        f"<pre class=usage>{_esc(command)}</pre></section>")
    files, count = _files_section(folder)
    sections.append(files)
    if notes:
        sections.insert(0, _notes_section(notes))
    title = title or f"checkpoint sweep · {folder.resolve().name}"
    return page_html(title, "sim sweep", f"{plural(len(rows), 'checkpoint')} · {plural(plots, 'plot')} · "
                     f"{plural(count, 'file')}", sections)
