"""Robot bridge: action decoding (SE3 / rot6d / gripper), IK/FK on MuJoCo, robot configs and the shipped Panda, and
chunks run one control tick at a time (`control`).

Importing this package stays light; MuJoCo and mink load only in the submodules that need them (`kinematics`, `robots`).
"""

from worldpolicy.robot.se3 import integrate_relative_poses, matrix_to_rot6d, rot6d_to_matrix

__all__ = ["integrate_relative_poses", "matrix_to_rot6d", "rot6d_to_matrix"]
