"""`worldpolicy dataset import-hdf5` / `import_hdf5`: robomimic-format HDF5 demonstrations (robomimic's layout,
LIBERO's)
as a LeRobot v3 dataset, read back bit for bit, every bad input refused before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="import_hdf5 needs h5py (the train extra)")

from worldpolicy.cli import build_parser, main
from worldpolicy.data import LeRobotDataset
from worldpolicy.data.from_hdf5 import FLIPS, IMPORT_SOURCE, import_hdf5
from worldpolicy.data.robosuite_actions import action_columns

ROBOMIMIC_ARGS = {"env_name": "Lift", "env_type": 1, "env_kwargs": {"control_freq": 20, "robots": ["Panda"]}}
LIBERO_TASK = "turn on the stove"
# robosuite <= 1.4's OSC_POSE config as robomimic's and LIBERO's env_args hold it
OSC_POSE = {"type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
            "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "impedance_mode": "fixed",
            "control_delta": True, "uncouple_pos_ori": True}
OSC_NAMES = ["eef_dx", "eef_dy", "eef_dz", "eef_drot_x", "eef_drot_y", "eef_drot_z", "gripper"]


def _demo(data, name: str, length: int, rng, obs: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, np.ndarray]:
    """Demo `name` of `length` steps with random obs of the given (per-step shape, dtype); returns what it holds."""
    group = data.create_group(name)
    held = {"actions": rng.standard_normal((length, 7))}
    group["actions"] = held["actions"]
    group["rewards"] = np.zeros(length)
    group["dones"] = np.arange(length) == length - 1
    group["states"] = rng.standard_normal((length, 5))
    group.attrs["num_samples"] = length
    for key, (shape, dtype) in obs.items():
        values = (rng.integers(0, 256, (length, *shape)) if dtype == "uint8"
                  else rng.standard_normal((length, *shape))).astype(dtype)
        group[f"obs/{key}"] = held[key] = values
    return held


ROBOMIMIC_OBS = {"agentview_image": ((16, 16, 3), "uint8"), "robot0_eye_in_hand_image": ((16, 16, 3), "uint8"),
                 "robot0_eef_pos": ((3,), "float64"), "robot0_eef_quat": ((4,), "float64"),
                 "robot0_gripper_qpos": ((2,), "float64")}
LIBERO_OBS = {"agentview_rgb": ((16, 16, 3), "uint8"), "eye_in_hand_rgb": ((16, 16, 3), "uint8"),
              "ee_pos": ((3,), "float64"), "gripper_states": ((2,), "float64"), "joint_states": ((7,), "float64")}


def _robomimic(path: Path, lengths=None, obs=ROBOMIMIC_OBS, env_args=ROBOMIMIC_ARGS, masks=None) -> dict:
    """A robomimic-layout file, its demos written out of numeric order; returns {demo: what it holds}."""
    lengths = lengths or {"demo_10": 5, "demo_2": 3, "demo_0": 4}
    rng = np.random.default_rng(0)
    held = {}
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        if env_args is not None:
            data.attrs["env_args"] = json.dumps(env_args)
        data.attrs["total"] = sum(lengths.values())
        for name, length in lengths.items():
            held[name] = _demo(data, name, length, rng, obs)
        for name, demos in (masks if masks is not None else {"train": ["demo_10", "demo_0"],
                                                              "valid": ["demo_2"]}).items():
            file[f"mask/{name}"] = np.array(demos, dtype="S")
    return held


def _libero(path: Path) -> dict:
    """A LIBERO-layout file: the task in problem_info, images stored bottom row first (macros_image_convention)."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Libero_Kitchen", "env_kwargs": {
            "control_freq": 20, "robots": ["Panda"], "controller_configs": OSC_POSE}})
        data.attrs["problem_info"] = json.dumps({"problem_name": "libero_kitchen", "domain_name": "robosuite",
                                                 "language_instruction": LIBERO_TASK})
        data.attrs["macros_image_convention"] = "opengl"
        data.attrs["bddl_file_name"] = "turn_on_the_stove.bddl"
        return {name: _demo(data, name, length, rng, LIBERO_OBS) for name, length in (("demo_1", 4), ("demo_0", 3))}


def test_robomimic_demos_become_episodes_bit_for_bit_in_numeric_order(tmp_path):
    held = _robomimic(tmp_path / "lift.hdf5")
    result = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift the cube")
    ds = LeRobotDataset.open(tmp_path / "ds")
    assert result.demos == ("demo_0", "demo_2", "demo_10") and list(ds.episode_lengths) == [4, 3, 5]
    assert ds.fps == 20 and ds.robot_type == "Panda"
    state = ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]  # every low-dimensional key, by name
    assert result.state_keys == tuple(state)
    assert ds.features["observation.state"]["names"] == [
        "robot0_eef_pos.x", "robot0_eef_pos.y", "robot0_eef_pos.z", "robot0_eef_quat.x", "robot0_eef_quat.y",
        "robot0_eef_quat.z", "robot0_eef_quat.w", "robot0_gripper_qpos.0", "robot0_gripper_qpos.1"]
    assert ds.features["action"]["names"] == [f"action.{i}" for i in range(7)]
    assert result.cameras == {"agentview_image": "observation.images.agentview",
                              "robot0_eye_in_hand_image": "observation.images.robot0_eye_in_hand"}
    for i, name in enumerate(result.demos):
        ep = ds.episode(i)
        assert ep.task == "lift the cube"
        assert ep.frames["observation.state"].dtype == np.float64 and ep.frames["action"].dtype == np.float64
        np.testing.assert_array_equal(ep.frames["observation.state"],
                                      np.concatenate([held[name][k] for k in state], axis=1))
        np.testing.assert_array_equal(ep.frames["action"], held[name]["actions"])
        for key, feature in result.cameras.items():  # lossless codec: the very pixels, not flipped
            np.testing.assert_array_equal(ep.videos[feature], held[name][key])
    prov = ds.provenance
    assert prov["source"] == IMPORT_SOURCE and prov["file"] == str(tmp_path / "lift.hdf5")
    assert prov["demos"] == ["demo_0", "demo_2", "demo_10"] and prov["mask"] is None and prov["env_args"]["env_name"]


def test_a_mask_picks_its_demos_and_keys_are_chosen_in_order(tmp_path):
    held = _robomimic(tmp_path / "lift.hdf5")
    result = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift", mask="train",
                         state_keys=["robot0_gripper_qpos", "robot0_eef_pos"], image_keys=["agentview_image"], fps=10)
    ds = result.dataset
    assert result.demos == ("demo_0", "demo_10") and ds.provenance["mask"] == "train" and ds.fps == 10
    assert ds.video_keys == ["observation.images.agentview"]
    np.testing.assert_array_equal(ds.episode(1).frames["observation.state"], np.concatenate(
        [held["demo_10"]["robot0_gripper_qpos"], held["demo_10"]["robot0_eef_pos"]], axis=1))
    no_state = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "nostate", task="lift", state_keys=[])
    assert "observation.state" not in no_state.dataset.features


@pytest.mark.parametrize("bad", [float("nan"), True, 0])
def test_a_given_fps_is_checked_as_from_videos_checks_it(tmp_path, bad):
    from worldpolicy.data.from_videos import videos_to_dataset

    _robomimic(tmp_path / "lift.hdf5")
    said = rf"^fps={bad!r}; accepted: a positive number of frames per second$"  # alike (`data.checks.check_rate`)
    with pytest.raises(ValueError, match=said):
        import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift", fps=bad)
    with pytest.raises(ValueError, match=said):
        videos_to_dataset([tmp_path / "lift.hdf5"], tmp_path / "v", task="lift", fps=bad)
    # a numpy rate as numpy reductions give it (np.float32 is no float): taken, as from-videos takes it
    assert import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift", fps=np.float32(10)).dataset.fps == 10


def test_libero_task_comes_from_the_file_and_its_images_are_turned_right_side_up(tmp_path):
    held = _libero(tmp_path / "stove.hdf5")
    result = import_hdf5(tmp_path / "stove.hdf5", tmp_path / "ds")
    ds = result.dataset
    assert result.flip == "vertical" and ds.provenance["flip_images"] == "vertical"
    assert result.cameras == {"agentview_rgb": "observation.images.agentview",
                              "eye_in_hand_rgb": "observation.images.eye_in_hand"}
    ep = ds.episode(0)  # demo_0
    assert ep.task == LIBERO_TASK and ep.length == 3
    assert ds.features["action"]["names"] == OSC_NAMES and ds.robot_type == "Panda"
    np.testing.assert_array_equal(ep.videos["observation.images.agentview"], held["demo_0"]["agentview_rgb"][:, ::-1])
    kept = import_hdf5(tmp_path / "stove.hdf5", tmp_path / "kept", flip_images="none", task="another")
    ep = kept.dataset.episode(0)
    np.testing.assert_array_equal(ep.videos["observation.images.agentview"], held["demo_0"]["agentview_rgb"])
    assert ep.task == "another" and kept.flip == "none"
    turned = import_hdf5(tmp_path / "stove.hdf5", tmp_path / "turned", flip_images="rotate180")
    np.testing.assert_array_equal(turned.dataset.episode(0).videos["observation.images.agentview"],
                                  held["demo_0"]["agentview_rgb"][:, ::-1, ::-1])
    with pytest.raises(ValueError, match=r"flip_images=True; accepted: vertical, rotate180, none"):
        import_hdf5(tmp_path / "stove.hdf5", tmp_path / "bad", flip_images=True)


def test_the_command_writes_a_dataset_check_and_info_accept(tmp_path, capsys):
    _robomimic(tmp_path / "lift.hdf5")
    out = str(tmp_path / "ds")
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", out, "--task", "lift the cube",
                 "--mask", "valid", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 1
    assert main(["dataset", "check", out, "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("ok: 1 episodes, 3 frames, 2 video features")
    assert main(["dataset", "info", out]) == 0
    assert json.loads(capsys.readouterr().out)["fps"] == 20
    # a second run: refused without --overwrite, done with it; a folder holding the file is never written over
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", out, "--task", "x"]) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", out, "--task", "x", "--overwrite",
                 "--no-progress"]) == 0
    assert LeRobotDataset.open(out).num_episodes == 3
    capsys.readouterr()
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path), "--task", "x"]) == 2
    assert "holds the HDF5 file being imported" in capsys.readouterr().err


def _float_images(path: Path) -> None:
    _robomimic(path, obs={**ROBOMIMIC_OBS, "agentview_image": ((16, 16, 3), "float32")})


def _short_obs(path: Path) -> None:
    _robomimic(path)
    with h5py.File(path, "a") as file:
        del file["data/demo_2/obs/robot0_eef_pos"]
        file["data/demo_2/obs/robot0_eef_pos"] = np.zeros((2, 3))


def _missing_obs(path: Path) -> None:
    _robomimic(path)
    with h5py.File(path, "a") as file:
        del file["data/demo_2/obs/robot0_gripper_qpos"]


def _actions_a_group(path: Path) -> None:
    _robomimic(path)
    with h5py.File(path, "a") as file:
        del file["data/demo_2/actions"]
        file.create_group("data/demo_2/actions")


def _truncated(path: Path) -> None:
    """A download cut short: the first 20 kB of a whole file."""
    _robomimic(path)
    path.write_bytes(path.read_bytes()[:20_000])


def _depth_only(path: Path) -> None:
    _robomimic(path, obs={"agentview_depth": ((16, 16), "float32")})


@pytest.mark.parametrize(("make", "flags", "message"), [
    (None, [], "error: FILE: '{file}' does not exist; give a robomimic-format .hdf5 file"),
    (_missing_obs, [], ("error: '{file}' data/demo_2/obs has no 'robot0_gripper_qpos' (its obs keys are "
                        "['agentview_image', 'robot0_eef_pos', 'robot0_eef_quat', 'robot0_eye_in_hand_image']); every "
                        "demo needs the chosen keys: choose with --state-keys and --image-keys keys every demo holds, "
                        "or with --mask demos that hold these")),
    (lambda p: p.write_text("not hdf5"), [], "error: FILE: '{file}' is not an HDF5 file"),
    (_truncated, [], "error: FILE: '{file}' is a damaged HDF5 file (Unable to synchronously open file (truncated file"),
    (lambda p: h5py.File(p, "w").create_group("demos").file.close(), [],
     "error: FILE: '{file}' has no `data` group (its top level holds ['demos'])"),
    (_robomimic, ["--state-keys", "eef_pos"],
     ("error: --state-keys: ['eef_pos'] is not an obs key of '{file}' data/demo_0/obs; its obs keys are "
      "['agentview_image', 'robot0_eef_pos', 'robot0_eef_quat', 'robot0_eye_in_hand_image', 'robot0_gripper_qpos'] "
      "(did you mean 'robot0_eef_pos'?)\n")),  # the key it is likely a typo of: `errors.typo_note`
    (_robomimic, ["--image-keys", "robot0_eef_pos"],
     ("error: --image-keys: ['robot0_eef_pos'] is not image obs data (robot0_eef_pos: float64 [3] per step); "
      "the image obs keys of '{file}' data/demo_0/obs are ['agentview_image', 'robot0_eye_in_hand_image']")),
    (_float_images, [], "error: --image-keys: obs key 'agentview_image' holds float32 images; only uint8 RGB"),
    (_short_obs, [], "error: '{file}' data/demo_2: obs/robot0_eef_pos holds 2 steps and actions 3"),
    (_robomimic, ["--mask", "test"],
     ("error: --mask='test': '{file}' has the filter groups ['train', 'valid']; choose one of them, or leave --mask "
      "out: every demo")),
    (lambda p: _robomimic(p, masks={}), ["--mask", "train"],
     "error: --mask='train': '{file}' has no filter groups (no `mask` group); leave --mask out"),
    (_actions_a_group, [],
     "error: '{file}' data/demo_2/actions is a group; every demo's actions must be float64 [T, 7]"),
    (_depth_only, [], ("error: no low-dimensional obs key and no uint8 image obs key: the dataset would hold actions "
                       "alone; choose obs keys (the obs keys of '{file}' data/demo_0/obs are ['agentview_depth'])")),
    (lambda p: _robomimic(p, obs={"robot0_eef_pos": ((3,), "float64")}), ["--state-keys"],
     "error: --state-keys=[] and no uint8 image obs key: the dataset would hold actions"),
    (lambda p: _robomimic(p, obs={"object": ((10,), "float64"), "agentview_depth": ((16, 16), "float32")}), [],
     ("error: no obs key of the robot's own state (the low-dimensional ['object'] are the simulator's; name them with "
      "--state-keys to keep them) and no uint8 image obs key: the dataset would hold actions alone")),
    (lambda p: _robomimic(p, env_args={"env_name": "Lift"}), [],
     "error: --fps: '{file}' does not say its control rate"),
    # JSON's Infinity (and NaN, 0) was taken as the rate, then refused by the writer as `fps=inf`, never given
    *[(lambda p, rate=rate: _robomimic(p, env_args={"env_kwargs": {"control_freq": rate}}), [],
       (f"error: --fps: '{{file}}' data.attrs['env_args'] env_kwargs.control_freq is {rate!r}, not a control rate "
        "(accepted: a positive finite number of steps per second); give --fps, the rate the demos were recorded at"))
      for rate in (float("inf"), float("nan"), 0, "20")],
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, capsys, make, flags, message):
    file = tmp_path / "demo.hdf5"
    if make is not None:
        make(file)
    code = main(["dataset", "import-hdf5", str(file), "--out", str(tmp_path / "ds"), "--task", "t", *flags])
    assert code == 2 and message.format(file=file) in capsys.readouterr().err
    assert not (tmp_path / "ds").exists() and sorted(p.name for p in tmp_path.iterdir()) == (["demo.hdf5"] if make
                                                                                              else [])


def test_a_refused_video_codec_is_the_only_thing_said(tmp_path, capsys):
    """The file's generic action names are warned of only once the writer has taken the settings: a refused
    --video-codec is one line, not preceded by a warning about a dataset that is never written."""
    _robomimic(tmp_path / "lift.hdf5")
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds"), "--task", "t",
                 "--video-codec", "h265"]) == 2
    assert capsys.readouterr().err == ("worldpolicy dataset import-hdf5: error: --video-codec='h265'; accepted: "
                                       "libx264, libx264rgb, libsvtav1\n")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("command", [["info"], ["convert", "--out", "v3"], ["select", "--out", "some"]])
def test_a_command_given_the_hdf5_file_for_a_dataset_names_import_hdf5(tmp_path, capsys, monkeypatch, command):
    """Demonstrations come as HDF5 files; given one where a dataset's folder goes, a command says which makes one."""
    monkeypatch.chdir(tmp_path)
    _robomimic(tmp_path / "lift.hdf5")
    assert main(["dataset", command[0], "lift.hdf5", *command[1:]]) == 2
    assert capsys.readouterr().err.endswith("'lift.hdf5' is an HDF5 file: make a dataset of its demonstrations with "
                                            "`worldpolicy dataset import-hdf5 lift.hdf5 --out NEW`\n")
    (tmp_path / "notes.txt").write_text("not a dataset")
    assert main(["dataset", command[0], "notes.txt", *command[1:]]) == 2
    assert "HDF5" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift.hdf5", "notes.txt"]


def test_a_file_without_an_instruction_needs_a_task(tmp_path):
    _robomimic(tmp_path / "lift.hdf5")
    with pytest.raises(ValueError, match=r"^task: .* holds no instruction .*; its env is 'Lift'; give task="):
        import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_without_h5py_the_command_names_the_extra(tmp_path, capsys, monkeypatch):
    _robomimic(tmp_path / "lift.hdf5")
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds")]) == 2
    assert capsys.readouterr().err == ("worldpolicy dataset import-hdf5: error: reading an HDF5 file: h5py is not "
                                       "installed; it comes with the 'train' extra: pip install 'worldpolicy[train]'\n")


@pytest.mark.slow
def test_an_imported_libero_file_trains_as_docs_data_md_says(tmp_path, tiny, capsys):
    """The run file of docs/data.md ("Importing robomimic / LIBERO HDF5"): its own embodiment whose columns are the
    dataset's action names, the cameras as `observation/` + each video's last part; one step from a tiny checkpoint,
    on the demos that succeeded (`--success only`, read from the file's sparse rewards)."""
    rng = np.random.default_rng(2)
    with h5py.File(tmp_path / "stove.hdf5", "w") as file:
        data = file.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_kwargs": {"control_freq": 20, "controller_configs": OSC_POSE}})
        data.attrs["problem_info"] = json.dumps({"language_instruction": LIBERO_TASK})
        for name in ("demo_0", "demo_1", "demo_2"):
            _demo(data, name, 10, rng, LIBERO_OBS)
            data[name]["rewards"][-1] = name != "demo_1"  # sparse: demo_1 failed
    assert list(import_hdf5(tmp_path / "stove.hdf5", tmp_path / "ds").dataset.episode_success) == [True, False, True]
    columns = OSC_NAMES
    (tmp_path / "run.toml").write_text(f"""output_dir = "run"
checkpoint = {json.dumps(str(tiny))}
device = "cpu"

[embodiment]
name = "libero_panda"
action_dim = 7
columns = {json.dumps(columns)}
units = {json.dumps(["1"] * 7)}
fps = 20
camera_keys = ["observation/agentview", "observation/eye_in_hand"]
composite = "stacked"
view_point = "concat_view"
resolution_tier = 256

[data]
dataset = "ds"
chunk_size = 4
action_keys = ["action"]

[optim]
steps = 1
batch_size = 2
warmup_steps = 0
""")
    assert main(["train", str(tmp_path / "run.toml"), "--success", "only", "--no-progress"]) == 0
    assert "episodes [1] of data.dataset failed (its success column) and are not trained on" in capsys.readouterr().err
    spec = json.loads((tmp_path / "run" / "checkpoints" / "step-0000001" / "embodiment.json").read_text())
    assert spec["columns"] == columns and spec["camera_keys"] == ["observation/agentview", "observation/eye_in_hand"]


def test_the_flag_offers_the_turns_the_import_knows():
    """The parser's choices are written beside the command (its module imports nothing heavy): the same turns."""
    args = build_parser().parse_args(["dataset", "import-hdf5", "f.hdf5", "--out", "o", "--flip-images", "rotate180"])
    assert args.flip_images == "rotate180"
    (flag,) = [a for a in build_parser()._subparsers._group_actions[0].choices["dataset"]._subparsers._group_actions[0]
               .choices["import-hdf5"]._actions if a.dest == "flip_images"]
    assert tuple(flag.choices) == FLIPS


def _env(controller, robots=("Panda",), **kwargs) -> dict:
    return {"env_name": "Lift", "env_kwargs": {"control_freq": 20, "robots": list(robots),
                                               "controller_configs": controller, **kwargs}}


def test_robomimic_actions_are_named_after_their_controller(tmp_path, caplog):
    """robosuite's OSC_POSE (6 deltas and the gripper) named, each column's meaning, unit and the map of a stored
    value onto it in the provenance; the values themselves copied as they are."""
    held = _robomimic(tmp_path / "lift.hdf5", env_args=_env(OSC_POSE))
    with caplog.at_level("WARNING"):
        result = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift")
    assert not caplog.records
    ds = result.dataset
    assert ds.features["action"]["names"] == OSC_NAMES and result.actions.controller == "OSC_POSE"
    np.testing.assert_array_equal(ds.episode(0).frames["action"], held["demo_0"]["actions"])
    columns = ds.provenance["actions"]["columns"]
    assert ds.provenance["actions"]["controller"] == "OSC_POSE"
    assert columns[0] == {"name": "eef_dx", "meaning": "change per step of the end-effector position x (world frame)",
                          "unit": "m", "input": [-1.0, 1.0], "output": [-0.05, 0.05]}
    assert columns[3]["unit"] == "rad" and columns[3]["output"] == [-0.5, 0.5] and "axis-angle" in columns[3]["meaning"]
    assert columns[6] == {"name": "gripper", "meaning": "gripper command: -1 opens, +1 closes", "unit": "1",
                          "input": None, "output": None}


@pytest.mark.parametrize(("controller", "width", "names"), [
    # robosuite 1.5's composite config (robomimic >= 0.4): the arm under body_parts, with its gripper
    ({"type": "BASIC", "body_parts": {"right": {**OSC_POSE, "gripper": {"type": "GRIP"}}}}, 7, OSC_NAMES),
    ({"type": "BASIC", "body_parts_controller_configs": {"arms": {"right": {**OSC_POSE, "input_type": "absolute"}}}},
     6, ["eef_x", "eef_y", "eef_z", "eef_rot_x", "eef_rot_y", "eef_rot_z"]),
    ({"type": "OSC_POSITION", "output_max": 0.05, "output_min": -0.05}, 4, ["eef_dx", "eef_dy", "eef_dz", "gripper"]),
    ({"type": "JOINT_VELOCITY", "output_max": 1, "output_min": -1}, 8, [f"joint_vel_{j}" for j in range(7)]
     + ["gripper"]),
    ({"type": "JOINT_POSITION", "output_max": 0.05, "output_min": -0.05}, 7, [f"djoint_{j}" for j in range(7)]),
])
def test_each_controller_names_its_columns(controller, width, names):
    columns = action_columns(_env(controller), width, joints=7)
    assert columns.names == names and columns.why is None
    if controller["type"] == "JOINT_VELOCITY":
        assert columns.columns[0]["unit"] == "rad/s" and columns.columns[0]["output"] == [-1.0, 1.0]


@pytest.mark.parametrize(("env_args", "width", "joints", "why"), [
    ({}, 7, None, "the file has no data.attrs['env_args']"),
    ({"env_kwargs": {"control_freq": 20}}, 7, None, "its env_args have no env_kwargs.controller_configs"),
    (_env({"type": "IK_POSE"}), 7, None, "its arm controller 'IK_POSE' is not one named here"),
    (_env({"type": "WHOLE_BODY_IK", "body_parts": {"right": OSC_POSE}}), 7, None,
     "its composite controller is 'WHOLE_BODY_IK'; only BASIC's"),
    (_env({**OSC_POSE, "impedance_mode": "variable"}), 19, None, "impedance_mode is 'variable'"),
    (_env(OSC_POSE), 9, None, "its actions are 9 wide, but its OSC_POSE arm takes 6 (and a gripper 1)"),
    (_env({"type": "JOINT_POSITION"}), 8, None, "the file's obs do not say how many joints"),
    (_env(OSC_POSE, robots=("Panda", "Panda")), 14, None, "name 2 robots"),
    (_env({**OSC_POSE, "output_max": "big"}), 7, None, "output_max is 'big', not a number or 6 numbers"),
])
def test_a_controller_not_known_keeps_generic_names_and_says_why(env_args, width, joints, why):
    columns = action_columns(env_args, width, joints)
    assert columns.names == [f"action.{i}" for i in range(width)] and columns.controller is None
    assert why in columns.why and columns.provenance() == {"controller": None, "why_generic_names": columns.why}


def test_generic_action_names_are_warned_with_the_reason(tmp_path, capsys):
    _robomimic(tmp_path / "lift.hdf5")  # env_args without controller_configs
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds"), "--task", "t",
                 "--no-progress"]) == 0
    assert ("the action columns are named action.0, ... (the file does not say what they are: its env_args have no "
            "env_kwargs.controller_configs)") in capsys.readouterr().err
    assert LeRobotDataset.open(tmp_path / "ds").provenance["actions"]["why_generic_names"].startswith("its env_args")


def _rewards(path: Path, rewards: dict[str, list[float]]) -> None:
    with h5py.File(path, "a") as file:
        for name, values in rewards.items():
            del file[f"data/{name}/rewards"]
            file[f"data/{name}/rewards"] = np.asarray(values, dtype=np.float64)


def test_rewards_and_dones_are_copied_and_sparse_rewards_flag_each_episodes_success(tmp_path, capsys):
    _robomimic(tmp_path / "lift.hdf5")
    _rewards(tmp_path / "lift.hdf5", {"demo_0": [0, 0, 0, 1], "demo_2": [0, 0, 0], "demo_10": [0, 0, 0, 1, 1]})
    result = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift")
    ds = result.dataset
    assert ds.features["next.reward"]["dtype"] == "float32" and ds.features["next.done"]["dtype"] == "bool"
    ep = ds.episode(2, videos=False)  # demo_10
    np.testing.assert_array_equal(ep.frames["next.reward"].reshape(-1), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(ep.frames["next.done"].reshape(-1), [False] * 4 + [True])
    assert list(ds.episode_success) == [True, False, True]
    assert ds.provenance["success_from"].startswith("the last step's reward: 1.0")
    assert ds.provenance["steps_copied"] == {"rewards": "next.reward", "dones": "next.done"}
    # what the project's other recordings allow: select (and train) the successes alone
    assert main(["dataset", "select", str(tmp_path / "ds"), "--out", str(tmp_path / "ok"), "--success", "only",
                 "--no-progress"]) == 0
    assert LeRobotDataset.open(tmp_path / "ok").num_episodes == 2


def test_shaped_rewards_are_copied_but_say_nothing_of_success(tmp_path):
    _robomimic(tmp_path / "lift.hdf5", env_args={**ROBOMIMIC_ARGS, "env_kwargs": {
        **ROBOMIMIC_ARGS["env_kwargs"], "reward_shaping": True}})
    ds = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "shaped", task="lift").dataset
    assert ds.episode_success is None and "next.reward" in ds.features
    assert ds.provenance["success_from"] == "not known: the rewards are shaped (env_args env_kwargs.reward_shaping)"
    _robomimic(tmp_path / "dense.hdf5")
    _rewards(tmp_path / "dense.hdf5", {"demo_0": [0, 0.2, 0.5, 1], "demo_2": [0, 0, 0], "demo_10": [0, 0, 0, 0, 1]})
    ds = import_hdf5(tmp_path / "dense.hdf5", tmp_path / "dense", task="lift").dataset
    assert ds.episode_success is None and "not sparse" in ds.provenance["success_from"]


def test_a_file_without_rewards_imports_without_them(tmp_path):
    _robomimic(tmp_path / "lift.hdf5")
    with h5py.File(tmp_path / "lift.hdf5", "a") as file:
        for name in ("demo_0", "demo_2", "demo_10"):
            del file[f"data/{name}/rewards"], file[f"data/{name}/dones"]
    ds = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "ds", task="lift").dataset
    assert "next.reward" not in ds.features and "next.done" not in ds.features and ds.episode_success is None
    assert ds.provenance["success_from"] == "not known: the file holds no rewards"
    assert ds.provenance["steps_copied"] == {}


def test_default_state_is_the_robots_own_and_says_what_it_left_out(tmp_path, capsys):
    obs = {**ROBOMIMIC_OBS, "object": ((10,), "float64"), "gripper_to_cube_pos": ((3,), "float64"),
           "robot0_joint_pos": ((3,), "float64")}
    _robomimic(tmp_path / "lift.hdf5", obs=obs)
    out = tmp_path / "ds"
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(out), "--task", "t",
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert ("observation.state leaves out the obs keys ['gripper_to_cube_pos', 'object']: not the robot's own state "
            "but the simulator's") in captured.err and "name every key wanted with --state-keys" in captured.err
    summary = json.loads(captured.out)
    assert summary["provenance"]["state_keys_left_out"] == ["gripper_to_cube_pos", "object"]
    ds = LeRobotDataset.open(out)
    assert ds.provenance["state_keys"] == ["robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos",
                                           "robot0_joint_pos"]
    # a 3-wide joint position is no point: only the eef position and quaternion are named by axis, each guess said
    assert ds.features["observation.state"]["names"][-3:] == [f"robot0_joint_pos.{i}" for i in range(3)]
    assert ds.provenance["state_column_guesses"] == {
        "robot0_eef_pos": "x, y, z: guessed from the name's ending 'pos' and width 3 to be a 3-D position",
        "robot0_eef_quat": "x, y, z, w: guessed from the name's ending 'quat' and width 4 to be a quaternion in "
                           "robosuite's order"}
    # named, they are kept (and nothing is warned)
    kept = import_hdf5(tmp_path / "lift.hdf5", tmp_path / "all", task="t", state_keys=["robot0_eef_pos", "object"])
    assert kept.state_keys == ("robot0_eef_pos", "object") and "object" not in kept.state_left_out


def test_demos_holding_rewards_unalike_are_refused(tmp_path, capsys):
    _robomimic(tmp_path / "lift.hdf5")
    with h5py.File(tmp_path / "lift.hdf5", "a") as file:
        del file["data/demo_2/rewards"]
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds"), "--task",
                 "t"]) == 2
    assert ("['demo_2'] hold no rewards but ['demo_0', 'demo_10'] do; choose with --mask demos alike"
            in capsys.readouterr().err)
    assert not (tmp_path / "ds").exists()
    assert main(["dataset", "import-hdf5", str(tmp_path / "lift.hdf5"), "--out", str(tmp_path / "ds"), "--task",
                 "t", "--mask", "train", "--no-progress"]) == 0
