"""A sim run's files at scale: episodes appended to episodes.jsonl as they end (the summary rewritten at most every
`SUMMARY_INTERVAL_S`, not after every episode), episodes.csv for a spreadsheet, a run of the previous version still
resumed, and the time left of a run that records videos."""

import json

import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main
from worldpolicy.sim.evaluate import (
    EPISODE_COLUMNS,
    EpisodeLog,
    EpisodeTimes,
    ReportKeeper,
    evaluate,
    read_report,
    write_report,
)

FAST = ["--task", "reach", "--image-size", "none", "--videos", "0", "--max-steps", "2", "--no-progress", "--no-plots"]


def _random_run(out, episodes, **kwargs):
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.policies import RandomPolicy

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    return evaluate(env, RandomPolicy(), policy_name="random", episodes=episodes, seed=4, progress=False, **kwargs)


def test_each_episode_is_appended_and_the_summary_is_not_rewritten_after_each(tmp_path):
    """Rewriting report.json (every episode's) after each episode made a run of n episodes O(n²) work; each episode is
    one line appended, the summary written after the first and then at most every interval (here: never again), and
    the run read back has every episode, as the uninterrupted run."""
    keeper = ReportKeeper(tmp_path, interval=float("inf"))
    lines = []
    whole = _random_run(tmp_path, 4, on_episode=lambda r: keeper(r) or lines.append(
        len((tmp_path / "episodes.jsonl").read_text().splitlines())))
    assert lines == [2, 3, 4, 5]  # the header, then one line per episode
    assert json.loads((tmp_path / "report.json").read_text())["n_episodes"] == 1  # the summary of the first only
    back = read_report(tmp_path)
    assert [e.to_json() for e in back.episodes] == [e.to_json() for e in whole.episodes]
    assert back.requested == 4 and len(back.episodes) == 4
    keeper.summary(whole)  # a run that stops or ends: its summary of every episode
    assert json.loads((tmp_path / "report.json").read_text())["n_episodes"] == 4


def test_a_run_killed_between_summaries_resumes_from_its_episodes(tmp_path, capsys):
    """A kill (no Ctrl-C: nothing written on the way out) after the summary's last rewrite loses no episode:
    --resume reads them from episodes.jsonl, a line the kill cut short run again."""
    keeper = ReportKeeper(tmp_path, interval=float("inf"))
    whole = _random_run(tmp_path, 3, on_episode=keeper)
    with open(tmp_path / "episodes.jsonl", "a") as f:
        f.write('{"seed": 10003, "succ')  # a fourth episode's line cut short
    assert len(read_report(tmp_path).episodes) == 3
    argv = ["sim", "--policy", "random", *FAST, "--seed", "4", "--episodes", "5", "--out", str(tmp_path), "--resume"]
    assert main(argv[:-1]) == 2  # without --resume: refused, naming the episodes it holds, not its summary's one
    assert "holds a sim run (3 of 3 episodes of reach · random)" in capsys.readouterr().err
    assert main(argv) == 0
    assert "3 episodes kept (seeds 4..6), 2 to run (seeds 7..8)" in capsys.readouterr().err
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [e["seed"] for e in doc["episodes"]] == [4, 5, 6, 7, 8]
    assert doc["episodes"][:3] == [e.to_json() for e in whole.episodes]
    assert [json.loads(line)["seed"] for line in (tmp_path / "episodes.jsonl").read_text().splitlines()[1:]] == [
        4, 5, 6, 7, 8]


def test_a_run_of_the_previous_version_without_episodes_jsonl_resumes(tmp_path, capsys):
    """A run written before episodes.jsonl existed holds its episodes in report.json alone: it is read and continued,
    its episodes then written to episodes.jsonl too."""
    argv = ["sim", "--policy", "random", *FAST, "--episodes", "2", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    (tmp_path / "run" / "episodes.jsonl").unlink()
    (tmp_path / "run" / "episodes.csv").unlink()
    assert len(read_report(tmp_path / "run").episodes) == 2
    assert main([*argv[:-4], "--episodes", "3", "--out", str(tmp_path / "run"), "--resume"]) == 0
    assert "2 episodes kept" in capsys.readouterr().err
    assert len((tmp_path / "run" / "episodes.jsonl").read_text().splitlines()) == 4
    assert len(read_report(tmp_path / "run").episodes) == 3


def test_another_runs_or_a_malformed_episodes_file_is_refused_naming_it(tmp_path):
    report = _random_run(tmp_path, 2)
    write_report(report, tmp_path, plots=False)
    path = tmp_path / "episodes.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not json", lines[2]]) + "\n")
    with pytest.raises(ValueError, match=r"episodes\.jsonl: line 2 is no episode"):
        read_report(tmp_path)
    path.write_text("\n".join([lines[0].replace('"seed": 4', '"seed": 9'), *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"another run's episodes \(task 'reach' from seed 9\)"):
        read_report(tmp_path)
    path.write_text('{"schema": "something/v9"}\n')
    with pytest.raises(ValueError, match=r"not a sim run's episodes \(schema 'something/v9'"):
        read_report(tmp_path)
    log = EpisodeLog(tmp_path)  # a keeper's first write replaces such a file whole
    log.append(report)
    assert [e.to_json() for e in EpisodeLog(tmp_path).read(report)] == [e.to_json() for e in report.episodes]


def test_episodes_csv_is_a_row_per_episode_with_named_columns_pandas_reads(tmp_path):
    pandas = pytest.importorskip("pandas")
    out = tmp_path / "run"
    assert main(["sim", "--policy", "scripted", "--task", "reach", "--image-size", "none", "--videos", "0",
                 "--max-steps", "20", "--no-progress", "--episodes", "3", "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    table = pandas.read_csv(out / "episodes.csv")
    assert tuple(table.columns) == EPISODE_COLUMNS
    assert list(table["seed"]) == [e["seed"] for e in doc["episodes"]]
    assert table["success"].dtype == bool and list(table["success"]) == [e["success"] for e in doc["episodes"]]
    assert list(table["final_distance_m"]) == pytest.approx([e["final_distance_m"] for e in doc["episodes"]])
    assert set(table["task"]) == {"reach"} and set(table["policy"]) == {"scripted"}
    assert "units" not in table.columns and all("frames" not in c and "recording" not in c for c in table.columns)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_time_left_counts_recorded_episodes_apart(monkeypatch):
    """With --videos 4 of 200, the first episodes (rendered and encoded) took 10 s each, the rest 1 s: the bar's rate
    over the episodes so far said every episode left would take 10 s. (A stand-in clock: no time is measured.)"""
    import worldpolicy.sim.evaluate as evaluate_module

    clock = _Clock()
    monkeypatch.setattr(evaluate_module.time, "perf_counter", clock)
    times = EpisodeTimes(200, 4)
    assert times.remaining(0) is None
    clock.now = 10.0
    times.ended(0, recording_s=9.0)  # of its 10 s, 9 recording it
    # 3 recorded left at 10 s, 196 unrecorded at the recorded one less its recording (1 s)
    assert times.remaining(1) == pytest.approx(3 * 10 + 196 * 1)
    for i in range(1, 4):
        clock.now += 10.0
        times.ended(i, recording_s=9.0)
    for i in range(4, 6):
        clock.now += 1.5
        times.ended(i, recording_s=0.0)
    assert times.remaining(6) == pytest.approx(194 * 1.5)  # the unrecorded ones' own pace once one has ended


def test_a_progress_bar_shows_the_time_left_it_is_given():
    import io

    from worldpolicy.logcapture import progress_bar

    stream = io.StringIO()
    bar = progress_bar(total=10, file=stream, remaining=lambda: 16.0)
    bar.update(2)
    assert bar.format_dict["rate"] == pytest.approx(8 / 16.0)  # the 8 left in 16 s
    bar.close()
    assert "00:16" in stream.getvalue()
    unknown = progress_bar(total=10, file=io.StringIO(), remaining=lambda: None)
    unknown.update(2)
    assert unknown.format_dict["rate"] is None or unknown.format_dict["rate"] > 0  # tqdm's own
    unknown.close()


def test_a_resume_says_when_the_checkpoints_training_data_now_says_another_recording(caplog):
    """The checkpoint's files are compared by --resume, but the `dataset from-sim` recording its training run names may
    have been recorded again or extended since: what it says now is warned of beside what the stored run recorded."""
    from worldpolicy.sim.commands import _training_data_changed
    from worldpolicy.sim.evaluate import EvalReport
    from worldpolicy.sim.tasks import TrainingScenes

    stored = EvalReport("reach", "tiny", "panda", {"kind": "execute"}, 15.0, 0,
                        training_scenes=TrainingScenes("reach", "its dataset data/reach", (0, 9), (0, 1)))
    same = TrainingScenes("reach", "its dataset data/reach", (0, 9), (0, 1, 2))  # more of the run's seeds: the same
    with caplog.at_level("WARNING"):
        _training_data_changed(stored, same)
        _training_data_changed(stored, None)
        _training_data_changed(None, same)
    assert caplog.messages == []
    with caplog.at_level("WARNING"):
        _training_data_changed(stored, TrainingScenes("reach", "its dataset data/reach", (0, 49), (0, 1, 2)))
    assert caplog.messages == [("--resume: the checkpoint's training data now says reach seeds 0..49 (its dataset "
                                "data/reach); the stored run recorded reach seeds 0..9 (its dataset data/reach). "
                                "report.json records what it says now for every episode (which are its training "
                                "scenes)")]
