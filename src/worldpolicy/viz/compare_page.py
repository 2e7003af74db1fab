"""The index.html of sim runs compared (`worldpolicy sim compare`, `sim.compare`): drawn from the folder's
compare.json and compare.png alone, in the run pages' style (`report.page_html`), so `worldpolicy report DIR` redraws
it. The statistics are `sim.compare`'s; this only shows them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import COMPARE_FILE, COMPARE_SCHEMA, REPORT_FILE, schema_matches
from .plots import plural
from .report import (
    _cards,
    _cells_table,
    _esc,
    _figure_section,
    _files_section,
    _href,
    _notes_section,
    _pct,
    _pct_range,
    _read_json,
    latency_said,
    page_html,
)

__all__ = ["COMPARE_FIGURE", "PROMPTS_SAID", "RunColumn", "build_compare_html", "prompt_cells", "run_columns",
           "timing_columns"]

COMPARE_FIGURE = "compare.png"
COMPARE_SHOWS = "each run's success rate with its Wilson 95 % interval"  # its alt text and caption
# what the table of compare.json's `prompts` shows, as compare.md and the page say it
PROMPTS_SAID = ("The seeds whose prompt differs between runs: the same scene, the instruction in other words (each "
                "run's outcome: yes / no).")


def timing_columns(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """The chunk timing columns of a comparison's runs table (header, each run's cell), from compare.json's `runs`,
    those that tell runs apart: latency where a run has one (`sim --latency`), rtc where a run has it (`sim --rtc`),
    and the mean hand-over and in-chunk jumps where a report has them ("-" for a run without: a report written before
    they were recorded, or an episode with no hand-over). The table `sim compare` prints, compare.md and the page
    show the same (`run_columns`)."""
    columns = []
    if any(r.get("latency_ms") for r in runs):
        columns.append(("latency", [latency_said(r["latency_ms"], r.get("latency_ticks")) if r.get("latency_ms")
                                    else "none" for r in runs]))
    if any(r.get("rtc") for r in runs):
        columns.append(("rtc", ["yes" if r.get("rtc") else "no" for r in runs]))
    for key, head in (("mean_handover_jump_rad", "mean hand-over jump (rad)"),
                      ("mean_chunk_jump_rad", "mean in-chunk jump (rad)")):
        if any(isinstance(r.get(key), (int, float)) for r in runs):
            columns.append((head, [f"{r[key]:.4f}" if isinstance(r.get(key), (int, float)) else "-" for r in runs]))
    return columns


@dataclass(frozen=True)
class RunColumn:
    """One column of a comparison's runs table: its header, each run's cell, and whether it is text (left-aligned) or
    a number (right-aligned)."""

    head: str
    cells: list[str]
    text: bool = False


def run_columns(runs: Sequence[Mapping[str, Any]]) -> list[RunColumn]:
    """Every column of a comparison's runs table, from compare.json's `runs` (one written by an older version too: a
    field it lacks shows "-"): the one definition of the table `sim compare` prints, compare.md and the page, so they
    show the same columns (the strategy among them) in the same order, the chunk timing ones (`timing_columns`) where
    they tell runs apart."""

    def cells(key: str, shown=str) -> list[str]:
        return ["-" if r.get(key) is None else shown(r[key]) for r in runs]

    def ci(r: Mapping[str, Any]) -> str:
        lo, hi = (list(r.get("ci95") or []) + [None, None])[:2]
        return _pct_range(lo, hi)

    return [RunColumn("run", cells("name"), text=True), RunColumn("policy", cells("policy"), text=True),
            RunColumn("strategy", cells("strategy"), text=True),
            *(RunColumn(head, shown) for head, shown in timing_columns(runs)),
            RunColumn("success", [f"{r.get('successes', '-')}/{r.get('n_episodes', '-')}" for r in runs]),
            RunColumn("rate", [_pct(r.get("success_rate")) for r in runs]),
            RunColumn("95 % Wilson CI", [ci(r) for r in runs]),
            RunColumn("mean steps to success", cells("mean_steps_to_success", lambda v: f"{v:.1f}")),
            RunColumn("mean final distance (cm)", cells("mean_final_distance_m", lambda v: f"{100 * v:.1f}")),
            RunColumn("seeds", cells("seeds"), text=True), RunColumn("held out", cells("held_out"), text=True)]


def prompt_cells(row: Mapping[str, Any]) -> list[str]:
    """Each run's cell of a row of compare.json's `prompts` (`sim.compare.Comparison.prompts`), as compare.md and the
    page show it: its prompt and outcome there, "-" where the run did not run the seed."""
    return ["-" if p is None else f"{p} ({'yes' if ok else 'no'})" for p, ok in zip(row["prompts"], row["success"])]


def _run_link(folder: Path, run: Mapping[str, Any]) -> str:
    """The run's name, linked to its own page where the folder still has one."""
    page = Path(str(run.get("path", ""))) / REPORT_FILE
    if not page.is_file():
        return _esc(run.get("name"))
    return f"<a href='{_href(os.path.relpath(page, folder.resolve()))}'>{_esc(run.get('name'))}</a>"


def build_compare_html(folder: str | Path, title: str | None = None) -> str:
    """The page of the comparison in `folder`: the runs' success with their intervals, the paired tests, what differs,
    the seeds' prompts where runs told them other words, the warnings first, and compare.png."""
    folder = Path(folder)
    doc = _read_json(folder / COMPARE_FILE)
    if not schema_matches(doc, COMPARE_SCHEMA, repr(str(folder / COMPARE_FILE))):
        raise ValueError(f"{str(folder / COMPARE_FILE)!r}: not a comparison of sim runs (schema "
                         f"{doc.get('schema') if isinstance(doc, Mapping) else type(doc).__name__!r})")
    runs, pairs = doc.get("runs", []), doc.get("pairs", [])
    sections = ["<section id=summary><h2>Summary</h2>"
                + _cards([("task", doc.get("task")), ("runs", len(runs)), ("pairs tested", len(pairs))])
                + "</section>"]
    if doc.get("warnings"):
        sections.append("<section id=warnings><h2>Warnings</h2><ul>"
                        + "".join(f"<li class=warn>{_esc(w)}</li>" for w in doc["warnings"]) + "</ul></section>")
    columns = run_columns(runs)  # the first, the run's name, linked to its page
    rows = [[_run_link(folder, r), *(_esc(c.cells[i]) for c in columns[1:])] for i, r in enumerate(runs)]
    sections.append("<section id=runs><h2>Runs</h2>" + _cells_table([c.head for c in columns], rows,
                                                                   [c.text for c in columns]) + "</section>")
    rows = [[_esc(p.get("a")), _esc(p.get("b")), _esc(p.get("shared_seeds")), _esc(p.get("a_only")),
             _esc(p.get("b_only")), _esc(p.get("both")), _esc(p.get("neither")),
             *(_esc("-" if not isinstance(p.get(k), (int, float)) else f"{p[k]:.4g}")
               for k in ("p_value", "p_adjusted")),
             f"<span class=muted>{_esc(p.get('note') or '')}</span>"] for p in pairs]
    sections.append("<section id=pairs><h2>Paired on shared seeds</h2>" + _cells_table(
        ["A", "B", "shared seeds", "only A succeeded", "only B succeeded", "both", "neither", "exact McNemar p",
         "Holm-adjusted p (the verdict's)", "note"], rows, [True] * 2 + [False] * 7 + [True])  # the note: text
                    # each pair in one sentence, its verdict, as the command prints it and compare.md says it
                    # and its steps to success on the seeds both solved (compare.json's `steps`, where any)
                    + "<ul>" + "".join(f"<li>{_esc(line)}</li>" for p in pairs
                                       for line in (p.get("line"), (p.get("steps") or {}).get("line")) if line)
                    + "</ul>"
                    + "</section>")
    names = [str(r.get("name")) for r in runs]
    differences = doc.get("differences", [])
    if differences:
        rows = [[_esc(d.get("setting")), _esc(d.get("flag")),
                 *(_esc(v) for v in d.get("shown", []))]  # compare.py's words: "(not recorded)", "none"
                for d in differences]
        shown = _cells_table(["setting", "flag", *names], rows, left=2 + len(names))
    else:
        shown = "<p>No setting differs.</p>"
    software = doc.get("software_differences") or []  # a note: the numbers may differ with them
    if software:
        shown += ("<p>They ran on other software:</p>" + _cells_table(
            ["package", *names], [[_esc(d.get("package")), *(_esc(v) for v in d.get("shown", []))] for d in software],
            left=1 + len(names)))
    sections.append(f"<section id=differences><h2>What differs</h2>{shown}</section>")
    reworded = doc.get("prompts") or []  # `--perturb prompt=paraphrase`, `--prompt-template`: as drawn vs reworded
    if reworded:
        rows = [[_esc(row.get("seed")), *(_esc(c) for c in prompt_cells(row))] for row in reworded]
        sections.append(f"<section id=prompts><h2>Prompts</h2><p>{_esc(PROMPTS_SAID)}</p>"
                        + _cells_table(["seed", *names], rows, [False] + [True] * len(names)) + "</section>")
    notes: list[str] = []
    plots_section = _figure_section(folder, COMPARE_FIGURE, COMPARE_SHOWS, "Plots", notes)
    plots = 1 if plots_section else 0
    if plots_section:
        sections.append(plots_section)
    if doc.get("how_to_read"):
        sections.append(f"<section id=reading><h2>How to read it</h2><p>{_esc(doc['how_to_read'])}</p></section>")
    files, count = _files_section(folder)
    sections.append(files)
    if notes:
        sections.insert(0, _notes_section(notes))
    title = title or f"sim runs compared · {folder.resolve().name}"
    return page_html(title, "sim compare", f"{plural(len(runs), 'run')} · {plural(plots, 'plot')} · "
                     f"{plural(count, 'file')}", sections)
