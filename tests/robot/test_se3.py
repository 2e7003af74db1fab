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
