"""Static plots of action chunks: per-dimension time series, 3-D end-effector path, joint trajectories.

Everything draws on a private `matplotlib.figure.Figure` with the Agg canvas (no pyplot global state, safe in servers
and threads) and is written atomically. Inputs are physical actions `[T, D]` with column names and units from the
embodiment registry; `plot_prediction` picks the right plots for a `worldpolicy.actions/v1` dict.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import numpy as np

from ..embodiments import (
    LAYOUTS,
    MODEL_SPACE_UNIT,
    POSE_COLUMNS,
    UNITLESS,
    get_embodiment,
    pose_groups,
    shown_unit,
    unit_label,
)
from ..errors import is_integer, is_real
from ..fileio import atomic_path, read_json, schema_matches
from ..hub import short_pinned
from ..processing.actions import ROT6D_IDENTITY
from ..results import ACTIONS_SCHEMA, Prediction, actions_from_json, is_string_list

logger = logging.getLogger(__name__)

__all__ = [
    "EE_START_POSE",
    "GRIPPER_CLOSED_THRESHOLD",
    "GRIPPER_NAMES",
    "LENGTH_UNITS",
    "PATH_UNITS",
    "POSE_COLUMNS",
    "ClipRows",
    "RolloutChunks",
    "action_timeseries_figure",
    "check_figure_format",
    "checkpoint_name",
    "clip_rows_of",
    "ee_path_figure",
    "ee_poses",
    "ee_start_pose_of",
    "feature_heatmap_figure",
    "figure_format",
    "figure_title",
    "gripper_closed_mask",
    "gripper_columns",
    "is_dream",
    "joints_figure",
    "load_actions_file",
    "model_space_note",
    "nonfinite_summary",
    "open_loop_figure",
    "open_loop_summary_figure",
    "path_unit",
    "plot_action_timeseries",
    "plot_ee_path",
    "plot_joints",
    "plot_prediction",
    "pose_note",
    "prediction_figures",
    "real_rows_of",
    "rollout_chunks_of",
    "run_mode",
    "run_rows_of",
    "run_title",
    "save_figure",
    "settings_of",
    "steady_ylim",
    "step_markers",
    "style_ticks",
    "whole_number_ticks",
]

# Metres per unit of a translation column: paths are integrated in metres whatever a file was written in, like the
# registry, a robot's anchor pose and ROS (REP 103), so the same motion gives the same plot.
LENGTH_UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001}
# The unit a path is drawn in, by its size in metres (the larger of its travel and its axes' span): the first whose
# bound it reaches. A random-weights chunk travelled "27787.4 cm"; a 3 mm nudge had axes ticked in 0.0025 m steps.
PATH_UNITS = (("m", 1.0), ("cm", 0.1), ("mm", 0.0))
# Gripper values are in [0, 1] with 1 = closed (DROID robot convention, robot-bridge.md §5; RAW10 grasp ≈ [0, 1]).
GRIPPER_CLOSED_THRESHOLD = 0.5
GRIPPER_NAMES = ("gripper", "grasp")  # a gripper column's name, alone or after an arm's prefix (`left_grasp`)
# Styling facts shared by every figure and video of the package (sim and training reports too), all from the
# Okabe-Ito palette, whose colours red-green colour-blind readers (1 in 12 men) tell apart: tab10's green, red, orange
# and brown were one olive to them. In action figures vermillion is the gripper's and nothing else's.
GRIPPER_COLOR = "#d55e00"  # vermillion
LINE_COLOR = "#0072b2"  # blue
# Spans where the gripper is closed are shaded orange, and in the 3-D path its closed poses are orange squares: the
# path's frame triads are red, green and blue (the RViz convention), so no point there is any of those.
CLOSED_COLOR = "#e69f00"
CLOSED_ALPHA = 0.2  # the spans' opacity over white: a light tint, under which an orange joint line still shows
PATH_COLOR = "0.35"  # the 3-D path's line and its open-gripper points' edges
# Inverse dynamics rows past `settings["real_rows"]` explain copies of a short clip's last frame, not motion seen:
# every figure of the run hatches them grey (a dashed grey path in 3-D), unlike the gripper's filled orange spans.
PADDED_COLOR = "0.6"
PADDED_HATCH = "//"
# A whole trajectory's chunk starts (forward dynamics): dashed near-black lines, told from the grid's light grey and
# from the playhead's solid line
CHUNK_COLOR = "0.25"
MAX_CHUNK_LABELS = 10  # "chunk j" labels above a subplot: past it every k-th chunk is labelled (each is still lined)
# Okabe-Ito bluish green and vermillion: tab10's green and red, as a deuteranope sees them, differ by a just-noticeable
# step (CIELAB ΔE about 7), and the sim's success and failure bars are told apart by colour alone.
SUCCESS_COLOR = "#009e73"
FAILURE_COLOR = "#d55e00"
# Okabe-Ito without the gripper's vermillion and with grey for its yellow (a yellow line on white is hardly seen): one
# colour for each of a 7-joint arm's joints; more joints repeat them dashed.
SERIES_COLORS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#000000", "#999999")
TITLE_FONTSIZE = 10
LABEL_FONTSIZE = 8
TICK_FONTSIZE = 7
LEGEND_FONTSIZE = 7
DPI = 100
FIGURE_FORMATS = ("png", "pdf", "svg")  # what save_figure writes, by the path's suffix
MARKED_STEPS = 64  # series of up to this many points mark each one; a single point is marked larger, or nothing shows
_TITLE_GAP_IN = 0.1  # from the figure's top edge to the title
_TITLE_LINE_IN = 0.2  # one title line at TITLE_FONTSIZE
_LEGEND_BELOW_IN = 0.75  # the 3-D path's legend under its axes: two rows of three entries, one of two lines


def style_ticks(ax, **kwargs) -> None:
    """Tick labels at TICK_FONTSIZE, and the axis' offset or scale ("1e7", "+1.23456e5") with them: `tick_params`
    leaves it at matplotlib's 10 pt, larger than the labels it scales, in the gap above the axes."""
    ax.tick_params(labelsize=TICK_FONTSIZE, **kwargs)
    for axis in (ax.xaxis, ax.yaxis, *([ax.zaxis] if hasattr(ax, "zaxis") else [])):
        axis.get_offset_text().set_fontsize(TICK_FONTSIZE)


def plain_values(ax) -> None:
    """An axis of action values labelled with the values themselves (a 3-D path's every axis, a plot's y): matplotlib's
    default offset drew a column near 1 (0.9991 .. 0.9998) as "+1" above steps of 1e-4, while its neighbour beside it
    read plainly, so the two looked alike where one is a thousand times the other."""
    ax.ticklabel_format(axis="both" if hasattr(ax, "zaxis") else "y", useOffset=False)


# A subplot whose values span less than this (in their unit, or relative to their size past 1) holds one value up to
# float rounding: 1e-9 m or rad is no motion any robot makes, while a column computed to 0 came out as ±1.4e-17.
NEAR_CONSTANT_SPAN = 1e-9
# The least y span a subplot of a column in these units is drawn over: a column that moves less is drawn as the flat
# line it is, not stretched over its axis. The open-loop plot of the reach model's `grasp`, which its data never
# closes, was 1e-8 noise on a 1e-8 axis, read as activity. A tenth of a millimetre, a milliradian, a thousandth of a
# gripper's travel or a unitless entry (a rotation matrix's, a normalised action's [-1, 1]): less than any motion a
# plot is read for. A unit not listed keeps matplotlib's range (past NEAR_CONSTANT_SPAN).
MIN_Y_SPAN = {"m": 1e-4, "cm": 1e-2, "mm": 0.1, "rad": 1e-3, "deg": 0.05, UNITLESS: 1e-3, MODEL_SPACE_UNIT: 1e-3}


def steady_ylim(ax, unit: str | None = None) -> None:
    """Give a subplot whose values are constant up to rounding the y range matplotlib gives an exactly constant one
    (its value ± 5.5 %, or ± 0.055 around 0; a value within NEAR_CONSTANT_SPAN of 0 is 0): autoscaled, a column
    computed to 0 as ±1.4e-17 was drawn as a zigzag on a "1e-17" offset axis, noise that read as motion. A subplot in
    `unit` (its column's) spans at least `MIN_Y_SPAN[unit]`, around its values (around 0 when they lie within half of
    it of 0). Every plot of action columns calls it once everything of the subplot is drawn (a gripper's threshold
    line widens its range as it should)."""
    lo, hi = ax.get_ylim()
    if hi - lo <= NEAR_CONSTANT_SPAN * max(1.0, abs(lo), abs(hi)):
        value = (lo + hi) / 2 if abs(lo + hi) / 2 > NEAR_CONSTANT_SPAN else 0.0
        half = 0.055 * abs(value) if value else 0.055
        lo, hi = value - half, value + half
    least = MIN_Y_SPAN.get(unit) if unit is not None else None
    if least is not None and hi - lo < least:
        middle = 0.0 if max(abs(lo), abs(hi)) <= least / 2 else (lo + hi) / 2
        lo, hi = middle - least / 2, middle + least / 2
    if (lo, hi) != ax.get_ylim():
        ax.set_ylim(lo, hi)


def _literal(text: str) -> str:
    """Column names, units and titles drawn as written: a `$` in them is not the start of matplotlib mathtext (an
    unpaired one is a parse error at save time). Escaping, unlike rcParams, is safe across threads."""
    return str(text).replace("$", r"\$")


def _new_figure(width_in: float, height_in: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def series_style(k: int) -> dict[str, str]:
    """Colour and line style of the k-th of several overlaid series (joints, training losses)."""
    return {"color": SERIES_COLORS[k % len(SERIES_COLORS)], "ls": "-" if k < len(SERIES_COLORS) else "--"}


def legend_above_curves(ax, **options: Any) -> Any:
    """A legend in `ax`'s upper left, over room made for it: the y axis raised (in log space on a log axis) until
    what is drawn sits below it. At loc "best" on a small panel whose curves filled every corner it covered the lines
    it named; `ax`'s scale and limits must be set first."""
    legend = ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", **options)
    renderer = ax.figure.canvas.get_renderer()
    # the legend's bottom as a fraction of the axes' height, less a small gap; kept to the top third at the least
    free = max(1 / 3, ax.transAxes.inverted().transform(legend.get_window_extent(renderer))[0, 1] - 0.04)
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, low * (high / low) ** (1 / free))
    else:
        ax.set_ylim(low, low + (high - low) / free)
    return legend


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_BREAK_AFTER = re.compile(r"(?<=[._/:-])")  # where a name too wide for its line may break: after its separators
_LEGEND_TEXT_MAX_IN = 2.4  # a legend name's widest line, in inches at LEGEND_FONTSIZE
_LEGEND_ENTRY_IN = 0.5  # a legend entry's line sample, gaps and frame beside its name
_MAX_LABEL_LINES = 3  # a y label of more lines runs out of the margin left of its axes, over the figure's edge


def whole_number_ticks(**options: Any) -> Any:
    """A tick locator at whole numbers only (steps, frames, episodes): `min_n_ticks=1`, else matplotlib falls back to
    fractional ticks on a span of one or none (a one-step run's axis was ticked 9.45, 9.60, ...)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True, min_n_ticks=1, **options)


def _text_width(fig, text: str, fontsize: float) -> float:
    """`text`'s width in pixels at `fontsize`, measured with the figure's own renderer."""
    from matplotlib.font_manager import FontProperties

    return fig.canvas.get_renderer().get_text_width_height_descent(text, FontProperties(size=fontsize), ismath=False)[0]


def _wrap_to_width(fig, line: str, width_px: float, fontsize: float = TITLE_FONTSIZE) -> list[str]:
    """`line` broken between words into lines no wider than `width_px` at `fontsize`. A word wider than that is
    broken after its separators (`.`, `_`, `/`, `:`, `-`), and a piece still wider between characters: column names
    are one word, and `observation.state.left_arm_shoulder_pan_joint_position` as a y label stayed whole, taller
    than its subplot and over the next one's."""

    def fits(text: str) -> bool:
        return _text_width(fig, text, fontsize) <= width_px

    def pieces(word: str) -> list[str]:
        if fits(word):
            return [word]
        out: list[str] = []
        for part in _BREAK_AFTER.split(word):
            while part and not fits(part):
                cut = next((n for n in range(len(part) - 1, 0, -1) if fits(part[:n])), 1)
                out.append(part[:cut])
                part = part[cut:]
            if part:
                out.append(part)
        return out

    lines: list[str] = []
    for word in line.split(" "):
        for k, piece in enumerate(pieces(word)):
            joined = f"{lines[-1]}{' ' if k == 0 else ''}{piece}" if lines else piece
            if lines and fits(joined):
                lines[-1] = joined
            else:
                lines.append(piece)
    return lines


_HEADING_BREAKS = re.compile(r"(?<= ·) |(?<=:) ")  # where a heading rather breaks: between a run's parts, its subject


def _wrap_heading(fig, line: str, width_px: float) -> list[str]:
    """A heading broken into lines no wider than `width_px`, between its parts where it can (after ` ·` and `:`,
    `run_title`'s separators and the figure's subject after it), between words in a part too wide for a line: broken
    between words alone, a 6.4-inch path figure's heading split its quoted prompt over two lines, the subject after
    it on the second."""
    lines: list[str] = []
    for part in _HEADING_BREAKS.split(line):
        joined = f"{lines[-1]} {part}" if lines else part
        if lines and _text_width(fig, joined, TITLE_FONTSIZE) <= width_px:
            lines[-1] = joined
        elif _text_width(fig, part, TITLE_FONTSIZE) <= width_px:
            lines.append(part)
        else:  # too wide for any line: its words from the end of the line before
            lines[-1:] = _wrap_to_width(fig, joined, width_px)
    return lines


def figure_title(fig, heading: str, detail: str = "") -> float:
    """Draw the heading (what and which run) and a detail line at a fixed distance in inches from the top edge, and
    return the top margin they need. A title placed at a fraction of the height (matplotlib's default) sat inside
    the first row of axes of a tall figure (a 29-column chunk, a training log with many fields). Lines wider than the
    figure are wrapped (the heading between its parts first, `_wrap_heading`; the detail between words): a run's name
    with its prompt ran off both sides of the 6.4-inch path figure."""
    width_px = (fig.get_size_inches()[0] - 2 * _TITLE_GAP_IN) * fig.dpi
    lines = [part for line, wrap in ((heading, _wrap_heading), (detail, _wrap_to_width)) if line
             for raw in line.split("\n") for part in wrap(fig, raw, width_px)]
    text = "\n".join(lines)
    height = fig.get_size_inches()[1]
    fig.suptitle(_literal(text), y=1 - _TITLE_GAP_IN / height, va="top", fontsize=TITLE_FONTSIZE)
    return _TITLE_GAP_IN + _TITLE_LINE_IN * len(text.splitlines()) + 0.15


def _grid_margins(fig, nrows: int, ncols: int, left=0.8, right=0.2, top=0.45, bottom=0.5, wgap=0.85, hgap=0.25):
    """Fixed margins in inches (`top` from `figure_title`): a constrained layout would cost more than the drawing
    itself for small figures."""
    w, h = fig.get_size_inches()
    axis_w = (w - left - right - wgap * (ncols - 1)) / ncols
    axis_h = (h - top - bottom - hgap * (nrows - 1)) / nrows
    fig.subplots_adjust(
        left=left / w,
        right=1 - right / w,
        top=1 - top / h,
        bottom=bottom / h,
        wspace=wgap / axis_w,
        hspace=hgap / axis_h,
    )


def check_figure_format(fmt: Any, name: str = "format") -> str:
    """`fmt` as one of FIGURE_FORMATS (the file name suffix a figure is written under), or a ValueError naming
    `name`."""
    if not isinstance(fmt, str) or fmt.lower() not in FIGURE_FORMATS:
        raise ValueError(f"{name}={fmt!r}: expected one of {', '.join(FIGURE_FORMATS)}")
    return fmt.lower()


def figure_format(path: str | Path) -> str:
    """The file format a figure path asks for, by its suffix (`FIGURE_FORMATS`): a PDF or SVG for a paper, where a
    100-dpi PNG prints blurred. Every figure was written as PNG whatever the name, so `path.pdf` was a PNG."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"path={str(path)!r}: expected a file name ending in "
                         f"{', '.join('.' + f for f in FIGURE_FORMATS)} (its suffix picks the format)")
    return fmt


# Journals and arXiv ask for embedded TrueType (Type 42) fonts: matplotlib's default Type 3 fonts are refused by
# their PDF checks and lose text search. Set while a PDF is written only, not for the whole process on import; the
# lock keeps two threads' saves from restoring each other's setting (rcParams are global).
_PDF_RC = {"pdf.fonttype": 42, "ps.fonttype": 42}
_PDF_RC_LOCK = threading.Lock()


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure atomically (temp file in the target folder, then os.replace) in the format its suffix names:
    PNG at `DPI`, or vector PDF (TrueType fonts) / SVG."""
    import matplotlib

    fmt = figure_format(path)
    with atomic_path(path, suffix=f".{fmt}") as tmp:
        if fmt == "pdf":
            with _PDF_RC_LOCK, matplotlib.rc_context(_PDF_RC):
                fig.savefig(tmp, format=fmt, dpi=DPI)
        else:
            fig.savefig(tmp, format=fmt, dpi=DPI)
    return Path(path)


def _check_actions(
    actions: Any, columns: Sequence[str], units: Sequence[str] | None = None, gripper_column: str | None = None
) -> np.ndarray:
    unknown = [g for g in _gripper_list(gripper_column) if g not in columns]
    if unknown:
        raise ValueError(f"gripper_column={gripper_column!r}: {unknown} not among the columns {list(columns)}")
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"actions must be a 2-D array [T, D] with T >= 1, got shape {a.shape}")
    if len(columns) != a.shape[1]:
        raise ValueError(f"columns has {len(columns)} names but actions has {a.shape[1]} dimensions (shape {a.shape})")
    if units is not None and len(units) != a.shape[1]:
        raise ValueError(f"units has {len(units)} entries but actions has {a.shape[1]} dimensions (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"actions contain NaN or inf values: {nonfinite_summary(a, columns)}; nothing to plot")
    return a


def nonfinite_summary(actions: np.ndarray, columns: Sequence[str]) -> str:
    """Where a chunk's NaN or inf values are (how many, which columns, the first row): "actions contain NaN" left a
    user searching a 57-column chunk for the one broken value."""
    bad = ~np.isfinite(actions)
    names = [str(c) for c in columns] + [f"#{i}" for i in range(len(columns), actions.shape[1])]  # a file's own
    row, col = np.argwhere(bad)[0]
    named = [name for name, column_bad in zip(names, bad.any(axis=0)) if column_bad]
    return (f"{int(bad.sum())} of {bad.size} values, in {plural(len(named), 'column')} ({', '.join(named)}), "
            f"first at row {row}, column {names[col]!r}")


def _check_fps(fps: float, name: str = "fps") -> float:
    if not is_real(fps) or fps <= 0:
        raise ValueError(f"{name}={fps!r} must be a positive number")
    return float(fps)


def _require_path(path: str | Path | None, fn: str) -> Path:
    if path is None:
        raise TypeError(f"{fn}: path is required (where to write the figure: .png, .pdf or .svg)")
    figure_format(path)  # before the figure is drawn
    return Path(path)


def _gripper_list(gripper_column: str | Sequence[str] | None) -> list[str]:
    if gripper_column is None:
        return []
    return [gripper_column] if isinstance(gripper_column, str) else list(gripper_column)


def _arm_prefix(column: str) -> str:
    """`left_` for `left_grasp` / `left_tx`; '' for an unprefixed name."""
    return column[: column.rfind("_") + 1]


def _shading_gripper(columns: Sequence[str], grippers: Sequence[str]) -> list[str | None]:
    """The gripper whose closed spans each column's subplot shades: the only one, or (one per arm) the gripper of the
    column's arm, by name prefix (`left_tx` → `left_grasp`); None for a column of no arm with a gripper (`ego_tx`)."""
    if len(grippers) == 1:
        return [grippers[0]] * len(columns)
    out = []
    for column in columns:
        matches = [g for g in grippers if _arm_prefix(g) and column.startswith(_arm_prefix(g))]
        out.append(max(matches, key=len) if matches else None)
    return out


def gripper_closed_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of steps where the gripper counts as closed (value >= GRIPPER_CLOSED_THRESHOLD)."""
    return np.asarray(values, dtype=np.float64) >= GRIPPER_CLOSED_THRESHOLD


def _intervals(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where mask is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def _shade_closed(ax, gripper: np.ndarray, fps: float, label: bool) -> None:
    for k, (s, e) in enumerate(_intervals(gripper_closed_mask(gripper))):
        ax.axvspan(
            (s - 0.5) / fps,
            (e - 0.5) / fps,
            color=CLOSED_COLOR,
            alpha=CLOSED_ALPHA,
            lw=0,
            label=f"gripper closed (≥ {GRIPPER_CLOSED_THRESHOLD:g})" if label and k == 0 else None,
        )


def _closed_threshold(ax, gripper: np.ndarray) -> None:
    """The gripper's closed threshold, a dotted line on its axes, named in the legend where no closed span is shaded
    (whose entry gives the threshold): a gripper that never closes showed an unexplained red line at 0.5."""
    ax.axhline(GRIPPER_CLOSED_THRESHOLD, color=GRIPPER_COLOR, lw=0.6, ls=":",
               label=None if gripper_closed_mask(gripper).any() else f"closed at ≥ {GRIPPER_CLOSED_THRESHOLD:g}")


def settings_of(prediction: Mapping[str, Any]) -> Mapping[str, Any]:
    """A run's settings, {} where its actions.json holds none or something else (a list, a string: a file written by
    hand or by another tool): every reader of them here takes them through this (`report` gave a traceback for one)."""
    settings = prediction.get("settings")
    return settings if isinstance(settings, Mapping) else {}


def real_rows_of(prediction: Mapping[str, Any]) -> int | None:
    """How many leading rows of an inverse dynamics result its clip's own frames explain (`settings["real_rows"]`),
    when that is fewer than its rows: the clip held fewer than chunk_size+1 frames and the rows after these explain
    copies of its last frame. None for every other result (the figures then mark nothing)."""
    settings = settings_of(prediction)
    if prediction.get("mode") != "inverse_dynamics" or "real_rows" not in settings:
        return None
    return _check_real_rows(settings["real_rows"], len(prediction["actions"]), "settings.real_rows")


EE_START_POSE = "ee_start_pose"  # the settings key a run that knows where its arm started records that pose under


def ee_start_pose_of(prediction: Mapping[str, Any]) -> np.ndarray | None:
    """The end-effector pose a run's chunk starts from, 4x4 in metres in the robot's base frame
    (`settings["ee_start_pose"]`: `worldpolicy demo` records FK of the sim arm's joints), which `ee_path.png` is drawn
    from, in the base frame; None where the run does not know it (an image given to `predict`)."""
    settings = settings_of(prediction)
    if settings.get(EE_START_POSE) is None:
        return None
    value = settings[EE_START_POSE]
    try:
        pose = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        pose = None
    if pose is None or pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
        raise ValueError(f"settings.{EE_START_POSE}={value!r:.200}: expected the start end-effector pose, a finite 4x4 "
                         "matrix in metres in the robot's base frame (a list of 4 rows), or none")
    return pose


@dataclass(frozen=True)
class ClipRows:
    """Which frames of its clip an inverse dynamics result's rows explain (`settings["clip"]`, `Policy.infer_actions`):
    row i takes clip frame `frames_used[i]` to `frames_used[i + 1]` (indexes into the clip as given), in windows of
    `window_rows` rows. A whole clip from frame 40, or one read at the embodiment's rate (`resampled` from `clip_fps`),
    has rows that are not its frames from 0: the figures give each row's clip frame on a second axis and the
    report's table a column, so a spike can be found in the clip; window starts are ticked there, as the model saw
    each window alone. The figures ask it for its heading line (`note`), the room above the top row its marks take
    (`heading_in`) and to `mark` each subplot: a forward dynamics trajectory's chunks (`RolloutChunks`) are marked
    by the same calls."""

    frames_used: tuple[int, ...]
    window_rows: tuple[int, ...]
    clip_fps: float | None
    resampled: bool

    heading_in: ClassVar[float] = 0.35  # the clip-frame axis above the top row of subplots: its tick labels and name
    pieces: ClassVar[str] = "windows"  # what the rows were run in: the report's stage times are summed over them
    column: ClassVar[str] = "clip frames"  # the report's action table: a column of what each row is (`cell`)

    def frame_at(self, t: np.ndarray | float, fps: float) -> np.ndarray | float:
        """The clip frame at time `t` (seconds from row 0 at `fps`), on the straight line from the first frame used
        to the last (a resampled clip's frames are the nearest to it, within half a frame)."""
        rows = len(self.frames_used) - 1
        return self.frames_used[0] + np.asarray(t) * fps * (self.frames_used[-1] - self.frames_used[0]) / rows

    def time_at(self, frame: np.ndarray | float, fps: float) -> np.ndarray | float:
        """`frame_at`'s inverse."""
        rows = len(self.frames_used) - 1
        return (np.asarray(frame) - self.frames_used[0]) * rows / (self.frames_used[-1] - self.frames_used[0]) / fps

    def window_starts(self) -> list[int]:
        """The clip frames the windows after the first start from."""
        return [self.frames_used[k] for k in np.cumsum(self.window_rows)[:-1]]

    def note(self) -> str:
        """What a heading says of it: `rows from clip frames 40..340 (75 windows of 4 rows), resampled from 30 fps`."""
        resampled = f", resampled from {self.clip_fps:g} fps" if self.resampled and self.clip_fps else ""
        return (f"rows from clip frames {self.frames_used[0]}..{self.frames_used[-1]} "
                f"({_sizes(self.window_rows, 'window')}){resampled}")

    def card(self) -> tuple[str, str]:
        """The report's summary card of it, (name, what): `clip`, `clip frames 40..340 (75 windows of 4 rows)`."""
        return "clip", self.note().removeprefix("rows from ")

    def cell(self, row: int) -> str:
        """Row `row`'s entry in the report's `column`: the clip frames it takes one to the other, `40→42`."""
        return f"{self.frames_used[row]}→{self.frames_used[row + 1]}"

    def mark(self, ax, fps: float, top: bool) -> None:
        """Mark one subplot of a figure over the rows (`top`: one of the top row): a second x axis on top in clip
        frames (`frame_at`), the window starts ticked short on it."""
        if not top:
            return
        from matplotlib.ticker import FixedLocator

        axis = ax.secondary_xaxis("top", functions=(lambda t: self.frame_at(t, fps), lambda f: self.time_at(f, fps)))
        # frames are whole: one row's clip (a span of one frame) was ticked 39.25, 39.5, ... (MaxNLocator falls back
        # to fractions when fewer than min_n_ticks whole ones are in view; one is enough)
        axis.xaxis.set_major_locator(whole_number_ticks(nbins=8))
        axis.xaxis.set_minor_locator(FixedLocator(self.window_starts()))
        axis.xaxis.remove_overlapping_locs = False  # a window starting at a labelled frame is ticked too
        axis.tick_params(which="minor", length=3, color="0.4")
        axis.tick_params(which="major", length=5)
        style_ticks(axis)
        starts = "; short ticks: window starts" if len(self.window_rows) > 1 else ""
        axis.set_xlabel(f"clip frame{starts}", fontsize=LABEL_FONTSIZE, labelpad=2)


@dataclass(frozen=True)
class RolloutChunks(ClipRows):
    """A forward dynamics result over a whole trajectory (`settings["trajectory"]`,
    `Policy.imagine(whole_trajectory=True)`): its rows rolled out in chunks of `window_rows` rows, chunk j > 0
    conditioned on the last frame chunk j-1 imagined (and, `state_chained`, on its last action as the state). There
    the rollout stops seeing the real observation and goes on from the model's own frame, so its errors begin to feed
    on themselves (drift): each subplot draws a dashed line at each chunk start, labelled "chunk j" above the top row,
    and the animation captions the chunk a frame belongs to (`frame_chunk`). Its clip is the imagined one,
    `frames_used` 0..rows (row i takes frame i to i + 1): a clip-frame axis would repeat the time axis, and is not
    drawn."""

    state_chained: bool = False

    heading_in: ClassVar[float] = 0.18  # the "chunk j" labels above the top row
    pieces: ClassVar[str] = "chunks"
    column: ClassVar[str] = "chunk"

    def _restarts(self) -> str:
        """`chunks 1-2 start from the model's own last imagined frame, its last action as the state`."""
        later = len(self.window_rows) - 1
        which = "chunk 1 starts" if later == 1 else f"chunks 1-{later} start"
        state = ", its last action as the state" if self.state_chained else ""
        return f"{which} from the model's own last imagined frame{state}"

    def note(self, drawn: str = "dashed") -> str:
        """What a heading says of it: `rolled out in 3 chunks of 32 rows, the last 12; dashed: chunks 1-2 start ...`
        (`drawn`: how the figure marks the starts)."""
        return f"rolled out in {_sizes(self.window_rows, 'chunk')}; {drawn}: {self._restarts()} (drift can begin there)"

    def card(self) -> tuple[str, str]:
        """The report's summary card of it: `trajectory`, `32 rows in 3 chunks of 12 rows, the last 8; chunks 1-2
        start from the model's own last imagined frame`."""
        rows = len(self.frames_used) - 1
        return "trajectory", f"{plural(rows, 'row')} in {_sizes(self.window_rows, 'chunk')}; {self._restarts()}"

    def cell(self, row: int) -> str:
        """The chunk that rolled row `row` out, counted from 0 as `settings["trajectory"]` counts them."""
        return str(int(np.searchsorted(np.cumsum(self.window_rows), row, side="right")))

    def mark(self, ax, fps: float, top: bool) -> None:
        """A dashed line at each chunk start after the first, on every subplot; above a top-row one, "chunk j" at
        each chunk's start (every k-th past MAX_CHUNK_LABELS)."""
        starts = [0, *self.window_starts()]
        for row in starts[1:]:
            ax.axvline(row / fps, color=CHUNK_COLOR, lw=0.9, ls="--", zorder=1.5)
        if not top:
            return
        from matplotlib.transforms import blended_transform_factory

        at = blended_transform_factory(ax.transData, ax.transAxes)  # x in seconds, y just above the axes
        every = int(np.ceil(len(starts) / MAX_CHUNK_LABELS))
        for j, row in enumerate(starts):
            if j % every == 0:
                ax.text(row / fps, 1.01, f"chunk {j}", transform=at, ha="left", va="bottom",
                        fontsize=TICK_FONTSIZE, color=CHUNK_COLOR)

    def frame_chunk(self, frame: int) -> str:
        """What the animation says of imagined frame `frame` (frame i + 1 follows row i): the observation, the chunk
        that imagined it, and at a chunk's last frame that the next chunk starts from it."""
        if frame <= 0:
            return "observation: chunk 0 starts from it"
        chunks = len(self.window_rows)
        ends = np.cumsum(self.window_rows)  # chunk j imagines frames ends[j-1]+1 .. ends[j]
        j = min(int(np.searchsorted(ends, frame)), chunks - 1)
        following = f"; chunk {j + 1} starts from it" if j + 1 < chunks and frame == ends[j] else ""
        return f"chunk {j}{following}"


def _sizes(rows: Sequence[int], what: str) -> str:
    """`75 windows of 4 rows, the last 1`, or `4 rows` for a single one."""
    most = max(rows)
    if len(rows) == 1:
        return plural(most, "row")
    sizes = f"{plural(len(rows), what)} of {plural(most, 'row')}"
    return sizes + (f", the last {rows[-1]}" if min(rows) != most else "")


def clip_rows_of(prediction: Mapping[str, Any]) -> ClipRows | None:
    """An inverse dynamics result's `ClipRows`, when its rows are not simply the clip's frames from 0 in one window
    (a start frame, several windows or a resampled clip: what `predict` names in its result line too); None for any
    other result, or a `settings["clip"]` whose frames do not cover every row (a short clip's padded single window,
    whose rows past `real_rows` explain no frame of it; a file edited by hand)."""
    clip = settings_of(prediction).get("clip")
    if prediction.get("mode") != "inverse_dynamics" or not isinstance(clip, Mapping):
        return None
    try:
        used = tuple(int(f) for f in clip["frames_used"])
        windows = tuple(int(n) for n in clip["window_rows"])
        rate = float(clip["clip_fps"]) if clip.get("clip_fps") else None
        resampled = bool(clip.get("resampled", False))
    except (KeyError, TypeError, ValueError):
        return None
    rows = len(prediction.get("actions", []))
    if len(used) != rows + 1 or sum(windows) != rows or used[-1] <= used[0] or min(windows, default=0) < 1:
        return None
    if used[0] == 0 and len(windows) == 1 and not resampled:
        return None
    return ClipRows(used, windows, rate, resampled)


def rollout_chunks_of(prediction: Mapping[str, Any]) -> RolloutChunks | None:
    """A forward dynamics result's `RolloutChunks`, when it was rolled out in more than one chunk
    (`settings["trajectory"]`); None for any other result, a single chunk (drawn as ever), or chunks that do not
    tile its rows end to end from row 0 (a file edited by hand)."""
    trajectory = settings_of(prediction).get("trajectory")
    if prediction.get("mode") != "forward_dynamics" or not isinstance(trajectory, Mapping):
        return None
    try:
        spans = [(int(c["actions"][0]), int(c["actions"][1])) for c in trajectory["chunks"]]
        chained = bool(trajectory.get("state_chained", False))
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    rows = len(prediction.get("actions", []))
    tiled = all(a < b for a, b in spans) and all(b == a for (_, b), (a, _) in itertools.pairwise(spans))
    if len(spans) < 2 or not tiled or spans[0][0] != 0 or spans[-1][1] != rows:
        return None
    return RolloutChunks(tuple(range(rows + 1)), tuple(b - a for a, b in spans), None, False, chained)


def run_rows_of(prediction: Mapping[str, Any]) -> ClipRows | None:
    """How a result's rows were run in pieces, for the figures to mark: an inverse dynamics clip's windows
    (`clip_rows_of`) or a forward dynamics trajectory's chunks (`rollout_chunks_of`); None for one run of the model."""
    return clip_rows_of(prediction) or rollout_chunks_of(prediction)


def _check_clip(clip: Any, steps: int) -> ClipRows | None:
    """`clip` as a ClipRows (or RolloutChunks) whose rows are the chunk's (`steps`), or a ValueError naming it."""
    if clip is None:
        return None
    if not isinstance(clip, ClipRows) or len(clip.frames_used) != steps + 1:
        raise ValueError(f"clip={clip!r:.120}: expected a ClipRows or RolloutChunks (plots.run_rows_of) with "
                         f"{steps + 1} frames_used, one per row of the chunk plus the last")
    return clip


def _check_real_rows(real_rows: Any, steps: int, name: str = "real_rows") -> int | None:
    """`real_rows` as an int below `steps`, or None when it marks no row."""
    if real_rows is None:
        return None
    if not is_integer(real_rows) or not 0 <= real_rows <= steps:
        raise ValueError(f"{name}={real_rows!r}: expected a whole number of rows from 0 to the chunk's {steps}")
    return int(real_rows) if real_rows < steps else None


def _padded_rows(real_rows: int, steps: int) -> str:
    return f"row {real_rows}" if real_rows == steps - 1 else f"rows {real_rows}-{steps - 1}"


def padded_label(real_rows: int, steps: int) -> str:
    """What the rows after `real_rows` are, for headings and the report: which rows, and why they are not to be
    trusted (legends, beside narrow axes, say it in two short lines)."""
    return f"{_padded_rows(real_rows, steps)}: past the clip's end (its last frame repeated)"


def model_space_note(units: Sequence[str]) -> str:
    """What a figure or table of these units must say when some are `MODEL_SPACE_UNIT`: the values are the model's
    normalised ones (about [-1, 1]), not metres or radians, and a gripper among them has no "closed" threshold; ''
    when every unit is physical. Most registered heads (fractal, umi, agibot...) publish no stats."""
    odd = sum(u == MODEL_SPACE_UNIT for u in units)
    if not odd:
        return ""
    which = "all dims" if odd == len(units) else f"{odd} of {len(units)} dims"
    return f"{which} in model space ({MODEL_SPACE_UNIT}, about [-1, 1]), not physical units"


def pose_note(columns: Sequence[str], units: Sequence[str]) -> str:
    """What a relative pose's columns are, for a reader who does not know (`r0..r5` near 1 and 0 read as noise):
    the end effector's move and turn per step, with the rot6d of no turn where they are physical (model space
    rescales it), and the arms' prefixes for several; '' for a chunk without a pose."""
    groups = pose_groups(columns)
    if not groups:
        return ""
    physical = all(units[i] != MODEL_SPACE_UNIT for indexes in groups.values() for i in indexes[3:])
    identity = " ".join(f"{value:g}" for value in ROT6D_IDENTITY)
    note = ("tx, ty, tz: the end effector's move per step; r0..r5: its turn "
            f"({f'rot6d; {identity}: none' if physical else 'rot6d'})")
    arms = [prefix for prefix in groups if prefix]
    return f"{note}, per arm ({', '.join(arms)})" if arms else note


def _padded_legend(real_rows: int, steps: int) -> str:
    return f"{_padded_rows(real_rows, steps)}:\npast the clip's end"


def _shade_padded(ax, real_rows: int | None, steps: int, fps: float, label: bool) -> None:
    """Hatch the steps from `real_rows` on: they explain copies of the clip's last frame (inverse dynamics)."""
    if real_rows is None:
        return
    ax.axvspan((real_rows - 0.5) / fps, (steps - 0.5) / fps, facecolor="none", edgecolor=PADDED_COLOR,
               hatch=PADDED_HATCH, lw=0, label=_padded_legend(real_rows, steps) if label else None)


def step_markers(n: int) -> dict[str, Any]:
    """Marker style for a series of n points: each marked up to MARKED_STEPS; a lone point (a one-step chunk) larger,
    as a line through one point draws nothing."""
    if n == 1:
        return {"marker": "o", "ms": 5}
    return {"marker": ".", "ms": 3} if n <= MARKED_STEPS else {"marker": None}


def _time_axis(ax, steps: int, fps: float) -> None:
    """A one-step chunk's axis spans a control period either side of its one step, ticked at 0 only: matplotlib's
    default for a single x was ±0.05 s of ticks that meant nothing."""
    if steps == 1:
        ax.set_xlim(-1.0 / fps, 1.0 / fps)
        ax.set_xticks([0.0])


def axis_label(column: str, unit: str, ax=None) -> str:
    """`column [unit]` (`column` alone for a unit not known: "", a dataset's feature as recorded, and for a unitless
    one, `UNITLESS`: "gripper [1]" read as an index or a typo, as `shown_unit` says); given the axes it
    labels, broken (`_wrap_to_width`) to fit their height (a y label longer than its subplot, `left_finger_2
    [normalized]` of a 57-column chunk, ran into the next one's), in at most `_MAX_LABEL_LINES` lines."""
    text = unit_label(column, unit)
    if ax is not None:
        height_px = ax.get_position().height * ax.figure.bbox.height
        lines = _wrap_to_width(ax.figure, text, height_px, LABEL_FONTSIZE)
        if len(lines) > _MAX_LABEL_LINES:  # its start and end (the unit) kept; actions.json has the whole name
            lines = [*lines[: _MAX_LABEL_LINES - 1], "…" + lines[-1]]
        text = "\n".join(lines)
    return _literal(text)


def plot_action_timeseries(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    gripper_column: str | Sequence[str] | None = None,
    path: str | Path | None = None,
    title: str = "",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
) -> Path:
    """One subplot per action dimension over time (seconds); the gripper line is vermillion and its closed spans
    shaded orange; steps from `real_rows` on (an inverse dynamics result of a short clip) hatched; `clip`
    (`run_rows_of`): the clip frames the rows explain, on a second axis on top, or a whole trajectory's chunk
    starts, dashed."""
    path = _require_path(path, "plot_action_timeseries")
    return save_figure(action_timeseries_figure(actions, columns, units, fps, gripper_column, title, real_rows, clip),
                       path)


def _grid_shape(d: int) -> tuple[int, int]:
    """(rows, columns) of subplots for d dimensions: wider grids for wide chunks (57 columns in 2 were 29 rows)."""
    ncols = 1 if d <= 4 else 2 if d <= 16 else 3 if d <= 36 else 4
    return int(np.ceil(d / ncols)), ncols


_MAX_ARMS, _MAX_ARM_ROWS = 4, 16  # arm blocks drawn one per grid column (`_arm_blocks`): up to 4 of up to 16 each


def _arm_blocks(columns: Sequence[str]) -> list[list[int]]:
    """The column indexes of each arm of a multi-arm layout, in order: consecutive columns sharing the first part of
    their names (`left_` of `left_elbow`, `right_` ...), 2 to `_MAX_ARMS` parts of 2 to `_MAX_ARM_ROWS` columns,
    every column in one; else [] (one arm, `joint_0 .. gripper`, unprefixed names)."""
    firsts = [c.split("_", 1)[0] if "_" in c else None for c in columns]
    blocks = [list(g) for _, g in itertools.groupby(range(len(columns)), key=lambda i: firsts[i])]
    heads = [firsts[b[0]] for b in blocks]
    if (None in heads or len(set(heads)) != len(heads) or not 2 <= len(blocks) <= _MAX_ARMS
            or not all(2 <= len(b) <= _MAX_ARM_ROWS for b in blocks)):
        return []
    return blocks


def _grid_places(columns: Sequence[str]) -> tuple[int, int, list[int]]:
    """(rows, columns, each action column's subplot in the grid read row by row): an arm per grid column
    (`_arm_blocks`: `left_*` down the first, `right_*` down the second), else `_grid_shape`'s grid in order."""
    blocks = _arm_blocks(columns)
    if not blocks:
        nrows, ncols = _grid_shape(len(columns))
        return nrows, ncols, list(range(len(columns)))
    places = [0] * len(columns)
    for b, block in enumerate(blocks):
        for row, i in enumerate(block):
            places[i] = row * len(blocks) + b
    return max(len(b) for b in blocks), len(blocks), places


def _chunk_heading(fig, title: str, steps: int, dims: int | None, fps: float, units: Sequence[str],
                   real_rows: int | None, clip: ClipRows | None, columns: Sequence[str] = ()) -> float:
    """Draw the heading of an action chunk's figure and return the top margin it needs (`figure_title`'s, plus the
    room `clip` takes above the top row): `title` over the chunk's size (`dims`: also its columns) and rate, what
    its pose `columns` are (`pose_note`), then what its panels mark: units in model space, the rows from
    `real_rows` on hatched, `clip`'s (checked) frames."""
    size = plural(steps, "step") if dims is None else f"{plural(steps, 'step')} × {plural(dims, 'dim')}"
    detail = f"{size} @ {fps:g} Hz"
    if model_space_note(units):
        detail += f"; {model_space_note(units)}"
    if real_rows is not None:
        detail += f"; hatched: {padded_label(real_rows, steps)}"
    if clip is not None:
        detail += f"\n{clip.note()}"
    if pose := pose_note(columns, units):
        detail += f"\n{pose}"
    return figure_title(fig, title, detail) + (clip.heading_in if clip is not None else 0.0)


def action_timeseries_figure(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    gripper_column: str | Sequence[str] | None = None,
    title: str = "",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
):
    """The `plot_action_timeseries` figure (a matplotlib Figure on the Agg canvas), for callers that draw on it.

    `gripper_column` is the gripper's column, or one per arm (`["left_grasp", "right_grasp"]`): each is drawn
    vermillion and its closed spans are shaded on its arm's subplots (the columns with its prefix; a single gripper:
    all of them).
    `title` (e.g. which run) heads the figure above what it shows. `real_rows` (`real_rows_of`): the steps from it on
    explain copies of a short clip's last frame; they are hatched on every subplot, and named in the legend of the
    first and in the heading. `clip` (`run_rows_of`): for an inverse dynamics result of a whole clip, a start frame
    or a resampled clip (`ClipRows`), the clip frames the rows explain, on a second x axis above the top row; for a
    forward dynamics result over a whole trajectory (`RolloutChunks`), a dashed line on every subplot where each
    chunk after the first starts from the model's own imagined frame, "chunk j" above the top row; either said in
    the heading."""
    a = _check_actions(actions, columns, units, gripper_column)
    fps = _check_fps(fps)
    real_rows = _check_real_rows(real_rows, a.shape[0])
    clip = _check_clip(clip, a.shape[0])
    columns = list(columns)
    grippers = _gripper_list(gripper_column)
    # a gripper in model space has no closed threshold (0.5 of [-1, 1] is not "closed"): drawn vermillion, nothing
    # shaded
    shading = [g if g is not None and units[columns.index(g)] != MODEL_SPACE_UNIT else None
               for g in _shading_gripper(columns, grippers)]
    t = np.arange(a.shape[0]) / fps
    d = a.shape[1]
    nrows, ncols, places = _grid_places(columns)
    fig = _new_figure(5.0 * ncols, 1.0 + 1.45 * nrows)
    top = _chunk_heading(fig, title or "action chunk", a.shape[0], d, fps, units, real_rows, clip, columns)
    _grid_margins(fig, nrows, ncols, top=top, left=0.9)  # room for a y label of _MAX_LABEL_LINES
    grid = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    for k in set(range(len(grid))) - set(places):
        grid[k].set_visible(False)
    axes = [grid[k] for k in places]  # column i's subplot
    for i, ax in enumerate(axes):
        is_gripper = columns[i] in grippers
        if shading[i] is not None:
            _shade_closed(ax, a[:, columns.index(shading[i])], fps, label=is_gripper)
        _shade_padded(ax, real_rows, a.shape[0], fps, label=i == 0)
        if clip is not None:
            clip.mark(ax, fps, top=places[i] < ncols)
        ax.plot(t, a[:, i], lw=1.4, color=GRIPPER_COLOR if is_gripper else LINE_COLOR, **step_markers(len(t)))
        ax.set_ylabel(axis_label(columns[i], units[i], ax), fontsize=LABEL_FONTSIZE)
        style_ticks(ax)
        plain_values(ax)
        ax.grid(alpha=0.3)
        if is_gripper and units[i] != MODEL_SPACE_UNIT:
            _closed_threshold(ax, a[:, i])
        steady_ylim(ax, units[i])
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    _time_axis(axes[0], a.shape[0], fps)  # the axes share x
    for col in range(ncols):  # each grid column's lowest subplot: a shorter arm's, or above a hidden last-row cell
        ax = grid[max(k for k in places if k % ncols == col)]
        ax.set_xlabel("time [s]", fontsize=LABEL_FONTSIZE)
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig


HEATMAP_COLUMNS = 64  # a feature wider than this is one heat map (`feature_heatmap_figure`), not a subplot each
_HEATMAP_TICKS = 16  # column names labelled on a heat map's y axis, evenly spread


def feature_heatmap_figure(values: Any, columns: Sequence[str], fps: float, title: str = ""):
    """A wide feature over time as one image: a row per column, time in seconds across, colour the value (a bar
    beside it), every few columns named. A subplot per column of a flattened 32x8 action chunk was a 9670-pixel-tall
    image that took a minute; the heat map shows the same rows at a glance, and its structure (a chunk's steps repeat
    every action_dim rows) stays visible."""
    a = _check_actions(values, columns, [""] * len(columns))
    fps = _check_fps(fps)
    steps, d = a.shape
    fig = _new_figure(10.0, 5.0)
    top = figure_title(fig, title or "feature", f"{plural(steps, 'step')} × {plural(d, 'column')} @ {fps:g} Hz; too "
                       f"many columns for a plot each: one row per column, colour the value")
    fig.subplots_adjust(left=1.6 / 10.0, right=1 - 0.3 / 10.0, top=1 - top / 5.0, bottom=0.5 / 5.0)
    ax = fig.subplots()
    image = ax.imshow(a.T, aspect="auto", interpolation="nearest", cmap="viridis",
                      extent=(-0.5 / fps, (steps - 0.5) / fps, d - 0.5, -0.5))
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).ax.tick_params(labelsize=TICK_FONTSIZE)
    ticks = np.unique(np.linspace(0, d - 1, min(d, _HEATMAP_TICKS)).round().astype(int))
    ax.set_yticks(ticks, [_literal(columns[i]) for i in ticks])
    ax.set_xlabel("time [s]", fontsize=LABEL_FONTSIZE)
    ax.set_ylabel("column", fontsize=LABEL_FONTSIZE)
    style_ticks(ax)
    return fig


_LEGEND_ROW_IN = 0.3  # a one-row legend under a figure's heading, above its subplots
RECORDED_COLOR = "0.15"  # the recorded actions an open-loop figure compares chunks with: near black, under them


def open_loop_figure(
    recorded: Sequence[tuple[int, Any]],
    chunks: Sequence[tuple[int, Any]],
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    title: str = "",
    detail: str = "",
):
    """One episode of an open-loop evaluation (`data.openloop`): each action column's recorded values (a subplot per
    column, time in seconds, drawn near black) and each chunk the policy predicted, drawn from the frame it was
    predicted at (a dot marks it) in turns of colour: where a chunk leaves the recorded line is the error the
    evaluation measures. Both are (start frame, [steps, D]) pairs: the recording as one stretch from frame 0, or as
    the rows each chunk was compared with where they differ per chunk (joint targets as end-effector deltas from each
    chunk's start); a chunk is drawn over the frames the recording reaches (as the metrics compare it)."""
    stretches = [(int(start), _check_actions(rows, columns, units)) for start, rows in recorded]
    if not stretches:
        raise ValueError("recorded: no recorded stretch to draw the chunks against")
    fps = _check_fps(fps)
    length = max(start + len(rows) for start, rows in stretches)
    d = len(columns)
    nrows, ncols = _grid_shape(d)
    fig = _new_figure(5.0 * ncols, 1.0 + 1.45 * nrows + _LEGEND_ROW_IN)
    said = f"{plural(length, 'step')} recorded (black), {plural(len(chunks), 'predicted chunk')} (colours) @ {fps:g} Hz"
    top = figure_title(fig, title or "open-loop actions", f"{detail}\n{said}" if detail else said)
    _grid_margins(fig, nrows, ncols, top=top + _LEGEND_ROW_IN, left=0.9)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i >= d:
            ax.set_visible(False)
            continue
        for k, (start, rows) in enumerate(stretches):
            ax.plot((start + np.arange(len(rows))) / fps, rows[:, i], lw=1.6, color=RECORDED_COLOR,
                    label="recorded" if i == 0 and k == 0 else None)
        for k, (start, chunk) in enumerate(chunks):
            values = np.asarray(chunk, dtype=np.float64)[: length - start, i]
            color = SERIES_COLORS[k % 2]  # neighbours told apart: blue, orange, blue...
            ax.plot((start + np.arange(len(values))) / fps, values, lw=1.1, color=color,
                    label="predicted" if i == 0 and k == 0 else None)
            ax.plot(start / fps, values[0], "o", ms=3, color=color)
        ax.set_ylabel(axis_label(columns[i], units[i], ax), fontsize=LABEL_FONTSIZE)
        style_ticks(ax)
        plain_values(ax)
        steady_ylim(ax, units[i])
        ax.grid(alpha=0.3)
    # under the heading, over no subplot: at loc "best" in the first one it sat on the lines it named wherever the
    # chunks covered the episode, and the gap between them is what the figure is for
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=LEGEND_FONTSIZE, loc="upper center", ncol=2,
               bbox_to_anchor=(0.5, 1 - top / fig.get_figheight()), frameon=False)
    _time_axis(axes[0], length, fps)
    for ax in axes[max(0, d - ncols) : d]:
        ax.set_xlabel("time [s]", fontsize=LABEL_FONTSIZE)
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig


def forward_dynamics_figure(psnr: Mapping[str, Any], ssim: Mapping[str, Any], fps: float, title: str = "",
                            detail: str = ""):
    """A world model's imagined frames against the recorded ones by how far ahead they are (`dataset eval --mode
    forward_dynamics`): PSNR (dB; an infinite one, identical frames, is left out) and SSIM per camera (`psnr` and
    `ssim`: camera -> [frames ahead], NaN where no chunk reached), frame 1 the first imagined. The curve shows how
    the imagined future drifts from the recording the further it runs."""
    fig = _new_figure(9.0, 4.2)
    top = figure_title(fig, title or "forward dynamics", detail)
    _grid_margins(fig, 1, 2, top=top, left=0.8, wgap=0.8)
    panels = fig.subplots(1, 2, squeeze=True)
    for ax, values, label in ((panels[0], psnr, "PSNR (dB)"), (panels[1], ssim, "SSIM")):
        for j, (camera, curve) in enumerate(values.items()):
            curve = np.asarray(curve, dtype=np.float64)
            curve = np.where(np.isfinite(curve), curve, np.nan)
            ahead = np.arange(1, len(curve) + 1)
            ax.plot(ahead, curve, lw=1.4, label=_literal(camera), **series_style(j), **step_markers(len(curve)))
        ax.set_xlabel(f"frames ahead ({1000 / _check_fps(fps):.3g} ms each)", fontsize=LABEL_FONTSIZE)
        ax.xaxis.set_major_locator(whole_number_ticks())
        ax.set_ylabel(label, fontsize=LABEL_FONTSIZE)
        ax.set_title(f"{label.split()[0]} vs horizon", fontsize=LABEL_FONTSIZE)
        style_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    return fig


def open_loop_summary_figure(
    columns: Sequence[str],
    units: Sequence[str],
    mae: Any,
    rmse: Any,
    model_scale: Any,
    horizon_mae: Any,
    fps: float,
    title: str = "",
    detail: str = "",
    scale_note: str = "",
):
    """An open-loop evaluation's errors on one page, each column's on the model's normalised action scale (times
    `model_scale`, `data.openloop.model_scale`: the embodiment's stats, so columns in metres, radians and gripper
    fractions share an axis, and one the recording barely moves is not magnified): left, each column's MAE as a bar
    (its RMSE a diamond; the physical MAE under its name); right, MAE by step of the chunk (`horizon_mae`, [steps, D])
    per column and their mean (black), how error grows the further ahead a chunk reaches. A column whose scale is
    NaN (the stats hold it constant) has no bar and no line, and says so under its name. `scale_note` says what one
    unit of that scale is (`data.openloop.normalized_scale_note`)."""

    mae, rmse, scale = (np.asarray(v, dtype=np.float64) for v in (mae, rmse, model_scale))
    horizon = np.asarray(horizon_mae, dtype=np.float64)
    d = len(columns)
    kept = ~np.isnan(scale)
    normalized, rmse_normalized, horizon_normalized = mae * scale, rmse * scale, horizon * scale[None, :]
    upright = d <= 6  # a few columns' names fit under their bars as written; more are turned
    fig = _new_figure(max(9.0, 4.5 + 0.45 * d), 4.6)
    top = figure_title(fig, title or "open-loop error", detail)
    _grid_margins(fig, 1, 2, top=top, left=0.8, wgap=0.8)  # the bottom: set below, from what the labels take
    bars, lines = fig.subplots(1, 2, squeeze=True)
    x = np.arange(d)
    bars.bar(x, np.nan_to_num(normalized), color=LINE_COLOR, label="MAE")
    bars.plot(x, rmse_normalized, "D", ms=4, color=GRIPPER_COLOR, label="RMSE", ls="none")
    bars.set_xticks(x)
    bars.set_xticklabels([_literal(f"{c}\n{m:.3g} {shown_unit(u)}".rstrip() if ok else f"{c}\nconstant in\ntraining")
                          for c, u, m, ok in zip(columns, units, mae, kept)], rotation=0 if upright else 90,
                         fontsize=TICK_FONTSIZE)
    bars.set_ylabel("error, model's normalised scale", fontsize=LABEL_FONTSIZE)
    bars.set_title("per column (physical MAE under each name)", fontsize=LABEL_FONTSIZE)
    steps = np.arange(horizon.shape[0])
    for j in range(d):
        if kept[j]:
            lines.plot(steps, horizon_normalized[:, j], lw=0.9, label=_literal(columns[j]) if d <= 10 else None,
                       **series_style(j))
    if kept.any():
        block = horizon_normalized[:, kept]
        reached = np.isfinite(block).any(axis=1)  # a step no chunk reached (an episode shorter than one) has no mean
        mean = np.full(len(steps), np.nan)
        mean[reached] = np.nanmean(block[reached], axis=1)
        lines.plot(steps, mean, lw=2.2, color="black", label="mean", **step_markers(len(steps)))
    lines.set_xlabel(f"step of the chunk, from 0 ({1000 / _check_fps(fps):.3g} ms each)", fontsize=LABEL_FONTSIZE)
    lines.xaxis.set_major_locator(whole_number_ticks())  # a chunk of 1 step: 0, not -0.045...
    lines.set_ylabel("MAE, model's normalised scale", fontsize=LABEL_FONTSIZE)
    lines.set_title("error vs horizon", fontsize=LABEL_FONTSIZE)
    for ax in (bars, lines):
        style_ticks(ax)
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    bars.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    renderer = fig.canvas.get_renderer()
    # the bottom margin is what the column names under the bars take (turned, their units, "constant in training")
    # and the note under them: a fixed guess left an inch of blank above the note
    below = max(ax.get_window_extent(renderer).y0 - ax.get_tightbbox(renderer).y0 for ax in (bars, lines)) / fig.dpi
    height = fig.get_size_inches()[1]
    fig.subplots_adjust(bottom=(below + 0.1 + (0.25 if scale_note else 0.0)) / height)
    named = len(lines.get_legend_handles_labels()[0])
    if named:  # room above the curves, the panel's height set: over them (loc "best" found no gap) it hid them
        for across in range(min(named, 6), 0, -1):  # as many across as fit: 6 long names ran past the figure's edge
            legend = lines.legend(fontsize=LEGEND_FONTSIZE, loc="upper left", ncols=across)
            if legend.get_window_extent(renderer).width <= lines.get_window_extent(renderer).width:
                break
        legend_above_curves(lines, ncols=across)
    if scale_note:
        fig.text(0.5, 0.08 / height, _literal(f"normalised scale: {scale_note}"), ha="center", va="bottom",
                 fontsize=LEGEND_FONTSIZE)
    return fig


def _pose_indices(columns: Sequence[str]) -> list[int]:
    missing = [c for c in POSE_COLUMNS if c not in columns]
    if missing:
        raise ValueError(
            f"columns {list(columns)} lack the pose columns {missing}; a 3-D path needs tx,ty,tz,r0..r5 (relative_pose)"
        )
    return [list(columns).index(c) for c in POSE_COLUMNS]


def _metres_per_unit(columns: Sequence[str], units: Sequence[str]) -> np.ndarray:
    """The factor of each translation column to metres (a path in mm drawn as metres was 1000x too long).

    A unit that is not a length, such as the registry's "1" for a spec that declares none, is taken as metres (the
    registry's convention) with a warning: refusing it lost every figure of a run, after the model had run."""
    odd = [f"{c!r} in {u!r}" for c, u in zip(columns, units) if u not in LENGTH_UNITS]
    if odd:
        logger.warning("end-effector path: %s, not a length unit (%s); drawn taking the values as metres",
                       ", ".join(odd), ", ".join(LENGTH_UNITS))
    return np.array([LENGTH_UNITS.get(u, 1.0) for u in units])


def path_unit(metres: float) -> str:
    """The length unit (a key of LENGTH_UNITS) a person reads a path of this size in, by PATH_UNITS."""
    return next(unit for unit, at_least in PATH_UNITS if metres >= at_least)


def ee_poses(
    actions: Any, columns: Sequence[str], anchor: Any = None, units: Sequence[str] | None = None
) -> np.ndarray:
    """Integrate per-step relative pose deltas to end-effector poses [T+1, 4, 4] in metres (index 0 = anchor).
    `units` (one per column) says what tx, ty, tz are in; None, or a unit that is not m/cm/mm: metres."""
    from ..robot.se3 import integrate_relative_poses

    a = _check_actions(actions, columns, units)
    indexes = _pose_indices(columns)
    deltas = a[:, indexes]
    if units is not None:
        deltas[:, :3] *= _metres_per_unit(POSE_COLUMNS[:3], [units[i] for i in indexes[:3]])
    return integrate_relative_poses(deltas, anchor=anchor)


def plot_ee_path(
    actions: Any,
    columns: Sequence[str],
    path: str | Path | None = None,
    anchor: Any = None,
    gripper_column: str | None = None,
    title: str = "",
    max_frames: int = 12,
    units: Sequence[str] | None = None,
    real_rows: int | None = None,
    chunks: RolloutChunks | None = None,
) -> Path:
    """3-D end-effector path with small RGB (x, y, z) orientation frames along it, drawn in mm, cm or m by its size.

    Deltas are integrated with `robot.se3.integrate_relative_poses` from `anchor`: the start end-effector pose in
    the robot's base frame, in metres (`ActionDecoder(...).ik.fk(q_arm)`, the pose the decoder composes the chunk on),
    which draws the path in the base frame (axes "base x"...). Without it (None) the path starts at the identity in
    the start end-effector frame (axes "EE x"...), whose z points out of the gripper: down on a Panda over a table,
    so a reach drawn going up goes down on the robot; the heading says so. `units` (one per column) converts tx, ty,
    tz given in cm or mm to metres; None, or another unit (with a warning): they are taken as metres. Poses the
    gripper is closed at are orange squares (open: hollow circles). The path that steps from `real_rows` on lead along
    (an inverse dynamics result of a short clip) is dashed; the poses a whole trajectory's
    `chunks` start from after the first are diamonds.
    """
    path = _require_path(path, "plot_ee_path")
    return save_figure(ee_path_figure(actions, columns, anchor, gripper_column, title, max_frames, units, real_rows,
                                      chunks), path)


def ee_path_figure(
    actions: Any,
    columns: Sequence[str],
    anchor: Any = None,
    gripper_column: str | None = None,
    title: str = "",
    max_frames: int = 12,
    units: Sequence[str] | None = None,
    real_rows: int | None = None,
    chunks: RolloutChunks | None = None,
):
    """The `plot_ee_path` figure; `title` (e.g. which run) heads it above the path's length and travel. Axes and
    travel are in one unit, mm, cm or m as `path_unit` picks for the path's size, in the frame the heading and the
    axes name (the robot's base frame with `anchor`, else the start end-effector frame). `real_rows`: pose i+1 is
    reached by row i, so the path from pose `real_rows` on, which rows explaining copies of a short clip's last frame
    lead along, is dashed grey and named in the legend and the heading. `chunks` (`rollout_chunks_of`, a forward
    dynamics result over a whole trajectory): pose a, where chunk j > 0 starts (reached by row a-1, the frame it
    starts from), is a diamond labelled "chunk j", named in the legend and the heading."""
    poses = ee_poses(actions, columns, anchor, units)
    a = _check_actions(actions, columns, gripper_column=gripper_column)
    real_rows = _check_real_rows(real_rows, a.shape[0])
    if chunks is not None and (not isinstance(chunks, RolloutChunks) or len(chunks.frames_used) != a.shape[0] + 1):
        raise ValueError(f"chunks={chunks!r:.120}: expected a RolloutChunks (plots.rollout_chunks_of) of the chunk's "
                         f"{a.shape[0]} rows")
    p = poses[:, :3, 3]
    span = float(np.max(np.ptp(p, axis=0))) if len(p) > 1 else 0.0
    half = max(span / 2 * 1.15, 0.01)
    travel = float(np.sum(np.linalg.norm(np.diff(p, axis=0), axis=1)))
    unit = path_unit(max(travel, 2 * half))
    scale = 1.0 / LENGTH_UNITS[unit]  # metres to the drawn unit
    p, half = p * scale, half * scale
    centre = (p.max(axis=0) + p.min(axis=0)) / 2
    frame_len = half * 0.18

    height = 6.3
    fig = _new_figure(6.4, height)
    # the net turn: a wrist rotation in place read "travel 0.0 mm" and nothing else
    relative = poses[0, :3, :3].T @ poses[-1, :3, :3]
    turned = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1.0, 1.0)))
    detail = (f"{plural(len(poses) - 1, 'step')}, travel {travel * scale:.1f} {unit}; turned {turned:.1f}° start to "
              "end; frames: x red, y green, z blue")
    # Deltas live in the end-effector frame: without an anchor the axes are the start pose's, whose z points down on
    # a Panda reaching for a table, so "up" in the plot is down in the room.
    frame = "EE" if anchor is None else "base"
    detail += ("\naxes: the start end-effector frame (no start pose known), z out of the gripper" if anchor is None
               else "\naxes: the robot's base frame (anchor: the start end-effector pose)")
    if real_rows is not None:
        detail += f"\ndashed: {padded_label(real_rows, a.shape[0])}"
    if chunks is not None:
        detail += f"\n{chunks.note('diamonds')}"
    top = figure_title(fig, title or "end-effector path", detail)
    # the legend goes below the axes (`_LEGEND_BELOW_IN`): inside them it covered a path that rose to the upper left
    fig.subplots_adjust(left=0.02, right=0.95, top=1 - top / height, bottom=_LEGEND_BELOW_IN / height)
    # drawn in call order, not by depth: the start and end markers were hidden under the path's points
    ax = fig.add_subplot(projection="3d", computed_zorder=False)
    seen = len(p) if real_rows is None else real_rows + 1
    ax.plot(p[:seen, 0], p[:seen, 1], p[:seen, 2], color=PATH_COLOR, lw=1.5, label="end-effector path")
    if real_rows is not None:
        ax.plot(p[real_rows:, 0], p[real_rows:, 1], p[real_rows:, 2], color=PADDED_COLOR, lw=1.5, ls="--",
                label=_padded_legend(real_rows, a.shape[0]))
    # Points told apart by shape as well as colour, and in none of the triads' red, green and blue: closed points
    # were red like the x axes beside them, open ones blue like the z axes.
    # above the frames' lines (zorder 2), which hid the gripper's state where the path was seen end-on
    open_style = {"marker": "o", "s": 14, "facecolors": "white", "edgecolors": PATH_COLOR, "linewidths": 0.9,
                  "zorder": 3}
    if gripper_column is not None:
        # pose i+1 is reached by action i: mark the point by the gripper command that produced it
        closed = np.concatenate([[False], gripper_closed_mask(a[:, list(columns).index(gripper_column)])])
        ax.scatter(*p[~closed].T, depthshade=False, label="gripper open", **open_style)
        if closed.any():  # named only where drawn: a chunk that never closed had an orange square in its legend
            ax.scatter(*p[closed].T, marker="s", s=22, color=CLOSED_COLOR, edgecolors="black", linewidths=0.5,
                       depthshade=False, label=f"gripper closed (≥ {GRIPPER_CLOSED_THRESHOLD:g})", zorder=3)
    else:
        ax.scatter(*p.T, depthshade=False, label="pose after each step", **open_style)
    # "(anchor)" only where an anchor pose was given: the heading says "no start pose known" otherwise
    ax.scatter(*p[0], color="black", s=40, marker="o", label="start" if anchor is None else "start (anchor)",
               zorder=5)
    ax.scatter(*p[-1], color="black", s=50, marker="X", label="end", zorder=5)
    if chunks is not None:
        starts = chunks.window_starts()  # pose a: the one chunk j starts from
        ax.scatter(*p[starts].T, marker="D", s=34, facecolors="white", edgecolors=CHUNK_COLOR, linewidths=1.3,
                   depthshade=False, label="chunk start (imagined frame)", zorder=4)
        every = int(np.ceil((len(starts) + 1) / MAX_CHUNK_LABELS))
        for j, row in enumerate(starts, 1):
            if j % every == 0:
                ax.text(*p[row], f"  chunk {j}", fontsize=TICK_FONTSIZE, color=CHUNK_COLOR, zorder=6)
    step = max(1, int(np.ceil(len(poses) / max_frames)))
    idx = sorted(set(range(0, len(poses), step)) | {len(poses) - 1})
    for i in idx:
        origin, rot = p[i], poses[i, :3, :3]
        for axis, color in zip(range(3), ("r", "g", "b")):
            tip = origin + rot[:, axis] * frame_len
            ax.plot(*zip(origin, tip), color=color, lw=1.6)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel(f"{frame} x [{unit}]", fontsize=LABEL_FONTSIZE)
    ax.set_ylabel(f"{frame} y [{unit}]", fontsize=LABEL_FONTSIZE)
    ax.set_zlabel(f"{frame} z [{unit}]", fontsize=LABEL_FONTSIZE)
    style_ticks(ax)
    plain_values(ax)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=LEGEND_FONTSIZE, loc="lower center", ncol=3, frameon=False)
    return fig


def plot_joints(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    path: str | Path | None = None,
    gripper_column: str | Sequence[str] | None = None,
    title: str = "",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
) -> Path:
    """Joint positions overlaid, joint velocities (finite differences) and the gripper (or one per arm), over time in
    seconds; steps from `real_rows` on hatched and `clip`'s frames on top (or its chunk starts dashed), as in
    `action_timeseries_figure`."""
    path = _require_path(path, "plot_joints")
    return save_figure(joints_figure(actions, columns, units, fps, gripper_column, title, real_rows, clip), path)


_ARM_STYLES = ("-", "--", ":", "-.")  # one per arm of a multi-arm layout (`_MAX_ARMS`)


def _joint_styles(columns: Sequence[str], joint_idx: Sequence[int]) -> list[dict[str, str]]:
    """Colour and line style of each joint's line: `series_style`'s, or for a multi-arm layout (`_arm_blocks`) the
    joint's place in its arm as the colour and the arm as the style (`left_elbow` solid, `right_elbow` dashed, one
    colour): a 14-joint robot's lines read as two arms, not as 7 colours then 7 dashed ones. An arm of more joints
    than colours takes as many styles as it repeats them: its 8th joint is not styled as the next arm's 1st."""
    blocks = _arm_blocks(columns)
    if not blocks:
        return [series_style(k) for k in range(len(joint_idx))]
    arms = [[k for k in block if k in joint_idx] for block in blocks]
    repeats = max(-(-len(arm) // len(SERIES_COLORS)) for arm in arms)  # styles each arm takes
    out = []
    for i in joint_idx:
        b = next(n for n, arm in enumerate(arms) if i in arm)
        j = arms[b].index(i)
        out.append({"color": SERIES_COLORS[j % len(SERIES_COLORS)],
                    "ls": _ARM_STYLES[(b * repeats + j // len(SERIES_COLORS)) % len(_ARM_STYLES)]})
    return out


def joints_figure(
    actions: Any,
    columns: Sequence[str],
    units: Sequence[str],
    fps: float,
    gripper_column: str | Sequence[str] | None = None,
    title: str = "",
    real_rows: int | None = None,
    clip: ClipRows | None = None,
):
    """The `plot_joints` figure; `title` (e.g. which run) heads it. The joints' legend sits right of the axes, where
    it hides no line; a multi-arm layout's arms (`_arm_blocks`) are told apart by line style, a joint's colour the
    same on each. `gripper_column`: the gripper's column, or one per arm (`["left_gripper", "right_gripper"]`), all
    on the third panel (closed spans shaded for a single one). `real_rows`: as in `action_timeseries_figure`, the
    steps from it on hatched and named; `clip`: its clip frames on a second axis on top, or a trajectory's chunk
    starts dashed on every panel."""
    a = _check_actions(actions, columns, units, gripper_column)
    fps = _check_fps(fps)
    real_rows = _check_real_rows(real_rows, a.shape[0])
    clip = _check_clip(clip, a.shape[0])
    grippers = _gripper_list(gripper_column)
    joint_idx = [i for i, c in enumerate(columns) if c not in grippers]
    styles = _joint_styles(columns, joint_idx)
    joint_units = sorted({units[i] for i in joint_idx})
    unit = joint_units[0] if len(joint_units) == 1 else "mixed"
    t = np.arange(a.shape[0]) / fps
    nrows = 3 if grippers else 2
    legend_columns = int(np.ceil(len(joint_idx) / 12))
    fig = _new_figure(6.8, 1.2 + 2.0 * nrows)
    # the legend's column as wide as its longest name (up to _LEGEND_TEXT_MAX_IN, longer ones broken into lines):
    # 1.2 inches each cut `left_arm_joint_0_position_...` off at the figure's edge
    names = [_literal("\n".join(_wrap_to_width(fig, columns[i], _LEGEND_TEXT_MAX_IN * DPI, LEGEND_FONTSIZE)))
             for i in joint_idx]
    text_in = max((_text_width(fig, line, LEGEND_FONTSIZE) for n in names for line in n.split("\n")), default=0) / DPI
    right = 0.3 + legend_columns * max(1.2, _LEGEND_ENTRY_IN + text_in)
    fig.set_size_inches(6.8 + right, 1.2 + 2.0 * nrows)
    top = _chunk_heading(fig, title or "joint trajectory", a.shape[0], None, fps, units, real_rows, clip)
    _grid_margins(fig, nrows, 1, top=top, right=right, hgap=0.2)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False)[:, 0]
    markers = step_markers(len(t))
    for ax in axes:
        _shade_padded(ax, real_rows, a.shape[0], fps, label=ax is axes[0])
        if clip is not None:
            clip.mark(ax, fps, top=ax is axes[0])
    for k, i in enumerate(joint_idx):
        axes[0].plot(t, a[:, i], lw=1.4, label=names[k], **styles[k], **markers)
        if a.shape[0] > 1:
            axes[1].plot(t, np.gradient(a[:, i], 1.0 / fps), lw=1.2, **styles[k], **markers)
    if a.shape[0] == 1:  # a velocity needs two steps: drawn as 0 it read as "standing still"
        axes[1].text(0.5, 0.5, "one step: no velocity", transform=axes[1].transAxes, ha="center", va="center",
                     fontsize=LABEL_FONTSIZE, color="0.4")
    axes[0].set_ylabel(_literal(f"joint position [{unit}]"), fontsize=LABEL_FONTSIZE)
    axes[1].set_ylabel(_literal(f"joint velocity [{unit}/s]"), fontsize=LABEL_FONTSIZE)
    axes[0].legend(fontsize=LEGEND_FONTSIZE, ncol=legend_columns, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   borderaxespad=0)
    gripper_units = sorted({units[list(columns).index(c)] for c in grippers})
    gripper_unit = gripper_units[0] if len(gripper_units) == 1 else "mixed"
    if grippers:
        physical = MODEL_SPACE_UNIT not in gripper_units  # a model-space gripper has no closed threshold
        g = np.stack([a[:, list(columns).index(c)] for c in grippers], axis=1)
        for ax in axes if physical and len(grippers) == 1 else ():  # one arm's spans: two arms' would overlap
            _shade_closed(ax, g[:, 0], fps, label=ax is axes[2])
        for k, name in enumerate(grippers):  # vermillion is the gripper's; each arm's its own line style
            axes[2].plot(t, g[:, k], color=GRIPPER_COLOR, lw=1.6, ls=_ARM_STYLES[k % len(_ARM_STYLES)],
                         label=_literal(name) if len(grippers) > 1 else None, **step_markers(len(t)))
        if physical:
            _closed_threshold(axes[2], g)
        ylabel = grippers[0] if len(grippers) == 1 else "gripper"
        axes[2].set_ylabel(axis_label(ylabel, gripper_unit, axes[2]), fontsize=LABEL_FONTSIZE)
        if axes[2].get_legend_handles_labels()[0]:
            axes[2].legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for ax, shown in zip(axes, [unit, None, gripper_unit if grippers else None]):  # velocities: no unit listed
        ax.grid(alpha=0.3)
        style_ticks(ax)
        plain_values(ax)
        steady_ylim(ax, shown)
    _time_axis(axes[0], a.shape[0], fps)  # the axes share x
    axes[-1].set_xlabel("time [s]", fontsize=LABEL_FONTSIZE)
    return fig


def resolve_layout(prediction: Mapping[str, Any], columns: Sequence[str]) -> tuple[str, str | None]:
    """(layout, gripper_column): the file's own (written since they were added), else the registry's, else inferred
    from the column names."""
    layout, gripper = prediction.get("layout"), prediction.get("gripper_column")
    if layout in LAYOUTS and (gripper is None or gripper in columns):
        return layout, gripper
    try:
        emb = get_embodiment(str(prediction.get("embodiment", "")))
    except (KeyError, TypeError, ValueError):
        emb = None
    if emb is not None and list(emb.columns) == list(columns):
        return emb.layout, emb.gripper_column
    gripper = _arm_gripper("", columns)
    if all(c in columns for c in POSE_COLUMNS):
        return "relative_pose", gripper
    if any(c.startswith("joint") for c in columns):
        return "joint_position", gripper
    return "generic", gripper


def load_actions_file(path: str | Path) -> dict[str, Any]:
    """Read and check an actions file (`worldpolicy.actions/v1`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"actions file {str(path)!r} does not exist")
    if path.suffix.lower() != ".json":  # a .npy that forward dynamics reads was 'not valid JSON: utf-8 codec ...'
        raise ValueError(f"actions file {str(path)!r}: plots read a {ACTIONS_SCHEMA} .json file (what predict writes: "
                         f"it names the columns, units and rate), not {path.suffix or 'a file without a suffix'}")
    data = read_json(path, f"actions file {str(path)!r}")
    try:
        check_prediction_json(data)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"actions file {str(path)!r}: {exc}") from None
    for field in ("actions", "actions_normalized"):  # null: a non-finite value (strict JSON has no NaN)
        if field in data:
            data[field] = actions_from_json(data[field])
    return data


def check_prediction_json(prediction: Any) -> None:
    if not isinstance(prediction, Mapping):
        raise TypeError(f"prediction must be a dict in the {ACTIONS_SCHEMA} schema, got {type(prediction).__name__}")
    if not schema_matches(prediction, ACTIONS_SCHEMA, "prediction"):
        raise ValueError(f"prediction schema={prediction.get('schema')!r}; accepted: {ACTIONS_SCHEMA!r}")
    missing = [k for k in ("columns", "units", "actions", "fps") if k not in prediction]
    if missing:
        raise ValueError(f"prediction is missing the keys {missing} required by {ACTIONS_SCHEMA}")
    for field in ("columns", "units"):
        names = prediction[field]
        if not is_string_list(names):
            raise ValueError(f"prediction {field}={names!r}: expected a list of strings ({ACTIONS_SCHEMA})")


def _arm_gripper(prefix: str, columns: Sequence[str]) -> str | None:
    return next((prefix + g for g in GRIPPER_NAMES if prefix + g in columns), None)


def gripper_columns(prediction: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """Every gripper column of a prediction: the layout's own and each other arm's of its name (`right_gripper` with
    `left_gripper`: an embodiment names one), else one per arm of a multi-arm pose layout (`left_grasp`,
    `right_grasp`), so each arm's gripper is drawn as one in the time series, the joints and the path."""
    _, gripper = resolve_layout(prediction, columns)
    if gripper is not None:
        # `left_gripper` of arms `left_*` and `right_*` (`_arm_blocks`): `right_gripper` is the other arm's; a one-arm
        # robot's `gripper_pos` makes no `shoulder_pos` a gripper
        head, _, own = gripper.partition("_")
        heads = [columns[block[0]].split("_", 1)[0] for block in _arm_blocks(columns)]
        return [gripper] if head not in heads else [c for c in columns if c in {f"{h}_{own}" for h in heads}]
    return [g for g in (_arm_gripper(prefix, columns) for prefix in pose_groups(columns)) if g is not None]


MAX_TITLE_PROMPT = 60


def checkpoint_name(source: str) -> str:
    """A checkpoint's short name for a heading: its folder's name, and for a training run's `checkpoints/step-N` the
    run's too (`pick_lora/step-0000800`: every run's steps share the names); `shipped` and hub ids' last part, a
    commit it pins shortened (`pick@0123abc`: `hub.short_pinned`)."""
    path = PurePosixPath(short_pinned(str(source)).replace("\\", "/").rstrip("/"))
    if path.name.startswith("step-") and path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}/{path.name}"
    return path.name or str(source)


def run_mode(prediction: Mapping[str, Any]) -> str:
    """How a figure's heading and a page's summary name what a run did: its actions file's `mode`, but for a dream
    (`settings.command` "dream", `sim.world_model.write_dream`), whose file is the world model's forward dynamics over
    the policy's actions, which a bare "forward_dynamics" took for actions a user gave: a policy (`act`, mode
    "policy") acting in the world model."""
    mode = str(prediction.get("mode", "actions"))
    return f"dream: policy acting in a world model ({mode})" if is_dream(prediction) else mode


def is_dream(prediction: Mapping[str, Any]) -> bool:
    """Whether an actions file is a dream run's (`settings.command` "dream", `sim.world_model.write_dream`): named
    as one by its figures (`run_mode`) and its clip's caption (`run.describe_rollout_video`)."""
    return settings_of(prediction).get("command") == "dream"


def run_title(prediction: Mapping[str, Any]) -> str:
    """Which run a figure shows: `mode · embodiment · ckpt NAME · "prompt"` (`run_mode`; the checkpoint when the
    settings name it: two checkpoints' figures of one prompt had one heading; "ckpt" left out of a name that says it,
    such as a folder `ckpt`, which read "ckpt ckpt"; a long prompt cut with an ellipsis)."""
    name = f"{run_mode(prediction)} · {prediction.get('embodiment', '?')}"
    settings = settings_of(prediction)
    checkpoint = settings.get("checkpoint")
    if isinstance(checkpoint, str) and checkpoint.strip():
        short = checkpoint_name(checkpoint)
        name += f" · {short}" if re.search("ckpt|checkpoint", short, re.IGNORECASE) else f" · ckpt {short}"
    prompt = settings.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        prompt = " ".join(prompt.split())
        cut = prompt if len(prompt) <= MAX_TITLE_PROMPT else prompt[: MAX_TITLE_PROMPT - 1].rstrip() + "…"
        name += f' · "{cut}"'
    return name


def plot_prediction(prediction_json: Mapping[str, Any] | Prediction | str | Path, out_dir: str | Path,
                    fmt: str = "png") -> list[Path]:
    """Write the plots that suit a `worldpolicy.actions/v1` dict (or a `Prediction`, or an actions.json file's path)
    into `out_dir`; returns their paths: the figures of `prediction_figures`, each as `<name>.<fmt>`. `fmt`
    (`FIGURE_FORMATS`) is their suffix: "pdf" or "svg" writes `actions.pdf`... for a paper. Every figure is drawn
    before the first file is written."""
    fmt = check_figure_format(fmt, "fmt")
    figures = prediction_figures(prediction_json)
    out_dir = Path(out_dir)
    return [save_figure(fig, out_dir / f"{file}.{fmt}") for file, fig in figures.items()]


def prediction_figures(prediction_json: Mapping[str, Any] | Prediction | str | Path) -> dict[str, Any]:
    """The plots that suit a `Prediction` (or a `worldpolicy.actions/v1` dict, or an actions.json file's path) as
    matplotlib Figures by name, written nowhere: what a notebook shows (`prediction_figures(pred)["actions"]`) or a
    caller draws more on; `plot_prediction` writes them.

    Always `actions` (time series); plus `ee_path` for relative-pose layouts (`ee_path_<arm>` per arm of a multi-arm
    one; none for an arm whose actions are in model space; a single arm's in the robot's base frame where the run
    recorded its start pose, `ee_start_pose_of`) or `joints` for joint layouts. Every figure is headed by
    `run_title` and marks the rows after `real_rows_of` (an inverse dynamics result of a short clip); the time series
    and joints also mark how the rows were run in pieces (`run_rows_of`: a whole clip's windows, a whole
    trajectory's chunks), the end-effector path a whole trajectory's chunk starts."""
    if isinstance(prediction_json, (str, os.PathLike)):  # a run's actions.json, read as `viz` reads it
        prediction_json = load_actions_file(prediction_json)
    elif isinstance(prediction_json, Prediction):
        prediction_json = prediction_json.to_json()
    elif not isinstance(prediction_json, Mapping):
        raise TypeError(f"prediction_json: got {type(prediction_json).__name__}; accepted: a {ACTIONS_SCHEMA} dict "
                        "(`Prediction.to_json()`), a Prediction, or the path of an actions.json")
    check_prediction_json(prediction_json)
    columns = list(prediction_json["columns"])
    units = list(prediction_json["units"])
    actions = _check_actions(prediction_json["actions"], columns, units)
    fps = _check_fps(prediction_json["fps"])
    layout, _ = resolve_layout(prediction_json, columns)
    grippers = gripper_columns(prediction_json, columns)
    name = run_title(prediction_json)
    rows = real_rows_of(prediction_json)
    clip = run_rows_of(prediction_json)
    start = ee_start_pose_of(prediction_json) if layout == "relative_pose" else None
    figures = {"actions": action_timeseries_figure(actions, columns, units, fps, grippers, f"{name}: actions", rows,
                                                   clip)}
    if layout == "relative_pose":
        for prefix, indexes in pose_groups(columns).items():
            if any(units[i] == MODEL_SPACE_UNIT for i in indexes):  # normalised deltas integrate to no real path
                logger.info("%send-effector path not drawn: its columns are in model space (units %r)",
                            f"{prefix.rstrip('_')} " if prefix else "", MODEL_SPACE_UNIT)
                continue
            arm_gripper = _arm_gripper(prefix, columns)
            grip = None
            if arm_gripper is not None:
                indexes = [*indexes, columns.index(arm_gripper)]
                grip = "gripper"
            arm_columns = [*POSE_COLUMNS, *(["gripper"] if grip else [])]
            file = f"ee_path_{prefix.rstrip('_')}" if prefix else "ee_path"
            title = f"{name}: {prefix.rstrip('_')} end-effector path" if prefix else f"{name}: end-effector path"
            arm = actions[:, indexes]  # a copy: scaled to metres here, so a warning names the file's own columns
            arm[:, :3] *= _metres_per_unit([columns[i] for i in indexes[:3]], [units[i] for i in indexes[:3]])
            # one start pose is one arm's: a multi-arm layout's paths stay in their own start frames
            figures[file] = ee_path_figure(arm, arm_columns, anchor=None if prefix else start, gripper_column=grip,
                                           title=title, real_rows=rows,
                                           chunks=clip if isinstance(clip, RolloutChunks) else None)
    elif layout == "joint_position":
        figures["joints"] = joints_figure(actions, columns, units, fps, grippers, f"{name}: joints", rows, clip)
    return figures
