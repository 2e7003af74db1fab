"""Best-of-N planning picks the proposal its scorer ranks first; the reach progress score rises as the expert closes in."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from worldpolicy.processing.observations import frames_from_mapping
from worldpolicy.sim.progress import prompt_color, reach_progress, reach_scorer

CAMERAS = ["observation/exterior_image_1_left", "observation/exterior_image_2_left"]


@pytest.mark.parametrize("cameras", [CAMERAS, ["observation/exterior_image_1_left", "observation/wrist_image_left"]],
                         ids=["two_exterior", "exterior_and_wrist"])
def test_reach_progress_rises_along_an_expert_episode(cameras):
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import ScriptedPolicy

    scorer = reach_scorer(cameras)
    env = TabletopEnv("reach", image_size=(180, 320))
    expert = ScriptedPolicy(env, chunk_size=4)
    try:
        obs, _ = env.reset(seed=3)
        scores = []
        while not env.success() and env.steps < 40:
            frame = (frames_from_mapping(obs, cameras, "stacked") * 255).astype(np.uint8)
            scores.append(scorer(frame, obs["prompt"]))
            for action in expert.act(obs, obs["prompt"]).actions:
                env.act(action)
            obs = env.observe()
    finally:
        env.close()
    assert env.success() and len(scores) >= 3
    assert scores[-1] > scores[0] + 0.05  # the gripper ends much nearer the ball, in pixels of both views
    assert all(b > a - 0.01 for a, b in itertools.pairwise(scores))  # and gets nearer every chunk


def test_reach_progress_refuses_unknown_view_kinds():
    frame = np.zeros((64, 32, 3), dtype=np.uint8)
    assert reach_progress(frame, "reach the red ball", views=["exterior", "wrist"]) == -0.25  # nothing found
    with pytest.raises(ValueError, match="view kinds"):
        reach_progress(frame, "reach the red ball", views=["top"])


def test_prompt_color_names_the_scene_colour_or_fails_clearly():
    assert prompt_color("move the gripper to the purple ball") == "purple"
    with pytest.raises(ValueError, match="names none of the scene colours"):
        prompt_color("move the gripper to the ball")


def test_best_of_n_executes_the_best_scored_proposal(tmp_path):
    from worldpolicy import load_policy
    from worldpolicy.planning import BestOfNPlanner
    from worldpolicy.testing import make_tiny_checkpoint

    policy = load_policy(make_tiny_checkpoint(tmp_path / "ck"), embodiment="droid/relative_pose", chunk_size=4,
                         resolution_tier=256, steps=2)
    scores = iter([0.1, 0.9, 0.3])
    seen = []

    def scorer(video, prompt):
        seen.append(video.shape)
        return next(scores)

    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    planned = BestOfNPlanner(policy, scorer, num_candidates=3).act(image, "reach the ball", seed=10)
    assert planned.settings["chosen"] == 1 and planned.settings["scores"] == [0.1, 0.9, 0.3]
    assert planned.settings["tied"] is False
    assert len(seen) == 3 and all(shape[0] == 5 for shape in seen)  # each candidate's imagined chunk+1 frames
    direct = policy.act(image, "reach the ball", seed=11)  # proposal i is sampled with seed + i
    np.testing.assert_allclose(planned.actions, direct.actions, rtol=1e-5, atol=1e-7)
    tied = BestOfNPlanner(policy, lambda video, prompt: -0.25, num_candidates=3).act(image, "reach the ball", seed=10)
    assert tied.settings["tied"] is True and tied.settings["chosen"] == 0
    np.testing.assert_allclose(tied.actions, policy.act(image, "reach the ball", seed=10).actions, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="num_candidates"):
        BestOfNPlanner(policy, scorer, num_candidates=0)


def test_the_reach_rewards_meaning_says_what_a_ball_not_found_scores():
    """A dream of blurred imagined frames scored -0.250 in every chunk: the ball found in no view, which the reward's
    meaning (dream.json, its page, `dream --help`) did not say, so it read as a distance measured, a quarter view
    width off, every chunk alike."""
    from worldpolicy.sim.progress import NOT_FOUND, SCORER_REWARDS

    blank = np.zeros((64, 32, 3), np.uint8)
    assert reach_progress(blank, "reach the red ball", views=["exterior", "wrist"]) == -NOT_FOUND
    assert (f"a view where the ball, or in an exterior view the robot, is not found counts {NOT_FOUND} (-{NOT_FOUND}: "
            "found in no view)") in SCORER_REWARDS["reach"]


class _NoModel:
    """A world model and policy stand-in that fails the test if anything is sampled or imagined."""

    chunk_size, resolution_tier, _next_seed = 4, 256, 0

    def __init__(self):
        from worldpolicy.embodiments import get_embodiment

        self.embodiment = get_embodiment("droid/relative_pose")

    def _seed(self, seed):
        return 0 if seed is None else int(seed)

    def act_batch(self, requests):
        pytest.fail("sampled before the scorer's prompt was checked")

    def imagine(self, *args, **kwargs):
        pytest.fail("imagined before the scorer's prompt was checked")


def test_a_reach_scorers_prompt_is_checked_before_any_model_work():
    """`BestOfNPlanner(policy, reach_scorer(keys)).act(obs, "reach the ball")` sampled and imagined every candidate
    (56 s for 4 on the shipped model, on a busy CPU) before the scorer found no ball colour in the prompt; an env
    or dream scoring with it failed after the first chunk. `dream --score` and the agents check it up front."""
    from worldpolicy.planning import BestOfNPlanner
    from worldpolicy.sim.world_model import WorldModelEnv

    model = _NoModel()
    scorer = reach_scorer(model.embodiment.camera_keys)
    image = np.zeros((64, 64, 3), np.uint8)
    refused = "prompt 'reach the ball' names none of the scene colours"
    with pytest.raises(ValueError, match=refused):
        BestOfNPlanner(model, scorer, 2).act(image, "reach the ball")
    with pytest.raises(ValueError, match=refused):
        WorldModelEnv(model, image, "reach the ball", scorer=scorer)
    env = WorldModelEnv(model, image, "reach the red ball", scorer=scorer)
    with pytest.raises(ValueError, match=refused):
        env.reset(options={"prompt": "reach the ball"})


def test_a_planners_run_records_the_checkpoint_it_samples_from_and_how_it_plans(tmp_path):
    """A best-of-N planner's sim report recorded {"kind": "BestOfNPlanner", chunk, decode_video, image size} alone:
    not the checkpoint or sampling it draws from, nor its candidates or scorer, so `sim compare` of a best-of-2 and a
    best-of-8 run (or of two checkpoints planned alike) found their settings the same."""
    from worldpolicy import load_policy
    from worldpolicy.planning import BestOfNPlanner
    from worldpolicy.sim.policies import policy_settings, wrap_policy
    from worldpolicy.testing import make_tiny_checkpoint

    policy = load_policy(make_tiny_checkpoint(tmp_path / "ck"), embodiment="droid/relative_pose", chunk_size=4,
                         resolution_tier=256, steps=2)
    plain = policy_settings(wrap_policy(policy, decode_video=True), (48, 64))
    assert plain["kind"] == "checkpoint" and plain["sampling"]["steps"] == 2
    planner = BestOfNPlanner(policy, reach_scorer(CAMERAS), 3)
    assert policy_settings(wrap_policy(planner, decode_video=True), (48, 64)) == {
        **plain, "planner": "best_of_n", "candidates": 3, "scorer": "ReachScorer(views=('exterior', 'exterior'))"}

    def progress(video, prompt):
        return 0.0

    assert BestOfNPlanner(policy, progress, 8).settings == {
        "planner": "best_of_n", "candidates": 8, "scorer": f"{__name__}.{progress.__qualname__}"}
