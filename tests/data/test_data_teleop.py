"""`dataset teleop`: a person's episodes, driven here by a scripted input source through the same loop the viewer
drives (reach, small images), written as `dataset from-sim` writes the expert's."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the sim extra (MuJoCo) is not installed")
pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")

_SCENE = {"image_size": (32, 32)}


def _toward_goal(env, speed: float = 0.02) -> None:
    """Move the teleop target `speed` m toward the reach ball, as a person's drag would."""
    pose = env.teleop_pose()
    step = env.state().goal - pose[:3, 3]
    pose[:3, 3] += step * min(1.0, speed / max(float(np.linalg.norm(step)), 1e-9))
    env.set_teleop_pose(pose)


def _record(root, source, episodes=2, **options):
    from worldpolicy.data.from_sim import sim_to_dataset
    from worldpolicy.data.teleop import teleop_episodes

    return sim_to_dataset(root, "reach", episodes, seed=3, recorder=partial(teleop_episodes, source=source),
                          **_SCENE, **options)


def test_scripted_episodes_are_written_as_from_sim_writes_them(tmp_path):
    from worldpolicy.cli import main
    from worldpolicy.data.from_sim import ACTION_KEYS, STATE_KEYS, TELEOP_EXPERT, recording_command
    from worldpolicy.data.teleop import TELEOP_VERSION, ScriptedInput, teleop_episodes
    from worldpolicy.sim.env import TabletopEnv

    ticks: dict[int, int] = {}  # attempt: the ticks it ran

    def script(env, attempt, tick):
        ticks[attempt] = tick + 1
        if attempt == 0:  # discarded after three steps: its scene (seed 3) comes again
            return ["discard"] if tick == 3 else []
        if attempt == 2:  # a failure, ended by hand after 5 steps, gripper closed at step 2
            return ["failure"] if tick == 5 else ["gripper"] if tick == 2 else []
        _toward_goal(env)
        return ["success"] if env.success() else []

    result = _record(tmp_path / "tele", ScriptedInput(script))
    ds = result.dataset
    assert result.seeds == [3, 4] and ds.num_episodes == 2 and set(ticks) == {0, 1, 2}  # the discard not written
    # rows: one per tick before the ending one
    assert list(ds.episode_lengths) == [ticks[1] - 1, 5] and ds.episode_success.tolist() == [True, False]
    made = ds.provenance
    assert made["source"] == "worldpolicy dataset from-sim" and made["expert"] == "teleop"
    # one name of a person's recordings: what the provenance says, what the refusals and the lock read it by
    assert made["expert"] == TELEOP_EXPERT == teleop_episodes.expert
    assert recording_command(made["expert"]) == "`dataset teleop`" and recording_command(None) == "`dataset from-sim`"
    assert made["expert_version"] == TELEOP_VERSION and made["input"] == "script" and made["seeds"] == [3, 4]
    assert "speed" not in made  # a source without one (the viewer's drag, a script)
    assert "chunk_size" not in made and made["max_steps"] == 450 and made["image_size"] == [32, 32]
    solved, failed = ds.episode(0), ds.episode(1)
    assert solved.frames["next.reward"][-1] == 1.0 and solved.frames["next.done"][-1]
    assert failed.frames[ACTION_KEYS[1]][:, 0].tolist() == [0, 0, 1, 1, 1]  # the toggle from its tick on
    assert failed.frames[ACTION_KEYS[0]].shape == (5, 7)
    assert main(["dataset", "check", str(tmp_path / "tele")]) == 0

    # the rows are what the simulator did, and the frames what an env without the target renders: replaying the
    # actions in a plain env gives the recorded states and (lossless) frames
    env = TabletopEnv("reach", image_size=(32, 32))
    try:
        obs, _ = env.reset(seed=3)
        assert obs["prompt"] == solved.task
        for t in range(solved.length):
            np.testing.assert_allclose(obs["observation/joint_position"], solved.frames[STATE_KEYS[0]][t], atol=1e-4)
            recorded = solved.videos["observation.image.wrist_image_left"][t].astype(int)
            assert np.abs(obs["observation/wrist_image_left"] - recorded).max() <= 2
            env.act(np.append(solved.frames[ACTION_KEYS[0]][t], solved.frames[ACTION_KEYS[1]][t]))
            obs = env.observe()
        assert env.success()
    finally:
        env.close()


def test_quit_and_ctrl_c_keep_the_finished_episodes_and_resume_goes_on(tmp_path):
    from worldpolicy.data.from_sim import RecordingInterrupted, sim_to_dataset
    from worldpolicy.data.teleop import ScriptedInput, TeleopQuit

    def stops_with(stop):
        def script(env, attempt, tick):
            if attempt == 1:
                if tick == 2 and stop == "ctrl-c":
                    raise KeyboardInterrupt
                return ["quit"] if tick == 2 else []
            return ["success" if tick == 4 else "gripper"]
        return script

    for stop in ("quit", "ctrl-c"):
        root = tmp_path / stop
        with pytest.raises(RecordingInterrupted) as caught:
            _record(root, ScriptedInput(stops_with(stop)), episodes=3)
        assert caught.value.kept == 1 and caught.value.result.seeds == [3]
        assert isinstance(caught.value.__context__, TeleopQuit) == (stop == "quit")  # what the command exits 0 on
        assert caught.value.result.dataset.episode_lengths.tolist() == [4]

    # a resume records the episodes left, from the seed after the last kept one
    resumed = _record(tmp_path / "quit", ScriptedInput(lambda env, attempt, tick: ["failure"] if tick == 1 else []),
                      episodes=3, resume=True)
    assert resumed.seeds == [3, 4, 5] and resumed.dataset.episode_success.tolist() == [True, False, False]
    # the scripted expert does not continue a person's recording: the expert is named
    with pytest.raises(ValueError, match="expert"):
        sim_to_dataset(tmp_path / "quit", "reach", 4, seed=3, resume=True, **_SCENE, max_steps=450)


def test_a_bad_event_is_refused_naming_those_accepted(tmp_path):
    from worldpolicy.data.teleop import ScriptedInput

    with pytest.raises(ValueError, match="event 'jump'.*accepted: \\['gripper', 'success'"):
        _record(tmp_path / "bad", ScriptedInput(lambda env, attempt, tick: ["jump"]))
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("environ, named", [({}, "DISPLAY"), ({"DISPLAY": ":0", "MUJOCO_GL": "glfw"}, "MUJOCO_GL")])
def test_no_display_is_refused_before_any_work(tmp_path, monkeypatch, capsys, environ, named):
    from worldpolicy.cli import main
    from worldpolicy.data.teleop import ViewerInput, ViewerUnavailable

    for var in ("DISPLAY", "WAYLAND_DISPLAY", "MUJOCO_GL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr("sys.platform", "linux")
    root = tmp_path / "tele"
    assert main(["dataset", "teleop", str(root), "--task", "reach"]) == 2
    said = capsys.readouterr().err
    assert "worldpolicy dataset teleop: error:" in said and named in said and "MUJOCO_GL=egl" in said
    assert not root.exists()
    with pytest.raises(ViewerUnavailable, match=named):  # the viewer source refuses the same way
        ViewerInput().open(None)


def test_the_command_records_and_a_closed_window_exits_zero_keeping_the_finished(tmp_path, monkeypatch, capsys):
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset, teleop

    def script(env, attempt, tick):  # the window closed during the second episode
        return ["quit"] if attempt == 1 else ["success"] if tick == 3 else []

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(teleop, "ViewerInput", lambda: teleop.ScriptedInput(script))
    root = tmp_path / "tele"
    assert main(["dataset", "teleop", str(root), "--task", "reach", "--episodes", "3", "--image-size", "32x32"]) == 0
    said = capsys.readouterr().err
    assert "1 of 3 episodes kept" in said and "--resume" in said
    ds = LeRobotDataset.open(root)
    assert ds.num_episodes == 1 and ds.episode_lengths.tolist() == [3]
    assert ds.provenance["command"].startswith("worldpolicy dataset teleop ") and ds.provenance["expert"] == "teleop"
    # run again as first typed: the recording named by the command that made it, and how to go on
    assert main(["dataset", "teleop", str(root), "--task", "reach", "--episodes", "3", "--image-size", "32x32"]) == 2
    assert "holds a `dataset teleop` recording; pass --resume" in capsys.readouterr().err


def test_the_viewer_source_maps_keys_shows_the_target_and_quits_when_its_window_closes(tmp_path, monkeypatch):
    """ViewerInput against a stand-in for MuJoCo's passive viewer (no display here): its key callback's keys become
    events, the target's geom group is shown, a force a drag put on another body is cleared, a closed window quits."""
    import contextlib
    import types

    import mujoco.viewer

    from worldpolicy.data.from_sim import RecordingInterrupted
    from worldpolicy.data.teleop import VIEWER_KEYS, TeleopQuit, ViewerInput
    from worldpolicy.sim.scenes import HANDLE_GROUP

    presses = {1: [32], 3: [32], 4: [257]}  # tick: keys (Space, Space, Enter): gripper closed from tick 1 to 3
    viewer = types.SimpleNamespace(opt=types.SimpleNamespace(geomgroup=np.zeros(6, np.uint8)), syncs=0, closed=False,
                                   forces=[])

    def launch_passive(model, data, *, key_callback):
        def sync():
            for key in presses.get(viewer.syncs, []):
                key_callback(key)
            viewer.forces.append(float(np.abs(data.xfrc_applied).max()))  # what the last tick stepped with
            data.xfrc_applied[1] = 5.0  # as a Ctrl-drag on a body would
            viewer.syncs += 1

        viewer.sync, viewer.lock = sync, contextlib.nullcontext
        viewer.is_running = lambda: viewer.syncs < 7  # the window closes during the second episode
        viewer.close = lambda: setattr(viewer, "closed", True)
        return viewer

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(mujoco.viewer, "launch_passive", launch_passive)
    said = []
    with pytest.raises(RecordingInterrupted) as caught:
        _record(tmp_path / "tele", ViewerInput(say=said.append), control_hz=25.0)
    assert isinstance(caught.value.__context__, TeleopQuit) and caught.value.kept == 1 and viewer.closed
    assert viewer.opt.geomgroup[HANDLE_GROUP] == 1 and all(label in said[0] for _, label in VIEWER_KEYS.values())
    episode = caught.value.result.dataset.episode(0)
    assert episode.frames["action.gripper_position"][:, 0].tolist() == [0, 1, 1, 0]  # Enter on the 5th tick
    assert caught.value.result.dataset.episode_success.tolist() == [True]
    assert viewer.forces == [0.0] * 7  # the drag's force cleared before every step
