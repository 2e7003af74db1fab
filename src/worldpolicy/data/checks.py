"""The arguments several dataset commands check alike (`dataset label`, `select`, `merge`, `eval`, `show`): which
episodes (`check_episodes`; each named once, `check_once`, which training's lists share), the folder a new
dataset made from others is written to (`check_out`), the rate a new one is written at (`check_rate`), and a
resumed run's settings against the run it continues (`refuse_changed_settings`: `dataset from-sim --resume`,
`dataset label --resume`; `warn_software_changed`)."""

from __future__ import annotations

import collections
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import brief_list, is_integer, is_real
from ..extras import RUN_RECORD_KEYS, software_changes, software_versions
from ..fileio import file_in_the_way, folder_kind, provenance_document, sweep_scratch_folders
from .layout import INFO_PATH

if TYPE_CHECKING:
    from .lerobot import LeRobotDataset

logger = logging.getLogger(__name__)


def check_episodes(ds: LeRobotDataset, episodes: Sequence[int] | None, param: str = "episodes") -> list[int]:
    """The episodes to read (to label, to evaluate on: `data.openloop`, to keep or drop: `data.edit`), ascending: all,
    or the given indexes (negative from the end), each named once (`check_once`); refused naming `param`."""
    n = ds.num_episodes
    if episodes is None:
        return list(range(n))
    given = [episodes] if isinstance(episodes, (int, np.integer)) else list(episodes)
    bad = [e for e in given if not is_integer(e) or not -n <= e < n]
    if not given or bad:
        raise ValueError(f"{param}={brief_list(given)}: " + (f"{brief_list(bad)} out of range" if bad else "none given")
                         + f"; accepted: episode indexes in 0..{n - 1} (negative from the end)")
    check_once(param, given, n)
    return sorted(int(e) % n for e in given)


def check_once(param: str, given: Sequence[int], num_episodes: int | None = None) -> None:
    """Refuse an episode named twice in `given` (`param`), as every command that takes a list of episodes does
    (`dataset select|label|eval|show --episodes`, `train`'s `data.episodes`): a repeated index is likely a typo
    (`0-5,3` for `0-5,30`), and kept once it would silently train, label or show less than was meant. With
    `num_episodes`, a negative index counts from the end (-1 and n-1 are one episode)."""
    seen = [int(e) % num_episodes if num_episodes else int(e) for e in given]
    twice = sorted(i for i, k in collections.Counter(seen).items() if k > 1)
    if twice:
        # which of the indices typed name each repeated episode, where they differ: [0, -2] of 2 is 0 twice
        forms = {i: list(dict.fromkeys(int(e) for e, k in zip(given, seen) if k == i)) for i in twice}
        aliases = "; ".join(f"{' and '.join(map(str, f))} are episode {i}" for i, f in forms.items() if len(f) > 1)
        raise ValueError(f"{param}={brief_list(given)}: {brief_list(twice)} given more than once"
                         + (f" (a negative index counts from the end{': ' + aliases if aliases else ''})"
                            if any(e < 0 for e in given) else "")
                         + "; name each episode once")


def check_rate(fps: Any) -> float:
    """`fps` given for a dataset being made (`dataset import-hdf5`, `dataset from-videos`, `LeRobotDatasetWriter`) as
    a float, refused naming it where it is not a positive finite number."""
    if not is_real(fps) or fps <= 0:
        raise ValueError(f"fps={fps!r}; accepted: a positive number of frames per second")
    return float(fps)


def check_out(sources: Sequence[Path], out: str | Path, overwrite: bool, made_by: Sequence[str], command: str,
              being: str, source: str = "dataset") -> Path:
    """`out` as the folder of a new dataset made from the datasets at `sources` (`dataset label`, `select`, `merge`):
    not one of them, inside one or holding one, not inside another dataset or checkpoint, and an existing dataset
    there only with `overwrite` and only one whose `provenance["source"]` is in `made_by` (a command's source, e.g.
    "worldpolicy dataset select").
    `being` says what the sources are to the command in its errors ("labelled"), `source` what they are (`dataset
    import-hdf5`'s: an "HDF5 file")."""
    out = Path(out).expanduser()
    dst = Path(os.path.abspath(out)).resolve()
    # what `out` holds, once a dataset a killed replacement left aside is back (`fileio.replace_folder`): else `out`
    # looks missing here and the writer, which puts it back first, replaces it whatever made it
    sweep_scratch_folders(dst, ())
    for root in sources:
        src = Path(os.path.abspath(root)).resolve()
        if dst == src or src in dst.parents or dst in src.parents:
            where = "is" if dst == src else "is inside" if src in dst.parents else "holds"
            raise ValueError(f"out: {str(out)!r} {where} the {source} being {being} ({str(root)!r}); {command} writes "
                             "a new dataset: choose a folder outside it")
    blocking = file_in_the_way(out.parent)  # out itself a file is refused below, as one that is not a dataset
    if blocking is not None:
        raise ValueError(f"out: {str(out)!r} is under {str(blocking)!r}, which is a file; choose a new or empty folder")
    for parent in dst.parents:
        found = folder_kind(parent)
        if found is not None and found[0].writer is None:
            raise ValueError(f"out: {str(out)!r} is inside {str(parent)!r}, which holds {found[0].what} "
                             f"({found[1]}); choose a folder outside it")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        if not (dst / INFO_PATH).is_file():  # what it holds where worldpolicy made it, as other commands' --out say
            found = folder_kind(dst) if dst.is_dir() else None
            held = f"holds {found[0].what} ({found[1]})" if found else "exists and is not a dataset"
            raise FileExistsError(f"out: {str(out)!r} {held}; choose a new or empty folder")
        source = (provenance_document(dst) or {}).get("source")
        makers = " or ".join(f"`{made.removeprefix('worldpolicy ')}`" for made in made_by)
        if source not in made_by:
            raise FileExistsError(f"out: {str(out)!r} holds a dataset not made by {makers}; choose a new or empty "
                                  f"folder (overwrite=True replaces only a dataset {makers} made)")
        if not overwrite:  # named by what made it: `dataset select` may replace what `dataset merge` made
            raise FileExistsError(f"out: {str(out)!r} holds an earlier `{source.removeprefix('worldpolicy ')}` run's "
                                  "dataset; pass overwrite=True to replace it")
    return out


def warn_software_changed(root: Path, stored: dict[str, Any], made: str) -> None:
    """Warn that the run continuing the dataset at `root`, which a run recorded as `stored` (its provenance) `made`,
    runs on other software (`extras.software_changes`: `torch 2.5.1 -> 2.6.0`): not refused (a patch release continues
    a run), said, as its episodes may differ from those made before; the record keeps this run's."""
    changes = software_changes(stored.get("software"), software_versions())
    if changes:
        logger.warning("%s was %s with other software: %s; its episodes so far keep theirs, the record says this "
                       "run's", root, made, "; ".join(changes))


def refuse_changed_settings(root: Path, stored: dict[str, Any], wanted: dict[str, Any], made: str, advice: str,
                            ignore: Sequence[str] = ()) -> None:
    """Refuse (ValueError) to continue the dataset at `root`, which a run of the settings `stored` (its provenance)
    `made` ("recorded", "labelled"), with a run of the settings `wanted`: each setting of `wanted` (but `ignore`) that
    differs is named with both values (one `stored` lacks as unrecorded), then `advice`. `wanted` is compared as
    JSON stores it (a tuple as a list). What ran it (`extras.RUN_RECORD_KEYS`: the software, the command line) is
    not compared: `warn_software_changed` says it."""
    wanted = json.loads(json.dumps(wanted))
    settings = [f"{key}: {stored[key]!r} -> {value!r}" if key in stored else f"{key}: unrecorded -> {value!r}"
                for key, value in wanted.items()
                if key not in ignore and key not in RUN_RECORD_KEYS and stored.get(key) != value]
    if settings:
        raise ValueError(f"{root} was {made} with other settings: {'; '.join(settings)}. {advice}")
