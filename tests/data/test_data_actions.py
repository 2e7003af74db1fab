"""How a dataset's action columns are read as an embodiment's (`worldpolicy.data.actions`)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="worldpolicy.data needs the train extra (pyarrow)")

ARM = ["waist", "shoulder", "elbow", "wrist", "gripper"]
LEFT_FIRST = [f"{side}_{j}" for side in ("left", "right") for j in ARM]


@pytest.fixture(scope="module")
def two_arm_dataset(tmp_path_factory):
    """A two-arm robot's actions, named left arm first (as ALOHA records them), no videos."""
    from worldpolicy.data import write_episodes

    feats = {"action": {"dtype": "float32", "shape": [10], "names": LEFT_FIRST}}
    frames = {"action": np.arange(60, dtype=np.float32).reshape(6, 10)}
    return write_episodes(tmp_path_factory.mktemp("two_arm") / "ds", [{"frames": frames, "task": "fold"}], fps=10,
                          features=feats)


def _two_arm(columns):
    from worldpolicy.embodiments import embodiment_from_spec

    return embodiment_from_spec({"name": "two_arm", "domain": "two_arm", "domain_id": 30, "action_dim": 10,
                                 "columns": columns, "units": ["rad"] * 10, "chunk_size": 4, "fps": 10,
                                 "layout": "joint_position"})


@pytest.mark.parametrize("source", [None, "two_arm"])
def test_an_embodiments_columns_in_another_order_are_refused_naming_them(two_arm_dataset, source):
    """Actions are read by position: the right arm first in the spec trained each arm on the other's values. Unset,
    the error said to set source_embodiment to the spec (which then did so silently); set, nothing was said."""
    from worldpolicy.data.actions import recorded_actions

    right_first = LEFT_FIRST[5:] + LEFT_FIRST[:5]
    with pytest.raises(ValueError, match=(
            r"hold embodiment 'two_arm''s columns in another order \('right_waist' is column 5 in the dataset but 0 "
            r"in 'two_arm'; .*; \.\.\.\): actions are read by position.*in the dataset's order \(left_waist, ")):
        recorded_actions(two_arm_dataset, _two_arm(right_first), ["action"], source=source)
    # in the dataset's order, they are read as they are
    reader = recorded_actions(two_arm_dataset, _two_arm(LEFT_FIRST), ["action"])
    assert reader.source == "two_arm"
    assert reader.chunk(two_arm_dataset.episode(0, videos=False).frames, 1, 2).tolist() == [list(range(10, 20))]
