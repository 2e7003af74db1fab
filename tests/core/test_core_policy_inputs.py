"""What `Policy` says of inputs it reads otherwise than a caller may believe: a state it ignores, a non-number in a
state, a camera its composite stretches, a batch read as a frame history."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

import worldpolicy
from worldpolicy.policy import PolicyRequest, ignored_state_warning, input_warnings

SHIPPED_SPEC = Path(worldpolicy.__file__).parent / "models" / "panda_reach" / "embodiment.json"


@pytest.fixture
def fresh_policy(tiny_checkpoint):
    """A policy of its own: each warning is said once per policy, and the session's `tiny_policy` may have said it."""
    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                   resolution_tier=256)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_state_the_embodiment_ignores_is_said_once_as_the_front_ends_say_it(fresh_policy, caplog):
    """`act(state=...)` on an embodiment that ignores state warned at every call of a control loop, in other words than
    `predict` and the agent tools, which refused it. One rule: ignored and said once, as openpi and LeRobot policies
    ignore keys they do not use; a state nothing reads (even one of Nones) is not judged."""
    image = np.zeros((64, 64, 3), np.uint8)
    e = fresh_policy.embodiment
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        for state in ([0.0] * 10, [None] * 3, np.zeros((2, 10))):
            fresh_policy._prepare(PolicyRequest(image, "Reach the target", state=state))
    said = [m for m in _warnings(caplog) if m.startswith("state is ignored")]
    assert said == [ignored_state_warning(e, [0.0] * 10)], said
    assert said[0] in input_warnings(fresh_policy.source, e, "policy", (64, 64), state=[1.0, 2.0])
    assert ignored_state_warning(e, None) is None
    assert ignored_state_warning(worldpolicy.get_embodiment("droid/joint_pos"), [0.0] * 8) is None


@pytest.mark.parametrize(("state", "message"), [
    ([None] * 8, ("state[0] is None, not a number (and 7 more items); accepted: a list or array of numbers "
                  "(given [None, None")),
    ([0.1] * 7 + [None], "state[7] is None, not a number; accepted"),
    (["0.1"] * 8, "state[0] is '0.1', not a number (and 7 more items)"),
    ([0.1] * 7 + ["x"], "state[7] is 'x', not a number; accepted"),  # numpy made the numbers strings too
    ([[0.0] * 8, [0.0] * 7 + [None]], "state[1][7] is None, not a number"),
])
def test_a_state_holding_non_numbers_names_them(tiny_checkpoint, state, message):
    """A state of Nones (a driver's dropped readings) was refused as "NaN or inf" and shown as nan; strings were taken
    for numbers."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    with pytest.raises(ValueError, match=re.escape(message)):
        policy._state_row(PolicyRequest(np.zeros((64, 64, 3), np.uint8), "x", state=state))


def test_a_camera_the_stacked_composite_stretches_is_said():
    """The shipped model stacks its cameras, each resized to the first's size: a 4:3 wrist camera under a 16:9 exterior
    was stretched without a word (the frame-size warning needs the checkpoint's training record)."""
    from worldpolicy.embodiments import embodiment_from_spec
    from worldpolicy.processing.observations import stretch_warning

    e = embodiment_from_spec(SHIPPED_SPEC)
    exterior, wrist = e.camera_keys
    message = stretch_warning(e, {exterior: (180, 320), wrist: (480, 640)})
    assert message is not None and message.startswith(
        "embodiment 'panda_reach' composes its cameras (stacked top to bottom), each camera resized to the first's size, "
        f"so a camera of another shape is stretched: camera {wrist} is 480x640 (aspect 1.33), resized to 180x320 "
        "(aspect 1.78)"), message
    assert exterior + " is" not in message  # the first camera sets the size: never stretched
    assert stretch_warning(e, {exterior: (180, 320), wrist: (360, 640)}) is None  # same shape, other size
    assert stretch_warning(e, {exterior: (180, 320), wrist: (176, 320)}) is None  # snapped to 16: within a few %
    assert stretch_warning(e, {"observation/image": (360, 320)}) is None  # pre-composed
    # the front ends say it before the weights load, as the run would
    assert message in input_warnings("shipped", e, "policy", {exterior: (180, 320), wrist: (480, 640)})
    assert not any("stretched" in m for m in input_warnings("shipped", e, "policy", (360, 320)))


def test_a_camera_the_droid_composite_stretches_is_said_once_by_the_run(fresh_policy, caplog):
    """DROID's composite has fixed places (wrist 360x640, exteriors 180x320): a 4:3 exterior is stretched into one."""
    wrist, ext_1, ext_2 = fresh_policy.embodiment.camera_keys
    cameras = {wrist: np.zeros((72, 128, 3), np.uint8), ext_1: np.zeros((48, 64, 3), np.uint8),
               ext_2: np.zeros((36, 64, 3), np.uint8)}
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        for _ in range(2):  # a control loop: said once
            fresh_policy._prepare(PolicyRequest(cameras, "Reach the target"))
    said = [m for m in _warnings(caplog) if "is stretched" in m]
    assert len(said) == 1 and f"camera {ext_1} is 48x64 (aspect 1.33), resized to 180x320" in said[0], said
    assert wrist + " is" not in said[0] and ext_2 + " is" not in said[0]


def test_a_batch_read_as_a_frame_history_is_said_once(fresh_policy, caplog):
    """A LeRobot-style batch [B,C,H,W] given to act was read as a history and answered for its last observation alone,
    without a word. Said once per shape; one frame, or a file, says nothing."""
    wrist, ext_1, ext_2 = fresh_policy.embodiment.camera_keys
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        fresh_policy._prepare(PolicyRequest(np.zeros((1, 3, 540, 640), np.uint8), "x"))
        assert not [m for m in _warnings(caplog) if " frames: read as a history" in m]
        for _ in range(2):
            fresh_policy._prepare(PolicyRequest(np.zeros((4, 3, 540, 640), np.uint8), "x"))
        cameras = {key: np.zeros((2, 36, 64, 3), np.uint8) for key in (wrist, ext_1, ext_2)}
        fresh_policy._prepare(PolicyRequest(cameras, "x"))
    said = [m for m in _warnings(caplog) if " frames: read as a history" in m]
    assert said[0].startswith("the observation holds 4 frames: read as a history [T,H,W,C] whose last frame (the "
                              "current one) is used. For a batch of observations (LeRobot's [B,C,H,W]), pass one "
                              "PolicyRequest per observation to act_batch"), said
    assert len(said) == 2 and said[1].startswith(f"observation[{wrist!r}], observation[{ext_1!r}], "
                                                 f"observation[{ext_2!r}] hold 2 frames"), said


def test_imagine_with_prompt_and_actions_swapped_says_so(fresh_policy):
    """`imagine(obs, "push", actions)`, act's argument order, was refused as "prompt must be a string ..., got
    ndarray", naming no cause."""
    image, actions = np.zeros((64, 64, 3), np.uint8), np.zeros((16, 10))
    with pytest.raises(TypeError, match=r"imagine\(observation, actions, prompt\) got actions='push' and a prompt of "
                                        r"type ndarray: the two look swapped"):
        fresh_policy.imagine(image, "push", actions)


@pytest.mark.parametrize(("settings", "said"), [
    ({"preset": "small_no_cfg", "steps": 0},
     r"^steps=0 must be an integer in \[1, 1000\]; the default: steps 12, guidance 1 \(preset 'small_no_cfg'\)$"),
    ({"guidance": -1.0},  # droid/relative_pose names no sampling preset
     (r"^guidance=-1\.0 must be a finite number >= 0 \(1\.0 disables CFG\); the default: steps 4, guidance 3 "
      r"\(the engine's defaults\)$")),
])
def test_a_bad_steps_or_guidance_names_the_default_it_replaces_and_its_source(tiny_checkpoint, settings, said):
    """The engine's message cannot know which default a bad value replaces: a preset asked for, the embodiment's
    (tested through `serve`), or none."""
    from worldpolicy.policy import Policy

    with pytest.raises(ValueError, match=said):
        Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose", **settings)


def test_load_policy_without_progress_loads_without_diffusers_bar(tiny_checkpoint, capsys):
    """A notebook's `load_policy` drew diffusers' "Loading pipeline components" bar, and hiding it took importing
    `logcapture.quiet_loading`; `progress=False` does, as it does for the commands (`--no-progress`). The user's
    setting is theirs again after."""
    from diffusers.utils import logging as diffusers_logging

    options = dict(embodiment="droid/relative_pose", chunk_size=16, resolution_tier=256)
    worldpolicy.load_policy(tiny_checkpoint, progress=False, **options)
    assert "Loading pipeline components" not in capsys.readouterr().err
    assert diffusers_logging.is_progress_bar_enabled()
    worldpolicy.load_policy(tiny_checkpoint, **options)
    assert "Loading pipeline components" in capsys.readouterr().err  # the bar, by default
    with pytest.raises(TypeError, match=r"progress='no': accepted: True .* or False"):
        worldpolicy.load_policy(tiny_checkpoint, progress="no", **options)


def test_a_policy_and_the_front_ends_read_the_checkpoints_record_once(tiny_policy, tmp_path, monkeypatch):
    """A `Policy` read its checkpoint's trainer_state.json three times as it was built (the modes its run left out,
    its frames, its centre crop) and `input_warnings` twice (modes, frames): each reads it once, every fact from the
    one record (`recorded_untrained_modes`, `recorded_frames`, `config_center_crop`)."""
    import json

    from worldpolicy import fileio
    from worldpolicy.policy import Policy

    config = {"checkpoint": "shipped", "augment": {"enabled": True, "crop_area": 0.8},
              "objectives": {"policy": 1.0, "forward_dynamics": 0.0, "inverse_dynamics": 1.0}}
    cameras = {key: [180, 320] for key in tiny_policy.embodiment.camera_keys}
    frames = {"cameras": cameras, "composed": [180, 320]}
    (tmp_path / "trainer_state.json").write_text(json.dumps({"step": 2, "config": config, "frames": frames}))
    reads: list[str] = []
    real = fileio.read_json

    def counted(path, what):
        reads.append(Path(path).name)
        return real(path, what)

    monkeypatch.setattr(fileio, "read_json", counted)
    policy = Policy(tiny_policy.engine, tiny_policy.embodiment, tiny_policy.sampling, chunk_size=16,
                    resolution_tier=256, source=str(tmp_path))
    assert reads == ["trainer_state.json"]
    assert list(policy._untrained) == ["forward_dynamics"] and policy._trained_frames == frames
    assert policy.center_crop == 0.8
    assert Policy(tiny_policy.engine, tiny_policy.embodiment, tiny_policy.sampling, chunk_size=16, resolution_tier=256,
                  source=str(tmp_path), center_crop=False).center_crop is None
    reads.clear()
    said = input_warnings(str(tmp_path), tiny_policy.embodiment, "forward_dynamics", dict.fromkeys(cameras, (90, 160)))
    assert reads == ["trainer_state.json"]
    assert said[0].startswith(f"checkpoint {tmp_path} was trained with no forward_dynamics objective")
    assert any(message.startswith(f"checkpoint {tmp_path} was trained on frames of 180x320") for message in said)


def test_frames_like_those_of_any_mixture_source_are_not_warned_of(tiny_policy, tmp_path, caplog):
    """A mixture run (`[[data.mixture]]`) records its first source's frames as `frames` and each source's in
    `mixture`: frames like the second source's (recorded at half the size) were trained on, and are not said to
    differ; frames unlike every source's are, against the first's."""
    import json

    from worldpolicy.policy import Policy, mixture_frames

    cameras = tiny_policy.embodiment.camera_keys
    first = {"cameras": {key: [180, 320] for key in cameras}, "composed": [180, 320]}
    second = {"cameras": {key: [90, 160] for key in cameras}, "composed": [90, 160]}
    state = {"step": 2, "config": {"checkpoint": "shipped"}, "frames": first,
             "mixture": [{"dataset": "a", "frames": first}, {"dataset": "b", "frames": second},
                         {"dataset": "c", "frames": {"cameras": {}}}]}  # unreadable: not judged against
    (tmp_path / "trainer_state.json").write_text(json.dumps(state))
    assert mixture_frames(state) == [second] and mixture_frames({"frames": first}) == []

    def sized(size):
        return [m for m in input_warnings(str(tmp_path), tiny_policy.embodiment, "policy", dict.fromkeys(cameras, size))
                if "was trained on frames" in m]

    assert sized((90, 160)) == [] and sized((180, 320)) == []
    assert [m[:len(f"checkpoint {tmp_path} was trained on frames of 180x320")] for m in sized((45, 80))] == [
        f"checkpoint {tmp_path} was trained on frames of 180x320"]
    policy = Policy(tiny_policy.engine, tiny_policy.embodiment, tiny_policy.sampling, chunk_size=16,
                    resolution_tier=256, source=str(tmp_path))
    assert policy._mixture_frames == [second]
    with caplog.at_level(logging.WARNING, logger="worldpolicy"):
        policy._warn_trained_size({key: np.zeros((1, 90, 160, 3)) for key in cameras}, np.zeros((1, 90, 160, 3)))
        assert not [m for m in _warnings(caplog) if "was trained on frames" in m]
        policy._warn_trained_size({key: np.zeros((1, 45, 80, 3)) for key in cameras}, np.zeros((1, 45, 80, 3)))
    assert [m for m in _warnings(caplog) if "was trained on frames of 180x320" in m]
