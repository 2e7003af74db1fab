"""What a run folder tells someone who reads it later: train.log (the console's lines, timed, every session's, how each
ended), checkpoints saved by the wall clock (`checkpoint_every_minutes`) as well as by step, and the format version of
the files a checkpoint's record is read from (trainer_state.json, embodiment.json)."""

from __future__ import annotations

import json
import re

import pytest

TIMED = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def _trainer(raw, **kwargs):
    from worldpolicy.train.config import load_config
    from worldpolicy.train.trainer import Trainer

    return Trainer(load_config(raw), progress=False, **kwargs)


def test_train_log_keeps_the_consoles_lines_timed_across_resumes(train_config, tmp_path, capsys):
    """What scrolled by (the settings the data resolved, `resumed from`, the warnings) was lost with the terminal or
    the job's stderr file; its INFO lines had no time. train.log beside the checkpoints keeps each session's lines,
    appended, each timed, with a progress line every log_every steps also under --no-progress (the log is the
    record), between a line saying who started the session and one saying how it ended."""
    from worldpolicy.cli import main

    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(out, log_every=2, save_every=2)))
    assert main(["train", str(config), "--no-progress", "--steps", "4"]) == 0
    first = capsys.readouterr().err
    assert main(["train", str(config), "--no-progress", "--steps", "6"]) == 0
    console = capsys.readouterr().err
    resumed = f"resumed from {out / 'checkpoints' / 'step-0000004'} (step 4)"
    assert re.search(rf"^{TIMED} {re.escape(resumed)}$", console, re.MULTILINE)  # the console's INFO lines are timed
    assert "training: step" not in first + console  # --no-progress: no progress on the console

    lines = (out / "train.log").read_text().splitlines()
    assert all(re.match(rf"{TIMED} ", line) for line in lines), lines
    said = [line[20:] for line in lines]
    started = [i for i, line in enumerate(said) if line.startswith("session started: worldpolicy train ")]
    assert len(started) == 2 and started[0] == 0
    assert re.fullmatch(r"session started: worldpolicy train \S+ --steps 4 --no-progress \(PID \d+ on .+, "
                        r"worldpolicy .+, in .+\)", said[0])
    assert said[started[1] - 1] == "session ended at step 4 of 4" and said[-1] == "session ended at step 6 of 6"
    progress = [re.match(r"training: step (\d)/(\d)", line) for line in said]
    assert [(m[1], m[2]) for m in progress if m] == [("2", "4"), ("4", "4"), ("6", "6")]
    assert resumed in said[started[1]:]
    # what each session trains, said as it starts (before the cache and the weights), augmentation included
    plan = [line for line in said if line.startswith(("this session trains", "image augmentation"))]
    mix = "objectives policy 0.5, forward_dynamics 0.25, inverse_dynamics 0.25"
    assert plan == [f"this session trains steps 1-4 of 4: full fine-tuning, batch 2, lr 0.001, precision fp32; {mix}",
                    "image augmentation: off",
                    f"this session trains steps 5-6 of 6: full fine-tuning, batch 2, lr 0.001, precision fp32; {mix}",
                    "image augmentation: off"]
    assert said.index(plan[0]) < next(i for i, line in enumerate(said) if line.startswith("training: step"))
    # every worldpolicy line the console showed is in the log, as said there
    shown = [line for line in (first + console).splitlines() if re.match(rf"{TIMED} ", line)]
    assert shown and all(line in lines for line in shown)


def test_how_a_session_stopped_is_the_logs_last_line(train_config, tmp_path, monkeypatch):
    """A preempted job (SIGTERM), a refusal and a crash each end the session's lines with why; a crash with its
    traceback, which the job's stderr had and the folder did not."""
    import signal

    from worldpolicy.fileio import Terminated
    from worldpolicy.train.trainer import Trainer

    out = tmp_path / "run"

    def preempted(record):
        if record.step == 3:
            raise Terminated(signal.SIGTERM)

    with pytest.raises(Terminated):
        _trainer(train_config(out), on_step=preempted).run()
    assert (out / "train.log").read_text().splitlines()[-1].endswith(" session stopped: terminated (SIGTERM)")

    def refused(self):
        raise ValueError("data.dataset changed")

    monkeypatch.setattr(Trainer, "_load", refused)
    with pytest.raises(ValueError):
        _trainer(train_config(out)).run()
    text = (out / "train.log").read_text()
    assert text.endswith(" session stopped by an error: ValueError: data.dataset changed\n")  # one line

    def crashed(self):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(Trainer, "_load", crashed)
    with pytest.raises(RuntimeError):
        _trainer(train_config(out)).run()
    tail = (out / "train.log").read_text()[len(text):]
    crash = rf"^{TIMED} session stopped by an error: Traceback \(most recent call last\):\n"
    assert re.search(crash, tail, re.MULTILINE)
    assert tail.rstrip().endswith("RuntimeError: CUDA error: an illegal memory access")


def test_a_run_that_failed_before_writing_anything_leaves_no_folder(train_config, tmp_path, monkeypatch):
    """As before the log: a first session refused before it wrote a file (its log aside) leaves no folder behind, which
    would otherwise hold a lone train.log that marks it as a training run."""
    from worldpolicy.train.trainer import Trainer

    def refused(self):
        raise ValueError("no")

    monkeypatch.setattr(Trainer, "_load", refused)
    with pytest.raises(ValueError):
        _trainer(train_config(tmp_path / "run")).run()
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_is_saved_once_checkpoint_every_minutes_have_passed(train_config, tmp_path, monkeypatch, caplog):
    """A slow machine's save_every steps can be hours: a preemption lost all of them. With checkpoint_every_minutes
    the run also saves the step at which that much wall clock has passed since the session's start or its last save
    (the clock faked: 25 s a step, 1 minute a save), and says why it saved there."""
    import logging

    from worldpolicy.train import trainer

    now = [0.0]
    monkeypatch.setattr(trainer, "_clock", lambda: now[0])

    def tick(record):
        now[0] += 25.0

    raw = train_config(tmp_path / "timed", save_every=100, keep_checkpoints=5, checkpoint_every_minutes=1)
    with caplog.at_level(logging.INFO, logger="worldpolicy"):
        _trainer(raw, on_step=tick).run()
    assert [p.name for p in _trainer(raw)._checkpoints()] == ["step-0000003", "step-0000006"]
    assert "step 3: saving it, 1 min after the session's last save or start (checkpoint_every_minutes=1)" \
        in caplog.messages
    assert "step 6: saving it" not in " ".join(caplog.messages)  # the last step is saved anyway: nothing to say

    now[0] = 0.0
    raw = train_config(tmp_path / "steps", save_every=100, keep_checkpoints=5)  # 0, the default: by step only
    _trainer(raw, on_step=tick).run()
    assert [p.name for p in _trainer(raw)._checkpoints()] == ["step-0000006"]


def test_a_checkpoints_records_say_their_format_version_and_an_older_record_still_resumes(train_config, tmp_path):
    """trainer_state.json and embodiment.json said no version: a later worldpolicy could not tell an older file from a
    damaged one. They say it now; a checkpoint saved before (no schema) is read as the first version: the run
    resumes from it, and a newer version is refused naming the file and the fix."""
    from worldpolicy.fileio import EMBODIMENT_SCHEMA, TRAINER_STATE_SCHEMA, NewerFormatError
    from worldpolicy.policy import checkpoint_spec

    out = tmp_path / "run"
    _trainer(train_config(out, optim={"steps": 2})).run()
    saved = out / "checkpoints" / "step-0000002"
    state = json.loads((saved / "trainer_state.json").read_text())
    spec = json.loads((saved / "embodiment.json").read_text())
    assert state["schema"] == TRAINER_STATE_SCHEMA and spec["schema"] == EMBODIMENT_SCHEMA
    assert "schema" not in checkpoint_spec(saved)  # a spec's fields only, as registering takes them

    for name, doc in (("trainer_state.json", state), ("embodiment.json", spec)):  # as an older version saved them
        (saved / name).write_text(json.dumps({k: v for k, v in doc.items() if k != "schema"}))
    assert len(_trainer(train_config(out, optim={"steps": 4})).run()) == 2

    newer = out / "checkpoints" / "step-0000004" / "trainer_state.json"
    newer.write_text(json.dumps({**json.loads(newer.read_text()), "schema": "worldpolicy.trainer_state/v2"}))
    with pytest.raises(NewerFormatError, match=r"trainer_state\.json '.*step-0000004.*': written by a newer "
                       r"worldpolicy \(schema 'worldpolicy.trainer_state/v2'.*upgrade worldpolicy"):
        _trainer(train_config(out, optim={"steps": 6})).run()


def test_the_shipped_models_records_say_their_format_version_as_a_runs_do(tmp_path):
    """The shipped model's embodiment.json was written before versions were recorded: it said none, while every
    checkpoint a run saves says `worldpolicy.embodiment/v1` first (`Trainer._write_embodiment`). It says it now, and
    is read by the readers of a run's files, which check it: the same file with a newer version is refused."""
    from worldpolicy.embodiments import embodiment_from_spec
    from worldpolicy.fileio import EMBODIMENT_SCHEMA, TRAINER_STATE_SCHEMA, NewerFormatError, read_trainer_state
    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_spec

    shipped = shipped_model()
    spec = json.loads((shipped / "embodiment.json").read_text())
    assert next(iter(spec.items())) == ("schema", EMBODIMENT_SCHEMA)  # first, as a run writes it
    assert read_trainer_state(shipped)["schema"] == TRAINER_STATE_SCHEMA
    assert checkpoint_spec(shipped) == {k: v for k, v in spec.items() if k != "schema"}
    assert embodiment_from_spec(shipped / "embodiment.json", checkpoint=True).name == "panda_reach"

    newer = tmp_path / "embodiment.json"
    newer.write_text(json.dumps({**spec, "schema": "worldpolicy.embodiment/v2"}))
    with pytest.raises(NewerFormatError, match="written by a newer worldpolicy"):
        embodiment_from_spec(newer, checkpoint=True)


def test_a_run_whose_console_reader_left_trains_on_and_says_so_once_in_its_log(train_config, tmp_path):
    """`worldpolicy train CONFIG 2>&1 | tee out` with the tee killed (a closed ssh session), or `| head` that had its
    lines: the next line written, a progress line, raised BrokenPipeError and the run died before its next checkpoint.
    It trains on: nothing more is written to the console, train.log says so once and keeps every line, and every
    checkpoint is saved. Here the console's reader has left before the run starts (stderr a pipe whose read end is
    closed): every write to it fails, the progress lines' too."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import worldpolicy

    out = tmp_path / "run"
    config = tmp_path / "run.json"
    config.write_text(json.dumps(train_config(out, log_every=1, save_every=3)))
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(worldpolicy.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-m", "worldpolicy", "train", str(config)], stdout=subprocess.PIPE,
                              stderr=write_end, text=True, env=env, timeout=300, check=False)
    finally:
        os.close(write_end)
    assert done.returncode == 0 and json.loads(done.stdout)["steps_run"] == 6  # its result still read on stdout
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003", "step-0000006"]
    log = (out / "train.log").read_text()
    gone = re.findall(rf"^{TIMED} WARNING worldpolicy\.logcapture: the console's stderr is gone \(Broken pipe: .*$",
                      log, re.MULTILINE)
    assert len(gone) == 1 and "the run goes on" in gone[0]
    assert log.count(" training: step ") == 6 and log.rstrip().endswith("session ended at step 6 of 6")


def test_a_resume_and_the_runs_page_read_a_checkpoints_record_once_through_its_checked_reader(train_config, tmp_path,
                                                                                              monkeypatch):
    """trainer_state.json was read twice by a resume (its settings compared, then its schedule restored), twice by each
    model card (the card's facts, then the embodiment it names), and by the run's page without its format version
    checked (one a newer worldpolicy wrote was shown as if it were read right). Each reads it once, through
    `fileio.read_trainer_state`: the page says a newer one could not be read rather than showing it."""
    from collections import Counter
    from pathlib import Path

    from worldpolicy import fileio
    from worldpolicy.viz.train_report import train_sections

    out = tmp_path / "run"
    _trainer(train_config(out, optim={"steps": 2}, save_every=2)).run()
    reads: list[Path] = []
    real = fileio.read_json

    def counted(path, what):
        reads.append(Path(path))
        return real(path, what)

    monkeypatch.setattr(fileio, "read_json", counted)
    _trainer(train_config(out, optim={"steps": 4}, save_every=2)).run()  # resumes at 2, saves (and carded) 4
    read = Counter(re.search(r"step-\d+", p.parent.name)[0] for p in reads if p.name == "trainer_state.json")
    assert read == {"step-0000002": 1, "step-0000004": 1}  # 4's by its card, in the save's staging folder
    reads.clear()
    sections, notes, _ = train_sections(out)
    assert [p.parent.name for p in reads if p.name == "trainer_state.json"] == ["step-0000004"] and not notes
    assert "data fingerprint" in "".join(sections)

    latest = out / "checkpoints" / "step-0000004" / "trainer_state.json"
    latest.write_text(json.dumps({**json.loads(latest.read_text()), "schema": "worldpolicy.trainer_state/v2"}))
    sections, notes, _ = train_sections(out)
    assert any("step-0000004's trainer state (trainer_state.json) could not be read" in note
               and "written by a newer worldpolicy" in note for note in notes)
    assert "data fingerprint" not in "".join(sections)  # not shown as if read right
