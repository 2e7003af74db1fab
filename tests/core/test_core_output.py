"""What a command writes where no terminal reads it (a log file, `nohup ... > log 2>&1`, CI, `| cat`)."""

import io
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "worldpolicy"


def test_a_progress_bar_in_a_log_is_lines_of_ascii_not_a_redraw_per_step(capsys):
    """`predict`'s bar (as every command's) wrote each of its redraws after a carriage return into a log, one per
    step, its bar in block characters: `nohup worldpolicy ... > log` held one line of thousands of redraws. Where
    stderr is no terminal, each redraw is a line of ASCII, at most every `LOG_PROGRESS_INTERVAL` seconds (30: this
    test's 40 steps take far less), the first and last always."""
    from worldpolicy.commands import _progress

    update = _progress("policy (droid)")
    for done in range(1, 41):
        update(done, 40)
    err = capsys.readouterr().err
    assert "\r" not in err and err.isascii() and "\x1b" not in err
    lines = err.splitlines()
    assert len(lines) == 2 and "1/40" in lines[0] and "40/40" in lines[1], lines


def test_a_progress_bar_on_a_terminal_is_tqdms_own():
    """On a terminal the bar is redrawn in place, as tqdm draws it."""
    from worldpolicy.logcapture import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    with progress_bar(total=3, desc="steps", file=terminal) as bar:
        bar.update(3)
    assert "\r" in terminal.getvalue()


def test_a_nested_bar_in_a_log_moves_no_cursor_and_refreshes_are_held_to_the_cadence():
    """A bar drawn while another is open (`dream`'s chunks, the policy's forward dynamics under them) moved the cursor
    up with escape codes, which a log keeps; `set_postfix` redrew at every call. Neither, where no terminal reads."""
    from worldpolicy.logcapture import progress_bar

    log = io.StringIO()
    with progress_bar(total=2, desc="outer", file=log) as outer:
        for _ in range(2):
            with progress_bar(total=50, desc="inner", leave=False, file=log) as inner:
                for step in range(50):
                    inner.update(1)
                    inner.set_postfix(loss=step)
            outer.update(1)
    text = log.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert text.count("inner") == 4 and "inner: 100%" in text and "loss=49" in text  # each inner's first and last


def test_every_progress_bar_is_drawn_by_progress_bar():
    """One place draws the bars (`logcapture.progress_bar`): a module calling tqdm itself writes a log's redraws."""
    direct = [str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if path.name != "logcapture.py"
              and re.search(r"^\s*(from tqdm|import tqdm)", path.read_text(), re.MULTILINE)]
    assert direct == []


def test_a_progress_bar_in_a_notebook_is_tqdms_own(monkeypatch):
    """A Jupyter kernel's stderr is no terminal, but tqdm draws its widget there: not held to a log's cadence."""
    import tqdm.autonotebook
    import tqdm.notebook

    from worldpolicy.logcapture import progress_bar

    monkeypatch.setattr(tqdm.autonotebook, "tqdm", tqdm.notebook.tqdm)  # as tqdm.autonotebook chooses in a kernel
    log = io.StringIO()
    with progress_bar(total=3, file=log, leave=False) as bar:
        bar.update(3)
    assert "\r" in log.getvalue()  # tqdm's own drawing, not a log's lines


def _run_ascii(*argv):
    """`worldpolicy ARGV` in a fresh interpreter whose stdout and stderr encode ASCII only (PYTHONIOENCODING=ascii)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "ascii", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "worldpolicy", *argv], capture_output=True, env=env, timeout=300,
                          check=False)


def test_a_stdout_that_encodes_ascii_only_gets_escapes_not_a_failure(tmp_path):
    """`sim` ran its episodes, then failed on its summary line's `·` (exit 2: `'ascii' codec can't encode`), and
    `dataset from-sim --help` (`…`) ended in a traceback. Such a character is written as Python writes one on
    stderr, escaped."""
    helped = _run_ascii("dataset", "from-sim", "--help")
    assert helped.returncode == 0 and b"Traceback" not in helped.stderr, helped.stderr[-2000:]
    assert b"seed+1, \\u2026" in helped.stdout
    ran = _run_ascii("sim", "--policy", "random", "--episodes", "1", "--max-steps", "2", "--videos", "0", "--no-plots",
                     "--out", str(tmp_path / "sim"))
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith(b"pick_place \\xb7 random: success 0/1")


def test_diffusers_loading_bar_is_left_out_of_a_log(tmp_path, capsys):
    """diffusers' "Loading pipeline components" bar (its own tqdm: carriage returns, block characters) was in every
    log of a command that loads a checkpoint; where stderr is no terminal it is hidden, as `--no-progress` hides it."""
    from diffusers.utils import logging as diffusers_logging

    from worldpolicy.cli import main

    argv = ["sim", "--policy", "shipped", "--episodes", "1", "--max-steps", "2", "--videos", "0", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path / "sim")]) == 0
    err = capsys.readouterr().err
    assert "Loading pipeline components" not in err and "\r" not in err and err.isascii()
    assert diffusers_logging.is_progress_bar_enabled()  # as it was


def test_verbose_log_shows_worldpolicys_debug_lines_without_matplotlibs_font_search(capsys):
    """`demo -v` logged about 260 lines of matplotlib's font search and PIL's PNG chunks, burying the rest; -v keeps
    every other library's DEBUG lines and worldpolicy's, and without -v nothing changes (the root's WARNING)."""
    import logging

    from worldpolicy.cli import main

    assert main(["embodiments", "-v"]) == 0
    assert logging.getLogger("worldpolicy.x").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("matplotlib.font_manager").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("PIL.PngImagePlugin").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("matplotlib").isEnabledFor(logging.INFO)
    assert main(["embodiments"]) == 0
    assert not logging.getLogger("matplotlib").isEnabledFor(logging.INFO)
    assert logging.getLogger("worldpolicy.x").isEnabledFor(logging.INFO)


def test_a_bad_progress_cadence_is_refused_before_the_command_runs(monkeypatch, capsys, tmp_path):
    """TQDM_MININTERVAL sets a log's cadence; a value that is no number of seconds was said at the first bar, after
    the work began, as `could not convert string to float`, naming no variable."""
    from worldpolicy.cli import main
    from worldpolicy.logcapture import progress_bar

    for bad in ("5s", "-1", "inf", "nan"):
        monkeypatch.setenv("TQDM_MININTERVAL", bad)
        assert main(["dataset", "check", str(tmp_path / "nope")]) == 2
        err = capsys.readouterr().err
        assert f"error: TQDM_MININTERVAL='{bad}': expected the seconds between progress lines" in err
    monkeypatch.setenv("TQDM_MININTERVAL", "0")  # every redraw a line
    log = io.StringIO()
    with progress_bar(total=3, file=log) as bar:
        for _ in range(3):
            bar.update(1)
    assert [line.split("|")[0].strip() for line in log.getvalue().splitlines()] == ["0%", "33%", "67%", "100%"]


def test_hub_download_bars_are_left_out_where_loading_is_quiet(monkeypatch):
    """A checkpoint or dataset fetched from the hub drew huggingface_hub's download bars (a carriage-return redraw
    every 0.1 s of a gigabytes' download) into a log; `cli.main` loads quietly there (`quiet_loading`), and so,
    now, does the hub's download, with the bars as they were after."""
    import huggingface_hub
    import pytest
    from huggingface_hub.utils import are_progress_bars_disabled

    from worldpolicy import hub
    from worldpolicy.logcapture import quiet_loading

    if are_progress_bars_disabled():
        pytest.skip("HF_HUB_DISABLE_PROGRESS_BARS is set here: the bars are hidden always")
    hidden = []

    def fetched(repo_id, **kwargs):
        hidden.append(are_progress_bars_disabled())
        return str(Path("/tmp"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fetched)
    hub._snapshot("someone/data", "dataset")
    with quiet_loading():
        hub._snapshot("someone/data", "dataset")
    assert hidden == [False, True] and not are_progress_bars_disabled()


def test_a_run_log_keeps_every_line_shown_timed_and_appends_after_a_torn_last_line(tmp_path, capsys):
    """`logcapture.run_log`: what the command shows (here a script's root handler) goes to the file too, INFO lines
    timed, each flushed as it is logged (read while the block still runs); a session killed mid-line leaves a torn
    line, which the next one ends before its own. Outside the block nothing more is written."""
    import logging

    from worldpolicy.logcapture import LineFormatter, run_log

    path = tmp_path / "train.log"
    path.write_text("2026-01-01 00:00:00 training: step 3/9 (33%), lo")  # killed mid-write
    shown = logging.StreamHandler()
    shown.setFormatter(LineFormatter(timed=True))
    root = logging.getLogger()
    root.addHandler(shown)
    log = logging.getLogger("worldpolicy.test_run_log")
    level = log.level
    log.setLevel(logging.INFO)
    try:
        with run_log(path) as handler:
            log.info("resumed from step %d", 3)
            log.warning("disk %s full", "almost")
            handler.line("2026-01-02 00:00:00 training: step 4/9 (44%), loss 0.5")
            written = path.read_text().splitlines()
        log.info("after the block")
    finally:
        root.removeHandler(shown)
        log.setLevel(level)
    timed = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
    assert written[0] == "2026-01-01 00:00:00 training: step 3/9 (33%), lo"
    assert re.fullmatch(rf"{timed} resumed from step 3", written[1])
    assert re.fullmatch(rf"{timed} WARNING worldpolicy\.test_run_log: disk almost full", written[2])
    assert written[3:] == ["2026-01-02 00:00:00 training: step 4/9 (44%), loss 0.5"]
    assert path.read_text().splitlines() == written
    err = capsys.readouterr().err.splitlines()
    assert [line[20:] for line in err] == ["resumed from step 3", "WARNING worldpolicy.test_run_log: disk almost full",
                                           "after the block"]  # the console's lines, as the file's


def test_a_run_log_does_not_silence_a_scripts_warnings(tmp_path, capsys):
    """A script that configured no logging sees a warning on stderr (`logging.lastResort`): the run log's handler
    on the root logger must not count as one that shows it."""
    import logging

    from worldpolicy.logcapture import run_log

    root = logging.getLogger()
    kept = root.handlers[:]
    root.handlers.clear()  # a script's: no handler at all (pytest's own put back after)
    try:
        with run_log(tmp_path / "train.log"):
            logging.getLogger("worldpolicy.test_run_log").warning("checkpoint_every_minutes is short")
    finally:
        root.handlers[:] = kept
    assert "checkpoint_every_minutes is short" in capsys.readouterr().err
    assert (tmp_path / "train.log").read_text().rstrip().endswith("checkpoint_every_minutes is short")


def test_a_held_run_log_writes_nothing_until_started_then_what_it_held_first(tmp_path):
    """A training run's log is held until the folder is known to hold that run (`run_log(held=True)`): a session
    refused before (another run's folder) writes nothing there; once started, the lines logged before come first."""
    import logging

    from worldpolicy.logcapture import run_log

    log = logging.getLogger("worldpolicy.test_run_log")
    with run_log(tmp_path / "refused.log", held=True):
        log.warning("refused")
    assert not (tmp_path / "refused.log").exists()
    with run_log(tmp_path / "train.log", held=True) as handler:
        log.warning("before")
        handler.start()
        log.warning("after")
    assert [line.split(": ", 1)[1] for line in (tmp_path / "train.log").read_text().splitlines()] == ["before", "after"]


def test_a_console_found_gone_is_no_longer_written_said_once_in_the_run_log_and_put_back_after(tmp_path, monkeypatch):
    """`logcapture.console_may_close`: a write to a stderr whose reader left (EPIPE) no longer stops the block: the
    first is said once as a warning, which the run's log keeps, and nothing more is written there, through
    `sys.stderr` (a progress line, a print) or the root logger's handler on it, which get their stream back after.
    Another failure of the stream (a full disk under `2> file`) is no reader gone: raised as before."""
    import errno
    import logging
    import os
    import sys

    import pytest

    from worldpolicy.logcapture import LineFormatter, console_may_close, run_log

    class Pipe:
        """A stderr whose reader leaves after `kept` writes."""

        def __init__(self, kept: int, error: int = errno.EPIPE) -> None:
            self.kept, self.error, self.written = kept, error, []

        def write(self, text: str) -> int:
            if len(self.written) >= self.kept:
                raise OSError(self.error, os.strerror(self.error))
            self.written.append(text)
            return len(text)

        def flush(self) -> None:  # what a write that failed left in the stream's buffer fails again
            if len(self.written) >= self.kept:
                raise OSError(self.error, os.strerror(self.error))

    pipe = Pipe(kept=1)
    monkeypatch.setattr(sys, "stderr", pipe)
    shown = logging.StreamHandler()  # as `cli.main` makes it: on the stderr of the time
    shown.setFormatter(LineFormatter(timed=True))
    root = logging.getLogger()
    root.addHandler(shown)
    log = logging.getLogger("worldpolicy.test_console")
    level = log.level
    log.setLevel(logging.INFO)
    try:
        with run_log(tmp_path / "train.log"), console_may_close():
            log.info("step 1")  # shown, and the reader leaves
            print("training: step 2/3", file=sys.stderr, flush=True)  # the reader has left: raised before
            log.info("step 3")
            sys.stderr.write("closing line\n")
        assert sys.stderr is pipe and shown.stream is pipe  # put back
    finally:
        root.removeHandler(shown)
        log.setLevel(level)
    assert [line[20:] for line in pipe.written] == ["step 1\n"]
    written = (tmp_path / "train.log").read_text().splitlines()
    assert [line[20:] for line in written if "WARNING" not in line] == ["step 1", "step 3"]
    [gone] = [line for line in written if "WARNING" in line]
    assert "the console's stderr is gone (Broken pipe" in gone and "the run goes on" in gone

    gone = Pipe(kept=0)  # gone before the block, a failed line still in its buffer: not flushed on the way in
    monkeypatch.setattr(sys, "stderr", gone)
    shown = logging.StreamHandler()
    root.addHandler(shown)
    try:
        with console_may_close():
            log.warning("a line")
    finally:
        root.removeHandler(shown)
    assert gone.written == [] and shown.stream is gone

    full = Pipe(kept=0, error=errno.ENOSPC)
    monkeypatch.setattr(sys, "stderr", full)
    with pytest.raises(OSError, match="No space left"), console_may_close():
        print("a line", file=sys.stderr)
    assert sys.stderr is full
