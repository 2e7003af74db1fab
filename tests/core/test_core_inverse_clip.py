"""Inverse dynamics over a whole clip, from a start frame, and at the embodiment's rate (`Policy.infer_actions`'
`whole_clip`, `start_frame`, `resample`; `predict --whole-clip/--start-frame/--resample`): labelling an unlabelled
video with actions used to explain only its first chunk_size+1 frames, with no way to pick others, and a clip at
another frame rate was warned about, never read at the embodiment's."""

import json

import numpy as np
import pytest

from worldpolicy.cli import main

CHUNK = 4  # windows of 5 frames: a 12-frame clip is 3 windows, the last of 3 real rows


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    import worldpolicy

    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=CHUNK,
                                   resolution_tier=256)


@pytest.fixture(scope="module")
def clip():
    return np.random.default_rng(3).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)


def test_a_whole_clip_is_one_action_per_frame_transition_each_window_as_its_start_frame_gives(policy, clip):
    whole = policy.infer_actions(clip, "reach", whole_clip=True, batch_size=2, seed=7, steps=1, decode_video=True)
    assert whole.actions.shape == whole.actions_normalized.shape == (11, 10)
    assert whole.settings["real_rows"] == 11
    assert whole.settings["clip"] == {"start_frame": 0, "frames_used": list(range(12)), "clip_fps": None,
                                      "resampled": False, "window_rows": [4, 4, 3]}
    assert whole.video is not None and len(whole.video) == 12  # the clip's frames, each once
    for start in (0, 4, 8):  # windows share their boundary frames, and one seed: rows as a single window gives them
        one = policy.infer_actions(clip, "reach", start_frame=start, seed=7, steps=1)
        rows = min(CHUNK, 11 - start)
        np.testing.assert_allclose(whole.actions[start:start + rows], one.actions[:rows], atol=1e-5)
        assert one.settings["clip"]["start_frame"] == start and one.settings["real_rows"] == rows
    batched_alone = policy.infer_actions(clip, "reach", whole_clip=True, batch_size=1, seed=7, steps=1)
    np.testing.assert_allclose(batched_alone.actions, whole.actions, atol=1e-5)


def test_the_default_still_explains_the_first_window_and_says_how_to_label_the_rest(policy, clip, caplog):
    first = policy.infer_actions(clip, "reach", seed=7, steps=1)
    assert first.actions.shape == (CHUNK, 10) and first.settings["clip"]["frames_used"] == [0, 1, 2, 3, 4]
    assert "whole_clip=True (predict --whole-clip) labels every frame" in caplog.text


def test_a_clip_file_read_from_a_start_frame_is_those_frames(policy, clip, tmp_path):
    from worldpolicy.processing.video import read_video, write_video

    write_video(tmp_path / "clip.mp4", clip, policy.embodiment.fps)
    decoded = read_video(tmp_path / "clip.mp4")[0]
    from_file = policy.infer_actions(tmp_path / "clip.mp4", "reach", start_frame=3, seed=2, steps=1)
    in_memory = policy.infer_actions(decoded[3:], "reach", seed=2, steps=1)
    np.testing.assert_array_equal(from_file.actions, in_memory.actions)
    assert from_file.settings["clip"]["frames_used"] == [3, 4, 5, 6, 7]


def test_a_clip_at_another_rate_is_resampled_to_the_embodiments_timestamps(policy, clip, tmp_path, caplog):
    from worldpolicy.processing.clip import resampled_frames
    from worldpolicy.processing.video import read_video, write_video

    assert resampled_frames(8, 30, 15) == [0, 2, 4, 6]
    assert resampled_frames(8, 30, 15, start_frame=3) == [3, 5, 7]
    assert resampled_frames(4, 10, 15) == [0, 1, 1, 2, 3, 3]  # a slower clip repeats frames
    write_video(tmp_path / "fast.mp4", clip, 2 * policy.embodiment.fps)
    decoded = read_video(tmp_path / "fast.mp4")[0]
    got = policy.infer_actions(tmp_path / "fast.mp4", "reach", whole_clip=True, resample=True, seed=1, steps=1)
    assert got.settings["clip"]["frames_used"] == [0, 2, 4, 6, 8, 10] and got.settings["clip"]["resampled"]
    assert got.settings["clip"]["clip_fps"] == pytest.approx(2 * policy.embodiment.fps)
    assert got.actions.shape == (5, 10)
    np.testing.assert_allclose(got.actions, policy.infer_actions(decoded[::2], "reach", whole_clip=True, seed=1,
                                                                 steps=1).actions, atol=1e-5)
    assert "fps but embodiment actions are at" not in caplog.text  # read at the embodiment's rate: nothing to say
    policy.infer_actions(tmp_path / "fast.mp4", "reach", seed=1, steps=1)
    assert "predict --resample, reads it at 15 fps" in caplog.text


@pytest.mark.parametrize(("options", "error", "said"), [
    ({"start_frame": -1}, ValueError, "start_frame=-1; accepted: an integer >= 0"),
    ({"start_frame": 11}, ValueError, "at least 2 frames from start_frame=11 (the clip has 12); got 1 frame"),
    ({"whole_clip": "yes"}, ValueError, "whole_clip='yes'; accepted: True or False"),
    ({"batch_size": 0}, ValueError, "batch_size=0; accepted: an integer >= 1"),
    ({"resample": True}, ValueError, "resample=True needs the clip's frame rate, which video (ndarray) does not carry"),
    ({"progress": "bar"}, TypeError, "progress must be a callable (step, total), None or False, got str"),
    ({"whole_clip": True, "actions_space": "normalized"}, TypeError, "infer_actions() takes no actions_space"),
])
def test_clip_options_are_refused_naming_the_parameter(policy, clip, options, error, said):
    with pytest.raises(error) as caught:
        policy.infer_actions(clip, "reach", steps=1, **options)
    assert said in str(caught.value), caught.value


def test_a_whole_clips_bar_is_shown_unless_the_caller_reports_progress_or_asks_for_none(policy, clip, capsys):
    """`dataset label --no-progress` still drew a bar per episode: the windows' own bar ignored what the caller asked.
    None draws it over several windows; a callback (the caller reports) or False (a caller with its own bar) do not."""
    def bar_drawn(**progress) -> bool:
        policy.infer_actions(clip, "reach", whole_clip=True, batch_size=1, seed=7, steps=1, **progress)
        return "inverse dynamics" in capsys.readouterr().err

    steps = []
    assert bar_drawn()
    assert not bar_drawn(progress=False)
    assert not bar_drawn(progress=lambda step, total: steps.append((step, total)))
    assert steps  # the callback is still called, batch by batch


def test_a_clip_that_cannot_be_read_is_named_video(policy, tmp_path):
    """infer_actions' clip was called `observation` (the PolicyRequest field) in its reader's errors."""
    with pytest.raises(FileNotFoundError, match=r"^video: file .*missing\.mp4' does not exist"):
        policy.infer_actions(tmp_path / "missing.mp4", "reach")
    with pytest.raises(TypeError, match=r"^video: unsupported type object"):
        policy.infer_actions(object(), "reach")
    first = policy.embodiment.camera_keys[0]  # a camera missing from a dict of clips was the "observation"'s
    with pytest.raises(KeyError, match=rf"^video is missing camera keys .*got keys \['{first}'\]"):
        policy.infer_actions({first: clip}, "reach")


def test_a_state_conditioned_window_starts_from_its_first_frames_state(clip):
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing.clip import read_clip

    e = get_embodiment("droid/joint_pos")
    windows = read_clip(clip, e, CHUNK + 1, whole_clip=True)
    rows = np.arange(12 * 8, dtype=float).reshape(12, 8)
    np.testing.assert_array_equal(windows.state(rows, 1), rows[4:5])
    one_row = rows[0]
    assert windows.state(one_row, 0) is one_row  # the first window: the state as given
    with pytest.raises(ValueError, match=r"state has shape \(8,\), but the window from clip frame 4 starts from that "
                                         r"frame's state; accepted: one row per frame"):
        windows.state(one_row, 1)
    joints, gripper = e.state_keys["joints"], e.state_keys["gripper"]
    cameras = dict.fromkeys(e.camera_keys, clip)
    windows = read_clip({**cameras, joints: rows[:, :7], gripper: rows[:, 7]}, e, CHUNK + 1, whole_clip=True)
    second = windows.window(2)
    np.testing.assert_array_equal(second[joints], rows[8:9, :7])
    np.testing.assert_array_equal(second[gripper], rows[8:9, 7:])
    assert len(second[e.camera_keys[0]]) == CHUNK + 1  # 4 frames left, the last repeated


def test_predict_labels_a_whole_clip(tiny_checkpoint, clip, tmp_path, capsys):
    from worldpolicy.processing.video import write_video

    write_video(tmp_path / "clip.mp4", clip, 30)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--embodiment", "droid/relative_pose",
                 "--chunk-size", str(CHUNK), "--resolution-tier", "256", "--mode", "inverse", "--video",
                 str(tmp_path / "clip.mp4"), "--whole-clip", "--resample", "--decode-video", "--steps", "1",
                 "--prompt", "reach", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "recovered 5 x 10 actions at 15 Hz" in out and "from clip frames 0..10 (2 windows), resampled from 30 fps" in out
    written = json.loads((tmp_path / "run" / "actions.json").read_text())
    assert len(written["actions"]) == 5 and written["video_frames"] == 6
    assert written["settings"]["clip"]["frames_used"] == [0, 2, 4, 6, 8, 10]
    assert (tmp_path / "run" / "plots" / "actions.png").is_file()


@pytest.mark.parametrize(("extra", "said"), [
    (["--start-frame", "11"], "--start-frame 11: --video '{clip}' has 12 frames (0 .. 11); inverse dynamics needs 2"),
    (["--start-frame", "-2"], "--start-frame -2: accepted a frame of the clip, from 0"),
    (["--resample", "--video", "{folder}"], "--resample: --video '{folder}' carries no frame rate to resample from"),
    (["--whole-clip", "--mode", "policy"], "--whole-clip is only used with --mode inverse_dynamics (got --mode policy)"),
    # a state-conditioned embodiment's later windows need their own frames' state, which one --state row cannot give:
    # refused once the weights had loaded, or (no --state) asking for a --state that could not have helped
    (["--whole-clip", "--embodiment", "droid/joint_pos"], (
        "--whole-clip: embodiment 'droid/joint_pos' conditions on the robot state, and a window from a later clip "
        "frame starts from that frame's state, which --state (one row: frame 0's) cannot give")),
    # the embodiment that needs no state is named, as a missing --state's refusal names it (`stateless_hint`)
    (["--whole-clip", "--embodiment", "droid/joint_pos"], (
        "or choose an --embodiment that conditions on no state (--embodiment droid/relative_pose)\n")),
    (["--start-frame", "4", "--embodiment", "droid/joint_pos", "--state", "0,0,0,0,0,0,0,0"],
     "--start-frame 4: embodiment 'droid/joint_pos' conditions on the robot state"),
])
def test_predict_refuses_clip_flags_before_the_weights_load(tiny_checkpoint, clip, tmp_path, capsys, monkeypatch,
                                                            extra, said):
    from PIL import Image

    import worldpolicy
    from worldpolicy.processing.video import write_video

    write_video(tmp_path / "clip.mp4", clip, 15)
    (tmp_path / "frames").mkdir()
    for i in range(3):
        Image.fromarray(clip[i]).save(tmp_path / "frames" / f"{i}.png")
    paths = {"clip": tmp_path / "clip.mp4", "folder": tmp_path / "frames"}
    extra = [arg.format(**paths) for arg in extra]
    video = [] if "--video" in extra else ["--video", str(paths["clip"])]
    mode = [] if "--mode" in extra else ["--mode", "inverse"]
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: pytest.fail("weights loaded"))
    embodiment = [] if "--embodiment" in extra else ["--embodiment", "droid/relative_pose"]
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), *embodiment, *mode,
                 *video, *extra, "--prompt", "reach", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert said.format(**paths) in err and "Traceback" not in err, err


def test_a_whole_clip_of_each_cameras_frames_is_labelled_as_the_composite(policy, clip):
    """A dict of camera clips is windowed camera by camera, each window composed as a single window's is."""
    cameras = dict.fromkeys(policy.embodiment.camera_keys, clip)
    whole = policy.infer_actions(cameras, "reach", whole_clip=True, seed=4, steps=1)
    assert whole.actions.shape == (11, 10) and whole.settings["clip"]["window_rows"] == [4, 4, 3]
    later = policy.infer_actions(cameras, "reach", start_frame=4, seed=4, steps=1)
    np.testing.assert_allclose(whole.actions[4:8], later.actions, atol=1e-5)
    assert whole.timings["total"] >= whole.timings["denoise"] > 0
