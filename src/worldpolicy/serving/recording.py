"""What `PolicyServer(recorder=)` records of a served run, handed off the request path (`worldpolicy serve --record`).

The server only hands each answered exchange (the observation as the adapter produced it, the chunk the client
received, ids and timings) and each connection's end to a `Recorder`: a bounded count of pending records and one
writer thread that passes them, in order, to a `RecordSink`. What a sink writes is the sink's business: `serving` sits
below `data` (docs/architecture.md), so the LeRobot dataset writer is wired in by the CLI
(`worldpolicy.data.served.ServedRunDataset`), never imported here. The event loop never waits on a sink: past
`max_pending` records not yet written, a record is dropped and counted (`worldpolicy_records_dropped`); a connection's
end is never dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import is_integer
from ..results import MODES
from .server import _log, log_failure

__all__ = ["DEFAULT_MAX_PENDING", "Exchange", "RecordSink", "Recorder"]

DEFAULT_MAX_PENDING = 256  # records handed over and not yet written; each holds its request's arrays


@dataclass(frozen=True, slots=True)
class Exchange:
    """One answered policy request: what the robot sent (as `ObservationAdapter.parse` made it) and what it got."""

    conn: int  # the server's connection number, as its `connect` log line names it
    request_id: int  # the connection's request number, from 0 (dropped ones count: a gap shows a drop)
    prompt: str
    observation: Any  # {camera or state key: array} or one pre-composed image array
    state: np.ndarray | None  # the request's explicit `state` row, when it sent one
    actions: np.ndarray  # the chunk the client received [chunk, action_dim]
    prefix_rows: int  # its first rows that are the request's `action_prefix` (real-time chunking), the policy's reply
    # saying it continued them (`settings["action_prefix_rows"]`); 0: none, or one the policy ignored
    received: float  # time.time() when the request arrived
    queue_ms: float
    infer_ms: float
    total_ms: float  # decode to reply sent
    batch_size: int


class RecordSink(Protocol):
    """Where a `Recorder`'s writer thread puts the records, one call at a time, in the order they were handed over."""

    def exchange(self, record: Exchange) -> None: ...

    def end(self, conn: int, error: str | None) -> None:
        """Connection `conn` closed; `error`: what it was refused with, if it ended on an error."""

    def close(self) -> None:
        """The server stopped: finish every connection still open and finalise what was written."""


@dataclass(frozen=True, slots=True)
class _End:
    conn: int
    error: str | None


class Recorder:
    """The hand-off: `record`/`refused`/`end` on the event loop (a dict update and a non-blocking put), the sink on one
    thread of its own (`start`, `close`). A sink that raises is logged once and recording stops; serving goes on.
    `dropped` counts the records dropped so far; `on_drop` (no arguments, called on the loop at each drop) feeds the
    server's metric. `destination`: where the sink writes (`--record DIR`), which the `recording` line names."""

    def __init__(self, sink: RecordSink, max_pending: int = DEFAULT_MAX_PENDING,
                 destination: str | None = None) -> None:
        if not is_integer(max_pending) or max_pending < 1:
            raise ValueError(f"max_pending={max_pending!r} must be an int >= 1")
        self.sink, self.max_pending, self.destination = sink, max_pending, destination
        self.dropped = 0
        self.on_drop: Callable[[], None] | None = None
        self._slots = threading.BoundedSemaphore(max_pending)
        self._queue: queue.SimpleQueue[Exchange | _End | None] = queue.SimpleQueue()
        self._next_id: dict[int, int] = {}  # per open connection: its next request number (event loop only)
        self._errors: dict[int, str] = {}  # per connection: the refusal it ended with (event loop only)
        self._failed = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread (once the server listens), and say what is recorded: a client of forward or inverse
        dynamics would otherwise find its requests missing from the recording with nothing having told it."""
        self._thread = threading.Thread(target=self._write, name="worldpolicy-record", daemon=True)
        self._thread.start()
        unrecorded = " and ".join(mode for mode in MODES if mode != "policy")
        where = {} if self.destination is None else {"dir": self.destination}
        _log(logging.INFO, "recording", **where, records="mode policy requests (act)",
             detail=f"mode {unrecorded} requests (imagine, infer_actions) are served, not recorded")

    def record(self, conn: int, **fields: Any) -> bool:
        """Hand one exchange over (`Exchange`'s fields but its ids); False when it was dropped."""
        request_id = self._next_id.get(conn, 0)
        self._next_id[conn] = request_id + 1
        if self._failed or not self._slots.acquire(blocking=False):
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            if _said_at(self.dropped):
                _log(logging.WARNING, "record_dropped", dropped=self.dropped, max_pending=self.max_pending,
                     detail="the record writer fell behind (or failed): this exchange was served, not recorded")
            return False
        self._queue.put(Exchange(conn, request_id, **fields))
        return True

    def refused(self, conn: int, text: str) -> None:
        """The refusal connection `conn` is closed with, for its episode's `error`."""
        self._errors[conn] = text

    def end(self, conn: int) -> None:
        self._next_id.pop(conn, None)
        self._queue.put(_End(conn, self._errors.pop(conn, None)))

    def close(self) -> None:
        """Blocking: write what is queued, then `sink.close()`, and end the thread (called once serving stopped).
        Once per recorder: a recorder never started closes its sink at once; a closed one does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            self.sink.close()
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None
        if self.dropped:
            _log(logging.WARNING, "record_dropped", dropped=self.dropped, max_pending=self.max_pending,
                 detail="exchanges served but not recorded in this run")

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, Exchange):
                self._slots.release()
            if self._failed:
                continue
            try:
                if isinstance(item, Exchange):
                    self.sink.exchange(item)
                else:
                    self.sink.end(item.conn, item.error)
            except Exception as exc:  # noqa: BLE001 - a full disk must not stop serving: logged, recording stops
                self._fail(exc)
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001 - logged; the server still stops
            self._fail(exc)

    def _fail(self, error: BaseException) -> None:
        self._failed = True
        log_failure("record_failed", error, detail="recording stopped; serving goes on")


def _said_at(count: int) -> bool:
    """Drops are logged at the 1st, 10th, 100th... (and their total at stop): an overload does not flood the log."""
    return count == 10 ** (len(str(count)) - 1)
