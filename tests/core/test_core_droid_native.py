"""The released Cosmos3-Nano-Policy-DROID variant (RoboLab): 8-D joints, clean state row, plain prompt, composite."""

import numpy as np
import pytest

import worldpolicy
from worldpolicy.processing.prompts import plain_caption

ROBOLAB_EXAMPLE = (
    "Pick up the banana and place it in the bowl. This video contains concatenated views from multiple camera "
    "perspectives. The top row is from the wrist-mounted camera. The bottom row contains two horizontally concatenated "
    "third-person perspective views of the scene from opposite sides, with the robot visible. The video is 2.0 seconds "
    "long and is of 15 FPS. This video is of 544x736 resolution."
)


def droid_obs(rng, joints=None, gripper=0.2):
    return {
        "observation/wrist_image_left": (rng.random((360, 640, 3)) * 255).astype(np.uint8),
        "observation/exterior_image_1_left": (rng.random((180, 320, 3)) * 255).astype(np.uint8),
        "observation/exterior_image_2_left": (rng.random((180, 320, 3)) * 255).astype(np.uint8),
        "observation/joint_position": np.array(joints if joints is not None else [0, -0.3, 0, -2.2, 0, 2.0, 0.79]),
        "observation/gripper_position": np.array([gripper]),
    }


def test_plain_caption_matches_robolab_example():
    e = worldpolicy.get_embodiment("droid")
    assert e.variant == "joint_pos"
    caption = plain_caption("Pick up the banana and place it in the bowl", e.view_point, 33, e.fps, 544, 736,
                            e.view_description)
    assert caption == ROBOLAB_EXAMPLE


@pytest.fixture(scope="module")
def droid_policy(tiny_checkpoint):
    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=8)


def test_native_variant_end_to_end(droid_policy):
    rng = np.random.default_rng(0)
    pred = droid_policy.act(droid_obs(rng), "Pick up the banana and place it in the bowl", seed=3)
    s = pred.settings
    assert (s["steps"], s["guidance"], s["schedule"], s["shift"], s["native_grid"]) == (4, 3.0, "linear", 5.0, True)
    assert s["canvas_hw"] == [544, 736] and s["content_hw"] == [540, 640] and s["latent_hw"] == [33, 40]
    assert s["prompt_format"] == "plain" and "This video is of 544x736 resolution." in s["caption"]
    assert pred.actions.shape == (8, 8) and pred.columns[-1] == "gripper"
    # gripper flip: physical = 1 - model space; joints are raw radians (no normalisation)
    np.testing.assert_allclose(pred.actions[:, 7], 1.0 - pred.actions_normalized[:, 7])
    np.testing.assert_allclose(pred.actions[:, :7], pred.actions_normalized[:, :7])


def test_state_row_conditions_the_chunk(droid_policy):
    rng = np.random.default_rng(0)
    obs = droid_obs(rng)
    a = droid_policy.act(obs, "Pick up the banana", seed=3)
    b = droid_policy.act(dict(obs, **{"observation/joint_position": np.zeros(7)}), "Pick up the banana", seed=3)
    c = droid_policy.act(obs, "Pick up the banana", seed=3, state=np.r_[obs["observation/joint_position"], 0.2])
    assert not np.allclose(a.actions, b.actions)
    np.testing.assert_allclose(a.actions, c.actions)


def test_missing_state_is_a_clear_error(droid_policy):
    obs = droid_obs(np.random.default_rng(0))
    del obs["observation/gripper_position"]
    with pytest.raises(KeyError, match="observation/gripper_position"):
        droid_policy.act(obs, "Pick up the banana")
    with pytest.raises(ValueError, match="expects 8"):
        droid_policy.act(droid_obs(np.random.default_rng(0)), "x", state=[0.0] * 7)


def test_missing_camera_is_a_clear_error(droid_policy):
    obs = droid_obs(np.random.default_rng(0))
    del obs["observation/exterior_image_2_left"]
    with pytest.raises(KeyError, match="exterior_image_2_left"):
        droid_policy.act(obs, "Pick up the banana")


def test_bad_state_values_name_their_key(droid_policy):
    obs = droid_obs(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"state='0,0,0' must be a list or array of numbers"):
        droid_policy.act(obs, "x", state="0,0,0")
    with pytest.raises(ValueError, match=r"observation\['observation/joint_position'\] has 8 values"):
        droid_policy.act(dict(obs, **{"observation/joint_position": np.zeros(8)}), "x")
    with pytest.raises(ValueError, match=r"observation\['observation/joint_position'\]=None"):
        droid_policy.act(dict(obs, **{"observation/joint_position": None}), "x")
    with pytest.raises(ValueError, match=r"state=array\(\[0\.\+0\.j"):  # was cast, the imaginary parts dropped
        droid_policy.act(obs, "x", state=np.zeros(8, complex))


def test_inverse_dynamics_starts_from_the_clips_first_state(droid_policy):
    """A joint history beside a clip: the recovered chunk starts at frame 0, so the state row is frame 0's."""
    rng = np.random.default_rng(6)
    cams = {k: (rng.random((9, 36, 64, 3)) * 255).astype(np.uint8) for k in droid_policy.embodiment.camera_keys}
    joints = np.cumsum(rng.normal(0, 0.1, (9, 7)), axis=0)
    obs = dict(cams, **{"observation/joint_position": joints, "observation/gripper_position": np.full((9, 1), 0.2)})
    recovered = droid_policy.infer_actions(obs, "x", seed=1, steps=1).actions
    first = droid_policy.infer_actions(obs, "x", seed=1, steps=1, state=np.r_[joints[0], 0.2]).actions
    np.testing.assert_allclose(recovered, first)


def test_a_refused_batch_draws_no_seeds(tiny_checkpoint):
    from worldpolicy.policy import PolicyRequest

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=8,
                                     resolution_tier=256, seed=100)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="prompt") as refused:
        policy.act_batch([PolicyRequest(image, "reach"), PolicyRequest(image, "reach"), PolicyRequest(image, " ")])
    assert "requests[2]" in "".join(getattr(refused.value, "__notes__", []))
    assert policy.act(image, "reach", steps=1).settings["seed"] == 100
