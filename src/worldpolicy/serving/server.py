"""openpi-wire WebSocket policy server with cross-connection dynamic batching (facts: wire-protocol.md §1-4, §9).

The wire is kept byte for byte: a metadata frame on connect, one reply per request, errors as one text frame then
close 1011. Unlike the reference server, inference runs in a worker thread (so `/healthz`, handshakes and keepalive
pings never stall), requests from all connections are batched (`max_batch`, `max_wait_ms`) into one
`policy.act_batch` call, the queue is bounded (`max_queue`, then a "busy" error with close 1013), messages are bounded
(`Limits`), tracebacks stay in the server log, and an optional API key is checked at the handshake.
"""

from __future__ import annotations

import asyncio
import ctypes
import hmac
import http
import importlib.util
import ipaddress
import itertools
import logging
import os
import platform
import queue
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from .. import __version__
from ..errors import is_integer, is_real
from ..extras import extra_imports
from ..fileio import STOP_PRIORITY

with extra_imports():
    import websockets
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.frames import CloseCode
    from websockets.http11 import Request, Response
    from websockets.protocol import State
    from websockets.version import version as websockets_version

from ..logcapture import logged_warnings, request_index, told_once
from ..models import checkpoint_name
from ..results import Prediction
from .adapters import ObservationAdapter, RequestError, WireRequest, all_float32, warmup_camera_sizes, warmup_message
from .codec import DEFAULT_LIMITS, CodecError, Limits, packb, unpackb
from .logformat import Event
from .redaction import redact_credentials
from .tls import EXPIRY_WARNING_DAYS, ServingCertificate, TlsPair, utc_text

if TYPE_CHECKING:
    from .recording import Recorder

__all__ = [
    "DRAINING_TEXT",
    "EVENT_LOOPS",
    "IncomingBudget",
    "PolicyServer",
    "RefusalLog",
    "ServerConfig",
    "ServerThread",
    "UnusableLog",
    "announce_listening",
    "api_key_matches",
    "authorized",
    "checked_api_key",
    "client_agent",
    "close_policy",
    "error_text",
    "event_loop_factory",
    "failure_status",
    "first_request_warnings",
    "keep_freed_memory",
    "log_failure",
    "peer_name",
    "reply_fields",
    "request_metrics",
    "room_for_connections",
    "run_batch",
    "served_labels",
    "server_metadata",
    "slowest_ms",
    "state_metrics",
    "stuck_text",
    "timed_out_text",
    "tls_expiry_metric",
    "unavailable_text",
    "warm_up",
    "warn_if_open",
]

logger = logging.getLogger("worldpolicy.serving")
redact_credentials("websockets.server")  # the handshake's Authorization header, at DEBUG
EVENT_LOOPS = ("auto", "asyncio", "uvloop")  # auto: uvloop when installed
_SCHEMES = ("api-key", "bearer")  # openpi clients send `Api-Key <key>`, RoboLab's transport `Bearer <key>`


def _log(level: int, event: str, **fields: Any) -> None:
    """One JSON object per log line: easy to grep by eye, trivial to ship to a log pipeline. An `Event` message, so
    `--log-format json` writes its fields as the line's own keys; nothing is serialized for a level that is off, nor
    before a handler formats the record."""
    if logger.isEnabledFor(level):
        logger.log(level, Event({"event": event, **fields}))


REFUSAL_SUMMARY_S = 10.0  # a refused kind that repeats: one summary line per this many seconds


class RefusalLog:
    """The `refused` and `auth_refused` WARNING lines of one front end, so an overload does not flood the log: the
    first refusal of a kind (event and metrics status) is logged in full, and the ones after it within `every_s`
    seconds only counted, then said as one `refused_summary` line (`of`, `status`, `count`, `seconds`); a window that
    counted some opens the next one, a quiet one ends, so the next refusal of that kind is logged in full again.
    /metrics still counts every refusal. A refusal the server caused (`error`) is logged each time: each comes with a
    failure line of its own (`policy_failed`, `replica_failed`...) that names the connection; unless that failure line
    is itself windowed (`UnusableLog`), and the refusal with it (`windowed`).

    Called on the event loop (the windows close with its `call_later`, or `call_later` given); `flush()` says what
    the open windows hold, at the drain, before the loop and its timers stop."""

    def __init__(self, every_s: float = REFUSAL_SUMMARY_S,
                 call_later: Callable[[float, Callable[[], None]], Any] | None = None) -> None:
        self.every_s = every_s
        self._call_later = call_later
        # (event, status) in a quiet window -> [refusals counted in it, its start on the monotonic clock, its timer]
        self._windows: dict[tuple[str, str], list[Any]] = {}

    def __call__(self, event: str, status: str, windowed: bool = False, **fields: Any) -> None:
        """`windowed`: an `error` too is windowed (one whose failure line is itself windowed: `UnusableLog`)."""
        if not logger.isEnabledFor(logging.WARNING):
            return
        if status == "error" and not windowed:
            _log(logging.WARNING, event, status=status, **fields)
            return
        window = self._windows.get((event, status))
        if window is not None:
            window[0] += 1
            return
        _log(logging.WARNING, event, status=status, **fields)
        self._open((event, status))

    def _open(self, key: tuple[str, str]) -> None:
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._windows[key] = [0, time.monotonic(), call_later(self.every_s, lambda: self._close(key))]

    def _close(self, key: tuple[str, str]) -> None:
        if self._said(key):
            self._open(key)

    def _said(self, key: tuple[str, str]) -> bool:
        """End `key`'s window, logging its summary if it counted any; whether it did."""
        count, started, _ = self._windows.pop(key)
        if count:
            _log(logging.WARNING, "refused_summary", of=key[0], status=key[1], count=count,
                 seconds=round(time.monotonic() - started, 3))
        return count > 0

    def flush(self) -> None:
        for key, (_, _, timer) in list(self._windows.items()):
            timer.cancel()
            self._said(key)


class UnusableLog:
    """The `reply_failed` ERROR lines of one front end for a policy result it could not answer with. One no robot
    should run (`reply_fields`' ValueError: NaN or inf actions, a wrong width): one line per kind (its text) per
    `every_s` seconds, without a traceback (the same check each time); `repeated`: how many of that kind came since
    its last line. A model that returns NaN for every request, or a client that found an input making it, wrote a
    traceback per request. Any other failure (not a Prediction) is logged each time, with its traceback."""

    _KINDS = 64  # texts remembered; past it they are forgotten (a model whose every reply fails differently)

    def __init__(self, every_s: float = REFUSAL_SUMMARY_S) -> None:
        self.every_s = every_s
        self._seen: dict[str, list[float]] = {}  # text -> [its last line on the monotonic clock, requests since]

    def __call__(self, error: BaseException, **fields: Any) -> bool:
        """Log `error`; True where it is a result no robot should run, its line windowed."""
        if not isinstance(error, ValueError):
            log_failure("reply_failed", error, **fields)
            return False
        text, now = f"{type(error).__name__}: {error}"[:300], time.monotonic()
        if len(self._seen) >= self._KINDS and text not in self._seen:
            self._seen.clear()
        seen = self._seen.setdefault(text, [-float("inf"), 0])
        if now - seen[0] < self.every_s:
            seen[1] += 1
            return True
        _log(logging.ERROR, "reply_failed", **fields, error=text, repeated=int(seen[1]))
        seen[0], seen[1] = now, 0
        return True

    def refusal(self, error: BaseException, **fields: Any) -> tuple[str, bool]:
        """Log `error` (`__call__`) and say what its client is told (close 1011, counted `error`), and whether its
        `refused` line is windowed with the `reply_failed` one (`RefusalLog`'s `windowed`): both front ends."""
        return f"internal server error: unusable policy result ({error})", self(error, **fields)


class IncomingBudget:
    """`max_incoming_bytes` of one front end: the bytes of requests it holds, over all connections, before it has
    answered them, counted by `add` (a negative size: freed). The single server counts a message from its first
    byte (websockets' fragments so far and the partial frame in its reader: `PolicyServer._received`) until it is
    whole; the Ray router, whose proxy hands it whole messages, a frame from when it reads it until it is answered.
    `over()`: the text of the `busy` refusal (close 1013) of the connection whose bytes went over, None while they
    fit."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def add(self, size: int) -> None:
        self.held += size

    def over(self) -> str | None:
        if self.held <= self.limit:
            return None
        return (f"server busy: {self.held} bytes of requests held over all connections, past max_incoming_bytes="
                f"{self.limit}; retry later or on another replica")


# the size so far of a fragmented message being received, on websockets' Protocol: `current_size` from websockets 16
# on, `cur_size` before (the serve extra accepts 13 and later)
_MESSAGE_SIZE_SO_FAR = "current_size" if int(websockets_version.split(".")[0]) >= 16 else "cur_size"


DRAINING_TEXT = "server is shutting down; reconnect to another replica"  # a request that arrives while draining


def stuck_text(size: int, seconds: float, limit: float, number: int | None = None) -> str:
    """A batch past `batch_timeout_s`, in the words of /readyz, /livez, the log and the texts below (both front
    ends)."""
    which = f"batch {number} ({size} requests)" if number is not None else f"a batch of {size} requests"
    return f"stuck: {which} has been inside the policy for {seconds:.1f} s, past batch_timeout_s={limit:g}"


def timed_out_text(stuck: str) -> str:
    """What a client of the stuck batch is told (close 1011): its request reached the policy, no answer came."""
    return f"server error: the policy did not answer in time ({stuck}; a wedged GPU or a deadlock?); retry on " \
           "another replica"


def unavailable_text(stuck: str) -> str:
    """What a request that would wait behind the stuck batch is told (close 1013): it never reached the policy."""
    return f"server unavailable: {stuck}; retry on another replica"


def slowest_ms(ms: float | None) -> float | None:
    """The `disconnect` line's `slowest_ms` (both front ends): the server time of the connection's slowest answered
    request, None when it answered none."""
    return None if ms is None else round(ms, 2)  # as the `reply` lines' `ms`


def peer_name(address: Any) -> str | None:
    """A client's address as `host:port` in the log lines (`connect`, `refused`, `vanished`, `disconnect`, and
    `auth_refused`), the same on both front ends, so an operator serving several robots can tell which one it was."""
    if isinstance(address, (tuple, list)) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return None if address is None else str(address)


CLIENT_CHARS = 120  # of a client's User-Agent, what a `connect` line keeps


def client_agent(values: Sequence[str]) -> str | None:
    """The `connect` line's `client` (both front ends): the client's User-Agent header (its values, from a handshake's
    headers), so robots on one host are told apart by more than their port: websockets' clients send
    `Python/3.x websockets/N` (openpi's too), and `RemotePolicy(client_name="arm-3")` appends its name. At most
    `CLIENT_CHARS` characters of it, `...` saying more were cut, control characters escaped (`\\t`, `\\x85`): a
    header is the client's text. None where it sends none."""
    if not values:
        return None
    text = ", ".join(values)
    kept = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text[:CLIENT_CHARS])
    return kept + ("..." if len(text) > CLIENT_CHARS else "")


def log_failure(event: str, error: BaseException, **fields: Any) -> None:
    """An unexpected failure, still one JSON object: the traceback is a field, not lines of its own."""
    text, trace = f"{type(error).__name__}: {error}", "".join(traceback.format_exception(error))
    _log(logging.ERROR, event, **fields, error=text, traceback=trace)


def api_key_matches(authorization: str | None, api_key: str) -> bool:
    """`Authorization: Api-Key <key>` (or `Bearer <key>`) against the server's key, in constant time."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    # compare_digest takes the same time wherever the strings differ: no guessing the key byte by byte from timings
    ok = hmac.compare_digest(given.strip().encode(), api_key.encode())
    return ok and scheme.lower() in _SCHEMES


def checked_api_key(key: str | None, name: str) -> str | None:
    """The key without surrounding whitespace (a key read from a file or a Kubernetes secret often ends in a newline,
    which no client sends); ValueError naming `name` for a key no client could send (control characters cannot be
    in an HTTP header; inner spaces can, the header is split at its first space)."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ValueError(f"{name} must be a string, got {type(key).__name__}")
    key = key.strip()
    if len(key) < 8:
        raise ValueError(f"{name} has {len(key)} characters; use at least 8 (surrounding whitespace does not count)")
    if any(not c.isprintable() for c in key):
        raise ValueError(f"{name} contains a control character (newline, tab...); accepted: >= 8 printable characters")
    return key


def warn_if_open(host: str, api_key: str | None, tls: bool = False) -> None:
    """Log once at startup when a server listens beyond this machine (the default host, 0.0.0.0, as openpi's server:
    the robot's computer is usually another machine) without a key: anyone who reaches the port can run the policy and
    read /metrics; or with a key but without TLS: the key and the observations cross the network in clear text. Not
    refused, since a trusted robot network, or TLS ended at a proxy in front, is common; said, so it is a choice."""
    try:
        local = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        local = host == "localhost"
    if local:
        return
    if api_key is None:
        _log(logging.WARNING, "unauthenticated", host=host or "0.0.0.0",
             detail="every client that reaches this address may run the policy; set --api-key-env (ServerConfig("
             "api_key=)) or listen on 127.0.0.1")
    elif not tls:
        _log(logging.WARNING, "key_in_clear", host=host or "0.0.0.0",
             detail="no TLS: the API key and the observations cross the network in clear text (ws://, http://); "
             "give --tls-cert and --tls-key (ServerConfig(tls_cert=, tls_key=)) to serve wss:// and https://, or "
             "leave it as it is where a proxy in front ends TLS for this server")


def authorized(headers: list[str], api_key: str | None) -> bool:
    """A request's `Authorization` headers against the server's key (None: open): exactly one, and it matches."""
    return api_key is None or (len(headers) == 1 and api_key_matches(headers[0], api_key))


def tls_expiry_metric(registry: CollectorRegistry, not_after: Callable[[], float]) -> None:
    """`worldpolicy_tls_cert_expiry_timestamp_seconds`, read at scrape time from `not_after()`, on both front ends: an
    alert on renewal that does not depend on anyone reading the log."""
    expiry = Gauge("worldpolicy_tls_cert_expiry_timestamp_seconds", "When the served TLS certificate expires (Unix "
                   "time; the renewed one after a reload)", registry=registry)
    expiry.set_function(not_after)


_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def request_metrics(registry: CollectorRegistry, latency_help: str) -> tuple[Counter, Histogram]:
    """Requests by outcome and their latency, under the same names on the single server and the Ray ingress, and the
    process's own `process_*` (resident memory, CPU seconds, open files against their limit, start time: a restart),
    which a registry of its own leaves out unless asked, as prometheus_client's default registry has them."""
    ProcessCollector(registry=registry)
    requests = Counter("worldpolicy_requests", "Requests by outcome", ["status"], registry=registry)
    latency = Histogram(
        "worldpolicy_request_latency_seconds", latency_help, buckets=_SECONDS_BUCKETS, registry=registry
    )
    return requests, latency


def state_metrics(registry: CollectorRegistry) -> tuple[Gauge, Gauge, Gauge]:
    """Open connections, readiness, and which model is served (`worldpolicy_server_info`, its labels from
    `served_labels`), under the same names on the single server and the Ray ingress: one dashboard for both."""
    connections = Gauge("worldpolicy_connections", "Open WebSocket connections", registry=registry)
    ready = Gauge("worldpolicy_ready", "1 once the model is loaded and warm", registry=registry)
    # which model a server serves, on a dashboard beside its numbers (Prometheus' `_info` convention: value 1)
    info = Gauge("worldpolicy_server_info", "What this server serves (labels; value 1)",
                 ["version", "model", "embodiment"], registry=registry)
    return connections, ready, info


def served_labels(metadata: Mapping[str, Any]) -> tuple[str, str, str]:
    """`worldpolicy_server_info`'s labels (version, model, embodiment) from the metadata frame; "" for one it lacks."""
    return tuple(value if isinstance(value := metadata.get(key), str) else ""  # type: ignore[return-value]
                 for key in ("server_version", "model", "embodiment"))


@dataclass(frozen=True)
class ServerConfig:
    """Network, batching and safety settings of one server (`port=0` picks a free port)."""

    host: str = "0.0.0.0"
    port: int = 8000
    api_key: str | None = field(default=None, repr=False)  # out of a repr (a notebook, a log), as RemotePolicy's
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 64
    # open WebSocket connections at once; past it, handshakes get HTTP 503 (probes still answer). A client that leaks
    # connections (reconnects without closing) would otherwise run the process out of file descriptors, after which
    # nothing, /healthz included, is accepted. The same default as the Ray ingress's `max_connections`
    max_connections: int = 1024
    limits: Limits = DEFAULT_LIMITS
    drain_timeout_s: float = 30.0
    event_loop: str = "auto"  # one of EVENT_LOOPS; see `event_loop_factory`
    # a policy call running longer than this is taken for wedged (GPU hang, deadlock): /readyz and /livez turn 503 and
    # its waiting clients get an error. None: no limit. Off by default: no single figure fits every model and device (a
    # Cosmos3-Nano batch takes ~1 s a request on a GPU, far more on a CPU, ~40 s more when a new shape compiles)
    batch_timeout_s: float | None = None
    # a request message must arrive whole within this many seconds of its first byte, else close 1008: websockets
    # bounds a message's size (`limits.max_message_bytes`), not its time, and a client that sends the start of one and
    # then only answers pings held its bytes for good. None: no limit
    message_timeout_s: float | None = 60.0
    # the bytes of request messages still arriving, across all connections: past it, the connection whose bytes went
    # over closes with 1013. max_connections x max_message_bytes (64 GiB at the defaults) bounds nothing in practice
    max_incoming_bytes: int = 2**30
    # TLS: a PEM certificate (chain) and its private key, both or neither; with them the server speaks wss:// and
    # https:// (the probes and /metrics too) on its one port. Loaded here, so a bad file fails before any model loads
    tls_cert: str | os.PathLike | None = None
    tls_key: str | os.PathLike | None = None
    certificate: ServingCertificate | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "api_key", checked_api_key(self.api_key, "ServerConfig.api_key"))
        for name, value in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            if not (value is None or isinstance(value, (str, os.PathLike)) and str(value)):
                raise ValueError(f"ServerConfig.{name}={value!r} is invalid; accepted: None or the path of a PEM file")
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(f"ServerConfig.{given}={getattr(self, given)!r} needs ServerConfig.{missing}: give both "
                             "(a PEM certificate and its private key) or neither (plain ws://)")
        if self.tls_cert is not None:
            object.__setattr__(self, "certificate", ServingCertificate(self.tls_cert, self.tls_key))
        if self.event_loop not in EVENT_LOOPS:
            accepted = ", ".join(EVENT_LOOPS)
            raise ValueError(f"ServerConfig.event_loop={self.event_loop!r} is invalid; accepted: {accepted}")
        if self.event_loop == "uvloop" and not _have_uvloop():
            raise ValueError(
                "ServerConfig.event_loop='uvloop' but uvloop is not installed; pip install uvloop (Linux/macOS), "
                "or use event_loop='auto' (uvloop when installed, else asyncio's own loop)"
            )
        # type first, then range (a string or None compared with a number raised TypeError naming no field; True
        # passed as an int)
        checks = [
            ("host", self.host, isinstance(self.host, str), "a str (an address or name; '0.0.0.0': all interfaces)"),
            ("port", self.port, is_integer(self.port) and 0 <= self.port <= 65535, "an int in [0, 65535]"),
            ("max_batch", self.max_batch, is_integer(self.max_batch) and self.max_batch >= 1, "an int >= 1"),
            ("max_wait_ms", self.max_wait_ms, is_real(self.max_wait_ms) and 0 <= self.max_wait_ms <= 10_000,
             "a number in [0, 10000]"),
            ("max_queue", self.max_queue, is_integer(self.max_queue) and self.max_queue >= 1, "an int >= 1"),
            ("max_connections", self.max_connections, is_integer(self.max_connections) and self.max_connections >= 1,
             "an int >= 1"),
            ("limits", self.limits, isinstance(self.limits, Limits), "a worldpolicy.serving.Limits"),
            ("drain_timeout_s", self.drain_timeout_s,  # inf: wait for every request however long
             is_real(self.drain_timeout_s, finite=False) and self.drain_timeout_s >= 0,
             "a number >= 0"),
            ("batch_timeout_s", self.batch_timeout_s, self.batch_timeout_s is None or (
                is_real(self.batch_timeout_s) and self.batch_timeout_s > 0),
             "None (no limit) or a finite number of seconds > 0"),
            ("message_timeout_s", self.message_timeout_s, self.message_timeout_s is None or (
                is_real(self.message_timeout_s) and self.message_timeout_s > 0),
             "None (no limit) or a finite number of seconds > 0"),
            ("max_incoming_bytes", self.max_incoming_bytes, is_integer(self.max_incoming_bytes) and (
                not isinstance(self.limits, Limits) or self.max_incoming_bytes >= self.limits.max_message_bytes),
             "an int >= limits.max_message_bytes (one whole message must fit)"),
        ]
        for name, value, ok, accepted in checks:
            if not ok:
                raise ValueError(f"ServerConfig.{name}={value!r} is invalid; accepted: {accepted}")

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """What the server listens with: None without TLS."""
        return None if self.certificate is None else self.certificate.context


def _have_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory for `asyncio.Runner`: uvloop for 'uvloop', and for 'auto' when it is installed (its loop and
    transports are C: ~6 % off a DROID request's round trip, docs/serving.md); None is asyncio's own loop."""
    if choice == "asyncio" or (choice == "auto" and not _have_uvloop()):
        return None
    import uvloop

    return uvloop.new_event_loop


def server_metadata(policy: Any, config: ServerConfig, key_map: Mapping[str, str] | None = None,
                    adapter: ObservationAdapter | None = None) -> tuple[dict[str, Any], ObservationAdapter]:
    """The whole metadata frame, and the adapter that reads requests as it announces: the policy's own metadata plus
    embodiment, chunk, columns, the keys read (`observation_keys`, the adapter's, and its `key_map`) and server
    identity; the model by its portable name (`checkpoint_name`). `policy.metadata()` is asked once (a relayed
    `RemotePolicy` answers it from its server). `chunk_size` is the chunk the policy samples: its own metadata's where
    it says (a checkpoint trained to another length than its embodiment's), else its embodiment's; what clients and
    the adapter bound by. `adapter`: the one given to a `PolicyServer`, else one for the policy's embodiment under
    `key_map`, bounded by that chunk."""
    e = policy.embodiment
    own = policy.metadata() if hasattr(policy, "metadata") else {}
    meta: dict[str, Any] = {
        "embodiment": e.key,
        "domain": e.domain,
        "action_dim": e.action_dim,
        "execute_steps": e.execute_steps,  # actions to run before asking again (None: the whole chunk)
        "fps": e.fps,
        "columns": list(e.columns),
        "units": list(e.units),
        "camera_keys": list(e.camera_keys),
        "state_keys": dict(e.state_keys),
    }
    meta.update(own)  # the policy knows its model and version best
    meta["chunk_size"] = int(own["chunk_size"]) if own.get("chunk_size") is not None else e.chunk_size
    if isinstance(meta.get("model"), str):
        meta["model"] = checkpoint_name(meta["model"])  # the checkpoint's name, not where this machine keeps it
    meta["gripper"] = e.gripper_convention()  # the spec's gripper_flip is undone already: 0 open .. 1 closed
    meta["embodiment_spec"] = e.to_dict()  # clients decode with it even where this embodiment is not registered
    if adapter is None:
        adapter = ObservationAdapter(e, key_map, chunk_size=meta["chunk_size"])
    meta.update(
        observation_keys=adapter.observation_keys,
        # canonical key -> the client's, as `--key-map` renames them ({}: none): the keys above (camera_keys,
        # state_keys, trained_frames, expected_frames) name the canonical ones, which a client translates with it
        key_map=dict(adapter.key_map),
        server="worldpolicy",
        server_version=__version__,
        max_batch=config.max_batch,
        max_message_bytes=config.limits.max_message_bytes,
    )
    return _wire_safe(meta), adapter


def _wire_safe(value: Any) -> Any:
    """Keep only what msgpack carries natively (metadata/settings may hold paths, dtypes, tensors...)."""
    if isinstance(value, dict):
        return {str(k): _wire_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_wire_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.ndarray, np.generic)):
        return value
    return str(value)


class _Metrics:
    """Prometheus metrics of one server (own registry, so several servers can live in one process)."""

    def __init__(self, queue_depth: Callable[[], int], batch_running: Callable[[], float],
                 recording: bool = False, certificate: ServingCertificate | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.requests, self.latency = request_metrics(r, "Server time per request (decode to reply)")
        self.inference = Histogram(
            "worldpolicy_batch_inference_seconds", "Policy time per batch", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.batch_size = Histogram(
            "worldpolicy_batch_size", "Requests per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.queue_wait = Histogram(
            "worldpolicy_queue_wait_seconds", "Per request, from its arrival to the start of its batch (a reply's "
            "queue_ms)", buckets=_SECONDS_BUCKETS, registry=r
        )
        self.connections, self.ready, self.info = state_metrics(r)
        self.queue_depth = Gauge("worldpolicy_queue_depth", "Requests waiting for a batch", registry=r)
        self.queue_depth.set_function(queue_depth)
        self.batch_running = Gauge(
            "worldpolicy_batch_running_seconds", "How long the policy call in progress has run (0: idle)", registry=r
        )
        self.batch_running.set_function(batch_running)  # read at scrape time: nothing on the request path
        self.ok = self.requests.labels("ok")  # the per-request label lookup, done once
        if certificate is not None:  # only a TLS server has a certificate to renew in time
            tls_expiry_metric(r, lambda: certificate.current.not_after)
        if recording:  # only a recording server has records to drop
            self.records_dropped = Counter(
                "worldpolicy_records_dropped", "Exchanges served but not recorded: the record writer fell behind "
                "(--record)", registry=r)


@dataclass(eq=False, slots=True)
class _Job:
    """One admitted request. `future` (a Prediction, the exception, or a `_Refusal` from the watchdog) is only touched
    on the event loop; the worker thread reads `skip` to pass over requests whose client is gone or that the watchdog
    already answered."""

    request: WireRequest
    future: asyncio.Future
    enqueued: float
    conn: int  # its connection's number, which the log lines about it carry
    told: set[Any]  # the warnings its connection's client was told already (`told_once`): each is told once a client
    started: float = 0.0
    finished: float = 0.0
    batch_size: int = 0
    warnings: Sequence[str] = ()  # what the policy logged about this request, for its reply (no list made per request)
    # its connection's first request only: the keys nothing read (`unread_keys_warning`), camera slots read from one key
    said_first: Sequence[str] = ()
    skip: bool = False


_READ_BUFFER_BYTES = 256 * 1024  # what uvloop reads at most per call into its own buffer


class _ReadInto(asyncio.BufferedProtocol):
    """Stands in front of one websockets connection as the transport's protocol, on uvloop: the loop reads into the
    server's buffer, and the connection takes the bytes from there. Otherwise uvloop reads into a buffer of its own and
    copies each read into a new bytes object for `data_received`: a copy of each request frame that websockets'
    reader, which copies what it is fed into its own buffer at once, does not need (0.45 MB per three-camera DROID
    request; docs/serving.md, "Measured"). asyncio's own loop receives straight into a new bytes object, with no such
    copy, so it is left as it is.

    One buffer per server: its loop runs one read callback at a time, and each is fed on before the next read."""

    __slots__ = ("_buffer", "_connection")

    def __init__(self, connection: ServerConnection, buffer: memoryview) -> None:
        self._connection, self._buffer = connection, buffer

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self._connection.data_received(self._buffer[:nbytes])

    def eof_received(self) -> bool | None:
        return self._connection.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.connection_lost(exc)

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()


def _connection_class(server: PolicyServer, buffer: memoryview | None) -> type[ServerConnection]:
    """The `create_connection` of `websockets.serve`: a ServerConnection that tells `server` how many bytes of a
    request message it holds after each read (`PolicyServer._received`), and with a `buffer` (uvloop), reads through
    `_ReadInto` once connected (uvloop only reads into a buffer for a protocol that is not an `asyncio.Protocol`,
    which websockets' connections are)."""

    class Connection(ServerConnection):
        incoming = 0  # bytes of a request message that is still arriving (0: none)
        started = 0.0  # the loop's time at that message's first byte
        # the armed `_too_slow` timer, left armed across messages: at or before the current message's deadline
        deadline: asyncio.TimerHandle | None = None
        conn: int | None = None  # the connection's number in the log lines, once its handler runs

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            if buffer is not None:
                transport.set_protocol(_ReadInto(self, buffer))

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            server._received(self)

        def connection_lost(self, exc: Exception | None) -> None:
            server._incoming_over(self)
            super().connection_lost(exc)

    return Connection


class _Refusal(Exception):
    """A request refused with a close code: (text shown to the client, close code, metrics status)."""

    def __init__(self, text: str, code: int, status: str) -> None:
        super().__init__(text)
        self.code, self.status = code, status


@dataclass
class PolicyServer:
    """Serves `policy` (or the policy `loader()` returns, loaded in the worker thread) on the openpi wire.

    `policy` needs `.embodiment`, `act(observation, prompt, **options)`, and optionally `imagine`, `infer_actions`,
    `act_batch(list)` (called with the requests of one batch), `metadata()` and `close()`.

    `close_on_stop`: the server owns the policy and closes it at shutdown, after the last batch (`Policy.close`
    releases the model), as `worldpolicy serve` does. Off by default: a policy handed in, or one a loader returns
    from its caller's hands, may still be used by its owner after the server stops.

    `recorder` (a `recording.Recorder`, `worldpolicy serve --record`): each answered policy-mode exchange and each
    connection's end are handed to it, off the request path; its writer thread runs while the server listens and is
    closed (what is queued written, then its sink finalised) after the drain. None: nothing is recorded, at no cost.
    """

    policy: Any = None
    config: ServerConfig = field(default_factory=ServerConfig)
    loader: Callable[[], Any] | None = None
    adapter: ObservationAdapter | None = None
    key_map: dict[str, str] | None = None
    warmup_requests: int = 0  # synthetic requests run as one batch before /readyz turns ready
    close_on_stop: bool = False
    recorder: Recorder | None = None

    def __post_init__(self) -> None:
        if (self.policy is None) == (self.loader is None):
            raise ValueError("PolicyServer needs exactly one of policy= (a loaded policy) or loader= (a callable)")
        # event loop → worker thread; None asks the worker to stop. A C-level queue: put/get wake the other thread
        # without Python-level lock juggling while it holds the GIL
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # the jobs in `_queue` that still wait for a batch (not the stop marker, not those whose client left): what the
        # queue-depth gauge counts. Added to on the loop, discarded on either thread: set.add/discard of an object
        # hashed by identity are single C calls under the GIL, so no lock is needed
        self._waiting: set[_Job] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics = _Metrics(self._waiting.__len__, self._batch_running_s, recording=self.recorder is not None,
                                 certificate=self.config.certificate)
        if self.recorder is not None:
            self.recorder.on_drop = self._metrics.records_dropped.inc
        self._refusals = RefusalLog()
        self._unusable = UnusableLog()
        self._ready = False
        self._draining = False
        self._served = False  # serve() runs once per server
        # (batch number, perf_counter at its start, its jobs) while the worker is inside the policy, else None: one
        # attribute store per batch by the worker, read by the watchdog and at scrape time
        self._running: tuple[int, float, list[_Job]] | None = None
        self._stuck: tuple[int, float, list[_Job]] | None = None  # the running batch, once past batch_timeout_s
        self._active = 0  # admitted requests whose reply is not sent yet
        self._abandoned = 0  # requests still unanswered at the drain deadline (their connections close with 1001)
        self._worker: threading.Thread | None = None
        self._metadata: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._connections: set[ServerConnection] = set()
        self._incoming = IncomingBudget(self.config.max_incoming_bytes)  # messages still arriving (`_received`)
        self._closing: set[asyncio.Future] = set()  # connections being closed mid-message (`_cut`)
        self._stop: asyncio.Future | None = None  # what serve() waits on: also resolved when the worker dies
        self._died: str | None = None  # why the worker thread ended inside the policy (see `_worker_died`)
        self.port: int | None = None

    @property
    def ready(self) -> bool:
        """True once the policy is loaded and warm, until shutdown begins, except while a batch has run past
        `batch_timeout_s` (what GET /readyz reports)."""
        return self._ready and self._stuck is None

    def _batch_running_s(self) -> float:
        running = self._running
        return 0.0 if running is None else time.perf_counter() - running[1]

    def _stuck_text(self) -> str:
        """Why a stuck server is unready, for /readyz, /livez and the handshakes it refuses."""
        number, started, batch = self._stuck
        return stuck_text(len(batch), time.perf_counter() - started, self.config.batch_timeout_s, number)

    # ----------------------------------------------------------------------------------------------- HTTP side
    def _authorized(self, request: Request) -> bool:
        return authorized(request.headers.get_all("Authorization"), self.config.api_key)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":  # openpi's probe: the process answers (a stuck batch shows on /readyz and /livez)
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if path == "/livez":
            if self._stuck is None:
                return connection.respond(http.HTTPStatus.OK, "OK\n")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, self._stuck_text() + "\n")
        if path == "/readyz":
            if self.ready:
                return connection.respond(http.HTTPStatus.OK, "ready\n")
            state = "draining" if self._draining else "loading" if not self._ready else self._stuck_text()
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, f"{state}\n")
        if not self._authorized(request):
            self._refusals("auth_refused", "unauthorized", path=path, peer=peer_name(connection.remote_address))
            self._metrics.requests.labels("unauthorized").inc()
            response = connection.respond(
                http.HTTPStatus.UNAUTHORIZED, "missing or wrong API key (send 'Authorization: Api-Key <key>')\n"
            )
            response.headers["WWW-Authenticate"] = "Api-Key"
            return response
        if path == "/metrics":
            response = connection.respond(http.HTTPStatus.OK, generate_latest(self._metrics.registry).decode())
            del response.headers["Content-Type"]  # a multi-map: setting it beside respond()'s would send two
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        if not self.ready:
            state = ("shutting down" if self._draining else "loading the model; retry when GET /readyz answers 200"
                     if not self._ready else self._stuck_text() + "; retry on another replica")
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, f"server is {state}\n")
        if len(self._connections) >= self.config.max_connections:
            text = (f"server full: {len(self._connections)} connections open (max_connections="
                    f"{self.config.max_connections}); retry later or on another replica")
            self._refusals("refused", "busy", peer=peer_name(connection.remote_address), reason=text)
            self._metrics.requests.labels("busy").inc()
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, text + "\n")
        return None

    # ------------------------------------------------------------------------------------------ WebSocket side
    async def _handler(self, ws: ServerConnection) -> None:
        conn, told = next(self._ids), set()  # `told`: the warnings this client heard, for the policy's `said_before`
        ws.conn = conn
        self._connections.add(ws)
        self._metrics.connections.inc()
        # read once, while open: a closed TLS transport no longer knows its peer (its lines said "peer": null)
        peer = peer_name(ws.remote_address)
        _log(logging.INFO, "connect", conn=conn, peer=peer,
             client=client_agent(ws.request.headers.get_all("User-Agent")))
        closed = asyncio.ensure_future(ws.wait_closed())
        prev_total_ms: float | None = None
        opened, answered, slowest = time.perf_counter(), 0, None
        try:
            await ws.send(packb(self._metadata))
            while (prev_total_ms := await self._exchange(ws, conn, peer, told, await ws.recv(), closed,
                                                         prev_total_ms)) is not None:
                answered, slowest = answered + 1, max(slowest or 0.0, prev_total_ms)
        except websockets.ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:  # websockets refused the frame
                self._metrics.requests.labels("too_big").inc()
                self._refusals("refused", "too_big", conn=conn, peer=peer, reason=exc.sent.reason)
        finally:
            closed.cancel()
            self._connections.discard(ws)
            self._metrics.connections.dec()
            if self.recorder is not None:
                self.recorder.end(conn)
            # what the connection did, in its last line: a robot's session at a glance, or a client that reconnects
            # per request (many short connections of one request each); its slowest reply: which robot saw a stall
            _log(logging.INFO, "disconnect", conn=conn, peer=peer, code=ws.close_code, requests=answered,
                 seconds=round(time.perf_counter() - opened, 3), slowest_ms=slowest_ms(slowest))

    async def _exchange(
        self, ws: ServerConnection, conn: int, peer: str | None, told: set[Any], message: str | bytes,
        closed: asyncio.Future, prev_total_ms: float | None
    ) -> float | None:
        """One request → one reply; returns the server time in ms, or None once the connection is refused/gone.
        A method of its own so the frame and its arrays are freed when it returns, not held while the next frame
        arrives (large frames otherwise pile up and page-fault the heap on every request)."""
        t0 = time.perf_counter()
        try:
            job = self._admit(message, t0, conn, told, first=prev_total_ms is None)  # None: no request answered yet
        except _Refusal as exc:
            await self._refuse(ws, conn, str(exc), exc.code, exc.status)
            return None
        del message
        try:
            result = await _outcome(job, closed)
            if isinstance(result, _Refusal):  # from the watchdog: this job's batch, or the one ahead of it, is stuck
                await self._refuse(ws, conn, str(result), result.code, result.status)
                return None
            if job.skip:  # the client left: the worker skips the job, or its result is dropped
                self._waiting.discard(job)
                self._vanished(conn, peer)
                return None
            if isinstance(result, BaseException):
                await self._refuse(ws, conn, error_text(result), CloseCode.INTERNAL_ERROR, failure_status(result))
                return None
            try:
                reply = packb(self._reply(job, result, t0, prev_total_ms))
            except Exception as exc:  # noqa: BLE001 - logged; not a Prediction, or actions no robot should run
                text, windowed = self._unusable.refusal(exc, conn=conn)  # NaN actions: once per window, no traceback
                await self._refuse(ws, conn, text, CloseCode.INTERNAL_ERROR, "error", windowed=windowed)
                return None
            try:
                await ws.send(reply)
            except websockets.ConnectionClosed:  # gone after its result came: vanished, as on Ray Serve
                self._vanished(conn, peer)
                return None
        finally:
            self._active -= 1
        total = time.perf_counter() - t0
        self._metrics.ok.inc()
        self._metrics.latency.observe(total)
        if self.recorder is not None and job.request.mode == "policy":
            self._record(job, result, t0, total)
        _log(logging.DEBUG, "reply", conn=conn, ms=round(total * 1000, 2), batch=job.batch_size, mode=job.request.mode)
        return total * 1000

    def _record(self, job: _Job, result: Prediction, t0: float, total: float) -> None:
        """Hand the exchange just answered to the recorder (it drops it, counted, when its writer is behind)."""
        request = job.request
        prefix = request.options.get("action_prefix")
        # the prefix's rows when the policy says it continued them (a policy that ignores the key sampled every row)
        continued = prefix is not None and result.settings.get("action_prefix_rows") == len(prefix)
        self.recorder.record(
            job.conn, prompt=request.prompt, observation=request.observation, state=request.options.get("state"),
            actions=np.asarray(result.actions), prefix_rows=len(prefix) if continued else 0,
            received=time.time() - (time.perf_counter() - t0), queue_ms=(job.started - job.enqueued) * 1000,
            infer_ms=(job.finished - job.started) * 1000, total_ms=total * 1000, batch_size=job.batch_size,
        )

    def _received(self, ws: ServerConnection) -> None:
        """Event loop, after each read of a connection: the bytes of the request message it is receiving (websockets'
        fragments so far and the partial frame in its reader) against `max_incoming_bytes`, summed over connections,
        and its deadline (`message_timeout_s` after the message's first byte). The connection that goes over the sum
        closes with 1013 (`busy`), one past its deadline with 1008 (`too_slow`). Two attribute reads per read; a
        message that takes more than one read also reads the clock once: its timer, once armed, is not cancelled when
        the message ends (a call_later and a cancel cost ~20 times that clock read), `_too_slow` re-arms it."""
        protocol = ws.protocol
        if protocol.state is State.OPEN:
            so_far = getattr(protocol, _MESSAGE_SIZE_SO_FAR)
            incoming = (so_far or 0) + len(protocol.reader.buffer)
        else:
            incoming = 0
        self._incoming.add(incoming - ws.incoming)
        if incoming and not ws.incoming and self.config.message_timeout_s is not None:  # a message's first byte
            ws.started = self._loop.time()
            if ws.deadline is None:
                ws.deadline = self._loop.call_at(ws.started + self.config.message_timeout_s, self._too_slow, ws)
        ws.incoming = incoming
        if incoming and (text := self._incoming.over()) is not None:
            self._cut(ws, CloseCode.TRY_AGAIN_LATER, "busy", text)

    def _too_slow(self, ws: ServerConnection) -> None:
        """The timer armed at a message's first byte: cuts the message arriving now if its deadline has passed, else
        re-arms for it (the message it was armed for ended, another began since), or stays off until the next one."""
        ws.deadline = None
        if not ws.incoming:
            return
        due = ws.started + self.config.message_timeout_s
        if due > self._loop.time():
            ws.deadline = self._loop.call_at(due, self._too_slow, ws)
        else:
            self._cut(ws, CloseCode.POLICY_VIOLATION, "too_slow",
                      f"request not received whole within message_timeout_s={self.config.message_timeout_s:g} of its "
                      f"first byte ({ws.incoming} bytes so far)")

    def _incoming_over(self, ws: ServerConnection) -> None:
        """A connection's bytes of an unfinished message no longer count (it closed, or is being closed)."""
        self._incoming.add(-ws.incoming)
        ws.incoming = 0
        if ws.deadline is not None:
            ws.deadline.cancel()
            ws.deadline = None

    def _cut(self, ws: ServerConnection, code: int, status: str, text: str) -> None:
        """Close a connection in the middle of a message (no text frame: its client is still sending): counted,
        logged as `refused` (the whole `text`), its close reason the first sentence of `text` (a close reason holds
        123 bytes)."""
        self._incoming_over(ws)
        self._metrics.requests.labels(status).inc()
        self._refusals("refused", status, conn=ws.conn, peer=peer_name(ws.remote_address), reason=text)
        reason = text.split(";")[0].split(" (")[0][:123]

        async def close() -> None:
            try:  # as websockets closes on a message over max_size: send the close frame, wait close_timeout, abort
                async with ws.send_context():
                    ws.protocol.fail(code, reason)
            except websockets.ConnectionClosed:
                pass

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _vanished(self, conn: int, peer: str | None) -> None:
        """A client gone before its reply was sent: counted and logged, unless the drain deadline closed it (counted
        as abandoned there)."""
        if not self._abandoned:
            self._metrics.requests.labels("vanished").inc()
            _log(logging.INFO, "vanished", conn=conn, peer=peer)

    def _admit(self, message: str | bytes, t0: float, conn: int, told: set[Any], first: bool = False) -> _Job:
        """Decode and validate one frame and queue it, or raise `_Refusal` with the client-facing reason. The `first`
        request of a connection is also read for keys nothing reads and camera slots read from one key
        (`first_request_warnings`), said in the log and in its reply: once per connection."""
        if self._draining:
            raise _Refusal(DRAINING_TEXT, CloseCode.GOING_AWAY, "draining")
        if self._stuck is not None:  # it would wait behind the stuck batch
            raise self._stuck_refusal()
        if isinstance(message, str):
            raise _Refusal("bad request: expected a binary msgpack frame, got a text frame", 1011, "bad_request")
        try:
            decoded = unpackb(message, self.config.limits)
            request = self.adapter.parse(decoded)
        except (CodecError, RequestError) as exc:
            raise _Refusal(f"bad request: {exc}", CloseCode.INTERNAL_ERROR, "bad_request") from None
        except Exception as exc:  # noqa: BLE001 - a request our checks missed: this client's error text, and logged
            log_failure("request_failed", exc, conn=conn)
            raise _Refusal(f"bad request: {error_text(exc)}", CloseCode.INTERNAL_ERROR, "bad_request") from None
        # the queue itself, jobs whose clients left included: each holds its frame until the worker passes it
        queued = self._queue.qsize()
        if queued >= self.config.max_queue:
            raise _Refusal(
                f"server busy: {queued} requests queued (max_queue={self.config.max_queue}); retry later",
                CloseCode.TRY_AGAIN_LATER,
                "busy",
            )
        job = _Job(request, self._loop.create_future(), enqueued=t0, conn=conn, told=told)
        if first:
            job.said_first = first_request_warnings(self.adapter, decoded, conn=conn)
        self._waiting.add(job)
        self._queue.put(job)
        self._active += 1
        return job

    async def _refuse(self, ws: ServerConnection, conn: int, text: str, code: int, status: str,
                      windowed: bool = False) -> None:
        """openpi error convention: one text frame, then close (1011 unless a more precise code applies)."""
        self._metrics.requests.labels(status).inc()
        self._refusals("refused", status, windowed, conn=conn, peer=peer_name(ws.remote_address), reason=text[:500])
        if self.recorder is not None:
            self.recorder.refused(conn, text)
        try:
            await ws.send(text)
            await ws.close(code, "worldpolicy: " + status)
        except websockets.ConnectionClosed:
            pass

    def _reply(self, job: _Job, result: Prediction, t0: float, prev_total_ms: float | None) -> dict[str, Any]:
        reply = reply_fields(result, [*job.said_first, *job.warnings] if job.said_first else job.warnings)
        timing = {
            "queue_ms": (job.started - job.enqueued) * 1000,
            "infer_ms": (job.finished - job.started) * 1000,
            "batch_size": job.batch_size,
            "total_ms": (time.perf_counter() - t0) * 1000,
        }
        if prev_total_ms is not None:
            timing["prev_total_ms"] = prev_total_ms
        reply["server_timing"] = timing
        return reply

    # -------------------------------------------------------------------------------------------- batching
    # One worker thread loads the policy, then takes batches straight from `_queue` and hands each batch's results
    # back with one `call_soon_threadsafe`: a request costs two thread wake-ups and no extra event-loop task hops.
    def _work(self, loaded: asyncio.Future) -> None:
        """Worker thread: load and warm up, then run batches until shutdown; then close the policy (`close_on_stop`)
        here, after its last batch, so no call can still be inside it."""
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - surfaced by serve(), which ends with it
            self._close_owned()  # one whose warm-up failed: released before serve() reports the failure
            self._call_on_loop(_settle, loaded, exc)
            return
        try:
            if not self._call_on_loop(_settle, loaded, None):
                return
            last_finished = 0.0
            for number in itertools.count(1):
                if (batch := self._next_batch(last_finished)) is None:
                    break
                started = time.perf_counter()
                self._running = (number, started, batch)  # the watchdog's only input: one store per batch
                try:
                    results, said = run_batch(self.policy, [job.request for job in batch],
                                              [{"conn": job.conn} for job in batch], [job.told for job in batch])
                except Exception as exc:  # noqa: BLE001 - logged; a bug past run_batch fails the batch, not the thread
                    log_failure("batch_crashed", exc, size=len(batch), conns=[job.conn for job in batch])
                    results, said = [exc] * len(batch), [[] for _ in batch]
                except BaseException as exc:  # noqa: BLE001 - SystemExit from inside the policy: this thread ends
                    log_failure("worker_died", exc, size=len(batch), conns=[job.conn for job in batch])
                    self._call_on_loop(self._worker_died, batch, error_text(exc))
                    return
                finally:
                    self._running = None
                last_finished = time.perf_counter()
                if not self._call_on_loop(self._deliver, batch, results, said, started, last_finished):
                    return
                del batch, results  # hold no frames while waiting for the next batch
        finally:
            self._close_owned()

    def _close_owned(self) -> None:
        if self.close_on_stop:
            close_policy(self.policy)

    def _call_on_loop(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run `fn(*args)` on the event loop; False once the loop is closed (the server is gone)."""
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            return False
        return True

    def _next_batch(self, last_finished: float) -> list[_Job] | None:
        """Worker thread: block until a request is queued, then wait for companions only while some connection could
        still send one (each connection has at most one request in flight), for at most max_wait after the oldest
        request arrived or the previous batch ended. Counting from the batch end gives the clients just answered time
        to send their next request, so groups of clients merge into full batches instead of alternating half batches.
        A lone client is never delayed. None once shutdown begins."""
        max_batch, max_wait = self.config.max_batch, self.config.max_wait_ms / 1000
        waiting = self._waiting
        batch: list[_Job] = []
        while not batch:
            job = self._queue.get()
            if job is None:
                return None
            waiting.discard(job)
            if not job.skip:  # pass over requests whose client is gone or that the watchdog answered
                batch.append(job)
        deadline = max(batch[0].enqueued, last_finished) + max_wait
        while len(batch) < max_batch and len(self._connections) > len(batch):  # stop once every connection is in
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:
                self._queue.put(None)  # run this batch, stop at the next call
                break
            waiting.discard(job)
            if not job.skip:
                batch.append(job)
        return batch

    def _deliver(
        self, batch: list[_Job], results: list[Any], said: list[list[str]], started: float, finished: float
    ) -> None:
        """Event loop: resolve each job with its Prediction or exception (and the warnings about it); those the
        watchdog already answered keep that answer. A stuck batch that returns makes the server ready again."""
        if self._stuck is not None and self._stuck[2] is batch:
            number, self._stuck = self._stuck[0], None
            self._metrics.ready.set(int(self.ready))
            _log(logging.WARNING, "stuck_batch_returned", batch=number, size=len(batch),
                 seconds=round(finished - started, 3))
        for job, result, warnings in zip(batch, results, said):
            job.started, job.finished, job.batch_size, job.warnings = started, finished, len(batch), warnings
            if not job.future.done():
                job.future.set_result(result)
        # observed after the replies are sent: set_result only schedules each waiting task, behind this callback
        self._loop.call_soon(self._observe_batch, batch, started, finished)

    def _worker_died(self, batch: list[_Job], error: str) -> None:
        """Event loop: the worker thread ended inside the policy with an exception that is no request's error
        (SystemExit from a library): answer its batch and those queued, and stop serving (drain; `run` exits 1), so a
        supervisor restarts the process instead of it staying up, ready, and answering nothing."""
        self._died = error
        self._ready, self._draining = False, True  # new requests are refused from now on, as while draining
        self._metrics.ready.set(0)
        refusal = _Refusal(f"server error: the policy ended the server's inference thread ({error}); the server "
                           "stops, retry on another replica", CloseCode.INTERNAL_ERROR, "error")
        for job in [*batch, *list(self._waiting)]:
            self._waiting.discard(job)
            _answer(job, refusal)
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _observe_batch(self, batch: list[_Job], started: float, finished: float) -> None:
        metrics = self._metrics
        metrics.batch_size.observe(len(batch))
        metrics.inference.observe(finished - started)
        for job in batch:  # each request's wait, as its reply's queue_ms says it
            metrics.queue_wait.observe(started - job.enqueued)

    # -------------------------------------------------------------------------------------------- watchdog
    async def _watch(self, limit: float) -> None:
        """Event loop, while serving with `batch_timeout_s`: look at the running batch every limit/4 (at most every
        second) and declare it stuck once it has run past the limit. The worker only stores `_running` once per
        batch, so the request path pays nothing for this; a verdict comes at most a tick late."""
        tick = min(limit / 4, 1.0)
        while True:
            await asyncio.sleep(tick)
            running = self._running
            if running is None or (self._stuck is not None and self._stuck[2] is running[2]):
                continue
            if time.perf_counter() - running[1] > limit:
                self._declare_stuck(running)

    def _declare_stuck(self, running: tuple[int, float, list[_Job]]) -> None:
        """Take the server out of rotation (/readyz and /livez 503, handshakes 503, new requests refused) and answer
        the stuck batch's clients and those queued behind it now, instead of leaving them to wait for a call that may
        never return. The worker thread cannot be stopped: if the call does return, its results are dropped (the
        clients were answered) and the server turns ready again (`_deliver`)."""
        self._stuck = running
        self._metrics.ready.set(0)
        number, started, batch = running
        text = self._stuck_text()
        _log(logging.ERROR, "batch_stuck", batch=number, size=len(batch), waiting=len(self._waiting),
             seconds=round(time.perf_counter() - started, 3), batch_timeout_s=self.config.batch_timeout_s)
        inside = _Refusal(timed_out_text(text), CloseCode.INTERNAL_ERROR, "timeout")
        for job in batch:
            _answer(job, inside)
        behind = self._stuck_refusal()
        for job in list(self._waiting):  # a copy in one C call: the worker may discard from the set meanwhile
            self._waiting.discard(job)
            _answer(job, behind)

    def _stuck_refusal(self) -> _Refusal:
        """For a request that would wait behind the stuck batch: it never reached the policy."""
        return _Refusal(unavailable_text(self._stuck_text()), CloseCode.TRY_AGAIN_LATER, "stuck")

    # ------------------------------------------------------------------------------------------- lifecycle
    def _load(self) -> None:
        """Worker thread: load (if a loader was given), warm up, then fill the metadata frame."""
        t0 = time.perf_counter()
        if self.policy is None:
            _log(logging.INFO, "loading")
            self.policy = self.loader()
        # the metadata frame is sent once ready (connections are refused until then)
        metadata, self.adapter = server_metadata(self.policy, self.config, self.key_map, self.adapter)
        warm_up(self.policy, self.adapter, self.warmup_requests, t0)
        self._metadata = metadata
        self._metrics.info.labels(*served_labels(metadata)).set(1)
        _log(logging.INFO, "ready", load_s=round(time.perf_counter() - t0, 3), embodiment=self.policy.embodiment.key)

    async def serve(self, stop: asyncio.Future | None = None, started: Callable[[int], None] | None = None) -> None:
        """Serve until `stop` resolves, then drain: refuse new requests, finish queued ones, close with 1001.

        Once per server, as a thread starts once: a stopped server's worker may still be inside the policy (a call
        outliving the drain cannot be interrupted), its policy may be closed (`close_on_stop`) and its metrics count
        that run; a second serve() raises RuntimeError saying how to serve again. A serve() that never listened (its
        address in use, not on this machine...) ran nothing: it does not count, and the same server may serve once the
        address is free."""
        if self._served:
            again = ("load it again: PolicyServer(loader=..., ...)" if self.close_on_stop else
                     "PolicyServer(policy=server.policy, config=server.config, ...)")
            raise RuntimeError(
                "PolicyServer.serve: this server has already served once (a server serves once, as a thread starts "
                f"once){'; its policy was closed at stop (close_on_stop=True)' if self.close_on_stop else ''}: "
                f"serve again with a new server: {again}"
            )
        self._served = True
        try:
            await self._listen_and_serve(stop, started)
        except BaseException:
            if self.port is None:  # it never listened: no worker started, no policy loaded or closed, nothing counted
                self._served = False
            raise

    async def _listen_and_serve(self, stop: asyncio.Future | None, started: Callable[[int], None] | None) -> None:
        self._loop = loop = asyncio.get_running_loop()
        self._stop = stop if stop is not None else loop.create_future()
        try:
            await self._listen(self._stop, started)
        finally:  # after every connection's handler ended (and with it its episode): the queued records, then finalise
            if self.recorder is not None and self.port is not None:  # it listened, so the recorder started
                await asyncio.to_thread(self.recorder.close)

    async def _listen(self, stop: asyncio.Future, started: Callable[[int], None] | None) -> None:
        loop = self._loop
        async with serve(
            self._handler,
            self.config.host,
            self.config.port,
            compression=None,
            max_size=self.config.limits.max_message_bytes,
            # one reply per request, so a client has one frame in flight: reading stops while a second one waits.
            # websockets' default read 16 frames ahead, and a client sending requests without reading replies made
            # the server hold 16 messages of up to max_message_bytes (1 GiB at the default 64 MiB) per connection
            max_queue=1,
            process_request=self._process_request,
            ssl=self.config.ssl_context,
            create_connection=_connection_class(self, memoryview(bytearray(_READ_BUFFER_BYTES))
                                                if type(loop).__module__.startswith("uvloop") else None),
        ) as server:
            self.port = server.sockets[0].getsockname()[1]
            if self.recorder is not None:
                self.recorder.start()
            announce_listening(self.config.host, self.port, self.config.api_key, self.config.certificate)
            if started is not None:
                started(self.port)
            loaded = loop.create_future()
            # a daemon: serve() never waits past the drain deadline for a policy call it cannot interrupt
            self._worker = threading.Thread(target=self._work, args=(loaded,), name="worldpolicy-infer", daemon=True)
            self._worker.start()
            watchdog: asyncio.Future | None = None  # also while draining: a stuck batch's clients still get told
            try:
                await asyncio.wait((loaded, stop), return_when=asyncio.FIRST_COMPLETED)
                if loaded.done():
                    loaded.result()  # a failed load ends the server with its exception
                    self._ready = True
                    self._metrics.ready.set(1)
                    if self.config.batch_timeout_s is not None:
                        watchdog = asyncio.ensure_future(self._watch(self.config.batch_timeout_s))
                    await stop
                await self._drain(server, loading=not loaded.done())
            finally:
                if watchdog is not None:
                    watchdog.cancel()
                self._queue.put(None)  # the worker finishes its batch (if any) and exits; a load in progress runs out

    async def _drain(self, server: Any, loading: bool) -> None:
        """Refuse new requests, answer the admitted ones and let the worker finish its batch, all within the drain
        timeout; then close every connection with 1001. A load is not waited for: no request needs it."""
        self._ready, self._draining = False, True
        self._metrics.ready.set(0)
        # still listening while requests finish: /healthz answers 200, /readyz 503 draining, new WebSocket handshakes
        # get 503 and new requests on open connections 1001 (probes of an orchestrator see a draining server, not a
        # closed port)
        # `active`: what the drain waits for (`queued` leaves out the batch inside the policy), as on Ray Serve
        _log(logging.INFO, "draining", queued=len(self._waiting), active=self._active,
             connections=len(self._connections))
        self._queue.put(None)  # behind the queued requests: the worker runs them, then stops
        deadline = time.perf_counter() + self.config.drain_timeout_s
        # every admitted request gets its reply, and the worker also finishes a batch whose clients left: a thread still
        # inside the policy when the interpreter shuts down aborts the process
        while (self._active or (self._worker.is_alive() and not loading)) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        if self._active or self._worker.is_alive():
            self._abandoned = self._active
            self._metrics.requests.labels("abandoned").inc(self._active)
            _log(logging.WARNING, "abandoned", requests=self._active, drain_timeout_s=self.config.drain_timeout_s,
                 worker="loading" if loading else "busy" if self._worker.is_alive() else "stopped")
        server.close(close_connections=False)
        # all at once, within the drain deadline (at least 1 s): a peer that never answers the close frame must not
        # hold the shutdown for websockets' close_timeout, one connection after another
        closing = {asyncio.ensure_future(ws.close(CloseCode.GOING_AWAY, "server shutting down")): ws
                   for ws in self._connections}
        if closing:
            _, stuck = await asyncio.wait(closing, timeout=max(deadline - time.perf_counter(), 1.0))
            for task in stuck:
                task.cancel()
                closing[task].transport.abort()
        self._refusals.flush()
        _log(logging.INFO, "stopped")

    def reload_tls(self) -> bool:
        """Read the certificate and key files again (a renewal replaced them): new handshakes get the new pair, open
        connections keep theirs. A pair that does not load (a key that is not the certificate's, a file half-written
        or unreadable, a certificate expired or not valid yet) is logged as `tls_reload_failed` at ERROR and the
        current pair keeps serving. True once the new pair serves. SIGHUP under `run()`; safe from any thread."""
        certificate = self.config.certificate
        if certificate is None:
            raise RuntimeError("PolicyServer.reload_tls: this server serves no TLS (ServerConfig(tls_cert=, tls_key=))")
        try:
            pair = certificate.reload()
        except ValueError as exc:
            served = certificate.current
            _log(logging.ERROR, "tls_reload_failed", error=str(exc),
                 serving=f"the certificate loaded before, valid to {utc_text(served.not_after)}")
            return False
        _log(logging.INFO, "tls_reloaded", cert=certificate.cert, not_before=utc_text(pair.not_before),
             not_after=utc_text(pair.not_after))
        _warn_if_expiring(pair)
        return True

    def run(self) -> int:
        """Blocking entry point for the CLI (it owns the process): serve until SIGTERM, SIGUSR1 (Slurm's advance
        warning: `fileio.STOP_PRIORITY`) or SIGINT, then drain. Returns the exit code: 0, or 1 when requests
        were abandoned at the drain deadline or the policy ended the inference thread (`_worker_died`). If the worker
        thread is still inside the policy or the load by then, ends the process at once with that code (`os._exit`):
        interpreter shutdown under a thread in native code aborts it ("terminate called without an active
        exception")."""
        keep_freed_memory()
        room_for_connections(self.config.max_connections)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            stop = loop.create_future()
            for sig in STOP_PRIORITY:
                _on_signal(loop, sig, lambda s=sig: stop.done() or stop.set_result(s))
            # without TLS, SIGHUP keeps its default: the process ends (Windows has no SIGHUP: reload_tls() only)
            if self.config.certificate is not None and hasattr(signal, "SIGHUP"):
                _on_signal(loop, signal.SIGHUP, self.reload_tls)
            await self.serve(stop)

        with asyncio.Runner(loop_factory=event_loop_factory(self.config.event_loop)) as runner:
            runner.run(main())
        code = 1 if self._abandoned or self._died else 0
        if self._worker is not None and self._worker.is_alive():
            logging.shutdown()  # flush the log handlers: os._exit skips what interpreter shutdown would do
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code


def _on_signal(loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[[], object]) -> None:
    """`loop.add_signal_handler`; on Windows, whose loop has none, a `signal.signal` handler that calls `callback` in
    the loop (the main thread's, which a signal wakes)."""
    try:
        loop.add_signal_handler(sig, callback)
    except NotImplementedError:
        signal.signal(sig, lambda *_: loop.call_soon_threadsafe(callback))


async def _outcome(job: _Job, closed: asyncio.Future) -> Any:
    """The job's Prediction or exception; if the connection closes first, the job is marked `skip` (result None)."""

    def vanish(_: asyncio.Future) -> None:
        if not job.future.done():
            job.skip = True
            job.future.set_result(None)

    closed.add_done_callback(vanish)
    try:
        return await job.future
    finally:
        closed.remove_done_callback(vanish)


def close_policy(policy: Any) -> None:
    """Release a served policy's model at shutdown (`Policy.close`: its engine, and on CUDA the allocator's cached
    blocks), so a process that goes on after serving (a notebook's `ServerThread`, a Ray worker) holds no model it
    no longer serves. A policy without `close` (or none, when loading failed) has nothing to release; a failing
    `close` is logged and shutdown goes on."""
    close = getattr(policy, "close", None)
    if not callable(close):
        return
    try:
        close()
    except Exception as exc:  # noqa: BLE001 - logged; the server still stops
        log_failure("close_failed", exc)
    else:
        _log(logging.INFO, "policy_closed")


def _answer(job: _Job, refusal: _Refusal) -> None:
    """Event loop: answer a job with a refusal, once; the worker passes over it (`skip`) if it has not taken it yet."""
    if not job.future.done():
        job.skip = True
        job.future.set_result(refusal)


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_exception(error) if error is not None else future.set_result(None)


_OTHER_FILES = 256  # descriptors the process holds besides connections: weights, CUDA, logs, probes in progress


def room_for_connections(max_connections: int) -> int | None:
    """Process-wide (what `PolicyServer.run` does): raise the soft open-file limit, within the hard one, so that
    `max_connections` connections and the process's other files fit; a process out of descriptors accepts nothing,
    /healthz included, so `max_connections` must be the limit that is met. The soft limit is often 1024 (systemd,
    a login shell) while the hard one allows far more. Logs `open_file_limit` when the hard limit leaves too little.
    Returns the soft limit now, or None where there is none to read (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + _OTHER_FILES
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        if raised > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        if soft < wanted:
            _log(logging.WARNING, "open_file_limit", limit=soft, max_connections=max_connections,
                 detail=f"the hard open-file limit ({hard}) leaves room for about {max(soft - _OTHER_FILES, 0)} "
                 "connections: lower --max-connections, or raise the limit (ulimit -Hn, LimitNOFILE=, docker --ulimit)")
    return soft


_KEEP_FREED_BYTES = 32 * 2**20  # glibc's largest allowed mmap threshold


def keep_freed_memory() -> bool:
    """Process-wide (glibc only; what `PolicyServer.run` does): keep up to 32 MiB of freed heap for reuse instead of
    handing it back to the kernel. Each request allocates several frame-sized buffers (websockets reassembles and
    unmasks the frame, msgpack copies its bins); under glibc's default, adaptive thresholds they are mmap'd or trimmed
    and page-faulted back in on every request (100-170 faults for a 0.45 MB request, more than decoding costs).
    Returns whether the settings were applied."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_trim_threshold, _KEEP_FREED_BYTES) and mallopt(m_mmap_threshold, _KEEP_FREED_BYTES))


def first_request_warnings(adapter: ObservationAdapter, message: Mapping[Any, Any], **fields: Any) -> list[str]:
    """What the first request of a connection (a Ray replica: of a key set) is told besides the policy's warnings,
    each logged (`unread_keys`, `shared_cameras`, with `fields`): the keys nothing reads (`unread_keys_warning`) and
    the camera slots the key map reads from one client key (`shared_cameras_warning`). Once, so the requests after
    it cost nothing more (a control loop sends the same keys)."""
    said = []
    for event, text in (("unread_keys", adapter.unread_keys_warning(message)),
                        ("shared_cameras", adapter.shared_cameras_warning)):
        if text is not None:
            _log(logging.WARNING, event, **fields, detail=text)
            said.append(text)
    return said


def run_batch(
    policy: Any, requests: list[WireRequest], fields: Sequence[dict[str, Any]] | None = None,
    told: Sequence[set[Any]] | None = None
) -> tuple[list[Prediction | BaseException], list[list[str]]]:
    """One `policy.act_batch` for the whole batch; without it (or if the batch fails) one call per request, so a bad
    request only fails itself. Runs in a worker thread; returns a Prediction or the exception per request, and the
    warnings the policy logged about each (`logged_warnings`), which its reply carries to the client: the checkpoint
    in them by its name (`checkpoint_name`), as the metadata frame names it, not by this machine's path. `fields`:
    per request, what its `policy_failed` log line names it by (the single server's `conn`, as its `connect` and
    `refused` lines do), so an operator can tell whose request the traceback is about. `told`: per request, the
    warnings its client heard already (`told_once`), so the policy says each once to each client; without it, once
    per policy."""
    with logged_warnings(len(requests)) as said, told_once(told):
        results = _run_batch(policy, requests, fields or [{} for _ in requests])
    source = getattr(policy, "source", None)
    if isinstance(source, str) and source and any(said):
        name = checkpoint_name(source)
        said = [[text.replace(source, name) for text in own] for own in said]
    return results, said


def _run_batch(
    policy: Any, requests: list[WireRequest], fields: Sequence[dict[str, Any]]
) -> list[Prediction | BaseException]:
    if len(requests) > 1 and callable(getattr(policy, "act_batch", None)):
        try:
            predictions = policy.act_batch([_policy_request(r) for r in requests])
            if len(predictions) != len(requests):
                raise RuntimeError(f"act_batch returned {len(predictions)} results for {len(requests)} requests")
            return list(predictions)
        except Exception as exc:  # noqa: BLE001 - retried below, one request at a time
            _log(logging.WARNING, "batch_failed", size=len(requests), error=f"{type(exc).__name__}: {exc}"[:300])
    results: list[Prediction | BaseException] = []
    for i, r in enumerate(requests):
        try:
            with request_index(i):
                if r.mode == "policy":
                    results.append(policy.act(r.observation, r.prompt, **r.options))
                elif r.mode == "forward_dynamics":
                    results.append(policy.imagine(r.observation, r.actions, r.prompt, **r.options))
                else:
                    results.append(policy.infer_actions(r.video, r.prompt, **r.options))
        except Exception as exc:  # noqa: BLE001 - this request's result, logged unless the client is told why
            if failure_status(exc) == "error" or not str(exc):
                log_failure("policy_failed", exc, **fields[i], mode=r.mode)
            results.append(exc)
    return results


def warm_up(policy: Any, adapter: ObservationAdapter, requests: int, t0: float) -> None:
    """`requests` synthetic requests as one batch before the server says it is ready (the first forward allocates,
    and compiles with --compile: seconds to minutes), logged as `warming_up` with the load's `load_s` (since `t0`, a
    `perf_counter`), so a long start says what it is doing. A failed one raises: no server is ready that cannot
    answer."""
    if not requests:
        return
    _log(logging.INFO, "warming_up", requests=requests, load_s=round(time.perf_counter() - t0, 3))
    request = adapter.parse(warmup_message(policy.embodiment, key_map=adapter.key_map,
                                           camera_sizes=warmup_camera_sizes(policy)))
    for result in run_batch(policy, [request] * requests)[0]:
        if isinstance(result, BaseException):
            raise RuntimeError(f"warm-up request failed: {result}") from result


def reply_fields(pred: Prediction, warnings: Sequence[str] | None = None) -> dict[str, Any]:
    """A Prediction as reply keys: `action` (RoboLab) and `actions` (openpi), columns, units, timings in ms, and the
    `warnings` the policy logged about the request, only when there are any (openpi clients ignore the key). Raises
    ValueError for actions no robot should run: not [chunk, one per column], or NaN/inf."""
    actions = np.asarray(pred.actions)
    if actions.ndim != 2 or actions.shape[1] != len(pred.columns) or actions.dtype.kind not in "biuf":
        raise ValueError(f"actions {actions.dtype} {actions.shape} do not match the {len(pred.columns)} columns")
    if not all_float32(actions):
        raise ValueError("actions contain NaN, inf or values beyond float32's range")
    settings = _wire_safe(pred.settings)
    if isinstance(settings.get("checkpoint"), str):  # as the metadata frame names it, not by this machine's path
        settings["checkpoint"] = checkpoint_name(settings["checkpoint"])
    reply: dict[str, Any] = {
        "action": actions,
        "actions": actions,
        "actions_normalized": np.asarray(pred.actions_normalized),
        "mode": pred.mode,
        "embodiment": pred.embodiment,
        "columns": list(pred.columns),
        "units": list(pred.units),
        "fps": float(pred.fps),
        "policy_timing": {f"{k}_ms": float(v) * 1000 for k, v in pred.timings.items()},
        "settings": settings,
    }
    if pred.video is not None:
        reply["video"] = np.asarray(pred.video)
    if warnings:
        reply["warnings"] = list(warnings)
    return reply


def failure_status(error: BaseException) -> str:
    """The metrics status of a request the policy failed: the request's fault (bad_request) or the server's (error)."""
    return "bad_request" if isinstance(error, (ValueError, TypeError, KeyError)) else "error"


def error_text(error: BaseException) -> str:
    """What a client sees for a failed request: the exception's type and message, never a traceback."""
    return f"{type(error).__name__}: {str(error) or '(no message; see the server log)'}"


def _policy_request(r: WireRequest) -> Any:
    from ..policy import PolicyRequest

    source = r.video if r.mode == "inverse_dynamics" else r.observation  # no decode_video: the mode's default
    return PolicyRequest(source, r.prompt, mode=r.mode, actions=r.actions, **r.options)


RENEW_BY_SIGHUP = ("renew it and replace the --tls-cert/--tls-key files (ServerConfig.tls_cert/tls_key), then send "
                   "`worldpolicy serve` SIGHUP (or call PolicyServer.reload_tls()): new connections get the new pair, "
                   "without a restart")


def _warn_if_expiring(pair: TlsPair, renewal: str = RENEW_BY_SIGHUP) -> None:
    """`tls_expires_soon` at WARNING when the certificate served ends within EXPIRY_WARNING_DAYS; `renewal`: how this
    server is given the renewed pair."""
    days = pair.days_left()
    if days < EXPIRY_WARNING_DAYS:
        _log(logging.WARNING, "tls_expires_soon", not_after=utc_text(pair.not_after), days_left=round(days, 1),
             detail=renewal)


def announce_listening(host: str, port: int, api_key: str | None, certificate: ServingCertificate | None,
                       renewal: str = RENEW_BY_SIGHUP) -> None:
    """The `listening` line (scheme, the URL for a client on this machine and, on a wildcard host, the ones for the
    network), then the start's warnings: an open port or a key in clear text (`warn_if_open`), a certificate close to
    its end. Both front ends (this server, `worldpolicy serve --replicas` on Ray Serve) say it the same way."""
    tls = certificate is not None
    wildcard = {"interfaces": "all", "network_urls": network_urls(host, port, tls)} if (
        host.strip("[]") in _ROUTE_PROBES) else {}
    _log(logging.INFO, "listening", host=host, port=port, auth=api_key is not None, scheme="wss" if tls else "ws",
         url=local_url(host, port, tls), **wildcard)
    warn_if_open(host, api_key, tls)
    if tls:
        _warn_if_expiring(certificate.current, renewal)


# per wildcard, the families it listens on ('' both; asyncio binds :: IPv6-only) and an address whose route tells the
# interface packets leave from (RFC 5737, 3849 documentation addresses; a UDP connect() sends nothing)
_IPV4_PROBE, _IPV6_PROBE = (socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")
_ROUTE_PROBES = {"": (_IPV4_PROBE, _IPV6_PROBE), "0.0.0.0": (_IPV4_PROBE,), "::": (_IPV6_PROBE,)}


def network_urls(host: str, port: int, tls: bool = False) -> list[str]:
    """For a server listening on every interface (a wildcard `host`), what a machine on the network (the robot's
    computer) may use: this machine's name, then the address its default route leaves from, per address family the
    wildcard listens on. No DNS is asked; a machine without a route gives its name only. The name must resolve on the
    robot's side, and with TLS be in the certificate."""
    hosts = [socket.gethostname()]
    for family, probe in _ROUTE_PROBES[host.strip("[]")]:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                address = s.getsockname()[0]
        except OSError:  # no route, or the family is off
            continue
        if not ipaddress.ip_address(address).is_loopback:
            hosts.append(address)
    return [local_url(h, port, tls) for h in hosts]


def local_url(host: str, port: int, tls: bool = False) -> str:
    """Where a client on this machine reaches a server listening on `host`: a wildcard host as loopback (0.0.0.0 and ''
    as 127.0.0.1, :: as ::1), an IPv6 address in brackets (ws://[::1]:8000), as a URL must write it; wss:// with TLS."""
    host = host.strip("[]")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in host:
        host = f"[{host.replace('%', '%25')}]"  # a zone (fe80::1%eth0) is written %25 inside a URL (RFC 6874)
    return f"{'wss' if tls else 'ws'}://{host}:{port}"


class ServerThread:
    """Runs a `PolicyServer` on its own event loop in a background thread (notebooks, tests, benchmarks).

    `with ServerThread(server) as t: RemotePolicy(t.url)`; leaving the block drains and stops the server.
    """

    def __init__(self, server: PolicyServer, ready_timeout_s: float = 120.0) -> None:
        self.server = server
        self._ready_timeout_s = ready_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._main, name="worldpolicy-server", daemon=True)

    @property
    def url(self) -> str:
        """Where a client on this machine reaches the server (`local_url`)."""
        return local_url(self.server.config.host, self.server.port, self.server.config.ssl_context is not None)

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            await self.server.serve(self._stop, started=lambda port: self._listening.set())

        try:
            with asyncio.Runner(loop_factory=event_loop_factory(self.server.config.event_loop)) as runner:
                runner.run(main())
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller by start()/stop()
            self._error = exc
        finally:
            self._listening.set()

    def start(self, wait_ready: bool = True) -> ServerThread:
        """Start serving; return once listening, and (if `wait_ready`) once the policy is loaded and warm."""
        self._thread.start()
        deadline = time.monotonic() + self._ready_timeout_s
        self._listening.wait(self._ready_timeout_s)
        while wait_ready and not self.server.ready and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.005)
        if self._error is not None:
            raise RuntimeError(f"server failed to start: {self._error}") from self._error
        if self.server.port is None or (wait_ready and not self.server.ready):
            raise TimeoutError(f"server not {'ready' if wait_ready else 'listening'} after {self._ready_timeout_s} s")
        return self

    def stop(self, timeout_s: float = 60.0) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        self._thread.join(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
