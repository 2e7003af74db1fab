"""Pseudo-label a dataset's videos with actions: an inverse-dynamics checkpoint explains every frame transition of each
episode (`Policy.infer_actions(whole_clip=True)`), and a new LeRobot v3 dataset holds the source's frames, videos,
columns and meta/episodes columns (a success flag, a recorder's own) plus the labels.

    from worldpolicy.data import label_dataset
    ds = label_dataset("data/unlabelled", "data/labelled", "runs/x/final", seed=0)
    ds.episode(0).frames["action"]          # [T, action_dim] in the embodiment's columns and physical units

Row t's action is the transition from frame t to frame t+1 (as `dataset from-sim` pairs them); the last frame of an
episode has no transition after it and repeats the row before it. Training reads the result with
`data.action_keys = ["action"]` (docs/data.md).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..embodiments import Embodiment
from ..extras import run_record
from ..fileio import (
    dataset_lock,
    how_stopped,
    replace_folder,
    sigint_deferred,
    sigint_held,
    stop_signal,
    write_bytes_atomic,
)
from ..hub import dataset_source
from ..models import portable_checkpoint, resolve_checkpoint
from .card import CARD_FILE, dataset_card, source_terms
from .checks import check_episodes, check_out, refuse_changed_settings, warn_software_changed
from .edit import BLOCK_FRAMES, copy_episodes, own_provenance
from .layout import AUTO_FEATURES, INFO_PATH, check_feature
from .lerobot import KeepSchedule, LeRobotDataset, LeRobotDatasetWriter, episode_row
from .observations import CameraMismatch, camera_sources, check_state_width, named_state_keys
from .sampling import caption_variants
from .stats import first_non_finite

if TYPE_CHECKING:  # annotations only: pyarrow comes with the `train` extra (lerobot.py imports it)
    import pyarrow as pa

__all__ = ["LABEL_SOURCE", "LabelInterrupted", "check_state_keys", "episode_seed", "label_cameras", "label_dataset",
           "partial_folder"]

logger = logging.getLogger(__name__)

LABEL_SOURCE = "worldpolicy dataset label"  # a labelled dataset's `provenance["source"]`: what --overwrite may replace
# batches of windows one `infer_actions` call takes (`_episode_labels`), and so the frames of every camera decoded at
# a time to be labelled: what labelling holds is a segment's frames, not a long episode's (batch_size 8,
# chunk 32: 1025 frames a segment, each camera at 320x240 ~0.2 GB decoded, and the windows' copies of the labelled
# ones); `benchmarks/bench_label_memory.py` measures it
SEGMENT_BATCHES = 4
# what a resumed run does not compare with the run it continues: the version of worldpolicy that labelled (a patch
# release continues a run; what it records still says which labelled)
UNCOMPARED = ("worldpolicy_version",)


class LabelInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, SIGUSR1: `signum`, the signal, `fileio.stop_signal`) stopped `label_dataset`. The episodes
    labelled before it (`kept` of `total`, `resumed` of them copied from the run it continued) are a complete dataset
    at `partial` (`partial_folder`), which `resume=True` continues, unless no new episode was labelled: then
    `partial` is as it was (none, or the continued run's). Nothing is written to `out`. Still a KeyboardInterrupt, so
    callers that do not know this class stop as before."""

    def __init__(self, out: Path, partial: Path, total: int, kept: int, resumed: int, signum: int = signal.SIGINT):
        self.out, self.partial, self.total, self.kept, self.resumed = out, partial, total, kept, resumed
        self.signum = signum
        super().__init__(self.describe())

    def describe(self, resume: str = "resume=True") -> str:
        """What became of the labelled episodes; `resume` names the way to go on as the caller knows it."""
        how = how_stopped(self)
        if self.kept > self.resumed:
            return (f"{how}: {self.kept} of {self.total} episodes labelled are kept in {self.partial} (a "
                    f"complete dataset; nothing was written to {self.out}); rerun with {resume} to label the other "
                    f"{self.total - self.kept}")
        if self.resumed:
            return (f"{how} before the first of the {self.total - self.resumed} episodes left was labelled; "
                    f"{self.partial} is unchanged ({self.resumed} of {self.total} episodes): rerun with {resume} to go "
                    "on")
        return (f"{how} before the first of {self.total} episodes was labelled; nothing was written to "
                f"{self.out} (a dataset already there is unchanged); a rerun gives the same labels")


def partial_folder(out: Path) -> Path:
    """Where a label run into `out` keeps the episodes it labelled when it is interrupted or fails: the complete
    dataset `OUT.partial` beside `out` (an ordinary folder, not a `fileio.ScratchFolder`: no sweep removes it), which
    `resume=True` continues and the finished run moves to `out`. `out` itself holds only a whole run's labels."""
    out = Path(os.path.abspath(Path(out).expanduser()))  # `.` too has a name then
    return out.with_name(out.name + ".partial")


def episode_seed(seed: int, episode: int) -> int:
    """The sampling seed episode `episode` (its index in the source dataset) is labelled with: the same whichever
    episodes are chosen, so labelling a subset reproduces those episodes' labels of a full run."""
    return (seed + episode) % 2**63


def label_cameras(video_keys: Sequence[str], embodiment: Embodiment) -> dict[str, str]:
    """Which dataset video feeds each camera the embodiment composes, keyed as `infer_actions` takes a clip dict: as
    training reads them (`observations.camera_sources`: by name, a pre-composed `observation.image`, or for an
    embodiment of one camera the dataset's only video), refused in `dataset label`'s terms: the checkpoint or
    --embodiment chooses the cameras."""
    e = embodiment
    try:
        return camera_sources(video_keys, None, e)
    except CameraMismatch as exc:
        if exc.twins:
            raise ValueError(f"dataset: the videos {exc.twins} feed the same camera of embodiment {e.key!r}; give "
                             "each camera one video") from None
        need = "each of" if e.composite is not None else "one of"
        only = next(iter(video_keys)) if len(video_keys) == 1 else None
        rename = (f"; if its one video {only!r} shows the composite, name it observation.image: `worldpolicy "
                  f"dataset select DATASET --out NEW --rename-feature {only}=observation.image`"
                  if e.composite and only else "")
        raise ValueError(f"dataset: embodiment {e.key!r} takes {need} the cameras {', '.join(e.camera_keys)}"
                         + (" (or one pre-composed observation.image)" if e.composite else "")
                         + f"; by name the dataset's videos are the cameras {exc.named}: choose a checkpoint or "
                         "--embodiment with these cameras" + rename) from None


def label_dataset(
    dataset: str | Path | LeRobotDataset,
    out: str | Path,
    checkpoint: Any,
    *,
    embodiment: str | Embodiment | None = None,
    episodes: Sequence[int] | None = None,
    seed: int = 0,
    batch_size: int = 8,
    resample: bool = False,
    state_keys: Sequence[str] | None = None,
    action_key: str = "action",
    video_codec: str = "libx264rgb",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    command: str | None = None,
    **load_options: Any,
) -> LeRobotDataset:
    """Label every frame transition of `episodes` (default: all) of `dataset` with the actions `checkpoint` (as
    `load_policy` takes it, or a loaded `Policy`) infers, and write them with the source's frames, videos and other
    columns, and each episode's success flag and own meta/episodes columns (as `dataset select` carries them), as a
    new dataset at `out`, returned opened.

    Each episode's whole video runs through `Policy.infer_actions(whole_clip=True, batch_size=...)` (in segments of
    `SEGMENT_BATCHES` batches of windows, which give the whole clip's labels; each segment's frames are decoded and
    written as it is labelled, so a long episode is never held whole) with its task's first phrasing
    (`caption_variants`) as the prompt, seed `episode_seed(seed, index)`, and for a state-conditioned
    embodiment the state rows of `state_keys` (default: `observation.state`, else the `observation.state.*`
    features). The labels go in feature `action_key` (replacing a source feature of that name), float32 with `names`
    the embodiment's columns, in its physical units. `resample=True` reads a dataset recorded at another rate than
    the embodiment's fps at that rate: only each episode's frames nearest the embodiment's timestamps are labelled and
    kept (the result is at the embodiment's fps); without it such a dataset is refused. Videos are written again,
    losslessly by default (`video_codec`), so they hold the frames the labels explain.
    meta/worldpolicy_provenance.json says how the labels were made (checkpoint, embodiment, seed, settings, source),
    and for a reader reproducing them the software that made them and `command`, the `dataset label` line that did
    (`extras.run_record`; None from Python).

    Everything that can be judged without weights is checked first (cameras, fps, state, episodes, `out`). `out`
    must not be or lie inside the source (or hold it); an existing dataset there is replaced only with `overwrite`
    and only when an earlier label run made it. The dataset is built in a hidden folder beside `out` and appears
    only when every episode is labelled: an error or Ctrl-C leaves nothing at `out` (and an earlier one unchanged).
    The episodes labelled before it are kept as a complete dataset beside it (`partial_folder`, `OUT.partial`;
    Ctrl-C raises `LabelInterrupted`, which says so), unless none was; `resume=True` continues that run: with the same
    settings (the source dataset, its files, the checkpoint, its files, the episodes, seed, sampling, device, dtype,
    ...: each that differs refused, naming it, the checkpoint's own before its weights load), its episodes copied
    first (`edit.copy_episodes`), the others labelled (each with its own seed, `episode_seed`: the labels are those of
    an uninterrupted run) and the whole published at `out`. Without `resume`, a kept run is refused (its labels may be
    hours of work) unless `overwrite`, which labels anew and replaces it. `resume=True` once the run finished (a
    requeued job passes it every time) returns its dataset at `out` as it is, its settings compared the same way
    (without loading weights): nothing is labelled.
    `load_options` go to `load_policy` (device, dtype, steps, chunk_size, ...)."""
    from ..policy import Policy, check_seed
    from ..processing.clip import check_clip_options, resampled_frames

    ds = dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    check_clip_options(0, True, resample, batch_size)
    seed, batch_size = check_seed(seed), int(batch_size)  # numpy integers too, as plain ones for info.json
    emb = checked_policy_embodiment(checkpoint, embodiment, load_options)
    if not ds.video_keys:
        raise ValueError(f"dataset {str(ds.root)!r} has no video or image features: inverse dynamics labels videos"
                         f"{ds.unread_note(ds.unread_features)}")
    cameras = label_cameras(ds.video_keys, emb)
    chosen = check_episodes(ds, episodes)
    if not resample and not emb.runs_at(ds.fps):
        raise ValueError(f"resample: dataset {str(ds.root)!r} is at {ds.fps:g} fps and embodiment {emb.key!r}'s "
                         f"actions at {emb.fps:g}: each action would span another time. Pass resample=True "
                         f"(--resample) to label its frames nearest {emb.fps:g} fps (the result is at {emb.fps:g} fps)")
    frames_of = {i: resampled_frames(int(ds.episode_lengths[i]), ds.fps, emb.fps) if resample
                 else list(range(int(ds.episode_lengths[i]))) for i in chosen}
    short = [i for i in chosen if len(frames_of[i]) < 2]
    if short:
        raise ValueError(f"episodes: {short} hold fewer than 2 frames{' at the embodiment fps' if resample else ''}; "
                         "inverse dynamics explains the motion between frames: leave them out")
    keys = check_state_keys(ds, state_keys, emb, chosen)
    _check_action_key(ds, action_key, keys)
    out = Path(out).expanduser()
    if out.is_symlink():  # a data folder linked from a bigger disk, as the writer takes one: the run is kept (and
        out = out.resolve()  # published) beside and at its target, not on the link's disk, and the link stays
    # resume=True once the run finished (a cluster job requeued passes it every time): its dataset at `out`, no kept
    # run beside it, is the result, compared as a kept run is (`_finished_dataset`)
    finished = resume and _run_finished(out)
    out = check_out([ds.root], out, overwrite or finished, [LABEL_SOURCE], "`dataset label`", "labelled")
    with dataset_lock(out, "out", "`dataset label`"):  # OUT and OUT.partial: one run at a time
        partial = _kept_run(ds, out, resume and not finished, overwrite)
        columns = ds.episode_columns()  # each episode's own meta/episodes columns, carried with it (read, checked here)

        features = {k: v for k, v in ds.features.items() if k not in AUTO_FEATURES}
        if action_key in features:
            logger.info("the labels replace the dataset's %r feature", action_key)
        features[action_key] = {"dtype": "float32", "shape": [emb.action_dim], "names": list(emb.columns)}
        for name, why in ds.unread_features.items():
            logger.warning("%r is not copied (not read from the dataset: %s)", name, why)

        source_provenance = dict(ds.provenance or {})
        provenance = {
            "source": LABEL_SOURCE, "dataset": dataset_source(ds.root), "embodiment": emb.key,
            "columns": list(emb.columns), "units": list(emb.units), "action_key": action_key, "seed": seed,
            # None: every episode (a long list in `dataset info` otherwise); episode i was sampled with `episode_seed`
            "episodes": None if episodes is None else chosen,
            "batch_size": batch_size, "resample": bool(resample), "state_keys": keys or None,
            "last_frame": "repeats the row before it",
            "dataset_provenance": own_provenance(ds),
            **source_terms([ds]),  # its license and citations, for the card
            # what a resumed run compares besides the settings: the source's and the checkpoint's files
            # (`_files_digest`, `models.checkpoint_files`: the same folder relabelled or retrained is another),
            # the videos' codec
            "dataset_files": _files_digest(ds.root / "meta"), "checkpoint_files": _checkpoint_files(checkpoint),
            "video_codec": video_codec, **run_record(command),  # not compared by a resume (warned of)
        }
        if isinstance(source_provenance.get("seeds"), list) and "task" in source_provenance:
            # a sim recording's scenes stay listed where `fileio.recorded_seeds` reads them: a checkpoint trained on the
            # labels is still not evaluated on its training scenes unawares
            seeds = source_provenance["seeds"]
            provenance.update(task=source_provenance["task"],
                              seeds=[seeds[i] for i in chosen] if len(seeds) == ds.num_episodes else seeds)
        if finished:
            return _finished_dataset(out, provenance, checkpoint, embodiment, load_options, chosen, frames_of)
        previous = None
        if resume:  # what the run kept, checked before the weights load
            previous = LeRobotDataset.open(partial)
            _refuse_changes(partial, previous, provenance, chosen, frames_of)
            warn_software_changed(partial, previous.provenance or {}, "labelled")
        # made before the weights load, so what it refuses (the codec, a frame size the codec cannot encode) is said
        # first; it writes to `partial`, published at `out` once every episode is labelled (`_label`)
        writer = LeRobotDatasetWriter(partial, emb.fps if resample else ds.fps, features, ds.robot_type,
                                      video_codec=video_codec, overwrite=True, provenance=provenance)
        try:
            policy = checkpoint if isinstance(checkpoint, Policy) else Policy.from_pretrained(checkpoint, embodiment,
                                                                                              **load_options)
            metadata = policy.metadata()
            writer.provenance.update(_model_settings(policy.source, policy.chunk_size, policy.resolution_tier,
                                                     policy.sampling, policy.engine.device, policy.engine.dtype,
                                                     policy.center_crop),
                                     worldpolicy_version=metadata["worldpolicy_version"])
            if previous is not None:  # what only the loaded policy says (its sampling, device, dtype)
                _refuse_changes(partial, previous, writer.provenance, chosen, frames_of)
        except BaseException:
            writer.abort()
            raise
        return _label(ds, policy, writer, out, previous, chosen, frames_of, cameras, keys, action_key, seed, batch_size,
                      columns, progress)


def _model_settings(source: str | Path | None, chunk_size: int, resolution_tier: int, sampling: Any, device: Any,
                    dtype: Any, center_crop: float | None) -> dict[str, Any]:
    """What a label run records of the checkpoint and how it samples: of the loaded `Policy`, or, for a finished run a
    resume compares, of what `Policy.check_pretrained` resolves before any weights load. The checkpoint as a saved
    setting names it (`shipped`, not this install's folder: the record resolves on another machine); the device's
    kind, not which GPU; the frames' centre crop (`Policy.center_crop`)."""
    import torch

    return {"checkpoint": str(portable_checkpoint(source)) if source else "a Policy built in code",
            "chunk_size": int(chunk_size), "resolution_tier": int(resolution_tier), "sampling": asdict(sampling),
            "device": torch.device(device).type, "dtype": str(dtype).removeprefix("torch."),
            "center_crop": center_crop}


def _run_finished(out: str | Path) -> bool:
    """Whether the label run into `out` finished: a dataset there and no episodes kept beside it (`partial_folder`)."""
    return (Path(out).expanduser() / INFO_PATH).is_file() and not (partial_folder(out) / INFO_PATH).is_file()


def _finished_dataset(out: Path, provenance: dict[str, Any], checkpoint: Any, embodiment: Any,
                      load_options: dict[str, Any], chosen: list[int],
                      frames_of: dict[int, list[int]]) -> LeRobotDataset:
    """`resume=True` once the run into `out` finished: its dataset, returned as it is, once its record matches the
    settings `provenance` and the checkpoint's sampling, chunk, device and dtype (`Policy.check_pretrained`'s: no
    weights load for a run that labels nothing), each one that differs refused as a kept run's are."""
    from ..policy import Policy, resolved_center_crop

    if isinstance(checkpoint, Policy):
        model = _model_settings(checkpoint.source, checkpoint.chunk_size, checkpoint.resolution_tier,
                                checkpoint.sampling, checkpoint.engine.device, checkpoint.engine.dtype,
                                checkpoint.center_crop)
    else:
        emb, sampling, device, dtype = Policy.check_pretrained(checkpoint, embodiment, **load_options)
        source = resolve_checkpoint(checkpoint)  # as `Policy.from_pretrained` names it
        model = _model_settings(source, load_options.get("chunk_size") or emb.chunk_size,
                                load_options.get("resolution_tier") or emb.resolution_tier, sampling, device, dtype,
                                resolved_center_crop(source, load_options.get("center_crop")))
    done = LeRobotDataset.open(out)
    _refuse_changes(out, done, {**provenance, **model}, chosen, frames_of)
    logger.info("resume: %s already holds the %d episodes this run labels; nothing to label", out, done.num_episodes)
    return done


def _kept_run(ds: LeRobotDataset, out: Path, resume: bool, overwrite: bool) -> Path:
    """The folder a label run into `out` keeps its labelled episodes in (`partial_folder`), checked: for `resume`, the
    dataset an interrupted label run kept there; else none there, or `overwrite` (labelling anew replaces it)."""
    partial = partial_folder(out)
    check_out([ds.root], partial, True, [LABEL_SOURCE], "`dataset label`", "labelled")  # a label run's, or none
    kept = (partial / INFO_PATH).is_file()
    if resume and not kept:
        raise FileNotFoundError(f"resume: {str(partial)!r} holds no labelled episodes to continue (a label run into "
                                f"out={str(out)!r} keeps them there when it is interrupted or fails); leave resume out "
                                "to label anew")
    if kept and not (resume or overwrite):
        n = LeRobotDataset.open(partial).num_episodes
        raise FileExistsError(f"out: an interrupted label run into {str(out)!r} kept {n} labelled episodes in "
                              f"{str(partial)!r}; pass resume=True to continue it, or overwrite=True to label anew "
                              "(replacing them)")
    return partial


def _refuse_changes(partial: Path, previous: LeRobotDataset, provenance: dict[str, Any], chosen: list[int],
                    frames_of: dict[int, list[int]]) -> None:
    """Refuse to continue the run that kept `previous` (at `partial`) with settings `provenance`: each one that
    differs (`UNCOMPARED` aside) is named; then episodes that are not the first of `chosen` (their lengths)."""
    stored = previous.provenance or {}
    try:
        refuse_changed_settings(partial, stored, provenance, "labelled", "Pass the settings it was labelled with to "
                                "continue it, or label anew with overwrite=True instead of resume=True",
                                ignore=UNCOMPARED)
    except ValueError as exc:
        raise ValueError(f"resume: {exc}") from None
    lengths = [len(frames_of[i]) for i in chosen[:previous.num_episodes]]
    if previous.num_episodes > len(chosen) or list(previous.episode_lengths) != lengths:
        raise ValueError(f"resume: the {previous.num_episodes} episodes in {str(partial)!r} are not the first of the "
                         f"{len(chosen)} episodes to label (their lengths differ); label anew with overwrite=True "
                         "instead of resume=True")


def _checkpoint_files(checkpoint: Any) -> str | None:
    """A checkpoint folder's files' digest (`models.checkpoint_files`), known before its weights load; None for
    one that is no folder here, or a Policy built in code."""
    from ..models import checkpoint_files
    from ..policy import Policy

    source = checkpoint.source if isinstance(checkpoint, Policy) else resolve_checkpoint(checkpoint)
    return checkpoint_files(source)["files"] if source else None


def _files_digest(folder: Path) -> str:
    """A digest of the names and contents of the files under `folder` (a dataset's meta/: its episodes, lengths,
    tasks, stats): the same dataset wherever it lies, another once it is changed."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _label(ds: LeRobotDataset, policy: Any, writer: LeRobotDatasetWriter, out: Path, previous: LeRobotDataset | None,
           chosen: list[int], frames_of: dict[int, list[int]], cameras: dict[str, str], state_keys: list[str],
           action_key: str, seed: int, batch_size: int, columns: pa.Table, progress: bool) -> LeRobotDataset:
    """Copy the episodes of the run `previous` (a resumed one's), label and add each other episode, then publish at
    `out`. Ctrl-C or an error keeps the episodes added (in `writer.root`, `partial_folder`) once a new one is; they
    are also kept so as the run goes (`KeepSchedule`: every 10 minutes), so a kill loses only those labelled since."""
    from ..logcapture import progress_bar

    emb = policy.embodiment
    started = time.perf_counter()
    resumed = 0 if previous is None else previous.num_episodes
    adding = False  # an episode is being added to the writer (it may hold part of it): then nothing can be kept
    keeps, base = KeepSchedule(), resumed  # base: the episodes of `previous` (resumed, or the last keep) in the writer
    try:
        if previous is not None:
            adding = True
            copy_episodes(writer, [previous], [(0, i) for i in range(resumed)], [previous.episode_columns()],
                          previous.episode_success is not None)
            adding = False
        left = chosen[resumed:]
        windows = sum(math.ceil((len(frames_of[i]) - 1) / policy.chunk_size) for i in left)
        with ds.reading_in_order(), progress_bar(total=windows, desc=f"labelling {len(left)} episodes", unit="window",
                                                 disable=not progress) as bar:
            for i in left:
                rows = frames_of[i]
                ep = ds.episode(i, videos=False)  # the columns: the videos are read a segment at a time
                frames = {k: v[rows] for k, v in ep.frames.items()}
                state = (np.concatenate([frames[k].reshape(len(rows), -1) for k in state_keys], axis=1)
                         if emb.state_history else None)
                labels = _episode_labels(policy, ds, i, rows, cameras, caption_variants(ep.task)[0], state,
                                         episode_seed(seed, i), batch_size, bar)
                frames[action_key] = np.concatenate([labels, labels[-1:]]).astype(np.float32)
                # an episode half added could not be kept: Ctrl-C waits for its videos to be written
                with sigint_deferred(f"writing episode {i}'s videos, then keeping the episodes labelled"):
                    adding = True
                    videos = writer.stream_videos(len(rows))
                    for start in range(0, len(rows), BLOCK_FRAMES):  # a block of frames held at a time
                        block = rows[start:start + BLOCK_FRAMES]
                        videos.append({key: _frames(ds, i, key, block) for key in ds.video_keys})
                    writer.add_episode(frames, videos, [ep.frame_tasks[r] for r in rows], success=ep.success,
                                       fields=episode_row(columns, i))
                    adding = False
                if writer.num_episodes < len(chosen) and keeps.due():  # a kill loses only the episodes since
                    with sigint_deferred():
                        adding = True  # a failed keep keeps nothing more
                        try:
                            keeps.keep(writer)
                        finally:  # one failing after its publish (as it went on) kept them: said so after the error
                            if writer.published is not None and writer.published.num_episodes > base:
                                base, adding = writer.published.num_episodes, False
                        logger.info("kept %d labelled episodes in %s", base, writer.root)
    except KeyboardInterrupt as stop:
        with sigint_held():  # a second Ctrl-C must not leave the staged episodes behind
            kept = _keep_labelled(writer, base, adding)
        raise LabelInterrupted(out, writer.root, len(chosen), base if kept is None else kept, resumed,
                               stop_signal(stop)) from None
    except BaseException:
        # an error (the GPU out of memory, a node lost, the disk full) keeps the episodes labelled, as Ctrl-C does:
        # they may be hours of work
        labelled_new = writer.num_episodes - base
        try:
            with sigint_held():
                kept = _keep_labelled(writer, base, adding)
        except OSError as exc:  # the disk still full
            writer.abort()
            kept = None
            logger.warning("the episodes labelled before the error could not be kept either: %s", exc)
        if kept is None and adding and labelled_new:  # else said above, or nothing labelled to lose
            logger.warning("the %d episodes labelled before the error could not be kept: it came while an episode's "
                           "videos were written, and a dataset's video files cannot hold half an episode%s",
                           labelled_new, f" ({writer.root} is as it was)" if base else "")
        kept = kept if kept is not None or base == resumed else base  # else the last keep's
        if kept is not None:
            logger.warning("%d of %d episodes labelled before the error are kept in %s (a complete dataset); a rerun "
                           "with resume (--resume) labels the other %d", kept, len(chosen), writer.root,
                           len(chosen) - kept)
        raise
    labelled = publish(writer, out)
    logger.info("labelled %d episodes in %.1f s into %s", len(chosen) - resumed, time.perf_counter() - started, out)
    return labelled


def publish(writer: LeRobotDatasetWriter, out: Path) -> LeRobotDataset:
    """Finalise the dataset of every episode labelled (at `partial_folder`: a kill before the rename leaves it there,
    whole, to resume) and give it `out`'s name (an earlier dataset's), its card naming it so; returned opened.
    What appeared at `out` while labelling, other than a label run's dataset, is refused, not replaced (as the writer
    refuses what appears at its root), the episodes staying at `partial_folder`."""
    with sigint_held():  # every episode is labelled: a late Ctrl-C must not lose them
        labelled = writer.finalize()
        write_bytes_atomic(labelled.root / CARD_FILE, dataset_card(labelled, out.name))
        try:
            check_out([], out, True, [LABEL_SOURCE], "`dataset label`", "labelled")
        except (FileExistsError, ValueError) as exc:
            raise FileExistsError(f"{exc}; it appeared while labelling: every episode labelled is kept in "
                                  f"{str(labelled.root)!r} (a complete dataset), to publish with resume=True once "
                                  "out is free") from None
        replace_folder(labelled.root, out)
    return LeRobotDataset.open(out)


def _keep_labelled(writer: LeRobotDatasetWriter, resumed: int, adding: bool) -> int | None:
    """After Ctrl-C or an error: publish the episodes added (at `writer.root`, `partial_folder`) and say how many,
    once one was labelled beyond the `resumed` copied first and none is half added (`adding`); else discard them
    (None), the run kept there as it was."""
    if adding or writer.num_episodes <= resumed:
        writer.abort()
        return None
    return writer.finalize().num_episodes


def _episode_labels(policy: Any, ds: LeRobotDataset, i: int, rows: list[int], cameras: dict[str, str], prompt: str,
                    state: np.ndarray | None, seed: int, batch_size: int, bar: Any) -> np.ndarray:
    """A row per transition between the frames `rows` of episode `i`: `infer_actions(whole_clip=True)` on segments
    of `SEGMENT_BATCHES` batches of windows, each starting at the previous one's last frame. The windows, the batches
    they run in and their one seed are the whole clip's (a window's state is the row at its first frame either way),
    so the rows are too. Each segment's frames of every camera are decoded (`LeRobotDataset.camera_frames`, on from the
    segment before it: `_label` reads in order) and labelled, so what is held at once is a segment's frames, not the
    episode's; `_label` decodes them again, a block at a time, to write the episode's videos once it is labelled
    (decoding is cheap beside the model, and no episode is half written when labelling stops)."""
    length = len(rows)
    step = SEGMENT_BATCHES * batch_size * policy.chunk_size  # frames a segment explains
    labels = []
    for start in range(0, length - 1, step):
        stop = min(start + step + 1, length)
        segment = {camera: _frames(ds, i, key, rows[start:stop]) for camera, key in cameras.items()}
        result = policy.infer_actions(segment, prompt, whole_clip=True, batch_size=batch_size, seed=seed,
                                      progress=False, state=None if state is None else state[start:stop])
        labels.append(result.actions)
        bar.update(math.ceil((stop - start - 1) / policy.chunk_size))  # the one bar: over every episode's windows
    return np.concatenate(labels)


def _frames(ds: LeRobotDataset, i: int, key: str, rows: list[int]) -> np.ndarray:
    """Frames `rows` (ascending, repeats allowed: a resampled episode's) of video `key` of episode `i`, decoding only
    the span they lie in."""
    first, end = rows[0], rows[-1] + 1
    span = ds.camera_frames(i, key, first, end)
    return span if rows == list(range(first, end)) else span[np.asarray(rows) - first]


def checked_policy_embodiment(checkpoint: Any, embodiment: Any, load_options: dict[str, Any]) -> Embodiment:
    """The embodiment a `checkpoint` (a path as `load_policy` takes it, or a loaded `Policy`) will run, checked without
    loading weights (labelling, an open-loop evaluation: `data.openloop`). A loaded Policy fixes its embodiment and
    load options: giving them too is refused, as they would do nothing. (`policy.checkpoint_embodiment` is another
    thing: which embodiment a checkpoint folder runs by default, nothing checked.)"""
    from ..policy import Policy

    if isinstance(checkpoint, Policy):
        if embodiment is not None or load_options:
            given = ["embodiment"] * (embodiment is not None) + list(load_options)
            raise ValueError(f"checkpoint is a loaded Policy, which fixes {', '.join(given)}: pass them to "
                             "load_policy, or pass the checkpoint's path here")
        return checkpoint.embodiment
    return Policy.check_pretrained(checkpoint, embodiment, **load_options)[0]


def check_state_keys(ds: LeRobotDataset, state_keys: Sequence[str] | None, emb: Embodiment,
                     chosen: list[int]) -> list[str]:
    """The state features a state-conditioned embodiment reads from the dataset (their widths adding up to its
    action_dim, finite in the chosen episodes), for labelling and for an open-loop evaluation (`data.openloop`); []
    for one that reads none (`state_keys` given to it are refused: they would do nothing)."""
    if not emb.state_history:
        if state_keys is not None:
            raise ValueError(f"state_keys={list(state_keys)!r}: embodiment {emb.key!r} does not condition on the "
                             "robot state; leave state_keys out")
        return []
    keys = named_state_keys(ds, state_keys)
    check_state_width(ds, keys, emb)
    for i in chosen:  # the chosen episodes' state columns only (no frames decoded)
        bad = first_non_finite(ds.episode(i, videos=False).frames, keys)
        if bad is not None:
            raise ValueError(f"state_keys: {bad.key!r} holds NaN or inf in episode {i} (first at frame {bad.frame}), "
                             "which no policy can take; `worldpolicy dataset check` lists such frames")
    return keys


def _check_action_key(ds: LeRobotDataset, action_key: Any, state_keys: list[str]) -> None:
    if not isinstance(action_key, str):
        raise ValueError(f"action_key={action_key!r}; accepted: a feature name such as 'action'")
    try:
        check_feature(action_key, {"dtype": "float32", "shape": [1]}, "action_key")
    except ValueError:
        raise ValueError(f"action_key={action_key!r}; accepted: a non-empty feature name without '/'") from None
    taken = ("a video" if action_key in ds.video_keys else "the state read" if action_key in state_keys
             else "a column LeRobot fills in" if action_key in AUTO_FEATURES else None)
    if taken:
        raise ValueError(f"action_key={action_key!r} is {taken} of the dataset; choose another name (default: action)")
