"""Self-contained HTML run reports: one `index.html` per run directory (predict, sim, train; sim runs compared,
`compare.json`, get theirs from `compare_page`, a dataset shown, `dataset_show.json`, from `dataset_page`, a sweep of
a training run's checkpoints, `sweep.json`, from `sweep_page`, in the same style: `page_html`).

The page needs nothing outside itself to show plots (PNG data URIs, inline CSS/JS); videos are embedded up to
`MAX_EMBED_VIDEO_BYTES` each and `MAX_EMBED_VIDEOS_TOTAL_BYTES` together (in name order: a predict run's own clips
before a sim run's episodes), and otherwise referenced relative to the run directory, which also holds the raw files
the page links to. What a run directory may hold (each optional, but a folder with no run output is refused: none of the
markers of the runs worldpolicy writes, `fileio.FOLDER_KINDS`, nor a metrics file or log, `RUN_FILES`):

- `actions.json` (`worldpolicy.actions/v1`): summary, timings and an action table with units
- `settings.json`: the run's settings; `metrics.json`, a sim `report.json` or a recipe `summary.json` (any JSON
  object): a metrics table
- `*.jsonl` logs (one JSON object per line, e.g. training metrics): numeric fields plotted against `step`
- a training run's `config.json` and `checkpoints/step-*/`: what was trained, the checkpoints saved and how to run the
  latest (`train_report.train_sections`)
- a sim or training run's console log (`RUN_LOGS`: sim.log, train.log): linked, with its last lines
- `*.mp4` videos (and a planned sim run's `SIM_CANDIDATE_VIDEOS`, two levels down, after its episodes) and `*.png`
  images (the folder itself and one level below, e.g. `plots/`); each video is captioned
  with what it shows (imagined by the model, simulated, ...), as `describe_video` tells from its name; the images of
  `observation/` (the run's camera inputs) as its observation, the others as plots
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..embodiments import shown_unit, unit_label
from ..errors import is_integer, is_real
from ..fileio import (
    ACTIONS_FILE,
    COMPARE_FILE,
    DREAM_FILE,
    DREAM_PARTIAL_DIR,
    DREAM_SCHEMA,
    OPENLOOP_FILE,
    OPENLOOP_SCHEMA,
    REPORT_FILE,
    SHOW_FILE,
    SIM_CANDIDATES_DIR,
    SIM_EPISODE_PREFIX,
    SIM_EPISODES_FILE,
    SIM_LOG_FILE,
    SIM_REPORT_FIGURE,
    SIM_REPORT_FILE,
    SIM_REPORT_SCHEMA,
    SWEEP_FILE,
    TRAIN_LOG_FILE,
    schema_matches,
    write_bytes_atomic,
)
from ..results import actions_from_json
from .plots import (
    model_space_note,
    nonfinite_summary,
    padded_label,
    plural,
    real_rows_of,
    run_mode,
    run_rows_of,
    settings_of,
)
from .run import (
    ANIMATION_FILE,
    OBSERVATION_FOLDER,
    ROLLOUT_VIDEO,
    SETTINGS_FILE,
    describe_rollout_video,
    regions_said,
    rollout_regions,
)
from .video import SEP

__all__ = ["MAX_EMBED_VIDEOS_TOTAL_BYTES", "MAX_EMBED_VIDEO_BYTES", "SIM_CANDIDATE_VIDEOS",
           "build_report_html",
           "describe_video", "episode_outcome", "latency_said",
           "log_curves_figure", "page_html", "report_server", "serve_report", "video_figure", "write_report"]

MAX_EMBED_VIDEO_BYTES = 8 * 1024 * 1024
# All embedded videos together: a 300-episode sim run embedded every episode, a page of tens of MB of base64.
MAX_EMBED_VIDEOS_TOTAL_BYTES = 16 * 1024 * 1024
MAX_TABLE_ROWS = 200
MAX_CURVE_POINTS = 20_000  # per field of a log: a longer series keeps every k-th point, from its first to its last
MAX_JSON_BYTES = 32 * 1024 * 1024
MAX_LISTED_FILES = 500
LOG_SCALE_SPAN = 30  # a loss whose largest value is this many times its smallest is drawn on a log scale
# a training loss of at least this many points is drawn faint, under its running mean over a 20th of them (at least
# SMOOTH_MIN_POINTS // 4): a diffusion loss draws a noise level per step, its points scattered over decades
SMOOTH_MIN_POINTS = 20
# report.json: `worldpolicy sim` evaluation (worldpolicy.sim_eval/v1); summary.json: a from-scratch recipe's stages;
# dream.json: a dream's chunks (`worldpolicy dream`), a table of their rewards; openloop.json: `dataset eval`'s errors
METRICS_FILES = ("metrics.json", SIM_REPORT_FILE, "summary.json", DREAM_FILE, OPENLOOP_FILE)
# those of them that carry a format version (`fileio.schema_matches`), by the version this worldpolicy reads
VERSIONED = {SIM_REPORT_FILE: SIM_REPORT_SCHEMA, DREAM_FILE: DREAM_SCHEMA, OPENLOOP_FILE: OPENLOOP_SCHEMA}
# openloop.json's per-column errors, a table of their own (`_open_loop_section`), and what its plots already show
OPEN_LOOP_TABLED = ("columns", "units", "mae", "rmse", "mae_normalized_by_column", "recorded_std", "horizon",
                    "episodes", "plots")
SIM_EPISODE_VIDEOS = f"videos/{SIM_EPISODE_PREFIX}*.mp4"  # what `worldpolicy sim` records (sim.evaluate)
# what `worldpolicy sim --plan-save-candidates` records (sim.policies.CandidateVideos): one per decision
SIM_CANDIDATE_VIDEOS = f"{SIM_CANDIDATES_DIR}/{SIM_EPISODE_PREFIX}*_decision_*.mp4"
# a run's console, kept (`logcapture.run_log`), by the command that wrote the run: linked under Log with its last lines
RUN_LOGS = {"sim": SIM_LOG_FILE, "train": TRAIN_LOG_FILE}
LOG_TAIL_LINES = 10
LOG_TAIL_BYTES = 16 * 1024  # read from a log's end for them: a long run's log is megabytes
# Besides the markers of the runs worldpolicy writes (`fileio.FOLDER_KINDS`), what makes a folder a run to report on:
# the metrics and logs this page reads. Media alone (a folder of PNGs or clips) is not a run.
RUN_FILES = (*METRICS_FILES, "*.jsonl")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b8c0d0;font-size:13px}
main{padding:8px 28px 40px;max-width:1500px}section{background:#fff;border-radius:8px;padding:12px 18px;margin:16px 0;
box-shadow:0 1px 3px rgba(0,0,0,.08)}h2{font-size:17px;margin:4px 0 10px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #e1e4ea;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:11px;color:#5d6577;text-transform:uppercase}.card span{font-size:16px}
figure{display:inline-table;margin:8px 12px 8px 0;vertical-align:top}
figcaption{font-size:12px;color:#555;display:table-caption;caption-side:bottom}
img,video{max-width:100%;border:1px solid #e1e4ea;border-radius:4px}
table{border-collapse:collapse;font-size:12px;font-variant-numeric:tabular-nums}
td,th{border:1px solid #e1e4ea;padding:3px 7px;text-align:right}th{background:#f0f2f5}td.k,th.k{text-align:left}
th[scope=row]{background:none;font-weight:normal}
tr.padded td{color:#5d6577;font-style:italic;background:repeating-linear-gradient(135deg,#fff 0 6px,#eceef2 6px 8px)}
pre{background:#f0f2f5;padding:10px;border-radius:6px;overflow:auto;font-size:12px;max-height:420px}
video{min-width:320px}a{color:#2457c5}.muted{color:#5d6577;font-size:12px}.warn{color:#a4262c;font-size:13px}
td.bad{color:#a4262c;font-weight:600}td.n{white-space:nowrap}
nav{padding:8px 28px 0;font-size:13px}
nav ul{margin:0;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:4px 14px}
@media print{nav{display:none}header{background:none;color:#000;padding:0 0 8px}header p{color:#333}
main{padding:0;max-width:none}
section{box-shadow:none;border:1px solid #ccc}pre{max-height:none;overflow:visible;white-space:pre-wrap}
tr.padded td{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""

# Fills each video's caption with what the browser decoded (size, duration), so a broken file is visible at a glance.
_JS = """
document.querySelectorAll('video').forEach(function(v){
  var out=document.getElementById(v.id+'-meta');
  v.addEventListener('loadedmetadata',function(){out.textContent='decoded: '+v.videoWidth+'\\u00d7'+v.videoHeight+
    ', '+v.duration.toFixed(2)+' s';out.dataset.state='ok';});
  v.addEventListener('error',function(){out.textContent='this browser could not decode the video';
    out.dataset.state='error';});
});
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.5g}"
    return str(x)


def latency_said(ms: Any, ticks: Any) -> str:
    """`200 ms = 3 steps`: a run's latency (`worldpolicy sim --latency`, report.json's `latency`) as the run's page,
    report.md (`EvalReport.latency_said`) and `sim compare` say it."""
    whole = is_integer(ticks)
    return f"{_fmt(ms)} ms = " + (plural(int(ticks), "step") if whole else f"{_fmt(ticks)} steps")


def _read_json(path: Path) -> Any:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{str(path)!r} is larger than {MAX_JSON_BYTES} bytes; not read into the report")
    return json.loads(path.read_text())


# fields holding a [first, last] range, not two values: shown as the page's lines say a range ("seeds 0..900")
RANGE_FIELDS = ("recorded_seeds", "ci95")


def _flatten(obj: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list) and len(obj) == 2 and prefix.rpartition(".")[2] in RANGE_FIELDS \
            and all(isinstance(v, (int, float)) for v in obj):
        yield prefix, f"{_fmt(obj[0])}..{_fmt(obj[1])}"
    elif isinstance(obj, list) and len(obj) <= 16 and all(not isinstance(v, (dict, list)) for v in obj):
        yield prefix, ", ".join(_fmt(v) for v in obj)
    elif isinstance(obj, list):
        yield prefix, f"[{len(obj)} items]"
    else:
        yield prefix, obj


def _kv_table(pairs: Iterable[tuple[str, Any]], cls: str = "") -> str:
    """A table of name, value rows; each name a row header, so a screen reader says it with its value."""
    rows = "".join(f"<tr><th scope=row class=k>{_esc(k)}</th><td>{_esc(_fmt(v))}</td></tr>" for k, v in pairs)
    return f"<table class='{cls}'>{rows}</table>"


def _number(value: Any) -> bool:
    """A value a page shows as a number (NaN too, as `nan`): `errors.is_real`, not finite only."""
    return is_real(value, finite=False)


def _pct(value: Any) -> str:
    """A rate (0.25) as the pages show it ("25.0 %"), "-" where there is none."""
    return f"{100 * value:.1f} %" if _number(value) else "-"


def _pct_range(lo: Any, hi: Any) -> str:
    """An interval of rates (a Wilson 95 % CI) as the pages show it ("12.5-40.0 %"), "-" without both ends."""
    return f"{100 * lo:.1f}-{100 * hi:.1f} %" if _number(lo) and _number(hi) else "-"


def _cells_table(head: list[str], rows: list[list[str]], left: int | Sequence[bool] = 1) -> str:
    """A table of already escaped cells; the first `left` columns are text (left-aligned), the rest numbers (or, as a
    list, whether each column is text), kept on one line: a narrow "rate" column broke "0.0 %" after its number."""
    text = [i < left for i in range(len(head))] if isinstance(left, int) else list(left)
    cls = ["k" if t else "n" for t in text]
    top = "".join(f"<th class='{c}'>{_esc(h)}</th>" for c, h in zip(cls, head))
    body = "".join("<tr>" + "".join(f"<td class='{c}'>{v}</td>" for c, v in zip(cls, row)) + "</tr>" for row in rows)
    return f"<table><tr>{top}</tr>{body}</table>"


def _record_lists(metrics: Any) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """Top-level lists of records in a metrics file (a sim report's `episodes`): shown as tables, one row each,
    rather than as "[N items]"."""
    if not isinstance(metrics, Mapping):
        return []
    return [(str(k), v) for k, v in metrics.items()
            if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v)]


def _records_table(records: list[Mapping[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in records for k in r))
    head = "<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in columns) + "</tr>"

    def cell(value: Any) -> str:
        text = _fmt(value) if not isinstance(value, (dict, list)) else json.dumps(value, ensure_ascii=False)
        return f"<td class=k>{_esc(text)}</td>" if isinstance(value, str) else f"<td>{_esc(text)}</td>"

    shown, left_out = _rows_shown(records)
    body = "".join("<tr>" + "".join(cell(r.get(c, "")) for c in columns) + "</tr>" for r in shown)
    more = f"<p class=muted>{_esc(left_out)}</p>" if left_out else ""  # above the table: read before 200 rows
    return f"{more}<table>{head}{body}</table>"


def _rows_shown(records: list[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], str]:
    """The rows of a long table that go on the page, in their order, and what was left out ('' when nothing was).

    Rows with `success` false (a sim run's failed episodes) are all kept, with as many of the others as fit in
    `MAX_TABLE_ROWS`: cut at the first rows, a 300-episode run's page hid every failure after episode 200, the rows
    one opens the page for."""
    if len(records) <= MAX_TABLE_ROWS:
        return records, ""
    failed = {i for i, r in enumerate(records) if r.get("success") is False}
    if not failed:
        return records[:MAX_TABLE_ROWS], f"first {MAX_TABLE_ROWS} of {len(records)} rows"
    others = [i for i in range(len(records)) if i not in failed]
    kept = others[: max(MAX_TABLE_ROWS - len(failed), 0)]
    note = (f"{len(failed) + len(kept)} of {len(records)} rows: all {len(failed)} with success false, and the first "
            f"{len(kept)} of the other {len(others)}; the {len(others) - len(kept)} left out include no failure")
    return [records[i] for i in sorted(failed.union(kept))], note


def _unreadable_png(path: Path) -> str:
    """Why a browser could not show this PNG (a copy cut short, not an image at all), or ''. Embedded unchecked, it
    was a broken-image icon with nothing saying which file or why."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes every byte: a truncated file fails here
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # UnidentifiedImageError is an OSError
        return f"not a readable image ({exc})"
    return ""


def _figure_section(folder: Path, name: str, shows: str, heading: str, notes: list[str]) -> str:
    """The section showing `folder/name` (a PNG a multi-run page draws from: compare.png, sweep.png), '' where there is
    none; one that does not read is said in `notes` instead."""
    figure = folder / name
    if not figure.is_file():
        return ""
    problem = _unreadable_png(figure)
    if problem:
        notes.append(f"{name} is not shown: {problem}")
        return ""
    return (f"<section id=plots><h2>{_esc(heading)}</h2>" + image_figure(_data_uri(figure, "image/png"), shows, name)
            + "</section>")


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _files(run_dir: Path, pattern: str) -> list[Path]:
    found = sorted(run_dir.glob(pattern)) + sorted(run_dir.glob(f"*/{pattern}"))
    return [p for p in found if p.is_file() and not p.name.startswith(".")]


def describe_video(relative_path: str, mode: str | None = None, run_kind: str | None = None) -> tuple[str, str]:
    """(what, explanation) of a video in a run folder, by the name worldpolicy writes it under: a predict run's
    rollout.mp4 (`mode`: the run's, from actions.json; a dream run's, `run_kind` "dream", is the policy's actions
    imagined, whose actions.json says forward_dynamics), viz's animation, sim's episode videos, a killed dream's
    chunks. A viewer could not tell an imagined clip from a recorded one by its caption."""
    if relative_path == ROLLOUT_VIDEO:
        return describe_rollout_video(mode, dream=run_kind == "dream")
    if relative_path.startswith(f"{DREAM_PARTIAL_DIR}/"):
        return "dreamed chunk", ("one chunk the world model imagined, kept by a dream stopped before it wrote its "
                                 "whole run (killed outright): a rerun of the same command and --seed writes it")
    if relative_path.rsplit("/", 1)[-1] == ANIMATION_FILE:
        explanation = "the action plot with a playhead, beside the run's video when there is one (captioned in the frame)"
        return "action animation", explanation
    if fnmatch.fnmatch(relative_path, SIM_EPISODE_VIDEOS):
        explanation = ("the simulator's cameras (captioned sim: <camera>), beside the frame the model imagined when "
                       "the policy returned video (model: imagined), each camera's part of it labelled")
        return "simulated episode", explanation
    if fnmatch.fnmatch(relative_path, SIM_CANDIDATE_VIDEOS):
        explanation = ("every candidate future the model imagined for one decision of a planned run "
                       "(--plan-save-candidates), side by side, each captioned with its score and the one run marked: "
                       "imagined, not simulated")
        return "planning candidates", explanation
    return "video", "not a file worldpolicy writes: whether it is recorded, simulated or imagined is not known"


# What each figure worldpolicy writes shows, by the name it is written under (fnmatch patterns, first match wins): an
# image's alt text and caption, so a screen reader or a broken image says what the figure holds, not its file name.
IMAGE_SHOWS = (
    (f"{OBSERVATION_FOLDER}/*.png", "a camera image the run was given"),
    ("*actions.png", "each action column over the chunk's steps, a panel each"),
    ("*ee_path*.png", "the end-effector's path in space that the actions trace"),
    ("*joints.png", "each joint's position and velocity over the chunk's steps, and the gripper"),
    (SIM_REPORT_FIGURE, ("the sim run's success rate over its episodes with its 95 % interval, and episode lengths (a "
                   "planned run's: each decision's candidate scores and the one run, too)")),
)


def describe_image(relative_path: str) -> str:
    """What the PNG at `relative_path` (in a run folder) shows, from the name worldpolicy writes it under
    (`IMAGE_SHOWS`); a PNG of another name says so."""
    for pattern, shows in IMAGE_SHOWS:
        if fnmatch.fnmatch(relative_path, pattern):
            return shows
    return "an image in the run folder; what it shows is not known"


def image_figure(src: str, shows: str, link: str | None = None) -> str:
    """A figure of the image at `src` (a data URI) whose alt text and caption say what it `shows`; `link`: the file's
    path relative to the page, linked in the caption. Every page's images go through here."""
    linked = f": <a href='{_href(link)}'>{_esc(link)}</a>" if link else ""
    return f"<figure><img alt='{_esc(shows)}' src='{src}'><figcaption>{_esc(shows)}{linked}</figcaption></figure>"


def _run_kind(run_dir: Path, actions: Mapping[str, Any] | None, metrics: Any) -> str:
    """The command that wrote the run: its settings' `command`, else the folder's marker (`fileio.FOLDER_KINDS`: a
    recipe run was "run", its summary's evaluation making it look like a sim run), else a guess from its files."""
    from ..fileio import folder_kind

    settings = run_dir / SETTINGS_FILE
    if settings.is_file():
        try:
            kind = _read_json(settings).get("command")
            if isinstance(kind, str):
                return kind
        except (ValueError, AttributeError):
            pass
    found = folder_kind(run_dir)
    if found is not None and found[0].writer is not None:
        return found[0].writer
    if list(run_dir.glob("*.jsonl")):
        return "train"
    if isinstance(metrics, Mapping) and (
        str(metrics.get("schema", "")).startswith("worldpolicy.sim_eval")
        or any("success" in k for k, _ in _flatten(metrics))
    ):
        return "sim"
    return "predict" if actions is not None else "run"


def _summary_cards(actions: Mapping[str, Any], dream: Mapping[str, Any] | None = None) -> str:
    """A predict run's headline: what was asked (mode, embodiment, the prompt: only the settings at the page's foot
    named it), what came back, and how long it took. A dream run's (`dream`: its dream.json) says too how many of the
    chunks asked for ran, where it stopped early: only its chunk table's count said so."""
    real_rows = real_rows_of(actions)
    pieces = run_rows_of(actions)  # a whole clip's windows or a whole trajectory's chunks
    settings = settings_of(actions)
    prompt, checkpoint = settings.get("prompt"), settings.get("checkpoint")
    cards = [
        ("mode", run_mode(actions)),
        ("embodiment", actions.get("embodiment")),
        *_dream_cut_short(dream),
        *([("checkpoint", checkpoint)] if isinstance(checkpoint, str) and checkpoint.strip() else []),
        *([("prompt", prompt)] if isinstance(prompt, str) and prompt.strip() else []),
        # rows run in pieces are no chunk of the model's: their card says how many, in what pieces
        *([("chunk", f"{actions.get('chunk_size', len(actions.get('actions', [])))} steps")] if pieces is None else []),
        ("action dim", len(actions.get("columns", []))),
        ("rate", f"{_fmt(actions.get('fps'))} Hz"),
        ("video frames", "none decoded" if actions.get("video_frames") is None else actions["video_frames"]),
    ]
    if real_rows is not None:
        cards.append(("rows from the clip", f"{real_rows} of {len(actions['actions'])}"))
    if pieces is not None:  # their stage times are summed over the pieces, the total is the wall time
        cards.append(pieces.card())
    summed = f" ({pieces.pieces} summed)" if pieces is not None and len(pieces.window_rows) > 1 else ""
    cards += [(f"time: {k}{summed if k != 'total' else ''}", _stage_time(k, float(v)))
              for k, v in (actions.get("timings_s") or {}).items()]
    return _cards(cards)


def _stage_time(stage: str, seconds: float) -> str:
    """A timing card's value. The text stage is exactly 0 where the prompt's text encoding came from the engine's
    cache (an earlier call's: a dream's world model finds the prompt its policy, the same checkpoint, encoded),
    which a bare "0.000 s" left unsaid."""
    if stage == "text" and seconds == 0:
        return "0 s (the prompt's encoding was cached)"
    return f"{seconds:.3f} s"


def _dream_cut_short(dream: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The card of a dream stopped before all its chunks ran (Ctrl-C, a failure): `2 of 8 chunks`; none else."""
    done, asked = (dream.get("chunks_done"), dream.get("chunks_requested")) if dream is not None else (None, None)
    if not (isinstance(done, int) and isinstance(asked, int) and done < asked):
        return []
    return [("dreamed", f"{done} of {plural(asked, 'chunk')} (stopped early)")]


def _cards(cards: list[tuple[str, Any]]) -> str:
    return (
        "<div class=cards>"
        + "".join(f"<div class=card><b>{_esc(k)}</b><span>{_esc(v)}</span></div>" for k, v in cards)
        + "</div>"
    )


def _is_sim_report(metrics: Any) -> bool:
    return isinstance(metrics, Mapping) and str(metrics.get("schema", "")).startswith("worldpolicy.sim_eval")


def _reward_note(metrics: Mapping[str, Any]) -> str:
    """What a dream's reward column is (dream.json's `reward_meaning`: its scorer's own words,
    `sim.progress.SCORER_REWARDS`), above its chunks' table; '' for a dream without a score or from before it was
    recorded."""
    meaning = metrics.get("reward_meaning")
    if not isinstance(meaning, str):
        return ""
    return f"<p class=muted id=reward-meaning>reward (score {_esc(metrics.get('score'))}): {_esc(meaning)}</p>"


def _open_loop_section(doc: Mapping[str, Any]) -> str:
    """`dataset eval`'s error per column (openloop.json), in its units and on the model's normalised scale, with the
    recorded spread beside it: flattened into the metrics table, its nested records were 40 rows of `mae.tx`."""
    columns = [str(c) for c in doc.get("columns") or []]
    units = doc.get("units") if isinstance(doc.get("units"), Mapping) else {}
    fields = ("mae", "rmse", "mae_normalized_by_column", "recorded_std")
    values = {f: doc.get(f) if isinstance(doc.get(f), Mapping) else {} for f in fields}

    def cell(value: Any) -> str:  # None: a column left out of the normalised mean (constant in the training stats)
        return "<td>-</td>" if value is None else f"<td>{_esc(_fmt(value))}</td>"

    head = ("<tr><th>column</th><th>unit</th><th>MAE</th><th>RMSE</th><th>MAE, normalised</th>"
            "<th>recorded std</th></tr>")
    rows = "".join(f"<tr><td>{_esc(c)}</td><td>{_esc(shown_unit(str(units.get(c, ''))) or '-')}</td>"
                   + "".join(cell(values[f].get(c)) for f in fields) + "</tr>" for c in columns)
    mean = doc.get("mae_normalized")
    line = (f"{_esc(doc.get('chunks'))} chunks, {_esc(doc.get('steps_compared'))} steps compared; normalised MAE "
            + (f"{mean:.4g}" if isinstance(mean, (int, float)) else "-")
            + f" (the mean over columns of the MAE on the model's {_esc(doc.get('normalization'))} action scale: "
            "one number to compare checkpoints by). MAE and RMSE per column in its units; \"-\" in the normalised "
            "column: constant in the training data's stats, left out of the mean.")
    # a `dataset from-sim` recording's episodes that are the checkpoint's training scenes, as a sim run's page says
    scenes = doc.get("training_scenes")
    note = (_recorded_scenes(scenes, len(doc.get("episodes") or []),
                             "the error says how well it imitates its training data")[1]
            if isinstance(scenes, Mapping) else "")
    heading = "Inverse-dynamics error" if doc.get("mode") == "inverse_dynamics" else "Open-loop error"
    return (f"<section id=open-loop><h2>{heading}</h2>{note}<p>{line}</p><table>{head}{rows}</table>"
            "</section>")


def _sim_summary_cards(report: Mapping[str, Any]) -> str:
    """The headline of a sim run (`worldpolicy.sim_eval/v1`): what ran, how often it succeeded, and whether every
    requested episode ran (an interrupted run's page looked complete)."""
    done, requested = len(report.get("episodes", [])), report.get("episodes_requested")
    lo, hi = report.get("ci95", (None, None))
    cards = [("task", report.get("task")), ("policy", report.get("policy")), ("robot", report.get("robot")),
             ("success", f"{report.get('successes')}/{done}")]
    if _number(report.get("success_rate")) and _number(lo) and _number(hi):
        cards.append(("success rate", f"{_pct(report['success_rate'])} (95 % Wilson CI {_pct_range(lo, hi)})"))
    scenes, note = _scenes(report, done)
    if scenes:
        cards.append(("scenes", scenes))
    if isinstance(requested, int) and requested > done:
        cards.append(("incomplete", f"{done} of {requested} episodes ran"))
    if report.get("perturb"):  # shifted scenes (`worldpolicy sim --perturb`): not the training distribution
        cards.append(("perturbed", report["perturb"]))
    if report.get("prompt_template"):  # `worldpolicy sim --prompt-template`: the instruction in the user's words
        cards.append(("prompt template", report["prompt_template"]))
    latency = report.get("latency")
    if isinstance(latency, Mapping) and latency.get("ms"):  # `worldpolicy sim --latency`: each reply that much later
        cards.append(("latency", latency_said(latency["ms"], latency.get("ticks"))))
    strategy = report["strategy"].get("kind") if isinstance(report.get("strategy"), Mapping) else None
    cards += [("control", f"{_fmt(report.get('control_hz'))} Hz"),
              ("strategy", f"{strategy} + rtc" if report.get("rtc") else strategy)]  # `sim --rtc`: real-time chunking
    jump, within = report.get("mean_handover_jump_rad"), report.get("mean_chunk_jump_rad")
    if isinstance(jump, (int, float)):  # how smoothly chunks handed over (`sim.rollout.Jumps`)
        said = f"{jump:.4f} rad" + (f" (in-chunk {within:.4f})" if isinstance(within, (int, float)) else "")
        cards.append(("hand-over jump", said))
    plan = report.get("plan")
    if isinstance(plan, Mapping) and plan.get("decisions"):  # `worldpolicy sim --plan` (`sim.evaluate.plan_summary`)
        cards.append(("planning", (f"best of {plan.get('candidates')}: {plan.get('decisions')} decisions, "
                                  f"{plan.get('tied')} tied (the plain sample ran), {plan.get('changed')} changed")))
    return _cards(cards) + note


# Policies that learned no scenes (sim.tasks.BUILTIN_POLICIES, by the kind report.json records), whose success
# needs no word on held-out scenes
_UNTRAINED_POLICIES = ("scripted", "random")


def _scenes(report: Mapping[str, Any], done: int) -> tuple[str, str]:
    """(card, note) on whether a sim run's episodes are scenes its checkpoint was trained on (`training_scenes`, kept
    by `sim.evaluate`): a success rate on training scenes says how well it fits its training data, and was shown as
    if it were one on new scenes. A report that does not know says so, unless its policy learned nothing."""
    scenes = report.get("training_scenes")
    if not isinstance(scenes, Mapping):
        policy = report.get("policy_settings")
        kind = policy.get("kind") if isinstance(policy, Mapping) else None
        if kind in _UNTRAINED_POLICIES:
            return "", ""
        if "training_scenes" not in report:  # written before sim.evaluate recorded it: its checkpoint may say
            why = "the report was written before report.json recorded it"
        elif kind == "checkpoint":
            why = "the checkpoint's training data does not say which scenes it recorded"
        elif kind == "server":  # a worldpolicy server announces them (metadata `training_seeds`) where its data says
            why = ("its server did not announce its checkpoint's training scenes: an openpi or older worldpolicy "
                   "server, or a checkpoint whose training data does not say")
        else:
            why = "not recorded for this policy"
        return "not known", (f"<p class=muted id=training-scenes>Held out or not: not known ({_esc(why)}): the "
                             "success rate may include scenes the policy was trained on.</p>")
    return _recorded_scenes(scenes, done, "the success rate says how well it fits its training data")


def _recorded_scenes(scenes: Mapping[str, Any], done: int, meaning: str) -> tuple[str, str]:
    """(card, note) of a recorded `training_scenes` (`sim.tasks.TrainingScenes.to_json`, a sim run's or an open-loop
    evaluation's) over `done` episodes: held out, or which are training scenes and what that makes of the numbers
    (`meaning`: "the success rate says how well it fits its training data")."""
    seen = [s for s in scenes.get("seeds") or [] if isinstance(s, int)]
    recorded = scenes.get("recorded_seeds") or ["?", "?"]
    source = f"{scenes.get('source')}: {scenes.get('task')} seeds {recorded[0]}..{recorded[-1]}"
    if not seen:
        return "held out", (f"<p class=muted id=training-scenes>Held out: none of these {plural(done, 'episode')} is "
                            f"a scene the checkpoint was trained on ({_esc(source)}).</p>")
    listed = ", ".join(map(str, seen)) if len(seen) <= 8 else f"{seen[0]}..{seen[-1]}"
    return (f"{len(seen)} of {done} are training scenes",
            (f"<p class=warn id=training-scenes><b>Training scenes: {len(seen)} of the {plural(done, 'episode')} "
             f"({'seed' if len(seen) == 1 else 'seeds'} {_esc(listed)}) are scenes the checkpoint was trained on "
             f"({_esc(source)})</b>: {_esc(meaning)}, not how it does on new scenes.</p>"))


def _episode_seed(relative_path: str) -> str:
    """The seed a sim episode video is named by (`fileio.sim_episode_name`: `videos/episode_0012.mp4` → '12'), as its
    record's `seed` reads."""
    number = relative_path.rsplit("/", 1)[-1].removesuffix(".mp4").removeprefix(SIM_EPISODE_PREFIX)
    return str(int(number)) if number.isdigit() else number


def _episode_outcome(relative_path: str, episodes: Mapping[str, Mapping[str, Any]]) -> str:
    """The caption line (HTML) naming the episode a sim run's video shows, from its record in `episodes` (by seed):
    an episode video's outcome; a candidate video's decision (`episode_0012_decision_03.mp4`: the episode's policy
    call 3, from 0) and its episode's outcome. '' for any other video."""
    if fnmatch.fnmatch(relative_path, SIM_EPISODE_VIDEOS):
        record = episodes.get(_episode_seed(relative_path))
        return "" if record is None else f"<br><span class=episode>{_esc(episode_outcome(record))}</span>"
    if not fnmatch.fnmatch(relative_path, SIM_CANDIDATE_VIDEOS):
        return ""
    seed, _, call = relative_path.rsplit("/", 1)[-1].removesuffix(".mp4").removeprefix(SIM_EPISODE_PREFIX).partition(
        "_decision_")
    seed = str(int(seed)) if seed.isdigit() else seed
    record = episodes.get(seed)
    said = episode_outcome(record) if record is not None else f"seed {seed}"
    decision = str(int(call)) if call.isdigit() else call
    return f"<br><span class=episode>{_esc(f'decision {decision} (its policy calls from 0){SEP}{said}')}</span>"


def episode_outcome(record: Mapping[str, Any]) -> str:
    """One sim episode's outcome (`record`: report.json's, or the fields of it an episode just ended has), the words
    every view of a finished episode says it in: the caption of its video (`episode_<seed>.mp4`) on the run's page,
    and its `outcome` in a Rerun recording, of a finished run (`viz.rerun.log_sim_run`) or logged live
    (`sim.rerun.RerunWatch`); its parts separated as the videos' own captions are (`video.SEP`)."""
    parts = [f"seed {record.get('seed')}"]
    if "success" in record:
        parts.append("success" if record["success"] else "failure")
    if "steps" in record:
        parts.append(f"{record['steps']} steps")
    if isinstance(record.get("final_distance_m"), (int, float)):
        parts.append(f"final distance {100 * record['final_distance_m']:.1f} cm")
    if record.get("prompt"):
        parts.append(f"“{record['prompt']}”")
    return SEP.join(parts)


def _action_table(actions: Mapping[str, Any]) -> str:
    """The actions with their units, one row per step; the rows after `real_rows_of` hatched grey, and said why; a
    whole clip's rows with the clip frames each explains, a whole trajectory's with its chunk (`run_rows_of`)."""
    cols, units = list(actions.get("columns", [])), list(actions.get("units", []))
    values = np.asarray(actions_from_json(actions.get("actions", [])), dtype=np.float64)  # null: non-finite
    fps = float(actions.get("fps") or 1.0)
    real_rows = real_rows_of(actions)
    pieces = run_rows_of(actions)  # the clip frames each row takes to the next, or the chunk that rolled it out
    note = "" if real_rows is None else (
        f"<p class=muted id=padded-note>Hatched, in italics: {_esc(padded_label(real_rows, len(values)))}. "
        f"The clip had {real_rows + 1} frames, fewer than chunk_size + 1 = {len(values) + 1}; "
        f"row i takes frame i to frame i + 1, so only the first {real_rows} rows explain motion in it "
        f"(settings.real_rows = {real_rows}).</p>")
    if values.ndim == 2 and values.size and not np.isfinite(values).all():  # a table of "nan" said nothing of why
        note += (f"<p class=warn id=nonfinite-note>NaN or inf: {_esc(nonfinite_summary(values, cols))}: no plots "
                 "can be drawn of this chunk (predict keeps a model's NaN output for inspection: a broken checkpoint, "
                 "or float16 overflow).</p>")
    head = (
        "<tr><th>step</th><th>t [s]</th>"
        + (f"<th>{_esc(pieces.column)}</th>" if pieces is not None else "")
        + "".join(f"<th>{_esc(unit_label(c, u))}</th>" for c, u in zip(cols, units))
        + "</tr>"
    )
    body = "".join(
        f"<tr{' class=padded' if real_rows is not None and i >= real_rows else ''}><td>{i}</td><td>{i / fps:.3f}</td>"
        + (f"<td>{_esc(pieces.cell(i))}</td>" if pieces is not None else "")
        + "".join(f"<td>{v:.5g}</td>" if np.isfinite(v) else f"<td class=bad>{v:.5g}</td>" for v in row) + "</tr>"
        for i, row in enumerate(values[:MAX_TABLE_ROWS])
    )
    more = f"<p class=muted>first {MAX_TABLE_ROWS} of {len(values)} rows</p>" if len(values) > MAX_TABLE_ROWS else ""
    return f"{note}<table id=actions-table>{head}{body}</table>{more}"


def _curve_order(key: str) -> tuple[int, str]:
    """`loss` first, then the other losses, then everything else, each alphabetically."""
    return (0 if key == "loss" else 1 if "loss" in key else 2, key)


def _log_curves(path: Path, units: Mapping[str, str] | None = None) -> tuple[bytes | None, int]:
    """PNG of `log_curves_figure`; (None, n) when the log holds nothing numeric."""
    import io

    from .plots import DPI

    fig, n = log_curves_figure(path, units)
    if fig is None:
        return None, n
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue(), n


def source_metric(metric: str, source: int | str) -> str:
    """The field of `metric` G on a mixture's source `source` alone, `G/source_<i>` (`val/loss/source_0`,
    `val/action_mae/source_1`): what a training run logs (`source` the table's index) and `source_index` reads back;
    `source` "<i>" names them all (a panel's heading)."""
    return f"{metric}/source_{source}"


def source_index(name: str) -> int | None:
    """i of a field's last part `name` (after `G/`) where `source_metric` named it, `source_<i>`; None for another (an
    action column's)."""
    match = re.fullmatch(re.escape(source_metric("", "")) + r"(\d+)", f"/{name}")
    return int(match[1]) if match else None


# what a panel's heading says of a field whose name alone does not say how to read it
CURVE_NOTES = {"val/action_mae": "unit-free: MAE on the model's normalised action scale, mean over columns"}


def log_curves_figure(path: Path, units: Mapping[str, str] | None = None) -> tuple[Any, int]:
    """(figure, records): the numeric fields of a JSON-lines log (training metrics) against `step` (or line number);
    (None, records) when nothing is numeric.

    One small panel per field, named above it (a long name as a y label ran into the tick labels), losses first and
    on a log scale when they span more than LOG_SCALE_SPAN; a field with one value throughout (`world_size`) is
    named with its value in the heading instead of a flat panel (one logged once gets its panel, one point; where
    every field is one point, a run that logged once, only the first, the loss, is drawn, the others' values said). A
    held-out `val/X` (a training run's `[validation]`) is drawn on X's panel beside it, where over- or underfitting
    shows as the two curves parting; fields `G/<name>` beside a field G (`val/action_mae/<column>`) share one panel
    per unit (`units`: name -> unit, the run's embodiment's columns; metres and unit-free rotations on one axis hid
    the smaller), a line per name; a field of CURVE_NOTES says how to read it in its heading; a training loss of
    SMOOTH_MIN_POINTS or more is drawn faint under its running mean, as its heading says. Every
    line is read; a field of more than MAX_CURVE_POINTS points is drawn thinned evenly from its first to its last (`_Series`), and the heading says so."""

    from .plots import (
        FAILURE_COLOR,
        LABEL_FONTSIZE,
        LINE_COLOR,
        SUCCESS_COLOR,
        _grid_margins,
        _literal,
        _new_figure,
        figure_title,
        legend_above_curves,
        series_style,
        step_markers,
        style_ticks,
        whole_number_ticks,
    )

    records, has_step = 0, False
    series: dict[str, _Series] = {}
    with path.open() as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(obj, Mapping):
                continue
            has_step = has_step or "step" in obj
            for key, value in obj.items():
                if key != "step" and _number(value):
                    series.setdefault(key, _Series()).add(obj.get("step", records), value)
            records += 1
    held_out = {key: f"val/{key}" for key in series if f"val/{key}" in series}
    # fields `G/<name>` beside a field G (the held-out action error per column, `val/action_mae/<column>`): one panel
    # `G/<name>` of their own, a line per name, not a panel each; a mixture's sources' (`G/source_<i>`, on G's scale,
    # not a column's units) one panel `G/source_<i>`
    family: dict[str, list[str]] = {}
    for key in series:
        for part in sorted(k for k in series if k.startswith(f"{key}/")):
            name = part.removeprefix(f"{key}/")
            unit = shown_unit(str((units or {}).get(name) or ""))
            group = source_metric(key, "<i>") if source_index(name) is not None else \
                f"{key}/<name>" + (f" [{unit}]" if unit else "")
            family.setdefault(group, []).append(part)
    grouped = {part for parts in family.values() for part in parts}
    keys = sorted((key for key in series if key not in held_out.values() and key not in grouped), key=_curve_order)
    keys = sorted([*keys, *family], key=_curve_order) if keys else keys
    if not keys:
        return None, records
    thinned = max(series[key].stride for key in series)
    points = {key: [p for part in family[key] for p in series[part].points()] if key in family
              else series[key].points() for key in keys}
    # a field logged once (an objective drawn at one step, a single evaluation) is a point, not "constant"
    constant = {key: pts[0][1] for key, pts in points.items()
                if len(pts) > 1 and len({y for _, y in pts}) == 1 and key not in held_out and key not in family}
    shown = [key for key in keys if key not in constant] or keys
    # every field a single point (a run shorter than two log_every intervals): a panel of one dot each (world_size,
    # elapsed_s, step_s, ...) said nothing a number does not; the first (the loss) is drawn, the others' values said
    once = {key: pts[0][1] for key, pts in points.items()
            if key in shown[1:] and key not in family} if all(len(pts) == 1 for pts in points.values()) else {}
    shown = [key for key in shown if key not in once]
    ncols = 1 if len(shown) <= 6 else 2
    nrows = int(np.ceil(len(shown) / ncols))
    width, height = 6.0 * ncols + 1.0, 0.8 + 1.7 * nrows
    fig = _new_figure(width, height)
    fixed = ", ".join(f"{k} = {_fmt(v)}" for k, v in constant.items() if k not in shown)
    detail = plural(records, "record") + (f"; constant: {fixed}" if fixed else "")
    if once:
        detail += (", one point per field (a curve needs two logged steps: log_every): "  # k=v: wrapped whole
                   + ", ".join(f"{k}={_fmt(v)}" for k, v in once.items()))
    if thinned > 1:
        detail += f"; fields of over {MAX_CURVE_POINTS} points drawn at 1 point in {thinned}, first to last"
    top = figure_title(fig, f"{path.parent.name}: {path.name}", detail)
    if (extra := top - 0.65) > 0:  # a heading past its two lines (0.65 in): a taller figure, not flatter panels
        fig.set_size_inches(width, height + extra)
        top = figure_title(fig, f"{path.parent.name}: {path.name}", detail)
    _grid_margins(fig, nrows, ncols, top=top + 0.15, hgap=0.45)
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    for ax, key in zip(axes, shown):
        x, y = zip(*points[key])
        name = f"{key} · {CURVE_NOTES[key]}" if key in CURVE_NOTES else key
        if key in family:
            for k, part in enumerate(family[key]):  # Okabe-Ito as the joints: the default cycle's red and green
                px, py = zip(*series[part].points())  # (joint_2, joint_3) read as one to red-green colour-blind eyes
                ax.plot(px, py, lw=1.2, **step_markers(len(px)), **series_style(k), label=part.rsplit("/", 1)[1])
        elif (window := _smoothing_window(key, y)) is not None:  # the points faint, their running mean over them
            ax.plot(x, y, lw=0.8, color=LINE_COLOR, alpha=0.3, label="training")
            ax.plot(x, _running_mean(y, window), lw=1.6, color=LINE_COLOR, label=f"training, mean of {window}")
            name += f" · line: mean of the last {window} points"
        else:
            ax.plot(x, y, lw=1.2, color=LINE_COLOR, **step_markers(len(x)), label="training")
        if key in held_out:
            vx, vy = zip(*series[held_out[key]].points())
            ax.plot(vx, vy, lw=1.2, color=SUCCESS_COLOR, **step_markers(len(vx)), label=f"{held_out[key]} (held out)")
            x, y = x + vx, y + vy  # the scale and the NaN marks below are both curves'
        finite = [v for v in y if np.isfinite(v)] or [0.0]
        bad = sorted(at for at, v in zip(x, y) if not np.isfinite(v))
        if "loss" in key and min(finite) > 0 and max(finite) / min(finite) > LOG_SCALE_SPAN:
            ax.set_yscale("log")
            name += " (log scale)"
        elif key.endswith("success_rate") and 0 <= min(finite) and max(finite) <= 1:
            # on its whole range: autoscaled, one more success in 4 episodes (0.25 to 0.5) filled the panel
            ax.set_ylim(-0.03, 1.03)
        if bad:  # a diverged run's NaN draws nothing: its curve just ended, as if the run had stopped there
            ax.plot(bad, [0.95] * len(bad), ls="none", marker="x", ms=4, color=FAILURE_COLOR,
                    transform=ax.get_xaxis_transform())  # at each step along the top of the panel
            where = "step" if has_step else "record"
            name += f" · NaN or inf at {plural(len(bad), 'point')}, first at {where} {bad[0]}"
        if key in family or key in held_out:  # room above the curves, a row per 5 names: over them, it hid them
            legend_above_curves(ax, ncols=min(len(family[key]), 5) if key in family else 2)
        ax.set_title(_literal(name), loc="left", fontsize=LABEL_FONTSIZE, **({"color": FAILURE_COLOR} if bad else {}))
        ax.grid(alpha=0.3)
        style_ticks(ax, which="both")  # a log axis labels minor ticks too
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    for ax in axes[max(0, len(shown) - ncols) : len(shown)]:
        ax.set_xlabel("training step" if has_step else "record", fontsize=LABEL_FONTSIZE)
        ax.xaxis.set_tick_params(labelbottom=True)
    # steps are whole: a 2-step run showed "0.5"; one logged step (a 10-step run) has one whole number in view
    axes[0].xaxis.set_major_locator(whole_number_ticks())
    return fig, records


def _smoothing_window(key: str, values: tuple[float, ...]) -> int | None:
    """The running mean's window for a training loss's panel (`SMOOTH_MIN_POINTS`); None where its points are drawn
    as they are: another field, too few points, or a NaN or inf (a diverged run, its points what matter)."""
    if "loss" not in key or len(values) < SMOOTH_MIN_POINTS or not np.all(np.isfinite(values)):
        return None
    return max(SMOOTH_MIN_POINTS // 4, len(values) // 20)


def _running_mean(values: tuple[float, ...], window: int) -> np.ndarray:
    """Each point's mean with the `window` - 1 before it (fewer at the start): trailing, so the line's end is the
    newest steps', as a log followed while the run trains needs."""
    total = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (total[ends] - total[starts]) / (ends - starts)


@dataclass
class _Series:
    """One field's (x, y) points of a log, at most MAX_CURVE_POINTS kept: past that every other one is dropped and
    only every `stride`-th point is kept from then on, so a long run's curve spans all of it in bounded memory (a
    line cap showed a million-line log's first tenth as if training had ended there). The last point is kept too."""

    stride: int = 1
    seen: int = 0
    kept: list[tuple[Any, Any]] = field(default_factory=list)
    last: tuple[Any, Any] | None = None

    def add(self, x: Any, y: Any) -> None:
        self.last = (x, y)
        if self.seen % self.stride == 0:
            self.kept.append(self.last)
            if len(self.kept) > MAX_CURVE_POINTS:
                self.kept, self.stride = self.kept[::2], self.stride * 2
        self.seen += 1

    def points(self) -> list[tuple[Any, Any]]:
        return self.kept if self.kept[-1] is self.last else [*self.kept, self.last]


# a file that parses but holds values the report cannot use (ragged rows, nulls, bytes that are not text)
_UNUSABLE = (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError)


def _href(relative_path: str) -> str:
    """A run file as a relative URL: percent-encoded ('#', '?', '%' in names stay part of the path) and prefixed with
    './' (a file named 'javascript:...' is a file, not a scheme)."""
    import urllib.parse

    return _esc("./" + urllib.parse.quote(relative_path, errors="surrogateescape"))  # a name's bytes, not UTF-8


def _check_run_output(run_dir: Path) -> None:
    """Refuse a folder that holds no run: a page of an empty or unrelated folder (the wrong path given) is no report,
    and an index.html written into it would be one more file there that is not the user's."""
    from ..fileio import FOLDER_KINDS, folder_kind

    found = folder_kind(run_dir)
    if (found is not None and found[0].writer is not None) or any(next(run_dir.glob(p), None) for p in RUN_FILES):
        return
    kinds = [f"{' or '.join(k.markers)} ({k.what})" for k in FOLDER_KINDS if k.writer is not None]
    markers = {m for k in FOLDER_KINDS for m in k.markers}
    others = [p for p in RUN_FILES if p not in markers]
    # a folder of runs (demo's --out: policy/, forward_dynamics/, ..., sim/) is given where one of them was meant
    runs = sorted(sub.name for sub in run_dir.iterdir() if sub.is_dir() and (kind := folder_kind(sub)) is not None
                  and kind[0].writer is not None)
    inside = (f"; the runs in it are {', '.join(runs)}: report one of them, e.g. {str(run_dir / runs[0])!r}"
              if runs else "")
    raise ValueError(f"run_dir: {str(run_dir)!r} holds no run output to report on{inside}; a run directory holds "
                     f"{', '.join(kinds)}, or {' or '.join(others)} (metrics, logs)")


def build_report_html(run_dir: str | Path, title: str | None = None) -> str:
    """The report page for `run_dir` as a string (see the module docstring for what is picked up); a folder with none
    of the files a run writes (`RUN_FILES`, `fileio.FOLDER_KINDS`' run markers) is refused."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {str(run_dir)!r} "
                                + ("is a file, not a folder" if run_dir.exists() else "does not exist"))
    _check_run_output(run_dir)
    if (run_dir / COMPARE_FILE).is_file():  # sim runs compared: their page, not a run's
        from .compare_page import build_compare_html

        return build_compare_html(run_dir, title)
    if (run_dir / SHOW_FILE).is_file():  # a dataset shown: its page, from what `dataset show` wrote
        from .dataset_page import build_dataset_html

        return build_dataset_html(run_dir, title)
    if (run_dir / SWEEP_FILE).is_file():  # a training run's checkpoints evaluated: the sweep's page
        from .sweep_page import build_sweep_html

        return build_sweep_html(run_dir, title)
    sections: list[str] = []
    notes: list[str] = []

    actions = None
    if (run_dir / ACTIONS_FILE).is_file():
        try:
            actions = _read_json(run_dir / ACTIONS_FILE)
        except ValueError as exc:
            notes.append(f"actions.json could not be read: {exc}")
    metrics = None
    metrics_file = None
    for name in METRICS_FILES:
        if metrics is None and (run_dir / name).is_file():
            try:
                doc = _read_json(run_dir / name)
                if name in VERSIONED:  # a newer worldpolicy's is said (NewerFormatError), not shown as if read
                    schema_matches(doc, VERSIONED[name], repr(str(run_dir / name)))
                metrics, metrics_file = doc, name
            except ValueError as exc:
                notes.append(f"{name} could not be read: {exc}")

    if isinstance(actions, Mapping):
        dream = metrics if metrics_file == DREAM_FILE and isinstance(metrics, Mapping) else None
        try:
            sections.append(f"<section id=summary><h2>Summary</h2>{_summary_cards(actions, dream)}</section>")
        except _UNUSABLE as exc:
            notes.append(f"actions.json summary could not be shown: {exc}")
    episodes: dict[str, Mapping[str, Any]] = {}  # a sim run's records by seed, which names each episode's video
    if _is_sim_report(metrics):
        try:
            sections.append(f"<section id=summary><h2>Summary</h2>{_sim_summary_cards(metrics)}</section>")
            episodes = {str(r.get("seed")): r for r in metrics.get("episodes", []) if isinstance(r, Mapping)}
        except _UNUSABLE as exc:
            notes.append(f"report.json summary could not be shown: {exc}")

    kind = _run_kind(run_dir, actions if isinstance(actions, Mapping) else None, metrics)
    units: Mapping[str, str] = {}  # column -> unit of a training run's embodiment: its metrics plot groups by them
    if kind == "train":  # what was trained, from the folder's config and checkpoints: its curves alone said little
        from .train_report import train_sections

        train, train_notes, units = train_sections(run_dir)
        sections += train
        notes += train_notes

    videos = []
    mode = actions.get("mode") if isinstance(actions, Mapping) else None
    embedded = 0
    # a planned sim run's candidates (two levels down) after its episodes, each captioned with its episode's outcome
    for i, path in enumerate([*_files(run_dir, "*.mp4"), *sorted(run_dir.glob(SIM_CANDIDATE_VIDEOS))]):
        rel = path.relative_to(run_dir).as_posix()
        what, explanation = describe_video(rel, mode if isinstance(mode, str) else None, kind)
        composed = rollout_regions(run_dir, actions) if rel == ROLLOUT_VIDEO and isinstance(actions, Mapping) else None
        if composed is not None:  # the model's cameras composed into one picture: which part is which
            explanation += f"; its cameras, composed as the model sees them: {regions_said(composed)}"
        outcome = _episode_outcome(rel, episodes)
        figure, embedded = video_figure(run_dir, path, i, what, explanation, embedded, outcome)
        videos.append(figure)
    video_section = f"<section id=videos><h2>Videos</h2>{''.join(videos)}</section>" if videos else ""

    images, inputs = [], []  # the run's plots; its observation's camera images (`OBSERVATION_FOLDER`), not plots
    for path in _files(run_dir, "*.png"):
        rel = path.relative_to(run_dir).as_posix()
        problem = _unreadable_png(path)
        if problem:
            notes.append(f"{rel} is not shown: {problem}")
            continue
        (inputs if path.parent == run_dir / OBSERVATION_FOLDER else images).append(
            image_figure(_data_uri(path, "image/png"), describe_image(rel), rel))
    # a sim run's episodes.jsonl is its episodes, tabulated below and in episodes.csv, not a log over steps
    for path in sorted(p for p in run_dir.glob("*.jsonl") if p.name != SIM_EPISODES_FILE):
        try:
            png, n = _log_curves(path, units)
        except _UNUSABLE as exc:
            notes.append(f"{path.name} could not be plotted: {exc}")
            continue
        if png is not None:
            uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
            images.append(image_figure(uri, f"each field {path.name} logged, over its steps ({plural(n, 'record')})"))
    plot_section = f"<section id=plots><h2>Plots</h2>{''.join(images)}</section>" if images else ""
    # a sim run's success plot before its episodes, which may be hundreds of players; a predict run's clips first
    order = (plot_section, video_section) if _is_sim_report(metrics) else (video_section, plot_section)
    if inputs:  # what the model was given, before what it made of it
        observed = ("<section id=observation><h2>Observation</h2><p>the camera images the run was given, one per "
                    f"camera</p>{''.join(inputs)}</section>")
        order = (observed, *order)
    sections += [section for section in order if section]

    # forward dynamics' frame errors (openloop.json v2) have no columns: its metrics and horizon tables show them
    if metrics_file == OPENLOOP_FILE and isinstance(metrics, Mapping) and metrics.get("mode") != "forward_dynamics":
        sections.append(_open_loop_section(metrics))
        metrics = {k: v for k, v in metrics.items() if k not in OPEN_LOOP_TABLED}
    if metrics is not None:
        tables = dict(_record_lists(metrics))
        # a dream's reward_meaning is said above its chunks' table (`_reward_note`), not in the Metrics table too
        noted = {"reward_meaning"} if "chunks" in tables and _reward_note(metrics) else set()
        scalars = {k: v for k, v in metrics.items() if k not in tables and k not in noted} if tables else metrics
        sections.append(f"<section id=metrics><h2>Metrics</h2>{_kv_table(_flatten(scalars), 'metrics')}</section>")
        for key, rows in tables.items():
            sections.append(f"<section id='records-{_esc(key)}'><h2>{_esc(key.capitalize())}</h2>"
                            f"{_reward_note(metrics) if key == 'chunks' else ''}{_records_table(rows)}</section>")
    if isinstance(actions, Mapping) and actions.get("actions"):
        try:
            space = model_space_note([str(u) for u in actions.get("units", [])]) or "physical units"
            sections.append(
                f"<section id=actions><h2>Actions ({_esc(space)})</h2><details open><summary>"
                f"{len(actions['actions'])} steps × {len(actions.get('columns', []))} dims</summary>"
                f"{_action_table(actions)}</details></section>"
            )
        except _UNUSABLE as exc:
            notes.append(f"actions.json actions could not be shown: {exc}")
    if log := _log_section(run_dir, kind):
        sections.append(log)
    if (run_dir / SETTINGS_FILE).is_file():
        try:
            settings = json.dumps(_read_json(run_dir / SETTINGS_FILE), indent=2, sort_keys=True, ensure_ascii=False)
            sections.append(f"<section id=settings><h2>Settings</h2><pre>{_esc(settings)}</pre></section>")
        except ValueError as exc:
            notes.append(f"settings.json could not be read: {exc}")

    files_section, files = _files_section(run_dir)
    sections.append(files_section)
    if notes:
        sections.insert(0, _notes_section(notes))

    title = title or f"{kind if kind == 'run' else f'{kind} run'} · {run_dir.resolve().name}"
    counts = f"{plural(len(videos), 'video')} · {plural(len(images), 'plot')} · {plural(files, 'file')}"
    return page_html(title, kind, counts, sections)


def _log_section(run_dir: Path, kind: str) -> str:
    """The console a sim or training run keeps (`RUN_LOGS`: sim.log, train.log) linked, with its last
    `LOG_TAIL_LINES` lines (a finished sim run's last: its result); '' where the run keeps none."""
    name = RUN_LOGS.get(kind)
    if name is None or not (run_dir / name).is_file():
        return ""
    size = (run_dir / name).stat().st_size
    with (run_dir / name).open("rb") as fh:
        fh.seek(max(size - LOG_TAIL_BYTES, 0))
        lines = fh.read().decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        lines = lines[1:]  # cut in its middle
    shown = "\n".join(lines[-LOG_TAIL_LINES:])
    return ("<section id=log><h2>Log</h2><p>the run's console, kept: every line its sessions showed, timed, appended "
            f"across resumes: <a href='{_href(name)}'>{_esc(name)}</a> ({size:,} bytes)"
            + (f"; its last {plural(min(len(lines), LOG_TAIL_LINES), 'line')}:</p><pre class=log>{_esc(shown)}</pre>"
               if lines else ", empty</p>") + "</section>")


def video_figure(run_dir: Path, path: Path, index: int, what: str, explanation: str, embedded: int,
                 extra: str = "") -> tuple[str, int]:
    """(a captioned player of the video at `path`, the bytes of video the page embeds with it): embedded as a data URI
    while it fits `MAX_EMBED_VIDEO_BYTES` and, with the `embedded` bytes before it, `MAX_EMBED_VIDEOS_TOTAL_BYTES`,
    else linked relative to `run_dir`, which its caption says. `index` numbers the player for the script that fills
    its caption; `extra`: HTML (escaped) after the explanation, such as a sim episode's outcome."""
    rel = path.relative_to(run_dir).as_posix()
    size = path.stat().st_size
    if size > MAX_EMBED_VIDEO_BYTES:
        linked = f", linked, not embedded: over {MAX_EMBED_VIDEO_BYTES / 1e6:.1f} MB"
    elif embedded + size > MAX_EMBED_VIDEOS_TOTAL_BYTES:
        linked = f", linked, not embedded: the page holds at most {MAX_EMBED_VIDEOS_TOTAL_BYTES / 1e6:.1f} MB of video"
    else:
        linked, embedded = "", embedded + size
    src = _href(rel) if linked else _data_uri(path, "video/mp4")
    figure = (
        f"<figure><video id=video-{index} controls muted loop playsinline preload=metadata src='{src}'></video>"
        f"<figcaption><b class=video-what>{_esc(what)}</b>: {_esc(explanation)}{extra}<br>"
        f"<a href='{_href(rel)}'>{_esc(rel)}</a> ({size / 1e6:.2f} MB{_esc(linked)}) "
        f"<span class=video-meta id=video-{index}-meta data-state=pending>not decoded yet</span></figcaption></figure>"
    )
    return figure, embedded


def _files_section(run_dir: Path) -> tuple[str, int]:
    """(the Files section, how many files the folder holds): each file linked with its size, up to
    `MAX_LISTED_FILES`. The page is not one of the run's files: a rewrite counted its previous self."""
    files = [p for p in sorted(run_dir.rglob("*"))
             if p.is_file() and not p.name.startswith(".") and p.relative_to(run_dir).as_posix() != REPORT_FILE]
    listed = files[:MAX_LISTED_FILES]
    rows = "".join(
        f"<tr><td class=k><a href='{_href(p.relative_to(run_dir).as_posix())}'>{_esc(p.relative_to(run_dir).as_posix())}"
        f"</a></td><td>{p.stat().st_size:,}</td></tr>"
        for p in listed
    )
    if len(files) > len(listed):
        rows += f"<tr><td class=k>… and {len(files) - len(listed)} more</td><td></td></tr>"
    section = (f"<section id=files><h2>Files</h2><table><tr><th class=k>file</th><th>bytes</th></tr>{rows}</table>"
               "</section>")
    return section, len(files)


def _notes_section(notes: list[str]) -> str:
    return "<section id=notes><h2>Notes</h2><ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul></section>"


# A section as every page writes it (`<section id=...><h2>...</h2>`): its id, quoted or not, and its heading's HTML
_SECTION_HEAD = re.compile(r"<section id=(?:'([^']*)'|([^\s>']+))><h2>(.*?)</h2>")


def _contents(sections: list[str]) -> str:
    """A list of links to the page's sections by their headings, before them: a keyboard or screen reader user
    otherwise went through every video player and table (a sim run's hundreds) to reach the Files or Settings."""
    import urllib.parse

    heads = [m for m in map(_SECTION_HEAD.match, sections) if m]
    if len(heads) < 3:
        return ""
    links = "".join(f"<li><a href='#{_esc(urllib.parse.quote(html.unescape(m[1] or m[2])))}'>{m[3]}</a></li>"
                    for m in heads)
    return f"<nav aria-label='sections of this page'><ul>{links}</ul></nav>"


def page_html(title: str, kind: str, counts: str, sections: list[str]) -> str:
    """The page around `sections`: one style (CSS), header (`title`, when it was made, `counts` of what it shows),
    links to its sections (`_contents`) and script for every page worldpolicy writes, a run's or a comparison's
    (`viz.compare_page`)."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body data-run-kind='{_esc(kind)}'>"
        f"<header><h1>{_esc(title)}</h1><p>worldpolicy report · {_esc(stamp)} · {_esc(counts)}</p></header>"
        f"{_contents(sections)}<main>{''.join(sections)}</main><script>{_JS}</script></body></html>"
    )


def write_report(run_dir: str | Path, title: str | None = None) -> Path:
    """Write `<run_dir>/index.html` atomically and return its path; a checkpoint or dataset folder is refused (its
    index.html, if any, is not ours to replace), naming the page that is: a dataset's `dataset show`, a checkpoint's
    its training run's. A sweep's (`sweep.json`) writes first the page of each checkpoint run it holds that has none
    (run with --no-plots), which its table links."""
    from ..fileio import CHECKPOINT_GLOB, RUN_WRITERS, folder_kind, refuse_foreign_folder

    run_dir = Path(run_dir)
    try:
        refuse_foreign_folder(run_dir, "run_dir", RUN_WRITERS)
    except ValueError as err:
        # the run from the whole path: `report step-N` in its checkpoints/, or `report .` in it, names one too
        found, full = folder_kind(run_dir), run_dir.absolute()
        run = full.parent.parent
        if found is not None and found[0].repo_type == "dataset":
            raise ValueError(f"{err}; a dataset's page: worldpolicy dataset show {run_dir} --out DIR") from None
        if found is not None and found[0].repo_type == "model" and full.relative_to(run).match(CHECKPOINT_GLOB) and (
                (kind := folder_kind(run)) is not None and kind[0].writer == "train"):
            raise ValueError(f"{err}; its training run's page: worldpolicy report {run}") from None
        raise
    if (run_dir / SWEEP_FILE).is_file():  # each checkpoint run's page, which the sweep's links, where it has none
        from ..fileio import read_sweep_doc
        from .sweep_page import sweep_runs

        read_sweep_doc(run_dir)  # a sweep.json this cannot read is refused before any page is written
        for run in sweep_runs(run_dir):
            if not (run / REPORT_FILE).is_file():
                write_report(run)
    page = build_report_html(run_dir, title)
    # "?" for what UTF-8 cannot hold: a file name's bytes that are not UTF-8, a lone surrogate escaped in a JSON file
    return write_bytes_atomic(run_dir / REPORT_FILE, page.encode("utf-8", errors="replace"))


def report_server(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765):
    """The HTTP server `serve_report` runs (not yet serving): the run directory, read-only, through stdlib
    http.server, except what a symbolic link inside it points to outside it. http.server keeps `..` out of a URL's
    path but opens links as it finds them, so a run folder holding `leak -> /home/me` served the home folder (to the
    network, with `--host 0.0.0.0`); such a request is refused (403). A link that stays inside is served."""
    import functools
    import http.server
    import os

    root = os.path.realpath(run_dir)

    class RunFolderHandler(http.server.SimpleHTTPRequestHandler):
        def send_head(self):
            path = self.translate_path(self.path)
            opened = [path]
            if os.path.isdir(path):  # a folder is answered with its index page when it has one (http.server's two)
                opened += [os.path.join(path, page) for page in ("index.html", "index.htm")]
            if any(os.path.commonpath([root, os.path.realpath(p)]) != root for p in opened if os.path.lexists(p)):
                self.send_error(403, "a link out of the served run folder")
                return None
            return super().send_head()

    handler = functools.partial(RunFolderHandler, directory=root)
    return http.server.ThreadingHTTPServer((host, port), handler)


def serve_report(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the run directory (read-only, `report_server`) so linked videos and raw files open in a browser."""
    run_dir = Path(run_dir).resolve()
    with report_server(run_dir, host, port) as server:
        print(f"serving {run_dir} at http://{host}:{server.server_address[1]}/{REPORT_FILE} (Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
