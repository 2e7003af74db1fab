"""What a sim run folder tells someone who reads it later: sim.log (the console's lines, timed, a line per episode,
every session's, how each ended), its files' numbers kept to what they mean (`rollout.measured`), and the summary of
the episodes kept when a run stops (`ReportKeeper` as a context manager)."""

import json
import re

import pytest

pytest.importorskip("mink")

from worldpolicy.cli import main
from worldpolicy.fileio import SIM_LOG_FILE

TIMED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
RUN = ["sim", "--policy", "scripted", "--task", "reach", "--image-size", "none", "--videos", "0", "--max-steps", "20",
       "--no-progress", "--no-plots"]


def _log(out) -> list[str]:
    lines = (out / SIM_LOG_FILE).read_text().splitlines()
    assert all(re.match(rf"{TIMED} ", line) for line in lines), lines  # every line timed
    return [line[20:] for line in lines]


def test_sim_log_keeps_the_consoles_lines_and_each_episode_timed_across_resumes(tmp_path, capsys):
    """What scrolled by over ssh (warnings, the run's folder, the result) was lost with the terminal, and no line said
    how each episode ended: sim.log beside the reports keeps each session's lines, timed, and a line per episode,
    appended by a resume, between a line saying who started the session and one saying how it ended; the console's
    own lines stay untimed."""
    out = tmp_path / "run"
    assert main([*RUN, "--episodes", "2", "--out", str(out)]) == 0
    console = capsys.readouterr()
    assert main([*RUN, "--episodes", "3", "--out", str(out), "--resume"]) == 0
    said = _log(out)
    assert re.fullmatch(r"session started: worldpolicy sim --policy scripted .*--episodes 2 .*--out \S+ .*"
                        r"\(PID \d+ on .+, worldpolicy \S+, in .+\)", said[0])
    assert said[1].startswith(f"sim: writing the run in {out} (each episode appended to episodes.jsonl as it ends, "
                              f"what this console shows to {SIM_LOG_FILE};")
    episodes = [line for line in said if line.startswith("episode ")]
    assert [line.split(":")[0] for line in episodes] == ["episode 1/2 (seed 10000)", "episode 2/2 (seed 10001)",
                                                         "episode 3/3 (seed 10002)"]
    doc = json.loads((out / "report.json").read_text())
    first = doc["episodes"][0]
    outcome = f"success at step {first['success_step']}" if first["success"] else "failure at step 20 (the step limit)"
    assert re.fullmatch(re.escape(f"episode 1/2 (seed 10000): {outcome}, final distance "
                                  f"{100 * first['final_distance_m']:.1f} cm, policy ") + r"\d+\.\d\d"
                        + re.escape(f" s; success {int(first['success'])}/1 so far"), episodes[0])  # timed: not exact
    ended = [i for i, line in enumerate(said) if line.startswith("session ended: ")]
    assert len(ended) == 2 and said[ended[0] + 1].startswith("session started: worldpolicy sim ")
    assert said[ended[0] + 1].endswith(")") and " --resume (PID " in said[ended[0] + 1]
    assert said[-1].startswith(f"session ended: reach · scripted: success {doc['successes']}/3 = ")
    assert "sim: writing the run in" in console.err and not re.search(TIMED, console.err)  # the console: untimed


def test_a_refused_session_writes_no_log_and_an_overwrite_starts_a_new_one(tmp_path, capsys):
    """A session refused before its episodes run (the folder holds a run, other settings) writes nothing in the run's
    log, as in a folder it does not hold; --overwrite replaces the run's log with the run."""
    out = tmp_path / "run"
    assert main([*RUN, "--episodes", "1", "--out", str(out)]) == 0
    before = (out / SIM_LOG_FILE).read_text()
    assert main([*RUN, "--episodes", "1", "--out", str(out)]) == 2  # no --resume: refused
    assert main([*RUN, "--episodes", "2", "--seed", "3", "--out", str(out), "--resume"]) == 2  # other settings
    assert (out / SIM_LOG_FILE).read_text() == before
    assert main([*RUN, "--episodes", "1", "--out", str(out), "--resume"]) == 0  # nothing to run: nothing said
    assert (out / SIM_LOG_FILE).read_text() == before
    assert main([*RUN, "--episodes", "1", "--out", str(out), "--overwrite"]) == 0
    said = _log(out)
    assert [line.split(":")[0] for line in said].count("session started") == 1  # the old run's lines went with it
    # refused once the folder is held (a flag the expert ignores): nothing in a folder of no run
    assert main([*RUN, "--episodes", "1", "--embodiment", "droid", "--out", str(tmp_path / "other")]) == 2
    assert "--embodiment droid does not apply to --policy scripted" in capsys.readouterr().err
    assert not (tmp_path / "other" / SIM_LOG_FILE).exists()


def test_an_interrupted_session_says_how_it_stopped_and_what_it_kept(tmp_path, capsys, monkeypatch):
    from worldpolicy.sim.rollout import Rollout

    real_run, calls = Rollout.run, []

    def run(self, seed, **kwargs):
        calls.append(seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run(self, seed, **kwargs)

    monkeypatch.setattr(Rollout, "run", run)
    out = tmp_path / "run"
    assert main([*RUN, "--episodes", "3", "--out", str(out)]) == 130
    said = _log(out)
    assert said[-2].startswith(f"worldpolicy sim: interrupted after 1 of 3 episodes finished; their report: "
                               f"{out / 'report.json'}; to continue: worldpolicy sim ")
    assert said[-1] == "session stopped: interrupted"
    assert [line.split(":")[0] for line in said if line.startswith("episode ")] == ["episode 1/3 (seed 10000)"]


def test_the_files_keep_measurements_to_what_they_mean_and_rates_exact(tmp_path):
    """episodes.jsonl, episodes.csv and report.json wrote 17-digit floats (0.022743730689966064 m, 25.31609804800064
    s): distances are kept to the micrometre, times to the millisecond, jumps to the microradian, in one place
    (`rollout.measured`); the success rate and its interval stay exact, and the run read back writes the same."""
    from worldpolicy.sim.evaluate import read_report
    from worldpolicy.sim.rollout import UNIT_DECIMALS, measured

    assert measured("final_distance_m", 0.022743730689966064) == 0.022744
    assert measured("ik_mean_mm", 0.05100397933165887) == 0.051
    assert measured("wall_s", 25.31609804800064) == 25.316
    assert measured("mean_policy_s_per_episode", 0.30000000000000004) == 0.3
    assert measured("handover_jump_max_rad", 0.0571560863454771) == 0.057156
    assert measured("success_rate", 2 / 3) == 2 / 3 and measured("steps", 7) == 7 and measured("x_m", None) is None

    out = tmp_path / "run"
    assert main([*RUN, "--episodes", "3", "--out", str(out)]) == 0
    doc = json.loads((out / "report.json").read_text())
    for episode in doc["episodes"]:
        for name, value in episode.items():
            decimals = next((d for unit, d in UNIT_DECIMALS.items() if name.endswith(unit)), None)
            if decimals is not None and value is not None:
                assert value == round(value, decimals), (name, value)
    assert doc["success_rate"] == doc["successes"] / 3  # exact: 2/3 is 0.6666666666666666, not 0.666667
    assert doc["mean_final_distance_m"] == round(doc["mean_final_distance_m"], 6)
    csv = (out / "episodes.csv").read_text()
    assert not re.search(r"\d\.\d{7,}", csv)  # no 17-digit floats
    jsonl = (out / "episodes.jsonl").read_text()
    assert not re.search(r"\d\.\d{7,}", jsonl)
    assert read_report(out).to_json() == doc  # read back (a resume, `sim compare`): as written


def test_a_report_keeper_keeps_the_summary_of_a_run_that_raises(tmp_path):
    """`with keep_report(out) as keeper:` writes report.json of every episode kept when the block raises (the demo's
    and the recipe's evaluations), the error going on."""
    from worldpolicy.sim.env import TabletopEnv
    from worldpolicy.sim.evaluate import ReportKeeper, evaluate, keep_report
    from worldpolicy.sim.policies import RandomPolicy

    env = TabletopEnv("reach", image_size=None, max_steps=2)
    seen = []

    def stop_after_two(report):
        keeper(report)
        seen.append(len(report.episodes))
        if len(seen) == 2:
            raise RuntimeError("the server went away")

    with pytest.raises(RuntimeError, match="the server went away"), keep_report(tmp_path) as keeper:
        assert isinstance(keeper, ReportKeeper)
        keeper.interval = float("inf")  # the summary after the first episode only, until it stops
        evaluate(env, RandomPolicy(), policy_name="random", episodes=4, seed=4, progress=False,
                 on_episode=stop_after_two)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert (doc["n_episodes"], doc["episodes_requested"]) == (2, 4)
    with keep_report(tmp_path / "none"):  # no error: nothing written on the way out
        pass
    assert not (tmp_path / "none").exists()


def test_a_run_whose_console_reader_left_runs_on_and_says_so_once_in_its_log(tmp_path):
    """`worldpolicy sim --episodes 500 ... 2>&1 | tee out` left overnight, the tee killed with its ssh session: the next
    line written (a progress line, the result) raised BrokenPipeError and the run died with its episodes unfinished.
    It runs on, as a training run does (`logcapture.console_may_close`): nothing more is written to the console,
    sim.log says so once and keeps every episode and the result. Here stderr is a pipe whose reader has left before
    the run starts: the progress bar's lines and, with --json, the result's lines fail there; stdout still has its
    reader."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import worldpolicy

    out = tmp_path / "run"
    args = [arg for arg in RUN if arg != "--no-progress"]
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(worldpolicy.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "worldpolicy", *args, "--episodes", "2", "--out", str(out),
                               "--json"], stdout=subprocess.PIPE, stderr=write_end, text=True, env=env, timeout=300,
                              check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and json.loads(done.stdout)["n_episodes"] == 2  # its JSON still read on stdout
    said = _log(out)
    gone = [line for line in said if line.startswith("WARNING worldpolicy.logcapture: the console's stderr is gone")]
    assert len(gone) == 1 and "(Broken pipe: " in gone[0] and "the run goes on" in gone[0]
    assert [line.split(":")[0] for line in said if line.startswith("episode ")] == ["episode 1/2 (seed 10000)",
                                                                                  "episode 2/2 (seed 10001)"]
    assert said[-1].startswith("session ended: reach · scripted: success ")
