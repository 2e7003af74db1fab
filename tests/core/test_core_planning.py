"""Best-of-N planning passes the caller's settings to every pass, never reuses seeds, and refuses unusable scores."""

from __future__ import annotations

import re

import numpy as np
import pytest

from worldpolicy.planning import BestOfNPlanner

IMAGE = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
STATE = [0.0, -0.3, 0.0, -2.2, 0.0, 1.9, 0.7854, 0.0]


@pytest.fixture(scope="module")
def droid_policy(tiny_checkpoint):
    import worldpolicy

    return worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1)


class _Spy:
    """A Policy stand-in that records every request and answers through the real policy."""

    def __init__(self, policy):
        self.policy, self.requests = policy, []
        self.embodiment = policy.embodiment

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def act_batch(self, requests):
        self.requests += requests
        return self.policy.act_batch(requests)


def test_settings_and_state_reach_the_rollouts_too(droid_policy):
    spy = _Spy(droid_policy)
    planned = BestOfNPlanner(spy, lambda video, prompt: float(video[-1].mean()), 2).act(
        IMAGE, "reach the ball", seed=5, state=STATE, steps=2, guidance=1.5, negative_prompt="blurry")
    assert [r.mode for r in spy.requests] == ["policy"] * 2 + ["forward_dynamics"] * 2
    for r in spy.requests:
        assert (r.steps, r.guidance, r.negative_prompt, r.state) == (2, 1.5, "blurry", STATE)
    assert [r.seed for r in spy.requests] == [5, 6, 7, 8]
    assert planned.actions.shape == (4, 8) and planned.settings["chosen"] in (0, 1)


def test_only_the_rollouts_decode_video(droid_policy):
    """`decode_video=True` reached the proposals too, whose videos were thrown away: one wasted VAE decode each."""
    spy = _Spy(droid_policy)
    planned = BestOfNPlanner(spy, lambda video, prompt: float(video[-1].mean()), 2).act(
        IMAGE, "reach the ball", seed=5, state=STATE, decode_video=True)
    assert [r.decode_video for r in spy.requests] == [False, False, True, True]
    assert planned.video is not None and planned.video.shape[0] > 1
    # the video is the chosen chunk's rollout, and its recorded seed reproduces it through forward dynamics
    rollout = droid_policy.imagine(IMAGE, planned, "reach the ball", seed=planned.settings["rollout_seed"],
                                   state=STATE)
    assert planned.settings["rollout_seed"] == 7 + planned.settings["chosen"]
    np.testing.assert_array_equal(planned.video, rollout.video)


def test_decode_video_false_leaves_the_scored_rollout_out(droid_policy):
    """The rollouts are decoded to be scored whatever the caller asks; a caller that said decode_video=False (as
    `sim`'s wrapper does without --imagine) got a video anyway, unlike `Policy.act`."""
    spy = _Spy(droid_policy)
    planned = BestOfNPlanner(spy, lambda video, prompt: float(video[-1].mean()), 2).act(
        IMAGE, "reach the ball", seed=5, state=STATE, decode_video=False)
    assert [r.decode_video for r in spy.requests] == [False, False, True, True] and planned.video is None


def test_a_seed_sequence_is_never_reused_across_calls(tiny_checkpoint):
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid/relative_pose", chunk_size=4,
                                     resolution_tier=256, steps=1, seed=0)
    spy = _Spy(policy)
    planner = BestOfNPlanner(spy, lambda video, prompt: 0.0, 2)
    planner.act(IMAGE, "reach the ball")
    planner.act(IMAGE, "reach the ball")
    assert [r.seed for r in spy.requests] == list(range(8))  # the second call used to start again at seed 1
    assert policy.act(IMAGE, "reach the ball").settings["seed"] == 8


def test_a_refused_call_draws_no_seeds(tiny_checkpoint):
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1,
                                     seed=0)
    with pytest.raises(ValueError, match="state"):
        BestOfNPlanner(policy, lambda video, prompt: 0.0, 2).act(IMAGE, "reach the ball")  # no state
    assert policy.act(IMAGE, "reach the ball", state=STATE).settings["seed"] == 0


def test_a_call_whose_rollouts_fail_draws_no_seeds_either(tiny_checkpoint):
    """Only a failed proposal stage gave its seeds back; a failed rollout stage kept all 2N drawn."""
    import worldpolicy

    policy = worldpolicy.load_policy(tiny_checkpoint, embodiment="droid", chunk_size=4, resolution_tier=256, steps=1,
                                     seed=0)

    sample = policy.act_batch

    def rollouts_fail(requests):
        if requests[0].mode == "forward_dynamics":
            raise RuntimeError("out of memory in the rollouts")
        return sample(requests)

    policy.act_batch = rollouts_fail  # on the policy itself: the planner gives the seeds back to its policy
    with pytest.raises(RuntimeError, match="out of memory in the rollouts"):
        BestOfNPlanner(policy, lambda video, prompt: 0.0, 2).act(IMAGE, "reach the ball", state=STATE)
    del policy.act_batch
    assert policy.act(IMAGE, "reach the ball", state=STATE).settings["seed"] == 0


def test_unusable_scores_and_arguments_are_refused(droid_policy):
    scores = iter([0.1, float("nan")])
    with pytest.raises(ValueError, match="returned nan for candidate 1"):
        BestOfNPlanner(droid_policy, lambda video, prompt: next(scores), 2).act(IMAGE, "reach", seed=1, state=STATE)
    with pytest.raises(TypeError, match="scorer: expected a callable"):
        BestOfNPlanner(droid_policy, None)
    with pytest.raises(TypeError, match="policy: expected a local worldpolicy Policy"):
        BestOfNPlanner(None, lambda video, prompt: 0.0)
    assert BestOfNPlanner(droid_policy, lambda video, prompt: 0.0, np.int64(3)).num_candidates == 3
    with pytest.raises(ValueError, match=r"seed=9223372036854775806: planning uses seeds seed\.\.seed\+3"):
        BestOfNPlanner(droid_policy, lambda video, prompt: 0.0, 2).act(IMAGE, "reach", seed=2**63 - 2, state=STATE)


def test_options_the_planner_sets_itself_or_does_not_know_are_named_before_sampling(droid_policy):
    """mode='inverse_dynamics' failed as 'inverse dynamics needs a video of at least 2 frames', actions=... as 'use
    imagine() instead', and a misspelt option as PolicyRequest.__init__()'s unexpected keyword, with no list of what
    the planner takes."""
    planner = BestOfNPlanner(_Refusing(droid_policy), lambda video, prompt: 0.0, 2)
    accepted = "accepted: state, seed, steps, guidance, negative_prompt, decode_video"
    for option, why in (({"mode": "inverse_dynamics"}, "BestOfNPlanner.act() sets mode itself"),
                        ({"actions": np.zeros((4, 8))}, "BestOfNPlanner.act() sets actions itself"),
                        ({"stpes": 2}, "BestOfNPlanner.act() got an unknown option stpes=2")):
        with pytest.raises(TypeError, match=re.escape(f"{why}; {accepted}")):
            planner.act(IMAGE, "reach", state=STATE, **option)


class _Refusing:
    """A Policy stand-in that fails the test if anything is sampled."""

    def __init__(self, policy):
        self.policy, self.embodiment = policy, policy.embodiment

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def act_batch(self, requests):
        pytest.fail("sampled before the options were checked")


def test_a_scorer_is_checked_before_sampling_and_its_scores_are_numbers(droid_policy):
    """A scorer that cannot take (video, prompt) — the `reach_scorer` factory itself, a one-argument function — failed
    only after both sampling passes; a string score ("0.5") was read as a number, None failed without naming it."""
    from worldpolicy.sim.progress import reach_scorer

    for scorer, why in ((reach_scorer, "too many positional arguments"), (lambda video: 0.0, "too many positional"),
                        (lambda video, prompt, *, views: 0.0, "missing a required argument: 'views'")):
        with pytest.raises(TypeError, match=rf"scorer=.* cannot be called as scorer\(video, prompt\) \({why}.*\); "
                                            r"expected a callable scorer\(video \[T,H,W,3\] uint8, prompt\) -> float"):
            BestOfNPlanner(droid_policy, scorer, 2)
    BestOfNPlanner(droid_policy, reach_scorer(droid_policy.embodiment.camera_keys))  # what the factory builds fits
    for score in ("0.5", None, [0.1, 0.2]):
        with pytest.raises(TypeError, match=re.escape(f"returned {score!r} for candidate 0; expected one number")):
            BestOfNPlanner(droid_policy, lambda video, prompt, s=score: s, 2).act(IMAGE, "reach", seed=1, state=STATE)


def test_score_takes_one_finite_number_and_names_what_it_scored():
    """`score` is the one check of a scorer's answer for the planner's candidates and a dream's chunks alike."""
    from worldpolicy.planning import score

    video = np.zeros((2, 8, 8, 3), np.uint8)
    assert score(lambda v, p: np.float32(0.5), video, "reach", "chunk 0") == 0.5
    with pytest.raises(ValueError, match="returned inf for chunk 3; scores must be finite"):
        score(lambda v, p: float("inf"), video, "reach", "chunk 3")
    with pytest.raises(TypeError, match="returned '0.5' for chunk 1; expected one number"):
        score(lambda v, p: "0.5", video, "reach", "chunk 1")


def test_plan_keeps_every_candidate_its_future_and_score(droid_policy):
    """Only the chosen chunk came back: the other N-1 sampled chunks, their imagined futures and what set them apart
    were thrown away, so a user could not look at what the planner chose among (`settings` held the scores alone)."""
    planner = BestOfNPlanner(droid_policy, lambda video, prompt: float(video[-1].mean()), 3)
    plan = planner.plan(IMAGE, "reach the ball", seed=5, state=STATE)
    assert [p.settings["seed"] for p in plan.proposals] == [5, 6, 7]
    assert [f.settings["seed"] for f in plan.futures] == [8, 9, 10]
    assert all(p.video is None and f.video.shape[0] == 5 for p, f in zip(plan.proposals, plan.futures, strict=True))
    for proposal, future in zip(plan.proposals, plan.futures, strict=True):  # each future is its own chunk's rollout
        np.testing.assert_array_equal(future.actions_normalized, proposal.actions_normalized)
    assert plan.scores == [float(f.video[-1].mean()) for f in plan.futures]
    assert plan.chosen == int(np.argmax(plan.scores)) and plan.tied is (len(set(plan.scores)) == 1)
    assert repr(plan).startswith("Plan(candidates=3, scores=[") and f"chosen={plan.chosen}" in repr(plan)
    acted = planner.act(IMAGE, "reach the ball", seed=5, state=STATE)  # act executes the plan's choice
    assert (acted.settings["scores"], acted.settings["chosen"]) == (plan.scores, plan.chosen)
    np.testing.assert_allclose(acted.actions, plan.proposals[plan.chosen].actions, rtol=1e-5, atol=1e-7)
    with pytest.raises(TypeError, match=re.escape("BestOfNPlanner.plan() sets mode itself")):
        BestOfNPlanner(_Refusing(droid_policy), lambda video, prompt: 0.0, 2).plan(IMAGE, "reach", state=STATE,
                                                                                  mode="inverse_dynamics")


def test_a_scorer_that_raises_keeps_its_error_with_a_note_naming_what_it_scored():
    """`KeyError: 'views'` came out of the planner after both sampling passes, saying nothing of the scorer."""
    from worldpolicy.planning import score

    def broken(video, prompt):
        raise KeyError("views")

    with pytest.raises(KeyError, match="views") as raised:
        score(broken, np.zeros((5, 8, 8, 3), np.uint8), "reach the red ball", "candidate 2")
    note = f"raised by scorer {broken!r} scoring candidate 2 (video [5, 8, 8, 3], prompt 'reach the red ball')"
    assert raised.value.__notes__ == [note]


def test_on_plan_sees_every_candidate_of_each_act_decision(droid_policy):
    """`act` kept the chosen candidate's future alone; `on_plan` is called with each decision's whole `Plan`, whose
    chosen proposal is the chunk `act` returns (what `worldpolicy sim --plan-save-candidates` writes them from)."""
    plans = []
    planner = BestOfNPlanner(droid_policy, lambda video, prompt: float(video[-1].mean()), 3, on_plan=plans.append)
    acted = planner.act(IMAGE, "reach the ball", seed=5, state=STATE)
    (plan,) = plans
    assert plan.proposals[plan.chosen] is acted and len(plan.futures) == 3
    assert all(f.video.shape[0] == 5 for f in plan.futures)
    assert (acted.settings["scores"], acted.settings["chosen"]) == (plan.scores, plan.chosen)
    planner.plan(IMAGE, "reach the ball", seed=5, state=STATE)  # `plan` returns its Plan: not passed on again
    assert len(plans) == 1
    with pytest.raises(TypeError, match=r"on_plan: expected a callable taking each decision's Plan, or None; got 3"):
        BestOfNPlanner(droid_policy, lambda video, prompt: 0.0, 2, on_plan=3)
