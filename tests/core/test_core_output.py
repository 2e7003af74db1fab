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
