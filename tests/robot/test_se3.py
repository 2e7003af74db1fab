import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from worldpolicy.robot.se3 import (
    integrate_relative_poses,
    matrix_to_pose,
    matrix_to_rot6d,
    relative_poses,
    rot6d_to_matrix,
)


def test_identity_and_layout():
    np.testing.assert_allclose(rot6d_to_matrix(np.array([1, 0, 0, 0, 1, 0.0])), np.eye(3), atol=1e-12)
    r = Rotation.from_euler("xyz", [0.3, -0.2, 1.1]).as_matrix()
    r6 = matrix_to_rot6d(r)
    # Columns, not rows: [R00, R10, R20, R01, R11, R21].
    np.testing.assert_allclose(r6, [r[0, 0], r[1, 0], r[2, 0], r[0, 1], r[1, 1], r[2, 1]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=3, max_size=3))
def test_roundtrip_random_rotations(euler):
    r = Rotation.from_euler("xyz", euler).as_matrix()
    np.testing.assert_allclose(rot6d_to_matrix(matrix_to_rot6d(r)), r, atol=1e-9)


def test_svd_projection_of_noisy_input_is_a_rotation_batch():
    rng = np.random.default_rng(0)
    r6 = np.array([1, 0, 0, 0, 1, 0.0]) + 0.2 * rng.standard_normal((5, 4, 6))
    rot = rot6d_to_matrix(r6)
    assert rot.shape == (5, 4, 3, 3)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, -1, -2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)


def test_svd_projection_matches_closest_rotation_not_gram_schmidt():
    # Scaled, non-orthogonal columns: SVD gives the polar factor of [c0, c1, c0 x c1].
    r6 = np.array([2.0, 0.3, 0.0, 0.1, 0.5, 0.0])
    c0, c1 = r6[:3], r6[3:]
    m = np.stack([c0, c1, np.cross(c0, c1)], axis=-1)
    u, _, vt = np.linalg.svd(m)
    np.testing.assert_allclose(rot6d_to_matrix(r6), u @ vt, atol=1e-12)
    gram_schmidt_c0 = c0 / np.linalg.norm(c0)
    assert not np.allclose(rot6d_to_matrix(r6)[:, 0], gram_schmidt_c0, atol=1e-3)


def test_integration_right_multiplies_in_body_frame():
    # Step 1: rotate 90 deg about z; step 2: move +x in the *body* frame → world +y.
    rz = Rotation.from_euler("z", 90, degrees=True).as_matrix()
    deltas = np.zeros((2, 9))
    deltas[0, 3:] = matrix_to_rot6d(rz)
    deltas[1, :3] = [0.1, 0, 0]
    deltas[1, 3:] = [1, 0, 0, 0, 1, 0]
    poses = integrate_relative_poses(deltas)
    assert poses.shape == (3, 4, 4)
    np.testing.assert_allclose(poses[0], np.eye(4))
    np.testing.assert_allclose(poses[2][:3, 3], [0, 0.1, 0], atol=1e-12)


def test_integration_from_anchor_and_inverse():
    rng = np.random.default_rng(1)
    anchor = np.eye(4)
    anchor[:3, :3] = Rotation.random(random_state=2).as_matrix()
    anchor[:3, 3] = [0.5, 0.1, 0.3]
    rots = Rotation.from_rotvec(0.05 * rng.standard_normal((32, 3))).as_matrix()
    deltas = np.concatenate([0.01 * rng.standard_normal((32, 3)), matrix_to_rot6d(rots)], axis=1)
    poses = integrate_relative_poses(deltas, anchor)
    np.testing.assert_allclose(poses[0], anchor)
    np.testing.assert_allclose(relative_poses(poses), deltas, atol=1e-9)
    np.testing.assert_allclose(matrix_to_pose(poses[1:2])[0], matrix_to_pose(anchor @ integrate_relative_poses(deltas[:1])[1]), atol=1e-12)


@pytest.mark.parametrize(
    "bad, match",
    [(np.zeros((4, 10)), r"\[T, 9\]"), (np.zeros(9), r"\[T, 9\]"), (np.full((2, 9), np.nan), "NaN")],
)
def test_bad_input_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        integrate_relative_poses(bad)


def test_bad_anchor_and_rot6d_width():
    with pytest.raises(ValueError, match="anchor"):
        integrate_relative_poses(np.zeros((1, 9)) + [0, 0, 0, 1, 0, 0, 0, 1, 0], anchor=np.eye(3))
    with pytest.raises(ValueError, match="6"):
        rot6d_to_matrix(np.zeros(5))


def _random_poses(rng, n):
    quat = rng.standard_normal((n, 4))  # MuJoCo's order: w, x, y, z
    return rng.uniform(-0.5, 0.5, (n, 3)), quat / np.linalg.norm(quat, axis=1, keepdims=True)


def _mj_matrix(pos, quat):
    mujoco = pytest.importorskip("mujoco")
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, quat)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = mat.reshape(3, 3), pos
    return out


def test_integration_composes_like_mujocos_mulpose():
    """T_{i+1} = T_i · ΔT_i checked against MuJoCo's own pose product (mju_mulPose, quaternions w-first) chained step
    by step: the order of composition and the rot6d columns both have to be right for this to agree."""
    mujoco = pytest.importorskip("mujoco")
    rng = np.random.default_rng(3)
    pos, quat = _random_poses(rng, 6)
    deltas = np.stack([matrix_to_pose(_mj_matrix(p, q)) for p, q in zip(pos[1:], quat[1:])])
    poses = integrate_relative_poses(deltas, _mj_matrix(pos[0], quat[0]))
    p, q = pos[0].copy(), quat[0].copy()
    for i in range(1, 6):
        p_next, q_next = np.empty(3), np.empty(4)
        mujoco.mju_mulPose(p_next, q_next, p, q, pos[i], quat[i])
        p, q = p_next, q_next
        np.testing.assert_allclose(poses[i], _mj_matrix(p, q), atol=1e-12)
    # and scipy, scalar-last: the same rotation from the same quaternion reordered
    np.testing.assert_allclose(Rotation.from_quat(np.roll(quat[0], -1)).as_matrix(), _mj_matrix(pos[0], quat[0])[:3, :3],
                               atol=1e-12)


@pytest.mark.parametrize("angle", [np.pi, np.pi - 1e-7, 1e-7, 0.0])
def test_rot6d_round_trip_and_angle_at_0_and_180_degrees(angle):
    """The ends where rotation formulas break (axis-angle at pi, arccos near 0): rot6d has no singularity, and the
    geodesic angle matches scipy's."""
    from worldpolicy.robot.se3 import rotation_angle

    rng = np.random.default_rng(4)
    for axis in (*np.eye(3), rng.standard_normal(3)):
        rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
        np.testing.assert_allclose(rot6d_to_matrix(matrix_to_rot6d(rot)), rot, atol=1e-12)
        assert rotation_angle(rot) == pytest.approx(angle, abs=2e-8)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=6, max_size=6), st.floats(0.02, 0.3))
def test_noisy_rot6d_decodes_near_the_rotation_it_perturbs(noise, scale):
    """Model output is a rotation's rot6d plus noise: the SVD projection lands within the noise's size of it (a
    Gram-Schmidt that trusted column 0 would too; a row-major reading would not)."""
    from worldpolicy.robot.se3 import rotation_angle

    rot = Rotation.from_rotvec([0.4, -0.9, 0.3]).as_matrix()
    r6 = matrix_to_rot6d(rot) + scale * np.asarray(noise) / max(np.linalg.norm(noise), 1e-9)
    assert rotation_angle(rot.T @ rot6d_to_matrix(r6)) <= 2 * scale


def test_known_rotations_read_as_scipy_reads_them():
    """Columns, checked on rotations whose matrix is known by heart (scipy builds them from a rotation vector): 90 deg
    about z sends x to y and y to -x, so its rot6d is [0, 1, 0, -1, 0, 0]; read as rows it would be the -90 deg turn."""
    quarter_z = Rotation.from_rotvec([0, 0, np.pi / 2])
    np.testing.assert_allclose(matrix_to_rot6d(quarter_z.as_matrix()), [0, 1, 0, -1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(rot6d_to_matrix(np.array([0, 1, 0, -1, 0, 0.0])), quarter_z.as_matrix(), atol=1e-12)
    # robot-bridge.md's Bridge sample, denormalised: rot6d [0.99995, 0.0044, -0.0106, -0.0037, 0.9992, -0.0418] is a
    # small turn, mostly -0.042 rad about x (R21 = sin), with 0.011 about y (R20 = -sin) and 0.004 about z (R10 = sin)
    sample = np.array([0.99995, 0.0044, -0.0106, -0.0037, 0.9992, -0.0418])
    turn = Rotation.from_matrix(rot6d_to_matrix(sample))
    np.testing.assert_allclose(turn.as_rotvec(), [-0.0418, 0.0106, 0.004], atol=2e-3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=6, max_size=6), st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=6))
def test_integration_is_scipys_composition_in_the_body_frame(rotvecs, translations):
    """Two steps composed with scipy (`r1 * r2` applies r2 first, in r1's frame): the rotation is R0·ΔR0·ΔR1 and each
    translation is turned by the orientation before it, t2 = t0 + R0 Δt0 + R0 ΔR0 Δt1."""
    steps = Rotation.from_rotvec(np.reshape(rotvecs, (2, 3)))
    dt = np.reshape(translations, (2, 3))
    anchor_rot = Rotation.from_rotvec([0.3, -1.2, 2.0])
    anchor = np.eye(4)
    anchor[:3, :3], anchor[:3, 3] = anchor_rot.as_matrix(), [0.4, -0.1, 0.5]
    deltas = np.concatenate([dt, matrix_to_rot6d(steps.as_matrix())], axis=1)
    poses = integrate_relative_poses(deltas, anchor)
    wanted = anchor_rot * steps[0] * steps[1]
    np.testing.assert_allclose(poses[2, :3, :3], wanted.as_matrix(), atol=1e-12)
    t2 = anchor[:3, 3] + anchor_rot.apply(dt[0]) + (anchor_rot * steps[0]).apply(dt[1])
    np.testing.assert_allclose(poses[2, :3, 3], t2, atol=1e-12)
