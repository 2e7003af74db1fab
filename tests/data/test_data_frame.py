"""`worldpolicy dataset frame` / `extract_frame`: one observation out of a dataset as `worldpolicy predict`'s inputs."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from dataset_factory import frame_ramp
from PIL import Image

from worldpolicy.cli import main
from worldpolicy.data import extract_frame, write_episodes

DROID_CAMERAS = ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left")


def ramp_value(t: int, offset: int) -> int:
    """The pixel value `frame_ramp` gives frame t."""
    return 5 * (t + offset) % 256


@pytest.fixture
def droid_dataset(tmp_path):
    """Two episodes with the Cosmos3-DROID keys `dataset from-sim` writes: three cameras (camera j of episode i a
    ramp offset by 10 j + 20 i), the 7 + 1 state, its first value negative, and the 7 + 1 joint-target actions."""
    episodes = []
    for i, length in enumerate((6, 9)):
        rng = np.random.default_rng(i)
        joints = rng.normal(size=(length, 7)).astype(np.float32)
        joints[:, 0] = -np.abs(joints[:, 0]) - 0.5
        episodes.append({
            "frames": {"observation.state.joint_positions": joints,
                       "observation.state.gripper_position": rng.random((length, 1)).astype(np.float32),
                       "action.joint_position": rng.normal(size=(length, 7)).astype(np.float32),
                       "action.gripper_position": rng.random((length, 1)).astype(np.float32)},
            "videos": {f"observation.image.{c}": frame_ramp(length, offset=10 * j + 20 * i)
                       for j, c in enumerate(DROID_CAMERAS)},
            "task": "put the cube on the pad | place the cube",
        })
    return write_episodes(tmp_path / "droid", episodes, fps=15, video_codec="libx264rgb"), episodes


def test_writes_the_frame_its_clip_state_and_task(small_dataset, tmp_path):
    ds, episodes = small_dataset
    # episode 2 starts mid-file (from_timestamp > 0) and frame 7 mid-GOP: only [5, 8) is decoded, and exactly that
    obs = extract_frame(ds, tmp_path / "obs", episode=2, frame=7, clip=3)
    image = np.asarray(Image.open(obs.images["observation.images.front"]))
    assert image.shape == (16, 16, 3) and (image == ramp_value(7, 200)).all()
    clip = sorted(obs.clips["observation.images.front"].iterdir())
    assert [p.name for p in clip] == ["frame_000005.png", "frame_000006.png", "frame_000007.png"]
    assert [int(np.asarray(Image.open(p))[0, 0, 0]) for p in clip] == [ramp_value(t, 200) for t in (5, 6, 7)]
    np.testing.assert_array_equal(obs.state, episodes[2]["frames"]["observation.state"][7])  # float64, as written
    assert obs.state_keys == ("observation.state",) and obs.commands == {}
    doc = json.loads((tmp_path / "obs" / "dataset_frame.json").read_text())
    assert (doc["episode"], doc["frame"], doc["task"]) == (2, 7, "pick the cube")
    assert doc["state_names"] == ["observation.state_0", "observation.state_1", "observation.state_2"]  # unnamed
    assert doc["state"] == obs.state.tolist() and doc["images"] == {"observation.images.front":
                                                                     "observation.images.front.png"}
    # negative indices count from the end; a task of several phrasings is prompted with the first
    last = extract_frame(ds, tmp_path / "last", episode=-2, frame=-1)
    assert (last.episode, last.frame, last.task, last.prompt) == (1, 6, "push the cube | shove the block",
                                                                   "push the cube")
    assert (np.asarray(Image.open(last.images["observation.images.front"])) == ramp_value(6, 100)).all()
    # numpy's ints for all three, as episode and frame always took them (clip refused np.int64)
    given = extract_frame(ds, tmp_path / "numpy", episode=np.int64(2), frame=np.int64(7), clip=np.int64(2))
    assert [p.name for p in sorted(given.clips["observation.images.front"].iterdir())] == [
        "frame_000006.png", "frame_000007.png"]


@pytest.mark.parametrize("argv, message", [
    (["--episode", "3"], "error: --episode=3 is out of range: the dataset has 3 episodes (0..2)"),
    (["--episode", "1", "--frame", "7"], "error: --frame=7 is out of range: episode 1 has 7 frames (0..6)"),
    # another camera is not taken for a typo of this one (the shared `observation.images.` made them alike)
    (["--cameras", "observation.images.back"], ("error: --cameras=['observation.images.back']: "
                                                "observation.images.back not among the dataset's cameras: "
                                                "observation.images.front\n")),
    # a typo is named with the feature it is likely a typo of (`LeRobotDataset.unknown_note`)
    (["--cameras", "observation.image.front"], ("error: --cameras=['observation.image.front']: "
                                                "observation.image.front not among the dataset's cameras: "
                                                "observation.images.front (did you mean 'observation.images.front'?)"
                                                "\n")),
    (["--frame", "2", "--clip", "4"], ("error: --clip=4 needs 4 frames ending at frame 2, and episode 0 has 3 up to "
                                       "it: choose frame >= 3 or clip <= 3")),
    (["--clip", "1"], "error: --clip=1: give the number of frames"),
    (["--state-keys", "next.rewards"], ("error: --state-keys=['next.rewards']: next.rewards not among the dataset's "
                                        "numeric features: action, observation.state, next.done, next.reward (did you "
                                        "mean 'next.reward'?)\n")),
    # a state-conditioned embodiment's state width is checked against info.json
    (["--checkpoint", "ck", "--embodiment", "droid/joint_pos"],
     "error: --state-keys=['observation.state'] hold 3 values; embodiment 'droid/joint_pos' takes a state of 8"),
    (["--checkpoint", "ck", "--embodiment", "ur5e"], "error: --embodiment='ur5e' is not registered"),
    # the recorded actions: for a checkpoint's embodiment, a whole chunk of them, from features that map to it
    (["--actions"], ("error: --actions: the recorded actions are written in the columns of the embodiment that reads "
                    "them, the checkpoint's: name the checkpoint to run forward dynamics with (--checkpoint)")),
    # the flag given is the one named (it said --actions, which was not given)
    (["--actions-to-end"], "error: --actions-to-end: the recorded actions are written in the columns"),
    (["--chunk-size", "4"], ("error: --chunk-size=4 sets the recorded actions, which are written only when asked for: "
                            "pass --actions")),
    (["--actions", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--frame", "3"],
     ("error: --chunk-size=32 (the default: embodiment 'droid/relative_pose''s) needs 32 frames after frame 3 (the "
     "actions recorded from it and the frames they led to), and episode 0 has 8 (it has 12 frames): choose "
     "chunk_size <= 8 (a multiple of 4)")),
    (["--actions", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--frame", "8", "--chunk-size", "4"],
     ("error: --chunk-size=4 needs 4 frames after frame 8 (the actions recorded from it and the frames they led to), "
     "and episode 0 has 3 (it has 12 frames): choose frame <= 7")),
    (["--actions", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--chunk-size", "6"],
     "error: --chunk-size=6 is not accepted"),
    (["--actions-to-end", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--frame", "-1"],
     ("error: --actions-to-end: frame 11 is the last of episode 0 (it has 12 frames): no action was recorded after "
      "it; choose frame <= 10")),
    (["--actions-to-end", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--chunk-size", "6"],
     "error: --chunk-size=6 is not accepted"),
    (["--actions", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--chunk-size", "4"],
     # the default keys: the dataset's one action feature, `action`, as training reads it
     ("error: --action-keys: the dataset's actions do not map to embodiment 'droid/relative_pose' as training maps "
      "them (as a training config's [data] would read this dataset: data.source_embodiment is unset and "
      "data.action_keys=['action'] hold 3 columns")),
    (["--actions", "--checkpoint", "ck", "--embodiment", "droid/relative_pose", "--chunk-size", "4", "--action-keys",
      "action"], ("hold 3 columns (action_0, action_1, action_2): neither 'droid/joint_pos''s 8 (the default) nor "
                 "embodiment 'droid/relative_pose''s")),
])
def test_a_bad_argument_is_named_before_anything_is_written(small_dataset, tmp_path, capsys, argv, message):
    ds, _ = small_dataset
    out = tmp_path / "obs"
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_refuses_to_overwrite_unless_asked_and_never_writes_into_a_dataset(small_dataset, tmp_path, capsys):
    ds, _ = small_dataset
    out = tmp_path / "obs"
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), "--frame", "3"]) == 0
    printed = capsys.readouterr()
    assert f"wrote {out / 'dataset_frame.json'}" in printed.out and "worldpolicy predict" not in printed.out
    assert "pass --checkpoint to get the `worldpolicy predict` command" in printed.err
    before = (out / "observation.images.front.png").read_bytes()
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), "--frame", "4"]) == 2
    assert (f"error: --out: {str(out)!r} already holds observation.images.front.png, dataset_frame.json; choose "
            "another folder or pass --overwrite" in capsys.readouterr().err)
    assert (out / "observation.images.front.png").read_bytes() == before
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), "--frame", "4", "--overwrite"]) == 0
    assert json.loads((out / "dataset_frame.json").read_text())["frame"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["dataset_frame.json", "observation.images.front.png"]  # no temps
    # a predict run's folder is not this command's, nor is anything inside the dataset
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "actions.json").write_text("{}")
    for bad in (tmp_path / "run", ds.root / "frames"):
        assert main(["dataset", "frame", str(ds.root), "--out", str(bad)]) == 2
        assert "error: --out: " in capsys.readouterr().err
    assert not (ds.root / "frames").exists()


def test_cameras_are_passed_as_the_embodiment_takes_them(droid_dataset, small_dataset, tmp_path):
    """A composite takes each camera by its wire key; one that composes none one camera; a one-camera dataset --image;
    and cameras that fit neither are refused before anything is written."""
    ds, _ = droid_dataset
    composite = extract_frame(ds, tmp_path / "a", checkpoint="ck", embodiment="droid/joint_pos").commands["policy"]
    assert [composite[i + 1].split("=")[0] for i, a in enumerate(composite) if a == "--camera"] == [
        "observation/wrist_image_left", "observation/exterior_image_1_left", "observation/exterior_image_2_left"]
    assert "--state" not in composite and composite[-3].startswith("--state=-")  # a negative first value: one token
    one = extract_frame(ds, tmp_path / "b", checkpoint="ck", embodiment="droid/relative_pose").commands["policy"]
    assert one[one.index("--camera") + 1] == f"observation/wrist_image_left={tmp_path}/b/observation.image." \
                                             "wrist_image_left.png"
    assert not any(a.startswith("--state") for a in one)  # relative_pose does not condition on the state
    with pytest.raises(ValueError, match="cameras: embodiment 'droid/joint_pos' takes each of the cameras"):
        extract_frame(ds, tmp_path / "c", checkpoint="ck", embodiment="droid/joint_pos",
                      cameras=["observation.image.wrist_image_left", "observation.image.exterior_image_1_left"])
    assert not (tmp_path / "c").exists()
    small, _ = small_dataset
    single = extract_frame(small, tmp_path / "d", checkpoint="ck", embodiment="droid/relative_pose").commands["policy"]
    assert single[single.index("--image") + 1] == str(tmp_path / "d" / "observation.images.front.png")


def test_the_suggested_state_is_short_and_exact(droid_dataset, tmp_path):
    """A tiny joint value is written as `1.4277586e-13`, not as twenty plain digits, and reads back as the same
    float32: the command stays exact and readable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data import LeRobotDataset

    ds, _ = droid_dataset
    data = ds.root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    grip = table.column("observation.state.gripper_position").to_pylist()
    grip[2] = 1.4277586e-13  # episode 0, frame 2
    column = table.column_names.index("observation.state.gripper_position")
    pq.write_table(table.set_column(column, "observation.state.gripper_position", pa.array(grip, pa.float32())), data)
    ds = LeRobotDataset.open(ds.root)
    obs = extract_frame(ds, tmp_path / "obs", frame=2, checkpoint="ck", embodiment="droid/joint_pos")
    state = next(a for a in obs.commands["policy"] if a.startswith("--state=")).removeprefix("--state=").split(",")
    assert state[-1] == "1.4277586e-13"
    assert all(len(v) <= 16 for v in state), state  # float32's shortest form, plain or scientific
    np.testing.assert_array_equal(np.float32([float(v) for v in state]), obs.state)


def test_a_state_holding_nan_is_refused_for_a_state_conditioned_embodiment(droid_dataset, tmp_path):
    """The command would hand predict `--state=nan,...`: said here, naming the frame, before anything is written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from worldpolicy.data import LeRobotDataset

    ds, _ = droid_dataset
    data = ds.root / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    grip = table.column("observation.state.gripper_position").to_pylist()
    grip[2] = float("nan")  # episode 0, frame 2
    column = table.column_names.index("observation.state.gripper_position")
    pq.write_table(table.set_column(column, "observation.state.gripper_position", pa.array(grip, pa.float32())), data)
    ds = LeRobotDataset.open(ds.root)
    with pytest.raises(ValueError, match=r"frame 2 of episode 0 holds NaN or inf in its state \(\[.*nan\]\)"):
        extract_frame(ds, tmp_path / "obs", frame=2, checkpoint="ck", embodiment="droid/joint_pos")
    assert not (tmp_path / "obs").exists()
    extract_frame(ds, tmp_path / "obs", frame=3, checkpoint="ck", embodiment="droid/joint_pos")  # its neighbour is fine


def test_the_printed_predict_command_runs(droid_dataset, tmp_path, capsys):
    pytest.importorskip("diffusers")
    from worldpolicy.cli import build_parser
    from worldpolicy.processing.observations import check_source
    from worldpolicy.testing import make_tiny_checkpoint

    ds, episodes = droid_dataset
    checkpoint = make_tiny_checkpoint(tmp_path / "ck")  # droid/joint_pos: three cameras composed, and the state
    out = tmp_path / "obs"
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), "--episode", "1", "--frame", "4", "--clip", "3",
                 "--actions", "--chunk-size", "4", "--checkpoint", str(checkpoint)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("worldpolicy predict")]
    assert len(lines) == 3
    policy, inverse, forward = (shlex.split(line)[1:] for line in lines)
    state = [float(v) for v in policy[policy.index("--prompt") + 2].removeprefix("--state=").split(",")]
    expected = np.concatenate([episodes[1]["frames"]["observation.state.joint_positions"][4],
                               episodes[1]["frames"]["observation.state.gripper_position"][4]])
    np.testing.assert_array_equal(np.float32(state), expected)
    assert main(policy) == 0
    actions = json.loads((out / "predict" / "actions.json").read_text())
    assert np.array(actions["actions"]).shape == (32, 8)
    # forward dynamics rolls out the recorded actions from the frame: as many frames as the recorded ones to compare
    assert main(forward) == 0
    imagined = json.loads((out / "predict_forward_dynamics" / "actions.json").read_text())
    recorded = json.loads((out / "recorded_actions.json").read_text())
    np.testing.assert_allclose(imagined["actions"], recorded["actions"], rtol=1e-6)  # the actions it was given
    assert imagined["video_frames"] == len(list((out / "observation.image.wrist_image_left_future").iterdir())) == 5
    # inverse dynamics reads each camera's clip folder (running it takes long on a CPU: its arguments and clips are
    # checked as predict checks them)
    args = build_parser().parse_args(inverse)
    assert args.mode == "inverse_dynamics" and args.out == str(out / "predict_inverse_dynamics")
    for value in args.camera:
        key, _, folder = value.partition("=")
        assert check_source(folder, key, min_frames=2) == (16, 16) and len(list(Path(folder).iterdir())) == 3


@pytest.mark.parametrize("embodiment", ["droid/joint_pos", "droid/relative_pose"])
def test_recorded_actions_are_the_chunk_training_pairs_with_the_frame(droid_dataset, tmp_path, embodiment):
    """`actions=True` writes the actions recorded from the frame on in the embodiment's columns, as training reaches
    them (joint targets as they are, or converted to end-effector deltas), in a file forward dynamics reads back, and
    each camera's real frames frame..frame+chunk that they led to."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing.actions import load_actions, to_model
    from worldpolicy.train.data import WindowSpec, iter_windows

    ds, _ = droid_dataset
    emb = get_embodiment(embodiment)
    obs = extract_frame(ds, tmp_path / "obs", episode=1, frame=3, checkpoint="ck", embodiment=embodiment,
                        actions=True, chunk_size=4)
    window = next(w for w in iter_windows(WindowSpec(dataset=str(ds.root), chunk_size=4, action_conversion=(
        "none" if embodiment == "droid/joint_pos" else "joint_to_relative_pose"), episodes=(1,)), emb) if w.start == 3)
    doc = json.loads(obs.actions.read_text())
    assert obs.actions == tmp_path / "obs" / "recorded_actions.json"
    assert (doc["columns"], doc["units"], doc["chunk_size"]) == (list(emb.columns), list(emb.units), 4)
    assert doc["recorded"]["frames"] == [3, 6] and doc["recorded"]["episode"] == 1
    np.testing.assert_allclose(doc["actions"], window.actions, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(load_actions(obs.actions, emb), to_model(emb, window.actions), atol=1e-12)
    for j, camera in enumerate(DROID_CAMERAS):
        folder = obs.futures[f"observation.image.{camera}"]
        assert folder == tmp_path / "obs" / f"observation.image.{camera}_future"
        frames = sorted(folder.iterdir())
        assert [p.name for p in frames] == [f"frame_{t:06d}.png" for t in range(3, 8)]
        assert [int(np.asarray(Image.open(p))[0, 0, 0]) for p in frames] == [ramp_value(t, 10 * j + 20)
                                                                             for t in range(3, 8)]
    saved = json.loads((tmp_path / "obs" / "dataset_frame.json").read_text())
    assert saved["actions"] == "recorded_actions.json" and len(saved["futures"]) == 3
    forward = obs.commands["forward_dynamics"]
    assert forward[forward.index("--mode") + 1] == "forward_dynamics"
    assert forward[forward.index("--actions") + 1] == str(obs.actions)
    assert forward[forward.index("--chunk-size") + 1] == "4"
    assert forward[forward.index("--out") + 1] == str(tmp_path / "obs" / "predict_forward_dynamics")


def test_recorded_actions_are_rewritten_in_their_own_folder(droid_dataset, tmp_path, capsys):
    """The recorded actions' file is not named `actions.json`, which marks a predict run's folder: a second run with
    --overwrite replaces them; without it, they are named among the files it would replace."""
    ds, _ = droid_dataset
    out = tmp_path / "obs"
    argv = ["dataset", "frame", str(ds.root), "--out", str(out), "--episode", "1", "--actions", "--chunk-size", "4",
            "--checkpoint", "ck", "--embodiment", "droid/joint_pos"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out / 'recorded_actions.json'}" in printed
    assert f"then compare {out / 'predict_forward_dynamics' / 'rollout.mp4'} (imagined) with the recorded frames in " \
           f"{out / 'observation.image.exterior_image_1_left_future'}" in printed
    assert main(argv) == 2
    assert "recorded_actions.json" in capsys.readouterr().err
    assert main([*argv, "--frame", "1", "--overwrite"]) == 0
    assert json.loads((out / "recorded_actions.json").read_text())["recorded"]["frames"] == [1, 4]


def test_actions_to_the_episodes_end_roll_out_with_the_printed_whole_trajectory_command(droid_dataset, tmp_path,
                                                                                      capsys):
    """`--actions` writes one chunk from the frame: a researcher comparing the world model with a whole recorded
    episode had to cut it by hand. `--actions-to-end` writes every action to the episode's end and the real frames
    they led to, and prints `predict --whole-trajectory`, whose rollout (chunk after chunk) has a frame for each."""
    pytest.importorskip("diffusers")
    from worldpolicy.testing import make_tiny_checkpoint

    ds, _ = droid_dataset
    checkpoint = make_tiny_checkpoint(tmp_path / "ck")  # droid/joint_pos: its state chained from chunk to chunk
    out = tmp_path / "obs"
    assert main(["dataset", "frame", str(ds.root), "--out", str(out), "--episode", "1", "--frame", "1",
                 "--actions-to-end", "--chunk-size", "4", "--checkpoint", str(checkpoint)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("worldpolicy predict")]
    forward = shlex.split(next(line for line in lines if "forward_dynamics" in line))[1:]
    assert "--whole-trajectory" in forward and forward[forward.index("--chunk-size") + 1] == "4"
    recorded = json.loads((out / "recorded_actions.json").read_text())
    assert np.shape(recorded["actions"]) == (7, 8) and recorded["recorded"]["frames"] == [1, 7]  # episode of 9
    assert recorded["chunk_size"] == 4
    future = sorted((out / "observation.image.wrist_image_left_future").iterdir())
    assert [p.name for p in future] == [f"frame_{t:06d}.png" for t in range(1, 9)]
    assert main(forward) == 0
    imagined = json.loads((out / "predict_forward_dynamics" / "actions.json").read_text())
    np.testing.assert_allclose(imagined["actions"], recorded["actions"], rtol=1e-6)
    assert imagined["video_frames"] == len(future) == 8
    trajectory = json.loads((out / "predict_forward_dynamics" / "settings.json").read_text())["trajectory"]
    assert [c["actions"] for c in trajectory["chunks"]] == [[0, 4], [4, 7]] and trajectory["state_chained"]


def test_actions_to_the_end_are_refused_where_no_chunk_could_follow_another(droid_dataset, tmp_path, monkeypatch):
    """A state-conditioned embodiment whose actions do not say the state after a chunk cannot be rolled out over an
    episode: refused naming to_end and the predict option behind it, before anything is written; and to_end without
    actions changes nothing, so it is refused too."""
    from dataclasses import replace

    from worldpolicy.data import frame as frame_module
    from worldpolicy.embodiments import get_embodiment

    ds, _ = droid_dataset
    with pytest.raises(ValueError, match=r"to_end=True sets the recorded actions, .*: pass actions=True"):
        extract_frame(ds, tmp_path / "obs", to_end=True)
    with pytest.raises(ValueError, match=r"to_end=1; accepted: True or False"):
        extract_frame(ds, tmp_path / "obs", actions=True, checkpoint="ck", to_end=1)
    stateful = replace(get_embodiment("droid/relative_pose"), state_history=1)
    monkeypatch.setattr(frame_module, "_embodiment", lambda *_: stateful)
    monkeypatch.setattr(frame_module, "check_state_width", lambda *_: None)
    with pytest.raises(ValueError, match=r"^to_end=True \(predict --whole-trajectory\): embodiment "
                                         r"'droid/relative_pose' conditions each chunk on the robot state.*accepted: "):
        extract_frame(ds, tmp_path / "obs", episode=1, actions=True, checkpoint="ck", chunk_size=4, to_end=True)
    assert not (tmp_path / "obs").exists()


def test_recorded_actions_are_read_with_the_keys_the_checkpoints_run_read(tiny, tmp_path):
    """A checkpoint trained on a dataset's own `action` feature needed `action_keys=['action']` again to extract a
    frame's recorded chunk for it: the default was `dataset from-sim`'s names, though its trainer_state.json records
    the keys."""
    import shutil

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny, checkpoint)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"data": {"action_keys": ["action"]}}}))
    rows = np.stack([np.arange(8.0), -np.arange(8.0)], 1).astype(np.float32)
    write_episodes(tmp_path / "ds", [{"frames": {"action": rows}, "videos": {"observation.images.front": frame_ramp(8)},
                                      "task": "push"}], fps=10, video_codec="libx264rgb",
                   features={"action": {"dtype": "float32", "shape": [2], "names": ["x", "y"]},
                             "observation.images.front": {"dtype": "video", "shape": [16, 16, 3]}})
    extract_frame(tmp_path / "ds", tmp_path / "fd", episode=0, frame=1, checkpoint=checkpoint, embodiment="pusht",
                  actions=True, chunk_size=4)
    recorded = json.loads((tmp_path / "fd" / "recorded_actions.json").read_text())
    np.testing.assert_array_equal(recorded["actions"], rows[1:5])


def test_a_checkpoint_named_from_home_runs_with_the_embodiment_it_was_trained_for(droid_dataset, tmp_path,
                                                                                   monkeypatch):
    """`checkpoint="~/ck"` from Python, as `predict --checkpoint` takes it: the checkpoint's own record names its
    embodiment. `~` was expanded only where a policy loads, so the frame's command was built for the default droid
    (`droid/joint_pos`, with its `--state`), not the `droid/relative_pose` the run trained."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    checkpoint = tmp_path / "home" / "ck"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"embodiment": "droid/relative_pose"}}))
    ds, _ = droid_dataset
    policy = extract_frame(ds, tmp_path / "obs", frame=2, checkpoint="~/ck").commands["policy"]
    assert policy[:4] == ["worldpolicy", "predict", "--checkpoint", "~/ck"]  # as the user gave it
    assert not any(a.startswith("--state") for a in policy)  # relative_pose conditions on no state


def test_the_state_is_read_with_the_keys_the_checkpoints_run_read(droid_dataset, tmp_path):
    """The frame's state (the predict command's `--state`) was read as `observation.state.*` in the dataset's order
    whatever the checkpoint's run read, while `dataset eval` reads the run's state keys: the same checkpoint got another
    state row from each. The run's keys are read where the dataset has them all, else the default."""
    ds, _ = droid_dataset
    run = ["observation.state.gripper_position", "observation.state.joint_positions"]  # not the dataset's order
    checkpoint = tmp_path / "ck"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"data": {"state_keys": run}}}))
    frame = extract_frame(ds, tmp_path / "a", frame=2, checkpoint=checkpoint, embodiment="droid/joint_pos")
    assert list(frame.state_keys) == run and 0 <= frame.state[0] < 1 and frame.state[1] < 0  # gripper, then joints
    default = ["observation.state.joint_positions", "observation.state.gripper_position"]
    given = extract_frame(ds, tmp_path / "b", frame=2, checkpoint=checkpoint, embodiment="droid/joint_pos",
                          state_keys=default)
    assert list(given.state_keys) == default  # given keys win
    (checkpoint / "trainer_state.json").write_text(json.dumps({"config": {"data": {"state_keys": [*run, "gone"]}}}))
    lacking = extract_frame(ds, tmp_path / "c", frame=2, checkpoint=checkpoint, embodiment="droid/joint_pos")
    assert list(lacking.state_keys) == default  # the dataset lacks one: the default
