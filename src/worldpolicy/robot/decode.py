"""Action chunk → robot command: denormalise, integrate EE deltas / pass joints through, map the gripper, solve IK.

Two action spaces exist in the registry: `relative_pose` (per-step EE deltas `tx,ty,tz,r0..r5,grasp`, right-multiplied
and re-anchored on the achieved pose) and `joint_position` (absolute joints + gripper, e.g. DROID RoboLab output).
Gripper values leave the decoder in the DROID convention (0 open, 1 closed); `RobotConfig.gripper_to_ctrl` maps them to
actuator units. A chunk without a gripper column commands no gripper (`RobotCommand.gripper` None), not a made-up g.
Anything a little outside the valid range is clipped *with a warning* and counted per step in
`RobotCommand.clipped_steps` (so a caller that runs only part of a chunk counts only what ran). What cannot be made safe
by clipping is refused (`ValueError`): NaN/inf, rot6d that is no rotation, measured joints that are missing or no angles
within the limits (`check_joints`), joint targets more than `TARGET_JOINT_MARGIN_RAD` past the limits (`check_limits`:
no angles of this arm in radians), end-effector steps more than `TCP_SPEED_MARGIN` times the robot's `max_tcp_speed` or
`max_tcp_rotation_speed` at the embodiment's fps (`check_limits` too: no metres, or no rotation in radians), gripper
values more than `GRIPPER_MARGIN` outside [0, 1] (`check_limits` too: another unit or convention, not a g) and joint
targets that move a joint faster than the robot's `max_joint_velocity` at the embodiment's fps (`check_velocity`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from worldpolicy.embodiments import MODEL_SPACE_UNIT, POSE_COLUMNS, Embodiment, get_embodiment
from worldpolicy.robot.kinematics import IKSolver, TrackingReport
from worldpolicy.robot.robots import (
    FR3_JOINT_LIMITS,
    GRIPPER_MARGIN,
    GRIPPER_TOLERANCE,
    MEASURED_JOINT_MARGIN_RAD,
    TARGET_JOINT_MARGIN_RAD,
    TCP_SPEED_MARGIN,
    RobotConfig,
    config_field_hint,
    get_robot,
    gripper_unit_hint,
)
from worldpolicy.robot.se3 import check_rot6d, relative_poses, rot6d_to_matrix, rotation_angle

__all__ = ["ActionDecoder", "RobotCommand", "check_executable", "encode_relative_pose"]

logger = logging.getLogger(__name__)
# What a joint_position chunk that jumps from the arm or lands far past the limits may be instead of positions.
_NOT_POSITIONS = ("joint velocities (rad/s) or per-step deltas instead of absolute positions (openpi's pi0/pi05 DROID "
                  "policies return velocities)")


def check_executable(embodiment: Embodiment, robot: RobotConfig | None = None) -> None:
    """Refuse an embodiment whose chunks no robot (or not `robot`) can run, before a model loads or an episode starts.
    Actions in model space (`Embodiment.in_model_space`) would be integrated as metres: up to a metre per step. Joint
    targets for another number of joints than `robot` has were found only at the first chunk, after the model ran
    (where a state-conditioned embodiment's missing state was the error shown, not the robot)."""
    key = embodiment.key
    if embodiment.layout not in ("relative_pose", "joint_position"):
        raise ValueError(f"embodiment {key!r} has layout {embodiment.layout!r}; a robot can only execute "
                         "'relative_pose' or 'joint_position' chunks")
    if embodiment.layout == "relative_pose" and embodiment.columns[:9] != POSE_COLUMNS:
        raise ValueError(f"embodiment {key!r}: relative_pose needs columns {', '.join(POSE_COLUMNS)} first, got "
                         f"{list(embodiment.columns)}")
    if embodiment.in_model_space:
        raise ValueError(f"embodiment {key!r} gives its actions in model space (units {MODEL_SPACE_UNIT!r}: no stats "
                         "are published for it), which a robot cannot run; register it with the stats of your data "
                         "(normalization and stats or stats_file) and its physical units, as docs/robot.md shows")
    # what the bridge computes in: metres for EE translations, radians for joints (a spec without units defaults to
    # '1'; one in cm or deg would move the arm 100x or 57x too far)
    spatial = [(c, u) for c, u in zip(embodiment.columns, embodiment.units) if c != embodiment.gripper_column]
    spatial, unit = (spatial[:3], "m") if embodiment.layout == "relative_pose" else (spatial, "rad")
    wrong = [f"{c}={u!r}" for c, u in spatial if u != unit]
    if wrong:
        raise ValueError(f"embodiment {key!r}: a robot takes {'EE translations' if unit == 'm' else 'joint angles'} in "
                         f"{unit!r}, but its units give {', '.join(wrong)}; if they are {unit!r}, say so in its spec's "
                         "units, else convert the data (and its stats) to them")
    if robot is not None and embodiment.layout == "joint_position":
        joints = embodiment.action_dim - (embodiment.gripper_column is not None)
        if joints != robot.dof:
            raise ValueError(f"embodiment {key!r} has {joints} joint columns but robot {robot.name!r} has {robot.dof} "
                             "arm joints: its joint targets are for another arm")


@dataclass
class RobotCommand:
    """One decoded chunk: arm joint targets [T, dof] (rad), gripper g [T] (0 open, 1 closed), EE targets [T, 4, 4]
    (base frame) when IK ran, and how many values of each step were clipped [T]. Row i is the target (i + 1)/fps s
    after the measured joints, at the embodiment's fps, which the speed check assumes.

    `gripper` is None for an embodiment without a gripper column (a pose-only head): the chunk says nothing about the
    gripper, so the caller keeps its last command. A made-up g = 0 opened a gripper holding an object."""

    qpos: np.ndarray
    gripper: np.ndarray | None
    poses: np.ndarray | None = None
    tracking: TrackingReport | None = None
    clipped_steps: np.ndarray | None = None  # None: nothing clipped

    def __post_init__(self) -> None:
        if self.clipped_steps is None:
            self.clipped_steps = np.zeros(len(self), dtype=int)

    @property
    def clipped(self) -> int:
        """Clipped values over the whole chunk."""
        return int(self.clipped_steps.sum())

    def __len__(self) -> int:
        return int(self.qpos.shape[0])

    def __repr__(self) -> str:
        """Its shapes, tracking summary and clipped count, not its arrays (a 32-step chunk's joints and 4x4 poses
        printed as 200 lines of numbers in a notebook): `qpos`, `gripper` and `poses` hold them."""
        def shape(a: np.ndarray | None) -> str:
            return "None" if a is None else str(list(a.shape))

        return (f"RobotCommand(steps={len(self)}, qpos={shape(self.qpos)}, gripper={shape(self.gripper)}, "
                f"poses={shape(self.poses)}, tracking={self.tracking!r}, clipped={self.clipped})")


class ActionDecoder:
    """Decodes one embodiment's physical action chunks for one robot."""

    def __init__(
        self,
        embodiment: Embodiment | str = "droid",
        robot: RobotConfig | str = "panda",
        *,
        ik: IKSolver | None = None,
        reanchor: bool = True,
        check_velocity: bool = True,
        check_limits: bool = True,
    ) -> None:
        """`check_velocity`: refuse a chunk whose joint targets move a joint further in one step than the robot's
        `max_joint_velocity` allows at the embodiment's fps (from the measured joints to the first target, and between
        targets). Off only where something else limits or measures the speed (the sim counts it per episode).
        `check_limits`: refuse a `joint_position` chunk with a target more than `TARGET_JOINT_MARGIN_RAD` past the
        robot's joint limits, a `relative_pose` chunk with a step's translation or rotation more than `TCP_SPEED_MARGIN`
        times the robot's `max_tcp_speed` or `max_tcp_rotation_speed` at the embodiment's fps, and any chunk with a
        gripper value more than `GRIPPER_MARGIN` outside [0, 1] (nearer ones are clipped to them: a policy's
        overshoot). Off, every target and gripper value is clipped and counted (the steps left to IK): only where the
        count is reported and nothing real moves (the sim, where an untrained model's values land anywhere)."""
        self.embodiment = embodiment if isinstance(embodiment, Embodiment) else get_embodiment(embodiment)
        self.robot = get_robot(robot)
        check_executable(self.embodiment, self.robot)
        if ik is not None and ik.robot != self.robot:
            # the IK's limits judge the measured joints and clip targets: another robot's would judge this one's
            raise ValueError(f"ik: solves for robot {ik.robot.name!r}, not the decoder's robot {self.robot.name!r} "
                             "(their configs differ); pass IKSolver(robot) for the same config, or leave ik out")
        # IK held to the arm's joint speed at the chunk's rate (`IKSolver(fps=...)`); the check below stays the last
        # guard, for a given `ik` without that limit and for joint_position chunks
        self.ik = ik if ik is not None else IKSolver(self.robot, fps=self.embodiment.fps)
        self.reanchor = reanchor
        self.check_velocity = check_velocity
        self.check_limits = check_limits
        self._grip = self.embodiment.gripper_index

    def __repr__(self) -> str:
        """What it decodes for which robot, and its checks: the REPL showed `<... object at 0x...>`."""
        return (f"ActionDecoder(embodiment={self.embodiment.key!r}, robot={self.robot.name!r}, "
                f"fps={self.embodiment.fps:g}, reanchor={self.reanchor}, check_velocity={self.check_velocity}, "
                f"check_limits={self.check_limits})")

    def check(self, actions: np.ndarray) -> np.ndarray:
        """Validate a physical chunk [T, action_dim] before any heavy work."""
        actions = np.asarray(actions, dtype=np.float64)
        dim = self.embodiment.action_dim
        if actions.ndim != 2 or actions.shape[1] != dim or actions.shape[0] == 0:
            one = "; one step is a chunk of one row: actions[None]" if actions.shape == (dim,) else ""
            raise ValueError(
                f"actions: expected a chunk of shape [T, {dim}] for embodiment {self.embodiment.key!r} "
                f"(columns {list(self.embodiment.columns)}), got {actions.shape}{one}"
            )
        bad = ~np.isfinite(actions)
        if bad.any():
            rows, cols = np.nonzero(bad)
            raise ValueError(
                f"actions: {int(bad.sum())} NaN/inf values (first at step {rows[0]}, column "
                f"{self.embodiment.columns[cols[0]]!r}); refusing to command the robot"
            )
        if self.embodiment.layout == "relative_pose":
            check_rot6d(actions[:, 3:9], "actions")
        return actions

    def check_joint_steps(self, qpos: np.ndarray, q_arm: np.ndarray | None) -> None:
        """Refuse joint targets further apart per step than `max_joint_velocity / fps` (see `check_velocity`), and any
        that is not a number: NaN compares as within every limit, so it would pass the speed check to the arm."""
        bad = ~np.isfinite(qpos).all(axis=-1)  # qpos: [T, dof]
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(f"actions: joint target {row} holds NaN or inf ({qpos[row]}); refusing to command the robot")
        path = qpos if q_arm is None else np.vstack([q_arm, qpos])
        if len(path) < 2:
            return
        fps, limit = self.embodiment.fps, np.asarray(self.robot.max_joint_velocity)
        speed = np.abs(np.diff(path, axis=0)) * fps  # rad/s, [steps, dof]
        over = speed > limit
        if not over.any():
            return
        r = int(np.flatnonzero(over.any(axis=1))[0])
        j = int(np.argmax(speed[r] / limit))
        to = r + (q_arm is None)  # row r is the move into target r from q_arm, or into target r + 1
        first = "from the measured joints to target 0" if to == 0 else f"from target {to - 1} to target {to}"
        if self.embodiment.layout == "relative_pose":
            cause = " (IK reconfigured the arm to reach the target: a large turn, or a target past the workspace)"
        elif to == 0:  # a chunk that is no absolute joint positions jumps there from the measured joints
            cause = f"; a jump from the measured joints: {_NOT_POSITIONS}?"
        else:
            cause = ""
        raise ValueError(
            f"actions: {int(over.any(axis=1).sum())} steps move a joint faster than robot {self.robot.name!r} allows; "
            f"first {first}: {self.robot.arm_joints[j]} moves {speed[r, j] / fps:.3g} rad in one step, "
            f"{speed[r, j]:.3g} rad/s at {fps:g} fps (embodiment {self.embodiment.key!r}), over its "
            f"max_joint_velocity {limit[j]:g} rad/s{cause}; refusing to command the robot. If the arm's limits are "
            f"others, give them as {config_field_hint('max_joint_velocity')}; ActionDecoder(..., "
            "check_velocity=False) leaves the speed to a controller that limits it"
        )

    def _check_far_targets(self, joints: np.ndarray) -> None:
        """Refuse joint targets [T, dof] more than `TARGET_JOINT_MARGIN_RAD` past the limits (see `check_limits`): they
        were clipped like a policy's overshoot of 0.01 rad, so a chunk in degrees drove every joint to a limit."""
        lo, hi = self.ik.lower, self.ik.upper
        far = (joints < lo - TARGET_JOINT_MARGIN_RAD) | (joints > hi + TARGET_JOINT_MARGIN_RAD)
        if not far.any():
            return
        step = int(np.flatnonzero(far.any(axis=1))[0])
        names = self.robot.arm_joints
        given = ", ".join(f"{names[j]}={joints[step, j]:.4g} (limits [{lo[j]:.4g}, {hi[j]:.4g}])"
                          for j in np.flatnonzero(far[step]))
        fr3 = "" if self.robot.joint_limits == FR3_JOINT_LIMITS else ", robot 'fr3' for a Franka FR3"
        raise ValueError(
            f"actions: {int(far.sum())} joint targets more than {TARGET_JOINT_MARGIN_RAD:g} rad past the joint limits "
            f"of robot {self.robot.name!r} (robots.TARGET_JOINT_MARGIN_RAD), first at step {step}: {given}; "
            "refusing to command the robot. Targets are absolute joint angles in rad, in the order "
            f"{', '.join(names)}: degrees (np.radians converts them), {_NOT_POSITIONS}, or another arm's joint "
            f"order or zero? If the arm's limits are others, give them as {config_field_hint('joint_limits')}{fr3}. "
            "Nearer targets are clipped to the limits with a warning")

    def _outside(self, joints: np.ndarray) -> str:
        """Each joint whose targets [T, dof] leave its limits, by its furthest target: its name, the target and the
        limit it passes, in rad and deg (a robot of one's own: which joint, and whether its limits are the arm's)."""
        lo, hi = self.ik.lower, self.ik.upper
        said = []
        for j in np.flatnonzero(((joints < lo) | (joints > hi)).any(axis=0)):
            past = np.maximum(lo[j] - joints[:, j], joints[:, j] - hi[j])
            step = int(np.argmax(past))
            target = joints[step, j]
            side, limit = ("lower", lo[j]) if target < lo[j] else ("upper", hi[j])
            said.append(f"{self.robot.arm_joints[j]} target {target:.4g} rad ({np.degrees(target):.4g} deg) at step "
                        f"{step}, past its {side} limit {limit:.4g} rad ({np.degrees(limit):.4g} deg) by "
                        f"{past[step]:.3g} rad")
        return "; ".join(said) + f"; the limits are {config_field_hint('joint_limits')}"

    def _check_far_steps(self, actions: np.ndarray) -> None:
        """Refuse `relative_pose` steps [T, 9+] that move or turn the end effector further than `TCP_SPEED_MARGIN`
        times the robot's `max_tcp_speed` / `max_tcp_rotation_speed` allow in one period (see `check_limits`):
        centimetres, millimetres or model-space values read as metres were only warned about as unreachable targets,
        while IK drove the arm at full joint speed; a rotation from angles in degrees read as radians spun the wrist."""
        fps, name, key = self.embodiment.fps, self.robot.name, self.embodiment.key
        moved = np.linalg.norm(actions[:, :3], axis=1)
        turned = rotation_angle(rot6d_to_matrix(actions[:, 3:9]))
        checks = (("move", moved, "m", "max_tcp_speed", self.robot.max_tcp_speed),
                  ("turn", turned, "rad", "max_tcp_rotation_speed", self.robot.max_tcp_rotation_speed))
        for verb, size, unit, field, limit in checks:
            bar = TCP_SPEED_MARGIN * limit / fps
            far = size > bar
            if not far.any():
                continue
            r = int(np.flatnonzero(far)[0])
            if verb == "move":
                given = "tx, ty, tz = " + ", ".join(f"{v:.4g}" for v in actions[r, :3])
                cause = ("tx, ty, tz are per-step end-effector translations in metres: centimetres or millimetres "
                         "(divide by 100 or 1000), or model-space values (Prediction.actions_normalized given for "
                         "Prediction.actions)?")
            else:
                given = f"a turn of {np.degrees(size[r]):.4g} deg"
                cause = ("r0..r5 are each step's end-effector rotation (rot6d, the first two columns of its matrix), "
                         "made from angles in radians: angles in degrees read as radians (scipy's "
                         "Rotation.from_euler(..., degrees=True) takes degrees), Euler angles of another order or an "
                         "axis-angle read as Euler angles?")
            raise ValueError(
                f"actions: {int(far.sum())} steps {verb} the end effector more than {bar:.3g} {unit} in one step, "
                f"first at step {r}: {given} ({size[r]:.4g} {unit}, {size[r] * fps:.3g} {unit}/s at {fps:g} fps, "
                f"embodiment {key!r}; over {TCP_SPEED_MARGIN:g} x robot {name!r}'s {field} {limit:g} {unit}/s, "
                f"robots.TCP_SPEED_MARGIN); refusing to command the robot. {cause} If the arm is faster, give its "
                f"speed as {config_field_hint(field)}. Nearer steps are left to IK and the joint speed check")

    def check_joints(self, q_arm: np.ndarray) -> np.ndarray:
        """The measured arm joints a relative chunk starts from, in radians within the robot's limits (give or take
        `MEASURED_JOINT_MARGIN_RAD`). IK seeded from joints in degrees returned them unchanged for a still chunk and
        jumped to another configuration ("unreachable") for a moving one, so they are refused, naming the joints.
        The limits are the robot config's `joint_limits`: an arm with others (a Franka FR3) is given its own. Returned
        within the limits (`IKSolver.within_limits`): the chunk starts, and its first step's speed counts, from
        there."""
        dof, names = self.robot.dof, self.robot.arm_joints
        try:
            q = np.asarray(q_arm, dtype=np.float64)
        except (TypeError, ValueError):
            q = None
        if q is None or q.shape != (dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"q_arm: expected the {dof} measured arm joint angles of robot {self.robot.name!r} "
                             f"({', '.join(names)}) in rad, got {q_arm!r}")
        lo, hi = self.ik.lower - MEASURED_JOINT_MARGIN_RAD, self.ik.upper + MEASURED_JOINT_MARGIN_RAD
        outside = np.flatnonzero((q < lo) | (q > hi))
        if outside.size:
            given = ", ".join(f"{names[i]}={q[i]:.4g} (limits [{self.ik.lower[i]:.3g}, {self.ik.upper[i]:.3g}])"
                              for i in outside)
            # robot 'fr3' is the way out for a Panda config reading an FR3, not for a robot already on the FR3's limits
            fr3 = "" if self.robot.joint_limits == FR3_JOINT_LIMITS else "; a Franka FR3: robot 'fr3'"
            raise ValueError(
                f"q_arm: {given} outside robot {self.robot.name!r}'s joint limits; q_arm is the measured arm joints in "
                "radians (joints in degrees? np.radians converts them). If the arm's limits are others, give them as "
                f"{config_field_hint('joint_limits', '[(lower, upper), ...]')}{fr3}")
        return self.ik.within_limits(q)

    def decode(self, actions: np.ndarray, q_arm: np.ndarray | None) -> RobotCommand:
        """Physical chunk [T, action_dim] + measured arm joints (rad, [dof]) → joint targets, gripper and (for poses)
        IK report. relative_pose chunks start from `q_arm`; a joint_position chunk's first step is speed-checked from
        it, so it may be None only with `check_velocity=False`: that first move, from wherever the arm is, was the one
        step no check saw."""
        actions = self.check(actions)
        relative = self.embodiment.layout == "relative_pose"
        if q_arm is None and (relative or self.check_velocity):
            needs = ("a relative_pose chunk starts from" if relative
                     else "check_velocity checks the first target against")
            raise ValueError(
                f"q_arm: None, but {needs} the measured arm joints; pass the {self.robot.dof} joint angles (rad) of "
                f"robot {self.robot.name!r}"
                + ("" if relative else ", or make the decoder with check_velocity=False where something else limits "
                   "the speed"))
        q_arm = self.check_joints(q_arm) if q_arm is not None else None  # None: a joint chunk, speed unchecked
        gripper, clipped = self._gripper(actions)
        if not relative:
            joints = np.delete(actions, self._grip, axis=1) if self._grip is not None else actions
            lo, hi = self.ik.lower, self.ik.upper
            if self.check_limits:
                self._check_far_targets(joints)
            outside = (joints < lo) | (joints > hi)
            if outside.any():
                logger.warning("actions: %d joint targets outside the limits of robot %r, clipped to them: %s",
                               int(outside.sum()), self.robot.name, self._outside(joints))
            command = RobotCommand(np.clip(joints, lo, hi), gripper, clipped_steps=clipped + outside.sum(axis=1))
        else:
            if self.check_limits:
                self._check_far_steps(actions)
            qs, targets, report = self.ik.solve_relative(actions[:, :9], q_arm, reanchor=self.reanchor)
            command = RobotCommand(qs, gripper, poses=targets, tracking=report, clipped_steps=clipped)
        if self.check_velocity:
            self.check_joint_steps(command.qpos, q_arm)
        return command

    def _gripper(self, actions: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """g clipped to [0, 1], and per step whether it had to be (0 or 1); None for an embodiment without a gripper
        column (`RobotCommand.gripper`). With `check_limits`, a value more than `GRIPPER_MARGIN` outside is refused:
        clipping read a 0-255 actuator reading or a width in mm as closed, a [-1, 1] convention's -1 as open."""
        if self._grip is None:
            return None, np.zeros(len(actions), dtype=int)
        g = actions[:, self._grip]
        column = self.embodiment.columns[self._grip]
        if self.check_limits:
            far = (g < -GRIPPER_MARGIN) | (g > 1 + GRIPPER_MARGIN)
            if far.any():
                step = int(np.flatnonzero(far)[0])
                raise ValueError(
                    f"actions: {int(far.sum())} values of gripper column {column!r} more than {GRIPPER_MARGIN:g} "
                    f"outside [0, 1] (robots.GRIPPER_MARGIN), first at step {step}: {g[step]:.4g}; refusing to "
                    "command the robot. The bridge takes g in [0, 1], 0 = open, 1 = closed (DROID's convention): "
                    f"this is {gripper_unit_hint(float(g[step]))}; convert the data (and its stats) to g. "
                    "Nearer values are clipped to [0, 1] with a warning (a policy's overshoot); ActionDecoder(..., "
                    "check_limits=False) clips and counts them all, where nothing real moves")
        outside = (g < -GRIPPER_TOLERANCE) | (g > 1 + GRIPPER_TOLERANCE)  # float dust is not worth a warning
        if outside.any():
            logger.warning("actions: %d values of gripper column %r outside [0, 1] (range [%.3g, %.3g]); clipped",
                           int(outside.sum()), column, g.min(), g.max())
        return np.clip(g, 0.0, 1.0), outside.astype(int)


def encode_relative_pose(q_start: np.ndarray, joint_targets: np.ndarray, gripper: np.ndarray, ik: IKSolver) -> np.ndarray:
    """Joint-space chunk → the `relative_pose` chunk `ActionDecoder` turns back into it: per-step EE deltas between
    consecutive commanded poses, the first from the measured pose at `q_start`, plus the gripper column.

    Lets a joint-position dataset (DROID, sim experts) train a Cartesian-delta head.
    """
    joint_targets = np.asarray(joint_targets, dtype=np.float64)
    if joint_targets.ndim != 2 or joint_targets.shape[1] != ik.robot.dof:
        raise ValueError(f"joint_targets: expected [T, {ik.robot.dof}], got {joint_targets.shape}")
    gripper = np.asarray(gripper, dtype=np.float64)
    if gripper.shape != (len(joint_targets),):
        raise ValueError(f"gripper: expected one value per joint target, shape ({len(joint_targets)},), got "
                         f"{gripper.shape}")
    poses = np.stack([ik.fk(q) for q in (np.asarray(q_start, dtype=np.float64), *joint_targets)])
    return np.concatenate([relative_poses(poses), gripper[:, None]], axis=1)
