"""Training data: joint → relative-pose conversion, the latent cache, sim start jitter, stacked cameras."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from train_setup import CAMERAS, CHUNK, IMAGE_SIZE, TINY_EMBODIMENT, VIDEO_KEYS


def test_stacked_composite_puts_cameras_one_above_the_other():
    from worldpolicy.processing.observations import frames_from_mapping

    rng = np.random.default_rng(0)
    top = rng.integers(0, 255, (3, 20, 30, 3), dtype=np.uint8)
    bottom = rng.integers(0, 255, (3, 20, 30, 3), dtype=np.uint8)
    keys = ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]
    frames = frames_from_mapping({keys[0]: top, keys[1]: bottom, "other": 0}, keys, "stacked")
    assert frames.shape == (3, 40, 30, 3) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, :20], top / 255.0, atol=1e-6)
    np.testing.assert_allclose(frames[:, 20:], bottom / 255.0, atol=1e-6)
    # order follows camera_keys, a single image is one frame, and a missing camera is named
    swapped = frames_from_mapping({keys[0]: top[0], keys[1]: bottom[0]}, keys[::-1], "stacked")
    assert swapped.shape == (1, 40, 30, 3)
    np.testing.assert_allclose(swapped[0, :20], bottom[0] / 255.0, atol=1e-6)
    with pytest.raises(KeyError, match="exterior_image_2_left"):
        frames_from_mapping({keys[0]: top}, keys, "stacked")


def test_relative_pose_encoding_round_trips_through_the_decoder():
    pytest.importorskip("mink")
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.robot.decode import ActionDecoder, encode_relative_pose
    from worldpolicy.robot.kinematics import IKSolver

    decoder = ActionDecoder("droid/relative_pose", "panda")
    ik = IKSolver("panda")
    rng = np.random.default_rng(0)
    q0 = np.asarray(decoder.robot.home) + rng.uniform(-0.2, 0.2, 7)
    steps = np.cumsum(rng.uniform(-0.03, 0.03, (16, 7)), axis=0)  # a smooth 16-step joint chunk
    joints = q0 + steps
    gripper = np.linspace(0, 1, 16)
    chunk = encode_relative_pose(q0, joints, gripper, ik)
    emb = get_embodiment("droid/relative_pose")
    assert chunk.shape == (16, emb.action_dim)
    np.testing.assert_allclose(chunk[:, -1], gripper)
    # per-step deltas are small translations and near-identity rotations (r0..r5 = first two rotation columns)
    assert np.abs(chunk[:, :3]).max() < 0.05
    np.testing.assert_allclose(chunk[:, 3], 1, atol=0.01)
    np.testing.assert_allclose(chunk[:, 7], 1, atol=0.01)
    command = decoder.decode(chunk, q0)
    reached = np.stack([ik.fk(q)[:3, 3] for q in command.qpos])
    wanted = np.stack([ik.fk(q)[:3, 3] for q in joints])
    assert np.abs(reached - wanted).max() < 3e-3
    np.testing.assert_allclose(command.gripper, gripper)
    # a chunk from another start pose decodes elsewhere: the first delta is relative to the measured start
    moved = decoder.decode(chunk, q0 + 0.3)
    assert np.abs(np.stack([ik.fk(q)[:3, 3] for q in moved.qpos]) - wanted).max() > 0.02


def test_joint_dataset_converts_to_relative_pose_windows(tiny_dataset):
    pytest.importorskip("mink")
    from worldpolicy.embodiments import embodiment_from_dict, get_embodiment
    from worldpolicy.train.data import WindowSpec, count_windows, iter_windows

    spec = WindowSpec(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=tuple(VIDEO_KEYS),
                      action_conversion="joint_to_relative_pose")
    # droid/relative_pose's columns; the dataset has two of DROID's three cameras, so one of them is seen
    one_camera = embodiment_from_dict({**get_embodiment("droid/relative_pose").to_dict(), "name": "one_camera",
                                       "aliases": [], "composite": None})
    windows = list(iter_windows(spec, one_camera))
    window = windows[0]
    assert window.actions.shape == (CHUNK, 10) and window.state is None
    for stride, pad in ((1, True), (3, False)):  # what the encoding bar counts to
        counted = replace(spec, stride=stride, pad=pad)
        assert count_windows(counted) == len(list(iter_windows(counted, one_camera)))
    assert np.all(np.isfinite(window.actions)) and np.abs(window.actions[:, :3]).max() < 0.1
    with pytest.raises(ValueError, match="action_conversion"):
        next(iter_windows(WindowSpec(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=tuple(VIDEO_KEYS)),
                          one_camera))


@pytest.fixture(scope="module")
def cache_parts(tiny_checkpoint, tiny_dataset):
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.embodiments import register_embodiment
    from worldpolicy.engine.loading import load_components
    from worldpolicy.train.data import WindowSpec

    parts = load_components(str(tiny_checkpoint), torch.device("cpu"), torch.float32)
    layout = register_embodiment({**TINY_EMBODIMENT, "name": "tiny_panda_cache", "domain": "tiny_panda_cache",
                                  "domain_id": 30, "chunk_size": CHUNK}, overwrite=True)
    spec = WindowSpec(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=tuple(VIDEO_KEYS))
    return parts, layout, spec


def test_latent_cache_is_reused_and_invalidated_by_new_vae_weights(cache_parts, tmp_path, monkeypatch):
    from worldpolicy.engine import sampler
    from worldpolicy.train.data import LatentCache

    parts, layout, spec = cache_parts
    calls = []
    real = sampler.encode_latents

    def counting(vae, canvas):
        calls.append(canvas.shape[0])
        return real(vae, canvas)

    monkeypatch.setattr(sampler, "encode_latents", counting)

    def build(vae):
        return LatentCache.build_or_load(spec, layout, vae, parts["tokenizer"], tmp_path, progress=False)

    first = build(parts["vae"])
    assert sum(calls) == len(first) > 0 and len(list(tmp_path.glob("latents-*-v3"))) == 1
    calls.clear()
    second = build(parts["vae"])
    assert calls == []  # read from disk, nothing encoded
    assert second.meta["fingerprint"] == first.meta["fingerprint"]
    assert all(torch.equal(a, b) for a, b in zip(first.latents, second.latents))
    assert second.captions == first.captions and second.index == first.index
    assert all(np.array_equal(a, b) for a, b in zip(first.actions, second.actions))
    assert all(np.array_equal(a, b) for a, b in zip(first.states, second.states))

    import copy

    vae = copy.deepcopy(parts["vae"])
    with torch.no_grad():
        next(vae.parameters()).mul_(1.01)
    third = build(vae)
    assert sum(calls) == len(third)  # new weights, new fingerprint: encoded again
    assert third.meta["fingerprint"] != first.meta["fingerprint"]
    assert len(list(tmp_path.glob("latents-*-v3"))) == 2
    assert any(not torch.equal(a, b) for a, b in zip(first.latents, third.latents))

    # the cached examples are model space for the embodiment: state row first, then the chunk, actions normalised
    examples = first.model_examples(layout)
    assert examples[0].actions.shape == (CHUNK + 1, 8) and examples[0].history == 1
    assert examples[0].latents.shape[1] == CHUNK // 4 + 1 and examples[0].domain_id == 30


def test_an_episode_selection_has_its_own_latent_cache_and_naming_every_episode_shares_the_whole_ones(
        cache_parts, tiny_dataset):
    """A latent cache of other episodes is never read for this selection (the fingerprint holds the selection); one
    that names every episode is the whole dataset, so it reads the cache of a run that selected nothing."""
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import count_windows, fingerprint, window_order, window_spec

    parts, layout, _ = cache_parts

    def spec(**selection):
        return window_spec(DataConfig(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=list(VIDEO_KEYS),
                                      **selection), layout)

    def key(window_spec_):
        return fingerprint(window_spec_, layout, parts["vae"], parts["tokenizer"], layout.resolution_tier)

    whole, first, second = spec(), spec(episodes=[0]), spec(exclude_episodes=[0])
    assert (whole.episodes, first.episodes, second.episodes) == (None, (0,), (1,))
    assert len({key(whole), key(first), key(second)}) == 3
    assert spec(episodes=[1, 0]) == whole and key(spec(episodes=[1, 0])) == key(whole)
    assert {episode for episode, _ in window_order(second)} == {1}
    assert count_windows(first) + count_windows(second) == count_windows(whole)


def test_window_order_is_each_window_iter_windows_yields_as_an_array_row(cache_parts):
    """A continued latent cache checks its kept windows against `window_order`: one (episode, start) row per window,
    in `iter_windows`' order, for every window, strided ones, a selection and the spread validation ones alike (an
    array: a list of tuples of a DROID-size dataset's tens of millions of windows took gigabytes)."""
    from dataclasses import replace

    from worldpolicy.train.data import iter_windows, window_order

    _, layout, spec = cache_parts
    for each in (spec, replace(spec, stride=2), replace(spec, episodes=(1,)), replace(spec, windows=5)):
        order = window_order(each)
        assert order.dtype == np.int64 and order.shape[1:] == (2,)
        assert order.tolist() == [[w.episode, w.start] for w in iter_windows(each, layout)]
    assert window_order(replace(spec, episodes=())).shape == (0, 2)


def test_unset_video_keys_say_which_videos_train_and_which_do_not(tiny_dataset, caplog):
    """A dataset recorded with more cameras than the embodiment composes (from-sim's default three, for the shipped
    model's two) trained on some of them without a word, where the action columns it read were said."""
    import logging

    from worldpolicy.embodiments import embodiment_from_spec
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import window_spec

    one = embodiment_from_spec(dict(TINY_EMBODIMENT, camera_keys=CAMERAS[:1], composite=None, domain="droid_lerobot",
                                     chunk_size=CHUNK))
    with caplog.at_level(logging.INFO, logger="worldpolicy.train.data"):
        window_spec(DataConfig(dataset=str(tiny_dataset), chunk_size=CHUNK), one)
        window_spec(DataConfig(dataset=str(tiny_dataset), chunk_size=CHUNK, video_keys=VIDEO_KEYS[:1]), one)
    said = [r.getMessage() for r in caplog.records if "video_keys" in r.getMessage()]
    assert said == [(f"data.video_keys unset: {VIDEO_KEYS[:1]!r} (from data.dataset's videos and the cameras of "
                     f"embodiment 'tiny_panda'); not trained on: {VIDEO_KEYS[1]}")]  # set: not said


def test_start_jitter_moves_the_arm_but_not_the_scene():
    pytest.importorskip("mujoco")
    pytest.importorskip("worldpolicy.sim.policies", reason="worldpolicy.sim has no scripted expert here")
    from worldpolicy.data.from_sim import STATE_KEYS, _CameraFrames, _record
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import ScriptedPolicy

    env = TabletopEnv("reach", image_size=(32, 32), max_steps=2)
    try:
        expert = ScriptedPolicy(env, chunk_size=4)
        cams = ["observation/exterior_image_1_left"]
        runs = {}
        for seed in (11, 12):
            for jitter in (0.0, 0.5):
                episode = _record(env, expert, seed, _CameraFrames(cams, None, seed), settle_steps=0,
                                  start_jitter=jitter)
                runs[seed, jitter] = (episode, env.episode.positions, env.episode.colors)
        home = np.asarray(env.robot.home)
    finally:
        env.close()
    for seed in (11, 12):
        (plain, plain_pos, plain_colors), (jittered, jit_pos, jit_colors) = runs[seed, 0.0], runs[seed, 0.5]
        assert jittered["task"] == plain["task"] and jit_colors == plain_colors
        assert plain_pos.keys() == jit_pos.keys() and "goal" in plain_pos
        for name in plain_pos:
            np.testing.assert_array_equal(plain_pos[name], jit_pos[name])
        q_plain, q_jit = plain["frames"][STATE_KEYS[0]][0], jittered["frames"][STATE_KEYS[0]][0]
        np.testing.assert_allclose(q_plain, home, atol=0.02)
        offset = np.abs(q_jit - home)
        assert offset.max() > 0.01 and offset.max() <= 0.5 + 0.02
    # different seeds, different jitter
    assert not np.allclose(runs[11, 0.5][0]["frames"][STATE_KEYS[0]][0], runs[12, 0.5][0]["frames"][STATE_KEYS[0]][0])


@pytest.mark.parametrize("change, message", [
    ({"chunk_size": 8}, r"has chunk_size=8 but data.chunk_size=4: the checkpoint would predict chunks"),
    # the hint names what exists: no command resamples recorded actions (`dataset label --resample` relabels)
    ({"fps": 30}, (r"recorded at 15 fps but embodiment '.*' has fps=30: set the embodiment's fps to 15 \(the rate the "
                   r"robot was controlled at\), or train on data recorded at 30 fps \(sim data: `dataset from-sim "
                   r"--control-hz 30`\); recorded actions are not resampled \(`dataset label --resample` labels")),
])
def test_an_embodiment_that_does_not_fit_the_data_is_refused(train_config, tmp_path, change, message):
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run", embodiment={**TINY_EMBODIMENT, "name": "tiny_panda_misfit", **change})
    with pytest.raises(ValueError, match=message):
        Trainer(load_config(raw), progress=False).run()
    assert not (tmp_path / "run").exists()


def test_a_served_recording_at_the_request_rate_is_refused_saying_why(train_config, tiny_dataset, tmp_path):
    """A DROID `serve --record` run (a request every 8 steps) was refused as "recorded at 0.46875 fps ... set the
    embodiment's fps to 0.46875": advice that could not work, as its `action` holds each chunk's first action only."""
    import json
    import shutil

    from train_setup import TINY_EMBODIMENT

    from worldpolicy.data.served import SOURCE
    from worldpolicy.fileio import PROVENANCE_FILE
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    served = shutil.copytree(tiny_dataset, tmp_path / "served")
    (served / PROVENANCE_FILE).write_text(json.dumps({"source": SOURCE, "embodiment": "droid"}))
    raw = train_config(tmp_path / "run", embodiment={**TINY_EMBODIMENT, "name": "tiny_panda_served", "fps": 30},
                       data={"dataset": str(served)})
    with pytest.raises(ValueError, match=r"is a `serve --record` recording at 15 fps: one frame per policy request, "
                                         r"its `action` the first of each chunk, so it is fit for training only when "
                                         r"the client asked every control step \(execute_steps 1: 30 fps for "
                                         r"embodiment 'tiny_panda_served'\); this one is for looking at \(dataset "
                                         r"show\), not for training"):
        Trainer(load_config(raw), progress=False).run()


def test_a_width_mismatch_says_which_setting_fixes_it():
    """Named as training names its settings (`data.`), which `train.data` passes the data layer's converter."""
    from worldpolicy.data.actions import action_converter
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.data import WindowSpec

    spec = WindowSpec(dataset="unused", chunk_size=4)
    source = get_embodiment(spec.source_embodiment)
    with pytest.raises(ValueError, match=r"set data.source_embodiment = 'pusht'; else convert them with "
                                         r"data.action_conversion \(accepted: none, joint_to_relative_pose\)"):
        action_converter(spec.action_conversion, source, get_embodiment("pusht"), spec.robot, "data.")
    # where the one conversion fits, it is named
    with pytest.raises(ValueError, match=r"set data.source_embodiment = 'droid/relative_pose'; the dataset's joint "
                                         r"targets convert to 'droid/relative_pose''s columns with data.action_conversion "
                                         r"= 'joint_to_relative_pose' \(or leave it unset\)"):
        action_converter(spec.action_conversion, source, get_embodiment("droid/relative_pose"), spec.robot, "data.")


# -- [data] settings read from the dataset, or refused before any weights load ----------------------------------------

def _shipped_config(out, dataset, **data):
    return {"output_dir": str(out), "checkpoint": "shipped", "device": "cpu", "seed": 0,
            "data": {"dataset": str(dataset), "chunk_size": 4, **data},
            "optim": {"steps": 1, "batch_size": 2, "warmup_steps": 0}}


def test_sim_data_fine_tunes_the_shipped_model_with_nothing_but_the_dataset_named(reach_dataset, tmp_path):
    """A first fine-tune of the shipped model on recorded sim data: the dataset's joint targets can only reach
    panda_reach's end-effector deltas by joint_to_relative_pose, and its two videos are the model's two cameras by
    name. Both settings had to be given, and a missing one was refused only after the weights had loaded."""
    pytest.importorskip("mink")
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"
    records = Trainer(load_config(_shipped_config(out, reach_dataset)), progress=False).run()
    assert len(records) == 1 and np.isfinite(records[0].loss)
    stored = json.loads((out / "config.json").read_text())["data"]  # what was trained, for a reader and a resume
    assert (stored["source_embodiment"], stored["action_conversion"], stored["video_keys"]) == (
        "droid/joint_pos", "joint_to_relative_pose", None)
    spelled_out = _shipped_config(out, reach_dataset, action_conversion="joint_to_relative_pose",
                                  source_embodiment="droid/joint_pos")
    assert Trainer(load_config(spelled_out), progress=False).run() == []  # the same run: it resumes, at its end
    # the model by its name, not this install's folder: the run resumes after a move to another machine or venv
    state_file = out / "checkpoints" / "step-0000001" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert json.loads((out / "config.json").read_text())["checkpoint"] == state["config"]["checkpoint"] == "shipped"
    # as an older version stored it (this install's folder, or another's): the same setting, and it resumes
    from worldpolicy.models import shipped_model

    for stored in (str(shipped_model()), "/old/venv/lib/python3.11/site-packages/worldpolicy/models/panda_reach"):
        state_file.write_text(json.dumps(dict(state, config=dict(state["config"], checkpoint=stored))))
        more = _shipped_config(out, reach_dataset)
        more["optim"]["steps"] = 2
        assert [r.step for r in Trainer(load_config(more), progress=False).run(stop_after=0)] == [], stored


def test_an_adapter_on_the_shipped_model_names_it_shipped_and_loads_in_another_install(reach_dataset, tmp_path):
    """An adapter checkpoint's base_model.json named this install's shipped-model folder: copied to another machine or
    venv, the adapter looked for a base that is not there."""
    pytest.importorskip("mink")
    pytest.importorskip("peft")
    from worldpolicy import Policy
    from worldpolicy.engine.sources import adapter_base
    from worldpolicy.models import shipped_model
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = dict(_shipped_config(tmp_path / "run", reach_dataset), finetune={"mode": "lora", "lora_save": "adapter"})
    Trainer(load_config(raw), progress=False).run()
    checkpoint = tmp_path / "run" / "checkpoints" / "step-0000001"
    base_file = checkpoint / "base_model.json"
    info = json.loads(base_file.read_text())
    assert info["base_model_name_or_path"] == "shipped"
    for stored in ("shipped", "/old/venv/lib/python3.11/site-packages/worldpolicy/models/panda_reach"):
        base_file.write_text(json.dumps(dict(info, base_model_name_or_path=stored)))
        assert adapter_base(checkpoint).path == str(shipped_model()), stored
    # the base loaded from this install, its weights checked against the samples the adapter was trained on
    assert Policy.from_pretrained(checkpoint, device="cpu").embodiment.name == "panda_reach"


@pytest.mark.parametrize("data, message", [
    ({"video_keys": ["observation.image.wrist_image_left"]},
     (r"data.video_keys=\['observation.image.wrist_image_left'\] \(data.dataset has \[.*\]\): embodiment "
      r"'panda_reach' needs its cameras "
      r"observation/exterior_image_1_left \(a video key ending in .exterior_image_1_left\), "
      r"observation/wrist_image_left .*, composed 'stacked'")),
    ({"video_keys": ["observation.image.front"]}, (r"data.video_keys=\['observation.image.front'\]: "
                                                   r"\['observation.image.front'\] are not video features "
                                                   r"of data.dataset; it has \[[^]]*\]$")),
    # a typo is named with the video it is likely a typo of
    ({"video_keys": ["observation.image.wrist_image_lft"]}, (
        r"are not video features of data.dataset; it has \[.*\] \(did you mean "
        r"'observation.image.wrist_image_left'\?\)$")),
    ({"action_conversion": "none"}, (r"data.source_embodiment 'droid/joint_pos' .* has 8 columns but the trained "
                                     r"embodiment 'panda_reach' has 10.*data.action_conversion = "
                                     r"'joint_to_relative_pose' \(or leave it unset\)")),
    ({"source_embodiment": "panda_reach"}, (r"data.action_keys=\[.*\] give 8 values per frame but embodiment "
                                            r"'panda_reach' has action_dim 10")),
    ({"source_embodiment": "nobody"}, r"data.source_embodiment='nobody': embodiment='nobody' is not registered"),
    ({"action_keys": ["action.joint_position"]},
     (r"data.source_embodiment is unset and data.action_keys=\['action.joint_position'\] hold 7 columns \(joint_0, "
      r".*neither 'droid/joint_pos''s 8 \(the default\) nor embodiment 'panda_reach''s \(tx, ty")),
    ({"action_keys": ["action.joints"], "source_embodiment": "droid/joint_pos"},
     r"data.action_keys=\['action.joints'\]: \['action.joints'\] not among the dataset's features"),
    ({"state_keys": ["observation.state.joint_positions"]},
     r"data.state_keys=\['observation.state.joint_positions'\] give 7 values per frame"),
    ({"action_keys": ["observation.image.wrist_image_left"], "source_embodiment": "droid/joint_pos"},
     (r"data.action_keys=\['observation.image.wrist_image_left'\]: \['observation.image.wrist_image_left'\] is a "
      r"video, not per-frame numbers: give it in data.video_keys; accepted here: the dataset's numeric features")),
    ({"action_conversion": "joint_to_pose"}, (r"data.action_conversion='joint_to_pose'; accepted: none, "
                                              r"joint_to_relative_pose \(or unset")),
])
def test_data_settings_that_cannot_work_are_refused_before_the_weights_load(reach_dataset, tmp_path, monkeypatch,
                                                                            data, message):
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("weights loaded"))
    with pytest.raises(ValueError, match=message):
        Trainer(load_config(_shipped_config(tmp_path / "run", reach_dataset, **data)), progress=False).run()
    assert not (tmp_path / "run").exists()


def test_a_dataset_in_the_trained_embodiments_own_columns_needs_no_conversion(tmp_path):
    """Actions recorded as panda_reach's columns (info.json names them) are its own: no source or conversion to set.
    Unnamed columns of that width could be anything: refused, naming the setting."""
    from worldpolicy.data import write_episodes
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_spec
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import iter_windows, window_spec

    own = get_embodiment("droid/relative_pose")  # 10 columns, as panda_reach: only the names tell them apart
    reach = checkpoint_spec(shipped_model())
    rng = np.random.default_rng(0)
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    for names, root in ((reach["columns"], tmp_path / "named"), (None, tmp_path / "unnamed")):
        write_episodes(root, [{"frames": {"action": rng.normal(size=(6, 10)).astype(np.float32)},
                               "videos": {"observation.image": frames}, "task": "reach"}], fps=15,
                       features={"action": {"dtype": "float32", "shape": [10], "names": names},
                                 "observation.image": {"dtype": "video", "shape": [32, 32, 3]}},
                       video_codec="libx264rgb")
    from worldpolicy.embodiments import register_embodiment

    target = register_embodiment(reach, overwrite=True)
    spec = window_spec(DataConfig(dataset=str(tmp_path / "named"), chunk_size=4, action_keys=["action"]), target)
    assert (spec.source_embodiment, spec.action_conversion) == ("panda_reach", "none")
    window = next(iter_windows(spec, target))  # the one pre-composed video stands for both cameras
    assert window.actions.shape == (4, 10) and window.state is None
    # a robot of your own: the first fix named is the trained embodiment itself (it was only "the registered one")
    with pytest.raises(ValueError, match=r"data.source_embodiment is unset and data.action_keys=\['action'\] hold 10 "
                                         r"columns \(action_0, .*If they are 'droid/relative_pose''s columns in its "
                                         r"order, set data.source_embodiment = 'droid/relative_pose', or name them so "
                                         r"in the dataset .*else set data.source_embodiment to the registered"):
        window_spec(DataConfig(dataset=str(tmp_path / "unnamed"), chunk_size=4, action_keys=["action"]), own)


def _own_robot_dataset(root, width: int, names: list[str] | None, fps: int) -> None:
    """One 6-frame episode under LeRobot's generic keys (`action`, `observation.state`, `observation.image`), its
    columns named `names` (None: unnamed), as a robot of one's own records it."""
    from worldpolicy.data import write_episodes

    write_episodes(root, [{"frames": {"action": np.zeros((6, width), np.float32),
                                      "observation.state": np.zeros((6, width), np.float32)},
                           "videos": {"observation.image": np.zeros((6, 32, 32, 3), np.uint8)}, "task": "x"}],
                   fps=fps, video_codec="libx264rgb",
                   features={"action": {"dtype": "float32", "shape": [width], "names": names},
                             "observation.state": {"dtype": "float32", "shape": [width], "names": names},
                             "observation.image": {"dtype": "video", "shape": [32, 32, 3]}})


def test_eight_columns_not_named_as_droids_are_read_as_droids_with_a_warning_saying_so(tmp_path, caplog):
    """8 unnamed action values were read as DROID's joints + gripper without a word: a 6-joint robot with a gripper
    and a wrist roll trained on columns of another meaning. The warning names the assumption and the settings that
    say otherwise; columns named as DROID's pass silently."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import window_spec

    droid = get_embodiment("droid/joint_pos")
    target = get_embodiment("droid/relative_pose")
    for names, root in ((list(droid.columns), tmp_path / "named"), (None, tmp_path / "unnamed")):
        _own_robot_dataset(root, 8, names, fps=15)
    for root, warned in ((tmp_path / "named", False), (tmp_path / "unnamed", True)):
        caplog.clear()
        with caplog.at_level("WARNING", logger="worldpolicy.data.actions"):  # where the layout is read
            spec = window_spec(DataConfig(dataset=str(root), chunk_size=4, action_keys=["action"],
                                          state_keys=["observation.state"]), target)
        assert spec.source_embodiment == "droid/joint_pos"
        messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert bool(messages) == warned, messages
    assert ("data.action_keys=['action'] hold 8 columns (action_0, action_1, action_2, action_3, action_4, action_5, "
            "action_6, action_7), not named as 'droid/joint_pos''s (joint_0, joint_1, joint_2, joint_3, joint_4, "
            "joint_5, joint_6, gripper): they are read as its 7 joint targets then the gripper") in messages[0]
    assert "set data.source_embodiment to the registered embodiment they belong to" in messages[0]
    assert "`names`" in messages[0] and "'droid/relative_pose'" not in messages[0]  # 10 columns: not these 8
    # DROID's joints are converted from the state row's start pose, so its state_keys are read though the trained
    # embodiment has no state row: left at their default, they are named as the default with the dataset's own key
    with pytest.raises(ValueError, match=r"data.state_keys=\['observation.state.joint_positions', 'observation.state."
                                         r"gripper_position'\] \(the default: .*e.g. data.state_keys = "
                                         r"\['observation.state'\]"):
        window_spec(DataConfig(dataset=str(tmp_path / "unnamed"), chunk_size=4, action_keys=["action"]), target)
    # action keys that are not found are named first, not the state keys the source would read next
    with pytest.raises(ValueError, match=r"data.action_keys=\['observation.image'\]: .* is a video, not per-frame "
                                         r"numbers: give it in data.video_keys; accepted here: the dataset's numeric "
                                         r"features \['action', 'observation.state'\]"):
        window_spec(DataConfig(dataset=str(tmp_path / "unnamed"), chunk_size=4, action_keys=["observation.image"]),
                    target)


def test_default_keys_a_robots_own_dataset_lacks_read_its_one_action_feature_or_are_named_as_the_default(tmp_path):
    """A LeRobot dataset of one's own robot (`action`, `observation.state`) and a config without action_keys: the
    error named DROID's key names as if the config had set them; then it asked for `action_keys = ["action"]`, the
    dataset's one action feature, which the default now reads. Keys given win; several action features are refused
    naming the default, as are the default state keys."""
    from worldpolicy.data import LeRobotDataset, write_episodes
    from worldpolicy.data.actions import recorded_actions
    from worldpolicy.embodiments import register_embodiment
    from worldpolicy.train.config import DataConfig
    from worldpolicy.train.data import window_spec

    names = ["shoulder", "elbow", "gripper"]
    _own_robot_dataset(tmp_path / "ds", 3, names, fps=10)
    arm = register_embodiment({"name": "arm3", "domain": "arm3", "domain_id": 21, "action_dim": 3, "columns": names,
                               "chunk_size": 4, "fps": 10, "state_history": 1})  # as training registers it
    data = DataConfig(dataset=str(tmp_path / "ds"), chunk_size=4)
    with pytest.raises(ValueError, match=r"data.state_keys=.* \(the default: .*e.g. data.state_keys = "
                                         r"\['observation.state'\]"):
        window_spec(data, arm)
    spec = window_spec(replace(data, state_keys=["observation.state"]), arm)
    assert spec.action_keys == ("action",) and spec.source_embodiment == "arm3"
    with pytest.raises(ValueError, match=r"data.action_keys=\['observation.state.x'\]"):  # given: not replaced
        window_spec(replace(data, action_keys=["observation.state.x"], state_keys=["observation.state"]), arm)
    # what a frame's and an open-loop evaluation's recorded actions read, as training does
    read = recorded_actions(LeRobotDataset.open(tmp_path / "ds"), arm, state_keys=["observation.state"])
    assert read.action_keys == ["action"]
    # two action features: which one holds the actions is the config's to say
    write_episodes(tmp_path / "two", [{"frames": {"action": np.zeros((6, 3), np.float32),
                                                  "action.raw": np.zeros((6, 3), np.float32),
                                                  "observation.state": np.zeros((6, 3), np.float32)},
                                       "videos": {"observation.image": np.zeros((6, 32, 32, 3), np.uint8)},
                                       "task": "x"}],
                   fps=10, video_codec="libx264rgb",
                   features={"action": {"dtype": "float32", "shape": [3], "names": names},
                             "action.raw": {"dtype": "float32", "shape": [3], "names": names},
                             "observation.state": {"dtype": "float32", "shape": [3], "names": names},
                             "observation.image": {"dtype": "video", "shape": [32, 32, 3]}})
    with pytest.raises(ValueError, match=r"data.action_keys=\['action.joint_position', 'action.gripper_position'\] "
                                         r"\(the default: .*\) are not among data.dataset's features \['action', "
                                         r"'action.raw', 'observation.state'\]: .*e.g. data.action_keys = "
                                         r"\['action'\]"):
        window_spec(replace(data, dataset=str(tmp_path / "two"), state_keys=["observation.state"]), arm)


def test_cameras_are_found_by_name_and_a_lone_video_serves_a_one_camera_embodiment():
    from worldpolicy.embodiments import embodiment_from_dict, get_embodiment
    from worldpolicy.train.data import camera_sources

    joint = get_embodiment("droid/joint_pos")
    droid = embodiment_from_dict({**get_embodiment("droid/relative_pose").to_dict(), "name": "three_cameras",
                                  "aliases": [], "composite": None})  # three cameras, none composed: it sees one
    three = [f"observation.image.{c}" for c in ("exterior_image_1_left", "exterior_image_2_left", "wrist_image_left")]
    # a composite takes every camera by name, whatever their order in the dataset
    assert camera_sources(three, None, joint) == {f"observation/{k.rsplit('.', 1)[1]}": k for k in three}
    # one camera: the first of the embodiment's own order (as inference takes it), or the only video there is
    assert camera_sources(three, None, droid) == {"observation/wrist_image_left": "observation.image.wrist_image_left"}
    assert camera_sources(["observation.images.top"], None, get_embodiment("bridge")) == {
        "observation/image": "observation.images.top"}
    assert camera_sources(["observation.image"], None, joint) == {"observation/image": "observation.image"}
    with pytest.raises(ValueError, match=r"data.dataset's videos \['observation.images.top', 'observation.images.side'"
                                         r"\]: embodiment 'bridge' needs one of its cameras observation/image .*; name "
                                         r"the videos to train on in data.video_keys"):
        camera_sources(["observation.images.top", "observation.images.side"], None, get_embodiment("bridge"))
    assert camera_sources(["observation.images.top", "observation.images.side"], ["observation.images.side"],
                          get_embodiment("bridge")) == {"observation/image": "observation.images.side"}
    with pytest.raises(ValueError, match=r"feed the same camera of embodiment 'three_cameras/relative_pose'"):
        camera_sources(["observation.image.wrist_image_left", "observation.images.wrist_image_left"], None, droid)


def test_a_camera_no_video_feeds_is_refused_naming_the_cameras_the_videos_are():
    """A new embodiment's camera_keys that match no video (a typo, or the dataset's own dotted names) were refused
    naming the cameras needed, not which cameras the videos are, i.e. what camera_keys could say."""
    from train_setup import TINY_EMBODIMENT

    from worldpolicy.embodiments import embodiment_from_dict
    from worldpolicy.train.data import camera_sources

    typo = embodiment_from_dict(dict(TINY_EMBODIMENT, variant="default", domain="tiny_panda", domain_id=21, chunk_size=4,
                                     camera_keys=["observation/exterior_image_1_left", "observation/exterior_imag_2_left"]))
    with pytest.raises(ValueError, match=r"needs its cameras .*observation/exterior_imag_2_left \(a video key "
                                         r"ending in .exterior_imag_2_left\).*; by name, those videos are the cameras "
                                         r"'observation.image.exterior_image_1_left' -> 'observation/exterior_image_1_"
                                         r"left', 'observation.image.exterior_image_2_left' -> 'observation/exterior_"
                                         r"image_2_left' \(a new embodiment's camera_keys may name these\)"):
        camera_sources(VIDEO_KEYS, VIDEO_KEYS, typo)


def test_settings_that_trained_before_resolve_as_they_were_stored(train_config, tmp_path):
    """A run stored before these settings could be unset holds 'droid/joint_pos' and 'none': the same config resolves
    to them, so it resumes, and its latent cache keeps its fingerprint (the window spec is the one it had)."""
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import WindowSpec
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run")
    trainer = Trainer(load_config(raw), progress=False)
    spec, _ = trainer._data()
    assert (trainer.config.data.source_embodiment, trainer.config.data.action_conversion) == ("droid/joint_pos", "none")
    assert spec == WindowSpec(dataset=raw["data"]["dataset"], chunk_size=CHUNK, video_keys=tuple(VIDEO_KEYS))


def test_a_resumed_run_keeps_the_data_settings_it_resolved(train_config, tmp_path, monkeypatch):
    """Unset `source_embodiment`/`action_conversion` resume as the stored run resolved them (what a later version
    would infer from the same dataset may differ): the resume is not refused as a changed setting."""
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    raw = train_config(tmp_path / "run")
    stored = Trainer(load_config(raw), progress=False)
    stored._data()
    saved = stored.config.to_dict()
    saved["data"]["source_embodiment"] = "droid"  # the same 8 columns under another registered name
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("loading")))
    trainer = Trainer(load_config(raw), progress=False)
    with pytest.raises(RuntimeError, match="loading"):  # the stored run's settings were accepted: the weights were next
        trainer.run()
    assert (trainer.config.data.source_embodiment, trainer.config.data.action_conversion) == ("droid", "none")


def test_cached_examples_are_in_the_model_space_inference_reads_gripper_flip_included():
    """The released DROID policy learned the gripper reversed (droid/joint_pos: `gripper_flip`): inference maps a
    physical gripper g to 1 - g and back (`processing.actions`). Training fed g itself, so fine-tuning it on DROID data
    (0 open ... 1 closed) taught the opposite, and the tuned checkpoint then closed where it should open."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.processing.actions import to_model
    from worldpolicy.train.data import LatentCache

    droid = get_embodiment("droid")
    assert droid.gripper_flip and droid.state_history == 1
    actions = np.zeros((CHUNK, 8))
    actions[:, 7] = [0.0, 0.2, 0.9, 0.95]  # closing
    state = np.full(8, 0.1)
    cache = LatentCache([torch.zeros(16, 2, 2, 2)], [actions], [np.ones(CHUNK, bool)], [state], [[[1, 2]]], [(0, 0)], {})
    rows = cache.model_examples(droid)[0].actions.numpy()
    expected = to_model(droid, np.concatenate([state[None], actions]))
    np.testing.assert_allclose(rows, expected, atol=1e-7)
    np.testing.assert_allclose(rows[:, 7], [0.9, 1.0, 0.8, 0.1, 0.05], atol=1e-7)  # state row, then the chunk

    # a new embodiment's stats come from the data in the space they normalise: the flipped gripper's
    stats = cache.action_stats(replace(droid, name="flipped_robot"))
    assert (stats["min"][7], stats["max"][7], stats["mean"][7]) == pytest.approx((0.05, 1.0, 1 - 0.5125))


def test_a_latent_cache_is_read_lazily_from_its_shards_and_equals_what_was_encoded(cache_parts, tmp_path,
                                                                                     monkeypatch):
    """The whole cache was held in RAM (each process of a run its own copy), so a large dataset's cache was refused
    against the RAM: its latents are now views of memory maps of its shards, read as a batch uses them. What the build
    encoded, what the shards hold read eagerly and the examples read lazily are the same bits; bytes changed on disk
    after the cache is opened are what it reads (nothing was read when it opened), and its examples hold no latents of
    their own; nor does the build hold the latents of the shards it wrote."""
    import weakref

    from safetensors.torch import load_file

    from worldpolicy.engine import sampler
    from worldpolicy.train.data import CACHE_META, LatentCache

    parts, layout, spec = cache_parts
    encoded, outputs, held = [], [], []
    real = sampler.encode_latents

    def recording(vae, canvas):
        # the latents of the batches before the last (each a shard, written): the build holds none of them
        held.append(sum(ref() is not None for ref in outputs[:-1]))
        out = real(vae, canvas)
        encoded.append(out.clone())
        outputs.append(weakref.ref(out))
        return out

    monkeypatch.setattr(sampler, "encode_latents", recording)
    cache = LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path, progress=False,
                                      batch_size=3, shard_windows=3)
    assert len(held) > 2 and held == [0] * len(held)
    [folder] = tmp_path.glob("latents-*-v3")
    shards = sorted(folder.glob("windows-*.safetensors"))
    assert sorted(p.name for p in folder.iterdir()) == [CACHE_META, *(p.name for p in shards)] and len(shards) > 1
    eager = torch.cat([load_file(str(shard))["latents"] for shard in shards])
    built = torch.cat(encoded)[..., : eager.shape[-2], : eager.shape[-1]]
    assert len(cache) == len(built) > 3 and torch.equal(built, eager)  # bit for bit
    opened = LatentCache.load(folder)
    lazy, again = opened.model_examples(layout), cache.model_examples(layout)
    for example, other, latents in zip(lazy, again, eager):
        assert torch.equal(example.latents, latents) and torch.equal(other.latents, latents)
        assert torch.equal(example.actions, other.actions) and torch.equal(example.action_valid, other.action_valid)
        assert example.token_ids == other.token_ids
    # no latents read: the bytes on disk now are what the cache reads, in the cache a build returns too (window 4:
    # the second shard's second window, found by its bytes)
    raw = shards[1].read_bytes()
    at = raw.find(eager[4].numpy().tobytes())
    assert at > 0 and raw.count(eager[4].numpy().tobytes()) == 1
    with open(shards[1], "r+b") as f:
        f.seek(at)
        f.write(torch.full_like(eager[4], 7.0).numpy().tobytes())
    for read in (opened, cache):
        assert torch.equal(read.latents[4], torch.full_like(eager[4], 7.0))
        assert torch.equal(read.latents[3], eager[3]) and torch.equal(read.latents[5], eager[5])
    assert torch.equal(lazy[4].latents, torch.full_like(eager[4], 7.0))
    # a view's writes stay in this process (copy-on-write): the file is not changed by training code
    lazy[0].latents.add_(1.0)
    assert torch.equal(load_file(str(shards[0]))["latents"][0], eager[0])


def test_a_latent_cache_folder_is_its_shards_in_order_as_safetensors_wrote_them(tmp_path):
    """A cache is the shards `save` writes with safetensors' own writer and its meta beside them: read back as the
    same windows, in the shards' order, a task's windows sharing their caption ids; a folder missing a shard is named
    rather than read short."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from worldpolicy.fileio import write_json_atomic
    from worldpolicy.train.data import CACHE_META, LatentCache

    rng = np.random.default_rng(0)
    latents = [torch.from_numpy(rng.standard_normal((4, 2, 3, 5)).astype(np.float32)) for _ in range(5)]
    actions = [rng.standard_normal((CHUNK, 8)) for _ in range(5)]
    valid = [rng.random(CHUNK) > 0.3 for _ in range(5)]
    states = [rng.standard_normal(8) for _ in range(5)]
    captions = [[[5, 6, 7]], [[5, 6, 7]], [[8, 9], [10, 11, 12]], [[5, 6, 7]], [[1]]]
    index = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    meta = {"fingerprint": "abc", "windows": 5}
    folder = tmp_path / "latents-abc-v3"
    for start, end in ((0, 2), (2, 5)):
        LatentCache(latents[start:end], actions[start:end], valid[start:end], states[start:end],
                    captions[start:end], index[start:end], {}).save(folder / f"windows-{start:09d}.safetensors")
    write_json_atomic(folder / CACHE_META, meta)
    first = load_file(str(folder / "windows-000000000.safetensors"))
    with safe_open(str(folder / "windows-000000000.safetensors"), framework="pt") as f:
        assert not f.metadata()  # the cache's meta is CACHE_META's alone: a shard repeats none of it
    assert torch.equal(first["latents"], torch.stack(latents[:2]))
    assert torch.equal(first["valid"], torch.from_numpy(np.stack(valid[:2]).astype(np.uint8)))
    cache = LatentCache.load(folder)
    assert cache.meta == meta and cache.captions == captions and cache.index == index and len(cache) == 5
    assert all(torch.equal(a, b) for a, b in zip(cache.latents, latents))
    assert all(np.array_equal(a, b) for a, b in zip(cache.actions, actions))
    assert all(np.array_equal(a, b) for a, b in zip(cache.valid, valid))
    assert all(np.array_equal(a, b) for a, b in zip(cache.states, states))
    assert cache.captions[0] is cache.captions[1]  # a task's windows share their caption ids
    (folder / "windows-000000002.safetensors").unlink()
    with pytest.raises(ValueError, match=r"latents-abc-v3' holds 2 windows in its shards, not the 5 it was built "
                                         r"with: delete that folder to encode it again"):
        LatentCache.load(folder)


def test_every_phrasing_of_a_caption_is_cached(cache_parts, tmp_path, caplog):
    """A task holding phrasings split by " | " (Cosmos3-DROID's) was cached with one drawn per window, kept for every
    epoch; the cache now keeps them all (the trainer draws one per batch position: test_train_timesteps)."""
    from train_setup import make_episode

    from worldpolicy.data import write_episodes
    from worldpolicy.data.from_sim import sim_features
    from worldpolicy.train.data import LatentCache

    parts, layout, spec = cache_parts
    phrasings = ["pick up the cup", "grab the cup", "lift the cup"]
    episode = dict(make_episode(0), task=" | ".join(phrasings))
    root = tmp_path / "ds"
    write_episodes(root, [episode], fps=15, features=sim_features("panda", IMAGE_SIZE, CAMERAS), robot_type="panda",
                   video_codec="libx264rgb")
    cache = LatentCache.build_or_load(replace(spec, dataset=str(root)), layout, parts["vae"], parts["tokenizer"],
                                      tmp_path / "cache", progress=False)
    expected = cache.captions[0]
    assert len(cache) > 1 and all(captions == expected for captions in cache.captions)
    assert [p in parts["tokenizer"].decode(ids) for ids, p in zip(expected, phrasings)] == [True] * 3
    assert " | " not in parts["tokenizer"].decode(expected[0])
    [path] = (tmp_path / "cache").glob("latents-*-v3")
    assert LatentCache.load(path).captions == cache.captions
    # an older worldpolicy's: one file, of one phrasing per window (no version in the name), or of them all (v2)
    older = [path.with_name(path.name.replace("-v3", end)) for end in (".safetensors", "-v2.safetensors")]
    for file in older:
        file.write_bytes(b"")
    (interrupted := path.with_name(path.name.replace("-v3", "-v2.partial"))).mkdir()
    with caplog.at_level("WARNING", logger="worldpolicy.train.data"):
        again = LatentCache.build_or_load(replace(spec, dataset=str(root)), layout, parts["vae"], parts["tokenizer"],
                                          tmp_path / "cache", progress=False)
    assert again.captions == cache.captions
    for file in older:
        assert f"{file}: a latent cache (one file) of an older worldpolicy, not read; delete it" in caplog.text
    assert f"{interrupted}: an interrupted build of an older worldpolicy, not read; delete it" in caplog.text
    assert [list(e.token_ids) for e in cache.model_examples(layout)] == [expected[0]] * len(cache)


def test_an_older_latent_cache_beside_a_build_leaves_its_progress_bar_named(cache_parts, tmp_path, monkeypatch):
    """The warning about an older worldpolicy's cache file reused the name of the windows being encoded (`what`), so
    the build's progress bar read "encoding a latent cache (one file)" instead of "encoding held-out windows"."""
    import shutil

    from worldpolicy import logcapture
    from worldpolicy.train.data import LatentCache

    parts, layout, spec = cache_parts
    descs = []
    real = logcapture.progress_bar
    monkeypatch.setattr(logcapture, "progress_bar", lambda **kw: descs.append(kw["desc"]) or real(**kw))

    def build():
        return LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path / "cache",
                                         progress=False, what="held-out windows")

    build()
    [folder] = (tmp_path / "cache").glob("latents-*-v3")
    shutil.rmtree(folder)  # encoded again, beside an older worldpolicy's cache of the same fingerprint
    folder.with_name(folder.name.replace("-v3", "-v2.safetensors")).write_bytes(b"")
    build()
    assert descs == ["encoding held-out windows"] * 2


def test_an_interrupted_latent_cache_build_continues_where_it_stopped(cache_parts, tmp_path, monkeypatch, caplog):
    """Encoding a real dataset takes hours and a Ctrl-C, crash or kill part-way lost all of it: the next run encoded
    from window 0. The windows encoded so far are now kept in shards, and a rerun encodes only the rest: its cache
    holds the very windows an uninterrupted build's does."""
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.engine import sampler
    from worldpolicy.train.data import CACHE_META, LatentCache, count_windows

    parts, layout, spec = cache_parts
    total = count_windows(spec)
    assert total == 18  # two episodes of 9 windows: the first interruption below ends inside the second

    def build(where, **options):
        return LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path / where,
                                         batch_size=2, progress=False, **options)

    build("whole")
    [reference] = (tmp_path / "whole").glob("latents-*-v3")
    real = sampler.encode_latents
    calls, stop = [], {}

    def encode(vae, canvas):
        if len(calls) == stop.get("after"):
            raise stop["error"]
        calls.append(canvas.shape[0])
        return real(vae, canvas)

    monkeypatch.setattr(sampler, "encode_latents", encode)
    decoded = []
    episode = LeRobotDataset.episode

    def decoding(self, index, videos=True):
        if videos:  # False: actions and states alone (the finite check)
            decoded.append(index)
        return episode(self, index, videos=videos)

    monkeypatch.setattr(LeRobotDataset, "episode", decoding)
    cut = tmp_path / "cut"
    partial = cut / f"{reference.name}.partial"

    # Ctrl-C during the 6th batch: the 5 encoded (10 windows) are kept, in shards of 4 windows and the rest
    stop.update(after=5, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        build("cut", shard_windows=4)
    assert sorted(p.name for p in partial.iterdir()) == [f"windows-{n:09d}.safetensors" for n in (0, 4, 8)]
    assert not list(cut.glob("latents-*-v3"))

    # a crash two batches into the rerun: it went on from window 10 (episode 0 not decoded again) and kept 4 more
    calls.clear(), decoded.clear()
    stop.update(after=2, error=RuntimeError("CUDA out of memory"))
    with caplog.at_level("INFO", logger="worldpolicy.train.data"), pytest.raises(RuntimeError, match="CUDA"):
        build("cut")
    assert f"continuing the latent cache: 10 of {total} windows already encoded" in caplog.text
    assert calls == [2, 2] and 0 not in decoded and decoded
    assert sorted(p.name for p in partial.iterdir()) == [f"windows-{n:09d}.safetensors" for n in (0, 4, 8, 10)]

    # the last rerun encodes the 4 windows left, and its cache is what an uninterrupted build wrote, bit for bit
    calls.clear(), caplog.clear()
    stop.clear()
    with caplog.at_level("INFO", logger="worldpolicy.train.data"):
        cache = build("cut")
    assert f"continuing the latent cache: 14 of {total} windows already encoded" in caplog.text
    assert sum(calls) == total - 14 and len(cache) == total
    [built] = cut.glob("latents-*-v3")
    assert built.name == reference.name and not partial.exists()
    shards = [f"windows-{n:09d}.safetensors" for n in (0, 4, 8, 10, 14)]  # the 4 left: the last shard
    assert sorted(p.name for p in built.glob("windows-*")) == shards
    whole, again = LatentCache.load(reference), LatentCache.load(built)
    assert all(torch.equal(a, b) for a, b in zip(whole.latents, again.latents))
    assert all(np.array_equal(a, b) for a, b in zip(whole.actions, again.actions))
    assert all(np.array_equal(a, b) for a, b in zip(whole.states, again.states))
    assert (again.captions, again.index, again.meta) == (whole.captions, whole.index, whole.meta)
    assert (built / CACHE_META).read_bytes() == (reference / CACHE_META).read_bytes()
    assert [c.tolist() for c in cache.latents] == [c.tolist() for c in whole.latents]  # what this run trains on


def test_a_latent_cache_another_run_finished_meanwhile_is_read_not_replaced(cache_parts, tmp_path, monkeypatch):
    """Two runs sharing data.cache_dir encode the same cache into one `.partial` folder (the second continues after the
    first's shards): the first to finish renames it into the cache. The other then replaced that finished cache with
    what it had written since (here nothing but its meta: a folder of 0 windows, refused as it loaded, and the first
    run's cache gone from under its readers); it now reads the finished one, and leaves no partial folder."""
    from worldpolicy.fileio import write_json_atomic
    from worldpolicy.train.data import CACHE_META, LatentCache

    parts, layout, spec = cache_parts
    real = LatentCache._build.__func__

    def other_run_finishes(cls, *args, **kwargs):
        built = real(cls, *args, **kwargs)
        [partial] = tmp_path.glob("latents-*-v3.partial")
        write_json_atomic(partial / CACHE_META, {**built.meta, "by": "the other run"})
        partial.rename(partial.with_name(partial.name.removesuffix(".partial")))
        return built

    monkeypatch.setattr(LatentCache, "_build", classmethod(other_run_finishes))
    cache = LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path, progress=False)
    [folder] = tmp_path.glob("latents-*")
    assert folder.name.endswith("-v3") and cache.meta["by"] == "the other run"  # its partial folder gone too
    assert len(cache) == cache.meta["windows"] > 1
    assert LatentCache.load(folder).index == cache.index


def test_a_latent_cache_another_run_finishes_as_this_one_publishes_is_read_not_replaced(cache_parts, tmp_path,
                                                                                        monkeypatch):
    """The other run finishes between this one's check and its rename (its meta written): the rename never takes the
    place of a folder holding a finished cache (`replace_folder` did), so this run reads that one and drops its own."""
    import shutil

    from worldpolicy.fileio import write_json_atomic
    from worldpolicy.train import data as train_data
    from worldpolicy.train.data import CACHE_META, LatentCache

    parts, layout, spec = cache_parts

    def meta_then_the_other_run_publishes(path, doc, *args, **kwargs):
        write_json_atomic(path, doc, *args, **kwargs)
        if path.name == CACHE_META and path.parent.name.endswith(".partial"):
            finished = path.parent.with_name(path.parent.name.removesuffix(".partial"))
            shutil.copytree(path.parent, finished)
            write_json_atomic(finished / CACHE_META, {**doc, "by": "the other run"})

    monkeypatch.setattr(train_data, "write_json_atomic", meta_then_the_other_run_publishes)
    cache = LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path, progress=False)
    [folder] = tmp_path.glob("latents-*")  # this run's partial folder gone, nothing set aside
    assert folder.name.endswith("-v3") and cache.meta["by"] == "the other run"
    assert len(cache) == cache.meta["windows"] > 1


def test_a_latent_cache_build_refuses_shards_that_are_not_its_windows_in_order(cache_parts, tmp_path, monkeypatch):
    """Shards follow the dataset's window order from window 0; one out of place (a gap, another build's) is named
    rather than mixed in."""
    from worldpolicy.engine import sampler
    from worldpolicy.train.data import LatentCache

    parts, layout, spec = cache_parts
    real = sampler.encode_latents
    calls = []

    def encode(vae, canvas):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(vae, canvas)

    monkeypatch.setattr(sampler, "encode_latents", encode)

    def build():
        return LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path, batch_size=2,
                                         progress=False, shard_windows=2)

    with pytest.raises(KeyboardInterrupt):
        build()
    [partial] = tmp_path.glob("latents-*.partial")
    (partial / "windows-000000002.safetensors").rename(partial / "windows-000000004.safetensors")  # a gap
    with pytest.raises(ValueError, match=r"windows-000000004.safetensors is not the next windows of data.dataset after "
                                         r"the 2 before it .*delete that folder to encode from the start"):
        build()


def test_a_missing_video_is_refused_before_the_weights_load_unless_a_latent_cache_of_this_data_may_serve(
        tiny_dataset, train_config, tmp_path, monkeypatch):
    """A video file the windows decode and that is not there was found at the first decode, once the weights had
    loaded. A finished latent cache of these very windows may serve the run without a decode (a resume after the videos
    were removed to save room): it is not refused. A cache of other data in the folder (a cache folder shared by runs
    on other episodes, a file that is no cache) serves nothing, and skipped the checks: the missing video was found
    only after the weights loaded."""
    import shutil

    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import CACHE_META, cache_may_serve
    from worldpolicy.train.trainer import Trainer

    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)

    def config(cache: str, **data):
        return load_config(train_config(tmp_path / f"run-{cache}", data={"dataset": str(root),
                                                                         "cache_dir": str(tmp_path / cache), **data}))

    Trainer(config("whole"), progress=False)._load()  # the latent cache of every episode
    Trainer(config("other", episodes=[0]), progress=False)._load()  # of episode 0 only: other windows
    (tmp_path / "other" / "latents-0123-v3").mkdir()  # named as a cache, but none: its meta no JSON
    (tmp_path / "other" / "latents-0123-v3" / CACHE_META).write_bytes(b"")
    files = sorted((root / "videos").rglob("*.mp4"))
    for path in files:
        path.unlink()
    monkeypatch.setattr(loading, "load_components", lambda *a, **k: pytest.fail("loaded the weights"))
    for cache in ("none", "other"):
        with pytest.raises(ValueError, match=rf"{files[0]}: video file is missing \(named by videos/"
                                             rf"{files[0].parent.parent.name}/chunk_index and file_index of episode 0 "
                                             rf"\(from meta/episodes\)\); 1 more video files are missing too"):
            Trainer(config(cache), progress=False).run()
    trainer = Trainer(config("whole"), progress=False)
    trainer._data()  # the data checks pass; the cache serves at loading
    spec, layout = trainer._windows
    [whole] = (tmp_path / "whole").glob("latents-*-v3")
    fingerprint = whole.name.split("-")[1]
    # a resumed run's own cache serves; another fingerprint's does not, though the windows are the same
    assert cache_may_serve(tmp_path / "whole", spec, layout, fingerprint)
    assert not cache_may_serve(tmp_path / "whole", spec, layout, "0123")


def test_frames_much_smaller_than_the_resolution_tier_are_warned_about_before_the_weights_load(
        train_config, tmp_path, monkeypatch, caplog):
    """A 96x96 camera at tier 480 is padded onto a 640x640 canvas (a 96x128 DROID wrist camera scaled up into its
    360x640 place): the model trained on far less detail than its tier holds, and nothing said so. DROID's own
    180x320 cameras fill their places as designed."""
    import logging

    from train_setup import TINY_EMBODIMENT

    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.engine import loading
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import small_frames_warning
    from worldpolicy.train.trainer import Trainer

    droid = get_embodiment("droid")
    frames = {key: [96, 128] for key in droid.camera_keys}
    assert small_frames_warning({"cameras": frames, "composed": [540, 640]}, droid) == (
        "embodiment 'droid/joint_pos' trains at resolution tier 480 (a 544x736 canvas), but camera "
        "observation/wrist_image_left's frames are 96x128, 3 times smaller or more than the 363x645 the tier gives it "
        "(scaled up into its place in the composite): the model learns from less detail than its tier holds; record "
        "larger frames, or give the embodiment a lower resolution_tier")
    frames = {key: [180, 320] for key in droid.camera_keys}
    assert small_frames_warning({"cameras": frames, "composed": [540, 640]}, droid) is None
    pusht = get_embodiment("pusht")
    assert "camera observation/image's frames are 96x96, 3 times smaller or more than the 640x640 the tier gives it " \
           "(padded onto the canvas)" in small_frames_warning({"cameras": {"observation/image": [96, 96]},
                                                              "composed": [96, 96]}, pusht)
    # one pre-composed observation.image for a composing embodiment (what `dataset label` takes): its place is the
    # whole composed frame; the run crashed (IndexError) before it was judged
    assert "camera observation/image's frames are 96x128, 3 times smaller or more than" in small_frames_warning(
        {"cameras": {"observation/image": [96, 128]}, "composed": [96, 128]}, droid)
    assert small_frames_warning({"cameras": {"observation/image": [540, 640]}, "composed": [540, 640]}, droid) is None

    class Stop(Exception):
        pass

    monkeypatch.setattr(loading, "load_components", lambda *a, **k: (_ for _ in ()).throw(Stop()))
    raw = train_config(tmp_path / "run", embodiment={**TINY_EMBODIMENT, "resolution_tier": 480})
    with caplog.at_level(logging.WARNING, logger="worldpolicy.train"), pytest.raises(Stop):
        Trainer(load_config(raw), progress=False).run()
    said = [r.getMessage() for r in caplog.records if "trains at resolution tier" in r.getMessage()]
    assert said == [(
        "embodiment 'tiny_panda' trains at resolution tier 480 (a 736x544 canvas), but camera "
        f"{CAMERAS[0]}'s frames are 64x96, 3 times smaller or more than the 363x544 the tier gives it (padded onto the "
        f"canvas); camera {CAMERAS[1]}'s frames are 64x96, 3 times smaller or more than the 363x544 the tier gives it "
        "(padded onto the canvas): the model learns from less detail than its tier holds; record larger frames, or "
        "give the embodiment a lower resolution_tier")]


def test_a_spec_without_resolution_tier_trains_at_the_starting_checkpoints_tier(train_config, tmp_path, caplog):
    """A new robot's spec without `resolution_tier` trained from the shipped model (tier 256) trained at 480: windows
    padded onto a canvas its weights never saw, at about 4 times the cost. It takes the starting checkpoint's tier
    (a checkpoint without `embodiment.json`: the registered embodiment it was trained for, else droid's 480), and a
    resumed run the tier it trained at."""
    import logging

    from train_setup import TINY_EMBODIMENT

    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    spec = {k: v for k, v in TINY_EMBODIMENT.items() if k != "resolution_tier"}
    with caplog.at_level(logging.INFO, logger="worldpolicy.train"):
        shipped = Trainer(load_config(train_config(tmp_path / "a", checkpoint="shipped", embodiment=spec)),
                          progress=False)
        assert shipped._data()[1].resolution_tier == 256 and shipped.embodiment_spec["resolution_tier"] == 256
    said = [r.getMessage() for r in caplog.records if "resolution_tier" in r.getMessage()]
    assert said == [("embodiment 'tiny_panda' leaves resolution_tier out: it trains at 256, the starting "
                     "checkpoint's (shipped, embodiment 'panda_reach'); set resolution_tier in the spec to train at "
                     "another")]
    tiny = Trainer(load_config(train_config(tmp_path / "b", embodiment=spec)), progress=False)
    assert tiny._data()[1].resolution_tier == 480  # the tiny checkpoint names no embodiment: droid's
    # a run that trained at 256 (its newest checkpoint's embodiment.json) resumes at 256 from the same start
    saved = tmp_path / "c" / "checkpoints" / "step-0000002"
    saved.mkdir(parents=True)
    (saved / "model_index.json").write_text("{}")  # a saved checkpoint (`fileio.saved_checkpoints`)
    (saved / "trainer_state.json").write_text("{}")
    (saved / "embodiment.json").write_text(json.dumps(dict(tiny.embodiment_spec, resolution_tier=256)))
    resumed = Trainer(load_config(train_config(tmp_path / "c", embodiment=spec)), progress=False)
    assert resumed._data()[1].resolution_tier == 256
    # a tier the spec names is kept
    named = Trainer(load_config(train_config(tmp_path / "d", checkpoint="shipped", embodiment=TINY_EMBODIMENT
                                             | {"resolution_tier": 480})), progress=False)
    assert named._data()[1].resolution_tier == 480


def test_a_spec_of_a_few_windows_encodes_only_those_spread_over_the_rest(cache_parts, tmp_path, monkeypatch):
    """The held-out cache encoded every window of the held-out episodes to score `validation.windows` of them: a
    spec's `windows` keeps those alone, the same windows (the same latents, actions and captions) as picked from all,
    and a continued build skips within them."""
    from worldpolicy.engine import sampler
    from worldpolicy.train.data import LatentCache, count_windows, iter_windows, spread_windows

    parts, layout, spec = cache_parts
    encoded = []
    real = sampler.encode_latents
    monkeypatch.setattr(sampler, "encode_latents", lambda vae, canvas: encoded.append(canvas.shape[0]) or
                        real(vae, canvas))

    def build(spec):
        encoded.clear()
        return LatentCache.build_or_load(spec, layout, parts["vae"], parts["tokenizer"], tmp_path, progress=False)

    every = build(spec)
    some = build(replace(spec, windows=3))
    picked = spread_windows(len(every), 3)
    assert sum(encoded) == len(some) == count_windows(replace(spec, windows=3)) == 3 < len(every)
    assert some.meta["fingerprint"] != every.meta["fingerprint"]  # never read as the whole cache, nor it as this
    assert some.index == [every.index[k] for k in picked] and some.captions == [every.captions[k] for k in picked]
    assert all(torch.equal(some.latents[j], every.latents[k]) for j, k in enumerate(picked))
    assert all(np.array_equal(some.actions[j], every.actions[k]) for j, k in enumerate(picked))
    few = list(iter_windows(replace(spec, windows=3), layout))
    assert [(w.episode, w.start) for w in iter_windows(replace(spec, windows=3), layout, skip=1)] == \
        [(w.episode, w.start) for w in few[1:]]


def test_a_run_opens_its_dataset_once_and_reads_each_episode_for_finiteness_once(train_config, tmp_path,
                                                                                 monkeypatch):
    """Opening a DROID-size dataset's metadata takes seconds and the finiteness check reads every episode's data (tens
    of seconds at 90k episodes): the config check, the window spec, the frames, the counts and the encoding each
    opened it again, and the encoding read every episode a second time. `worldpolicy train` now opens it once and
    reads each episode once, held-out ones included (a fresh cache, so its windows are encoded)."""
    from worldpolicy.cli import main
    from worldpolicy.data import LeRobotDataset
    from worldpolicy.train import data

    opened, read = [], []
    open_dataset, check_finite = LeRobotDataset.open.__func__, data.check_finite
    monkeypatch.setattr(LeRobotDataset, "open", classmethod(lambda cls, root: opened.append(root)
                                                            or open_dataset(cls, root)))

    def counting(dataset, keys, episodes, prefix="data."):
        episodes = list(episodes)
        read.extend(episodes)
        check_finite(dataset, keys, episodes, prefix)

    monkeypatch.setattr(data, "check_finite", counting)
    path = tmp_path / "run.json"
    path.write_text(json.dumps(train_config(tmp_path / "run", data={"cache_dir": str(tmp_path / "cache")},
                                            validation={"episodes": [1], "every": 1, "windows": 2},
                                            optim={"steps": 1, "batch_size": 1}, save_every=1)))
    assert main(["train", str(path), "--no-progress"]) == 0
    assert len(opened) == 1 and sorted(read) == [0, 1]


def test_a_latent_cache_past_the_free_disk_or_actions_past_the_ram_are_refused_before_the_weights_load(
        train_config, tiny_checkpoint, tmp_path, monkeypatch, caplog):
    """The latent cache's build writes its latents once (its shards are the cache) and a run holds every window's
    actions in RAM (the latents are read from the shards as batches need them): at DROID's size (27 million windows at
    stride 1) the run stopped on a full disk hours into encoding. The cache's size is estimated from the checkpoint's
    VAE config and the tier's canvas and refused past the cache folder's free space, and the windows' actions past the
    RAM, before anything loads, naming the numbers and the fixes; said when close. A cache larger than the RAM is
    not refused."""
    import shutil

    from worldpolicy.engine import loading
    from worldpolicy.engine.loading import local_vae_config
    from worldpolicy.train.config import load_config
    from worldpolicy.train.data import SHARD_WINDOWS, count_windows, window_bytes, window_ram
    from worldpolicy.train.trainer import Trainer

    def fails(*args, **kwargs):
        raise AssertionError("the weights load")

    monkeypatch.setattr(loading, "load_components", fails)
    plenty = 2**50
    memory, free = [plenty, plenty], [plenty]
    monkeypatch.setattr(loading, "device_memory", lambda device: tuple(memory))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(plenty, 0, free[0]))
    raw = train_config(tmp_path / "run", data={"cache_dir": str(tmp_path / "cache")},
                       validation={"episodes": [1], "every": 1, "windows": 2})

    def check():
        caplog.clear()
        with caplog.at_level("WARNING", logger="worldpolicy.train.trainer"):
            return Trainer(load_config(raw), progress=False)._data()

    spec, layout = check()
    assert "latent cache" not in caplog.text
    windows = count_windows(spec)
    trainer = Trainer(load_config(raw), progress=False)
    trainer._data()
    each = window_bytes(spec, layout, trainer.frames, local_vae_config(tiny_checkpoint))
    size = each * (windows + 2)
    assert each > 4 * 16 * 4  # the latents of a window: channels x latent frames x grid, float32
    from dataclasses import replace

    from worldpolicy.train.config import AugmentConfig

    def augmented(copies):
        return window_bytes(replace(spec, augment=AugmentConfig(enabled=True, copies=copies)), layout, trainer.frames,
                            local_vae_config(tiny_checkpoint))

    # each augmented copy's latents are counted (`augment.copies`), the actions once
    assert augmented(1) == each and augmented(3) - augmented(2) == augmented(2) - each > 4 * 16 * 4
    from worldpolicy.train import trainer as trainer_module

    # a build holds the latents of a shard (SHARD_WINDOWS, 256: the whole of this cache, made smaller here) at most,
    # twice while it is written
    monkeypatch.setattr(trainer_module, "SHARD_WINDOWS", 2)
    ram = window_ram(spec, layout) * (windows + 2) + 2 * 2 * each
    assert SHARD_WINDOWS > windows + 2 and ram < size
    memory[:] = [size - 1, plenty]  # the latents are not held in RAM: a cache larger than it trains
    check()
    memory[:] = [ram - 1, plenty]
    with pytest.raises(ValueError) as refused:
        check()
    text = str(refused.value)
    for named in (f"latent cache of {windows + 2} windows ({windows} training and 2 held-out", "data.stride 1",
                  f"{each / 2**20:.2f} MiB a window", "actions and flags are held in RAM",
                  f"about {window_ram(spec, layout)} bytes a window", "more than this machine's",
                  "a larger data.stride", "fewer data.episodes", "a machine with more RAM"):
        assert named in text
    memory[:] = [2 * ram, ram - 1]  # fits, but not in what is available now
    check()
    assert "latent cache of" in caplog.text and "available now" in caplog.text
    memory[:] = [plenty, plenty]
    free[0] = size - 1  # the shards, written once (a second copy was written before format 3)
    with pytest.raises(ValueError, match=r"written to data\.cache_dir .* point data\.cache_dir at a disk"):
        check()
    free[0] = size
    check()
    assert "written to data.cache_dir" in caplog.text
    # an interrupted build's shards are written already; an older worldpolicy's (v2) is never continued: not counted
    for name, needed in (("latents-0123-v2.partial", size), ("latents-0123-v3.partial", size - 100)):
        (tmp_path / "cache" / name).mkdir(parents=True)
        (tmp_path / "cache" / name / "windows-000000000.safetensors").write_bytes(bytes(100))
        free[0] = needed - 1
        with pytest.raises(ValueError, match=r"written to data\.cache_dir"):
            check()
        free[0] = needed
        check()
