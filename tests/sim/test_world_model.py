"""A world model as a gymnasium env (`worldpolicy.sim.WorldModelEnv`, `worldpolicy/WorldModel-v0`) and a policy run
closed loop in its imagination (`dream`), on the shipped model (CPU, one denoising step): stepping a trajectory's rows
chunk by chunk imagines the video `imagine(whole_trajectory=True)` does, with no MuJoCo anywhere."""

import html
import subprocess
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")
pytest.importorskip("diffusers")

from gymnasium.utils.env_checker import check_env

from worldpolicy.policy import FRESH_SEEDS
from worldpolicy.processing.trajectory import call_seed
from worldpolicy.processing.video import read_video
from worldpolicy.sim.progress import reach_scorer
from worldpolicy.sim.registration import WORLD_MODEL_ID
from worldpolicy.sim.world_model import (
    DREAM_PARTIAL_SCHEMA,
    FRAME_KEY,
    Dream,
    DreamChunk,
    DreamRecorder,
    WorldModelEnv,
    dream,
    dream_settings,
    write_dream,
)

PROMPT = "reach the red ball"


@pytest.fixture(scope="module")
def policy():
    import worldpolicy

    return worldpolicy.load_policy("shipped", device="cpu", steps=1)


@pytest.fixture(scope="module")
def cameras(policy):
    rng = np.random.default_rng(0)
    return {key: rng.integers(0, 256, (180, 320, 3), dtype=np.uint8) for key in policy.embodiment.camera_keys}


@pytest.fixture(scope="module")
def rows(policy, cameras) -> np.ndarray:
    """6 physical rows the policy itself sends (within the trained range): its chunk of 4, then its first 2."""
    chunk = policy.act(cameras, PROMPT, seed=0).actions
    return np.concatenate([chunk, chunk[:2]])


def test_stepping_a_trajectory_chunk_by_chunk_imagines_the_whole_trajectory_video(policy, cameras, rows):
    """6 rows: a chunk of 4, then 2 (padded as imagine pads): the frames, seeds and each step's video are the
    whole-trajectory call's, byte for byte, after reset(seed=) of its seed."""
    whole = policy.imagine(cameras, rows, PROMPT, whole_trajectory=True, seed=7)
    env = WorldModelEnv(policy, cameras, PROMPT)
    obs, info = env.reset(seed=7)
    assert info["seed"] == 7 and obs[FRAME_KEY].shape == whole.video.shape[1:] and obs[FRAME_KEY].dtype == np.uint8
    frames, seeds = [], []
    for chunk in (rows[:4], rows[4:]):
        obs, reward, terminated, truncated, info = env.step(chunk)
        frames.append(info["frames"])
        seeds.append(info["seed"])
        assert reward == 0.0 and not terminated and not truncated
        np.testing.assert_array_equal(obs[FRAME_KEY], info["frames"][-1])
        np.testing.assert_array_equal(env.render(), info["frames"][-1])
    assert [len(f) for f in frames] == [4, 2]
    assert seeds == [c["seed"] for c in whole.settings["trajectory"]["chunks"]] == [7, 8]
    np.testing.assert_array_equal(np.concatenate(frames), whole.video[1:])
    other = WorldModelEnv(policy, cameras, PROMPT)
    other.reset(seed=8)
    assert not np.array_equal(other.step(rows[:4])[4]["frames"], frames[0])  # the seed is what made them match


def test_a_state_conditioned_world_model_goes_on_from_the_last_joint_target(tmp_path):
    """droid/joint_pos: the observation carries the state `act` reads (its state keys), chunk j > 0 starting from
    chunk j-1's last joint target, as the whole trajectory chains it; stepping still gives its video."""
    import worldpolicy
    from worldpolicy.testing import make_tiny_checkpoint

    tiny = worldpolicy.load_policy(make_tiny_checkpoint(tmp_path / "tiny"), embodiment="droid/joint_pos",
                                   chunk_size=4, resolution_tier=256, steps=1)
    e = tiny.embodiment
    rng = np.random.default_rng(4)
    cameras = {key: rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for key in e.camera_keys}
    rows = np.concatenate([rng.uniform(-1, 1, size=(6, 7)), rng.uniform(0, 1, size=(6, 1))], axis=1)
    state = np.concatenate([rng.uniform(-1, 1, 7), [0.0]])
    whole = tiny.imagine(cameras, rows, "push", whole_trajectory=True, state=state, seed=3)
    env = WorldModelEnv(tiny, cameras, "push", state=state)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs[e.state_keys["joints"]], state[:7])
    first = env.step(rows[:4])
    np.testing.assert_allclose(first[0][e.state_keys["joints"]], rows[3, :7], atol=1e-9)
    np.testing.assert_allclose(first[0][e.state_keys["gripper"]], rows[3, 7:], atol=1e-9)
    second = env.step(rows[4:])
    np.testing.assert_array_equal(np.concatenate([first[4]["frames"], second[4]["frames"]]), whole.video[1:])
    assert tiny.act(obs, "push", seed=0).actions.shape == (4, 8)  # the observation is what act takes


@pytest.mark.slow
def test_gymnasiums_env_checker_passes(policy, cameras):
    """check_env compares infos with ==, which a `Prediction` (arrays) cannot answer: it is left out of them here."""

    class WithoutPrediction(gym.Wrapper):
        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward, terminated, truncated, {k: v for k, v in info.items() if k != "prediction"}

    check_env(WithoutPrediction(WorldModelEnv(policy, cameras, PROMPT, max_chunks=3)), skip_render_check=True)


def test_made_by_its_id_and_truncated_at_max_chunks(policy, cameras, rows):
    env = gym.make(WORLD_MODEL_ID, world_model=policy, observation=cameras, prompt=PROMPT, max_chunks=1,
                   scorer=reach_scorer(policy.embodiment.camera_keys))
    env.reset(seed=1)
    _, reward, terminated, truncated, info = env.step(rows[:4])
    assert np.isfinite(reward) and reward <= 0 and not terminated and truncated
    assert info["prediction"].mode == "forward_dynamics" and info["chunk"] == 0
    with pytest.raises(RuntimeError, match="truncated at max_chunks=1; call reset"):
        env.step(rows[:4])
    # one env, many starts: the options' observation (same frame size) and prompt
    flipped = {key: view[:, ::-1] for key, view in cameras.items()}
    obs, info = env.reset(seed=1, options={"observation": flipped, "prompt": "reach the blue ball"})
    assert info["prompt"] == "reach the blue ball" and env.unwrapped.prompt == "reach the blue ball"
    assert not np.array_equal(obs[FRAME_KEY], env.unwrapped._model_frame(cameras, "observation"))


def test_the_start_frame_is_the_frame_dataset_eval_compares_rounded_alike_at_a_half_level(policy, cameras,
                                                                                           monkeypatch):
    """A dream's start frame (`_model_frame`) is the frame `dataset eval` compares an imagined one with
    (`model_frames`, on the same canvas and size), byte for byte; at a level of exactly 64.5 both give 64, as `Policy`
    rounds what it decodes (`model_uint8`): the start frame rounded a half up (65), one level off the recording's."""
    import torch

    from worldpolicy.processing import observations
    from worldpolicy.processing.observations import Canvas, frames_from_mapping, model_frames
    from worldpolicy.sim import world_model

    e = policy.embodiment
    env = WorldModelEnv(policy, cameras, PROMPT)
    start, canvas = env._model_frame(cameras, "observation")
    # as `compare_forward_dynamics` composes a recorded frame: each camera's clip of it
    composed = frames_from_mapping({key: view[None] for key, view in cameras.items()}, e.camera_keys, e.composite)
    recorded = model_frames(composed, policy.resolution_tier, canvas, start.shape[:2], e.snap_to_16)
    assert np.array_equal(start, recorded[0])

    half = np.float32(64.5 / 127.5 - 1.0)  # the canvas value (in [-1, 1]) of level 64.5, exactly in float32
    assert (half + np.float32(1.0)) / np.float32(2.0) * np.float32(255.0) == np.float32(64.5)
    grid = Canvas(canvas_h=32, canvas_w=48, content_h=32, content_w=48, latent_h=2, latent_w=3)

    def placed(frames, tier, num_frames, snap_to_16=True, canvas=None):
        return torch.full((1, 3, num_frames, 32, 48), float(half)), grid

    monkeypatch.setattr(world_model, "prepare_canvas", placed)
    monkeypatch.setattr(observations, "prepare_canvas", placed)
    start, canvas = env._model_frame(cameras, "observation")
    recorded = model_frames(composed, policy.resolution_tier, canvas, start.shape[:2], e.snap_to_16)
    assert canvas == (32, 48) and start.shape == (32, 48, 3)
    assert (start == 64).all() and np.array_equal(start, recorded[0])


def test_a_non_finite_reward_is_refused_naming_its_chunk(policy, cameras, rows):
    env = WorldModelEnv(policy, cameras, PROMPT, scorer=lambda video, prompt: float("nan"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="returned nan for chunk 0; scores must be finite"):
        env.step(rows[:4])


@pytest.mark.parametrize(("action", "said"), [
    (np.zeros((5, 10)), r"action: shape \(5, 10\); accepted: \[k, 10\] with 1 <= k <= chunk_size \(4\)"),
    (np.zeros((4, 8)), r"action: shape \(4, 8\)"),
    (np.zeros(10), r"action: shape \(10,\)"),
    (np.full((4, 10), np.nan), r"action: NaN or inf in \['tx', 'ty'"),
    ([[1, 2], [3]], "action: expected numbers"),
])
def test_a_bad_action_is_refused_naming_it(policy, cameras, action, said):
    env = WorldModelEnv(policy, cameras, PROMPT)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(np.zeros((4, 10)))
    env.reset(seed=0)
    with pytest.raises(ValueError, match=said):
        env.step(action)


def test_bad_settings_are_refused_before_any_imagining(policy, cameras):
    from dataclasses import replace

    with pytest.raises(TypeError, match="world_model: expected a world model with imagine"):
        WorldModelEnv(object(), cameras, PROMPT)
    stateful = type("Stateful", (), {"imagine": policy.imagine, "chunk_size": 4, "resolution_tier": 256,
                                     "embodiment": replace(policy.embodiment, state_history=1)})()
    with pytest.raises(ValueError, match="world_model: embodiment 'panda_reach' conditions each chunk on the robot "
                                         "state, and its relative_pose actions do not say"):
        WorldModelEnv(stateful, cameras, PROMPT)
    with pytest.raises(ValueError, match=r"max_chunks=0; accepted: an int >= 1"):
        WorldModelEnv(policy, cameras, PROMPT, max_chunks=0)
    with pytest.raises(TypeError, match="scorer"):
        WorldModelEnv(policy, cameras, PROMPT, scorer="reach")
    with pytest.raises(ValueError, match="prompt: expected the task"):
        WorldModelEnv(policy, cameras, "")
    env = WorldModelEnv(policy, cameras, PROMPT)
    with pytest.raises(ValueError, match=r"options: unknown \['task'\]; accepted: observation, state, prompt"):
        env.reset(options={"task": "push"})
    with pytest.raises(ValueError, match=r'options\["observation"\]: its frame as the model decodes it is'):
        env.reset(options={"observation": np.zeros((64, 256, 3), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"seed=-1"):
        env.reset(seed=-1)
    drawn = [env.reset(seed=3)[1]["seed"], env.reset()[1]["seed"], env.reset(seed=3)[1]["seed"], env.reset()[1]["seed"]]
    assert drawn[0] == drawn[2] == 3 and drawn[1] == drawn[3] != 3  # gymnasium's np_random
    # drawn short enough to type back, as a request's own seed (`policy.fresh_seed`); a 19-digit number before
    assert 0 <= drawn[1] < FRESH_SEEDS and 0 <= drawn[3] < FRESH_SEEDS


def test_a_policy_dreams_closed_loop_and_the_video_is_saved(policy, cameras, tmp_path):
    """`dream`: the policy acts on each imagined frame, the world model imagines its actions; repeatable by seed, and a
    longer dream of the same seed goes on from the shorter one (its policy's seeds were seed + chunks + j: a 3-chunk
    dream's first chunks were not the 2-chunk dream's)."""
    first = dream(policy, policy, cameras, PROMPT, 2, seed=5, execute_steps=3,
                  scorer=reach_scorer(policy.embodiment.camera_keys))
    assert first.frames.shape[0] == 1 + 2 * 3 and first.actions.shape == (6, 10) and len(first.rewards) == 2
    np.testing.assert_array_equal(first.actions[3:], first.policy_predictions[1].actions[:3])
    assert [p.settings["seed"] for p in first.policy_predictions] == [call_seed(5, 0), call_seed(5, 1)]
    longer = dream(policy, policy, cameras, PROMPT, 3, seed=5, execute_steps=3)
    assert len(longer.rewards) == 3
    np.testing.assert_array_equal(longer.frames[:1 + 2 * 3], first.frames)  # byte for byte
    np.testing.assert_array_equal(longer.actions[:2 * 3], first.actions)
    video, fps = read_video(first.save_video(tmp_path / "dream.mp4"))
    assert video.shape == first.frames.shape and fps == policy.embodiment.fps
    with pytest.raises(ValueError, match=r"execute_steps: 5 is not in 1..4; accepted: 1..4, or none"):
        dream(policy, policy, cameras, PROMPT, 2, execute_steps=5)
    # a policy of a longer chunk than the world model imagines: refused before it acts, not at the first step
    longer = type("Longer", (), {"embodiment": policy.embodiment, "chunk_size": 8,
                                 "act": lambda *a, **k: pytest.fail("the policy acted")})()
    with pytest.raises(ValueError, match=r"policy: sends chunks of 8 actions and the world model imagines at most 4 "
                                         r"per step; accepted: execute_steps 1..4"):
        dream(longer, policy, cameras, PROMPT, 2)


def test_a_dream_and_its_chunks_read_in_a_line_not_their_pixels():
    """A dream in a notebook printed its frames' values (8,700 characters for two chunks of the shipped model): one
    line says its chunks, shapes and rewards, a long dream's first and last."""
    frames = np.zeros((9, 64, 48, 3), np.uint8)
    dreamt = Dream(frames, np.zeros((8, 10)), [0.0, 0.25], 15.0)
    assert repr(dreamt) == "Dream(chunks=2, actions=[8, 10], frames=uint8 [9, 64, 48, 3], fps=15, rewards=[0, 0.25])"
    long = Dream(frames, np.zeros((8, 10)), [i / 10 for i in range(12)], 15.0)
    assert repr(long).endswith("rewards=[0, 0.1, 0.2, 0.3, ..., 0.9, 1, 1.1])")
    chunk = DreamChunk(3, frames[0], np.zeros((4, 10)), frames[:4], 0.5, None, None)
    assert repr(chunk) == "DreamChunk(index=3, actions=[4, 10], frames=uint8 [4, 64, 48, 3], reward=0.5)"


def test_a_dream_shows_in_a_notebook_as_a_result_does(policy, cameras):
    """A dream in a notebook was its repr: its frames and actions took `prediction()` and a writer. It shows as a
    `Prediction` does (its repr over a strip of its frames and a table of its actions, named and in units), and
    `video_player()` plays its frames."""
    dreamt = dream(policy, policy, cameras, PROMPT, 2)
    page = dreamt._repr_html_()
    assert page.startswith(f"<p><code>{html.escape(repr(dreamt))}</code></p>")
    rows, frames = len(dreamt.actions), len(dreamt.frames)
    assert f"of {frames} at {dreamt.fps:g} fps</p><img" in page and page.count("<tr>") == rows + 1
    assert f"<th>{policy.embodiment.columns[0]}" in page
    player = dreamt.video_player()
    assert player.frames == frames and player._repr_html_().startswith("<video")
    bare = Dream(np.zeros((9, 64, 48, 3), np.uint8), np.zeros((8, 2)), [0.0], 15.0)  # no results: columns by index
    assert "<th>0</th><th>1</th>" in bare._repr_html_()


def test_a_recorded_dream_keeps_each_chunk_and_ends_as_the_run_written_at_once(policy, cameras, tmp_path):
    """`DreamRecorder`: while the dream runs, each chunk is a line of chunks.jsonl and a playable mp4 of its frames
    (what a dream killed outright leaves, and what marks the folder a dream run); `finish` writes the very files
    `write_dream` writes of the whole dream at once (what the command wrote, after every chunk, before), and removes
    the record; but for rollout.mp4, the chunks' mp4s joined as they are: it decodes to exactly their frames, where
    encoding the dream's frames again (write_dream alone) gives others. A rerun's first chunk removes the earlier
    run's files, its cameras' images too (a dream given another start keeps its own, or none)."""
    import json

    from PIL import Image

    from worldpolicy.fileio import DREAM_CHUNKS_FILE, DREAM_FILE, DREAM_PARTIAL_DIR, folder_kind
    from worldpolicy.viz.run import observation_file

    settings = dream_settings("shipped", "shipped", 5, 3, 3, "reach", {})
    out = tmp_path / "recorded"
    recorder = DreamRecorder(out, settings, 3, observation=cameras)
    result = dream(policy, policy, cameras, PROMPT, 3, seed=5, execute_steps=3,
                   scorer=reach_scorer(policy.embodiment.camera_keys), on_chunk=recorder.add)
    head, *lines = [json.loads(line) for line in (out / DREAM_CHUNKS_FILE).read_text().splitlines()]
    assert head["schema"] == DREAM_PARTIAL_SCHEMA and head["settings"] == settings and head["chunks_requested"] == 3
    assert head["columns"] == list(policy.embodiment.columns) and head["fps"] == policy.embodiment.fps
    assert [line["chunk"] for line in lines] == [0, 1, 2]
    np.testing.assert_array_equal(np.concatenate([line["actions"] for line in lines]), result.actions)
    assert [line["reward"] for line in lines] == result.rewards
    assert [line["policy_seed"] for line in lines] == [call_seed(5, j) for j in range(3)]
    assert [line["seed"] for line in lines] == [5, 6, 7]
    assert [line["frames"] for line in lines] == [[0, 4], [4, 7], [7, 10]]  # chunk 0's holds the start frame
    chunk_frames = []
    for line in lines:
        video, fps = read_video(out / DREAM_PARTIAL_DIR / line["video"])
        assert len(video) == line["frames"][1] - line["frames"][0] and fps == policy.embodiment.fps
        chunk_frames.append(video)
    assert folder_kind(out)[0].writer == "dream" and not (out / DREAM_FILE).exists()
    at_once = write_dream(result, tmp_path / "at_once", settings, 3, observation=cameras)
    written = recorder.finish()
    assert [p.relative_to(out) for p in written] == [p.relative_to(tmp_path / "at_once") for p in at_once]
    for key, pixels in cameras.items():  # the start the dream was given, as predict keeps its own
        assert observation_file(out, key) in written
        np.testing.assert_array_equal(np.asarray(Image.open(observation_file(out, key))), pixels)
    for name in (DREAM_FILE, "actions.json", "settings.json"):
        assert (out / name).read_bytes() == (tmp_path / "at_once" / name).read_bytes(), name
    rollout, fps = read_video(out / "rollout.mp4")
    assert fps == policy.embodiment.fps and np.array_equal(rollout, np.concatenate(chunk_frames))
    assert not np.array_equal(read_video(tmp_path / "at_once" / "rollout.mp4")[0], rollout)  # encoded twice
    assert not (out / DREAM_PARTIAL_DIR).exists()
    page = (out / "index.html").read_text()  # the run's files alone: the record was gone before the page was drawn
    assert DREAM_PARTIAL_DIR not in page and " · 1 video · " in page
    assert "<section id=observation>" in page and page.index("id=observation>") < page.index("id=videos>")
    again = DreamRecorder(out, settings, 3)  # no observation kept: the earlier dream's images are not this one's
    dream(policy, policy, cameras, PROMPT, 1, seed=6, execute_steps=3, on_chunk=again.add)
    assert not any((out / name).exists() for name in (DREAM_FILE, "actions.json", "rollout.mp4", "index.html"))
    assert not any(observation_file(out, key).exists() for key in cameras)
    assert len((out / DREAM_CHUNKS_FILE).read_text().splitlines()) == 1 + 1
    assert len(again.finish()) == len(written) - len(cameras)
    assert "id=observation>" not in (out / "index.html").read_text()


def test_a_recorded_dream_keeps_its_start_as_read_when_it_began(policy, cameras, tmp_path):
    """The observation's files are read as the recorder is made: a file removed while the dream runs (it may run for
    hours) neither costs the run its images nor fails its writing."""
    from PIL import Image

    from worldpolicy.viz.run import observation_file

    files = {}
    for key, pixels in cameras.items():
        files[key] = tmp_path / f"{key.rsplit('/', 1)[-1]}.png"
        Image.fromarray(pixels).save(files[key])
    out = tmp_path / "run"
    recorder = DreamRecorder(out, dream_settings("shipped", "shipped", 0, 1, None, None, {}), 1, plots=False,
                             observation={key: str(path) for key, path in files.items()})
    for path in files.values():
        path.unlink()
    dream(policy, policy, cameras, PROMPT, 1, seed=0, on_chunk=recorder.add)
    recorder.finish()
    for key, pixels in cameras.items():
        np.testing.assert_array_equal(np.asarray(Image.open(observation_file(out, key))), pixels)


def test_a_recorded_dream_whose_chunk_files_do_not_join_encodes_its_video_from_the_frames(policy, cameras, tmp_path,
                                                                                           caplog):
    """A chunk's mp4 that cannot be joined to the others as it is (here of another codec) does not cost the run its
    video: rollout.mp4 is then encoded from the dream's frames, as `write_dream` alone encodes it, and why is said."""
    import logging

    from worldpolicy.fileio import DREAM_PARTIAL_DIR
    from worldpolicy.processing.video import VideoFileWriter

    settings = dream_settings("shipped", "shipped", 3, 2, None, None, {})
    out = tmp_path / "recorded"
    recorder = DreamRecorder(out, settings, 2)
    result = dream(policy, policy, cameras, PROMPT, 2, seed=3, on_chunk=recorder.add)
    second = out / DREAM_PARTIAL_DIR / "chunk-0001.mp4"
    frames, fps = read_video(second)
    lossless = VideoFileWriter(second, fps, *frames.shape[1:3], codec="libx264rgb")
    lossless.append(frames)
    lossless.close()
    with caplog.at_level(logging.INFO, logger="worldpolicy.viz.run"):
        recorder.finish()
    assert "rollout.mp4 encoded from the frames, not joined from its 2 parts: part 1 (chunk-0001.mp4)" in caplog.text
    write_dream(result, tmp_path / "at_once", settings, 2, plots=False)
    assert (out / "rollout.mp4").read_bytes() == (tmp_path / "at_once" / "rollout.mp4").read_bytes()


def test_the_policy_does_not_judge_the_world_models_frames_as_a_cameras(policy, cameras, caplog, monkeypatch):
    """The policy acts on frames the world model decoded at its canvas size (chunk 0's start too): judged as a
    camera's image against the frames a trained checkpoint records, it told the user to resize images they gave at
    the trained size (`Policy.imagined_frame_said`). The user's own cameras are still judged."""
    monkeypatch.setattr(policy, "_said", set())  # the module's policy: what earlier tests had it say is forgotten
    monkeypatch.setattr(policy, "_trained_frames", {"cameras": {key: (180, 320) for key in cameras},
                                                    "composed": (360, 320)})
    dream(policy, policy, cameras, PROMPT, 2, seed=0)
    assert "where it was" not in caplog.text
    small = {key: view[::2, ::2] for key, view in cameras.items()}
    monkeypatch.setattr(policy, "_said", set())
    dream(policy, policy, small, PROMPT, 1, seed=0)
    assert "camera observation/wrist_image_left is 90x160 where it was 180x320" in caplog.text


def test_the_models_own_frames_go_back_on_the_canvas_they_were_generated_on(policy, cameras, tmp_path, sent_requests):
    """The cameras (360x320 stacked) sit on 256x256, and the frames decoded from it (256x224) would go on 320x256 by
    the aspect-ratio rule: the env's observation carries its canvas (`env.canvas`), every step and the dream's policy
    pass it, and the saved dream records it."""
    from worldpolicy.processing.observations import recorded_canvas

    sent = sent_requests(policy)
    env = WorldModelEnv(policy, cameras, PROMPT)
    obs, _ = env.reset(seed=0)
    assert obs[FRAME_KEY].shape[:2] == (256, 224) and env.canvas == (256, 256)
    dreamed = dream(policy, policy, cameras, PROMPT, 2, seed=0)
    assert [(r.mode, r.canvas) for r in sent] == [("policy", (256, 256)), ("forward_dynamics", (256, 256))] * 2
    assert {tuple(p.settings["canvas_hw"]) for p in dreamed.policy_predictions + dreamed.world_predictions} == {
        (256, 256)}
    assert recorded_canvas(dreamed.save_video(tmp_path / "dream.mp4"), (256, 224), 256) == (256, 256)


def test_the_env_needs_no_mujoco():
    code = ("import sys, gymnasium, worldpolicy.sim, worldpolicy.sim.world_model; "
            f"print(gymnasium.spec({WORLD_MODEL_ID!r}).entry_point, 'mujoco' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["worldpolicy.sim.world_model:WorldModelEnv", "False"]


def test_a_starts_malformed_canvas_record_is_warned_of_once(policy, tmp_path, caplog):
    """An env reset with the same file as its start re-read the file's canvas record each time: a malformed one was
    warned of on every reset."""
    from worldpolicy.processing.video import write_video

    clip = write_video(tmp_path / "start.mp4", np.zeros((2, 256, 224, 3), np.uint8), 15,
                       comment='{"worldpolicy": {"canvas_hw": "oops"}}')
    env = WorldModelEnv(policy, clip, PROMPT)
    for seed in range(3):
        env.reset(seed=seed, options={"observation": clip})
    said = [r for r in caplog.records if "record is not the canvas its frames were generated on" in r.getMessage()]
    assert len(said) == 1 and str(clip) in said[0].getMessage()
