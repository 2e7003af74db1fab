"""The warnings worldpolicy logs while a block of code runs, collected per request.

A local `Policy` says what may make a result wrong (actions or a state far outside the training range, a clip of the
wrong length, a single camera's view given for a composite) as WARNING log lines. A server's client sees no server
log, so the server collects the lines logged for each request and sends them in its reply (`warnings`), where
`RemotePolicy` logs them again on the robot's side; an agent reads only a tool's result, so the agents' toolbox puts
them in its `warnings`.

A policy says each warning once (a control loop repeats the same mistake every call), but a server's policy is every
connection's: inside `told_once` it judges "once" against each request's client's own record (`said_before`), so a
robot making the mistake another robot made before it is told too.

Besides, whether a block loads weights quietly (`quiet_loading`): without diffusers' "Loading pipeline components"
bar, for a command run with `--no-progress`, one whose stderr is no terminal, and a server, whose log is JSON lines.
And every progress bar worldpolicy draws (`progress_bar`): tqdm's on a terminal, plain lines in a log. And how a
command's lines read (`LineFormatter`, timed for a training run), on stderr and in a run's own log file (`run_log`:
a training run's train.log, a sim run's sim.log), which keeps them in the run's folder as they are shown, between a
line saying who started each session and one saying how it ended, also once the console is gone
(`console_may_close`: `| head` had its lines, a `| tee` was killed, an ssh session closed) and the run goes on.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any, Self

__all__ = ["LOG_PROGRESS_INTERVAL", "TEXT_FORMAT", "TIME_FORMAT", "LineFormatter", "console_may_close", "is_terminal",
           "loading_quietly", "log_progress_interval", "log_to_parent", "logged_warnings", "progress_bar",
           "quiet_loading", "request_index", "run_log", "said_before", "timestamp", "told_once", "worker_logs"]

logger = logging.getLogger(__name__)

# the request of a batch whose inputs are being read: what is logged then is about that request alone
_REQUEST_INDEX: ContextVar[int | None] = ContextVar("worldpolicy_request_index", default=None)

# inside `quiet_loading(True)`: weights load without diffusers' progress bar (`engine.loading.load_components`)
_QUIET_LOADING: ContextVar[bool] = ContextVar("worldpolicy_quiet_loading", default=False)


@contextmanager
def quiet_loading(quiet: bool = True) -> Iterator[None]:
    """Weights loaded in the block (`engine.loading.load_components`) load without diffusers' "Loading pipeline
    components" bar, and what is fetched from the hub without its download bars (`hub.hub_bars_hidden`), when
    `quiet` (inside a quiet block, always); what the user had is restored as each load ends.
    Set here, where nothing heavy is imported: `cli.main` sets it for every command run with `--no-progress` or
    whose stderr is no terminal."""
    token = _QUIET_LOADING.set(quiet or _QUIET_LOADING.get())
    try:
        yield
    finally:
        _QUIET_LOADING.reset(token)


def loading_quietly() -> bool:
    """Whether `quiet_loading(True)` holds here."""
    return _QUIET_LOADING.get()


# Seconds between a progress bar's lines where stderr is no terminal (a log file, `nohup`, CI, a pipe): tqdm's own
# TQDM_MININTERVAL, where set, says another cadence
LOG_PROGRESS_INTERVAL = 30.0


def log_progress_interval() -> float:
    """The seconds between a progress bar's lines in a log: TQDM_MININTERVAL where set, else `LOG_PROGRESS_INTERVAL`.
    ValueError naming the variable for a value that is no number of seconds (>= 0): `cli.main` asks before the
    command runs, so a typo is said then, not at the first bar after the work began."""
    given = os.environ.get("TQDM_MININTERVAL")
    if given is None:
        return LOG_PROGRESS_INTERVAL
    try:
        seconds = float(given)
    except ValueError:
        seconds = math.nan
    if not seconds >= 0 or math.isinf(seconds):
        raise ValueError(f"TQDM_MININTERVAL={given!r}: expected the seconds between progress lines, a number >= 0 "
                         f"(e.g. 5), or leave it unset (every {LOG_PROGRESS_INTERVAL:g} s)")
    return seconds


def is_terminal(stream: Any) -> bool:
    """Whether `stream` is a terminal (a file, a pipe, a test's capture or a closed stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_as_lines(stream: Any = None) -> bool:
    """Whether progress on `stream` (stderr) is written as lines, not a bar redrawn in place: no terminal (a log file,
    `nohup`, CI, a pipe) and no notebook (a Jupyter kernel's stderr is no terminal, but draws tqdm's widget)."""
    from tqdm.autonotebook import tqdm as chosen

    return not is_terminal(stream or sys.stderr) and chosen.__module__ != "tqdm.notebook"


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm progress bar (`tqdm.auto.tqdm`'s arguments), the one every worldpolicy command draws, on stderr unless
    `file` says another stream. On a terminal (and in a notebook) it is tqdm's, redrawn in place. Anywhere else (a
    log, `nohup ... > log 2>&1`, CI, `| cat`) tqdm wrote every redraw after a carriage return, about one per step, and
    its bar in block characters: there each redraw is one line of ASCII, at most every `log_progress_interval()` seconds
    (however often the caller refreshes it), its first and last states always, and the last kept (`leave`: a line is
    never erased). `remaining`: a callable giving the seconds left (None: not known yet), shown instead of tqdm's
    estimate from its rate (`_estimated`)."""
    from tqdm.auto import tqdm

    stream = kwargs.pop("file", None) or sys.stderr
    remaining = kwargs.pop("remaining", None)
    if kwargs.get("disable") or not progress_as_lines(stream):
        return _estimated(tqdm, remaining)(iterable, file=stream, **kwargs)
    interval = log_progress_interval()
    # position 0: a bar under another moves the cursor up with escape codes, which a log keeps as they are
    kwargs.update(file=_Lines(stream), ascii=True, leave=True, position=0, mininterval=interval, maxinterval=interval)
    return _estimated(_log_bar(tqdm), remaining)(iterable, **kwargs)


def _estimated(tqdm: type, remaining: Callable[[], float | None] | None) -> type:
    """tqdm's class whose time left is `remaining()` (seconds; None: tqdm's own, from its rate) where the caller knows
    better than a rate over the items so far (`progress_bar(remaining=...)`: a sim run's recorded episodes are several
    times slower than those after them); the rate shown is then that of the items left."""
    if remaining is None:
        return tqdm

    class Estimated(tqdm):
        @property
        def format_dict(self) -> dict[str, Any]:
            shown = super().format_dict
            left, todo = remaining(), (shown.get("total") or 0) - shown["n"]
            if left is not None and left > 0 and todo > 0:
                shown["rate"] = todo / left
            return shown

    return Estimated


def _log_bar(tqdm: type) -> type:
    """tqdm's class whose `refresh` (`set_postfix`, a caller's own) redraws at most every `mininterval`, as `update`
    does, once it has drawn its first state, and which draws no state twice (closing just after the last redraw)."""

    class LogBar(tqdm):
        def refresh(self, *args: Any, **kwargs: Any) -> Any:
            now = self._time()
            if getattr(self, "_drawn", None) is not None and now - self.last_print_t < self.mininterval:
                return None
            self.last_print_t = now
            return super().refresh(*args, **kwargs)

        def display(self, msg: str | None = None, pos: int | None = None) -> Any:
            state = (self.n, self.total, self.postfix, self.desc)
            if msg is None and state == getattr(self, "_drawn", None):
                return True
            self._drawn = state
            return super().display(msg, pos)

    return LogBar


class _Lines:
    """A stream for `progress_bar` where stderr is no terminal: each of tqdm's redraws (`\\r` + text + padding) is
    written as one line, blank ones left out."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        for line in text.replace("\r", "\n").split("\n"):
            if line.strip():
                self._stream.write(line.rstrip() + "\n")

    def flush(self) -> None:
        self._stream.flush()


# A log line's time, level and logger before its message: a server's every line (`serving.logformat`), a command's
# warnings, errors and debug lines (`LineFormatter`)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The time a timed line starts with (`timestamp`): a training run's lines and progress lines, read days later
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def timestamp(seconds: float | None = None) -> str:
    """`seconds` (since the epoch; None: now) in local time as `TIME_FORMAT` says it."""
    return time.strftime(TIME_FORMAT, time.localtime(seconds))


class LineFormatter(logging.Formatter):
    """How a command's lines read (`cli.main`'s handler on stderr): its INFO lines, what it did (`wrote 2 episodes in
    0.4 s into d2`), as the message alone, as `sim` and `dream` print theirs (`dataset select` printed it after a
    timestamp, level and logger); warnings, errors and `-v`'s debug lines keep them (`TEXT_FORMAT`), as do other
    libraries' INFO lines (`-v` shows them: httpx's requests, named by their logger). `timed` (a training run, on
    stderr and in its `run_log`): its INFO lines start with the time too, and every line's time is `TIME_FORMAT`'s, as
    its progress lines', so a log read days later says when each thing happened."""

    def __init__(self, timed: bool = False) -> None:
        super().__init__(TEXT_FORMAT, datefmt=TIME_FORMAT if timed else None)
        self.timed = timed

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno == logging.INFO and not record.exc_info and record.name.partition(".")[0] == "worldpolicy":
            return f"{timestamp(record.created)} {record.getMessage()}" if self.timed else record.getMessage()
        return super().format(record)


class _RunLog(logging.Handler):
    """`run_log`'s handler, on the root logger: each record the command shows, formatted as `LineFormatter(timed)`
    says, and `line`s of the caller's own, appended to the file and flushed as each is logged (one write per line: a
    kill, a preemption, loses none written before it); until `start`, held instead (nothing written)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.setFormatter(LineFormatter(timed=True))
        self.path = path
        self._file: Any = None
        self._held: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.line(self.format(record))
        except (OSError, ValueError, TypeError):  # a full disk, a record whose arguments do not fit: said, not raised
            self.handleError(record)
        _as_if_not_collected(record)

    def line(self, text: str) -> None:
        """`text` (one line or more) as it is, a line of its own."""
        text = text.rstrip("\n") + "\n"
        with self.lock:
            if self._file is None:
                self._held.append(text)
            else:
                self._file.write(text)
                self._file.flush()

    def said(self, text: str) -> None:
        """`text`, a line of the caller's own, after the time now (`timestamp`), as the log's logged lines are timed:
        a session's start and end, a training run's progress, a sim run's episodes."""
        self.line(f"{timestamp()} {text}")

    def session_started(self, command: str, version: str | None) -> None:
        """A session's first line: who started it (`command`: the line as typed, or what ran it from Python), the
        process, the host, the worldpolicy `version` and the working directory."""
        self.said(f"session started: {command} (PID {os.getpid()} on {socket.gethostname()}, worldpolicy "
                  f"{version or 'unknown'}, in {os.getcwd()})")

    def session_stopped(self, stop: BaseException) -> None:
        """A session's last line when `stop` ended it: the signal of an interruption (Ctrl-C, a cluster's SIGTERM), a
        refusal (a setting, the data, a full disk: ValueError, OSError) as the command says it, anything else with
        its traceback."""
        from .fileio import how_stopped

        if isinstance(stop, KeyboardInterrupt):
            self.said(f"session stopped: {how_stopped(stop)}")
            return
        said = traceback.format_exception_only(stop) if isinstance(stop, (ValueError, OSError)) else \
            traceback.format_exception(stop)
        self.said("session stopped by an error: " + "".join(said).rstrip())

    def start(self) -> None:
        """Write to the file from here on, the lines held so far first; a last line a kill cut short (the file ends
        without a newline) is ended before them."""
        with self.lock:
            if self._file is not None:
                return
            torn = self.path.is_file() and self.path.stat().st_size > 0 and _last_byte(self.path) != b"\n"
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (held open: closed by `close`)
            self._file.write("\n" * torn + "".join(self._held))
            self._file.flush()
            self._held.clear()

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None
            self._held.clear()
        super().close()


@contextmanager
def run_log(path: str | os.PathLike[str], *, held: bool = False) -> Iterator[_RunLog]:
    """While the block runs, every line logged that reaches the root logger's handlers (what the command shows on
    stderr, at the levels `cli.main` set: its INFO lines, every warning) is appended to `path` too, timed
    (`LineFormatter(timed=True)`); the handler yielded writes lines of the caller's own (`_RunLog.said`, timed: a
    training run's progress lines, a sim run's episodes; `session_started`, `session_stopped`: a session's first and
    last lines, as every run's log says them). Appended across sessions (a resume adds to it), each line flushed as
    it is written; a last line cut short by a kill is ended before the first line of the next session. `held`:
    nothing is written until the caller calls the handler's `start` (once the folder is known to hold the caller's
    run: a training run's, a sim run's whose episodes are about to run), and what was logged before is written then;
    never, where the block ends before. A script that configured no logging still sees its warnings on stderr
    (`logging.lastResort`), as without the file."""
    handler = _RunLog(Path(path))
    if not held:
        handler.start()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        handler.close()


# What writing to a console whose reader is gone raises: a pipe's (`| head` that had its lines, a killed `| tee`: EPIPE,
# BrokenPipeError) or a terminal's that hung up (a `disown`ed run's, its ssh session closed: EIO)
_GONE = (errno.EPIPE, errno.ESHUTDOWN, errno.EIO)


@contextmanager
def console_may_close() -> Iterator[None]:
    """While the block runs, a console (stdout, stderr) found gone stops being written, and the block goes on: a long
    job (a training run) outlives the `| head`, `| tee` or ssh session showing it, where the first line written after
    raised BrokenPipeError out of a progress bar and stopped it, hours in, before its next checkpoint. The first write
    that finds the stream gone is said once, as a warning (which a run's log file, `run_log`, entered before, keeps);
    later ones are dropped, and the stream's descriptor points at os.devnull from then on (what the stream still
    held, and what is written after the block, a command's closing lines, cannot fail the exit either). `sys.stdout`,
    `sys.stderr` and the root logger's handlers writing to them write through the guard in the block, and are put
    back after. A short command is not inside it: its reader leaving ends it (`cli.main`, exit status 141)."""
    consoles = {name: _Console(getattr(sys, name), name) for name in ("stdout", "stderr")}
    by_stream = {id(console.stream): console for console in consoles.values()}
    handlers = [(h, by_stream[id(h.stream)]) for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and id(h.stream) in by_stream]
    for name, console in consoles.items():
        setattr(sys, name, console)
    for handler, console in handlers:
        with handler.lock:  # not `setStream`, which flushes the stream: one already gone would raise here
            handler.stream = console
    try:
        yield
    finally:
        for handler, console in handlers:
            if handler.stream is console:
                handler.setStream(console.stream)
        for name, console in consoles.items():
            if getattr(sys, name) is console:  # unless the block set another one
                setattr(sys, name, console.stream)


class _Console:
    """`console_may_close`'s stand-in for `sys.stdout` or `sys.stderr`: the stream's own, until it is found gone."""

    def __init__(self, stream: Any, name: str) -> None:
        self.stream = stream
        self.name = name
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except OSError as exc:
                if exc.errno not in _GONE:
                    raise
                self._lost(exc)
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except OSError as exc:
                if exc.errno not in _GONE:
                    raise
                self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        self.gone = True
        try:  # what the stream holds unwritten, and later writes past the block, go nowhere rather than fail again
            fd = self.stream.fileno()
        except (OSError, ValueError, AttributeError):  # no descriptor (a notebook's stream, a test's capture)
            fd = None
        if fd is not None:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, fd)
            os.close(null)
        logger.warning("the console's %s is gone (%s: its reader left, as `| head` that had its lines, a killed "
                       "`| tee` or a closed ssh session leave it): nothing more is shown there; the run goes on, its "
                       "log file keeping every line", self.name, exc.strerror or exc)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's
        return getattr(self.stream, name)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


# the servers' own log lines (connect, refused, batch_failed...) are about the server, not about a request
_NOT_COLLECTED = "worldpolicy.serving"


class request_index:
    """Mark what runs in the block as the work of request `index` of a batch (`Policy.act_batch` reading each
    request's inputs), so `logged_warnings` tells it to that request only. Inside a block already marked, the outer
    mark stands: a server running request 3 alone calls `Policy.act`, whose batch of one would otherwise call it
    request 0.

    A class rather than a `@contextmanager` generator: a server enters it for every request, and the generator's
    machinery (helper, generator, two `next` calls, StopIteration) was most of the warnings' per-request cost."""

    __slots__ = ("_index", "_token")

    def __init__(self, index: int) -> None:
        self._index = index
        self._token: Token[int | None] | None = None

    def __enter__(self) -> None:
        if _REQUEST_INDEX.get() is None:
            self._token = _REQUEST_INDEX.set(self._index)

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _REQUEST_INDEX.reset(self._token)
            self._token = None


# per request of the batch running, the record of the warnings its client was told (`told_once`)
_TOLD: ContextVar[Sequence[set[Any]] | None] = ContextVar("worldpolicy_told", default=None)


class told_once:
    """Mark what runs in the block as the work of requests whose clients each keep their own record of the warnings
    they were told (`told[i]`, request i's: a server's connection's), so a policy shared by many clients says each
    warning once per client (`said_before`), not once for whichever client made the mistake first. A class for the
    reason `request_index` is one: a server enters it for every batch."""

    __slots__ = ("_token", "_told")

    def __init__(self, told: Sequence[set[Any]] | None) -> None:
        self._told = told
        self._token: Token[Sequence[set[Any]] | None] | None = None

    def __enter__(self) -> None:
        self._token = _TOLD.set(self._told)

    def __exit__(self, *exc: object) -> None:
        _TOLD.reset(self._token)


def said_before(own: set[Any]) -> set[Any]:
    """The record a warning about the request being read is judged "said already" against, and noted in: its client's
    inside `told_once` (a request of a served batch, `request_index`), else `own` (the policy's: once per policy)."""
    told = _TOLD.get()
    if told is None:
        return own
    index = _REQUEST_INDEX.get()
    return told[index] if index is not None and 0 <= index < len(told) else own


class _Collect(logging.Handler):
    """The one collector, on the `worldpolicy` logger from the first `logged_warnings` on: what a thread logs while it
    collects goes to the lists its `logged_warnings` blocks hold (a context variable, so other threads' lines stay
    out). One handler for the process, not one per block: a server collects for every batch, and making, adding and
    removing a handler each time cost it about 1 % of its CPU per request."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        collecting = _COLLECTING.get()
        if collecting and not record.name.startswith(_NOT_COLLECTED):
            index, text = _REQUEST_INDEX.get(), record.getMessage()
            for said in collecting:
                for own in [said[index]] if index is not None and 0 <= index < len(said) else said:
                    if text not in own:
                        own.append(text)
        _as_if_not_collected(record)


# the lists of each `logged_warnings` block this thread is inside, innermost last
_COLLECTING: ContextVar[tuple[list[list[str]], ...]] = ContextVar("worldpolicy_collecting", default=())
_INSTALLED = threading.Lock()
_handler: _Collect | None = None


def _as_if_not_collected(record: logging.LogRecord) -> None:
    """What logging does with a record no handler takes (a script that configured none): print it on stderr through
    `logging.lastResort`. The collector or a run's log file (`run_log`) on the chain would otherwise count as a
    handler and silence it."""
    last = logging.lastResort
    if last is None or record.levelno < last.level or getattr(record, "_worldpolicy_last_resort", False):
        return
    node: logging.Logger | None = logging.getLogger(record.name)
    while node is not None:
        if any(not isinstance(h, (_Collect, _RunLog)) for h in node.handlers):
            return  # someone else shows it
        node = node.parent if node.propagate else None
    record._worldpolicy_last_resort = True  # once, however many collectors see it
    last.handle(record)


class logged_warnings:
    """One list per request: the WARNING (and worse) messages `worldpolicy` loggers log in this thread while the block
    runs, each once. A message logged inside `request_index(i)` belongs to request i; any other (a fused batch's
    shared work) to every request of the batch. Other threads' lines, and the servers' own event lines, are not
    collected. Collecting changes nothing about where the lines are shown.

    A class rather than a `@contextmanager` generator for the same reason as `request_index`: a server collects
    around every batch, and with no warnings logged this setup is all the collecting costs."""

    __slots__ = ("_said", "_token")

    def __init__(self, requests: int = 1) -> None:
        global _handler
        if _handler is None:
            with _INSTALLED:
                if _handler is None:
                    _handler = _Collect()
                    logging.getLogger("worldpolicy").addHandler(_handler)
        self._said: list[list[str]] = [[] for _ in range(requests)]
        self._token: Token[tuple[list[list[str]], ...]] | None = None

    def __enter__(self) -> list[list[str]]:
        self._token = _COLLECTING.set((*_COLLECTING.get(), self._said))
        return self._said

    def __exit__(self, *exc: object) -> None:
        _COLLECTING.reset(self._token)


class worker_logs:
    """The log of worker processes shown as this process shows its own: a worker (`log_to_parent`, its pool's
    initializer) sends its records over `queue`, and a thread here hands each to this process's logger of its name,
    so it is formatted and filtered as the command's own lines are (`cli`'s handler) rather than printed bare by the
    worker's `logging.lastResort`. What several workers say alike (each builds the same scene, the same policy) is
    shown once, as one process would say it; a worker saying it again is shown again. Started on entering the block;
    leaving it, once the pool's workers are done, shows what they sent last (after a failure, whose workers may have
    been killed mid-record, it waits a moment only)."""

    def __init__(self, context: Any) -> None:
        self.queue = context.Queue()
        # a worker logs at the levels this process logs at (`cli.main`'s -v): what it would not show is not sent
        self.levels = ((None, logging.getLogger().level), ("worldpolicy", logging.getLogger("worldpolicy").level))
        self._replay = _Replay()
        self._thread = threading.Thread(target=self._show, name="worldpolicy-worker-logs", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.queue.put(None)  # after every record the workers sent: they have exited
        self._thread.join(timeout=None if exc_type is None else 1.0)
        self.queue.close()

    def _show(self) -> None:
        while (record := self.queue.get()) is not None:
            self._replay.handle(record)


def log_to_parent(queue: Any, levels: Sequence[tuple[str | None, int]]) -> None:
    """In a worker process (its pool's initializer), send every record to the process that started it (`worker_logs`)
    at its levels, instead of this process's own handlers (none in a spawned process: lines printed bare)."""
    from logging.handlers import QueueHandler

    logging.getLogger().handlers[:] = [QueueHandler(queue)]
    for name, level in levels:
        logging.getLogger(name).setLevel(level)


class _Replay(logging.Handler):
    """`worker_logs`' handler: a worker's record to this process's logger of its name, unless another worker said
    the same (logger, level and message) before."""

    def __init__(self) -> None:
        super().__init__()
        self._said: dict[tuple[str, int, str], int | None] = {}  # what was said -> the worker that said it first

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, record.levelno, record.getMessage())
        if self._said.setdefault(key, record.process) == record.process:
            logging.getLogger(record.name).handle(record)
