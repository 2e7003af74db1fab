import logging
import re

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.embodiments import get_embodiment
from worldpolicy.robot.kinematics import IKSolver
from worldpolicy.robot.se3 import matrix_to_rot6d

IDENTITY6 = [1, 0, 0, 0, 1, 0]


@pytest.fixture(scope="module")
def ik():
    return IKSolver("panda")


def test_shipped_panda_matches_franka_kinematics(ik):
    # Menagerie/Franka "home" puts the TCP (0.1034 m past the hand) at ~(0.554, 0, 0.521), pointing down.
    pose = ik.fk(np.array([0, 0, 0, -1.57079, 0, 1.57079, -0.7853]))
    np.testing.assert_allclose(pose[:3, 3], [0.5545, 0.0, 0.5211], atol=2e-3)
    np.testing.assert_allclose(pose[:3, 2], [0, 0, -1], atol=1e-3)
    # Zero configuration: straight up, flange at 0.333 + 0.316 + 0.384 + 0.107 (+ TCP), x offset 0.088.
    zero = ik.fk(np.zeros(7))
    np.testing.assert_allclose(zero[:3, 3], [0.088, 0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034], atol=1e-6)


def _line(ik, q0, length=0.17, steps=32):
    start = ik.fk(q0)
    targets = np.repeat(start[None], steps, axis=0)
    targets[:, 1, 3] += np.linspace(0, length, steps + 1)[1:]
    return targets


def test_line_tracking(ik):
    q0 = np.array(ik.robot.home)
    qs, report = ik.solve_trajectory(_line(ik, q0), q0)
    assert qs.shape == (32, 7)
    assert report.mean_mm <= 5 and report.max_mm <= 20, report.summary()
    assert np.all(qs >= ik.lower) and np.all(qs <= ik.upper)


def test_circle_tracking(ik):
    q0 = np.array(ik.robot.home)
    start = ik.fk(q0)
    theta = np.linspace(0, 2 * np.pi, 65)[1:]
    targets = np.repeat(start[None], 64, axis=0)
    targets[:, 0, 3] += 0.08 * (np.cos(theta) - 1)
    targets[:, 1, 3] += 0.08 * np.sin(theta)
    _, report = ik.solve_trajectory(targets, q0)
    assert report.mean_mm <= 5 and report.max_mm <= 20, report.summary()


def test_droid_sized_random_deltas_reanchored(ik):
    emb = get_embodiment("droid/relative_pose")
    rng = np.random.default_rng(0)
    for _ in range(3):
        normalized = rng.uniform(-1, 1, size=(32, 10))
        deltas = emb.denormalize(normalized)[:, :9]
        q0 = np.array(ik.robot.home)
        _, _, report = ik.solve_relative(deltas, q0)
        assert report.mean_mm <= 5 and report.max_mm <= 20, report.summary()
        assert report.drift_mm is not None and report.drift_mm.shape == (32,)


def test_open_loop_matches_plan(ik):
    q0 = np.array(ik.robot.home)
    deltas = np.tile([0.005, 0, 0, *IDENTITY6], (10, 1))
    _, targets, report = ik.solve_relative(deltas, q0, reanchor=False)
    # Body-frame +x of a down-pointing TCP with x along world x: 5 cm forward in total.
    np.testing.assert_allclose(targets[-1][:3, 3] - ik.fk(q0)[:3, 3], [0.05, 0, 0], atol=1e-6)
    assert report.max_mm < 5


def test_unreachable_target_is_logged_and_bounded(ik, caplog):
    q0 = np.array(ik.robot.home)
    target = ik.fk(q0)
    target[:3, 3] = [2.0, 0.0, 0.4]  # 2 m away: beyond the 0.85 m reach
    with caplog.at_level(logging.WARNING):
        qs, report = ik.solve_trajectory(target[None], q0)
    assert report.unreachable_steps == [0]
    assert "unreachable" in caplog.text
    assert np.all(qs >= ik.lower - 1e-9) and np.all(qs <= ik.upper + 1e-9)
    # what solve's docstring and docs/robot.md promise: solve returns these joints, without the report
    np.testing.assert_array_equal(ik.solve(target, q0), qs[0])


def test_rotation_target(ik):
    q0 = np.array(ik.robot.home)
    start = ik.fk(q0)
    rz = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    target = start.copy()
    target[:3, :3] = start[:3, :3] @ rz
    _, report = ik.solve_trajectory(target[None], q0)
    assert report.max_deg < 1.0 and report.max_mm < 5
    assert matrix_to_rot6d(rz).shape == (6,)


@pytest.mark.parametrize("kwargs", [{"damping": -1}, {"dt": float("nan")}, {"max_iters": 0}, {"max_iters": 2.5},
                                    {"solver": "nope"}, {"fps": 0}, {"fps": float("inf")}, {"fps": True},
                                    # a bool is no cost (as it is no rate); a string was a TypeError naming nothing
                                    {"damping": True}, {"posture_cost": "0.1"}])
def test_bad_solver_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        IKSolver("panda", **kwargs)


def test_solver_settings_take_numpy_numbers():
    """The rate and the iterations as numpy has them (a config's array), as the costs always were."""
    ik = IKSolver("panda", fps=np.int64(15), max_iters=np.int64(5), damping=np.float32(1e-3))
    assert (ik.fps, ik.max_iters) == (15.0, 5)


def test_given_the_control_rate_ik_keeps_joints_within_their_speed_along_the_commanded_motion(ik, caplog):
    """A 20 deg turn of the hand in one 15 fps step needs joint 7 at twice its 2.61 rad/s: IK without the rate jumps
    there (the decoder refuses it after the fact). With the rate, the solve stops at the speed limit, turning the hand
    about the commanded axis only as far as joint speeds allow and keeping it in place, and says the rest was
    unreachable; a target within reach of one period solves as without the rate."""
    from scipy.spatial.transform import Rotation

    limited = IKSolver("panda", fps=15)
    q0 = np.array(ik.robot.home)
    target = ik.fk(q0)
    target[:3, :3] = target[:3, :3] @ Rotation.from_euler("z", 20, degrees=True).as_matrix()
    travel = np.array(ik.robot.max_joint_velocity) / 15

    def speed(q):
        return np.max(np.abs(q - q0) / travel)

    assert speed(ik.solve(target, q0)) > 1.8
    with caplog.at_level(logging.WARNING):
        qs, report = limited.solve_trajectory(target[None], q0)
    assert 0.95 < speed(qs[0]) <= 1
    turned = Rotation.from_matrix(ik.fk(q0)[:3, :3].T @ ik.fk(qs[0])[:3, :3]).as_euler("xyz", degrees=True)
    assert 10 < turned[2] < 14 and np.abs(turned[:2]).max() < 0.5
    assert report.max_mm < 2 and report.unreachable_steps == [0] and "unreachable" in caplog.text
    near = ik.fk(q0)
    near[:3, 3] += [0.005, 0, 0]
    np.testing.assert_allclose(limited.solve(near, q0), ik.solve(near, q0), atol=1e-9)


def test_bad_q_and_target(ik):
    # each error names the parameter it was given as, and what a robot's joints are
    accepted = r"expected the 7 arm joint angles of robot 'panda' \(joint1, joint2, .*, joint7\) in rad, finite, got"
    with pytest.raises(ValueError, match=r"q_arm: " + accepted):
        ik.fk(np.zeros(6))
    with pytest.raises(ValueError, match=r"q_seed: " + accepted):
        ik.solve(ik.fk(np.array(ik.robot.home)), [0.0] * 6 + [np.nan])
    with pytest.raises(ValueError, match=r"q0: " + accepted):
        ik.solve_trajectory(ik.fk(np.array(ik.robot.home))[None], "home")
    with pytest.raises(ValueError, match=r"q0: " + accepted):
        ik.solve_relative(np.tile([0, 0, 0, *IDENTITY6], (2, 1)), np.zeros(8))
    with pytest.raises(ValueError, match="target"):
        ik.solve(np.full((4, 4), np.nan), np.array(ik.robot.home))


def test_joints_in_degrees_are_refused_naming_the_joint_and_a_droid_arm_a_little_past_the_limits_is_not(ik):
    """FK took degrees as radians and returned a wrong pose, silently, and so did `encode_relative_pose`, which turns a
    dataset's recorded joints into training deltas. A limited revolute joint past a full turn (+ `TURN_MARGIN`) is no
    arm's angle in rad; one just past the Panda's limits is (an FR3 in DROID), and still converts."""
    from worldpolicy.robot.decode import encode_relative_pose

    home = np.array(ik.robot.home)
    degrees = np.degrees(home)
    with pytest.raises(ValueError, match=r"q_arm: joint joint2 of robot 'panda' is -17\.1887, more than 6\.783 rad "
                                         r"from 0 .*degrees\? Joint angles are in rad \(np\.radians"):
        ik.fk(degrees)
    with pytest.raises(ValueError, match=r"joint joint4 of robot 'panda' is -134\.989.*degrees\?"):
        encode_relative_pose(home, np.tile(np.degrees([0, 0, 0, -2.356, 0, 0, 0]), (2, 1)), np.zeros(2), ik)
    fr3 = home.copy()
    fr3[5] = 4.5  # inside the FR3's joint6 range, past the Panda's 3.75
    chunk = encode_relative_pose(home, np.stack([home, fr3]), np.zeros(2), ik)
    assert np.all(np.isfinite(chunk)) and np.abs(chunk[1, :3]).max() > 0.01  # the joint moved the hand
    with pytest.raises(ValueError, match="in rad, finite"):  # still what a non-finite joint gets
        ik.fk([np.inf] * 7)


def test_a_target_reached_in_position_but_not_orientation_counts_as_unreachable(caplog):
    """A solver weighting position reached a hand flipped 180 deg about y to within 0.3 mm but 140 deg off, and a
    position-only bar reported it tracked: orientation past `UNREACHABLE_DEG` counts too."""
    from scipy.spatial.transform import Rotation

    from worldpolicy.robot.kinematics import UNREACHABLE_DEG

    ik = IKSolver("panda", orientation_cost=0.01)
    q0 = np.array(ik.robot.home)
    target = ik.fk(q0)
    target[:3, :3] = target[:3, :3] @ Rotation.from_euler("y", 180, degrees=True).as_matrix()
    with caplog.at_level(logging.WARNING):
        _, report = ik.solve_trajectory(target[None], q0)
    assert report.max_mm < 20 and report.max_deg > UNREACHABLE_DEG
    assert report.unreachable_steps == [0] and "bars 20 mm / 5 deg" in caplog.text


@pytest.mark.parametrize("edit", ["scale", "parallel", "mirror", "last_row", "nan"])
def test_targets_that_are_no_rigid_transform_are_refused(ik, edit):
    """mink's SE3.from_matrix turned a degenerate rotation block into some quaternion: the arm turned joint 7 by 0.6
    rad towards it. A scaled, mirrored or degenerate block, a wrong last row or NaN is refused, naming the pose."""
    q0 = np.array(ik.robot.home)
    target = ik.fk(q0)
    if edit == "scale":
        target[:3, :3] *= 2
    elif edit == "parallel":
        target[:3, 0] = target[:3, 1]
    elif edit == "mirror":
        target[:3, 2] *= -1
    elif edit == "last_row":
        target[3] = [0, 0, 0, 5]
    else:
        target[0, 3] = np.nan
    with pytest.raises(ValueError, match=r"target: pose 0 is not a finite rigid transform"):
        ik.solve(target, q0)
    with pytest.raises(ValueError, match=r"targets: pose 1 is not a finite rigid transform"):
        ik.solve_trajectory(np.stack([ik.fk(q0), target]), q0)
    ik.solve(ik.fk(q0).astype(np.float32), q0)  # float32 round-off is a rotation still


# Franka's published modified (Craig) DH table, joints 1-7 then the flange: (a, d, alpha); robot-bridge.md §8.
_FRANKA_DH = ((0, 0.333, 0), (0, 0, -np.pi / 2), (0, 0.316, np.pi / 2), (0.0825, 0, np.pi / 2),
              (-0.0825, 0.384, -np.pi / 2), (0, 0, np.pi / 2), (0.088, 0, np.pi / 2), (0, 0.107, 0))


def _dh_tcp(q):
    """TCP pose from the DH table alone: T = Π RotX(α) TransX(a) RotZ(θ) TransZ(d), then the hand's −45° about z and
    the TCP 0.1034 m along the hand's z."""
    from scipy.spatial.transform import Rotation

    def rot(axis, angle):
        out = np.eye(4)
        out[:3, :3] = Rotation.from_euler(axis, angle).as_matrix()
        return out

    def move(x, y, z):
        out = np.eye(4)
        out[:3, 3] = x, y, z
        return out

    pose = np.eye(4)
    for (a, d, alpha), theta in zip(_FRANKA_DH, [*q, 0.0]):
        pose = pose @ rot("x", alpha) @ move(a, 0, 0) @ rot("z", theta) @ move(0, 0, d)
    return pose @ rot("z", -np.pi / 4) @ move(0, 0, 0.1034)


def test_shipped_panda_fk_is_frankas_dh_table_everywhere(ik):
    """Two configurations agreed with the real arm; this checks the whole joint space against the DH table itself
    (positions, and the TCP axes the relative deltas are expressed in)."""
    rng = np.random.default_rng(5)
    for q in rng.uniform(ik.lower, ik.upper, (50, 7)):
        np.testing.assert_allclose(ik.fk(q), _dh_tcp(q), rtol=0, atol=1e-7)  # the MJCF's quaternions have 8 digits


def test_solve_relative_refuses_deltas_whose_rot6d_is_no_rotation(ik):
    deltas = np.tile([0, 0, 0, *IDENTITY6], (3, 1)).astype(float)
    deltas[2, 3:9] = [1, 0, 0, 1, 0, 0]  # parallel columns: the SVD made a 45 deg turn of them
    with pytest.raises(ValueError, match=r"deltas: rot6d of 1 steps is not the first two columns of a rotation "
                                         r"\(first at step 2"):
        ik.solve_relative(deltas, np.array(ik.robot.home))


def test_a_chunk_leaving_the_workspace_is_warned_with_how_far_the_arm_is_from_its_plan(ik, caplog):
    """32 steps of 3 cm up (0.96 m) leave the reach: the warning said "errors up to 28.5 mm", each re-anchored step's
    error from where the arm got to, and nothing of the arm ending over half a metre short of the chunk's path (the
    drift warning is only for chunks whose every step is within the bar)."""
    q0 = np.array(ik.robot.home)
    up = ik.fk(q0)[:3, :3].T @ [0, 0, 0.03]  # 3 cm a step up, in the TCP frame
    with caplog.at_level(logging.WARNING):
        _, _, report = ik.solve_relative(np.tile([*up, *IDENTITY6], (32, 1)), q0)
    assert report.unreachable_steps and report.max_mm < 100 and report.drift_mm[-1] > 500
    assert re.search(r"targets unreachable \(errors up to \d+\.\d mm .*; the arm goes to the closest pose within "
                     r"joint limits, ending \d{3}\.\d mm \(at most \d{3}\.\d mm\) from the chunk's planned path",
                     caplog.text)
    assert report.summary()["max_drift_mm"] == pytest.approx(report.drift_mm.max())


def test_a_stall_at_a_singularity_is_warned_though_each_step_is_within_the_bar(ik, caplog):
    """By the straightened elbow (joint 4 at its limit) IK stalls: each re-anchored step ends 7 mm short, under the
    20 mm bar, so nothing was said while the arm fell 60 mm behind the chunk in 8 steps."""
    q0 = np.array([0, 0.9, 0, -0.08, 0, 1.0, 0.785])
    inward = ik.fk(q0)[:3, :3].T @ [-0.01, 0, 0]  # 1 cm a step towards the base, in the TCP frame
    deltas = np.tile([*inward, *IDENTITY6], (8, 1))
    with caplog.at_level(logging.WARNING):
        _, _, report = ik.solve_relative(deltas, q0)
    assert report.max_mm < 20 and not report.unreachable_steps and report.drift_mm.max() > 40
    assert "falls" in caplog.text and "behind the chunk's planned path" in caplog.text
    # and says where and what to do: the joint at its limit (none: a singularity), a posture to start from
    assert ik._stall_cause(np.array(ik.robot.home)).startswith("at a singularity, no joint at a limit")
    assert "it stalls with joint4 at its upper limit (-0.0698 rad)" in caplog.text
    assert "clear of the joint limits with the elbow bent (RobotConfig.home: [0, -0.3, 0, -2.2, 0, 1.9, 0.7854] rad)" \
        in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # a chunk it follows says nothing
        ik.solve_relative(np.tile([0.005, 0, 0, *IDENTITY6], (8, 1)), np.array(ik.robot.home))
    assert "behind" not in caplog.text
