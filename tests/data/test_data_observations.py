"""One rule for how a dataset's videos and state read as an embodiment's observation: training, `dataset label` and
`dataset frame` read the same cameras and the same default state features (`data.observations`)."""

from pathlib import Path
from types import SimpleNamespace

import pytest

from worldpolicy.data.observations import CameraMismatch, camera_sources, default_state_keys, named_state_keys
from worldpolicy.embodiments import get_embodiment

DROID = ["observation.image.exterior_image_1_left", "observation.image.exterior_image_2_left",
         "observation.image.wrist_image_left"]


def _features(**dtypes: str) -> SimpleNamespace:
    features = {k.replace("__", "."): {"dtype": d, "shape": [1]} for k, d in dtypes.items()}
    return SimpleNamespace(features=features, feature_keys=list(features))


def test_the_default_state_is_observation_state_else_its_numeric_parts_in_the_datasets_order():
    assert default_state_keys(_features(observation__state__b="float32", observation__state="float32")) == [
        "observation.state"]
    assert default_state_keys(_features(observation__state__b="float32", action="float32",
                                        observation__state__a="float64", observation__state__note="string")) == [
        "observation.state.b", "observation.state.a"]
    # a string `observation.state` is no state: its numeric parts are read instead
    assert default_state_keys(_features(observation__state="string", observation__state__a="float32")) == [
        "observation.state.a"]
    assert default_state_keys(_features(action="float32")) == []


def test_named_state_keys_are_numeric_features_refused_as_the_caller_says_else_the_default():
    ds = _features(observation__state__a="float32", note="string")
    ds.unknown_note = lambda keys, accepted: ""
    assert named_state_keys(ds, None) == ["observation.state.a"]  # none named: `default_state_keys`
    assert named_state_keys(ds, "observation.state.a") == ["observation.state.a"]  # one name, as a list
    for error in (ValueError, KeyError):  # `dataset label`'s, `dataset frame`'s
        with pytest.raises(error) as info:
            named_state_keys(ds, ["note"], error)
        assert info.value.args[0] == ("state_keys=['note']: note not among the dataset's numeric features: "
                                      "observation.state.a")
    with pytest.raises(ValueError, match=r"^state_keys=\[\]: none of the dataset's numeric features"):
        named_state_keys(ds, [])


def test_a_mismatch_carries_what_each_caller_words_and_names_the_settings_after_prefix():
    droid = get_embodiment("droid/joint_pos")
    twins = [*DROID, "observation.images.wrist_image_left"]
    with pytest.raises(CameraMismatch, match=r"^dataset's videos .*name the ones to train on in video_keys$") as info:
        camera_sources(twins, None, droid)
    assert isinstance(info.value, ValueError)
    assert info.value.twins == {"observation/wrist_image_left": ["observation.image.wrist_image_left",
                                                                 "observation.images.wrist_image_left"]}
    with pytest.raises(CameraMismatch, match=r"^x.dataset's videos \['observation.images.top'\]: embodiment") as info:
        camera_sources(["observation.images.top"], None, droid, "x.")
    assert info.value.twins == {} and info.value.named == "'observation.images.top' -> 'observation/top'"


def test_label_and_frame_read_the_cameras_training_reads():
    from worldpolicy.data.frame import _camera_flags
    from worldpolicy.data.label import label_cameras

    droid = get_embodiment("droid/joint_pos")
    videos = [*DROID, "observation.images.top"]
    files = {k: Path(f"{k}.png") for k in videos}
    assert label_cameras(videos, droid) == camera_sources(videos, None, droid)
    flags = _camera_flags(droid, files, "--image")
    assert dict(flags[i + 1].split("=") for i in range(0, len(flags), 2)) == {
        c: f"{k}.png" for c, k in camera_sources(videos, None, droid).items()}
    # a pre-composed view among other videos feeds a composite, in predict's command as in training
    composed = {"observation.image": Path("c.png"), "observation.images.top": Path("t.png")}
    assert _camera_flags(droid, composed, "--image") == ["--camera", "observation/image=c.png"]
    # two videos named as one camera: predict would be given one of them unsaid
    twins = {**files, "observation.images.wrist_image_left": Path("w.png")}
    with pytest.raises(ValueError, match=r"^cameras: \{'observation/wrist_image_left': .* feed the same camera"):
        _camera_flags(droid, twins, "--image")
    with pytest.raises(ValueError, match=r"^dataset: the videos .* feed the same camera"):
        label_cameras(list(twins), droid)
    # a dataset of one video (raw clips written as a dataset) for a composing embodiment: the way on is said
    with pytest.raises(ValueError, match=r"; if its one video 'observation.images.front' shows the composite, name it "
                                         r"observation.image: `worldpolicy dataset select DATASET --out NEW "
                                         r"--rename-feature observation.images.front=observation.image`$"):
        label_cameras(["observation.images.front"], droid)
    with pytest.raises(ValueError, match=r"with these cameras$"):  # several videos: no one of them is the composite
        label_cameras(["observation.images.front", "observation.images.top"], droid)
    # a lone file no camera is named as stays predict's --image
    assert _camera_flags(droid, {"observation.images.top": Path("t.png")}, "--image") == ["--image", "t.png"]
