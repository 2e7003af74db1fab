"""robomimic-format HDF5 demonstrations (robomimic, LIBERO, MimicGen) → a LeRobot v3 dataset (`dataset import-hdf5`).

    from worldpolicy.data.from_hdf5 import import_hdf5
    import_hdf5("libero_10/KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5", "data/stove").dataset.num_episodes

The file's layout (robomimic's, which LIBERO and MimicGen keep): `data/demo_N/` per demonstration with `actions`
[T, A], `obs/<key>` [T, ...] (low-dimensional vectors and uint8 [T, H, W, 3] camera images), `rewards`, `dones`,
`states`; `data.attrs["env_args"]` JSON (its `env_kwargs.control_freq`: the control rate, the dataset's fps); LIBERO
adds `data.attrs["problem_info"]` JSON (its `language_instruction`: the task) and `macros_image_convention`
("opengl": images stored bottom row first, flipped here); `mask/<name>` lists the demos of a filter group (`train`,
`valid`). Each demo becomes an episode, in numeric order (demo_2 before demo_10): the chosen low-dimensional obs keys
side by side as `observation.state` (a column per element, `robot0_eef_pos.x`), `actions` as `action`, both in the
file's own dtype (bit for bit), each camera as the video `observation.images.<key>` (`_image` / `_rgb` left off).
rewards, dones and the MuJoCo states are not copied. Everything is checked, with shapes read from the file's metadata
only, before a frame is written; the images are read, flipped and encoded a block of frames at a time.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import brief_list
from ..extras import extra_imports
from .checks import check_out
from .edit import BLOCK_FRAMES
from .layout import NUMERIC_DTYPES
from .lerobot import LeRobotDataset, LeRobotDatasetWriter
from .observations import IMAGE_PREFIX, STATE_FEATURE

if TYPE_CHECKING:  # annotations only: h5py comes with the `train` extra
    import h5py

__all__ = ["FLIPS", "IMPORT_SOURCE", "ImportResult", "import_hdf5"]

logger = logging.getLogger(__name__)

IMPORT_SOURCE = "worldpolicy dataset import-hdf5"  # `provenance["source"]`: what --overwrite may replace
ACTION_FEATURE = "action"
FLIPS = ("vertical", "rotate180", "none")  # `flip_images`: how stored images are turned (`_flipped`)
CAMERA_SUFFIXES = ("_image", "_rgb")  # robomimic's `agentview_image`, LIBERO's `agentview_rgb`: the camera's name
# per-element column names of a vector obs key whose name says what it holds (robosuite's quaternions are x, y, z, w)
AXES = {"pos": ("x", "y", "z"), "quat": ("x", "y", "z", "w")}


@dataclass(frozen=True)
class ImportResult:
    """The dataset `import_hdf5` wrote: episode i is the file's demo `demos[i]`; `observation.state` holds
    `state_keys` side by side, video `cameras[key]` the obs key `key` (`flip`: how its images were turned, one of
    `FLIPS`)."""

    dataset: LeRobotDataset
    demos: tuple[str, ...]
    state_keys: tuple[str, ...]
    cameras: dict[str, str]
    flip: str
    wall_s: float


def import_hdf5(
    path: str | Path,
    out: str | Path,
    *,
    state_keys: Sequence[str] | None = None,
    image_keys: Sequence[str] | None = None,
    fps: float | None = None,
    task: str | None = None,
    mask: str | None = None,
    flip_images: str | None = None,
    video_codec: str = "libx264rgb",
    overwrite: bool = False,
    progress: bool = False,
) -> ImportResult:
    """Write the demos of the robomimic-format HDF5 file at `path` (those of filter group `mask`, default all) as a
    new LeRobot v3 dataset at `out`.

    `state_keys`: the obs keys that make `observation.state`, in that order (default: every low-dimensional one, by
    name; an empty list: no state). `image_keys`: the obs keys written as videos (default: every uint8 [H, W, 3] one).
    `fps`: default the file's `env_args` control_freq. `task`: default LIBERO's `problem_info` language_instruction.
    `flip_images`: one of `FLIPS`: "vertical" turns images stored bottom row first right side up, "rotate180" turns
    them half round as openpi's and OpenVLA's LIBERO datasets are (a left-right mirror of "vertical"), "none" keeps
    them (default: "vertical" when the file says its images are stored bottom row first, LIBERO's
    `macros_image_convention` "opengl", else "none"). `video_codec` as the writer takes it (default lossless). `out` as
    `dataset select` takes it (new or empty, or with `overwrite` an earlier import's dataset), appearing only when
    complete; meta/worldpolicy_provenance.json names the file, the demos and the keys."""
    with extra_imports("reading an HDF5 file"):
        import h5py

    if flip_images is not None and flip_images not in FLIPS:
        raise ValueError(f"flip_images={flip_images!r}; accepted: {', '.join(FLIPS)} or None (the file's convention)")
    given = Path(path).expanduser()
    if not given.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} " + ("is a folder" if given.is_dir() else "does not exist")
                                + "; give a robomimic-format .hdf5 file (robomimic, LIBERO, MimicGen demonstrations)")
    if not h5py.is_hdf5(given):
        raise ValueError(f"path: {str(path)!r} is not an HDF5 file; give a robomimic-format .hdf5 file")
    started = time.perf_counter()
    with h5py.File(given, "r") as file:
        plan = _plan(file, str(path), state_keys, image_keys, fps, task, mask, flip_images)
        out = check_out([given], out, overwrite, [IMPORT_SOURCE], "`dataset import-hdf5`", "imported",
                        "HDF5 file")
        provenance = {"source": IMPORT_SOURCE, "file": os.path.abspath(given), "mask": mask,
                      "demos": list(plan.demos), "state_keys": list(plan.state_keys), "image_keys": list(plan.cameras),
                      "flip_images": plan.flip, "env_args": plan.env_args or None}
        dataset = _write(file, plan, out, video_codec, overwrite, provenance, progress)
    wall_s = time.perf_counter() - started
    logger.info("imported %d demos in %.1f s into %s", len(plan.demos), wall_s, dataset.root)
    return ImportResult(dataset, plan.demos, plan.state_keys, plan.cameras, plan.flip, wall_s)


@dataclass(frozen=True)
class _Plan:
    """What `import_hdf5` writes, every part checked against the file."""

    demos: tuple[str, ...]
    state_keys: tuple[str, ...]
    cameras: dict[str, str]  # obs key → video feature
    features: dict[str, dict[str, Any]]
    fps: float
    task: str
    flip: str
    robot_type: str | None
    env_args: dict[str, Any]


def _plan(file: h5py.File, path: str, state_keys: Sequence[str] | None, image_keys: Sequence[str] | None,
          fps: float | None, task: str | None, mask: str | None, flip_images: str | None) -> _Plan:
    import h5py

    data = file.get("data")
    if not isinstance(data, h5py.Group):
        raise ValueError(f"path: {path!r} has no `data` group (its top level holds {brief_list(sorted(file))}); a "
                         "robomimic-format file keeps its demos as data/demo_0, data/demo_1, ...")
    demos = _demos(file, data, path, mask)
    first = data[demos[0]]
    obs = first.get("obs")
    if not isinstance(obs, h5py.Group):
        raise ValueError(f"{path!r}: data/{demos[0]} has no `obs` group (it holds {brief_list(sorted(first))}); "
                         "robomimic-format demos keep their observations under obs/")
    shapes = {key: (item.shape[1:], item.dtype) for key, item in obs.items() if isinstance(item, h5py.Dataset)}
    images = {key for key, (shape, _) in shapes.items() if len(shape) == 3 and shape[-1] == 3}
    vectors = {key for key, (shape, dtype) in shapes.items() if len(shape) <= 1 and dtype.name in NUMERIC_DTYPES}
    state = sorted(vectors) if state_keys is None else list(state_keys)
    cameras = sorted(images) if image_keys is None else list(image_keys)
    for param, keys, kind, fits in (("state_keys", state, "low-dimensional", vectors),
                                    ("image_keys", cameras, "image", images)):
        _check_keys(param, keys, shapes, kind, fits, f"{path!r} data/{demos[0]}/obs")
    for key in cameras:
        if shapes[key][1] != np.uint8:
            raise ValueError(f"image_keys: obs key {key!r} holds {shapes[key][1]} images; only uint8 RGB [H, W, 3] "
                             "images are written as videos" + (" (leave it out of image_keys)" if image_keys else
                                                               "; give image_keys without it"))
    if not state and not cameras:  # each part as the user made it: a choice given, or what the file lacks
        empty = (("state_keys=[]" if state_keys is not None else "no low-dimensional obs key") + " and "
                 + ("image_keys=[]" if image_keys is not None else "no uint8 image obs key"))
        raise ValueError(f"{empty}: the dataset would hold actions alone; choose obs keys (the obs keys of {path!r} "
                         f"data/{demos[0]}/obs are {brief_list(sorted(shapes))})")
    actions = first.get("actions")
    if not isinstance(actions, h5py.Dataset) or actions.ndim != 2 or actions.dtype.name not in NUMERIC_DTYPES:
        raise ValueError(f"{path!r}: data/{demos[0]}/actions is {_held(actions)}; robomimic-format demos hold actions "
                         "[T, A]")
    env_args = _json_attr(data, "env_args", path)
    fps = _fps(fps, env_args, path)
    task = _task(task, _json_attr(data, "problem_info", path), env_args, path)
    for name in demos:  # each demo's shapes (metadata only): after the file-wide checks, which a user fixes first
        _check_demo(data[name], name, path, state + cameras, shapes, actions.shape[1], actions.dtype)

    convention = _text(data.attrs.get("macros_image_convention"))
    flip = ("vertical" if convention == "opengl" else "none") if flip_images is None else flip_images
    kwargs = env_args.get("env_kwargs")
    robots = kwargs.get("robots") if isinstance(kwargs, dict) else None
    robot_type = robots[0] if isinstance(robots, list) and len(robots) == 1 and isinstance(robots[0], str) else None

    videos = {key: IMAGE_PREFIX + name for key, name in _camera_names(cameras).items()}
    features: dict[str, dict[str, Any]] = {}
    if state:
        dtype = np.result_type(*(shapes[key][1] for key in state))
        names = [name for key in state for name in _element_names(key, shapes[key][0])]
        features[STATE_FEATURE] = {"dtype": dtype.name, "shape": [len(names)], "names": names}
    features[ACTION_FEATURE] = {"dtype": actions.dtype.name, "shape": [actions.shape[1]],
                                "names": [f"action.{i}" for i in range(actions.shape[1])]}
    for key, feature in videos.items():
        h, w, _ = shapes[key][0]
        features[feature] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    return _Plan(tuple(demos), tuple(state), videos, features, fps, task, flip, robot_type, env_args)


def _demos(file: h5py.File, data: h5py.Group, path: str, mask: str | None) -> list[str]:
    """The demos to import, in numeric order: all of `data`'s groups, or those filter group `mask` lists."""
    import h5py

    found = [name for name, item in data.items() if isinstance(item, h5py.Group)]
    if not found:
        raise ValueError(f"{path!r}: the `data` group holds no demos (it holds {brief_list(sorted(data))}); a "
                         "robomimic-format file keeps them as data/demo_0, data/demo_1, ...")
    if mask is None:
        return sorted(found, key=_numeric_order)
    masks = file.get("mask")
    groups = sorted(masks) if isinstance(masks, h5py.Group) else []
    if mask not in groups:
        has = f"the filter groups {brief_list(groups)}; choose one of them, or" if groups else \
            "no filter groups (no `mask` group);"
        raise ValueError(f"mask={mask!r}: {path!r} has {has} leave mask out: every demo")
    listed = [_text(name) for name in np.asarray(masks[mask][()]).reshape(-1)]
    missing = [name for name in listed if name not in found]
    if missing:
        raise ValueError(f"mask={mask!r}: mask/{mask} of {path!r} lists {brief_list(missing)}, which data does not "
                         "hold; the file is inconsistent")
    if not listed:
        raise ValueError(f"mask={mask!r}: mask/{mask} of {path!r} lists no demos; choose another filter group")
    return sorted(dict.fromkeys(listed), key=_numeric_order)


def _numeric_order(name: str) -> list[Any]:
    """demo_2 before demo_10: the name's digit runs compared as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def _check_keys(param: str, keys: list[str], shapes: dict[str, Any], kind: str, fits: set[str], where: str) -> None:
    unknown = [key for key in keys if key not in shapes]
    if unknown:
        raise ValueError(f"{param}: {brief_list(unknown)} {'is' if len(unknown) == 1 else 'are'} not an obs key of "
                         f"{where}; its obs keys are {brief_list(sorted(shapes))}")
    wrong = [key for key in keys if key not in fits]
    if wrong:
        raise ValueError(f"{param}: {brief_list(wrong)} {'is' if len(wrong) == 1 else 'are'} not {kind} obs data "
                         f"({', '.join(f'{k}: {shapes[k][1]} {list(shapes[k][0])} per step' for k in wrong)}); the "
                         f"{kind} obs keys of {where} are {brief_list(sorted(fits))}")
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ValueError(f"{param}: {brief_list(twice)} given more than once; name each obs key once")


def _check_demo(demo: h5py.Group, name: str, path: str, keys: list[str], shapes: dict[str, Any], width: int,
                dtype: np.dtype) -> None:
    """Every chosen obs key there with the first demo's shape and dtype, as many steps as actions (and num_samples)."""
    import h5py

    where = f"{path!r} data/{name}"
    actions = demo.get("actions")
    if not isinstance(actions, h5py.Dataset) or actions.ndim != 2 or actions.shape[1] != width \
            or actions.dtype != dtype:
        raise ValueError(f"{where}/actions is {_held(actions)}; every demo's actions must be {dtype} [T, {width}] as "
                         "the first's")
    length = actions.shape[0]
    if length < 1:
        raise ValueError(f"{where} has no steps (actions {actions.shape}); leave it out (mask) or fix the file")
    samples = demo.attrs.get("num_samples")
    if samples is not None and int(np.asarray(samples).reshape(-1)[0]) != length:
        raise ValueError(f"{where}: num_samples says {int(np.asarray(samples).reshape(-1)[0])} steps but actions hold "
                         f"{length}; the file is inconsistent")
    obs = demo.get("obs")
    held = sorted(obs) if isinstance(obs, h5py.Group) else []
    for key in keys:
        item = obs.get(key) if isinstance(obs, h5py.Group) else None
        if not isinstance(item, h5py.Dataset):
            raise ValueError(f"{where}/obs has no {key!r} (its obs keys are {brief_list(held)}); every demo needs "
                             "the chosen keys: choose with state_keys= and image_keys= keys every demo holds, or "
                             "with mask= demos that hold these")
        if (item.shape[1:], item.dtype) != shapes[key]:
            raise ValueError(f"{where}/obs/{key} is {item.dtype} {list(item.shape[1:])} per step, the first demo's "
                             f"{shapes[key][1]} {list(shapes[key][0])}; every demo must hold it alike")
        if item.shape[0] != length:
            raise ValueError(f"{where}: obs/{key} holds {item.shape[0]} steps and actions {length}; each step's "
                             "observation goes with its action, so the lengths must match")


def _held(item: Any) -> str:
    """What an HDF5 member that should be a dataset is, for an error: its dtype and shape, a group, or missing."""
    if item is None:
        return "missing"
    return f"{item.dtype} {item.shape}" if hasattr(item, "dtype") else "a group"


def _text(value: Any) -> str | None:
    """An HDF5 attribute or mask entry as text (h5py gives str, bytes or a numpy scalar of either), else None."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    return str(value) if isinstance(value, (str, np.str_)) else None


def _json_attr(data: h5py.Group, name: str, path: str) -> dict[str, Any]:
    """`data.attrs[name]` as a JSON object (`env_args`, LIBERO's `problem_info`), {} when absent."""
    text = _text(data.attrs.get(name))
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path!r}: data.attrs[{name!r}] is not JSON ({exc.msg} at character {exc.pos})") from None
    return value if isinstance(value, dict) else {}


def _fps(fps: float | None, env_args: dict[str, Any], path: str) -> float:
    if fps is not None:
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps={fps!r}; accepted: a positive number of frames per second")
        return float(fps)
    kwargs = env_args.get("env_kwargs")
    rate = kwargs.get("control_freq") if isinstance(kwargs, dict) else None
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
        return float(rate)
    raise ValueError(f"fps: {path!r} does not say its control rate (data.attrs['env_args'] has no "
                     "env_kwargs.control_freq); give fps=, the rate the demos were recorded at (robosuite's default: "
                     "20)")


def _task(task: str | None, problem_info: dict[str, Any], env_args: dict[str, Any], path: str) -> str:
    if task is not None:
        if not isinstance(task, str) or not task.strip():
            raise ValueError(f"task={task!r}; accepted: the instruction the demos carry out, as text")
        return task
    instruction = problem_info.get("language_instruction")
    if isinstance(instruction, str) and instruction.strip():
        return instruction.strip()
    env = env_args.get("env_name")
    raise ValueError(f"task: {path!r} holds no instruction (no language_instruction in data.attrs['problem_info'], "
                     "as LIBERO writes)" + (f"; its env is {env!r}" if isinstance(env, str) else "")
                     + "; give task=, the instruction the demos carry out (the prompt training conditions on)")


def _camera_names(keys: list[str]) -> dict[str, str]:
    """Obs key → camera name: `agentview_image` → `agentview`, each key whole where two would get one name."""
    short = {key: next((key.removesuffix(s) for s in CAMERA_SUFFIXES if key.endswith(s) and key != s), key)
             for key in keys}
    counts = collections.Counter(short.values())
    return {key: name if counts[name] == 1 else key for key, name in short.items()}


def _element_names(key: str, shape: tuple[int, ...]) -> list[str]:
    """The state columns of obs key `key`: `robot0_eef_pos.x`, `ee_ori.0`, or `key` for a scalar."""
    width = int(shape[0]) if shape else 1
    if not shape:
        return [key]
    axes = next((names for end, names in AXES.items() if key.endswith(end) and len(names) == width), None)
    return [f"{key}.{axis}" for axis in axes] if axes else [f"{key}.{i}" for i in range(width)]


def _write(file: h5py.File, plan: _Plan, out: Path, codec: str, overwrite: bool, provenance: dict[str, Any],
           progress: bool) -> LeRobotDataset:
    """Each demo as an episode (staged, published when complete: an error or Ctrl-C leaves `out` as it was), its images
    read, flipped where asked and encoded `BLOCK_FRAMES` steps at a time."""
    from tqdm.auto import tqdm

    state_dtype = np.dtype(plan.features[STATE_FEATURE]["dtype"]) if plan.state_keys else None
    with LeRobotDatasetWriter(out, plan.fps, plan.features, plan.robot_type, video_codec=codec, overwrite=overwrite,
                              provenance=provenance) as writer:
        for name in tqdm(plan.demos, desc=f"importing {len(plan.demos)} demos", unit="demo", disable=not progress):
            demo = file["data"][name]
            actions = demo["actions"][()]
            frames = {ACTION_FEATURE: actions}
            if plan.state_keys:
                parts = [np.asarray(demo["obs"][key][()]).reshape(len(actions), -1) for key in plan.state_keys]
                frames[STATE_FEATURE] = np.concatenate(parts, axis=1).astype(state_dtype, copy=False)
            videos = writer.stream_videos(len(actions))
            for start in range(0, len(actions), BLOCK_FRAMES):
                stop = min(start + BLOCK_FRAMES, len(actions))
                blocks = {feature: demo["obs"][key][start:stop] for key, feature in plan.cameras.items()}
                videos.append({k: _flipped(v, plan.flip) for k, v in blocks.items()})
            writer.add_episode(frames, videos, plan.task)
        return writer.finalize()


def _flipped(frames: np.ndarray, flip: str) -> np.ndarray:
    """[T, H, W, 3] frames turned as `flip` (one of `FLIPS`) says."""
    if flip == "none":
        return frames
    return np.ascontiguousarray(frames[:, ::-1] if flip == "vertical" else frames[:, ::-1, ::-1])
