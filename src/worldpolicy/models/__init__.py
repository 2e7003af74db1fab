"""Models that ship inside the package (trained by `worldpolicy train reach-from-scratch --install`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import is_integer
from ..fileio import MODEL_CARD_FILE, MODEL_INDEX_FILE, TRAINING_SUMMARY_FILE, read_trainer_state, recorded_seeds
from ..hub import HubError, check_hub_id, model_metadata, names_hub_id, pinned_id, shown_name

SHIPPED_NAME = "shipped"  # what `checkpoint` / `--checkpoint` say for the shipped model (`resolve_checkpoint`)
SHIPPED = {"panda_reach": "Franka Panda reaching a coloured ball in the MuJoCo tabletop (relative EE deltas, 4-step chunks)"}
SHIPPED_DEFAULT = "panda_reach"  # the one `shipped` names


def shipped_model(name: str = SHIPPED_DEFAULT) -> Path:
    """Folder of a shipped diffusers-format checkpoint; a clear error if this install lacks it."""
    if name not in SHIPPED:
        raise KeyError(f"shipped model {name!r} is unknown; shipped: {', '.join(SHIPPED)}")
    path = Path(str(resources.files(__package__).joinpath(name)))
    if not (path / MODEL_INDEX_FILE).is_file():
        raise FileNotFoundError(
            f"shipped model {name!r} is missing from {path}; rebuild it with "
            "`worldpolicy train reach-from-scratch --install`"
        )
    return path


def resolve_checkpoint(value: str | Path, *, fetch: bool = True) -> str | Path:
    """What a command's checkpoint argument names, the one place a checkpoint named by a user is found: `shipped` is
    the shipped model's folder; a hub id (`hub.names_hub_id`: shaped like one, naming nothing here; `OWNER/NAME@REV`
    pins a branch, tag or commit, `hub.check_hub_id`: ValueError naming `checkpoint` for a malformed one) is its
    snapshot in the hub's cache holding its configs (`hub.model_metadata`: HubError when it cannot be fetched), so its
    embodiment.json, trainer_state.json and base_model.json are read like a local folder's and every check runs
    before its weights download (`hub.complete_snapshot`, as it loads); `~/ckpt` as the shell would expand it (a hub
    id never starts with `~`), from Python too (a `str` stays one, a `Path` one); anything else itself. Hub-id-shaped,
    whose owner is a folder here, is left for `engine.sources.check_checkpoint_source` to refuse as a missing path.
    Saved settings name the hub id and the commit read, not its snapshot (`portable_checkpoint`). `fetch=False`: a
    hub id stays one (fetched when it loads), where nothing is to be downloaded yet (an adapter's base)."""
    if value == SHIPPED_NAME:
        return str(shipped_model())
    source = str(value)
    if source.startswith("~"):
        home = Path(source).expanduser()
        return home if isinstance(value, Path) else str(home)
    if not names_hub_id(source):
        return value
    if fetch:
        return str(model_metadata(source))  # which checks it (`hub.check_hub_id`) before asking the hub
    check_hub_id(source, "checkpoint")
    return value


_WHOLE_FILE_BYTES = 1 << 20  # configs, tokenizers, trainer state: read whole
_SAMPLE_BYTES, _SAMPLES = 1 << 16, 16  # weights: the start (a safetensors header) and 16 spread blocks


def checkpoint_files(path: str | Path) -> dict[str, str]:
    """A checkpoint folder's identity, cheap enough for every run and independent of where it lies: its resolved path
    (recorded, not compared; `shipped` for the shipped model, as a saved setting names it:
    `models.portable_checkpoint`) and a digest of each file's name, size and content, small files whole and large ones
    by 16 blocks spread through them, so a copy or a reinstall of the same checkpoint is the same and one saved again
    (new weights, a trainer state one step on) is not, without reading gigabytes of weights. Names starting with a dot
    (caches, editor files) do not count, nor the model card (`MODEL_CARD_FILE`: prose about the model, free to
    edit). A hub snapshot's path is its hub id and the commit read (`hub.pinned_id`: `OWNER/NAME@COMMIT`), which loads
    the same files again. A source that is no folder (a hub id; none for a `Policy` built in code) is its name."""
    import hashlib

    import numpy as np

    if not path or not Path(path).is_dir():
        return {"path": str(path), "files": None}
    root = Path(path).resolve()
    digest = hashlib.sha256()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        card = MODEL_CARD_FILE if folder == str(root) else None  # the checkpoint's own card, not a part's file
        for name in sorted(n for n in names if not n.startswith(".") and n != card):
            file = Path(folder) / name
            size = file.stat().st_size
            digest.update(f"{file.relative_to(root).as_posix()}\0{size}\n".encode())
            with open(file, "rb") as f:
                if size <= _WHOLE_FILE_BYTES:
                    digest.update(f.read())
                    continue
                for offset in np.linspace(0, size - _SAMPLE_BYTES, _SAMPLES, dtype=np.int64):
                    f.seek(int(offset))
                    digest.update(f.read(_SAMPLE_BYTES))
    return {"path": str(portable_checkpoint(root)), "files": digest.hexdigest()[:16]}


def portable_checkpoint(value: str | Path) -> str | Path:
    """`value` as a saved setting names it: `shipped` for the shipped model, also where an older version stored its
    folder (this install's, or, gone, another install's `.../worldpolicy/models/<name>`: a run moved to another machine
    or environment), and the hub id with the commit it holds for a snapshot in the hub's cache
    (`.../models--owner--name/snapshots/<commit>`, what `resolve_checkpoint` makes of a hub id: `hub.pinned_id`,
    `OWNER/NAME@COMMIT`), so the setting names the model, at the revision read, wherever the run goes (a rerun from it
    loads those files, not whatever the branch holds by then); anything else itself."""
    if value == SHIPPED_NAME or not str(value):
        return value
    pinned = pinned_id(value, "model")
    if pinned is not None:
        return pinned
    path = Path(str(value)).expanduser()
    here = Path(str(resources.files(__package__))) / SHIPPED_DEFAULT
    if path.is_absolute() and (path.resolve() == here.resolve() if path.exists()
                               else path.parts[-3:] == ("worldpolicy", "models", SHIPPED_DEFAULT)):
        return SHIPPED_NAME
    return value


def checkpoint_name(source: str) -> str:
    """What a checkpoint is called where its folder is not: `shipped` for the shipped model (`portable_checkpoint`),
    a hub id's snapshot by the hub id and the commit it holds (`OWNER/NAME@COMMIT`), a local folder by its own name,
    anything else (a hub id, its `@REV` kept) as given. A server
    announces this, not the path, which is a detail of its machine (a user name, a mount point) that no client can
    use. A server's address, or a run of one as `served_name` labels it, is already a name: kept as it is (as a path,
    `ws://host:8000` was named `host:8000`). Cached with the working directory: `.` or `../x` names another folder
    from another one (a process that changes directory, a test run), which a cache by the text alone answered with
    the first one's name."""
    if served(source):
        return source
    return _checkpoint_name(source, os.getcwd())


# What a policy served over the wire is named by (`worldpolicy sim --policy ws://...`, `RemotePolicy`)
SERVER_SCHEMES = ("ws://", "wss://")
# Between the model a server announced and its address, in a run's label (`served_name`)
SERVED_AT = " @ "


def served_name(address: str, model: Any = None) -> str:
    """What a run of the policy served at `address` is labelled by (a sim report's title, `sim compare`'s table and
    legends, the training-scenes warning): the model its server announced (its metadata frame's `model`, the
    checkpoint by `checkpoint_name`) then the address, `step-0000010 @ ws://gpu-box:8000`, so the label still says
    which model ran once the address means nothing; the address alone where the server announces no model (openpi's
    announces none) or names it by the address."""
    if not isinstance(model, str) or not model or model == address:
        return address
    return f"{model}{SERVED_AT}{address}"


def served(name: str) -> bool:
    """Whether `name` is a server's address or a run of one as `served_name` labels it."""
    return str(name).startswith(SERVER_SCHEMES) or any(f"{SERVED_AT}{s}" in str(name) for s in SERVER_SCHEMES)


@lru_cache(maxsize=64)
def _checkpoint_name(source: str, cwd: str) -> str:  # `cwd`: only the cache's key (`checkpoint_name`)
    portable = str(portable_checkpoint(source))
    if portable != source:  # the shipped model's folder, a hub id's snapshot
        return portable
    if names_hub_id(source):  # as given, its revision too (`shown_name` gives the repository, as a card's front matter)
        return source
    return shown_name(source, "model")  # a local folder by its own name; a name given in code as given


def training_seeds(checkpoint: str | Path, *, shown: bool = False,
                   task: str | None = None) -> tuple[str, list[int], str] | None:
    """(task, env seeds, where that is said) of the `dataset from-sim` episodes `checkpoint` was trained on, or None
    where it does not say or cannot be read (moved, made elsewhere). A training run's checkpoint names its datasets in
    trainer_state.json (`data.dataset`, or a mixture's `[[data.mixture]]` tables), whose provenance lists the seeds
    (`run_training_seeds`; `task`: those recording it, where one does); a recipe's model (the shipped one) keeps its
    recording's task, first seed, episode count and failed seeds in training_summary.json. `shown`: the dataset by its
    hub id or folder name (`hub.shown_name`), not where this machine keeps it: what a server announces
    (`announced_training_seeds`). Here, below the policy and the server, so a server announces what `worldpolicy sim`
    checks a local checkpoint by (`sim.tasks.training_scenes`): one rule."""
    try:  # a report's `shipped` (`checkpoint_files`) too; its hub id, which a run records for a snapshot
        folder = Path(resolve_checkpoint(checkpoint))
    except HubError:  # a snapshot this machine cannot look up again (offline, no refs): not something to stop a run
        return None
    try:
        data = read_trainer_state(folder)["config"]["data"]
    except (OSError, ValueError, TypeError, KeyError):
        data = None
    if isinstance(data, Mapping) and (recorded := run_training_seeds(data, task, shown=shown)):
        return recorded
    try:
        summary = json.loads((folder / TRAINING_SUMMARY_FILE).read_text())
        task, first = summary["scratch"]["task"], summary["scratch"]["seed"]
        kept, failed = summary["stages"]["dataset"]["episodes"], summary["stages"]["dataset"]["failed_seeds"]
        seeds = sorted(set(range(first, first + kept + len(failed))) - set(failed))  # seeds in order, failed skipped
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return (task, seeds, f"the recording in its {TRAINING_SUMMARY_FILE}") if isinstance(task, str) and seeds else None


def run_training_seeds(data: Mapping[str, Any], task: str | None = None, *,
                       shown: bool = False) -> tuple[str, list[int], str] | None:
    """(task, env seeds, where that is said) of the `dataset from-sim` recordings a training run's `[data]` (its
    config's, as a dict) reads: its dataset's, or a mixture's (`[[data.mixture]]`): those of every table whose dataset
    records `task` (None, or none records it: the first recording's task), their seeds together, in order, each once;
    None where no dataset says. `shown`: the datasets by hub id or folder name (`hub.shown_name`)."""
    tables = data.get("mixture") or [data]
    found = [(name, recorded) for name in (t.get("dataset") for t in tables if isinstance(t, Mapping))
             if isinstance(name, str) and name and (recorded := recorded_seeds(Path(name).expanduser()))]
    if not found:
        return None
    if task is None or all(recorded[0] != task for _, recorded in found):
        task = found[0][1][0]
    mine = [(shown_name(name, "dataset") if shown else name, seeds) for name, (t, seeds) in found if t == task]
    names = ", ".join(name for name, _ in mine)
    return (task, list(dict.fromkeys(s for _, seeds in mine for s in seeds)),
            f"its dataset {names}" if len(mine) == 1 else f"its datasets {names}")


def announced_training_seeds(checkpoint: str | Path) -> dict[str, Any] | None:
    """What a server announces of the scenes its checkpoint was trained on (its metadata frame's `training_seeds`):
    `training_seeds`' task, seeds and source (the dataset by its name, not the server's path) as a map, or None where
    its training data does not say. A client reads it back with `served_training_seeds`."""
    trained = training_seeds(checkpoint, shown=True)
    return None if trained is None else {"task": trained[0], "seeds": list(trained[1]), "source": trained[2]}


def served_training_seeds(metadata: Mapping[str, Any]) -> tuple[str, list[int], str] | None:
    """`training_seeds` as a server's metadata frame announces them (`announced_training_seeds`), or None where it
    announces none (openpi's server, an older worldpolicy, a checkpoint whose training data does not say) or
    something else than the map it announces."""
    said = metadata.get("training_seeds")
    if not isinstance(said, Mapping):
        return None
    task, seeds, source = said.get("task"), said.get("seeds"), said.get("source")
    if not isinstance(task, str) or not isinstance(source, str) or not isinstance(seeds, (list, tuple)) or not seeds \
            or not all(is_integer(s) for s in seeds):
        return None
    return task, [int(s) for s in seeds], source
