"""The LeRobotDataset v3.0 on-disk layout (ecosystem.md §3): paths, auto columns, info.json checks, errors.

One place for the format's facts so the reader and the writer cannot drift apart.
"""

from __future__ import annotations

import json
import shlex
import string
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..errors import is_integer, is_real
from ..fileio import PROVENANCE_FILE, folder_kind, stored_provenance
from ..hub import snapshot_repo_id

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
DEFAULT_CHUNKS_SIZE = 1000
# The hidden working folders beside a dataset ROOT (`fileio.ScratchFolder`, `.ROOT.KIND-XXXXXXXX`): a writer's staging
# and `dataset from-sim`'s raw frames. A writer removes those killed processes left (`fileio.sweep_scratch_folders`).
STAGING_KIND, FRAMES_KIND = "writing", "frames"
SCRATCH_KINDS = (STAGING_KIND, FRAMES_KIND)
DEFAULT_DATA_FILE_MB = 100
DEFAULT_VIDEO_FILE_MB = 200
# An HDF5 file's signature (its superblock's first bytes: at offset 0, or past a user block of 512·2^n bytes)
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_USER_BLOCKS = (512, 1024, 2048, 4096)
HDF5_HEAD = HDF5_USER_BLOCKS[-1] + len(HDF5_SIGNATURE)

# Columns every data parquet row carries besides the user features (LeRobot's DEFAULT_FEATURES).
AUTO_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
# How LeRobot writes a video feature: shape [H, W, 3] with these axis names. Its policies read the layout from
# names[2] ("channels" → channels last); a video without them cannot be turned into a policy input.
VIDEO_NAMES = ("height", "width", "channels")
# The action and state columns `dataset from-sim` writes (DROID's names): training reads them unless told otherwise.
ACTION_KEYS = ("action.joint_position", "action.gripper_position")
STATE_KEYS = ("observation.state.joint_positions", "observation.state.gripper_position")
CAPTION_SEP = " | "  # how Cosmos3-DROID task strings hold several phrasings of one instruction
# What each episode's task (meta/tasks.parquet) holds in a `dataset from-sim` recording (`--prompt-variants`,
# `from_sim.expert_episodes(prompt_variants=)`): the prompt it ran with, or every wording of its instruction
# (`sim.tasks.Task.wordings`) joined by `CAPTION_SEP`, of which training draws one per example
# (`sampling.caption_variants`). Here, so the parser has it without the sim or train extras.
PROMPT_VARIANTS = {"drawn": "the prompt the episode ran with",
                   "all": "every wording of the episode's instruction (the prompt it ran with first, then the task's "
                          f"own and its paraphrases, filled for its scene) joined by {CAPTION_SEP!r}, of which "
                          "training draws one per example"}
# The step limit of a person's episode (`dataset teleop`; 30 s at 15 Hz): the tasks' own (reach: 60 steps, 4 s) are
# the scripted expert's pace. Here, so the parser has it without the sim or train extras.
TELEOP_MAX_STEPS = 450
NUMERIC_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8",
                  "uint64", "uint32", "uint16", "uint8", "bool")
FEATURE_DTYPES = NUMERIC_DTYPES + ("string", "video", "image")
# Dtypes LeRobot writes that are not read here (set aside, not the dataset): "language", lerobot 0.6's per-frame
# annotation columns `language_persistent` / `language_events` (lists of message structs in the data files)
UNREAD_DTYPES = ("language",)
EPISODE_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)
# worldpolicy's own meta/episodes column (LeRobot keeps and ignores columns it does not know): whether the episode
# succeeded, one bool per episode, where a recording knows (`dataset from-sim`), so a user can filter on it
SUCCESS_COLUMN = "success"
SUCCESS_FILTERS = ("only", "failures")  # which episodes `dataset select --success` keeps: the succeeded, or the others
# What writes the success column, for an error about a dataset without one
SUCCESS_WRITERS = ("`dataset from-sim` records one, `dataset import-hdf5` reads one from sparse rewards, `dataset "
                   "convert` keeps a v2 dataset's")
VIDEO_EPISODE_FIELDS = ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
# The fields info.json's path templates may name (what the reader fills in: `LeRobotDataset._data_path`, `_video_path`)
TEMPLATE_FIELDS = {"data_path": {"chunk_index", "file_index"}, "video_path": {"video_key", "chunk_index", "file_index"}}


class DatasetFormatError(ValueError):
    """A dataset on disk does not follow the LeRobot v3.0 layout. Names the file and the field at fault."""

    def __init__(self, path: str | Path, field: str | None, problem: str):
        self.path, self.field, self.problem = str(path), field, problem
        where = f"{self.path}: field {field!r}" if field else self.path
        super().__init__(f"{where}: {problem}")


class UnreadFeature(DatasetFormatError):
    """A feature LeRobot writes that this reader does not read: a numeric one of more than one dimension or of zero
    width, a camera without 3 channels (a depth map), a language annotation column. A dataset holding one opens
    without it (`LeRobotDataset.unread_features`): its other columns are still a dataset to train on."""


# what a feature's name may be (`feature_name_ok`): info.json's reader refuses others, `dataset select` renames to none
FEATURE_NAME_RULE = ("feature names must be non-empty strings without '/', not '.' or '..' (a video feature's name is "
                     "a folder name)")


def feature_name_ok(name: Any) -> bool:
    """Whether `name` may name a feature (`FEATURE_NAME_RULE`): a video feature's name is a folder of the dataset."""
    return isinstance(name, str) and bool(name) and "/" not in name and name not in (".", "..")


def check_feature(name: str, spec: Any, where: str | Path, field_prefix: str = "features") -> dict[str, Any]:
    """Validate one feature entry; returns it with `shape` as a list of ints. Raises UnreadFeature for a well-formed
    feature this package does not read."""
    field = f"{field_prefix}.{name}"
    if not feature_name_ok(name):
        raise DatasetFormatError(where, field, FEATURE_NAME_RULE)
    if not isinstance(spec, Mapping):
        raise DatasetFormatError(where, field, f"must be an object with dtype and shape, got {type(spec).__name__}")
    dtype = spec.get("dtype")
    if dtype in UNREAD_DTYPES:
        raise UnreadFeature(where, f"{field}.dtype", f"{dtype!r} (LeRobot's language annotations) is not read")
    if dtype not in FEATURE_DTYPES:
        raise DatasetFormatError(where, f"{field}.dtype", f"got {dtype!r}; accepted: {', '.join(FEATURE_DTYPES)}")
    shape = spec.get("shape")
    if (
        not isinstance(shape, (list, tuple))
        or not shape
        or not all(is_integer(s) and s >= 0 for s in shape)
    ):
        raise DatasetFormatError(where, f"{field}.shape",
                                 f"must be a non-empty list of non-negative ints, got {shape!r}")
    if 0 in shape:  # LeRobot stores a zero-width feature (shape [0]) as an empty list per frame: nothing to read
        raise UnreadFeature(where, f"{field}.shape", f"a zero-width feature holds no values, got {list(shape)}")
    if dtype in ("video", "image"):
        if len(shape) != 3 or 3 not in (shape[0], shape[-1]):
            raise UnreadFeature(where, f"{field}.shape", f"a {dtype} feature needs [H, W, 3], got {list(shape)}")
    elif len(shape) != 1:
        raise UnreadFeature(where, f"{field}.shape", f"only 1-D per-frame features are supported, got {list(shape)}")
    names = spec.get("names")
    if dtype not in ("video", "image") and isinstance(names, list) and len(names) != shape[0]:
        raise DatasetFormatError(where, f"{field}.names", f"has {len(names)} names for shape {list(shape)}")
    return {**spec, "shape": [int(s) for s in shape]}


def image_hw(spec: Mapping[str, Any]) -> tuple[int, int]:
    """(height, width) of a video/image feature, whether its shape is [H, W, 3] or [3, H, W]."""
    shape = spec["shape"]
    names = spec.get("names") or []
    channels_first = (names[:1] == ["channels"] or names[:1] == ["channel"]) or (shape[-1] != 3 and shape[0] == 3)
    return (shape[1], shape[2]) if channels_first else (shape[0], shape[1])


def _convert_source(info_path: str | Path) -> str:
    """The SRC to give `dataset convert` for the dataset whose meta/info.json is `info_path`, shell-quoted: its hub id
    where it is a snapshot in the hub's cache (convert then names it so), else its folder as the user gave it."""
    root = Path(info_path).parent.parent
    return shlex.quote(snapshot_repo_id(root, "dataset") or str(root))


def check_info(info: Any, path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate a parsed meta/info.json. Raises DatasetFormatError naming the field. Returns it with the features
    that are read, and the ones that are not (UnreadFeature), by name, each with why."""
    if not isinstance(info, dict):
        raise DatasetFormatError(path, None, f"must hold a JSON object, got {type(info).__name__}")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        hint = (  # `data.convert`; lerobot >= 0.4 (Python >= 3.12 from 0.5) converts v2.1 too (a local one: --root)
            "; convert it into a new v3.0 dataset with "
            f"`worldpolicy dataset convert {_convert_source(path)} --out NEW` "
            "(or lerobot's converter: python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=REPO_ID, "
            "see its --help)" if isinstance(version, str) and version.startswith("v2") else ""
        )
        raise DatasetFormatError(path, "codebase_version", f"got {version!r}; only {CODEBASE_VERSION!r} is read{hint}")
    for key in ("fps", "features", "total_episodes", "total_frames", "data_path"):
        if key not in info:
            raise DatasetFormatError(path, key, "is missing")
    fps = info["fps"]
    if not is_real(fps) or fps <= 0:
        raise DatasetFormatError(path, "fps", f"must be a positive number, got {fps!r}")
    for key in ("total_episodes", "total_frames"):
        value = info[key]
        if not is_integer(value) or value < 0:
            raise DatasetFormatError(path, key, f"must be a non-negative int, got {value!r}")
    if not isinstance(info["features"], dict) or not info["features"]:
        raise DatasetFormatError(path, "features", "must be a non-empty object")
    features, unread = {}, {}
    for name, spec in info["features"].items():
        try:
            features[name] = check_feature(name, spec, path)
        except UnreadFeature as exc:
            unread[name] = f"{exc.field}: {exc.problem}"
    for template_key, fields in TEMPLATE_FIELDS.items():
        template = info.get(template_key)
        if template is None:
            continue
        named = template_fields(template)
        if named is None or not {"chunk_index", "file_index"} <= named or not named <= fields:
            raise DatasetFormatError(
                path, template_key, f"must be a path template with chunk/file indices, got {template!r}; accepted "
                f"fields: {', '.join(sorted(fields))} (v3.0 places episodes by file, not by episode_index)"
            )
        if not inside_dataset(template):
            raise DatasetFormatError(path, template_key, f"must be a path inside the dataset folder, got {template!r}; "
                                                         "accepted: a relative path without '..' parts")
    if any(f["dtype"] == "video" for f in features.values()) and not info.get("video_path"):
        raise DatasetFormatError(path, "video_path", "is missing although the dataset has video features")
    return {**info, "features": features}, unread


def read_provenance(root: Path, info: dict[str, Any]) -> dict[str, Any] | None:
    """How worldpolicy made the dataset at `root` (`fileio.stored_provenance`: its `PROVENANCE_FILE`, else the
    info.json key a dataset written before that file has), or None for one made elsewhere; `info` is info.json's
    document. One that is not a JSON object, or a file that cannot be read, is refused naming the file and field."""
    try:
        stored = stored_provenance(root, info)
    except ValueError as exc:
        raise DatasetFormatError(root / PROVENANCE_FILE, None, str(exc)) from None
    except OSError as exc:
        raise DatasetFormatError(root / PROVENANCE_FILE, None, f"cannot be read: {exc.strerror or exc}") from None
    if stored is None:
        return None
    if not isinstance(stored.value, dict):
        raise DatasetFormatError(stored.path, stored.key, "must be an object (how worldpolicy made the dataset), got "
                                                          f"{type(stored.value).__name__}")
    return stored.value


def datasets_near(folder: Path) -> tuple[Path | None, list[Path]]:
    """Where the dataset is when `folder`, given for one, is not: the dataset it lies inside (its `meta/`, `videos/`),
    else the datasets one or two folders below it (a download folder: LeRobot's cache keeps `<owner>/<name>`). One
    search for every error that names a dataset folder, each phrased for its own setting."""
    for parent in folder.parents:
        if (parent / INFO_PATH).is_file():
            return parent, []
    return None, sorted({info.parents[1] for pattern in ("*/" + INFO_PATH, "*/*/" + INFO_PATH)
                         for info in folder.glob(pattern)})


def held_instead(folder: Path) -> str:
    """For an error about `folder` given as a dataset's, which holds none: what it holds instead, where a marker
    says (`fileio.folder_kind`: a checkpoint, as `dataset eval CHECKPOINT DATASET` gives one, the two swapped), else
    nothing. Every error that finds no dataset in a folder says it with this."""
    found = folder_kind(folder)
    return "" if found is None else f"; it holds {found[0].what} ({found[1]}), not a dataset"


def hdf5_hint(path: Path) -> str:
    """For an error about `path` given as a dataset's folder: how to make one of it where it is an HDF5 file (the
    HDF5 signature at offset 0, or at 512, 1024, ... past a user block), else nothing. Demonstrations often come as
    robomimic / LIBERO HDF5, and `dataset import-hdf5` is the command that reads them."""
    if not path.is_file():  # a folder, missing, a pipe (whose read would wait): nothing to say of it here
        return ""
    try:
        with open(path, "rb") as file:
            head = file.read(HDF5_HEAD)
    except OSError:  # unreadable: nothing to say of it here either
        return ""
    if not any(head[at:at + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for at in (0, *HDF5_USER_BLOCKS)):
        return ""
    return (f"; {str(path)!r} is an HDF5 file: make a dataset of its demonstrations with `worldpolicy dataset "
            f"import-hdf5 {shlex.quote(str(path))} --out NEW`")


def lerobot_episode_column(name: str) -> bool:
    """Whether meta/episodes column `name` is one LeRobot writes (rows, files, tasks, per-episode stats and metadata
    file), not one a recorder added (`success`, an operator's name)."""
    return name in EPISODE_COLUMNS or name.startswith(("videos/", "stats/", "meta/", "data/"))


def inside_dataset(relative: str) -> bool:
    """A path a dataset's own files give (info.json's templates, an image cell's `path`) stays in the dataset's folder:
    relative, no '..' part. Datasets come from others (the hub); what they hold must not read files elsewhere."""
    parts = PurePosixPath(relative).parts
    return not PurePosixPath(relative).is_absolute() and ".." not in parts


def template_fields(template: Any) -> set[str] | None:
    """The fields a `str.format` path template names, or None when it is not one."""
    if not isinstance(template, str):
        return None
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError:  # an unmatched brace
        return None


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetFormatError(path, None, f"{what} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(path, None, f"{what} is not valid JSON: {exc}") from None

