import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.robot.kinematics import IKSolver, load_robot_spec
from worldpolicy.robot.robots import RobotConfig, get_robot, list_robots


@pytest.fixture
def menagerie_root(tmp_path, monkeypatch):
    """A Menagerie-layout checkout: franka_emika_panda/panda.xml with no TCP site and a 0-255 gripper actuator."""
    text = Path(get_robot("panda").mjcf).read_text()
    text = "\n".join(line for line in text.splitlines() if '<site name="tcp"' not in line)
    text = text.replace('name="gripper" tendon="split" kp="400" kv="20" forcerange="-40 40" ctrlrange="0 0.04"',
                        'name="actuator8" tendon="split" gainprm="0.01568627451" biasprm="0 -100 -10" '
                        'forcerange="-100 100" ctrlrange="0 255"')
    text = text.replace("<position name=\"actuator8\"", "<general name=\"actuator8\"")
    root = tmp_path / "menagerie"
    (root / "franka_emika_panda").mkdir(parents=True)
    (root / "franka_emika_panda" / "panda.xml").write_text(text)
    monkeypatch.setenv("MENAGERIE_ROOT", str(root))
    return root


def test_menagerie_layout_loads_with_added_tcp(menagerie_root):
    robot = get_robot("menagerie_panda")
    assert robot.gripper_actuator == "actuator8"
    np.testing.assert_allclose(robot.gripper_to_ctrl([0.0, 1.0]), [255.0, 0.0])  # 255 = open
    model = load_robot_spec(robot).compile()
    assert model.site("tcp").id >= 0
    shipped, menagerie = IKSolver("panda"), IKSolver(robot)
    q = np.array(robot.home)
    np.testing.assert_allclose(menagerie.fk(q), shipped.fk(q), atol=1e-9)
    # Also reachable by path, whatever the file is called.
    assert get_robot(menagerie_root / "franka_emika_panda" / "panda.xml").mjcf.endswith("panda.xml")
    renamed = menagerie_root / "my_panda.xml"
    renamed.write_text((menagerie_root / "franka_emika_panda" / "panda.xml").read_text())
    assert get_robot(renamed).mjcf == str(renamed)
    with pytest.raises(FileNotFoundError, match="missing.xml' does not exist"):
        get_robot(menagerie_root / "missing.xml")


def test_a_folder_holding_no_panda_is_named_as_it_was_given(tmp_path, monkeypatch):
    """`--robot emptydir` said `robot 'menagerie_panda': no franka_emika_panda/panda.xml under emptydir`, naming a
    robot the user had not named and neither the flag nor the panda.xml it also takes."""
    (tmp_path / "empty").mkdir()
    accepted = ("holds no franka_emika_panda/panda.xml nor panda.xml; accepted: a MuJoCo Menagerie checkout, its "
                "franka_emika_panda folder or the MJCF file")
    with pytest.raises(FileNotFoundError) as refused:
        get_robot(tmp_path / "empty")
    assert str(refused.value) == f"robot: {str(tmp_path / 'empty')!r} {accepted}"  # the command line's --robot
    monkeypatch.setenv("MENAGERIE_ROOT", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError) as refused:
        get_robot("menagerie_panda")
    assert str(refused.value) == f"robot 'menagerie_panda': MENAGERIE_ROOT={str(tmp_path / 'empty')!r} {accepted}"


def test_a_robot_by_path_is_named_by_that_path(menagerie_root, tmp_path):
    """A robot given by path was named `menagerie_panda` (the shipped config's name) in errors and the sim report."""
    from worldpolicy.cli import main

    renamed = menagerie_root / "my_panda.xml"
    renamed.write_text((menagerie_root / "franka_emika_panda" / "panda.xml").read_text())
    assert get_robot(renamed).name == str(renamed)
    assert get_robot("menagerie_panda").name == "menagerie_panda"
    with pytest.raises(ValueError, match=r"robot '.*my_panda.xml': home must be 7 joint angles in rad"):
        get_robot(renamed, home=(0.0,) * 6)
    out = tmp_path / "run"
    assert main(["sim", "--policy", "scripted", "--task", "reach", "--episodes", "1", "--videos", "0", "--no-plots",
                 "--image-size", "32x32", "--robot", str(renamed), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "report.json").read_text())["robot"] == str(renamed)


def test_overrides_and_validation():
    home = (0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0)
    assert get_robot("panda", home=home).home == home
    with pytest.raises(ValueError, match=r"home must be 7 joint angles in rad, one number per arm joint \(joint1, "
                                         r".*\), got \(0.0, 0.0, 0.0, 0.0, 0.0, 0.0\)$"):
        get_robot("panda", home=(0.0,) * 6)
    with pytest.raises(ValueError, match="ee_frame_type"):
        get_robot("panda", ee_frame_type="joint")
    with pytest.raises(ValueError, match=r"max_joint_velocity must be 7 positive rad/s values, one number per arm "
                                         r"joint, got \(1.0,\)$"):
        get_robot("panda", max_joint_velocity=(1.0,))
    assert get_robot("panda").max_joint_velocity == (2.175,) * 4 + (2.61,) * 3  # Franka's datasheet
    # a misspelt field was a TypeError naming only that keyword: now the config's fields are listed
    with pytest.raises(ValueError, match=r"robot 'panda': no config field 'max_speed' to override; the fields: name, "
                                         r"mjcf, .*max_tcp_speed, max_tcp_rotation_speed$"):
        get_robot("panda", max_speed=2.0)


def test_a_panda_mjcf_of_another_layout_is_named_with_the_fix(tmp_path):
    """A copy of the shipped panda.xml by path is read with Menagerie's names: the env failed with MuJoCo's bare
    "Invalid name 'actuator8'" KeyError. The scene names it; IK, which drives no actuator, works."""
    from worldpolicy.sim.env import TabletopEnv

    path = tmp_path / "my_panda.xml"
    path.write_text(Path(get_robot("panda").mjcf).read_text())
    with pytest.raises(ValueError, match=r"robot '.*my_panda.xml': gripper_actuator names actuator 'actuator8', "
                                         r"which .*my_panda.xml does not have; its actuators: \['actuator1', .*"
                                         r"'gripper'\]. Name the MJCF's own as its config's gripper_actuator \(the "
                                         r"robot file's \"gripper_actuator\" key; in Python get_robot\(robot, "
                                         r"gripper_actuator=...\)"):
        TabletopEnv("reach", robot=str(path), image_size=None)
    with pytest.raises(ValueError, match=r"ee_frame names site 'flange', .* its sites: \['tcp'"):
        load_robot_spec(get_robot("panda", ee_frame="flange"))
    with pytest.raises(ValueError, match=r"arm_joints names joint 'joint_7', .* its joints: \['joint1', .*'finger_joint2'\]"):
        IKSolver(get_robot("panda", arm_joints=(*get_robot("panda").arm_joints[:6], "joint_7")))
    mine = get_robot(path, gripper_actuator="gripper", gripper_ctrl_open=0.04)
    assert TabletopEnv("reach", robot=mine, image_size=None).reset(seed=0)[1]["steps"] == 0


@pytest.mark.parametrize("field, name, kind", [("gripper_actuator", "actuator8", "actuators"),
                                               ("gripper_joints", ("left", "right"), "joints"),
                                               ("arm_actuators", tuple(f"a{i}" for i in range(7)), "actuators"),
                                               ("camera_body", "panda_hand", "bodies")])
def test_names_only_a_scene_uses_do_not_stop_ik(field, name, kind):
    """A config whose gripper actuator or camera body the MJCF lacks was refused by IKSolver too, though IK/FK (a
    real arm's bridge, the joint-to-pose training conversion) never touch them; the scene still names them."""
    from worldpolicy.robot.decode import ActionDecoder
    from worldpolicy.sim.scenes import build_scene

    robot = get_robot("panda", **{field: name})
    q = np.array(robot.home)
    np.testing.assert_allclose(IKSolver(robot).fk(q), IKSolver("panda").fk(q))
    deltas = np.tile([0.005, 0, 0, 1, 0, 0, 0, 1, 0, 0.0], (3, 1))
    assert ActionDecoder("droid/relative_pose", robot).decode(deltas, q).tracking.max_mm < 1
    with pytest.raises(ValueError, match=rf"robot 'panda': {field} names .* its {kind}: .*\(the robot file's "
                                         rf"\"{field}\" key; in Python get_robot\(robot, {field}="):
        build_scene(robot, [])


def test_joint_limits_are_the_configs_and_reach_every_use():
    """The Panda's limits are data in its config, the same as the shipped MJCF's; a config's own (an FR3's) replace
    the MJCF's ranges for IK, the decoder and the sim alike."""
    import mujoco

    from worldpolicy.robot.robots import FR3_JOINT_LIMITS, PANDA_JOINT_LIMITS
    from worldpolicy.sim.env import TabletopEnv

    panda = get_robot("panda")
    assert panda.joint_limits == PANDA_JOINT_LIMITS
    mjcf = mujoco.MjModel.from_xml_path(panda.mjcf)
    np.testing.assert_array_equal([mjcf.joint(j).range for j in panda.arm_joints], PANDA_JOINT_LIMITS)
    fr3 = get_robot("panda", joint_limits=[list(pair) for pair in FR3_JOINT_LIMITS])
    assert fr3.joint_limits == FR3_JOINT_LIMITS  # lists are kept as the config's tuples
    ik = IKSolver(fr3)
    np.testing.assert_array_equal(np.stack([ik.lower, ik.upper], 1), FR3_JOINT_LIMITS)
    env = TabletopEnv("reach", robot=fr3, image_size=None)
    np.testing.assert_array_equal(env.action_space.high[:7], [hi for _, hi in FR3_JOINT_LIMITS])
    servo_ranges = [env.model.actuator(a).ctrlrange for a in fr3.arm_actuators]
    np.testing.assert_array_equal(servo_ranges, FR3_JOINT_LIMITS)  # a target past the Panda's is not cut there
    for bad in ((0.0, 1.0),) * 6, ((1.0, -1.0),) + FR3_JOINT_LIMITS[1:], ((0.0, np.nan),) + FR3_JOINT_LIMITS[1:]:
        with pytest.raises(ValueError, match=r"robot 'panda': joint_limits must be 7 \(lower, upper\) pairs in rad"):
            get_robot("panda", joint_limits=bad)


def test_robot_fr3_is_the_panda_model_with_the_fr3s_limits():
    """`--robot fr3` / get_robot("fr3"): an FR3 needs no hand-written config; its home pose is inside its limits and an
    episode runs with the FR3's velocity limits judging joint speed."""
    from worldpolicy.robot.robots import FR3_JOINT_LIMITS, FR3_MAX_JOINT_VELOCITY
    from worldpolicy.sim.env import TabletopEnv

    fr3 = get_robot("FR3")
    assert (fr3.name, fr3.mjcf) == ("fr3", get_robot("panda").mjcf) and "fr3" in list_robots()
    assert fr3.joint_limits == FR3_JOINT_LIMITS and fr3.max_joint_velocity == FR3_MAX_JOINT_VELOCITY
    lower, upper = np.array(FR3_JOINT_LIMITS).T
    assert np.all((lower < fr3.home) & (np.array(fr3.home) < upper))
    env = TabletopEnv("reach", robot="fr3", image_size=None)
    obs, _ = env.reset(seed=0)
    assert np.all(obs["observation/joint_position"] >= lower - 0.01)
    np.testing.assert_array_equal(env.action_space.high[:7], upper)


@pytest.mark.parametrize("override, match", [
    ({"finger_open": 0.0}, r"finger_open must be the finger travel at g = 0, a positive number of metres, got 0.0"),
    ({"gripper_ctrl_closed": 0.04}, r"gripper_ctrl_open and gripper_ctrl_closed must be two different finite"),
    ({"tcp_offset": ("hand", 0.1)}, r"tcp_offset must be \(body name, x, y, z\) in metres or None, got \('hand', 0.1\)"),
    ({"home": (0.0, -0.3, 0.0, -2.2, 0.0, -1.0, 0.7854)}, r"home is outside joint_limits at joint6=-1 \[-0.0175, 3.75"),
])
def test_configs_the_gripper_map_or_the_arm_cannot_use_are_refused(override, match):
    """finger_open 0 read every gripper position back as NaN; equal ctrl ends commanded one opening whatever g; a
    short tcp_offset failed in unpacking; a home outside the limits started every episode against a joint stop."""
    with pytest.raises(ValueError, match=rf"robot 'panda': {match}"):
        get_robot("panda", **override)


@pytest.mark.parametrize("override, match", [
    ({"max_tcp_speed": "1.7"}, r"max_tcp_speed must be a positive speed in m/s, got '1.7'; numbers, not strings"),
    ({"max_tcp_rotation_speed": "2.5"}, r"max_tcp_rotation_speed must be a positive speed in rad/s, got '2.5'; num"),
    ({"max_joint_velocity": ["2.6"] * 7}, (r"max_joint_velocity must be 7 positive rad/s values, one number per arm "
                                           r"joint, got \['2.6', .*'2.6'\]; numbers, not strings")),
    ({"max_joint_velocity": "2.6, " * 6 + "2.6"}, r"max_joint_velocity must be 7 positive rad/s values.*got '2.6, "),
    ({"home": [0, "-0.3", 0, -2.2, 0, 1.9, 0.78]}, r"home must be 7 joint angles in rad.*numbers, not strings"),
    ({"finger_open": "0.04"}, (r"finger_open must be the finger travel at g = 0, a positive number of metres, got "
                               r"'0.04'; numbers")),
    ({"joint_limits": [["-2.8", "2.8"]] * 7}, r"joint_limits must be 7 \(lower, upper\) pairs in rad.*numbers, not"),
    ({"tcp_offset": ["hand", 0, 0, "0.1034"]}, (r"tcp_offset must be \(body name, x, y, z\) in metres or None, got "
                                                r"\['hand', 0, 0, '0.1034'\]; numbers")),
    ({"arm_joints": "joint1"}, r"arm_joints must be a list of MJCF names \(strings\), got 'joint1'"),
])
def test_numbers_given_as_strings_are_refused_naming_the_field(override, match):
    """A config from a YAML/JSON spec with a quoted number ("1.7") was accepted and failed later: a TypeError comparing
    it in the decoder or the constructor's own checks, or (a quoted list) one value per character."""
    with pytest.raises(ValueError, match=rf"robot 'panda': {match}"):
        get_robot("panda", **override)


def test_limits_numpy_cannot_lay_out_are_refused_naming_the_field():
    """Arrays of two shapes (a (2, 2) and a (2, 3) block) make numpy's asarray raise its own 'could not broadcast'
    ValueError, naming no field: the config's check says which field and what it takes."""
    with pytest.raises(ValueError, match=r"robot 'panda': joint_limits must be 7 \(lower, upper\) pairs in rad"):
        get_robot("panda", joint_limits=[np.zeros((2, 2)), np.zeros((2, 3))])


@pytest.mark.parametrize("override", [{"gripper_actuator": ["gripper"]}, {"ee_frame": None}, {"camera_body": 3}])
def test_a_single_mjcf_name_that_is_no_string_is_refused_naming_the_field(override):
    """A robot file's `"gripper_actuator": ["gripper"]` passed the scene's name check (it iterated the list) and a
    null or a number for a name broke that check with a TypeError ('NoneType' object is not iterable)."""
    (field, value), = override.items()
    with pytest.raises(ValueError, match=rf"robot 'panda': {field} must be one MJCF name \(a string\), got "
                                         rf"{re.escape(repr(value))}$"):
        get_robot("panda", **override)


def test_a_config_from_a_spec_files_lists_is_the_shipped_one():
    """JSON/YAML give lists where the shipped configs hold tuples: kept as tuples, the config equals and hashes like
    the shipped one (an IKSolver built for it is accepted by a decoder of the shipped robot)."""
    panda = get_robot("panda")
    # numpy arrays too: max_joint_velocity's was compared with the default's tuple, "truth value ... is ambiguous"
    arrays = get_robot("panda", **{k: np.asarray(getattr(panda, k)) for k in ("home", "max_joint_velocity",
                                                                             "joint_limits")})
    assert arrays == panda and isinstance(arrays.max_joint_velocity, tuple)
    spec = json.loads(json.dumps(dataclasses.asdict(panda)))  # every tuple a list, as a spec file gives it
    loaded = get_robot(RobotConfig(**spec))
    assert loaded == panda and hash(loaded) == hash(panda)
    assert isinstance(loaded.arm_joints, tuple) and isinstance(loaded.joint_limits[0], tuple)


def test_another_arm_from_a_panda_config_is_told_which_per_joint_fields_are_still_the_pandas(menagerie_root):
    """A 6-joint arm by path (`get_robot("ur5e.xml", arm_joints=6 names, ...)`) failed with 'joint_limits needs 6
    (lower, upper) pairs ... got' the Panda's limits, which the caller never gave, without saying where they came
    from; a RobotConfig of 6 joints left at the default speeds was told it 'got' Franka's 7."""
    from worldpolicy.robot.robots import RobotConfig

    six = {"arm_joints": tuple(f"joint{i}" for i in range(1, 7)),
           "arm_actuators": tuple(f"actuator{i}" for i in range(1, 7)), "home": (0.0,) * 6}
    path = menagerie_root / "franka_emika_panda" / "panda.xml"
    with pytest.raises(ValueError, match=r"6 arm joints where the Panda's config it starts from has 7: "
                                         r"max_joint_velocity, joint_limits are still the Panda's; give them too "
                                         r"\(joint_limits=None: the MJCF's ranges\)"):
        get_robot(path, **six)
    assert get_robot(path, **six, max_joint_velocity=(3.14,) * 6, joint_limits=None).dof == 6
    base = {k: getattr(get_robot("panda"), k) for k in ("mjcf", "ee_frame", "ee_frame_type", "gripper_joints",
                                                       "gripper_actuator", "gripper_ctrl_open",
                                                       "gripper_ctrl_closed", "finger_open")}
    with pytest.raises(ValueError, match=r"max_joint_velocity must be 6 positive rad/s values, one number per arm "
                                         r"joint \(the default is the Franka Panda's 7\), got \(2.175"):
        RobotConfig(name="six", **base, **six)


# a 6-joint arm with the names docs/robot.md's robot file gives: two fingers, a `tcp` site, no `hand` body
ARM_MJCF = """<mujoco model="my_arm">
  <compiler angle="radian"/>
  <worldbody>
    <body name="base">
      <body name="l1" pos="0 0 0.16"><joint name="shoulder_pan" axis="0 0 1" range="-6.28 6.28"/><geom size="0.05"/>
      <body name="l2" pos="0 0.14 0"><joint name="shoulder_lift" axis="0 1 0" range="-6.28 6.28"/><geom size="0.05"/>
      <body name="l3" pos="0 -0.13 0.42"><joint name="elbow" axis="0 1 0" range="-3.14 3.14"/><geom size="0.04"/>
      <body name="l4" pos="0 0 0.39"><joint name="wrist_1" axis="0 1 0" range="-6.28 6.28"/><geom size="0.04"/>
      <body name="l5" pos="0 0.13 0"><joint name="wrist_2" axis="0 0 1" range="-6.28 6.28"/><geom size="0.04"/>
      <body name="wrist_3_link" pos="0 0 0.1"><joint name="wrist_3" axis="0 1 0" range="-6.28 6.28"/>
        <geom size="0.04"/><site name="tcp" pos="0 0.2 0"/>
        <body name="fl" pos="0 0.15 0.02"><joint name="finger_l" type="slide" axis="0 0 1" range="0 0.04"/>
          <geom type="box" size="0.01 0.01 0.03"/></body>
        <body name="fr" pos="0 0.15 -0.02"><joint name="finger_r" type="slide" axis="0 0 -1" range="0 0.04"/>
          <geom type="box" size="0.01 0.01 0.03"/></body>
      </body></body></body></body></body></body>
    </body>
  </worldbody>
  <equality><joint joint1="finger_l" joint2="finger_r"/></equality>
  <actuator>
    <position name="a1" joint="shoulder_pan"/><position name="a2" joint="shoulder_lift"/>
    <position name="a3" joint="elbow"/><position name="a4" joint="wrist_1"/><position name="a5" joint="wrist_2"/>
    <position name="a6" joint="wrist_3"/><position name="gripper" joint="finger_l" ctrlrange="0 0.04"/>
  </actuator>
</mujoco>
"""


def test_a_robot_of_ones_own_is_a_json_file_of_its_config(tmp_path):
    """`--robot` (sim, from-sim) took only the Panda's names or a Panda-layout MJCF: a 6-joint arm, which Python could
    describe as a RobotConfig, had no way onto the command line. A JSON file of RobotConfig's fields is one; its mjcf
    is relative to the file."""
    (tmp_path / "arm").mkdir()
    (tmp_path / "arm" / "six.xml").write_text(ARM_MJCF)
    spec = {"mjcf": "six.xml", "ee_frame": "tcp", "ee_frame_type": "site",
            "arm_joints": ["shoulder_pan", "shoulder_lift", "elbow", "wrist_1", "wrist_2", "wrist_3"],
            "arm_actuators": [f"a{i}" for i in range(1, 7)], "gripper_joints": ["finger_l", "finger_r"],
            "gripper_actuator": "gripper", "gripper_ctrl_open": 0.04, "gripper_ctrl_closed": 0.0, "finger_open": 0.04,
            "home": [0, -1.2, 1.2, -1.5, -1.5, 0], "max_joint_velocity": [3.14] * 6, "camera_body": "wrist_3_link"}
    path = tmp_path / "arm" / "six.json"
    path.write_text(json.dumps(spec))
    robot = get_robot(path)
    assert (robot.name, robot.mjcf, robot.dof) == (str(path), str(tmp_path / "arm" / "six.xml"), 6)
    assert robot.max_joint_velocity == (3.14,) * 6 and robot.joint_limits is None  # the MJCF's ranges
    assert IKSolver(robot).fk(np.zeros(6)).shape == (4, 4)
    assert get_robot(path, name="six").name == "six"  # overrides as for any robot
    path.write_text(json.dumps({**spec, "arm_joint": spec["arm_joints"]}))
    with pytest.raises(ValueError, match=r"six.json': unknown key 'arm_joint'; accepted: .*arm_joints"):
        get_robot(path)
    path.write_text(json.dumps({**spec, "arm_joint": spec["arm_joints"], "max_speed": 2.0}))
    with pytest.raises(ValueError, match=r"six.json': unknown keys 'arm_joint', 'max_speed'; accepted: "):
        get_robot(path)  # every typo at once: it named the first only
    path.write_text(json.dumps({k: v for k, v in spec.items() if k != "home"}))
    with pytest.raises(ValueError, match=r"six.json': missing key 'home'; "):
        get_robot(path)
    path.write_text(json.dumps({k: v for k, v in spec.items() if k not in ("home", "mjcf")}))
    with pytest.raises(ValueError, match=r"six.json': missing keys 'mjcf', 'home'; "):
        get_robot(path)
    path.write_text(json.dumps({**spec, "mjcf": "six.mjcf"}))
    with pytest.raises(ValueError, match=r"six.json': mjcf='six.mjcf' is no MJCF file \(a path relative to this"):
        get_robot(path)
    path.write_text(json.dumps({**spec, "joint_limits": [[-3, 3]] * 6}))
    assert get_robot(path).joint_limits == ((-3.0, 3.0),) * 6
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"six.json': expected a JSON object of RobotConfig's fields"):
        get_robot(path)
    with pytest.raises(FileNotFoundError, match=r"missing.json' does not exist"):
        get_robot(tmp_path / "missing.json")
    path.write_text('{"mjcf": "six.xml",')  # a file cut short, a trailing comma: one line naming the file
    with pytest.raises(ValueError, match=r"six.json': not readable as JSON: Expecting"):
        get_robot(path)


def test_the_docs_robot_file_loads_and_builds_a_sim_scene(tmp_path):
    """docs/robot.md's robot file, said to run in `worldpolicy sim`, left camera_body at the Panda's `hand`, which a
    scene of its arm refused; and it named its MJCF ur5e.xml, whose Menagerie joints are named otherwise. On an MJCF
    with its names, it loads, solves IK and builds a scene."""
    from worldpolicy.sim.scenes import build_scene

    docs = (Path(__file__).parents[2] / "docs" / "robot.md").read_text()
    spec = json.loads(re.search(r"```json\n(.*?)```", docs, re.DOTALL).group(1))
    (tmp_path / spec["mjcf"]).write_text(ARM_MJCF)
    (tmp_path / "my_arm.json").write_text(json.dumps(spec))
    robot = get_robot(tmp_path / "my_arm.json")
    assert robot.dof == 6 and IKSolver(robot).fk(np.array(robot.home)).shape == (4, 4)
    build_scene(robot, [])
