"""A dataset to look at (`worldpolicy dataset show`): a page with its summary (rate, robot, episodes and their
lengths, features with their shapes and names, tasks, stats, provenance) and, per chosen episode, each camera's clip
as an mp4 a browser plays, its state, action and other numeric features plotted over time with their named columns,
its task and the fields its episodes table carries (a success flag...). What LeRobot users look at with
`lerobot-dataset-viz`, as a folder that needs no viewer running.

    from worldpolicy.data.show import show_dataset
    shown = show_dataset("data/pick_place", "runs/look", episodes=[0, 3], embodiment="droid")
    shown.page                     # runs/look/index.html
    shown.episodes[0].videos       # {camera key: Path of its clip}, shown.episodes[0].plots: {group: Path}

The folder holds `dataset_show.json` (what was drawn, the page's source: `viz.dataset_page`; `worldpolicy report`
redraws it), `index.html` and one `episode_NNNNNN/` per episode shown. Each episode is written into a staging folder
and moved into place whole, then the page is rewritten, so Ctrl-C keeps the episodes finished and leaves no half one.
With an embodiment, the actions are its columns and units, mapped as training maps them (`actions.recorded_actions`),
and a state-conditioned embodiment's state row is its columns too (`observations.default_state_keys`); without one,
the features are plotted as recorded, by their names in info.json. `rerun_dataset` logs the same episodes, cameras
and plotted columns as a Rerun recording instead (`dataset show --rerun OUT.rrd`; the `rerun` extra).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment, get_embodiment, shown_unit
from ..fileio import (
    REPORT_FILE,
    SHOW_FILE,
    SHOW_SCHEMA,
    STAGED_KIND,
    how_stopped,
    output_folder,
    staged_folder,
    stop_signal,
    sweep_scratch_folders,
    write_json_atomic,
)
from ..hub import dataset_source, snapshot_repo_id
from .actions import RecordedActions, recorded_actions
from .card import recorded_units
from .checks import check_episodes
from .lerobot import Episode, LeRobotDataset
from .observations import check_state_width, default_state_keys, numeric_features
from .stats import first_non_finite

if TYPE_CHECKING:
    from ..viz.rerun import RerunTarget

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EPISODES", "SCHEMA", "SHOW_WRITER", "DatasetShown", "EpisodeShown", "ShowInterrupted",
           "rerun_dataset", "show_dataset"]

SCHEMA = SHOW_SCHEMA
SHOW_WRITER = "dataset show"  # the command whose folders `fileio.FOLDER_KINDS` marks by SHOW_FILE
DEFAULT_EPISODES = 5  # shown when none are chosen: the first ones
EPISODE_DIR = "episode_{:06d}"
EPISODE_GLOB = "episode_*"
EPISODE_NAME = r"episode_\d{6,}"  # what EPISODE_DIR names: a folder this command wrote, not one sharing its prefix
CLIP_BLOCK = 256  # frames decoded at a time while a clip is cut out of the dataset's video: a long episode never whole
ACTION_FEATURE = "action"
STATS_SHOWN = ("min", "max", "mean", "std", "q01", "q99", "count")


@dataclass
class EpisodeShown:
    """One episode as the page shows it: its clips (camera key -> mp4), plots (group -> png), tasks, the episodes
    table's own fields, and notes (a feature not plotted, and why)."""

    episode: int
    length: int
    tasks: list[str]
    fields: dict[str, Any]
    videos: dict[str, Path] = field(default_factory=dict)
    plots: dict[str, Path] = field(default_factory=dict)
    plotted: dict[str, str] = field(default_factory=dict)  # group -> what its plot shows (features, columns' source)
    notes: list[str] = field(default_factory=list)

    def to_json(self, out: Path) -> dict[str, Any]:
        return {"episode": self.episode, "frames": self.length, "tasks": self.tasks, "fields": self.fields,
                "videos": {k: p.relative_to(out).as_posix() for k, p in self.videos.items()},
                "plots": [{"group": g, "file": p.relative_to(out).as_posix(), "shows": self.plotted[g]}
                          for g, p in self.plots.items()],
                "notes": self.notes}


@dataclass
class DatasetShown:
    """What `show_dataset` wrote: the page, the summary it heads, the episodes shown (all chosen, unless interrupted:
    `complete`)."""

    out: Path
    page: Path
    chosen: list[int]
    episodes: list[EpisodeShown]
    summary: dict[str, Any]

    @property
    def complete(self) -> bool:
        return len(self.episodes) == len(self.chosen)


class ShowInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGUSR1: `signum`, the signal, `fileio.stop_signal`) stopped `show_dataset`: the episodes of
    `shown` are on the page, the one being written was dropped whole. Still a KeyboardInterrupt, so callers that do
    not know it stop as before."""

    def __init__(self, shown: DatasetShown, signum: int):
        self.shown, self.signum = shown, signum
        super().__init__(self.describe())

    def describe(self) -> str:
        done, out, how = len(self.shown.episodes), self.shown.out, how_stopped(self)
        if not done:
            return f"{how} before the first episode was written; nothing new in {out}"
        return f"{how}: {done} of {len(self.shown.chosen)} episodes shown in {self.shown.page}"


@dataclass(frozen=True)
class _Groups:
    """The numeric features each plot of an episode draws, and how: (group, feature keys, columns, units, gripper,
    what it shows) per plot; `actions` maps them to an embodiment's columns (None: as recorded)."""

    plots: list[tuple[str, list[str], list[str], list[str], str | None, str]]
    actions: RecordedActions | None


def show_dataset(
    dataset: str | Path | LeRobotDataset,
    out: str | Path,
    *,
    episodes: Sequence[int] | None = None,
    embodiment: str | Path | Embodiment | None = None,
    progress: bool = False,
) -> DatasetShown:
    """Write `out/index.html`: `dataset`'s summary and, for each of `episodes` (default: the first
    `DEFAULT_EPISODES`; negative from the end), its cameras' clips, its numeric features plotted over time, its task
    and its episodes-table fields. `embodiment` (a registered name or spec file): the actions in its columns and
    units, as training maps them, and a state-conditioned one's state row in its columns; a dataset that does not map
    to it is refused. `progress`: a bar over the episodes on stderr.

    The dataset, the episodes, the embodiment and `out` are checked before anything is decoded (each error naming
    its parameter); `out` is new, empty or an earlier `dataset show`'s, whose episodes not shown now are removed once
    every chosen one is written."""
    ds, chosen, emb, groups = _chosen(dataset, episodes, embodiment)
    out = output_folder(out, "out", writer=SHOW_WRITER)
    # what this command wrote, never a folder of the user's that shares a prefix (`episode_notes/`): what a SIGKILL
    # left beside an episode's folder, settled as every writer settles it (`fileio.sweep_scratch_folders`: a staging
    # no live process holds removed; a replacement cut short restored, or its aside removed once the episode is the
    # new one: removing that aside outright lost the earlier episode where the kill fell between its two renames)
    # and, only where `out` held an earlier show, its episodes
    for name in sorted({m[1] for stale in out.glob("." + EPISODE_GLOB)
                        if (m := re.fullmatch(rf"\.({EPISODE_NAME})\..+", stale.name))}):
        sweep_scratch_folders(out / name, (STAGED_KIND,))
    earlier = (out / SHOW_FILE).is_file()
    fields = json.loads(json.dumps(ds.episode_fields(), default=str))  # bytes and the like as text, for the page
    summary = _summary(ds, chosen, episodes is None, emb, fields)
    shown = DatasetShown(out, out / REPORT_FILE, chosen, [], summary)
    from ..logcapture import progress_bar

    try:
        with progress_bar(total=len(chosen), desc="showing episodes", unit="ep", disable=not progress) as bar:
            for i in chosen:
                shown.episodes.append(_episode(ds, i, out, groups, fields[i]))
                _write(shown)
                bar.update(1)
    except KeyboardInterrupt as stop:
        stopped = ShowInterrupted(shown, stop_signal(stop))
        if shown.episodes:  # the page says how the episodes shown were cut short (a SIGTERM is no Ctrl-C)
            try:
                _write(shown, how_stopped(stopped))
            except KeyboardInterrupt:  # a second stop: the page as the last episode left it
                pass
        raise stopped from None
    if not chosen:  # a dataset of no episodes: its summary alone
        _write(shown)
    kept = {EPISODE_DIR.format(i) for i in chosen}
    for old in out.glob(EPISODE_GLOB) if earlier else []:  # an earlier run's episode not shown now
        if old.is_dir() and old.name not in kept and re.fullmatch(EPISODE_NAME, old.name):
            shutil.rmtree(old)
    return shown


def _chosen(dataset: str | Path | LeRobotDataset, episodes: Sequence[int] | None,
            embodiment: str | Path | Embodiment | None) -> tuple[LeRobotDataset, list[int], Embodiment | None, _Groups]:
    """The dataset, the episodes chosen (default: the first `DEFAULT_EPISODES`), the embodiment and the features each
    plot draws (`_groups`), each checked and named by its parameter before anything is decoded."""
    ds = dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    chosen = list(range(min(DEFAULT_EPISODES, ds.num_episodes))) if episodes is None else check_episodes(ds, episodes)
    emb = None
    if embodiment is not None:
        try:
            emb = get_embodiment(embodiment)
        except (KeyError, ValueError, TypeError, FileNotFoundError) as exc:  # named once (`embodiment='x' is not ..`)
            said = str(exc.args[0] if exc.args else exc)
            raise ValueError(said if said.startswith("embodiment=") else f"embodiment: {said}") from None
    return ds, chosen, emb, _groups(ds, emb, str(embodiment))


def rerun_dataset(
    dataset: str | Path | LeRobotDataset,
    target: RerunTarget,
    *,
    episodes: Sequence[int] | None = None,
    embodiment: str | Path | Embodiment | None = None,
    progress: bool = False,
) -> list[int]:
    """`dataset`'s `episodes` (default: the first `DEFAULT_EPISODES`) as one Rerun recording into `target`
    (`viz.rerun`), what `show_dataset` draws, on the timelines LeRobot's `lerobot-dataset-viz` logs a dataset on,
    `frame_index` and `timestamp` (each frame's recorded `timestamp`, seconds; `viz.rerun.Clock`): under
    `episode_NNNNNN/`, each camera's frames by its key, each plotted feature group's columns as series
    (`action/<column>`, `state/<column>`, `other/<column>`, named with their units where known; a group holding NaN
    or inf left out, as the page leaves it, with a warning naming it) and the task (`task`). Checked as
    `show_dataset` checks its inputs, before anything is decoded; the episodes logged are returned."""
    from ..logcapture import progress_bar
    from ..viz.rerun import entity, log_columns, log_frames, log_text, recording

    ds, chosen, _, groups = _chosen(dataset, episodes, embodiment)
    with (recording(target, f"dataset {ds.root.name}") as rec,
          progress_bar(total=len(chosen), desc="logging episodes", unit="ep", disable=not progress) as bar):
        for i in chosen:
            ep = ds.episode(i, videos=False)
            folder = EPISODE_DIR.format(i)
            when = np.asarray(ep.timestamp, dtype=np.float64)  # as recorded: within a quarter frame of frame / fps
            for key in ds.video_keys:
                log_frames(rec, entity(folder, key), _clip(ds, i, key, ep.length), when)
            for group, keys, columns, units, _, what in groups.plots:
                mapped = groups.actions if group == "action" else None
                if held := _non_finite(ds, ep.frames, keys, mapped):
                    logger.warning("episode %d: %s (%s) not logged: %s", i, group, what, held)
                    continue
                log_columns(rec, entity(folder, group), _values(ep, keys, mapped), columns, units, when)
            if ep.tasks:
                log_text(rec, entity(folder, "task"), "\n".join(ep.tasks))
            bar.update(1)
    return chosen


def _groups(ds: LeRobotDataset, emb: Embodiment | None, given: str) -> _Groups:
    """Which features each plot draws, and their columns and units: actions and state mapped to `emb`'s columns where
    it is given (refused naming `embodiment` as `given` where the dataset's do not map to it), the rest as
    recorded, in the units the dataset's card gives them (`card.recorded_units`; none where it names none)."""
    from ..viz.plots import HEATMAP_COLUMNS

    known = recorded_units(ds)

    def units_of(keys: list[str]) -> list[str]:
        return [unit for key in keys for unit in known.get(key, [""] * len(ds.feature_names([key])))]

    numeric = numeric_features(ds)
    action_keys = [k for k in numeric if k == ACTION_FEATURE or k.startswith(ACTION_FEATURE + ".")]
    state_keys = default_state_keys(ds) or [k for k in numeric if k.startswith("observation.")]
    plots = []
    reader = None
    if emb is not None and action_keys:
        reader = recorded_actions(ds, emb, action_keys, state_keys or None, setting=f"embodiment={given!r}",
                                  remedy=f"; to look at {', '.join(action_keys)}, choose an embodiment they map to, "
                                  "or none to plot them as recorded")
        mapped = f"{', '.join(reader.action_keys)} as embodiment {emb.key}'s columns"
        if reader.conversion != "none":
            mapped += f" ({reader.conversion} from the state at frame 0)"
        if labelled := _labelled(ds, reader.action_keys):
            mapped += f", {labelled}"
        plots.append(("action", reader.action_keys, list(emb.columns), list(emb.units), emb.gripper_column, mapped))
    elif action_keys:
        names = ds.feature_names(action_keys)
        plots.append(("action", action_keys, names, units_of(action_keys), None,
                      f"{', '.join(action_keys)} {_labelled(ds, action_keys) or 'as recorded'}"))
    if state_keys:
        own = emb is not None and emb.state_history and default_state_keys(ds) == state_keys
        if own:
            try:
                check_state_width(ds, state_keys, emb)
            except ValueError:
                own = False  # another width than the embodiment's state row: shown as recorded
        names = ds.feature_names(state_keys)
        # no gripper band: `gripper_column`'s threshold is the command's (close at >= 0.5); a measured opening stops
        # short of it on a held cube (0.38 in `dataset from-sim`'s pick_place), and the band said "open" throughout
        plots.append(("state", state_keys, list(emb.columns) if own else names,
                      list(emb.units) if own else units_of(state_keys), None,
                      f"{', '.join(state_keys)} as " + (f"embodiment {emb.key}'s state row" if own else "recorded")))
    other = [k for k in numeric if k not in action_keys and k not in state_keys]
    # a feature too wide for a subplot per column (a served run's flattened `action_chunk`: 256) gets a heat map of
    # its own, named by it; the other features keep their line plots
    wide = [k for k in other if len(ds.feature_names(k)) > HEATMAP_COLUMNS]
    other = [k for k in other if k not in wide]
    if other:
        names = ds.feature_names(other)
        plots.append(("other", other, names, units_of(other), None, f"{', '.join(other)} as recorded"))
    for key in wide:
        plots.append((_file_name(key), [key], ds.feature_names(key), [], None,
                      f"{key} as recorded ({len(ds.feature_names(key))} columns: a heat map)"))
    return _Groups(plots, reader)


def _labelled(ds: LeRobotDataset, action_keys: list[str]) -> str | None:
    """How a labelled dataset's actions came to be, where `action_keys` are the one `dataset label` wrote (its
    provenance's `action_key`): inferred by a checkpoint (named as a run's heading names it), not recorded; None for
    any other dataset's."""
    from ..viz.plots import checkpoint_name
    from .label import LABEL_SOURCE

    provenance = ds.provenance or {}
    if provenance.get("source") != LABEL_SOURCE or action_keys != [provenance.get("action_key")]:
        return None
    return f"labelled by inverse dynamics ({checkpoint_name(str(provenance.get('checkpoint', 'dataset label')))})"


def _summary(ds: LeRobotDataset, chosen: list[int], default: bool, emb: Embodiment | None,
             fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's head: the dataset's summary as `dataset info` prints it (`LeRobotDataset.summary`), with what the
    page shows besides: the task texts, the stats table, the episodes table and which episodes are shown."""
    stats = ds.stats
    return {
        "schema": SCHEMA,
        **ds.summary(),
        # the folder is looked at later, from elsewhere: `report DIR` names it; a hub dataset by its hub id, not the
        # hub's cache folder (a commit hash for a name), without the commit a record pins (a title, not a record)
        "root": snapshot_repo_id(ds.root.resolve(), "dataset") or dataset_source(ds.root.resolve()),
        "task_texts": list(ds.tasks),
        "stats": None if stats is None else _stats_rows(ds, stats),
        "embodiment": None if emb is None else emb.key,
        "chosen": chosen,
        "chosen_by_default": default,
        "default_episodes": DEFAULT_EPISODES,
        "episode_table": [{"episode": i, "frames": int(n), "tasks": " | ".join(tasks), **extra}
                          for i, (n, tasks, extra) in enumerate(zip(ds.episode_lengths.tolist(), ds.episode_tasks,
                                                                    fields))],
    }


def _stats_rows(ds: LeRobotDataset, stats: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """meta/stats.json as one row per column of each feature (a video's per channel), its unit and statistics side by
    side; LeRobot's own columns (timestamp, indexes) left out. The unit is the one the dataset records
    (`card.recorded_units`, as its card and plots say it; "-" for a unitless column, `shown_unit`), "" where it
    records none: a mean of 0.02 says nothing until one knows it is metres."""
    rows, shown = [], set(numeric_features(ds)) | set(ds.video_keys)
    known = recorded_units(ds)
    for key, part in stats.items():
        if key not in shown:  # LeRobot's index columns, strings
            continue
        spec = ds.features[key]
        names = ["R", "G", "B"] if spec["dtype"] in ("video", "image") else ds.feature_names(key)
        units = known.get(key, [None] * len(names))
        for c, name in enumerate(names):
            unit = units[c] if c < len(units) else None
            row: dict[str, Any] = {"feature": key, "column": name,
                                   "unit": "" if unit is None else shown_unit(unit) or "-"}
            for stat in STATS_SHOWN:
                if stat in part:
                    values = np.asarray(part[stat], dtype=np.float64).reshape(-1)
                    row[stat] = float(values[0 if stat == "count" else c]) if values.size else None
            rows.append(row)
    return rows


def _file_name(key: str) -> str:
    """A feature key as a file name (a camera's clip, `observation.images.front.mp4`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def _clip(ds: LeRobotDataset, i: int, key: str, length: int) -> Iterator[np.ndarray]:
    """Camera `key`'s frames of episode `i`, decoded `CLIP_BLOCK` at a time, each block on from the one before it."""
    with ds.reading_in_order():
        for start in range(0, length, CLIP_BLOCK):
            yield from ds.camera_frames(i, key, start, min(start + CLIP_BLOCK, length))


def _episode(ds: LeRobotDataset, i: int, out: Path, groups: _Groups, fields: dict[str, Any]) -> EpisodeShown:
    """Episode `i`'s clips and plots, written into a staging folder moved to `out/episode_NNNNNN` once whole."""
    from ..processing.video import write_video
    from ..viz.plots import HEATMAP_COLUMNS, action_timeseries_figure, feature_heatmap_figure, save_figure

    ep = ds.episode(i, videos=False)
    shown = EpisodeShown(i, ep.length, list(ep.tasks), fields)
    final = out / EPISODE_DIR.format(i)
    with staged_folder(final) as stage:
        for key in ds.video_keys:
            write_video(stage / f"{_file_name(key)}.mp4", _clip(ds, i, key, ep.length), ds.fps)
            shown.videos[key] = final / f"{_file_name(key)}.mp4"
        for group, keys, columns, units, gripper, what in groups.plots:
            mapped = groups.actions if group == "action" else None
            if held := _non_finite(ds, ep.frames, keys, mapped):  # as `dataset check` says it: feature, frames
                shown.notes.append(f"{group} ({what}) not plotted: {held}")
                continue
            values = _values(ep, keys, mapped)
            title = f"episode {i} · {group}: {what}"
            fig = (action_timeseries_figure(values, columns, units, ds.fps, gripper, title=title)
                   if len(columns) <= HEATMAP_COLUMNS else feature_heatmap_figure(values, columns, ds.fps, title))
            save_figure(fig, stage / f"{group}.png")
            shown.plots[group], shown.plotted[group] = final / f"{group}.png", what
    return shown


def _values(ep: Episode, keys: list[str], mapped: RecordedActions | None) -> np.ndarray:
    """A plot's values [frames, columns]: the features `keys` side by side as recorded, or the actions `mapped` to an
    embodiment's columns."""
    if mapped is not None:
        return mapped.chunk(ep.frames, 0, ep.length)
    return np.concatenate([ep.frames[k].reshape(ep.length, -1).astype(np.float64) for k in keys], axis=1)


def _non_finite(ds: LeRobotDataset, frames: dict[str, np.ndarray], keys: list[str],
                mapped: RecordedActions | None) -> str:
    """Which of the features a plot reads hold NaN or inf, each named with its frames and first column ("" where none
    does): the plot's own refusal ("actions contain NaN") said "actions" for a state or a reward too. Actions mapped
    from joint targets read the state at frame 0 too."""
    from ..viz.plots import plural

    read = [(k, frames[k], "") for k in keys]
    if mapped is not None and mapped.reads_state:
        read += [(k, frames[k][:1], " (the state at frame 0, where the conversion starts)") for k in mapped.state_keys]
    said = []
    for key, values, where in read:
        if (bad := first_non_finite({key: values})) is not None:
            said.append(f"{key!r}{where} holds NaN or inf in {plural(bad.frames, 'frame')} (first: frame {bad.frame}, "
                        f"column {ds.feature_names(key)[bad.column]!r})")
    return "; ".join(said)


def _write(shown: DatasetShown, stopped: str | None = None) -> None:
    """dataset_show.json with the episodes finished so far, then the page drawn from it; `stopped`: how a stop cut
    the show short (`fileio.how_stopped`), kept as the json's `stopped`."""
    from ..viz.report import write_report

    doc = {**shown.summary, "complete": shown.complete, **({"stopped": stopped} if stopped else {}),
           "shown": [e.to_json(shown.out) for e in shown.episodes]}
    write_json_atomic(shown.out / SHOW_FILE, doc, indent=1, ensure_ascii=False)
    write_report(shown.out)

