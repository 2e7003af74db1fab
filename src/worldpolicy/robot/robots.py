"""Robot configs: which MJCF, which frame is the end effector, how joints and the gripper map to model columns.

A robot is data (`RobotConfig`), so any MJCF — the shipped Panda or MuJoCo Menagerie's `franka_emika_panda` through a
path or `MENAGERIE_ROOT` — drives through the same bridge. Gripper values cross the bridge in the DROID convention
(g in [0, 1], 0 = open, 1 = closed); each robot maps g onto its own actuator units here, in one place.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

# The gripper's margin and what a value past it likely is are the embodiments' (the policy warns by them too); the
# bridge refuses by them, and its callers import them from here.
from ..embodiments import GRIPPER_MARGIN, gripper_unit_hint
from ..errors import is_real

__all__ = ["FR3_JOINT_LIMITS", "FR3_MAX_JOINT_VELOCITY", "FR3_MAX_TCP_SPEED", "FRANKA_MAX_JOINT_VELOCITY",
           "FRANKA_MAX_TCP_ROTATION_SPEED", "FRANKA_MAX_TCP_SPEED", "GRIPPER_MARGIN", "GRIPPER_TOLERANCE",
           "MEASURED_JOINT_MARGIN_RAD", "PANDA_ASSET", "PANDA_JOINT_LIMITS", "TARGET_JOINT_MARGIN_RAD",
           "TCP_SPEED_MARGIN", "RobotConfig", "get_robot", "gripper_unit_hint", "list_robots"]

PANDA_ASSET = "assets/panda/panda.xml"
# How far a measured joint may sit past its limit: MuJoCo's limits are soft, so a servo pushing at one overshoots
# slightly (up to 0.034 rad seen when driving every joint to its limit). Further out is not a joint angle in radians.
MEASURED_JOINT_MARGIN_RAD = 0.1
# How far past its limit a commanded joint target (a `joint_position` chunk) may ask and still be clipped to the limit:
# a policy's error near a limit. Further out it is no angle of this arm in radians (degrees read as radians are 57x
# too large; another arm's limits, an FR3's joint 6 reaches 0.76 rad past a Panda's), so the decoder refuses the chunk.
TARGET_JOINT_MARGIN_RAD = 0.2
# How many times the arm's Cartesian speed limits (`RobotConfig.max_tcp_speed`, `max_tcp_rotation_speed`) one step of a
# relative_pose chunk may ask and still be left to IK and the joint speed check: under joint control the TCP can pass
# the Cartesian limit a little (the shipped model's training data reaches 1.71 m/s). Further, the deltas are no metres
# of this arm: centimetres or millimetres (DROID's 1.5 cm a step read as 1.5 m), or model-space values (up to 1 "m" a
# step), which IK only warned about as unreachable while the arm went there at full joint speed; or no rotation of it
# in radians: one built from angles in degrees read as radians (2 deg a step became a 2 rad, 115 deg, turn).
TCP_SPEED_MARGIN = 2.0
# Float dust from (de)normalisation around [0, 1]: neither clipped with a warning nor refused.
GRIPPER_TOLERANCE = 1e-6
# Franka's datasheet joint velocity limits (rad/s), joints 1-7; MJCF files carry none.
FRANKA_MAX_JOINT_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
# Franka's Cartesian translation speed limits (m/s; FCI docs, "Limits for Panda" / "for Franka Research 3").
FRANKA_MAX_TCP_SPEED = 1.7
FR3_MAX_TCP_SPEED = 3.0
# Their Cartesian rotation speed limit (rad/s; same tables): 2.5 for the Panda and for the FR3.
FRANKA_MAX_TCP_ROTATION_SPEED = 2.5
# (lower, upper) rad, joints 1-7, from Franka's FCI docs ("Limits for Panda"; the shipped MJCF's ranges are the same).
PANDA_JOINT_LIMITS = ((-2.8973, 2.8973), (-1.7628, 1.7628), (-2.8973, 2.8973), (-3.0718, -0.0698),
                      (-2.8973, 2.8973), (-0.0175, 3.7525), (-2.8973, 2.8973))
# A Franka Research 3 (DROID records FR3s too) has the Panda's kinematics but other limits (FCI docs, "Limits for
# Franka Research 3"): joint 6 spans [0.5445, 4.5169] where a Panda's spans [-0.0175, 3.7525], joint 7 ±3.0159 against
# ±2.8973, joints 2 and 3 a little wider, joints 1, 4 and 5 tighter. franka_description's URDF and Menagerie's fr3.xml
# give the mechanical ranges, a little wider still. Robot `fr3` is the shipped Panda model with these limits.
FR3_JOINT_LIMITS = ((-2.7437, 2.7437), (-1.7837, 1.7837), (-2.9007, 2.9007), (-3.0421, -0.1518),
                    (-2.8065, 2.8065), (0.5445, 4.5169), (-3.0159, 3.0159))
# The FR3's joint velocity limits (rad/s, same table); its joints 5-7 are faster than a Panda's.
FR3_MAX_JOINT_VELOCITY = (2.62, 2.62, 2.62, 2.62, 5.26, 4.18, 5.26)


def _numbers(robot: str, field: str, value: object, accepted: str, shape: tuple[int, ...] = (),
             positive: bool = False, given_as: object = None) -> float | tuple:
    """`value` as a float (`shape` ()) or nested tuples of floats of `shape`, each a finite number (positive if asked);
    else a `ValueError` naming the field, the value given (`given_as`, where `value` is part of it) and `accepted`. A
    string is refused, not parsed: a spec file's quoted "1.7" failed later with a TypeError, and a quoted list read as
    one value per character."""
    try:
        given = None if isinstance(value, (str, bytes)) else np.asarray(value, dtype=object)
    except ValueError:  # nested sequences numpy cannot lay out
        given = None
    if given is not None and given.shape == shape and all(is_real(v) and (v > 0 or not positive) for v in given.flat):
        out = given.astype(np.float64).tolist()
        return tuple(map(tuple, out)) if len(shape) == 2 else tuple(out) if shape else out
    strings = isinstance(value, (str, bytes)) or (given is not None and any(isinstance(v, str) for v in given.flat))
    hint = "; numbers, not strings (a YAML/JSON spec's numbers go without quotes)" if strings else ""
    shown = value if given_as is None else given_as
    raise ValueError(f"robot {robot!r}: {field} must be {accepted}, got {shown!r}{hint}")


def _names(robot: str, field: str, value: object) -> tuple[str, ...]:
    """`value` as a tuple of MJCF element names; a single string is refused (it read as one name per character)."""
    items = None if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if items is None or not all(isinstance(v, str) for v in items):
        raise ValueError(f"robot {robot!r}: {field} must be a list of MJCF names (strings), got {value!r}")
    return items


@dataclass(frozen=True)
class RobotConfig:
    """How the bridge reads one MJCF robot.

    `gripper_ctrl_open` / `gripper_ctrl_closed` are actuator values for g = 0 and g = 1 (linear in between), so a robot
    whose actuator counts 255 = open (Menagerie) and one in finger metres (shipped Panda) share the DROID convention.
    `finger_open` is the finger joint travel (m) at g = 0, used to read the gripper state back as g.
    `joint_limits` ((lower, upper) rad per arm joint) replace the MJCF's joint ranges wherever the robot is loaded:
    IK, the decoder's checks of measured joints and its clipping, the sim; None keeps the MJCF's own.
    Only `arm_joints`, `ee_frame` (and `tcp_offset`'s body) are needed for IK/FK; the actuators, gripper joints and
    camera body are checked where a scene is built (`worldpolicy.sim`).
    """

    name: str
    mjcf: str
    ee_frame: str
    ee_frame_type: str
    arm_joints: tuple[str, ...]
    arm_actuators: tuple[str, ...]
    gripper_joints: tuple[str, ...]
    gripper_actuator: str
    gripper_ctrl_open: float
    gripper_ctrl_closed: float
    finger_open: float
    home: tuple[float, ...]
    tcp_offset: tuple[float, ...] | None = None  # (frame body, x, y, z): add a TCP site when the MJCF has none
    camera_body: str = "hand"
    max_joint_velocity: tuple[float, ...] = FRANKA_MAX_JOINT_VELOCITY  # rad/s per arm joint; the sim counts excess
    joint_limits: tuple[tuple[float, float], ...] | None = None
    max_tcp_speed: float = FRANKA_MAX_TCP_SPEED  # m/s, the TCP's translation; the decoder refuses far past it
    max_tcp_rotation_speed: float = FRANKA_MAX_TCP_ROTATION_SPEED  # rad/s, the TCP's rotation; the same

    def __post_init__(self) -> None:
        # a config read from a YAML/JSON spec gives lists (kept as tuples, so configs compare and hash as the shipped
        # ones do) and may give numbers as strings, which failed later with a TypeError or as a sequence of characters
        for field in ("arm_joints", "arm_actuators", "gripper_joints"):
            object.__setattr__(self, field, _names(self.name, field, getattr(self, field)))
        for field in ("ee_frame", "gripper_actuator", "camera_body"):  # a list passed check_names, None broke it
            if not isinstance(getattr(self, field), str):
                raise ValueError(f"robot {self.name!r}: {field} must be one MJCF name (a string), got "
                                 f"{getattr(self, field)!r}")
        dof = self.dof
        # a tuple only: an array's == is elementwise (its truth value ambiguous); replace() keeps an equal tuple
        franka = isinstance(self.max_joint_velocity, tuple) and self.max_joint_velocity == FRANKA_MAX_JOINT_VELOCITY
        fields = {
            "home": (f"{dof} joint angles in rad, one number per arm joint ({', '.join(self.arm_joints)})", (dof,),
                     False),
            "max_joint_velocity": (f"{dof} positive rad/s values, one number per arm joint" + (
                " (the default is the Franka Panda's 7)" if franka else ""), (dof,), True),
            "max_tcp_speed": ("a positive speed in m/s", (), True),
            "max_tcp_rotation_speed": ("a positive speed in rad/s", (), True),
            # the gripper map divides by these: a zero finger_open or equal ctrl ends made g NaN or constant
            "finger_open": ("the finger travel at g = 0, a positive number of metres", (), True),
            "gripper_ctrl_open": ("the gripper actuator's value for g = 0, a finite number", (), False),
            "gripper_ctrl_closed": ("the gripper actuator's value for g = 1, a finite number", (), False),
        }
        for field, (accepted, shape, positive) in fields.items():
            object.__setattr__(self, field, _numbers(self.name, field, getattr(self, field), accepted, shape, positive))
        if len(self.arm_actuators) != dof:
            raise ValueError(f"robot {self.name!r}: {len(self.arm_actuators)} arm actuators for {dof} joints")
        if self.joint_limits is not None:
            accepted = (f"{dof} (lower, upper) pairs in rad with lower < upper, one per arm joint, or None (the MJCF's "
                        "ranges)")
            limits = _numbers(self.name, "joint_limits", self.joint_limits, accepted, (dof, 2))
            if any(lo >= hi for lo, hi in limits):
                raise ValueError(f"robot {self.name!r}: joint_limits must be {accepted}, got {self.joint_limits!r}")
            object.__setattr__(self, "joint_limits", limits)
        if self.ee_frame_type not in ("body", "site", "geom"):
            raise ValueError(f"robot {self.name!r}: ee_frame_type must be body, site or geom, got {self.ee_frame_type!r}")
        if self.gripper_ctrl_open == self.gripper_ctrl_closed:
            raise ValueError(f"robot {self.name!r}: gripper_ctrl_open and gripper_ctrl_closed must be two different "
                             f"finite actuator values (for g = 0 and g = 1), got {self.gripper_ctrl_open!r} for both")
        if self.tcp_offset is not None:
            accepted = "(body name, x, y, z) in metres or None"
            offset = self.tcp_offset
            if not isinstance(offset, (list, tuple)) or len(offset) != 4 or not isinstance(offset[0], str):
                raise ValueError(f"robot {self.name!r}: tcp_offset must be {accepted}, got {self.tcp_offset!r}")
            xyz = _numbers(self.name, "tcp_offset", self.tcp_offset[1:], accepted, (3,), given_as=self.tcp_offset)
            object.__setattr__(self, "tcp_offset", (self.tcp_offset[0], *xyz))
        if self.joint_limits is not None:
            lower, upper = np.asarray(self.joint_limits).T
            outside = [i for i, q in enumerate(self.home) if not lower[i] <= q <= upper[i]]
            if outside:
                raise ValueError(f"robot {self.name!r}: home is outside joint_limits at "
                                 + ", ".join(f"{self.arm_joints[i]}={self.home[i]:g} [{lower[i]:g}, {upper[i]:g}]"
                                             for i in outside))

    @property
    def dof(self) -> int:
        return len(self.arm_joints)

    def gripper_to_ctrl(self, g: np.ndarray | float) -> np.ndarray:
        """DROID gripper g (0 open, 1 closed) → actuator ctrl. Out-of-range g is an error, not a clamp: a policy's
        overshoot is clipped where its chunk enters (`ActionDecoder`), so what reaches the actuator map is a g."""
        g = np.asarray(g, dtype=np.float64)
        if not np.all(np.isfinite(g)):
            raise ValueError(f"gripper: got non-finite values {g}")
        if np.any(g < -GRIPPER_TOLERANCE) or np.any(g > 1 + GRIPPER_TOLERANCE):
            worst = float(g.flat[np.argmax(np.maximum(-g, g - 1))])
            near = -GRIPPER_MARGIN <= worst <= 1 + GRIPPER_MARGIN
            hint = ("; a policy's chunk goes through ActionDecoder, which clips its overshoot into [0, 1]" if near
                    else f"; {gripper_unit_hint(worst)}")
            raise ValueError(f"gripper: expected values in [0, 1] (0 = open, 1 = closed), got range "
                             f"[{g.min():.4g}, {g.max():.4g}]{hint}")
        return self.gripper_ctrl_open + (self.gripper_ctrl_closed - self.gripper_ctrl_open) * np.clip(g, 0.0, 1.0)

    def finger_to_gripper(self, finger: float) -> float:
        """Finger joint travel (m) → DROID g (0 open, 1 closed), as a DROID client reports `gripper_position`."""
        return float(np.clip(1.0 - finger / self.finger_open, 0.0, 1.0))


def _shipped_panda() -> RobotConfig:
    path = resources.files("worldpolicy.robot").joinpath(PANDA_ASSET)
    return RobotConfig(
        name="panda",
        mjcf=str(path),
        ee_frame="tcp",
        ee_frame_type="site",
        arm_joints=tuple(f"joint{i}" for i in range(1, 8)),
        arm_actuators=tuple(f"actuator{i}" for i in range(1, 8)),
        gripper_joints=("finger_joint1", "finger_joint2"),
        gripper_actuator="gripper",
        gripper_ctrl_open=0.04,
        gripper_ctrl_closed=0.0,
        finger_open=0.04,
        # TCP straight down at (0.463, 0, 0.403) m, base frame (joint 6 = joint 2 - joint 4), for every Panda config:
        # Menagerie's had the prior art's IK test seed, joint 6 = 2.0, which tilted the TCP 5.7 deg and put it 2 cm
        # further out, so `--robot menagerie_panda` started the sim and recordings from another pose
        home=(0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854),
        joint_limits=PANDA_JOINT_LIMITS,
    )


def _menagerie_panda(root: str | os.PathLike | None = None, name: str = "menagerie_panda") -> RobotConfig:
    """Menagerie's Panda from a checkout (`root`, else $MENAGERIE_ROOT), its folder, or the MJCF file itself; `name` is
    what errors and reports call it. A folder holding no Panda is named as it was given: the path (`robot: `, the
    command line's --robot), else $MENAGERIE_ROOT (`--robot emptydir` named only robot 'menagerie_panda')."""
    given = "robot: " if root else "robot 'menagerie_panda': MENAGERIE_ROOT="
    root = root or os.environ.get("MENAGERIE_ROOT")
    if not root:
        raise FileNotFoundError(
            "robot 'menagerie_panda' needs the MuJoCo Menagerie checkout: set MENAGERIE_ROOT or pass a path to panda.xml"
        )
    if Path(root).suffix == ".xml":
        path = Path(root)
        if not path.is_file():
            raise FileNotFoundError(f"robot: MJCF file {str(path)!r} does not exist")
    else:
        path = Path(root) / "franka_emika_panda" / "panda.xml"
        if not path.is_file():
            path = Path(root) / "panda.xml"
        if not path.is_file():
            raise FileNotFoundError(f"{given}{os.fspath(root)!r} holds no franka_emika_panda/panda.xml nor panda.xml; "
                                    "accepted: a MuJoCo Menagerie checkout, its franka_emika_panda folder or the "
                                    "MJCF file")
    return replace(
        _shipped_panda(),
        name=name,
        mjcf=str(path),
        gripper_actuator="actuator8",
        gripper_ctrl_open=255.0,
        tcp_offset=("hand", 0.0, 0.0, 0.1034),
    )


def _shipped_fr3() -> RobotConfig:
    """A Franka Research 3: the Panda's kinematics (same DH table, same MJCF), the FR3's joint and velocity limits."""
    return replace(_shipped_panda(), name="fr3", joint_limits=FR3_JOINT_LIMITS,
                   max_joint_velocity=FR3_MAX_JOINT_VELOCITY, max_tcp_speed=FR3_MAX_TCP_SPEED)


_ROBOTS = {"panda": _shipped_panda, "fr3": _shipped_fr3, "menagerie_panda": _menagerie_panda}


def list_robots() -> list[str]:
    return sorted(_ROBOTS)


def config_field_hint(field: str, value: str = "...") -> str:
    """Where a robot's `field` is given, true however its config was made: by name, from a robot file, in Python (an
    error's fix names it so)."""
    return (f"its config's {field} (the robot file's \"{field}\" key; in Python get_robot(robot, {field}={value}), "
            "robot its RobotConfig, a built-in robot's name or a robot file's path)")


def get_robot(name_or_path: str | os.PathLike | RobotConfig, **overrides) -> RobotConfig:
    """Robot by name (`panda`, `fr3`, `menagerie_panda`), a path to a Menagerie-layout Panda MJCF, or a robot file
    (`*.json`: `RobotConfig`'s fields), named by that path (errors and sim reports then say which file, not
    `menagerie_panda`; a robot file's `name` wins); `overrides` replace fields."""
    if isinstance(name_or_path, RobotConfig):
        robot = name_or_path
    elif str(name_or_path).lower() in _ROBOTS:
        robot = _ROBOTS[str(name_or_path).lower()]()
    elif str(name_or_path).endswith(".json"):
        robot = _robot_file(Path(name_or_path))
    elif str(name_or_path).endswith(".xml") or os.path.isdir(name_or_path):
        robot = _menagerie_panda(name_or_path, name=os.fspath(name_or_path))  # a Menagerie-layout Panda, any file
    else:
        # a robot of another kind is a robot file: the hint names it, as the --robot help does
        raise KeyError(f"robot: unknown name {str(name_or_path)!r}; known: {list_robots()}, a path to a "
                       "Menagerie-layout Panda MJCF (*.xml) or a robot file (*.json: RobotConfig's fields, "
                       "docs/robot.md)")
    fields = [f.name for f in dataclasses.fields(RobotConfig)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:  # dataclasses.replace said only "unexpected keyword argument", one at a time
        raise ValueError(f"robot {robot.name!r}: no config field {', '.join(map(repr, unknown))} to override; the "
                         f"fields: {', '.join(fields)}")
    if not isinstance(name_or_path, RobotConfig) and not str(name_or_path).endswith(".json"):
        _check_other_arm(robot, overrides)
    return dataclasses.replace(robot, **overrides) if overrides else robot


def _robot_file(path: Path) -> RobotConfig:
    """A robot of one's own (`--robot my_arm.json`): a JSON object of `RobotConfig`'s fields, `mjcf` relative to the
    file, named by the file's path unless it has a `name`."""
    import json

    if not path.is_file():
        raise FileNotFoundError(f"robot: file {str(path)!r} does not exist")
    try:
        spec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"robot {str(path)!r}: not readable as JSON: {exc}") from None
    fields = {f.name: f for f in dataclasses.fields(RobotConfig)}
    if not isinstance(spec, dict):
        raise ValueError(f"robot {str(path)!r}: expected a JSON object of RobotConfig's fields ({', '.join(fields)}), "
                         f"got {type(spec).__name__}")
    if unknown := [key for key in spec if key not in fields]:  # each named at once, as get_robot's overrides are
        raise ValueError(f"robot {str(path)!r}: unknown key{'s' * (len(unknown) > 1)} "
                         f"{', '.join(map(repr, unknown))}; accepted: {', '.join(fields)}")
    required = [name for name, f in fields.items() if f.default is dataclasses.MISSING and name != "name"]
    if missing := [k for k in required if k not in spec]:
        raise ValueError(f"robot {str(path)!r}: missing key{'s' * (len(missing) > 1)} {', '.join(map(repr, missing))}; "
                         "RobotConfig's fields without a default")
    mjcf = spec["mjcf"]
    if not isinstance(mjcf, str) or not (path.parent / mjcf).is_file():
        raise ValueError(f"robot {str(path)!r}: mjcf={mjcf!r} is no MJCF file (a path relative to this file)")
    return RobotConfig(**{"name": str(path), **spec, "mjcf": str(path.parent / mjcf)})


_PER_JOINT_FIELDS = ("arm_actuators", "home", "max_joint_velocity", "joint_limits")


def _check_other_arm(panda: RobotConfig, overrides: dict) -> None:
    """Another arm built on a Panda config (`get_robot("ur5e.xml", arm_joints=...)`) keeps every per-joint field it does
    not give at the Panda's 7 values, which the config's own check then reported as values the caller 'got'."""
    joints = overrides.get("arm_joints")
    if not isinstance(joints, (list, tuple)) or len(joints) == panda.dof:  # RobotConfig refuses what is no list
        return
    kept = [f for f in _PER_JOINT_FIELDS if f not in overrides and getattr(panda, f) is not None]
    if kept:
        raise ValueError(f"robot {overrides.get('name', panda.name)!r}: {len(joints)} arm joints where the Panda's "
                         f"config it starts from has {panda.dof}: {', '.join(kept)} are still the Panda's; give them "
                         "too (joint_limits=None: the MJCF's ranges), or build a RobotConfig")
