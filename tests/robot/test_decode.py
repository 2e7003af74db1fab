import dataclasses
import json
import logging

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.embodiments import embodiment_from_spec, get_embodiment
from worldpolicy.robot.decode import ActionDecoder
from worldpolicy.robot.robots import get_robot, list_robots

IDENTITY6 = [1, 0, 0, 0, 1, 0]


@pytest.fixture(scope="module")
def rel():
    return ActionDecoder("droid/relative_pose", "panda")


@pytest.fixture(scope="module")
def joints():
    """Joint chunks that jump (to show clipping) are past the velocity check, which tests of its own cover."""
    return ActionDecoder("droid", "panda", check_velocity=False)


def test_relative_pose_chunk_moves_the_ee(rel):
    emb = rel.embodiment
    q0 = np.array(rel.robot.home)
    physical = np.tile([0.005, 0, 0, 1, 0, 0, 0, 1, 0, 1.0], (32, 1))
    cmd = rel.decode(physical, q0)
    assert cmd.qpos.shape == (32, 7) and cmd.gripper.shape == (32,)
    moved = rel.ik.fk(cmd.qpos[-1])[:3, 3] - rel.ik.fk(q0)[:3, 3]
    np.testing.assert_allclose(moved, [0.16, 0, 0], atol=5e-3)
    assert cmd.tracking.mean_mm < 5
    np.testing.assert_allclose(cmd.gripper, 1.0)
    # The normalised round trip goes through the registry's stats.
    assert np.allclose(emb.denormalize(emb.normalize(physical[:1])), physical[:1])


def test_joint_position_passthrough_clips_with_warning(joints, caplog):
    """The warning named neither the joint nor its limits (on a robot of one's own: which joint, and are its limits
    the arm's?): it names each joint clipped by its furthest target, in rad and deg, and where the limits are set."""
    q = np.tile(np.array([*joints.robot.home, 0.3]), (4, 1))
    q[2, 3] = 0.08  # joint4 limit is [-3.07, -0.07]: 0.15 rad past it, within TARGET_JOINT_MARGIN_RAD
    q[1, 3] = 0.0  # less far, the step before
    q[2, 7] = 1.5  # and the gripper above 1 in the same step
    with caplog.at_level(logging.WARNING):
        cmd = joints.decode(q, np.array(joints.robot.home))
    assert cmd.clipped == 3 and (
        "actions: 2 joint targets outside the limits of robot 'panda', clipped to them: joint4 target 0.08 rad (4.584 "
        "deg) at step 2, past its upper limit -0.0698 rad (-3.999 deg) by 0.15 rad; the limits are its config's "
        "joint_limits (the robot file's \"joint_limits\" key; in Python get_robot(robot, joint_limits=...), robot its "
        "RobotConfig, a built-in robot's name or a robot file's path)") in caplog.text
    assert cmd.clipped_steps.tolist() == [0, 1, 2, 0]  # per step: a caller running part of the chunk counts that part
    assert cmd.qpos[2, 3] == pytest.approx(-0.0698)
    np.testing.assert_allclose(cmd.qpos[0], joints.robot.home)
    np.testing.assert_allclose(cmd.gripper, [0.3, 0.3, 1.0, 0.3])


def test_joint_targets_far_past_the_limits_are_refused_naming_them(joints):
    """Joint targets in degrees were clipped to the limits, with a warning, like a policy's overshoot: every joint
    went to a limit. Past TARGET_JOINT_MARGIN_RAD they are refused, naming each joint at the first such step."""
    home = np.array(joints.robot.home)
    degrees = np.tile(np.append(np.degrees(home), 0.0), (3, 1))
    with pytest.raises(ValueError, match=r"actions: 12 joint targets more than 0.2 rad past the joint limits of "
                                         r"robot 'panda' \(robots.TARGET_JOINT_MARGIN_RAD\), first at step 0: joint2=-17.19 "
                                         r"\(limits \[-1.763, 1.763\]\), joint4=-126.1 .*joint7=45 \(limits "
                                         r"\[-2.897, 2.897\]\); refusing.*degrees \(np.radians converts them\).*robot "
                                         r"'fr3' for a Franka FR3"):
        joints.decode(degrees, home)
    # an FR3's joint 6 at 4.4 rad is 0.65 past a Panda's limit: refused on 'panda', valid on 'fr3'
    fr3_reading = np.tile(np.append(home, 0.0), (2, 1))
    fr3_reading[1, 5] = 4.4
    with pytest.raises(ValueError, match=r"first at step 1: joint6=4.4 \(limits \[-0.0175, 3.752\]\)"):
        joints.decode(fr3_reading, home)
    assert ActionDecoder("droid", "fr3", check_velocity=False).decode(fr3_reading, home).clipped == 0
    # where only the count matters (the sim), check_limits=False clips and counts them
    lenient = ActionDecoder("droid", "panda", check_velocity=False, check_limits=False)
    cmd = lenient.decode(degrees, home)
    assert cmd.clipped == 12 and np.all(cmd.qpos >= lenient.ik.lower) and np.all(cmd.qpos <= lenient.ik.upper)


@pytest.mark.parametrize("shape", [(32, 9), (32,), (0, 10)])
def test_wrong_chunk_width(rel, shape):
    with pytest.raises(ValueError, match=r"actions: expected a chunk of shape \[T, 10\]") as raised:
        rel.decode(np.zeros(shape), np.array(rel.robot.home))
    assert "actions[None]" not in str(raised.value)  # no row of this embodiment: no one-step hint


def test_one_step_given_as_a_row_names_the_chunk_of_one_row(rel):
    """decode(chunk[0], q): a single step of the right width was refused as a wrong shape, without saying how to give
    one step."""
    step = np.array([0.01, 0, 0, *IDENTITY6, 0.5])
    with pytest.raises(ValueError, match=r"got \(10,\); one step is a chunk of one row: actions\[None\]"):
        rel.decode(step, np.array(rel.robot.home))
    assert rel.decode(step[None], np.array(rel.robot.home)).qpos.shape == (1, 7)


def test_nan_actions_refused(rel):
    a = np.tile([0, 0, 0, 1, 0, 0, 0, 1, 0, 0.0], (4, 1))
    a[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN.*step 2.*'ty'"):
        rel.decode(a, np.array(rel.robot.home))


@pytest.mark.parametrize("still", [True, False])
def test_measured_joints_in_degrees_are_refused_naming_them(rel, still):
    """IK seeded with joints in degrees returned them as targets (a still chunk: -126 "rad", nothing clipped, 0 mm
    error) or jumped to another configuration reported as an unreachable target (a moving chunk)."""
    a = np.tile([0 if still else 0.01, 0, 0, 1, 0, 0, 0, 1, 0, 0.5], (4, 1))
    with pytest.raises(ValueError, match=r"q_arm: joint2=-17.19 \(limits \[-1.76, 1.76\]\), joint4=-126.1 .*"
                                         r"joint6=108.9 .*radians \(joints in degrees\? np.radians"):
        rel.decode(a, np.degrees(rel.robot.home))
    with pytest.raises(ValueError, match=r"q_arm: expected the 7 measured arm joint angles of robot 'panda'"):
        rel.decode(a, [*rel.robot.home, 0.0])  # the gripper appended
    # a measured joint a little past its (soft) limit is what the sim reports: accepted, as the env's space allows
    q = np.array(rel.robot.home)
    q[3] = rel.ik.upper[3] + 0.05
    assert rel.decode(np.tile([0, 0, 0, 1, 0, 0, 0, 1, 0, 0.5], (4, 1)), q).qpos.shape == (4, 7)


def test_fr3_readings_need_the_fr3s_limits_and_the_error_says_how():
    """A Franka FR3 (DROID records FR3s) reaches joint 6 = 4.0 and joint 7 = 3.0 rad; robot `panda` refused them with
    the Panda MJCF's limits and no way out. Its error names the config field; with FR3 limits the chunk decodes."""
    q = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 4.0, 3.0])
    a = np.tile([0.005, 0, 0, 1, 0, 0, 0, 1, 0, 0.0], (4, 1))
    with pytest.raises(ValueError, match=r"joint6=4 \(limits \[-0.0175, 3.75\]\), joint7=3 .* give them as its "
                                         r"config's joint_limits \(the robot file's \"joint_limits\" key; in Python "
                                         r"get_robot\(robot, joint_limits=\[\(lower, upper\), ...\]\), robot its "
                                         r"RobotConfig, .*; a Franka FR3: robot 'fr3'"):
        ActionDecoder("droid/relative_pose", "panda").decode(a, q)
    fr3 = ActionDecoder("droid/relative_pose", "fr3")
    cmd = fr3.decode(a, q)
    assert cmd.tracking.max_mm < 1 and cmd.qpos[:, 5].max() > 3.9  # tracked, joint 6 past where a Panda stops
    # past the FR3's own limits the error no longer sends an FR3 to robot 'fr3' (it did, to the robot it was)
    q[5] = 4.8
    with pytest.raises(ValueError, match=r"joint6=4.8 \(limits \[0.544, 4.52\]\).*joint_limits=\[\(lower, upper\), "
                                         r"...\]\), robot its RobotConfig, a built-in robot's name or a robot file's "
                                         r"path\)$"):
        fr3.decode(a, q)
    # the hint's get_robot(robot, ...) is true of a config built in Python too (get_robot('my_arm') is no robot)
    q[5] = 4.0
    mine = dataclasses.replace(get_robot("panda"), name="my_arm")
    with pytest.raises(ValueError, match=r"in Python get_robot\(robot, joint_limits=") as raised:
        ActionDecoder("droid/relative_pose", mine).decode(a, q)
    assert "get_robot('my_arm'" not in str(raised.value)
    assert ActionDecoder("droid/relative_pose", get_robot(mine, joint_limits=get_robot("fr3").joint_limits)).decode(
        a, q).tracking.max_mm < 1


def test_gripper_out_of_range_warns(rel, caplog):
    a = np.tile([0, 0, 0, 1, 0, 0, 0, 1, 0, 1.2], (2, 1))
    with caplog.at_level(logging.WARNING):
        cmd = rel.decode(a, np.array(rel.robot.home))
    assert cmd.clipped == 2 and "gripper" in caplog.text
    np.testing.assert_allclose(cmd.gripper, 1.0)


@pytest.mark.parametrize("value, step, cause", [
    (255.0, 1, r"likely actuator units \(Menagerie's 0-255, 255 = open: g = 1 - v/255\)"),  # read as closed
    (40.0, 1, r"a finger width in mm \(a Franka Hand opens 80 mm: g = 1 - v/80\) or percent"),  # half open, as closed
    (-1.0, 1, r"likely a \[-1, 1\] convention \(\(v \+ 1\) / 2 maps it to \[0, 1\]; mind which end is open\)"),
], ids=["actuator_counts", "width_mm", "minus_one_to_one"])
@pytest.mark.parametrize("layout", ["droid", "droid/relative_pose"])
def test_gripper_values_in_another_unit_are_refused_naming_them(value, step, cause, layout):
    """A gripper in actuator counts or mm was clipped to 1 (closed) and a [-1, 1] convention's -1 to 0 (open), with
    only a warning: the gripper did the opposite of what the data meant. Past GRIPPER_MARGIN they are refused, naming
    the column, step, value, the range the bridge takes and the likely unit; check_limits=False clips and counts them."""
    decoder = ActionDecoder(layout, "panda", check_velocity=False)
    home = np.array(decoder.robot.home)
    row = [*home, 0.5] if layout == "droid" else [0, 0, 0, *IDENTITY6, 0.5]
    a = np.tile(row, (3, 1))
    a[step:, -1] = value
    column = decoder.embodiment.columns[-1]
    with pytest.raises(ValueError, match=rf"actions: 2 values of gripper column '{column}' more than 0.5 outside "
                                         rf"\[0, 1\] \(robots.GRIPPER_MARGIN\), first at step {step}: {value:g}; "
                                         r"refusing to command the robot. The bridge takes g in \[0, 1\], 0 = open, 1 = "
                                         rf"closed \(DROID's convention\): this is .*{cause}.*check_limits=False"):
        decoder.decode(a, home)
    lenient = ActionDecoder(layout, "panda", check_velocity=False, check_limits=False)
    cmd = lenient.decode(a, home)
    assert cmd.clipped == 2 and cmd.clipped_steps.tolist() == [0, 1, 1]
    np.testing.assert_allclose(cmd.gripper, [0.5, *[float(np.clip(value, 0, 1))] * 2])


def test_a_policys_gripper_overshoot_up_to_the_margin_is_clipped_not_refused(joints, caplog):
    """GRIPPER_MARGIN is where clipping stops: a head's 1.5 or -0.5 is still a g, overshot."""
    home = np.array(joints.robot.home)
    a = np.tile([*home, 0.0], (3, 1))
    a[:, -1] = [-0.5, 1.5, 1 + 1e-7]  # the last is float dust: neither clipped with a warning nor counted
    with caplog.at_level(logging.WARNING):
        cmd = joints.decode(a, home)
    assert cmd.clipped_steps.tolist() == [1, 1, 0] and "2 values of gripper column 'gripper' outside [0, 1]" in caplog.text
    np.testing.assert_allclose(cmd.gripper, [0.0, 1.0, 1.0])


def test_the_actuator_map_refuses_what_is_no_g_with_the_decoders_causes():
    """gripper_to_ctrl takes only a g (the decoder clips a policy's overshoot first); its error says which."""
    panda = get_robot("panda")
    with pytest.raises(ValueError, match=r"got range \[0, 255\]; likely actuator units"):
        panda.gripper_to_ctrl([0.0, 255.0])
    with pytest.raises(ValueError, match=r"got range \[-1, 1\]; likely a \[-1, 1\] convention"):
        panda.gripper_to_ctrl([-1.0, 1.0])
    with pytest.raises(ValueError, match=r"got range \[0, 1.2\]; a policy's chunk goes through ActionDecoder"):
        panda.gripper_to_ctrl([0.0, 1.2])


def test_gripper_mapping_polarity():
    panda = get_robot("panda")
    np.testing.assert_allclose(panda.gripper_to_ctrl([0.0, 1.0, 0.5]), [0.04, 0.0, 0.02])
    assert panda.finger_to_gripper(0.04) == 0.0 and panda.finger_to_gripper(0.0) == 1.0
    with pytest.raises(ValueError, match="gripper"):
        panda.gripper_to_ctrl(1.5)


def test_unknown_names():
    # another arm is a robot file: the error said only "a path to an MJCF file", which loads as a Panda
    with pytest.raises(KeyError, match=r"robot: unknown name 'ur5'; .* or a robot file \(\*.json: RobotConfig's "):
        get_robot("ur5")
    assert "panda" in list_robots()
    with pytest.raises(ValueError, match="layout"):
        ActionDecoder(get_embodiment("pusht"), "panda")


def test_model_space_actions_are_refused_until_stats_and_units_are_registered(tmp_path):
    """umi's normalised deltas were integrated as metres: a value of 0.5 moved the target half a metre per step."""
    with pytest.raises(ValueError, match=r"embodiment 'umi' gives its actions in model space \(units 'normalized'"):
        ActionDecoder("umi", "panda")
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"action": {"q01": [-0.01] * 3 + [0.9] + [-0.1] * 3 + [0.9, -0.1, 0.0],
                                            "q99": [0.01] * 3 + [1.0] + [0.1] * 3 + [1.0, 0.1, 1.0]}}))
    spec = {**get_embodiment("umi").to_dict(), "name": "test_decode_umi", "normalization": "quantile",
            "stats_file": str(stats)}
    with pytest.raises(ValueError, match=r"units say 'normalized' \(model space\) for tx, ty, tz, r0, r1, r2, r3, "
                                         r"r4, r5, grasp, but normalization 'quantile' turns actions into physical"):
        embodiment_from_spec(spec)
    mine = embodiment_from_spec({**spec, "units": ["m"] * 3 + ["1"] * 7})
    assert not mine.in_model_space and ActionDecoder(mine, "panda").embodiment is mine


def test_menagerie_without_root(monkeypatch):
    monkeypatch.delenv("MENAGERIE_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="MENAGERIE_ROOT"):
        get_robot("menagerie_panda")


def test_a_menagerie_panda_starts_from_the_shipped_pandas_home(tmp_path):
    """Menagerie's config had joint 6 = 2.0 (the prior art's IK seed: TCP tilted 5.7 deg, 2 cm further out), the
    shipped one 1.9 (straight down), so `--robot menagerie_panda` started the sim and recordings from another pose."""
    mjcf = tmp_path / "panda.xml"
    mjcf.write_text("<mujoco/>")  # the config alone: nothing loads the file here
    assert get_robot(mjcf).home == get_robot("panda").home


def test_joint_jumps_faster_than_the_arm_allows_are_refused_naming_the_joint_and_limit():
    """A joint chunk was clipped to the limits and sent whatever its speed: a 2 rad step of joint 1 at 15 fps is 30
    rad/s against Franka's 2.175, which a real arm answers with a reflex stop (or worse)."""
    dec = ActionDecoder("droid", "panda")
    home = np.append(dec.robot.home, 0.0)
    chunk = np.tile(home, (4, 1))
    chunk[2:, 0] = 2.0
    with pytest.raises(ValueError, match=r"1 steps move a joint faster than robot 'panda' allows; first from target 1 "
                                         r"to target 2: joint1 moves 2 rad in one step, 30 rad/s at 15 fps "
                                         r"\(embodiment 'droid/joint_pos'\), over its max_joint_velocity 2.175 rad/s"
                                         r".*check_velocity=False"):
        dec.decode(chunk, np.array(dec.robot.home))
    # given, the measured joints are where the first step starts: a chunk that starts 1 rad away is a jump too
    with pytest.raises(ValueError, match=r"first from the measured joints to target 0: joint1 moves 2 rad"):
        dec.decode(chunk[2:], np.array(dec.robot.home))
    # at the limit's pace it runs: 2.1 rad/s on joint 1, 2.5 on joint 7
    steady = np.tile(home, (8, 1))
    steady[:, 0] += np.arange(1, 9) * 2.1 / 15
    steady[:, 6] += np.arange(1, 9) * 2.5 / 15
    np.testing.assert_allclose(dec.decode(steady, np.array(dec.robot.home)).qpos, steady[:, :7])
    # an arm with other limits says so in its config
    fast = ActionDecoder("droid", get_robot("panda", max_joint_velocity=(40.0,) * 7))
    assert len(fast.decode(chunk, np.array(dec.robot.home))) == 4
    assert len(ActionDecoder("droid", "panda", check_velocity=False).decode(chunk, None)) == 4


def test_a_joint_chunk_without_the_measured_joints_needs_the_speed_check_off():
    """Without `q_arm` the move from wherever the arm is to target 0 went unchecked: a chunk for another setup, 2 rad
    from the arm, passed the speed check between its own targets."""
    dec = ActionDecoder("droid", "panda")
    chunk = np.tile(np.append(dec.robot.home, 0.0), (4, 1))
    with pytest.raises(ValueError, match=r"q_arm: None, but check_velocity checks the first target against the "
                                         r"measured arm joints; pass the 7 joint angles \(rad\) of robot 'panda', or make "
                                         r"the decoder with check_velocity=False"):
        dec.decode(chunk, None)
    with pytest.raises(ValueError, match=r"q_arm: None, but a relative_pose chunk starts from the measured arm joints"):
        ActionDecoder("droid/relative_pose", "panda").decode(np.tile([0, 0, 0, *IDENTITY6, 0], (2, 1)), None)


@pytest.mark.parametrize("fps", [15, 60, 200])
def test_measured_joints_past_a_limit_start_the_chunk_at_the_limit(fps):
    """MuJoCo's soft limits let a servo overshoot a limit a little (accepted: `MEASURED_JOINT_MARGIN_RAD`). IK started
    from there: at 60 fps the speed-limited QP could not get back inside in one period and mink raised a bare
    `NoSolutionFound`; a still chunk returned the joint past its limit as a target. Both start at the limit now."""
    emb = dataclasses.replace(get_embodiment("droid/relative_pose"), fps=fps)
    dec = ActionDecoder(emb, "panda")
    q = np.array(dec.robot.home)
    q[3] = dec.ik.upper[3] + 0.09  # joint 4 (upper -0.0698) overshot by 0.09 rad
    for dz in (0.0, 0.005):  # still, and 5 mm a step up
        cmd = dec.decode(np.tile([0, 0, dz, *IDENTITY6, 0], (4, 1)), q)
        assert np.all(cmd.qpos >= dec.ik.lower) and np.all(cmd.qpos <= dec.ik.upper)
        assert cmd.tracking.max_mm < 5 and not cmd.tracking.unreachable_steps  # by the straightened elbow
    joints = ActionDecoder("droid", "panda")
    held = np.tile(np.append(q, 0.0), (2, 1))  # a joint chunk that holds the overshot pose: clipped, at speed
    np.testing.assert_allclose(joints.decode(held, q).qpos[:, 3], dec.ik.upper[3])


def test_a_turn_too_fast_for_the_joints_is_met_part_way_and_reported_not_swung(rel, caplog):
    """A 150 deg turn of the hand in one step is reachable, but IK swung joints 1 and 3 by over a radian to get there
    (12x their speed at 15 fps), which the decoder then refused. IK now holds each joint to its speed over the
    period: the hand turns what the joints allow about the commanded axis, stays where it was (the speed-limited QP
    alone moved it 159 mm sideways) and the rest is reported unreachable. (With check_limits, the decoder refuses such
    a turn before IK: past twice the arm's Cartesian rotation limit; IK's part is what a chunk left to it gets.)"""
    from scipy.spatial.transform import Rotation

    from worldpolicy.robot.kinematics import IKSolver

    q0 = np.array(rel.robot.home)
    turn = Rotation.from_euler("z", 150, degrees=True).as_matrix()
    a = np.array([[0, 0, 0, *turn[:, 0], *turn[:, 1], 0.0]])
    with pytest.raises(ValueError, match=r"turn the end effector more than 0.333 rad in one step"):
        rel.decode(a, q0)
    unchecked = ActionDecoder("droid/relative_pose", "panda", check_limits=False)
    with caplog.at_level(logging.WARNING):
        cmd = unchecked.decode(a, q0)
    speed = np.abs(cmd.qpos[0] - q0) * rel.embodiment.fps / rel.robot.max_joint_velocity
    assert speed.max() <= 1 and speed.max() > 0.9  # at the limit, not past it (nor idle)
    assert cmd.tracking.unreachable_steps == [0] and "unreachable" in caplog.text
    assert cmd.tracking.max_mm < 2 and 135 < cmd.tracking.max_deg < 145  # in place, about 10 deg of the 150 turned
    turned = Rotation.from_matrix(rel.ik.fk(q0)[:3, :3].T @ rel.ik.fk(cmd.qpos[0])[:3, :3]).as_rotvec()
    assert turned[2] > 0.15 and np.abs(turned[:2]).max() < 0.01  # about the commanded axis, the commanded way
    # the refusal stays the last guard: an IK without the speed limit swings the arm, and the chunk is refused
    free = ActionDecoder("droid/relative_pose", "panda", ik=IKSolver("panda"), check_limits=False)
    with pytest.raises(ValueError, match=r"from the measured joints to target 0: joint\d moves .* rad in one step.* "
                                         r"\(IK reconfigured the arm to reach the target"):
        free.decode(a, q0)


@pytest.mark.parametrize("r6, what", [([1, 0, 0, 1, 0, 0], r"r0..r2 norm 1, r3..r5 norm 1, \|cos\| between them 1"),
                                      ([0, 0, 0, 0, 0, 0], r"r0..r2 norm 0, r3..r5 norm 0"),
                                      ([2, 0, 0, 0, 2, 0], r"r0..r2 norm 2, r3..r5 norm 2")])
def test_rot6d_that_is_no_rotation_is_refused(rel, r6, what):
    """Parallel columns projected (SVD) to a 45 deg turn about z the arm would have made; zero ones to the identity by
    chance of the LAPACK routine; doubled ones are values in the wrong units."""
    a = np.tile([0, 0, 0, 1, 0, 0, 0, 1, 0, 0.0], (3, 1))
    a[1, 3:9] = r6
    with pytest.raises(ValueError, match=rf"rot6d of 1 steps is not the first two columns of a rotation \(first at "
                                         rf"step 1: {what}.*Columns, not rows"):
        rel.decode(a, np.array(rel.robot.home))


def test_encode_relative_pose_needs_a_gripper_value_per_target(rel):
    from worldpolicy.robot.decode import encode_relative_pose

    q0 = np.array(rel.robot.home)
    with pytest.raises(ValueError, match=r"gripper: expected one value per joint target, shape \(3,\), got \(2,\)"):
        encode_relative_pose(q0, np.tile(q0, (3, 1)), np.zeros(2), rel.ik)


def test_an_ik_solver_for_another_robot_is_refused():
    """The decoder judges measured joints and clips targets with its IK's limits: an FR3's IK under robot 'panda'
    accepted a Panda's impossible joint 6 = 4 rad."""
    from worldpolicy.robot.kinematics import IKSolver

    with pytest.raises(ValueError, match=r"ik: solves for robot 'fr3', not the decoder's robot 'panda'"):
        ActionDecoder("droid/relative_pose", "panda", ik=IKSolver("fr3"))
    ik = IKSolver("panda")
    assert ActionDecoder("droid/relative_pose", "panda", ik=ik).ik is ik


@pytest.mark.parametrize("layout, units, said", [
    ("relative_pose", ["cm"] * 3 + ["1"] * 7,
     r"a robot takes EE translations in 'm', but its units give tx='cm', ty='cm', tz='cm'"),
    ("relative_pose", ["1"] * 10, r".*tx='1', ty='1', tz='1'; if they are 'm', say so in its spec's units"),
    ("joint_position", ["deg"] * 7 + ["1"],
     r"a robot takes joint angles in 'rad', but its units give joint_0='deg', .*joint_6='deg'"),
])
def test_embodiments_in_other_units_than_the_bridge_computes_in_are_refused(layout, units, said):
    """A relative_pose spec registered without units (they default to '1') or in cm was integrated as metres: a 1.5
    cm step moved the arm 1.5 m. Joints in degrees were sent as radians."""
    from worldpolicy.embodiments import embodiment_from_dict

    base = get_embodiment("droid/relative_pose" if layout == "relative_pose" else "droid")
    mine = embodiment_from_dict({**base.to_dict(), "name": f"test_units_{layout}", "units": units})
    with pytest.raises(ValueError, match=rf"embodiment 'test_units_{layout}[^']*': {said}"):
        ActionDecoder(mine, "panda")


def _pose_only():
    """A pose-only head (av's 9 columns) registered with physical stats and units: no gripper column."""
    from worldpolicy.embodiments import embodiment_from_dict

    droid = get_embodiment("droid/relative_pose")
    return embodiment_from_dict({**get_embodiment("av").to_dict(), "name": "test_pose_only", "aliases": [],
                                 "normalization": "quantile", "stats": {k: v[:9] for k, v in droid.stats.items()},
                                 "units": ["m"] * 3 + ["1"] * 6})


def test_a_chunk_without_a_gripper_column_commands_no_gripper():
    """A pose-only head decoded to g = 0 at every step: a real arm's stack that sent it opened a gripper holding an
    object. The chunk says nothing about the gripper, so the command has none."""
    dec = ActionDecoder(_pose_only(), "panda")
    q0 = np.array(dec.robot.home)
    cmd = dec.decode(np.tile([0, 0, 0.005, *IDENTITY6], (4, 1)), q0)
    assert cmd.gripper is None and cmd.clipped == 0
    np.testing.assert_allclose(dec.ik.fk(cmd.qpos[-1])[:3, 3] - dec.ik.fk(q0)[:3, 3], [0, 0, -0.02], atol=1e-3)  # TCP z down


def test_the_sims_rollout_keeps_the_gripper_where_a_chunk_commands_none():
    """The rollout appended `cmd.gripper[i]` to each joint target: None failed there."""
    pytest.importorskip("gymnasium")
    from worldpolicy.results import Prediction
    from worldpolicy.robot.control import ChunkStrategy
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.rollout import Rollout

    class Still:
        embodiment = _pose_only()

        def act(self, observation, prompt):
            actions = np.tile([0, 0, 0, *IDENTITY6], (4, 1))
            return Prediction("policy", self.embodiment.key, list(self.embodiment.columns),
                              list(self.embodiment.units), actions, actions, self.embodiment.fps)

    env = TabletopEnv("reach", image_size=None, max_steps=3)
    commanded = []
    act = env.act
    env.act = lambda action: (commanded.append(action[-1]), act(action))
    Rollout(env, Still(), ChunkStrategy("execute", 4)).run(seed=0)
    assert commanded == [0.0, 0.0, 0.0]  # reset's command (open), held
    # a closed gripper stays closed (a made-up g = 0 passed the check above too, and opened it)
    reset = env.reset
    env.reset = lambda **kw: (reset(**kw), setattr(env, "gripper_command", 1.0))[0]
    commanded.clear()
    Rollout(env, Still(), ChunkStrategy("execute", 4)).run(seed=0)
    assert commanded == [1.0, 1.0, 1.0]


def test_grippers_reach_the_decoder_in_the_droid_convention_as_the_fact_sheet_gives_each_model():
    """robot-bridge.md s5: the RoboLab DROID policy holds g' = 1 - g both ways (`gripper_flip`); a RAW10 `grasp`
    (droid/relative_pose, bridge) is read as it comes, as the prior art does, its polarity unconfirmed. Whatever the
    flip, it is undone before the decoder (`to_physical`), which reads g as 0 = open, 1 = closed."""
    from worldpolicy.processing.actions import to_physical

    droid = get_embodiment("droid")
    assert droid.gripper_flip and not get_embodiment("droid/relative_pose").gripper_flip
    assert not get_embodiment("bridge").gripper_flip
    home = np.array(get_robot("panda").home)
    model = np.tile(np.append(home, 0.9), (2, 1))  # g' = 0.9: nearly closed in model space, nearly open for the robot
    cmd = ActionDecoder(droid, "panda").decode(to_physical(droid, model), home)
    np.testing.assert_allclose(cmd.gripper, 0.1)
    np.testing.assert_allclose(get_robot("panda").gripper_to_ctrl(cmd.gripper), 0.036)  # fingers 36 of 40 mm open


@pytest.mark.parametrize("scale", [100.0, "normalized"])
def test_end_effector_steps_in_another_unit_are_refused(rel, scale):
    """DROID's ~1 cm steps given in centimetres, or model-space values given as metres, were decoded with only an
    "unreachable" warning while IK drove the arm toward them at full joint speed. Steps past TCP_SPEED_MARGIN times
    the arm's Cartesian speed limit are refused, naming the step, its size and the likely units."""
    home = np.array(rel.robot.home)
    physical = np.tile([0.01, 0.005, 0, *IDENTITY6, 0.5], (4, 1))
    if scale == "normalized":  # the gripper's 0.5 is 0 in model space: a g, so the steps are what is refused
        wrong = rel.embodiment.normalize(physical)
    else:
        wrong = physical * np.array([scale] * 3 + [1] * 7)
    with pytest.raises(ValueError, match=r"actions: \d steps move the end effector more than 0.227 m in one step, "
                                         r"first at step 0: .*over 2 x robot 'panda''s max_tcp_speed 1.7 m/s.*"
                                         r"centimetres or millimetres.*actions_normalized"):
        rel.decode(wrong, home)
    assert rel.decode(physical, home).tracking.max_mm < 5  # the same chunk in metres runs
    # a fast but plausible step (the shipped model's data reaches 0.114 m at 15 fps) is left to IK and the speed check
    fast = np.tile([0.12, 0, 0, *IDENTITY6, 0.0], (1, 1))
    lenient = ActionDecoder("droid/relative_pose", "panda", check_velocity=False)
    assert lenient.decode(fast, home).qpos.shape == (1, 7)
    # an FR3's faster Cartesian limit moves the bar; where nothing real moves, check_limits=False leaves it to IK
    assert ActionDecoder("droid/relative_pose", "fr3", check_limits=False).decode(wrong, home).qpos.shape == (4, 7)
    with pytest.raises(ValueError, match=r"more than 0.4 m in one step.*robot 'fr3''s max_tcp_speed 3 m/s"):
        ActionDecoder("droid/relative_pose", "fr3").decode(np.tile([1.0, 0, 0, *IDENTITY6, 0.0], (2, 1)), home)


def _turns_about_z(angle: float, steps: int) -> np.ndarray:
    """A relative_pose chunk (DROID's 10 columns) turning the end effector by `angle` rad about z each step."""
    c, s = np.cos(angle), np.sin(angle)
    return np.tile([0, 0, 0, c, s, 0, -s, c, 0, 0.5], (steps, 1))


def test_end_effector_turns_from_degrees_read_as_radians_are_refused(rel):
    """A rotation built from angles in degrees read as radians (scipy's from_euler without degrees=True) turned 3 deg a
    step into 3 rad, 172 deg: nothing refused it, and the wrist spun as fast as its joints go. Turns past
    TCP_SPEED_MARGIN times the arm's Cartesian rotation limit are refused as translations are, naming the step, the
    angle, the limit and the likely cause."""
    home = np.array(rel.robot.home)
    with pytest.raises(ValueError, match=r"actions: 2 steps turn the end effector more than 0.333 rad in one step, "
                                         r"first at step 0: a turn of 171.9 deg \(3 rad, 45 rad/s at 15 fps.*over 2 x "
                                         r"robot 'panda''s max_tcp_rotation_speed 2.5 rad/s.*angles in degrees read "
                                         r"as radians.*the robot file's \"max_tcp_rotation_speed\" key; in Python "
                                         r"get_robot\(robot, max_tcp_rotation_speed=...\)"):
        rel.decode(_turns_about_z(3.0, 2), home)
    assert rel.decode(_turns_about_z(np.radians(3.0), 2), home).tracking.max_mm < 5  # the same turns in radians run
    # a fast but plausible turn (4.5 rad/s, under the bar's 5) is left to IK and the joint speed check
    lenient = ActionDecoder("droid/relative_pose", "panda", check_velocity=False)
    assert lenient.decode(_turns_about_z(0.3, 1), home).qpos.shape == (1, 7)
    # the FR3's limit is Franka's 2.5 rad/s too; check_limits=False leaves the turn to IK where nothing real moves
    with pytest.raises(ValueError, match=r"robot 'fr3''s max_tcp_rotation_speed 2.5 rad/s"):
        ActionDecoder("droid/relative_pose", "fr3").decode(_turns_about_z(1.0, 1), home)
    assert ActionDecoder("droid/relative_pose", "panda", check_limits=False).decode(
        _turns_about_z(3.0, 2), home).qpos.shape == (2, 7)
    faster = ActionDecoder("droid/relative_pose", get_robot("panda", max_tcp_rotation_speed=30.0), check_velocity=False)
    assert faster.decode(_turns_about_z(3.0, 1), home).qpos.shape == (1, 7)  # a faster arm's own limit moves the bar


def test_joint_velocities_given_as_positions_are_refused_naming_velocities():
    """openpi's pi0/pi05 DROID policies return joint velocities; a chunk of them (or of per-step deltas) given as
    `droid/joint_pos` positions was refused as a joint past its limit or too fast, the errors naming degrees, another
    arm's joint order or the speed limit's config, never what the chunk most likely is."""
    decoder = ActionDecoder("droid", "panda")
    home = np.array(decoder.robot.home)
    velocities = np.tile([0.1, -0.2, 0.05, 0.3, 0.0, 0.1, -0.1, 0.0], (4, 1))  # joint4 +0.3 lies 0.37 past its limit
    with pytest.raises(ValueError, match=r"past the joint limits.*degrees \(np.radians converts them\), joint "
                                         r"velocities \(rad/s\) or per-step deltas instead of absolute positions "
                                         r"\(openpi's pi0/pi05 DROID policies return velocities\)"):
        decoder.decode(velocities, home)
    deltas = np.tile([0.01, -0.01, 0.0, -0.1, 0.0, 0.02, 0.0, 0.0], (4, 1))  # within the limits, far from the arm
    with pytest.raises(ValueError, match=r"first from the measured joints to target 0: joint4 moves 2.1 rad in one "
                                         r"step.*; a jump from the measured joints: joint velocities \(rad/s\) or "
                                         r"per-step deltas instead of absolute positions"):
        decoder.decode(deltas, home)
    steady = np.tile([*home, 0.0], (4, 1))
    steady[1:, 0] += 0.5  # a jump between targets is no sign of velocities: not said there
    with pytest.raises(ValueError, match=r"from target 0 to target 1: joint1 moves 0.5 rad") as caught:
        decoder.decode(steady, home)
    assert "velocities" not in str(caught.value)


def test_a_command_and_its_tracking_read_in_a_line_not_their_arrays():
    """A decoded chunk in a notebook printed every joint target and 4x4 pose (200 lines for 32 steps): one line says
    its shapes, how well IK tracked (the summary) and what was clipped."""
    from worldpolicy.robot.decode import RobotCommand
    from worldpolicy.robot.kinematics import TrackingReport

    tracking = TrackingReport(np.array([0.5, 1.5]), np.array([0.1, 0.3]), unreachable_steps=[1])
    assert repr(tracking) == ("TrackingReport(steps=2, mean_mm=1, max_mm=1.5, mean_deg=0.2, max_deg=0.3, "
                              "unreachable_steps=1)")
    cmd = RobotCommand(np.zeros((32, 7)), np.zeros(32), np.zeros((32, 4, 4)), tracking, np.r_[np.zeros(31), 2])
    assert repr(cmd) == (f"RobotCommand(steps=32, qpos=[32, 7], gripper=[32], poses=[32, 4, 4], tracking={tracking!r}, "
                         "clipped=2)")
    assert repr(RobotCommand(np.zeros((4, 7)), None)).startswith("RobotCommand(steps=4, qpos=[4, 7], gripper=None, ")
