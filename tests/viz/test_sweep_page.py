"""The pages of this session's new sim outputs: a checkpoint sweep's own page (`sim --all-checkpoints`: the curve, a
row per checkpoint linked to its run's page, the command that continues it; the generic page showed sweep.png and a
file list), and a sim run's sim.log and `--plan-save-candidates` videos on its page (neither was shown)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
from test_report import _parse

from worldpolicy.fileio import NewerFormatError, read_sweep_doc
from worldpolicy.processing.video import write_video
from worldpolicy.viz import report, train_report
from worldpolicy.viz.sweep_page import SWEEP_SHOWS

pytest.importorskip("mink")  # sim.evaluate's reports and sim.sweep's figure stand for what the command writes

from worldpolicy.sim.evaluate import EvalReport
from worldpolicy.sim.evaluate import write_report as write_sim_report
from worldpolicy.sim.rollout import EpisodeResult


def _episode(seed: int, success: bool) -> EpisodeResult:
    return EpisodeResult(seed=seed, success=success, steps=5, success_step=5 if success else None, prompt="reach",
                         chunks=1, final_distance_m=0.01 if success else 0.2, policy_s=0.1, wall_s=0.2)


def _sim_run(folder, outcomes, requested=None):
    """A sim run as `worldpolicy sim --no-plots` leaves it (report.json, report.md, episodes.csv): no page."""
    folder.mkdir(parents=True)
    episodes = [_episode(10_000 + i, won) for i, won in enumerate(outcomes)]
    write_sim_report(EvalReport("reach", folder.name, "panda", {"kind": "execute"}, 15.0, 10_000, episodes,
                                requested=requested or len(outcomes)), folder, plots=False)


def _sweep(tmp_path, outcomes):
    from worldpolicy.sim.sweep import read_sweep

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    out = tmp_path / "sweep"
    for step, (wins, requested) in outcomes.items():
        _sim_run(out / f"step-{step:07d}", wins, requested)
    return read_sweep(out, str(run), f"worldpolicy sim --policy {run} --all-checkpoints --out {out} --resume")


def test_a_sweeps_page_shows_its_curve_a_row_per_checkpoint_linked_to_its_run_and_how_to_continue(tmp_path):
    """Each checkpoint's row: its success and interval, steps, distance and seeds, the best marked in words and a run
    cut short said; each row's run page written where the run had none (`--no-plots`), and linked."""
    from worldpolicy.sim.sweep import write_sweep

    sweep = _sweep(tmp_path, {2: ([True, False, False], 3), 4: ([True, True, False], 3), 8: ([True, True], 3)})
    out = sweep.out
    assert not (out / "step-0000002" / "index.html").exists()
    written = write_sweep(sweep, out)
    assert [p.name for p in written] == ["sweep.csv", "sweep.png", "sweep.json", "index.html"]
    page = _parse(out / "index.html")
    text = (out / "index.html").read_text()
    assert 'data-run-kind=\'sim sweep\'' in text
    assert page.sections == ["summary", "plots", "checkpoints", "continue", "files"]
    assert f"alt='{html.escape(SWEEP_SHOWS)}'" in text and page.imgs[0].startswith("data:image/png;base64,")
    for step in (2, 4, 8):  # written, and linked relative to the sweep's folder
        assert (out / f"step-{step:07d}" / "index.html").is_file()
        assert f"./step-{step:07d}/index.html" in page.links
    rows = text.split("<section id=checkpoints>", 1)[1].split("</section>", 1)[0].split("<tr>")[2:]
    assert len(rows) == 3
    assert "<b>best</b>" in rows[1] and "<b>best</b>" not in rows[0] + rows[2]  # step 8's 2/2 is cut short
    assert "2/2 (2 of 3 ran)" in rows[2] and "66.7 %" in rows[1] and "10000..10002" in rows[1]
    assert f"--all-checkpoints --out {out} --resume" in text.split("<section id=continue>", 1)[1]
    assert page.th[:3] == ["step", "checkpoint run", "success"]


def test_an_interrupted_sweeps_page_names_the_runs_its_sweep_json_does_not_hold_yet(tmp_path):
    """sweep.json is written before the runs and again after them: a sweep stopped in between holds runs its file does
    not, which the page names rather than showing an empty table as the whole sweep."""
    from worldpolicy.sim.sweep import read_sweep, write_sweep

    out = tmp_path / "sweep"
    out.mkdir()
    write_sweep(read_sweep(out, str(tmp_path / "run"), "worldpolicy sim ... --resume"), out, plots=False)
    assert not (out / "index.html").exists()  # the marker alone: no page before a checkpoint is evaluated
    _sim_run(out / "step-0000004", [True])
    html = report.write_report(out).read_text()
    assert "No checkpoint evaluated yet." in html
    assert "1 checkpoint run in this folder is not in sweep.json yet (step-0000004)" in html
    assert (out / "step-0000004" / "index.html").is_file()


def test_a_sweep_json_of_a_newer_version_is_refused_before_any_page_is_written(tmp_path):
    out = tmp_path / "sweep"
    _sim_run(out / "step-0000004", [True])
    (out / "sweep.json").write_text(json.dumps({"schema": "worldpolicy.sim_sweep/v9", "run": "r", "checkpoints": []}))
    with pytest.raises(NewerFormatError, match="upgrade worldpolicy"):
        report.write_report(out)
    assert not (out / "index.html").exists() and not (out / "step-0000004" / "index.html").exists()


def test_a_damaged_sweep_json_is_refused_naming_it_and_is_a_note_on_its_training_runs_page(tmp_path):
    """The page read sweep.json with a bare json.loads: its error ('Expecting value: line 1 column 1') named no file.
    One reader (`fileio.read_sweep_doc`), the sweep command's too."""
    out = tmp_path / "sweep"
    _sim_run(out / "step-0000004", [True])
    (out / "sweep.json").write_text('{"schema": "worldpolicy.sim_sweep/v1", "run": ')
    said = re.escape(f"sweep file {str(out / 'sweep.json')!r} is not valid JSON")
    with pytest.raises(ValueError, match=said):
        report.write_report(out)
    assert not (out / "index.html").exists() and not (out / "step-0000004" / "index.html").exists()
    with pytest.raises(ValueError, match=said):
        read_sweep_doc(out)
    notes: list[str] = []
    assert train_report._sweeps(tmp_path, notes) == "" and notes[0].startswith("sweep/sweep.json could not be read: ")


def test_a_sim_runs_page_links_its_log_and_shows_its_planning_candidates_by_decision(tmp_path):
    """sim.log (its last lines: the result) under Log; each --plan-save-candidates video after the episode videos,
    captioned as imagined candidates with its decision and its episode's outcome."""
    sim = tmp_path / "sim"
    _sim_run(sim, [True, False])
    (sim / "sim.log").write_text("".join(f"12:00:{i:02d} line {i}\n" for i in range(30)) + "12:01:00 reach: 1/2\n")
    clip = np.zeros((3, 32, 32, 3), np.uint8)
    write_video(sim / "videos" / "episode_10001.mp4", clip, 15)
    for call in (0, 1):
        write_video(sim / "videos" / "candidates" / f"episode_10001_decision_{call:02d}.mp4", clip, 15)
    page = _parse(report.write_report(sim))
    html = (sim / "index.html").read_text()
    assert "log" in page.sections and "./sim.log" in page.links
    log = html.split("<section id=log>", 1)[1].split("</section>", 1)[0]
    assert "12:01:00 reach: 1/2" in log and "line 21" in log and "line 20" not in log  # the last 10 lines
    assert len(page.videos) == 3
    videos = html.split("<section id=videos>", 1)[1].split("</section>", 1)[0]
    assert videos.index("episode_10001.mp4") < videos.index("candidates/episode_10001_decision_00.mp4")
    caption = videos.split("candidates/episode_10001_decision_01.mp4", 1)[0].rsplit("<figcaption>", 1)[1]
    assert "planning candidates" in caption and "imagined, not simulated" in caption
    assert "decision 1 (its policy calls from 0) · seed 10001 · failure" in caption


def test_a_training_runs_page_links_its_log_and_shows_its_end_read_from_its_end(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    (run / "train.log").write_text("12:00:00 train: 10 steps\n")
    page = _parse(report.write_report(run))
    assert "log" in page.sections and "./train.log" in page.links
    assert "12:00:00 train: 10 steps" in (run / "index.html").read_text()
    monkeypatch.setattr(report, "LOG_TAIL_BYTES", 30)  # a log longer than what is read of it: its cut line left out
    (run / "train.log").write_text("12:00:00 a first line\n12:00:01 second\n12:00:02 third\n")
    log = report.build_report_html(run).split("<section id=log>", 1)[1].split("</section>", 1)[0]
    assert "12:00:02 third" in log and "12:00:01 second" not in log and "econd" not in log


def test_a_training_runs_page_names_the_sweep_of_its_checkpoints_kept_in_its_folder(tmp_path):
    """`sim --policy RUN --all-checkpoints --out RUN/curve`: under Sim evaluation, linked, with its best; a sweep of
    another run kept there is not this run's."""
    from worldpolicy.sim.sweep import read_sweep, write_sweep

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"optim": {"steps": 4}}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    for name, of in (("curve", run), ("theirs", tmp_path / "other")):
        for step, wins in ((2, [False, False]), (4, [True, False])):
            _sim_run(run / name / f"step-{step:07d}", wins)
        write_sweep(read_sweep(run / name, str(of)), run / name)
    html = report.build_report_html(run)
    section = html.split("<section id=evaluation>", 1)[1].split("</section>", 1)[0]
    assert ("checkpoint sweep <a href='./curve/index.html'>curve/</a> (reach): 2 checkpoints evaluated on the same "
            "seeds, best step 4: 1/2 = 50.0 %") in section
    assert "theirs" not in section
