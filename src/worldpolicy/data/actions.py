"""How a dataset's action features read as an embodiment's columns: whose action layout they are (`action_layout`,
read from the features' names and width where that is unambiguous) and how that layout reaches another embodiment's
columns (`action_converter`: as they are, or joint targets turned into end-effector deltas).

Training's windows (`train.data.window_spec`) and a dataset frame's recorded actions (`data.frame`) both map the
actions here, so what a model is trained on and what forward dynamics is given to compare with it are the same values.
The settings an error names are training's (`source_embodiment`, `action_conversion`, `robot`, `action_keys`,
`state_keys`, `dataset`) after `prefix` (`data.`: a training config's `[data]`).

    from worldpolicy.data.actions import action_converter, action_layout, source_embodiment
    source, conversion = action_layout(ds, target, ["action"], ["observation.state"], prefix="data.")
    convert = action_converter(conversion, source_embodiment(source, target=target), target)
    actions, state = convert(recorded_chunk, state_at_its_first_frame)   # in target's columns, physical units
    reader = recorded_actions(ds, target)          # all of that, checked as training checks it, for any stretch:
    reader.chunk(ds.episode(0, videos=False).frames, 10, 18)   # rows 10..17 in target's columns, physical units
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..embodiments import Embodiment, get_embodiment
from .layout import ACTION_KEYS, STATE_KEYS
from .observations import numeric_features

logger = logging.getLogger(__name__)

ACTION_CONVERSIONS = ("none", "joint_to_relative_pose")
DEFAULT_SOURCE = "droid/joint_pos"  # the action layout `dataset from-sim` writes (DROID's joint targets + gripper)
DEFAULT_ROBOT = "panda"  # the robot whose kinematics turn joint targets into end-effector deltas, unless named
RELATIVE_POSE_DIM = 10  # translation (3), rotation as two matrix columns (6), gripper (1)

# (a chunk of the source's actions, its state at the chunk's first frame or None) -> (the target's actions, its state)
Converter = Callable[[np.ndarray, np.ndarray | None], tuple[np.ndarray, np.ndarray | None]]


def action_layout(dataset, target: Embodiment, action_keys: Sequence[str], state_keys: Sequence[str],
                  source: str | None = None, conversion: str | None = None, prefix: str = "") -> tuple[str, str]:
    """(source embodiment, conversion) for `dataset`'s `action_keys` to reach `target`'s columns: `source` and
    `conversion` as given, what is unset read from the dataset where that is unambiguous (`default_source`,
    `default_conversion`), else refused naming the setting. Keys left at their defaults (`layout.ACTION_KEYS`,
    `STATE_KEYS`) that the dataset lacks are refused as the defaults, with the dataset's own keys to set instead;
    whether the keys hold the source's width is the sampler's check (`sampling.sample_training_examples`)."""
    if all(k in numeric_features(dataset) for k in action_keys):
        names = dataset.feature_names(action_keys)
        for layout in (target, *([source_embodiment(source, prefix, target)] if source else [])):
            _refuse_reordered_columns(names, layout, action_keys, prefix)
    source = source or default_source(dataset, action_keys, target, prefix)
    # the source's state row is read too (DROID's joints are converted from the state's start pose), once the action
    # keys are found (else the sampler's check names them first)
    actions_found = all(k in dataset.feature_keys for k in action_keys)
    reads_state = bool(target.state_history
                       or (actions_found and source_embodiment(source, prefix, target).state_history))
    _refuse_absent_default_keys(dataset, action_keys, state_keys, reads_state, prefix)
    return source, conversion or default_conversion(source_embodiment(source, prefix, target), target)


def default_action_keys(dataset, action_keys: Sequence[str] | None = None) -> list[str]:
    """`action_keys` (None: not given) as they are, unless left at the default (`layout.ACTION_KEYS`, the names
    `dataset from-sim` writes) on a dataset that has none of them and one action feature, LeRobot's `action`: then
    `["action"]`. A dataset with several action features (`action` and `action.joint_position`...) keeps the default,
    which `action_layout` refuses naming the dataset's keys."""
    keys = list(ACTION_KEYS) if action_keys is None else list(action_keys)
    if keys != list(ACTION_KEYS) or any(k in dataset.feature_keys for k in keys):
        return keys
    actions = [k for k in numeric_features(dataset) if k == "action" or k.startswith("action.")]
    return ["action"] if actions == ["action"] else keys


def _refuse_reordered_columns(names: Sequence[str], layout: Embodiment, action_keys: Sequence[str],
                              prefix: str) -> None:
    """Actions are read by position: a dataset that names the embodiment's columns in another order (a two-arm
    robot's right arm first) would train each column on another one's values, and setting `source_embodiment`,
    which says the columns are in its order, would do so silently. Refused naming the first columns out of place."""
    if len(names) != layout.action_dim or list(names) == list(layout.columns) or \
            sorted(names) != sorted(layout.columns):
        return
    moved = [f"{c!r} is column {names.index(c)} in the dataset but {i} in {layout.key!r}"
             for i, c in enumerate(layout.columns) if names[i] != c]
    raise ValueError(
        f"{prefix}action_keys={list(action_keys)} hold embodiment {layout.key!r}'s columns in another order "
        f"({'; '.join(moved[:3])}{'; ...' if len(moved) > 3 else ''}): actions are read by position, so each would "
        f"train on another column's values. Give the embodiment's columns in the dataset's order "
        f"({', '.join(names)}), or write the dataset's actions in the embodiment's")


def _refuse_absent_default_keys(dataset, action_keys: Sequence[str], state_keys: Sequence[str], reads_state: bool,
                                prefix: str) -> None:
    """`action_keys` and `state_keys` default to the names `dataset from-sim` writes (DROID's layout); a dataset of
    one's own robot (LeRobot's `action`, `observation.state`) lacks them, and the error named keys the config never
    set. Say they are the default, and which of the dataset's keys to set instead."""
    settings = [("action_keys", action_keys, ACTION_KEYS, "action")]
    if reads_state:  # only a state-conditioned embodiment (the target, or the data's source) reads state_keys
        settings.append(("state_keys", state_keys, STATE_KEYS, "observation.state"))
    for name, keys, default, lerobot in settings:
        if list(keys) != list(default) or all(k in dataset.feature_keys for k in keys):
            continue
        numeric = numeric_features(dataset)
        example = f", e.g. {prefix}{name} = [{lerobot!r}]" if lerobot in numeric else ""
        raise ValueError(f"{prefix}{name}={list(default)} (the default: the names `worldpolicy dataset from-sim` "
                         f"writes) are not among {prefix}dataset's features {numeric}: set {prefix}{name} to the "
                         f"dataset's own keys{example}")


def default_source(dataset, action_keys: Sequence[str], target: Embodiment, prefix: str = "") -> str:
    """The dataset's action layout when `source_embodiment` is unset: the target itself when the dataset names its
    columns as the target's (a 7-joint robot's own 8 columns are not DROID's), else `DEFAULT_SOURCE` for 8 values per
    frame (as before the setting could be unset; a resumed run keeps what it stored: `Trainer.run`)."""
    if not all(k in dataset.feature_keys for k in action_keys):
        return DEFAULT_SOURCE  # the missing key is named by the sampler's check
    names = dataset.feature_names(action_keys)
    default = source_embodiment(DEFAULT_SOURCE)
    if names == list(target.columns):
        return DEFAULT_SOURCE if names == list(default.columns) else target.key
    if len(names) == default.action_dim:
        if names != list(default.columns):  # 8 values of some robot's: the widths agree, the meaning may not
            own = f"{prefix}source_embodiment = {target.key!r} if they are the trained embodiment's columns in its " \
                "order, else " if target.action_dim == len(names) else ""
            logger.warning(
                "%ssource_embodiment is unset and %saction_keys=%s hold 8 columns (%s), not named as %r's (%s): they "
                "are read as its 7 joint targets then the gripper, in that order. If they are another robot's, set "
                "%s%ssource_embodiment to the registered embodiment they belong to, or name them in the dataset (the "
                "action feature's `names` in meta/info.json)", prefix, prefix, list(action_keys), ", ".join(names),
                DEFAULT_SOURCE, ", ".join(default.columns), own, prefix)
        return DEFAULT_SOURCE
    # as wide as the target: perhaps its columns under other names; else no name makes them the target's
    own = (f"If they are {target.key!r}'s columns in its order, set {prefix}source_embodiment = {target.key!r}, or "
           "name them so in the dataset (the `names` of the action feature in `LeRobotDatasetWriter(features=...)`); "
           "else set " if len(names) == target.action_dim else
           f"Embodiment {target.key!r} is {target.action_dim} columns wide: a robot of one's own lists the "
           f"dataset's {len(names)} as its columns; else set ")
    raise ValueError(
        f"{prefix}source_embodiment is unset and {prefix}action_keys={list(action_keys)} hold {len(names)} columns "
        f"({', '.join(names)}): neither {DEFAULT_SOURCE!r}'s {default.action_dim} (the default) nor "
        f"embodiment {target.key!r}'s ({', '.join(target.columns)}). {own}"
        f"{prefix}source_embodiment to the registered embodiment whose columns these are, or {prefix}action_keys to "
        "the keys that hold them"
    )


def default_conversion(source: Embodiment, target: Embodiment) -> str:
    """`none` where the widths agree (as before the setting could be unset); `joint_to_relative_pose` where it is the
    one conversion that fits; else `none`, which `action_converter` refuses naming the settings."""
    return "joint_to_relative_pose" if source.action_dim != target.action_dim and joints_to_pose(source, target) \
        else "none"


def check_conversion(conversion: str, prefix: str = "") -> None:
    """`conversion` is one of `ACTION_CONVERSIONS` (refused naming the setting)."""
    if conversion not in ACTION_CONVERSIONS:
        raise ValueError(f"{prefix}action_conversion={conversion!r}; accepted: {', '.join(ACTION_CONVERSIONS)}")


def source_embodiment(name: str, prefix: str = "", target: Embodiment | None = None) -> Embodiment:
    """The embodiment `name`, whose action layout the dataset's actions are in: `target` itself where it is its key
    (`default_source` reads actions named as its columns so; a checkpoint's own embodiment, the shipped model's
    `panda_reach`, is not in the registry), else the registered one (refused naming the setting)."""
    if target is not None and name == target.key:
        return target
    try:
        return get_embodiment(name)
    except KeyError as exc:
        raise ValueError(f"{prefix}source_embodiment={name!r}: {exc.args[0]}") from None


def joints_to_pose(source: Embodiment, target: Embodiment) -> bool:
    """`encode_relative_pose` turns joint targets plus a gripper column, from the state row's start pose, into
    `RELATIVE_POSE_DIM`-wide per-step end-effector deltas."""
    return (source.layout == "joint_position" and bool(source.state_history) and source.gripper_index is not None
            and target.layout == "relative_pose" and target.action_dim == RELATIVE_POSE_DIM)


def action_converter(conversion: str, source: Embodiment, target: Embodiment, robot: str = DEFAULT_ROBOT,
                     prefix: str = "") -> Converter:
    """`convert(actions, state) -> (actions, state)`: a chunk of `source`'s physical actions (and the source's state
    at the chunk's first frame) in `target`'s columns (and the state row `target` conditions on, else None).
    `joint_to_relative_pose` turns joint targets into per-step end-effector deltas with `robot`'s forward kinematics
    (`robot.decode.encode_relative_pose`), so joint datasets train Cartesian heads; anything that cannot reach
    `target`'s columns is refused now, naming the setting that fixes it."""
    check_conversion(conversion, prefix)
    if conversion == "none":
        if source.action_dim != target.action_dim:
            hint = (f"; the dataset's joint targets convert to {target.key!r}'s columns with "
                    f"{prefix}action_conversion = 'joint_to_relative_pose' (or leave it unset)"
                    if joints_to_pose(source, target) else
                    f"; else convert them with {prefix}action_conversion (accepted: {', '.join(ACTION_CONVERSIONS)})")
            raise ValueError(
                f"{prefix}source_embodiment {source.key!r} (the dataset's action layout) has {source.action_dim} "
                f"columns but the trained embodiment {target.key!r} has {target.action_dim}: if the dataset's actions "
                f"already are in {target.key!r}'s columns, set {prefix}source_embodiment = {target.key!r}{hint}"
            )
        return lambda actions, state: (actions, state if target.state_history else None)
    if not joints_to_pose(source, target):
        raise ValueError(
            f"{prefix}action_conversion='joint_to_relative_pose' needs a joint_position source embodiment with a "
            f"state row and a gripper column (got {source.key!r}: {source.layout}, state row "
            f"{bool(source.state_history)}, gripper {source.gripper_column}) and a relative_pose target "
            f"{RELATIVE_POSE_DIM} columns wide (got {target.key!r}: {target.layout}, {target.action_dim} columns)"
        )
    from ..robot.decode import encode_relative_pose
    from ..robot.kinematics import IKSolver
    from ..robot.robots import get_robot

    arm = get_robot(robot)
    if arm.dof != source.action_dim - 1:
        raise ValueError(f"{prefix}robot={robot!r} has {arm.dof} joints but {prefix}source_embodiment "
                         f"{source.key!r} holds {source.action_dim - 1} joint columns and the gripper: set "
                         f"{prefix}robot to the robot the dataset was recorded on")
    ik = IKSolver(arm)
    grip = source.gripper_index

    def convert(actions: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, None]:
        joints = np.delete(actions, grip, axis=1)
        q0 = np.delete(state, grip)
        return encode_relative_pose(q0, joints, actions[:, grip], ik), None

    return convert


@dataclass(frozen=True)
class RecordedActions:
    """How a dataset's recorded actions read as a target embodiment's columns (`recorded_actions`), decided once and
    applied to any stretch of an episode (`chunk`): what a dataset frame's recorded chunk (`data.frame`) and an
    open-loop evaluation (`data.openloop`) compare a model with, mapped as training maps a window."""

    action_keys: list[str]
    state_keys: list[str]  # the source's state row: where a conversion from joint targets starts (read only if one)
    source: str  # the embodiment whose action layout the features hold: the target, or a registered one
    conversion: str
    reads_state: bool
    convert: Converter

    def chunk(self, frames: Mapping[str, np.ndarray], start: int, stop: int) -> np.ndarray:
        """Rows `start .. stop - 1` of an episode's `frames` (its data columns) in the target's columns and physical
        units, float64: a conversion from joint targets starts from the state at `start`, as training's window from
        that frame does."""
        length = len(frames[self.action_keys[0]])
        rows = np.concatenate([frames[k].reshape(length, -1)[start:stop] for k in self.action_keys], axis=1)
        state = (np.concatenate([frames[k].reshape(length, -1)[start] for k in self.state_keys])
                 if self.reads_state else None)
        return self.convert(rows.astype(np.float64), state)[0]

    def settings(self) -> dict[str, object]:
        """Where the rows come from and how they were mapped, for a file that records them."""
        return {"action_keys": list(self.action_keys), "source_embodiment": self.source,
                "action_conversion": self.conversion}


def run_keys(dataset, trained: Mapping[str, Sequence[str]], name: str) -> list[str] | None:
    """The keys `name` (`action_keys`, `state_keys`) that a checkpoint's training run read (`trained`:
    `policy.trained_data_keys`) where `dataset` has them all, else None (the default): what reading a dataset's
    recorded actions for that checkpoint takes when no keys are given, so a run on a dataset's own `action` needs no
    flag to be evaluated on it."""
    keys = trained.get(name)
    return list(keys) if keys and set(keys) <= set(dataset.features) else None


def recorded_actions(dataset, target: Embodiment, action_keys: Sequence[str] | None = None,
                     state_keys: Sequence[str] | None = None, *, source: str | None = None,
                     conversion: str | None = None, robot: str = DEFAULT_ROBOT, setting: str = "action_keys",
                     remedy: str = "") -> RecordedActions:
    """How `dataset`'s `action_keys` (default: training's `data.action_keys`, `default_action_keys`) reach `target`'s
    columns, as a training config with these `source` (`data.source_embodiment`), `conversion` and `robot` would read
    them (unset: as one that leaves them unset; `action_layout`, `action_converter`, the sampler's key checks);
    `state_keys` (default training's) hold the source's state a conversion starts from. What training would refuse is
    refused as a ValueError starting `setting:` (the caller's choice that failed: the keys, by default), with
    training's reason and the `[data]` setting that fixes it, then `remedy` (what the caller offers instead)."""
    try:
        return training_actions(dataset, target, action_keys, state_keys, source=source, conversion=conversion,
                                robot=robot)
    except ValueError as exc:
        raise ValueError(f"{setting}: the dataset's actions do not map to embodiment {target.key!r} as training "
                         f"maps them (as a training config's [data] would read this dataset: {exc}){remedy}") from None


def training_actions(dataset, target: Embodiment, action_keys: Sequence[str] | None = None,
                     state_keys: Sequence[str] | None = None, *, source: str | None = None,
                     conversion: str | None = None, robot: str = DEFAULT_ROBOT,
                     prefix: str = "data.") -> RecordedActions:
    """`recorded_actions`' mapping, its refusal as training's own (a ValueError naming the setting that fixes it after
    `prefix`, nothing added: `data.`, or a mixture table's `data.mixture[i].`): what `dataset check --embodiment`
    (`data.fit.embodiment_fit`) reports."""
    from .sampling import check_keys

    action_keys = default_action_keys(dataset, action_keys)
    state_keys = list(state_keys) if state_keys else list(STATE_KEYS)
    source_key, conversion = action_layout(dataset, target, action_keys, state_keys, source, conversion,
                                           prefix=prefix)
    layout = source_embodiment(source_key, prefix, target)
    check_keys(dataset, action_keys, layout, f"{prefix}action_keys", f"{prefix}video_keys")
    if layout.state_history:
        check_keys(dataset, state_keys, layout, f"{prefix}state_keys", f"{prefix}video_keys")
    convert = action_converter(conversion, layout, target, robot, prefix=prefix)
    return RecordedActions(action_keys, state_keys, source_key, conversion, bool(layout.state_history), convert)
