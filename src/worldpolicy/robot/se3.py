"""SE(3) helpers for action chunks (pure numpy; conventions from robot-bridge.md §3-4).

rot6d is the first two *columns* of a rotation matrix, ``[R00, R10, R20, R01, R11, R21]``. Decoding projects onto SO(3)
with an SVD (not Gram-Schmidt) so it matches the upstream converter. Relative-pose chunks are "backward_framewise":
each delta is expressed in the previous step's end-effector frame, so poses compose by right-multiplication.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ROT6D_MAX_COS",
    "ROT6D_NORM_RANGE",
    "check_rot6d",
    "integrate_relative_poses",
    "matrix_to_pose",
    "matrix_to_rot6d",
    "pose_to_matrix",
    "relative_poses",
    "rot6d_to_matrix",
    "rotation_angle",
]

# rot6d columns of a rotation are unit and orthogonal; a physical chunk's stay within a few % of that (DROID's q01/q99
# allow norms 0.998-1.002, Bridge's 0.98-1.02). Past these bars the SVD projection still returns *a* rotation, but an
# arbitrary one: parallel columns [1,0,0, 1,0,0] became a 45 deg turn about z.
ROT6D_NORM_RANGE = (0.5, 1.5)
ROT6D_MAX_COS = 0.5  # |cos| of the angle between the two columns: at least 60 deg apart


def check_rot6d(r6: np.ndarray, name: str) -> None:
    """Refuse rot6d rows ``[T, 6]`` that are not roughly the first two columns of a rotation (`ROT6D_NORM_RANGE`,
    `ROT6D_MAX_COS`). `rot6d_to_matrix` projects anything, as upstream does; a robot must not turn to what a
    degenerate input (zero, parallel columns, other units) projects to. `name` is what the error calls the input."""
    r6 = np.asarray(r6, dtype=np.float64)
    c0, c1 = r6[:, 0:3], r6[:, 3:6]
    n0, n1 = np.linalg.norm(c0, axis=1), np.linalg.norm(c1, axis=1)
    cos = np.abs(np.sum(c0 * c1, axis=1)) / np.maximum(n0 * n1, 1e-12)
    low, high = ROT6D_NORM_RANGE
    bad = np.flatnonzero((np.minimum(n0, n1) < low) | (np.maximum(n0, n1) > high) | (cos > ROT6D_MAX_COS))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{name}: rot6d of {bad.size} steps is not the first two columns of a rotation (first at step {i}: "
            f"r0..r2 norm {n0[i]:.3g}, r3..r5 norm {n1[i]:.3g}, |cos| between them {cos[i]:.3g}; accepted: norms in "
            f"[{low}, {high}], |cos| <= {ROT6D_MAX_COS}); refusing to command the robot. Columns, not rows: "
            "[R00, R10, R20, R01, R11, R21], in physical units (Prediction.actions, not actions_normalized)"
        )


def rot6d_to_matrix(r6: np.ndarray) -> np.ndarray:
    """rot6d ``[..., 6]`` → rotation matrices ``[..., 3, 3]`` (cross product, then nearest rotation by SVD)."""
    r6 = np.asarray(r6, dtype=np.float64)
    if r6.shape[-1:] != (6,):
        raise ValueError(f"rot6d: expected a trailing dimension of 6, got shape {r6.shape}")
    if not np.all(np.isfinite(r6)):
        raise ValueError("rot6d: input contains NaN or inf")
    c0, c1 = r6[..., 0:3], r6[..., 3:6]
    m = np.stack([c0, c1, np.cross(c0, c1)], axis=-1)
    u, _, vt = np.linalg.svd(m)
    # A reflection (det < 0) means degenerate/opposed columns: negate U's last column to land in SO(3).
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    u = u.copy()
    u[..., :, -1] *= sign[..., None]
    r = u @ vt
    return r


def matrix_to_rot6d(rot: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 3, 3]`` → rot6d ``[..., 6]`` (column 0 then column 1)."""
    rot = np.asarray(rot, dtype=np.float64)
    if rot.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_rot6d: expected [..., 3, 3], got shape {rot.shape}")
    return np.concatenate([rot[..., :, 0], rot[..., :, 1]], axis=-1)


def pose_to_matrix(pose9: np.ndarray) -> np.ndarray:
    """``[..., 9]`` (tx, ty, tz, r0..r5) → homogeneous ``[..., 4, 4]``."""
    pose9 = np.asarray(pose9, dtype=np.float64)
    if pose9.shape[-1:] != (9,):
        raise ValueError(f"pose: expected a trailing dimension of 9 (tx,ty,tz,r0..r5), got shape {pose9.shape}")
    out = np.zeros(pose9.shape[:-1] + (4, 4))
    out[..., :3, :3] = rot6d_to_matrix(pose9[..., 3:9])
    out[..., :3, 3] = pose9[..., 0:3]
    out[..., 3, 3] = 1.0
    return out


def matrix_to_pose(mat: np.ndarray) -> np.ndarray:
    """Homogeneous ``[..., 4, 4]`` → ``[..., 9]`` (tx, ty, tz, r0..r5)."""
    mat = np.asarray(mat, dtype=np.float64)
    if mat.shape[-2:] != (4, 4):
        raise ValueError(f"matrix_to_pose: expected [..., 4, 4], got shape {mat.shape}")
    return np.concatenate([mat[..., :3, 3], matrix_to_rot6d(mat[..., :3, :3])], axis=-1)


def integrate_relative_poses(deltas: np.ndarray, anchor: np.ndarray | None = None) -> np.ndarray:
    """Per-step deltas ``[T, 9]`` (physical units) → poses ``[T+1, 4, 4]``; index 0 is ``anchor`` (identity default).

    ``T_{i+1} = T_i @ ΔT_i``: the delta lives in the previous step's frame ("backward_framewise").
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 2 or deltas.shape[1] != 9:
        raise ValueError(f"deltas: expected shape [T, 9] (tx,ty,tz,r0..r5), got {deltas.shape}")
    anchor = np.eye(4) if anchor is None else np.asarray(anchor, dtype=np.float64)
    if anchor.shape != (4, 4) or not np.all(np.isfinite(anchor)):
        raise ValueError(f"anchor: expected a finite 4x4 matrix, got shape {anchor.shape}")
    steps = pose_to_matrix(deltas)
    out = np.empty((deltas.shape[0] + 1, 4, 4))
    out[0] = anchor
    for i, step in enumerate(steps):
        out[i + 1] = out[i] @ step
    return out


def relative_poses(poses: np.ndarray) -> np.ndarray:
    """Inverse of :func:`integrate_relative_poses`: poses ``[T+1, 4, 4]`` → deltas ``[T, 9]`` (ΔT_i = T_i⁻¹ T_{i+1})."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or poses.shape[0] < 2:
        raise ValueError(f"poses: expected shape [T+1, 4, 4] with T >= 1, got {poses.shape}")
    deltas = np.linalg.inv(poses[:-1]) @ poses[1:]
    return matrix_to_pose(deltas)


def rotation_angle(rot: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad) of rotation matrices ``[..., 3, 3]``."""
    rot = np.asarray(rot, dtype=np.float64)
    cos = (np.trace(rot, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(cos, -1.0, 1.0))
