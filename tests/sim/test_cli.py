import json

import numpy as np
import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main
from worldpolicy.sim.commands import TASK_NAMES
from worldpolicy.sim.evaluate import wilson_interval
from worldpolicy.sim.tasks import list_tasks


def test_sim_cli_writes_report_and_video(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["sim", "--policy", "scripted", "--task", "reach", "--episodes", "2", "--videos", "1",
               "--image-size", "48x64", "--out", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["schema"] == "worldpolicy.sim_eval/v1" and doc["n_episodes"] == 2
    assert doc["success_rate"] == 1.0 and doc["ci95"][0] < 1.0 <= doc["ci95"][1] + 1e-12
    assert "| 0 | yes |" in (out / "report.md").read_text()
    assert (out / "report.png").stat().st_size > 1000
    from worldpolicy.processing.video import read_video

    frames, fps = read_video(out / "videos" / "episode_0000.mp4")
    assert fps == pytest.approx(15.0) and frames.shape[1:] == (48, 3 * 64, 3) and frames.std() > 5
    assert not (out / "videos" / "episode_0001.mp4").exists()
    assert "success 2/2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--task", "stack"], "--task: unknown task 'stack'"),
        (["--episodes", "0"], "--episodes: expected >= 1"),
        (["--image-size", "big"], "--image-size: expected HxW"),
        (["--robot", "ur5"], "robot: unknown name 'ur5'"),
    ],
)
def test_sim_cli_bad_input(argv, message, capsys):
    assert main(["sim", "--policy", "random", *argv]) == 2
    assert message in capsys.readouterr().err


def test_sim_cli_server_down_is_a_one_line_error(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket closes
    argv = ["sim", "--policy", f"ws://127.0.0.1:{port}", "--task", "reach", "--episodes", "1", "--no-progress",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 2
    assert f"sim: error: cannot connect to ws://127.0.0.1:{port}" in capsys.readouterr().err


def test_sim_cli_keeps_the_finished_episodes_when_a_later_one_fails(tmp_path, capsys, monkeypatch):
    from worldpolicy.sim.rollout import Rollout

    real_run, calls = Rollout.run, []

    def run_then_fail(self, seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:
            raise ValueError("the policy server went away")  # as a ws:// backend does mid-evaluation
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(Rollout, "run", run_then_fail)
    out = tmp_path / "run"
    argv = ["sim", "--policy", "scripted", "--task", "reach", "--episodes", "3", "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "1 of 3 episodes finished before the failure" in err and "the policy server went away" in err
    doc = json.loads((out / "report.json").read_text())
    assert doc["n_episodes"] == 1 and doc["episodes_requested"] == 3 and doc["episodes"][0]["seed"] == 0
    assert "Incomplete: 1 of 3 episodes ran." in (out / "report.md").read_text()


def test_task_names_agree():
    assert set(TASK_NAMES) == set(list_tasks())


def test_wilson_interval():
    lo, hi = wilson_interval(95, 100)
    assert 0.88 < lo < 0.90 and 0.97 < hi < 0.99
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert np.isclose(sum(wilson_interval(5, 10)), 1.0)
    with pytest.raises(ValueError, match="n"):
        wilson_interval(0, 0)
