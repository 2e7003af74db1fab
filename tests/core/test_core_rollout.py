"""Forward dynamics over more actions than one chunk (`Policy.imagine(whole_trajectory=True)`, `predict --mode forward
--whole-trajectory`, `RemotePolicy.imagine`): a recorded trajectory longer than the chunk used to be cut to it, so the
world model could not roll it out; now its chunks run one after another, each from the last imagined frame of the
one before, joined into one rollout."""

import copy
import json
import logging
from dataclasses import replace

import numpy as np
import pytest

from worldpolicy.cli import main

CHUNK = 4  # 10 rows: chunks of 4, 4 and 2 (the last padded to 4, its padding's frames dropped)


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    import worldpolicy

    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=CHUNK,
                                   resolution_tier=256)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def _actions(rows: int, seed: int = 1) -> np.ndarray:
    """Physical relative-pose rows within the trained range: small translations, no rotation, the gripper open."""
    actions = np.zeros((rows, 10))
    actions[:, :3] = np.random.default_rng(seed).normal(scale=0.004, size=(rows, 3))
    actions[:, 3:9] = (1, 0, 0, 0, 1, 0)  # rot6d's identity
    return actions


def test_a_trajectory_rolls_out_chunk_after_chunk_each_from_the_last_imagined_frame(policy, image, caplog):
    actions = _actions(10)
    whole = policy.imagine(image, actions, "reach", whole_trajectory=True, seed=7, steps=1)
    assert whole.video.shape == (11, 64, 64, 3)  # N+1 frames: the boundary frames once, the padding's dropped
    np.testing.assert_allclose(whole.actions, actions, atol=1e-9)
    assert whole.settings["trajectory"] == {"rows": 10, "state_chained": False, "chunks": [
        {"actions": [0, 4], "frames": [1, 5], "conditioned_on": 0, "seed": 7},
        {"actions": [4, 8], "frames": [5, 9], "conditioned_on": 4, "seed": 8},
        {"actions": [8, 10], "frames": [9, 11], "conditioned_on": 8, "seed": 9}]}
    # each chunk is imagine() of its rows and seed from its frame: the observation, then the last one imagined
    for j, chunk in enumerate(whole.settings["trajectory"]["chunks"]):
        start, stop = chunk["actions"]
        conditioned = image if j == 0 else whole.video[chunk["conditioned_on"]]
        one = policy.imagine(conditioned, actions[start:stop], "reach", seed=chunk["seed"], steps=1)
        np.testing.assert_array_equal(whole.video[slice(*chunk["frames"])], one.video[1:stop - start + 1])
        if j == 0:
            np.testing.assert_array_equal(whole.video[0], one.video[0])  # frame 0: the observation, decoded
    assert whole.timings["total"] >= whole.timings["denoise"] > 0
    assert "errors compound" not in caplog.text  # 3 chunks: not a long rollout


def test_fewer_rows_than_a_chunk_are_one_chunk_whose_padding_frames_are_dropped(policy, image):
    actions = _actions(3)
    short = policy.imagine(image, actions, "reach", whole_trajectory=True, seed=2, steps=1)
    padded = policy.imagine(image, actions, "reach", seed=2, steps=1)  # the pipeline's padding, its frames kept
    assert short.video.shape[0] == 4 and padded.video.shape[0] == CHUNK + 1
    np.testing.assert_array_equal(short.video, padded.video[:4])
    assert short.actions.shape == (3, 10) and len(short.settings["trajectory"]["chunks"]) == 1


def test_a_long_rollout_is_warned_of_once_and_its_bar_follows_progress(policy, image, caplog, capsys):
    steps = []
    policy.imagine(image, _actions(17), "reach", whole_trajectory=True, seed=1, steps=1,
                   progress=lambda step, total: steps.append((step, total)))
    assert caplog.text.count("5 chunks, each conditioned on the previous chunk's last imagined frame, so the world "
                             "model's errors compound") == 1
    assert steps and "forward dynamics" not in capsys.readouterr().err  # the caller reports: no bar of ours
    policy.imagine(image, _actions(9), "reach", whole_trajectory=True, seed=1, steps=1)
    assert "forward dynamics" in capsys.readouterr().err
    policy.imagine(image, _actions(9), "reach", whole_trajectory=True, seed=1, steps=1, progress=False)
    assert "forward dynamics" not in capsys.readouterr().err


def test_a_joint_position_state_is_chained_from_the_last_action_of_the_chunk_before(tiny_checkpoint):
    """droid/joint_pos conditions each chunk on the robot state: chunk j > 0 starts from chunk j-1's last joint
    target, taken as reached. Another state there gives another chunk, so the match is the state's."""
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/joint_pos", chunk_size=CHUNK,
                                     resolution_tier=256, steps=1)
    rng = np.random.default_rng(4)
    cameras = {key: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for key in policy.embodiment.camera_keys}
    actions = np.concatenate([rng.uniform(-1, 1, size=(6, 7)), rng.uniform(0, 1, size=(6, 1))], axis=1)
    state = np.concatenate([rng.uniform(-1, 1, 7), [0.0]])
    whole = policy.imagine(cameras, actions, "push", whole_trajectory=True, state=state, seed=3)
    assert whole.settings["trajectory"]["state_chained"] and whole.video.shape[0] == 7
    second = whole.video[CHUNK]
    chained = policy.imagine(second, actions[CHUNK:], "push", state=actions[CHUNK - 1], seed=4)
    np.testing.assert_array_equal(whole.video[CHUNK + 1:], chained.video[1:3])
    other = policy.imagine(second, actions[CHUNK:], "push", state=actions[CHUNK - 1] + 0.5, seed=4)
    assert not np.array_equal(other.video[1:3], chained.video[1:3])


def test_the_imagined_frames_a_trajectory_goes_on_from_are_not_judged_as_a_cameras(tiny_checkpoint, caplog):
    """Chunk j > 0 starts from a frame the model imagined, on its canvas (256x288 for droid/joint_pos' three cameras):
    judged as a camera's image against the frames the checkpoint was trained on, it warned of a size no user chose
    (`Policy.imagined_frame_said`)."""
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/joint_pos", chunk_size=CHUNK,
                                     resolution_tier=256, steps=1)
    keys = policy.embodiment.camera_keys
    policy._trained_frames = {"cameras": {key: (36, 64) for key in keys}, "composed": (720, 1280)}
    rng = np.random.default_rng(5)
    cameras = {key: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for key in keys}  # the sizes trained on
    actions = np.concatenate([rng.uniform(-1, 1, size=(6, 7)), rng.uniform(0, 1, size=(6, 1))], axis=1)
    whole = policy.imagine(cameras, actions, "push", whole_trajectory=True, state=actions[0], seed=3)
    assert whole.video.shape[1:3] != (36, 64) and "where it was" not in caplog.text
    # the public way a caller stepping chunk by chunk (`sim.world_model`) tells the policy a frame is imagined
    imagined = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    policy.imagined_frame_said(imagined)
    policy.act(imagined, "push", state=actions[0], seed=0)
    assert "where it was" not in caplog.text and "one camera's view" not in caplog.text
    policy.act(imagined[:40, :72], "push", state=actions[0], seed=0)  # not said: judged as a camera's
    assert "looks like one camera's view: it is 40x72 pixels" in caplog.text


def test_a_state_no_action_says_is_refused_naming_what_is_accepted(policy, image):
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing.trajectory import check_trajectory_embodiment

    check_trajectory_embodiment(get_embodiment("droid/joint_pos"))
    check_trajectory_embodiment(get_embodiment("droid/relative_pose"))
    stateful = copy.copy(policy)
    stateful.embodiment = replace(policy.embodiment, state_history=1)
    with pytest.raises(ValueError, match=r"whole_trajectory=True: embodiment 'droid/relative_pose' conditions each "
                                         r"chunk on the robot state, and its relative_pose actions do not say the "
                                         r"state after a chunk.*accepted: an embodiment whose actions are absolute "
                                         r"joint positions"):
        stateful.imagine(image, _actions(10), "reach", whole_trajectory=True, state=np.zeros(10))


@pytest.mark.parametrize(("options", "error", "said"), [
    ({"whole_trajectory": "yes"}, ValueError, "whole_trajectory='yes'; accepted: True or False"),
    ({"whole_trajectory": True, "decode_video": False}, ValueError,
     ("decode_video=False with whole_trajectory=True: each chunk after the first is conditioned on the previous "
     "chunk's last imagined frame")),
    ({"whole_trajectory": True, "actions_space": "metres"}, ValueError,
     "actions_space='metres'; accepted: physical, normalized"),
    ({"whole_trajectory": True, "progress": "bar"}, TypeError,
     "progress must be a callable (step, total), None or False, got str"),
    ({"whole_trajectory": True, "actions": np.full((10, 10), np.nan)}, ValueError, "NaN"),
    ({"whole_trajectory": True, "actions": np.zeros((10, 7))}, ValueError, "7"),
    ({"whole_trajectory": True, "actions": np.zeros((0, 10))}, ValueError,  # was "expected shape [T, 10], got (0, 10)"
     "actions: holds no action rows (shape (0, 10)); accepted: at least one row of 10 values"),
])
def test_trajectory_options_are_refused_before_any_chunk_runs(policy, image, monkeypatch, options, error, said):
    monkeypatch.setattr(policy, "act_batch", lambda *a, **k: pytest.fail("a chunk ran"))
    actions = options.pop("actions", _actions(10))
    with pytest.raises(error) as caught:
        policy.imagine(image, actions, "reach", steps=1, **options)
    assert said in str(caught.value), caught.value


def test_a_trajectory_refused_by_its_first_chunk_draws_no_seed(policy, image):
    """A policy loaded with `seed=` gives its calls a seed sequence; a refused call must not move it on."""
    seeded = copy.copy(policy)
    seeded._next_seed = 5
    with pytest.raises(ValueError, match="prompt"):
        seeded.imagine(image, _actions(10), "", whole_trajectory=True, steps=1)
    assert seeded._next_seed == 5


def test_predict_rolls_out_a_whole_trajectory(tiny_checkpoint, image, tmp_path, capsys):
    from PIL import Image

    from worldpolicy.processing.video import read_video

    Image.fromarray(image).save(tmp_path / "obs.png")
    np.save(tmp_path / "trajectory.npy", _actions(10))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--embodiment", "droid/relative_pose",
                 "--chunk-size", str(CHUNK), "--resolution-tier", "256", "--mode", "forward", "--image",
                 str(tmp_path / "obs.png"), "--actions", str(tmp_path / "trajectory.npy"), "--whole-trajectory",
                 "--steps", "1", "--prompt", "reach", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "imagined 11 frames of 64x64 (HxW) at 15 fps from 10 x 10 actions" in out
    assert "in 3 chunks, each from the last imagined frame of the one before" in out
    written = json.loads((tmp_path / "run" / "actions.json").read_text())
    assert len(written["actions"]) == 10 and written["video_frames"] == 11
    assert [c["actions"] for c in written["settings"]["trajectory"]["chunks"]] == [[0, 4], [4, 8], [8, 10]]
    assert len(read_video(tmp_path / "run" / "rollout.mp4")[0]) == 11
    assert (tmp_path / "run" / "plots" / "actions.png").is_file()


@pytest.mark.parametrize(("extra", "said"), [
    (["--mode", "policy"], "--whole-trajectory is only used with --mode forward_dynamics (got --mode policy)"),
    (["--embodiment", "{spec}", "--mode", "forward", "--state", "0,0,0,0,0,0,0,0,0,0"],
     "--whole-trajectory: embodiment 'stateful' conditions each chunk on the robot state"),
])
def test_predict_refuses_a_whole_trajectory_before_the_weights_load(tiny_checkpoint, image, tmp_path, capsys,
                                                                     monkeypatch, extra, said):
    from PIL import Image

    import worldpolicy
    from worldpolicy.embodiments import get_embodiment

    Image.fromarray(image).save(tmp_path / "obs.png")
    np.save(tmp_path / "trajectory.npy", _actions(10))
    spec = {**replace(get_embodiment("droid/relative_pose"), name="stateful", variant="default",
                      state_history=1).to_spec()}
    (tmp_path / "stateful.json").write_text(json.dumps(spec))
    extra = [arg.format(spec=tmp_path / "stateful.json") for arg in extra]
    embodiment = [] if "--embodiment" in extra else ["--embodiment", "droid/relative_pose"]
    actions = ["--actions", str(tmp_path / "trajectory.npy")] if "forward" in extra else []
    monkeypatch.setattr(worldpolicy, "load_policy", lambda *a, **k: pytest.fail("weights loaded"))
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), *embodiment, *extra, *actions, "--image",
                 str(tmp_path / "obs.png"), "--whole-trajectory", "--prompt", "reach",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err, err


def test_a_remote_trajectory_is_the_local_one(policy, image):
    """Chained on the client, chunk by chunk over the wire: the same rollout, frames and record as the local call."""
    from worldpolicy.serving import PolicyServer, RemotePolicy, ServerConfig, ServerThread

    actions = _actions(10)
    server = PolicyServer(loader=lambda: policy, config=ServerConfig(host="127.0.0.1", port=0))
    with ServerThread(server) as t, RemotePolicy(t.url) as remote:
        got = remote.imagine(image, actions, "reach", whole_trajectory=True, seed=7, steps=1)
        with pytest.raises(ValueError, match="decode_video=False with whole_trajectory=True"):
            remote.imagine(image, actions, "reach", whole_trajectory=True, decode_video=False)
    want = policy.imagine(image, actions, "reach", whole_trajectory=True, seed=7, steps=1)
    assert got.settings["trajectory"] == want.settings["trajectory"]
    np.testing.assert_array_equal(got.video, want.video)
    np.testing.assert_allclose(got.actions, want.actions, rtol=1e-5, atol=1e-6)


def test_the_models_own_frames_go_back_on_the_canvas_they_were_generated_on(policy, tmp_path, sent_requests):
    """A 360x320 frame (the shipped model's two stacked cameras: a tie of 256x256 and 320x256, which diffusers gives
    256x256) decodes to 256x224, whole latent cells, which the aspect-ratio rule puts on 320x256. The result records
    its canvas (`settings["canvas_hw"]`), rollout.mp4 too, and what feeds the frames back uses it: a trajectory's
    later chunks, `infer_actions` of the file; frames in memory keep the pipeline's bin unless `canvas=` is given."""
    from worldpolicy.processing.observations import canvas_bin
    from worldpolicy.viz.run import ROLLOUT_VIDEO, write_run

    frame = np.random.default_rng(5).integers(0, 256, (360, 320, 3), dtype=np.uint8)
    imagined = policy.imagine(frame, _actions(CHUNK), "reach", seed=3, steps=1)
    assert imagined.video.shape[1:3] == (256, 224) and imagined.settings["canvas_hw"] == [256, 256]
    assert canvas_bin(256, 224, 256)[1] == (320, 256)  # where the rule alone put the model's own frames
    write_run(imagined, tmp_path, plots=False)
    assert policy.infer_actions(tmp_path / ROLLOUT_VIDEO, "reach", seed=3, steps=1).settings["canvas_hw"] == [256, 256]
    assert policy.infer_actions(str(tmp_path / ROLLOUT_VIDEO), "reach", seed=3, steps=1,
                                canvas=(320, 256)).settings["canvas_hw"] == [320, 256]  # the caller's choice wins
    assert policy.infer_actions(imagined.video, "reach", seed=3, steps=1).settings["canvas_hw"] == [320, 256]
    assert policy.infer_actions(imagined.video, "reach", seed=3, steps=1,
                                canvas=imagined.settings["canvas_hw"]).settings["canvas_hw"] == [256, 256]
    # the result itself: its frames on its canvas, what passing both gives, without the caller knowing the setting
    given_both = policy.infer_actions(imagined.video, "reach", seed=3, steps=1, canvas=imagined.settings["canvas_hw"])
    itself = policy.infer_actions(imagined, "reach", seed=3, steps=1)
    assert itself.settings["canvas_hw"] == [256, 256] and np.array_equal(itself.actions, given_both.actions)
    assert policy.infer_actions(imagined, "reach", seed=3, steps=1,
                                canvas=(320, 256)).settings["canvas_hw"] == [320, 256]  # the caller's choice wins
    with pytest.raises(ValueError, match=r"infer_actions\(video=...\) got a Prediction without a video"):
        policy.infer_actions(policy.imagine(frame, _actions(CHUNK), "reach", seed=3, steps=1, decode_video=False),
                             "reach")
    with pytest.raises(ValueError, match=r"canvas=\(250, 250\); accepted: None"):
        policy.act(frame, "reach", canvas=(250, 250))
    sent = sent_requests(policy)
    policy.imagine(frame, _actions(10), "reach", whole_trajectory=True, seed=3, steps=1)
    assert [r.canvas for r in sent] == [None, (256, 256), (256, 256)]


def test_an_ignored_canvas_record_is_said_once_per_file(policy, tmp_path, caplog):
    """A control loop may pass the same file every call: the record it leaves out is said once, not per call."""
    from worldpolicy.processing.observations import canvas_comment
    from worldpolicy.processing.video import write_video

    frames = np.random.default_rng(6).integers(0, 256, (2, 128, 112, 3), dtype=np.uint8)
    resized = write_video(tmp_path / "resized.mp4", frames, 15, canvas_comment({"canvas_hw": [256, 256]}, (256, 224)))
    for _ in range(2):
        assert policy.act(resized, "reach", seed=3, steps=1).settings["canvas_hw"] != [256, 256]
    assert caplog.text.count("records the canvas 256x256") == 1


def test_a_bad_canvas_is_refused_before_the_clip_is_read(policy, monkeypatch):
    import worldpolicy.policy as policy_module

    def never(*args, **kwargs):
        raise AssertionError("the clip was read before canvas= was checked")

    monkeypatch.setattr(policy_module, "read_clip", never)
    with pytest.raises(ValueError, match=r"canvas=\(250, 250\); accepted: None"):
        policy.infer_actions("missing.mp4", "reach", whole_clip=True, canvas=(250, 250))


def test_one_frame_of_another_size_is_said_once_whether_in_an_array_or_under_observation_image(policy, caplog,
                                                                                               monkeypatch):
    """The same 256x224 frame was warned of twice: once given as an array, once under `observation/image`, which is
    the same one image judged against the composed frame."""
    keys = policy.embodiment.camera_keys
    monkeypatch.setattr(policy, "_said", set())
    monkeypatch.setattr(policy, "_trained_frames", {"cameras": {key: (36, 64) for key in keys}, "composed": (72, 128)})
    frame = np.random.default_rng(4).integers(0, 256, (54, 64, 3), dtype=np.uint8)  # a DROID composite's shape
    with caplog.at_level(logging.WARNING, logger="worldpolicy.policy"):
        policy.act(frame, "push", seed=0, steps=1)
        policy.act({"observation/image": frame}, "push", seed=0, steps=1)
    assert caplog.text.count("is 54x64 where it was 72x128") == 1, caplog.text


def test_the_models_own_frames_given_back_with_their_canvas_are_not_judged_as_a_cameras(policy, caplog, monkeypatch):
    """Explaining a prediction's video, `infer_actions(pred.video, prompt, canvas=pred.settings["canvas_hw"])` (or
    `infer_actions(pred, prompt)`, which does that), warned that the frames were not the trained size and to resize
    the camera images: frames that go on the canvas given unscaled, as whole latent cells, are what the model decodes
    on it, of a size no user chose.
    Frames the canvas scales, or cuts to its latent grid (a user's camera), are still judged."""
    keys = policy.embodiment.camera_keys
    rng = np.random.default_rng(9)
    cameras = {key: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for key in keys}
    monkeypatch.setattr(policy, "_said", set())
    monkeypatch.setattr(policy, "_trained_frames", {"cameras": {key: (36, 64) for key in keys}, "composed": (72, 128)})
    pred = policy.act(cameras, "push", seed=0, decode_video=True)
    canvas = tuple(pred.settings["canvas_hw"])
    assert pred.video.shape[1] % 16 == 0 and pred.video.shape[2] % 16 == 0
    policy.infer_actions(pred.video, "push", canvas=canvas, seed=0)
    policy.imagine(pred.video[-1], _actions(CHUNK), "push", canvas=canvas, seed=0)
    assert "where it was" not in caplog.text
    cut = pred.video[:, :-8]  # not whole latent cells: a camera's image, judged
    policy.infer_actions(cut, "push", canvas=canvas, seed=0)
    assert f"the observation is {cut.shape[1]}x{cut.shape[2]} where it was 72x128" in caplog.text
