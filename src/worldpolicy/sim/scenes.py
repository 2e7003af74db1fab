"""Tabletop scene around a robot MJCF, with cameras placed like DROID's.

DROID records two exterior stereo cameras on either side of the table looking at the workspace and one wrist camera on
the gripper looking along it (fingers at the bottom of the image). Their left images are what a DROID client sends, so
the cameras are named after those observation keys.

MuJoCo (and the robot's kinematics) load in the functions that build: the names and sizes here (cameras, table top,
object specs) are what `worldpolicy.sim.tasks`, and through it the gymnasium registration, import, without MuJoCo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from worldpolicy.robot.robots import RobotConfig, get_robot

if TYPE_CHECKING:
    import mujoco

__all__ = ["CAMERAS", "HANDLE_GROUP", "SCENE_NAMES", "TABLE_TOP", "ObjectSpec", "build_scene", "camera_feature_name",
           "look_at_quat"]

# The RobotConfig name fields a scene uses beyond IK's (`kinematics.IK_NAMES`): the env drives the actuators and reads
# the fingers, and the wrist camera hangs on the camera body.
SCENE_NAMES = ("arm_actuators", "gripper_joints", "gripper_actuator", "camera_body")
# DROID observation key → camera name in the scene.
CAMERAS = {
    "observation/exterior_image_1_left": "exterior_1_left",
    "observation/exterior_image_2_left": "exterior_2_left",
    "observation/wrist_image_left": "wrist_left",
}


def camera_feature_name(camera_key: str) -> str:
    """DROID wire key (`observation/wrist_image_left`) → the camera's name where a key holds no slash: a dataset's
    video feature (`dataset from-sim`'s `observation.image.wrist_image_left`) and the env's LeRobot-style `pixels`
    dict (`TabletopEnv(obs_type="pixels_agent_pos")`)."""
    return camera_key.rsplit("/", 1)[-1]


# Each camera's (height, width) in pixels where none is given: an env's observations, and its renderer with
# image_size=None (no camera observations), whose `render()` is then the three views side by side at this size.
DEFAULT_IMAGE_SIZE = (180, 320)
TABLE_TOP = 0.0  # the robot base sits on the table surface, like DROID's table-mounted Franka
TABLE_CENTER = (0.55, 0.0)
TABLE_HALF = (0.4, 0.5)
# The geom group of a "handle" (a teleoperator's target, `dataset teleop`): MuJoCo draws groups 0-2 unless told
# otherwise, so the recorded cameras (an offscreen renderer's default options) never show it; the viewer turns it on.
HANDLE_GROUP = 5


@dataclass(frozen=True)
class ObjectSpec:
    """A task object: `kind` is "box" (free body, collides), "marker" / "pad" (static visual, no collision) or
    "handle" (a mocap box no camera draws: in `HANDLE_GROUP`, no collision; a teleoperator drags it)."""

    name: str
    kind: str
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float] = (0.8, 0.2, 0.2, 1.0)
    mass: float = 0.05


def look_at_quat(pos: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at `pos` looking at `target` (cameras look along -z, y up)."""
    import mujoco

    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    rot = np.stack([right, cam_up, -forward], axis=1)
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, rot.flatten())
    return quat


def build_scene(robot: RobotConfig | str, objects: list[ObjectSpec], *,
                image_size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> mujoco.MjModel:
    """Compile robot + table + lights + the three DROID cameras + task objects into one model."""
    import mujoco

    from worldpolicy.robot.kinematics import check_names, load_robot_spec

    robot = get_robot(robot)
    spec = load_robot_spec(robot)
    check_names(robot, spec, SCENE_NAMES)
    if robot.joint_limits is not None:  # the arm's position servos take joint targets: their range is the joint's
        for actuator, limits in zip(robot.arm_actuators, robot.joint_limits):
            spec.actuator(actuator).ctrlrange = list(limits)
    spec.modelname = f"tabletop_{robot.name}"
    height, width = image_size
    spec.visual.global_.offheight = max(int(height), 480)
    spec.visual.global_.offwidth = max(int(width), 640)
    # Software GL (EGL on llvmpipe, OSMesa) is the common headless case: a 512 shadow map without multisampling
    # renders 3x faster than 2048 with 4x MSAA (8.5 vs 25 ms per 128x224 frame); shadow edges get blockier and
    # reach a little further. Shadows stay: the ball's shadow on the table is the only cue to its height in one view.
    spec.visual.quality.shadowsize = 512
    spec.visual.quality.offsamples = 0
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
    world = spec.worldbody

    spec.add_texture(name="sky", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
                     rgb1=[0.75, 0.8, 0.85], rgb2=[0.3, 0.32, 0.36], width=256, height=256)
    # The key light comes from the front-left and above, not from straight above: the arm's shadow then falls beside
    # the gripper instead of in the middle of the wrist view, where it hid dark balls (the reach model trained under an
    # overhead light failed 12 of 47 balls in that band, none in the lit upper third), and a floating ball's shadow
    # sits off to one side by about half its height, a height cue in every view.
    key_pos = np.array([0.9, 0.6, 1.5])
    key_dir = np.array([0.5, 0.0, 0.0]) - key_pos
    world.add_light(name="key", pos=key_pos.tolist(), dir=(key_dir / np.linalg.norm(key_dir)).tolist(),
                    diffuse=[0.6, 0.6, 0.6], castshadow=True)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, pos=[0, 0, -0.75], size=[3, 3, 0.05],
                   rgba=[0.35, 0.37, 0.4, 1])
    world.add_geom(
        name="table", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[TABLE_CENTER[0], TABLE_CENTER[1], TABLE_TOP - 0.02],
        size=[TABLE_HALF[0], TABLE_HALF[1], 0.02], rgba=[0.62, 0.5, 0.38, 1], friction=[0.5, 0.005, 0.0001],
    )
    for x, y in ((0.2, 0.45), (0.2, -0.45), (0.9, 0.45), (0.9, -0.45)):
        world.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=[x, y, TABLE_TOP - 0.39], size=[0.03, 0.03, 0.35],
                       rgba=[0.3, 0.25, 0.2, 1], contype=0, conaffinity=0)

    # Exterior cameras: left and right of the robot, over its shoulders, looking at the centre of the volume the tasks
    # use (reach balls up to 35 cm above the table, the hand starting at 40 cm). Low (45 cm) and with a 45 deg lens,
    # that volume fills the frame: a ball at any corner of it covers >= 109 px against 56 px from the earlier
    # (0.35, +-0.7, 0.55) aimed at the table with 60 deg, and a high ball shows against the wall, apart from its shadow,
    # from row 40 instead of row 18 (tests/sim/test_env.py). The nearest low balls touch the bottom edge.
    workspace = np.array([0.5, 0.0, 0.22])
    for name, pos in (("exterior_1_left", [0.35, 0.75, 0.45]), ("exterior_2_left", [0.35, -0.75, 0.45])):
        world.add_camera(name=name, pos=pos, quat=look_at_quat(np.array(pos), workspace), fovy=45)
    # Wrist camera: on the hand, offset along hand +x, looking along the fingers (hand +z) tilted 20 deg towards them,
    # so the fingertips sit at the bottom of the image; image "up" = hand +x. A wide lens (100 deg vertical, like the
    # fisheye-ish wrist cameras of real arms): from the home pose it sees 94 of 100 reach targets, 76 at 75 deg; the
    # reach model trained with the 75 deg lens solved 80 % of the targets it saw at the start, 58 % of the others.
    # Retrained on this scene: 76 % against 75 % overall (benchmarks/README.md).
    spec.body(robot.camera_body).add_camera(name="wrist_left", pos=[0.05, 0.0, 0.065], xyaxes=[0, 1, 0, 0.94, 0, 0.342], fovy=100)

    for obj in objects:
        if obj.kind == "box":
            body = world.add_body(name=obj.name, pos=[0.5, 0, TABLE_TOP + obj.size[2]])
            body.add_freejoint(name=f"{obj.name}_joint")
            body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(obj.size), rgba=list(obj.rgba),
                          mass=obj.mass, friction=[0.5, 0.005, 0.0001], condim=4)
        elif obj.kind in ("marker", "pad"):
            body = world.add_body(name=obj.name, pos=[0.5, 0, TABLE_TOP], mocap=True)
            shape = mujoco.mjtGeom.mjGEOM_SPHERE if obj.kind == "marker" else mujoco.mjtGeom.mjGEOM_CYLINDER
            body.add_geom(name=obj.name, type=shape, size=list(obj.size), rgba=list(obj.rgba), contype=0,
                          conaffinity=0)
        elif obj.kind == "handle":
            body = world.add_body(name=obj.name, pos=[0.5, 0, TABLE_TOP], mocap=True)
            body.add_geom(name=obj.name, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(obj.size), rgba=list(obj.rgba),
                          contype=0, conaffinity=0, group=HANDLE_GROUP)
        else:
            raise ValueError(f"object {obj.name!r}: kind must be 'box', 'marker', 'pad' or 'handle', got {obj.kind!r}")
    return spec.compile()
