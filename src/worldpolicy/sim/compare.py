"""Side by side: several `worldpolicy sim` runs of one task (other checkpoints, steps, chunk strategies), each with its
success rate and Wilson 95 % interval, and each pair tested on the seeds both ran (an exact McNemar test, its p
Holm-Bonferroni adjusted over the comparison's pairs), with the settings that differ between them. Two runs'
intervals overlap long after a paired test on the same scenes tells them apart: each seed is one scene (`evaluate`:
episode i is seed + i), so where both runs ran a seed, the scene's own difficulty cancels and only the seeds on which
one run succeeded and the other failed carry evidence.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worldpolicy.errors import is_integer
from worldpolicy.fileio import (
    COMPARE_FILE,
    COMPARE_SCHEMA,
    REPORT_FILE,
    SIM_REPORT_FILE,
    folder_kind,
    make_folder,
    output_folder,
    sigint_deferred,
    write_bytes_atomic,
    write_csv_atomic,
)
from worldpolicy.models import portable_checkpoint
from worldpolicy.planning import PLANNER_SETTINGS
from worldpolicy.sim.evaluate import (
    UNRECORDED_VERSION,
    EvalReport,
    flag_of,
    policy_label,
    read_report,
    wilson_interval,
)
from worldpolicy.sim.tasks import BUILTIN_POLICIES, seed_span

if TYPE_CHECKING:
    from worldpolicy.viz.compare_page import RunColumn

__all__ = ["COMPARE_CSV", "COMPARE_FILE", "COMPARE_MARKDOWN", "COMPARE_PAIRS_CSV", "NOT_RECORDED", "P_ADJUSTMENT",
           "SCHEMA", "Comparison", "PairedTest", "check_compare_out", "compare_runs", "comparison_figure",
           "holm_adjusted", "mcnemar_p", "settings_differences", "software_differences", "write_comparison"]

SCHEMA = COMPARE_SCHEMA
# The comparison's table as markdown, beside compare.json (`COMPARE_FILE`), compare.png and index.html
COMPARE_MARKDOWN = "compare.md"
# the comparison for a spreadsheet or pandas (`Comparison.csv_tables`): a row per run, and a row per pair of runs
COMPARE_CSV = "compare.csv"
COMPARE_PAIRS_CSV = "compare_pairs.csv"
# compare_pairs.csv's columns: compare.json's pair fields, its steps test's prefixed `steps_` (the mean difference in
# control steps, b's minus a's)
PAIR_COLUMNS = ("a", "b", "shared_seeds", "a_only", "b_only", "both", "neither", "p_value", "p_adjusted",
                "steps_solved_by_both", "steps_a_faster", "steps_b_faster", "steps_mean_difference", "steps_p_value",
                "steps_p_adjusted", "note")
# The least a run's column of the printed table turned for a narrow terminal (`_turned`) is given: runs that would
# each get less are printed in further blocks
TURNED_RUN_WIDTH = 20
# Fewer shared seeds than this is said plainly: with d seeds where the runs differ the smallest p the exact test can
# reach is 2 ** (1 - d), so a handful of seeds tells apart only runs that differ on nearly every one.
FEW_SHARED_SEEDS = 10
# Settings that change what a success is measured against (the scenes and success check, the arm, the time per
# step): a difference is warned about, not only listed. Another task is refused.
WARNED_SETTINGS = {"task_version": "the task's definition (its scenes and success check)",
                   "robot": "the arm", "control_hz": "the control rate (time per step)"}


# how a comparison's p-values are adjusted for its several paired tests (`holm_adjusted`), as compare.json names it
P_ADJUSTMENT = "holm-bonferroni"


class _NotRecorded:
    """A setting a run's report has no entry for (an older report, another kind of policy), told apart from one it
    recorded as null (`--execute-steps` not given: none asked for), which is shown as "none"."""

    def __repr__(self) -> str:
        return "NOT_RECORDED"


NOT_RECORDED = _NotRecorded()


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Two-sided exact McNemar p-value: under "neither run is better", each of the n = a_only + b_only discordant seeds
    (one run succeeded, the other failed) is A's or B's with probability 1/2, so p = P(a split at least as uneven as
    this) of Binomial(n, 1/2), both tails; 1.0 when no seed is discordant. Exact, with math.comb: the chi-squared
    approximation is poor at the few discordant seeds an evaluation has."""
    for name, value in (("a_only", a_only), ("b_only", b_only)):
        if not is_integer(value) or value < 0:
            raise ValueError(f"{name}: expected a count >= 0, got {value!r}")
    n, k = int(a_only) + int(b_only), min(int(a_only), int(b_only))
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the i-th smallest of m is multiplied by m - i (i from 0),
    each kept at least the one before it in that order and capped at 1. An adjusted p < 0.05 bounds the chance that
    any of the m tests "differs" by chance alone at 5 % (uncorrected, each of 10 pairs has its own 5 %, and some pair
    of runs equal in truth "differed" far more often); one test is left as it is."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for i, k in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - i) * p_values[k]))
        adjusted[k] = running
    return adjusted


SIGNIFICANCE = 0.05  # the level a verdict is said at: a pair whose adjusted p is below it differs


def _tested(test: str, p: float, adjusted: float, tests: int, differ: str, unreachable: str = "") -> str:
    """A pair's test as its line says it: `exact McNemar p = 0.03 (differ at the 5 % level: a is better)`, with the
    Holm-adjusted p the verdict rests on where `tests` pairs were tested; `unreachable`: why no split could differ."""
    said = f"{test} p = {p:.4g}"
    if tests > 1:
        said += f", Holm-adjusted p = {adjusted:.4g} over the {tests} pairs tested"
    verdict = (f"differ at the 5 % level: {differ}" if adjusted < SIGNIFICANCE
               else f"no significant difference at the 5 % level{unreachable}")
    return f"{said} ({verdict})"


@dataclass(frozen=True)
class PairedTest:
    """Runs `a` and `b` on the seeds both ran (`shared`): on how many only one of them succeeded (`a_only`,
    `b_only`: the discordant seeds, all the evidence the test uses), both or neither, and the exact McNemar p-value.
    `p_value` is None where they cannot be paired (no shared seed, or the task's definition differs, so a seed is not
    the same scene); `note` says so, and says when few seeds are shared. `p_adjusted`: `p_value` adjusted over the
    `tests` pairs of the comparison that have one (`holm_adjusted`), which the verdict rests on when there are
    several; the raw `p_value` where the pair is tested alone."""

    a: str
    b: str
    shared: tuple[int, ...]
    a_only: int
    b_only: int
    both: int
    neither: int
    p_value: float | None
    note: str
    p_adjusted: float | None = None
    tests: int = 1
    # steps to success on the shared seeds both solved (`steps_line`): on how many each run took fewer (ties are left
    # out, as a sign test leaves them), b's mean minus a's, the exact sign test (`mcnemar_p`: the same two-sided
    # binomial) and its p Holm-adjusted over the pairs that have one; None where no shared seed was solved by both
    a_faster: int = 0
    b_faster: int = 0
    solved_by_both: int = 0
    steps_difference: float | None = None
    steps_p: float | None = None
    steps_p_adjusted: float | None = None
    steps_tests: int = 1

    def line(self) -> str:
        """The pair in one sentence, as the command prints it and compare.md says it."""
        if self.p_value is None:
            return f"{self.a} vs {self.b}: not paired: {self.note}"
        n = len(self.shared)
        rates = (f"{self.a} {self.a_only + self.both}/{n}, {self.b} {self.b_only + self.both}/{n} on the "
                 f"{n} shared seed{'s' if n != 1 else ''}")
        p = _tested("exact McNemar", self.p_value, self.p_adjusted, self.tests, f"{self._better} is better")
        text = (f"{self.a} vs {self.b}: {rates}; only {self.a} succeeded on {self.a_only}, only {self.b} on "
                f"{self.b_only}: {p}")
        return f"{text}; {self.note}" if self.note else text

    @property
    def _better(self) -> str:
        """The run that succeeded on more of the discordant seeds (where the pair differs: not tied)."""
        return self.a if self.a_only > self.b_only else self.b

    def verdict(self) -> str:
        """The pair's verdict in a few words, as its `line` ends: which run is better at the 5 % level (on the
        adjusted p), no significant difference, or not paired (`note` says why)."""
        if self.p_value is None:
            return "not paired"
        return f"{self._better} is better" if self.p_adjusted < SIGNIFICANCE else "no significant difference"

    def steps_line(self) -> str | None:
        """The pair's steps to success in one sentence, on the shared seeds both solved (None where there is none):
        two runs that both solve every seed, one in twice the steps, had only their unpaired means side by side."""
        if self.steps_p is None:
            return None
        n, diff = self.solved_by_both, self.steps_difference
        more = ("the same on average" if round(diff, 1) == 0 else  # as shown: not "took 0.0 more"
                f"{self.b if diff > 0 else self.a} took {abs(diff):.1f} more on average")
        faster = self.a if self.a_faster > self.b_faster else self.b  # differ: not tied
        untied = self.a_faster + self.b_faster
        # the smallest p of n seeds not tied is 2 / 2**n: under 6, no split could say "differ"
        unreachable = (f", which {untied} seed{'s' if untied != 1 else ''} not tied cannot reach"
                       if mcnemar_p(untied, 0) >= 0.05 else "")
        p = _tested("exact sign test", self.steps_p, self.steps_p_adjusted, self.steps_tests, f"{faster} is faster",
                    unreachable)
        tied = n - untied
        return (f"{self.a} vs {self.b}, steps to success on the {n} shared seed{'s' if n != 1 else ''} both solved: "
                f"{more}; {self.a} took fewer on {self.a_faster}, {self.b} on {self.b_faster}"
                + (f", {tied} tied" if tied else "") + f": {p}")

    def lines(self) -> list[str]:
        """What the command prints and compare.md lists of the pair: its `line`, then its `steps_line` where any."""
        return [line for line in (self.line(), self.steps_line()) if line]

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "shared_seeds": len(self.shared), "seeds": list(self.shared),
                "a_only": self.a_only, "b_only": self.b_only, "both": self.both, "neither": self.neither,
                "p_value": self.p_value, "p_adjusted": self.p_adjusted, "note": self.note,
                "line": self.line(),  # the verdict, as the command prints it: the page shows it
                "steps": None if self.steps_p is None else {
                    "solved_by_both": self.solved_by_both, "a_faster": self.a_faster, "b_faster": self.b_faster,
                    "mean_difference": self.steps_difference, "p_value": self.steps_p,
                    "p_adjusted": self.steps_p_adjusted, "test": "exact sign test", "line": self.steps_line()}}


@dataclass(frozen=True)
class Comparison:
    """Runs by name (`names`, their folders `paths`, their reports `reports`), every pair's `PairedTest` in order
    (1 vs 2, 1 vs 3, ..., 2 vs 3, ...), the settings that differ (`settings_differences`) and what to be warned of
    (`warnings`: a setting that changes what success means, training scenes, an incomplete run) and the software
    that differs (`software`)."""

    names: tuple[str, ...]
    paths: tuple[str, ...]
    reports: tuple[EvalReport, ...]
    pairs: tuple[PairedTest, ...]
    differences: tuple[tuple[str, str, tuple[Any, ...]], ...]  # (setting, its flag, the value of each run)
    warnings: tuple[str, ...]
    # (package, each run's version as shown) where the runs ran on other software (`software_differences`): a note,
    # not a setting; where it differs, so may the numbers
    software: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def task(self) -> str:
        return self.reports[0].task

    def prompts(self) -> list[dict[str, Any]]:
        """The seeds two or more runs ran with other prompts (`--perturb prompt=paraphrase`, `--prompt-template`: the
        same scene, the instruction in other words), each with every run's prompt and outcome there (None where a run
        did not run it), as compare.json stores them: as drawn against reworded, scene by scene."""
        ran = [{e.seed: e for e in report.episodes} for report in self.reports]
        rows = []
        for seed in sorted({seed for episodes in ran for seed in episodes}):
            here = [episodes.get(seed) for episodes in ran]
            if len({e.prompt for e in here if e is not None}) > 1:
                rows.append({"seed": seed, "prompts": [None if e is None else e.prompt for e in here],
                             "success": [None if e is None else bool(e.success) for e in here]})
        return rows

    def run_rows(self) -> list[dict[str, Any]]:
        """Each run's headline, as compare.json stores it."""
        rows = []
        for name, path, report in zip(self.names, self.paths, self.reports):
            doc = report.to_json()
            seeds = [e.seed for e in report.episodes]
            rows.append({
                "name": name, "path": str(Path(path).resolve()), "policy": policy_label(report),
                "task_version": report.task_version,
                "strategy": report.strategy.get("kind"), "n_episodes": doc["n_episodes"],
                "episodes_requested": doc["episodes_requested"], "successes": doc["successes"],
                "success_rate": doc["success_rate"], "ci95": doc["ci95"],
                "mean_steps_to_success": doc["mean_steps_to_success"],
                "mean_final_distance_m": doc["mean_final_distance_m"], "seeds": seed_span(sorted(seeds)),
                "training_scenes": doc["training_scenes"], "held_out": _held_out(report),
                "latency_ms": report.latency["ms"], "latency_ticks": report.latency["ticks"], "rtc": report.rtc,
                "mean_handover_jump_rad": doc["mean_handover_jump_rad"],
                "mean_chunk_jump_rad": doc["mean_chunk_jump_rad"],
            })
        return rows

    def run_columns(self):
        """The runs table's columns (`viz.compare_page.run_columns`: a `RunColumn` each), as the printed table,
        compare.md and the page show them."""
        from worldpolicy.viz.compare_page import run_columns

        return run_columns(self.run_rows())

    def csv_tables(self) -> dict[str, tuple[tuple[str, ...], list[dict[str, Any]]]]:
        """compare.csv and compare_pairs.csv, by name: (columns, rows) each. A run's row is compare.json's (its 95 %
        interval as `ci95_low`, `ci95_high`; its training scenes as their JSON); a pair's `PAIR_COLUMNS`."""
        runs = [{name: value for key, value in row.items()
                 for name, value in (zip(("ci95_low", "ci95_high"), value) if key == "ci95" else [(key, value)])}
                for row in self.run_rows()]
        pairs = []
        for pair in self.pairs:
            doc = pair.to_json()
            steps = doc.pop("steps") or {}
            pairs.append({**doc, **{f"steps_{k}": v for k, v in steps.items()}})
        return {COMPARE_CSV: (tuple(runs[0]), runs), COMPARE_PAIRS_CSV: (PAIR_COLUMNS, pairs)}

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "task": self.task, "runs": self.run_rows(),
                "pairs": [p.to_json() for p in self.pairs], "p_adjustment": P_ADJUSTMENT,
                "differences": [{"setting": s, "flag": f, "values": [None if x is NOT_RECORDED else x for x in v],
                                 "shown": [_shown(x) for x in v]} for s, f, v in self.differences],
                "software_differences": [{"package": name, "shown": list(shown)} for name, shown in self.software],
                "prompts": self.prompts(),
                "warnings": list(self.warnings), "how_to_read": READING}

    def table(self, width: int | None = None) -> str:
        """The runs as a plain-text table (text columns left-aligned, numbers right-aligned), then each pair's line, the
        settings that differ (compare.md's "What differs", in one line) and the warnings: what the command prints.
        `width`: the terminal's columns (None: no limit, as for a pipe or an agent). A runs table wider than that (a
        dozen columns, ~200 characters) is printed turned (`_turned`), and the sentences wrapped to it; compare.md and
        the page keep the wide table."""
        columns = self.run_columns()
        widths = [max(map(len, [c.head, *c.cells])) for c in columns]
        lines = ["  ".join(cell.ljust(w) if c.text else cell.rjust(w) for c, cell, w in zip(columns, row, widths))
                 .rstrip() for row in zip(*([c.head, *c.cells] for c in columns))]
        if width is not None and max(map(len, lines)) > width:
            lines = _turned(columns, width)
        # a clean run and a --perturb one compared showed no sign of the shift they were compared for
        differs = "; ".join(f"{s} ({f}): {' | '.join(_shown(v) for v in values)}" for s, f, values in self.differences)
        reworded = self.prompts()
        said = ([line for p in self.pairs for line in p.lines()]
                + ([f"settings that differ ({' | '.join(self.names)}): {differs}"] if differs else [])
                + ([f"prompts differ on {len(reworded)} seed{'s' if len(reworded) != 1 else ''} "
                    f"({seed_span([r['seed'] for r in reworded])}), e.g. {reworded[0]['seed']}: "
                    + " | ".join(_shown(p) for p in reworded[0]["prompts"]) + " (compare.md lists each)"]
                   if reworded else [])
                + ([f"software that differs ({' | '.join(self.names)}): {self._software_said()}"]
                   if self.software else [])
                + [f"warning: {w}" for w in self.warnings])
        if width is not None:
            said = [textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) for line in said]
        return "\n".join(lines + said)

    def _software_said(self) -> str:
        """`torch 2.5.1 | 2.6.0; numpy ...`: the software that differs, each run's version, as the table and
        compare.md say it."""
        return "; ".join(f"{name} {' | '.join(shown)}" for name, shown in self.software)

    def markdown(self) -> str:
        columns = self.run_columns()
        lines = [f"# {self.task}: {len(self.names)} sim runs compared", "",
                 "| " + " | ".join(c.head for c in columns) + " |",
                 "|" + "".join("---|" if c.text else "---:|" for c in columns)]
        lines += ["| " + " | ".join(row) + " |" for row in zip(*(c.cells for c in columns))]
        lines += ["", "## Paired on shared seeds", "",
                  ("| A | B | shared seeds | only A succeeded | only B succeeded | both | neither | exact McNemar p | "
                   "Holm-adjusted p |"),
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for p in self.pairs:
            shown = ["-" if v is None else f"{v:.4g}" for v in (p.p_value, p.p_adjusted)]
            lines.append(f"| {p.a} | {p.b} | {len(p.shared)} | {p.a_only} | {p.b_only} | {p.both} | {p.neither} | "
                         f"{' | '.join(shown)} |")
        tested = max((p.tests for p in self.pairs if p.p_value is not None), default=0)
        if tested > 1:
            lines += ["", f"The verdicts below rest on the Holm-adjusted p ({tested} pairs tested)."]
        lines += ["", *(f"- {line}" for p in self.pairs for line in p.lines()), ""]
        lines += ["## What differs", ""]
        if self.differences:
            lines += [f"| setting | flag | {' | '.join(self.names)} |", "|---|---|" + "---|" * len(self.names)]
            lines += [f"| {s} | {f} | {' | '.join(_shown(v) for v in values)} |" for s, f, values in self.differences]
        else:
            lines.append("No setting differs.")
        if self.software:
            lines += ["", f"They ran on other software: {self._software_said()}."]
        reworded = self.prompts()
        if reworded:
            from worldpolicy.viz.compare_page import PROMPTS_SAID, prompt_cells

            lines += ["", "## Prompts", "", PROMPTS_SAID, "",
                      f"| seed | {' | '.join(self.names)} |", "|---:|" + "---|" * len(self.names)]
            lines += [f"| {row['seed']} | {' | '.join(prompt_cells(row))} |" for row in reworded]
        if self.warnings:
            lines += ["", "## Warnings", "", *(f"- {w}" for w in self.warnings)]
        lines += ["", "## How to read it", "", READING]
        return "\n".join(lines) + "\n"


def _turned(columns: Sequence[RunColumn], width: int) -> list[str]:
    """The runs table turned for a terminal `width` columns wide: a line per column (its head first) and a column per
    run, side by side as far as runs `TURNED_RUN_WIDTH` wide fit, in further blocks (headed by the run names again)
    past that. A cell wider than its run's share of the line goes on below it, wrapped, never cut: a shortened seed
    span or held-out note would hide what tells the runs apart. Left-aligned: a run's column holds text and numbers."""
    heads = max(len(c.head) for c in columns)
    runs = len(columns[0].cells)
    per_block = max(1, (width - heads) // (2 + TURNED_RUN_WIDTH))
    lines: list[str] = []
    for first in range(0, runs, per_block):
        block = range(first, min(runs, first + per_block))
        natural = [max(len(c.cells[k]) for c in columns) for k in block]
        share = max(TURNED_RUN_WIDTH, (width - heads) // len(block) - 2)
        widths = natural if heads + sum(2 + w for w in natural) <= width else [min(w, share) for w in natural]
        lines += [""] if lines else []
        for c in columns:
            parts = [textwrap.wrap(c.cells[k], w, break_on_hyphens=False) or [""] for k, w in zip(block, widths)]
            for i in range(max(map(len, parts))):
                cells = [(part[i] if i < len(part) else "").ljust(w) for part, w in zip(parts, widths)]
                lines.append("  ".join([(c.head if i == 0 else "").ljust(heads), *cells]).rstrip())
    return lines


READING = ("A seed is one scene, so two runs on the same seeds can be paired: the scenes both solve or both fail say "
           "nothing about which run is better, only those one run solves and the other does not do. The exact McNemar "
           "test asks how likely a split of those discordant seeds at least this uneven is if neither run were "
           "better (p < 0.05: unlikely). Paired, it tells runs apart long before their Wilson intervals stop "
           "overlapping, as the intervals also carry how hard the scenes happened to be. Runs that share no seeds "
           "compare by their intervals only. With more than two runs, several pairs are tested, and some pair would "
           "often look different by chance alone: each p is also given Holm-Bonferroni adjusted over the pairs tested "
           "(of the m pairs' p-values, the smallest times m, the next times m - 1, ..., each never below the one "
           "before, capped at 1), and the verdict rests on the adjusted p, so the chance of any false \"differ\" stays "
           "under 5 %. With two runs one pair is tested, and its adjusted p is its p. Steps to success are paired "
           "likewise, on the shared seeds both runs solved: the exact sign test asks how likely a split at least this "
           "uneven of the seeds each solved in fewer steps is if neither were faster (ties left out), Holm-adjusted "
           "over the pairs as success is, in a family of its own: the success verdicts keep their chance of any false "
           "\"differ\" under 5 % and the steps verdicts theirs, not the two together.")


def _held_out(report: EvalReport) -> str:
    """Whether a run's episodes are new scenes to its policy, in a few words: the baselines learned none; a
    checkpoint's training data says (`training_scenes`), or not."""
    if (report.policy_settings or {}).get("kind") in BUILTIN_POLICIES:
        return "yes (a baseline: trained on nothing)"
    if report.training_scenes is None:
        return "not known"
    seen = _training_seeds_run(report)
    return f"no: {len(seen)} of {len(report.episodes)} are training scenes" if seen else "yes"


def _training_seeds_run(report: EvalReport) -> list[int]:
    """The seeds of a run's episodes that are its checkpoint's training scenes (`EvalReport.training_scenes`), sorted;
    none where its training data does not say."""
    scenes = report.training_scenes
    return sorted(set(scenes.seeds).intersection(e.seed for e in report.episodes)) if scenes is not None else []


def _shown(value: Any) -> str:
    """A setting's value as the tables show it: "(not recorded)" where the report has no entry, "none" where it
    recorded null."""
    if value is NOT_RECORDED:
        return "(not recorded)"
    return "none" if value is None else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def _read_run(path: str | Path) -> EvalReport:
    """The report of the sim run in folder `path`; a folder that holds no sim run is refused, saying what it holds."""
    from worldpolicy.fileio import folder_kind

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"runs: {str(folder)!r} " + ("is a file, not a sim run folder" if folder.exists()
                                                               else "does not exist"))
    found = folder_kind(folder)
    if found is None or found[0].writer != "sim":
        held = "nothing worldpolicy writes" if found is None else f"{found[0].what} ({found[1]})"
        hint = ""
        if found is None:
            runs = sorted(p.name for p in folder.iterdir() if (p / SIM_REPORT_FILE).is_file())
            # a folder of runs (the `--out`s of several `worldpolicy sim`), or a run still on its first episode
            hint = (f"; its subfolders {', '.join(runs[:4])}{', ...' if len(runs) > 4 else ''} are: give those"
                    if runs else " (a `worldpolicy sim` run writes it once its first episode has finished)")
        raise ValueError(f"runs: {str(folder)!r} is not a sim run: it holds {held}, no {SIM_REPORT_FILE} of "
                         f"`worldpolicy sim`{hint}")
    report = read_report(folder)
    if not report.episodes:  # `worldpolicy sim` writes its report after the first episode: one made otherwise
        raise ValueError(f"runs: {str(folder)!r} holds a sim report of no finished episode: nothing to compare")
    return report


def _names(paths: Sequence[Path]) -> list[str]:
    """Each run by its folder's name, or the path as given where two folders share a name (a/sim, b/sim)."""
    names = [p.name or str(p) for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths)]


def _settings(report: EvalReport) -> dict[str, Any]:
    """What a run was run with, by setting (`EvalReport.settings`), plus what a comparison shows though a resume
    leaves it out: which checkpoint (its name and path, not only its files' digest), the task's version (and a
    baseline's, unrecorded ones as `UNRECORDED_VERSION`), a plan where a run of `worldpolicy sim` made none (none,
    not unrecorded: `planning.PLANNER_SETTINGS`) and the episodes run. The path as a report now records it
    (`models.portable_checkpoint`): an older report's folder of the shipped model is `shipped`, so a run from before
    and one since differ in nothing there. Not the paraphrases a run drew from:
    `Comparison.prompts` lists what each was told, seed by seed."""
    flat = report.settings()
    del flat["paraphrases"]
    flat["policy"] = policy_label(report)
    path = (report.policy_settings or {}).get("path")
    if path is not None:
        flat["policy_settings.path"] = str(portable_checkpoint(path)) if isinstance(path, str) else path
    flat["task_version"] = _task_version(report)
    kind = (report.policy_settings or {}).get("kind")
    if kind in BUILTIN_POLICIES:  # a baseline's version: one an older report did not record as a resume takes it
        version = report.versions()[f"{kind} policy"]
        flat["policy_settings.version"] = UNRECORDED_VERSION if version is None else version
    if kind in ("checkpoint", "server", *BUILTIN_POLICIES):  # `worldpolicy sim`'s policies: one that did not plan
        for key in PLANNER_SETTINGS:  # (`--plan` left out, or a policy that cannot) is shown planning none
            flat.setdefault(f"policy_settings.{key}", None)
    flat["episodes"] = len(report.episodes)
    return flat


def settings_differences(reports: Sequence[EvalReport]) -> list[tuple[str, str, tuple[Any, ...]]]:
    """(setting, its `worldpolicy sim` flag, each run's value) for every setting that is not the same in all of
    `reports`: `NOT_RECORDED` where a run's report has no entry for it, None where it recorded null (a report's
    unrecorded task or baseline version is `UNRECORDED_VERSION`'s, as a resume takes it); the k asked for
    (`strategy.execute_steps_requested`) only where it differs otherwise than the k used."""
    flats = [_settings(r) for r in reports]
    names = list(dict.fromkeys(name for flat in flats for name in flat))
    out = []
    for name in names:
        values = tuple(flat.get(name, NOT_RECORDED) for flat in flats)
        if any(v != values[0] for v in values[1:]):
            kind = (reports[0].policy_settings or {}).get("kind")
            flag = "--episodes" if name == "episodes" else "(the installed worldpolicy)" if name == "task_version" \
                else flag_of(name, kind)
            out.append((name, flag, values))
    # the k asked for, where each run used the k it asked for: the same --execute-steps row twice
    used = next((values for name, _, values in out if name == "strategy.execute_steps"), None)
    return [row for row in out if not (row[0] == "strategy.execute_steps_requested" and row[2] == used)]


def software_differences(reports: Sequence[EvalReport]) -> list[tuple[str, tuple[str, ...]]]:
    """(package, each run's version as shown) for each package (`extras.software_versions`' names, the checkout's
    commit among them) whose version is not the same in every run of `reports` that recorded its software: `none`
    where it was not installed, `(not recorded)` where a run's report has no `software` (older: it says nothing, so
    it differs from none). Empty where fewer than two runs recorded theirs."""
    recorded = [r.software for r in reports if isinstance(r.software, dict)]
    if len(recorded) < 2:
        return []
    out = []
    for name in dict.fromkeys(name for software in recorded for name in software):
        if len({software.get(name) for software in recorded}) > 1:
            out.append((name, tuple(_shown(r.software.get(name) if isinstance(r.software, dict) else NOT_RECORDED)
                                    for r in reports)))
    return out


def _task_version(report: EvalReport) -> int:
    """The task definition that judged the run: one that did not record it ran the definitions before versions were
    recorded (`UNRECORDED_VERSION`), as `evaluate.version_changes` takes it."""
    return UNRECORDED_VERSION if report.task_version is None else report.task_version


def _pair(a: str, ra: EvalReport, b: str, rb: EvalReport) -> PairedTest:
    if _task_version(ra) != _task_version(rb):
        versions = f"v{_task_version(ra)} vs v{_task_version(rb)}"
        return PairedTest(a, b, (), 0, 0, 0, 0, None,
                          f"the task's definition differs ({versions}): a seed is not the same scene and success "
                          "check in both, so only their unpaired intervals compare them")
    oa = {e.seed: bool(e.success) for e in ra.episodes}
    ob = {e.seed: bool(e.success) for e in rb.episodes}
    shared = tuple(sorted(oa.keys() & ob.keys()))
    if not shared:
        return PairedTest(a, b, (), 0, 0, 0, 0, None,
                          f"no shared seeds ({a}: {seed_span(sorted(oa))}, {b}: {seed_span(sorted(ob))}), so only "
                          f"their unpaired intervals compare them; rerun one with the other's --seed and --episodes")
    a_only = sum(oa[s] and not ob[s] for s in shared)
    b_only = sum(ob[s] and not oa[s] for s in shared)
    both = sum(oa[s] and ob[s] for s in shared)
    notes = []
    if len(shared) < max(len(oa), len(ob)):
        notes.append(f"paired on the {'seed' if len(shared) == 1 else f'{len(shared)} seeds'} both ran ({a} ran "
                     f"{len(oa)}, {b} {len(ob)})")
    if len(shared) < FEW_SHARED_SEEDS:
        notes.append(f"only {len(shared)} shared seed{'s' if len(shared) != 1 else ''}: the test can tell apart "
                     "only runs that differ on nearly every one")
    p = mcnemar_p(a_only, b_only)
    sa = {e.seed: e.success_step for e in ra.episodes if e.success and e.success_step is not None}
    sb = {e.seed: e.success_step for e in rb.episodes if e.success and e.success_step is not None}
    solved = [s for s in shared if s in sa and s in sb]
    steps: dict[str, Any] = {}
    if solved:
        a_faster, b_faster = sum(sa[s] < sb[s] for s in solved), sum(sb[s] < sa[s] for s in solved)
        steps_p = mcnemar_p(a_faster, b_faster)
        steps = {"a_faster": a_faster, "b_faster": b_faster, "solved_by_both": len(solved), "steps_p": steps_p,
                 "steps_p_adjusted": steps_p, "steps_difference": float(np.mean([sb[s] - sa[s] for s in solved]))}
    return PairedTest(a, b, shared, a_only, b_only, both, len(shared) - a_only - b_only - both, p, "; ".join(notes),
                      p_adjusted=p, **steps)  # alone; `compare_runs` adjusts them over the comparison's tests


def _warnings(names: Sequence[str], reports: Sequence[EvalReport],
              differences: Sequence[tuple[str, str, tuple[Any, ...]]]) -> list[str]:
    out = []
    for setting, _, values in differences:
        if setting in WARNED_SETTINGS:
            each = ", ".join(f"{n}: {_shown(v)}" for n, v in zip(names, values))
            out.append(f"{setting} differs ({each}): {WARNED_SETTINGS[setting]} is not the same, so the success "
                       "rates measure different things")
    for name, report in zip(names, reports):
        seen = _training_seeds_run(report)
        if seen:
            out.append(f"{name}: {len(seen)} of its {len(report.episodes)} episodes ({seed_span(seen)}) are scenes "
                       f"its checkpoint was trained on ({report.training_scenes.source}): its success rate is not a "
                       "held-out one")
        if report.requested > len(report.episodes):
            out.append(f"{name} is incomplete: {len(report.episodes)} of {report.requested} episodes ran "
                       "(`worldpolicy sim --resume` finishes it)")
    return out


def compare_runs(runs: Sequence[str | Path]) -> Comparison:
    """Compare the `worldpolicy sim` runs in the folders `runs` (two or more, of one task): each folder's
    report.json is read (a folder that is not a sim run is refused, saying what it holds), every pair is tested on
    their shared seeds (`PairedTest`), and the settings that differ are listed (`settings_differences`), and the
    software (`software_differences`)."""
    if isinstance(runs, (str, Path)) or len(runs) < 2:
        given = 1 if isinstance(runs, (str, Path)) else len(runs)
        raise ValueError(f"runs: expected two or more sim run folders to compare, got {given}")
    paths = [Path(r) for r in runs]
    seen: dict[Path, str] = {}
    for given, path in zip(runs, paths):  # named as given: Path drops a trailing slash, and 'a' 'a/' read as one
        if path.resolve() in seen:
            raise ValueError(f"runs: {str(given)!r} is given twice (as {seen[path.resolve()]!r} too): a run "
                             "compared with itself says nothing")
        seen[path.resolve()] = str(given)
    reports = [_read_run(p) for p in paths]
    names = _names(paths)
    tasks = dict.fromkeys(r.task for r in reports)
    if len(tasks) > 1:
        each = ", ".join(f"{n}: {r.task}" for n, r in zip(names, reports))
        raise ValueError(f"runs: they are of different tasks ({each}); success on one task says nothing of another: "
                         "compare runs of one task")
    differences = settings_differences(reports)
    pairs = [_pair(names[i], reports[i], names[j], reports[j])
             for i in range(len(reports)) for j in range(i + 1, len(reports))]
    tested = [k for k, p in enumerate(pairs) if p.p_value is not None]  # a pair not paired has no test to adjust
    for k, adjusted in zip(tested, holm_adjusted([pairs[k].p_value for k in tested])):
        pairs[k] = replace(pairs[k], p_adjusted=adjusted, tests=len(tested))
    timed = [k for k, p in enumerate(pairs) if p.steps_p is not None]  # pairs with a shared seed both solved
    for k, adjusted in zip(timed, holm_adjusted([pairs[k].steps_p for k in timed])):
        pairs[k] = replace(pairs[k], steps_p_adjusted=adjusted, steps_tests=len(timed))
    return Comparison(tuple(names), tuple(str(p) for p in paths), tuple(reports), tuple(pairs),
                      tuple(differences), tuple(_warnings(names, reports, differences)),
                      tuple(software_differences(reports)))


# How far under an axis (points) compare.png's legends and note begin: below its tick labels and axis label
UNDER_LABEL_PT = 27
# Under compare.png's success rates where the runs ran different seeds: rates over different scenes are not like for
# like, which the figure showed only as grey cells in the seed grid beside them
SEEDS_DIFFER = ("the runs ran different seeds (outcome per seed, right): each rate is over its own run's scenes; "
                "the paired tests use only the seeds both ran")


def comparison_figure(comparison: Comparison):
    """compare.png: each run's success rate with its Wilson 95 % interval, a note under them where the runs ran
    different seeds (`SEEDS_DIFFER`); every run's outcome per seed (a column per seed, grey where a run did not run
    it); the steps to success of the successful episodes and every episode's final distance, one column of points per
    run with its mean. Drawn like the viz figures (a private Agg figure)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import offset_copy

    from worldpolicy.viz.plots import (
        FAILURE_COLOR,
        LABEL_FONTSIZE,
        LEGEND_FONTSIZE,
        LINE_COLOR,
        SUCCESS_COLOR,
        _grid_margins,
        _literal,
        _new_figure,
        _wrap_to_width,
        figure_title,
        style_ticks,
        whole_number_ticks,
    )

    def under(ax, more: float = 0.0):
        """Where a legend or note goes under `ax`'s axis label: a fixed distance below the axis, whatever its height
        (the runs' count sets it: at a fraction of it, 14 runs put the seed grid's legend on the distances' axis and
        the distances' legend off the figure)."""
        return offset_copy(ax.transAxes, fig=fig, y=-(UNDER_LABEL_PT + more), units="points")

    names, reports = comparison.names, comparison.reports
    k = len(names)
    labels = [_literal(n if len(n) <= 28 else f"…{n[-27:]}") for n in names]
    fig = _new_figure(12.0, 3.35 + 2 * max(2.0, 0.35 * k))  # room below for the distances' legend
    top = figure_title(fig, f"{comparison.task}: {k} sim runs compared",
                       "success rate with Wilson 95 % CI · outcome per seed · steps to success · final distance")
    names_in = max(0.8, 0.07 * max(len(x) for x in labels))  # the run names' width (in), left of each column
    _grid_margins(fig, 2, 2, top=top, left=names_in, bottom=0.85, hgap=1.1, wgap=names_in + 0.3)
    (rate, grid), (steps, distance) = fig.subplots(2, 2)

    ys = np.arange(k)
    for y, report in zip(ys, reports):
        lo, hi = wilson_interval(report.successes, len(report.episodes))
        p = report.success_rate
        rate.errorbar(p, y, xerr=[[p - lo], [hi - p]], fmt="o", color=LINE_COLOR, capsize=4)
        rate.annotate(f"{report.successes}/{len(report.episodes)}", (p, y), xytext=(0, 7), textcoords="offset points",
                      ha="center", fontsize=LEGEND_FONTSIZE)
    rate.set_xlim(-0.02, 1.02)
    rate.set_xlabel("success rate (95 % Wilson CI)", fontsize=LABEL_FONTSIZE)
    if len({frozenset(e.seed for e in r.episodes) for r in reports}) > 1:  # as the seeds column and pair lines say
        width_px = rate.get_position().width * fig.get_figwidth() * fig.dpi
        rate.text(0.5, 0, "\n".join(_wrap_to_width(fig, SEEDS_DIFFER, width_px, LEGEND_FONTSIZE)), ha="center",
                  va="top", transform=under(rate, 5), fontsize=LEGEND_FONTSIZE, color="0.3")

    seeds = sorted({e.seed for r in reports for e in r.episodes})
    column = {s: i for i, s in enumerate(seeds)}
    cells = np.zeros((k, len(seeds)))  # 0: not run, 1: failure, 2: success
    for y, report in zip(ys, reports):
        for e in report.episodes:
            cells[y, column[e.seed]] = 2 if e.success else 1
    grid.imshow(cells, cmap=ListedColormap(["0.88", FAILURE_COLOR, SUCCESS_COLOR]), vmin=0, vmax=2, aspect="auto",
                interpolation="nearest")
    grid.xaxis.set_major_locator(whole_number_ticks(nbins=8))
    grid.xaxis.set_major_formatter(FuncFormatter(lambda x, _: str(seeds[int(x)]) if 0 <= int(x) < len(seeds) else ""))
    grid.set_xlabel("episode seed", fontsize=LABEL_FONTSIZE)
    grid.legend(handles=[Patch(color=SUCCESS_COLOR, label="success"), Patch(color=FAILURE_COLOR, label="failure"),
                         Patch(color="0.88", label="not run")],
                fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, 0), bbox_transform=under(grid),
                ncol=3, frameon=False)

    rates = {report.control_hz for report in reports}  # the steps' unit: at one rate where the runs share it
    unit = f"control steps at {next(iter(rates)):g} Hz" if len(rates) == 1 else "control steps, at each run's rate"
    for ax, values_of, label in (
        (steps, lambda r: [e.success_step for e in r.episodes if e.success and e.success_step is not None],
         f"steps to success [{unit}] (successful episodes)"),
        (distance, lambda r: [100 * e.final_distance_m for e in r.episodes], "final distance [cm] (every episode)"),
    ):
        for y, report in zip(ys, reports):
            values = np.asarray(values_of(report), dtype=float)
            if not len(values):  # only steps: every episode has a final distance
                ax.annotate("no success", (0, y), xycoords=("axes fraction", "data"), xytext=(4, 0),
                            textcoords="offset points", va="center", fontsize=LEGEND_FONTSIZE, color="0.4")
                continue
            jitter = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(1)
            won = np.array([e.success for e in report.episodes]) if ax is distance else np.ones(len(values), bool)
            for mask, color in ((won, SUCCESS_COLOR), (~won, FAILURE_COLOR)):
                ax.plot(values[mask], (y + jitter)[mask], "o", ms=3, alpha=0.7, color=color)
            ax.plot([values.mean()] * 2, [y - 0.32, y + 0.32], color="black", lw=1.5)
        # the distances' legend says the bar too
        ax.set_xlabel(label + ("" if ax is distance else " · bar: mean"), fontsize=LABEL_FONTSIZE)
    # 15 and 18 steps: ticked 15.5, ...; every episode in 15: one whole step in view, ticked 14.2, 14.4, ... without
    # min_n_ticks=1
    steps.xaxis.set_major_locator(whole_number_ticks(steps=[1, 2, 5, 10]))
    if not any(e.success for r in reports for e in r.episodes):  # not a 0..1 step axis ticked under nothing
        steps.set_xticks([])
    # what the distances' colours and bars are, under the axis as the seed grid's legend is (its label said "coloured
    # by outcome" and no more)
    distance.legend(handles=[Line2D([], [], marker="o", ls="", ms=4, color=SUCCESS_COLOR, label="success"),
                             Line2D([], [], marker="o", ls="", ms=4, color=FAILURE_COLOR, label="failure"),
                             Line2D([], [], color="black", lw=1.5, label="mean")],
                    fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, 0),
                    bbox_transform=under(distance), ncol=3, frameon=False)

    for ax in (rate, grid, steps, distance):
        ax.set_yticks(ys, labels)
        ax.set_ylim(k - 0.5, -0.5)  # the first run at the top, as the tables list it
        style_ticks(ax)
        if ax is not grid:
            ax.grid(alpha=0.3, axis="x")
    return fig


def check_compare_out(out: str | Path, flag: str = "--out") -> Path:
    """`write_comparison`'s folder, refused before any run is read (named by `flag`, as given) where it would write
    among others' files: inside a sim run (its `videos/`, a compared run: its outputs and pages would hold a stray
    comparison) or a comparison, inside a checkpoint or dataset, holding another kind of thing or other runs
    (`fileio.output_folder`), or a folder of no known kind that holds a file of the name a comparison writes (a
    user's own index.html, which a rerun would replace; with --no-plots too, as a later comparison there with plots
    would). A new or empty folder, and an earlier comparison's, are accepted."""
    from worldpolicy.viz.compare_page import COMPARE_FIGURE

    out = output_folder(out, flag, create=False, writer="sim compare", not_over_runs=True)
    accepted = "a new or empty folder outside any run, or an earlier `sim compare --out`"
    absolute = Path(os.path.abspath(out))
    for parent in dict.fromkeys([*absolute.parents, *absolute.resolve().parents]):  # a link into a run too
        found = folder_kind(parent)
        if found is not None and found[0].writer in ("sim", "sim compare"):
            raise ValueError(f"{flag}: {str(out)!r} is inside {str(parent)!r}, which holds {found[0].what} "
                             f"({found[1]}): the comparison would be written among its files; accepted: {accepted}")
    if folder_kind(out) is None:
        held = [name for name in (COMPARE_MARKDOWN, COMPARE_FIGURE, REPORT_FILE) if (out / name).exists()]
        if held:
            raise ValueError(f"{flag}: {str(out)!r} holds {', '.join(held)} but no {COMPARE_FILE}, so no earlier "
                             f"comparison wrote it: a comparison would replace it; accepted: {accepted}")
    return out


def write_comparison(comparison: Comparison, out: str | Path, *, plots: bool = True) -> list[Path]:
    """compare.md, compare.csv and compare_pairs.csv (`Comparison.csv_tables`), compare.png and index.html (with
    `plots`; without, an earlier comparison's are removed) and compare.json into `out`, each written atomically;
    compare.json, the folder's marker (`fileio.FOLDER_KINDS`),
    before the page that reads it. Ctrl-C (SIGTERM) waits for the last of them, then stops: one between two files
    left a folder holding a new compare.md beside an earlier comparison's compare.json and page, or without them."""
    out = make_folder(out)
    with sigint_deferred():
        written = _write_comparison_files(comparison, out, plots)
    return written


def _write_comparison_files(comparison: Comparison, out: Path, plots: bool) -> list[Path]:
    from worldpolicy.viz.compare_page import COMPARE_FIGURE

    # an earlier comparison's figure and page, which this one does not rewrite, would show other runs
    stale = []
    if not plots and (out / COMPARE_FILE).is_file():
        stale = [out / COMPARE_FIGURE, out / REPORT_FILE]
    written = [write_bytes_atomic(out / COMPARE_MARKDOWN, comparison.markdown())]
    written += [write_csv_atomic(out / name, columns, rows)
                for name, (columns, rows) in comparison.csv_tables().items()]
    if plots:
        from worldpolicy.viz.plots import save_figure

        written.append(save_figure(comparison_figure(comparison), out / COMPARE_FIGURE))
    written.append(write_bytes_atomic(out / COMPARE_FILE, json.dumps(comparison.to_json(), indent=1)))
    if plots:
        from worldpolicy.viz.report import write_report

        written.append(write_report(out))
    for path in stale:
        path.unlink(missing_ok=True)
    return written
