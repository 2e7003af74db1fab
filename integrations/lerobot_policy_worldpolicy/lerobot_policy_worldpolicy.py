"""Imported by LeRobot's command lines (`register_third_party_plugins`, for a distribution named `lerobot_policy_*`):
importing worldpolicy's adapter registers the policy type "worldpolicy", so `--policy.type=worldpolicy
--policy.server=ws://gpu-box:8000` parses. Nothing else lives here (docs/serving.md, "In LeRobot")."""

import worldpolicy.data.lerobot_policy  # noqa: F401  (registers the type with LeRobot's policy configs)
