"""robomimic-format HDF5 demonstrations (robomimic, LIBERO, MimicGen) → a LeRobot v3 dataset (`dataset import-hdf5`).

    from worldpolicy.data.from_hdf5 import import_hdf5
    import_hdf5("libero_10/KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5", "data/stove").dataset.num_episodes

The file's layout (robomimic's, which LIBERO and MimicGen keep): `data/demo_N/` per demonstration with `actions`
[T, A], `obs/<key>` [T, ...] (low-dimensional vectors and uint8 [T, H, W, 3] camera images), `rewards`, `dones`,
`states`; `data.attrs["env_args"]` JSON (its `env_kwargs.control_freq`: the control rate, the dataset's fps; its
`controller_configs`: what the actions are, `robosuite_actions`); LIBERO adds `data.attrs["problem_info"]` JSON (its
`language_instruction`: the task) and `macros_image_convention` ("opengl": images stored bottom row first, flipped
here); `mask/<name>` lists the demos of a filter group (`train`, `valid`). Each demo becomes an episode, in numeric
order (demo_2 before demo_10): the chosen low-dimensional obs keys (default: the robot's own, not the simulator's
object state) side by side as `observation.state` (a column per element, `robot0_eef_pos.x`), `actions` as `action`
(its columns named after the robosuite controller where the file says it: `eef_dx`, ..., `gripper`), both in the
file's own dtype (bit for bit), `rewards` and `dones` as LeRobot's `next.reward` and `next.done`, each camera as the
video `observation.images.<key>` (`_image` / `_rgb` left off), and each episode's success where sparse rewards say
it. The MuJoCo states are not copied. Everything is checked, with shapes read from the file's metadata only (and the
rewards), before a frame is written; the images are read, flipped and encoded a block of frames at a time.
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

from ..errors import brief_list, is_real, typo_note
from ..extras import extra_imports
from ..fileio import dataset_lock
from .checks import check_out, check_rate
from .edit import BLOCK_FRAMES
from .layout import NUMERIC_DTYPES
from .lerobot import LeRobotDataset, LeRobotDatasetWriter
from .observations import IMAGE_PREFIX, STATE_FEATURE
from .robosuite_actions import ActionColumns, action_columns

if TYPE_CHECKING:  # annotations only: h5py comes with the `train` extra
    import h5py

__all__ = ["FLIPS", "IMPORT_SOURCE", "ImportResult", "import_hdf5"]

logger = logging.getLogger(__name__)

IMPORT_SOURCE = "worldpolicy dataset import-hdf5"  # `provenance["source"]`: what --overwrite may replace
ACTION_FEATURE = "action"
FLIPS = ("vertical", "rotate180", "none")  # `flip_images`: how stored images are turned (`_flipped`)
CAMERA_SUFFIXES = ("_image", "_rgb")  # robomimic's `agentview_image`, LIBERO's `agentview_rgb`: the camera's name
# per-element column names of a vector obs key whose name and width suggest what it holds: a guess, which the
# provenance states (`state_column_guesses`); robosuite's quaternions are x, y, z, w
AXES = {"pos": (("x", "y", "z"), "a 3-D position"), "quat": (("x", "y", "z", "w"), "a quaternion in robosuite's order")}
# the robot's own (proprioceptive) obs keys, as robomimic (`robot0_eef_pos`, `robot0_joint_pos`) and LIBERO (`ee_pos`,
# `joint_states`, `gripper_states`) name them; a key relating the robot to something else (`gripper_to_cube_pos`) and
# the rest (`object`, `cube_pos`: the simulator's object state, which a camera policy does not see when deployed) not
PROPRIO = re.compile(r"^(robot\d+_|(ee|eef|joint|gripper)_)")
# the arm's joint count (the width of robosuite's joint controllers' actions), where the obs hold the joint positions
JOINT_KEYS = ("robot0_joint_pos", "joint_states")
# per-step keys of a demo copied as LeRobot's features of that name and dtype
STEP_KEYS = {"rewards": ("next.reward", "float32"), "dones": ("next.done", "bool")}


@dataclass(frozen=True)
class ImportResult:
    """The dataset `import_hdf5` wrote: episode i is the file's demo `demos[i]`; `observation.state` holds
    `state_keys` side by side (`state_left_out`: the low-dimensional obs keys it does not), video `cameras[key]` the
    obs key `key` (`flip`: how its images were turned, one of `FLIPS`); `actions`: what the action columns are."""

    dataset: LeRobotDataset
    demos: tuple[str, ...]
    state_keys: tuple[str, ...]
    cameras: dict[str, str]
    flip: str
    wall_s: float
    actions: ActionColumns
    state_left_out: tuple[str, ...]


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

    `state_keys`: the obs keys that make `observation.state`, in that order (default: the robot's own low-dimensional
    ones, `PROPRIO`, by name, the others left out with a warning; an empty list: no state). `image_keys`: the obs
    keys written as videos (default: every uint8 [H, W, 3] one). `fps`: default the file's `env_args` control_freq.
    `task`: default LIBERO's `problem_info` language_instruction. `flip_images`: one of `FLIPS`: "vertical" turns
    images stored bottom row first right side up, "rotate180" turns them half round as openpi's and OpenVLA's LIBERO
    datasets are (a left-right mirror of "vertical"), "none" keeps them (default: "vertical" when the file says its
    images are stored bottom row first, LIBERO's `macros_image_convention` "opengl", else "none"). `video_codec` as
    the writer takes it (default lossless). `out` as `dataset select` takes it (new or empty, or with `overwrite` an
    earlier import's dataset), appearing only when complete; meta/worldpolicy_provenance.json names the file, the
    demos, the keys, the action columns and how each episode's success was read."""
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
    try:
        opened = h5py.File(given, "r")
    except OSError as exc:  # a download or copy cut short: the superblock says more bytes than the file holds
        raise ValueError(f"path: {str(path)!r} is a damaged HDF5 file ({exc}); copy or download it again") from None
    with opened as file:
        plan = _plan(file, str(path), state_keys, image_keys, fps, task, mask, flip_images)
        out = check_out([given], out, overwrite, [IMPORT_SOURCE], "`dataset import-hdf5`", "imported",
                        "HDF5 file")
        provenance = {"source": IMPORT_SOURCE, "file": os.path.abspath(given), "mask": mask,
                      "demos": list(plan.demos), "state_keys": list(plan.state_keys),
                      "state_keys_left_out": list(plan.state_left_out), "state_column_guesses": plan.guesses,
                      "image_keys": list(plan.cameras), "flip_images": plan.flip, "actions": plan.actions.provenance(),
                      "steps_copied": {key: STEP_KEYS[key][0] for key in plan.step_keys},
                      "success_from": plan.success_from,
                      "env_args": plan.env_args or None}
        with dataset_lock(out, "out", "`dataset import-hdf5`"):
            dataset = _write(file, plan, out, video_codec, overwrite, provenance, progress, state_keys is None)
    wall_s = time.perf_counter() - started
    logger.info("imported %d demos in %.1f s into %s", len(plan.demos), wall_s, dataset.root)
    return ImportResult(dataset, plan.demos, plan.state_keys, plan.cameras, plan.flip, wall_s, plan.actions,
                        plan.state_left_out)


def _warn(plan: _Plan, default_state: bool) -> None:
    """What the dataset holds otherwise than a user may expect: generic action names, state keys left out."""
    if plan.actions.why:
        logger.warning("the action columns are named %s, ... (the file does not say what they are: %s); name them "
                       "in the run file's embodiment columns as the dataset does", plan.actions.names[0],
                       plan.actions.why)
    if default_state and plan.state_left_out:
        logger.warning("observation.state leaves out the obs keys %s: not the robot's own state but the simulator's "
                       "(object poses a camera policy does not see when deployed); to keep them, name every key "
                       "wanted with state_keys=", brief_list(list(plan.state_left_out)))


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
    actions: ActionColumns
    state_left_out: tuple[str, ...]
    guesses: dict[str, str]  # state obs key → how its column names were guessed
    step_keys: tuple[str, ...]  # of `STEP_KEYS`, those every demo holds
    success: tuple[bool, ...] | None  # per demo, where its rewards say
    success_from: str  # how `success` was read, or why it was not


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
    state = sorted(k for k in vectors if PROPRIO.match(k) and "_to_" not in k) if state_keys is None \
        else list(state_keys)
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
        held = ("no low-dimensional obs key" if not vectors else
                f"no obs key of the robot's own state (the low-dimensional {brief_list(sorted(vectors))} are the "
                "simulator's; name them with state_keys= to keep them)")
        empty = (("state_keys=[]" if state_keys is not None else held) + " and "
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
    step_keys = _step_keys(data, demos, path)
    success, success_from = _success(data, demos, env_args) if "rewards" in step_keys else \
        (None, "not known: the file holds no rewards")

    convention = _text(data.attrs.get("macros_image_convention"))
    flip = ("vertical" if convention == "opengl" else "none") if flip_images is None else flip_images
    kwargs = env_args.get("env_kwargs")
    robots = kwargs.get("robots") if isinstance(kwargs, dict) else None
    robot_type = robots[0] if isinstance(robots, list) and len(robots) == 1 and isinstance(robots[0], str) else None

    videos = {key: IMAGE_PREFIX + name for key, name in _camera_names(cameras).items()}
    features: dict[str, dict[str, Any]] = {}
    guesses: dict[str, str] = {}
    if state:
        dtype = np.result_type(*(shapes[key][1] for key in state))
        names = []
        for key in state:
            elements, guess = _element_names(key, shapes[key][0])
            names += elements
            if guess:
                guesses[key] = guess
        features[STATE_FEATURE] = {"dtype": dtype.name, "shape": [len(names)], "names": names}
    joints = next((int(shapes[k][0][0]) for k in JOINT_KEYS if k in vectors and len(shapes[k][0]) == 1), None)
    columns = action_columns(env_args, actions.shape[1], joints)
    features[ACTION_FEATURE] = {"dtype": actions.dtype.name, "shape": [actions.shape[1]], "names": columns.names}
    for key in step_keys:
        feature, step_dtype = STEP_KEYS[key]
        features[feature] = {"dtype": step_dtype, "shape": [1], "names": None}
    for key, feature in videos.items():
        h, w, _ = shapes[key][0]
        features[feature] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"]}
    return _Plan(tuple(demos), tuple(state), videos, features, fps, task, flip, robot_type, env_args, columns,
                 tuple(sorted(vectors - set(state))), guesses, step_keys, success, success_from)


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
                         f"{where}; its obs keys are {brief_list(sorted(shapes))}{typo_note(unknown, shapes)}")
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


def _step_keys(data: h5py.Group, demos: list[str], path: str) -> tuple[str, ...]:
    """Those of `STEP_KEYS` (`rewards`, `dones`) the demos hold, each checked: a number per step in every demo."""
    import h5py

    found = []
    for key in STEP_KEYS:
        items = {name: data[name].get(key) for name in demos}
        held = [name for name, item in items.items() if isinstance(item, h5py.Dataset)]
        if not held:
            continue
        if len(held) < len(demos):
            lacking = [name for name in demos if name not in held]
            raise ValueError(f"{path!r}: {brief_list(lacking)} hold no {key} but {brief_list(held)} do; choose with "
                             f"mask= demos alike, or fix the file")
        for name, item in items.items():
            length = data[name]["actions"].shape[0]
            if item.shape not in ((length,), (length, 1)) or (item.dtype.name not in NUMERIC_DTYPES
                                                             and item.dtype != np.bool_):
                raise ValueError(f"{path!r} data/{name}/{key} is {_held(item)}; it must hold a number per step, "
                                 f"[{length}] as its actions do")
        found.append(key)
    return tuple(found)


def _success(data: h5py.Group, demos: list[str], env_args: dict[str, Any]) -> tuple[tuple[bool, ...] | None, str]:
    """Whether each demo succeeded, read from sparse rewards (robosuite's and LIBERO's without reward shaping: 0 until
    the task is done, then one positive value, robomimic's `reward_scale`): its last reward that value. Shaped rewards
    say nothing of success, nor do robomimic's `dones` (its done_mode 1 and 2 mark every demo's last step done).
    Returns (None, why) where they cannot say."""
    kwargs = env_args.get("env_kwargs")
    if isinstance(kwargs, dict) and kwargs.get("reward_shaping"):
        return None, "not known: the rewards are shaped (env_args env_kwargs.reward_shaping)"
    rewards = [np.asarray(data[name]["rewards"][()], dtype=np.float64).reshape(-1) for name in demos]
    values = np.unique(np.concatenate(rewards))
    if len(values) == 1:
        return None, f"not known: every reward is {float(values[0])}"
    if len(values) != 2 or values[0] != 0 or not values[1] > 0:
        return None, (f"not known: the rewards are not sparse (0, then one positive value when done) but take "
                      f"{len(values)} values ({brief_list([float(v) for v in values[:4]])}"
                      + (", ...)" if len(values) > 4 else ")"))
    return (tuple(bool(r[-1] == values[1]) for r in rewards),
            f"the last step's reward: {float(values[1])} (the sparse rewards' value once the task is done)")


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
        return check_rate(fps)
    kwargs = env_args.get("env_kwargs")
    rate = kwargs.get("control_freq") if isinstance(kwargs, dict) else None
    if is_real(rate) and rate > 0:
        return float(rate)
    if rate is not None:  # said, but no rate a dataset is written at (JSON's Infinity, NaN, 0, text)
        raise ValueError(f"fps: {path!r} data.attrs['env_args'] env_kwargs.control_freq is {rate!r}, not a control "
                         "rate (accepted: a positive finite number of steps per second); give fps=, the rate the "
                         "demos were recorded at")
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


def _element_names(key: str, shape: tuple[int, ...]) -> tuple[list[str], str | None]:
    """The state columns of obs key `key` (`robot0_eef_pos.x`, `ee_ori.0`, or `key` for a scalar) and, where they
    are named by axis, what that guesses: a `*pos` of 3 a position (not a joint's, `joint_pos`, nor a gripper's
    finger positions, `qpos`), a `*quat` of 4 a quaternion in robosuite's x, y, z, w order."""
    if not shape:
        return [key], None
    width = int(shape[0])
    for end, (axes, what) in AXES.items():
        if key.endswith(end) and len(axes) == width and "joint" not in key and not key.endswith("qpos"):
            return ([f"{key}.{axis}" for axis in axes],
                    f"{', '.join(axes)}: guessed from the name's ending {end!r} and width {width} to be {what}")
    return [f"{key}.{i}" for i in range(width)], None


def _write(file: h5py.File, plan: _Plan, out: Path, codec: str, overwrite: bool, provenance: dict[str, Any],
           progress: bool, default_state: bool) -> LeRobotDataset:
    """Each demo as an episode (staged, published when complete: an error or Ctrl-C leaves `out` as it was), its images
    read, flipped where asked and encoded `BLOCK_FRAMES` steps at a time. The plan's warnings come once the writer
    has taken `codec` and the frame sizes, so a refused setting is not preceded by them."""
    from ..logcapture import progress_bar

    state_dtype = np.dtype(plan.features[STATE_FEATURE]["dtype"]) if plan.state_keys else None
    with LeRobotDatasetWriter(out, plan.fps, plan.features, plan.robot_type, video_codec=codec, overwrite=overwrite,
                              provenance=provenance) as writer:
        _warn(plan, default_state)
        for i, name in enumerate(progress_bar(plan.demos, desc=f"importing {len(plan.demos)} demos", unit="demo",
                                              disable=not progress)):
            demo = file["data"][name]
            actions = demo["actions"][()]
            frames = {ACTION_FEATURE: actions}
            if plan.state_keys:
                parts = [np.asarray(demo["obs"][key][()]).reshape(len(actions), -1) for key in plan.state_keys]
                frames[STATE_FEATURE] = np.concatenate(parts, axis=1).astype(state_dtype, copy=False)
            for key in plan.step_keys:
                feature, dtype = STEP_KEYS[key]
                values = np.asarray(demo[key][()]).reshape(len(actions))
                frames[feature] = values != 0 if dtype == "bool" else values.astype(dtype)
            videos = writer.stream_videos(len(actions))
            for start in range(0, len(actions), BLOCK_FRAMES):
                stop = min(start + BLOCK_FRAMES, len(actions))
                blocks = {feature: demo["obs"][key][start:stop] for key, feature in plan.cameras.items()}
                videos.append({k: _flipped(v, plan.flip) for k, v in blocks.items()})
            writer.add_episode(frames, videos, plan.task, success=None if plan.success is None else plan.success[i])
        return writer.finalize()


def _flipped(frames: np.ndarray, flip: str) -> np.ndarray:
    """[T, H, W, 3] frames turned as `flip` (one of `FLIPS`) says."""
    if flip == "none":
        return frames
    return np.ascontiguousarray(frames[:, ::-1] if flip == "vertical" else frames[:, ::-1, ::-1])
