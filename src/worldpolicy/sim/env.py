"""Gymnasium environment: a robot on a tabletop task, DROID-style observations, absolute joint + gripper actions.

The action is what the robot executes each control step: arm joint targets (rad) and the DROID gripper value
(0 open, 1 closed) — the `droid` joint_pos layout. Policies emitting EE deltas go through `ActionDecoder` first
(the rollout does that). Observations carry the three DROID camera keys, `observation/joint_position` [7],
`observation/gripper_position` [1] and `prompt`, so a DROID policy server sees what a real DROID client sends.
`obs_type="pixels_agent_pos"` returns them from `reset`/`step` in LeRobot's sim-env form instead (`OBS_TYPES`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from worldpolicy.errors import is_integer, is_real
from worldpolicy.extras import extra_imports

with extra_imports():
    import gymnasium as gym

from worldpolicy.sim.rendering import make_renderer, require_gl_library  # worldpolicy.sim picks the GL backend

require_gl_library()  # before mujoco's import binds that backend (and fails obscurely without its library)
with extra_imports():
    import mujoco

from worldpolicy.robot.robots import MEASURED_JOINT_MARGIN_RAD, RobotConfig, get_robot
from worldpolicy.sim.perturb import Perturbation, Perturber, check_rewording, parse_perturbations
from worldpolicy.sim.scenes import CAMERAS, DEFAULT_IMAGE_SIZE, ObjectSpec, build_scene, camera_feature_name
from worldpolicy.sim.tasks import (
    COLORS,
    DEFAULT_CONTROL_HZ,
    PROMPT_CHARACTERS,
    PROMPT_MAX_LENGTH,
    SimState,
    Task,
    get_task,
)

__all__ = ["AGENT_POS_KEYS", "IMAGE_SIDE", "OBS_TYPES", "TELEOP_TARGET", "GymTabletopEnv", "SimState",
           "TabletopEnv", "check_env_settings", "step_limit", "unwrap_tabletop"]

logger = logging.getLogger(__name__)


# Camera images, each side: 16 px or more, and at most 4096, below the offscreen framebuffer limit of common GL drivers
# (Mesa's llvmpipe refuses 17000 rows), whose failure would otherwise surface at the first render as "install Mesa".
IMAGE_SIDE = (16, 4096)
# The gripper reading (DROID g) above which the fingers are closed on each other, not on an object between them
HELD_GRIPPER_MAX = 0.9
# What `reset()` and `step()` return, by `obs_type` (`observe()`, which rollouts read, is the DROID dict whatever it is)
OBS_TYPES = {
    "droid": "the DROID dict: the three camera keys, observation/joint_position [7], observation/gripper_position [1] "
             "and prompt",
    "pixels_agent_pos": "LeRobot's sim-env form (gym_aloha, gym_pusht, LIBERO): {'pixels': {camera: HxWx3 uint8}, "
                        "'agent_pos': float32 [8]}, the prompt in the env's task_description",
}
# The DROID keys whose values `agent_pos` joins, in this order: the `droid` embodiment's state row (joints, gripper)
AGENT_POS_KEYS = ("observation/joint_position", "observation/gripper_position")
# The mocap body a teleoperator drags (`TabletopEnv(teleop_target=True)`): a bar 9 cm long along the hand's y axis,
# so the hand's yaw shows; a "handle", which no recorded camera draws (`scenes.HANDLE_GROUP`)
TELEOP_TARGET = ObjectSpec("teleop_target", "handle", (0.012, 0.045, 0.012), (0.1, 0.8, 0.3, 0.6))


def check_env_settings(*, control_hz: float, image_size: tuple[int, int] | None, max_steps: int | None) -> None:
    """The numbers a `TabletopEnv` takes, checked without building one (no scene, no renderer): a recording made
    in worker processes or behind a progress bar refuses a bad one before it starts. Whether `control_hz` is a whole
    number of physics steps needs the built scene; the env checks that."""
    if not is_real(control_hz) or control_hz <= 0:
        raise ValueError(f"control_hz: expected a positive frequency, got {control_hz!r}")
    if max_steps is not None and (not is_integer(max_steps) or max_steps < 1):
        raise ValueError(f"max_steps: expected an int >= 1 (or None: the task's default), got {max_steps!r}")
    low, high = IMAGE_SIDE
    if image_size is not None and (isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__")
                                   or len(image_size) != 2 or not all(is_integer(v) and low <= v <= high
                                                                      for v in image_size)):
        raise ValueError(f"image_size: expected (height, width), two ints of {low} to {high} pixels, or None (no "
                         f"cameras), got {image_size!r}")


class TabletopEnv(gym.Env):
    """One task, one robot, fixed control frequency; `reset(seed=...)` randomises object poses and colours."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str | Task = "pick_place",
        robot: str | RobotConfig = "panda",
        *,
        control_hz: float = DEFAULT_CONTROL_HZ,
        image_size: tuple[int, int] | None = DEFAULT_IMAGE_SIZE,
        max_steps: int | None = None,
        render_mode: str | None = "rgb_array",
        perturb: str | Sequence[str] | Perturbation | None = None,
        prompt_template: str | None = None,
        obs_type: str = "droid",
        teleop_target: bool = False,
    ) -> None:
        """`perturb`: shifts applied on top of every episode's scene (`sim.perturb`: "camera=0.03", "light=0.5",
        "table=random", "distractors=2", "prompt=paraphrase", a comma list or a list of them), drawn from the episode's
        seed. `prompt_template`: every episode's prompt in these words, the task's placeholders filled with what the
        episode drew ("move to the {color} {object}": `tasks.check_prompt_template`); None: the task's wording.
        `obs_type`: what `reset()` and `step()` return (`OBS_TYPES`).
        `teleop_target`: add `TELEOP_TARGET`, a mocap body a teleoperator drags in MuJoCo's viewer (`dataset
        teleop`), put on the hand at every reset (`teleop_pose`, `set_teleop_pose`); the cameras do not show it and
        it touches nothing, so the physics and the images are those of an env without it."""
        check_env_settings(control_hz=control_hz, image_size=image_size, max_steps=max_steps)
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type: expected one of {list(OBS_TYPES)}, got {obs_type!r}")
        if obs_type == "pixels_agent_pos" and image_size is None:
            raise ValueError("obs_type: 'pixels_agent_pos' observes the cameras, and image_size=None has none: give an "
                             "image_size (height, width), or obs_type='droid'")
        self.obs_type = obs_type
        self.perturbation = parse_perturbations(perturb)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: {render_mode!r} is not supported; accepted: "
                             f"{[None, *self.metadata['render_modes']]}")
        self.task = get_task(task)
        self.prompt_template = check_rewording(self.perturbation, prompt_template, self.task)
        self.robot = get_robot(robot)
        self.image_size = (int(image_size[0]), int(image_size[1])) if image_size is not None else None
        self.render_mode = render_mode
        self.model = build_scene(self.robot, self.task.objects() + self.perturbation.objects()
                                 + ([TELEOP_TARGET] if teleop_target else []),
                                 image_size=self.image_size or DEFAULT_IMAGE_SIZE)
        self.data = mujoco.MjData(self.model)
        self._perturber = (Perturber(self.model, self.perturbation, self.task) if self.perturbation
                           else None)
        self.control_hz = float(control_hz)
        timestep = self.model.opt.timestep
        self.n_substeps = max(1, round(1.0 / (self.control_hz * timestep)))
        # the rate the physics can run: whole physics steps per control period (15 Hz: 33 x 2 ms = 15.15 Hz)
        self.actual_control_hz = 1.0 / (self.n_substeps * timestep)
        if abs(self.actual_control_hz / self.control_hz - 1) > 0.02:
            near = sorted({round(1 / (n * timestep), 2) for n in (self.n_substeps - 1, self.n_substeps,
                                                                    self.n_substeps + 1) if n >= 1})
            raise ValueError(
                f"control_hz: {control_hz:g} Hz is not a whole number of {timestep * 1000:g} ms physics steps "
                f"(it would run at {self.actual_control_hz:.2f} Hz); nearby rates that are: {near}"
            )
        # frames come one per control step, which lasts its whole physics steps: 15 Hz asked is 15.15 frames per
        # simulated second, and a video written at 15 fps (gymnasium's RecordVideo takes this) ran 1 % slow
        self.metadata = {**self.metadata, "render_fps": self.actual_control_hz}
        self.max_steps: int | None = int(max_steps or self.task.max_steps)  # None: a wrapper's (GymTabletopEnv)
        m = self.model
        self._arm_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.robot.arm_joints])
        self._finger_qadr = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.robot.gripper_joints])
        self._arm_act = np.array([m.actuator(a).id for a in self.robot.arm_actuators])
        self._arm_dofadr = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.robot.arm_joints])
        self._grip_act = m.actuator(self.robot.gripper_actuator).id
        jids = [m.joint(j).id for j in self.robot.arm_joints]
        self.lower, self.upper = m.jnt_range[jids, 0].copy(), m.jnt_range[jids, 1].copy()
        self._ee_id = mujoco.mj_name2id(m, _OBJ[self.robot.ee_frame_type], self.robot.ee_frame)
        self._goal_mocap = m.body_mocapid[m.body("goal").id]
        self._goal_geom = m.geom("goal").id
        self._target_mocap = m.body_mocapid[m.body(TELEOP_TARGET.name).id] if teleop_target else None
        self._object_geoms = {name: m.geom(name).id for name in self.task.object_names}
        self._object_qadr = {name: m.jnt_qposadr[m.joint(f"{name}_joint").id] for name in self.task.object_names}
        self._object_dofadr = {name: m.jnt_dofadr[m.joint(f"{name}_joint").id] for name in self.task.object_names}
        # the highest each object's centre has been while held (world z, m; `_held`), physics step by physics step:
        # tasks judge from it whether an object was picked up at some point of the episode (`SimState.held_heights`)
        self._held_heights: dict[str, float] = {}
        self._finger_geoms = [np.flatnonzero(m.geom_bodyid == m.jnt_bodyid[m.joint(j).id])
                              for j in self.robot.gripper_joints]
        self._renderer = None
        self.episode = None
        self._ended: str | None = None  # how the episode ended (step() returned terminated or truncated), until reset
        self.steps = 0
        self.gripper_command = 0.0
        self.peak_joint_speed = np.zeros(self.robot.dof)  # max |qvel| (rad/s) per arm joint over the last act()

        dof = self.robot.dof
        self.action_space = gym.spaces.Box(
            np.append(self.lower, 0.0), np.append(self.upper, 1.0), dtype=np.float64
        )
        margin = MEASURED_JOINT_MARGIN_RAD  # measured joints overshoot a (soft) limit slightly
        spaces = {
            "observation/joint_position": gym.spaces.Box(self.lower - margin, self.upper + margin, dtype=np.float64),
            "observation/gripper_position": gym.spaces.Box(0.0, 1.0, (1,), dtype=np.float64),
            "prompt": gym.spaces.Text(max_length=PROMPT_MAX_LENGTH, charset=PROMPT_CHARACTERS),
        }
        if self.image_size is not None:
            for key in CAMERAS:
                spaces[key] = gym.spaces.Box(0, 255, (*self.image_size, 3), dtype=np.uint8)
        self.observation_space = gym.spaces.Dict(spaces)
        if obs_type == "pixels_agent_pos":  # the same bounds, in LeRobot's keys (`_gym_observation`)
            self.observation_space = gym.spaces.Dict({
                "pixels": gym.spaces.Dict({camera_feature_name(key): spaces[key] for key in CAMERAS}),
                "agent_pos": gym.spaces.Box(*(np.concatenate([getattr(spaces[key], end) for key in AGENT_POS_KEYS])
                                              .astype(np.float32) for end in ("low", "high")), dtype=np.float32),
            })
        assert dof == len(self._arm_act)

    # --- gymnasium API -------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """gymnasium's reset: `seed` draws the episode (object and goal poses, colours, prompt). It takes no `options`:
        the task and its settings are the env's (`TabletopEnv(get_task("reach", upper_share=0.5))`), and options it
        ignored (`{"task": "push"}`) left the run looking as asked while it was not; None or {} is accepted."""
        if options:
            raise ValueError(f"options: reset() takes none (None or {{}}), got {options!r}; the task and its settings "
                             "are chosen when the env is made: TabletopEnv(task, ...) or gymnasium.make(id, ...)")
        super().reset(seed=seed)
        self.episode = self.task.sample(self.np_random)
        if self.prompt_template is not None:  # the seed's scene, in the user's words
            self.episode.prompt = self.task.fill_prompt(self.prompt_template, self.episode)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self._arm_qadr] = self.robot.home
        self.data.qpos[self._finger_qadr] = self.robot.finger_open
        self.data.ctrl[self._arm_act] = self.robot.home
        self.gripper_command = 0.0
        self.data.ctrl[self._grip_act] = self.robot.gripper_to_ctrl(0.0)
        for name, qadr in self._object_qadr.items():
            yaw = self.episode.yaws.get(name, 0.0)
            self.data.qpos[qadr:qadr + 3] = self.episode.positions[name]
            self.data.qpos[qadr + 3:qadr + 7] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
            self.model.geom_rgba[self._object_geoms[name]] = COLORS[self.episode.colors[name]]
        self.data.mocap_pos[self._goal_mocap] = self.episode.positions["goal"]
        rgba = np.array(COLORS[self.episode.colors["goal"]])
        rgba[3] = 0.7
        self.model.geom_rgba[self._goal_geom] = rgba
        if self._perturber is not None:  # drawn after the scene: a clean run's scenes are the same seeds' scenes
            self._perturber.apply(self.model, self.data, int(self.np_random.integers(2**63)), self.episode)
        mujoco.mj_forward(self.model, self.data)
        for _ in range(self.n_substeps):  # let objects settle on the table
            mujoco.mj_step(self.model, self.data)
        self.steps = 0
        self._ended = None
        self.peak_joint_speed = np.zeros(self.robot.dof)
        self._held_heights = {name: float(self.data.qpos[qadr + 2]) for name, qadr in self._object_qadr.items()}
        if self._target_mocap is not None:
            self.set_teleop_pose(self.state().tcp)
        return self._gym_observation(), self._info()

    def step(self, action):
        """gymnasium's step. After one that returned terminated or truncated it raises, as before `reset()`: gymnasium
        leaves further steps undefined, and here they kept going silently (the lower-level `act` still does)."""
        if self._ended is not None:
            raise RuntimeError(f"step(): the episode has ended ({self._ended}); call reset() to start the next one")
        self.act(action)
        success = self.success()
        truncated = self.max_steps is not None and self.steps >= self.max_steps
        if success or truncated:
            self._ended = (f"terminated: the task succeeded at step {self.steps}" if success else
                           f"truncated: max_steps={self.max_steps} reached")
        return self._gym_observation(), float(success), success, truncated, self._info(success)

    def render(self):
        """gymnasium's render: `views()` for render_mode 'rgb_array'; with render_mode=None, gymnasium's warning and
        None, as its own environments do. The warning names how this env was made: an env from `gymnasium.make` was
        told to pass its render_mode to TabletopEnv, which its user never called."""
        if self.render_mode is None:
            made = f"gymnasium.make({self.spec.id!r}, ..., " if self.spec is not None else "TabletopEnv(..., "
            gym.logger.warn("You are calling render method without specifying any render mode. You can specify the "
                            f"render_mode at initialization, e.g. {made}render_mode='rgb_array')")
            return None
        return self.views()

    def replica(self, max_steps: int | None = None) -> TabletopEnv:
        """A new env with this one's task, robot, control rate, image size, render mode, shifts, prompt template and
        observation type, its own MuJoCo state (`worldpolicy sim --num-envs`: one per episode stepped together);
        `max_steps`: its step limit, where this one's is a wrapper's (`step_limit`)."""
        return TabletopEnv(self.task, self.robot, control_hz=self.control_hz, image_size=self.image_size,
                           max_steps=max_steps or self.max_steps, render_mode=self.render_mode,
                           perturb=self.perturbation, prompt_template=self.prompt_template, obs_type=self.obs_type,
                           teleop_target=self._target_mocap is not None)

    def views(self) -> np.ndarray:
        """The three DROID views side by side (exterior 1 | exterior 2 | wrist), whatever the render_mode: the sim
        half of rollout videos."""
        return np.concatenate([self.render_camera(key) for key in CAMERAS], axis=1)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # --- lower-level API used by rollouts ------------------------------------------------------------------------
    def act(self, action: np.ndarray) -> None:
        """Advance one control period with arm joint targets + gripper g (validated; out-of-limit joints warned).
        `peak_joint_speed` then holds each arm joint's fastest |velocity| during the period; each object's highest point
        while held (`SimState.held_heights`) counts every physics step."""
        if self.episode is None:
            raise RuntimeError("call reset() before act()/step()")
        action = np.asarray(action, dtype=np.float64)
        dof = self.robot.dof
        if action.shape != (dof + 1,):
            raise ValueError(f"action: expected shape ({dof + 1},) = {dof} joint targets + gripper, got {action.shape}")
        bad = ~np.isfinite(action)
        if bad.any():
            columns = [*self.robot.arm_joints, "gripper"]
            raise ValueError(f"action: NaN/inf in {[columns[i] for i in np.flatnonzero(bad)]}: {action}")
        joints = action[:dof]
        gripper_ctrl = self.robot.gripper_to_ctrl(action[dof])  # raises for g outside [0, 1]: before anything moves
        outside = (joints < self.lower - 1e-9) | (joints > self.upper + 1e-9)
        if outside.any():
            logger.warning("action: joints %s outside limits; clipped", np.flatnonzero(outside).tolist())
        self.data.ctrl[self._arm_act] = np.clip(joints, self.lower, self.upper)
        self.gripper_command = float(action[dof])
        self.data.ctrl[self._grip_act] = gripper_ctrl
        peak = np.zeros(dof)
        for _ in range(self.n_substeps):  # one at a time: a speed peak inside the period counts too
            mujoco.mj_step(self.model, self.data)
            np.maximum(peak, np.abs(self.data.qvel[self._arm_dofadr]), out=peak)
            for name, qadr in self._object_qadr.items():
                z = float(self.data.qpos[qadr + 2])
                if z > self._held_heights[name] and self._held(name):  # the contact check only at a new height
                    self._held_heights[name] = z
        self.peak_joint_speed = peak
        self.steps += 1

    def _held(self, name: str) -> bool:
        """Whether the gripper holds object `name` now: commanded closed, both fingers touching it and kept apart by it
        (fingers closed on each other read g ~1.0, on the 5 cm cube ~0.4). A cube knocked into the air, or batted by
        the closed fingers, is not held."""
        if self.gripper_command <= 0.5 or self.gripper_position() > HELD_GRIPPER_MAX:
            return False
        pairs = self.data.contact.geom[:self.data.ncon]
        cube = self._object_geoms[name]
        touching = np.concatenate([pairs[pairs[:, 0] == cube, 1], pairs[pairs[:, 1] == cube, 0]])
        return all(np.isin(finger, touching).any() for finger in self._finger_geoms)

    def set_arm(self, q: np.ndarray) -> None:
        """Teleport the arm to joints `q` (held there by the position servos) — varied start poses for data."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.robot.dof,) or not np.all(np.isfinite(q)):
            raise ValueError(f"q: expected {self.robot.dof} finite joint angles, got {q!r}")
        q = np.clip(q, self.lower, self.upper)
        self.data.qpos[self._arm_qadr] = q
        self.data.qvel[:] = 0.0
        self.data.ctrl[self._arm_act] = q
        mujoco.mj_forward(self.model, self.data)

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def teleop_pose(self) -> np.ndarray:
        """Where the teleoperator's target is (`teleop_target=True`): a 4x4 pose in the world frame."""
        mocap = self._teleop_mocap()
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, self.data.mocap_quat[mocap])
        pose = np.eye(4)
        pose[:3, :3], pose[:3, 3] = rot.reshape(3, 3), self.data.mocap_pos[mocap]
        return pose

    def set_teleop_pose(self, pose: np.ndarray) -> None:
        """Move the teleoperator's target (`teleop_target=True`) to `pose`, 4x4 in the world frame."""
        mocap = self._teleop_mocap()
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise ValueError(f"pose: expected a finite 4x4 pose, got {pose!r}")
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, np.ascontiguousarray(pose[:3, :3]).reshape(-1))
        self.data.mocap_pos[mocap], self.data.mocap_quat[mocap] = pose[:3, 3], quat

    def _teleop_mocap(self) -> int:
        if self._target_mocap is None:
            raise RuntimeError("this env has no teleop target: make it with TabletopEnv(..., teleop_target=True)")
        return self._target_mocap

    def gripper_position(self) -> float:
        return self.robot.finger_to_gripper(float(np.mean(self.data.qpos[self._finger_qadr])))

    def observe(self, images: bool | None = None) -> dict:
        """DROID-style observation dict (images rendered unless `images=False` or the env has no image_size)."""
        obs = {
            "observation/joint_position": self.joint_positions(),
            "observation/gripper_position": np.array([self.gripper_position()]),
            "prompt": self.task_description,
        }
        if self.image_size is not None and images is not False:
            for key in CAMERAS:
                obs[key] = self.render_camera(key)
        return obs

    def _gym_observation(self) -> dict:
        """What `reset()` and `step()` return: `observe()` in the form `obs_type` names (`OBS_TYPES`)."""
        obs = self.observe()
        if self.obs_type == "droid":
            return obs
        return {"pixels": {camera_feature_name(key): obs[key] for key in CAMERAS},
                "agent_pos": np.concatenate([obs[key] for key in AGENT_POS_KEYS]).astype(np.float32)}

    @property
    def task_description(self) -> str:
        """The episode's prompt ("" before the first reset), under the name LeRobot's eval reads each env's
        instruction from (`envs.call("task_description")`, as its LIBERO env names it)."""
        return self.episode.prompt if self.episode else ""

    def open_renderer(self) -> None:
        """Create the offscreen GL context now rather than at the first image, so a machine that cannot render fails
        before any other work (`RenderingUnavailable`)."""
        if self._renderer is None:
            h, w = self.image_size or DEFAULT_IMAGE_SIZE
            self._renderer = make_renderer(self.model, h, w)

    def render_camera(self, key: str) -> np.ndarray:
        if key not in CAMERAS:
            raise KeyError(f"camera: unknown key {key!r}; known: {list(CAMERAS)}")
        self.open_renderer()
        self._renderer.update_scene(self.data, camera=CAMERAS[key])
        return self._renderer.render().copy()

    def state(self) -> SimState:
        d = self.data
        tcp = np.eye(4)
        xpos, xmat = {"site": (d.site_xpos, d.site_xmat), "body": (d.xpos, d.xmat), "geom": (d.geom_xpos, d.geom_xmat)}[
            self.robot.ee_frame_type
        ]
        tcp[:3, 3], tcp[:3, :3] = xpos[self._ee_id], xmat[self._ee_id].reshape(3, 3)
        objects, yaws, velocities, held = {}, {}, {}, {}
        for name, qadr in self._object_qadr.items():
            objects[name] = d.qpos[qadr:qadr + 3].copy()
            w, x, y, z = d.qpos[qadr + 3:qadr + 7]
            yaws[name] = float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))
            velocities[name] = d.qvel[self._object_dofadr[name]:self._object_dofadr[name] + 6].copy()
            held[name] = self._held_heights.get(name, float(objects[name][2]))  # before the first reset: where it is
        return SimState(tcp, objects, yaws, d.mocap_pos[self._goal_mocap].copy(), self.gripper_command,
                        self.gripper_position(), velocities, held)

    def success(self) -> bool:
        return self.task.success(self.state())

    def _info(self, success: bool | None = None) -> dict:
        """`success` and, under the name LeRobot's sim envs give it (its eval counts `final_info["is_success"]`),
        `is_success`; the steps taken and the prompt."""
        success = self.success() if success is None else success
        return {"success": success, "is_success": success, "steps": self.steps, "prompt": self.task_description}


class GymTabletopEnv(TabletopEnv):
    """`TabletopEnv` as `gymnasium.make("worldpolicy/<Task>-v0")` builds it (`worldpolicy.sim.registration`).

    Its step limit is gymnasium's TimeLimit (`max_episode_steps`, registered as the task's `max_steps`), not one of its
    own: with both, `make(..., max_episode_steps=N)` above the task's horizon still ended episodes at the horizon.
    `render_mode` defaults to None, as in gymnasium's own environments (camera observations do not depend on it)."""

    def __init__(
        self,
        task: str | Task,
        robot: str | RobotConfig = "panda",
        *,
        control_hz: float = DEFAULT_CONTROL_HZ,
        image_size: tuple[int, int] | None = DEFAULT_IMAGE_SIZE,
        render_mode: str | None = None,
        max_steps: int | None = None,
        perturb: str | Sequence[str] | Perturbation | None = None,
        prompt_template: str | None = None,
        obs_type: str = "droid",
    ) -> None:
        if max_steps is not None:
            raise ValueError(
                f"max_steps: an env made by gymnasium.make takes its step limit from gymnasium's TimeLimit: pass "
                f"gymnasium.make(..., max_episode_steps={max_steps!r}) instead (-1: none); got max_steps={max_steps!r}"
            )
        super().__init__(task, robot, control_hz=control_hz, image_size=image_size, render_mode=render_mode,
                         perturb=perturb, prompt_template=prompt_template, obs_type=obs_type)
        self.max_steps = None

    @property
    def spec(self) -> gym.envs.registration.EnvSpec | None:
        """The spec `gymnasium.make` made it from (gymnasium's `Env.spec`)."""
        return getattr(self, "_spec", None)

    @spec.setter
    def spec(self, spec: gym.envs.registration.EnvSpec | None) -> None:
        """`gymnasium.make` sets the spec as soon as it has built the env: the one moment the id is known, which the
        constructor never sees (the registered `task` is a kwarg a caller's overrides). A task that contradicts one of
        our ids (`make("worldpolicy/Reach-v0", task="push")`: a push env under reach's id and step limit, misnamed in
        every log and report) is refused here; an id registered elsewhere on this entry point may name any task."""
        from worldpolicy.sim.registration import ENV_IDS

        registered = {i: t for t, i in ENV_IDS.items()}.get(spec.id) if spec is not None else None
        task = self.task.name
        if registered is not None and registered != task:
            self.close()
            own = ENV_IDS.get(task)
            instead = f"gymnasium.make({own!r})" if own else "an id of its own (gymnasium.register) or TabletopEnv"
            raise ValueError(f"task={task!r} contradicts the id {spec.id!r}, which is task {registered!r} with its "
                             f"step limit: for {task!r} use {instead}, or leave task out")
        self._spec = spec


def unwrap_tabletop(env: gym.Env) -> TabletopEnv:
    """The `TabletopEnv` under `env`'s gymnasium wrappers (`gymnasium.make` adds TimeLimit, OrderEnforcing,
    PassiveEnvChecker). Rollouts and the scripted expert drive it through its lower-level API (`act`, `observe`,
    `state`), so no wrapper acts on them; `step_limit` says how long their episodes run."""
    base = env.unwrapped if isinstance(env, gym.Env) else env
    if not isinstance(base, TabletopEnv):
        raise TypeError(f"env: expected a worldpolicy TabletopEnv, or an env made by gymnasium.make from a "
                        f"'worldpolicy/...' id (worldpolicy.sim registers them), got {type(base).__name__}")
    return base


def step_limit(env: gym.Env) -> int:
    """The step limit `env`'s episodes run to: its TabletopEnv's own `max_steps`, or, made by `gymnasium.make`, the
    TimeLimit's (`env.spec.max_episode_steps`)."""
    limit = unwrap_tabletop(env).max_steps
    if limit is None:
        limit = env.spec.max_episode_steps if env.spec is not None else None
        if limit is None:
            raise ValueError(f"env: {env} has no step limit (made with max_episode_steps=-1, or unwrapped); rollouts "
                             f"need one: gymnasium.make(..., max_episode_steps=N)")
    return limit


_OBJ = {"site": mujoco.mjtObj.mjOBJ_SITE, "body": mujoco.mjtObj.mjOBJ_BODY, "geom": mujoco.mjtObj.mjOBJ_GEOM}
