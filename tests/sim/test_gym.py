"""gymnasium registration: `gymnasium.make("worldpolicy/<Task>-v0")`, its step limit, make_vec, and our evaluation on
what make returns."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mink")
gym = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env

from worldpolicy.embodiments import STATE_ROLES, get_embodiment
from worldpolicy.sim.env import AGENT_POS_KEYS, GymTabletopEnv, TabletopEnv
from worldpolicy.sim.evaluate import evaluate
from worldpolicy.sim.policies import make_policy
from worldpolicy.sim.registration import ENTRY_POINT, ENV_IDS, WORLD_MODEL_ID
from worldpolicy.sim.scenes import CAMERAS
from worldpolicy.sim.tasks import TASKS

ROOT = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _hold(env) -> np.ndarray:
    """An action that keeps the arm at home with the gripper open: no task succeeds by it, so episodes truncate."""
    return np.append(env.unwrapped.robot.home, 0.0)


def test_one_id_per_task_with_its_horizon(capsys):
    assert ENV_IDS == {"reach": "worldpolicy/Reach-v0", "push": "worldpolicy/Push-v0",
                       "pick_place": "worldpolicy/PickPlace-v0"}
    for task, cls in TASKS.items():
        spec = gym.spec(ENV_IDS[task])
        assert spec.entry_point == ENTRY_POINT and spec.kwargs == {"task": task}
        assert spec.max_episode_steps == cls.max_steps
    gym.pprint_registry()
    assert "worldpolicy/PickPlace-v0" in capsys.readouterr().out


def test_documented_ids_are_registered():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    documented = {m for doc in docs for m in re.findall(r"worldpolicy/[A-Z]\w*-v\d+", doc.read_text())}
    assert documented and documented <= {*ENV_IDS.values(), WORLD_MODEL_ID}


def test_importing_worldpolicy_sim_registers_without_mujoco():
    """Registration reads the task list (sim.tasks), which no longer pulls MuJoCo in through sim.scenes."""
    out = _python("import sys, gymnasium, worldpolicy.sim; "
                  "print(gymnasium.spec('worldpolicy/Reach-v0').max_episode_steps, 'mujoco' in sys.modules)")
    assert out == "60 False"


def test_module_form_of_make_needs_no_prior_import():
    out = _python("import gymnasium; "
                  "env = gymnasium.make('worldpolicy.sim:worldpolicy/Push-v0', image_size=None); "
                  "print(type(env.unwrapped).__name__, env.spec.max_episode_steps)")
    assert out == "GymTabletopEnv 150"


def test_worldpolicy_sim_imports_without_gymnasium():
    """gymnasium is the sim extra's: the CLI imports worldpolicy.sim.commands (and so worldpolicy.sim) without it."""
    out = _python("import sys; sys.modules['gymnasium'] = None; "
                  "import worldpolicy.sim; from worldpolicy.cli import build_parser; build_parser(); print('ok')")
    assert out == "ok"


@pytest.mark.parametrize(("limit", "expected"), [(None, 60), (5, 5), (70, 70)])
def test_make_truncates_where_max_episode_steps_says(limit, expected):
    """The env's own limit (the task's 60 steps) ended episodes before a TimeLimit above it: `max_episode_steps=70`
    gave 60-step episodes. A made env leaves the limit to gymnasium's TimeLimit alone."""
    env = gym.make("worldpolicy/Reach-v0", image_size=None, **({} if limit is None else {"max_episode_steps": limit}))
    assert env.spec.max_episode_steps == expected
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(_hold(env))
        steps += 1
    assert (steps, terminated, truncated) == (expected, False, True)
    env.close()


def test_make_passes_kwargs_through_and_renders_as_gymnasium_does():
    env = gym.make("worldpolicy/Reach-v0", robot="panda", image_size=(16, 24), control_hz=10.0)
    base = env.unwrapped
    assert isinstance(base, GymTabletopEnv) and base.image_size == (16, 24) and base.control_hz == 10.0
    assert base.robot.name == "panda" and env.metadata["render_fps"] == 10.0
    obs, _ = env.reset(seed=1)
    assert obs["observation/wrist_image_left"].shape == (16, 24, 3)
    assert env.render_mode is None  # gymnasium's default: render() warns and returns None
    # naming how to fix it for this env, made by make (it told make's users to call TabletopEnv)
    with pytest.warns(UserWarning, match=re.escape("gymnasium.make('worldpolicy/Reach-v0', ..., render_mode='rgb")):
        assert env.render() is None
    env.close()
    env = gym.make("worldpolicy/Reach-v0", image_size=(16, 24), render_mode="rgb_array_list")  # RenderCollection
    env.reset(seed=1)
    env.step(_hold(env))
    frames = env.render()
    assert len(frames) == 2 and frames[0].shape == (16, 72, 3)
    env.close()


def test_a_task_contradicting_the_id_is_refused_and_the_spec_still_serialises():
    """`make("worldpolicy/Reach-v0", task="push")` built a push env under reach's id and 60-step limit (the caller's
    kwargs override the registered task). Refused as make sets the spec; the id's own task, and an id registered
    elsewhere on this entry point with any task, still make envs whose spec serialises and makes them again."""
    with pytest.raises(ValueError, match=r"task='push' contradicts the id 'worldpolicy/Reach-v0', which is task "
                                         r"'reach'.*gymnasium\.make\('worldpolicy/Push-v0'\)"):
        gym.make("worldpolicy/Reach-v0", task="push", image_size=None)
    with pytest.raises(ValueError, match=r"task='reach' contradicts the id 'worldpolicy/PickPlace-v0'"):
        gym.make("worldpolicy/PickPlace-v0", task=TASKS["reach"](), image_size=None)  # a Task instance by its name
    env = gym.make("worldpolicy/Reach-v0", task="reach", image_size=None)
    again = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    assert again.unwrapped.task.name == "reach" and again.spec.max_episode_steps == 60
    gym.register(id="mine/LongPush-v0", entry_point=ENTRY_POINT, kwargs={"task": "push"}, max_episode_steps=300)
    try:
        assert gym.make("mine/LongPush-v0", image_size=None).unwrapped.task.name == "push"
    finally:
        del gym.registry["mine/LongPush-v0"]


def test_max_steps_is_refused_naming_max_episode_steps():
    with pytest.raises(ValueError, match=r"max_steps: .*gymnasium.make\(\.\.\., max_episode_steps=30\)"):
        gym.make("worldpolicy/Reach-v0", max_steps=30)


@pytest.mark.parametrize(("env_id", "obs_type"), [*((i, "droid") for i in ENV_IDS.values()),
                                                   ("worldpolicy/PickPlace-v0", "pixels_agent_pos")])
def test_env_checker_passes_on_what_make_returns(env_id, obs_type):
    """On the env and on make's wrappers around it; the LeRobot form's float32 agent_pos from bounds cast to float32
    (from float64 ones gymnasium warned of lost precision)."""
    env = gym.make(env_id, image_size=(16, 16), render_mode="rgb_array", obs_type=obs_type)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the PassiveEnvChecker make adds warns on anything off
        env.reset(seed=0)
        env.step(_hold(env))
        assert env.render().shape == (16, 48, 3)
    with warnings.catch_warnings():
        warnings.filterwarnings("error")
        warnings.filterwarnings("ignore", message=".*symmetric and normalized space")  # joint targets in radians
        check_env(env.unwrapped, skip_render_check=False)
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")  # the wrappers, asked
        check_env(env, skip_render_check=False)
    env.close()
    env.close()  # twice: gymnasium's close is idempotent


def test_lerobot_obs_type_holds_the_droid_observation_in_lerobot_keys():
    """`obs_type="pixels_agent_pos"`: LeRobot's sim-env form (gym_aloha's: {"pixels": {camera: image}, "agent_pos"}),
    each camera under its dataset name, agent_pos the DROID state row (joints, gripper) as float32, the prompt in
    `task_description` and info; the spaces hold what comes; the lower-level `observe()` stays the DROID dict."""
    env = gym.make("worldpolicy/Reach-v0", image_size=(16, 24), obs_type="pixels_agent_pos")
    base = env.unwrapped
    space = env.observation_space
    assert set(space) == {"pixels", "agent_pos"}
    assert set(space["pixels"]) == {"exterior_image_1_left", "exterior_image_2_left", "wrist_image_left"}
    assert space["agent_pos"].shape == (8,) and space["agent_pos"].dtype == np.float32
    obs, info = env.reset(seed=4)
    assert space.contains(obs) and obs["agent_pos"].dtype == np.float32
    droid = base.observe()
    # the droid embodiment's state keys, in the order a Policy joins them (the registry names them; the env spells them)
    assert AGENT_POS_KEYS == tuple(get_embodiment("droid").state_keys[role] for role in STATE_ROLES)
    state_row = np.concatenate([droid[key] for key in AGENT_POS_KEYS])
    np.testing.assert_array_equal(obs["agent_pos"], state_row.astype(np.float32))
    for key in CAMERAS:
        image = obs["pixels"][key.rsplit("/", 1)[-1]]
        assert image.dtype == np.uint8 and image.shape == (16, 24, 3) and image.std() > 0
        np.testing.assert_array_equal(image, droid[key])
    assert base.task_description == info["prompt"] == droid["prompt"] and info["prompt"].startswith("move the gripper")
    obs, _, _, _, info = env.step(_hold(env))
    assert space.contains(obs) and info["is_success"] is info["success"] is False
    assert base.replica().obs_type == "pixels_agent_pos"
    env.close()
    # the default stays the DROID dict
    assert "observation/joint_position" in gym.make("worldpolicy/Reach-v0", image_size=None).reset(seed=4)[0]


def test_a_bad_obs_type_is_refused_before_the_scene_is_built(monkeypatch):
    import worldpolicy.sim.env as env_module

    monkeypatch.setattr(env_module, "build_scene", lambda *a, **k: pytest.fail("the scene was built"))
    with pytest.raises(ValueError, match=r"obs_type: expected one of \['droid', 'pixels_agent_pos'\], got 'pixels'"):
        gym.make("worldpolicy/Reach-v0", obs_type="pixels")
    with pytest.raises(ValueError, match=r"obs_type: 'pixels_agent_pos' observes the cameras, and image_size=None"):
        TabletopEnv("reach", image_size=None, obs_type="pixels_agent_pos")


def test_a_lerobot_eval_loop_runs_on_the_lerobot_form():
    """What lerobot-eval (0.4) does with a sim env: gym.make with the env checker off, a SyncVectorEnv autoresetting
    on the same step, `call("_max_episode_steps")` for the horizon, `call("task_description")` for the prompts,
    float32 actions, channels-last uint8 images, and successes from `info["final_info"]["is_success"]`."""
    def make():
        return gym.make("worldpolicy/Reach-v0", disable_env_checker=True, obs_type="pixels_agent_pos",
                        image_size=(16, 16), render_mode="rgb_array", max_episode_steps=2)

    envs = gym.vector.SyncVectorEnv([make, make], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, info = envs.reset(seed=[0, 1])
    assert envs.call("_max_episode_steps") == (2, 2)
    assert list(envs.call("task_description")) == list(info["prompt"]) and info["prompt"][0] != info["prompt"][1]
    assert obs["agent_pos"].shape == (2, 8) and obs["agent_pos"].dtype == np.float32
    assert all(v.shape == (2, 16, 16, 3) and v.dtype == np.uint8 for v in obs["pixels"].values())
    hold = np.tile(_hold(envs.envs[0]), (2, 1)).astype(np.float32)
    first = envs.envs[0].unwrapped
    first.data.mocap_pos[first._goal_mocap] = first.state().tcp[:3, 3]  # env 0's ball moved onto its gripper
    _, reward, terminated, truncated, info = envs.step(hold)
    assert terminated.tolist() == [True, False] and reward.tolist() == [1.0, 0.0]
    assert info["final_info"]["is_success"].tolist() == [True, False] and first.steps == 0  # reset on the same step
    _, _, terminated, truncated, info = envs.step(hold)
    assert truncated.tolist() == [False, True] and info["final_info"]["is_success"].tolist() == [False, False]
    assert envs.call("render")[0].shape == (16, 48, 3)
    envs.close()


def test_record_episode_statistics_counts_made_episodes():
    env = gym.wrappers.RecordEpisodeStatistics(gym.make("worldpolicy/Reach-v0", image_size=None, max_episode_steps=3))
    for seed in (0, 1):
        env.reset(seed=seed)
        for _ in range(3):
            *_, info = env.step(_hold(env))
        assert info["episode"]["l"] == 3 and info["episode"]["r"] == 0.0
    assert list(env.length_queue) == [3, 3]
    env.close()


def test_record_video_writes_an_episode_at_the_control_rate(tmp_path):
    pytest.importorskip("moviepy")  # gymnasium[other]'s, which the sim extra does not install
    env = gym.wrappers.RecordVideo(gym.make("worldpolicy/Reach-v0", image_size=(16, 16), render_mode="rgb_array",
                                            max_episode_steps=3), str(tmp_path / "videos"),
                                   episode_trigger=lambda i: True)
    assert env.frames_per_sec == env.unwrapped.actual_control_hz
    env.reset(seed=0)
    for _ in range(3):
        env.step(_hold(env))
    env.close()
    assert [p.name for p in (tmp_path / "videos").iterdir()] == ["rl-video-episode-0.mp4"]


def test_seeding_through_make_repeats_episodes_and_their_shifts():
    """`reset(seed=s)` draws the scene (and a perturbation's shifts) from the env's `np_random`; unseeded resets go on
    from it, so two envs seeded alike run the same episodes; make_vec's `reset(seed=s)` seeds env i with s + i."""
    def episodes(env, n=3):
        prompts = [env.reset(seed=5)[1]["prompt"]] + [env.reset()[1]["prompt"] for _ in range(n - 1)]
        return prompts, env.unwrapped.observe()["observation/exterior_image_1_left"]

    made = [gym.make("worldpolicy/PickPlace-v0", image_size=(16, 16), perturb="camera=0.03,light=0.5")
            for _ in range(2)]
    (prompts_a, image_a), (prompts_b, image_b) = episodes(made[0]), episodes(made[1])
    assert prompts_a == prompts_b and len(set(prompts_a)) > 1
    np.testing.assert_array_equal(image_a, image_b)
    assert made[0].unwrapped.np_random.bit_generator.state == made[1].unwrapped.np_random.bit_generator.state
    envs = gym.make_vec("worldpolicy/PickPlace-v0", num_envs=2, vectorization_mode="sync", image_size=None)
    _, info = envs.reset(seed=5)
    assert list(info["prompt"]) == [made[0].reset(seed=s)[1]["prompt"] for s in (5, 6)]
    envs.close()


def test_make_vec_sync_batches_and_autoresets():
    envs = gym.make_vec("worldpolicy/Reach-v0", num_envs=2, vectorization_mode="sync", image_size=(16, 16),
                        max_episode_steps=2)
    obs, _ = envs.reset(seed=3)
    assert obs["observation/exterior_image_1_left"].shape == (2, 16, 16, 3)
    assert obs["observation/joint_position"].shape == (2, 7) and len(obs["prompt"]) == 2
    hold = np.tile(np.append(envs.envs[0].unwrapped.robot.home, 0.0), (2, 1))
    truncated = [envs.step(hold)[3] for _ in range(3)]
    # the second step ends both episodes; the third resets them (gymnasium's next-step autoreset), not step them
    assert [t.tolist() for t in truncated] == [[False, False], [True, True], [False, False]]
    assert [e.unwrapped.steps for e in envs.envs] == [0, 0]
    envs.close()


def test_make_vec_async():
    """Spawned workers (a fork of a process that has rendered hangs in EGL); without shared memory, as gymnasium
    decodes a Text observation (the prompt) from it once, at construction."""
    envs = gym.make_vec("worldpolicy/Reach-v0", num_envs=2, vectorization_mode="async", image_size=(16, 16),
                        vector_kwargs={"context": "spawn", "shared_memory": False})
    obs, info = envs.reset(seed=3)
    assert list(obs["prompt"]) == list(info["prompt"]) and obs["prompt"][0].startswith("move the gripper")
    assert obs["observation/wrist_image_left"].shape == (2, 16, 16, 3)
    envs.close()


def test_make_vec_async_lerobot_form_shares_memory():
    """The LeRobot form holds no Text, so shared memory is fine; the prompts come by `call("task_description")`."""
    envs = gym.make_vec("worldpolicy/Reach-v0", num_envs=2, vectorization_mode="async", image_size=(16, 16),
                        obs_type="pixels_agent_pos", vector_kwargs={"context": "spawn"})
    obs, info = envs.reset(seed=3)
    assert list(envs.call("task_description")) == list(info["prompt"]) and info["prompt"][0] != info["prompt"][1]
    assert obs["pixels"]["wrist_image_left"].shape == (2, 16, 16, 3) and obs["pixels"]["wrist_image_left"].std() > 0
    assert np.all(obs["agent_pos"][:, -1] < 0.1)  # the gripper starts open
    envs.close()


@pytest.mark.parametrize(("limit", "steps"), [(None, None), (5, 5)])
def test_evaluate_runs_on_a_made_env_for_its_time_limit(limit, steps):
    """evaluate (Rollout, the scripted expert) read TabletopEnv attributes that gymnasium's wrappers do not forward
    (AttributeError: 'TimeLimit' object has no attribute 'task'); they run on the env underneath, for as many steps as
    the TimeLimit allows."""
    env = gym.make("worldpolicy/Reach-v0", image_size=None, **({} if limit is None else {"max_episode_steps": limit}))
    report = evaluate(env, make_policy("scripted", env=env), policy_name="scripted", episodes=1, progress=False)
    assert report.task == "reach" and report.max_steps == (limit or 60)
    episode = report.episodes[0]
    assert episode.success is (limit is None) and (steps is None or episode.steps == steps)


def test_evaluate_runs_on_a_made_env_of_the_lerobot_form():
    """Episodes read the DROID dict (`observe()`) and the prompt, whatever the env's reset returns: with the LeRobot
    form an episode's prompt was `reset()[0]["prompt"]`, a KeyError."""
    env = gym.make("worldpolicy/Reach-v0", image_size=(16, 16), obs_type="pixels_agent_pos", max_episode_steps=2)
    report = evaluate(env, make_policy("scripted", env=env), policy_name="scripted", episodes=1, progress=False)
    episode = report.episodes[0]
    _, info = gym.make("worldpolicy/Reach-v0", image_size=None).reset(seed=episode.seed)
    assert episode.steps == 2 and episode.prompt == info["prompt"]


def test_evaluate_refuses_an_env_without_a_limit_or_not_ours():
    env = gym.make("worldpolicy/Reach-v0", image_size=None, max_episode_steps=-1)
    with pytest.raises(ValueError, match="no step limit"):
        evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=1, progress=False)
    with pytest.raises(TypeError, match="env: expected a worldpolicy TabletopEnv.*got CartPoleEnv"):
        evaluate(gym.make("CartPole-v1"), make_policy("random", seed=0), policy_name="random", episodes=1,
                 progress=False)


def test_direct_env_keeps_its_own_limit():
    env = TabletopEnv("reach", image_size=None, max_steps=3)
    env.reset(seed=0)
    assert [env.step(_hold(env))[3] for _ in range(3)] == [False, False, True]
