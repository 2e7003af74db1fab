"""What a robomimic-format file's action columns mean, read from the robosuite controller its `env_args` name
(`dataset import-hdf5` names the dataset's `action` columns with it).

    from worldpolicy.data.robosuite_actions import action_columns
    action_columns(env_args, width=7, joints=7).names   # ['eef_dx', 'eef_dy', 'eef_dz', 'eef_drot_x', ..., 'gripper']

robosuite's controllers (robosuite.ai/docs "Controllers"): the arm takes OSC_POSE (end-effector position change in m,
orientation change as an axis-angle rotation vector in rad, both in the world frame, or the absolute pose with
`input_type` "absolute"), OSC_POSITION (the position part), JOINT_POSITION (joint position changes, or targets) or
JOINT_VELOCITY (joint velocities); a delta command is clipped to [input_min, input_max] and mapped linearly onto
[output_min, output_max] (robomimic and LIBERO: [-1, 1] onto ±0.05 m and ±0.5 rad). The gripper's one column follows
the arm's: -1 opens, +1 closes. robosuite ≤ 1.4 (robomimic ≤ 0.3, LIBERO) stores the arm's config itself in
`env_kwargs.controller_configs`; 1.5 a composite one, the arm's under `body_parts` (`arms`) `right`. The values are
copied as the file holds them (what the controller takes: a policy trained on them drives it unchanged); each
column's `output` range says what a stored value means physically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import is_real

__all__ = ["ActionColumns", "action_columns", "generic_names"]

AXES = ("x", "y", "z")
# controller type → (column names as delta commands, as absolute ones, what a column is, its physical unit);
# `{}` is the joint index for the joint controllers, whose width is the arm's joint count
CONTROLLERS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "OSC_POSE": (
        tuple(f"eef_d{a}" for a in AXES) + tuple(f"eef_drot_{a}" for a in AXES),
        tuple(f"eef_{a}" for a in AXES) + tuple(f"eef_rot_{a}" for a in AXES),
        tuple(f"end-effector position {a} (world frame)" for a in AXES)
        + tuple(f"end-effector orientation as an axis-angle rotation vector, {a} (world frame)" for a in AXES),
        ("m",) * 3 + ("rad",) * 3),
    "OSC_POSITION": (tuple(f"eef_d{a}" for a in AXES), tuple(f"eef_{a}" for a in AXES),
                     tuple(f"end-effector position {a} (world frame)" for a in AXES), ("m",) * 3),
    "JOINT_POSITION": (("djoint_{}",), ("joint_{}",), ("joint {} position",), ("rad",)),
    "JOINT_VELOCITY": (("joint_vel_{}",), ("joint_vel_{}",), ("joint {} velocity",), ("rad/s",)),
}
GRIPPER = {"name": "gripper", "meaning": "gripper command: -1 opens, +1 closes", "unit": "1"}


@dataclass(frozen=True)
class ActionColumns:
    """The action columns' names and, where the controller is known, each one's `meaning`, `unit` and the linear map
    of a stored value onto it (`input` range → `output` range; None: the value is the quantity itself).
    `controller` is the arm controller's type; None with `why` saying why the names are generic (`action.0`, ...)."""

    names: list[str]
    columns: list[dict[str, Any]]
    controller: str | None
    why: str | None = None

    def provenance(self) -> dict[str, Any]:
        """How the provenance records them: the controller, and each column or why they are not known."""
        if self.controller is None:
            return {"controller": None, "why_generic_names": self.why}
        return {"controller": self.controller, "columns": self.columns}


def generic_names(width: int) -> list[str]:
    """`action.0`, `action.1`, ...: what a file that does not say what its actions are gets."""
    return [f"action.{i}" for i in range(width)]


def action_columns(env_args: dict[str, Any], width: int, joints: int | None) -> ActionColumns:
    """The `width` action columns of a file whose `data.attrs["env_args"]` is `env_args`, named after the robosuite
    arm controller it configures (`joints`: the arm's joint count where the file's obs say it, which the joint
    controllers' width is); generic names, with why, where it says none or one not known here."""
    arm = _arm_config(env_args)
    if isinstance(arm, str):
        return ActionColumns(generic_names(width), [], None, arm)
    kind = arm.get("type")
    if kind not in CONTROLLERS:
        return ActionColumns(generic_names(width), [], None,
                             f"its arm controller {kind!r} is not one named here ({', '.join(CONTROLLERS)})")
    impedance = arm.get("impedance_mode", "fixed")
    if impedance not in (None, "fixed"):  # variable gains come first in the action, per dimension
        return ActionColumns(generic_names(width), [], None,
                             f"its {kind} controller's impedance_mode is {impedance!r}: the gains it puts in the "
                             "action are not named here")
    delta_names, absolute_names, meanings, units = CONTROLLERS[kind]
    # a velocity is scaled as a delta is (robosuite's JOINT_VELOCITY has no absolute input)
    delta = kind == "JOINT_VELOCITY" or (arm.get("input_type", "delta") != "absolute"
                                         and arm.get("control_delta", True) is not False)
    per_joint = kind.startswith("JOINT_")
    if per_joint and joints is None:
        return ActionColumns(generic_names(width), [], None,
                             f"its {kind} controller takes one column per arm joint, and the file's obs do not say "
                             "how many joints the arm has (no robot0_joint_pos or joint_states)")
    arm_width = joints if per_joint else len(meanings)
    if width not in (arm_width, arm_width + 1):
        return ActionColumns(generic_names(width), [], None,
                             f"its actions are {width} wide, but its {kind} arm takes {arm_width} (and a gripper 1)")
    names = delta_names if delta else absolute_names
    if per_joint:  # one pattern for every joint
        names, meanings, units = ([text.format(j) for j in range(joints) for text in texts]
                                  for texts in (names, meanings, units))
    ranges = _ranges(arm, arm_width) if delta else [(None, None)] * arm_width
    if isinstance(ranges, str):
        return ActionColumns(generic_names(width), [], None, f"its {kind} controller's {ranges}")
    said = "{} command" if kind == "JOINT_VELOCITY" else "change per step of the {}" if delta else "target {}"
    columns = [{"name": name, "meaning": said.format(meaning), "unit": unit, "input": lo_hi[0], "output": lo_hi[1]}
               for name, meaning, unit, lo_hi in zip(names, meanings, units, ranges, strict=True)]
    if width == arm_width + 1:
        columns.append({**GRIPPER, "input": None, "output": None})
    return ActionColumns([c["name"] for c in columns], columns, kind)


def _arm_config(env_args: dict[str, Any]) -> dict[str, Any] | str:
    """The arm controller's config in `env_args`, or why there is none to read."""
    kwargs = env_args.get("env_kwargs")
    if not env_args:
        return "the file has no data.attrs['env_args']"
    if not isinstance(kwargs, dict):
        return "its env_args have no env_kwargs"
    robots = kwargs.get("robots")
    if isinstance(robots, list) and len(robots) != 1:
        return f"its env_args name {len(robots)} robots ({robots}); only one robot's actions are named here"
    config = kwargs.get("controller_configs")
    if not isinstance(config, dict):
        return "its env_args have no env_kwargs.controller_configs"
    parts = config.get("body_parts", config.get("body_parts_controller_configs"))
    if parts is None:
        return config  # robosuite <= 1.4: the arm's own config
    if config.get("type") != "BASIC":  # the others map the action onto the parts otherwise (whole-body IK, a base)
        return f"its composite controller is {config.get('type')!r}; only BASIC's arm actions are named here"
    arms = parts.get("arms", parts) if isinstance(parts, dict) else None
    arm = arms.get("right") if isinstance(arms, dict) else None
    if not isinstance(arm, dict):
        return "its composite controller config has no body_parts arm 'right'"
    return arm


def _ranges(arm: dict[str, Any], width: int) -> list[tuple[list[float], list[float]]] | str:
    """Per column ([input_min, input_max], [output_min, output_max]), robosuite's defaults where the config leaves
    one out, or what is wrong with them."""
    found = {}
    for key, default in (("input_min", -1.0), ("input_max", 1.0), ("output_min", None), ("output_max", None)):
        value = arm.get(key, default)
        if is_real(value, finite=False):
            value = [value] * width
        if not (isinstance(value, list) and len(value) == width
                and all(is_real(v, finite=False) for v in value)):
            return f"{key} is {value!r}, not a number or {width} numbers"
        found[key] = [float(v) for v in value]
    return [([found["input_min"][i], found["input_max"][i]], [found["output_min"][i], found["output_max"][i]])
            for i in range(width)]
