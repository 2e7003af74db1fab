"""Processing rules: observation inputs, canvas bins, chunk sizes, prompts, actions in/out, the registry."""

import dataclasses
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
import torch

import worldpolicy
from worldpolicy.embodiments import (
    check_chunk_size,
    embodiment_from_dict,
    embodiment_from_spec,
    get_embodiment,
    list_embodiments,
    register_embodiment,
)
from worldpolicy.embodiments.normalization import denormalize, normalize
from worldpolicy.processing.actions import (
    fit_to_chunk,
    load_actions,
    out_of_range_columns,
    out_of_range_warning,
    to_model,
    to_physical,
)
from worldpolicy.processing.observations import canvas_bin, load_frames, prepare_canvas


@pytest.fixture(scope="module")
def rgb():
    return (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)


def test_every_observation_form_gives_the_same_frames(rgb, tmp_path):
    from PIL import Image

    from worldpolicy.processing.video import write_video

    ref = load_frames(rgb)
    assert ref.shape == (1, 48, 64, 3) and ref.dtype == np.float32 and 0 <= ref.min() and ref.max() <= 1
    Image.fromarray(rgb).save(tmp_path / "obs.png")
    forms = {
        "chw uint8": rgb.transpose(2, 0, 1),
        "float01": rgb / 255.0,
        "float-11": rgb / 127.5 - 1.0,
        "torch chw": torch.from_numpy(rgb).permute(2, 0, 1),
        "torch float": torch.from_numpy(rgb / 255.0),
        "PIL": Image.fromarray(rgb),
        "png path": tmp_path / "obs.png",
        "list of frames": [rgb],
        "nested lists (tolist, JSON)": rgb.tolist(),  # its rows were read as frames, its numbers refused as floats
        "list of nested-list frames": [(rgb / 255.0).tolist()],
        "rgba": np.concatenate([rgb, np.full((48, 64, 1), 255, np.uint8)], axis=-1),
    }
    for name, obs in forms.items():
        np.testing.assert_allclose(load_frames(obs), ref, atol=1e-6, err_msg=name)
    yy, xx = np.mgrid[0:48, 0:64]
    smooth = np.stack([xx * 4, yy * 5, np.full_like(xx, 128)], axis=-1).astype(np.uint8)
    write_video(tmp_path / "clip.mp4", np.repeat(smooth[None], 5, axis=0), 15)
    decoded = load_frames(tmp_path / "clip.mp4")
    assert decoded.shape == (5, 48, 64, 3) and np.abs(decoded - load_frames(smooth)).mean() < 0.02  # lossy codec


def test_image_files_of_every_kind_load_their_pixels(tmp_path):
    """16-bit and float images keep their values (PIL's RGB conversion made them all white or black); an animated GIF
    gives all its frames, a folder its images in name order, a corrupt file a clear error, a bool mask black/white."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (32, 1))
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(ramp, mode="F").save(tmp_path / "float.tif")
    for name in ("deep.png", "float.tif"):
        frames = load_frames(tmp_path / name)
        assert frames.shape == (1, 32, 64, 3)
        np.testing.assert_allclose(frames[0, :, :, 0], ramp, atol=1e-3, err_msg=name)
    gif = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(5)]
    gif[0].save(tmp_path / "clip.gif", save_all=True, append_images=gif[1:], duration=66)
    assert load_frames(tmp_path / "clip.gif").shape[0] == 5
    (tmp_path / "frames").mkdir()
    for i in (2, 10, 1):  # unpadded numbers, as ffmpeg's %d.png writes them
        Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(tmp_path / "frames" / f"frame_{i}.png")
    (tmp_path / "frames" / "._frame_3.png").write_bytes(b"macOS metadata")  # dot-files are not frames
    np.testing.assert_allclose(load_frames(tmp_path / "frames")[:, 0, 0, 0] * 255, [20, 40, 200], atol=0.01)
    pages = [Image.fromarray(np.full((64, 96, 3), 90, np.uint8)), Image.fromarray(np.zeros((16, 24, 3), np.uint8))]
    pages[0].save(tmp_path / "thumb.tif", save_all=True, append_images=pages[1:])  # a page plus its thumbnail
    assert load_frames(tmp_path / "thumb.tif").shape == (1, 64, 96, 3)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(ValueError, match="observation: cannot read image .*broken.png"):
        load_frames(tmp_path / "broken.png")
    np.testing.assert_array_equal(load_frames(np.eye(4, dtype=bool))[0, :, :, 0], np.eye(4))


def _lossless_clip(path, frames, fps=15):
    """An mp4 that decodes to exactly `frames` (libx264rgb), so which frames were read can be told apart."""
    from worldpolicy.processing.video import VideoFileWriter

    writer = VideoFileWriter(path, fps, *frames.shape[1:3], codec="libx264rgb")
    writer.append(frames)
    writer.close()
    return path


@pytest.fixture
def clip(tmp_path):
    frames = np.random.default_rng(3).integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)
    return _lossless_clip(tmp_path / "clip.mp4", frames), frames


def test_read_video_keeps_only_the_frames_asked_for(clip):
    from worldpolicy.processing.video import iter_video, read_video

    path, frames = clip
    for bounds, expected in [({}, frames), ({"last": 1}, frames[-1:]), ({"last": 5}, frames[-5:]),
                             ({"last": 100}, frames), ({"max_frames": 3}, frames[:3]), ({"max_frames": 100}, frames)]:
        decoded, fps = read_video(path, **bounds)
        np.testing.assert_array_equal(decoded, expected, err_msg=str(bounds))
        assert fps == pytest.approx(15)
    np.testing.assert_array_equal(np.stack(list(iter_video(path))), frames)
    np.testing.assert_array_equal(load_frames(path, last=2), frames[-2:] / np.float32(255.0))
    np.testing.assert_array_equal(load_frames(path, max_frames=2), frames[:2] / np.float32(255.0))


def test_a_folder_of_frames_is_bounded_like_a_clip(tmp_path):
    from PIL import Image

    (tmp_path / "frames").mkdir()
    for i in range(1, 6):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(tmp_path / "frames" / f"frame_{i}.png")
    np.testing.assert_allclose(load_frames(tmp_path / "frames", last=2)[:, 0, 0, 0] * 255, [160, 200], atol=0.01)
    np.testing.assert_allclose(load_frames(tmp_path / "frames", max_frames=2)[:, 0, 0, 0] * 255, [40, 80], atol=0.01)


@pytest.mark.parametrize(
    "bounds, match",
    [
        ({"last": 0}, "last=0 must be a positive integer"),
        ({"last": -2}, "last=-2 must be a positive integer"),
        ({"last": 1.5}, "last=1.5 must be a positive integer"),
        ({"last": True}, "last=True must be a positive integer"),
        ({"max_frames": 0}, "max_frames=0 must be a positive integer"),
        ({"max_frames": 2, "last": 1}, "max_frames=2 and last=1 were both given"),
    ],
)
def test_bad_frame_bounds_name_the_parameter(clip, bounds, match):
    from worldpolicy.processing.video import read_video

    with pytest.raises(ValueError, match=match):
        read_video(clip[0], **bounds)
    with pytest.raises(ValueError, match=match):
        load_frames(clip[0], **bounds)


def test_write_video_with_frames_and_path_swapped_says_so(tmp_path):
    """write_video(frames, path, fps) iterated the path's characters: "frames must be [H, W, 3], got ()"."""
    from worldpolicy.processing.video import write_video

    frames = np.zeros((2, 16, 16, 3), np.uint8)
    with pytest.raises(TypeError, match=r"write_video\(path, frames, fps\): path=ndarray, frames=str; the path comes "
                                        r"first"):
        write_video(frames, str(tmp_path / "a.mp4"), 15)
    assert not list(tmp_path.iterdir())
    assert write_video(tmp_path / "a.mp4", frames, 15).is_file()


@pytest.mark.parametrize("name", ["anim.gif", "anim.avi", "anim"])
def test_a_video_path_not_ending_in_mp4_is_refused_before_anything_is_drawn(tmp_path, monkeypatch, name):
    """`animate_actions(..., "anim.gif")` wrote an H.264 MP4 under the GIF's name, which image viewers and
    `read_video` (by its suffix) then could not open; nothing said so. The viz writers refuse it before their plot is
    drawn or their frames composed, not only once `write_video` gets them."""
    from worldpolicy.processing.video import VideoFileWriter, write_video
    from worldpolicy.viz import video
    from worldpolicy.viz.video import animate_actions, write_side_by_side

    drawn = []

    def frames():
        drawn.append(1)
        yield np.zeros((16, 16, 3), np.uint8)

    def drawing(*args, **kwargs):
        drawn.append(2)
        raise AssertionError("drawn before the path was checked")

    monkeypatch.setattr(video, "action_timeseries_figure", drawing)
    monkeypatch.setattr(video, "side_by_side_frames", drawing)

    refused = re.escape(f"path={str(tmp_path / name)!r}: the file written is an H.264 MP4; "
                        "accepted: a name ending in .mp4")
    with pytest.raises(ValueError, match=refused):
        write_video(tmp_path / name, frames(), 15)
    with pytest.raises(ValueError, match=refused):
        VideoFileWriter(tmp_path / name, 15, 16, 16)
    with pytest.raises(ValueError, match=refused):
        animate_actions(np.zeros((4, 1)), ["x"], ["m"], 15, tmp_path / name)
    with pytest.raises(ValueError, match=refused):
        write_side_by_side([np.zeros((2, 16, 16, 3), np.uint8)], ["sim"], 15, tmp_path / name)
    assert not drawn and not list(tmp_path.iterdir())
    assert write_video(tmp_path / "A.MP4", frames(), 15).is_file()


@pytest.mark.parametrize("fps", [float("nan"), float("inf"), -float("inf"), 0, -5, 1e-4, True, "15"])
def test_a_frame_rate_no_mp4_can_take_is_refused_naming_the_call(tmp_path, fps):
    """NaN and inf passed `fps <= 0` and failed in Fraction ("cannot convert NaN to integer ratio"), naming neither the
    call nor the parameter; a rate below 1/1001 rounded to 0 frames per second."""
    from worldpolicy.processing.video import VideoFileWriter, write_video

    accepted = "accepted: a finite number of frames per second, at least 1/1001"
    with pytest.raises(ValueError, match=rf"^write_video: fps={re.escape(repr(fps))}; {accepted}$"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 16, 16, 3), np.uint8), fps)
    with pytest.raises(ValueError, match=rf"^VideoFileWriter: fps={re.escape(repr(fps))}; {accepted}$"):
        VideoFileWriter(tmp_path / "b.mp4", fps, 16, 16)
    assert not list(tmp_path.iterdir())


def test_write_video_takes_a_numpy_frame_rate(tmp_path):
    """Fraction takes no numpy scalar: an fps read from a numpy array (np.float32(15)) failed with a TypeError."""
    from worldpolicy.processing.video import read_video, write_video

    _, fps = read_video(write_video(tmp_path / "a.mp4", np.zeros((2, 16, 16, 3), np.uint8), np.float32(15)))
    assert fps == 15


def test_write_video_scales_float_frames_and_refuses_other_ranges(tmp_path):
    """Float frames in [0, 1] were cast to uint8 (all 0): a black video without a word. They are scaled as imageio and
    PIL read them; floats outside [0, 1], NaN and integers outside [0, 255] are refused naming the range found."""
    from worldpolicy.processing.video import read_video, write_video

    grey = np.full((3, 16, 16, 3), 0.5, np.float32)
    decoded, _ = read_video(write_video(tmp_path / "grey.mp4", grey, 15))
    assert abs(float(decoded.mean()) - 128) < 3
    with pytest.raises(ValueError, match=r"write_video: frame 1: float pixels must lie in \[0, 1\], got \[255, 255\]"):
        write_video(tmp_path / "a.mp4", [grey[0], np.full((16, 16, 3), 255.0)], 15)
    with pytest.raises(ValueError, match=r"frame 0: float pixels contain NaN"):
        write_video(tmp_path / "a.mp4", np.full((2, 16, 16, 3), np.nan), 15)
    with pytest.raises(ValueError, match=r"frame 0: integer pixels must lie in \[0, 255\], got \[0, 256\]"):
        write_video(tmp_path / "a.mp4", np.arange(2 * 16 * 16 * 3).reshape(2, 16, 16, 3) % 257, 15)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.mp4"]


def test_write_video_gives_the_same_bytes_whatever_the_heap_held(tmp_path):
    """The same frames encoded to different mp4s (decoded pixels up to 25/255 apart) from one process to the next:
    with x264's macroblock-tree rate control on, its output depended on what the process had allocated before.
    Churning the heap between encodes stands in for two processes (it made 6 of 6 runs fail with mbtree on)."""
    from worldpolicy.processing.video import write_video

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:128, 0:160] / 16.0
    waves = [np.stack([np.sin(x * (1 + c) * 0.7 + t * 0.4 + 2 * np.cos(y * 0.9 + c + t * 0.2)) for c in range(3)], -1)
             for t in range(9)]  # a smooth moving scene with a little noise, as the model imagines: mbtree has work
    frames = np.stack([((w + 1) * 127.5 + rng.normal(0, 4, w.shape)).clip(0, 255).astype(np.uint8) for w in waves])
    first = write_video(tmp_path / "first.mp4", frames, 15).read_bytes()
    for i in range(8):
        junk = [rng.integers(0, 256, size=int(rng.integers(1_000, 300_000)), dtype=np.uint8).tobytes()
                for _ in range(100)]
        del junk
        assert write_video(tmp_path / f"again{i}.mp4", frames, 15).read_bytes() == first, f"encode {i + 1} differs"


def test_joined_videos_decode_to_their_parts_frames_and_parts_that_do_not_join_are_refused(tmp_path):
    """`join_videos` muxes its parts' packets as they are: the joined file decodes to exactly the parts' decoded
    frames, where encoding those again (what a dream's rollout.mp4 did) moves pixels. A part of another frame size
    or codec, or not its frames, is refused with why, and nothing is written."""
    from worldpolicy.processing.video import VideoFileWriter, join_videos, read_video, write_video

    rng = np.random.default_rng(3)
    frames = np.clip(rng.integers(0, 256, (1, 64, 96, 3)) + 6 * np.arange(11)[:, None, None, None], 0, 255)
    frames = frames.astype(np.uint8)
    parts = [(write_video(tmp_path / f"part{k}.mp4", frames[a:b], 15), b - a)
             for k, (a, b) in enumerate([(0, 4), (4, 7), (7, 11)])]
    assert join_videos(tmp_path / "joined.mp4", parts, 15) is None
    joined, fps = read_video(tmp_path / "joined.mp4")
    decoded = np.concatenate([read_video(path)[0] for path, _ in parts])
    assert fps == 15 and np.array_equal(joined, decoded)
    assert not np.array_equal(read_video(write_video(tmp_path / "again.mp4", decoded, 15))[0], decoded)

    smaller = write_video(tmp_path / "smaller.mp4", frames[:3, :32], 15)
    lossless = VideoFileWriter(tmp_path / "rgb.mp4", 15, 64, 96, codec="libx264rgb")
    lossless.append(frames[:3])
    lossless.close()
    for other, why in (((smaller, 3), "part 1 (smaller.mp4) is not of part 0's codec, frame size and settings"),
                       ((tmp_path / "rgb.mp4", 3),
                        "part 1 (rgb.mp4) is not of part 0's codec, frame size and settings"),
                       ((parts[1][0], 4), "part 1 (part1.mp4): its 3 packets are not its 4 frames")):
        assert join_videos(tmp_path / "refused.mp4", [parts[0], other], 15) == why
    assert not any(p.name.startswith((".refused", "refused")) for p in tmp_path.iterdir())


def test_unreadable_and_missing_videos_keep_their_messages(tmp_path):
    from worldpolicy.processing.video import iter_video, read_video

    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    for bounds in ({}, {"last": 1}, {"max_frames": 1}):
        with pytest.raises(ValueError, match=r"video file '.*broken.mp4' could not be decoded"):
            read_video(tmp_path / "broken.mp4", **bounds)
    with pytest.raises(ValueError, match="could not be decoded"):
        next(iter_video(tmp_path / "broken.mp4"))
    # what the file is, without PyAV's "[Errno 1094995529] ...: 'F'" (the message names the file once already)
    with pytest.raises(ValueError) as caught:
        read_video(tmp_path / "broken.mp4")
    assert str(caught.value) == (f"video file {str(tmp_path / 'broken.mp4')!r} could not be decoded: it is not a "
                                 "video, or a damaged one (FFmpeg found invalid data)")
    with pytest.raises(FileNotFoundError, match="video file '.*gone.mp4' does not exist"):
        read_video(tmp_path / "gone.mp4", last=1)


def test_camera_clips_give_their_last_frames_to_the_composite(tmp_path):
    """`last=1` per camera makes the same current composite frame as reading every camera's clip whole."""
    from worldpolicy.processing.observations import frames_from_mapping

    rng = np.random.default_rng(4)
    keys = ("wrist", "left", "right")
    obs = {key: _lossless_clip(tmp_path / f"{key}.mp4", rng.integers(0, 256, (n, 32, 48, 3), dtype=np.uint8))
           for key, n in zip(keys, (6, 9, 4))}
    for composite in ("droid_wrist_top", "stacked"):
        whole = frames_from_mapping(obs, keys, composite)
        np.testing.assert_array_equal(frames_from_mapping(obs, keys, composite, last=1), whole[-1:], err_msg=composite)


@pytest.mark.parametrize("composite, keys", [("droid_wrist_top", ("w", "e1", "e2")), ("stacked", ("a", "b", "c")),
                                             (None, ("a",))])
def test_composite_regions_are_where_each_camera_is_composed(composite, keys):
    """A picture of the model's composed frame labels its cameras by `composite_regions`: each region holds its own
    camera's pixels as `frames_from_mapping` composes them (a region of another camera would mislabel it)."""
    from worldpolicy.processing.observations import composite_regions, frames_from_mapping

    colours = {key: np.full((1, 180, 320, 3), (i + 1) * 60 / 255, np.float32) for i, key in enumerate(keys)}
    frame = frames_from_mapping(colours, keys, composite)[0]
    regions = composite_regions(colours.keys(), keys, composite)
    assert list(regions) == list(keys)
    height, width = frame.shape[:2]
    for key, (top, left, bottom, right) in regions.items():
        part = frame[round(top * height):round(bottom * height), round(left * width):round(right * width)]
        np.testing.assert_allclose(part, np.broadcast_to(colours[key][0, 0, 0], part.shape), atol=1e-6, err_msg=key)
    covered = sum((bottom - top) * (right - left) for top, left, bottom, right in regions.values())
    assert covered == pytest.approx(1.0)
    if composite is not None:  # a pre-composed image's parts are the sender's; keys that make no frame, none
        assert composite_regions(["observation/image"], keys, composite) is None
    assert composite_regions(["other"], keys, composite) is None


def test_one_image_for_a_multi_camera_composite_is_told_from_the_composite_by_its_shape():
    """What `predict --image` warns about: a single camera's view given where the model was trained on a composite."""
    from worldpolicy.processing.observations import compose_droid, composite_mismatch, stack_views

    droid = ("wrist", "left", "right")
    views = [np.zeros((1, 180, 320, 3), np.float32)] * 3
    assert composite_mismatch(*compose_droid(*views).shape[1:3], droid, "droid_wrist_top") is None
    assert composite_mismatch(270, 320, droid, "droid_wrist_top") is None  # the composite at half size
    assert composite_mismatch(180, 320, droid, "droid_wrist_top") == (
        "it is 180x320 pixels, not near the composite's 540x640 shape")
    # the model's own decoded composite (rollout.mp4, cut to whole latent cells) is one: fed back, it was warned about
    for shape in ((528, 640), (256, 320), (128, 160)):
        assert composite_mismatch(*shape, droid, "droid_wrist_top") is None, shape
    assert composite_mismatch(480, 640, droid, "droid_wrist_top") is not None  # a 4:3 camera
    assert composite_mismatch(*stack_views(views[:2]).shape[1:3], droid[:2], "stacked") is None
    assert composite_mismatch(*stack_views([v[:, :64, :64] for v in views[:2]]).shape[1:3], droid[:2], "stacked") is None
    assert composite_mismatch(180, 320, droid[:2], "stacked") == (
        "it is 180x320 pixels, not taller than wide as 2 stacked cameras are")
    assert composite_mismatch(64, 64, droid[:2], "stacked") is not None
    assert composite_mismatch(180, 320, droid, None) is None  # one camera used (droid/relative_pose: the wrist)
    assert composite_mismatch(180, 320, ("observation/image",), "stacked") is None


def test_frames_smaller_or_of_another_shape_than_trained_are_told_larger_ones_are_not():
    """The shipped model's trap: trained on 180x320 cameras, a 90x160 camera is padded onto the canvas (frames are
    only scaled down) and the model sees the scene at half size. A few pixels off, or larger frames of the same shape
    (scaled down as the trained ones were), are not worth a warning."""
    from worldpolicy.processing.observations import trained_size_warning

    cams = ("observation/exterior_image_1_left", "observation/wrist_image_left")
    trained = {"cameras": {c: [180, 320] for c in cams}, "composed": [360, 320]}
    for fine in ({cams[0]: (180, 320), cams[1]: (176, 320)}, {cams[0]: (360, 640), cams[1]: (720, 1280)},
                 {None: (360, 320)}, {None: (720, 640)}, {"observation/image": (352, 320)}):
        assert trained_size_warning(trained, fine, "ckpt") is None, fine
    message = trained_size_warning(trained, {cams[0]: (180, 320), cams[1]: (90, 160)}, "ckpt")
    assert message.startswith("checkpoint ckpt was trained on frames of 180x320 per camera "
                              "(observation/exterior_image_1_"
                              "left, observation/wrist_image_left), composed to 360x320, but camera "
                              "observation/wrist_image_left is 90x160 where it was 180x320: frames are only scaled "
                              "down and padded")
    assert "Give frames of the trained size" in message
    assert "camera observation/exterior_image_1_left is 240x320" in trained_size_warning(  # a 4:3 camera for 16:9
        trained, {cams[0]: (240, 320), cams[1]: (180, 320)}, "ckpt")
    assert "the observation is 180x160 where it was 360x320" in trained_size_warning(trained, {None: (180, 160)}, "c")
    assert "the observation is 180x160" in trained_size_warning(trained, {"observation/image": (180, 160)}, "c")
    assert trained_size_warning(trained, {"observation/left": (90, 160)}, "c") is None  # a camera it never had
    one = {"cameras": {"observation/image": [64, 96]}, "composed": [64, 96]}
    assert trained_size_warning(one, {"observation/image": (32, 48)}, "c").startswith(
        "checkpoint c was trained on frames of 64x96 per camera (observation/image), but camera observation/image is "
        "32x48")


def test_images_under_16_pixels_a_side_are_refused_before_resizing():
    with pytest.raises(ValueError, match="observation of 10x1000 pixels is too small"):
        prepare_canvas(np.zeros((1, 10, 1000, 3), np.float32), 256, 1)


def test_a_camera_under_16_pixels_a_side_is_refused_by_its_key_before_the_composite_resizes_it():
    """The composite resizes each camera to its place: a 2x2 wrist image ran, with only a stretch warning."""
    from worldpolicy.processing.observations import frames_from_mapping

    keys = ("observation/exterior_image_1_left", "observation/wrist_image_left")
    views = {keys[0]: np.zeros((180, 320, 3), np.uint8), keys[1]: np.zeros((2, 2, 3), np.uint8)}
    with pytest.raises(ValueError, match=re.escape(f"{keys[1]} is 2x2 pixels; the model needs at least 16 per side")):
        frames_from_mapping(views, keys, "stacked")
    assert frames_from_mapping({**views, keys[1]: np.zeros((16, 16, 3), np.uint8)}, keys, "stacked").shape[0] == 1


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((5, 5, 7)), r"channel axis of size 1, 3 or 4 in shape \(5, 5, 7\)$"),  # as given, not padded
        (np.full((8, 8, 3), 2.5), r"\[0, 1\] or \[-1, 1\]"),
        (np.full((8, 8, 3), 40000, np.uint16), r"uint16 pixels \(in \[40000, 40000\]\) .*x / 65535 for 16-bit"),
        # a dark deep frame (every pixel <= 255) was read as 8-bit, 16-257x too bright, while a bright one was refused
        (np.full((8, 8, 3), 200, np.uint16), r"uint16 pixels \(in \[200, 200\]\) are a 12- or 16-bit camera's"),
        (np.full((8, 8, 3), np.nan), "NaN"),
        (np.array(["a"]), "not numeric"),
        ("missing.png", "does not exist"),
        (42, "unsupported type"),
        ([], "empty list"),
        ([[[0, 0, 0]] * 20] * 19 + [[[0, 0, 0]] * 21], "nested lists of pixel values whose rows differ in length"),
        (np.zeros((0, 64, 80, 3), np.uint8), r"empty array of shape \(0, 64, 80, 3\)"),  # was numpy's "zero-size"
        (torch.zeros(3, 0, 80), r"empty array of shape \(3, 0, 80\)"),
        (np.zeros((8, 8, 3), np.complex64), "complex"),  # was cast, the imaginary parts dropped with a warning
    ],
)
def test_bad_observations_name_the_problem(bad, match):
    with pytest.raises((ValueError, TypeError, FileNotFoundError), match=match):
        load_frames(bad)


def test_float_pixels_a_resize_pushed_past_their_range_keep_that_range(rgb):
    """A bicubic resize of a [0, 1] image under- and overshoots at hard edges: one pixel at -1e-6 read the whole
    image as [-1, 1] (brightened, contrast halved), one at 1 + 1e-6 was refused."""
    ref = load_frames(rgb)
    step = torch.zeros(1, 3, 48, 64)
    step[..., 32:] = 1.0
    up = torch.nn.functional.interpolate(step, size=(96, 128), mode="bicubic", align_corners=False)[0]
    assert float(up.min()) < -0.05 and float(up.max()) > 1.05  # the overshoot this is about
    np.testing.assert_allclose(load_frames(up), load_frames(up.clamp(0, 1)), atol=1e-6)
    for edge in (-1e-6, 1 + 1e-6):
        frame = rgb / 255.0
        frame[0, 0, 0] = edge
        np.testing.assert_allclose(load_frames(frame)[0, 1:], ref[0, 1:], atol=1e-6)
    signed = rgb / 127.5 - 1.0
    signed[0, 0, 0] = -1.01
    np.testing.assert_allclose(load_frames(signed)[0, 1:], ref[0, 1:], atol=1e-6)  # [-1, 1] keeps its reading
    with pytest.raises(ValueError, match=r"float pixels must lie in \[0, 1\] or \[-1, 1\], got \[0, 1\.5\]"):
        load_frames(np.full((16, 16, 3), 1.5) * (np.arange(3) > 0))  # past any resize's overshoot: refused


def test_a_list_of_float_frames_is_read_in_one_range_as_the_clip_array_is():
    """Read frame by frame, a bright frame of a [-1, 1] clip (no pixel below -0.125) was taken for [0, 1]: it came out
    darker, with half the contrast, between correctly read neighbours."""
    clip = np.random.default_rng(1).random((3, 20, 24, 3)).astype(np.float32) * 2 - 1
    clip[1] = np.clip(clip[1], -0.1, 1.0)
    whole = load_frames(clip)
    for frames in (list(clip), [torch.from_numpy(f).permute(2, 0, 1) for f in clip]):
        np.testing.assert_allclose(load_frames(frames), whole, atol=1e-6)
        np.testing.assert_allclose(load_frames(frames, last=2), whole[1:], atol=1e-6)
        np.testing.assert_allclose(load_frames(frames, max_frames=2), whole[:2], atol=1e-6)


@pytest.mark.parametrize("values", [np.zeros((4, 10), complex), torch.zeros(4, 10, dtype=torch.complex64)])
def test_complex_actions_are_refused_not_cast(values):
    e = worldpolicy.get_embodiment("droid/relative_pose")
    with pytest.raises(ValueError, match=r"actions: values must be a rectangular numeric \[T, 10\] array, got .*complex"):
        load_actions(values, e, "normalized")


def test_canvas_rules_downscale_only_and_pad():
    frames = np.random.default_rng(0).random((1, 180, 960, 3)).astype(np.float32)
    canvas, info = prepare_canvas(frames, 480, 1)
    assert (info.canvas_h, info.canvas_w) == (480, 832)  # 16:9 bin
    assert canvas.shape == (1, 3, 1, 480, 832)
    assert info.content_w == 832 and info.content_h < 180 and info.latent_h == info.content_h // 16
    small = np.random.default_rng(0).random((1, 64, 64, 3)).astype(np.float32)
    canvas, info = prepare_canvas(small, 256, 17)
    assert canvas.shape == (1, 3, 17, 256, 256)  # padded, never upscaled; repeated to 17 frames
    assert (info.content_h, info.content_w, info.latent_h) == (64, 64, 4)
    with pytest.raises(ValueError, match="resolution_tier=300"):
        prepare_canvas(small, 300, 1)


@pytest.mark.parametrize("snap", [True, False])
def test_the_canvas_known_from_the_size_alone_is_the_one_frames_get(snap):
    """`canvas_bin` (what a check before any frame is read uses: `train.data.small_frames_warning`) says the canvas
    `prepare_canvas` picks, after diffusers' snap to multiples of 16 where it applies."""
    assert canvas_bin(181, 333, 256, snap)[0] == ((176, 320) if snap else (181, 333))
    for h, w in [(181, 333), (540, 640), (100, 37), (250, 260), (17, 400)]:
        info = prepare_canvas(np.zeros((1, h, w, 3), np.float32), 256, 1, snap)[1]
        assert canvas_bin(h, w, 256, snap)[1] == (info.canvas_h, info.canvas_w), (h, w)


@pytest.mark.parametrize("hw", [(224, 256), (256, 224), (360, 320), (180, 320), (540, 640)])
def test_an_ordinary_inputs_canvas_is_the_one_diffusers_picks(hw):
    """Frames given without a canvas keep the pipeline's aspect-ratio bin exactly, whatever their size: a real 224x256
    or 256x224 image too (the model's own frames are put back on their canvas by what records it, not by guessing
    from a size a camera can have)."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _ACTION_RESOLUTION_BINS
    from diffusers.video_processor import VideoProcessor

    info = prepare_canvas(np.zeros((1, *hw, 3), np.float32), 256, 1)[1]
    snapped = (hw[0] - hw[0] % 16, hw[1] - hw[1] % 16)
    assert (info.canvas_h, info.canvas_w) == VideoProcessor.classify_height_width_bin(
        *snapped, ratios=_ACTION_RESOLUTION_BINS["256"])


def test_a_canvas_asked_for_is_used_and_one_off_the_tier_is_refused_naming_the_bins():
    from worldpolicy.processing.observations import check_canvas

    info = prepare_canvas(np.zeros((1, 256, 224, 3), np.float32), 256, 1, canvas=(256, 256))[1]
    assert (info.canvas_h, info.canvas_w, info.content_h, info.content_w) == (256, 256, 256, 224)
    assert check_canvas([256, 256], 256) == (256, 256)
    assert check_canvas(np.array([256, 256]), 256) == (256, 256)
    for bad in [(250, 256), "256", (True, 256), None, (256.7, 256), (256, 256, 3), 256]:
        with pytest.raises(ValueError, match=r"canvas=.*accepted: None .* tier 256's canvas bins .*\(256, 256\)"):
            check_canvas(bad, 256)


def test_a_videos_comment_records_the_canvas_and_survives_a_join(tmp_path):
    """The model's own frames carry their canvas in the mp4 (its comment tag: a copy of the file keeps it), and a
    dream's rollout.mp4 joined from its chunks' files keeps it."""
    from worldpolicy.processing.observations import canvas_comment, recorded_canvas
    from worldpolicy.processing.video import join_videos, video_comment, write_video

    frames = np.zeros((3, 256, 224, 3), np.uint8)
    comment = canvas_comment({"canvas_hw": [256, 256]}, frames.shape[1:3])
    assert canvas_comment({}, frames.shape[1:3]) is None
    a, b = write_video(tmp_path / "a.mp4", frames, 15, comment), write_video(tmp_path / "b.mp4", frames, 15)
    assert video_comment(a) == comment and video_comment(b) is None
    shutil.copy(a, tmp_path / "copy.mp4")
    assert recorded_canvas(str(tmp_path / "copy.mp4"), (256, 224), 256) == (256, 256)
    assert recorded_canvas(b, (256, 224), 256) is None
    assert join_videos(tmp_path / "joined.mp4", [(a, 3), (b, 3)], 15) is None
    assert recorded_canvas(tmp_path / "joined.mp4", (256, 224), 256) == (256, 256)


def test_a_recorded_canvas_that_does_not_fit_is_said_and_left_out(tmp_path, caplog):
    from worldpolicy.processing.observations import canvas_comment, recorded_canvas
    from worldpolicy.processing.video import write_video

    resized = write_video(tmp_path / "r.mp4", np.zeros((2, 128, 112, 3), np.uint8), 15,
                          canvas_comment({"canvas_hw": [256, 256]}, (256, 224)))
    assert recorded_canvas(resized, (128, 112), 256) is None
    assert "records the canvas 256x256 its 256x224 frames were generated on, but its frames are 128x112" in caplog.text
    other = write_video(tmp_path / "o.mp4", np.zeros((2, 256, 224, 3), np.uint8), 15,
                        canvas_comment({"canvas_hw": [640, 640]}, (256, 224)))
    assert recorded_canvas(other, (256, 224), 256) is None
    assert "640x640 its frames were generated on, which is not a bin of this model's resolution tier 256" in caplog.text


@pytest.mark.parametrize("tag", ['{"worldpolicy": {"canvas_hw": ["a", "b"], "frame_hw": [1, 1]}}',
                                 '{"worldpolicy": {"canvas_hw": [256], "frame_hw": [1, 1]}}',
                                 '{"worldpolicy": {"canvas_hw": [256.0, 256.0], "frame_hw": [256, 224]}}',
                                 '{"worldpolicy": {"canvas_hw": [true, 256], "frame_hw": [256, 224]}}',
                                 '{"worldpolicy": 3}', '{"worldpolicy": ' + "[" * 1000,
                                 '{"worldpolicy": {"canvas_hw": [256, 256], "frame_hw": [256, 224]}}' + " " * 2000])
def test_a_malformed_canvas_record_is_ignored_with_a_warning_never_raised(tmp_path, caplog, tag):
    """The comment tag is any mp4's: a `worldpolicy` record that is not two pairs of whole numbers, nested past
    what JSON parses, or past the bound is said and left out (the pipeline's bin), never an exception."""
    from worldpolicy.processing.observations import recorded_canvas
    from worldpolicy.processing.video import write_video

    path = write_video(tmp_path / "m.mp4", np.zeros((2, 256, 224, 3), np.uint8), 15, tag)
    assert recorded_canvas(path, (256, 224), 256) is None
    assert "'worldpolicy' record is not the canvas its frames were generated on" in caplog.text


def test_another_comment_is_left_out_silently(tmp_path, caplog):
    from worldpolicy.processing.observations import recorded_canvas
    from worldpolicy.processing.video import write_video

    for k, tag in enumerate(["made with a phone", "[" * 5000, '{"title": "x"}']):
        path = write_video(tmp_path / f"c{k}.mp4", np.zeros((2, 256, 224, 3), np.uint8), 15, tag)
        assert recorded_canvas(path, (256, 224), 256) is None
    assert caplog.text == ""


@pytest.mark.parametrize("chunk", [0, 3, 10, 17, -4, 2.5])
def test_chunk_sizes_off_the_vae_grid_are_rejected(chunk):
    with pytest.raises(ValueError, match="multiple of 4"):
        check_chunk_size(chunk)


def test_good_chunk_sizes_pass():
    for chunk in (4, 16, 32, 256):
        check_chunk_size(chunk)


@pytest.mark.parametrize("chunk", [260, 10**9])
def test_a_chunk_size_past_the_maximum_is_refused_before_it_is_allocated(chunk):
    """A chunk size is data (a spec, a checkpoint's embodiment.json, a server's metadata): 10**9 loaded, then the
    first act asked terabytes for its chunk_size+1 frames. Refused with the maximum and why, and so is a spec that
    says it, naming the embodiment."""
    with pytest.raises(ValueError, match=rf"chunk_size={chunk} is not accepted: at most 256, .*model states no "
                                         "maximum"):
        check_chunk_size(chunk)
    spec = {**get_embodiment("droid/relative_pose").to_dict(), "name": "huge", "chunk_size": chunk}
    with pytest.raises(ValueError, match=rf"embodiment 'huge'.*chunk_size={chunk} is not accepted: at most 256"):
        embodiment_from_dict(spec)
    with pytest.raises(ValueError, match="multiple of 4 \\(e.g. 252 or 256"):  # never a suggestion past it
        check_chunk_size(10**9 + 1)


def test_a_checkpoint_whose_embodiment_json_says_a_chunk_past_the_maximum_is_refused_before_it_loads(
        tiny_checkpoint, tmp_path, monkeypatch):
    from diffusers import Cosmos3OmniPipeline

    folder = tmp_path / "huge-chunk"
    shutil.copytree(tiny_checkpoint, folder)
    spec = {**get_embodiment("droid/relative_pose").to_spec(), "chunk_size": 10**9}
    (folder / "embodiment.json").write_text(json.dumps(spec))
    monkeypatch.setattr(Cosmos3OmniPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loading started"))
    with pytest.raises(ValueError, match="chunk_size=1000000000 is not accepted: at most 256"):
        worldpolicy.Policy.check_pretrained(folder)


@pytest.mark.parametrize("kind", ["meanstd", "minmax", "quantile", "quantile_rot"])
def test_normalisation_round_trips(kind):
    rng = np.random.default_rng(1)
    stats = {"mean": rng.normal(size=3), "std": rng.random(3) + 0.1, "min": -rng.random(3) - 0.5,
             "max": rng.random(3) + 0.5, "q01": -rng.random(3) - 0.5, "q99": rng.random(3) + 0.5}
    x = rng.normal(size=(5, 3))
    np.testing.assert_allclose(denormalize(normalize(x, kind, stats), kind, stats), x, atol=1e-12)


def test_bridge_sanity_check_from_the_fact_sheet():
    bridge = worldpolicy.get_embodiment("bridge_orig_lerobot")
    a = np.array([0.047, -0.059, 0.582, 0.996, 0.036, -0.131, -0.032, 0.93, -0.574, 0.988])
    expected = [0.0023, -0.0015, 0.0132, 0.99995, 0.0044, -0.0106, -0.0037, 0.9992, -0.0418, 0.994]
    np.testing.assert_allclose(bridge.denormalize(a), expected, atol=1e-4)


def test_registry_lookup_and_unknown_names():
    assert worldpolicy.get_embodiment("FRANKA").name == "droid"
    assert worldpolicy.get_embodiment("droid/relative_pose").action_dim == 10
    with pytest.raises(KeyError, match="known: .*bridge.*droid"):
        worldpolicy.get_embodiment("ur5e")
    with pytest.raises(KeyError, match="variant='nope'"):
        worldpolicy.get_embodiment("droid", "nope")


def test_an_unknown_name_reads_the_shipped_models_specs_once(monkeypatch):
    """An unregistered name (also the usual case when a checkpoint of one's own robot loads: `_warn_partial_spec`
    looks its name up) lists the shipped models' own embodiments from their spec files: read once for the error,
    not once to test the name and again to list them; a registered name reads none."""
    from worldpolicy import embodiments

    reads = []
    real = embodiments._shipped_spec_files
    monkeypatch.setattr(embodiments, "_shipped_spec_files", lambda: reads.append(1) or real())
    worldpolicy.get_embodiment("droid")
    assert reads == []
    with pytest.raises(KeyError, match=r"known: .*droid.*panda_reach \(the shipped model's own"):
        worldpolicy.get_embodiment("ur5e")
    assert reads == [1]


def test_the_shipped_models_embodiment_named_as_a_registered_one_says_where_its_spec_is():
    """`worldpolicy embodiments` lists panda_reach, so a user names it (`ActionDecoder("panda_reach")`, `sim --policy
    random --embodiment panda_reach`): that said only "not registered", listing names without it. The error names its
    spec file, which the same parameter takes."""
    from worldpolicy.models import shipped_model

    spec = shipped_model() / "embodiment.json"
    with pytest.raises(KeyError, match="shipped model's own embodiment") as info:
        worldpolicy.get_embodiment("Panda_Reach")
    assert repr(str(spec)) in str(info.value)
    assert worldpolicy.get_embodiment(str(spec)).name == "panda_reach"


def test_every_registered_camera_layout_is_what_its_caption_says():
    """droid/relative_pose listed DROID's three cameras without a composite: the model saw the wrist camera alone
    while its caption said "concatenated views from multiple camera perspectives" (the conditioning mismatch
    robot-bridge.md s11 lists). Every built-in embodiment with several cameras composes them, and one whose framing
    is concat_view has several cameras to concatenate."""
    from worldpolicy.embodiments import COMPOSITES
    from worldpolicy.processing.observations import COMPOSITE_LAYOUTS, frames_from_mapping

    assert set(COMPOSITE_LAYOUTS) == set(COMPOSITES)  # each composite a spec may name is placed and described
    for key in [f"{name}/{variant}" if variant else name for name in list_embodiments()
                for variant in worldpolicy.get_embodiment(name).variants or [None]]:
        e = worldpolicy.get_embodiment(key)
        several = len(e.camera_keys) > 1
        assert several == (e.composite is not None), key
        assert (e.view_point == "concat_view") == several, key
    e = worldpolicy.get_embodiment("droid/relative_pose")
    wrist, ext1, ext2 = (np.full((36, 64, 3), v, np.uint8) for v in (10, 120, 240))
    frames = frames_from_mapping(dict(zip(e.camera_keys, (wrist, ext1, ext2))), e.camera_keys, e.composite)
    assert frames.shape == (1, 540, 640, 3)  # wrist on top, the two exteriors side by side below
    np.testing.assert_allclose(frames[0, [0, 400, 400], [0, 0, 639], 0], np.array([10, 120, 240]) / 255)


def test_a_rate_read_back_from_a_file_is_the_embodiments_but_for_float_noise():
    """Training, open-loop evaluation and labelling ask the one question (`runs_at`): training once used a tolerance a
    thousand times tighter, refusing a dataset the other two accepted."""
    from worldpolicy.embodiments import get_embodiment

    emb = get_embodiment("droid")
    assert emb.runs_at(emb.fps) and emb.runs_at(emb.fps * (1 + 1e-8)) and emb.runs_at(emb.fps * (1 - 1e-7))
    assert not emb.runs_at(emb.fps * (1 + 1e-4)) and not emb.runs_at(emb.fps * 2)


def test_unknown_variant_of_an_unregistered_embodiment_names_the_variant():
    """A checkpoint's own embodiment (`serve --checkpoint shipped --variant foo`) was reported as 'not registered'."""
    from worldpolicy.embodiments import embodiment_from_dict

    own = embodiment_from_dict({**worldpolicy.get_embodiment("pusht").to_dict(), "name": "my_arm"})
    assert worldpolicy.get_embodiment(own, own.variant) is own
    with pytest.raises(KeyError, match=rf"variant='foo' is not defined for embodiment 'my_arm'; known: {own.variant}\W$"):
        worldpolicy.get_embodiment(own, "foo")


@pytest.mark.parametrize(("args", "message"), [
    # the variant typed after the name: named there (every command's --embodiment), not as a `variant=` not given
    (("droid/joint_pso",), ("embodiment='droid/joint_pso' names variant 'joint_pso', which is not defined for "
                            "embodiment 'droid'; known: joint_pos, relative_pose (did you mean 'joint_pos'?)")),
    (("droid", "joint_pso"), ("variant='joint_pso' is not defined for embodiment 'droid'; known: joint_pos, "
                              "relative_pose (did you mean 'joint_pos'?)")),
    (("umi/wide",), "embodiment='umi/wide' names variant 'wide', but embodiment 'umi' has no variants"),
    (("Dorid",), "embodiment='Dorid' is not registered (did you mean 'droid'?); known: agibot,"),
    (("hexapod",), "embodiment='hexapod' is not registered; known: agibot,"),  # nothing alike: no guess
])
def test_an_unknown_embodiment_or_variant_is_named_as_given_with_its_likely_meaning(args, message):
    with pytest.raises(KeyError) as info:
        worldpolicy.get_embodiment(*args)
    assert str(info.value.args[0]).startswith(message), info.value.args[0]


@pytest.mark.parametrize(("key", "value"), [("name", "my_arm\nforged log line"), ("columns", None),
                                            ("aliases", ["arm\t2"])])
def test_a_name_with_a_control_character_is_refused(key, value):
    """A newline in an embodiment's name split the log line (and listing) it was written in."""
    from worldpolicy.embodiments import embodiment_from_dict

    spec = {**worldpolicy.get_embodiment("pusht").to_dict(), "name": "my_arm", "aliases": []}
    if key == "columns":
        value = [*spec["columns"][:-1], "y\n"]
    with pytest.raises(ValueError, match=rf"embodiment .*: {key} has .*, which holds a control character \(newline, "
                                         r"tab...\); accepted: printable text"):
        embodiment_from_dict({**spec, key: value})


def test_a_spec_made_from_to_dict_of_a_variant_is_refused_naming_variants_and_to_spec_registers():
    """`{**get_embodiment("droid/relative_pose").to_dict(), "name": ...}` (docs/robot.md's recipe, from another head)
    failed with `TypeError: list indices must be integers or slices, not str`: to_dict() lists the variants by name.
    The error names `variants` and `to_spec()`, whose spec registers."""
    for key in ("droid/relative_pose", "droid/joint_pos"):
        source = worldpolicy.get_embodiment(key)
        with pytest.raises(ValueError, match=r"embodiment 'mine': variants=\['joint_pos', 'relative_pose'\]; a "
                                             r"spec's variants map each variant's name .*Embodiment.to_spec\(\)"):
            embodiment_from_spec({**source.to_dict(), "name": "mine", "aliases": []})
        built = embodiment_from_spec({**source.to_spec(), "name": "mine", "aliases": []})
        assert (built.columns, built.units, built.stats) == (source.columns, source.units, source.stats)


def test_register_embodiment_from_file_with_lerobot_stats(tmp_path):
    stats = {"action": {"min": [-1, -2], "max": [1, 2], "mean": [0, 0], "std": [1, 1], "q01": [-0.5, -1], "q99": [0.5, 1]}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    spec = {"name": "my_pusher", "domain": "pusht", "action_dim": 2, "columns": ["x", "y"], "units": ["m", "m"],
            "chunk_size": 8, "fps": 10, "normalization": "quantile", "stats_file": "stats.json"}
    (tmp_path / "emb.json").write_text(json.dumps(spec))
    e = register_embodiment(tmp_path / "emb.json")
    assert e.domain_id == 4 and e.stats["q99"] == (0.5, 1.0)
    assert worldpolicy.get_embodiment("my_pusher").key == "my_pusher"
    np.testing.assert_allclose(e.denormalize(np.array([[1.0, -1.0]])), [[0.5, -1.0]])
    with pytest.raises(ValueError, match="built in"):
        register_embodiment(dict(spec, name="droid"))
    with pytest.raises(ValueError, match="missing required keys"):
        register_embodiment({"name": "x"})
    # a training config's spec file leaves the action-head slot to training: the error says where the trained one is
    untrained = {k: v for k, v in spec.items() if k != "domain"}
    with pytest.raises(ValueError, match=r"missing required keys \['domain'\]; domain is the action head .* "
                                         r"embodiment.json of a checkpoint it saved has them"):
        register_embodiment(untrained)
    for field, bad, wanted in (("chunk_size", "8", "an integer"), ("action_dim", 2.5, "an integer"),
                               ("fps", True, "a number"), ("execute_steps", [1], "an integer")):
        with pytest.raises(ValueError, match=rf"embodiment 'bad_{field}': {field}=.*; expected {wanted}"):
            register_embodiment(dict(spec, name=f"bad_{field}", normalization="none", stats_file=None, **{field: bad}))


def test_stats_beside_normalization_none_are_dropped_with_a_warning(tmp_path, caplog):
    """Stats given with normalization 'none' (inline, or a stats_file) were dropped or kept unused without a word.
    They are dropped with a warning naming them, once per spec: not refused, since checkpoints an earlier trainer
    saved carry the data's stats beside the 'none' their table asked for (tests/train: they still load)."""
    from worldpolicy.embodiments import embodiment_from_spec

    (tmp_path / "stats.json").write_text(json.dumps({"action": {"q01": [0.0, 0.0], "q99": [1.0, 2.0]}}))
    spec = {"name": "my_pusher3", "domain": "pusht", "action_dim": 2, "columns": ["x", "y"], "units": ["m", "m"],
            "chunk_size": 8, "fps": 10, "normalization": "none"}
    with caplog.at_level(logging.WARNING, logger="worldpolicy.embodiments"):
        for _ in range(2):  # a checkpoint's embodiment.json is read on every listing and load: said once
            inline = embodiment_from_spec({**spec, "stats": {"mean": [0.0] * 2, "std": [1.0] * 2}})
        from_file = embodiment_from_spec({**spec, "stats_file": str(tmp_path / "stats.json")})
    assert (inline.normalization, inline.stats) == (from_file.normalization, from_file.stats) == ("none", None)
    assert [r.getMessage() for r in caplog.records] == [
        ("embodiment 'my_pusher3': stats are given (mean, std) but normalization is 'none', so they are ignored: "
         "actions stay as given, in raw units. Set normalization to 'meanstd' to use them, or drop the stats"),
        (f"stats_file={str(tmp_path / 'stats.json')!r} gives stats but normalization is 'none', so they are ignored: "
         "actions stay as given, in raw units. Set normalization to the kind they are for (left out: 'quantile') to "
         "use them, or drop stats_file"),
    ]
    assert embodiment_from_spec({**spec, "normalization": "quantile", "stats_file": str(tmp_path / "stats.json")}
                                ).stats["q99"] == (1, 2)


@pytest.mark.parametrize("bad", [["a", 1.0], None, {"x": 1.0}, [True, 1.0]])
def test_a_stats_file_field_that_is_not_numbers_names_the_file_and_field(tmp_path, bad):
    """Was numpy's "could not convert string to float: 'a'" (no file, no field), or null read as NaN."""
    (tmp_path / "stats.json").write_text(json.dumps({"action": {"q01": bad, "q99": [1.0, 2.0]}}))
    spec = {"name": "my_pusher2", "domain": "pusht", "action_dim": 2, "columns": ["x", "y"], "chunk_size": 8,
            "fps": 10, "normalization": "quantile", "stats_file": str(tmp_path / "stats.json")}
    with pytest.raises(ValueError, match=r"stats\.json: q01=.*; accepted: a list of numbers, one per column"):
        worldpolicy.embodiments.embodiment_from_spec(spec)


@pytest.mark.parametrize("kind", ["quantile", "minmax", "meanstd"])
def test_a_stats_files_gripper_is_mirrored_for_an_embodiment_that_flips_it(tmp_path, kind):
    """A stats file describes the gripper as recorded (0 open .. 0.8 closed here); a `gripper_flip` embodiment
    normalises 1 - g, so the file's gripper bounds were applied to the reversed values: [-0.5, 1.5], not [-1, 1]."""
    stats = {"q01": [-1.0, 0.0], "q99": [1.0, 0.8], "min": [-1.0, 0.0], "max": [1.0, 0.8], "mean": [0.0, 0.2],
             "std": [1.0, 0.3]}
    (tmp_path / "stats.json").write_text(json.dumps({"action": stats}))
    spec = {"name": "flip_bot", "domain": "flip_bot", "domain_id": 30, "action_dim": 2, "columns": ["j0", "gripper"],
            "units": ["rad", "1"], "chunk_size": 8, "fps": 10, "gripper_column": "gripper", "gripper_flip": True,
            "normalization": kind, "stats_file": str(tmp_path / "stats.json")}
    e = worldpolicy.embodiments.embodiment_from_spec(spec)
    physical = np.array([[0.5, 0.0], [0.5, 0.8], [0.5, 0.2]])  # open, closed, the mean
    model = to_model(e, physical)
    np.testing.assert_allclose(to_physical(e, model), physical, atol=1e-12)
    if kind == "meanstd":
        np.testing.assert_allclose(model[2, 1], 0.0, atol=1e-12)  # the recorded mean is the model's mean
    else:
        np.testing.assert_allclose(model[:2, 1], [1.0, -1.0], atol=1e-12)  # 1 - g spans [-1, 1]
    unflipped = worldpolicy.embodiments.embodiment_from_spec({**spec, "name": "plain_bot", "gripper_flip": False})
    assert unflipped.stats == {k: tuple(v) for k, v in stats.items() if k in e.stats}  # as the file says


def test_an_embodiment_spec_with_an_unknown_key_is_refused():
    spec = {**worldpolicy.get_embodiment("bridge").to_dict(), "name": "typo_bot", "camera_key": ["cam"]}
    with pytest.raises(ValueError, match=r"embodiment 'typo_bot': unknown keys \['camera_key'\]; accepted: .*camera_keys"):
        embodiment_from_dict(spec)


def test_an_embodiment_travels_as_its_dict_without_registering():
    from worldpolicy.models import shipped_model

    shipped = register_embodiment(shipped_model() / "embodiment.json", overwrite=True)
    for e in [*(worldpolicy.get_embodiment(k) for k in list_embodiments()), shipped,
              worldpolicy.get_embodiment("droid/relative_pose")]:
        assert embodiment_from_dict(json.loads(json.dumps(e.to_dict()))) == e  # through JSON, as over the wire
    spec = dict(shipped.to_dict(), name="arm_from_a_server", execute_steps=2)
    arm = embodiment_from_dict(spec)
    assert arm.key == "arm_from_a_server" and arm.execute_steps == 2 and arm.stats == shipped.stats
    with pytest.raises(KeyError):
        worldpolicy.get_embodiment("arm_from_a_server")  # built, not registered
    with pytest.raises(ValueError, match="chunk_size='8'; expected an integer"):
        embodiment_from_dict(dict(spec, chunk_size="8"))
    with pytest.raises(ValueError, match="needs at least name, variant and domain"):
        embodiment_from_dict({"name": "x"})


def test_an_embodiments_resolved_spec_reads_back_as_it_and_names_every_field(tmp_path):
    """A checkpoint's embodiment.json (`to_spec`) holds every field, defaults included: a spec as the user gave it left
    view point, prompt format, canvas snapping, execute_steps... to whichever version read it. Read back through JSON,
    it is the same action space: the shipped model's, a spec with a stats file, a registry variant and a user spec of
    variants (which records its own variant as its only one)."""
    from worldpolicy.embodiments import Embodiment, embodiment_from_spec
    from worldpolicy.models import shipped_model

    (tmp_path / "stats.json").write_text(json.dumps({"action": {"q01": [-1, -2], "q99": [1, 2]}}))
    pusher = {"name": "my_pusher", "domain": "pusht", "action_dim": 2, "columns": ["x", "y"], "chunk_size": 8,
              "fps": 10, "stats_file": str(tmp_path / "stats.json")}
    arms = {"name": "two_arms", "domain": "two_arms", "domain_id": 30, "action_dim": 2, "columns": ["r", "g"],
            "chunk_size": 8, "fps": 10, "default_variant": "right",
            "variants": {"left": {"action_dim": 1, "columns": ["l"]}, "right": {"execute_steps": 4}}}
    fields = {f for f in Embodiment.__dataclass_fields__ if f not in ("variant", "variants")}
    for e in (embodiment_from_spec(shipped_model() / "embodiment.json"), embodiment_from_spec(pusher),
              worldpolicy.get_embodiment("droid/relative_pose"), embodiment_from_spec(arms)):
        spec = json.loads(json.dumps(e.to_spec()))
        assert fields <= set(spec) and "stats_file" not in spec, e.key
        back = embodiment_from_spec(spec)
        assert back == (e if e.variant == "default" else dataclasses.replace(e, variants=(e.variant,))), e.key
        assert back.to_spec() == spec
    assert embodiment_from_spec(pusher).to_spec()["stats"] == {"q01": [-1.0, -2.0], "q99": [1.0, 2.0]}
    assert embodiment_from_spec(arms).key == embodiment_from_spec(embodiment_from_spec(arms).to_spec()).key == \
        "two_arms/right"


def test_an_embodiment_files_format_version_is_read_and_a_newer_one_refused(tmp_path):
    """A checkpoint's embodiment.json says its format version (`schema`, as `worldpolicy train` writes it); a spec
    without one (by hand, or from before versions) is read as the first version, from a file or as a dict. A newer
    version, or a schema of another file, is refused naming the file and what is accepted, not read as this one (nor
    refused as an unknown key)."""
    from worldpolicy.embodiments import embodiment_from_spec, read_spec_file
    from worldpolicy.fileio import EMBODIMENT_SCHEMA, NewerFormatError

    spec = {"name": "my_pusher", "domain": "pusht", "action_dim": 2, "columns": ["x", "y"], "chunk_size": 8, "fps": 10}
    path = tmp_path / "embodiment.json"
    for doc in (spec, {"schema": EMBODIMENT_SCHEMA, **spec}):
        path.write_text(json.dumps(doc))
        assert read_spec_file(path, checkpoint=True) == spec
        assert embodiment_from_spec(path).key == embodiment_from_spec(doc).key == "my_pusher"
    path.write_text(json.dumps({"schema": "worldpolicy.embodiment/v2", **spec}))
    with pytest.raises(NewerFormatError, match=r"embodiment file '.*embodiment\.json': written by a newer worldpolicy "
                       r"\(schema 'worldpolicy\.embodiment/v2'.*upgrade worldpolicy"):
        embodiment_from_spec(path)
    for other in ("worldpolicy.actions/v1", "v1", 1):
        with pytest.raises(ValueError, match=rf"embodiment spec: schema={re.escape(repr(other))} is not a version of "
                           r"this file; accepted: 'worldpolicy\.embodiment/v1' or older"):
            embodiment_from_spec({"schema": other, **spec})


def test_actions_in_every_format(tmp_path):
    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(0).uniform(-1, 1, (6, 10)))
    model = to_model(e, physical)
    (tmp_path / "bare.json").write_text(json.dumps(physical.tolist()))
    (tmp_path / "obj.json").write_text(json.dumps({"columns": list(e.columns)[::-1], "actions": physical[:, ::-1].tolist()}))
    np.save(tmp_path / "a.npy", physical)
    v1 = {"schema": "worldpolicy.actions/v1", "columns": list(e.columns), "actions": physical.tolist(),
          "actions_normalized": model.tolist()}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    for src in ("bare.json", "obj.json", "a.npy", "v1.json"):
        np.testing.assert_allclose(load_actions(tmp_path / src, e), model, atol=1e-9, err_msg=src)
    # an actions.json is read from its physical actions: what a user edits, and what another embodiment can take
    edited = physical.copy()
    edited[:, 2] = 0.0
    (tmp_path / "edited.json").write_text(json.dumps({**v1, "actions": edited.tolist(), "embodiment": "other"}))
    np.testing.assert_allclose(load_actions(tmp_path / "edited.json", e), to_model(e, edited), atol=1e-9)
    np.testing.assert_allclose(load_actions(model, e, space="normalized"), model)
    np.testing.assert_allclose(to_physical(e, model), physical, atol=1e-12)


def test_actions_from_csv_and_npz_are_read_by_column_name(tmp_path):
    """A researcher's actions come as a spreadsheet or pandas CSV, or an .npz of arrays; both were refused
    ('unsupported suffix'). Columns are matched by name (the files' order is reversed here), units in a CSV header
    are checked, and a headerless CSV is rows in the embodiment's order."""
    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(1).uniform(-1, 1, (5, 10)))
    model = to_model(e, physical)
    cols, units = list(e.columns)[::-1], list(e.units)[::-1]
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in physical[:, ::-1])
    (tmp_path / "named.csv").write_text(",".join(cols) + "\n" + rows + "\n")
    (tmp_path / "units.csv").write_text("\ufeff" + ",".join(f"{c} [{u}]" for c, u in zip(cols, units)) + "\n" + rows)
    (tmp_path / "bare.csv").write_text("\n".join(",".join(repr(float(v)) for v in row) for row in physical))
    (tmp_path / "tabs.csv").write_text("\t".join(cols) + "\n" + rows.replace(",", "\t"))
    np.savez(tmp_path / "actions.npz", actions=physical[:, ::-1], columns=np.array(cols), units=np.array(units))
    np.savez(tmp_path / "per_column.npz", **{c: physical[:, i] for i, c in enumerate(e.columns)})
    for name in ("named.csv", "units.csv", "bare.csv", "tabs.csv", "actions.npz", "per_column.npz"):
        np.testing.assert_allclose(load_actions(tmp_path / name, e), model, atol=1e-9, err_msg=name)

    bad = {
        "mm.csv": (",".join(f"{c} [{'mm' if c == 'tx' else u}]" for c, u in zip(cols, units)) + "\n" + rows,
                   r"tx in 'mm' \(expected 'm'\)"),
        "some_units.csv": ("tx [m]," + ",".join(cols[:-1]) + "\n" + rows, "units for some columns, not for"),
        "timestamp.csv": ("timestamp," + ",".join(cols) + "\n" + "\n".join("0," + r for r in rows.split("\n")),
                          "not its columns: timestamp"),
        "blank.csv": (",".join(cols) + "\n" + rows.replace(",", ",,", 1), "row 0 has 11 values for 10 header"),
        "text.csv": (",".join(cols) + "\n" + rows + "\n" + ",".join(["x"] * 10), "row 5, column 'grasp': 'x' is not a"),
        "header_only.csv": (",".join(cols) + "\n", "no rows of actions under it"),
        "acts.txt": (rows, r"unsupported suffix '.txt'; accepted: .json, .npy, .npz, .csv"),
    }
    for name, (content, message) in bad.items():
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=message):
            load_actions(tmp_path / name, e)
    np.savez(tmp_path / "ragged.npz", tx=np.zeros(3), ty=np.zeros(4))
    np.savez(tmp_path / "objects.npz", actions=physical, columns=np.array(cols, dtype=object))
    np.savez(tmp_path / "extra.npz", actions=physical, timestamp=np.arange(5))
    for name, message in (("ragged.npz", "one 1-D array of T values per column"), ("objects.npz", "no pickle"),
                          ("extra.npz", r"unknown arrays \['timestamp'\]")):
        with pytest.raises(ValueError, match=message):
            load_actions(tmp_path / name, e)


def test_an_npy_or_npz_file_is_read_as_what_it_holds_and_a_broken_archive_is_named(tmp_path):
    """np.load reads either by its content: an .npy array saved as `x.npz` failed with "'numpy.ndarray' object does
    not support the context manager protocol", and a cut-short .npz with a bare BadZipFile."""
    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(2).uniform(-1, 1, (4, 10)))
    with open(tmp_path / "rows.npz", "wb") as f:
        np.save(f, physical)
    with open(tmp_path / "archive.npy", "wb") as f:
        np.savez(f, actions=physical[:, ::-1], columns=np.array(list(e.columns)[::-1]))
    for name in ("rows.npz", "archive.npy"):
        np.testing.assert_allclose(load_actions(tmp_path / name, e), to_model(e, physical), atol=1e-9, err_msg=name)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "archive.npy").read_bytes()[:60])
    with pytest.raises(ValueError, match=r"actions file '.*cut.npz' is not a numeric .npz array"):
        load_actions(tmp_path / "cut.npz", e)


def test_a_prediction_or_an_actions_object_in_memory_is_read_as_its_file(tmp_path):
    """policy -> forward dynamics: `imagine(obs, pred, ...)` (or `pred.to_json()`) failed as 'values must be a
    rectangular numeric [T, 10] array', not saying what was given, though written to a file it was read."""
    from worldpolicy.results import Prediction
    from worldpolicy.viz.run import write_run

    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(0).uniform(-1, 1, (6, 10)))
    pred = Prediction(mode="policy", embodiment=e.key, columns=list(e.columns), units=list(e.units), actions=physical,
                      actions_normalized=to_model(e, physical), fps=e.fps)
    write_run(pred, tmp_path / "run", plots=False)
    from_file = load_actions(tmp_path / "run" / "actions.json", e)
    for given in (pred, pred.to_json(), {"columns": list(e.columns)[::-1], "actions": physical[:, ::-1].tolist()}):
        np.testing.assert_array_equal(load_actions(given, e), from_file)
    np.testing.assert_allclose(load_actions({"actions": pred.actions_normalized, "normalized": True}, e), from_file,
                               atol=1e-12)
    with pytest.raises(ValueError, match=r"actions: an object needs an 'actions' field; found \['rows'\]"):
        load_actions({"rows": physical}, e)
    with pytest.raises(ValueError, match=r"values must be a rectangular numeric \[T, 10\] array, got set"):
        load_actions({1.0, 2.0}, e)


def test_a_prediction_saves_as_the_run_folder_predict_writes(tmp_path):
    """A Python call's result gets predict's files (actions.json read back with its columns, units and values, the
    imagined video, plots, the report page), and its folder is checked as --out is."""
    from worldpolicy.processing.video import read_video
    from worldpolicy.results import Prediction
    from worldpolicy.viz.plots import load_actions_file

    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(0).uniform(-1, 1, (4, 10)))
    video = np.random.default_rng(1).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    pred = Prediction(mode="forward_dynamics", embodiment=e.key, columns=list(e.columns), units=list(e.units),
                      actions=physical, actions_normalized=to_model(e, physical), fps=e.fps, video=video,
                      layout=e.layout, gripper_column=e.gripper_column)
    out = tmp_path / "run"
    written = pred.save(out)
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"actions.json", "settings.json", "rollout.mp4", "plots/actions.png", "plots/ee_path.png",
            "index.html"} <= names and all(p.is_file() for p in written)
    doc = load_actions_file(out / "actions.json")
    assert (doc["columns"], doc["units"], doc["mode"]) == (pred.columns, pred.units, "forward_dynamics")
    np.testing.assert_array_equal(doc["actions"], physical)
    np.testing.assert_array_equal(load_actions(out / "actions.json", e), load_actions(pred, e))
    assert read_video(out / "rollout.mp4")[0].shape == (5, 32, 48, 3) and "rollout.mp4" in (out / "index.html").read_text()
    assert {p.name for p in pred.save(tmp_path / "bare", plots=False)} == {"actions.json", "settings.json",
                                                                            "rollout.mp4"}
    sim_run = tmp_path / "sim"
    sim_run.mkdir()
    (sim_run / "report.json").write_text("{}")
    with pytest.raises(ValueError, match=r"^out: .*sim"):
        pred.save(sim_run)
    assert sorted(p.name for p in sim_run.iterdir()) == ["report.json"]


def test_a_prediction_saves_the_cameras_of_the_observation_it_was_given(tmp_path, caplog):
    """`save(observation=)` keeps what predict keeps of its --camera files: of the dict act() took, the cameras the
    embodiment reads (its state, prompt and other cameras left out), lossless, as observation/<camera>.png, which the
    page shows; a dict without one of them is refused naming it, before any file; one image is kept as the single
    view; of the dict of an embodiment found nowhere here (a RemotePolicy's, the server's own), its images [H, W, 3]
    are kept, the rest said in the log, and one without any is refused naming its keys, before any file."""
    from PIL import Image

    from worldpolicy.results import Prediction

    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.random.default_rng(0).uniform(-1, 1, (4, 10)))

    def prediction(embodiment: str) -> Prediction:
        return Prediction(mode="policy", embodiment=embodiment, columns=list(e.columns), units=list(e.units),
                          actions=physical, actions_normalized=to_model(e, physical), fps=e.fps)

    rng = np.random.default_rng(2)
    cameras = {key: rng.integers(0, 256, (18, 32, 3), dtype=np.uint8) for key in e.camera_keys}
    observation = {**cameras, "observation/joint_position": np.zeros(7), "observation/gripper_position": np.zeros(1),
                   "prompt": "pick", "observation/top_image": rng.integers(0, 256, (18, 32, 3), dtype=np.uint8)}
    out = tmp_path / "run"
    written = prediction(e.key).save(out, observation=observation)
    kept = {p.relative_to(out).as_posix() for p in written if p.parent.name == "observation"}
    assert kept == {f"observation/{key.rsplit('/', 1)[-1]}.png" for key in e.camera_keys}
    for key, pixels in cameras.items():
        np.testing.assert_array_equal(np.asarray(Image.open(out / "observation" / f"{key.rsplit('/', 1)[-1]}.png")),
                                      pixels)
    assert "observation/wrist_image_left.png" in (out / "index.html").read_text()
    prediction(e.key).save(out, plots=False)  # saved again without one: the earlier run's images go with it
    assert not (out / "observation").exists()

    without_wrist = {k: v for k, v in observation.items() if k != "observation/wrist_image_left"}
    with pytest.raises(KeyError, match=r"observation is missing camera keys \['observation/wrist_image_left'\]"):
        prediction(e.key).save(tmp_path / "missing", observation=without_wrist)
    assert not (tmp_path / "missing").exists()

    one = prediction(e.key).save(tmp_path / "one", plots=False, observation=cameras["observation/wrist_image_left"])
    assert [p.name for p in one if p.parent.name == "observation"] == ["image.png"]
    top = {"observation/top_image": cameras["observation/wrist_image_left"]}
    elsewhere = prediction("robot_of_another_machine").save(tmp_path / "remote", plots=False, observation=top)
    assert [p.name for p in elsewhere if p.parent.name == "observation"] == ["top_image.png"]
    remote = {**observation, "observation/side_image": np.full((18, 32, 3), 0.5, dtype=np.float32)}
    with caplog.at_level(logging.INFO, logger="worldpolicy.viz.run"):
        written = prediction("robot_of_another_machine").save(tmp_path / "remote_all", plots=False,
                                                              observation=remote)
    assert sorted(p.name for p in written if p.parent.name == "observation") == sorted(
        f"{key.rsplit('/', 1)[-1]}.png" for key in (*e.camera_keys, "side_image", "top_image"))
    assert np.asarray(Image.open(tmp_path / "remote_all" / "observation" / "side_image.png")).max() == 128
    assert ("embodiment 'robot_of_another_machine' is not known here: keeping its images [" in caplog.text
            and "leaving out ['observation/joint_position', 'observation/gripper_position', 'prompt']" in caplog.text)
    state = {k: v for k, v in observation.items() if k not in cameras and k != "observation/top_image"}
    with pytest.raises(ValueError, match=r"^observation: embodiment 'robot_of_another_machine' is not known here, "
                                         r"so its cameras are the dict's images, .* none of \['observation/joint_"
                                         r"position', .* is one; pass the camera images alone"):
        prediction("robot_of_another_machine").save(tmp_path / "remote_none", observation=state)
    assert not (tmp_path / "remote_none").exists()


def test_bad_actions_are_rejected_clearly(tmp_path):
    e = worldpolicy.get_embodiment("droid/relative_pose")
    with pytest.raises(ValueError, match="width 7 does not match"):
        load_actions(np.zeros((4, 7)), e)
    with pytest.raises(ValueError, match="NaN or inf at row 1, column 'ty'"):
        bad = np.zeros((3, 10)); bad[1, 1] = np.nan
        load_actions(bad, e)
    (tmp_path / "c.json").write_text(json.dumps({"columns": [f"c{i}" for i in range(10)], "actions": [[0] * 10]}))
    with pytest.raises(ValueError, match="do not match"):
        load_actions(tmp_path / "c.json", e)
    with pytest.raises(ValueError, match="space="):
        load_actions(np.zeros((2, 10)), e, space="meters")
    for empty in (np.zeros((0, 10)), [], [[]]):  # "expected shape [T, 10], got (0, 10)" did not say rows were missing
        with pytest.raises(ValueError, match=r"^actions: holds no action rows \(shape \(\d+, ?\d*\)\); accepted: at "
                                             r"least one row of 10 values \(tx, ty"):
            load_actions(empty, e)
    for schema in (1, None):  # a malformed tag is read like any object with actions
        (tmp_path / "s.json").write_text(json.dumps({"schema": schema, "actions": [[0.0] * 10]}))
        assert load_actions(tmp_path / "s.json", e).shape == (1, 10)


def test_actions_far_outside_the_training_range_are_warned(caplog):
    e = worldpolicy.get_embodiment("droid/relative_pose")
    physical = e.denormalize(np.zeros((4, 10)))
    load_actions(physical, e)
    assert "far outside" not in caplog.text
    physical[:, 0] *= 1000  # millimetres where metres are expected
    load_actions(physical, e)
    assert "tx (|x| up to" in caplog.text and "check the units" in caplog.text and "tx [m]" in caplog.text


def test_mean_std_stats_warn_by_standard_deviations_not_by_the_quantile_range(caplog):
    """With mean/std stats (LeRobot's default) model space counts standard deviations: a gripper closed in 5 % of the
    data is 4.4 std out when closed, and every such chunk was warned about as wrong units."""
    e = embodiment_from_dict({**worldpolicy.get_embodiment("pusht").to_dict(), "name": "lerobot_arm",
                              "columns": ["x", "grip"], "units": ["m", "1"], "gripper_column": "grip",
                              "normalization": "meanstd", "stats": {"mean": [0.0, 0.05], "std": [0.1, 0.218]}})
    load_actions(np.array([[0.2, 1.0], [-0.3, 0.0]]), e)  # 3 std and 4.4 std out: real data
    assert "far outside" not in caplog.text
    load_actions(np.array([[0.2, 255.0]]), e)  # a 0-255 gripper reading
    assert "grip (|x| up to 1.17e+03) far outside" in caplog.text and "in standard deviations" in caplog.text
    assert "x (|x|" not in caplog.text


def test_sampling_accepts_numpy_scalars():
    from worldpolicy.engine import SamplingConfig

    config = SamplingConfig(steps=np.int64(2), guidance=np.float32(2.0))
    assert config.steps == 2 and type(config.steps) is int and type(config.guidance) is float
    with pytest.raises(ValueError, match="steps=True"):
        SamplingConfig(steps=True)


@pytest.mark.parametrize("setting", [{"shift": "5"}, {"shift": True}, {"native_grid": "no"}, {"use_system_prompt": 1}])
def test_sampling_settings_of_the_wrong_type_name_themselves(setting):
    from worldpolicy.engine import SamplingConfig

    (name,) = setting
    with pytest.raises(ValueError, match=f"^{name}="):  # "no" used to switch the native grid on
        SamplingConfig(**setting)


def test_karras_replaces_a_presets_shift_but_refuses_a_given_one():
    from worldpolicy.engine import SamplingConfig

    config = SamplingConfig.from_preset("droid_native", schedule="karras")  # the preset's linear-flow shift 5
    assert (config.schedule, config.shift, config.steps) == ("karras", None, 4)
    assert SamplingConfig.from_preset("droid_native").updated(schedule="karras").shift is None
    with pytest.raises(ValueError, match="shift has no effect"):
        SamplingConfig.from_preset("droid_native", schedule="karras", shift=3.0)


def test_schedule_and_preset_names_are_read_in_any_case_as_dtype_names_are():
    """`schedule="Karras"` and `preset="DROID_native"` were refused though `dtype="BF16"` and `device="CPU"` are read;
    a schedule asked for in another case still drops a preset's linear-flow shift, as "karras" does."""
    from worldpolicy.engine import SamplingConfig

    config = SamplingConfig.from_preset(" DROID_Native ", schedule="Karras")
    assert (config.schedule, config.shift, config.native_grid, config.steps) == ("karras", None, None, 4)
    assert SamplingConfig(schedule="LINEAR").schedule == "linear"  # as settings and the policy's cache key read it
    with pytest.raises(ValueError, match=re.escape("schedule='cosine'; accepted: checkpoint, linear, karras (in any "
                                                   "case)")):
        SamplingConfig(schedule="cosine")
    with pytest.raises(ValueError, match=re.escape("preset='fast' is not known; accepted: droid_native, small_no_cfg "
                                                   "(in any case)")):
        SamplingConfig.from_preset("fast")


def test_karras_never_runs_on_the_native_grid():
    """diffusers reads a grid passed to Karras only for its ends, reversed: the droid preset's native grid under
    `schedule="karras"` (e.g. `predict --schedule karras` for droid) made the noise levels rise 0.20 → 0.50 from pure
    noise. A preset's grid is dropped, a given one refused, a checkpoint's flag left out (a no-op wherever diffusers'
    Karras schedule is sane: sigma_min/max set)."""
    import copy

    from diffusers import UniPCMultistepScheduler

    from worldpolicy.engine import SamplingConfig
    from worldpolicy.engine.schedules import make_scheduler
    from worldpolicy.testing import build_components

    *_, linear = build_components()
    from_preset = SamplingConfig.from_preset("droid_native", schedule="karras")
    assert from_preset.native_grid is None
    for native_flag in (False, True):
        sigmas = make_scheduler(linear, from_preset, use_native_flow_schedule=native_flag).sigmas
        assert sigmas[0] > 0.99 and bool((sigmas[1:] < sigmas[:-1]).all()), sigmas
    with pytest.raises(ValueError, match="native_grid=True does not apply to schedule='karras'"):
        SamplingConfig(schedule="karras", native_grid=True)

    bounded = UniPCMultistepScheduler.from_config(linear.config, use_karras_sigmas=True, sigma_min=0.147,
                                                  sigma_max=200.0)  # the reference's Karras (cosmos3-model.md §11)
    with pytest.raises(ValueError, match="checkpoint's Karras schedule.*schedule='linear'"):
        make_scheduler(bounded, SamplingConfig(native_grid=True), use_native_flow_schedule=False)
    with pytest.raises(ValueError, match="shift=5.0 has no effect on the checkpoint's Karras schedule"):  # was silent
        make_scheduler(bounded, SamplingConfig(shift=5.0), use_native_flow_schedule=False)
    assert make_scheduler(bounded, SamplingConfig(schedule="linear", shift=5.0), False).sigmas[1] < 0.95  # 0.9376
    pipeline = copy.deepcopy(bounded)  # what Cosmos3OmniPipeline does with use_native_flow_schedule=True
    pipeline.set_timesteps(4, sigmas=np.linspace(1 - 1 / 1000, 0, 5)[:-1])
    ours = make_scheduler(bounded, SamplingConfig(steps=4), use_native_flow_schedule=True)
    assert torch.equal(ours.sigmas, pipeline.sigmas) and torch.equal(ours.timesteps, pipeline.timesteps)


def test_a_shift_on_a_karras_checkpoint_is_refused_before_weights_load(tmp_path, monkeypatch):
    from worldpolicy.engine import loading
    from worldpolicy.policy import Policy
    from worldpolicy.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "ckpt")
    config_file = checkpoint / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "use_karras_sigmas": True}))
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(ValueError, match="shift=5.0 has no effect on the checkpoint's Karras schedule"):
        Policy.check_pretrained(checkpoint, "droid/relative_pose", shift=5.0)
    with pytest.raises(ValueError, match="native_grid=True does not apply to the checkpoint's Karras schedule"):
        worldpolicy.load_policy(checkpoint, "droid/relative_pose", native_grid=True)
    Policy.check_pretrained(checkpoint, "droid/relative_pose", schedule="linear", shift=5.0)  # linear flow uses it


def test_load_checks_read_the_checkpoints_action_head_first(tmp_path, monkeypatch):
    """A head narrower than the embodiment fails in check_pretrained (from transformer/config.json), before weights."""
    from worldpolicy.engine import loading
    from worldpolicy.policy import Policy
    from worldpolicy.testing import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "ckpt", action_dim=8)
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(ValueError, match="10 action columns but the action head of checkpoint .* holds 8"):
        Policy.check_pretrained(checkpoint, "droid/relative_pose")
    with pytest.raises(ValueError, match="10 action columns but the action head"):
        worldpolicy.load_policy(checkpoint, "droid/relative_pose")
    assert Policy.check_pretrained(checkpoint, "droid")[0].action_dim == 8


@pytest.mark.parametrize("device, match", [("meta", "cannot run a model"), ("mps", "mps is not available"),
                                           ("cuda:0", "CUDA|cuda is not available")])
def test_devices_this_machine_cannot_use_fail_before_loading(device, match):
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"
        match = "CUDA device"
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=f"device='{device}'.*({match})"):
        worldpolicy.load_policy("shipped", device=device)  # a checkpoint that exists: its place is checked first


def test_a_cuda_index_past_the_machines_devices_names_the_ones_it_has(monkeypatch):
    from worldpolicy.engine.loading import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:2': this machine has 2 CUDA device\(s\); "
                                         r"accepted: 'cuda', 'cuda:0', 'cuda:1'"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")


def test_fit_to_chunk_trims_or_repeats():
    pusht = get_embodiment("pusht")
    a = np.arange(6, dtype=float).reshape(3, 2)
    assert fit_to_chunk(a, 2, pusht).tolist() == [[0, 1], [2, 3]]
    assert fit_to_chunk(a, 5, pusht)[-1].tolist() == [4, 5] and len(fit_to_chunk(a, 5, pusht)) == 5


@pytest.mark.parametrize("key, said", [
    ("droid/relative_pose", (r"per-step end-effector deltas \(relative_pose\): the last motion goes on for 3 more steps "
     r"rather than stopping\. To stop instead, give all 8 rows, or append zero-motion rows in physical units: tx\.\.r5 "
     r"= \[0, 0, 0, 1, 0, 0, 0, 1, 0\] .*rot6d's identity \[1, 0, 0, 0, 1, 0\]: all-zero r0\.\.r5 are no rotation.*, "
     r"grasp as in the last row$")),
    ("umi", (r"the last motion goes on for 3 more steps rather than stopping\. To stop instead, give all 8 rows \(zero "
     r"motion has no known value in this embodiment's model-space units\)$")),
    ("droid/joint_pos", r"joint targets \(joint_position\): the arm holds the last one for 3 more steps$"),
    ("pusht", r"keep their last values for 3 more steps: if they are deltas or velocities, the last motion goes on"),
])
def test_padding_short_actions_says_what_the_repeated_row_means_for_the_layout(caplog, key, said):
    """Short forward-dynamics actions repeat their last row (as the diffusers pipeline does), which for per-step
    deltas keeps the last motion going; the warning said only that the row was repeated."""
    from worldpolicy.processing.actions import ROT6D_IDENTITY
    from worldpolicy.robot.se3 import matrix_to_rot6d

    e = get_embodiment(key)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.processing.actions"):
        padded = fit_to_chunk(np.ones((5, e.action_dim)), 8, e)
    assert padded.shape == (8, e.action_dim) and np.all(padded == 1)  # the padding itself is the pipeline's
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("actions: 5 rows given, repeating the last row to reach chunk_size=8"), message
    assert re.search(said, message), message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="worldpolicy.processing.actions"):
        fit_to_chunk(np.ones((9, e.action_dim)), 8, e, "actions file 'a.json'")
    assert caplog.messages == [("actions file 'a.json': 9 rows given, using the first 8 (chunk_size); "
                               "imagine(..., whole_trajectory=True) (predict --whole-trajectory) rolls out every row, "
                               "chunk after chunk")]
    np.testing.assert_array_equal(matrix_to_rot6d(np.eye(3)).ravel(), ROT6D_IDENTITY)  # what the message suggests


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, worldpolicy; worldpolicy.get_embodiment('droid'); print(sorted(m for m in ('torch', 'diffusers', 'mujoco', 'gymnasium') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_registry_tables_agree_with_diffusers():
    """The registry copies diffusers' domain ids, widths and view sentences so `import worldpolicy` stays light."""
    from diffusers.pipelines.cosmos import pipeline_cosmos3_omni as p

    from worldpolicy.embodiments import domain_table, view_point_sentences

    table = domain_table(include_user=False)  # other tests register their own embodiments in this process
    assert {name: d["id"] for name, d in table.items()} == p._EMBODIMENT_TO_DOMAIN_ID
    assert {name: d["width"] for name, d in table.items() if d["width"]} == p._EMBODIMENT_TO_RAW_ACTION_DIM
    assert view_point_sentences() == p._ACTION_VIEWPOINT_TEMPLATES


def test_cuda_graphs_without_cuda_fails_before_loading(monkeypatch):
    from worldpolicy.engine import loading

    def loaded(*args, **kwargs):
        raise AssertionError("weights were loaded before the cuda_graphs check")

    monkeypatch.setattr(loading, "load_components", loaded)
    with pytest.raises(ValueError, match="cuda_graphs=True needs a CUDA device"):
        worldpolicy.load_policy("shipped", device="cpu", cuda_graphs=True)


def test_an_observation_with_history_conditions_on_its_latest_frame(tiny_policy):
    """The state row takes the last state of a history; the image must come from the same (latest) step."""
    from worldpolicy.policy import PolicyRequest

    history = np.stack([np.zeros((64, 64, 3), np.uint8), np.full((64, 64, 3), 255, np.uint8)])  # [t-1 black, t white]
    engine_request, _ = tiny_policy._prepare(PolicyRequest(history, "Reach the target"))
    assert float(engine_request.canvas.min()) > 0.99  # all white, in [-1, 1]


def test_each_mode_decodes_only_the_frames_it_uses(tiny_policy, clip, monkeypatch):
    """Policy and forward dynamics condition on a clip's last frame and hold no other; inverse dynamics reads the first
    chunk_size+1 (and one more, to warn about a longer clip)."""
    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing import observations

    path, frames = clip
    decoded = []
    read_video = observations.read_video

    def counted(*args, **kwargs):
        clip_frames, fps = read_video(*args, **kwargs)
        decoded.append(len(clip_frames))
        return clip_frames, fps

    monkeypatch.setattr(observations, "read_video", counted)

    def canvas(observation, mode="policy"):
        actions = np.zeros((16, 10)) if mode == "forward_dynamics" else None
        return tiny_policy._prepare(PolicyRequest(observation, "Reach the target", mode=mode, actions=actions))[0].canvas

    for mode in ("policy", "forward_dynamics"):
        torch.testing.assert_close(canvas(path, mode), canvas(frames[-1], mode), rtol=0, atol=0)
        assert decoded[-1] == 1
        torch.testing.assert_close(canvas({"observation/image": path}, mode), canvas(frames[-1], mode), rtol=0, atol=0)
        assert decoded[-1] == 1
    torch.testing.assert_close(canvas(path, "inverse_dynamics"), canvas(frames[:17], "inverse_dynamics"), rtol=0,
                               atol=0)
    assert decoded[-1] == 18


def test_animated_images_and_frame_lists_are_read_only_as_far_as_they_are_used(tmp_path, monkeypatch):
    """A per-camera dict of clips (and a single clip) given as an animated GIF or a list of frame files was read and
    converted whole, where a video file is read only as far as it is used: of a 30-frame GIF, inverse dynamics
    converted all 30 frames of each camera to float."""
    from PIL import Image

    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing import observations
    from worldpolicy.processing.observations import image_pages

    grey = (np.arange(64)[None, None, :, None] * 3 + np.arange(30)[:, None, None, None] * 5) % 256  # GIF-exact
    frames = np.broadcast_to(grey, (30, 48, 64, 3)).astype(np.uint8)
    pages = [Image.fromarray(f) for f in frames]
    pages[0].save(tmp_path / "clip.gif", save_all=True, append_images=pages[1:], duration=66, loop=0)
    with Image.open(tmp_path / "clip.gif") as im:
        assert [page.tell() for page in image_pages(im, max_frames=3)] == [0, 1, 2]
        assert [page.tell() for page in image_pages(im, last=2)] == [28, 29]
        assert [page.tell() for page in image_pages(im)] == list(range(30))
    pages[0].save(tmp_path / "thumb.tif", save_all=True, append_images=[pages[1].resize((8, 8)), pages[2]])
    with Image.open(tmp_path / "thumb.tif") as im:  # pages of other sizes are not a clip: the first page alone
        assert [page.tell() for page in image_pages(im, last=1)] == [0]

    policy = worldpolicy.load_policy("shipped")  # two cameras stacked, chunk 4: 5 frames used, 6 read
    for i in range(6):  # the frames inverse dynamics reads; the rest do not exist
        pages[i].save(tmp_path / f"frame_{i}.png")
    files = [tmp_path / f"frame_{i}.png" for i in range(30)]
    assert load_frames(files, max_frames=6).shape[0] == 6
    assert load_frames(files[::-1], last=1).shape[0] == 1
    with pytest.raises(FileNotFoundError, match="frame_6.png"):
        load_frames(files)
    converted = []
    to_frames = observations._pil_to_frames
    monkeypatch.setattr(observations, "_pil_to_frames", lambda im, param: converted.append(1) or to_frames(im, param))
    cameras = policy.embodiment.camera_keys
    want = policy._prepare(PolicyRequest(dict.fromkeys(cameras, frames[:6]), "reach", mode="inverse_dynamics"))[0]
    for clip in (tmp_path / "clip.gif", files):
        converted.clear()
        got = policy._prepare(PolicyRequest(dict.fromkeys(cameras, clip), "reach", mode="inverse_dynamics"))[0]
        assert len(converted) == 6 * len(cameras)
        torch.testing.assert_close(got.canvas, want.canvas, rtol=0, atol=0)
    converted.clear()
    policy._prepare(PolicyRequest(tmp_path / "clip.gif", "reach"))
    assert len(converted) == 1  # the current (last) frame alone


def test_a_short_inverse_dynamics_clip_says_which_action_rows_its_frames_explain(tiny_policy, caplog):
    """A clip shorter than chunk_size+1 frames has its last frame repeated (a warning said so), but the result did not
    say which rows came from real frames: action i takes frame i to frame i+1, so rows past the clip's last frame
    explain copies of it. `settings["real_rows"]` says how many lead rows to trust."""
    from worldpolicy.policy import PolicyRequest

    clip = np.random.default_rng(5).integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)  # chunk_size 16: 17 used

    def settings(frames, mode="inverse_dynamics"):
        return tiny_policy._prepare(PolicyRequest(frames, "Reach the target", mode=mode))[1]["settings"]

    assert [settings(clip[:n])["real_rows"] for n in (2, 5, 17, 18, 30)] == [1, 4, 16, 16, 16]
    assert "video has 5 frames; using 17 (chunk_size+1), repeating the last: only the first 4 action rows" in caplog.text
    assert "real_rows" not in settings(clip[0], "policy")


def test_only_the_cameras_composed_have_their_frame_rate_judged(tiny_policy, tmp_path, caplog):
    """A dict's clip at another frame rate was warned about even when the embodiment does not use it (an extra
    camera, or a pre-composed 'observation/image' beside all of the embodiment's cameras)."""
    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing.video import write_video

    frames = np.zeros((18, 64, 64, 3), np.uint8)
    write_video(tmp_path / "used.mp4", frames, tiny_policy.embodiment.fps)
    write_video(tmp_path / "other.mp4", frames, 2 * tiny_policy.embodiment.fps)
    cameras = dict.fromkeys(tiny_policy.embodiment.camera_keys, tmp_path / "used.mp4")
    for extra in ("observation/image", "observation/extra_image"):
        tiny_policy._prepare(PolicyRequest({**cameras, extra: tmp_path / "other.mp4"}, "Reach the target",
                                           mode="inverse_dynamics"))
    assert "fps but embodiment actions are at" not in caplog.text
    used = {**cameras, tiny_policy.embodiment.camera_keys[0]: tmp_path / "other.mp4"}
    tiny_policy._prepare(PolicyRequest(used, "Reach the target", mode="inverse_dynamics"))
    assert f"video {tmp_path / 'other.mp4'} is 30 fps but embodiment actions are at 15 fps" in caplog.text


def test_off_rate_clips_are_warned(tiny_policy, tmp_path, caplog):
    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing.video import write_video

    write_video(tmp_path / "clip.mp4", np.zeros((17, 64, 64, 3), np.uint8), 30)
    tiny_policy._prepare(PolicyRequest(tmp_path / "clip.mp4", "Reach the target", mode="inverse_dynamics"))
    assert "is 30 fps but embodiment actions are at 15 fps" in caplog.text


def test_a_variable_frame_rate_clip_is_said_to_vary_with_how_to_re_time_it(tmp_path):
    """A variable-frame-rate clip (a phone's) was said to be at its header's average rate ("20.2 fps"), or nothing
    where that average was near the embodiment's, as if its frames were evenly spaced; its header tells it apart."""
    from fractions import Fraction

    import av

    from worldpolicy.processing.clip import frame_rate_warning
    from worldpolicy.processing.video import varying_rate, write_video

    def clip(path, pts_ms):
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.time_base = Fraction(1, 1000)
            for i, pts in enumerate(pts_ms):
                frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 8 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = pts, Fraction(1, 1000)
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        return path

    # frames 33 ms apart with every third gap 100 ms: ~18 fps on average, timestamps at 30
    varying = clip(tmp_path / "phone.mp4", np.cumsum([0] + [100 if i % 3 == 0 else 33 for i in range(29)]).tolist())
    even = clip(tmp_path / "even.mp4", [round(i * 1000 / 15) for i in range(30)])  # ms-rounded, still even
    assert varying_rate(varying) == 30 and varying_rate(even) is None
    for fps in (15, 18):  # off the embodiment's rate or near it, it is said to vary, with how to even it out
        said = frame_rate_warning(str(varying), fps)
        assert said is not None and said.startswith(f"video {varying} has a variable frame rate (on average 18"), said
        assert said.endswith(f"ffmpeg -i {varying} -fps_mode cfr -r {fps} OUT.mp4"), said
    assert frame_rate_warning(str(even), 15) is None
    write_video(tmp_path / "fast.mp4", np.zeros((30, 48, 64, 3), np.uint8), 30)
    assert "is 30 fps but embodiment actions are at 15 fps" in frame_rate_warning(str(tmp_path / "fast.mp4"), 15)
    # read at the embodiment's rate (--resample), another rate is evened out, not a varying one: that alone is said,
    # before the weights load (`input_warnings`) and by the run (`read_clip`)
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.policy import input_warnings
    from worldpolicy.processing.clip import read_clip

    e = get_embodiment("bridge")
    for clip_path, told in ((varying, True), (tmp_path / "fast.mp4", False)):
        before = input_warnings("shipped", e, "inverse_dynamics", (48, 64), [str(clip_path)], resample=True)
        run = read_clip(str(clip_path), e, 3, whole_clip=True, resample=True).warnings
        assert [w.split(" fps")[0] for w in before + run] == [
            f"video {clip_path} has a variable frame rate (on average 18.1"] * (2 if told else 0), (before, run)


def test_a_home_relative_checkpoint_is_the_folder(tiny_checkpoint, monkeypatch):
    from worldpolicy.policy import Policy

    monkeypatch.setenv("HOME", str(tiny_checkpoint.parent))
    assert Policy.check_pretrained(f"~/{tiny_checkpoint.name}", "droid/relative_pose")[0].action_dim == 10


def test_the_shipped_model_loads_by_name_in_python_as_on_the_command_line():
    """README: a checkpoint argument may be `shipped`; `load_policy("shipped")` said it was neither folder nor hub id."""
    import worldpolicy
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import Policy

    assert Policy.check_pretrained("shipped")[0].name == "panda_reach"
    assert worldpolicy.load_policy("shipped", device="cpu").source == str(shipped_model())


def test_pickled_weights_are_refused_not_loaded(tiny_checkpoint, tmp_path, monkeypatch):
    """A checkpoint with `.bin` weights (pickles) is refused with the fix; torch.load is never called."""
    import shutil

    import torch
    from safetensors.torch import load_file

    import worldpolicy

    checkpoint = tmp_path / "pickled"
    shutil.copytree(tiny_checkpoint, checkpoint)
    for part in ("transformer", "vae"):
        weights = checkpoint / part / "diffusion_pytorch_model.safetensors"
        torch.save(load_file(str(weights)), checkpoint / part / "diffusion_pytorch_model.bin")
        weights.unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(ValueError, match=r"\.bin weights: pickles, which worldpolicy never loads"):
        worldpolicy.load_policy(checkpoint, embodiment="droid/relative_pose")


def _cut_short(folder):
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])


def _lfs_pointer(folder):
    (folder / "transformer" / "diffusion_pytorch_model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 2200000\n")


def _shard_missing(folder):
    from diffusers import Cosmos3OmniTransformer

    transformer = Cosmos3OmniTransformer.from_pretrained(folder, subfolder="transformer")
    shutil.rmtree(folder / "transformer")
    transformer.save_pretrained(folder / "transformer", max_shard_size="500KB")
    next((folder / "transformer").glob("*-00002-of-*.safetensors")).unlink()


@pytest.mark.parametrize("damage, problem", [
    (lambda f: shutil.rmtree(f / "transformer"), "transformer/ is missing"),
    (lambda f: shutil.rmtree(f / "text_tokenizer"), "text_tokenizer/ is missing"),
    (lambda f: (f / "transformer" / "config.json").unlink(), "transformer/config.json is missing"),
    (lambda f: (f / "scheduler" / "scheduler_config.json").unlink(), "scheduler/ is empty"),
    (lambda f: (f / "vae" / "diffusion_pytorch_model.safetensors").rename(
        f / "vae" / "diffusion_pytorch_model.safetensors.incomplete"),
     "vae/diffusion_pytorch_model.safetensors is missing"),
    (lambda f: (f / "vae" / "diffusion_pytorch_model.safetensors").rename(
        f / "vae" / "diffusion_pytorch_model.bf16.safetensors"),
     (r"vae/diffusion_pytorch_model.safetensors is missing \(.*it holds diffusion_pytorch_model.bf16.safetensors, "
      "which diffusers loads only as a variant")),
    (_cut_short, r"vae/diffusion_pytorch_model.safetensors is \d+ bytes where its header describes \d+: cut short"),
    (_lfs_pointer, "transformer/diffusion_pytorch_model.safetensors is a Git LFS pointer.*git lfs pull"),
    (_shard_missing, r"transformer/diffusion_pytorch_model-00002-of-\d+.safetensors is missing"),
], ids=["no-transformer", "no-tokenizer", "no-transformer-config", "no-scheduler-config", "download-unfinished",
        "variant-only", "cut-short", "lfs-pointer", "shard-missing"])
def test_a_partial_checkpoint_is_refused_naming_the_part_before_anything_loads(tiny_checkpoint, tmp_path, monkeypatch,
                                                                               damage, problem):
    """A partial download or copy failed inside diffusers (e.g. "no file named config.json found in directory <the
    checkpoint>" for a missing transformer/), naming neither the parameter nor the fix, and only after the parts before
    it had loaded. Loading now names the checkpoint and each broken part before any part loads."""
    from diffusers import Cosmos3OmniPipeline

    folder = tmp_path / "partial"
    shutil.copytree(tiny_checkpoint, folder)
    damage(folder)
    monkeypatch.setattr(Cosmos3OmniPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loading started"))
    # check_pretrained (a server before its port opens, `predict` before it reads its inputs) judged only where the
    # checkpoint was, and passed each of these folders: the load after it was the first to refuse
    for check in (lambda: worldpolicy.Policy.check_pretrained(folder, "droid/relative_pose"),
                  lambda: worldpolicy.load_policy(folder, "droid/relative_pose")):
        with pytest.raises(ValueError, match=rf"checkpoint='{re.escape(str(folder))}' is incomplete: {problem}.*fetch"):
            check()


@pytest.mark.parametrize("part, key, value, said", [
    ("transformer", "vocab_size", 10**10, (r"transformer/config.json says vocab_size=10000000000 giving "
                                           r"embed_tokens.weight the shape \[10000000000, 64\], but its weights hold "
                                           r"\[\d+, 64\]")),
    ("transformer", "num_hidden_layers", 10**6,
     r"transformer/config.json says num_hidden_layers=1000000 but its weights hold 2 \(layers.0 to layers.1\)"),
    ("transformer", "num_hidden_layers", 1,
     r"transformer/config.json says num_hidden_layers=1 but its weights hold 2 \(layers.0 to layers.1\)"),
    ("transformer", "hidden_size", 10**9, (r"transformer/config.json says hidden_size=1000000000 giving .* the "
                                           r"shape \[1000000000\], but its weights hold \[64\]")),
    ("vae", "num_res_blocks", 10**6,
     r"vae/config.json describes a model of over \d+ weights where its weights files hold \d+: a block count"),
    ("vae", "z_dim", 1000, r"vae/config.json says z_dim=1000 giving .* but its weights hold"),
    ("transformer", "intermediate_size", 1e10,
     r"transformer/config.json is not a config diffusers' Cosmos3OmniTransformer builds \(TypeError"),
], ids=["vocab", "layers", "fewer-layers", "hidden", "vae-blocks", "vae-z", "float-size"])
def test_a_config_the_weights_disagree_with_is_refused_before_anything_is_built(tiny_checkpoint, tmp_path,
                                                                                monkeypatch, part, key, value, said):
    """A checkpoint's configs are data, and diffusers built the model they describe before comparing its weights
    with it: `vocab_size=10**10` tried to allocate terabytes, `num_hidden_layers=10**6` grew past a gigabyte for over a
    minute. Each size is compared with the weights' safetensors headers first, naming the file, the key, its value
    and what the weights hold."""
    import json

    from diffusers import Cosmos3OmniPipeline

    folder = tmp_path / "absurd"
    shutil.copytree(tiny_checkpoint, folder)
    config = json.loads((folder / part / "config.json").read_text())
    (folder / part / "config.json").write_text(json.dumps({**config, key: value}))
    monkeypatch.setattr(Cosmos3OmniPipeline, "from_pretrained", lambda *a, **k: pytest.fail("loading started"))
    for check in (lambda: worldpolicy.Policy.check_pretrained(folder, "droid/relative_pose"),
                  lambda: worldpolicy.load_policy(folder, "droid/relative_pose")):
        with pytest.raises(ValueError, match=rf"checkpoint='{re.escape(str(folder))}': {said}"):
            check()


def test_a_weights_header_without_sizes_is_refused_naming_the_file(tiny_checkpoint, tmp_path):
    import json

    from worldpolicy.engine import loading

    folder = tmp_path / "no-sizes"
    shutil.copytree(tiny_checkpoint, folder)
    weights = folder / "vae" / loading.WEIGHTS_FILE
    raw = weights.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    del header[next(key for key in header if key != "__metadata__")]["shape"]
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])  # whole, as sizes go
    with pytest.raises(ValueError, match=r"vae/diffusion_pytorch_model.safetensors has a header safetensors does not "
                                         r"read \(a weight without a list of sizes, KeyError"):
        loading.check_checkpoint_files(folder, str(folder))


def test_the_config_check_passes_the_released_geometry(tmp_path):
    """Cosmos3-Nano's transformer (36 layers) and Wan2.2 VAE, as configs and weights headers (built on the meta
    device: no memory), pass the check that refuses a config its weights disagree with, in well under a second."""
    import json

    import torch

    from worldpolicy.engine import loading
    from worldpolicy.testing import NANO, _random_modules

    with torch.device("meta"):
        modules = dict(zip(("transformer", "vae"), _random_modules(NANO, 1024)))
    for part, model in modules.items():
        model.save_config(tmp_path / part)
        shapes = {name: {"dtype": "BF16", "shape": list(value.shape), "data_offsets": [0, 0]}
                  for name, value in model.state_dict().items()}
        headers = {loading.WEIGHTS_FILE: shapes}  # as `_weights_problems` reads them from the files
        loading._refuse_config_sizes(tmp_path / part, part, type(model).__name__, "nano", headers)
        config = json.loads((tmp_path / part / "config.json").read_text())
        key = {"transformer": "num_hidden_layers", "vae": "base_dim"}[part]
        (tmp_path / part / "config.json").write_text(json.dumps({**config, key: config[key] + 1}))
        with pytest.raises(ValueError, match=f"checkpoint='nano': {part}/config.json says {key}="):
            loading._refuse_config_sizes(tmp_path / part, part, type(model).__name__, "nano", headers)


def test_a_checkpoint_is_located_once_and_its_weights_headers_read_once(tiny_checkpoint, monkeypatch):
    """`Policy.check_pretrained` checked where the checkpoint is twice (an adapter's bases three times), and read
    every weights file's safetensors header twice: once to tell the file whole, once for the config's sizes."""
    from worldpolicy.engine import loading, sources

    located, opened = [], []
    check = sources.check_checkpoint_source

    def counted_check(path_or_id, *args, **kwargs):
        located.append(str(path_or_id))
        return check(path_or_id, *args, **kwargs)

    def counted_open(file, *args, **kwargs):
        if str(file).endswith(".safetensors"):
            opened.append(os.path.relpath(file, tiny_checkpoint))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(sources, "check_checkpoint_source", counted_check)
    monkeypatch.setattr(loading, "check_checkpoint_source", counted_check)
    monkeypatch.setattr(loading, "open", counted_open, raising=False)
    worldpolicy.Policy.check_pretrained(tiny_checkpoint, "droid/relative_pose")
    assert len(located) == 1, located
    assert "transformer/diffusion_pytorch_model.safetensors" in opened and len(opened) == len(set(opened)), opened


def test_a_whole_sharded_checkpoint_passes_the_checks_and_loads(tiny_checkpoint, tmp_path):
    from diffusers import Cosmos3OmniTransformer

    folder = tmp_path / "sharded"
    shutil.copytree(tiny_checkpoint, folder)
    shutil.rmtree(folder / "transformer")
    Cosmos3OmniTransformer.from_pretrained(tiny_checkpoint, subfolder="transformer").save_pretrained(
        folder / "transformer", max_shard_size="500KB")
    assert len(list((folder / "transformer").glob("*-of-*.safetensors"))) > 1
    policy = worldpolicy.load_policy(folder, "droid/relative_pose", chunk_size=8, resolution_tier=256)
    whole = worldpolicy.load_policy(tiny_checkpoint, "droid/relative_pose", chunk_size=8, resolution_tier=256)
    sharded, unsharded = policy.engine.transformer.state_dict(), whole.engine.transformer.state_dict()
    assert sharded.keys() == unsharded.keys()
    assert all(torch.equal(sharded[k], unsharded[k]) for k in sharded)  # every weight, bit for bit
    # the same weights at other memory addresses (safetensors maps each file) may take other vectorised kernel paths:
    # actions agree to float rounding, not bit for bit
    image = np.zeros((64, 64, 3), np.uint8)
    np.testing.assert_allclose(policy.act(image, "push", seed=1, steps=1).actions,
                               whole.act(image, "push", seed=1, steps=1).actions, rtol=0, atol=1e-5)


def test_a_partial_embodiment_json_named_like_a_registry_entry_is_not_merged_but_warned_of(tiny_checkpoint, tmp_path,
                                                                                            caplog, monkeypatch):
    """A hand-written (or older) embodiment.json named `droid` without camera_keys, layout, stats... loaded with this
    version's defaults (one `observation/image`, no normalisation) where the registry's droid/relative_pose has others,
    without a word. The file still stands alone (a registry edit must not change a checkpoint), and the load names
    each field left to a default that differs from the registered action space with its columns."""
    folder = tmp_path / "partial"
    shutil.copytree(tiny_checkpoint, folder)
    columns = list(get_embodiment("droid/relative_pose").columns)
    spec = {"name": "droid", "domain": "droid_lerobot", "action_dim": 10, "columns": columns, "chunk_size": 16,
            "fps": 15, "camera_keys": ["observation/image"]}
    (folder / "embodiment.json").write_text(json.dumps(spec))
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        policy = worldpolicy.load_policy(folder, resolution_tier=256)
    assert policy.embodiment.camera_keys == ("observation/image",) and policy.embodiment.normalization == "none"
    said = [m for m in caplog.messages if "stands alone" in m]
    assert len(said) == 1 and "leaves out units, view_point, layout, normalization, stats, gripper_column, composite," in said[0]
    assert "not those of the registered embodiment 'droid/relative_pose' (units=('m', 'm', 'm'" in said[0]
    assert "camera_keys" not in said[0]  # given, so not the registry's to judge
    caplog.clear()
    full = get_embodiment("droid/relative_pose").to_spec()  # what `worldpolicy train` writes: nothing left out
    (folder / "embodiment.json").write_text(json.dumps(full))
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        worldpolicy.load_policy(folder, resolution_tier=256)
        worldpolicy.load_policy("shipped")  # its own name, registered nowhere
    assert not [m for m in caplog.messages if "stands alone" in m]
    # the load reads the file to build the embodiment, then once for both warnings about it (each read it again)
    from worldpolicy import fileio

    reads, read_json = [], fileio.read_json
    monkeypatch.setattr(fileio, "read_json", lambda path, what: reads.append(str(path)) or read_json(path, what))
    worldpolicy.load_policy(folder, resolution_tier=256)
    assert reads.count(str(folder / "embodiment.json")) == 2, reads


def test_a_load_checks_the_checkpoint_once(tiny_checkpoint, monkeypatch):
    """`from_pretrained` checks what the folder holds in `check_pretrained`, then loads it: `load_components` walked the
    folders and read every weight header a second time. A caller that loads without that check (training) still gets
    it, once."""
    import torch

    from worldpolicy.engine import loading

    walked = []
    real = loading.check_checkpoint_files
    monkeypatch.setattr(loading, "check_checkpoint_files", lambda *a: (walked.append(a[0]), real(*a))[1])
    worldpolicy.load_policy(tiny_checkpoint, "droid/relative_pose", chunk_size=8, resolution_tier=256)
    assert walked == [tiny_checkpoint]
    walked.clear()
    loading.load_components(tiny_checkpoint, torch.device("cpu"), torch.float32)
    assert walked == [tiny_checkpoint]


def test_an_embodiments_repr_leaves_its_stats_out():
    """Six statistics per column were most of the repr (the shipped model's: 1,700 of its 2,900 characters), a wall
    of numbers as a notebook cell's value. The repr names the fields a reader looks for; the stats are `.stats`."""
    e = worldpolicy.get_embodiment("bridge")
    assert e.stats and "q01" not in repr(e) and "stats" not in repr(e)
    assert "normalization='quantile'" in repr(e) and "columns=('tx'" in repr(e)


def test_an_embodiments_repr_leaves_its_descriptions_out():
    """Without its stats, droid's repr was still 1,260 characters: its two descriptions, a sentence each, were 400 of
    them. They are `.description` and `.view_description`; the repr names the fields a reader compares."""
    e = worldpolicy.get_embodiment("droid")
    assert e.description and e.view_description
    assert e.description not in repr(e) and e.view_description not in repr(e) and "description" not in repr(e)
    assert len(repr(e)) < 900 and "name='droid', variant='joint_pos'" in repr(e)


def test_register_embodiment_names_a_wrong_source_type():
    with pytest.raises(TypeError, match="expected a JSON file path or a dict spec, got int"):
        register_embodiment(42)


def test_the_lazy_names_are_listed():
    import worldpolicy

    listed = set(dir(worldpolicy))
    assert {"Policy", "PolicyRequest", "load_policy", "__version__", *worldpolicy.__all__} <= listed
    assert not {"Any", "TYPE_CHECKING", "annotations", "fileio"} & listed  # typing helpers and incidental submodules


def test_the_package_names_resolve_and_type_checkers_see_them():
    """Every name of `__all__` is given (`from worldpolicy import *` raised on one the lazy table left out), and each
    lazy one is imported under TYPE_CHECKING from the module it is read from: a name missing there reads as `Any`
    (the module's `__getattr__`) to a type checker, which then checks nothing about it. The submodules those names
    come from are read off a bare `import worldpolicy`, as they were before the names went lazy (README's
    `worldpolicy.embodiments.RESOLUTION_TIERS`)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    tree = ast.parse(Path(worldpolicy.__file__).read_text())
    checked = {alias.name: node.module for block in tree.body
               if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
               for node in block.body if isinstance(node, ast.ImportFrom) and node.level == 1
               for alias in node.names}
    lazy = {name: module for module, names in worldpolicy._LAZY.items() for name in names}
    assert lazy == checked
    assert set(worldpolicy.__all__) == {*lazy, "load_policy"}
    assert all(getattr(worldpolicy, name).__module__ == f"worldpolicy.{module}" for name, module in lazy.items()
               if name != "MODES")
    code = ("import worldpolicy; print(worldpolicy.embodiments.RESOLUTION_TIERS is not None, "
            "callable(worldpolicy.results.actions_from_json))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert (out.returncode, out.stdout, out.stderr) == (0, "True True\n", "")


def test_load_policy_names_an_unknown_option_and_the_accepted_ones():
    """Python's bare TypeError ("unexpected keyword argument 'foo'") named neither; `act()` names both."""
    import worldpolicy

    with pytest.raises(TypeError, match=r"load_policy\(\) got an unknown option foo=1; accepted: embodiment, "
                                        r"variant, device, .*seed"):
        worldpolicy.load_policy("no-such-folder", foo=1)


@pytest.mark.parametrize("steps", [4, 201, 1000])
def test_every_accepted_step_count_steps_through_its_schedule(tiny_checkpoint, steps):
    """Past ~200 steps the shifted grid rounds two timesteps to one integer; the scheduler then started a step late and
    failed on the last one (after the whole compute)."""
    import torch
    from diffusers import UniPCMultistepScheduler

    from worldpolicy.engine.schedules import SamplingConfig, make_scheduler

    base = UniPCMultistepScheduler.from_pretrained(tiny_checkpoint, subfolder="scheduler")
    scheduler = make_scheduler(base, SamplingConfig(steps=steps, shift=5.0), use_native_flow_schedule=False)
    sample = torch.ones(1, 2, 3)
    for t in scheduler.timesteps:
        sample = scheduler.step(-sample, t, sample, return_dict=False)[0]
    assert scheduler.step_index == steps and torch.isfinite(sample).all()


def test_prompts_are_bounded_where_every_route_checks_them():
    from worldpolicy.engine.schedules import SamplingConfig
    from worldpolicy.processing.prompts import MAX_PROMPT_CHARS, check_task

    assert check_task("a" * MAX_PROMPT_CHARS) == "a" * MAX_PROMPT_CHARS
    with pytest.raises(ValueError, match="prompt is 2001 characters long; at most 2000 are accepted"):
        check_task("a" * 2001)
    with pytest.raises(ValueError, match="negative_prompt is 2001 characters long"):
        SamplingConfig(negative_prompt="n" * 2001)


def test_a_checkpoints_embodiment_is_used_without_changing_the_registry(tmp_path):
    """A checkpoint's `embodiment.json` is what it runs with when no other is asked for (or it is asked for by name);
    loading it registers nothing, so a spec named like a built-in cannot change what that name means later."""
    from worldpolicy.policy import Policy
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    before = list_embodiments()
    for name in ("tiny_bot", "droid"):
        spec = {"name": name, "domain": f"worldpolicy_{name}", "domain_id": 20, "action_dim": 3,
                "columns": ["x", "y", "grip"], "units": ["m", "m", "1"], "chunk_size": 16, "fps": 15}
        (ckpt / "embodiment.json").write_text(json.dumps(spec))
        own = Policy.check_pretrained(ckpt)[0]
        assert (own.name, own.action_dim) == (name, 3)
        assert Policy.check_pretrained(ckpt, name)[0].action_dim == 3  # asked for by its own name
        assert Policy.check_pretrained(ckpt, "droid/relative_pose")[0].action_dim == 10  # the built-in
        assert list_embodiments() == before
        assert worldpolicy.get_embodiment("droid").action_dim == 8


def test_policy_seeds_are_checked_before_loading_and_stay_in_range(tiny_checkpoint, monkeypatch):
    from worldpolicy.engine import loading
    from worldpolicy.policy import Policy

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    for bad in (-1, 1.5, "abc", True, 2**63):
        with pytest.raises(ValueError, match=r"seed=.* must be an integer in \[0, 2\*\*63\)"):
            worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", seed=bad)
    monkeypatch.undo()
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", seed=2**63 - 1)
    first, second = (policy._seed(None) for _ in range(2))
    assert (first, second) == (2**63 - 1, 0)  # the sequence wraps instead of leaving the accepted range
    with pytest.raises(ValueError, match=r"seed=-3 must be an integer"):
        Policy(policy.engine, policy.embodiment, policy.sampling, seed=-3)


def test_decode_video_and_actions_space_are_checked_in_every_mode(tiny_policy):
    from worldpolicy.policy import PolicyRequest

    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"decode_video='no' must be True, False or None"):
        tiny_policy.act(image, "pick", decode_video="no")
    with pytest.raises(ValueError, match=r"actions_space='bogus'; accepted: physical, normalized"):
        tiny_policy.act_batch([PolicyRequest(image, "pick", actions_space="bogus")])


def test_a_policy_and_its_result_show_what_they_are_in_a_line(tiny_checkpoint):
    """`pred` in a notebook printed the dataclass's every field: ~7 KB of action rows, video pixels and settings; a
    policy printed as `<worldpolicy.policy.Policy object at 0x...>`."""
    policy = worldpolicy.load_policy(tiny_checkpoint, "droid/relative_pose", chunk_size=8, resolution_tier=256,
                                     steps=1, device="CPU")  # a device name in any case, as dtype names are read
    assert repr(policy) == (f"Policy({str(tiny_checkpoint)!r}, embodiment='droid/relative_pose', chunk_size=8, "
                            "resolution_tier=256, steps=1, device='cpu', dtype='float32')")
    pred = policy.imagine(np.zeros((64, 64, 3), np.uint8), np.zeros((8, 10)), "push", seed=5)
    assert repr(pred) == ("Prediction(mode='forward_dynamics', embodiment='droid/relative_pose', actions=[8, 10] "
                          "(tx, ty, tz, r0, r1, r2, r3, r4, r5, grasp), fps=15, video=uint8 [9, 64, 64, 3], seed=5)")
    policy.close()
    assert repr(policy).endswith("steps=1, closed)")


def test_a_result_shows_in_a_notebook_as_a_table_of_its_actions_named_and_in_units():
    """A notebook showed a result as its one-line repr only: the actions, the point of it, took
    `pd.DataFrame(pred.actions, columns=pred.columns)` and the units another look. Its table heads each column with
    its name and unit (none for a unitless one), each row with its time; a long one is cut, saying how much."""
    from worldpolicy.results import HTML_ROWS, Prediction

    actions = np.arange(20.0).reshape(10, 2) / 3
    pred = Prediction("policy", "mine", ["x<", "grip"], ["m", "1"], actions, actions, fps=5.0, settings={"seed": 1})
    page = pred._repr_html_()
    assert "<th>t [s]</th><th>x&lt; [m]</th><th>grip</th>" in page and "Prediction(mode=&#x27;policy&#x27;" in page
    assert "<tr><th>0.200</th><td>0.6667</td><td>1</td></tr>" in page and page.count("<tr>") == 11
    assert "more rows" not in page
    long = Prediction("policy", "mine", ["a"], ["rad"], np.zeros((HTML_ROWS + 5, 1)), np.zeros((HTML_ROWS + 5, 1)), 15)
    assert long._repr_html_().count("<tr>") == HTML_ROWS + 1 and "5 more rows" in long._repr_html_()
    assert "<img" not in page  # no video


def test_a_results_video_shows_in_a_notebook_as_a_strip_of_its_frames():
    """An imagined future was an array in a notebook: to look at it took a video writer and a player. Its table sits
    under a strip of frames spread over the clip, first and last included, each named by index."""
    import base64
    import io
    import re

    from PIL import Image

    from worldpolicy.results import HTML_FRAME_HEIGHT, Prediction

    video = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None] * 10, 64, axis=1).repeat(32, 2).repeat(3, 3)
    pred = Prediction("forward_dynamics", "mine", ["a"], ["m"], np.zeros((19, 1)), np.zeros((19, 1)), 15.0, video)
    page = pred._repr_html_()
    assert "<p>video frames 0, 3, 5, 8, 11, 14, 16, 19 of 20 at 15 fps</p>" in page
    strip = np.asarray(Image.open(io.BytesIO(base64.b64decode(re.search(r"base64,([^\"]+)", page)[1]))))
    width = HTML_FRAME_HEIGHT // 2  # 64x32 frames, 128 high
    assert strip.shape == (HTML_FRAME_HEIGHT, 8 * width, 3)
    middles = [int(strip[HTML_FRAME_HEIGHT // 2, k * width + width // 2, 0]) for k in range(8)]
    assert np.allclose(middles, [0, 30, 50, 80, 110, 140, 160, 190], atol=3)  # a JPEG's
    assert page.index("<img") < page.index("<table>")


def test_a_notebooks_frame_strip_is_a_jpeg_a_fraction_of_the_png():
    """A saved notebook keeps every strip it showed: as PNG, camera frames took ~280 kB a strip; as JPEG a fifth."""
    import base64
    import re

    from worldpolicy.results import Prediction

    rng = np.random.default_rng(0)  # noisy frames, as camera frames are to a PNG
    video = (np.linspace(0, 200, 96)[None, :, None, None] + rng.normal(0, 12, (9, 96, 128, 3))).clip(0, 255)
    pred = Prediction("forward_dynamics", "mine", ["a"], ["m"], np.zeros((8, 1)), np.zeros((8, 1)), 15.0,
                      video.astype(np.uint8))
    page = pred._repr_html_()
    assert "data:image/jpeg;base64," in page and "image/png" not in page
    jpeg = base64.b64decode(re.search(r"base64,([^\"]+)", page)[1])
    assert len(jpeg) < 120_000  # the PNG of these frames: ~400 kB


def test_a_results_video_plays_in_a_notebook_when_asked_for(tmp_path):
    """To watch an imagined future took writing an mp4 and opening a player. `video_player()` is an HTML5 player
    holding the clip's mp4 (not a file beside the notebook); the strip stays `_repr_html_`'s (encoding is asked for)."""
    import base64
    import re

    from worldpolicy.processing.video import read_video
    from worldpolicy.results import Prediction, VideoPlayer

    video = np.repeat(np.arange(9, dtype=np.uint8)[:, None, None, None] * 25, 48, axis=1).repeat(64, 2).repeat(3, 3)
    pred = Prediction("forward_dynamics", "mine", ["a"], ["m"], np.zeros((8, 1)), np.zeros((8, 1)), 15.0, video)
    assert "<video" not in pred._repr_html_()
    player = pred.video_player()
    assert isinstance(player, VideoPlayer) and repr(player).startswith("VideoPlayer(9 frames at 15 fps, ")
    html = player._repr_html_()
    assert html.startswith("<video controls") and "data:video/mp4;base64," in html
    (tmp_path / "played.mp4").write_bytes(base64.b64decode(re.search(r"base64,([^\"]+)", html)[1]))
    frames, fps = read_video(tmp_path / "played.mp4")
    assert frames.shape == video.shape and fps == 15
    assert np.allclose(frames[:, 24, 32, 0].astype(int), video[:, 24, 32, 0], atol=4)
    no_video = Prediction("policy", "mine", ["a"], ["m"], np.zeros((8, 1)), np.zeros((8, 1)), 15.0)
    with pytest.raises(ValueError, match="decode_video=True"):
        no_video.video_player()


@pytest.mark.parametrize("call", ["act", "infer_actions"])
def test_the_methods_that_generate_actions_take_no_actions_space(tiny_policy, call):
    """`act(obs, task, actions_space="normalized")` was accepted and changed nothing (the result's actions stayed
    physical), and act()'s accepted options listed `actions`, which it then refused."""
    clip = np.zeros((9, 64, 64, 3), np.uint8)
    for key, value in (("actions_space", "normalized"), ("actions", np.zeros((16, 10)))):
        with pytest.raises(TypeError, match=rf"{call}\(\) takes no {key}: it generates the actions, and its result "
                                            r"holds them in both spaces \(actions, actions_normalized\); imagine\(\) "
                                            r"takes actions; accepted: state, seed, steps"):
            getattr(tiny_policy, call)(clip, "pick", **{key: value})
    with pytest.raises(TypeError, match=r"accepted: actions_space, state, seed"):  # imagine() takes both
        tiny_policy.imagine(clip[0], np.zeros((16, 10)), "pick", sed=1)
    # and each method's own keywords are listed with the request's: without them the list read as if it had none
    with pytest.raises(TypeError,
                       match=r"accepted: actions_space, .*, decode_video, canvas, whole_trajectory, progress$"):
        tiny_policy.imagine(clip[0], np.zeros((16, 10)), "pick", whole_trajectroy=True)
    with pytest.raises(TypeError, match=r"accepted: state, .*, decode_video, canvas, start_frame, whole_clip, "
                                        r"resample, batch_size, progress$"):
        tiny_policy.infer_actions(clip, "pick", whole_cilp=True)


def test_forward_dynamics_decodes_its_rollout_unless_told_not_to(tiny_policy):
    """`act_batch([PolicyRequest(mode="forward_dynamics", ...)])` ran the whole rollout and returned no video, while
    `imagine()` and the server decoded it: the default now follows the mode wherever a request is made."""
    from worldpolicy.policy import PolicyRequest

    image = np.zeros((64, 64, 3), np.uint8)
    fd = dict(mode="forward_dynamics", actions=np.zeros((16, 10)), actions_space="normalized", steps=1)
    default, declined, policy, asked = tiny_policy.act_batch([
        PolicyRequest(image, "push", **fd), PolicyRequest(image, "push", **fd, decode_video=False),
        PolicyRequest(image, "push", steps=1), PolicyRequest(image, "push", steps=1, decode_video=True)])
    assert default.video is not None and declined.video is None
    assert policy.video is None and asked.video is not None  # policy (and inverse dynamics) as before
    assert tiny_policy.imagine(image, fd["actions"], "push", actions_space="normalized", steps=1).video is not None
    assert tiny_policy.imagine(image, fd["actions"], "push", actions_space="normalized", steps=1,
                               decode_video=False).video is None


@pytest.mark.parametrize("options, ran", [
    ({}, {"schedule_used": "linear", "shift_used": 5.0, "native_grid_used": False,
          "sigmas": [1.0, 0.9376, 0.8336, 0.6259, 0.0]}),  # the checkpoint's own: linear flow, its shift 5
    ({"preset": "droid_native"}, {"schedule_used": "linear", "shift_used": 5.0, "native_grid_used": True,
                                  "sigmas": [0.9998, 0.9373, 0.8331, 0.6247, 0.0]}),  # cosmos3-model.md §11
    ({"schedule": "karras"}, {"schedule_used": "karras", "shift_used": None, "native_grid_used": False}),
])
def test_settings_record_the_schedule_that_ran(tiny_checkpoint, monkeypatch, options, ran):
    """The settings held the schedule asked for, often None ("the checkpoint's"): not enough to reproduce a result.
    They now say what the sampler stepped through, worked out once per schedule, and stay JSON-safe."""
    from worldpolicy.engine import sampler, schedules

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=16,
                                     resolution_tier=256, **options)
    used, described = [], []
    make = sampler.make_scheduler
    monkeypatch.setattr(sampler, "make_scheduler", lambda *a: used.append(make(*a)) or used[-1])
    describe = schedules.schedule_in_effect
    monkeypatch.setattr(schedules, "schedule_in_effect", lambda *a: described.append(a) or describe(*a))
    image = np.zeros((64, 64, 3), np.uint8)
    first, second = (policy.act(image, "push", steps=4) for _ in range(2))
    settings = json.loads(json.dumps(first.settings, allow_nan=False))
    assert {k: settings[k] for k in ran} == ran
    assert settings["sigmas"] == pytest.approx(used[0].sigmas.tolist(), rel=1e-3) and len(settings["sigmas"]) == 5
    assert len(described) == 1 and second.settings == {**first.settings, "seed": second.settings["seed"]}
    first.settings["sigmas"].clear()  # one result's settings are its own
    assert len(policy.act(image, "push", steps=4).settings["sigmas"]) == 5
    assert len(policy.act(image, "push", steps=2).settings["sigmas"]) == 3 and len(described) == 2


def test_dtype_names_are_read_in_any_case_and_a_wrong_one_lists_the_accepted():
    """`dtype="BF16"` / `--dtype Float16` were refused, though the spelling was the accepted one in another case; and
    a result's settings["dtype"] ("torch.bfloat16") could not be passed back."""
    from worldpolicy.engine.loading import resolve_dtype

    cpu = torch.device("cpu")
    for name, dtype in (("BF16", torch.bfloat16), ("Float16", torch.float16), (" fp32 ", torch.float32),
                        ("torch.bfloat16", torch.bfloat16), ("bfloat16", torch.bfloat16)):
        assert resolve_dtype(name, cpu) is dtype, name
    for wrong in ("half-float", "int8", 16):
        with pytest.raises(ValueError, match=re.escape(f"dtype={wrong!r} is not supported; accepted: float32, fp32, "
                                                       "bfloat16, bf16, float16, fp16 (in any case)")):
            resolve_dtype(wrong, cpu)


@pytest.mark.parametrize(("field", "value", "accepted"), [
    ("chunk_size", 30, "is not accepted: the video VAE needs chunk_size+1 = 1+4k frames"),
    ("resolution_tier", 500, "is not supported; accepted: [256, 480, 704, 720]"),
])
def test_an_embodiments_chunk_and_tier_are_checked_when_it_is_built(tmp_path, field, value, accepted):
    """They were caught only by `load_policy` (or a request's canvas), in an error that did not say the value came
    from the embodiment: a registry entry, a user spec or a checkpoint's embodiment.json."""
    from worldpolicy.embodiments import embodiment_from_spec
    from worldpolicy.policy import checkpoint_embodiment

    spec = {"name": "odd_bot", "domain": "worldpolicy_odd_bot", "domain_id": 21, "action_dim": 3,
            "columns": ["x", "y", "g"], "chunk_size": 16, "fps": 15, field: value}
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "embodiment.json").write_text(json.dumps(spec))
    for build in (lambda: embodiment_from_spec(spec), lambda: register_embodiment(spec),
                  lambda: checkpoint_embodiment(checkpoint, None)):
        with pytest.raises(ValueError, match=re.escape(f"embodiment 'odd_bot': {field}={value} {accepted}")):
            build()
    assert "odd_bot" not in list_embodiments()


def test_the_resolution_tiers_are_the_pipelines():
    """`RESOLUTION_TIERS` lets embodiments check a tier without diffusers: it must stay the pipeline's own list."""
    from diffusers.pipelines.cosmos.pipeline_cosmos3_omni import _ACTION_RESOLUTION_BINS

    from worldpolicy.embodiments import RESOLUTION_TIERS

    assert sorted(RESOLUTION_TIERS) == sorted(int(k) for k in _ACTION_RESOLUTION_BINS)


def test_make_tiny_checkpoint_never_replaces_a_folder_that_is_not_a_checkpoint(tmp_path):
    from worldpolicy.testing import make_tiny_checkpoint

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="holds something other than a checkpoint"):
        make_tiny_checkpoint(precious)
    assert (precious / "notes.txt").read_text() == "keep me"
    again = make_tiny_checkpoint(make_tiny_checkpoint(tmp_path / "ckpt"))  # a checkpoint is rebuilt in place
    assert (again / "model_index.json").is_file()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("camera_keys", "observation/wrist", "camera_keys='observation/wrist'; expected a list of strings"),
    ("columns", "xyg", "columns='xyg'; expected a list of strings"),
    ("aliases", "robo", "aliases='robo'; expected a list of strings"),
    ("gripper_flip", "no", "gripper_flip='no'; expected true or false"),
    ("snap_to_16", "false", "snap_to_16='false'; expected true or false"),
    ("fps", float("nan"), "fps=nan must be a finite number > 0"),
    ("fps", float("inf"), "fps=inf must be a finite number > 0"),
])
def test_an_embodiment_spec_field_of_the_wrong_kind_is_refused(key, value, message):
    """A bare string where a list goes used to become its characters; "no" became True; NaN fps passed."""
    from worldpolicy.embodiments import embodiment_from_spec

    spec = {"name": "kind_bot", "domain": "worldpolicy_kind_bot", "domain_id": 21, "action_dim": 3,
            "columns": ["x", "y", "g"], "chunk_size": 16, "fps": 15, key: value}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        embodiment_from_spec(spec)


@pytest.mark.parametrize(("doc", "message"), [
    ({"actions": [[0.5] + [0.0] * 10] * 4, "columns": ["tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5", "grasp"]},
     r"'columns' has 10 names \(10 distinct\) but rows have 11 values"),
    ({"actions": [[0.0] * 9] * 4, "columns": ["tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5", "grasp"]},
     r"'columns' has 10 names \(10 distinct\) but rows have 9 values"),
    ({"actions": [[0.0] * 10] * 4, "columns": ["tx"] * 10}, r"'columns' has 10 names \(1 distinct\)"),
    ({"actions": [[1.0] * 10] * 4, "columns": ["tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5", "grasp"],
      "units": ["mm", "mm", "mm", "1", "1", "1", "1", "1", "1", "1"]},
     r"tx in 'mm' \(expected 'm'\), ty in 'mm' \(expected 'm'\), tz in 'mm' \(expected 'm'\); convert"),
    ({"actions": [[0.0] * 10] * 4, "columns": "tx,ty"}, r"'columns' must be a list of strings"),
])
def test_an_actions_file_is_read_by_its_columns_and_units_or_refused(tmp_path, doc, message):
    """A row one value wider than its names was read shifted by a column; a file in mm was read as metres."""
    path = tmp_path / "actions.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=message):
        load_actions(path, worldpolicy.get_embodiment("droid/relative_pose"))


def test_a_broken_npy_actions_file_names_itself(tmp_path):
    path = tmp_path / "bad.npy"
    path.write_bytes(b"not numpy at all" * 4)
    with pytest.raises(ValueError, match=r"actions file '.*bad.npy' is not a numeric .npy array"):
        load_actions(path, worldpolicy.get_embodiment("droid/relative_pose"))


def test_an_unknown_or_conflicting_option_is_named_with_the_accepted_ones(tiny_policy):
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(TypeError, match=r"act\(\) got an unknown option step=2; accepted: .*steps, guidance"):
        tiny_policy.act(image, "pick", step=2)
    with pytest.raises(TypeError, match=r"imagine\(\) sets mode itself; accepted: actions_space"):
        tiny_policy.imagine(image, np.zeros((16, 10)), "pick", mode="policy")
    with pytest.raises(TypeError, match=r"infer_actions\(\) sets mode itself"):
        tiny_policy.infer_actions(image, "pick", mode="policy")


def test_registry_names_are_one_per_spelling_and_never_hidden(monkeypatch):
    """A name equal to a built-in alias could be registered but never looked up; MyBot and mybot were two entries;
    overwrite=True with "DROID" reported success and shadowed nothing; clashing aliases were dropped silently."""
    from worldpolicy import embodiments

    monkeypatch.setattr(embodiments, "_USER", {})
    base = {"domain": "worldpolicy_reg_bot", "domain_id": 22, "action_dim": 3, "columns": ["x", "y", "g"],
            "chunk_size": 16, "fps": 15}
    with pytest.raises(ValueError, match=r"embodiment 'franka' is built in \(as 'droid'\); pass overwrite=True"):
        register_embodiment({**base, "name": "franka"})
    register_embodiment({**base, "name": "MyBot"})
    register_embodiment({**base, "name": "mybot", "action_dim": 4, "columns": ["a", "b", "c", "d"]})
    assert [n for n in list_embodiments() if n.lower() == "mybot"] == ["mybot"]
    assert worldpolicy.get_embodiment("MYBOT").action_dim == 4
    register_embodiment({**base, "name": "DROID"}, overwrite=True)
    assert worldpolicy.get_embodiment("droid").action_dim == 3  # shadowed, as asked
    with pytest.raises(ValueError, match=r"aliases \['bridge'\] already name \['bridge'\]"):
        register_embodiment({**base, "name": "robo", "aliases": ["bridge"]})
    for bad in ("my/robot", "", " pad", None):
        with pytest.raises(ValueError, match="expected a non-empty name without '/'"):
            register_embodiment({**base, "name": bad})
    monkeypatch.setattr(embodiments, "_USER", {})
    assert worldpolicy.get_embodiment("droid").action_dim == 8


def test_an_actions_file_of_another_schema_version_is_refused(tmp_path, caplog):
    emb = worldpolicy.get_embodiment("droid/relative_pose")
    doc = {"schema": "worldpolicy.actions/v2", "actions": [[0.0] * 10] * 4, "columns": list(emb.columns)}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"written by a newer worldpolicy \(schema 'worldpolicy.actions/v2'; this one "
                                         r"reads 'worldpolicy.actions/v1' and older\): upgrade worldpolicy"):
        load_actions(path, emb)
    path.write_text(json.dumps({**doc, "schema": "worldpolicy.actions/v1"}))
    with caplog.at_level("WARNING"):
        load_actions(path, emb, space="normalized")
    assert "holds physical actions; reading them as physical, not normalized" in caplog.text


def test_reading_actions_with_warn_false_logs_nothing_about_the_object(tmp_path, caplog):
    """`predict` checks --actions before the weights load with warn=False, then the run reads them again: a
    worldpolicy.actions/v1 file read with --actions-space normalized (or written for another embodiment) was said
    twice, as `actions_object` logged whatever `warn` said."""
    emb = get_embodiment("droid/relative_pose")
    still = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]  # rot6d's identity: no warning about the values themselves
    doc = {"schema": "worldpolicy.actions/v1", "embodiment": "droid", "actions": [still] * 4,
           "columns": list(emb.columns)}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.INFO, logger="worldpolicy.processing.actions"):
        for source in (path, doc):
            load_actions(source, emb, space="normalized", warn=False)
    assert caplog.records == []
    with caplog.at_level(logging.INFO, logger="worldpolicy.processing.actions"):
        load_actions(path, emb, space="normalized")
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2 and "reading them as physical, not normalized" in said[0], said
    assert "written for 'droid', read as 'droid/relative_pose' by column name" in said[1], said


def test_an_actions_file_at_another_rate_than_the_embodiments_is_said(tmp_path, caplog):
    """An actions.json written at 30 Hz was imagined at the embodiment's 15 Hz with nothing said: each row (a delta or
    a target of a 1/30 s step) ran as a 1/15 s step, the motion at half its speed and twice its length in time."""
    emb = get_embodiment("droid/relative_pose")
    still = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    doc = {"schema": "worldpolicy.actions/v1", "embodiment": emb.key, "fps": 30.0, "actions": [still] * 4,
           "columns": list(emb.columns)}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(doc))
    with caplog.at_level(logging.INFO, logger="worldpolicy.processing.actions"):
        load_actions(path, emb, warn=False)
        assert caplog.records == []
        load_actions(path, emb)
        load_actions({**doc, "fps": 15}, emb)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"actions file {str(path)!r}: its rows are at 30 Hz (its fps), "
                                                 "but embodiment 'droid/relative_pose' runs at 15 Hz"), said
    # the same words before the weights load (`policy.input_warnings`), and none from a reader whose policy says them
    from worldpolicy.policy import range_warnings
    from worldpolicy.processing.actions import actions_rate_warning

    assert actions_rate_warning(path, emb) == said[0] and said[0] in range_warnings(emb, "forward_dynamics",
                                                                                   actions=str(path))
    assert actions_rate_warning({**doc, "fps": 15}, emb) is None and actions_rate_warning([still], emb) is None
    # the embodiment's rate but for float noise is its rate (`Embodiment.runs_at`, as training and labelling judge it)
    assert actions_rate_warning({**doc, "fps": 15 * (1 + 1e-9)}, emb) is None
    assert actions_rate_warning({**doc, "fps": 15.1}, emb) is not None
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="worldpolicy.processing.actions"):
        load_actions(path, emb, warn_range=False)
    assert not [r for r in caplog.records if "Hz" in r.getMessage()]


def test_the_rate_of_actions_that_cannot_name_one_is_not_read_again(tmp_path, monkeypatch):
    """Only a JSON actions object names its rate: a `.npy`, `.npz` or `.csv` file (a whole trajectory's rows, which a
    `Policy` reads for every call) was read a second time by `actions_rate_warning` only to find none."""
    from worldpolicy.processing import actions
    from worldpolicy.processing.actions import actions_rate_warning

    emb = get_embodiment("droid/relative_pose")
    np.save(tmp_path / "rows.npy", np.zeros((4, len(emb.columns))))
    monkeypatch.setattr(actions, "read_actions_file", lambda source: pytest.fail(f"{source} read again"))
    for name in ("rows.npy", "rows.npz", "rows.csv"):
        assert actions_rate_warning(tmp_path / name, emb) is None


def test_a_state_history_conditions_on_the_row_the_chunk_starts_from(tiny_checkpoint):
    """state=[T, dim] was refused as "state has 2*dim values"; it now reads like an observation's history rows."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    rows = np.array([[0.1] * 7 + [0.0], [0.3] * 7 + [1.0]])
    image = np.zeros((64, 64, 3), np.uint8)
    latest = policy._state_row(worldpolicy.PolicyRequest(image, "x", state=rows[-1]))
    np.testing.assert_array_equal(policy._state_row(worldpolicy.PolicyRequest(image, "x", state=rows)), latest)
    first = policy._state_row(worldpolicy.PolicyRequest(image, "x", mode="inverse_dynamics", state=rows[0]))
    np.testing.assert_array_equal(
        policy._state_row(worldpolicy.PolicyRequest(image, "x", mode="inverse_dynamics", state=rows)), first)


@pytest.mark.parametrize("state", [np.zeros(7), np.zeros((3, 7)), np.zeros((8, 3)), np.zeros((2, 1, 8))])
def test_a_state_of_the_wrong_shape_is_named_by_its_shape(tiny_checkpoint, state):
    """Joint rows without the gripper ([T, 7]) were refused as "state has 21 values": the shape given and the two
    accepted (a row, or rows) are named."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    image = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=rf"state has shape {re.escape(str(state.shape))} but embodiment "
                                         r"'droid/joint_pos' expects 8 values \(joint_0.*gripper\) or rows \[T, 8\]"):
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=state))


def test_a_state_with_nan_names_its_columns(tiny_checkpoint):
    """A gripper reading a driver dropped was refused as "state contains NaN or inf", naming no column."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    image = np.zeros((64, 64, 3), np.uint8)
    gripper_lost = [0.1] * 7 + [np.nan]
    with pytest.raises(ValueError, match=r"state contains NaN, inf or values beyond float32 in gripper \(given \[0.1, "
                                         r".*nan\]\); accepted: finite numbers within float32's range .*, one per "
                                         r"column \(joint_0, .*gripper\)"):
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=gripper_lost))
    # finite, and inf in the float32 model: its actions came out NaN (a server answered 1011, logged per request)
    with pytest.raises(ValueError, match=r"beyond float32 in joint_2 \(given \[0.1, 0.1, 1e\+308,"):
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[0.1, 0.1, 1e308] + [0.1] * 5))
    with pytest.raises(ValueError, match=r"action_prefix holds 1e\+39 at row 0, column 'joint_0'; accepted: finite "
                                         r"numbers within float32's range"):
        policy.act(image, "x", state=[0.1] * 8, action_prefix=[[1e39] + [0.0] * 7])


def test_a_value_beyond_float32_once_normalized_is_refused_where_it_is_read():
    """1e38 is within float32, but normalized by a column's small spread (bridge's tx spans 0.08) it is 2.5e39: inf
    in the float32 model, and the imagined video NaN, said by no error (in a column the data held constant, whose
    spread is floored at 1e-6, from 1.7e32 on). Refused as 1e308 is, naming the normalization; model-space actions
    are the model's own numbers."""
    from worldpolicy.policy import physical_state_row
    from worldpolicy.processing.actions import action_prefix_rows

    bridge = get_embodiment("bridge")
    row = [1e38] + [0.0] * 9
    with pytest.raises(ValueError, match=r"^actions: 1e\+38, beyond float32's range once normalized, at row 0, column "
                                         r"'tx'; accepted: .*, as given and once normalized by the embodiment's stats"):
        load_actions([row], bridge, warn=False)
    assert load_actions([row], bridge, "normalized", warn=False)[0, 0] == 1e38
    with pytest.raises(ValueError, match=r"^action_prefix holds 1e\+38 at row 0, column 'tx'; accepted: .*once norm"):
        action_prefix_rows([row], "policy", bridge, 16)
    # a state-conditioned embodiment whose stats are a mean and std: its state row is not clamped as quantile ones are
    meanstd = dataclasses.replace(get_embodiment("droid"), normalization="meanstd",
                                  stats={"mean": [0.0] * 8, "std": [1.0] * 7 + [0.0]})
    with pytest.raises(ValueError, match=r"^state contains NaN, inf or values beyond float32 in gripper \(given .*\); "
                                         r"accepted: .*, as given and once normalized by the embodiment's stats"):
        physical_state_row([0.0] * 7 + [1e38], meanstd, "policy")
    assert physical_state_row([0.0] * 7 + [1e38], get_embodiment("droid"), "policy")[-1] == 1e38  # not normalized


def test_one_cameras_image_in_memory_is_warned_about_once_as_the_cli_warns_of_a_file(tiny_checkpoint, caplog):
    """policy.act(one camera's array) on a model that composes several cameras (DROID, the shipped model) ran on it as
    if it were the composite, without the warning the command line and the agent tools give for such a file."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    one_camera = np.zeros((90, 320, 3), np.uint8)
    state = [0.0] * 8
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        policy._prepare(worldpolicy.PolicyRequest(one_camera, "x", state=state))
        assert ("the observation is taken as the composite the model was trained on, the 3 cameras of embodiment "
                "'droid/joint_pos'") in caplog.text
        assert "it is 90x320 pixels" in caplog.text
        assert "Pass each camera instead: an observation dict {'observation/wrist_image_left': image, " in caplog.text
        caplog.clear()
        policy._prepare(worldpolicy.PolicyRequest(one_camera, "x", state=state))  # a control loop: said once
        policy._prepare(worldpolicy.PolicyRequest(np.zeros((540, 640, 3), np.uint8), "x", state=state))  # composite
    assert caplog.text == ""


def test_one_cameras_image_file_is_warned_about_by_the_policy_unless_a_front_end_said_it(tiny_checkpoint, tmp_path,
                                                                                          caplog):
    """policy.act("one_camera.png") on a multi-camera model said nothing, where the same image in memory was warned
    about: the file was left to the command line and the agent tools, which say it before the model loads. A front
    end that said it tells the policy (`single_view_said`), so it is said once."""
    from PIL import Image

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    state = [0.0] * 8
    Image.fromarray(np.zeros((90, 320, 3), np.uint8)).save(tmp_path / "one.png")
    Image.fromarray(np.zeros((120, 160, 3), np.uint8)).save(tmp_path / "said.png")
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        policy._prepare(worldpolicy.PolicyRequest(str(tmp_path / "one.png"), "x", state=state))
        assert (f"the observation {str(tmp_path / 'one.png')!r} is taken as the composite the model was trained on"
                in caplog.text)
        assert "it is 90x320 pixels" in caplog.text
        caplog.clear()
        policy.single_view_said(120, 160)  # what the command line and the tools do after warning in their terms
        policy._prepare(worldpolicy.PolicyRequest(tmp_path / "said.png", "x", state=state))
    assert caplog.text == ""


def test_a_state_in_the_wrong_units_is_warned_like_actions(tiny_checkpoint, caplog):
    """Joints in degrees or a 0-255 gripper conditioned the DROID policy without a word (actions were warned)."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    image = np.zeros((64, 64, 3), np.uint8)
    home = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854]
    with caplog.at_level("WARNING", logger="worldpolicy.processing.actions"):
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[*home, 0.5]))
        assert "far outside" not in caplog.text
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[*np.degrees(home), 0.5]))
        assert "state: joint_1 (|x| up to" in caplog.text and "joint_3 (" in caplog.text
        assert "check the units (joint_0 [rad]" in caplog.text and "gripper (" not in caplog.text
        caplog.clear()
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[*np.degrees(home), 0.5]))
        assert caplog.text == ""  # a control loop's next call with the same mistake: said once
        policy._state_row(worldpolicy.PolicyRequest({"observation/joint_position": home,
                                                     "observation/gripper_position": [255.0]}, "x"))
    assert ("state (observation['observation/joint_position'], observation['observation/gripper_position']): "
            "gripper (g = 255, likely actuator units (Menagerie's 0-255") in caplog.text


def test_out_of_range_state_and_actions_are_said_by_input_warnings_in_the_runs_words(tiny_checkpoint, caplog):
    """A front end's check before the weights load (`input_warnings`: `predict`, the agent tools) said nothing of a
    state or actions in the wrong units: only the run did, and a loaded policy says a state once, so an agent's second
    call with the same mistake got a result without the warning. Every mode now gets it from `input_warnings`, in the
    words the run uses (which is how `predict` keeps its run from saying it again), and a run says each once."""
    from worldpolicy.policy import ignored_state_warning, input_warnings

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    e, image = policy.embodiment, np.zeros((64, 64, 3), np.uint8)
    degrees = [*np.degrees([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854]), 0.5]
    rows = np.tile(degrees, (16, 1))
    for mode, actions in (("policy", None), ("forward_dynamics", rows), ("inverse_dynamics", None)):
        told = input_warnings(str(tiny_checkpoint), e, mode, (64, 64), state=[degrees, degrees], actions=actions)
        assert any(m.startswith("state: joint_1 (|x| up to 17.2), joint_3 (|x| up to 126)") for m in told), (mode, told)
        assert any(m.startswith("actions: joint_1 (|x| up to 17.2), joint_3 (|x| up to 126)") for m in told) == (actions is not None), told
        caplog.clear()
        request = worldpolicy.PolicyRequest(image if mode != "inverse_dynamics" else np.zeros((3, 64, 64, 3), np.uint8),
                                            "x", mode=mode, state=[degrees, degrees], actions=actions)
        with caplog.at_level("WARNING"):
            policy._prepare(request)
            said = [m for m in caplog.messages if "check the units" in m]
            # the state was said by the first mode's run already: the later modes' runs say only what is new
            assert said == {"policy": told, "forward_dynamics": told[1:], "inverse_dynamics": []}[mode], said
            caplog.clear()
            policy._prepare(request)  # the same mistake again: said once by the run, in every front end's result
        assert not [m for m in caplog.messages if "check the units" in m]
        assert input_warnings(str(tiny_checkpoint), e, mode, (64, 64), state=degrees, actions=actions) == told
    # a state the embodiment ignores is said to be ignored, never judged; one the run refuses is the run's to say
    ignored = get_embodiment("droid/relative_pose")
    assert input_warnings(str(tiny_checkpoint), ignored, "policy", (64, 64), state=[900.0] * 10) == [
        ignored_state_warning(ignored, [900.0] * 10)]
    assert input_warnings(str(tiny_checkpoint), e, "policy", (64, 64), state=[900.0] * 3) == []


def test_a_negative_prompt_guidance_turns_off_is_warned_about(tiny_policy, caplog):
    """negative_prompt with guidance 1 changed nothing without a word (as in diffusers' Cosmos3 pipeline; its QwenImage
    pipelines warn): a user tuning it saw no effect and no reason."""
    image = np.zeros((64, 64, 3), np.uint8)
    with caplog.at_level("WARNING", logger="worldpolicy.policy"):
        tiny_policy._prepare(worldpolicy.PolicyRequest(image, "x", guidance=3.0, negative_prompt="blurry"))
        tiny_policy._prepare(worldpolicy.PolicyRequest(image, "x", guidance=1.0))
        assert "negative_prompt" not in caplog.text
        tiny_policy._prepare(worldpolicy.PolicyRequest(image, "x", guidance=1.0, negative_prompt="blurry"))
        assert ("negative_prompt='blurry' is ignored: guidance=1 turns classifier-free guidance off" in caplog.text)
        caplog.clear()
        tiny_policy._prepare(worldpolicy.PolicyRequest(image, "x", guidance=1.0, negative_prompt="blurry"))
    assert caplog.text == ""  # a control loop: said once


def test_a_torch_state_reads_as_its_values_in_any_dtype(tiny_checkpoint):
    """A bfloat16 (or CUDA) tensor state was refused as "must be a list or array of numbers": numpy has no bfloat16.
    Actions read from torch already; a state now reads the same way."""
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=16)
    image, values = np.zeros((64, 64, 3), np.uint8), [0.0, -0.25, 0.0, -2.0, 0.0, 1.5, 0.75, 0.5]  # exact in bf16
    expected = policy._state_row(worldpolicy.PolicyRequest(image, "x", state=values))
    for dtype in (torch.bfloat16, torch.float16, torch.float64):
        given = torch.tensor(values, dtype=dtype)
        np.testing.assert_array_equal(policy._state_row(worldpolicy.PolicyRequest(image, "x", state=given)), expected)
    joints = {"observation/joint_position": torch.tensor(values[:7], dtype=torch.bfloat16),
              "observation/gripper_position": torch.tensor([0.5], dtype=torch.bfloat16)}
    np.testing.assert_array_equal(policy._state_row(worldpolicy.PolicyRequest(joints, "x")), expected)


def test_a_state_column_the_training_data_held_constant_is_not_warned_about(tiny_checkpoint, caplog):
    """A joint-position robot trained on reach data: the gripper never closes, so q01 = q99 = 0 and the gripper the
    sim measures (1e-4) was 'far outside what it was trained on; check the units' at every call."""
    from worldpolicy.embodiments import embodiment_from_spec

    home = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854]
    emb = embodiment_from_spec({
        "name": "reach_joints", "layout": "joint_position", "action_dim": 8, "gripper_column": "gripper",
        "columns": [f"joint_{i}" for i in range(7)] + ["gripper"], "units": ["rad"] * 7 + ["1"], "state_history": 1,
        "state_keys": {"joints": "observation/joint_position", "gripper": "observation/gripper_position"},
        "fps": 15, "chunk_size": 16, "camera_keys": ["observation/image"], "domain": "worldpolicy_reach_joints",
        "domain_id": 11, "normalization": "quantile",
        "stats": {"q01": [v - 0.2 for v in home] + [0.0], "q99": [v + 0.2 for v in home] + [0.0]}})
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment=emb)
    image = np.zeros((64, 64, 3), np.uint8)
    with caplog.at_level("WARNING", logger="worldpolicy.processing.actions"):
        policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[*home, 1.1e-4]))
        assert caplog.text == ""
        row = policy._state_row(worldpolicy.PolicyRequest(image, "x", state=[*np.degrees(home), 1.1e-4]))
    assert "state: joint_1 (|x| up to" in caplog.text and "gripper (" not in caplog.text
    # the model gets the row as training cached it (clamped to [-1, 1]): the gripper's 1.1e-4 over a constant 0 was fed
    # as 219 and joint_1 in degrees as -86, values no training row held
    assert row[-1] == 1.0 and row[1] == -1.0 and np.abs(row).max() == 1.0
    from worldpolicy.processing.actions import to_model

    exact = [*home[:3], home[3] + 0.1, *home[4:], 0.0]
    np.testing.assert_allclose(policy._state_row(worldpolicy.PolicyRequest(image, "x", state=exact)),
                               to_model(emb, np.array([exact]))[0])  # inside the data's range: unchanged


def test_unnormalised_values_are_warned_by_what_their_units_allow(caplog):
    """droid's joints are raw radians: joint 4 at its limit (-3.07) was "far outside" (|x| > 3, as for normalised
    embodiments). pusht's values are the model's own (its stats are not published): pixels given there are far out."""
    droid, pusht = worldpolicy.get_embodiment("droid"), worldpolicy.get_embodiment("pusht")
    with caplog.at_level("WARNING", logger="worldpolicy.processing.actions"):
        load_actions(np.array([[0.0, -1.76, 0.0, -3.07, 0.0, 3.75, 2.9, 1.0]]), droid)
        load_actions(np.array([[0.9, -2.5]]), pusht)
        assert caplog.text == ""
        load_actions(np.array([[0.0, -100.0, 0.0, -120.0, 0.0, 90.0, 45.0, 0.0]]), droid)
        load_actions(np.array([[480.0, 0.5]]), pusht)
    assert "actions: joint_1 (|x| up to 100), joint_3 (|x| up to 120), joint_5 (|x| up to 90), joint_6 (|x| up to 45) " \
           "beyond what the columns of embodiment 'droid/joint_pos' hold" in caplog.text
    assert "actions: x (|x| up to 480) beyond what the columns of embodiment 'pusht' hold" in caplog.text
    assert "y (" not in caplog.text


@pytest.mark.parametrize("flip", [True, False])
def test_a_gripper_value_is_warned_where_the_robot_bridge_refuses_it(caplog, flip):
    """The warning bounded the gripper at |x| > 1.5 in model space, after the flip: droid's model holds 1 - g, so g = 2
    (model -1) passed without a word, as did a [-1, 1] convention's -1 for an unflipped embodiment, while the robot
    bridge refuses any g more than GRIPPER_MARGIN (0.5) outside [0, 1]. Both now judge g itself by that margin."""
    droid = worldpolicy.get_embodiment("droid")
    e = droid if flip else dataclasses.replace(droid, name="droid_unflipped", gripper_flip=False)
    home = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854]
    with caplog.at_level("WARNING", logger="worldpolicy.processing.actions"):
        load_actions(np.array([[*home, g] for g in (0.0, 1.0, 1.5, -0.5)]), e)  # overshoot the bridge clips
        assert caplog.text == ""
        for g, likely in ((2.0, "likely actuator units"), (-1.0, "likely a [-1, 1] convention")):
            caplog.clear()
            model = load_actions(np.array([home + [0.5], home + [g]]), e)
            assert f"actions: gripper (g = {g:g}, {likely}" in caplog.text, caplog.text
            assert "the gripper within 0.5 of [0, 1]" in caplog.text
            assert out_of_range_columns(model, e) == ("gripper",)
            state = to_model(e, np.array([home + [g]]))
            assert out_of_range_warning(state, e, "state").startswith(f"state: gripper (g = {g:g}, {likely}")
    from worldpolicy.robot import robots

    assert robots.GRIPPER_MARGIN is worldpolicy.embodiments.GRIPPER_MARGIN  # one margin, the bridge's and this one


@pytest.mark.parametrize(("change", "message"), [
    ({"stats": {"q01": [0.0, 1.0, 0.0], "q99": [1.0, -1.0, 1.0]}},
     r"stats: q01 > q99 in column y \(q01=1, q99=-1\); accepted: q01 <= q99 in every column"),
    ({"normalization": "minmax", "stats": {"min": [2.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]}},
     r"stats: min > max in column x \(min=2, max=1\); accepted: min <= max"),
    ({"normalization": "meanstd", "stats": {"mean": [0.0] * 3, "std": [1.0, 1.0, -0.5]}},
     r"stats.std: g=-0.5; accepted: std >= 0"),
    ({"stats": {"q01": [0.0] * 3, "q99": [1.0, float("nan"), 1.0]}}, r"stats.q99: y=nan; accepted: finite numbers"),
    ({"stats": {"q01": [0.0] * 2, "q99": [1.0] * 3}},
     r"stats.q01 has 2 values; accepted: one per column \(3: x, y, g\)"),
    ({"stats": {"q01": 0.0, "q99": [1.0] * 3}}, r"stats.q01=0.0; expected a list of numbers \(one per column\)"),
    ({"stats": {"q01": "000", "q99": [1.0] * 3}}, r"stats.q01='000'; expected a list of numbers"),
    ({"normalization": None, "stats": {"q01": [0.0] * 3, "q99": [1.0] * 3}},
     r"stats are given \(q01, q99\) but no normalization, .* set normalization to 'quantile' or 'quantile_rot'"),
    ({"domain": "pusht", "domain_id": 9, "action_dim": 2, "columns": ["x", "y"], "normalization": "none"},
     r"domain_id=9 but domain 'pusht' is action-head slot 4 \(registry.json\); accepted: 4 or no domain_id"),
    ({"domain": "umi", "domain_id": None, "normalization": "none"},
     r"action_dim=3 but domain 'umi' carries actions 10 wide \(registry.json\); accepted: 10"),
    ({"domain": "droid_lerobot", "domain_id": None, "normalization": "none"},
     r"action_dim=3 but domain 'droid_lerobot' carries actions 8 or 10 wide"),
])
def test_an_embodiment_spec_with_unusable_stats_or_a_foreign_domain_slot_is_refused(tmp_path, monkeypatch, change,
                                                                                      message):
    """q01 > q99, min > max and a negative std passed and flipped or blew up every action; a bare number failed with a
    TypeError and a string became its digits; a known domain took any id (another robot's head row) or width."""
    spec = {"name": "stats_bot", "domain": "worldpolicy_stats_bot", "domain_id": 21, "action_dim": 3,
            "columns": ["x", "y", "g"], "chunk_size": 16, "fps": 15, "normalization": "quantile", **change}
    _refused_as_spec_and_checkpoint(spec, r"embodiment 'stats_bot'.*", message, tmp_path, monkeypatch)


def _refused_as_spec_and_checkpoint(spec, prefix, message, tmp_path, monkeypatch):
    """`spec` (None values dropped) is refused when built, with `prefix` + `message`, and as a checkpoint's
    embodiment.json before any weights load."""
    from worldpolicy.embodiments import embodiment_from_spec
    from worldpolicy.engine import loading
    from worldpolicy.policy import Policy
    from worldpolicy.testing import make_tiny_checkpoint

    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(ValueError, match=prefix + message):
        embodiment_from_spec(spec)
    ckpt = make_tiny_checkpoint(tmp_path / "ckpt")
    (ckpt / "embodiment.json").write_text(json.dumps(spec))
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(ValueError, match=message):
        Policy.from_pretrained(ckpt)


@pytest.mark.parametrize(("change", "message"), [
    ({"composite": "droid_wrist_top"},
     (r"composite='droid_wrist_top' composes 3 cameras but camera_keys has 2 \(observation/scene, observation/wrist\); "
      r"accepted: 3 camera_keys")),
    ({"camera_keys": ["observation/scene"]},
     (r"composite='stacked' composes 2 or more cameras but camera_keys has 1 \(observation/scene\); accepted: 2 or "
      r"more camera_keys, or no composite")),
    ({"camera_keys": ["observation/scene", "observation/scene"]},
     r"camera_keys=\['observation/scene', 'observation/scene'\] names observation/scene twice; accepted: each camera"),
    ({"camera_keys": [], "composite": None}, r"camera_keys=\[\]; accepted: one or more camera keys"),
    ({"gripper_column": None},
     (r"gripper_flip=true but no gripper_column; accepted: a gripper_column naming the column to flip \(one of j0, "
      r"j1, gripper\), or gripper_flip=false")),
    ({"columns": ["j0", "", "gripper"]}, r"columns=\['j0', '', 'gripper'\] has an empty name; accepted: non-empty"),
    ({"units": ["rad", "", "1"]}, r"units=\['rad', '', '1'\] has an empty unit; accepted: non-empty"),
    ({"view_point": ["wrist_view"]}, r"view_point=\['wrist_view'\]; expected a string"),
    ({"domain": ["arm_bot"]}, r"domain=\['arm_bot'\]; expected a string"),
    ({"sampling_preset": 3}, r"sampling_preset=3; expected a string"),
    ({"domain_id": None},
     (r"domain 'arm_bot' is unknown and no domain_id was given; accepted: a domain of registry.json \(.*bridge"
      r"_orig_lerobot.*\), or domain_id set to a free action-head slot \(the lowest: \d+\)")),
])
def test_an_embodiment_spec_whose_cameras_gripper_or_names_cannot_work_is_refused(tmp_path, monkeypatch, change,
                                                                                  message):
    """A DROID composite of 2 cameras registered and failed after the weights loaded ('compose_droid() missing 1
    required positional argument'); duplicate or no camera keys, a gripper flip with no gripper column (no flip at
    all), empty column names or units, and a list or number where a name goes were taken (or failed as
    'unhashable type'); a new domain without a slot was not told which slots are free."""
    spec = {"name": "arm_bot", "domain": "arm_bot", "domain_id": 25, "action_dim": 3, "columns": ["j0", "j1", "gripper"],
            "units": ["rad", "rad", "1"], "chunk_size": 16, "fps": 30, "layout": "joint_position",
            "camera_keys": ["observation/scene", "observation/wrist"], "composite": "stacked",
            "gripper_column": "gripper", "gripper_flip": True, **change}
    _refused_as_spec_and_checkpoint(spec, r"embodiment 'arm_bot': ", message, tmp_path, monkeypatch)


def test_a_missing_camera_reads_as_its_message_and_is_still_a_key_error(rgb):
    """Python printed a missing camera's KeyError as the repr of its message: quoted, and its quotes escaped where it
    held both kinds). It reads as written, and is caught as a KeyError still."""
    import traceback

    from worldpolicy.errors import MissingKeyError, error_parameter
    from worldpolicy.processing.observations import frames_from_mapping

    with pytest.raises(KeyError) as caught:
        frames_from_mapping({"wrist": rgb}, ["observation/front"], "stacked")
    message = caught.value.args[0]
    assert isinstance(caught.value, MissingKeyError) and str(caught.value) == message
    assert traceback.format_exception_only(caught.value)[-1] == f"worldpolicy.errors.MissingKeyError: {message}\n"
    assert message.startswith("observation is missing camera keys ['observation/front']")
    assert error_parameter(caught.value)[1] == message  # the command line and agents read it as before


def test_a_missing_camera_names_the_keys_given_and_how_lerobot_keys_are_named(rgb):
    """An observation keyed like the LeRobot dataset it came from ('observation.images.front') was told only which keys
    it lacked; a single-camera embodiment's default key was listed twice ('observation/image', 'observation/image')."""
    from worldpolicy.processing.observations import frames_from_mapping

    keys = ["observation/front", "observation/wrist"]
    with pytest.raises(KeyError, match=r"is missing camera keys \['observation/front', 'observation/wrist'\].*got keys "
                                       r"\['observation.images.front', 'observation.images.wrist'\] \(LeRobot camera "
                                       r"keys go by their last part under 'observation/': 'observation.images.front' "
                                       r"-> 'observation/front', 'observation.images.wrist' -> 'observation/wrist'\)"):
        frames_from_mapping({"observation.images.front": rgb, "observation.images.wrist": rgb}, keys, "stacked")
    with pytest.raises(KeyError, match=r"^observation has no camera key; expected one of \['observation/image'\], "
                                       r"got keys \['observation/front'\]$"):  # as written, not a quoted repr
        frames_from_mapping({"observation/front": rgb}, ["observation/image"], None)
    # a pre-composed image stands for the composite when a camera is missing
    assert frames_from_mapping({"observation/image": rgb, keys[0]: rgb}, keys, "stacked").shape == (1, 48, 64, 3)
    assert frames_from_mapping({k: rgb for k in keys}, keys, "stacked").shape == (1, 96, 64, 3)


def test_inverse_dynamics_pairs_the_cameras_clips_from_their_first_frames(tmp_path, caplog):
    """The shipped model's exterior and wrist clips of different lengths were aligned at their ends without a word:
    a 22-frame exterior clip and a 5-frame wrist clip made frames 17..21 of one beside 0..4 of the other. A camera
    file at another frame rate than the embodiment's was not warned about (only a single video was)."""
    import logging

    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing.observations import clip_from_mapping
    from worldpolicy.processing.video import write_video

    policy = worldpolicy.load_policy("shipped")
    ext, wrist = policy.embodiment.camera_keys  # chunk 4: 5 frames are used, 6 read
    clip = np.repeat(np.arange(0, 220, 10, dtype=np.uint8)[:, None, None, None], 48, axis=1)
    clip = np.broadcast_to(clip, (22, 48, 64, 3))  # frame i is grey level 10 i
    composed = clip_from_mapping({ext: clip, wrist: clip[:6]}, (ext, wrist), "stacked", max_frames=6)
    np.testing.assert_allclose(composed[:, 0, 0, 0] * 255, composed[:, -1, 0, 0] * 255)  # frame i beside frame i
    np.testing.assert_allclose(composed[:, 0, 0, 0] * 255, np.arange(0, 60, 10), atol=1e-3)
    for given, held in (({ext: clip, wrist: clip[:5]}, f"{ext}: 6 or more, {wrist}: 5"),
                        ({ext: clip[:3], wrist: clip[:5]}, f"{ext}: 3, {wrist}: 5")):
        with pytest.raises(ValueError, match=f"the cameras' clips hold different numbers of frames \\({held}\\); "
                                             "inverse dynamics composes frame i of each camera, from the first"):
            policy._prepare(PolicyRequest(given, "reach", mode="inverse_dynamics"))
    write_video(tmp_path / "ext.mp4", clip[:6], 15)
    write_video(tmp_path / "wrist.mp4", clip[:12], 30)  # the same 0.4 s at twice the rate
    with pytest.raises(ValueError, match=f"{ext}: 6, {wrist}: 12"):
        clip_from_mapping({ext: tmp_path / "ext.mp4", wrist: tmp_path / "wrist.mp4"}, (ext, wrist), "stacked")
    write_video(tmp_path / "wrist.mp4", clip[:6], 30)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.policy"):
        policy._prepare(PolicyRequest({ext: tmp_path / "ext.mp4", wrist: tmp_path / "wrist.mp4"}, "reach",
                                      mode="inverse_dynamics"))
    assert f"video {tmp_path / 'wrist.mp4'} is 30 fps but embodiment actions are at 15 fps" in caplog.text
    assert "ext.mp4 is" not in caplog.text


def test_state_keys_are_the_two_roles_and_a_state_row_without_them_asks_for_state(tiny_policy, rgb):
    """A state-conditioned robot without `state_keys` (its state comes as state=[...]) failed with a bare
    KeyError('joints') when called with an observation dict; a state_keys list or other roles passed registration."""
    import copy

    from worldpolicy.policy import PolicyRequest

    base = {"name": "stateful_arm", "domain": "stateful_arm", "domain_id": 21, "action_dim": 3, "columns": ["a", "b", "g"],
            "chunk_size": 4, "fps": 10, "state_history": 1}
    for bad in (["observation/state"], {"state": "observation/state"}, {"joints": "observation/q"}):
        with pytest.raises(ValueError, match=r"embodiment 'stateful_arm': state_keys=.*; accepted: a map of joints and "
                                             r"gripper to the observation keys"):
            embodiment_from_dict(dict(base, variant="default", state_keys=bad))
    policy = copy.copy(tiny_policy)
    policy.embodiment = embodiment_from_dict(dict(base, variant="default"))
    with pytest.raises(ValueError, match=r"state is required for embodiment 'stateful_arm' \(a, b, g\): pass "
                                         r"state=\[...\] \(--state on the command line\); the embodiment names no "
                                         r"state_keys"):
        policy._state_row(PolicyRequest({"observation/image": rgb}, "x"))
    assert policy._state_row(PolicyRequest({"observation/image": rgb}, "x", state=[0.0, 0.0, 0.0])) is not None
    # a clip recorded elsewhere has no state: a registered embodiment's stateless variant is named, one of a dict or
    # spec file (only its own variant) says nothing more, and is not looked up in the registry (a KeyError)
    from worldpolicy.embodiments import get_embodiment, stateless_hint, stateless_variant

    assert stateless_variant(policy.embodiment) is None and stateless_hint(policy.embodiment, "{}") == ""
    assert stateless_variant(get_embodiment("droid/joint_pos")).key == "droid/relative_pose"
    policy.embodiment = get_embodiment("droid/joint_pos")
    with pytest.raises(ValueError, match=r"state is required for embodiment 'droid/joint_pos' .*; without the "
                                         r"robot's state \(a clip recorded elsewhere\), load_policy\(\.\.\., "
                                         r"embodiment='droid/relative_pose'\) conditions on none$"):
        policy._state_row(PolicyRequest(rgb, "x"))  # an image or clip: no dict to carry the state in


@pytest.mark.parametrize(("requests", "message"), [
    (worldpolicy.PolicyRequest(np.zeros((64, 64, 3), np.uint8), "x"), "got one PolicyRequest: pass [request]"),
    ({"observation": None, "prompt": "x"}, "got dict"),
    ([worldpolicy.PolicyRequest(np.zeros((64, 64, 3), np.uint8), "x"), {"prompt": "x"}], "got requests[1] of type dict"),
])
def test_act_batch_names_what_it_was_given_instead_of_a_list_of_requests(tiny_policy, requests, message):
    """'act_batch expects a list of PolicyRequest' said neither what was given nor, for the likeliest slip (one
    request), how to pass it."""
    with pytest.raises(TypeError, match=re.escape(f"requests must be a list of PolicyRequest, {message}")):
        tiny_policy.act_batch(requests)


def test_act_batch_refuses_a_progress_it_cannot_call_before_any_work(tiny_policy, monkeypatch):
    """A progress that is not callable failed only after the VAE encode and the first denoising step."""
    monkeypatch.setattr(tiny_policy.engine, "encode_video", lambda canvas: pytest.fail("encoded before the check"))
    request = worldpolicy.PolicyRequest(np.zeros((64, 64, 3), np.uint8), "x", steps=1)
    with pytest.raises(TypeError, match=r"progress must be a callable \(step, total\) or None, got bool"):
        tiny_policy.act_batch([request], progress=True)


def test_closing_a_policy_releases_its_model_and_later_calls_say_it_is_closed(tiny_checkpoint, monkeypatch):
    """A process that switches checkpoints needs the first one's memory back: `close` (or leaving `with`) drops the
    model, empties the CUDA cache on CUDA, and a later call names the policy as closed instead of running."""
    import gc
    import weakref

    image = np.zeros((64, 64, 3), np.uint8)
    with worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=4,
                                 resolution_tier=256, steps=1) as policy:
        assert policy.act(image, "pick").actions.shape == (4, 10)
        transformer, vae = weakref.ref(policy.engine.transformer), weakref.ref(policy.engine.vae)
    gc.collect()
    assert transformer() is None and vae() is None  # nothing of the model is left alive
    for call in (lambda: policy.act(image, "pick"), lambda: policy.act(image, ""), lambda: policy.engine):
        with pytest.raises(RuntimeError, match=r"this Policy \(.*tiny\) is closed: .*Policy.from_pretrained"):
            call()  # said before anything else: a bad prompt too gets the closed error
    policy.close()  # twice is harmless

    emptied = []
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", resolution_tier=256)
    policy.close()
    assert emptied == []  # a CPU policy leaves CUDA alone
    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", resolution_tier=256)
    policy.engine.device = torch.device("cuda", 0)  # as a CUDA load records it
    policy.close()
    assert emptied == [True]


def test_short_actions_are_named_by_their_file_when_they_came_from_one(tiny_policy, tmp_path, caplog):
    """The padding warning said "actions: 5 rows given" whether the rows came from a file or from memory."""
    from worldpolicy.policy import PolicyRequest

    image = np.zeros((64, 64, 3), np.uint8)
    rows = np.zeros((5, 10))
    np.save(tmp_path / "a.npy", rows)
    with caplog.at_level(logging.WARNING, logger="worldpolicy.processing.actions"):
        for actions in (tmp_path / "a.npy", str(tmp_path / "a.npy"), rows):
            tiny_policy._prepare(PolicyRequest(image, "x", mode="forward_dynamics", actions=actions,
                                               actions_space="normalized"))
    named = [m.split(": 5 rows given")[0] for m in caplog.messages if ": 5 rows given" in m]
    assert named == [f"actions file {str(tmp_path / 'a.npy')!r}"] * 2 + ["actions"], caplog.messages


def test_an_animated_gif_at_another_frame_rate_is_warned_as_a_video_is(tiny_policy, tmp_path, caplog):
    """Only video files had their rate judged: a GIF's frames carry durations (PIL info["duration"], in 10 ms steps),
    so a 30 fps GIF under a 15 fps embodiment gave actions spanning half the time without a word."""
    from PIL import Image

    from worldpolicy.policy import PolicyRequest
    from worldpolicy.processing.observations import clip_fps

    pages = [Image.fromarray(np.full((64, 64, 3), 10 * i, np.uint8)) for i in range(18)]

    def gif(name, **durations):
        pages[0].save(tmp_path / name, save_all=True, append_images=pages[1:], **durations)
        return tmp_path / name

    fast, near, timeless = gif("fast.gif", duration=30), gif("near.gif", duration=70), gif("timeless.gif")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, page in enumerate(pages):
        page.save(folder / f"{i}.png")
    assert clip_fps(fast) == pytest.approx(1000 / 30) and clip_fps(near) == pytest.approx(1000 / 70)
    assert clip_fps(timeless) is None and clip_fps(folder) is None and clip_fps(folder / "0.png") is None
    with caplog.at_level(logging.WARNING, logger="worldpolicy.policy"):
        for clip in (near, timeless, folder):  # 14.3 fps is within 10 % of 15
            tiny_policy._prepare(PolicyRequest(clip, "x", mode="inverse_dynamics"))
        assert "fps but embodiment actions are at" not in caplog.text
        tiny_policy._prepare(PolicyRequest(fast, "x", mode="inverse_dynamics"))
    assert f"video {fast} is 33.3 fps but embodiment actions are at 15 fps" in caplog.text
