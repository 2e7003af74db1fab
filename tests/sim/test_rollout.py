import dataclasses
import re

import numpy as np
import pytest

pytest.importorskip("mink")
pytest.importorskip("gymnasium")

from worldpolicy.embodiments import register_embodiment
from worldpolicy.results import Prediction
from worldpolicy.robot.control import ChunkStrategy
from worldpolicy.sim.env import TabletopEnv
from worldpolicy.sim.policies import PolicyBackend, RandomPolicy, make_policy
from worldpolicy.sim.rollout import Rollout
from worldpolicy.viz.video import GAP, label_height


@pytest.mark.parametrize("task", ["reach", "push", "pick_place"])
def test_scripted_expert_succeeds_random_does_not(task):
    env = TabletopEnv(task, image_size=None)
    expert = Rollout(env, make_policy("scripted", env=env))
    results = [expert.run(seed) for seed in range(3)]
    assert all(r.success for r in results), [r.to_json() for r in results]
    assert all(r.success_step <= env.max_steps for r in results)
    rand = Rollout(env, make_policy("random", seed=0))
    assert not any(rand.run(seed).success for seed in range(2))


@pytest.mark.parametrize("strategy", [ChunkStrategy("ensemble", execute_steps=4), ChunkStrategy("async")])
def test_strategies_run_and_are_deterministic(strategy):
    env = TabletopEnv("reach", image_size=None)
    runs = []
    for _ in range(2):
        rollout = Rollout(env, RandomPolicy(seed=7), strategy)
        result = rollout.run(seed=1)
        runs.append((result.final_distance_m, result.chunks, env.joint_positions().copy()))
        assert result.ik_mean_mm is not None and result.ik_max_mm < 30
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_strategy_validation():
    with pytest.raises(ValueError, match="strategy: unknown kind 'greedy'"):
        ChunkStrategy("greedy")
    with pytest.raises(ValueError, match="execute_steps"):
        ChunkStrategy("async", execute_steps=20).steps_for(32)


def test_execute_takes_the_models_execute_steps_unless_given():
    env = TabletopEnv("reach", image_size=None)
    policy = RandomPolicy(seed=7)
    policy.embodiment = dataclasses.replace(policy.embodiment, execute_steps=8)
    preferred = Rollout(env, policy).run(seed=1)
    assert preferred.chunks == -(-preferred.steps // 8)
    explicit = Rollout(env, policy, ChunkStrategy("execute", execute_steps=16)).run(seed=1)
    assert explicit.chunks == -(-explicit.steps // 16)
    assert Rollout(env, policy, ChunkStrategy("ensemble")).strategy.execute_steps is None  # only `execute` takes it
    spec = {**policy.embodiment.to_dict(), "name": "wide_k", "variant": None,
            "variants": None, "execute_steps": 64}
    with pytest.raises(ValueError, match=r"execute_steps=64; accepted: 1..chunk_size \(32\)"):
        register_embodiment(spec, overwrite=True)


class _BadWidth:
    """A policy returning 9 columns for a 10-column embodiment."""

    def __init__(self):
        self.embodiment = RandomPolicy().embodiment

    def act(self, observation, prompt):
        return Prediction("policy", self.embodiment.key, [], [], np.zeros((32, 9)), np.zeros((32, 9)), 15.0)


def test_bad_policy_output_is_a_clear_error():
    env = TabletopEnv("reach", image_size=None)
    assert isinstance(_BadWidth(), PolicyBackend)
    with pytest.raises(ValueError, match=r"actions: expected a chunk of shape \[T, 10\]"):
        Rollout(env, _BadWidth()).run(seed=0)


def test_recording_with_imagined_video(caplog):
    env = TabletopEnv("reach", image_size=(48, 64), max_steps=6)

    class Dreamer(RandomPolicy):
        def act(self, observation, prompt):
            pred = super().act(observation, prompt)
            pred.video = np.full((9, 24, 32, 3), 200, np.uint8)
            return pred

    result = Rollout(env, Dreamer(seed=0)).run(seed=0, record=True)
    strip = label_height(48)  # the episode's caption, then each panel's
    assert result.frames.shape[:2] == (6, 48 + 2 * strip) and result.frames.shape[2] >= 4 * 64 + 3 * GAP
    imagined = np.flatnonzero(np.all(result.frames[:, -1] == 200, axis=-1).all(axis=0))
    assert imagined.size >= 60 and imagined.min() > 3 * 64  # the imagined frame, last, at the cameras' height
    # every panel is captioned (which is the sim's, which the model's): dark text in the white strip above each
    row = result.frames[0, 2 * strip:].astype(int)
    panel = np.any(row != 255, axis=(0, 2))
    starts = np.flatnonzero(np.diff(np.r_[0, panel.astype(int)]) == 1)
    ends = np.flatnonzero(np.diff(np.r_[panel.astype(int), 0]) == -1) + 1
    assert len(starts) == 4
    for a, b in zip(starts, ends):
        assert (result.frames[0, strip:2 * strip, a:b] < 100).any()


def test_the_imagined_panel_names_the_camera_in_each_part_of_the_models_composed_frame():
    """The model sees the sim's cameras composed into one picture (DROID: the wrist on top, the exteriors below), and
    the imagined panel showed it with nothing saying which part was which camera: each part is now labelled with the
    camera's name, as its own panel is captioned, drawn over the picture (every frame keeps one size)."""
    from worldpolicy.processing.observations import composite_regions
    from worldpolicy.sim.scenes import CAMERAS

    env = TabletopEnv("reach", image_size=(90, 160), max_steps=4)

    class Dreamer(RandomPolicy):
        def act(self, observation, prompt):
            pred = super().act(observation, prompt)
            pred.video = np.full((9, 264, 320, 3), 200, np.uint8)  # a decoded DROID composite: blank grey
            return pred

    policy = Dreamer(seed=0)
    assert policy.embodiment.composite == "droid_wrist_top"
    result = Rollout(env, policy).run(seed=0, record=True)
    assert len({frame.shape for frame in result.frames}) == 1
    frame, strip = result.frames[-1], 2 * label_height(90)
    columns = np.flatnonzero(np.all(frame[-1] == 200, axis=-1))
    panel = frame[strip:, columns.min():columns.max() + 1]
    assert panel.shape[0] == 90
    regions = composite_regions(CAMERAS, policy.embodiment.camera_keys, "droid_wrist_top")
    height, width = panel.shape[:2]
    for key, (top, left, bottom, right) in regions.items():
        corner = panel[round(top * height):round(top * height) + 12, round(left * width):round(right * width)]
        assert (corner < 100).all(axis=-1).sum() > 10, CAMERAS[key]  # dark text at the part's top-left
        rows, cols = slice(round(top * height) + 14, round(bottom * height) - 1), slice(round(left * width) + 1,
                                                                                        round(right * width) - 1)
        body = panel[rows, cols]
        assert (body == 200).all(), CAMERAS[key]  # the picture itself untouched
    # the texts are the camera names: three labels of distinct widths, the wrist's the shortest
    wrist = regions["observation/wrist_image_left"]
    inked = np.flatnonzero((panel[round(wrist[0] * height):round(wrist[0] * height) + 12] < 100).all(axis=-1).any(0))
    assert inked.max() < width * 0.5


@pytest.mark.parametrize("policy, outcome", [("scripted", True), ("random", False)])
def test_a_recorded_episode_is_captioned_with_what_it_is_and_how_it_ended(policy, outcome):
    """An episode's mp4 watched on its own showed camera names only: not the task, policy, seed, step or outcome."""
    from worldpolicy.sim.rollout import OUTCOME_COLORS

    env = TabletopEnv("reach", image_size=(48, 64), max_steps=60 if outcome else 4)
    rollout = Rollout(env, make_policy(policy, env=env, seed=0), name=policy)
    result = rollout.run(seed=3, record=True)
    assert result.success is outcome and len(result.frames) == result.steps
    strip = label_height(48)
    top = result.frames[:, :strip].astype(int)
    assert (top[:, :, :, 0] < 100).any(axis=(1, 2)).all()  # text on every frame
    corner = [tuple(frame[1, 1]) for frame in top]  # the strip's colour: white until the last frame
    assert corner == [(255, 255, 255)] * (result.steps - 1) + [OUTCOME_COLORS[outcome]]
    hz = env.actual_control_hz
    assert rollout._caption(3, 2, None) == f"reach v{env.task.version} · {policy} · seed 3 · step 2/{env.max_steps} · {2 / hz:.2f} s"
    ending = f"SUCCESS at step {result.steps}" if outcome else "FAILURE: step limit"
    assert rollout._caption(3, result.steps, outcome).endswith(f"step {result.steps}/{env.max_steps} · "
                                                               f"{result.steps / hz:.2f} s · {ending}")


def test_a_shifted_episode_says_its_perturbation_in_its_caption():
    """A clean and a `--perturb` video of one seed carried the same caption."""
    env = TabletopEnv("reach", image_size=(48, 64), perturb="light=0.5,table=blue")
    try:
        caption = Rollout(env, make_policy("scripted", env=env, seed=0), name="scripted")._caption(3, 2, None)
    finally:
        env.close()
    assert caption.startswith(f"reach v{env.task.version} · scripted · seed 3 · perturb light=0.5,table=blue · step 2/")


def test_the_baselines_render_only_the_frames_a_recording_keeps():
    """The scripted expert and random actions never look at the cameras, yet every request of every episode rendered
    all three: `--videos 1` on 100 scripted episodes rendered the 99 it did not record too."""
    env = TabletopEnv("reach", image_size=(48, 64), max_steps=10)
    rendered = []
    render = env.render_camera
    env.render_camera = lambda key: rendered.append(key) or render(key)
    for policy in ("scripted", "random"):
        rollout = Rollout(env, make_policy(policy, env=env, seed=0, chunk_size=2))
        rendered.clear()
        result = rollout.run(seed=0)
        assert result.chunks > 1 and len(rendered) == 3  # reset()'s observation only
        rendered.clear()
        result = rollout.run(seed=0, record=True)
        assert len(rendered) == 3 + 3 * result.steps  # and each recorded frame's cameras


class _Looking(RandomPolicy):
    """Random actions that look at the cameras: keeps each request's camera images."""

    uses_images = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def act(self, observation, prompt):
        self.seen.append({k: v.copy() for k, v in observation.items() if k.startswith("observation/") and "image" in k})
        return super().act(observation, prompt)


def test_a_recorded_episode_asks_with_the_cameras_its_frames_rendered_not_rendered_again():
    """Each recorded frame renders the cameras of the state the next request is asked in: that request rendered them
    again (the demo's episodes, one request per step, rendered every camera twice). The requests see the same images
    as an unrecorded episode's."""
    env = TabletopEnv("reach", image_size=(48, 64), max_steps=6)
    rendered = []
    render = env.render_camera
    env.render_camera = lambda key: rendered.append(key) or render(key)
    seen = {}
    try:
        for record in (False, True):
            policy = _Looking(seed=0, chunk_size=1)
            rendered.clear()
            result = Rollout(env, policy).run(seed=0, record=record)
            seen[record] = policy.seen
        assert result.chunks == result.steps == 6
        # reset()'s observation, the first request's cameras, then each frame's only (not also each next request's)
        assert len(rendered) == 3 + 3 + 3 * result.steps
    finally:
        env.close()
    assert len(seen[True]) == len(seen[False]) == 6
    for recorded, alone in zip(seen[True], seen[False]):
        assert list(recorded) == list(alone)
        for key in alone:
            np.testing.assert_array_equal(recorded[key], alone[key])


class _Counting:
    """Holds the arm at home, gripper open (no episode succeeds), counting its requests."""

    def __init__(self, env, chunk: int):
        from worldpolicy.embodiments import get_embodiment

        self.embodiment = get_embodiment("droid", "joint_pos")
        self.hold = np.tile(np.append(env.robot.home, 0.0), (chunk, 1))
        self.calls = 0

    def act(self, observation, prompt):
        self.calls += 1
        e = self.embodiment
        return Prediction("policy", e.key, list(e.columns), list(e.units), self.hold, self.hold, 15.0)


@pytest.mark.parametrize("max_steps, chunks", [(6, 3), (7, 4), (8, 4)])
def test_async_asks_for_no_chunk_that_could_not_run(max_steps, chunks):
    """The background request for the chunk after the last went out anyway (and the episode waited for it): a
    server's inference whose answer the ended episode could not use."""
    env = TabletopEnv("reach", image_size=None, max_steps=max_steps)
    policy = _Counting(env, chunk=4)
    result = Rollout(env, policy, ChunkStrategy("async", execute_steps=2)).run(seed=0)
    assert (result.steps, result.chunks, policy.calls) == (max_steps, chunks, chunks)


class _Stepping(_Counting):
    """Row i moves joint 1 (i + 1) cm-rad past home: a command says which row it is, or that the arm held."""

    def __init__(self, env, chunk: int):
        super().__init__(env, chunk)
        self.hold[:, 0] += 0.01 * np.arange(1, chunk + 1)


@pytest.mark.parametrize("latency_ms, calls, sent", [
    (0, 3, [1, 2, 3, 4] * 3),  # a request every 4 steps, answered at once
    # 3 steps each: asked at 0 (rows run at 3-6) and 7 (10-11; none at 11, landing at the limit); the arm holds where
    # it was measured, then its last target
    (200, 2, [0, 0, 0, 1, 2, 3, 4, 4, 4, 4, 1, 2]),
])
def test_a_latency_holds_the_arm_and_the_steps_count_toward_the_limit(latency_ms, calls, sent):
    env = TabletopEnv("reach", image_size=None, max_steps=12)
    policy = _Stepping(env, chunk=4)
    rollout = Rollout(env, policy, ChunkStrategy("execute", execute_steps=4), latency_ms=latency_ms)
    commands = []
    result = rollout.run(seed=0, on_act=commands.append)
    assert (result.steps, result.chunks, policy.calls) == (12, calls, calls)
    rows = [(c[0] - env.robot.home[0]) / 0.01 for c in commands]
    np.testing.assert_allclose(rows, sent, atol=0.05)


def test_a_latency_under_half_a_step_runs_as_none_and_says_so(caplog):
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=8)
    with caplog.at_level("WARNING", logger="worldpolicy.sim.rollout"):  # `Rollout`'s: dataset from-sim's too
        report = evaluate(env, _Counting(env, chunk=4), policy_name="hold", episodes=1, progress=False, latency_ms=20)
    assert report.latency == {"ms": 20.0, "ticks": 0}
    assert "latency: 20 ms is under half a control step at 15 Hz, so it runs as none (0 steps)" in caplog.text


def test_evaluate_warns_once_of_an_env_at_another_rate_than_the_policy(caplog):
    """A 15 fps policy evaluated on an env made at 10 Hz (a caller's own env, or `worldpolicy sim --control-hz 10`)
    ran each action for 1.5 times as long, unsaid: `worldpolicy sim` warned, the library's `evaluate` did not. Said
    once, before the episodes, naming both rates and the fix; at the policy's own rate, nothing."""
    from worldpolicy.sim.evaluate import evaluate

    for hz, warnings in ((10.0, 1), (15.0, 0)):
        env = TabletopEnv("reach", image_size=None, max_steps=2, control_hz=hz)
        caplog.clear()
        with caplog.at_level("WARNING", logger="worldpolicy.sim.policies"):
            report = evaluate(env, _Counting(env, chunk=4), policy_name="hold", episodes=2, progress=False)
        said = [r.getMessage() for r in caplog.records if "fps" in r.getMessage()]
        assert len(said) == warnings, said
        assert (report.control_hz, report.policy_fps, len(report.episodes)) == (hz, 15.0, 2)
        if warnings:
            assert said[0].startswith("--policy hold acts at 15 fps but --control-hz is 10: each action runs for "
                                      "0.1 s instead of 0.0667 s; pass --control-hz 15"), said
            # `evaluate` warns a caller of its own env too, who has no flag to pass
            assert "(an env of one's own: TabletopEnv(..., control_hz=15)) to run it" in said[0]


@pytest.mark.parametrize("ms, hz, ticks", [(0, 15, 0), (33, 15, 0), (34, 15, 1), (99, 15, 1), (100, 15, 2),
                                           (200, 15, 3), (500, 15, 8), (200, 10, 2), (250, 10, 3)])
def test_a_latency_is_whole_control_steps_rounded_to_the_nearest_halves_up(ms, hz, ticks):
    from worldpolicy.sim.rollout import latency_ticks

    assert latency_ticks(ms, hz, 60) == ticks


@pytest.mark.parametrize("ms, said", [
    (-1, r"latency_ms: expected milliseconds, a finite number >= 0 \(0: none\), got -1"),
    (float("nan"), r"got nan"), (float("inf"), r"got inf"), ("200", r"got '200'"), (True, r"got True"),
    (3967, (r"latency_ms: 3967 ms is 60 control steps at 15 Hz, at or past the 60-step limit: no reply would land "
           r"before it; accepted: 0 to below 3966.67 ms")),
    (1e300, r"^latency_ms: 1e\+300 ms is 1.5e\+298 control steps at 15 Hz"),  # not the 299 digits of an int
])
def test_a_bad_latency_is_refused_naming_it(ms, said):
    from worldpolicy.sim.rollout import latency_ticks

    with pytest.raises(ValueError, match=said):
        latency_ticks(ms, 15, 60)
    assert latency_ticks(3966, 15, 60) == 59


def test_ensemble_with_a_latency_of_a_whole_chunk_is_refused_before_any_episode():
    """In ms at the control rate, naming the largest that works for the policy's chunk; execute and async run."""
    env = TabletopEnv("reach", image_size=None, max_steps=20)
    policy = _Stepping(env, chunk=4)
    policy.chunk_size = 4  # as the sim's backends say theirs
    with pytest.raises(ValueError, match=r"latency_ms: 250 ms is 4 control steps at 15 Hz, at or past the policy's "
                                         r"4-step chunk: with strategy=ensemble every reply lands past its whole "
                                         r"chunk and is dropped, so the arm never moves; accepted with strategy="
                                         r"ensemble: 0 to below 233.333 ms \(3 steps\), or strategy=execute or "
                                         r"strategy=async"):
        Rollout(env, policy, ChunkStrategy("ensemble"), latency_ms=250)
    assert policy.calls == 0
    Rollout(env, policy, ChunkStrategy("ensemble"), latency_ms=233)  # 3 steps: the last row of each chunk runs
    for strategy in (ChunkStrategy("execute"), ChunkStrategy("async")):
        assert Rollout(env, policy, strategy, latency_ms=250).run(seed=0).chunks > 0


@pytest.mark.parametrize("frames, expected", [(5, [1, 2, 3, 4]), (3, [1, 1, 2, 2])])
def test_each_step_shows_the_imagined_frame_its_action_leads_into(frames, expected):
    """Frame 0 is the observation the chunk was asked for; action i leads into frame i+1 (chunk + 1 frames)."""
    env = TabletopEnv("reach", image_size=(48, 64), max_steps=4)

    class Dreamer(RandomPolicy):
        def act(self, observation, prompt):
            pred = super().act(observation, prompt)
            pred.video = np.stack([np.full((24, 32, 3), 10 * i, np.uint8) for i in range(frames)])
            return pred

    result = Rollout(env, Dreamer(seed=0, chunk_size=4)).run(seed=0, record=True)
    shown = [int(frame[-1, np.flatnonzero(np.any(frame[-1] != 255, axis=-1)).max(), 0]) // 10
             for frame in result.frames]  # the rightmost panel's last pixel that is not its caption's white margin
    assert shown == expected  # 3 frames span the same 4 actions: the first frame at or after each action's end


def test_async_scripted_expert_is_deterministic():
    """The expert plans from the state taken with the observation, not from whatever the env holds when the
    background request runs (three identical async runs used to end 1.5 / 0.7 / 12.3 mm from the goal)."""
    env = TabletopEnv("pick_place", image_size=None)
    runs = [Rollout(env, make_policy("scripted", env=env), ChunkStrategy("async")).run(seed=0) for _ in range(3)]
    assert len({(r.steps, r.final_distance_m) for r in runs}) == 1, [r.to_json() for r in runs]


def test_random_policy_episode_replays_alone_from_its_seed():
    env = TabletopEnv("reach", image_size=None)
    policy = RandomPolicy(seed=0)
    rollout = Rollout(env, policy)
    in_sequence = [rollout.run(seed).final_distance_m for seed in range(3)]
    alone = Rollout(env, RandomPolicy(seed=2)).run(2).final_distance_m
    assert alone == in_sequence[2]


@pytest.mark.parametrize("policy", ["scripted", "random"])
def test_an_episode_is_the_same_run_alone_on_a_fresh_env_as_inside_a_longer_run(policy):
    """What a paper's failing episode needs: `--seed s --episodes 1` replays episode s of any run exactly (scene,
    contacts, the expert's IK, random's noise), whatever ran before it; push has the cube contacts."""
    from worldpolicy.sim.evaluate import evaluate

    def run(seed, episodes):
        env = TabletopEnv("push", image_size=None, max_steps=40)
        report = evaluate(env, make_policy(policy, env=env, seed=seed), policy_name=policy, episodes=episodes,
                          seed=seed, progress=False)
        return [{k: v for k, v in e.to_json().items() if k not in ("policy_s", "wall_s")} for e in report.episodes]

    three = run(0, 3)
    assert run(2, 1) == three[2:]
    assert three[1] != three[2]  # the episodes differ: a comparison that could fail


def test_random_actions_are_independent_of_the_scene_drawn_from_the_same_seed():
    """Episode s's scene (`reset(seed=s)`: gymnasium's np_random) and random's noise (`reset(s)`) came from one stream,
    so the first action's columns 2-4 were the reach ball's x, y and height (correlation 1.0 over seeds)."""
    from gymnasium.utils import seeding

    from worldpolicy.sim.tasks import get_task

    task, policy = get_task("reach"), RandomPolicy(seed=0)
    goals, firsts = [], []
    for seed in range(200):
        goals.append(task.sample(seeding.np_random(seed)[0]).positions["goal"])
        policy.reset(seed)
        firsts.append(policy.act({}, "x").actions_normalized[0])
    corr = np.corrcoef(np.hstack([goals, firsts]).T)[:3, 3:]
    assert np.abs(corr).max() < 0.3, np.round(corr, 2)


def test_make_policy_takes_shipped_as_the_command_and_load_policy_do():
    """`sim --policy shipped` and `load_policy("shipped")` run the shipped model; make_policy took it for a missing
    folder, with an error that did not name it among what is accepted."""
    policy = make_policy("shipped")
    try:
        assert policy.embodiment.key == "panda_reach"
    finally:
        policy.close()


def test_random_actions_for_an_unregistered_embodiment_keep_its_layout_for_the_plots():
    own = dataclasses.replace(RandomPolicy().embodiment, name="sim_own_arm", variant="default")
    doc = RandomPolicy(own, seed=0).act({}, "x").to_json()
    assert (doc["embodiment"], doc["layout"], doc["gripper_column"]) == ("sim_own_arm", own.layout, own.gripper_column)


def test_make_policy_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not 'scripted', 'random', a ws:// URL, 'shipped' "):
        make_policy(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="needs the env"):
        make_policy("scripted")
    # a checkpoint's load settings were dropped for a server (nothing listens here: refused before connecting)
    with pytest.raises(ValueError, match=r"policy ws://127.0.0.1:9: chunk_size=, steps= load a local checkpoint; a "
                                         r"server's model, chunk and sampling are set where it is served"):
        make_policy("ws://127.0.0.1:9", steps=2, chunk_size=8)


def test_an_embodiment_known_only_to_the_backend_decodes_and_sets_the_chunk_steps():
    """A ws:// server's embodiment arrives as a spec, unregistered here: the rollout decodes with it as it is."""
    from worldpolicy import get_embodiment
    from worldpolicy.embodiments import embodiment_from_dict

    lab = embodiment_from_dict(dict(get_embodiment("droid/relative_pose").to_dict(), name="lab_arm", execute_steps=4))
    with pytest.raises(KeyError):
        get_embodiment("lab_arm")
    env = TabletopEnv("reach", image_size=None, max_steps=8)
    result = Rollout(env, RandomPolicy(lab, seed=0)).run(seed=0)
    assert result.steps == 8 and result.chunks == 2  # execute_steps=4 from the backend's own embodiment


class _Fixed:
    """Returns the same physical chunk every call."""

    def __init__(self, embodiment: str, chunk: np.ndarray):
        from worldpolicy import get_embodiment

        self.embodiment, self.chunk = get_embodiment(embodiment), chunk

    def act(self, observation, prompt):
        from worldpolicy.processing.actions import to_model

        e = self.embodiment
        return Prediction("policy", e.key, list(e.columns), list(e.units), self.chunk.copy(),
                          to_model(e, self.chunk), e.fps)


@pytest.mark.parametrize("strategy, expected", [(ChunkStrategy("execute", 8), 8), (ChunkStrategy("execute", 1), 8),
                                                (ChunkStrategy("ensemble", 4), 4 + 2 * 4)])
def test_clipped_counts_only_the_actions_that_ran(strategy, expected):
    """32-step chunks with joint 4 above its limit in every action, 8 steps: execute runs 8 of them (it counted 32 per
    chunk); ensemble blends 1 chunk into steps 0-3 and 2 into steps 4-7."""
    env = TabletopEnv("reach", image_size=None, max_steps=8)
    chunk = np.tile(np.append(env.robot.home, 0.0), (32, 1))
    chunk[:, 3] = 0.5
    result = Rollout(env, _Fixed("droid", chunk), strategy).run(seed=0)
    assert result.steps == 8 and result.clipped == expected


def test_ik_error_covers_only_the_actions_that_ran(caplog):
    """A relative chunk that stays put for 8 steps and then jumps 1 m: with k = 8 the jump never runs, so it neither
    counts in the IK error nor warns."""
    env = TabletopEnv("reach", image_size=None, max_steps=8)
    chunk = np.tile([0, 0, 0, 1, 0, 0, 0, 1, 0, 0.0], (32, 1))
    chunk[8:, 0] = 1.0
    with caplog.at_level("WARNING"):
        result = Rollout(env, _Fixed("droid/relative_pose", chunk), ChunkStrategy("execute", 8)).run(seed=0)
    assert result.chunks == 1 and result.ik_max_mm < 1.0
    assert "unreachable" not in caplog.text


def test_steps_above_the_joint_velocity_limit_are_counted_and_warned_once(caplog):
    """A 2 rad jump of joints 1 and 7 drives them far past Franka's 2.175 / 2.61 rad/s; the dynamics stay as they are."""
    env = TabletopEnv("reach", image_size=None, max_steps=8)
    home = np.append(env.robot.home, 0.0)
    still = Rollout(env, _Fixed("droid", np.tile(home, (32, 1)))).run(seed=0)
    assert still.over_velocity_steps == 0
    jump = home.copy()
    jump[0], jump[6] = 2.0, -2.0
    with caplog.at_level("WARNING", logger="worldpolicy.sim.rollout"):
        fast = Rollout(env, _Fixed("droid", np.tile(jump, (32, 1)))).run(seed=0)
    assert 1 <= fast.over_velocity_steps <= fast.steps and fast.to_json()["over_velocity_steps"] == fast.over_velocity_steps
    assert caplog.text.count("joint velocity:") == 1 and "at step 0 joint1, joint7 moved" in caplog.text  # once per episode


def test_sampling_seeds_differ_across_episodes_and_replay_alone():
    """Episode s's request c used seed s + c, so episode 1's chunks reused episode 0's seeds from its second call on."""
    from worldpolicy.processing.trajectory import call_seed
    from worldpolicy.sim.policies import wrap_policy

    seen = []

    class Recorder(_Fixed):
        def act(self, observation, prompt, seed=None, decode_video=False):
            seen.append(seed)
            return super().act(observation, prompt)

    env = TabletopEnv("reach", image_size=None, max_steps=12)
    still = np.tile(np.append(env.robot.home, 0.0), (4, 1))
    rollout = Rollout(env, wrap_policy(Recorder("droid", still), seed=0), ChunkStrategy("execute", 4))
    for seed in range(3):
        rollout.run(seed)
    assert len(seen) == 9 and len(set(seen)) == 9 and all(0 <= s < 2**63 for s in seen)
    in_run = seen[6:]
    seen.clear()
    Rollout(env, wrap_policy(Recorder("droid", still), seed=2), ChunkStrategy("execute", 4)).run(2)
    assert seen == in_run == [call_seed(2, c) for c in range(3)]


def test_a_loaded_policy_given_as_it_is_gets_the_episodes_sampling_seeds():
    """`evaluate(env, policy, seed=0)` with a `Policy` from `load_policy` sent no seed, so each request drew a random
    one and the same call twice gave different episodes; it now samples as `worldpolicy sim` does."""
    from types import SimpleNamespace

    from worldpolicy.engine import SamplingConfig
    from worldpolicy.policy import Policy
    from worldpolicy.processing.trajectory import call_seed
    from worldpolicy.sim.evaluate import evaluate

    seen = []

    class Loaded(Policy):  # a Policy without weights: what matters is its class and how it is called
        def __init__(self, chunk):
            self.fixed = _Fixed("droid", chunk)
            self.embodiment = self.fixed.embodiment
            # what the report records of a Policy (`policies.policy_settings`)
            self.source, self.sampling, self.chunk_size, self.resolution_tier = "", SamplingConfig(), len(chunk), 480
            self.engine = SimpleNamespace(device="cpu", dtype="float32")
            self.center_crop = None  # trained without `[augment]`: frames whole

        def act(self, observation, prompt, seed=None, decode_video=False):
            seen.append(seed)
            return self.fixed.act(observation, prompt)

    env = TabletopEnv("reach", image_size=None, max_steps=8)
    report = evaluate(env, Loaded(np.tile(np.append(env.robot.home, 0.0), (4, 1))), policy_name="loaded", episodes=2,
                      seed=5, strategy=ChunkStrategy("execute", 4), progress=False)
    assert seen == [call_seed(s, c) for s in (5, 6) for c in (0, 1)]
    assert report.embodiment == "droid/joint_pos" and report.policy_fps == 15


def test_only_a_servers_metadata_frame_sets_a_backends_rate():
    """A wrapped backend's rate read any `metadata()` it had: a local `Policy`'s (what its server would announce,
    reading its run's files on every rate asked for) and an object's that is no server. A server's frame (its
    `url`: `policies.served_metadata`) is read, as `policy_settings` reads it; any other runs at its embodiment's."""
    from worldpolicy.sim.policies import policy_fps, wrap_policy

    class Announcing:
        embodiment = RandomPolicy().embodiment

        def metadata(self):
            return {"fps": 5}

    assert Announcing.embodiment.fps == 15 and policy_fps(wrap_policy(Announcing())) == 15
    server = Announcing()
    server.url = "ws://box:8000"
    assert policy_fps(wrap_policy(server)) == 5


def test_the_progress_bar_counts_the_steps_of_the_running_episode(monkeypatch):
    """The bar counted episodes only: one episode of a checkpoint policy on CPU sat at 0/1 for minutes."""
    import tqdm.auto

    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=6)
    steps = []
    result = Rollout(env, RandomPolicy(seed=0)).run(0, on_step=steps.append)
    assert steps == list(range(1, result.steps + 1)) and result.steps == 6

    shown, drawn = [], []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.mininterval = 0  # every step redrawn: what is drawn is what a slow episode shows

        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            shown.append(kwargs)
            super().set_postfix(ordered_dict, refresh, **kwargs)

        def refresh(self, *args, **kwargs):
            drawn.append(self.postfix)
            return super().refresh(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    evaluate(env, RandomPolicy(seed=0), policy_name="random", episodes=3, seed=0, progress=True)
    assert [s["step"] for s in shown if "step" in s] == [f"{t}/6" for t in range(1, 7)] * 3
    assert [s["success"] for s in shown if "step" in s] == ["0/0"] * 6 + ["0/1"] * 6 + ["0/2"] * 6
    # drawn in every episode, not only the first (tqdm skipped redraws of `update(0)` once an episode had ended)
    assert [f"step={t}/6, success=0/{e}" for e in range(3) for t in range(1, 7)] == [d for d in drawn if d and "step" in d]
    shown.clear()
    evaluate(env, RandomPolicy(seed=0), policy_name="random", episodes=1, seed=0, progress=False)
    assert shown == [{"success": "0/1"}]  # a bar turned off is told nothing per step


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0"])
def test_evaluate_refuses_a_bad_seed_before_any_episode(seed):
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    with pytest.raises(ValueError, match=r"seed: expected an int >= 0 \(episode i uses seed \+ i\)"):
        evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=1, seed=seed, progress=False)
    assert env.episode is None  # refused before the first reset
    with pytest.raises(ValueError, match=r"episodes: expected an int >= 1, got 1.5"):
        evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=1.5, progress=False)


def test_evaluate_takes_a_numpy_seed():
    """gymnasium's reset refuses a numpy integer (`np.arange` seeds); evaluate runs it as the int it is."""
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    report = evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=2, seed=np.int64(3),
                      progress=False)
    assert [e.seed for e in report.episodes] == [3, 4] and type(report.seed) is int


@pytest.mark.parametrize("k", [0, 2.5, True, "4"])
def test_a_chunk_strategy_takes_a_whole_number_of_steps(k):
    """k = 2.5 was accepted and planned chunks at steps where t % 2.5 == 0."""
    with pytest.raises(ValueError, match=rf"execute_steps: expected an int >= 1, got {k!r}"):
        ChunkStrategy("execute", k)
    assert ChunkStrategy("execute", np.int64(4)).steps_for(8) == 4


def test_evaluate_refuses_videos_it_has_no_folder_for():
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    with pytest.raises(ValueError, match=r"videos: 2 episodes to record, but video_dir is None"):
        evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=2, videos=2, progress=False)
    with pytest.raises(ValueError, match=r"videos: expected an int >= 0 .*got -1"):
        evaluate(env, make_policy("random", seed=0), policy_name="random", episodes=2, videos=-1, progress=False)
    assert env.episode is None


@pytest.mark.parametrize("policy", ["scripted", "random"])
def test_a_policy_chunk_of_no_actions_is_refused(policy):
    """chunk_size=0: the scripted expert's rollout divided by zero; random fell back to its default silently."""
    env = TabletopEnv("reach", image_size=None)
    with pytest.raises(ValueError, match=rf"chunk_size: policy '{policy}' takes an int >= 1, got 0"):
        make_policy(policy, env=env, chunk_size=0)
    assert make_policy(policy, env=env, chunk_size=3).chunk_size == 3


# Real-time chunking (`worldpolicy sim --rtc`): async's requests carry the running chunk's rows as action_prefix, and
# each episode measures how far joint targets jump where a chunk hands over

class _Continuing:
    """Chunk c moves joint 1 from 0.1·c rad past home in 0.01 rad steps, so an unconditioned chunk starts a plan 0.1
    rad off; given `action_prefix` it begins with those rows and goes on from the last in the same steps, as a model
    fine-tuned for it would. It records each prefix it was given."""

    def __init__(self, env, chunk: int = 6):
        from worldpolicy.embodiments import get_embodiment

        self.embodiment, self.chunk = get_embodiment("droid", "joint_pos"), chunk
        self.home = np.append(env.robot.home, 0.0)
        self.prefixes: list[np.ndarray | None] = []

    def act(self, observation, prompt, *, action_prefix=None):
        c = len(self.prefixes)
        self.prefixes.append(None if action_prefix is None else np.array(action_prefix))
        rows = np.tile(self.home, (self.chunk, 1))
        if action_prefix is None:
            rows[:, 0] += 0.1 * c + 0.01 * np.arange(1, self.chunk + 1)
        else:
            d = len(action_prefix)
            rows[:d] = action_prefix
            rows[d:, 0] = action_prefix[-1][0] + 0.01 * np.arange(1, self.chunk - d + 1)
        e = self.embodiment
        return Prediction("policy", e.key, list(e.columns), list(e.units), rows, rows, 15.0)


def test_the_report_says_why_a_run_handing_over_at_every_step_has_no_in_chunk_jumps():
    """k = 1 (the shipped model's execute, ensemble): every step a hand-over, no in-chunk jumps to compare them with;
    the line read "..., against no step within a chunk"."""
    from worldpolicy.sim.evaluate import EvalReport

    doc = {"mean_handover_jump_rad": 0.02, "max_handover_jump_rad": 0.03, "mean_chunk_jump_rad": None}
    assert EvalReport._jumps_line(doc) == (
        "Hand-overs: joint targets jumped 0.0200 rad on average (at most 0.0300) where a newer chunk took over, a "
        "hand-over at every step, so no step within a chunk to set them against (the largest joint's change; "
        "episodes' means averaged).")
    doc |= {"mean_chunk_jump_rad": 0.01, "max_chunk_jump_rad": 0.015}
    assert "took over, against 0.0100 (at most 0.0150) from step to step within a chunk" in EvalReport._jumps_line(doc)


@pytest.mark.parametrize("rtc", [False, True])
def test_rtc_passes_the_running_chunk_on_and_the_hand_overs_stop_jumping(rtc):
    """Async with 3 steps of latency (200 ms at 15 Hz) and k = 2: each request after the first gets the 3 rows the
    running chunk runs while it is in flight; with them the targets step 0.01 rad at the hand-overs as within the
    chunks, without them 0.08 to 0.11 rad (the next plan, 0.1 rad off)."""
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=14)
    policy = _Continuing(env)
    report = evaluate(env, policy, policy_name="continuing", episodes=1, progress=False,
                      strategy=ChunkStrategy("async", 2), latency_ms=200, rtc=rtc)
    doc = report.to_json()
    episode = doc["episodes"][0]
    assert doc["rtc"] is rtc and report.settings()["rtc"] is rtc
    # chunk 0 lands at step 3 (the first request blocks), chunks 1-3 take over at 6, 9 and 12 (4 would land at 15)
    assert episode["handovers"] == 3 and len(policy.prefixes) == 4
    assert episode["chunk_jump_mean_rad"] == pytest.approx(0.01)
    assert episode["chunk_jump_max_rad"] == pytest.approx(0.01)
    # without: chunk 1's row 3 (0.14) after chunk 0's row 2 (0.03), then each chunk's row 3 after the last's row 5
    mean, largest = (0.01, 0.01) if rtc else ((0.11 + 0.08 + 0.08) / 3, 0.11)
    assert (episode["handover_jump_mean_rad"], episode["handover_jump_max_rad"]) == pytest.approx((mean, largest))
    assert (doc["mean_handover_jump_rad"], doc["max_handover_jump_rad"]) == pytest.approx((mean, largest))
    assert f"Hand-overs: joint targets jumped {mean:.4f} rad on average" in report.markdown()
    if not rtc:
        assert policy.prefixes == [None] * 4
        return
    assert policy.prefixes[0] is None
    # chunk 0's rows 0-2 (it started at step 3), then chunks 1 and 2's rows 3-5 (each taken 3 rows in)
    np.testing.assert_allclose([p[:, 0] - policy.home[0] for p in policy.prefixes[1:]],
                               [[0.01, 0.02, 0.03], [0.04, 0.05, 0.06], [0.07, 0.08, 0.09]])


def test_rtc_with_a_latency_of_a_whole_chunk_is_refused_as_no_request_would_carry_a_prefix():
    """At 6 steps (400 ms at 15 Hz) of a 6-step chunk async asks nothing while a chunk runs, so an rtc run would send
    no prefix and be rtc in name only: refused before any request, naming rtc and the latency that works; one step
    less runs with prefixes, and without rtc the whole chunk's latency runs as before."""
    env = TabletopEnv("reach", image_size=None, max_steps=20)
    policy = _Continuing(env)
    policy.chunk_size = 6  # as the sim's backends say theirs
    with pytest.raises(ValueError, match=r"^rtc: latency_ms=400 ms is 6 control steps at 15 Hz, at or past the "
                                         r"policy's 6-step chunk: strategy=async then sends no request while a chunk "
                                         r"runs .*accepted with rtc=True: 0 to below 366.667 ms, or leave rtc out$"):
        Rollout(env, policy, ChunkStrategy("async", 2), latency_ms=400, rtc=True)
    assert policy.prefixes == []
    Rollout(env, policy, ChunkStrategy("async", 2), latency_ms=400).run(seed=0)
    assert policy.prefixes and all(p is None for p in policy.prefixes)
    policy.prefixes.clear()
    Rollout(env, policy, ChunkStrategy("async", 2), latency_ms=366, rtc=True).run(seed=0)
    assert any(p is not None for p in policy.prefixes)


def test_the_hand_over_jumps_on_a_constructed_episode():
    """Held steps and the first chunk's first step are neither kind; a newer chunk's step is a hand-over."""
    from worldpolicy.robot.control import JointTarget
    from worldpolicy.sim.rollout import Jumps

    a, b = (Prediction("policy", "droid/joint_pos", [], [], np.zeros((4, 8)), np.zeros((4, 8)), 15.0)
            for _ in range(2))

    def target(q0, pred, held=False):
        return JointTarget(np.array([q0, 0.0]), None, 0, (), pred, 0, held=held, tick=0, episode=0, stamp=0.0,
                           observed=None if pred is None else 0)

    jumps = Jumps()
    for step in [target(0.0, None, held=True), target(0.5, a), target(0.52, a), target(0.55, a),
                 target(0.55, a, held=True), target(0.75, b), target(0.76, b), target(0.70, a)]:
        jumps.add(step)
    fields = jumps.fields()
    assert fields["handovers"] == 2  # a -> b (0.2 from the held 0.55), b -> a again (0.06: another chunk)
    assert fields["handover_jump_mean_rad"] == pytest.approx(0.13)
    assert fields["handover_jump_max_rad"] == pytest.approx(0.2)
    assert fields["chunk_jump_mean_rad"] == pytest.approx((0.02 + 0.03 + 0.01) / 3)
    assert fields["chunk_jump_max_rad"] == pytest.approx(0.03)
    assert Jumps().fields() == {"handovers": 0, "handover_jump_mean_rad": None, "handover_jump_max_rad": None,
                                "chunk_jump_mean_rad": None, "chunk_jump_max_rad": None}


@pytest.mark.parametrize("strategy, policy, message", [
    (ChunkStrategy("execute", 2), _Continuing, ("rtc: conditions each chunk on the actions that run while it is "
                                                "computed, which only the 'async' strategy does; got 'execute'")),
    (ChunkStrategy("async", 2), _Counting, "rtc: policy _Counting's act takes no action_prefix"),
])
def test_evaluate_refuses_rtc_it_cannot_run_before_any_episode(strategy, policy, message):
    from worldpolicy.sim.evaluate import evaluate

    env = TabletopEnv("reach", image_size=None, max_steps=8)
    backend = policy(env, 4) if policy is _Counting else policy(env)
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate(env, backend, policy_name="p", episodes=1, progress=False, strategy=strategy, rtc=True)
    assert getattr(backend, "calls", 0) == 0 and getattr(backend, "prefixes", []) == []


def test_a_wrapped_model_gets_the_prefix_and_none_when_there_is_none():
    """`_Seeded` (a checkpoint's and a ws:// server's backend) passes `action_prefix` on; without one the model is
    called as before the keyword existed."""
    from worldpolicy.sim.policies import wrap_policy

    calls = []

    class Model(_Fixed):
        def act(self, observation, prompt, seed=None, decode_video=False, **prefix):
            calls.append(prefix)
            return super().act(observation, prompt)

    env = TabletopEnv("reach", image_size=None)
    backend = wrap_policy(Model("droid", np.tile(np.append(env.robot.home, 0.0), (4, 1))), seed=0)
    prefix = np.ones((2, 8))
    backend.act({"prompt": "x"}, "x")
    backend.act({"prompt": "x"}, "x", action_prefix=prefix)
    assert calls[0] == {} and calls[1]["action_prefix"] is prefix


def test_a_planned_chunks_imagined_panel_says_what_the_planner_chose_among(monkeypatch):
    """A best-of-N planner's episode video showed the chosen chunk's imagined future captioned `model: imagined`, as a
    plain policy's: not that it was chosen, among how many, by what score, nor that every candidate scored the same."""
    from worldpolicy.sim.rollout import imagined_caption
    from worldpolicy.viz import video

    env = TabletopEnv("reach", image_size=(48, 64), max_steps=3)
    decisions = iter([([-0.2, -0.05, -0.25], 1, False), ([-0.25] * 3, 0, True), ([-0.25, -0.25, -1e-05], 2, False)])

    class Planned(RandomPolicy):
        def act(self, observation, prompt):
            pred = super().act(observation, prompt)
            scores, chosen, tied = next(decisions)
            pred.video = np.full((33, 24, 32, 3), 200, np.uint8)
            pred.settings = {"planner": "best_of_n", "candidates": 3, "scores": scores, "chosen": chosen, "tied": tied}
            return pred

    labels = []
    row = video.labelled_row

    def labelled(views, names, **kwargs):
        labels.append(names[-1])
        return row(views, names, **kwargs)

    monkeypatch.setattr(video, "labelled_row", labelled)
    result = Rollout(env, Planned(seed=0), ChunkStrategy("execute", 1)).run(seed=0, record=True)
    head = "model: imagined · best of 3:"
    assert labels == [f"{head} #1 -0.05, next -0.2", f"{head} all -0.25, tied", f"{head} #2 -1e-05, next -0.25"]
    assert result.frames.shape[0] == 3  # one geometry whatever each caption's length: the frames stack
    assert imagined_caption({"seed": 3}) == ("model: imagined", "model: imagined")  # a plain chunk's, as before
