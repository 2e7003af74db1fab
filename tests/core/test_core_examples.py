"""The scripts in examples/ run as their docstrings say, each in a process of its own at its smallest settings (the
shipped model, CPU): exit status 0, the files each says it writes, with the shapes they should have; the robot
client stops the arm and exits 130 on Ctrl-C mid-run. `--help` shows each script's whole docstring. No timing is
asserted. Each run loads the model (11-18 s of CPU on the 2-core dev machine); the default suite keeps one per
workflow the others do not cover, and marks slow the robot client's full run (the Ctrl-C test runs its loop),
gym_loop.py (the loop sim.evaluate runs), world_model.py (three model calls and a sim rollout: 54 s alone on the
2-core dev machine, load 4.5) and finetune.py (record, train, evaluate: about 50 s of CPU)."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                       if p)}


def _ran(script: str, *args: str, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], check=False, cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script} {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("script", EXAMPLES)
def test_help_shows_the_whole_docstring(script):
    doc = ast.get_docstring(ast.parse((ROOT / "examples" / script).read_text()), clean=False)
    out = _ran(script, "--help", cwd=ROOT, timeout=120)
    last = [line for line in doc.splitlines() if line.strip()][-1]
    assert last in out, out


def test_predict_writes_the_chunk_the_imagined_future_and_the_scene(tmp_path):
    pytest.importorskip("mujoco")
    out = _ran("predict.py", "--out", "run", cwd=tmp_path)
    run = tmp_path / "run"
    actions = json.loads((run / "actions.json").read_text())
    assert np.asarray(actions["actions"]).shape == (4, 10)  # panda_reach: chunk 4 of 10 end-effector columns
    assert actions["columns"][:3] == ["tx", "ty", "tz"] and actions["units"][:3] == ["m", "m", "m"]
    assert (run / "rollout.mp4").stat().st_size > 0 and (run / "index.html").is_file()
    assert (run / "plots" / "actions.png").is_file()
    for camera in ("exterior_image_1_left", "wrist_image_left"):  # the files --camera takes for a rerun
        assert (run / "observation" / f"{camera}.png").is_file()
    assert "tx [m]" in out and "imagined future: 5 frames" in out


@pytest.mark.slow
def test_predict_from_the_scene_files_it_saved_gives_the_same_chunk(tmp_path):
    pytest.importorskip("mujoco")
    _ran("predict.py", "--out", "scene", cwd=tmp_path)
    scene = json.loads((tmp_path / "scene" / "actions.json").read_text())
    cameras = [f"--camera=observation/{c}=scene/observation/{c}.png"
               for c in ("exterior_image_1_left", "wrist_image_left")]
    _ran("predict.py", *cameras, "--prompt", scene["settings"]["prompt"], "--out", "files", cwd=tmp_path)
    files = json.loads((tmp_path / "files" / "actions.json").read_text())
    assert files["actions"] == scene["actions"]  # lossless PNGs, the same seed: the same chunk, bit for bit


def test_predict_refuses_a_camera_without_a_file(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "predict.py"), "--camera", "wrist.png"],
                          check=False, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--camera 'wrist.png': expected KEY=FILE" in done.stderr


@pytest.mark.slow
def test_world_model_round_trips_a_chunk_through_both_dynamics(tmp_path):
    pytest.importorskip("mujoco")
    _ran("world_model.py", "--out", "wm", cwd=tmp_path)
    wm = tmp_path / "wm"
    result = json.loads((wm / "comparison.json").read_text())
    assert np.asarray(result["actions_run"]).shape == (4, 10)
    assert result["imagined_frames"][0] == 5  # the start and one frame per action
    for recovered in ("inverse_of_imagined", "inverse_of_sim"):
        errors = result[recovered]
        assert list(errors) == ["tx", "ty", "tz", "r0", "r1", "r2", "r3", "r4", "r5", "grasp"]
        # a recovered step within 5 cm of the one run (measured: 0.4-13 mm): the two dynamics read the same motion
        assert all(errors[c]["max_abs"] < 0.05 for c in ("tx", "ty", "tz")), errors
    assert (wm / "forward" / "rollout.mp4").is_file() and (wm / "sim.mp4").stat().st_size > 0
    for run in ("forward", "inverse_imagined", "inverse_sim"):
        assert json.loads((wm / run / "actions.json").read_text())["mode"] in ("forward_dynamics", "inverse_dynamics")


@pytest.mark.slow
def test_gym_loop_writes_an_episode_video_and_its_outcome(tmp_path):
    pytest.importorskip("gymnasium")
    out = _ran("gym_loop.py", "--max-steps", "6", "--out", "gym", cwd=tmp_path)
    (line,) = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert line["seed"] == 10000 and 1 <= line["steps"] <= 6 and isinstance(line["success"], bool)
    from worldpolicy.processing.video import read_video

    frames, _ = read_video(tmp_path / "gym" / "episode-10000.mp4")
    assert len(frames) == line["steps"] + 1  # the reset's view, then one per step


def test_robot_client_stops_the_arm_on_ctrl_c(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("websockets")
    script = str(ROOT / "examples" / "robot_client.py")
    with subprocess.Popen([sys.executable, script, "--ticks", "100000", "--out", "rc"], cwd=tmp_path, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 240
        for line in proc.stdout:  # the loop is running: ticks are being commanded
            if line.startswith("tick 5:") or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    summary = json.loads((tmp_path / "rc" / "summary.json").read_text())
    assert summary["stopped"] == "interrupted" and summary["commands_sent"] >= 6, summary
    assert summary["stale_dropped"] == 0, summary  # each target sent as it is made: fresh (Robot.send)
    assert "arm stopped (interrupted)" in err and "Traceback" not in err


def test_robot_client_without_a_server_says_so_in_one_line(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("websockets")
    from ports import free_port

    url = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "robot_client.py"), "--url", url], check=False,
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-3000:]
    assert f"robot_client: ServerRefusedError: cannot connect to {url}" in done.stderr
    assert "Traceback" not in done.stderr and "tick" not in done.stdout  # refused before the arm was commanded


def test_robot_client_refuses_an_api_key_variable_that_is_not_set(tmp_path):
    env = {k: v for k, v in _env().items() if k != "WP_EXAMPLE_UNSET_KEY"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "robot_client.py"), "--api-key-env",
                           "WP_EXAMPLE_UNSET_KEY"], check=False, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr[-3000:]  # before a model is loaded or a server is asked
    assert "--api-key-env WP_EXAMPLE_UNSET_KEY: no such environment variable is set" in done.stderr
    assert "Traceback" not in done.stderr


def _example(name: str):
    """examples/NAME.py as a module (robot_client's `Robot`, `parse_args`; world_model's `run_in_sim`), run nowhere."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_robot_client_runs_only_fresh_targets_and_waits_longer_on_a_model_served_here():
    """The robot side's `send` runs a target newer by (episode, tick) than the last one run and young enough by the
    controller's clock, as a servo thread receiving them would check; without --url (the model served in the
    process, seconds a reply on a CPU) a request may take longer than with a server of its own."""
    pytest.importorskip("websockets")
    from worldpolicy.robot.control import JointTarget

    client = _example("robot_client")
    sent = []

    class Arm(client.Robot):
        def command(self, qpos, gripper):
            sent.append((float(qpos[0]), gripper))

    def target(tick, qpos0, age_s=0.0):
        return JointTarget(np.full(7, qpos0), 0.5, 0, (), None, None, tick=tick, episode=0,
                           stamp=time.monotonic() - age_s, observed=0)

    arm = Arm()
    assert arm.send(target(0, 0.1), None, max_age_s=60.0)  # the first target
    assert not arm.send(target(0, 0.2), (0, 0), max_age_s=60.0)  # not newer than the last one run
    assert not arm.send(target(1, 0.3, age_s=120.0), (0, 0), max_age_s=60.0)  # made too long ago
    assert arm.send(target(1, 0.4), (0, 0), max_age_s=60.0)
    assert sent == [(0.1, 0.5), (0.4, 0.5)]
    assert client.parse_args([]).timeout_s > client.parse_args(["--url", "ws://gpu-box:8000"]).timeout_s == 5.0
    assert client.parse_args(["--timeout-s", "2"]).timeout_s == 2.0


def test_world_model_runs_a_chunk_of_a_head_without_a_gripper_column_keeping_the_gripper():
    """A pose-only head's chunk decodes with no gripper (`RobotCommand.gripper` None): the simulated arm runs each row
    with the gripper where it was, as gym_loop.py and robot_client.py keep it, and a frame is kept per row."""
    from worldpolicy.robot.decode import RobotCommand

    acted = []

    class Env:
        def joint_positions(self):
            return np.zeros(7)

        def gripper_position(self):
            return 0.7

        def observe(self):
            return {"observation/image": np.zeros((2, 3, 3), np.uint8)}

        def act(self, action):
            acted.append(np.asarray(action))

    class Decoder:
        def decode(self, actions, joints):
            return RobotCommand(qpos=np.asarray(actions)[:, :7], gripper=None)

    clips = _example("world_model").run_in_sim(Env(), Decoder(), np.full((3, 9), 0.2), ["observation/image"])
    assert clips["observation/image"].shape == (4, 2, 3, 3)  # the start and one frame per row
    assert [a[-1] for a in acted] == [0.7] * 3 and all(np.allclose(a[:7], 0.2) for a in acted)


@pytest.mark.slow
def test_robot_client_runs_its_ticks_and_reports_the_latency(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("websockets")
    # without --url, a request's time defaults well past a CPU request's on a loaded machine (where 5 s, the default
    # for a server of its own, timed every one out: each tick held, no reply to report)
    _ran("robot_client.py", "--ticks", "8", "--out", "rc", cwd=tmp_path)
    summary = json.loads((tmp_path / "rc" / "summary.json").read_text())
    assert summary["stopped"] == "done" and summary["ticks_run"] == 8 and summary["policy_errors"] == 0, summary
    # each target sent as it is made: every one fresh (Robot.send), so one dropped says its check is wrong
    assert summary["commands_sent"] == 8 and summary["stale_dropped"] == 0 and summary["replies"] >= 1
    assert summary["held"] < 8 and len(summary["reply_s_p50_p99"]) == 2  # rows of a chunk ran, its latency reported


@pytest.mark.slow
def test_finetune_records_trains_and_evaluates(tmp_path):
    pytest.importorskip("mujoco")
    pytest.importorskip("pyarrow")
    _ran("finetune.py", "--episodes", "1", "--steps", "2", "--batch-size", "1", "--out", "ft", cwd=tmp_path,
         timeout=600)
    ft = tmp_path / "ft"
    assert json.loads((ft / "data" / "meta" / "info.json").read_text())["total_episodes"] == 1
    assert (ft / "train" / "checkpoints" / "step-0000002" / "transformer").is_dir()
    report = json.loads((ft / "eval" / "report.json").read_text())
    assert report["task"] == "reach" and len(report["episodes"]) == 1 and report["episodes"][0]["seed"] == 10000
