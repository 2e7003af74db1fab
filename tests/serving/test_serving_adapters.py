"""Wire dict → policy inputs: DROID keys, `observation/image`, key maps, optional modes, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
from serving_standins import droid_request

from worldpolicy import get_embodiment
from worldpolicy.embodiments import embodiment_from_dict
from worldpolicy.serving.adapters import IMAGE_KEY, ObservationAdapter, RequestError, all_float32, warmup_message

DROID = get_embodiment("droid")


def test_droid_keys_pass_through_as_a_dict():
    message = {**droid_request(np.arange(7.0)), "session_id": "abc"}
    request = ObservationAdapter(DROID).parse(message)
    assert request.mode == "policy" and request.prompt == "pick up the cup" and request.options == {}
    obs = request.observation
    assert set(obs) == {*DROID.camera_keys, *DROID.state_keys.values()}  # session_id dropped, nothing composed
    assert obs["observation/wrist_image_left"] is message["observation/wrist_image_left"]  # images: no copy
    joints = obs["observation/joint_position"]
    assert joints.dtype == np.float64 and joints.flags.writeable
    np.testing.assert_array_equal(joints, np.arange(7.0))


def test_precomposed_image_replaces_the_cameras():
    message = droid_request(np.zeros(7))
    for key in DROID.camera_keys:
        del message[key]
    message[IMAGE_KEY] = np.zeros((540, 640, 3), np.uint8)
    obs = ObservationAdapter(DROID).parse(message).observation
    assert set(obs) == {IMAGE_KEY, *DROID.state_keys.values()}


def test_single_image_embodiment_gets_the_bare_image():
    e = get_embodiment("bridge")
    image = np.zeros((64, 64, 3), np.uint8)
    request = ObservationAdapter(e).parse({IMAGE_KEY: image, "prompt": "go"})
    assert request.observation is image


def test_key_map_finds_canonical_keys_under_client_names():
    # an openpi two-camera DROID client: reuse its exterior camera for both exterior slots
    message = droid_request(np.zeros(7))
    message["left"] = message.pop("observation/exterior_image_1_left")
    del message["observation/exterior_image_2_left"]
    key_map = {"observation/exterior_image_1_left": "left", "observation/exterior_image_2_left": "left"}
    obs = ObservationAdapter(DROID, key_map).parse(message).observation
    assert obs["observation/exterior_image_1_left"] is obs["observation/exterior_image_2_left"] is message["left"]


def test_forward_and_inverse_dynamics_requests():
    adapter = ObservationAdapter(DROID)
    fd = adapter.parse({**droid_request(np.zeros(7)), "mode": "forward_dynamics", "actions": np.ones((32, 8))})
    assert fd.mode == "forward_dynamics" and fd.actions.shape == (32, 8)
    video = np.zeros((9, 16, 16, 3), np.uint8)
    inv = adapter.parse({"mode": "inverse_dynamics", "video": video, "prompt": "x", "seed": 3, "steps": 2})
    assert inv.video is video and inv.observation is None and inv.options == {"seed": 3, "steps": 2}
    float_chw = np.zeros((9, 3, 16, 16), np.float32)  # what the local Policy reads too: float [0, 1], channels first
    assert adapter.parse({"mode": "inverse_dynamics", "video": float_chw, "prompt": "x"}).video is float_chw


def test_a_single_camera_embodiment_reads_its_first_camera_present():
    # three cameras, no composite: the local Policy reads the first camera it finds
    e = embodiment_from_dict({**get_embodiment("droid/relative_pose").to_dict(), "name": "three_cameras",
                              "aliases": [], "composite": None})
    wrist = np.zeros((8, 8, 3), np.uint8)
    obs = ObservationAdapter(e).parse({"observation/wrist_image_left": wrist, "prompt": "go"}).observation
    assert set(obs) == {"observation/wrist_image_left"}
    assert ObservationAdapter(e).parse({"image": wrist, "prompt": "go"}).observation["image"] is wrist


def test_options_are_typed():
    message = {**droid_request(np.zeros(7)), "seed": 7, "steps": 4, "guidance": 2, "decode_video": True}
    assert ObservationAdapter(DROID).parse(message).options == {
        "seed": 7, "steps": 4, "guidance": 2.0, "decode_video": True,
    }


def test_local_policy_options_travel_by_their_names():
    adapter = ObservationAdapter(DROID)
    message = {**_without("observation/joint_position"), "state": [0.1] * 8, "negative_prompt": b"blurry"}
    request = adapter.parse(message)  # `state` stands in for the state keys
    assert request.options["negative_prompt"] == "blurry"
    np.testing.assert_array_equal(request.options["state"], np.full(8, 0.1))
    fd = adapter.parse({**droid_request(np.zeros(7)), "mode": "forward_dynamics", "actions": np.ones((32, 8)),
                        "actions_space": "normalized"})
    assert fd.options == {"actions_space": "normalized"}


def test_all_float32_is_exact_on_every_path():
    """1e308 is finite, and inf in the float32 model, which then returned NaN actions (answered 1011 per request)."""
    assert not all_float32(np.array([1e308, 1e308]))  # the sum overflows, so numpy has the last word
    assert not all_float32(np.array([0.0, 1e39])) and not all_float32(np.array([-1e39]))  # a finite sum: min and max
    assert all_float32(np.array([3e38, -3e38])) and all_float32(np.array([1, 2], np.int64))
    assert not all_float32(np.array([np.inf, -np.inf]))  # their sum is NaN: still caught
    assert not all_float32(np.array([0.0, np.nan], np.float32))
    chunk = np.zeros((32, 8))  # past a few values: numpy
    assert all_float32(chunk) and all_float32(np.full((32, 8), 1e37, np.float32))
    assert not all_float32(np.full((32, 8), 1e308))
    for bad in (np.nan, np.inf, -np.inf):
        chunk[31, 7] = bad
        assert not all_float32(chunk) and not all_float32(chunk.astype(np.float32))
    assert all_float32(np.zeros(2000)) and not all_float32(np.full(2000, np.inf))  # large: numpy
    assert all_float32(np.zeros(0))


def _without(key):
    message = droid_request(np.zeros(7))
    del message[key]
    return message


def _with(**changes):
    return {**droid_request(np.zeros(7)), **{k.replace("__", "/"): v for k, v in changes.items()}}


def _one_bad_value(shape: tuple[int, ...]) -> np.ndarray:
    values = np.full(shape, 0.5)
    values[-1, -1] = np.nan
    return values


@pytest.mark.parametrize(
    "message, match",
    [
        ([1, 2], "msgpack map"),
        (_without("prompt"), "'prompt'"),
        (_with(prompt="  "), "'prompt'"),
        (_with(prompt=3), r"^prompt=3 \(int\) is not a string"),  # present, so not 'missing or empty'
        (_with(prompt="reach " * 400), "prompt is 2400 characters long; at most 2000"),
        (_with(negative_prompt="blur " * 500), "negative_prompt is 2500 characters long; at most 2000"),
        (_without("observation/wrist_image_left"), r"missing camera key\(s\) \['observation/wrist_image_left'\]"),
        (_without("observation/joint_position"), "missing state key 'observation/joint_position'"),
        (_with(observation__wrist_image_left="pixels"), "wrist_image_left must be a numeric image array"),
        (_with(observation__wrist_image_left=np.zeros((4, 4, 3), "<U1")), "wrist_image_left must be a numeric"),
        (_with(observation__wrist_image_left=np.zeros(5, np.uint8)), "wrist_image_left has shape"),
        (_with(observation__wrist_image_left=np.zeros((5000, 2, 3), np.uint8)), "at most 4096"),
        (_with(observation__wrist_image_left=np.full((4, 4, 3), np.nan)), "wrist_image_left contains NaN"),
        (_with(observation__joint_position=np.array([0, np.inf, 0, 0, 0, 0, 0])), "joint_position contains NaN, in"),
        # finite, and inf in the float32 model, whose actions came out NaN: answered 1011 and logged per request
        (_with(observation__joint_position=np.full(7, 1e308)), ("joint_position contains NaN, inf or values beyond "
         r"float32's range; accepted: finite numbers within float32's range \(\|x\| <= 3.4e\+38\)")),
        # both finiteness paths: small arrays summed as Python floats, large ones through numpy; one bad value is enough
        (_with(observation__joint_position=np.array([0, 0, 0, 0, 0, 0, -np.inf], np.float32)), "contains NaN, inf or"),
        (_with(observation__wrist_image_left=_one_bad_value((24, 24, 3))), "wrist_image_left contains NaN"),
        (_with(mode="forward_dynamics", actions=_one_bad_value((32, 8))), "actions contains NaN"),
        (_with(observation__joint_position="fast"), "joint_position must be a numeric array"),
        (_with(observation__joint_position=np.array(["a"] * 7)), "joint_position must be a numeric array"),
        (_with(observation__gripper_position=np.zeros((3, 2))), r"accepted: scalar, \[T\] or \[T, 1\]"),
        (_with(mode="dream"), "mode='dream' is not supported"),
        (_with(mode="forward_dynamics"), r"missing key 'actions': a numeric array is required; accepted: last axis 8"),
        (_with(mode="forward_dynamics", actions=np.ones((32, 7))), "last axis 8"),
        (_with(mode="forward_dynamics", actions=np.full((32, 8), np.nan)), "actions contains NaN"),
        (_with(mode="inverse_dynamics", video=np.zeros((4, 4, 3), np.uint8)), r"'video' as frames \[T, H, W, 3\]"),
        (_with(mode="inverse_dynamics", video=np.full((2, 4, 4, 3), np.nan, np.float32)), "video contains NaN"),
        (_with(seed=-1), "seed=-1"),
        (_with(seed=True), "seed=True"),
        (_with(steps=0), "steps=0"),
        (_with(guidance=float("nan")), "guidance=nan"),
        # numpy's complex passed as a number, then failed comparing with 0 (a TypeError, not a RequestError)
        (_with(guidance=np.complex64(1)), r"^guidance=np.complex64\(1\+0j\) must be a finite number$"),
        (_with(decode_video="yes"), "decode_video='yes'"),
        # a value is quoted, not echoed whole: a 1 MiB string seed made a 1 MiB error text
        (_with(seed="9" * 2**20), r"^seed='9{59} must be an int in \[0, 2\*\*63\)$"),
        (_with(negative_prompt=3), "negative_prompt must be a string"),
        (_with(state=np.ones(7)), r"state has shape \(7,\); accepted: last axis 8"),
        (_with(state=np.array([0, 0, 0, 0, 0, 0, 0, np.nan])), "state contains NaN"),
        (_with(mode="forward_dynamics", actions=np.ones((32, 8)), actions_space="joint"), "actions_space='joint'"),
        (_with(action_prefix=np.ones((2, 7))),
         r"^action_prefix has shape \(2, 7\); accepted: rows \[d, 8\] \(joint_0, "),
        (_with(action_prefix=np.ones(8)), r"^action_prefix has shape \(8,\); accepted: rows \[d, 8\]"),
        (_with(action_prefix=np.zeros((0, 8))), r"^action_prefix holds no rows \(shape \(0, 8\)\)"),
        (_with(action_prefix=np.full((1, 8), np.inf)), "^action_prefix holds inf at row 0, column 'joint_0'"),
        (_with(action_prefix=np.full((1, 8), 1e308)),
         "^action_prefix holds 1e\\+308 at row 0, column 'joint_0'; accepted: finite numbers within float32"),
        (_with(action_prefix="hold"), "^action_prefix='hold' must be a list or array of numbers"),
        (_with(mode="forward_dynamics", actions=np.ones((32, 8)), action_prefix=np.ones((1, 8))),
         "^action_prefix was given with mode='forward_dynamics'; accepted: mode='policy' alone"),
    ],
)
def test_refusals_name_the_key(message, match):
    with pytest.raises(RequestError, match=match):
        ObservationAdapter(DROID).parse(message)


def test_an_action_prefix_reaches_the_policy_as_physical_rows():
    """Read as the local Policy reads it (any numeric dtype, lists too); its row count judged by the served chunk size
    the adapter is given (a server gives it), else left to the policy."""
    prefix = np.arange(16, dtype=np.float32).reshape(2, 8)
    request = ObservationAdapter(DROID).parse({**droid_request(np.zeros(7)), "action_prefix": prefix})
    got = request.options["action_prefix"]
    assert got.dtype == np.float64 and got.shape == (2, 8)
    np.testing.assert_array_equal(got, prefix)
    listed = ObservationAdapter(DROID).parse({**droid_request(np.zeros(7)), "action_prefix": prefix.tolist()})
    np.testing.assert_array_equal(listed.options["action_prefix"], prefix)
    absent = ObservationAdapter(DROID).parse({**droid_request(np.zeros(7)), "action_prefix": None})
    assert "action_prefix" not in absent.options
    whole = {**droid_request(np.zeros(7)), "action_prefix": np.zeros((4, 8))}
    assert ObservationAdapter(DROID).parse(whole).options["action_prefix"].shape == (4, 8)
    with pytest.raises(RequestError, match=r"action_prefix has 4 rows; .* 1 <= d <= chunk_size - 1 = 3"):
        ObservationAdapter(DROID, chunk_size=4).parse(whole)


def test_bad_key_map_is_refused_at_construction():
    with pytest.raises(ValueError, match="key_map"):
        ObservationAdapter(DROID, {"observation/image": 3})


def test_key_map_of_a_key_the_embodiment_never_reads_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"key_map observation/exterior_image_3_left=cam: .* accepted: prompt, "
                                         r"observation/image, observation/wrist_image_left"):
        ObservationAdapter(DROID, {"observation/exterior_image_3_left": "cam"})
    ObservationAdapter(DROID, {"observation/joint_position": "q", "observation/image": "img", "prompt": "task"})


CLIENT_NAMES = {"prompt": "task", "observation/wrist_image_left": "wrist", "observation/joint_position": "q",
                "observation/gripper_position": "g"}


def _renamed(message: dict) -> dict:
    return {CLIENT_NAMES.get(k, k): v for k, v in message.items()}


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ({k: v for k, v in _renamed(droid_request(np.zeros(7))).items() if k != "task"}, "missing or empty key 'task'"),
        ({k: v for k, v in _renamed(droid_request(np.zeros(7))).items() if k != "wrist"},
         r"missing camera key\(s\) \['wrist'\] .* send all of \['wrist', 'observation/exterior_image_1_left'"),
        ({k: v for k, v in _renamed(droid_request(np.zeros(7))).items() if k != "q"}, "missing state key 'q'"),
        ({**_renamed(droid_request(np.zeros(7))), "wrist": "pixels"}, "^wrist must be a numeric image array"),
        ({**_renamed(droid_request(np.zeros(7))), "q": np.full(7, np.nan)}, "^q contains NaN"),
        ({**_renamed(droid_request(np.zeros(7))), "g": np.zeros((3, 2))}, r"^g has shape \(3, 2\)"),
    ],
)
def test_refusals_under_a_key_map_name_the_client_key(message, match):
    with pytest.raises(RequestError, match=match):
        ObservationAdapter(DROID, CLIENT_NAMES).parse(message)


def test_missing_camera_names_the_images_sent_under_keys_nothing_reads():
    """A typo'd camera key was refused as 'missing' alone, leaving the client to spot its own misspelling."""
    message = _without("observation/exterior_image_1_left")
    message["observation/exterior_image_1"] = np.zeros((4, 4, 3), np.uint8)
    message["session_id"] = "abc"  # not an image: not named
    unread = r"; images sent under keys it does not read: \['observation/exterior_image_1'\]$"
    with pytest.raises(RequestError, match=r"\['observation/exterior_image_1_left'\] .*" + unread):
        ObservationAdapter(DROID).parse(message)


def test_warmup_frames_fit_their_places_in_the_composite():
    """Square warm-up frames were stretched into DROID's 16:9 places, so a checkpoint without a record of its frames
    (a hub id) warned at every start about a stretch no client sent."""
    from worldpolicy.processing.observations import stretch_warning

    message = warmup_message(DROID)
    assert stretch_warning(DROID, {k: message[k].shape[:2] for k in DROID.camera_keys}) is None
    trained = {"observation/wrist_image_left": [90, 160]}  # the checkpoint's record wins
    assert warmup_message(DROID, camera_sizes=trained)["observation/wrist_image_left"].shape == (90, 160, 3)


def test_warmup_message_takes_the_client_names_of_a_key_map():
    message = warmup_message(DROID, key_map=CLIENT_NAMES)
    assert {"task", "wrist", "q", "g"} <= set(message) and not set(CLIENT_NAMES) & set(message)
    request = ObservationAdapter(DROID, CLIENT_NAMES).parse(message)
    assert request.prompt == "warm up" and set(request.observation) == {*DROID.camera_keys, *DROID.state_keys.values()}


def test_a_state_row_embodiment_without_state_keys_needs_state_on_the_wire():
    """Such a request reached the policy and failed there as 'KeyError: joints' (close 1011, not a bad request), and
    the server's warm-up request, which carried no state, failed the same way."""
    from worldpolicy.embodiments import embodiment_from_dict

    e = embodiment_from_dict({"name": "stateful_arm", "variant": "default", "domain": "stateful_arm", "domain_id": 21,
                              "action_dim": 3, "columns": ["a", "b", "g"], "chunk_size": 4, "fps": 10,
                              "state_history": 1})
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(RequestError, match=r"missing key 'state' \(3 values: a, b, g\) required by embodiment "
                                           r"'stateful_arm'"):
        ObservationAdapter(e).parse({IMAGE_KEY: image, "prompt": "go"})
    request = ObservationAdapter(e).parse({IMAGE_KEY: image, "prompt": "go", "state": np.zeros(3)})
    assert request.options["state"].shape == (3,)
    warm = ObservationAdapter(e).parse(warmup_message(e))
    np.testing.assert_array_equal(warm.options["state"], np.zeros(3))


def test_a_key_map_renames_the_state_of_an_embodiment_that_conditions_on_it():
    """A robot sending its whole state row as 'joints' could not be served: `--key-map state=joints` was refused as a
    key the embodiment never reads, though it needs 'state' on every request (no state keys named)."""
    e = embodiment_from_dict({"name": "stateful_arm", "variant": "default", "domain": "stateful_arm", "domain_id": 21,
                              "action_dim": 3, "columns": ["a", "b", "g"], "chunk_size": 4, "fps": 10,
                              "state_history": 1})
    adapter = ObservationAdapter(e, {"state": "joints", IMAGE_KEY: "front"})
    image = np.zeros((32, 32, 3), np.uint8)
    request = adapter.parse({"front": image, "prompt": "go", "joints": [0.1, 0.2, 0.3]})
    np.testing.assert_array_equal(request.options["state"], [0.1, 0.2, 0.3])
    assert "joints" in adapter.observation_keys and "state" not in adapter.observation_keys
    # unrenamed, `state` is a request option (OPTION_KEYS), read besides the announced keys, not among them
    assert "state" not in ObservationAdapter(e, {IMAGE_KEY: "front"}).observation_keys
    with pytest.raises(RequestError, match=r"^missing key 'joints' \(3 values: a, b, g\) required by embodiment"):
        adapter.parse({"front": image, "prompt": "go", "state": [0.1, 0.2, 0.3]})  # the canonical name is not read
    with pytest.raises(RequestError, match=r"^joints has shape \(2,\); accepted: last axis 3"):
        adapter.parse({"front": image, "prompt": "go", "joints": [0.1, 0.2]})
    assert "'state'" in adapter.unread_keys_warning({"front": image, "prompt": "go", "state": [0.0] * 3})
    assert adapter.parse(warmup_message(e, key_map=adapter.key_map)).options["state"].shape == (3,)
    with pytest.raises(ValueError, match=r"key_map state=q: 'state' is not a key embodiment 'bridge' reads"):
        ObservationAdapter(get_embodiment("bridge"), {"state": "q"})  # it takes no state: nothing to rename


def test_inverse_dynamics_reads_state_keys_under_the_client_names_and_names_them_when_refused():
    adapter = ObservationAdapter(DROID, CLIENT_NAMES)
    video = np.zeros((3, 16, 16, 3), np.uint8)
    joints = np.arange(21.0).reshape(3, 7)
    gripper = [0.2, 0.3, 0.4]
    request = adapter.parse({"mode": "inverse_dynamics", "video": video, "task": "push", "q": joints, "g": gripper})
    np.testing.assert_array_equal(request.options["state"], np.r_[joints[0], 0.2])  # the first frame's row
    with pytest.raises(RequestError, match=r"^q has shape \(3, 8\); embodiment 'droid/joint_pos' reads joints"):
        adapter.parse({"mode": "inverse_dynamics", "video": video, "task": "push", "q": np.zeros((3, 8)), "g": 0.2})
    with pytest.raises(RequestError, match=r"^missing state key 'g' \(gripper\)"):
        adapter.parse({"mode": "inverse_dynamics", "video": video, "task": "push", "q": joints})
    assert "state" not in adapter.parse({"mode": "inverse_dynamics", "video": video, "task": "push"}).options


def _panda_reach():
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment

    return checkpoint_embodiment(shipped_model(), None)


def test_robolabs_session_id_is_a_wire_key_not_an_unread_one():
    """RoboLab's client sends `session_id` with every request, as the Cosmos3 RoboLab server's wire has it: each
    RoboLab connection was warned that the key was not read and that "another robot's client needs a checkpoint
    trained for that robot", for the exact client the droid embodiment serves. It is a key of the wire the server
    speaks, read (and needing nothing), as the options are; a misspelt key beside it is still said."""
    message = {**droid_request(np.zeros(7)), "session_id": "robolab-episode-3"}
    assert ObservationAdapter(DROID).unread_keys_warning(message) is None
    text = ObservationAdapter(DROID).unread_keys_warning({**message, "sesion_id": "x"})
    assert text.startswith("request keys 'sesion_id' are not read")
    assert "session_id" not in text.split(" are not read")[1]  # not offered as an option either
    assert ObservationAdapter(DROID).parse(message).prompt == "pick up the cup"


def test_keys_nothing_reads_are_named_with_the_keys_the_embodiment_reads():
    """A DROID client served the shipped `panda_reach` model got chunks of 10 columns and no word that its joint state
    and second exterior camera were dropped."""
    panda = _panda_reach()
    message = {**droid_request(np.zeros(7)), "seed": 3}
    text = ObservationAdapter(panda).unread_keys_warning(message)
    assert text.startswith("request keys 'observation/exterior_image_2_left', 'observation/joint_position', "
                           "'observation/gripper_position' are not read by embodiment 'panda_reach' (10 action "
                           "columns: tx, ty, tz,")
    assert ("it reads 'prompt', the cameras 'observation/exterior_image_1_left', 'observation/wrist_image_left' (or a "
            "pre-composed 'observation/image'), and no state") in text
    assert "'seed'" not in text.split(" are not read")[0]  # an option is read whatever the embodiment
    assert ObservationAdapter(DROID).unread_keys_warning(message) is None  # every key read
    under = ObservationAdapter(DROID, CLIENT_NAMES).unread_keys_warning(warmup_message(DROID, key_map=CLIENT_NAMES))
    assert under is None  # the client's names are the ones read
    many = ObservationAdapter(DROID).unread_keys_warning({**message, **{f"k{i}": 1 for i in range(20)}})
    assert "'k15' and 4 more are not read" in many and "the state keys 'observation/joint_position'" in many


def test_a_state_or_actions_beyond_float32_once_normalized_are_refused_as_the_request_is_read():
    """A 1e38 gripper is within float32, and 1e44 once normalized by a column whose std is at its floor: the policy
    refused it (`physical_state_row`, `load_actions`) as a ValueError inside the batch the request had joined, which
    then ran again one request at a time. Refused here as a bad request naming the key and the column; an embodiment
    that does not condition on the state ignores it, and normalized actions are the model's own numbers."""
    import dataclasses

    meanstd = dataclasses.replace(DROID, normalization="meanstd", stats={"mean": [0.0] * 8, "std": [1.0] * 7 + [0.0]})
    adapter, base = ObservationAdapter(meanstd), droid_request(np.zeros(7))
    huge = np.array([0.0] * 7 + [1e38])
    normalized = r"in column 'gripper', as given or once normalized by embodiment 'droid/joint_pos'\'s stats; accepted"
    with pytest.raises(RequestError, match="^state contains NaN, inf or values beyond float32's range " + normalized):
        adapter.parse({**base, "state": huge})
    keys = r"^the state row read from 'observation/joint_position' and 'observation/gripper_position'"
    with pytest.raises(RequestError, match=keys + r" \(the latest row: the current state\) contains .* " + normalized):
        adapter.parse({**base, "observation/gripper_position": np.array([[0.0], [1e38]])})
    adapter.parse({**base, "observation/gripper_position": np.array([[1e38], [0.0]])})  # an earlier row: not read
    clip = {**base, "mode": "inverse_dynamics", "video": np.zeros((2, 4, 4, 3), np.uint8),
            "observation/gripper_position": np.array([1e38, 0.0])}
    with pytest.raises(RequestError, match=keys + r" \(the row at the clip's first frame\) contains .* " + normalized):
        adapter.parse(clip)
    actions = np.zeros((4, 8))
    actions[2, 7] = 1e38
    imagine = {**base, "mode": "forward_dynamics", "actions": actions}
    with pytest.raises(RequestError, match="^actions contains NaN, inf or values beyond float32's range " + normalized):
        adapter.parse(imagine)
    assert adapter.parse({**imagine, "actions_space": "normalized"}).actions[2, 7] == 1e38
    long = np.zeros((40, 8))  # more values than are read as Python floats: numpy's reductions bound them the same
    long[30, 7] = 1e38
    with pytest.raises(RequestError, match="^actions contains NaN, inf or values beyond float32's range " + normalized):
        adapter.parse({**imagine, "actions": long})
    # not normalized (the registry's DROID), or not read (an embodiment without state conditioning): as given
    assert ObservationAdapter(DROID).parse({**base, "state": huge}).options["state"][7] == 1e38
    bridge = dataclasses.replace(get_embodiment("bridge"), stats={"mean": [0.0] * 10, "std": [0.0] * 10},
                                 normalization="meanstd")
    image = {IMAGE_KEY: np.zeros((8, 8, 3), np.uint8), "prompt": "go", "state": np.full(10, 1e38)}
    assert ObservationAdapter(bridge).parse(image).options["state"][0] == 1e38
    assert all_float32(huge) and not all_float32(huge, meanstd) and all_float32(huge, DROID)
