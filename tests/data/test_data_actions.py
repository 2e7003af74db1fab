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


def test_columns_wider_than_the_embodiment_are_not_told_to_be_its_own(two_arm_dataset):
    """A one-arm spec for two arms' columns was told to set source_embodiment to it, which then failed on the width:
    the error says how wide each is, and what a robot of one's own lists instead."""
    from worldpolicy.data.actions import recorded_actions
    from worldpolicy.embodiments import embodiment_from_spec

    one_arm = embodiment_from_spec({"name": "one_arm", "domain": "one_arm", "domain_id": 30, "action_dim": 5,
                                    "columns": LEFT_FIRST[:5], "units": ["rad"] * 5, "chunk_size": 4, "fps": 10,
                                    "layout": "joint_position"})
    with pytest.raises(ValueError, match=r"hold 10 columns .*Embodiment 'one_arm' is 5 columns wide: a robot of one's "
                                         r"own lists the dataset's 10 as its columns; else set") as caught:
        recorded_actions(two_arm_dataset, one_arm, ["action"])
    assert "source_embodiment = 'one_arm'" not in str(caught.value)
