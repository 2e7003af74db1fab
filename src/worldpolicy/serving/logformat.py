"""How `worldpolicy serve` writes its log: `--log-format text` (the default, for a person at a terminal) or `json`
(`WORLDPOLICY_LOG_FORMAT=json`), one JSON object per line for a log pipeline (Loki, CloudWatch, `jq`).

The server's events (`_log` in server.py) are `Event` messages: their fields become the JSON line's own keys,
beside `time`, `level` and `logger`, rather than a JSON string inside the line. Every other record (a policy's
warning, a library's line, Python's `warnings` and a logged traceback) is an object too, with `message` and, when
there is one, `exc_info` as text. Standard library only: a `logging.Formatter`, as Ray Serve's `JSONFormatter` and
python-json-logger are, so no logging package is added to the dependencies.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from ..logcapture import TEXT_FORMAT

__all__ = ["LOG_FORMATS", "LOG_FORMAT_ENV", "NOISY_DEBUG", "Event", "JsonFormatter", "log_format",
           "log_levels", "log_to_stderr", "log_uncaught"]

LOG_FORMATS = ("text", "json")
LOG_FORMAT_ENV = "WORLDPOLICY_LOG_FORMAT"  # the default of `serve --log-format`, for a container's environment


class Event:
    """A server event as a log message: `str()` is the event as one JSON object (what the text format shows after its
    prefix, and what `record.getMessage()` gives), made only when a handler formats the record; `JsonFormatter` takes
    the fields themselves."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return json.dumps(self.fields, default=str)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: `time` (ISO 8601, UTC, milliseconds), `level`, `logger`, then an
    `Event`'s fields, or `message` for any other record; `exc_info` and `stack_info` as text when the record has them.
    An event field named like one of the first three keeps its value under its name with `_` appended."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
        }
        said = record.msg
        fields = said.fields if isinstance(said, Event) and not record.args else {"message": record.getMessage()}
        for key, value in fields.items():
            line[f"{key}_" if key in line else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


def log_format(value: str) -> str:
    """argparse type of `--log-format` (applied to its default too, which `WORLDPOLICY_LOG_FORMAT` may set)."""
    import argparse

    if value in LOG_FORMATS:
        return value
    source = f" (from {LOG_FORMAT_ENV})" if os.environ.get(LOG_FORMAT_ENV) == value else ""
    raise argparse.ArgumentTypeError(f"{value!r}{source} is not a log format; accepted: {', '.join(LOG_FORMATS)}")


def log_to_stderr(log_format: str, verbose: bool) -> None:
    """A server process's log, the root handler on stderr: `worldpolicy serve`'s own, and each of its Ray Serve
    replicas' and router's (`serving.ray_serve`: Ray forwards their stderr to the command's), so their events are
    said in the command's `--log-format`: `json` lines (Python's `warnings` through logging too), or `text` ones
    (`TEXT_FORMAT`: every line timed). Other libraries' lines at WARNING (all at DEBUG with `verbose`), worldpolicy's
    INFO events too."""
    json_lines = log_format == "json"
    handler = logging.StreamHandler()  # the current stderr, also when main() runs more than once in a process
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    log_levels(verbose)
    logging.captureWarnings(json_lines)


# Libraries whose DEBUG lines bury the rest of a `-v` log rather than diagnose anything: matplotlib's font search
# (about 220 lines at a command's first plot), PIL's chunks of every PNG it writes. INFO and up still shown under -v.
NOISY_DEBUG = ("matplotlib", "PIL")


def log_levels(verbose: bool) -> None:
    """The levels every command's log is at (the root handler's level aside): worldpolicy's INFO lines, its DEBUG too
    with `verbose` (-v), as are other libraries' but `NOISY_DEBUG`'s."""
    logging.getLogger("worldpolicy").setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in NOISY_DEBUG:
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.NOTSET)


def log_uncaught() -> None:
    """For `--log-format json`: an exception nothing caught (a crash of the command, or of a thread) is logged as one
    `{"event": "crashed", "error": ..., "exc_info": <the traceback>}` line at CRITICAL, instead of Python's traceback
    lines on stderr, which a log pipeline reads as one broken record per line. The exit status is Python's own (1);
    a thread's `SystemExit` stays silent, as Python keeps it."""
    crashes = logging.getLogger("worldpolicy")

    def crashed(exc_type, error, trace, **fields: Any) -> None:
        crashes.critical(Event({"event": "crashed", **fields, "error": f"{exc_type.__name__}: {error}"}),
                         exc_info=(exc_type, error, trace))

    def thread_crashed(args: threading.ExceptHookArgs) -> None:
        if not issubclass(args.exc_type, SystemExit):
            thread = args.thread.name if args.thread is not None else None
            crashed(args.exc_type, args.exc_value, args.exc_traceback, thread=thread)

    sys.excepthook = crashed
    threading.excepthook = thread_crashed
