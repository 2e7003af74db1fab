"""FK and differential IK on MuJoCo with mink (frame task + posture task + configuration limits, daqp; given the
control rate, a joint-speed limit per solve).

IK runs on a robot-only model (no scene objects), warm-started from the previous solution, and reports how well it
tracked: position error (the reference bar), orientation error and, for relative chunks, drift from the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from worldpolicy.errors import is_integer, is_real
from worldpolicy.extras import extra_imports

with extra_imports():
    import mink
    import mujoco

from worldpolicy.robot.robots import RobotConfig, config_field_hint, get_robot
from worldpolicy.robot.se3 import check_rot6d, integrate_relative_poses, rotation_angle

__all__ = ["IK_NAMES", "ROTATION_TOLERANCE", "TURN_MARGIN", "UNREACHABLE_DEG", "UNREACHABLE_M", "IKSolver",
           "TrackingReport", "check_names", "load_robot_spec", "pick_qp_solver"]

logger = logging.getLogger(__name__)

# Past this per-step position or orientation error a target counts as unreachable (logged; the solver returns its
# closest pose). Orientation counts too: a solver weighting position (orientation_cost=0.01) reached a hand flipped 180
# deg to within 0.3 mm but 140 deg off, which a position-only bar reported as tracked.
UNREACHABLE_M = 0.02
UNREACHABLE_DEG = 5.0
# The RobotConfig fields naming MJCF elements that FK/IK read; the rest (actuators, gripper, camera body) only a scene
# uses, and `sim.scenes` checks them there: a wrong gripper actuator refused an IK-only user (a real arm's bridge, the
# joint-to-pose training conversion) who never drives it.
IK_NAMES = ("arm_joints", "ee_frame")
# How far past a full turn (2 pi, or a wider joint range) a limited revolute joint's angle is refused: no arm's radians
# are there, degrees read as radians are (FK returned a wrong pose for them, silently). A joint just past its limits
# passes: FR3 joints in DROID sit a little outside the Panda's.
TURN_MARGIN = 0.5


def load_robot_spec(robot: RobotConfig | str) -> mujoco.MjSpec:
    """The robot's MJCF as an editable spec: keyframes dropped (scenes add joints), TCP site added if configured, the
    names IK reads checked (`IK_NAMES`) and the config's `joint_limits` set as the arm joints' ranges."""
    robot = get_robot(robot)
    spec = mujoco.MjSpec.from_file(robot.mjcf)
    for key in list(spec.keys):
        spec.delete(key)
    if robot.tcp_offset is not None:
        body_name, *xyz = robot.tcp_offset
        body = spec.body(body_name)
        if body is None:
            raise ValueError(f"robot {robot.name!r}: tcp_offset body {body_name!r} not in {robot.mjcf}")
        if spec.site(robot.ee_frame) is None:
            body.add_site(name=robot.ee_frame, pos=list(xyz), size=[0.005, 0, 0], group=3)
    check_names(robot, spec, IK_NAMES)
    if robot.joint_limits is not None:
        for joint, limits in zip(robot.arm_joints, robot.joint_limits):
            spec.joint(joint).range = list(limits)
    return spec


# what each name field of RobotConfig names in the MJCF (ee_frame: its ee_frame_type) and the plural of each kind
_NAME_KINDS = {"arm_joints": "joint", "gripper_joints": "joint", "arm_actuators": "actuator",
               "gripper_actuator": "actuator", "camera_body": "body"}
_PLURALS = {"joint": "joints", "actuator": "actuators", "body": "bodies", "site": "sites", "geom": "geoms"}


def check_names(robot: RobotConfig, spec: mujoco.MjSpec, fields: tuple[str, ...]) -> None:
    """The names these config fields give must be in the MJCF: a Panda file of another layout (the shipped one's copy
    has `gripper`, not Menagerie's `actuator8`) failed inside the env with MuJoCo's bare "Invalid name" KeyError."""
    for field_name in fields:
        kind = robot.ee_frame_type if field_name == "ee_frame" else _NAME_KINDS[field_name]
        value = getattr(robot, field_name)
        find, every = getattr(spec, kind), getattr(spec, _PLURALS[kind])
        for name in (value,) if isinstance(value, str) else value:
            if find(name) is None:
                present = [item.name for item in every if item.name]
                raise ValueError(
                    f"robot {robot.name!r}: {field_name} names {kind} {name!r}, which {robot.mjcf} does not have; its "
                    f"{_PLURALS[kind]}: {present}. Name the MJCF's own as {config_field_hint(field_name)}"
                )


def pick_qp_solver(name: str | None = None) -> str:
    """qpsolvers backend: the named one, else daqp → quadprog → first installed."""
    import qpsolvers

    available = list(qpsolvers.available_solvers)
    if name is not None:
        if name not in available:
            raise ValueError(f"solver: {name!r} is not an installed qpsolvers backend; installed: {available}")
        return name
    for preferred in ("daqp", "quadprog"):
        if preferred in available:
            return preferred
    if not available:
        raise ImportError("no QP solver installed: pip install 'qpsolvers[daqp]'")
    return available[0]


@dataclass
class TrackingReport:
    """Per-step errors of achieved vs commanded EE poses. `drift_mm` compares against the open-loop plan."""

    position_mm: np.ndarray
    orientation_deg: np.ndarray
    drift_mm: np.ndarray | None = None
    unreachable_steps: list[int] = field(default_factory=list)

    def __repr__(self) -> str:
        """Its `summary` over how many steps, not its per-step arrays (the dataclass printed every one)."""
        said = ", ".join(f"{k}={v:.4g}" for k, v in self.summary().items())
        return f"TrackingReport(steps={len(self.position_mm)}, {said})"

    @property
    def mean_mm(self) -> float:
        return float(np.mean(self.position_mm))

    @property
    def max_mm(self) -> float:
        return float(np.max(self.position_mm))

    @property
    def max_deg(self) -> float:
        return float(np.max(self.orientation_deg))

    def summary(self) -> dict[str, float | int]:
        out = {
            "mean_mm": self.mean_mm,
            "max_mm": self.max_mm,
            "mean_deg": float(np.mean(self.orientation_deg)),
            "max_deg": self.max_deg,
            "unreachable_steps": len(self.unreachable_steps),
        }
        if self.drift_mm is not None:
            out["max_drift_mm"] = float(np.max(self.drift_mm))
        return out


# How far a target's rotation block may be from orthonormal (max |RᵀR - I|): float32 poses are within 1e-6.
ROTATION_TOLERANCE = 1e-5


def _check_poses(poses: np.ndarray, name: str) -> None:
    """Homogeneous poses [T, 4, 4]: finite, a rotation block (mink's SE3.from_matrix turned a scaled or degenerate one
    into an arbitrary quaternion the arm then turned to), last row [0, 0, 0, 1]."""
    finite = np.all(np.isfinite(poses), axis=(-2, -1))
    rot = np.where(finite[:, None, None], poses[:, :3, :3], np.eye(3))  # NaN: refused below, without det's warning
    off = np.abs(np.swapaxes(rot, -1, -2) @ rot - np.eye(3)).max(axis=(-2, -1), initial=0.0)
    bad = (~finite | (off > ROTATION_TOLERANCE) | (np.linalg.det(rot) < 0)
           | np.any(np.abs(poses[:, 3] - [0, 0, 0, 1]) > ROTATION_TOLERANCE, axis=-1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: pose {i} is not a finite rigid transform (rotation block orthonormal with det +1 "
                         f"within {ROTATION_TOLERANCE:g}, last row [0, 0, 0, 1]); got {poses[i].tolist()}")


class _StepLimit(mink.Limit):
    """Each arm joint within `max_step` (rad) of where the solve started: the robot's joint speed limit over one
    control period, as a QP inequality on every iteration.

    mink's `VelocityLimit` bounds one QP's displacement by `max_velocity * dt`, which is the whole move only when each
    control period runs one QP. `IKSolver.solve` iterates up to `max_iters` QPs towards each target, so a per-QP bound
    lets 20 iterations move 20 times the limit; this one bounds the remaining room from the seed instead, so the
    iterations together stay within one period's travel.
    """

    def __init__(self, model: mujoco.MjModel, joints: tuple[str, ...], max_step: np.ndarray) -> None:
        dofs = [model.jnt_dofadr[model.joint(j).id] for j in joints]
        self._qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in joints])
        self._projection = np.eye(model.nv)[dofs]
        self.max_step = max_step
        self.lower = self.upper = None

    def start(self, q_arm: np.ndarray) -> None:
        """Centre the allowed travel on the seed of the solve about to run."""
        self.lower, self.upper = q_arm - self.max_step, q_arm + self.max_step

    def clamp(self, q_arm: np.ndarray) -> np.ndarray:
        """The solve's result within the travel: removes the QP solver's feasibility tolerance (~1e-9 rad), so the
        decoder's check of the same speed never sees a target a rounding error too fast."""
        return np.clip(q_arm, self.lower, self.upper)

    def binding(self, q_arm: np.ndarray) -> bool:
        """Whether some joint ended at the edge of its travel (the speed held the solve back)."""
        return bool(np.any((q_arm <= self.lower + 1e-6) | (q_arm >= self.upper - 1e-6)))

    def compute_qp_inequalities(self, configuration: mink.Configuration, dt: float) -> mink.Constraint:
        q = configuration.q[self._qadr]
        room_up, room_down = np.maximum(self.upper - q, 0.0), np.maximum(q - self.lower, 0.0)
        return mink.Constraint(G=np.vstack([self._projection, -self._projection]), h=np.hstack([room_up, room_down]))


class IKSolver:
    """Warm-started differential IK for one robot's end-effector frame."""

    def __init__(
        self,
        robot: RobotConfig | str = "panda",
        *,
        position_cost: float = 1.0,
        orientation_cost: float = 1.0,
        posture_cost: float = 1e-2,
        damping: float = 1e-3,
        dt: float = 1.0,
        max_iters: int = 20,
        pos_threshold: float = 5e-4,
        ori_threshold: float = 2e-3,
        solver: str | None = None,
        fps: float | None = None,
    ) -> None:
        """`fps`: the rate the solved targets are sent at. Given, no solve moves an arm joint further from its seed than
        the robot's `max_joint_velocity` allows in one period (a QP limit, `_StepLimit`): near a singularity or for a
        large turn IK reaches what it can at the arm's speed and reports the rest as tracking error (unreachable past
        the bars) instead of a joint jump the decoder then refuses. None (FK, offline conversion): no speed limit."""
        if fps is not None and (not is_real(fps) or fps <= 0):
            raise ValueError(f"fps: expected the control rate in Hz, a finite positive number, or None (no joint speed "
                             f"limit), got {fps!r}")
        for pname, value in {
            "position_cost": position_cost, "orientation_cost": orientation_cost, "posture_cost": posture_cost,
            "damping": damping, "dt": dt, "pos_threshold": pos_threshold, "ori_threshold": ori_threshold,
        }.items():
            if not is_real(value) or value <= 0:
                raise ValueError(f"{pname}: expected a finite positive number, got {value!r}")
        if not is_integer(max_iters) or max_iters < 1:
            raise ValueError(f"max_iters: expected an int >= 1, got {max_iters!r}")
        self.robot = get_robot(robot)
        self.model = load_robot_spec(self.robot).compile()
        self.solver = pick_qp_solver(solver)
        self.dt, self.damping, self.max_iters = float(dt), float(damping), int(max_iters)
        self.pos_threshold, self.ori_threshold = float(pos_threshold), float(ori_threshold)
        self._qadr = np.array([self.model.jnt_qposadr[self.model.joint(j).id] for j in self.robot.arm_joints])
        ids = [self.model.joint(j).id for j in self.robot.arm_joints]
        self.lower, self.upper = self.model.jnt_range[ids, 0].copy(), self.model.jnt_range[ids, 1].copy()
        turns = (self.model.jnt_type[ids] == mujoco.mjtJoint.mjJNT_HINGE) & self.model.jnt_limited[ids].astype(bool)
        # `_full_q`'s bound on |q|: past a turn for a limited revolute joint, else only finite (a continuous joint may
        # count turns, a slide joint is in metres)
        self._q_bound = np.where(turns, np.maximum(2 * np.pi, np.maximum(-self.lower, self.upper)) + TURN_MARGIN,
                                 np.finfo(np.float64).max)
        self.configuration = mink.Configuration(self.model)
        self.frame_task = mink.FrameTask(
            self.robot.ee_frame, self.robot.ee_frame_type, position_cost=position_cost,
            orientation_cost=orientation_cost, lm_damping=1.0,
        )
        self.posture_task = mink.PostureTask(self.model, cost=posture_cost)
        self.limits = [mink.ConfigurationLimit(self.model)]
        self.fps = None if fps is None else float(fps)
        self._step_limit = None
        if fps is not None:
            # a hair under the period's travel: the decoder checks the same speed with a strict ">"
            travel = np.asarray(self.robot.max_joint_velocity) / self.fps * (1 - 1e-9)
            self._step_limit = _StepLimit(self.model, self.robot.arm_joints, travel)
            self.limits.append(self._step_limit)
        self._q = self.configuration.q.copy()

    def __repr__(self) -> str:
        """Its robot, joint speed rate and solver settings: the REPL showed `<... object at 0x...>`."""
        return (f"IKSolver(robot={self.robot.name!r}, fps={self.fps!r}, solver={self.solver!r}, "
                f"max_iters={self.max_iters}, pos_threshold={self.pos_threshold:g}, "
                f"ori_threshold={self.ori_threshold:g})")

    def _full_q(self, q_arm: np.ndarray, name: str) -> np.ndarray:
        """The model's configuration with these arm joints; `name` is the caller's parameter, which the error names."""
        try:
            given = np.asarray(q_arm, dtype=np.float64)
        except (TypeError, ValueError):
            given = None
        if given is None or given.shape != (self.robot.dof,) or not (np.abs(given) <= self._q_bound).all():
            # one comparison for finite and within a turn (NaN compares false): fk runs per step of every chunk
            if given is not None and given.shape == (self.robot.dof,) and np.all(np.isfinite(given)):
                i = int(np.flatnonzero(np.abs(given) > self._q_bound)[0])
                raise ValueError(
                    f"{name}: joint {self.robot.arm_joints[i]} of robot {self.robot.name!r} is {given[i]:g}, more "
                    f"than {self._q_bound[i]:.4g} rad from 0 (a full turn, or the joint's range, plus TURN_MARGIN), "
                    "which no arm's joint angle in rad is: degrees? Joint angles are in rad (np.radians converts "
                    f"degrees); got {q_arm!r}")
            raise ValueError(f"{name}: expected the {self.robot.dof} arm joint angles of robot {self.robot.name!r} "
                             f"({', '.join(self.robot.arm_joints)}) in rad, finite, got {q_arm!r}")
        q_arm = given
        q = self._q.copy()
        q[self._qadr] = q_arm
        return q

    def within_limits(self, q_arm: np.ndarray) -> np.ndarray:
        """Arm joints clipped to the joint limits: where a solve starts from. A measured joint a little past its limit
        (MuJoCo's limits are soft: a servo pushing at one overshoots) made the speed-limited QP infeasible (mink's
        bare `NoSolutionFound`) once the way back in was more than one period's travel (at 60 fps), and a chunk that
        asked for no motion returned the joint past its limit as a target."""
        return np.clip(q_arm, self.lower, self.upper)

    def fk(self, q_arm: np.ndarray) -> np.ndarray:
        """Arm joints (rad) → EE pose: 4x4 in metres, in the robot's base frame (the MJCF's root body: IK loads the
        robot alone, so not a sim scene's world)."""
        self.configuration.update(self._full_q(q_arm, "q_arm"))
        return self.configuration.get_transform_frame_to_world(self.robot.ee_frame, self.robot.ee_frame_type).as_matrix()

    def solve(self, target: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
        """One EE target (4x4) → arm joints, starting (and posture-regularised) at `q_seed` (within the joint limits:
        `within_limits`).

        A target out of reach is no error: the joints of the closest pose the solve gets to come back, silently (a
        scripted servo or a benchmark solves its own targets). To know how far off that is,
        `solve_trajectory(target[None], q_seed)` returns the same joints with a `TrackingReport` (errors in mm and
        degrees, `unreachable_steps`), warned past the bars.

        With `fps`, a target further than one control period's joint travel is met part way along the commanded motion:
        the largest share of the seed pose's screw motion to it (halved 7 times: within 1 %) that a speed-limited solve
        reaches. The speed-limited QP alone spent the travel on whatever the frame task's cost favoured: for a 20 deg
        turn of the hand (twice what joint 7 turns in a 15 fps period) it moved the hand 56 mm sideways to turn 18 deg
        (2.3 off); along the motion it turns 12 deg and stays within 1 mm. What is left reads as tracking error.
        """
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (4, 4):
            raise ValueError(f"target: expected a 4x4 pose, got shape {target.shape}")
        _check_poses(target[None], "target")
        q = self._full_q(q_seed, "q_seed")
        q[self._qadr] = self.within_limits(q[self._qadr])
        if self._step_limit is None:
            return self._converge(target, q)[0]
        self._step_limit.start(q[self._qadr])
        q_arm, reached = self._converge(target, q)
        if reached or not self._step_limit.binding(q_arm):
            return q_arm  # reached, or held back by the workspace or joint limits rather than by speed
        start = self.fk(q[self._qadr])
        motion = mink.SE3.from_matrix(np.linalg.inv(start) @ target).log()
        low, high, best = 0.0, 1.0, q_arm
        for _ in range(7):
            share = (low + high) / 2
            q_share, reached = self._converge(start @ mink.SE3.exp(share * motion).as_matrix(), q)
            if reached:
                low, best = share, q_share
            else:
                high = share
        return best  # no share reached: the speed-limited solve's own pose

    def _converge(self, target: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, bool]:
        """Up to `max_iters` QP steps from the full configuration `q` towards `target`: (arm joints, whether they are
        within `pos_threshold` / `ori_threshold` of it)."""
        self.configuration.update(q)
        self.posture_task.set_target(q)
        self.frame_task.set_target(mink.SE3.from_matrix(target))
        tasks = [self.frame_task, self.posture_task]
        reached = False
        for i in range(self.max_iters + 1):
            err = self.frame_task.compute_error(self.configuration)
            reached = np.linalg.norm(err[:3]) <= self.pos_threshold and np.linalg.norm(err[3:]) <= self.ori_threshold
            if reached or i == self.max_iters:
                break
            v = mink.solve_ik(self.configuration, tasks, self.dt, self.solver, self.damping, limits=self.limits)
            self.configuration.integrate_inplace(v, self.dt)
        q_arm = self.configuration.q[self._qadr].copy()
        return (q_arm if self._step_limit is None else self._step_limit.clamp(q_arm)), bool(reached)

    def solve_trajectory(self, targets: np.ndarray, q0: np.ndarray) -> tuple[np.ndarray, TrackingReport]:
        """Absolute EE targets [T, 4, 4] → joints [T, dof], each solve seeded by the previous solution."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.ndim != 3 or targets.shape[1:] != (4, 4):
            raise ValueError(f"targets: expected shape [T, 4, 4], got {targets.shape}")
        _check_poses(targets, "targets")
        qs = np.empty((len(targets), self.robot.dof))
        achieved = np.empty_like(targets)
        q = self._full_q(q0, "q0")[self._qadr]
        for i, target in enumerate(targets):
            q = self.solve(target, q)
            qs[i], achieved[i] = q, self.fk(q)
        return qs, self._report(achieved, targets)

    def solve_relative(self, deltas: np.ndarray, q0: np.ndarray, *, reanchor: bool = True) -> tuple[np.ndarray, np.ndarray, TrackingReport]:
        """Per-step EE deltas [T, 9] → (joints [T, dof], targets [T, 4, 4], report).

        With `reanchor` each target composes the delta on the pose actually achieved at the previous step
        (FK(q_{i-1}) @ ΔT_i), so an unreachable step does not push every later target off the plan; without it the
        targets are the open-loop integration from FK(q0). A `q0` past a joint limit is taken as at it
        (`within_limits`), anchor included, so a still chunk holds the arm at the limit, not past it.
        """
        q = self.within_limits(self._full_q(q0, "q0")[self._qadr])  # the arm counts as at a limit it overshot
        plan = integrate_relative_poses(deltas, self.fk(q))  # checks the shape
        check_rot6d(np.asarray(deltas, dtype=np.float64)[:, 3:9], "deltas")
        if not reanchor:
            qs, report = self.solve_trajectory(plan[1:], q)
            return qs, plan[1:], report
        steps = np.linalg.inv(plan[:-1]) @ plan[1:]
        qs = np.empty((len(steps), self.robot.dof))
        targets, achieved = np.empty_like(steps), np.empty_like(steps)
        pose = plan[0]
        for i, step in enumerate(steps):
            targets[i] = pose @ step
            q = self.solve(targets[i], q)
            qs[i] = q
            pose = achieved[i] = self.fk(q)
        drift_mm = 1000 * np.linalg.norm(achieved[:, :3, 3] - plan[1:, :3, 3], axis=-1)
        report = self._report(achieved, targets, drift_mm)
        lagging = np.flatnonzero(report.drift_mm > 1000 * UNREACHABLE_M)
        if lagging.size and not report.unreachable_steps:
            # each step within the bar, the arm still short of the chunk's path: IK stalled (by the straightened
            # elbow, 7 mm short every step, 60 mm behind after 8) where re-anchoring hides it from the per-step error
            logger.warning(
                "IK: the arm falls %.1f mm behind the chunk's planned path (more than %g mm from step %d on) though "
                "each step's error stays under the bar: it stalls %s. IK's posture, damping and speed settings do not "
                "move it out (the stalled direction has no first-order joint motion there): the arm runs as far as it "
                "gets (tracking.drift_mm per step). Start the next chunk from a posture clear of the joint limits with "
                "the elbow bent (RobotConfig.home: [%s] rad), and check that the chunk's poses are within the arm's "
                "reach",
                report.drift_mm.max(), 1000 * UNREACHABLE_M, int(lagging[0]), self._stall_cause(qs[lagging[0]]),
                ", ".join(f"{v:g}" for v in self.robot.home),
            )
        return qs, targets, report

    def _stall_cause(self, q_arm: np.ndarray) -> str:
        """Where IK stalled: the joints at a limit (within 1 mrad: the straightened elbow is joint 4 at its upper
        limit), else a singularity (a stretched arm at the edge of its reach, or aligned wrist axes)."""
        at = [f"{name} at its {'lower' if q <= lo + 1e-3 else 'upper'} limit ({lo if q <= lo + 1e-3 else hi:.4g} rad)"
              for name, q, lo, hi in zip(self.robot.arm_joints, q_arm, self.lower, self.upper)
              if q <= lo + 1e-3 or q >= hi - 1e-3]
        if at:
            return "with " + ", ".join(at)
        return "at a singularity, no joint at a limit (the arm stretched to its reach, or wrist axes aligned)"

    def _report(self, achieved: np.ndarray, targets: np.ndarray, drift_mm: np.ndarray | None = None) -> TrackingReport:
        """Per-step errors, warned past the bars. `drift_mm` (re-anchored chunks): how far the arm is from the chunk's
        planned path, which the warning says too: each re-anchored step's error is measured from where the arm got
        to, so a chunk that leaves the workspace read "errors up to 28 mm" with the arm 566 mm short of its plan."""
        pos = 1000 * np.linalg.norm(achieved[:, :3, 3] - targets[:, :3, 3], axis=-1)
        rel = np.swapaxes(achieved[:, :3, :3], -1, -2) @ targets[:, :3, :3]
        deg = np.degrees(rotation_angle(rel))
        unreachable = [int(i) for i in np.flatnonzero((pos > 1000 * UNREACHABLE_M) | (deg > UNREACHABLE_DEG))]
        if unreachable:
            behind = ("" if drift_mm is None or drift_mm.max() <= 1000 * UNREACHABLE_M else
                      f", ending {drift_mm[-1]:.1f} mm (at most {drift_mm.max():.1f} mm) from the chunk's planned "
                      "path: each step's error is measured from where the arm got to (tracking.drift_mm)")
            logger.warning(
                "IK: %d of %d targets unreachable (errors up to %.1f mm / %.1f deg; bars %g mm / %g deg, first at step "
                "%d); the arm goes to the closest pose within joint limits%s", len(unreachable), len(targets),
                pos.max(), deg.max(), 1000 * UNREACHABLE_M, UNREACHABLE_DEG, unreachable[0], behind,
            )
        return TrackingReport(pos, deg, unreachable_steps=unreachable, drift_mm=drift_mm)
