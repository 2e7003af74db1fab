"""`worldpolicy sim --policy RUN --all-checkpoints`: every checkpoint of a training run on the same seeds, each into
its own sim run under --out, resumed as a sim run is, and the learning curve (sweep.csv/.json/.png, the best named)."""

import csv
import json
import shutil

import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main
from worldpolicy.sim.evaluate import EvalReport, write_report
from worldpolicy.sim.rollout import EpisodeResult


def _episode(seed: int, success: bool, steps: int = 5) -> EpisodeResult:
    return EpisodeResult(seed=seed, success=success, steps=steps, success_step=steps if success else None,
                         prompt="reach", chunks=1, final_distance_m=0.01 if success else 0.2, policy_s=0.1, wall_s=0.2)


def _fake_run(root, steps=(2, 4)):
    """A training run's folder as the folder checks see it (metrics.jsonl, checkpoints/step-*/model_index.json): no
    weights, for what is refused or decided before any checkpoint loads."""
    run = root / "run"
    for step in steps:
        ckpt = run / "checkpoints" / f"step-{step:07d}"
        ckpt.mkdir(parents=True)
        (ckpt / "model_index.json").write_text("{}")
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step}))
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    return run


def test_the_best_checkpoint_is_the_highest_success_rate_of_the_finished_runs_and_the_curve_is_written(tmp_path):
    """Each subfolder's run is a point (a checkpoint since rotated out of the run too); the best has the highest
    success rate among the complete runs (an incomplete run of a higher rate is not it), ties going to the fewer steps
    to success; sweep.csv has a row per checkpoint, its interval as sim reports it, and the training run's own [eval]
    lines are drawn beside them."""
    from worldpolicy.fileio import folder_kind
    from worldpolicy.sim.evaluate import wilson_interval
    from worldpolicy.sim.sweep import read_sweep, write_sweep

    run = _fake_run(tmp_path, steps=(4,))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 2, "eval_success_rate": 0.5, "eval_episodes": 4}) + "\n")
    out = tmp_path / "sweep"
    outcomes = {2: ([True, False, False], 3), 4: ([True, True, False], 3), 6: ([True, True, False], 3),
                8: ([True, True], 3)}  # step 8: 2 of 3 asked for, cut short
    for step, (wins, requested) in outcomes.items():
        episodes = [_episode(10_000 + i, won, steps=10 if step == 4 else 5) for i, won in enumerate(wins)]
        report = EvalReport("reach", f"step-{step:07d}", "panda", {"kind": "execute"}, 15.0, 10_000, episodes,
                            requested=requested)
        (out / f"step-{step:07d}").mkdir(parents=True)
        write_report(report, out / f"step-{step:07d}", plots=False)
    sweep = read_sweep(out, str(run))
    assert [p.step for p in sweep.points] == [2, 4, 6, 8]
    assert sweep.best().step == 6  # 2/3 as step 4, in fewer steps; step 8's 2/2 is incomplete
    assert "best checkpoint: step-0000006 (success 2/3 = 66.7 %" in sweep.best_line()
    # the run holds step 4 alone: the best was rotated out of it since, which a path alone did not say
    assert sweep.best_line().split("): ", 1)[1].startswith(
        f"{run / 'checkpoints' / 'step-0000006'} (deleted from the training run since: raise its keep_checkpoints")
    assert f"worldpolicy sim compare {out / 'step-0000006'} {out / 'step-0000008'}" in sweep.best_line()
    written = write_sweep(sweep, out)
    assert [p.name for p in written] == ["sweep.csv", "sweep.png", "sweep.json", "index.html"]  # its page last
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [(r["step"], r["successes"], r["n_episodes"], r["best"]) for r in rows] == [
        ("2", "1", "3", "false"), ("4", "2", "3", "false"), ("6", "2", "3", "true"), ("8", "2", "2", "false")]
    assert (float(rows[0]["ci95_low"]), float(rows[0]["ci95_high"])) == pytest.approx(wilson_interval(1, 3))
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["schema"] == "worldpolicy.sim_sweep/v1" and doc["best"]["step"] == 6 and doc["task"] == "reach"
    assert folder_kind(out)[0].writer == "sim sweep"
    assert (out / "sweep.png").stat().st_size > 1000
    _fake_run(tmp_path, steps=(6,))  # held again: named alone
    line = sweep.best_line()
    assert "deleted" not in line and f"{run / 'checkpoints' / 'step-0000006'}; whether" in line


def test_a_sweep_where_no_checkpoint_succeeded_names_no_best(tmp_path):
    from worldpolicy.sim.sweep import read_sweep

    out = tmp_path / "sweep"
    for step in (2, 4):
        (out / f"step-{step:07d}").mkdir(parents=True)
        write_report(EvalReport("reach", "x", "panda", {"kind": "execute"}, 15.0, 10_000, [_episode(10_000, False)],
                                requested=1), out / f"step-{step:07d}", plots=False)
    sweep = read_sweep(out, str(tmp_path / "run"))
    assert sweep.best() is None and sweep.best_line() == "best checkpoint: none, no checkpoint succeeded in any episode"


def test_the_best_is_chosen_on_the_same_seeds_a_rotated_checkpoints_fewer_episodes_drawn_not_compared(tmp_path):
    """A sweep resumed with more episodes extends each checkpoint still in the training run; one rotated out of it
    before keeps its fewer, complete as asked: its 3/3 was named best over 5/6 on twice the seeds."""
    from worldpolicy.sim.sweep import read_sweep

    out = tmp_path / "sweep"
    for step, wins in {2: [True] * 3, 4: [True] * 4 + [False] * 2, 6: [True] * 5 + [False]}.items():
        (out / f"step-{step:07d}").mkdir(parents=True)
        write_report(EvalReport("reach", "x", "panda", {"kind": "execute"}, 15.0, 10_000,
                                [_episode(10_000 + i, won) for i, won in enumerate(wins)], requested=len(wins)),
                     out / f"step-{step:07d}", plots=False)
    sweep = read_sweep(out, str(tmp_path / "run"))
    assert [p.step for p in sweep.compared()] == [4, 6] and sweep.best().step == 6
    assert [row["best"] for row in sweep.rows()] == [False, False, True]
    for step in (4, 6):  # none of the six-episode runs succeeded: none, though the three-episode one did
        write_report(EvalReport("reach", "x", "panda", {"kind": "execute"}, 15.0, 10_000,
                                [_episode(10_000 + i, False) for i in range(6)], requested=6),
                     out / f"step-{step:07d}", plots=False)
    sweep = read_sweep(out, str(tmp_path / "run"))
    assert sweep.best() is None
    assert sweep.best_line() == "best checkpoint: none, no checkpoint run on all 6 episodes succeeded in any"


@pytest.mark.parametrize("given, said", [
    ("scripted", ("--policy scripted: --all-checkpoints evaluates each checkpoint a training run saved, and 'scripted' "
                 "is no folder here; accepted: a training run's folder (`worldpolicy train`'s output_dir, holding "
                 "checkpoints/step-*)")),
    ("{run}/checkpoints/step-0000002", ("is one checkpoint; --all-checkpoints takes a training run's folder: give its "
                                        "run, '{run}', or drop --all-checkpoints to evaluate this one")),
    ("{run}/checkpoints", "is a training run's checkpoints folder; give the run's folder, '{run}'"),
    ("{tmp}", "holds no training run; accepted: a training run's folder"),
    ("{empty}", "the training run '{empty}' holds no saved checkpoint (checkpoints/step-*) yet"),
])
def test_what_is_no_training_run_with_checkpoints_is_refused_before_anything_loads(tmp_path, capsys, given, said):
    run = _fake_run(tmp_path)
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    names = {"run": run, "tmp": tmp_path, "empty": empty}
    assert main(["sim", "--policy", given.format(**names), "--all-checkpoints", "--out", str(tmp_path / "sweep")]) == 2
    assert said.format(**names) in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("given", ["run", "run/checkpoints"])
def test_a_training_runs_folder_without_all_checkpoints_names_its_newest_checkpoint_and_the_sweep(tmp_path, capsys,
                                                                                                   given):
    run = _fake_run(tmp_path)
    policy = str(tmp_path / given)
    assert main(["sim", "--policy", policy, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"--policy={policy!r} is a training run's " in err
    assert f"e.g. the newest, {str(run / 'checkpoints' / 'step-0000004')!r}; or, to evaluate every one of them, " \
           f"--policy {run} --all-checkpoints" in err


def test_a_sweep_is_refused_over_a_sim_run_and_a_rerun_without_resume(tmp_path, capsys):
    from worldpolicy.sim.sweep import Sweep, write_sweep

    run = _fake_run(tmp_path)
    sim_run = tmp_path / "sim_run"
    sim_run.mkdir()
    write_report(EvalReport("reach", "x", "panda", {"kind": "execute"}, 15.0, 10_000, [_episode(10_000, True)],
                            requested=1), sim_run, plots=False)
    for out, said in ((sim_run, "holds a sim run (report.json), not a sweep of a training run's checkpoints"),
                      (tmp_path / "new", "holds no sweep (sweep.json) to continue; drop --resume")):
        assert main(["sim", "--policy", str(run), "--all-checkpoints", "--out", str(out),
                     *(["--resume"] if out.name == "new" else [])]) == 2
        assert said in capsys.readouterr().err
    write_sweep(Sweep(str(run.absolute()), tmp_path / "old", ()), tmp_path / "old")
    assert main(["sim", "--policy", str(run), "--all-checkpoints", "--out", str(tmp_path / "old")]) == 2
    assert "holds a sweep of" in capsys.readouterr().err
    other = _fake_run(tmp_path / "b")
    assert main(["sim", "--policy", str(other), "--all-checkpoints", "--out", str(tmp_path / "old"), "--resume"]) == 2
    assert f"evaluated the checkpoints of {run.absolute()}, not of {other.absolute()}" in capsys.readouterr().err


def test_every_checkpoint_is_evaluated_on_the_same_seeds_and_a_resumed_sweep_runs_only_what_is_new(tmp_path, capsys,
                                                                                                  monkeypatch):
    """Two tiny checkpoints, each into its own sim run on the same seeds, one progress bar over checkpoints x
    episodes; resumed after the run rotated its oldest away and saved a newer one, only the new one runs (the
    finished one loads no model), and the rotated one's result stays on the curve."""
    pytest.importorskip("diffusers")
    from worldpolicy import logcapture
    from worldpolicy.sim import policies
    from worldpolicy.sim.sweep import read_sweep, write_sweep
    from worldpolicy.testing import make_tiny_checkpoint

    run = tmp_path / "run"
    for step in (2, 4):
        make_tiny_checkpoint(run / "checkpoints" / f"step-{step:07d}", seed=step)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 4, "loss": 1.0}) + "\n")
    bars, loaded = [], []
    real_bar, real_make = logcapture.progress_bar, policies.make_policy

    def bar(*args, **kwargs):
        made = real_bar(*args, **kwargs)
        if "checkpoints" in str(kwargs.get("desc")):
            bars.append((kwargs["total"], kwargs["initial"], made))
        return made

    monkeypatch.setattr(logcapture, "progress_bar", bar)
    monkeypatch.setattr(policies, "make_policy", lambda spec, **kw: loaded.append(spec) or real_make(spec, **kw))
    out = tmp_path / "sweep"
    flags = ["sim", "--policy", str(run), "--all-checkpoints", "--task", "reach", "--episodes", "1", "--steps", "1",
             "--image-size", "48x64", "--videos", "0", "--max-steps", "1", "--no-plots", "--out", str(out)]
    assert main(flags) == 0
    assert [(total, initial, made.n) for total, initial, made in bars] == [(2, 0, 2)]
    assert [s.rsplit("/", 1)[-1] for s in loaded] == ["step-0000002", "step-0000004"]
    for step in ("step-0000002", "step-0000004"):
        doc = json.loads((out / step / "report.json").read_text())
        assert [e["seed"] for e in doc["episodes"]] == [10_000]
        assert doc["policy_settings"]["path"].endswith(f"run/checkpoints/{step}")
    printed = capsys.readouterr().out
    assert f"reach · run: 2 checkpoints evaluated into {out}" in printed
    # each checkpoint's result line, not its files (sweep.csv names its folder): the sweep's own files alone listed
    assert printed.count("reach · step-000000") == 2 and "report.json" not in printed
    assert [line.strip() for line in printed.splitlines() if line.startswith("  ")] == [
        str(out / "sweep.csv"), str(out / "sweep.json")]
    assert "best checkpoint: none, no checkpoint succeeded in any episode" in printed  # random weights
    assert json.loads((out / "sweep.json").read_text())["resume_command"].endswith(" --resume")

    shutil.move(run / "checkpoints" / "step-0000002", run / "checkpoints" / "step-0000006")  # rotated; a new one
    bars.clear(), loaded.clear()
    assert main([*flags, "--resume"]) == 0
    assert [(total, initial, made.n) for total, initial, made in bars] == [(2, 1, 2)]  # the run's 4 and 6
    assert [s.rsplit("/", 1)[-1] for s in loaded] == ["step-0000006"]
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert [r["step"] for r in rows] == ["2", "4", "6"] and {r["n_episodes"] for r in rows} == {"1"}
    assert "already has its 1 episodes; nothing to run" in capsys.readouterr().out
    # resumed with --no-plots after a session that drew them: that figure and page, which showed fewer, are removed
    write_sweep(read_sweep(out, str(run)), out.with_name("drawn"))
    for name in ("sweep.png", "index.html"):
        shutil.copy(out.with_name("drawn") / name, out / name)
    assert main([*flags, "--resume"]) == 0
    assert not (out / "sweep.png").exists() and not (out / "index.html").exists()
    assert [r["step"] for r in csv.DictReader((out / "sweep.csv").open())] == ["2", "4", "6"]


def test_a_sweep_whose_first_run_is_refused_leaves_no_sweep_behind(tmp_path, capsys):
    """A flag refused by the first checkpoint's run (before any episode) left sweep.json, so the corrected command
    was refused as a rerun of a sweep."""
    run = _fake_run(tmp_path)
    out = tmp_path / "sweep"
    assert main(["sim", "--policy", str(run), "--all-checkpoints", "--task", "no_such_task", "--out", str(out)]) == 2
    assert "--task: unknown task 'no_such_task'" in capsys.readouterr().err
    assert not out.exists()


def test_an_interrupted_sweep_says_how_to_continue_and_its_resume_runs_each_checkpoint_as_a_resumed_run(
        tmp_path, capsys, monkeypatch):
    """Each checkpoint is `sim --policy CKPT --out OUT/step-N` with the sweep's flags (its episodes here a stand-in
    that writes a run); Ctrl-C in the second stops the sweep with the command that continues it, and that command
    resumes the first checkpoint's run (--resume: its finished episodes kept) and runs the second."""
    from worldpolicy.sim import commands

    run = _fake_run(tmp_path)
    out = tmp_path / "sweep"
    calls = []

    def one_run(one, made_by, task_given, image_size, needs_images, log, episode_done, in_sweep):  # --out held
        assert in_sweep
        calls.append((one.policy.rsplit("/", 1)[-1], one.out.name, one.resume, one.seed, one.episodes))
        if one.policy.endswith("step-0000004") and len(calls) == 2:
            raise KeyboardInterrupt
        won = one.policy.endswith("step-0000004")
        report = EvalReport("reach", one.out.name, "panda", {"kind": "execute"}, 15.0, one.seed,
                            [_episode(one.seed + i, won) for i in range(one.episodes)], requested=one.episodes)
        one.out.mkdir(exist_ok=True)
        write_report(report, one.out, plots=False)
        for _ in range(one.episodes):
            episode_done()
        return 0

    monkeypatch.setattr(commands, "_run_held", one_run)
    flags = ["sim", "--policy", str(run), "--all-checkpoints", "--seed", "7", "--episodes", "3", "--no-progress",
             "--out", str(out)]
    assert main(flags) == 130
    err = capsys.readouterr().err
    again = json.loads((out / "sweep.json").read_text())["resume_command"]
    assert f"interrupted after 1 of 2 checkpoints finished; to continue the sweep: {again}" in err
    assert err.count(": interrupted") == 1  # not again, bare, by `cli.main`
    assert again.startswith(f"worldpolicy sim --policy {run} --all-checkpoints ") and again.endswith(" --resume")
    assert main([*flags, "--resume"]) == 0
    assert calls == [("step-0000002", "step-0000002", False, 7, 3), ("step-0000004", "step-0000004", False, 7, 3),
                     ("step-0000002", "step-0000002", True, 7, 3), ("step-0000004", "step-0000004", False, 7, 3)]
    doc = json.loads((out / "sweep.json").read_text())
    assert [(c["step"], c["successes"], c["best"]) for c in doc["checkpoints"]] == [(2, 0, False), (4, 3, True)]
    assert "best checkpoint: step-0000004 (success 3/3 = 100.0 %" in capsys.readouterr().out


def test_a_checkpoints_run_stopped_in_a_sweep_says_how_to_continue_the_sweep_not_the_run_alone(tmp_path, capsys,
                                                                                               monkeypatch):
    """A checkpoint's run interrupted in a sweep printed its own `to continue: worldpolicy sim --policy CKPT --out
    OUT/step-N --resume`, which runs that checkpoint alone and leaves sweep.csv as it was, beside the sweep's: the
    console has the sweep's line alone, the run's sim.log its own. (The episodes here are the scripted expert's, run
    by the real `_run_held` in the checkpoint's folder.)"""
    from worldpolicy.sim import commands
    from worldpolicy.sim.rollout import Rollout

    run = _fake_run(tmp_path, steps=(2,))
    real_held, real_run, seeds = commands._run_held, Rollout.run, []

    def scripted(one, made_by, task_given, image_size, needs_images, log, episode_done, in_sweep):
        one.policy, one.image_size = "scripted", "none"
        return real_held(one, made_by, task_given, None, False, log, episode_done, in_sweep=in_sweep)

    def stop_at_second(self, seed, **kwargs):
        seeds.append(seed)
        if len(seeds) == 2:
            raise KeyboardInterrupt
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(commands, "_run_held", scripted)
    monkeypatch.setattr(Rollout, "run", stop_at_second)
    out = tmp_path / "sweep"
    assert main(["sim", "--policy", str(run), "--all-checkpoints", "--task", "reach", "--episodes", "3",
                 "--max-steps", "5", "--videos", "0", "--no-plots", "--no-progress", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    again = json.loads((out / "sweep.json").read_text())["resume_command"]
    assert f"interrupted after 0 of 1 checkpoints finished; to continue the sweep: {again}" in err
    assert "episodes finished" not in err
    log = (out / "step-0000002" / "sim.log").read_text()
    assert "worldpolicy sim: interrupted after 1 of 3 episodes finished; their report: " in log


def test_a_sweep_that_fails_in_its_first_checkpoint_after_an_episode_says_how_to_continue_it(tmp_path, capsys,
                                                                                              monkeypatch):
    """No checkpoint finished, yet episodes ran and were kept: the sweep's line says how to continue them (its
    checkpoint's own line is no longer printed); a resumed sweep refused before any episode (a flag its runs refuse)
    prints no command, which would be refused again."""
    from worldpolicy.sim import commands

    run = _fake_run(tmp_path, steps=(2,))
    out = tmp_path / "sweep"

    def one_then_fail(one, made_by, task_given, image_size, needs_images, log, episode_done, in_sweep):
        if one.resume:
            raise ValueError("--seed: the run in --out ran other seeds")
        one.out.mkdir(exist_ok=True)
        write_report(EvalReport("reach", one.out.name, "panda", {"kind": "execute"}, 15.0, one.seed,
                                [_episode(one.seed, True)], requested=one.episodes), one.out, plots=False)
        episode_done()
        raise RuntimeError("the GPU went away")

    monkeypatch.setattr(commands, "_run_held", one_then_fail)
    flags = ["sim", "--policy", str(run), "--all-checkpoints", "--episodes", "3", "--no-progress", "--out", str(out)]
    with pytest.raises(RuntimeError, match="the GPU went away"):
        main(flags)
    again = json.loads((out / "sweep.json").read_text())["resume_command"]
    assert f"failed after 0 of 1 checkpoints finished; to continue the sweep: {again}" in capsys.readouterr().err
    assert main([*flags, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--seed: the run in --out ran other seeds" in err and "to continue the sweep" not in err


def test_a_sweep_whose_console_reader_left_runs_on(tmp_path, monkeypatch):
    """`sim --all-checkpoints ... 2>&1 | tee log` left overnight, the tee killed with its ssh session: each checkpoint's
    run outlived it (`console_may_close`), but the sweep's progress bar over them, written outside the runs, raised
    BrokenPipeError at its next line and the sweep stopped (exit 141). Here stderr is a pipe whose reader has left
    before the sweep starts."""
    import os
    import sys

    from worldpolicy.sim import commands

    run = _fake_run(tmp_path)

    def one_run(one, made_by, task_given, image_size, needs_images, log, episode_done, in_sweep):
        one.out.mkdir(exist_ok=True)
        write_report(EvalReport("reach", one.out.name, "panda", {"kind": "execute"}, 15.0, one.seed,
                                [_episode(one.seed, True)], requested=1), one.out, plots=False)
        episode_done()
        return 0

    monkeypatch.setattr(commands, "_run_held", one_run)
    read_end, write_end = os.pipe()
    os.close(read_end)
    gone = os.fdopen(write_end, "w")
    monkeypatch.setattr(sys, "stderr", gone)
    try:
        assert main(["sim", "--policy", str(run), "--all-checkpoints", "--episodes", "1",
                     "--out", str(tmp_path / "sweep")]) == 0
    finally:
        monkeypatch.undo()
        gone.close()
    doc = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [c["step"] for c in doc["checkpoints"]] == [2, 4] and doc["best"]["step"] == 4
