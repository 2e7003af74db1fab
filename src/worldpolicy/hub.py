"""Sharing on the Hugging Face hub, as diffusers' and LeRobot's `push_to_hub` do: `push` uploads a checkpoint (to a
model repository) or a LeRobot dataset (to a dataset repository); `dataset_snapshot` and `model_metadata` fetch a
dataset or a checkpoint named by its hub id into the hub's cache (a checkpoint's configs first, its weights once
the checks passed: `complete_snapshot`), as `lerobot.LeRobotDataset("lerobot/pusht")` and
`from_pretrained` do; `hub_id_shaped` is the one rule for when a string naming a checkpoint or a dataset is a hub id.
huggingface_hub (a dependency) is imported inside the functions, so `import worldpolicy` stays light."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

from .fileio import (
    ADAPTER_FILE,
    BASE_FILE,
    EMBODIMENT_FILE,
    FOLDER_KINDS,
    MODEL_INDEX_FILE,
    OPTIMIZER_FILE,
    TRAINED_FILE,
    TRAINER_STATE_FILE,
    TRAINING_SUMMARY_FILE,
    folder_holder,
    folder_kind,
    read_json,
    read_trainer_state,
    safetensors_files,
    saved_checkpoints,
    stored_provenance,
)

logger = logging.getLogger(__name__)

HUB_DATASET_EXAMPLE = "lerobot/pusht"  # how a dataset's hub id looks, in errors
# how the hub's cache names a repository's folder, by its type (`models--owner--name`, `datasets--owner--name`)
HUB_CACHE_PREFIXES = {"model": "models--", "dataset": "datasets--"}
REPO_WHAT = {"model": "checkpoint", "dataset": "dataset"}  # what a repository of each type holds, in errors
# What of a checkpoint's repository the checks before loading read (`model_metadata`), huggingface_hub's allow_patterns
# (fnmatch: `*` matches `/` too): every JSON file (model_index.json, the parts' configs and weight indexes,
# embodiment.json, trainer_state.json, base_model.json, the tokenizer's), and an adapter checkpoint's own weights,
# which its checks read and which are small beside its base's (fetched as that loads)
METADATA_PATTERNS = ("*.json", ADAPTER_FILE, TRAINED_FILE)
# What a folder holds that is not part of what it shares, by the one rule that covers them all, a name starting with
# `.`: the lock file a running command keeps in it (`fileio.LOCK_FILE`), a staged folder (`fileio.staged_folder`'s
# `.NAME.*`) or scratch folder (`fileio.ScratchFolder`'s `.ROOT.KIND-*`) a killed writer left, and `.git`, `.cache`.
# huggingface_hub's patterns (fnmatch: `*` matches `/` too): a hidden entry at the top, and one below it.
PUSH_IGNORE = (".*", "*/.*")
# How many files `push` sends in one commit: as huggingface_hub 2's own multi-commit upload (`upload_folder` with
# hf_xet) starts, where 1.x has `upload_large_folder`: a DROID-sized dataset's thousands of files are too many for one
# commit (slow to make, and all lost when it fails)
PUSH_COMMIT_FILES = 256
# What `push` writes in the repository beside the folder's files: the files it sent, so the next push removes those
# of them the folder no longer has, a file no loader reads too (`stale_files`), never one added on the hub's page; a
# push in several commits writes it first with the previous record's files too, so one cut short leaves none of its
# files unrecorded.
# Hidden: no folder's file (`PUSH_IGNORE`), and never itself removed.
PUSH_RECORD = ".worldpolicy_push.json"
# What of a repository a loader reads as part of the checkpoint or dataset it holds, by the repository's type
# (huggingface_hub's patterns, fnmatch: `*` matches `/` too): a checkpoint's weights (any format diffusers and
# transformers read), its tokenizer's files, its weight indexes, and the JSON files a loader reads at the top
# (`LOADED_TOP_JSON`; a JSON file in one of the checkpoint's parts too: `stale_files`); a dataset's meta/, data/ and
# videos/. `push` removes such a file that it does not send whoever wrote it (`stale_files`), as
# `upload_folder(delete_patterns=...)` would: a repository pushed by an older worldpolicy or made on the hub's page has
# no `PUSH_RECORD`, and an older model's shard, adapter or config left there would be read beside this one's.
LOADED_PATTERNS = {
    "model": ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.msgpack", "*.gguf", "*.onnx", "*.index.json",
              "*.model", "*.tiktoken", "*.jinja", "*vocab.txt", "*merges.txt"),
    "dataset": ("meta/*", "data/*", "videos/*"),
}
# The JSON files at a model repository's top that a loader reads: worldpolicy's (a diffusers checkpoint's index of its
# parts, an adapter's base, the run's record and embodiment, a recipe's summary), and what transformers, PEFT and
# LeRobot read there (a model's or adapter's config, a tokenizer's files). Any other JSON file there (an evaluation's
# results added on the hub's page) is no part of the checkpoint: kept, as a card is, unless a push sent it.
LOADED_TOP_JSON = (MODEL_INDEX_FILE, BASE_FILE, TRAINER_STATE_FILE, EMBODIMENT_FILE, TRAINING_SUMMARY_FILE,
                   "config.json", "adapter_config.json", "generation_config.json", "preprocessor_config.json",
                   "scheduler_config.json", "tokenizer*.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json")


class HubError(Exception):
    """The hub could not be reached, or refused a request (no such repository, no access): one line on the command
    line (exit status 2), and nothing local changed."""


def hub_id_shaped(source: str) -> bool:
    """Whether `source`, when no local file or folder has that name, is read as a hub id (owner/name, or
    owner/name@revision: `split_revision`): one `/` before any `@`, and not spelled as a path from here (`./x`, `/x`,
    `~/x`). For checkpoints (`engine.loading`) and datasets (`data.lerobot`) alike."""
    return not source.startswith((".", "/", "~")) and split_revision(source)[0].count("/") == 1


def split_revision(source: str) -> tuple[str, str | None]:
    """A hub id as (repository, revision): `OWNER/NAME@REV` (a branch, tag or commit, as `hf` and LeRobot users pin
    one) as ("OWNER/NAME", "REV"), and one without `@` as (it, None), which reads the default branch (main)."""
    repo_id, at, revision = source.partition("@")
    return (repo_id, revision) if at else (source, None)


def check_hub_id(source: str, named: str) -> tuple[str, str | None]:
    """`split_revision` of hub id `source`, refusing a malformed revision (`OWNER/NAME@` with nothing after the `@`,
    or a space in it): ValueError led by `named` (how the caller names the value: `checkpoint`, `dataset`)."""
    repo_id, revision = split_revision(source)
    if revision is not None and (not revision or revision != revision.strip() or " " in revision):
        raise ValueError(f"{named}={source!r}: expected OWNER/NAME@REV, a branch, tag or commit after the `@` (e.g. "
                         f"{repo_id + '@main'!r}), or OWNER/NAME alone for the main branch")
    return repo_id, revision


# A commit as the hub names one (a snapshot's folder in its cache, `pinned_id`'s revision): 40 hex digits
HUB_COMMIT = re.compile(r"[0-9a-f]{40}")


def short_pinned(source: str) -> str:
    """Hub id `source` as a heading shows it: a commit it pins by its first 7 digits, as git and the hub's pages
    show one (`me/pick@0123abc`); anything else as it is."""
    repo_id, revision = split_revision(source) if hub_id_shaped(source) else (source, None)
    return f"{repo_id}@{revision[:7]}" if revision is not None and HUB_COMMIT.fullmatch(revision) else source


def pinned_id(path: str | Path, repo_type: str) -> str | None:
    """How a record names hub snapshot `path` so that a reader gets the very files read: its hub id and the commit
    the snapshot holds (the folder's name), `OWNER/NAME@COMMIT`, which every command takes back (`split_revision`);
    None for a folder that is no snapshot. The one place a run's records (a dataset's provenance: `dataset_source`;
    a checkpoint's identity: `models.checkpoint_files`) get the commit."""
    repo_id = snapshot_repo_id(path, repo_type)
    return None if repo_id is None else f"{repo_id}@{Path(str(path)).name}"


def snapshot_repo_id(path: str | Path, repo_type: str) -> str | None:
    """The hub id of `path` when it is a snapshot in the hub's cache (`.../models--owner--name/snapshots/<rev>`, a
    dataset's `datasets--owner--name`), what `model_metadata` and `dataset_snapshot` give for a hub id; else None."""
    path = Path(str(path)).expanduser()
    repo, snapshots = path.parts[-3:-1] if len(path.parts) >= 3 else ("", "")
    prefix = HUB_CACHE_PREFIXES[repo_type]
    if path.is_absolute() and snapshots == "snapshots" and repo.startswith(prefix):
        return "/".join(repo.removeprefix(prefix).split("--", 1))  # a hub id holds no `--`
    return None


def dataset_source(path: str | Path) -> str:
    """How a record names a dataset a command read (`dataset select|merge|label`'s provenance, a training run's
    trainer_state.json): its hub id and the commit read (`pinned_id`) where it came from the hub, not the cache
    folder, which means nothing on another machine; else its absolute path."""
    return pinned_id(path, "dataset") or os.path.abspath(Path(path).expanduser())


def names_hub_id(source: str) -> bool:
    """Whether `source` is read as a hub id: shaped like one (`hub_id_shaped`), naming no file or folder here, and its
    owner no folder here (`local_owner`)."""
    return hub_id_shaped(source) and not Path(source).exists() and not local_owner(source)


def named_hub_id(value: str, repo_type: str) -> str | None:
    """The hub id of the repository of `repo_type` that `value` names: a snapshot in the hub's cache
    (`snapshot_repo_id`), or a hub id given as such (`names_hub_id`); None for a path."""
    if (found := snapshot_repo_id(value, repo_type)) is not None:
        return found
    return split_revision(value)[0] if names_hub_id(value) else None  # the repository, as the card's front matter


def shown_name(value: str, repo_type: str) -> str:
    """What a card (README.md, pushed to the hub) shows for a checkpoint or dataset a record names: its hub id
    (`named_hub_id`, as the card's front matter names it), else a folder's own name: never a local path, which tells
    the user's file layout to whoever reads the card and names nothing they can open."""
    if not value:
        return value
    return named_hub_id(value, repo_type) or Path(value).expanduser().resolve().name or value  # `.`, `../x`: by name


def shown_value(value: Any) -> Any:
    """A recorded value as what is shared shows it: an absolute path (a checkpoint, dataset, output or cache folder, a
    spec file a record names) as its hub id or its own name (`shown_name`), not where the maker kept it; anything
    else as it is."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    return snapshot_repo_id(value, "model") or shown_name(value, "dataset")


def shared_state(folder: str | Path) -> bytes | None:
    """What `push` sends for checkpoint `folder`'s trainer_state.json (`fileio.TRAINER_STATE_FILE`): a copy that shows
    each path as the card does (`shared_record`: its config's `data.dataset`, `checkpoint`, `output_dir`,
    `data.cache_dir`, a spec file's `embodiment`, the `base_checkpoint` it started from, the command line that
    trained it, without the folder that was typed in), which on the hub would only tell the user's file layout; what
    loading and a fine-tune read from it (the embodiment's name or spec, the objectives, the frames) is kept. None
    (the file goes as it is) where it has none, it is no run's record or it names no path. The file here is not
    changed: a resume reads its folders."""
    try:
        state = read_trainer_state(folder)
    except (OSError, ValueError):
        return None
    if not isinstance(state.get("config"), dict):
        return None
    shown = shared_record(state)
    return None if shown == state else json.dumps(shown, indent=1).encode()


def shared_provenance(folder: str | Path) -> tuple[str, bytes] | None:
    """What `push` sends for dataset `folder`'s provenance (`fileio.stored_provenance`: PROVENANCE_FILE, or info.json's
    `PROVENANCE_KEY` in a dataset written before that file): the file (relative to `folder`) and a copy of it whose
    record shows each path as the card does (`shared_record`: the dataset or HDF5 file it was made from, a
    checkpoint's folder, the command line that recorded it, without the folder it was typed in), which on the hub
    would only tell the user's file layout (a home folder's user name). None (the file goes as it is) where it has
    none, cannot be read or names no path. The file here is not changed: the commands that check `--overwrite` and
    `recorded_seeds` read it."""
    try:
        stored = stored_provenance(folder)
        if stored is None or (shown := shared_record(stored.value)) == stored.value:
            return None
        document = shown if stored.key is None else {**read_json(stored.path, stored.path.name), stored.key: shown}
    except (OSError, ValueError):
        return None
    return stored.path.relative_to(folder).as_posix(), json.dumps(document, indent=4, ensure_ascii=False).encode()


def shared_record(record: Any) -> Any:
    """A run's record (a checkpoint's trainer_state.json, a dataset's provenance) as what is shared shows it: each
    path as `_shown_paths` shows it, each path word of the command line that made it (`extras.run_record`'s
    `command`) so too, and no `cwd`, the folder that line was typed in: it names nothing a reader can open, and a home
    folder's own name is its user's name."""
    shown = _shown_paths(record)
    if not isinstance(shown, dict):
        return shown
    if isinstance(shown.get("command"), str):
        shown["command"] = _shown_command(shown["command"])
    if shown.get("cwd") is not None:
        shown["cwd"] = None
    return shown


def _shown_command(command: str) -> str:
    """Command line `command` with each word that is an absolute path as `shown_value` shows it (`--data
    /home/me/pick` as `--data pick`); as it is where no word is one, or it cannot be split."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    shown = [shown_value(word) for word in words]
    return command if shown == words else shlex.join(shown)


def _shown_paths(value: Any) -> Any:
    """A JSON document with every string in it as `shown_value` shows it (what is shared names no local path)."""
    if isinstance(value, dict):
        return {key: _shown_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shown_paths(item) for item in value]
    return shown_value(value)


def local_owner(source: str) -> bool:
    """Whether `source`'s first part is a folder here (`runs/step-x`): then it is a path, never a hub id (a hub id's
    owner is no local folder)."""
    return Path(source.split("/")[0]).is_dir()


def refuse_local_owner(source: str, named: str) -> None:
    """`source` shaped like a hub id but whose first part is a folder here (`local_owner`) is a missing path, not a hub
    id: FileNotFoundError, led by `named` (how the caller names the value)."""
    local = Path(source)
    if local_owner(source):
        raise FileNotFoundError(f"{named} does not exist: {str(local.parent)!r} is a folder here without "
                                f"{local.name!r} (a hub id's owner is not a local folder)")


def _hub_errors() -> tuple[type[Exception], ...]:
    """What huggingface_hub raises when the hub cannot be reached or refuses: its HTTP errors (a connection error among
    them) and OSError (its `LocalEntryNotFoundError` when offline)."""
    from huggingface_hub.errors import HTTPError

    return HTTPError, OSError


def _why(exc: Exception) -> str:
    """The first line of a hub error, named by its class."""
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


# how a user logs in to the hub, which every message that asks for a login (or another one) says alike
LOG_IN = "HF_TOKEN or `hf auth login`"
# what to do when the hub answers 401: the token sent is wrong (an expired HF_TOKEN fails even a public repository)
BAD_TOKEN = ("the token sent (HF_TOKEN, else the one `hf auth login` stored) is not valid: log in again (`hf auth "
             "login`) or set HF_TOKEN to a valid one")


def _status(exc: Exception) -> int | None:
    """The HTTP status the hub answered with (huggingface_hub's HfHubHTTPError), None where it was not reached."""
    return getattr(getattr(exc, "response", None), "status_code", None)


def _type_flag(repo_type: str) -> str:
    """What an `hf` command line adds for a repository of `repo_type`: ` --repo-type dataset` for a dataset's."""
    return " --repo-type dataset" if repo_type == "dataset" else ""


def removal_command(repo_id: str, repo_type: str, revision: str | None) -> str:
    """The `hf` command line, less the files, that removes files from branch `revision` (None: main) of hub repository
    `repo_id` of `repo_type`."""
    return f"hf repos delete-files {repo_id}{_type_flag(repo_type)}" + (f" --revision {revision}" if revision else "")


def _hub_page(repo_id: str, repo_type: str) -> str:
    """The hub's web page of repository `repo_id` of `repo_type` (a dataset's under /datasets/), on the hub
    huggingface_hub talks to (`HF_ENDPOINT`: a mirror, a private hub), as the commit URLs it gives back name it."""
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"


def _unset(setting: str, to: str) -> str:
    """How to let huggingface_hub reach the hub again where `setting` (`offline_setting`) keeps it off, `to` do what
    the command asked (fetch, push)."""
    return f"unset it (or set {setting}=0) to {to}"


def _elsewhere(repo_id: str, repo_type: str) -> str:
    """How a hub repository (`OWNER/NAME`, or `OWNER/NAME@REV`: that revision) is used without this machine reaching
    the hub, ending "download it ..."."""
    repo_id, revision = split_revision(repo_id)
    flag = _type_flag(repo_type) + (f" --revision {revision}" if revision else "")
    return f"elsewhere (`hf download {repo_id}{flag} --local-dir FOLDER`) and give the folder"


def unfetched(repo_id: str, repo_type: str, exc: Exception) -> str:
    """The one line for hub repository `repo_id` of `repo_type` ("model" or "dataset") that could not be fetched
    (`exc`): why, and what to do: the setting that keeps the hub from being asked (`offline_setting`), a token the
    hub refused, else the `hf download` to run elsewhere. For `_snapshot` and a checkpoint diffusers fetches itself
    (`engine.loading.load_components`: an adapter's base named by its hub id)."""
    elsewhere = _elsewhere(repo_id, repo_type)
    if (setting := offline_setting()) is not None:
        fix = (f"{setting} is set and the hub's cache holds no copy: {_unset(setting, 'fetch it')}, or download it "
               f"{elsewhere}")
    elif _status(exc) == 401:
        fix = f"{BAD_TOKEN} (unset it, or `hf auth logout`, for a public repository), or download it {elsewhere}"
    else:
        fix = f"Offline? Download it {elsewhere}"
    return f"could not fetch {REPO_WHAT[repo_type]} {repo_id!r} from the Hugging Face hub ({_why(exc)}). {fix}"


@contextmanager
def hub_bars_hidden(hidden: bool) -> Iterator[None]:
    """Without huggingface_hub's download bars in the block when `hidden` (`logcapture.loading_quietly`: a command
    with `--no-progress`, one whose stderr is no terminal, where they were carriage-return redraws, and a server), as
    they were after (HF_HUB_DISABLE_PROGRESS_BARS=1: hidden always)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    shown = not are_progress_bars_disabled()
    if hidden:
        disable_progress_bars()
    try:
        yield
    finally:
        if hidden and shown:
            enable_progress_bars()


def _snapshot(repo_id: str, repo_type: str, revision: str | None = None,
              allow_patterns: list[str] | None = None) -> Path:
    """The local folder of the hub repository `repo_id` of `repo_type` ("model" or "dataset") at `revision` (default:
    main), downloaded into the hub's cache (`HF_HOME`, `HF_HUB_CACHE`) or found there (`HF_HUB_OFFLINE=1`: the cached
    copy, no request); only the files `allow_patterns` match where given. HubError, one line with the `hf download` to
    run elsewhere, when it cannot be fetched."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    from .logcapture import loading_quietly

    what, page = REPO_WHAT[repo_type], _hub_page(repo_id, repo_type)
    try:
        with hub_bars_hidden(loading_quietly()):
            return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision,
                                          allow_patterns=allow_patterns))
    except GatedRepoError:
        raise HubError(f"{what} {repo_id!r} is a gated hub repository: accept its terms on "
                       f"{page} and log in ({LOG_IN})") from None
    except RepositoryNotFoundError:
        raise HubError(f"{what} {repo_id!r}: no such {repo_type} repository on the hub, or a private one this login "
                       f"may not read ({LOG_IN}); a local {what} is given by its folder") from None
    except RevisionNotFoundError:
        raise HubError(f"{what} {repo_id!r} has no revision {revision!r} on the hub: give one of its branches, tags or "
                       f"commits after the `@` ({page}/tree/main lists them), or none for main") from None
    except _hub_errors() as exc:
        raise HubError(unfetched(repo_id if revision is None else f"{repo_id}@{revision}", repo_type, exc)) from None


@cache
def dataset_snapshot(source: str) -> Path:
    """The local folder of the hub's dataset repository hub id `source` names, at its revision (`split_revision`:
    `OWNER/NAME@REV`, else main) (`_snapshot`), as LeRobot fetches one. Fetched once per process: a training run
    opens its dataset several times."""
    repo_id, revision = check_hub_id(source, "dataset")
    return _snapshot(repo_id, "dataset", revision)


@cache
def model_metadata(source: str) -> Path:
    """The local folder of the hub's model repository hub id `source` names, at its revision (`split_revision`:
    `OWNER/NAME@REV`, else main) (`_snapshot`) holding, at first, only what the checks before loading read
    (`METADATA_PATTERNS`: a few KB to MB), so a checkpoint named by its hub id is read from it like any folder (its
    embodiment.json, trainer_state.json, base_model.json, configs), as diffusers' and LeRobot's `from_pretrained` do,
    and a wrong flag fails in seconds, not after gigabytes of weights: `complete_snapshot` fetches those once the
    checks passed, into the same folder, at the commit it holds. Fetched once per process."""
    repo_id, revision = check_hub_id(source, "checkpoint")
    return _snapshot(repo_id, "model", revision, allow_patterns=list(METADATA_PATTERNS))


@cache
def model_snapshot(repo_id: str, revision: str | None = None) -> Path:
    """The local folder of the hub's model repository `repo_id` at `revision`, whole (`_snapshot`). Fetched once per
    process."""
    return _snapshot(repo_id, "model", revision)


def offline_setting() -> str | None:
    """The environment variable that keeps huggingface_hub from the hub (`HF_HUB_OFFLINE`, else `TRANSFORMERS_OFFLINE`,
    which it reads where that one is not set: the one the user set is named), None when it may reach it."""
    from huggingface_hub import is_offline_mode

    if not is_offline_mode():
        return None
    return "HF_HUB_OFFLINE" if os.environ.get("HF_HUB_OFFLINE") or not os.environ.get("TRANSFORMERS_OFFLINE") \
        else "TRANSFORMERS_OFFLINE"


def snapshot_fix(folder: str | Path) -> str | None:
    """What to do about hub snapshot `folder` (`model_metadata`'s) whose files loading found missing or cut short;
    None for a folder that is no hub snapshot. Offline (`offline_setting`), `complete_snapshot` fetched nothing: the
    cache holds what an earlier run fetched, perhaps only the configs its checks read (a run refused by a flag), and
    the `hf download` to run elsewhere names the commit they were read at (`--revision`: the configs' own weights,
    whatever branch or tag was asked); online it fetched the whole revision, so the repository holds it so."""
    repo_id = snapshot_repo_id(folder, "model")
    if repo_id is None:
        return None
    setting = offline_setting()
    if setting is not None:
        return (f"{setting} is set, so what the hub's cache lacks of {repo_id!r} (an earlier run may have fetched only "
                f"its configs) is not fetched: {_unset(setting, 'fetch it')}, or download it "
                f"{_elsewhere(str(pinned_id(folder, 'model')), 'model')}")
    return (f"the hub repository {repo_id!r} holds it so at revision {Path(folder).name} (pushed incomplete?): push it "
            "again whole, or use another")


def complete_snapshot(folder: Path) -> None:
    """The rest of a checkpoint `model_metadata` fetched (its weights), at the revision it holds (the snapshot's
    folder is named by its commit), into that folder; nothing for any other folder. Called as loading checks the
    files (`engine.loading.check_checkpoint_complete`), after every check the configs allowed."""
    repo_id = snapshot_repo_id(folder, "model")
    if repo_id is not None:
        model_snapshot(repo_id, Path(folder).name)


def remote_weight_values(folder: str | Path, files: list[str]) -> int | None:
    """How many values the safetensors `files` (paths in the repository) of hub snapshot `folder` hold, read from
    their headers on the hub (a few KB each, by range request: nothing is downloaded), so that a checkpoint too large
    for this machine is refused before gigabytes of weights download; None for a folder that is no hub snapshot, or
    when the hub does not say (offline, `HF_HUB_OFFLINE=1`: the weights are then judged once they are here)."""
    repo_id = snapshot_repo_id(folder, "model")
    if repo_id is None or not files:
        return None
    from huggingface_hub import HfApi
    from huggingface_hub.errors import SafetensorsParsingError

    api = HfApi()
    try:
        return sum(sum(api.parse_safetensors_file_metadata(repo_id, name, revision=Path(folder).name)
                       .parameter_count.values()) for name in files)
    except (*_hub_errors(), SafetensorsParsingError):
        return None


@dataclass(frozen=True)
class PushResult:
    """What `push` uploaded: the files (relative to the folder), their bytes, and where they went."""

    repo_id: str
    repo_type: str  # "model" or "dataset"
    what: str  # the folder's kind (`fileio.FolderKind.what`)
    files: list[str]
    size: int
    url: str | None  # the (last) commit on the hub: this push's, or the branch's where it changed nothing; None: dry
    # how many it made (`PUSH_COMMIT_FILES` files each at most; none where the branch held every file already), or, in
    # a dry run, would make
    commits: int
    left_out: list[str]  # the training state not sent (`training_state`): none with `with_training_state`
    left_out_size: int
    removed: list[str]  # what the repository held that this push does not send and removes (`stale_files`)
    kept: list[str]  # what the repository holds that this push does not send and leaves (`stale_files`)
    unchanged: list[str]  # of `files`, those the branch held byte for byte, not sent (`held_files`)
    sent_size: int  # the bytes of the files sent (`sent`)
    dry_run: bool = False  # nothing was sent: what a push would do
    anonymous: bool = False  # a dry run read without a token: a private repository read as none (no file held)

    @property
    def sent(self) -> list[str]:
        """Of `files`, those sent (new, or changed from the branch's): all but `unchanged`."""
        held = set(self.unchanged)
        return [name for name in self.files if name not in held]


def training_state(folder: str | Path) -> list[str]:
    """The files of checkpoint `folder` that only a resume reads (`Trainer._restore`), not loading nor a fine-tune
    from it: the optimizer's moments (twice the trained weights' size for AdamW) and, in a merged LoRA checkpoint (no
    base_model.json: loading reads the merged weights), its adapters. `push` leaves them out unless asked, as
    transformers' Trainer shares the model and not its optimizer."""
    folder = Path(folder)
    optimizer = safetensors_files(folder, OPTIMIZER_FILE)  # one file, or its index and shards
    names = optimizer if (folder / BASE_FILE).is_file() else [*optimizer, ADAPTER_FILE]
    return [name for name in names if (folder / name).is_file()]


def shared_files(folder: str | Path, left_out: list[str] | None = None) -> list[str]:
    """The files under `folder` that `push` uploads, sorted, relative with `/`: all but `PUSH_IGNORE`'s and the
    top-level `left_out`."""
    from huggingface_hub.utils import filter_repo_objects

    folder = Path(folder)
    found = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
    return sorted(filter_repo_objects(found, ignore_patterns=[*PUSH_IGNORE, *(left_out or [])]))


def _refuse_unshared(path: Path) -> NoReturn:
    """A folder that is no checkpoint or dataset, refused naming what it holds and what `push` takes."""
    *first, last = (kind.what for kind in FOLDER_KINDS if kind.repo_type is not None)
    accepted = f"{', '.join(first)} or {last}"
    found = folder_kind(path)
    if found is None:
        for parent in Path(os.path.abspath(path)).parents:  # a checkpoint's transformer/, a dataset's meta/
            around = folder_kind(parent)
            if around is not None and around[0].repo_type is not None:
                raise ValueError(f"path: {str(path)!r} is a part of {str(parent)!r}, which holds {around[0].what} "
                                 f"({around[1]}): push that folder")
        held = "is empty" if not any(path.iterdir()) else "holds nothing worldpolicy made that can be shared"
        raise ValueError(f"path: {str(path)!r} {held}; push takes {accepted}")
    kind, marker = found
    saved = saved_checkpoints(path)
    newest = f": push one of its checkpoints, e.g. the newest, {str(saved[-1][1])!r}" if saved else ""
    raise ValueError(f"path: {str(path)!r} holds {kind.what} ({marker}), which is not shared on the hub{newest}; "
                     f"push takes {accepted}")


def _refuse_held(path: Path) -> None:
    """Refuse `path` when a running command holds it or a folder it is in (`fileio.folder_lock`, a dataset's
    `fileio.dataset_lock`): a training run writing its checkpoints, which it removes past `keep_checkpoints` (perhaps
    mid-upload), a dataset command about to replace the dataset whole."""
    for folder in (path, *Path(os.path.abspath(path)).parents):
        holder = folder_holder(folder)
        if holder is None:
            continue
        where = "" if folder == path else f" is inside {str(folder)!r}, which"
        raise ValueError(f"path: {str(path)!r}{where} is in use by a running worldpolicy process ({holder.said}, in "
                         f"its lock file {str(holder.lock)!r}) that may still change or remove it: wait for it "
                         "to finish (or stop it), or push a copy (cp -r)")


def push(path: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
         message: str | None = None, with_training_state: bool = False, dry_run: bool = False) -> PushResult:
    """Upload the checkpoint or dataset folder `path` to the hub repository `repo_id` (a model repository for a
    checkpoint, a dataset one for a dataset; made if missing, `private` then), on branch `revision` (made from the
    default branch if missing; default: main). Only what the branch lacks is sent: a file it holds byte for byte at
    its head (`held_files`: by LFS sha256 or git blob id) is not (`PushResult.unchanged`), so a checkpoint pushed over
    its older self sends what changed, and a push that would change nothing makes no commit. The rest goes as
    commits (`message`) of at most `PUSH_COMMIT_FILES` files each
    (`_push_batches`: a DROID-sized dataset's thousands of files), each pinned to the one before (`parent_commit`),
    the first to the branch's head when the push began: an edit on the hub's page or another push in between is
    refused (HTTP 412), never overwritten; so is one under a commit huggingface_hub skipped because the branch held
    its files already (`BranchMoved`: the hub never saw that commit's pin). The last commit removes what the
    repository holds that the folder's checkpoint or dataset lacks (`stale_files`: every file a loader would read
    as part of one, and what the previous push sent, by its record `PUSH_RECORD`), so that the branch holds it
    exactly, and writes this push's record (the first, of several, writes it naming the previous record's files
    too: a push cut short then rerun, or followed by another folder's, removes what it landed that the folder
    lacks); other files (a card, its figures, a license, added on the hub's page) are kept and said
    (`PushResult.kept`), as are the repository's hidden ones (.gitattributes). A checkpoint's training state
    (`training_state`) stays here unless `with_training_state` (to resume the run elsewhere). `dry_run`: the
    repository is read, not changed (nor made), and the result says what a push would send, leave as it is, remove
    and keep; it needs no token (`PushResult.anonymous`: a public repository read as anyone may).
    Everything is checked before anything is sent: the folder's kind, `repo_id`, a token (HF_TOKEN or
    `hf auth login`), that the hub is not switched off (`HF_HUB_OFFLINE`), that no running command holds the folder
    (`fileio.folder_lock`), and that a repository asked `private` is not an existing public one (`_refuse_public`).
    The folder is only read: a checkpoint's trainer_state.json is sent as `shared_state` shows it, a dataset's
    provenance as `shared_provenance` does. HubError when the hub cannot be reached or refuses, naming the commits
    that landed before (a rerun sends only what they lack, the branch holding the rest)."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, RepoFile, get_token
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"path: {str(path)!r} is not a folder (push takes a checkpoint or dataset folder)")
    found = folder_kind(path)
    if found is None or found[0].repo_type is None:
        _refuse_unshared(path)
    kind, marker = found
    if repo_id.count("/") != 1:  # a bare name would land in the token's account, then load by no id given as pushed
        raise ValueError(f"repo_id={repo_id!r}: expected OWNER/NAME, a user or organisation and the repository's name "
                         "(`me/pick`), as predict's --checkpoint and a dataset's hub id take it back")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ValueError(f"repo_id={repo_id!r}: {exc}") from None
    if revision == "":
        raise ValueError("revision='': expected a branch name (or leave revision out: main)")
    token = get_token()
    if not token and not dry_run:  # a dry run only reads: a public repository as anyone may
        raise ValueError("no Hugging Face token: set HF_TOKEN to a token with write access, or log in once with "
                         "`hf auth login`")
    if (setting := offline_setting()) is not None:  # every request refused, after "pushing ..." was said
        raise ValueError(f"{setting} is set: the hub is not contacted, so nothing can be pushed; "
                         f"{_unset(setting, 'push')}")
    _refuse_held(path)
    left_out = [] if with_training_state or kind.repo_type != "model" else training_state(path)
    files = shared_files(path, left_out)
    if not files:
        raise ValueError(f"path: {str(path)!r} holds no files to push")
    sizes = {name: os.path.getsize(path / name) for name in files}
    size = sum(sizes.values())
    left_out_size = sum(os.path.getsize(path / name) for name in left_out)
    # said before the upload, which may take long or fail: what goes, and what stays here
    logger.info("%s %s %s (%d files, %.1f MB) to the %s repository %s%s", "dry run, not sent:" if dry_run
                else "pushing", kind.what, path, len(files), size / 1e6, kind.repo_type, repo_id,
                f"; its training state, which only a resume reads, stays here ({', '.join(left_out)}, "
                f"{left_out_size / 1e6:.1f} MB)" if left_out else "")
    # the files as they are, but a checkpoint's run record and a dataset's provenance as the card shows their paths
    shown = {}  # file -> the bytes sent for it
    if kind.repo_type == "model" and TRAINER_STATE_FILE in files and (state := shared_state(path)) is not None:
        shown[TRAINER_STATE_FILE] = state
    if kind.repo_type == "dataset" and (record := shared_provenance(path)) is not None and record[0] in files:
        shown[record[0]] = record[1]
    api = HfApi(token=token)
    message = message or f"Upload {kind.what} with worldpolicy push"
    done: list[Any] = []  # each commit that landed (or that huggingface_hub skipped, the branch holding its files)
    made = 0  # of which commits made
    batches: list[list[str]] = []  # the commits to make, once the branch's files are compared with these
    try:
        if dry_run:
            head = _dry_run_head(api, repo_id, kind.repo_type, private, revision)
        else:
            api.create_repo(repo_id, repo_type=kind.repo_type, private=private, exist_ok=True)
            if private and not api.repo_info(repo_id, repo_type=kind.repo_type).private:
                _refuse_public(repo_id, kind.repo_type)
            if revision is not None:
                api.create_branch(repo_id, branch=revision, repo_type=kind.repo_type, exist_ok=True)
            # what the branch held as the push began: what it is listed at, and what the first commit goes onto
            head = api.repo_info(repo_id, repo_type=kind.repo_type, revision=revision).sha
        tree = {} if head is None else {entry.path: entry for entry in api.list_repo_tree(
            repo_id, recursive=True, revision=head, repo_type=kind.repo_type) if isinstance(entry, RepoFile)}
        pushed_before = None if head is None else _pushed_before(api, repo_id, kind.repo_type, head, list(tree))
        removed, kept = stale_files(list(tree), files, pushed_before, kind.repo_type)
        unchanged, hashed = held_files(path, files, shown, tree)
        held = set(unchanged)
        sending = [name for name in files if name not in held]
        record = _push_record(files)
        # nothing to change: every file there as it is, nothing to remove, and the record naming these files
        changes = sending or removed or not _holds(tree.get(PUSH_RECORD), record)
        batches = (_push_batches(sending, marker) or [[]]) if changes else []  # [[]]: removals or the record alone
        sent_size = sum(sizes[name] for name in sending)
        if dry_run:
            return PushResult(repo_id, kind.repo_type, kind.what, files, size, None, len(batches), left_out,
                              left_out_size, removed, kept, unchanged, sent_size, dry_run=True,
                              anonymous=not token)
        if batches:
            logger.info("sending %d of them (%.1f MB)%s%s", len(sending), sent_size / 1e6,
                        f", in {len(batches)} commits" if len(batches) > 1 else "",
                        f"; the branch holds the other {len(unchanged)} as they are" if unchanged else "")
        for number, batch in enumerate(batches, 1):
            operations: list[CommitOperationAdd | CommitOperationDelete] = [
                _known_sha256(CommitOperationAdd(name, shown.get(name, str(path / name))), hashed.get(name))
                for name in batch]
            if number == 1 < len(batches):  # cut short after this, the record names what landed, and what it named
                operations.append(CommitOperationAdd(PUSH_RECORD, _push_record(sorted({*(pushed_before or ()),
                                                                                         *files}))))
            if number == len(batches):  # the previous push's leftovers go, and this push is recorded, once all landed
                operations += [CommitOperationDelete(name) for name in removed]
                operations.append(CommitOperationAdd(PUSH_RECORD, record))
            parent = done[-1].oid if done else head
            landed = api.create_commit(
                repo_id=repo_id, operations=operations, repo_type=kind.repo_type, revision=revision,
                commit_message=message if len(batches) == 1 else f"{message} (part {number}/{len(batches)})",
                parent_commit=parent)
            skipped = _skipped(operations)
            if skipped and landed.oid != parent:  # the branch's head now, which the hub never checked against `parent`
                raise BranchMoved(parent, landed.oid)
            done.append(landed)
            made += not skipped
            if len(batches) > 1:
                logger.info("%s part %d/%d (%d files): %s", "the branch held every file of" if skipped else "committed",
                            number, len(batches), len(batch), landed.commit_url)
    except (*_hub_errors(), BranchMoved) as exc:
        raise HubError(_unpushed(path, repo_id, kind.repo_type, revision, exc, done, batches,
                                 anonymous=not token)) from None
    url = str(done[-1].commit_url) if done else f"{_hub_page(repo_id, kind.repo_type)}/commit/{head}"
    return PushResult(repo_id, kind.repo_type, kind.what, files, size, url, made, left_out, left_out_size, removed,
                      kept, unchanged, sent_size)


def held_files(folder: Path, files: list[str], shown: dict[str, bytes],
               tree: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """Of `files` (relative to `folder`; those in `shown` sent as those bytes: `shared_state`, `shared_provenance`),
    those a repository's `tree` (path -> huggingface_hub's RepoFile, at the commit a push goes onto) holds byte for
    byte (`_hub_digest`), which `push` does not send again: a checkpoint pushed over its older self sends only what
    changed; and, of the others, the sha256 of each file read to tell (one the hub keeps in LFS, of the same size),
    which `push` gives huggingface_hub (`_known_sha256`) so that it does not hash the file again."""
    held, hashed = [], {}
    for name in files:
        entry = tree.get(name)
        digest = None if entry is None else _hub_digest(entry, shown.get(name, folder / name))
        if digest is not None and digest == _hub_name(entry):
            held.append(name)
        elif digest is not None and entry.lfs is not None and name not in shown:
            hashed[name] = digest
    return held, hashed


def _holds(entry: Any, content: Path | bytes) -> bool:
    """Whether hub file `entry` (a RepoFile; None: the repository has no such file) holds `content` (`_hub_digest`)."""
    return entry is not None and _hub_digest(entry, content) == _hub_name(entry)


def _hub_name(entry: Any) -> str:
    """The digest hub file `entry` (a RepoFile) is named by: an LFS file's sha256, another's git blob id."""
    return entry.lfs.sha256 if entry.lfs is not None else entry.blob_id


def _hub_digest(entry: Any, content: Path | bytes) -> str | None:
    """`content` (a local file, or the bytes sent for it) by the digest hub file `entry` (a RepoFile) is named by
    (`_hub_name`), computed here (`content_digest`); None, and the file not read, where the sizes differ."""
    size = len(content) if isinstance(content, bytes) else os.path.getsize(content)
    if size != (entry.lfs.size if entry.lfs is not None else entry.size):
        return None
    return content_digest(content, git_blob=entry.lfs is None)


def _known_sha256(operation: Any, sha256: str | None) -> Any:
    """CommitOperationAdd `operation` told its file's sha256 where known (`held_files` read it to compare; None: left
    as it is), which huggingface_hub otherwise computes as it uploads (`UploadInfo.is_hashed` false: its Xet upload in
    the pass that reads the file to send it, its LFS upload in a pass of its own before). The file is still read
    twice, once here and once as it is sent: the comparison decides whether it is sent at all, and huggingface_hub
    takes no digest in place of the bytes. An huggingface_hub that hashes the file as the operation is made (no
    `is_hashed`) has read it already."""
    info = operation.upload_info
    if sha256 is not None and not getattr(info, "is_hashed", True):
        info.sha256 = bytes.fromhex(sha256)
    return operation


def content_digest(content: str | Path | bytes, *, git_blob: bool) -> str:
    """The hex digest the hub names a file's content by: with `git_blob`, git's blob id (the sha1 of `blob SIZE\\0`
    and the content, as `git hash-object` gives it: the hub's `blob_id` of a file not in LFS), else its sha256 (an LFS
    file's oid). `content`: a file, read once in chunks (a multi-GB safetensors is never held whole), or bytes."""
    size = len(content) if isinstance(content, bytes) else os.path.getsize(content)
    digest = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False) if git_blob else hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
        return digest.hexdigest()
    with open(content, "rb") as file:
        return hashlib.file_digest(file, lambda: digest).hexdigest()


def _skipped(operations: list[Any]) -> bool:
    """Whether huggingface_hub skipped the commit of `operations` it was just given: it marks an addition committed
    (`_is_committed`) once a commit carrying it is sent, and sends none where every file is one the branch holds
    already and nothing is deleted (answering with the branch's head). An huggingface_hub without the mark reads as
    one that sent it."""
    from huggingface_hub import CommitOperationAdd

    return not any(getattr(op, "_is_committed", True) for op in operations if isinstance(op, CommitOperationAdd))


def _dry_run_head(api: Any, repo_id: str, repo_type: str, private: bool, revision: str | None) -> str | None:
    """The commit a push would go onto, for a dry run, which makes nothing: branch `revision`'s head (None: main), the
    default branch's where `revision` is not there yet (a push makes it from that), None where the repository is not
    there yet (a push makes it, empty); a `private` push to an existing public one refused, as `push` refuses it."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = api.repo_info(repo_id, repo_type=repo_type)
    except RepositoryNotFoundError as exc:
        if isinstance(exc, GatedRepoError):
            raise
        return None
    if private and not info.private:
        _refuse_public(repo_id, repo_type)
    if revision is None:
        return info.sha
    try:
        return api.repo_info(repo_id, repo_type=repo_type, revision=revision).sha
    except RevisionNotFoundError:
        return info.sha


class BranchMoved(Exception):
    """A commit of `push` that huggingface_hub skipped, the branch holding every file it sends already, where the
    branch's head it answered with is not the commit the push pinned it to: huggingface_hub skips such a commit before
    the hub sees its `parent_commit`, so the hub refuses no change made in between (another push, an edit on its
    page), which the push's next commits would then go onto. Said as the hub's 412 is (`_unpushed`)."""

    def __init__(self, parent: str, head: str) -> None:
        super().__init__(f"the branch is at {head}, not at {parent}, the commit this push went onto")


def _push_batches(files: list[str], marker: str) -> list[list[str]]:
    """`files` in commits of at most `PUSH_COMMIT_FILES`, the one that marks the folder's kind (`marker`:
    model_index.json, base_model.json, meta/info.json) in the last, so that a push cut short leaves no repository that
    reads as this checkpoint or dataset whole (its weights or episodes missing)."""
    ordered = [name for name in files if name != marker] + [name for name in files if name == marker]
    return [ordered[start:start + PUSH_COMMIT_FILES] for start in range(0, len(ordered), PUSH_COMMIT_FILES)]


def _push_record(files: list[str]) -> bytes:
    """What `PUSH_RECORD` holds after a push of `files`."""
    return json.dumps({"about": "the files `worldpolicy push` last sent here, which the next push removes where its "
                       "folder no longer has them", "files": files}, indent=1).encode()


def _pushed_before(api: Any, repo_id: str, repo_type: str, head: str, remote: list[str]) -> list[str] | None:
    """The files the previous push sent to the repository (its `PUSH_RECORD` at commit `head`), None where there is
    none (`remote` lacks it: a repository made on the hub's page, or pushed by a worldpolicy from before the record)
    or it is unreadable."""
    if PUSH_RECORD not in remote:
        return None
    try:
        record = read_json(Path(api.hf_hub_download(repo_id, PUSH_RECORD, repo_type=repo_type, revision=head)),
                           PUSH_RECORD)
    except ValueError:
        return None
    pushed = record.get("files") if isinstance(record, dict) else None
    return pushed if isinstance(pushed, list) and all(isinstance(name, str) for name in pushed) else None


def _unpushed(path: Path, repo_id: str, repo_type: str, revision: str | None, exc: Exception, done: list[Any],
              batches: list[list[str]], *, anonymous: bool) -> str:
    """The one line for a push the hub refused or could not take (`exc`) after the commits `done` of `batches` landed:
    why, what landed, and what to do. `anonymous`: no token was sent (a dry run's), so a 401 asks for one; it does not
    say the one sent is wrong."""
    from huggingface_hub.errors import GatedRepoError

    status = 412 if isinstance(exc, BranchMoved) else _status(exc)
    if isinstance(exc, GatedRepoError):  # its files (the push's record) are read only by an account given access
        fix = (f"it is a gated repository, whose files only an account given access reads (accept its terms on "
               f"{_hub_page(repo_id, repo_type)}): " + (f"log in ({LOG_IN})" if anonymous else
                                                        f"log in with such an account's token ({LOG_IN})"))
    elif status == 401 and anonymous:
        fix = f"the hub reads it only with a token, and none was sent: log in ({LOG_IN})"
    elif status == 401:
        fix = BAD_TOKEN
    elif status == 403:  # a read-only token, or an owner it may not write to (`nvidia/...`)
        fix = (f"this token may not write to {repo_id.split('/')[0]!r}'s repositories: log in with one that has "
               f"write access there ({LOG_IN}), or push to a repository of your own")
    elif status == 412:  # `parent_commit` no longer the branch's head
        fix = (f"the repository changed on the hub while this push ran (an edit on its page, another push), and "
               f"nothing of it was overwritten: see what changed ({_hub_page(repo_id, repo_type)}/commits/"
               f"{revision or 'main'}), then run again to push over it")
    elif status is not None and status < 500:
        fix = "the hub refused it: fix what it says and run again"
    else:
        fix = "run again once the hub can be reached"
    landed = "" if not done else (
        f"{len(done)} of its {len(batches)} commits landed ({sum(map(len, batches[:len(done)]))} files; a run again "
        f"sends only what they lack), the last {done[-1].commit_url}; ")
    return (f"could not push {str(path)!r} to the hub's {repo_type} repository {repo_id!r} ({_why(exc)}); {landed}"
            f"nothing was changed here, {fix}")


def stale_files(remote: list[str], files: list[str], pushed_before: list[str] | None,
                repo_type: str) -> tuple[list[str], list[str]]:
    """What a repository of `repo_type` holding `remote` keeps that a push of `files` does not send, sorted, as
    (removed, kept). Removed, so that the repository holds exactly the folder's checkpoint or dataset: every file a
    loader reads as part of one (`LOADED_PATTERNS`: an older checkpoint's shards, adapter or tokenizer, read beside this
    one's; a dataset's meta/episodes and data files past the episodes it now holds, which LeRobot would read as its own;
    a checkpoint's JSON files a loader reads, `LOADED_TOP_JSON` at the top (an older embodiment.json or training state)
    and any in a folder this push sends into, one of the checkpoint's parts (an older config or weight index), which
    diffusers reads as the part's, or in a folder whose weights go, an older checkpoint's part this one lacks (its
    config alone there, a snapshot's `engine.loading` reads as a part whose weights are yet to fetch)), whoever wrote
    it, and what the previous push sent there (`pushed_before`, its `PUSH_RECORD`; one cut short, what it may have
    landed too) that the folder no longer has; `push` removes them in its last commit, and the hub's history keeps them.
    Kept: the rest, which no push of worldpolicy sent and no loader reads (a card, its figures, a license, an
    evaluation's results in JSON added on the hub's page, another folder's JSON), which `push` says. The repository's
    own hidden files (`.gitattributes`, `PUSH_RECORD`, `.github/`), which `PUSH_IGNORE` never sends, are kept unsaid."""
    from huggingface_hub.utils import filter_repo_objects

    sent, ours = set(files), set(pushed_before or ())
    left = sorted(name for name in filter_repo_objects(remote, ignore_patterns=list(PUSH_IGNORE)) if name not in sent)
    loaded = set(filter_repo_objects(left, allow_patterns=list(LOADED_PATTERNS[repo_type])))
    if repo_type == "model":
        # the checkpoint's parts (transformer/, vae/...) and an older one's whose weights go (a part this one lacks)
        parts = {name.split("/")[0] for name in [*files, *loaded] if "/" in name}
        in_parts = [f"{part}/*.json" for part in parts]
        loaded.update(filter_repo_objects(left, allow_patterns=[*LOADED_TOP_JSON, *in_parts]))
    return ([name for name in left if name in ours or name in loaded],
            [name for name in left if name not in ours and name not in loaded])


def _refuse_public(repo_id: str, repo_type: str) -> NoReturn:
    """`private` asked of a repository that already exists and is public: the hub keeps a repository's visibility
    (`create_repo` only sets it on one it makes), so what is pushed would be public. Refused before anything is
    sent."""
    raise ValueError(f"private=True: the {repo_type} repository {repo_id!r} already exists and is public, so what is "
                     f"pushed would be public; nothing was sent. Make it private first (`hf repos settings {repo_id}"
                     f"{_type_flag(repo_type)} --private`, or {_hub_page(repo_id, repo_type)}/settings), or leave "
                     "private out to push it public")
