import json
import math
import re

import pytest

pytest.importorskip("mujoco")

from worldpolicy.cli import main
from worldpolicy.sim.compare import compare_runs, comparison_figure, holm_adjusted, mcnemar_p, write_comparison
from worldpolicy.sim.evaluate import EvalReport, wilson_interval, write_report
from worldpolicy.sim.rollout import EpisodeResult
from worldpolicy.sim.tasks import TrainingScenes
from worldpolicy.viz.plots import FAILURE_COLOR, SUCCESS_COLOR

SETTINGS = {"kind": "checkpoint", "path": "/ckpts/step-1000", "files": "0123abcd", "sampling": {"steps": 4},
            "chunk_size": 8, "device": "cuda", "dtype": "bfloat16", "decode_video": False, "image_size": [180, 320]}


def _run(folder, outcomes: dict[int, bool], *, task="reach", task_version=1, strategy=None, control_hz=15.0,
         settings=None, training_scenes=None, requested=None, jumps=None, policy="step-1000", fastest=20, **timing):
    """A sim run folder as `worldpolicy sim` writes it (report.json, report.md), with these seeds' outcomes; `jumps`:
    each episode's hand-over and in-chunk jump fields, `policy`: its label, `timing`: the report's latency and rtc;
    a solved episode takes `fastest` + seed % 7 steps."""
    solved = {s: fastest + s % 7 for s in outcomes}
    episodes = [EpisodeResult(seed=s, success=ok, steps=solved[s] if ok else 60, success_step=solved[s] if ok else None,
                              prompt="reach the ball", chunks=3, final_distance_m=0.01 if ok else 0.2, policy_s=0.1,
                              wall_s=0.2, **(jumps or {})) for s, ok in outcomes.items()]
    report = EvalReport(task, policy, "panda",
                        strategy or {"kind": "execute", "execute_steps": 8, "ensemble_decay": 0.1,
                                     "execute_steps_requested": None},
                        control_hz, min(outcomes), episodes=episodes, requested=requested or len(episodes),
                        max_steps=60, embodiment="panda_reach", policy_settings=settings or dict(SETTINGS),
                        task_version=task_version, training_scenes=training_scenes, **timing)
    write_report(report, folder, plots=False)
    return folder


def _split(seeds, a_only, b_only, both):
    """Outcomes of runs A and B on `seeds`: the first `a_only` won by A alone, the next `b_only` by B alone, the next
    `both` by both, the rest by neither."""
    a, b = {}, {}
    for i, s in enumerate(seeds):
        a[s] = i < a_only or a_only + b_only <= i < a_only + b_only + both
        b[s] = a_only <= i < a_only + b_only + both
    return a, b


@pytest.mark.parametrize("a_only, b_only, expected", [
    (8, 1, 0.0390625),  # 2 * (C(9,0) + C(9,1)) / 2**9 = 20 / 512
    (1, 8, 0.0390625),  # two-sided: the same either way round
    (6, 0, 0.03125),  # 2 / 2**6: the fewest discordant seeds that can reach p < 0.05
    (5, 0, 0.0625),
    (3, 3, 1.0),  # both tails cover everything: capped at 1
    (0, 0, 1.0),  # no discordant seed: no evidence either way
])
def test_exact_mcnemar_matches_the_binomial_computed_by_hand(a_only, b_only, expected):
    assert mcnemar_p(a_only, b_only) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_mcnemar_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="a_only: expected a count >= 0"):
        mcnemar_p(bad, 2)


def test_holm_adjusted_p_values_match_the_ones_worked_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04, the last kept at 0.06 (never below the
    # one before); given back in the order given
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjusted([0.5, 0.6]) == [1.0, 1.0]  # 0.5 * 2 capped at 1, and 0.6 kept at it
    assert holm_adjusted([0.039]) == [0.039] and holm_adjusted([]) == []  # one test: as it is


def test_wilson_values_match_the_formula_worked_by_hand():
    # 3/10: centre (0.3 + z^2/20) / (1 + z^2/10), half z sqrt(0.021 + z^2/400) / (1 + z^2/10), z = 1.96
    z2 = 1.96**2
    centre, half = (0.3 + z2 / 20) / (1 + z2 / 10), 1.96 * math.sqrt(0.021 + z2 / 400) / (1 + z2 / 10)
    assert wilson_interval(3, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_interval(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)  # the textbook values
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


@pytest.mark.parametrize("n", [6, 11, 21, 22, 44])  # where float rounding put the end a hair past p
def test_wilson_interval_holds_p_exactly_at_0_and_100_percent(n):
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_the_figure_draws_runs_that_solved_or_failed_every_seed(tmp_path):
    # 6/6 and 0/11 once had an interval end past p by 1e-16, a negative error bar that matplotlib refused
    seeds = range(11)
    comparison = compare_runs([_run(tmp_path / "a", {s: True for s in range(6)}),
                               _run(tmp_path / "b", {s: False for s in seeds})])
    rate = comparison_figure(comparison).axes[0]
    assert [t.get_text() for t in rate.get_yticklabels()] == ["a", "b"]


def test_steps_to_success_are_ticked_in_whole_steps(tmp_path):
    comparison = compare_runs([_run(tmp_path / "a", {0: True, 1: True}), _run(tmp_path / "b", {3: True, 4: False})])
    fig = comparison_figure(comparison)  # success steps 20, 21 and 23: ticked 20.5, 21.5, ... before
    fig.canvas.draw()
    steps = fig.axes[2]
    ticks = [t for t in steps.get_xticks() if steps.get_xlim()[0] <= t <= steps.get_xlim()[1]]
    assert len(ticks) > 1 and all(float(t).is_integer() for t in ticks)
    assert steps.get_xlabel().startswith("steps to success [control steps at 15 Hz] ")  # the unit, as report.png's
    faster = compare_runs([tmp_path / "a", _run(tmp_path / "c", {0: True}, control_hz=30.0)])
    assert "[control steps, at each run's rate]" in comparison_figure(faster).axes[2].get_xlabel()
    # a smoke comparison, one episode each, both solved in 15 steps: ticked 14.2, 14.4, ... 15.8 (15 the only whole
    # step in view, fewer than MaxNLocator's default min_n_ticks)
    alike = compare_runs([_run(tmp_path / "d", {0: True}, fastest=15), _run(tmp_path / "e", {0: True}, fastest=15)])
    fig = comparison_figure(alike)
    fig.canvas.draw()
    steps = fig.axes[2]
    ticks = [t for t in steps.get_xticks() if steps.get_xlim()[0] <= t <= steps.get_xlim()[1]]
    assert ticks == [15.0], ticks


def test_steps_to_success_of_runs_that_never_succeeded_say_so_on_an_unticked_axis(tmp_path):
    """No run solved a scene: the steps panel was a 0..1 axis ticked "0" and "1" (steps, as read) beside rows saying
    only "none"."""
    comparison = compare_runs([_run(tmp_path / "a", {0: False, 1: False}), _run(tmp_path / "b", {0: False})])
    steps = comparison_figure(comparison).axes[2]
    assert list(steps.get_xticks()) == []
    assert [t.get_text() for t in steps.texts] == ["no success", "no success"]
    mixed = comparison_figure(compare_runs([tmp_path / "a", _run(tmp_path / "c", {0: True})])).axes[2]
    assert len(mixed.get_xticks()) and [t.get_text() for t in mixed.texts] == ["no success"]  # run a's row only


def test_the_page_keeps_numbers_whole_and_left_aligns_the_pairs_notes(tmp_path):
    """A narrow "rate" column broke "0.0 %" over two lines; the pairs table's note, a sentence, was right-aligned as
    if a number."""
    comparison = compare_runs([_run(tmp_path / "a", {0: False}), _run(tmp_path / "b", {5: True})])
    write_comparison(comparison, tmp_path / "cmp")
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "<td class='n'>0.0 %</td>" in page and "td.n{white-space:nowrap}" in page
    assert "<td class='k'><span class=muted>no shared seeds (a: seed 0, b: seed 5)" in page


def test_paired_test_on_the_same_seeds_and_each_run_with_its_interval(tmp_path):
    a, b = _split(range(10000, 10020), a_only=8, b_only=1, both=6)
    comparison = compare_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b)])
    (pair,) = comparison.pairs
    assert (pair.a_only, pair.b_only, pair.both, pair.neither) == (8, 1, 6, 5)
    assert pair.p_value == pytest.approx(0.0390625) and len(pair.shared) == 20 and pair.note == ""
    assert pair.line() == ("a vs b: a 14/20, b 7/20 on the 20 shared seeds; only a succeeded on 8, only b on 1: exact "
                           "McNemar p = 0.03906 (differ at the 5 % level: a is better)")
    reversed_pair = compare_runs([tmp_path / "b", tmp_path / "a"]).pairs[0]
    assert reversed_pair.line().endswith("(differ at the 5 % level: a is better)")  # the better run, wherever listed
    # compare.json keeps the sentence, and the page shows it: the verdict, not only the p-values
    assert comparison.to_json()["pairs"][0]["line"] == pair.line()
    write_comparison(comparison, tmp_path / "out")
    assert f"<li>{pair.line()}</li>" in (tmp_path / "out" / "index.html").read_text()
    assert pair.p_adjusted == pair.p_value and pair.tests == 1  # two runs: one test, nothing to adjust
    assert comparison.to_json()["pairs"][0]["p_adjusted"] == comparison.to_json()["pairs"][0]["p_value"]
    assert "Holm-adjusted p (" not in comparison.markdown()
    runs = comparison.to_json()["runs"]
    assert [r["successes"] for r in runs] == [14, 7]
    assert runs[0]["ci95"] == pytest.approx(wilson_interval(14, 20))
    assert comparison.differences == () and comparison.warnings == ()  # the same settings: nothing differs


def test_with_more_than_two_runs_the_verdict_rests_on_the_holm_adjusted_p(tmp_path):
    """Three runs, three pairs: a vs b's p = 0.039 said "differ" alone; adjusted over the three tests (0.039 and
    0.039 of a vs c, then b vs c's 1.0: 3 x 0.039) it does not."""
    a, b = _split(range(10000, 10020), a_only=8, b_only=1, both=6)
    comparison = compare_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b), _run(tmp_path / "c", b)])
    ab, ac, bc = comparison.pairs
    assert ab.p_value == ac.p_value == pytest.approx(0.0390625) and bc.p_value == 1.0
    assert ab.p_adjusted == ac.p_adjusted == pytest.approx(3 * 0.0390625) and bc.p_adjusted == 1.0
    assert ab.tests == 3
    assert ab.line().endswith("exact McNemar p = 0.03906, Holm-adjusted p = 0.1172 over the 3 pairs tested (no "
                              "significant difference at the 5 % level)")
    doc = comparison.to_json()
    assert doc["p_adjustment"] == "holm-bonferroni"
    assert [(p["p_value"], p["p_adjusted"]) for p in doc["pairs"]] == [(ab.p_value, ab.p_adjusted),
                                                                        (ac.p_value, ac.p_adjusted), (1.0, 1.0)]
    md = comparison.markdown()
    assert "| a | b | 20 | 8 | 1 | 6 | 5 | 0.03906 | 0.1172 |" in md
    assert "The verdicts below rest on the Holm-adjusted p (3 pairs tested)." in md
    assert "differ at the 5 % level" not in comparison.table()


def test_steps_to_success_are_paired_on_the_seeds_both_solved_and_tested_with_a_sign_test(tmp_path):
    """Two runs that solve every seed, one in 10 steps more each time, had only their unpaired means side by side,
    with no word on whether the difference is more than chance: they are paired on the seeds both solved."""
    seeds = range(10000, 10008)
    a, b = _split(seeds, a_only=1, b_only=1, both=6)  # 6 seeds both solved
    comparison = compare_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b, fastest=30)])
    (pair,) = comparison.pairs
    assert (pair.solved_by_both, pair.a_faster, pair.b_faster) == (6, 6, 0)
    assert pair.steps_difference == pytest.approx(10.0) and pair.steps_p == pytest.approx(2 / 2**6)
    line = ("a vs b, steps to success on the 6 shared seeds both solved: b took 10.0 more on average; a took fewer on "
            "6, b on 0: exact sign test p = 0.03125 (differ at the 5 % level: a is faster)")
    assert pair.steps_line() == line
    assert comparison.to_json()["pairs"][0]["steps"] == {
        "solved_by_both": 6, "a_faster": 6, "b_faster": 0, "mean_difference": pytest.approx(10.0),
        "p_value": pytest.approx(0.03125), "p_adjusted": pytest.approx(0.03125), "test": "exact sign test",
        "line": line}
    assert line in comparison.table() and f"- {line}" in comparison.markdown()
    # adjusted apart from success: said, as its 5 % holds for the steps verdicts alone
    assert "in a family of its own" in comparison.to_json()["how_to_read"]
    write_comparison(comparison, tmp_path / "out")
    assert f"<li>{line}</li>" in (tmp_path / "out" / "index.html").read_text()
    # three runs: adjusted over the pairs that have seeds both solved, as success is; the same steps tie
    three = compare_runs([tmp_path / "a", tmp_path / "b", _run(tmp_path / "c", a)])
    ab, ac, bc = three.pairs
    assert ac.steps_line().startswith("a vs c, steps to success on the 7 shared seeds both solved: the same on "
                                      "average; a took fewer on 0, c on 0, 7 tied: exact sign test p = 1")
    # too few seeds not tied for any split to reach 5 % (2 / 2**5 = 0.0625): said, not left to read as "no difference"
    assert ac.steps_line().endswith("(no significant difference at the 5 % level, which 0 seeds not tied cannot "
                                    "reach)")
    five = compare_runs([_run(tmp_path / "f", {s: True for s in range(5)}),
                         _run(tmp_path / "g", {s: True for s in range(5)}, fastest=30)]).pairs[0]
    assert (five.a_faster, five.steps_p) == (5, pytest.approx(0.0625))
    assert five.steps_line().endswith("(no significant difference at the 5 % level, which 5 seeds not tied cannot "
                                      "reach)")
    assert ab.steps_tests == bc.steps_tests == 3 and ab.steps_p_adjusted == pytest.approx(3 * 0.03125)
    assert ab.steps_line().endswith("Holm-adjusted p = 0.09375 over the 3 pairs tested (no significant difference "
                                    "at the 5 % level)")
    # no shared seed solved by both: no steps to pair, said by no line
    (none,) = compare_runs([_run(tmp_path / "d", {1: True, 2: False}), _run(tmp_path / "e", {1: False, 2: True})]).pairs
    assert none.steps_p is None and none.steps_line() is None and none.to_json()["steps"] is None


def test_a_partial_overlap_pairs_only_the_shared_seeds_and_says_how_many(tmp_path):
    a = {s: True for s in range(20)}  # A wins all of its 20
    b = {s: s >= 18 for s in range(10, 30)}  # B fails 10..17, wins 18..29
    comparison = compare_runs([_run(tmp_path / "a", a), _run(tmp_path / "b", b)])
    (pair,) = comparison.pairs
    assert pair.shared == tuple(range(10, 20))
    assert (pair.a_only, pair.b_only, pair.both, pair.neither) == (8, 0, 2, 0)  # B's wins 20..29 are not counted
    assert pair.p_value == pytest.approx(2 / 2**8)
    assert pair.note == "paired on the 10 seeds both ran (a ran 20, b 20)"
    assert "seed" in [name for name, _, _ in comparison.differences]  # a's --seed 0, b's 10
    (one,) = compare_runs([_run(tmp_path / "c", {0: True, 1: True}), _run(tmp_path / "d", {1: True})]).pairs
    assert one.note.startswith("paired on the seed both ran (c ran 2, d 1)")  # was "the 1 seeds"


def test_few_or_no_shared_seeds_are_said_plainly(tmp_path):
    few = compare_runs([_run(tmp_path / "a", {0: True, 1: True, 2: True}), _run(tmp_path / "b", {1: False, 2: False})])
    assert "only 2 shared seeds: the test can tell apart only runs that differ on nearly every one" in few.pairs[0].note
    none = compare_runs([_run(tmp_path / "c", {0: True}), _run(tmp_path / "d", {5: False, 6: False})])
    (pair,) = none.pairs
    assert pair.p_value is None and pair.shared == ()
    assert pair.line() == ("c vs d: not paired: no shared seeds (c: seed 0, d: seeds 5..6), so only their unpaired "
                           "intervals compare them; rerun one with the other's --seed and --episodes")
    assert "| c | d | 0 | 0 | 0 | 0 | 0 | - |" in none.markdown()


def test_another_task_version_is_not_paired_and_is_warned_about(tmp_path):
    outcomes = {s: s % 2 == 0 for s in range(12)}
    comparison = compare_runs([_run(tmp_path / "old", outcomes, task_version=None),  # unrecorded: v1
                               _run(tmp_path / "v1", outcomes, task_version=1),
                               _run(tmp_path / "v2", outcomes, task_version=2)])
    old_v1, old_v2, v1_v2 = comparison.pairs
    assert old_v1.p_value == 1.0 and len(old_v1.shared) == 12  # the definitions before versions were v1
    assert old_v2.p_value is None and "the task's definition differs (v1 vs v2)" in old_v2.note
    assert (old_v1.p_adjusted, old_v1.tests, old_v2.p_adjusted) == (1.0, 1, None)  # one pair tested: none to adjust
    assert v1_v2.p_value is None
    assert comparison.differences == (("task_version", "(the installed worldpolicy)", (1, 1, 2)),)
    assert comparison.warnings == (("task_version differs (old: 1, v1: 1, v2: 2): the task's definition (its scenes "
                                   "and success check) is not the same, so the success rates measure different "
                                   "things"),)


def test_a_baselines_unrecorded_version_is_shown_as_the_version_a_resume_takes_it_for(tmp_path):
    """A scripted baseline's report from before policy versions were recorded showed "(not recorded) | 2", where the
    task's unrecorded version shows 1 and `sim --resume` says "scripted policy: v1 (unrecorded) -> v2": the same
    number here. One that did not change since is no difference at all."""
    outcomes = {s: True for s in range(4)}
    scripted = {"kind": "scripted", "chunk_size": 8}
    comparison = compare_runs([_run(tmp_path / "old", outcomes, settings=scripted, policy="scripted"),
                               _run(tmp_path / "v1", outcomes, settings={**scripted, "version": 1}, policy="scripted"),
                               _run(tmp_path / "v2", outcomes, settings={**scripted, "version": 2}, policy="scripted")])
    assert comparison.differences == (("policy_settings.version", "--policy's version", (1, 1, 2)),)
    assert compare_runs([_run(tmp_path / "a", outcomes, settings=scripted, policy="scripted"),
                         _run(tmp_path / "b", outcomes, settings={**scripted, "version": 1}, policy="scripted")
                         ]).differences == ()


def test_an_older_reports_folder_of_the_shipped_model_is_the_same_path_as_shipped(tmp_path):
    """A report from before `checkpoint_files` recorded `shipped` holds this install's folder of it: compared with a
    run since, the path differs in nothing (`models.portable_checkpoint`)."""
    from worldpolicy.models import shipped_model

    outcomes = {s: True for s in range(5)}
    old = _run(tmp_path / "old", outcomes, settings={**SETTINGS, "path": str(shipped_model())})
    new = _run(tmp_path / "new", outcomes, settings={**SETTINGS, "path": "shipped"})
    assert compare_runs([old, new]).differences == ()


def test_an_older_reports_label_of_the_shipped_model_or_a_hub_snapshot_is_the_label_a_run_has_now(tmp_path):
    """A run of the shipped model was labelled by its folder's name (`panda_reach`), one of a hub id by its snapshot's
    revision; a run since is labelled `shipped` / the hub id (`models.checkpoint_name`): compared, the policy differs
    in nothing and both rows name it as a run now does. A label that is not the old rule's (a folder of one's own
    named `panda_reach`, the trainer's `step-N`) is kept."""
    from worldpolicy.models import shipped_model

    outcomes = {s: True for s in range(5)}
    old = _run(tmp_path / "old", outcomes, policy="panda_reach", settings={**SETTINGS, "path": str(shipped_model())})
    resumed = _run(tmp_path / "resumed", outcomes, policy="panda_reach", settings={**SETTINGS, "path": "shipped"})
    new = _run(tmp_path / "new", outcomes, policy="shipped", settings={**SETTINGS, "path": "shipped"})
    comparison = compare_runs([old, resumed, new])
    assert comparison.differences == ()
    assert [row["policy"] for row in comparison.run_rows()] == ["shipped"] * 3
    hub = {**SETTINGS, "path": "owner/reach"}
    old_hub = _run(tmp_path / "old_hub", outcomes, policy="0123456789abcdef0123456789abcdef01234567", settings=hub)
    assert compare_runs([old_hub, _run(tmp_path / "new_hub", outcomes, policy="owner/reach", settings=hub)]
                        ).differences == ()
    own = _run(tmp_path / "own", outcomes, policy="panda_reach", settings={**SETTINGS, "path": "/ckpts/panda_reach"})
    comparison = compare_runs([own, new, _run(tmp_path / "step", outcomes, settings={**SETTINGS, "path": "shipped"})])
    assert [row["policy"] for row in comparison.run_rows()] == ["panda_reach", "shipped", "step-1000"]
    assert {n: v for n, _, v in comparison.differences}["policy"] == ("panda_reach", "shipped", "step-1000")


def test_the_k_asked_for_is_listed_apart_from_the_k_used_only_where_they_differ_otherwise(tmp_path):
    """--execute-steps 2 against the model's 1: the k used and the k asked for differ alike, one row; a run that
    asked for none against one that asked for 1 (both used 1): the k asked for alone."""
    outcomes = {0: True}

    def k(used, asked):
        return {"kind": "execute", "execute_steps": used, "ensemble_decay": 0.1, "execute_steps_requested": asked}

    one, two, default = (_run(tmp_path / n, outcomes, strategy=s) for n, s in
                         (("one", k(1, 1)), ("two", k(2, 2)), ("default", k(1, None))))
    assert [d[0] for d in compare_runs([one, two]).differences] == ["strategy.execute_steps"]
    assert [d[0] for d in compare_runs([one, default]).differences] == ["strategy.execute_steps_requested"]


def test_the_settings_diff_lists_exactly_the_settings_that_differ_with_their_flags(tmp_path):
    outcomes = {s: True for s in range(5)}
    ensemble = {"kind": "ensemble", "execute_steps": 1, "ensemble_decay": 0.1, "execute_steps_requested": None}
    other = {**SETTINGS, "path": "/ckpts/step-2000", "files": "feedbeef", "sampling": {"steps": 8}}
    comparison = compare_runs([_run(tmp_path / "a", outcomes),
                               _run(tmp_path / "b", outcomes, strategy=ensemble, control_hz=10.0, settings=other)])
    assert [(name, flag) for name, flag, _ in comparison.differences] == [
        ("control_hz", "--control-hz"), ("strategy.kind", "--strategy"), ("strategy.execute_steps", "--execute-steps"),
        ("policy_settings.files", "--policy's files (names, sizes, content)"),
        ("policy_settings.sampling.steps", "--steps"), ("policy_settings.path", "--policy")]
    assert {n: v for n, _, v in comparison.differences}["policy_settings.sampling.steps"] == (4, 8)
    assert len(comparison.warnings) == 1 and comparison.warnings[0].startswith("control_hz differs (a: 15.0, b: 10.0)")
    assert "| strategy.kind | --strategy | execute | ensemble |" in comparison.markdown()


def test_training_scenes_and_an_incomplete_run_are_flagged(tmp_path):
    scenes = TrainingScenes("reach", "its dataset /data/reach", (0, 99), (0, 1, 2))
    comparison = compare_runs([_run(tmp_path / "a", {s: True for s in range(5)}, training_scenes=scenes),
                               _run(tmp_path / "b", {s: True for s in range(5)}, requested=10)])
    assert comparison.warnings == (
        ("a: 3 of its 5 episodes (seeds 0..2) are scenes its checkpoint was trained on (its dataset /data/reach): its "
        "success rate is not a held-out one"),
        "b is incomplete: 5 of 10 episodes ran (`worldpolicy sim --resume` finishes it)")
    assert [r["held_out"] for r in comparison.to_json()["runs"]] == ["no: 3 of 5 are training scenes", "not known"]


def test_what_cannot_be_compared_is_refused(tmp_path):
    run = _run(tmp_path / "a", {0: True, 1: False})
    with pytest.raises(ValueError, match="runs: expected two or more sim run folders to compare, got 1"):
        compare_runs([run])
    with pytest.raises(ValueError, match="is given twice"):
        compare_runs([run, tmp_path / "a" / ".." / "a"])
    training = tmp_path / "train_run"
    training.mkdir()
    (training / "metrics.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    with pytest.raises(ValueError, match=r"runs: '.*train_run' is not a sim run: it holds a training run "
                                         r"\(metrics.jsonl\), no report.json of `worldpolicy sim`"):
        compare_runs([run, training])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="it holds nothing worldpolicy writes"):
        compare_runs([run, tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="'.*nowhere' does not exist"):
        compare_runs([run, tmp_path / "nowhere"])
    doc = json.loads((run / "report.json").read_text())
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "report.json").write_text(json.dumps({**doc, "episodes": []}))
    with pytest.raises(ValueError, match="holds a sim report of no finished episode"):
        compare_runs([run, tmp_path / "none"])
    push = _run(tmp_path / "p", {0: True, 1: False}, task="push")
    with pytest.raises(ValueError, match=r"runs: they are of different tasks \(a: reach, p: push\)"):
        compare_runs([run, push])


def test_folders_of_one_name_are_told_apart_by_their_paths(tmp_path):
    comparison = compare_runs([_run(tmp_path / "x" / "sim", {0: True}), _run(tmp_path / "y" / "sim", {0: False})])
    assert comparison.names == (str(tmp_path / "x" / "sim"), str(tmp_path / "y" / "sim"))


def test_the_figure_shows_each_run_and_each_seeds_outcome(tmp_path):
    comparison = compare_runs([_run(tmp_path / "a", {0: True, 1: False}), _run(tmp_path / "b", {1: True, 2: True})])
    fig = comparison_figure(comparison)
    rate, grid, steps, distance = fig.axes[:4]
    assert grid.images[0].get_array().tolist() == [[2, 1, 0], [0, 2, 2]]  # success 2, failure 1, not run 0
    assert [t.get_text() for t in rate.get_yticklabels()] == ["a", "b"]
    assert steps.get_xlabel().startswith("steps to success") and distance.get_xlabel().startswith("final distance [cm]")
    # the distances' colours and bar are named in a legend under the axis, inside the figure
    legend = distance.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["success", "failure", "mean"]
    assert [h.get_color() for h in legend.legend_handles] == [SUCCESS_COLOR, FAILURE_COLOR, "black"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert box.y0 >= 0 and box.y1 < distance.get_window_extent().y0


def test_the_figure_says_when_the_rates_are_over_different_seeds(tmp_path):
    """The success-rate panel compared runs over different seeds with nothing said (the seeds column and the pair lines
    said it): a note under it says so, inside the figure, clear of the axis label above and the panel below; runs of
    the same seeds get none."""
    from worldpolicy.sim.compare import SEEDS_DIFFER

    def note(fig):
        return [t for t in fig.axes[0].texts if t.get_text().replace("\n", " ") == SEEDS_DIFFER]

    same = compare_runs([_run(tmp_path / "a", {0: True, 1: False}), _run(tmp_path / "b", {0: False, 1: True})])
    assert note(comparison_figure(same)) == []
    differ = compare_runs([_run(tmp_path / "c", {0: True, 1: False}),
                           _run(tmp_path / "d", {0: True, 1: True, 2: True})])
    fig = comparison_figure(differ)
    [said] = note(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    rate, steps = fig.axes[0], fig.axes[2]
    box = said.get_window_extent(renderer)
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1
    assert rate.xaxis.label.get_window_extent(renderer).y0 > box.y1 > box.y0 > steps.get_window_extent(renderer).y1


def test_the_legends_stay_under_their_axes_and_inside_the_figure_for_many_runs(tmp_path):
    """Placed at a fraction of their axis's height, which grows with the runs' count, 14 runs put the seed grid's
    legend on the distances' axis below it and the distances' legend off the figure."""
    runs = [_run(tmp_path / f"run_{i:02d}", {s: s % 3 != 0 for s in range(i, i + 10)}) for i in range(14)]
    fig = comparison_figure(compare_runs(runs))
    fig.canvas.draw()
    grid, distance = fig.axes[1], fig.axes[3]
    for ax, below in ((grid, distance), (distance, None)):
        box = ax.get_legend().get_window_extent()
        assert ax.xaxis.label.get_window_extent().y0 > box.y1 > box.y0 >= 0
        assert below is None or box.y0 > below.get_window_extent().y1


def test_cli_compares_real_sim_runs_and_writes_every_file(tmp_path, capsys):
    pytest.importorskip("mink")
    for name, policy, plots in (("expert", "scripted", []), ("random", "random", ["--no-plots"])):
        assert main(["sim", "--policy", policy, "--task", "reach", "--episodes", "2", "--max-steps", "30",
                     "--videos", "0", "--image-size", "none", "--no-progress", *plots,
                     "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    out = tmp_path / "cmp"
    assert main(["sim", "compare", str(tmp_path / "expert"), str(tmp_path / "random"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.json", "compare.md", "compare.png",
                                                     "compare_pairs.csv", "index.html"]
    doc = json.loads((out / "compare.json").read_text())
    assert doc["schema"] == "worldpolicy.sim_compare/v1" and doc["task"] == "reach"
    assert [r["held_out"] for r in doc["runs"]] == ["yes (a baseline: trained on nothing)"] * 2
    assert doc["pairs"][0]["shared_seeds"] == 2 and "only 2 shared seeds" in doc["pairs"][0]["note"]
    assert "policy" in [d["setting"] for d in doc["differences"]]
    printed = capsys.readouterr().out
    assert printed.startswith("run     policy    strategy  ")  # the page's columns (`run_columns`)
    assert "expert vs random: expert 2/2, random 0/2 on the 2 shared seeds" in printed
    page = (out / "index.html").read_text()
    assert "Paired on shared seeds" in page and "data:image/png;base64" in page and "What differs" in page
    assert "Holm-adjusted p (the verdict&#x27;s)" in page
    # each run's name links to its own page, where it has one (the random run was written with --no-plots)
    assert "<a href='./../expert/index.html'>expert</a>" in page and "random/index.html" not in page
    from worldpolicy.fileio import folder_kind

    assert folder_kind(out)[0].writer == "sim compare"
    assert main(["report", str(out)]) == 0 and "Paired on shared seeds" in (out / "index.html").read_text()


def test_cli_refuses_a_sim_runs_flag_and_an_output_folder_that_is_a_run(tmp_path, capsys):
    a, b = _run(tmp_path / "a", {0: True}), _run(tmp_path / "b", {0: False})
    assert main(["sim", "--episodes", "3", "compare", str(a), str(b), "--out", str(tmp_path / "c")]) == 2
    assert "sim compare: error: --episodes: a flag of a sim run" in capsys.readouterr().err
    assert main(["sim", "compare", str(a), str(b), "--out", str(a)]) == 2
    assert "--out: " in capsys.readouterr().err and not (a / "compare.json").exists()


def test_cli_refuses_an_output_folder_inside_a_run_or_holding_a_users_files_before_reading_any_run(tmp_path, capsys,
                                                                                                   monkeypatch):
    """--out inside a compared run (its videos/) or any sim run or comparison would write the comparison among that
    run's files; a folder of no known kind holding a file a comparison writes (a user's index.html) would have it
    replaced: each refused, naming --out, what was given and what is accepted, before a run is read."""
    from worldpolicy.sim import compare as compare_module

    a, b = _run(tmp_path / "a", {0: True}), _run(tmp_path / "b", {0: False})
    (a / "videos").mkdir()
    other = _run(tmp_path / "other", {0: True})
    earlier = tmp_path / "earlier"
    write_comparison(compare_runs([a, b]), earlier, plots=False)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "index.html").write_text("mine")
    read = []
    monkeypatch.setattr(compare_module, "compare_runs", lambda runs: read.append(runs))
    accepted = "accepted: a new or empty folder outside any run, or an earlier `sim compare --out`"
    for out, inside in ((a / "videos", a), (a / "videos" / "new", a), (other / "cmp", other), (earlier / "x", earlier)):
        assert main(["sim", "compare", str(a), str(b), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--out: {str(out)!r} is inside {str(inside)!r}, which holds a " in err and accepted in err
    assert main(["sim", "compare", str(a), str(b), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"--out: {str(mine)!r} holds index.html but no compare.json" in err and accepted in err
    assert read == [] and (mine / "index.html").read_text() == "mine"
    assert not (a / "videos" / "compare.json").exists() and not (a / "videos" / "new").exists()


def test_the_software_that_differs_is_noted_not_listed_as_a_setting(tmp_path):
    """A reviewer must see that torch changed between two runs: each package whose version differs among the runs
    that recorded theirs, in the printed table, compare.md, compare.json and the page; not a setting that differs."""
    from worldpolicy.viz.compare_page import build_compare_html

    ran = {"worldpolicy": "0.1.0", "python": "3.11.7", "torch": "2.5.1", "mujoco": None}
    outcomes = {s: True for s in range(3)}
    comparison = compare_runs([_run(tmp_path / "a", outcomes, software=ran),
                               _run(tmp_path / "b", outcomes, software={**ran, "torch": "2.6.0", "mujoco": "3.2"}),
                               _run(tmp_path / "c", outcomes)])  # an older report: none recorded
    assert comparison.software == (("torch", ("2.5.1", "2.6.0", "(not recorded)")),
                                   ("mujoco", ("none", "3.2", "(not recorded)")))
    assert comparison.differences == ()
    assert ("software that differs (a | b | c): torch 2.5.1 | 2.6.0 | (not recorded); mujoco none | 3.2 | "
            "(not recorded)") in comparison.table()
    assert "They ran on other software: torch 2.5.1 | 2.6.0 | (not recorded);" in comparison.markdown()
    write_comparison(comparison, tmp_path / "out")
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert doc["software_differences"][0] == {"package": "torch", "shown": ["2.5.1", "2.6.0", "(not recorded)"]}
    assert "<td class='k'>torch</td><td class='k'>2.5.1</td><td class='k'>2.6.0</td>" in build_compare_html(
        tmp_path / "out")
    same = compare_runs([_run(tmp_path / "d", outcomes, software=ran), _run(tmp_path / "e", outcomes, software=ran)])
    assert same.software == () and "software" not in same.table() and "other software" not in same.markdown()


def test_write_comparison_without_plots_writes_no_figure_or_page(tmp_path):
    comparison = compare_runs([_run(tmp_path / "a", {0: True}), _run(tmp_path / "b", {0: False})])
    written = write_comparison(comparison, tmp_path / "out", plots=False)
    assert [p.name for p in written] == ["compare.md", "compare.csv", "compare_pairs.csv", "compare.json"]
    # rerun without plots into a comparison's folder: its figure and page of other runs are removed, not left to
    # describe the wrong comparison; a folder that held no comparison keeps its files
    write_comparison(comparison, tmp_path / "out")
    write_comparison(comparison, tmp_path / "out", plots=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["compare.csv", "compare.json", "compare.md",
                                                                    "compare_pairs.csv"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "index.html").write_text("mine")
    write_comparison(comparison, tmp_path / "mine", plots=False)
    assert (tmp_path / "mine" / "index.html").read_text() == "mine"


def test_a_setting_recorded_as_none_is_told_apart_from_one_not_recorded(tmp_path):
    # random actions ran with no --execute-steps (k asked for: none, recorded as null); a report of the scripted
    # expert has no sampling steps at all: "none" and "(not recorded)" say those two different things
    asked = {"kind": "execute", "execute_steps": 4, "ensemble_decay": 0.1, "execute_steps_requested": 4}
    scripted = {"kind": "scripted", "chunk_size": 8, "version": 2}
    comparison = compare_runs([_run(tmp_path / "a", {0: True}, strategy=asked, settings=scripted),
                               _run(tmp_path / "b", {0: True})])
    values = {n: v for n, _, v in comparison.differences}
    assert "| strategy.execute_steps_requested | --execute-steps | 4 | none |" in comparison.markdown()
    assert "| policy_settings.sampling.steps | --steps | (not recorded) | 4 |" in comparison.markdown()
    assert values["strategy.execute_steps_requested"] == (4, None)
    doc = {d["setting"]: d for d in comparison.to_json()["differences"]}
    assert doc["policy_settings.sampling.steps"]["values"] == [None, 4]  # strict JSON: the words say which None
    assert doc["policy_settings.sampling.steps"]["shown"] == ["(not recorded)", "4"]
    write_comparison(comparison, tmp_path / "cmp")
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert ">none<" in page
    assert ">(not recorded)<" in page


def test_latency_rtc_and_hand_over_jumps_are_shown_side_by_side_where_a_run_has_them(tmp_path):
    """A run with none of them (a report from before the jumps were recorded) shows "none", "no" and "-"; the text
    table, compare.md, compare.json (the MCP result's rows) and the page show the same cells."""
    async_ = {"kind": "async", "execute_steps": 2, "ensemble_decay": 0.1, "execute_steps_requested": None}
    outcomes = {0: True, 1: False}
    jumps = {"handovers": 3, "handover_jump_mean_rad": 0.0227, "handover_jump_max_rad": 0.05,
             "chunk_jump_mean_rad": 0.0308, "chunk_jump_max_rad": 0.06}
    runs = [_run(tmp_path / "old", outcomes, strategy=async_),
            _run(tmp_path / "late", outcomes, strategy=async_, jumps=jumps, latency={"ms": 200.0, "ticks": 3}),
            _run(tmp_path / "rtc", outcomes, strategy=async_, jumps={**jumps, "handover_jump_mean_rad": 0.0085},
                 latency={"ms": 200.0, "ticks": 3}, rtc=True)]
    comparison = compare_runs(runs)
    table = comparison.table().splitlines()
    cells = [[c.strip() for c in row.split("  ") if c.strip()][3:7] for row in table[:4]]
    assert cells == [["latency", "rtc", "mean hand-over jump (rad)", "mean in-chunk jump (rad)"],
                     ["none", "no", "-", "-"], ["200 ms = 3 steps", "no", "0.0227", "0.0308"],
                     ["200 ms = 3 steps", "yes", "0.0085", "0.0308"]]
    rows = comparison.to_json()["runs"]
    assert [(r["latency_ms"], r["latency_ticks"], r["rtc"], r["mean_handover_jump_rad"], r["mean_chunk_jump_rad"])
            for r in rows] == [(0.0, 0, False, None, None), (200.0, 3, False, 0.0227, 0.0308),
                               (200.0, 3, True, 0.0085, 0.0308)]
    md = comparison.markdown()
    assert ("| run | policy | strategy | latency | rtc | mean hand-over jump (rad) | mean in-chunk jump (rad) | "
            "success |") in md
    assert "| rtc | step-1000 | async | 200 ms = 3 steps | yes | 0.0085 | 0.0308 | 1/2 |" in md
    assert "| old | step-1000 | async | none | no | - | - | 1/2 |" in md
    write_comparison(comparison, tmp_path / "cmp")
    page = (tmp_path / "cmp" / "index.html").read_text()
    assert "<th class='n'>mean hand-over jump (rad)</th>" in page
    assert "<td class='n'>200 ms = 3 steps</td><td class='n'>yes</td><td class='n'>0.0085</td>" in page
    # runs without a latency, rtc or jumps: no such columns
    plain = compare_runs([_run(tmp_path / "a", outcomes), _run(tmp_path / "b", outcomes)])
    assert [c.head for c in plain.run_columns()][2:4] == ["strategy", "success"]
    assert "latency" not in plain.table() and "rtc" not in plain.markdown()


def test_the_printed_table_compare_md_and_the_page_show_the_same_runs_columns(tmp_path):
    """The table `sim compare` prints lacked the policy, strategy, final distance, seeds and held-out columns the page
    and compare.md show: a run of another --strategy read the same as the other. One definition (`run_columns`) now
    gives all three their columns, in one order, with the same cells."""
    async_ = {"kind": "async", "execute_steps": 2, "ensemble_decay": 0.1, "execute_steps_requested": None}
    outcomes = {0: True, 1: False}
    comparison = compare_runs([_run(tmp_path / "execute", outcomes),
                               _run(tmp_path / "async", outcomes, strategy=async_, latency={"ms": 200.0, "ticks": 3})])
    columns = comparison.run_columns()
    heads = [c.head for c in columns]
    assert heads == ["run", "policy", "strategy", "latency", "success", "rate", "95 % Wilson CI",
                     "mean steps to success", "mean final distance (cm)", "seeds", "held out"]
    printed = comparison.table().splitlines()
    for line, row in zip(printed, [heads, *zip(*(c.cells for c in columns))]):
        assert [c.strip() for c in line.split("  ") if c.strip()] == list(row), (line, row)
    assert printed[2].startswith("async    step-1000  async  "), printed  # text columns left-aligned
    md = comparison.markdown()
    assert "| " + " | ".join(heads) + " |" in md
    assert "| async | step-1000 | async | 200 ms = 3 steps | 1/2 | 50.0 % |" in md
    write_comparison(comparison, tmp_path / "cmp")
    page = (tmp_path / "cmp" / "index.html").read_text()
    runs_table = page[page.index("<section id=runs>"):page.index("</section>", page.index("<section id=runs>"))]
    assert re.findall(r"<th class='[kn]'>([^<]*)</th>", runs_table) == heads
    assert "<td class='k'>async</td><td class='n'>200 ms = 3 steps</td><td class='n'>1/2</td>" in runs_table


def test_the_printed_table_ends_with_the_settings_that_differ(tmp_path):
    outcomes = {0: True, 1: False}
    comparison = compare_runs([_run(tmp_path / "clean", outcomes, perturb=None),
                               _run(tmp_path / "dim", outcomes, perturb="light=0.5")])
    assert "settings that differ (clean | dim): perturb (--perturb): none | light=0.5" in comparison.table()
    same = compare_runs([_run(tmp_path / "a", outcomes), _run(tmp_path / "b", outcomes)])
    assert "settings that differ" not in same.table()


def test_the_printed_table_is_turned_to_fit_a_narrow_terminal_every_cell_whole(tmp_path, monkeypatch, capsys):
    """The runs table is ~200 columns wide (a dozen columns, "yes (a baseline: trained on nothing)"): in an 80 or 120
    column terminal it wrapped into noise. Wider than the terminal, it is printed turned (a line per column, a column
    per run), long cells wrapped, never cut; a pipe (no terminal) gets it whole, and compare.md keeps it wide."""
    async_ = {"kind": "async", "execute_steps": 2, "ensemble_decay": 0.1, "execute_steps_requested": None}
    outcomes = {0: True, 1: False}
    runs = [_run(tmp_path / "execute", outcomes, settings={"kind": "scripted", "version": 1}),
            _run(tmp_path / "async", outcomes, strategy=async_, latency={"ms": 200.0, "ticks": 3},
                 settings={"kind": "scripted", "version": 1})]
    comparison = compare_runs(runs)
    columns = comparison.run_columns()
    wide = comparison.table().splitlines()
    assert max(map(len, wide)) > 120 and comparison.table(500) == comparison.table()  # it fits: as it was
    held_out = next(c for c in columns if c.head == "held out")
    assert held_out.cells == ["yes (a baseline: trained on nothing)"] * 2
    for width in (80, 120):
        printed = comparison.table(width).splitlines()
        assert max(map(len, printed)) <= width, (width, printed)
        turned = printed[:printed.index(next(line for line in printed if line.startswith("execute vs async")))]
        # a line per column, its cells side by side; a wrapped cell goes on below, under its run's
        heads = [line[:max(len(c.head) for c in columns)].strip() for line in turned]
        assert [h for h in heads if h] == [c.head for c in columns], turned
        assert turned[0].split() == ["run", "execute", "async"]
        latency = turned[heads.index("latency")]
        assert latency.split("  ")[0] == "latency" and latency.split()[1:] == ["none", "200", "ms", "=", "3", "steps"]
        text = " ".join(" ".join(turned).split())
        assert all(cell in text for c in columns for cell in c.cells)  # every cell, whole
        assert len(turned) == len(columns) + (width == 80)  # the held-out cells wrapped at 80, whole at 120
        assert turned[-1].count("yes (a baseline: trained on nothing)") == (2 if width == 120 else 0)
    narrow = comparison.table(60).splitlines()  # two runs do not fit side by side: one block each
    assert narrow[0].split() == ["run", "execute"] and "" in narrow
    assert narrow[narrow.index("") + 1].split() == ["run", "async"]
    assert "| yes (a baseline: trained on nothing) |" in comparison.markdown()  # compare.md keeps the wide table

    argv = ["sim", "compare", str(runs[0]), str(runs[1]), "--no-plots", "--out"]
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main([*argv, str(tmp_path / "piped")]) == 0  # capsys' stdout is no terminal: a pipe's
    assert capsys.readouterr().out.splitlines()[:3] == wide[:3]
    monkeypatch.setenv("COLUMNS", "80")
    assert main([*argv, str(tmp_path / "narrow")]) == 0
    assert capsys.readouterr().out.splitlines()[:len(columns)] == comparison.table(80).splitlines()[:len(columns)]


def test_a_latency_of_one_step_says_step_alike_in_the_table_the_run_page_and_report_md(tmp_path):
    """One wording for a latency (`viz.report.latency_said`): `sim compare`'s table and the run's page said "1 steps"
    where report.md said "1 step"."""
    from worldpolicy.viz.report import build_report_html

    outcomes = {0: True, 1: False}
    late = _run(tmp_path / "late", outcomes, latency={"ms": 70.0, "ticks": 1})
    comparison = compare_runs([_run(tmp_path / "clean", outcomes), late])
    latency = next(c for c in comparison.run_columns() if c.head == "latency")
    assert latency.cells == ["none", "70 ms = 1 step"] and not latency.text
    assert "  70 ms = 1 step  " in comparison.table().splitlines()[2]  # right-aligned: a number's column
    assert "<b>latency</b><span>70 ms = 1 step</span>" in build_report_html(late)
    assert "latency 70 ms = 1 step at 15 Hz," in (late / "report.md").read_text()


def test_refusals_name_the_folder_as_given_and_what_to_give_instead(tmp_path):
    run = _run(tmp_path / "a", {0: True, 1: False})
    with pytest.raises(ValueError, match=r"runs: '.*a/' is given twice \(as '.*a' too\)"):
        compare_runs([run, f"{run}/"])
    _run(tmp_path / "runs" / "k4", {0: True})
    _run(tmp_path / "runs" / "k8", {0: True})
    with pytest.raises(ValueError, match=r"'.*runs' is not a sim run: it holds nothing worldpolicy writes, no "
                                         r"report.json of `worldpolicy sim`; its subfolders k4, k8 are: give those"):
        compare_runs([run, tmp_path / "runs"])
    (tmp_path / "starting" / "videos").mkdir(parents=True)  # a run still on its first episode
    with pytest.raises(ValueError, match=r"writes it once its first episode has finished"):
        compare_runs([run, tmp_path / "starting"])


def test_long_run_names_on_the_right_column_stay_clear_of_the_left_one(tmp_path):
    # names of 28 characters and more (shortened to 28) were drawn over the left panels' right edge
    long_a, long_b = "checkpoint_step-0001000_k8_execute", "checkpoint_step-0001000_k4_async_realtime"
    comparison = compare_runs([_run(tmp_path / long_a, {0: True, 1: False}), _run(tmp_path / long_b, {0: True})])
    fig = comparison_figure(comparison)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    rate, grid, steps, distance = fig.axes[:4]
    for left, right in ((rate, grid), (steps, distance)):
        edge = left.get_window_extent(renderer).x1
        labels = [t.get_window_extent(renderer) for t in right.get_yticklabels()]
        assert min(box.x0 for box in labels) > edge, (right.get_xlabel(), min(b.x0 for b in labels), edge)
    for ax in (rate, steps):  # and the left column's names inside the figure
        assert min(t.get_window_extent(renderer).x0 for t in ax.get_yticklabels()) >= 0


def test_ctrl_c_while_a_comparison_is_written_waits_for_its_last_file(tmp_path, monkeypatch):
    """Ctrl-C while compare.png was drawn (as `sim compare` was found stopped) left the new compare.md beside the
    comparison of other runs that compare.json and the page held; now every file is the new comparison's, then it
    stops."""
    import signal

    from worldpolicy.viz import plots

    a, b, c = (_run(tmp_path / name, {0: True, 1: ok}) for name, ok in (("a", True), ("b", False), ("c", True)))
    write_comparison(compare_runs([a, b]), tmp_path / "out")
    drawn = plots.save_figure

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGINT)
        return drawn(*args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_comparison(compare_runs([a, c]), tmp_path / "out")
    runs = [run["name"] for run in json.loads((tmp_path / "out" / "compare.json").read_text())["runs"]]
    assert runs == ["a", "c"]
    assert "| c " in (tmp_path / "out" / "compare.md").read_text()
    assert (tmp_path / "out" / "index.html").stat().st_mtime >= (tmp_path / "out" / "compare.json").stat().st_mtime


def test_a_comparison_is_exported_as_csv_a_row_per_run_and_per_pair(tmp_path):
    """compare.json is for programs; a lab pastes results into a spreadsheet or pandas: compare.csv holds each run's
    headline (its interval in two columns), compare_pairs.csv each pair's tests, as compare.json has them."""
    pandas = pytest.importorskip("pandas")
    runs = [_run(tmp_path / "a", {0: True, 1: True, 2: False}), _run(tmp_path / "b", {0: False, 1: True, 2: False}),
            _run(tmp_path / "c", {0: False, 1: False, 2: False})]
    comparison = compare_runs(runs)
    write_comparison(comparison, tmp_path / "out", plots=False)
    doc = json.loads((tmp_path / "out" / "compare.json").read_text())
    table = pandas.read_csv(tmp_path / "out" / "compare.csv")
    assert list(table["name"]) == ["a", "b", "c"] and list(table["successes"]) == [2, 1, 0]
    assert list(table["ci95_low"]) == pytest.approx([r["ci95"][0] for r in doc["runs"]])
    assert list(table["ci95_high"]) == pytest.approx([r["ci95"][1] for r in doc["runs"]])
    assert table["rtc"].dtype == bool and "ci95" not in table.columns
    pairs = pandas.read_csv(tmp_path / "out" / "compare_pairs.csv")
    assert [tuple(row) for row in pairs[["a", "b"]].itertuples(index=False)] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert list(pairs["p_value"]) == pytest.approx([p["p_value"] for p in doc["pairs"]])
    assert list(pairs["a_only"]) == [p["a_only"] for p in doc["pairs"]]
