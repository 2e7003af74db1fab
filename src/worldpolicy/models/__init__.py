"""Models that ship inside the package (trained by `worldpolicy train reach-from-scratch --install`)."""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..fileio import MODEL_INDEX_FILE
from ..hub import model_metadata, names_hub_id, shown_name, snapshot_repo_id

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
    the shipped model's folder; a hub id (`hub.names_hub_id`: shaped like one, naming nothing here) is its
    snapshot in the hub's cache holding its configs (`hub.model_metadata`: HubError when it cannot be fetched), so its
    embodiment.json, trainer_state.json and base_model.json are read like a local folder's and every check runs
    before its weights download (`hub.complete_snapshot`, as it loads); `~/ckpt` as the shell would expand it (a hub
    id never starts with `~`), from Python too (a `str` stays one, a `Path` one); anything else itself. Hub-id-shaped,
    whose owner is a folder here, is left for `engine.loading.check_checkpoint_source` to refuse as a missing path.
    Saved settings keep what was given, the hub id, not its snapshot (`portable_checkpoint`). `fetch=False`: a hub id
    stays one (fetched when it loads), where nothing is to be downloaded yet (an adapter's base)."""
    if value == SHIPPED_NAME:
        return str(shipped_model())
    source = str(value)
    if source.startswith("~"):
        home = Path(source).expanduser()
        return home if isinstance(value, Path) else str(home)
    if not fetch or not names_hub_id(source):
        return value
    return str(model_metadata(source))


def portable_checkpoint(value: str | Path) -> str | Path:
    """`value` as a saved setting names it: `shipped` for the shipped model, also where an older version stored its
    folder (this install's, or, gone, another install's `.../worldpolicy/models/<name>`: a run moved to another machine
    or environment), and the hub id for a snapshot in the hub's cache (`.../models--owner--name/snapshots/<rev>`, what
    `resolve_checkpoint` makes of a hub id), so the setting names the model wherever the run goes; anything else
    itself."""
    if value == SHIPPED_NAME or not str(value):
        return value
    hub_id = snapshot_repo_id(value, "model")
    if hub_id is not None:
        return hub_id
    path = Path(str(value)).expanduser()
    here = Path(str(resources.files(__package__))) / SHIPPED_DEFAULT
    if path.is_absolute() and (path.resolve() == here.resolve() if path.exists()
                               else path.parts[-3:] == ("worldpolicy", "models", SHIPPED_DEFAULT)):
        return SHIPPED_NAME
    return value


def checkpoint_name(source: str) -> str:
    """What a checkpoint is called where its folder is not: `shipped` for the shipped model (`portable_checkpoint`),
    a hub id's snapshot by the hub id, a local folder by its own name, anything else (a hub id) as given. A server
    announces this, not the path, which is a detail of its machine (a user name, a mount point) that no client can
    use. Cached with the working directory: `.` or `../x` names another folder from another one (a process that
    changes directory, a test run), which a cache by the text alone answered with the first one's name."""
    return _checkpoint_name(source, os.getcwd())


@lru_cache(maxsize=64)
def _checkpoint_name(source: str, cwd: str) -> str:  # `cwd`: only the cache's key (`checkpoint_name`)
    portable = str(portable_checkpoint(source))
    if portable != source:  # the shipped model's folder, a hub id's snapshot
        return portable
    return shown_name(source, "model")  # a local folder by its own name; a hub id, or a name given in code, as given
