"""Curate datasets: keep some episodes of one (`select_episodes`: a hand-picked list, a policy recording's successes),
with features renamed or left out, join several recorded alike into one (`merge_datasets`) or deal one's episodes out
into disjoint ones (`split_dataset`: train and validation sets), each as a new LeRobot v3 dataset.

    from worldpolicy.data import merge_datasets, select_episodes, split_dataset
    select_episodes("data/rollouts", "data/solved", success="only").dataset.num_episodes
    merge_datasets(["data/day1", "data/day2"], "data/both").origins[-1]   # (Path("data/day2"), its last episode)
    split_dataset("data/demos", "data/demos_split", {"train": 0.9, "val": 0.1})["val"].dataset.num_episodes

Episodes are read with `LeRobotDataset` and written again with `LeRobotDatasetWriter`, each video copied as its
encoded packets where they decode on their own, else decoded and encoded a block of frames at a time (renumbered from
0; tasks, per-frame columns, videos, the `success` flag and other meta/episodes columns kept; stats recomputed over
what was kept); the sources are only read.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import brief_list, is_integer
from ..fileio import dataset_lock
from ..hub import dataset_source
from ..processing.video import CODECS
from .card import source_terms
from .checks import check_episodes, check_out
from .layout import AUTO_FEATURES, FEATURE_NAME_RULE, SUCCESS_FILTERS, SUCCESS_WRITERS, feature_name_ok, image_hw
from .lerobot import EpisodeVideoStream, LeRobotDataset, LeRobotDatasetWriter, episode_row, video_codec

if TYPE_CHECKING:  # annotations only: pyarrow comes with the `train` extra (lerobot.py imports it)
    import pyarrow as pa

__all__ = ["MERGE_SOURCE", "SELECT_SOURCE", "SPLIT_SOURCE", "CopiedVideos", "EditResult", "copy_episodes",
           "merge_datasets", "select_episodes", "sources_codec", "split_dataset", "write_copies"]

logger = logging.getLogger(__name__)

SELECT_SOURCE = "worldpolicy dataset select"  # `provenance["source"]` of a selection: what --overwrite may replace
MERGE_SOURCE = "worldpolicy dataset merge"
SPLIT_SOURCE = "worldpolicy dataset split"
LOSSLESS = "libx264rgb"  # the codec when the sources' own is not one the writer has, or they differ
# frames of each video decoded and encoded at a time: what memory holds of an episode's videos (a 720p camera's block is
# about 180 MB); blocks read in order decode on from one another (`LeRobotDataset.reading_in_order`)
BLOCK_FRAMES = 64


@dataclass(frozen=True)
class EditResult:
    """A dataset `select_episodes` or `merge_datasets` wrote: new episode i is episode `origins[i][1]` of the dataset
    at `origins[i][0]`; its videos are in `video_codec`, `videos` says how many were copied as they are."""

    dataset: LeRobotDataset
    origins: tuple[tuple[Path, int], ...]
    video_codec: str
    videos: CopiedVideos
    wall_s: float


def select_episodes(
    dataset: str | Path | LeRobotDataset,
    out: str | Path,
    episodes: Sequence[int] | None = None,
    *,
    drop_episodes: Sequence[int] | None = None,
    success: str | None = None,
    rename_features: Mapping[str, str] | None = None,
    drop_features: Sequence[str] | None = None,
    video_codec: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> EditResult:
    """Write the chosen episodes of `dataset` as a new dataset at `out`, in their order there, numbered from 0.

    `episodes` (default: all) less `drop_episodes` (indexes, negative from the end), and of those with `success`
    "only" the ones meta/episodes' `success` column marks as succeeded, "failures" the others. Videos are in
    `video_codec` (default: the source's own where the writer has it, else lossless libx264rgb): copied as their
    encoded packets where that is the source's and they decode on their own, else decoded and encoded again
    (`copy_episodes`).
    `rename_features` (old name → new) and `drop_features` (names) change which features the new dataset has and
    under what names (`_kept_features`): its parquet columns, info.json, video folders, stats and card follow; so a
    camera named otherwise in another recording can be merged with it.
    meta/worldpolicy_provenance.json names the source, the source index of every kept episode and the features
    renamed and dropped. Everything is checked before an episode is read; `out` as `dataset label` takes it (not the
    source, an existing dataset only an earlier select or merge made, with `overwrite`), and it appears only when
    complete."""
    ds = dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    keys = _kept_features(ds, rename_features, drop_features)
    chosen = check_episodes(ds, episodes)
    if drop_episodes is not None:
        dropped = set(check_episodes(ds, drop_episodes, "drop_episodes"))
        chosen = [i for i in chosen if i not in dropped]
    if success is not None:
        if success not in SUCCESS_FILTERS:
            raise ValueError(f"success={success!r}; accepted: {', '.join(map(repr, SUCCESS_FILTERS))} (or None: all)")
        flags = ds.episode_success
        if flags is None:
            raise ValueError(f"success={success!r}: dataset {str(ds.root)!r} does not say which episodes succeeded "
                             f"(no success column in meta/episodes: {SUCCESS_WRITERS}); leave success out")
        chosen = [i for i in chosen if bool(flags[i]) == (success == "only")]
    if not chosen:
        given = [f"{name}={value!r}" if name == "success" else f"{name}={brief_list(value)}" for name, value in
                 (("episodes", episodes), ("drop_episodes", drop_episodes), ("success", success)) if value is not None]
        raise ValueError(f"{', '.join(given)}: leave no episode of the {ds.num_episodes} in {str(ds.root)!r}; a "
                         "dataset needs at least one: choose others")
    out = check_out([ds.root], out, overwrite, [SELECT_SOURCE, MERGE_SOURCE], "`dataset select`", "selected from")
    edited = {"renamed_features": dict(rename_features)} if rename_features else {}
    if drop_features:
        edited["dropped_features"] = list(drop_features)
    provenance = {"source": SELECT_SOURCE, **_taken_from(ds, chosen), **edited,
                  "dataset_provenance": own_provenance(ds)}
    with dataset_lock(out, "out", "`dataset select`"):
        return write_copies([ds], [(0, i) for i in chosen], out, video_codec, True, [ds.episode_columns()],
                            overwrite, provenance, progress, keys)


def _kept_features(ds: LeRobotDataset, rename: Mapping[str, str] | None, drop: Sequence[str] | None
                  ) -> dict[str, str] | None:
    """Per feature of `ds` that `select_episodes` keeps, the name it is written under (None: every one as it is), its
    `rename_features` and `drop_features` checked: features of `ds` (not the index columns every LeRobot row has,
    which the writer numbers anew), each named once, new names that are feature names and no other kept feature's,
    and at least one feature left (a dataset without cameras is a LeRobot dataset; one of index columns alone is
    not)."""
    if rename is None and drop is None:
        return None
    if not isinstance(rename, Mapping | None):
        raise ValueError(f"rename_features={rename!r:.80}: give a mapping of old feature name -> new name")
    if isinstance(drop, str) or not isinstance(drop, Sequence | None):
        raise ValueError(f"drop_features={drop!r:.80}: give a list of feature names")
    rename, drop = dict(rename or {}), list(drop or [])
    own = [k for k in ds.features if k not in AUTO_FEATURES]
    accepted = f"accepted: the features of {str(ds.root)!r}: {', '.join(map(repr, own))}"
    for param, given in (("rename_features", list(rename)), ("drop_features", drop)):
        for key in given:
            if key in AUTO_FEATURES:
                raise ValueError(f"{param}: {key!r} is one of the index columns every LeRobot row has "
                                 f"({', '.join(AUTO_FEATURES)}), which the writer numbers anew: it is neither renamed "
                                 f"nor dropped; {accepted}")
            if key not in own:
                raise ValueError(f"{param}: {key!r} is not a feature of the dataset; {accepted}"
                                 f"{ds.unknown_note([key], own)}")
    twice = sorted({k for k in drop if drop.count(k) > 1})
    both = [k for k in rename if k in drop]
    if twice or both:
        raise ValueError(f"drop_features: {', '.join(map(repr, twice or both))} "
                         + ("given more than once; name each feature once" if twice else
                            "also renamed (rename_features): rename it or drop it"))
    names = {k: rename.get(k, k) for k in own if k not in drop}
    for old, new in rename.items():
        other = next((k for k, n in names.items() if n == new and k != old), None)
        problem = ("it is its name already" if new == old else FEATURE_NAME_RULE if not feature_name_ok(new)
                   else f"{new!r} is an index column every LeRobot row has ({', '.join(AUTO_FEATURES)})"
                   if new in AUTO_FEATURES else None if other is None
                   else f"{new!r} is another feature's name, kept: drop that one (drop_features=...) or rename it too"
                   if other == new else f"{new!r} is the new name of {other!r} too")
        if problem is not None:
            raise ValueError(f"rename_features: {old!r} to {new!r}: {problem}")
    if not names:
        raise ValueError(f"drop_features={drop!r}: leaves no feature of {str(ds.root)!r} (a dataset without cameras is "
                         "one, a dataset of index columns alone is not): keep one")
    return names


def _taken_from(ds: LeRobotDataset, chosen: list[int]) -> dict[str, Any]:
    """The provenance of a dataset made of the `chosen` episodes of `ds` (`dataset select`, each of `dataset split`'s):
    where they came from, and their sim seeds (`_recorded_seeds`)."""
    return {"dataset": dataset_source(ds.root), "episodes": chosen, **_recorded_seeds([ds], [(0, i) for i in chosen]),
            **source_terms([ds])}  # its license and citations, for the card


def own_provenance(ds: LeRobotDataset) -> dict[str, Any] | None:
    """A source's provenance as the one made from it records it (`dataset_provenance`): its seeds are the new
    dataset's own, of the episodes it kept (`_recorded_seeds`)."""
    return {k: v for k, v in (ds.provenance or {}).items() if k != "seeds"} or None


def split_dataset(
    dataset: str | Path | LeRobotDataset,
    out: str | Path,
    splits: Mapping[str, float],
    *,
    seed: int = 0,
    video_codec: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, EditResult]:
    """Deal the episodes of `dataset` out into disjoint new datasets, `out`/NAME for each NAME of `splits`, holding
    that fraction of them (`{"train": 0.9, "val": 0.1}`), each written as `select_episodes` writes one.

    Which episodes go where is drawn with `seed` (the same seed, the same splits), not taken in index order as
    LeRobot's `split_dataset` does: a recording's episodes are often in the order of its days, operators or scenes.
    Each split gets floor(fraction · episodes), the episodes left over one each to the largest fractional parts; its
    episodes keep their order. Its provenance names the source, its episodes there, the splits and the seed. The
    fractions (each above 0, summing to 1, none leaving a split empty) and every `out`/NAME are checked before an
    episode is read; each split appears when complete."""
    ds = dataset if isinstance(dataset, LeRobotDataset) else LeRobotDataset.open(dataset)
    counts = _split_counts(splits, ds.num_episodes)
    if not is_integer(seed):
        raise ValueError(f"seed={seed!r}: give an int")
    seed = int(seed)  # numpy's as the int it is: the provenance records it
    outs = {name: check_out([ds.root], Path(out).expanduser() / name, overwrite, [SPLIT_SOURCE], "`dataset split`",
                            "split") for name in counts}
    order = np.random.default_rng(seed).permutation(ds.num_episodes).tolist()
    ends = np.cumsum([0, *counts.values()]).tolist()
    results = {}
    with contextlib.ExitStack() as held:  # every split held before the first is written
        for path in outs.values():
            held.enter_context(dataset_lock(path, "out", "`dataset split`"))
        for name, start, stop in zip(counts, ends, ends[1:], strict=False):  # ends: one more than the splits
            chosen = sorted(order[start:stop])
            provenance = {"source": SPLIT_SOURCE, "split": name, "splits": dict(splits), "seed": seed,
                          **_taken_from(ds, chosen), "dataset_provenance": own_provenance(ds)}
            results[name] = write_copies([ds], [(0, i) for i in chosen], outs[name], video_codec, True,
                                         [ds.episode_columns()], overwrite, provenance, progress)
    return results


def _split_counts(splits: Mapping[str, float], num_episodes: int) -> dict[str, int]:
    """Episodes per split of `num_episodes` (`split_dataset`'s `splits` checked): the largest remainders method."""
    if not isinstance(splits, Mapping) or len(splits) < 2:
        raise ValueError(f"splits={splits!r:.80}: give two or more, name -> fraction of the episodes, e.g. "
                         "{'train': 0.9, 'val': 0.1} (some episodes as one new dataset: `dataset select`, "
                         "select_episodes)")
    for name, fraction in splits.items():
        if not feature_name_ok(name):  # each split is a folder of `out`, named as a video feature's folder is
            raise ValueError(f"splits: {name!r} is no folder name; accepted: non-empty names without '/', not '.' or "
                             "'..'")
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
            raise ValueError(f"splits: {name!r} is given {fraction!r}; accepted: a fraction of the episodes in (0, 1]")
    total = math.fsum(splits.values())
    if not math.isclose(total, 1, abs_tol=1e-6):
        raise ValueError(f"splits={dict(splits)!r}: the fractions sum to {total:g}; accepted: fractions that sum to 1")
    raw = {name: fraction * num_episodes for name, fraction in splits.items()}
    counts = {name: math.floor(share) for name, share in raw.items()}
    left = num_episodes - sum(counts.values())
    for name in sorted(raw, key=lambda n: counts[n] - raw[n])[:left]:  # stable: ties go to the split named first
        counts[name] += 1
    empty = [name for name, count in counts.items() if count == 0]
    if empty:
        shares = ", ".join(f"{name!r} {splits[name]:g} × {num_episodes} = {raw[name]:g}" for name in empty)
        raise ValueError(f"splits={dict(splits)!r}: {', '.join(map(repr, empty))} would get no episode of the "
                         f"{num_episodes} ({shares}, rounded down); accepted: fractions of at least "
                         f"{1 / num_episodes:.3g} each, or a dataset of more episodes")
    return counts


def merge_datasets(
    datasets: Sequence[str | Path | LeRobotDataset],
    out: str | Path,
    *,
    drop_success: bool = False,
    drop_columns: bool = False,
    video_codec: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> EditResult:
    """Write every episode of `datasets`, one after another, as one new dataset at `out`.

    They must fit together, checked before anything is written: the same fps and features (names, dtypes, shapes,
    column names, video sizes). Their tasks go into one task table (the same text, one index). The `success` column
    is kept when every dataset has one; when only some do the merge is refused, or with `drop_success` written for
    none. So are other meta/episodes columns: kept where every dataset has one of the same type, else refused, or
    with `drop_columns` only those kept. Videos, provenance (each source and its episode count) and `out` as
    `select_episodes` has them."""
    if isinstance(datasets, (str, Path, LeRobotDataset)) or len(datasets) < 2:
        raise ValueError(f"datasets={datasets!r}: give two or more datasets to merge (some episodes of one as a new "
                         "dataset: `dataset select`, select_episodes)")
    sources = [d if isinstance(d, LeRobotDataset) else LeRobotDataset.open(d) for d in datasets]
    roots = [Path(os.path.abspath(ds.root)).resolve() for ds in sources]
    for j, root in enumerate(roots):
        if root in roots[:j]:
            raise ValueError(f"datasets[{j}] ({str(sources[j].root)!r}) is datasets[{roots.index(root)}] again; give "
                             "each dataset once")
    for j, ds in enumerate(sources[1:], 1):
        _check_fits(sources[0], ds, j)
    has = [ds.episode_success is not None for ds in sources]
    if any(has) and not all(has) and not drop_success:
        lacking = [f"datasets[{j}] ({str(ds.root)!r})" for j, ds in enumerate(sources) if not has[j]]
        raise ValueError(f"{', '.join(lacking)} {'does' if len(lacking) == 1 else 'do'} not say which episodes "
                         "succeeded and the others do (the "
                         "success column of meta/episodes); pass drop_success=True to merge them without it")
    columns = [ds.episode_columns() for ds in sources]
    kinds = [dict(zip(table.column_names, table.schema.types, strict=True)) for table in columns]
    unshared = [name for name in dict.fromkeys(n for k in kinds for n in k)
                if not all(k.get(name) == kinds[0].get(name) for k in kinds)]
    if unshared and not drop_columns:
        name, others = unshared[0], unshared[1:]
        how = [f"datasets[{j}] ({str(ds.root)!r}) "
               + (f"has it as {kinds[j][name]}" if name in kinds[j] else "lacks it") for j, ds in enumerate(sources)]
        raise ValueError(f"meta/episodes column {name!r} is not in every dataset alike: {', '.join(how)}"
                         + (f" (nor {'is' if len(others) == 1 else 'are'} {', '.join(map(repr, others))})" if others
                            else "") + "; pass drop_columns=True to merge them without the columns they do not share")
    columns = [table.drop([name for name in unshared if name in table.column_names]) for table in columns]
    out = check_out([ds.root for ds in sources], out, overwrite, [SELECT_SOURCE, MERGE_SOURCE], "`dataset merge`",
                    "merged")
    if unshared:
        logger.warning("meta/episodes columns %s are not in every dataset alike; dropped (drop_columns=True)",
                       ", ".join(map(repr, unshared)))
    origins = [(k, i) for k, ds in enumerate(sources) for i in range(ds.num_episodes)]
    provenance = {"source": MERGE_SOURCE,
                  "datasets": [{"dataset": dataset_source(ds.root), "episodes": ds.num_episodes} for ds in sources],
                  **_recorded_seeds(sources, origins),
                  "dataset_provenance": [own_provenance(ds) for ds in sources],
                  **source_terms(sources)}  # their license (or each one's, where they differ) and citations
    with dataset_lock(out, "out", "`dataset merge`"):
        return write_copies(sources, origins, out, video_codec, not drop_success, columns, overwrite, provenance,
                            progress)


def _check_fits(first: LeRobotDataset, ds: LeRobotDataset, j: int) -> None:
    """Refuse `ds` (datasets[j]) unless its episodes can be written beside `first`'s (datasets[0]): what differs."""
    def said(problem: str) -> ValueError:
        return ValueError(f"datasets[{j}] ({str(ds.root)!r}) does not fit datasets[0] ({str(first.root)!r}): "
                          f"{problem}; merge datasets recorded alike")

    if first.fps != ds.fps:
        raise said(f"it is at {ds.fps:g} fps, datasets[0] at {first.fps:g}")
    mine, theirs = _written_features(first), _written_features(ds)
    # both ways at once: a feature named otherwise in one (a camera key) is one of each, seen side by side
    unmatched = [f"{only} are in datasets[{a}] and not in datasets[{b}]" for only, a, b in (
        (sorted(set(theirs) - set(mine)), j, 0), (sorted(set(mine) - set(theirs)), 0, j)) if only]
    if unmatched:  # a camera or state named otherwise by another recorder: renamed (or left out) by `dataset select`
        raise ValueError(f"datasets[{j}] ({str(ds.root)!r}) does not fit datasets[0] ({str(first.root)!r}): features "
                         + ", and ".join(unmatched) + "; give them one name first, each as a new dataset: `worldpolicy "
                         "dataset select ROOT --out DIR --rename-feature OLD=NEW` (--drop-feature KEY leaves one out; "
                         "select_episodes' rename_features, drop_features)")
    for key, spec in mine.items():
        other = theirs[key]
        for part in ("dtype", "shape", "names"):
            if spec[part] != other[part]:
                what = "video size (height, width)" if part == "shape" and spec["dtype"] == "video" else part
                raise said(f"feature {key!r} has {what} {other[part]!r}, datasets[0] {spec[part]!r}")


def _written_features(ds: LeRobotDataset) -> dict[str, dict[str, Any]]:
    """`ds`'s features as the writer will write them (an image feature as a video one, of its frame size)."""
    out = {}
    for key, spec in ds.features.items():
        if key in AUTO_FEATURES:
            continue
        if spec["dtype"] in ("video", "image"):
            out[key] = {"dtype": "video", "shape": image_hw(spec), "names": None}
        else:
            out[key] = {"dtype": spec["dtype"], "shape": spec["shape"], "names": spec.get("names")}
    return out


def _recorded_seeds(sources: list[LeRobotDataset], origins: list[tuple[int, int]]) -> dict[str, Any]:
    """The sim task and seeds of the kept episodes, where every source is a `dataset from-sim` recording of one task
    (`fileio.recorded_seeds` reads them): a checkpoint trained on the result is still not evaluated on its training
    scenes unawares. A source whose seeds are not one per episode gives all of them."""
    provs = [ds.provenance or {} for ds in sources]
    tasks = {p.get("task") for p in provs}
    if len(tasks) != 1 or None in tasks or not all(isinstance(p.get("seeds"), list) for p in provs):
        return {}
    seeds: list[Any] = []
    for k, ds in enumerate(sources):
        own = provs[k]["seeds"]
        mine = [i for s, i in origins if s == k]
        seeds.extend([own[i] for i in mine] if len(own) == ds.num_episodes else own if mine else [])
    return {"task": tasks.pop(), "seeds": seeds}


def sources_codec(sources: list[LeRobotDataset], given: str | None) -> str:
    """`given`, else the writer codec the sources' videos were all encoded with (info.json's codec and pixel format),
    else lossless: a frame is not encoded lossy twice over by a codec the user did not choose."""
    if given is not None:
        return given  # checked by the writer, before any episode is read
    found = {_writer_codec(ds.features[key]) for ds in sources for key in ds.video_keys}
    return found.pop() if len(found) == 1 and None not in found else LOSSLESS


def _writer_codec(spec: dict[str, Any]) -> str | None:
    """The writer codec (`CODECS`) a video feature's info.json says its files were encoded with, or None."""
    info = spec.get("info") if isinstance(spec.get("info"), dict) else {}
    return next((name for name, c in CODECS.items()
                 if c.name == video_codec(spec) and c.pix_fmt == info.get("video.pix_fmt")), None)


@dataclass(frozen=True)
class CopiedVideos:
    """What `copy_episodes` did with the episodes' videos: `copied` taken as their encoded packets (the frames bit for
    bit), `encoded` decoded and encoded again, the first of those because of `why`."""

    copied: int
    encoded: int
    why: str | None


def copy_episodes(writer: LeRobotDatasetWriter, sources: Sequence[LeRobotDataset],
                  origins: Iterable[tuple[int, int]], columns: Sequence[pa.Table], keep_success: bool,
                  keys: Mapping[str, str] | None = None) -> CopiedVideos:
    """Add the `origins` episodes (source k, episode i) to `writer`, each with its row of its source's meta/episodes
    `columns` (`episode_columns`, those kept) and its features `keys` names (source name -> the writer's; those it
    leaves out are not copied; None: all, as they are): the one copier of episodes between datasets (select, merge,
    split, a resumed `dataset from-sim`).

    An episode's video is copied as its encoded packets (`LeRobotDataset.encoded_segment` into
    `EpisodeVideoStream.copy`): lossless and without encoding, where the source's codec is the writer's and the
    episode's packets decode on their own (it starts on a keyframe, as `LeRobotDatasetWriter` starts every episode,
    and the next episode of its file too). Any other is decoded and encoded `BLOCK_FRAMES` frames at a time
    (`LeRobotDataset.camera_frames` into `EpisodeVideoStream.append`, as `dataset label` reads and writes them): a
    long episode is never held whole; each block decodes on from where the one before it ended
    (`LeRobotDataset.reading_in_order`). Those are said once, in one warning, at the end."""
    copied, encoded, why = 0, 0, None
    with contextlib.ExitStack() as reading:
        held = None  # the source read in order: a block decodes on where the one before it ended
        for k, i in origins:
            ds = sources[k]
            if k != held:  # one source's files open at a time, not every source's decoders until the end
                reading.close()
                reading.enter_context(ds.reading_in_order())
                held = k
            ep = ds.episode(i, videos=False)  # the columns: the videos are copied, or read a block at a time
            named = keys if keys is not None else {key: key for key in ds.features}
            videos = writer.stream_videos(ep.length)
            again = []
            for key in (key for key in ds.video_keys if key in named):
                refused = _copy_video(ds, i, key, videos, writer.video_codec, named[key])
                if refused is None:
                    copied += 1
                    continue
                again.append(key)
                why = why or f"camera {key!r} of episode {i} of {str(ds.root)!r}: {refused}"
            encoded += len(again)
            for start in range(0, ep.length, BLOCK_FRAMES) if again else ():
                stop = min(start + BLOCK_FRAMES, ep.length)
                videos.append({named[key]: ds.camera_frames(i, key, start, stop) for key in again})
            frames = {named[key]: values for key, values in ep.frames.items() if key in named}
            writer.add_episode(frames, videos, ep.frame_tasks, success=ep.success if keep_success else None,
                               fields=episode_row(columns[k], i))
    if encoded:
        logger.warning("%d of %d episode videos were decoded and encoded again with %s, not copied as they are (the "
                       "first: %s)", encoded, copied + encoded, writer.video_codec, why)
    return CopiedVideos(copied, encoded, why)


def _copy_video(ds: LeRobotDataset, i: int, key: str, videos: EpisodeVideoStream, codec: str, written: str
                ) -> str | None:
    """Copy camera `key` of episode `i` into `videos` (as camera `written`) as its encoded packets, or say why not."""
    if ds.features[key]["dtype"] == "video" and _writer_codec(ds.features[key]) != codec:
        return f"its codec is not the one written ({codec})"
    segment = ds.encoded_segment(i, key)
    if isinstance(segment, str):
        return segment
    info = ds.features[key].get("info")
    with segment:  # the source's encoder settings (info.json's `video.g`, `video.crf`, ...) are the copy's
        return videos.copy(written, segment, info if isinstance(info, dict) else {})


def write_copies(sources: list[LeRobotDataset], origins: list[tuple[int, int]], out: Path, codec: str | None,
                 keep_success: bool, columns: list[pa.Table], overwrite: bool, provenance: dict[str, Any],
                 progress: bool, keys: Mapping[str, str] | None = None) -> EditResult:
    """Read the `origins` episodes and write them at `out`, their features as `keys` names them (`copy_episodes`;
    staged, published when complete: an error or Ctrl-C leaves `out` as it was): select's, merge's, split's and
    `convert.convert_dataset`'s writing, once checked."""
    from ..logcapture import progress_bar
    from ..viz.plots import plural

    first = sources[0]
    for ds in sources:
        for name, why in ds.unread_features.items():
            logger.warning("%r of %s is not copied (not read from the dataset: %s)", name, ds.root, why)
    robot_types = {ds.robot_type for ds in sources}
    if len(robot_types) > 1:
        logger.warning("the datasets' robot_type differ (%s); the result has none", sorted(map(str, robot_types)))
    codec = sources_codec(sources, codec)
    started = time.perf_counter()

    named = keys if keys is not None else {k: k for k in first.features if k not in AUTO_FEATURES}
    features = {named[k]: v for k, v in first.features.items() if k in named}
    with LeRobotDatasetWriter(out, first.fps, features, robot_types.pop() if len(robot_types) == 1 else None,
                              video_codec=codec, overwrite=overwrite, provenance=provenance) as writer:
        with progress_bar(origins, desc=f"writing {plural(len(origins), 'episode')}", unit="ep",
                          disable=not progress) as bar:
            videos = copy_episodes(writer, sources, bar, columns, keep_success, keys)
        written = writer.finalize()
    wall_s = time.perf_counter() - started
    logger.info("wrote %s (%s copied as they are, %d encoded again) in %.1f s into %s", plural(len(origins), "episode"),
                plural(videos.copied, "video"), videos.encoded, wall_s, written.root)
    return EditResult(written, tuple((sources[k].root, i) for k, i in origins), codec, videos, wall_s)
