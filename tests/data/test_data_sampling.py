"""Training examples from dataset episodes: window/action alignment, padding, modes, captions, state rows, errors."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_factory import frame_ramp

from worldpolicy.data import sample_training_examples, window_starts, write_episodes

# `small_dataset` episodes: lengths 12, 7, 9; action[:, 0] = frame index + 100·episode, frames hold 5·(that index).
# The "pusht" embodiment is 2-D, so tests pick the first two action columns through a 2-wide feature.


@pytest.fixture
def ramp_dataset(tmp_path):
    episodes = []
    for i, length in enumerate((12, 7, 9)):
        t = np.arange(length) + 100 * i
        episodes.append(
            {
                "frames": {
                    "action": np.stack([t, -t], axis=1).astype(np.float32),
                    "observation.state": np.stack([t, t], axis=1).astype(np.float32) + 0.5,
                },
                "videos": {"cam": frame_ramp(length, offset=100 * i)},
                "task": "pick the cube" if i != 1 else "push the cube | shove the block",
            }
        )
    return write_episodes(tmp_path / "ds", episodes, fps=10, video_codec="libx264rgb")


def test_windows_pair_frames_with_the_actions_into_them(ramp_dataset):
    examples = list(sample_training_examples(ramp_dataset, "pusht", chunk_size=4))
    # full windows need chunk + 1 = 5 frames: 12 → 8 windows, 7 → 3, 9 → 5
    assert len(examples) == 8 + 3 + 5
    for ex in examples:
        base = 100 * ex.episode_index + ex.start
        assert ex.frames.shape == (5, 16, 16, 3) and ex.frames.dtype == np.uint8
        np.testing.assert_array_equal(ex.frames[:, 0, 0, 0], (5 * (base + np.arange(5))) % 256)
        assert ex.actions.shape == (4, 2) and ex.actions.dtype == np.float32
        np.testing.assert_array_equal(ex.actions[:, 0], base + np.arange(4))
        assert not ex.action_is_pad.any() and ex.mode == "policy" and ex.state is None
        assert list(ex.views) == ["cam"] and ex.views["cam"] is ex.frames
    assert [ex.start for ex in examples if ex.episode_index == 1] == [0, 1, 2]


def test_padding_repeats_the_last_frame_and_action(ramp_dataset):
    examples = list(sample_training_examples(ramp_dataset, "pusht", chunk_size=8, pad=True, episodes=[1]))
    assert [ex.start for ex in examples] == list(range(6))  # every start with at least one real transition
    last = examples[-1]  # starts at frame 5 of 7: frames 5, 6 then copies of 6
    np.testing.assert_array_equal(last.frames[:, 0, 0, 0], 5 * np.array([105, 106] + [106] * 7) % 256)
    np.testing.assert_array_equal(last.actions[:, 0], [105, 106] + [106] * 6)
    np.testing.assert_array_equal(last.action_is_pad, [False, False] + [True] * 6)


def test_stride_limit_episodes_and_shuffle(ramp_dataset):
    strided = list(sample_training_examples(ramp_dataset, "pusht", chunk_size=4, stride=3))
    assert [(ex.episode_index, ex.start) for ex in strided] == [(0, 0), (0, 3), (0, 6), (1, 0), (2, 0), (2, 3)]
    assert len(list(sample_training_examples(ramp_dataset, "pusht", chunk_size=4, limit=5))) == 5
    # numpy's counts as the episodes always took them (chunk_size, stride and limit refused np.int64)
    numpy_counts = sample_training_examples(ramp_dataset, "pusht", chunk_size=np.int64(4), stride=np.int64(3),
                                            limit=np.int64(2), episodes=[np.int64(0)])
    assert [(ex.episode_index, ex.start) for ex in numpy_counts] == [(0, 0), (0, 3)]
    a = [
        (e.episode_index, e.start)
        for e in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, shuffle=True, seed=3)
    ]
    b = [
        (e.episode_index, e.start)
        for e in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, shuffle=True, seed=3)
    ]
    c = [
        (e.episode_index, e.start)
        for e in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, shuffle=True, seed=4)
    ]
    assert a == b and a != c and sorted(a) == sorted(c) and len(a) == 16


def test_mode_weights_and_captions(ramp_dataset):
    weights = {"policy": 0.5, "forward_dynamics": 0.25, "inverse_dynamics": 0.25}
    modes = [
        ex.mode
        for _ in range(10)
        for ex in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, mode=weights, seed=_)
    ]
    share = {m: modes.count(m) / len(modes) for m in weights}
    assert share["policy"] == pytest.approx(0.5, abs=0.1) and share["inverse_dynamics"] == pytest.approx(0.25, abs=0.1)
    captions = {ex.task for ex in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, episodes=[1, 1, 1, 1])}
    assert captions == {"push the cube", "shove the block"}
    whole = {
        ex.task for ex in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, episodes=[1], caption_sep=None)
    }
    assert whole == {"push the cube | shove the block"}
    only_fd = {ex.mode for ex in sample_training_examples(ramp_dataset, "pusht", chunk_size=4, mode="forward_dynamics")}
    assert only_fd == {"forward_dynamics"}


def test_state_row_for_joint_position_embodiments(tmp_path):
    t = np.arange(10, dtype=np.float32)
    ep = {
        "frames": {
            "action.joint_position": np.tile(t[:, None], (1, 7)),
            "action.gripper_position": (t / 10)[:, None],
            "observation.state.joint_positions": np.tile(t[:, None] + 0.5, (1, 7)),
            "observation.state.gripper_position": (t / 20)[:, None],
        },
        "videos": {"exterior": frame_ramp(10), "wrist": frame_ramp(10, offset=20)},
        "task": "put the marker in the cup",
    }
    ds = write_episodes(tmp_path / "droid", [ep], fps=15, video_codec="libx264rgb")
    actions = ["action.joint_position", "action.gripper_position"]
    examples = list(
        sample_training_examples(
            ds,
            "droid",
            chunk_size=4,
            action_keys=actions,
            state_keys=["observation.state.joint_positions", "observation.state.gripper_position"],
            video_keys=["exterior", "wrist"],
        )
    )
    # unnamed, the state is observation.state's parts, as `dataset label` and `dataset frame` read it
    default = list(sample_training_examples(ds, "droid", chunk_size=4, action_keys=actions,
                                            video_keys=["exterior", "wrist"]))
    assert len(default) == len(examples) == 6
    for got, want in zip(default, examples):
        np.testing.assert_array_equal(got.state, want.state)
    ex = examples[2]
    np.testing.assert_allclose(ex.state, [2.5] * 7 + [0.1])
    np.testing.assert_allclose(ex.actions[:, -1], [0.2, 0.3, 0.4, 0.5])
    assert ex.actions.shape == (4, 8) and list(ex.views) == ["exterior", "wrist"] and ex.frames is ex.views["exterior"]
    np.testing.assert_array_equal(ex.views["wrist"][:, 0, 0, 0], 5 * (22 + np.arange(5)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"embodiment": "bridge"},
            r"action_keys=\['action'\] give 2 values per frame but embodiment 'bridge' has action_dim 10",
        ),
        ({"action_keys": "nope"}, r"action_keys=\['nope'\]: \['nope'\] not among"),
        # a video among the numbers: "not among the features" sent the reader to info.json to find it was there
        ({"action_keys": "cam"}, (r"action_keys=\['cam'\]: \['cam'\] is a video, not per-frame numbers: give it in "
                                 r"video_keys; accepted here: the dataset's numeric features \['action', "
                                 r"'observation.state'\]")),
        ({"embodiment": "droid", "state_keys": ["cam", "action"], "action_keys": ["action"] * 4},
         r"^state_keys=\['cam', 'action'\]: \['cam'\] is a video"),
        ({"mode": "planning"}, "mode='planning'; accepted: policy, forward_dynamics, inverse_dynamics"),
        ({"mode": {"policy": -1}}, "weights numbers >= 0"),
        # float() raised its own "could not convert string to float", naming no argument, or read "0.5" as a number
        ({"mode": {"policy": "high"}}, r"mode=\{'policy': 'high'\}: keys must be among .* weights numbers >= 0"),
        ({"mode": {"policy": "0.5", "forward_dynamics": 0.5}}, r"mode=\{'policy': '0.5'.* weights numbers >= 0"),
        ({"mode": {"policy": None}}, r"mode=\{'policy': None\}: keys must be among"),
        ({"chunk_size": 0}, "chunk_size=0 must be an int >= 1"),
        ({"chunk_size": 12}, "chunk_size=12 needs episodes of at least 13 frames; the longest selected episode has 12"),
        ({"stride": 0}, "stride=0"),
        ({"limit": True}, r"limit=True must be None or an int >= 0"),  # a bool is no count, as for chunk_size
        ({"episodes": [3]}, r"episodes contains \[3\], outside \[0, 3\)"),
        ({"episodes": [1.5]}, r"episodes=\[1.5\] must be a sequence of episode indices \(ints in \[0, 3\)\)"),
        ({"episodes": ["a"]}, r"episodes=\['a'\] must be a sequence of episode indices"),
        ({"video_keys": "front"}, r"video_keys=\['front'\]"),
        ({"embodiment": "not-a-robot"}, "not registered"),
    ],
)
def test_bad_arguments_fail_before_decoding(ramp_dataset, kwargs, match):
    args = {"embodiment": "pusht", "chunk_size": 4, **kwargs}
    with pytest.raises((ValueError, KeyError), match=match):
        sample_training_examples(ramp_dataset, **args)  # raised at the call, before any decoding


@pytest.mark.parametrize(
    "embodiment, kwargs, param",
    [
        ("pusht", {"action_keys": ["action", "note"]}, "action_keys"),  # 1 number + a [1] string fill pusht's 2
        ("droid", {"action_keys": "wide", "state_keys": ["note", "seven"]}, "state_keys"),  # droid: 8 = 1 + 7
    ],
)
def test_a_string_feature_is_refused_at_the_call_naming_its_dtype(tmp_path, embodiment, kwargs, param):
    # The widths add up, so only the dtype is wrong: without the check this failed inside the first next().
    frames = {
        "action": np.zeros((8, 1), np.float32),
        "wide": np.zeros((8, 8), np.float32),
        "seven": np.zeros((8, 7), np.float32),
        "note": np.array(["a"] * 8),
    }
    ds = write_episodes(tmp_path / "ds", [{"frames": frames, "videos": {"cam": frame_ramp(8)}, "task": "t"}], fps=10,
                        video_codec="libx264rgb")
    with pytest.raises(ValueError, match=rf"{param}=.*'note' has dtype 'string'; accepted: numeric features \(float32"):
        sample_training_examples(ds, embodiment, chunk_size=4, **kwargs)  # raised at the call, not while iterating


def test_a_state_conditioned_embodiment_without_state_features_names_state_keys(tmp_path):
    frames = {"action": np.zeros((8, 8), np.float32), "observation.state": np.array(["a"] * 8)}  # a string: no state
    ds = write_episodes(tmp_path / "ds", [{"frames": frames, "videos": {"cam": frame_ramp(8)}, "task": "t"}], fps=15,
                        video_codec="libx264rgb")
    with pytest.raises(ValueError, match=r"embodiment 'droid/joint_pos' conditions on a state row: pass "
                                         r"data.state_keys \(the dataset has no numeric 'observation.state' nor "
                                         r"'observation.state.\*'"):
        sample_training_examples(ds, "droid", chunk_size=4, prefix="data.")


def test_a_dataset_without_cameras_is_named_as_such(tmp_path):
    ds = write_episodes(tmp_path / "ds", [{"frames": {"action": np.zeros((6, 2), np.float32)}, "task": "t"}], fps=10)
    with pytest.raises(ValueError, match="video_keys: the dataset has no video or image features; a training example "
                                         "needs frames"):
        sample_training_examples(ds, "pusht", chunk_size=4)


def test_window_starts():
    assert list(window_starts(10, 4)) == [0, 1, 2, 3, 4, 5]
    assert list(window_starts(10, 4, stride=2)) == [0, 2, 4]
    assert list(window_starts(4, 4)) == []
    assert list(window_starts(4, 4, pad=True)) == [0, 1, 2]
    assert list(window_starts(1, 4, pad=True)) == []
