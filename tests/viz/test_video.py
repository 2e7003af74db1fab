import numpy as np
import pytest

from worldpolicy.embodiments import get_embodiment
from worldpolicy.processing.video import read_video
from worldpolicy.viz import video as vv


def _clip(n: int, h: int, w: int, colour: tuple[int, int, int]) -> np.ndarray:
    v = np.zeros((n, h, w, 3), np.uint8)
    v[...] = colour
    v[:, : h // 2, : w // 2] = 255 - np.asarray(colour, np.uint8)  # some structure so the encoder keeps detail
    return v


def _playhead_columns(frame: np.ndarray, other: np.ndarray) -> list[int]:
    """Columns where `frame` is dark (playhead colour) and differs from `other` over a long vertical run."""
    dark = np.all(frame < 40, axis=-1) & np.any(frame != other, axis=-1)
    return np.flatnonzero(dark.sum(axis=0) > 60).tolist()


def test_playhead_moves_right_and_video_sits_left(joint_chunk):
    e = get_embodiment("droid")
    video = _clip(9, 96, 128, (0, 160, 0))
    frames, rate = vv.animation_frames(joint_chunk[:8], e.columns, e.units, e.fps, "gripper", video, video_fps=15)
    assert rate == 15 and frames.shape[0] == 9
    h = frames.shape[1]
    strip = vv.label_height(h)
    panel_w = round(128 * (h - strip) / 96)
    # the video panel is on the left: mostly the clip's green below the caption strip
    left = frames[0, strip:, panel_w - 10 : panel_w - 2]
    assert np.mean(np.all(left == (0, 160, 0), axis=-1)) > 0.9
    plot0, plot_last = frames[0, :, panel_w:], frames[-1, :, panel_w:]
    cols0, cols_last = _playhead_columns(plot0, plot_last), _playhead_columns(plot_last, plot0)
    assert len(cols0) >= 2 and len(cols_last) >= 2  # one playhead per subplot column (8 dims → 2 columns)
    assert cols_last[0] > cols0[0] + 50  # 0 s → 0.53 s moved well to the right
    assert cols_last[-1] > cols0[-1] + 50


def test_animation_without_video_has_one_frame_per_step(joint_chunk):
    e = get_embodiment("droid")
    frames, rate = vv.animation_frames(joint_chunk[:6], e.columns, e.units, e.fps, "gripper")
    assert frames.shape[0] == 6 and rate == e.fps
    assert not np.array_equal(frames[0], frames[-1])


def test_animate_writes_mp4_with_frame_count(tmp_path, pose_chunk):
    e = get_embodiment("bridge")
    video = _clip(5, 64, 64, (200, 30, 30))
    out = vv.animate_actions(pose_chunk[:4], e.columns, e.units, e.fps, tmp_path / "anim.mp4", "grasp", video, 5)
    frames, fps = read_video(out)
    assert frames.shape[0] == 5 and fps == pytest.approx(5)
    assert frames.std() > 10  # not blank


def test_a_streamed_video_animates_as_the_array_does(tmp_path, joint_chunk):
    """viz streams `--video` (every frame is drawn, none held): the frames are the array's, a bad one is named."""
    from worldpolicy.processing.video import iter_video, write_video

    e = get_embodiment("droid")
    clip = np.stack([_clip(1, 48, 64, (30 * k, 100, 200 - 30 * k))[0] for k in range(6)])
    write_video(tmp_path / "clip.mp4", clip, 15)
    decoded, _ = read_video(tmp_path / "clip.mp4")
    whole, _ = vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=decoded, video_fps=15)
    streamed, _ = vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=iter_video(tmp_path / "clip.mp4"),
                                      video_fps=15)
    np.testing.assert_array_equal(streamed, whole)
    bad = iter([clip[0], clip[1].astype(np.float32)])  # 0..255 floats: not the [0, 1] a float frame means
    with pytest.raises(ValueError, match=r"video frame 1: float pixels must lie in \[0, 1\], got \[30, 225\]"):
        vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=bad, video_fps=15)
    with pytest.raises(ValueError, match="the stream gave no frames"):
        vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=iter([]), video_fps=15)


def test_side_by_side_layout_and_hold(tmp_path):
    a = _clip(6, 64, 160, (255, 0, 0))
    b = _clip(3, 128, 256, (0, 0, 255))
    frames = vv.side_by_side_frames([a, b], ["sim", "imagined"])
    assert frames.shape == (6, 64 + vv.LABEL_HEIGHT, 160 + vv.GAP + 128, 3)
    # right clip ended after 3 frames: it holds its last frame
    assert np.array_equal(frames[5, vv.LABEL_HEIGHT :, 164:], frames[2, vv.LABEL_HEIGHT :, 164:])
    assert np.all(frames[0, -1, 150] == (255, 0, 0)) and np.all(frames[0, -1, 280] == (0, 0, 255))
    out = vv.write_side_by_side([a, b], ["sim", "imagined"], 10, tmp_path / "sbs.mp4")
    decoded, fps = read_video(out)
    assert decoded.shape[0] == 6 and fps == pytest.approx(10)


def test_side_by_side_of_float_clips_is_the_uint8_one(tmp_path):
    """Float clips in [0, 1] (as imageio and PIL users hold them) were refused; they lay out as their uint8 pixels."""
    a = _clip(3, 64, 80, (255, 0, 0))
    np.testing.assert_array_equal(vv.side_by_side_frames([a / 255.0], ["sim"]), vv.side_by_side_frames([a], ["sim"]))


@pytest.mark.parametrize(
    "videos, labels, match",
    [
        ([], [], "at least one"),
        ([np.zeros((2, 8, 8, 3), np.uint8)], ["a", "b"], "labels has 2"),
        ([np.zeros((2, 8, 8), np.uint8)], ["a"], r"videos\[0\]"),
        ([np.full((2, 8, 8, 3), 255.0, np.float32)], ["a"], r"videos\[0\]: float pixels must lie in \[0, 1\], got \[255"),
    ],
)
def test_side_by_side_bad_input(videos, labels, match):
    with pytest.raises(ValueError, match=match):
        vv.side_by_side_frames(videos, labels, height=32)


def test_viz_never_overwrites_its_inputs_and_reads_the_video_first(tmp_path, joint_chunk, actions_json, capsys):
    import json

    from worldpolicy.cli import main
    from worldpolicy.processing.video import write_video

    run, mine = tmp_path / "run", tmp_path / "mine"
    run.mkdir()
    mine.mkdir()
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    write_video(mine / "animation.mp4", np.zeros((5, 32, 32, 3), np.uint8), 15)
    before = (mine / "animation.mp4").read_bytes()
    assert main(["viz", str(run), "--video", str(mine / "animation.mp4"), "--out", str(mine)]) == 2
    assert "video=" in capsys.readouterr().err and (mine / "animation.mp4").read_bytes() == before
    (mine / "broken.mp4").write_bytes(b"not a video")
    assert main(["viz", str(run), "--video", str(mine / "broken.mp4"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()  # nothing drawn before the video was read
    assert main(["viz", str(run), "--video", str(mine / "animation.mp4"), "--out", str(tmp_path / "ok")]) == 0


def test_a_user_clip_is_labelled_video_not_imagined(joint_chunk):
    e = get_embodiment("droid")
    clip = np.zeros((4, 32, 32, 3), np.uint8)
    frames, _ = vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=clip, video_fps=15,
                                    video_label="video")
    imagined, _ = vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=clip, video_fps=15)
    assert frames.shape == imagined.shape and not np.array_equal(frames[0], imagined[0])  # the caption differs
    with pytest.raises(ValueError, match="video_fps=0"):
        vv.animation_frames(joint_chunk, e.columns, e.units, e.fps, video=clip, video_fps=0)


def test_report_serve_on_a_bad_port_is_one_line(tmp_path, capsys):
    from worldpolicy.cli import main

    assert main(["report", str(tmp_path), "--serve", "--port", "99999"]) == 2
    assert "--port 99999: expected 0..65535" in capsys.readouterr().err


def test_viz_refuses_an_out_that_holds_another_run(tmp_path, joint_chunk, actions_json, capsys):
    import json

    from worldpolicy.cli import main

    run, sim = tmp_path / "run", tmp_path / "sim"
    run.mkdir()
    sim.mkdir()
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    (sim / "report.json").write_text("{}")
    assert main(["viz", str(run), "--no-animation", "--out", str(sim)]) == 2
    assert f"--out: {str(sim)!r} holds a sim run (report.json), not viz plots" in capsys.readouterr().err
    assert [p.name for p in sim.iterdir()] == ["report.json"]
    assert main(["viz", str(run), "--no-animation", "--out", str(run)]) == 2  # the predict run itself
    assert "holds a predict run (actions.json), not viz plots" in capsys.readouterr().err
    assert main(["viz", str(run), "--no-animation", "--out", str(run / "plots")]) == 0  # the default place
    assert main(["viz", str(run), "--no-animation", "--out", str(run / "plots")]) == 0  # and again


def test_a_clip_shorter_than_the_chunk_holds_its_last_frame_while_the_playhead_runs_on(joint_chunk):
    """A 3-frame clip beside a 12-step chunk stopped the animation at 0.13 s of 0.73 s: 9 actions never animated."""
    e = get_embodiment("droid")
    clip = _clip(3, 48, 64, (0, 160, 0))
    frames, rate = vv.animation_frames(joint_chunk[:12], e.columns, e.units, e.fps, "gripper", clip, video_fps=15)
    assert rate == 15 and frames.shape[0] == 12  # frame k at k / 15 s until the last action, 11 / 15 s
    strip = vv.label_height(frames.shape[1])
    panel_w = round(64 * (frames.shape[1] - strip) / 48)
    held = [frames[k, strip:, :panel_w] for k in (2, 7, 11)]
    assert np.array_equal(held[0], held[1]) and np.array_equal(held[0], held[2])
    assert not np.array_equal(frames[2, :strip], frames[7, :strip])  # the caption still counts time ("ended")
    plot = frames[:, :, panel_w:]
    assert _playhead_columns(plot[11], plot[2])[0] > _playhead_columns(plot[2], plot[11])[0] + 100


def test_captions_grow_with_the_clip_and_are_never_cut():
    """A fixed 10-pixel caption was unreadable on an 800-pixel animation, and a long one was cut at a narrow clip's
    edge ("simulated  frame" of "simulated  frame 2 (ended)")."""
    from PIL import ImageFont

    assert vv.label_height(96) == vv.LABEL_HEIGHT and vv.label_height(826) > 1.5 * vv.LABEL_HEIGHT
    narrow, wide = _clip(3, 60, 40, (0, 200, 0)), _clip(8, 60, 200, (200, 0, 0))
    frames = vv.side_by_side_frames([narrow, wide], ["simulated", "imagined"])
    caption = "simulated  frame 2 (ended)"
    narrow_panel = frames.shape[2] - vv.GAP - 200
    assert narrow_panel >= ImageFont.load_default(size=9).getlength(caption) + 12
    assert np.array_equal(frames[0, vv.LABEL_HEIGHT :, narrow_panel // 2], np.full((60, 3), (0, 200, 0)))  # centred


def test_inverse_dynamics_input_frames_past_the_clip_are_captioned_as_copies(joint_chunk):
    """The padded input of a 3-frame clip (chunk 4: real_rows 2) showed frames 3 and 4 as if the clip had them."""
    e = get_embodiment("droid")
    clip = _clip(5, 48, 64, (0, 160, 0))  # frames 3 and 4: copies of frame 2, as the engine pads
    plain, _ = vv.animation_frames(joint_chunk[:4], e.columns, e.units, e.fps, "gripper", clip, video_fps=e.fps)
    marked, _ = vv.animation_frames(joint_chunk[:4], e.columns, e.units, e.fps, "gripper", clip, video_fps=e.fps,
                                    real_rows=2)
    strip = vv.label_height(plain.shape[1])
    panel_w = round(64 * (plain.shape[1] - strip) / 48)
    same = [np.array_equal(plain[k, :strip, :panel_w], marked[k, :strip, :panel_w]) for k in range(5)]
    assert same == [True, True, True, False, False]


def test_an_animation_of_a_wide_chunk_beside_a_wide_clip_fits_what_players_decode_and_keeps_its_plot_sharp():
    """57 columns beside a 16:9 clip made 6050x2276 frames (H.264 level 6), past the 4096x2304 that hardware decoders
    and the Windows and macOS players take. Scaled down whole to fit, the plot's labels shrank past reading: the clip
    is drawn smaller instead, the plot at its own size."""
    e = get_embodiment("hand_pose")
    chunk = np.zeros((1, e.action_dim))
    clip = _clip(2, 704, 1280, (0, 160, 0))
    frames, _ = vv.animation_frames(chunk, e.columns, e.units, e.fps, video=clip, video_fps=e.fps)
    alone, _ = vv.animation_frames(chunk, e.columns, e.units, e.fps)
    height, width = frames.shape[1:3]
    assert width <= vv.MAX_FRAME_SIZE[0] and height <= vv.MAX_FRAME_SIZE[1]
    assert np.array_equal(frames[0, :, width - alone.shape[2]:], alone[0])  # the plot, pixel for pixel
    panel = frames[0, :, : width - alone.shape[2]]
    green = np.all(panel == (0, 160, 0), axis=-1)
    rows = np.flatnonzero(green.any(axis=1))
    assert rows[0] == vv.label_height(height) and rows[-1] < height - 100  # the clip under its caption, white below
    assert np.all(panel[rows[-1] + 1 :] == 255)
    droid = get_embodiment("droid")  # where there is room, a clip is as tall as the plot, as before
    frames, _ = vv.animation_frames(np.zeros((1, 8)), droid.columns, droid.units, droid.fps, video=clip[:, ::4, ::4],
                                    video_fps=droid.fps)
    assert np.all(frames[0, -1, 5] == (0, 160, 0))


def test_caption_parts_are_set_apart_by_more_than_a_space(monkeypatch):
    """At a small clip's font size two spaces drew as one and one as none: "imagined frame 4(ended)"."""
    captions = []
    real = vv.caption_above

    def caption_above(frame, text, *args, **kwargs):
        captions.append(text)
        return real(frame, text, *args, **kwargs)

    monkeypatch.setattr(vv, "caption_above", caption_above)
    clip = np.zeros((5, 32, 48, 3), np.uint8)
    vv.side_by_side_frames([np.zeros((8, 32, 48, 3), np.uint8), clip], ["simulated", "imagined"])
    assert captions[-2:] == ["simulated · frame 7", "imagined · frame 4 · ended"]


def test_a_long_animation_draws_every_kth_frame_at_the_rate_that_keeps_its_length(joint_chunk, monkeypatch):
    """A whole-clip inverse dynamics run of 2000 frames drew and encoded each one (minutes, hundreds of MB, for a
    playhead): past MAX_ANIMATION_FRAMES every k-th frame is drawn, at 1/k of the rate, the clip still its own."""
    monkeypatch.setattr(vv, "MAX_ANIMATION_FRAMES", 10)
    e = get_embodiment("droid")
    chunk = np.concatenate([joint_chunk, joint_chunk[:1]])[:25]  # 25 steps: every 3rd, steps 0, 3, ..., 24
    frames, rate = vv.animation_frames(chunk, e.columns, e.units, e.fps, "gripper")
    assert frames.shape[0] == 9 and rate == pytest.approx(e.fps / 3)
    reds = np.arange(25) * 10
    video = np.zeros((25, 32, 32, 3), np.uint8)
    video[..., 0] = reds[:, None, None]  # frame k is red k * 10: which frame a panel shows
    shown, rate = vv.animation_frames(chunk, e.columns, e.units, e.fps, "gripper", video, video_fps=e.fps)
    strip = vv.label_height(shown.shape[1])
    panel = shown[:, strip + 4 : strip + 20, 4:20, 0].astype(float).mean(axis=(1, 2))
    assert rate == pytest.approx(e.fps / 3) and np.allclose(panel, reds[::3], atol=3)
    # a streamed clip shorter than the chunk: its frames 0, 3, 6, 9 drawn, then the last held to the chunk's end
    short, rate = vv.animation_frames(chunk, e.columns, e.units, e.fps, "gripper", iter(video[:10]), video_fps=e.fps)
    panel = short[:, strip + 4 : strip + 20, 4:20, 0].astype(float).mean(axis=(1, 2))
    assert rate == pytest.approx(e.fps / 3) and np.allclose(panel, [0, 30, 60, 90, 90, 90, 90, 90, 90], atol=3)
    assert not np.array_equal(short[-1, :, -200:], short[-2, :, -200:])  # the playhead still moves


def test_a_whole_clips_re_decoded_frames_are_captioned_by_their_clip_frame(tmp_path, joint_chunk, actions_json,
                                                                           monkeypatch):
    """A whole clip read from frame 40 at half its rate: the animation captioned rollout.mp4's frame 1 "frame 1",
    while the plot's top axis and the actions file say that row starts at clip frame 42."""
    import json

    from worldpolicy.processing.video import write_video
    from worldpolicy.viz.run import visualize

    doc = actions_json("droid", joint_chunk[:8], "inverse_dynamics")
    doc["settings"] = {"real_rows": 8, "clip": {"start_frame": 40, "frames_used": list(range(40, 57, 2)),
                                                "clip_fps": 30.0, "resampled": True, "window_rows": [4, 4]}}
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    write_video(tmp_path / "rollout.mp4", _clip(9, 32, 32, (0, 160, 0)), 15)
    captions = []
    caption_above = vv.caption_above
    monkeypatch.setattr(vv, "caption_above", lambda frame, text, *a, **k: captions.append(text) or caption_above(
        frame, text, *a, **k))
    visualize(tmp_path)
    assert captions[0] == vv.SEP.join(("re-decoded input video", "t = 0.00 s", "clip frame 40"))
    assert [c.rsplit(vv.SEP, 1)[-1] for c in captions] == [f"clip frame {f}" for f in range(40, 57, 2)]
    captions.clear()  # another clip given with --video is captioned by its own frames
    visualize(tmp_path, video=tmp_path / "rollout.mp4", out_dir=tmp_path / "other")
    assert captions[1].endswith(f"{vv.SEP}frame 1")


def test_a_whole_trajectorys_animation_captions_the_chunk_each_frame_belongs_to(tmp_path, joint_chunk, actions_json,
                                                                               monkeypatch):
    """A 10-row trajectory rolled out in chunks of 4, 4 and 2: its rollout.mp4 ran on with nothing to say which chunk
    imagined a frame, nor that frames 4 and 8 are what the next chunk starts from (where drift begins)."""
    import json

    from worldpolicy.processing.trajectory import TrajectoryChunks
    from worldpolicy.processing.video import write_video
    from worldpolicy.viz.run import visualize

    doc = actions_json("droid", joint_chunk[:10], "forward_dynamics")
    doc["settings"]["trajectory"] = TrajectoryChunks(joint_chunk[:10], 4, seed=0).settings(True)
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    write_video(tmp_path / "rollout.mp4", _clip(11, 32, 32, (0, 160, 0)), doc["fps"])
    captions = []
    caption_above = vv.caption_above
    monkeypatch.setattr(vv, "caption_above", lambda frame, text, *a, **k: captions.append(text) or caption_above(
        frame, text, *a, **k))
    visualize(tmp_path)
    said = [c.split(vv.SEP, 2)[-1] for c in captions]  # after the label and time
    assert captions[0] == vv.SEP.join(("imagined video", "t = 0.00 s", "frame 0",
                                       "observation: chunk 0 starts from it"))
    assert said[1:] == [f"frame {k}{vv.SEP}{chunk}" for k, chunk in [
        (1, "chunk 0"), (2, "chunk 0"), (3, "chunk 0"), (4, "chunk 0; chunk 1 starts from it"),
        (5, "chunk 1"), (6, "chunk 1"), (7, "chunk 1"), (8, "chunk 1; chunk 2 starts from it"),
        (9, "chunk 2"), (10, "chunk 2")]]
    captions.clear()  # a single chunk is captioned as ever
    doc["settings"]["trajectory"] = TrajectoryChunks(joint_chunk[:10], 12, seed=0).settings(False)
    (tmp_path / "actions.json").write_text(json.dumps(doc))
    visualize(tmp_path)
    assert captions[4] == vv.SEP.join(("imagined video", f"t = {4 / doc['fps']:.2f} s", "frame 4"))


@pytest.mark.parametrize("given", [("wrist_image_left", "exterior_image_1_left", "exterior_image_2_left"), ("image",)])
def test_a_runs_animation_names_the_camera_in_each_part_of_the_models_composed_video(tmp_path, joint_chunk,
                                                                                     actions_json, given):
    """rollout.mp4 shows the model's frames, the embodiment's cameras composed into one picture (DROID: the wrist on
    top, the exteriors below), and nothing said which part was which camera: the animation beside the plot labels
    each part with its camera's name (rollout.mp4 itself stays the model's frames, which a run reads back). One image
    given (pre-composed) has no parts known to label."""
    import json

    from PIL import Image

    from worldpolicy.processing.observations import composite_regions
    from worldpolicy.processing.video import write_video
    from worldpolicy.viz.run import OBSERVATION_FOLDER, visualize

    run = tmp_path / "run"
    (run / OBSERVATION_FOLDER).mkdir(parents=True)
    (run / "actions.json").write_text(json.dumps(actions_json("droid", joint_chunk)))
    write_video(run / "rollout.mp4", np.full((3, 264, 320, 3), 128, np.uint8), 15)
    frames = {}
    for labelled in (False, True):
        for name in given if labelled else ():
            Image.new("RGB", (64, 48)).save(run / OBSERVATION_FOLDER / f"{name}.png")
        visualize(run, tmp_path / f"plots_{labelled}")
        frames[labelled] = read_video(tmp_path / f"plots_{labelled}" / "animation.mp4")[0][0].astype(int)
    assert frames[True].shape == frames[False].shape
    changed = np.abs(frames[True] - frames[False]).max(axis=-1) > 60
    if len(given) == 1:
        assert not changed.any()
        return
    # the video panel: the grey columns at the left of the frame's bottom row, below the caption strip
    grey = np.flatnonzero(np.abs(frames[False][-1] - 128).max(axis=-1) < 12)
    width = grey.max() + 1
    top = np.flatnonzero(np.abs(frames[False][:, width // 2] - 128).max(axis=-1) < 12).min()
    height = frames[False].shape[0] - top
    assert changed[:, width:].sum() == 0  # only the video panel is labelled, never the plot
    droid = get_embodiment("droid")
    for key, (y0, x0, _, x1) in composite_regions(droid.camera_keys, droid.camera_keys, droid.composite).items():
        y, x = top + round(y0 * height), round(x0 * width)
        corner = changed[max(y - 2, top):y + 14, x:x + round((x1 - x0) * width)]
        assert corner.sum() > 20, key  # the camera's name, dark in a white box, at its part's top-left


def test_a_runs_composed_cameras_are_found_for_the_shipped_model_and_from_camera_inputs(tmp_path):
    """The demo's runs are the shipped model's, whose `panda_reach` is registered nowhere: its cameras' places come
    from the checkpoint the run's settings name (found without fetching). An inverse dynamics run keeps no observation
    images: its `--camera KEY` inputs name its cameras."""
    from PIL import Image

    from worldpolicy.viz.run import OBSERVATION_FOLDER, rollout_regions

    run = tmp_path / "run"
    (run / OBSERVATION_FOLDER).mkdir(parents=True)
    for name in ("exterior_image_1_left", "wrist_image_left"):
        Image.new("RGB", (32, 32)).save(run / OBSERVATION_FOLDER / f"{name}.png")
    shipped = {"embodiment": "panda_reach", "settings": {"checkpoint": "shipped"}}
    assert rollout_regions(run, shipped) == {"exterior_image_1_left": (0.0, 0.0, 0.5, 1.0),
                                             "wrist_image_left": (0.5, 0.0, 1.0, 1.0)}  # stacked, in its key order
    assert rollout_regions(run, {"embodiment": "panda_reach", "settings": {}}) is None  # no checkpoint: not known
    assert rollout_regions(run, {"embodiment": "panda_reach", "settings": {"checkpoint": "someone/not-here"}}) is None
    clips = tmp_path / "id_run"
    clips.mkdir()
    inputs = {f"--camera observation/{name}": f"/clips/{name}.mp4"
              for name in ("wrist_image_left", "exterior_image_1_left", "exterior_image_2_left")}
    regions = rollout_regions(clips, {"embodiment": "droid", "settings": {"inputs": inputs}})
    assert list(regions) == ["wrist_image_left", "exterior_image_1_left", "exterior_image_2_left"]
    assert rollout_regions(clips, {"embodiment": "droid", "settings": {"inputs": {"--video": "/c.mp4"}}}) is None
