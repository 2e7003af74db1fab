"""`serve --log-format json` and the refusal lines' summaries: the formatter, the flag, and `RefusalLog`'s windows."""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings

import pytest

from worldpolicy.cli import build_parser, main
from worldpolicy.serving.logformat import LOG_FORMAT_ENV, Event, JsonFormatter
from worldpolicy.serving.server import RefusalLog, _log


def _record(msg, *args, exc_info=None, name="worldpolicy.policy", level=logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, exc_info)


def test_an_event_is_one_object_with_its_fields_as_keys():
    line = json.loads(JsonFormatter().format(_record(Event({"event": "connect", "conn": 3, "level": "x"}),
                                                     name="worldpolicy.serving", level=logging.INFO)))
    assert list(line)[:3] == ["time", "level", "logger"] and line["level"] == "INFO"
    assert line["logger"] == "worldpolicy.serving" and line["event"] == "connect" and line["conn"] == 3
    assert line["level_"] == "x" and "message" not in line  # a field named like a header key is kept, renamed


def test_any_other_record_is_one_object_with_its_message_and_traceback_as_text():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("far outside the training range: %s", "joint 3", exc_info=sys.exc_info())
    text = JsonFormatter().format(record)
    assert "\n" not in text  # one line, the traceback's newlines escaped
    line = json.loads(text)
    assert line["message"] == "far outside the training range: joint 3" and line["level"] == "WARNING"
    assert line["exc_info"].startswith("Traceback (most recent call last)") and "RuntimeError: boom" in line["exc_info"]


def test_an_event_reads_as_its_json_text_to_other_handlers(caplog):
    """Text format and caplog see what they saw before: the event as one JSON object."""
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        _log(logging.INFO, "ready", load_s=1.5)
    assert [r.getMessage() for r in caplog.records] == ['{"event": "ready", "load_s": 1.5}']


def _serve_args(*extra: str) -> list[str]:
    return ["serve", "--checkpoint", "never-loaded", *extra]


def test_log_format_flag_env_default_and_bad_values(monkeypatch, capsys):
    parser = build_parser()
    monkeypatch.delenv(LOG_FORMAT_ENV, raising=False)
    assert build_parser().parse_args(_serve_args()).log_format == "text"
    assert parser.parse_args(_serve_args("--log-format", "json")).log_format == "json"
    monkeypatch.setenv(LOG_FORMAT_ENV, "json")
    assert build_parser().parse_args(_serve_args()).log_format == "json"
    assert build_parser().parse_args(_serve_args("--log-format", "text")).log_format == "text"  # the flag wins
    monkeypatch.setenv(LOG_FORMAT_ENV, "xml")
    with pytest.raises(SystemExit):
        build_parser().parse_args(_serve_args())
    assert f"--log-format: 'xml' (from {LOG_FORMAT_ENV}) is not a log format; accepted: text, json" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(_serve_args("--log-format", "yaml"))
    assert "--log-format: 'yaml' is not a log format; accepted: text, json" in capsys.readouterr().err


@pytest.fixture
def root_logging_restored(monkeypatch):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # json mode logs crashes through its own hooks
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    yield
    logging.captureWarnings(False)
    root.handlers[:], root.level = handlers, level


def test_json_mode_writes_every_line_as_an_object_python_warnings_too(tmp_path, capsys, root_logging_restored):
    """main() sets the root handler up before the command runs: a serve that fails early still logs JSON lines."""
    assert main(_serve_args("--log-format", "json", "--replicas", "0")) == 2  # fails before loading
    said = [json.loads(line) for line in capsys.readouterr().err.splitlines()]  # its one-line error: a JSON line too
    assert [(line["level"], line["logger"], line["message"].split(" (")[0]) for line in said] == [
        ("ERROR", "worldpolicy", "worldpolicy serve: error: --replicas 0 must be >= 1")]
    logging.getLogger("some.library").warning("a library's line")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"].splitlines()[0].endswith("deprecated thing") or line["message"])
            for line in lines] == [("some.library", "a library's line"), ("py.warnings", True)]
    assert main(_serve_args("--replicas", "0")) == 2  # text again: the default
    capsys.readouterr()
    logging.getLogger("some.library").warning("a library's line")
    assert capsys.readouterr().err.endswith(" WARNING some.library: a library's line\n")


_CRASHING_SERVE = """
import sys, threading
import worldpolicy.serving.commands as commands
from worldpolicy.cli import main

def crash(args):
    def thread_crash():
        raise OSError("a library's thread failed")
    worker = threading.Thread(target=thread_crash, name="some-thread")
    worker.start()
    worker.join()
    raise RuntimeError("a bug past startup")

commands._serve = crash
sys.exit(main(["serve", "--log-format", "json"]))
"""


def test_json_mode_logs_a_crash_as_one_line_with_its_traceback():
    """A bug that escapes the command (or one of its threads) is one JSON line, not Python's traceback lines, which
    a log pipeline would read as a record each; the exit status is still Python's 1."""
    import os
    import subprocess
    from pathlib import Path

    import worldpolicy

    env = {**os.environ, "PYTHONPATH": str(Path(worldpolicy.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", _CRASHING_SERVE], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line an object
    assert [(line["level"], line["event"], line.get("thread"), line["error"]) for line in lines] == [
        ("CRITICAL", "crashed", "some-thread", "OSError: a library's thread failed"),
        ("CRITICAL", "crashed", None, "RuntimeError: a bug past startup")]
    assert all(line["exc_info"].startswith("Traceback (most recent call last)") for line in lines)
    assert "in thread_crash" in lines[0]["exc_info"] and "in crash" in lines[1]["exc_info"]


def test_library_logs_go_to_the_root_handler_in_json_mode():
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from worldpolicy.serving.commands import library_logs_to_root

    try:
        library_logs_to_root()
        # each library's own stderr handler gone, its lines propagating (other handlers, e.g. pytest's, may be there)
        for name, library in (("diffusers", diffusers_logging), ("transformers", transformers_logging)):
            logger = logging.getLogger(name)
            assert logger.propagate and library._default_handler not in logger.handlers
    finally:
        for library in (diffusers_logging, transformers_logging):
            library.disable_propagation()
            library.enable_default_handler()


class _Timers:
    """`call_later` of a loop whose timers fire when the test says."""

    def __init__(self) -> None:
        self.pending: list = []

    def __call__(self, delay: float, callback):
        timer = _Timer(callback)
        self.pending.append(timer)
        return timer

    def fire(self) -> None:
        due, self.pending = self.pending, []
        for timer in due:
            if not timer.cancelled:
                timer.callback()


class _Timer:
    def __init__(self, callback) -> None:
        self.callback, self.cancelled = callback, False

    def cancel(self) -> None:
        self.cancelled = True


def _events(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "worldpolicy.serving"]


def test_a_flood_of_refusals_is_one_line_then_one_summary_per_window(caplog):
    timers = _Timers()
    refusals = RefusalLog(every_s=10.0, call_later=timers)
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        for peer in range(100):
            refusals("refused", "busy", peer=f"10.0.0.1:{peer}", reason="server busy")
        refusals("auth_refused", "unauthorized", path="/", peer="10.0.0.2:1")  # another kind: its own first line
        said = _events(caplog)
        assert [(e["event"], e["status"], e["peer"]) for e in said] == [
            ("refused", "busy", "10.0.0.1:0"), ("auth_refused", "unauthorized", "10.0.0.2:1")]
        caplog.clear()
        timers.fire()  # the windows end: busy counted 99 more, unauthorized none (it just ends)
        summary = _events(caplog)
        assert [(e["event"], e["of"], e["status"], e["count"]) for e in summary] == [
            ("refused_summary", "refused", "busy", 99)]
        assert summary[0]["seconds"] >= 0
        caplog.clear()
        refusals("refused", "busy", peer="10.0.0.1:200", reason="server busy")  # busy's next window: counted
        refusals("auth_refused", "unauthorized", path="/", peer="10.0.0.2:2")  # a new window: in full
        assert [e["event"] for e in _events(caplog)] == ["auth_refused"]
        caplog.clear()
        timers.fire()
        timers.fire()  # a quiet window ends busy's run
        assert [(e["of"], e["count"]) for e in _events(caplog)] == [("refused", 1)]
        caplog.clear()
        refusals("refused", "busy", peer="10.0.0.1:300", reason="server busy")
        assert [e.get("peer") for e in _events(caplog)] == ["10.0.0.1:300"]  # in full again


def test_server_errors_are_each_logged_and_flush_says_what_windows_hold(caplog):
    timers = _Timers()
    refusals = RefusalLog(call_later=timers)
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        for conn in (1, 2, 3):
            refusals("refused", "error", conn=conn, reason="internal server error")
            refusals("refused", "draining", conn=conn, reason="server is shutting down")
        refusals.flush()
    said = [(e["event"], e["status"], e.get("conn", e.get("count"))) for e in _events(caplog)]
    assert said == [("refused", "error", 1), ("refused", "draining", 1), ("refused", "error", 2),
                    ("refused", "error", 3), ("refused_summary", "draining", 2)]
    assert all(t.cancelled for t in timers.pending)  # the loop will not run them: flush said it


def test_refusals_do_nothing_when_warnings_are_off(caplog):
    timers = _Timers()
    refusals = RefusalLog(call_later=timers)
    with caplog.at_level(logging.ERROR, logger="worldpolicy.serving"):
        refusals("refused", "busy", peer="10.0.0.1:1", reason="busy")
    assert not caplog.records and not timers.pending
