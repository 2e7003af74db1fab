"""`worldpolicy dataset from-videos` / `videos_to_dataset`: a folder of raw clips (no actions, no states) as a LeRobot
v3 dataset that `dataset label` labels. The clips are written here with PyAV: a variable-frame-rate one, a portrait
one, one with an audio track, a damaged one, a one-frame one."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from worldpolicy.cli import main
from worldpolicy.data.from_videos import (
    FROM_VIDEOS_SOURCE,
    VIDEO_FEATURE,
    chosen_frames,
    expected_size,
    letterbox,
    videos_to_dataset,
)
from worldpolicy.embodiments import get_embodiment
from worldpolicy.processing.clip import resampled_frames

STEP = 20  # frame i of a clip is grey level STEP * i: which frame was kept reads off its pixels


def _clip(path: Path, times_ms, height: int = 48, width: int = 64, audio: bool = False, pixels=None,
          rotation: int = 0, hflip: bool = False, vflip: bool = False) -> Path:
    """An H.264 clip whose frame i is shown at times_ms[i] (its own presentation timestamps) and is flat grey
    STEP * i (or `pixels(i)`), with a silent AAC track where asked, shown turned `rotation` degrees counterclockwise
    and then mirrored left to right (`hflip`) or top to bottom (`vflip`) (its display matrix, as a phone stores a
    portrait clip, or a front camera a mirrored one)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation or hflip or vflip:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        sound = container.add_stream("aac", rate=16000) if audio else None
        for i, at in enumerate(times_ms):
            image = np.full((height, width, 3), STEP * i, np.uint8) if pixels is None else pixels(i)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = at, Fraction(1, 1000)
            container.mux(stream.encode(frame))
            if sound is not None:
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, i * 1024
                container.mux(sound.encode(chunk))
        container.mux(stream.encode())
        if sound is not None:
            container.mux(sound.encode())
    return path


def _levels(video: np.ndarray) -> list[int]:
    """Which clip frame each kept frame is, from its grey level (H.264 keeps a flat grey within a few levels)."""
    return [round(float(frame.mean()) / STEP) for frame in video]


def test_frames_are_chosen_by_the_clips_presentation_timestamps_not_its_average_rate(tmp_path):
    # variable frame rate: a 170 ms gap, then frames 20 ms apart
    clip = _clip(tmp_path / "vfr.mp4", [0, 40, 80, 250, 300, 320, 400])
    ds = videos_to_dataset([clip], tmp_path / "out", task="pick up the cube", fps=10).dataset
    # 0, 100, 200, 300, 400 ms: the frames at 0, 80 (nearer 100 than 250), 250, 300, 400
    assert _levels(ds.episode(0).videos[VIDEO_FEATURE]) == [0, 2, 3, 4, 6]
    # the header's average rate, as if evenly spaced, would keep other frames
    assert resampled_frames(7, 7 / 0.42, 10) != [0, 2, 3, 4, 6]
    assert ds.fps == 10 and ds.episode(0).task == "pick up the cube"


def test_evenly_spaced_frames_are_chosen_as_resampling_chooses_them():
    # (10, 20), (12, 24), (30, 20): timestamps halfway between two frames, ties to the later one as resampling breaks
    # them (they went either way as floating point rounded: 10 fps read at 20 gave frames 0, 1, 1, 1, 2, 3, 3, 3, ...)
    for clip_fps, fps, count in ((30, 15, 31), (10, 15, 12), (30, 10, 7), (24, 15, 50), (10, 20, 7), (12, 24, 30),
                                 (30, 20, 31)):
        times = [i / clip_fps for i in range(count)]
        assert chosen_frames(times, 1 / clip_fps, fps) == resampled_frames(count, clip_fps, fps)


def test_letterbox_geometry():
    assert letterbox(64, 32, (32, 64), "pad") == ((32, 16), (0, 24))  # portrait into landscape: bars left and right
    assert letterbox(64, 32, (32, 64), "crop") == ((128, 64), (-48, 0))  # covers: top and bottom cut evenly
    assert letterbox(64, 32, (32, 64), "stretch") == ((32, 64), (0, 0))
    assert letterbox(48, 64, (96, 128), "pad") == ((96, 128), (0, 0))  # the same shape: scaled only


def test_a_portrait_clip_is_letterboxed_keeping_its_proportions(tmp_path):
    landscape = _clip(tmp_path / "a.mp4", [0, 100, 200], 32, 64, pixels=lambda i: np.full((32, 64, 3), 128, np.uint8))
    portrait = _clip(tmp_path / "b.mp4", [0, 100, 200], 64, 32, pixels=lambda i: np.full((64, 32, 3), 255, np.uint8))
    ds = videos_to_dataset([landscape, portrait], tmp_path / "out", task="t", fps=10).dataset
    assert ds.features[VIDEO_FEATURE]["shape"] == [32, 64, 3]  # the first clip's size
    frames = ds.episode(1).videos[VIDEO_FEATURE]
    assert frames.shape == (3, 32, 64, 3)
    assert frames[:, :, :22].max() <= 8 and frames[:, :, 42:].max() <= 8  # black bars beside it
    assert frames[:, 2:-2, 26:38].min() >= 240  # the picture 16 wide in the middle, whole in height
    stretched = videos_to_dataset([portrait], tmp_path / "st", task="t", fps=10, size=(32, 64), fit="stretch")
    assert stretched.dataset.episode(0).videos[VIDEO_FEATURE][:, 2:-2, 2:-2].min() >= 240


def test_a_clip_stored_turned_is_turned_upright_as_players_show_it(tmp_path):
    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :16] = 255  # stored: a white block top left
    clip = _clip(tmp_path / "phone.mp4", [0, 100, 200], 32, 64, pixels=lambda i: image, rotation=90)
    result = videos_to_dataset([clip], tmp_path / "out", task="t", fps=10)
    assert result.size == (64, 32)  # portrait, as shown
    shown = result.dataset.episode(0).videos[VIDEO_FEATURE] > 128
    want = np.rot90(image, 1) > 128  # turned counterclockwise: the block bottom left (as ffmpeg's player shows it)
    assert want[-16:, :8].all() and (shown != want).mean() < 0.02


@pytest.mark.parametrize("rotation, hflip, vflip", [(0, True, False), (0, False, True), (90, True, False),
                                                    (270, False, True), (180, True, False)])
def test_a_clip_stored_mirrored_is_mirrored_back_as_players_show_it(tmp_path, rotation, hflip, vflip):
    """A display matrix that mirrors (a front camera's clip) is shown mirrored, as ffmpeg's player shows it (checked
    against `ffmpeg -i CLIP` for each of the eight turns and mirrors); it was only turned, shown mirrored wrong."""
    image = np.zeros((32, 64, 3), np.uint8)
    image[:8, :16] = 255  # stored: a white block top left
    clip = _clip(tmp_path / "selfie.mp4", [0, 100, 200], 32, 64, pixels=lambda i: image, rotation=rotation,
                 hflip=hflip, vflip=vflip)
    result = videos_to_dataset([clip], tmp_path / "out", task="t", fps=10)
    want = np.rot90(image, rotation // 90) > 128
    want = want[:, ::-1] if hflip else want[::-1] if vflip else want
    assert result.size == want.shape[:2]
    shown = result.dataset.episode(0).videos[VIDEO_FEATURE] > 128
    assert (shown != want).mean() < 0.02


def test_the_bar_counts_frames_written_so_a_single_long_clip_moves(tmp_path, monkeypatch):
    """The bar counted clips: one long clip sat at 0/1 for minutes. It counts frames, block by block, its total
    growing by each clip's frames once its timestamps are read (a skipped clip adds none)."""
    import tqdm.auto

    bars = []

    class RecordingBar(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps = []
            bars.append(self)

        def update(self, n=1):
            self.steps.append((n, self.total))
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    long = _clip(tmp_path / "long.mp4", range(0, 7000, 100), pixels=lambda i: np.zeros((48, 64, 3), np.uint8))
    # 70 frames: two blocks of up to 64
    short = _clip(tmp_path / "short.mp4", [0])  # one frame: skipped
    videos_to_dataset([long, short], tmp_path / "out", task="t", fps=10, progress=True)
    (bar,) = bars
    assert bar.unit == "frame" and bar.steps == [(64, 70), (6, 70)] and bar.n == bar.total == 70


def test_damaged_and_too_short_clips_are_skipped_and_listed_the_others_written(tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    _clip(clips / "a_good.mp4", [0, 100, 200, 300])
    _clip(clips / "b_audio.mp4", [0, 100, 200], audio=True)
    _clip(clips / "c_one_frame.mp4", [0])
    (clips / "d_damaged.mp4").write_bytes(_clip(tmp_path / "cut.mp4", [0, 100, 200]).read_bytes()[:300])
    (clips / "notes.md").write_text("not a clip")
    assert len(av.open(str(clips / "b_audio.mp4")).streams.audio) == 1
    assert main(["dataset", "from-videos", str(clips), "--out", str(tmp_path / "out"), "--task", "wave",
                 "--fps", "10", "--no-progress"]) == 0
    said, warned = capsys.readouterr()
    assert "wrote 2 episodes of 4 clips, 7 frames at 10 fps, 48x64 (pad)" in said
    assert f"skipped {clips / 'c_one_frame.mp4'}: it gives 1 frame at 10 fps" in said
    assert f"skipped {clips / 'd_damaged.mp4'}: it could not be decoded" in said
    assert "worldpolicy dataset label" in said.split("next:")[1]
    assert warned.count("skipped clip") == 2, warned
    from worldpolicy.data import LeRobotDataset

    ds = LeRobotDataset.open(tmp_path / "out")
    assert list(ds.episode_lengths) == [4, 3]
    prov = ds.provenance
    assert prov["source"] == FROM_VIDEOS_SOURCE and prov["fps"] == 10 and prov["size"] == [48, 64]
    assert prov["clips"] == [str(clips / "a_good.mp4"), str(clips / "b_audio.mp4")]
    assert sorted(prov["skipped"]) == [str(clips / "c_one_frame.mp4"), str(clips / "d_damaged.mp4")]
    assert prov["command"].startswith("worldpolicy dataset from-videos")
    # only damaged or short clips: refused, nothing at --out
    with pytest.raises(ValueError, match="none could be written"):
        videos_to_dataset([clips / "c_one_frame.mp4", clips / "d_damaged.mp4"], tmp_path / "none", task="t", fps=10)
    assert not (tmp_path / "none").exists()


def test_each_clips_task_from_its_name_or_sidecar(tmp_path):
    a = _clip(tmp_path / "pick_up_the-cube_003.mp4", [0, 100])
    b = _clip(tmp_path / "b.mp4", [0, 100])
    (tmp_path / "pick_up_the-cube_003.txt").write_text("lift the red cube\n")
    ds = videos_to_dataset([a, b], tmp_path / "n", fps=10, task_from="filename").dataset
    assert [ds.episode(i).task for i in range(2)] == ["pick up the cube", "b"]
    with pytest.raises(ValueError, match=r"clip .*b\.mp4.* has no task \(no sidecar file .*b\.txt"):
        videos_to_dataset([a, b], tmp_path / "s", fps=10, task_from="sidecar")
    (tmp_path / "b.txt").write_text("open the drawer")
    ds = videos_to_dataset([a, b], tmp_path / "s", fps=10, task_from="sidecar").dataset
    assert [ds.episode(i).task for i in range(2)] == ["lift the red cube", "open the drawer"]


@pytest.mark.parametrize("extra, message", [
    (["--task", "t", "--size", "480"], "--size '480'; accepted: HxW"),
    (["--task", "t", "--fps", "0"], "--fps=0.0; accepted: a positive number"),
    (["--task", "t"], "--fps: give the dataset's frame rate, or an embodiment"),
    (["--fps", "10"], "--task: give every episode's task"),
    (["--fps", "10", "--task-from", "sidecar"], "--task-from='sidecar': clip"),
    (["--task", "t", "--fps", "10", "--size", "47x64", "--video-codec", "libx264"], "even"),
    (["--task", "t", "--fps", "10", "--fit", "squash"], "invalid choice: 'squash'"),
    (["--task", "t", "--embodiment", "nobot"], "nobot"),
])
def test_bad_flags_are_refused_naming_the_flag_before_any_clip_is_decoded(tmp_path, monkeypatch, capsys, extra,
                                                                          message):
    from worldpolicy.data import from_videos

    clip = _clip(tmp_path / "a.mp4", [0, 100])
    monkeypatch.setattr(from_videos, "_scan", lambda path: pytest.fail("a clip was decoded"))
    try:
        code = main(["dataset", "from-videos", str(clip), "--out", str(tmp_path / "out"), *extra])
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_clips_not_found_are_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for given, said in (("empty", "CLIP: '{}' holds no video files (accepted: .avi, .mkv, .mov, .mp4"),
                        ("missing.mp4", "CLIP: '{}' does not exist")):
        assert main(["dataset", "from-videos", str(tmp_path / given), "--out", str(tmp_path / "out"), "--task", "t",
                     "--fps", "10"]) == 2
        assert said.format(tmp_path / given) in capsys.readouterr().err


def test_the_embodiment_gives_the_rate_and_a_fixed_composite_its_frame_size(tmp_path):
    assert expected_size(get_embodiment("droid")) == (540, 640) and expected_size(get_embodiment("pusht")) is None
    clip = _clip(tmp_path / "a.mp4", [i * 100 for i in range(5)])  # 10 fps
    result = videos_to_dataset([clip], tmp_path / "out", task="t", embodiment="droid")
    assert (result.fps, result.size) == (15, (540, 640)) and result.dataset.robot_type == "droid"
    assert result.dataset.features[VIDEO_FEATURE]["shape"] == [540, 640, 3]


def test_ctrl_c_leaves_nothing_at_out_and_an_earlier_dataset_is_replaced_only_with_overwrite(tmp_path, monkeypatch,
                                                                                           capsys):
    from worldpolicy.data import from_videos

    a, b = _clip(tmp_path / "a.mp4", [0, 100, 200]), _clip(tmp_path / "b.mp4", [0, 100, 200])
    out = tmp_path / "data" / "out"
    args = ["dataset", "from-videos", str(a), str(b), "--out", str(out), "--task", "t", "--fps", "10",
            "--no-progress"]
    frames, calls = from_videos._frames, []

    def interrupted(*given):
        calls.append(given)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return frames(*given)

    monkeypatch.setattr(from_videos, "_frames", interrupted)
    assert main(args) == 130
    assert "interrupted; nothing was written to" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # nothing staged left either: the parent made for it is gone again
    monkeypatch.setattr(from_videos, "_frames", frames)
    assert main(args) == 0
    assert main(args) == 2
    assert "holds an earlier `dataset from-videos` run's dataset; pass --overwrite" in capsys.readouterr().err
    assert main([*args[:3], str(a), *args[4:], "--overwrite"]) == 0
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1


def test_dataset_label_labels_the_result(policy, tmp_path):
    from worldpolicy.data.label import label_dataset

    clips = [_clip(tmp_path / f"{i}.mp4", [j * 50 for j in range(7 + i)], 64, 64) for i in range(2)]
    ds = videos_to_dataset(clips, tmp_path / "raw", task="push the T", fps=policy.embodiment.fps).dataset
    labelled = label_dataset(ds, tmp_path / "labelled", policy)
    assert labelled.num_episodes == 2 and list(labelled.episode_lengths) == list(ds.episode_lengths)
    assert labelled.episode(0).frames["action"].shape == (len(labelled.episode(0).frames["action"]),
                                                          policy.embodiment.action_dim)
