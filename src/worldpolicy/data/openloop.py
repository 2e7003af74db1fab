"""Open-loop evaluation: how far a policy checkpoint's action chunks are from the actions a dataset recorded, predicted
from the dataset's own frames (the plots openpi and LeRobot users draw of predicted against ground-truth actions).

    from worldpolicy.data import evaluate_open_loop
    result = evaluate_open_loop("data/pick_place", "runs/x/final", "runs/x/openloop", episodes=[0, 2])
    result.mae, result.rmse          # per column of the embodiment, in its physical units
    result.normalized_mae()          # one unit-free number: the MAE on the model's normalised action scale
    result.horizon_mae               # [chunk, columns]: the error at each step of a chunk
    print(result.summary())          # a few lines and a column table; openloop.json and the plots are under out

Each prediction reads frame f of an episode as training pairs a window with it: the cameras the embodiment composes
(`observations.camera_sources`, as `dataset label` and `dataset frame` read them), the first phrasing of the frame's
task, and for a state-conditioned embodiment the state row at f (`label.check_state_keys`). Its chunk is compared with
the actions recorded at frames f .. f + chunk - 1, mapped to the embodiment's columns as training maps them
(`actions.recorded_actions`; a conversion from joint targets starts from the state at f, as training's window does).
A chunk that runs past the episode's end is compared over the steps the episode recorded only. The unit-free number
(`OpenLoopResult.normalized_mae`, openloop.json's `mae_normalized`) is the error on the model's own action scale, the
Cosmos Policy "action L1": each column's MAE of `processing.actions.to_model` of predicted against recorded (the
embodiment's stats, from its training data, not the few steps compared: a column the recording barely moves does not
blow up), averaged over the columns. The prediction and
comparison are `compare_open_loop`, which a training run's validation runs on its live weights (`val/action_mae`,
`train.trainer`): `evaluate_open_loop(chunks=N)` on a checkpoint of a validated step, with the run's seed, gives the
numbers that step logged.

Open-loop error says how well the model imitates the recording from states the recording visited; it does not say
whether the policy succeeds, since a closed loop drifts to states no recording holds and small errors compound (or a
different but valid motion scores badly): `worldpolicy sim` is that test. Episodes of a `dataset from-sim` recording
that are scenes the checkpoint was trained on are warned about and recorded (openloop.json's `training_scenes`), by
the rule `worldpolicy sim` applies to its episodes (`sim.tasks.training_scenes`): their error says how well it
imitates its training data.

The world model's other modes are scored against the same recording on the same chunks (`mode`, `results.MODES`):
inverse dynamics, the actions `Policy.infer_actions` recovers from the recorded frames f .. f + chunk, compared as the
policy mode compares (an `OpenLoopResult` of that mode); forward dynamics, the frames `Policy.imagine` imagines from
frame f under the recorded actions against the recorded frames f + 1 .. f + chunk at the model's output resolution
(`processing.observations.model_frames`), PSNR and SSIM (`processing.similarity`) per camera and frame ahead, and a
video per episode of recorded | imagined | abs diff (`compare_forward_dynamics`, a `ForwardDynamicsResult`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment, shown_unit
from ..errors import is_integer
from ..fileio import (
    OPENLOOP_FILE,
    OPENLOOP_SCHEMA,
    output_folder,
    recorded_seeds,
    write_bytes_atomic,
    write_json_atomic,
)
from ..models import portable_checkpoint
from ..results import MODES
from ..viz.plots import plural
from .actions import RecordedActions, recorded_actions, run_keys
from .checks import check_episodes
from .label import check_state_keys, checked_policy_embodiment, episode_seed, label_cameras
from .lerobot import Episode, LeRobotDataset
from .sampling import caption_variants
from .served import served_rate_reason
from .stats import first_non_finite

if TYPE_CHECKING:
    from ..sim.tasks import TrainingScenes

__all__ = ["EVAL_WRITER", "LEFT_OUT_WHY", "EpisodeErrors", "ForwardDynamicsResult", "OpenLoopData",
           "OpenLoopPlan", "OpenLoopResult", "check_eval_mode", "check_open_loop", "check_progress_option",
           "compare_forward_dynamics", "compare_open_loop", "evaluate_open_loop", "model_scale",
           "normalized_scale_note", "plan_training_scenes", "progress_said", "run_open_loop", "spread_starts",
           "training_scenes_warning"]

logger = logging.getLogger(__name__)

EVAL_WRITER = "dataset eval"  # the command whose folders `fileio.FOLDER_KINDS` marks by OPENLOOP_FILE
SUMMARY_FIGURE = "openloop_summary.png"
EPISODE_FIGURE = "openloop_episode_{:06d}.png"  # one per episode evaluated; others of an earlier run are removed
EPISODE_FIGURE_GLOB = "openloop_episode_*.png"
# forward dynamics: per episode its chunks' frames side by side, recorded | imagined | abs diff, one after another
FORWARD_VIDEO = "forward_episode_{:06d}.mp4"
FORWARD_VIDEO_GLOB = "forward_episode_*.mp4"
# how `dataset eval` names what it compares with a recording (`results.MODES`): the predicted chunks (policy), the
# frames imagined under the recorded actions (forward_dynamics), the actions recovered from the recorded frames
MODE_NAMES = {"policy": "open loop", "forward_dynamics": "forward dynamics", "inverse_dynamics": "inverse dynamics"}
# what a comparison's progress counts in each mode: the chunks predicted, imagined, or whose actions were recovered
PROGRESS_WORDS = {"policy": "chunks predicted", "forward_dynamics": "chunks imagined",
                  "inverse_dynamics": "action chunks recovered"}
# why a column has no normalised error: normalising divides by the floor of its spread, so any error is ~1e6 there
LEFT_OUT_WHY = "constant in the training data's stats"
# False: nothing shown; True or None: a bar over the chunks; a callable: told (chunks done, chunks planned)
Progress = bool | None | Callable[[float, int], None]


def check_eval_mode(mode: Any) -> str:
    """`mode` of an evaluation against a recording, one of `results.MODES`, refused naming them otherwise (before any
    weights load)."""
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode={mode!r}; accepted: {', '.join(MODES)}")
    return mode


def progress_said(mode: str, done: float, total: int) -> str:
    """How far a comparison in `mode` has got, `progress(done, total)` of `compare_open_loop` in words: `chunks
    imagined: 2.5 of 8` (a fraction within a batch, at each denoising step). The agent tool's progress messages."""
    return f"{PROGRESS_WORDS[mode]}: {done:.3g} of {total}"


def model_scale(embodiment: Embodiment) -> np.ndarray:
    """Per column, the model-space distance of one physical unit: the slope of `processing.actions.to_model` (affine
    per column; the gripper's flip only turns its sign), so a column's error times it is that error on the model's
    normalised scale, `|to_model(predicted) - to_model(recorded)|`. 1 for an embodiment without stats (its actions
    are read by the model as they are). NaN for a column the stats hold constant (`Embodiment.constant_columns`, a
    reach's never-closed gripper): normalising divides by the floor of the spread (1e-6), so any departure there is
    ~1e6 on that scale and says nothing; such a column is left out of the unit-free mean."""
    from ..processing.actions import to_model

    width = (1, embodiment.action_dim)
    slope = np.abs(to_model(embodiment, np.ones(width)) - to_model(embodiment, np.zeros(width)))[0]
    slope[embodiment.constant_columns()] = np.nan
    return slope


def normalized_scale_note(normalization: str) -> str:
    """What one unit of the model's normalised scale is for an embodiment's `normalization`: how a normalised error
    reads."""
    if normalization == "none":
        return "no stats: the values as the model reads them"
    if normalization == "meanstd":
        return "1 = one standard deviation of the training data"
    return "the training data's range spans 2, [-1, 1]"


class _Errors:
    """Sums of absolute and squared errors per column (and per chunk step), so MAE and RMSE are over every step
    compared, however the steps fall into chunks and episodes."""

    def __init__(self, steps: int, dim: int):
        self.abs = np.zeros((steps, dim))
        self.sq = np.zeros((steps, dim))
        self.count = np.zeros(steps, dtype=np.int64)

    def add(self, predicted: np.ndarray, recorded: np.ndarray) -> None:
        n = len(recorded)
        diff = predicted[:n] - recorded
        self.abs[:n] += np.abs(diff)
        self.sq[:n] += diff**2
        self.count[:n] += 1

    def merge(self, other: _Errors) -> None:
        self.abs += other.abs
        self.sq += other.sq
        self.count += other.count

    @property
    def steps(self) -> int:
        return int(self.count.sum())

    def mae(self) -> np.ndarray:
        return self.abs.sum(axis=0) / max(self.steps, 1)

    def rmse(self) -> np.ndarray:
        return np.sqrt(self.sq.sum(axis=0) / max(self.steps, 1))

    def horizon_mae(self) -> np.ndarray:
        """[steps, dim]: the MAE at each step of a chunk; NaN at a step no chunk reached (all ran past the end)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.abs / np.where(self.count > 0, self.count, np.nan)[:, None]


@dataclass
class EpisodeErrors:
    """One episode's comparison: its frames, the frames predictions were made at, and the per-column MAE and RMSE
    (physical units) over the steps compared."""

    episode: int
    length: int
    starts: list[int]
    steps: int
    mae: np.ndarray
    rmse: np.ndarray
    task: str = ""  # the phrasing of frame 0's task the figure names
    # per start: the chunk predicted and the recorded rows it was compared with (the steps the episode recorded)
    predicted: list[np.ndarray] = field(default_factory=list, repr=False)
    recorded: list[np.ndarray] = field(default_factory=list, repr=False)
    plot: Path | None = None

    def to_json(self, columns: Sequence[str]) -> dict[str, Any]:
        return {"episode": self.episode, "frames": self.length, "chunks": len(self.starts), "starts": self.starts,
                "steps_compared": self.steps, "mae": dict(zip(columns, self.mae.tolist())),
                "rmse": dict(zip(columns, self.rmse.tolist())), "plot": self.plot.name if self.plot else None}


@dataclass
class OpenLoopResult:
    """What `evaluate_open_loop` measured and wrote. `mae`, `rmse` and `scale` (the recorded values' standard
    deviation over the steps compared, for information) are per column of `columns`, in `units`; `model_scale` per
    column the factor to the model's normalised scale (`model_scale()`, NaN: left out) under the embodiment's
    `normalization`; `horizon_mae[k]` is the MAE at step k of a chunk, `horizon_steps[k]` how many chunks reached it.
    `out` is where `evaluate_open_loop` wrote it (None: `compare_open_loop` alone, nothing written)."""

    out: Path | None
    columns: list[str]
    units: list[str]
    chunk_size: int
    every: int | None  # frames between predictions; None: start frames spread over the episodes (`spread_starts`)
    mae: np.ndarray
    rmse: np.ndarray
    scale: np.ndarray
    model_scale: np.ndarray
    normalization: str
    horizon_mae: np.ndarray
    horizon_steps: np.ndarray
    episodes: list[EpisodeErrors]
    settings: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    # which episodes are scenes the checkpoint was trained on (`plan_training_scenes`); None: not known (not a sim
    # recording, or a checkpoint whose training data does not say)
    training_scenes: TrainingScenes | None = None
    # policy: predicted chunks against the recorded actions; inverse_dynamics: actions recovered from the recorded
    # frames of each chunk (frames f .. f + chunk) against the actions recorded between them
    mode: str = "policy"
    untrained: str | None = None  # `Policy.untrained_modes`' warning for `mode`: its training gave it weight 0

    @property
    def chunks(self) -> int:
        return sum(len(e.starts) for e in self.episodes)

    @property
    def steps(self) -> int:
        return int(self.horizon_steps.sum())

    def normalized_columns(self) -> np.ndarray:
        """Each column's MAE on the model's normalised scale (`model_scale`); NaN for a column left out."""
        return self.mae * self.model_scale

    def normalized_mae(self) -> float | None:
        """The columns' MAE on the model's normalised action scale, averaged over the columns: one unit-free number
        to compare checkpoints by (Cosmos Policy's "action L1"). The scale is the embodiment's stats, its training
        data's, so it does not depend on which steps were compared; None when the stats hold every column
        constant."""
        kept = self.normalized_columns()[~np.isnan(self.model_scale)]
        return float(np.mean(kept)) if kept.size else None

    @property
    def left_out(self) -> list[str]:
        """The columns the unit-free mean leaves out: the embodiment's stats hold them constant (`model_scale`)."""
        return [c for c, s in zip(self.columns, self.model_scale) if np.isnan(s)]

    def normalized_note(self) -> str:
        """How the unit-free mean reads: its scale and the columns it leaves out, and why."""
        left_out = (f"; {', '.join(self.left_out)} left out: {LEFT_OUT_WHY}"
                    if self.left_out else "")
        return f"mean over columns on the model's normalised scale: {normalized_scale_note(self.normalization)}" \
            + left_out

    def summary(self) -> str:
        """What `dataset eval` prints: what was compared (and where it was written), the unit-free mean, then each
        column's MAE as a table (column, MAE, unit; "-" for a unitless column), laid out as `sim compare`'s."""
        normalized = self.normalized_mae()
        lines = [f"{MODE_NAMES[self.mode]}: {plural(self.chunks, 'chunk')} over "
                 f"{plural(len(self.episodes), 'episode')} "
                 f"({plural(self.steps, 'step')} compared)"
                 + (f"; wrote {self.out / OPENLOOP_FILE}" if self.out is not None else "")]
        if normalized is not None:
            lines.append(f"normalised MAE {normalized:.4g} ({self.normalized_note()})")
        rows = [("column", "MAE", "unit")] + [(c, f"{m:.3g}", shown_unit(u) or "-")
                                              for c, u, m in zip(self.columns, self.units, self.mae)]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines += [f"{c.ljust(widths[0])}  {m.rjust(widths[1])}  {u}" for c, m, u in rows]
        return "\n".join(lines + [f"warning: {w}" for w in (self.untrained, self.scenes_warning()) if w])

    def scenes_warning(self) -> str | None:
        """The warning about episodes that are the checkpoint's training scenes (`training_scenes_warning`), as the
        run said it before loading; None when none is or it is not known."""
        return training_scenes_warning(self.training_scenes, len(self.episodes), self.settings.get("checkpoint", ""))

    def to_json(self) -> dict[str, Any]:
        def by_column(values: np.ndarray) -> dict[str, float]:
            return dict(zip(self.columns, values.tolist()))

        horizon = self.horizon_mae
        return {
            "schema": OPENLOOP_SCHEMA,
            "mode": self.mode,
            "settings": self.settings,
            "columns": self.columns,
            "units": dict(zip(self.columns, self.units)),
            "chunks": self.chunks,
            "steps_compared": self.steps,
            "mae": by_column(self.mae),
            "rmse": by_column(self.rmse),
            "recorded_std": by_column(self.scale),
            "normalization": self.normalization,
            "mae_normalized": self.normalized_mae(),
            # per column; null for one left out of the mean (its stats hold it constant)
            "mae_normalized_by_column": {c: None if np.isnan(v) else float(v)
                                         for c, v in zip(self.columns, self.normalized_columns())},
            # step k of a chunk: how many chunks reached it (a chunk past an episode's end stops short) and its MAE
            "horizon": [{"step": k, "chunks": int(n),
                         "mae": None if n == 0 else by_column(horizon[k])}
                        for k, n in enumerate(self.horizon_steps)],
            "episodes": [e.to_json(self.columns) for e in self.episodes],
            # as `worldpolicy sim`'s report.json keeps it: seeds are the evaluated episodes' among the training scenes
            "training_scenes": None if self.training_scenes is None else self.training_scenes.to_json(
                self.training_scenes.seeds),
            "untrained": self.untrained,
            # none drawn (--no-plots): no summary named, as no episode's
            "plots": {"summary": SUMMARY_FIGURE if any(e.plot is not None for e in self.episodes) else None,
                      "episodes": [e.plot.name for e in self.episodes if e.plot is not None]},
        }


class _FrameErrors:
    """Per camera and frame ahead: the summed squared pixel error and pixel count (PSNR of the pooled MSE, so one
    frame imagined exactly does not make a mean infinite) and the summed SSIM over the frames compared."""

    def __init__(self, cameras: Sequence[str], steps: int):
        self.sq = {c: np.zeros(steps) for c in cameras}
        self.pixels = {c: np.zeros(steps) for c in cameras}
        self.ssim = {c: np.zeros(steps) for c in cameras}
        self.count = np.zeros(steps, dtype=np.int64)

    def add(self, camera: str, recorded: np.ndarray, imagined: np.ndarray) -> None:
        from ..processing.similarity import frame_mse, frame_ssim

        n = len(recorded)
        self.sq[camera][:n] += frame_mse(recorded, imagined) * recorded[0].size
        self.pixels[camera][:n] += recorded[0].size
        self.ssim[camera][:n] += frame_ssim(recorded, imagined)

    def reached(self, n: int) -> None:
        """A chunk compared over its first `n` frames ahead (every camera's)."""
        self.count[:n] += 1

    def merge(self, other: _FrameErrors) -> None:
        for c in self.sq:
            self.sq[c] += other.sq[c]
            self.pixels[c] += other.pixels[c]
            self.ssim[c] += other.ssim[c]
        self.count += other.count

    def mse(self, camera: str, by_horizon: bool = False) -> np.ndarray | float:
        """The mean squared error (0..255 scale) over the frames compared; per frame ahead (NaN: none reached)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            if by_horizon:
                return self.sq[camera] / np.where(self.pixels[camera] > 0, self.pixels[camera], np.nan)
            return float(self.sq[camera].sum() / self.pixels[camera].sum()) if self.pixels[camera].sum() else np.nan

    def psnr(self, camera: str, by_horizon: bool = False) -> np.ndarray | float:
        from ..processing.similarity import psnr

        mse = self.mse(camera, by_horizon)
        if by_horizon:
            return np.array([np.nan if np.isnan(m) else psnr(m) for m in mse])
        return np.nan if np.isnan(mse) else psnr(mse)

    def mean_ssim(self, camera: str, by_horizon: bool = False) -> np.ndarray | float:
        with np.errstate(invalid="ignore", divide="ignore"):
            if by_horizon:
                return self.ssim[camera] / np.where(self.count > 0, self.count, np.nan)
            return float(self.ssim[camera].sum() / self.count.sum()) if self.count.sum() else np.nan


def _finite(value: float) -> float | None:
    """A PSNR, SSIM or MSE as JSON holds it: null for inf (identical frames: the MSE beside it is 0) or NaN."""
    return float(value) if np.isfinite(value) else None


@dataclass
class ForwardDynamicsResult:
    """What `evaluate_open_loop(mode="forward_dynamics")` measured and wrote: from each start frame f and the actions
    recorded at f .. f + chunk - 1, the frames the model imagined (`Policy.imagine`), compared with the frames recorded
    at f + 1 .. f + chunk, both at the model's output resolution (`processing.observations.model_frames`). Per
    camera of `cameras` (the dataset's keys; its place in the composed frame, `composite_regions`): `psnr` (dB, of the
    pooled MSE; inf: identical), `ssim` and `mse` (0..255 scale), and the same per frame ahead (`horizon_*`, [chunk],
    frame 1 first; NaN where no chunk reached: past an episode's end). `episodes`: per episode its starts and per
    camera PSNR and SSIM, and its video (recorded | imagined | abs diff) where written."""

    out: Path | None
    cameras: list[str]
    chunk_size: int
    every: int | None
    errors: _FrameErrors
    episodes: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    training_scenes: TrainingScenes | None = None
    untrained: str | None = None
    mode: str = "forward_dynamics"
    # per episode, its video of side-by-side frames (recorded | imagined | abs diff), encoded (H.264 MP4 bytes) as
    # soon as its chunks are compared, to write once every chunk is; None: not kept
    videos: dict[int, bytes] | None = field(default=None, repr=False)
    plot: Path | None = None

    @property
    def chunks(self) -> int:
        return sum(len(e["starts"]) for e in self.episodes)

    @property
    def frames_compared(self) -> int:
        return int(self.errors.count.sum())

    @property
    def psnr(self) -> dict[str, float]:
        return {c: self.errors.psnr(c) for c in self.cameras}

    @property
    def ssim(self) -> dict[str, float]:
        return {c: self.errors.mean_ssim(c) for c in self.cameras}

    @property
    def horizon_psnr(self) -> dict[str, np.ndarray]:
        return {c: self.errors.psnr(c, by_horizon=True) for c in self.cameras}

    @property
    def horizon_ssim(self) -> dict[str, np.ndarray]:
        return {c: self.errors.mean_ssim(c, by_horizon=True) for c in self.cameras}

    def summary(self) -> str:
        """What `dataset eval --mode forward_dynamics` prints: what was compared, then per camera PSNR and SSIM over
        every frame, and at the first and last frame ahead."""
        lines = [f"forward dynamics: {plural(self.chunks, 'chunk')} over {plural(len(self.episodes), 'episode')} "
                 f"({plural(self.frames_compared, 'frame')} compared)"
                 + (f"; wrote {self.out / OPENLOOP_FILE}" if self.out is not None else "")]
        rows = [("camera", "PSNR dB", "SSIM", "frame 1", f"frame {self.chunk_size}")]
        for c in self.cameras:
            horizon_psnr, horizon_ssim = self.errors.psnr(c, True), self.errors.mean_ssim(c, True)
            rows.append((c, f"{self.errors.psnr(c):.2f}", f"{self.errors.mean_ssim(c):.3f}",
                         f"{horizon_psnr[0]:.2f} / {horizon_ssim[0]:.3f}",
                         f"{horizon_psnr[-1]:.2f} / {horizon_ssim[-1]:.3f}"))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                  for row in rows]
        return "\n".join(lines + [f"warning: {w}" for w in (self.untrained, self.scenes_warning()) if w])

    def scenes_warning(self) -> str | None:
        """As `OpenLoopResult.scenes_warning`: the episodes that are the checkpoint's training scenes, or None."""
        return training_scenes_warning(self.training_scenes, len(self.episodes), self.settings.get("checkpoint", ""))

    def to_json(self) -> dict[str, Any]:
        def by_camera(values: Mapping[str, Any]) -> dict[str, float | None]:
            return {c: _finite(v) for c, v in values.items()}

        errors = self.errors
        mse = {c: errors.mse(c, True) for c in self.cameras}
        return {
            "schema": OPENLOOP_SCHEMA,
            "mode": self.mode,
            "settings": self.settings,
            "cameras": self.cameras,
            "chunks": self.chunks,
            "frames_compared": self.frames_compared,
            # PSNR in dB (data range 255) of the pooled MSE; null where the MSE is 0 (identical frames: infinite)
            "psnr": by_camera(self.psnr),
            "ssim": by_camera(self.ssim),
            "mse": by_camera({c: errors.mse(c) for c in self.cameras}),
            # frames ahead k (1: the first imagined): how many chunks reached it and its errors per camera
            "horizon": [{"frames_ahead": k + 1, "chunks": int(n),
                         "psnr": None if n == 0 else by_camera({c: v[k] for c, v in self.horizon_psnr.items()}),
                         "ssim": None if n == 0 else by_camera({c: v[k] for c, v in self.horizon_ssim.items()}),
                         "mse": None if n == 0 else by_camera({c: v[k] for c, v in mse.items()})}
                        for k, n in enumerate(errors.count)],
            "episodes": [{**e, "psnr": by_camera(e["psnr"]), "ssim": by_camera(e["ssim"])} for e in self.episodes],
            "training_scenes": None if self.training_scenes is None else self.training_scenes.to_json(
                self.training_scenes.seeds),
            "untrained": self.untrained,
            "plots": {"summary": self.plot.name if self.plot else None,
                      "videos": [e["video"] for e in self.episodes if e["video"]]},
        }


@dataclass(frozen=True)
class OpenLoopData:
    """What a comparison reads of a dataset, checked before any weights load: the video feeding each camera the
    embodiment composes, the state features a state-conditioned embodiment reads ([] for one that reads none) and how
    the recorded actions map to its columns. `evaluate_open_loop` builds it from its arguments; a training run's
    validation (`train.trainer`) from its `[data]` settings, so the held-out actions are read as training reads them."""

    dataset: LeRobotDataset
    cameras: dict[str, str]
    state_keys: list[str]
    reader: RecordedActions


def spread_starts(lengths: Mapping[int, int], chunk: int, count: int) -> dict[int, list[int]]:
    """`count` start frames spread evenly over the episodes (`lengths`: episode -> its frames), among the frames whose
    whole chunk the episode recorded (frame 0 of one shorter than a chunk), so every chunk is compared over as many
    steps; all of them where there are fewer. Episode -> its frames, ascending (an episode given none is left out).
    The same episodes, chunk and count give the same frames: what a training run's validation compares at each step
    (`validation.action_chunks`) is what `evaluate_open_loop(chunks=...)` compares on one of its checkpoints."""
    episodes = list(lengths)
    counts = np.array([max(int(lengths[i]) - chunk, 0) + 1 for i in episodes])
    before = np.concatenate([[0], np.cumsum(counts)])
    picks = np.linspace(0, before[-1] - 1, min(count, int(before[-1]))).round().astype(int)  # distinct: >= 1 apart
    starts: dict[int, list[int]] = {}
    for k in picks.tolist():
        e = int(np.searchsorted(before, k, side="right")) - 1
        starts.setdefault(episodes[e], []).append(k - int(before[e]))
    return starts


@dataclass(frozen=True)
class OpenLoopPlan:
    """What `check_open_loop` found usable, before any weights load: the dataset's reading (`data`) for `embodiment`,
    the episodes chosen (ascending), the spacing (`every` or `chunks`, at most one given), `seed` and `batch_size`."""

    data: OpenLoopData
    embodiment: Embodiment
    episodes: list[int]
    every: int | None
    chunks: int | None
    seed: int
    batch_size: int
    mode: str = "policy"  # one of results.MODES

    def starts(self, chunk_size: int) -> dict[int, list[int]]:
        """Episode -> the frames a chunk is predicted at, for a policy of `chunk_size`: every `every`-th frame (default
        the chunk size, so the chunks tile each episode), or `chunks` spread over the episodes (`spread_starts`). A
        caller that bounds the work (the agent tool) counts them before the model loads. The world model's modes read
        the frames after f too (f + 1 .. f + chunk): an episode's last frame starts none (one of a single frame, none
        at all), and `chunks` are spread over the frames whose whole chunk + 1 frames the episode recorded."""
        ahead = int(self.mode != "policy")  # the frame after the chunk's last action
        lengths = {i: n for i in self.episodes if (n := int(self.data.dataset.episode_lengths[i])) > ahead}
        if self.chunks is not None:
            return spread_starts(lengths, chunk_size + ahead, self.chunks)
        every = chunk_size if self.every is None else self.every
        return {i: list(range(0, n - ahead, every)) for i, n in lengths.items()}


def plan_training_scenes(plan: OpenLoopPlan, checkpoint: str | Path) -> TrainingScenes | None:
    """Which of `plan`'s episodes are scenes `checkpoint` was trained on, by `worldpolicy sim`'s rule
    (`sim.tasks.training_scenes`), where the dataset is a `dataset from-sim` recording listing one scene seed per
    episode (`fileio.recorded_seeds`) and the checkpoint's training data says; None otherwise."""
    recorded = recorded_seeds(plan.data.dataset.root)
    if recorded is None or len(recorded[1]) != plan.data.dataset.num_episodes or not str(checkpoint):
        return None
    from ..sim.tasks import training_scenes

    task, seeds = recorded
    return training_scenes(checkpoint, task, [seeds[i] for i in plan.episodes])


def training_scenes_warning(scenes: TrainingScenes | None, episodes: int, checkpoint: str | Path) -> str | None:
    """What to tell whoever compares `checkpoint` (its source, or the portable one settings record: named alike,
    `TrainingScenes.trained_on`) on `episodes` episodes some of which are its training scenes
    (`plan_training_scenes`): as `worldpolicy sim` says it, with a held-out recording to evaluate on instead; None
    when none is or it is not known."""
    if scenes is None or not scenes.seeds:
        return None
    return (f"{scenes.trained_on(episodes, checkpoint)}: their error says how well it imitates its training data, not "
            f"how it does on new scenes; record held-out ones to compare on with `worldpolicy dataset from-sim "
            f"--task {scenes.task} --seed {scenes.held_out_from}`")


def check_open_loop(
    dataset: str | Path | LeRobotDataset,
    embodiment: Embodiment,
    *,
    episodes: Sequence[int] | None = None,
    every: int | None = None,
    chunks: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    state_keys: Sequence[str] | None = None,
    action_keys: Sequence[str] | None = None,
    trained: Mapping[str, Sequence[str]] | None = None,
    mode: str = "policy",
) -> OpenLoopPlan:
    """Every check of an open-loop evaluation's data that needs no weights, each error naming its parameter: the
    episodes, `every` and `chunks`, the cameras `embodiment` composes, the frame rate (the dataset's must be the
    embodiment's: a chunk's steps are compared with the recording's rows one for one), state and action features (NaN
    or inf in them refused). `evaluate_open_loop` runs it first; a caller that loads the model itself later (the agent
    tool, whose cached model takes minutes to load) runs it up front, so a wrong dataset fails at once, then
    `run_open_loop` on the plan, which checks nothing again. `trained`: the keys the checkpoint's training run read
    (`policy.trained_data_keys`), which `action_keys` and `state_keys` left out default to where the dataset has
    them all. `mode`: what is compared (`results.MODES`, `evaluate_open_loop`)."""
    from ..policy import check_seed

    mode = check_eval_mode(mode)
    emb = embodiment  # as the checks below name it
    ds = _opened(dataset)
    seed = check_seed(seed)
    batch_size = _count("batch_size", batch_size, "an integer >= 1 (predictions per batched forward)")
    if every is not None:
        every = _count("every", every, "an integer >= 1, the frames between predictions (default: the chunk size, "
                                       "so the chunks tile each episode)")
    if chunks is not None:
        chunks = _count("chunks", chunks, "an integer >= 1, the chunks spread over the episodes (or every=... instead)")
        if every is not None:
            raise ValueError(f"every={every} and chunks={chunks}: give one (every: a chunk every `every` frames; "
                             "chunks: that many, spread evenly over the episodes)")
    chosen = check_episodes(ds, episodes)
    if not ds.video_keys:
        raise ValueError(f"dataset {str(ds.root)!r} has no video or image features: a policy predicts from camera "
                         f"images{ds.unread_note(ds.unread_features)}")
    cameras = label_cameras(ds.video_keys, emb)
    if not emb.runs_at(ds.fps):
        served = served_rate_reason(ds, emb, "an open-loop evaluation")
        if served:
            raise ValueError(f"dataset: {str(ds.root)!r} {served}")
        raise ValueError(f"dataset: {str(ds.root)!r} is at {ds.fps:g} fps and embodiment {emb.key!r}'s actions at "
                         f"{emb.fps:g}: a chunk's steps would span other times than the recorded rows they are "
                         f"compared with; accepted: a dataset recorded at {emb.fps:g} fps (or an embodiment at the "
                         "dataset's rate)")
    if action_keys is None:  # the checkpoint's own run's keys, where this dataset has them
        action_keys = run_keys(ds, trained or {}, "action_keys")
    if state_keys is None and emb.state_history:
        state_keys = run_keys(ds, trained or {}, "state_keys")
    keys = check_state_keys(ds, state_keys, emb, chosen)
    reader = recorded_actions(ds, emb, action_keys, keys)
    read = reader.action_keys + (reader.state_keys if reader.reads_state else [])
    for i in chosen:  # the recorded numbers only, no video decoded
        bad = first_non_finite(ds.episode(i, videos=False).frames, read)
        if bad is not None:
            param = "action_keys" if bad.key in reader.action_keys else "state_keys"  # a conversion's start state
            raise ValueError(f"{param}: {bad.key!r} holds NaN or inf in episode {i} (first at frame {bad.frame}), "
                             "which no error can be measured against; `worldpolicy dataset check` lists such frames "
                             "(leave the episode out with episodes)")
    return OpenLoopPlan(OpenLoopData(ds, cameras, keys, reader), emb, chosen, every, chunks, seed, batch_size, mode)


def _opened(dataset: str | Path | LeRobotDataset) -> LeRobotDataset:
    """`dataset` opened (its metadata read), a missing one named as the parameter (DATASET on the command line), as
    its other errors are."""
    try:
        return dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"dataset: {exc}") from None


def evaluate_open_loop(
    dataset: str | Path | LeRobotDataset,
    checkpoint: Any,
    out: str | Path,
    *,
    embodiment: str | Embodiment | None = None,
    episodes: Sequence[int] | None = None,
    every: int | None = None,
    chunks: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    state_keys: Sequence[str] | None = None,
    action_keys: Sequence[str] | None = None,
    steps: int | None = None,
    plots: bool = True,
    progress: Progress = False,
    mode: str = "policy",
    **load_options: Any,
) -> OpenLoopResult | ForwardDynamicsResult:
    """Predict a chunk at every `every`-th frame (default: the policy's chunk size, so the chunks tile each episode)
    of `episodes` (default: all; negative from the end) of `dataset` with `checkpoint` (as `load_policy` takes it,
    or a loaded `Policy`), compare each with the actions recorded over the same steps, and write `openloop.json`
    (settings, per-column MAE and RMSE with names and units, per episode, per chunk step) and, with `plots`, a
    figure per episode and a summary figure to `out`. `chunks` instead of `every`: that many chunks, their start
    frames spread evenly over the episodes (`spread_starts`, as a training run's validation picks them).

    `action_keys` are the dataset's action features (default: those the checkpoint's training run read, as its
    trainer_state.json records them, where the dataset has them; else training's default `data.action_keys`), mapped
    to the embodiment's columns as training maps them; `state_keys` the state a state-conditioned embodiment reads
    (default: the run's, as for `action_keys`; else `observation.state`, else the `observation.state.*` features).
    Episode i's predictions are sampled with seed `seed + i` (`label.episode_seed`), `batch_size` at a time
    (`Policy.act_batch`), with `steps` denoising steps (default: the checkpoint's preset, or a loaded Policy's
    sampling): each request carries them (`PolicyRequest.steps`), so a loaded Policy is used as it is and left so.
    `progress`: False (the default) shows nothing, True or None a bar over the chunks, a callable is called as
    `progress(done, total)` with the chunks predicted so far (a fraction within a batch, at each denoising step) and
    the chunks planned (`compare_open_loop`).
    `load_options` go to `load_policy` (device, dtype, chunk_size, ...).

    `mode` (`results.MODES`) says what is compared with the recording: "policy" (the default), the chunks predicted from
    frame f against the actions recorded at f .. f + chunk - 1; "inverse_dynamics", the actions `Policy.infer_actions`
    recovers from the recorded frames f .. f + chunk against the actions recorded between them (an `OpenLoopResult`
    alike, with its mode); "forward_dynamics", the frames `Policy.imagine` imagines from frame f under the recorded
    actions against the recorded frames f + 1 .. f + chunk, PSNR and SSIM per camera and frame ahead, and per episode
    a video of recorded | imagined | abs diff with `plots` (a `ForwardDynamicsResult`). A mode the checkpoint's
    training gave weight 0 is said (`Policy.untrained_modes`) in the result and by the policy on stderr.

    Everything that can be judged without weights is checked first (`check_open_loop`, each error naming its
    parameter), and `out` (an earlier evaluation's folder is written again; a checkpoint, dataset or another
    command's run is refused)."""
    from ..policy import Policy, trained_data_keys

    check_progress_option(progress)
    check_eval_mode(mode)
    dataset = _opened(dataset)  # a wrong dataset said before the checkpoint's checks import torch (seconds)
    if isinstance(checkpoint, Policy):
        emb = checked_policy_embodiment(checkpoint, embodiment, load_options)
        checkpoint.sampling.updated(steps=steps)  # a bad steps refused here, as a path's load options are
    else:
        emb = checked_policy_embodiment(checkpoint, embodiment, {**load_options, "steps": steps})
    source = checkpoint.source if isinstance(checkpoint, Policy) else checkpoint
    plan = check_open_loop(dataset, emb, episodes=episodes, every=every, chunks=chunks, seed=seed,
                           batch_size=batch_size, state_keys=state_keys, action_keys=action_keys,
                           trained=trained_data_keys(source), mode=mode)
    out = output_folder(out, "out", writer=EVAL_WRITER)
    scenes = plan_training_scenes(plan, source)  # worked out once: `run_open_loop` records these
    warning = training_scenes_warning(scenes, len(plan.episodes), source)
    if warning is not None:  # said before the model loads, as `worldpolicy sim` says it; openloop.json records it
        logger.warning("%s", warning)
    policy = checkpoint if isinstance(checkpoint, Policy) else Policy.from_pretrained(checkpoint, embodiment,
                                                                                      steps=steps, **load_options)
    return run_open_loop(plan, policy, out, training_scenes=scenes, steps=steps, plots=plots, progress=progress)


def run_open_loop(plan: OpenLoopPlan, policy: Any, out: str | Path, *, training_scenes: TrainingScenes | None,
                  steps: int | None = None, plots: bool = True,
                  progress: Progress = False) -> OpenLoopResult | ForwardDynamicsResult:
    """The evaluation `plan` (`check_open_loop`'s) describes, run with a loaded `Policy` of the embodiment the plan was
    checked for and written to `out`, a folder the caller has checked (`evaluate_open_loop`: `output_folder`; the
    agent tool: a fresh run folder). `training_scenes`: `plan_training_scenes(plan, policy.source)`, which the caller
    works out before the model loads (to warn there), recorded as it is. `steps`, `plots` and `progress` as
    `evaluate_open_loop` takes them; the plan's `mode` what is compared."""
    check_progress_option(progress)
    out = Path(out)  # a path given as text too: written to only once every chunk is predicted
    emb = plan.embodiment
    if policy.embodiment.key != emb.key:  # the cameras and columns were checked for the plan's
        raise ValueError(f"policy: runs embodiment {policy.embodiment.key!r}, but the plan was checked for "
                         f"{emb.key!r}; accepted: a plan of check_open_loop(dataset, policy.embodiment, ...)")
    data = plan.data
    every = policy.chunk_size if plan.every is None and plan.chunks is None else plan.every
    metadata = policy.metadata()
    settings = {
        "dataset": os.path.abspath(data.dataset.root), "embodiment": emb.key, "fps": emb.fps,
        "checkpoint": str(portable_checkpoint(policy.source)) if policy.source else "a Policy built in code",
        "chunk_size": policy.chunk_size, "every": every, "chunks": plan.chunks, "seed": plan.seed,
        "batch_size": plan.batch_size, "episodes": plan.episodes, "cameras": data.cameras,
        "state_keys": data.state_keys or None, **data.reader.settings(),
        "sampling": asdict(policy.sampling.updated(steps=steps)), "resolution_tier": policy.resolution_tier,
        "center_crop": policy.center_crop, "worldpolicy_version": metadata["worldpolicy_version"],
    }
    starts = plan.starts(policy.chunk_size)
    if plan.mode == "forward_dynamics":
        result: OpenLoopResult | ForwardDynamicsResult = compare_forward_dynamics(
            policy, data, starts, seed=plan.seed, batch_size=plan.batch_size, steps=steps, progress=progress,
            keep_frames=plots)
    else:
        result = compare_open_loop(policy, data, starts, seed=plan.seed, batch_size=plan.batch_size, steps=steps,
                                   progress=progress, mode=plan.mode)
    result.out, result.every, result.settings = out, every, settings
    result.training_scenes = training_scenes
    result.untrained = policy.untrained_modes.get(plan.mode)
    if isinstance(result, ForwardDynamicsResult):
        _write_forward(result, out, plots)
    else:
        _write(result, data, out, plots)
    return result


def check_progress_option(progress: Any) -> None:
    """An open-loop evaluation's `progress`: True, False, None or a callable (done, total), refused before any work
    (else a string such as "no" would count as True)."""
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress must be True, False, None or a callable (done, total), got "
                        f"{type(progress).__name__}")


def _count(name: str, value: Any, accepted: str) -> int:
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name}={value!r}; accepted: {accepted}")
    return int(value)


def compare_open_loop(policy: Any, data: OpenLoopData, starts: Mapping[int, Sequence[int]], *, seed: int,
                      batch_size: int, steps: int | None = None, progress: Progress = False,
                      mode: str = "policy") -> OpenLoopResult:
    """Predict a chunk with `policy` at each start frame of `starts` (episode -> frames) of `data`'s episodes and
    compare it with the actions recorded over the same steps: the one computation `evaluate_open_loop` and a training
    run's validation (`val/action_mae`: `normalized_mae()`) share, so the two give the same numbers for the same
    weights, frames and seed.

    Each prediction reads frame f as training pairs a window with it: the cameras of `data`, the first phrasing of the
    frame's task, the state row at f for a state-conditioned embodiment, and episode i's seed `seed + i`. Each batch
    decodes its frames only (from its first frame to its last), so a long episode is never held decoded whole.
    `steps`: each request's denoising steps (None: the policy's sampling). `progress` (`check_progress_option`):
    False nothing, True or None a bar over the chunks, a callable `progress(done, total)`: called before each batch
    and at each of its denoising steps with the chunks predicted so far (a batch's n chunks advance n * step / steps)
    and the chunks planned, so a caller can stop the run at the next call by raising. Nothing is written: the
    result's `out` is None. The requests, batches and progress are `_predicted_episodes`', as every mode's.

    `mode="inverse_dynamics"`: each request is the clip of frames f .. f + chunk instead (each camera's; one that runs
    past the episode's end repeats its last frame, as `Policy.infer_actions` pads a short clip), and its actions are
    compared with the rows recorded at f .. f + chunk - 1 that have a next frame (row t takes frame t to t + 1)."""
    inverse = mode == "inverse_dynamics"
    emb, chunk = policy.embodiment, policy.chunk_size
    total = _Errors(chunk, emb.action_dim)
    recorded_sum = np.zeros(emb.action_dim)
    recorded_sq = np.zeros(emb.action_dim)
    episodes: list[EpisodeErrors] = []
    for run in _predicted_episodes(policy, data, starts, seed=seed, batch_size=batch_size, steps=steps,
                                   progress=progress, mode=mode):
        ep = run.episode
        predicted = [np.asarray(p.actions, dtype=np.float64) for batch in run.batches for p in batch.predictions]
        errors = _Errors(chunk, emb.action_dim)
        compared = []
        for f, chunk_actions in zip(run.starts, predicted):
            # the steps the episode recorded (inverse dynamics: those with a next frame to explain)
            recorded = data.reader.chunk(ep.frames, f, min(f + chunk, ep.length - inverse))
            compared.append(recorded)
            errors.add(chunk_actions, recorded)
            recorded_sum += recorded.sum(axis=0)
            recorded_sq += (recorded**2).sum(axis=0)
        total.merge(errors)
        episodes.append(EpisodeErrors(run.index, ep.length, run.starts, errors.steps, errors.mae(), errors.rmse(),
                                      caption_variants(ep.frame_tasks[0])[0], predicted, compared))
    n = max(total.steps, 1)
    mean = recorded_sum / n
    scale = np.sqrt(np.maximum(recorded_sq / n - mean**2, 0.0))
    scale[scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)] = 0.0  # a constant column's rounding is no spread
    return OpenLoopResult(out=None, columns=list(emb.columns), units=list(emb.units), chunk_size=chunk, every=None,
                          mae=total.mae(), rmse=total.rmse(), scale=scale, model_scale=model_scale(emb),
                          normalization=emb.normalization, horizon_mae=total.horizon_mae(),
                          horizon_steps=total.count.copy(), episodes=episodes, mode=mode)


@dataclass
class _Batch:
    """One batched forward of a comparison (`_predicted_episodes`): its start frames, each camera's frames decoded from
    the first start on (`views[camera][f - starts[0]]` is frame f; the world model's modes up to the last start's
    f + chunk, where the episode has it) and the policy's `Prediction` for each start."""

    starts: list[int]
    views: dict[str, np.ndarray]
    predictions: list[Any]


@dataclass
class _EpisodeRun:
    """One episode of a comparison (`_predicted_episodes`): its index, its recorded numbers and tasks
    (`LeRobotDataset.episode` without videos), its start frames and its batches, each predicted when it is read."""

    index: int
    episode: Episode
    starts: list[int]
    batches: Iterator[_Batch]


def _predicted_episodes(policy: Any, data: OpenLoopData, starts: Mapping[int, Sequence[int]], *, seed: int,
                        batch_size: int, steps: int | None, progress: Progress, mode: str) -> Iterator[_EpisodeRun]:
    """The loop every mode of a comparison runs (`compare_open_loop`, `compare_forward_dynamics`): over the episodes
    of `starts` given a start frame, under one progress bar over the chunks (`progress` as `compare_open_loop` takes
    it), each episode's start frames `batch_size` at a time as `mode`'s requests to `policy.act_batch`. A request at
    frame f reads the cameras of `data` at f (inverse dynamics: the clip f .. f + chunk, `_clip`), the first phrasing
    of f's task, the state row at f for a state-conditioned embodiment, episode i's seed `seed + i` and `steps`;
    forward dynamics' the actions recorded at f .. f + chunk - 1 too (rows past the episode's end repeat its last, as
    the pipeline pads). Each batch decodes its frames only when it is read, so a long episode is never held decoded
    whole: the caller reads an episode's batches before it asks for the next episode."""
    from ..logcapture import progress_bar
    from ..policy import PolicyRequest

    ds, cameras, reader = data.dataset, data.cameras, data.reader
    emb, chunk = policy.embodiment, policy.chunk_size
    ahead = mode != "policy"  # the world model's modes read the frames after f too
    chosen = [i for i, frames in starts.items() if frames]
    planned = sum(len(starts[i]) for i in chosen)
    callback = progress if callable(progress) else None
    done = 0

    def images(views: Mapping[str, np.ndarray], at: int) -> dict[str, np.ndarray]:
        """Each camera's input at `at` in `views`: its frame, or inverse dynamics' clip of chunk + 1 frames."""
        if mode == "inverse_dynamics":
            return {camera: _clip(frames, at, chunk + 1) for camera, frames in views.items()}
        return {camera: frames[at] for camera, frames in views.items()}

    def actions(ep: Episode, f: int) -> np.ndarray | None:
        """Forward dynamics' actions from frame f, a whole chunk; None in the other modes."""
        if mode != "forward_dynamics":
            return None
        rows = reader.chunk(ep.frames, f, min(f + chunk, ep.length))
        return np.concatenate([rows, np.repeat(rows[-1:], chunk - len(rows), axis=0)])

    def batches(i: int, ep: Episode, at: list[int], bar: Any) -> Iterator[_Batch]:
        nonlocal done
        state = (np.concatenate([ep.frames[k].reshape(ep.length, -1) for k in data.state_keys], axis=1)
                 if emb.state_history else None)
        for b in range(0, len(at), batch_size):
            batch = at[b:b + batch_size]
            last = min(batch[-1] + chunk + 1, ep.length) if ahead else batch[-1] + 1
            views = {camera: ds.camera_frames(i, key, batch[0], last) for camera, key in cameras.items()}
            requests = [PolicyRequest(images(views, f - batch[0]), caption_variants(ep.frame_tasks[f])[0], mode=mode,
                                      actions=actions(ep, f), seed=episode_seed(seed, i),
                                      state=None if state is None else state[f], steps=steps)
                        for f in batch]
            step_progress = None
            if callback is not None:
                callback(done, planned)
                step_progress = partial(_batch_progress, callback, done, len(requests), planned)
            predictions = policy.act_batch(requests, progress=step_progress)
            done += len(requests)
            bar.update(len(requests))
            yield _Batch(batch, views, predictions)

    with progress_bar(total=planned, desc=f"{MODE_NAMES[mode]} over {plural(len(chosen), 'episode')}", unit="chunk",
                      disable=progress is False or callback is not None) as bar:
        for i in chosen:
            ep = ds.episode(i, videos=False)  # the recorded numbers and tasks; frames are decoded per batch
            at = [int(f) for f in starts[i]]
            yield _EpisodeRun(i, ep, at, batches(i, ep, at, bar))


def _clip(frames: np.ndarray, start: int, count: int) -> np.ndarray:
    """`count` frames of `frames` from `start`, the last repeated where they run out (`Policy.infer_actions`' padding,
    without its warning for each chunk at an episode's end)."""
    clip = frames[start:start + count]
    return np.concatenate([clip, np.repeat(clip[-1:], count - len(clip), axis=0)]) if len(clip) < count else clip


def compare_forward_dynamics(policy: Any, data: OpenLoopData, starts: Mapping[int, Sequence[int]], *, seed: int,
                             batch_size: int, steps: int | None = None, progress: Progress = False,
                             keep_frames: bool = False) -> ForwardDynamicsResult:
    """From each start frame f of `starts` (episode -> frames) of `data`'s episodes, imagine the future under the
    actions recorded at f .. f + chunk - 1 (`Policy.imagine`'s request, batched; rows past the episode's end repeat
    its last, as the pipeline pads) and compare the imagined frames 1 .. chunk with the frames recorded at f + 1 ..
    f + chunk (those the episode has), each camera's part of the composed frame apart. The recorded frames are
    composed as the request's are and brought to the model's output resolution (`model_frames`: the centre crop
    where the policy crops, the canvas the request was generated on, the decoded size), so the two are compared
    pixel for pixel. Inputs, batches and progress as `compare_open_loop`'s (`_predicted_episodes`).
    `keep_frames`: keep each episode's video of side-by-side frames (recorded | imagined | abs diff), encoded once its
    chunks are compared (`encode_mp4`: one episode's frames held at a time). Nothing is written: the result's `out`
    is None."""
    from ..processing.observations import composite_regions, frames_from_mapping, model_frames
    from ..processing.video import encode_mp4

    cameras = data.cameras
    emb, chunk = policy.embodiment, policy.chunk_size
    regions = composite_regions(list(cameras), emb.camera_keys, emb.composite) or {k: (0.0, 0.0, 1.0, 1.0)
                                                                                    for k in cameras}
    names = [cameras[k] for k in regions]  # each camera by its dataset key
    total = _FrameErrors(names, chunk)
    episodes: list[dict[str, Any]] = []
    kept: dict[int, bytes] | None = {} if keep_frames else None
    for run in _predicted_episodes(policy, data, starts, seed=seed, batch_size=batch_size, steps=steps,
                                   progress=progress, mode="forward_dynamics"):
        errors = _FrameErrors(names, chunk)
        side_by_side: list[np.ndarray] = []
        for batch in run.batches:
            for f, prediction in zip(batch.starts, batch.predictions):
                ahead = min(chunk, run.episode.length - 1 - f)  # the frames after f the episode recorded
                lo = f + 1 - batch.starts[0]
                recorded = model_frames(
                    frames_from_mapping({c: v[lo:lo + ahead] for c, v in batch.views.items()}, emb.camera_keys,
                                        emb.composite),
                    policy.resolution_tier, prediction.settings["canvas_hw"], prediction.video.shape[1:3],
                    emb.snap_to_16, policy.center_crop or None)
                imagined = prediction.video[1:1 + ahead]
                height, width = recorded.shape[1:3]
                for key, (top, left, bottom, right) in regions.items():
                    rows = slice(round(top * height), round(bottom * height))
                    cols = slice(round(left * width), round(right * width))
                    errors.add(cameras[key], recorded[:, rows, cols], imagined[:, rows, cols])
                errors.reached(ahead)
                if kept is not None:
                    diff = np.abs(recorded.astype(np.int16) - imagined.astype(np.int16)).astype(np.uint8)
                    side_by_side.extend(np.concatenate([recorded, imagined, diff], axis=2))
        if kept is not None and side_by_side:
            kept[run.index] = encode_mp4(side_by_side, emb.fps)
        total.merge(errors)
        episodes.append({"episode": run.index, "frames": run.episode.length, "chunks": len(run.starts),
                         "starts": run.starts, "frames_compared": int(errors.count.sum()),
                         "psnr": {c: errors.psnr(c) for c in names},
                         "ssim": {c: errors.mean_ssim(c) for c in names}, "video": None})
    return ForwardDynamicsResult(out=None, cameras=names, chunk_size=chunk, every=None, errors=total,
                                 episodes=episodes, videos=kept)


def _batch_progress(callback: Callable[[float, int], None], first: int, n: int, planned: int, step: int,
                    steps: int) -> None:
    """A batch's denoising step as the chunks predicted so far: its `n` chunks advance `n * step / steps`."""
    callback(first + n * step / steps, planned)


def _write(result: OpenLoopResult, data: OpenLoopData, out: Path, plots: bool) -> None:
    """openloop.json and, with `plots`, the figures: written once every chunk is compared, so an error or Ctrl-C
    before leaves an earlier run's files as they were. An earlier evaluation's plots that this one does not rewrite
    are removed, only where `out` held its openloop.json: a folder of no known kind keeps files that merely share
    the figures' names."""
    earlier = (out / OPENLOOP_FILE).is_file()  # before this run writes its own
    if plots:
        from ..viz.plots import open_loop_figure, save_figure

        settings = result.settings
        for episode in result.episodes:
            # mapped as they are, the recording is one line; a conversion from each chunk's own state (joint
            # targets as end-effector deltas) has none: each chunk is drawn with the rows it was compared with
            line = ([(0, data.reader.chunk(data.dataset.episode(episode.episode, videos=False).frames, 0,
                                           episode.length))]
                    if data.reader.conversion == "none" else list(zip(episode.starts, episode.recorded)))
            fig = open_loop_figure(line, list(zip(episode.starts, episode.predicted)), result.columns, result.units,
                                   settings["fps"],
                                   title=f"{MODE_NAMES[result.mode]}, episode {episode.episode}: {_title(settings)}",
                                   detail=f"task: {episode.task}")
            episode.plot = save_figure(fig, out / EPISODE_FIGURE.format(episode.episode))
        result.files += _summary_plot(result, out)
        result.files += [e.plot for e in result.episodes if e.plot is not None]
    write_json_atomic(out / OPENLOOP_FILE, result.to_json(), indent=2, ensure_ascii=False)
    result.files.append(out / OPENLOOP_FILE)
    _remove_stale(out, earlier, result.files)


def _write_forward(result: ForwardDynamicsResult, out: Path, plots: bool) -> None:
    """openloop.json and, with `plots`, the summary figure (PSNR and SSIM by frame ahead) and a video per episode,
    written once every chunk is compared, an earlier evaluation's figures and videos this one does not rewrite
    removed (as `_write`)."""
    earlier = (out / OPENLOOP_FILE).is_file()
    if plots:
        from ..viz.plots import forward_dynamics_figure, save_figure

        for episode in result.episodes:
            video = (result.videos or {}).get(episode["episode"])
            if video:
                path = write_bytes_atomic(out / FORWARD_VIDEO.format(episode["episode"]), video)
                episode["video"] = path.name
                result.files.append(path)
        spacing = f"every {result.every} frames" if result.every is not None else "spread evenly"
        detail = (f"{plural(result.chunks, 'chunk')} of {result.chunk_size} over "
                  f"{plural(len(result.episodes), 'episode')}, {spacing}; "
                  f"{plural(result.frames_compared, 'frame')} compared")
        fig = forward_dynamics_figure(result.horizon_psnr, result.horizon_ssim, result.settings["fps"],
                                      title=f"forward dynamics: {_title(result.settings)}", detail=detail)
        result.plot = save_figure(fig, out / SUMMARY_FIGURE)
        result.files.append(result.plot)
    result.videos = None  # written: not held any longer
    write_json_atomic(out / OPENLOOP_FILE, result.to_json(), indent=2, ensure_ascii=False)
    result.files.append(out / OPENLOOP_FILE)
    _remove_stale(out, earlier, result.files)


def _remove_stale(out: Path, earlier: bool, files: Sequence[Path]) -> None:
    """An earlier run's plot or video of an episode not evaluated now (in any mode), or its summary where this run
    draws none: removed only where `out` held an evaluation's openloop.json (`earlier`)."""
    written = {p.name for p in files}
    stale_files = [*out.glob(EPISODE_FIGURE_GLOB), *out.glob(FORWARD_VIDEO_GLOB), out / SUMMARY_FIGURE]
    for stale in stale_files if earlier else []:
        if stale.name not in written:
            stale.unlink(missing_ok=True)


def _title(settings: dict[str, Any]) -> str:
    from ..viz.plots import checkpoint_name

    return f"{checkpoint_name(settings['checkpoint'])} ({settings['embodiment']}) on {Path(settings['dataset']).name}"


def _summary_plot(result: OpenLoopResult, out: Path) -> list[Path]:
    from ..viz.plots import open_loop_summary_figure, save_figure

    normalized = result.normalized_mae()
    spacing = f"every {result.every} frames" if result.every is not None else "spread evenly"
    detail = (f"{plural(result.chunks, 'chunk')} of {result.chunk_size} over "
              f"{plural(len(result.episodes), 'episode')}, "
              f"{spacing}; {plural(result.steps, 'step')} compared"
              + (f"; normalised MAE {normalized:.4g} (mean over columns)" if normalized is not None else ""))
    fig = open_loop_summary_figure(result.columns, result.units, result.mae, result.rmse, result.model_scale,
                                   result.horizon_mae, result.settings["fps"],
                                   scale_note=normalized_scale_note(result.normalization),
                                   title=f"{MODE_NAMES[result.mode]} error: {_title(result.settings)}", detail=detail)
    return [save_figure(fig, out / SUMMARY_FIGURE)]
