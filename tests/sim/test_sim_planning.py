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


def test_a_scorer_is_refused_for_cameras_it_cannot_read():
    """reach cuts the imagined frame into one band per camera, top to bottom: a DROID composite (the wrist camera on
    top, two exterior cameras side by side below) was cut into three bands that are none of its views, and scored
    as if they were, every decision of a planned run mis-read."""
    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment
    from worldpolicy.sim.progress import scorer_for

    shipped = checkpoint_embodiment(shipped_model(), None)
    assert repr(scorer_for("reach", shipped)) == "ReachScorer(views=('exterior', 'wrist'))"
    assert repr(scorer_for("reach", get_embodiment("bridge"))) == "ReachScorer(views=('exterior',))"  # one camera
    with pytest.raises(ValueError, match=r"^--plan-scorer: reach reads .* embodiment 'droid/joint_pos' composes its "
                       r"cameras .* as 'droid_wrist_top'"):
        scorer_for("reach", get_embodiment("droid/joint_pos"), "--plan-scorer")
    with pytest.raises(ValueError, match="^scorer: unknown scorer 'push'; accepted: reach$"):
        scorer_for("push", shipped)


@pytest.mark.parametrize("argv, message", [
    (["--plan", "1"], ("--plan: expected a whole number of candidates from 2 to 16 (best of N), got 1; 1 runs the "
                      "plain policy's own sample at twice its cost")),
    (["--plan", "17"], "--plan: expected a whole number of candidates from 2 to 16 (best of N), got 17"),
    (["--plan-scorer", "reach"], "--plan-scorer: 'reach' ranks a planner's candidates, and no --plan is given"),
    (["--plan", "2", "--policy", "scripted"], ("--plan: 2 imagines each candidate chunk with a local checkpoint's "
                                              "forward dynamics; --policy='scripted' has none")),
    (["--plan", "2", "--policy", "ws://localhost:1"], "--policy='ws://localhost:1' has none to plan with"),
    (["--plan", "2", "--num-envs", "2"], "--num-envs: 2 batches several episodes' plain requests"),
    (["--plan", "2", "--strategy", "async", "--rtc"], "--rtc: conditions a sampled chunk"),
    (["--plan", "2", "--plan-scorer", "push"], "argument --plan-scorer: invalid choice: 'push'"),
])
def test_sim_refuses_a_plan_it_cannot_run_before_anything_loads(tmp_path, monkeypatch, capsys, argv, message):
    from worldpolicy.cli import main
    from worldpolicy.sim import policies

    monkeypatch.setattr(policies, "make_policy", lambda *a, **k: pytest.fail("loaded a policy"))
    try:
        code = main(["sim", *argv, "--out", str(tmp_path / "run"), "--no-progress"])
    except SystemExit as exc:  # argparse's own refusal (a choice)
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def _stacked_checkpoint(path):
    """A tiny checkpoint whose embodiment (droid's absolute joints, which a random model's actions are clipped into)
    stacks two cameras, as reach reads them, with 4-action chunks at the smallest tier: fast to plan with."""
    import json

    from worldpolicy.embodiments import get_embodiment
    from worldpolicy.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint(path)
    spec = {**get_embodiment("droid/joint_pos").to_spec(), "name": "stacked_joints", "composite": "stacked",
            "camera_keys": ["observation/exterior_image_1_left", "observation/wrist_image_left"], "chunk_size": 4,
            "resolution_tier": 256}
    (ckpt / "embodiment.json").write_text(json.dumps(spec))
    return ckpt


def test_a_planned_sim_run_keeps_its_decisions_and_a_tied_one_runs_the_plain_policys_chunks(tmp_path, monkeypatch,
                                                                                          capsys):
    """`worldpolicy sim --plan N` had no flag: planning ran from Python alone. A planned run records its planner
    (`sim compare` names --plan among the settings that differ) and each decision's scores; where every candidate
    ties, the first, sampled with the plain run's seed, runs, so the episodes are the plain run's; a --resume with
    another N is refused before the weights load."""
    import json

    from worldpolicy.cli import main
    from worldpolicy.sim import progress

    pytest.importorskip("mink")
    ckpt = _stacked_checkpoint(tmp_path / "ck")
    flags = ["sim", "--policy", str(ckpt), "--task", "reach", "--episodes", "2", "--max-steps", "3", "--steps", "1",
             "--image-size", "48x64", "--videos", "0", "--no-progress", "--no-plots", "--execute-steps", "2"]
    assert main([*flags, "--out", str(tmp_path / "plain")]) == 0
    monkeypatch.setattr(progress, "reach_progress", lambda video, prompt, views: -0.25)  # nothing told apart
    assert main([*flags, "--plan", "3", "--out", str(tmp_path / "planned")]) == 0
    printed = capsys.readouterr()
    assert "Planning: best of 3 by ReachScorer(views=('exterior', 'wrist')), 4 decisions: every candidate scored " \
           "the same in 4 (100 %)" in printed.out
    assert "--plan 3 scores each candidate's whole imagined chunk (4 actions) but runs 2 of them" in printed.err
    plain, planned = (json.loads((tmp_path / run / "report.json").read_text()) for run in ("plain", "planned"))
    assert planned["policy_settings"] == {**plain["policy_settings"], "planner": "best_of_n", "candidates": 3,
                                          "scorer": "ReachScorer(views=('exterior', 'wrist'))"}
    assert planned["plan"] == {"candidates": 3, "decisions": 4, "tied": 4, "changed": 0}
    assert [e["plans"] for e in planned["episodes"]] == [[{"scores": [-0.25] * 3, "chosen": 0}] * 2] * 2
    assert "plans" not in plain["episodes"][0] and "plan" not in plain
    for a, b in zip(plain["episodes"], planned["episodes"], strict=True):  # candidate 0 is the plain sample
        assert (a["steps"], a["chunks"]) == (b["steps"], b["chunks"])
        assert a["final_distance_m"] == pytest.approx(b["final_distance_m"], abs=1e-4)
    assert "Planning: best of 3 by `ReachScorer(views=('exterior', 'wrist'))`, 4 decisions" in (
        tmp_path / "planned" / "report.md").read_text()
    from worldpolicy.sim.evaluate import read_report, report_figure

    # report.png: a planned run's third panel, each decision's candidates' scores and the one run
    assert [len(report_figure(read_report(tmp_path / run)).axes) for run in ("plain", "planned")] == [2, 3]
    assert main(["sim", "compare", str(tmp_path / "plain"), str(tmp_path / "planned"), "--out",
                 str(tmp_path / "compared"), "--no-plots"]) == 0
    compared = capsys.readouterr().out  # a plain run planned nothing: none, not unrecorded
    assert "policy_settings.candidates (--plan): none | 3" in compared
    assert "policy_settings.planner (--plan): none | best_of_n" in compared and "(not recorded)" not in compared

    from worldpolicy.policy import Policy

    monkeypatch.setattr(Policy, "from_pretrained", lambda *a, **k: pytest.fail("loaded the weights"))
    assert main([*flags, "--plan", "2", "--resume", "--out", str(tmp_path / "planned")]) == 2
    assert "old -> new: --plan: 3 -> 2" in capsys.readouterr().err


def test_plan_save_candidates_writes_every_candidates_future_of_the_recorded_episodes(tmp_path, monkeypatch, capsys):
    """A planned run's episode video showed the chosen future alone; --plan-save-candidates writes every candidate's
    imagined future of each decision of the recorded episodes (--videos), side by side and captioned with its score,
    the one run marked; episodes not recorded write none, and --overwrite removes them with the run."""
    from worldpolicy.cli import main
    from worldpolicy.processing.video import read_video
    from worldpolicy.sim import policies, progress
    from worldpolicy.viz import video

    pytest.importorskip("mink")
    ckpt = _stacked_checkpoint(tmp_path / "ck")
    captions = []
    real_row = video.labelled_row
    monkeypatch.setattr(video, "labelled_row", lambda images, labels, *a, **k: (
        captions.append(list(labels)), real_row(images, labels, *a, **k))[1])
    scores = iter(itertools.cycle([-0.3, -0.1, -0.2]))  # candidate 1 scores best at every decision
    monkeypatch.setattr(progress, "reach_progress", lambda video, prompt, views: next(scores))
    out = tmp_path / "run"
    flags = ["sim", "--policy", str(ckpt), "--task", "reach", "--episodes", "2", "--max-steps", "3", "--steps", "1",
             "--image-size", "48x64", "--videos", "1", "--no-progress", "--no-plots", "--execute-steps", "2",
             "--seed", "7", "--plan", "3", "--plan-save-candidates", "--out", str(out)]
    written = []
    real_write = policies.CandidateVideos.write
    monkeypatch.setattr(policies.CandidateVideos, "write",
                        lambda self, *a: (written.append(real_write(self, *a)), written[-1])[1])
    assert main(flags) == 0
    folder = out / "videos" / "candidates"
    # episode 7 recorded (--videos 1): its two decisions; episode 8 not: nothing written for it
    assert sorted(p.name for p in folder.iterdir()) == ["episode_0007_decision_00.mp4", "episode_0007_decision_01.mp4"]
    assert [p for p in written if p is not None] == sorted(folder.iterdir()) and written.count(None) == 2
    frames, _ = read_video(folder / "episode_0007_decision_00.mp4")
    assert len(frames) == 5  # the 4-action chunk's imagined future: 5 frames, each candidate's side by side
    assert captions[0] == ["candidate 0: -0.3 · frame 0", "candidate 1: -0.1 (run) · frame 0",
                           "candidate 2: -0.2 · frame 0"]
    assert f"{folder}/ (2 candidate videos, one per decision)" in capsys.readouterr().out
    assert main([*flags[:-5], "--plan", "3", "--overwrite", "--out", str(out)]) == 0  # without the flag
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(("argv", "message"), [
    (["--plan-save-candidates"], "--plan-save-candidates writes a planner's candidates, and no --plan is given"),
    (["--plan", "2", "--plan-save-candidates", "--videos", "0"],
     "--plan-save-candidates writes the candidates of the recorded episodes, and --videos 0 records none"),
])
def test_plan_save_candidates_is_refused_where_it_would_write_nothing(tmp_path, monkeypatch, capsys, argv, message):
    from worldpolicy.cli import main
    from worldpolicy.sim import policies

    monkeypatch.setattr(policies, "make_policy", lambda *a, **k: pytest.fail("loaded a policy"))
    assert main(["sim", *argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
