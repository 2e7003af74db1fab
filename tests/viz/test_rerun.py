"""`worldpolicy viz PATH --rerun OUT.rrd` / `viz.rerun`: a predict run and a sim run's episodes as Rerun recordings,
read back with rerun's own reader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from rerun_read import images, read_rrd, scalars, text

from worldpolicy.cli import main
from worldpolicy.embodiments import get_embodiment, unit_label
from worldpolicy.processing.video import write_video

pytest.importorskip("rerun", reason="rerun-sdk is not installed (the rerun extra)")


@pytest.fixture
def predict_run(tmp_path, joint_chunk, actions_json):
    run = tmp_path / "run"
    (run / "observation").mkdir(parents=True)
    doc = actions_json("droid", joint_chunk)
    doc["settings"]["prompt"] = "put the cup away"
    (run / "actions.json").write_text(json.dumps(doc))
    video = np.stack([np.full((32, 48, 3), 20 * j, np.uint8) for j in range(9)])  # frame j: value 20 j
    write_video(run / "rollout.mp4", video, doc["fps"])
    Image.new("RGB", (8, 6), (200, 10, 10)).save(run / "observation" / "wrist_image_left.png")
    return run, doc


def test_a_predict_runs_recording_holds_its_actions_by_column_video_observation_and_prompt(predict_run, capsys):
    run, doc = predict_run
    out = run.parent / "look" / "run.rrd"
    assert main(["viz", str(run), "--rerun", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert not (run / "plots").exists()  # the recording instead of the plots
    logged = read_rrd(out)
    droid = get_embodiment("droid")
    assert set(logged) == {*(f"/action/{c}" for c in droid.columns), "/rollout", "/observation/wrist_image_left",
                           "/prompt", "/about"}
    fps = doc["fps"]
    for k, column in enumerate(droid.columns):
        series = logged[f"/action/{column}"]
        assert scalars(series) == pytest.approx(np.asarray(doc["actions"])[:, k])  # the file's values, row by row
        assert series.steps == list(range(32)) and series.times == pytest.approx(np.arange(32) / fps)
        assert series.timelines == {("step", "time")}  # a run's (a dataset's are LeRobot's `frame_index`...)
        assert series.static["SeriesLines:names"] == [unit_label(column, droid.units[k])]
    assert "[rad]" in logged["/action/joint_0"].static["SeriesLines:names"][0]
    video = logged["/rollout"]
    assert video.steps == list(range(9)) and video.times == pytest.approx(np.arange(9) / fps)
    # each frame in its place (a flat frame's value, to within JPEG's and the mp4's rounding)
    assert [frame.mean() for frame in images(video)] == pytest.approx([20 * j for j in range(9)], abs=3)
    observation = logged["/observation/wrist_image_left"]
    assert observation.steps == [0]
    (image,) = images(observation)
    assert image.shape == (6, 8, 3) and image[..., 0].mean() == pytest.approx(200, abs=3)
    assert text(logged["/prompt"]) == "put the cup away"
    assert "imagined video" in text(logged["/about"])


def test_a_sim_runs_recording_holds_each_recorded_episodes_video_prompt_and_outcome(tmp_path, capsys):
    from worldpolicy.sim.evaluate import EvalReport, write_report
    from worldpolicy.sim.rollout import EpisodeResult

    sim = tmp_path / "sim"
    episodes = [EpisodeResult(seed=7, success=True, steps=26, success_step=25, prompt="reach the red ball", chunks=2,
                              final_distance_m=0.0277, policy_s=1.0, wall_s=2.0),
                EpisodeResult(seed=8, success=False, steps=60, success_step=None, prompt="reach the blue ball",
                              chunks=4, final_distance_m=0.21, policy_s=1.0, wall_s=2.0)]
    write_report(EvalReport("reach", "panda_reach", "panda", {"kind": "execute"}, 15.0, 7, episodes), sim, plots=False)
    write_video(sim / "videos" / "episode_0007.mp4", np.full((5, 32, 32, 3), 100, np.uint8), 15)
    assert main(["viz", str(sim), "--rerun", str(tmp_path / "sim.rrd")]) == 0
    logged = read_rrd(tmp_path / "sim.rrd")
    # the episode recorded (--videos 1), its outcome as the run's page captions it
    assert set(logged) == {"/episode_0007/video", "/episode_0007/prompt", "/episode_0007/outcome"}
    video = logged["/episode_0007/video"]
    assert video.steps == list(range(5)) and video.times == pytest.approx(np.arange(5) / 15)
    assert text(logged["/episode_0007/prompt"]) == "reach the red ball"
    assert text(logged["/episode_0007/outcome"]).startswith("seed 7 · success · 26 steps · final distance 2.8 cm")
    (tmp_path / "sim.rrd").unlink()
    (sim / "videos" / "episode_0007.mp4").unlink()
    assert main(["viz", str(sim), "--rerun", str(tmp_path / "sim.rrd")]) == 2
    assert "recorded no episode videos (videos/episode_*.mp4)" in capsys.readouterr().err
    assert not (tmp_path / "sim.rrd").exists()


def test_bad_rerun_inputs_are_refused_naming_the_flag_before_any_file_is_written(predict_run, tmp_path, capsys):
    run, _ = predict_run
    out = tmp_path / "x.rrd"
    for argv, said in (
            (["viz", str(tmp_path / "nothing"), "--rerun", str(out)], "PATH: "),
            (["viz", str(run), "--rerun", str(tmp_path / "x.mp4")], "--rerun='"),
            (["viz", str(run), "--rerun", str(tmp_path)], "is a folder"),
            (["viz", str(run), "--rerun", str(out), "--format", "pdf"], "--format: the plots' options"),
            (["viz", str(run), "--rerun-connect", " "], "--rerun-connect=' ': expected a viewer's URL")):
        assert main(argv) == 2, argv
        assert said in capsys.readouterr().err, argv
    with pytest.raises(SystemExit):  # one target: argparse's usage error
        main(["viz", str(run), "--rerun", str(out), "--rerun-spawn"])
    assert "not allowed with argument --rerun" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob("*.rrd*"))


def test_a_failed_recording_leaves_the_earlier_file_and_no_temporary_one(predict_run, tmp_path, monkeypatch):
    from worldpolicy.viz import rerun as viz_rerun

    run, _ = predict_run
    out = tmp_path / "run.rrd"
    viz_rerun.write_run_recording(run, viz_rerun.RerunTarget(file=out))
    before = out.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(viz_rerun, "log_frames", broken)
    with pytest.raises(OSError, match="disk full"):
        viz_rerun.write_run_recording(run, viz_rerun.RerunTarget(file=out))
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["run", "run.rrd"]


def test_a_viewer_that_cannot_be_started_is_refused_naming_the_flag(predict_run, tmp_path, monkeypatch, capsys):
    run, _ = predict_run
    monkeypatch.setenv("PATH", str(tmp_path))  # no `rerun` executable to start: rerun-sdk's RuntimeError
    monkeypatch.delenv("_RERUN_TEST_FORCE_SAVE", raising=False)
    assert main(["viz", str(run), "--rerun-spawn"]) == 2
    said = capsys.readouterr().err
    assert "error: --rerun-spawn: " in said and "put that folder on PATH" in said and "Traceback" not in said
