"""Scale-out on Ray Serve: several policy replicas (one GPU each) behind one openpi-wire WebSocket endpoint.

Two deployments (needs the `ray` extra): `WireIngress` speaks the wire (metadata frame, API key, message bound,
errors as text + close 1011) through a FastAPI WebSocket route and forwards each request's *raw frame* to
`PolicyReplica`; Ray routes frames across replicas and `@serve.batch` fuses concurrent ones inside a replica into
one `policy.act_batch`. Frames are decoded and validated in the replica by the same codec and adapter as
`worldpolicy serve`, so both front ends answer identically. Inside the cluster Ray moves bytes between its own
processes; clients only ever reach the msgpack wire.

With a certificate (`http_options`) Serve's proxy speaks TLS on its one listener, the WebSocket route and the probes
alike; it reads the files once, when it starts (renewal: a restart, not the single server's SIGHUP).

Differences from the single-process server: messages are capped at 16 MiB (`RAY_PROXY_MAX_MESSAGE_BYTES`, the
WebSocket limit of Serve's uvicorn proxy, which Serve does not expose); there is no `message_timeout_s` (the proxy
reads a message's pieces itself; the router sees it whole and bounds the bytes it holds, `max_incoming_bytes`); and
`/metrics` speaks for the ingress (its requests, latencies and connections); batch sizes and queue lengths are in
Ray's own metrics (`ray_serve_*`).
"""

# No `from __future__ import annotations` here: FastAPI must see the real `WebSocket` annotation of the route through
# Ray's class-based view, else it validates the argument as a query parameter and closes every socket with 1008.
import asyncio
import dataclasses
import itertools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..extras import extra_imports
from ..fileio import STOP_PRIORITY
from ..logcapture import is_terminal

with extra_imports():  # before fastapi, which ray[serve] brings: a missing ray names its extra
    from ray import serve
with extra_imports():
    from fastapi import FastAPI, Request, WebSocket
    from fastapi.responses import PlainTextResponse
    from prometheus_client import CollectorRegistry, generate_latest
    from ray.exceptions import RayActorError
    from ray.serve.config import HTTPOptions
    from ray.serve.exceptions import BackPressureError
    from ray.serve.handle import DeploymentHandle

from .adapters import RequestError
from .codec import DEFAULT_LIMITS, CodecError, Limits, packb, unpackb
from .logformat import log_to_stderr
from .server import (
    DRAINING_TEXT,
    IncomingBudget,
    RefusalLog,
    ServerConfig,
    UnusableLog,
    _log,
    announce_listening,
    authorized,
    client_agent,
    close_policy,
    error_text,
    failure_status,
    first_request_warnings,
    log_failure,
    peer_name,
    reply_fields,
    request_metrics,
    run_batch,
    served_labels,
    server_metadata,
    slowest_ms,
    state_metrics,
    stuck_text,
    timed_out_text,
    tls_expiry_metric,
    unavailable_text,
    warm_up,
)
from .tls import ServingCertificate

__all__ = ["RAY_PROXY_MAX_MESSAGE_BYTES", "PolicyReplica", "WireIngress", "build_app", "http_options", "run",
           "serve_until_signal"]

REPLICA_FAILED_TEXT = "internal server error: a replica failed; retry"
# a replica's status for a result no robot should run: counted `error` by the router, whose `refused` line is windowed
# as the replica's `reply_failed` one is (`UnusableLog`), not written per request
UNUSABLE = "unusable"
RAY_PROXY_MAX_MESSAGE_BYTES = 16 * 2**20  # uvicorn's default `ws_max_size`; Serve's proxy refuses more with 1009
# Serve's proxy loads its certificate when it starts, and nothing reloads it: the single server's SIGHUP has no match
RENEW_BY_RESTART = ("renew it and replace the --tls-cert/--tls-key files, then restart `worldpolicy serve --replicas` "
                    "(SIGTERM drains): Ray Serve's proxy reads them only when it starts")

_KEY_SETS_HELD = 256  # key sets a replica remembers (`PolicyReplica._first_warnings`); new ones past it are not judged

_app = FastAPI(title="worldpolicy", docs_url=None, redoc_url=None, openapi_url=None)


class PolicyReplica:
    """One loaded policy; decodes, validates and batches the frames Ray routes to it."""

    def __init__(
        self,
        loader: Callable[[], Any],
        key_map: dict[str, str] | None,
        limits: Limits,
        max_batch: int,
        max_wait_ms: float,
        warmup_requests: int,
        batch_timeout_s: float | None = None,
        logs: tuple[str, bool] | None = None,
    ) -> None:
        if logs is not None:  # before the policy loads: its warnings too
            log_to_stderr(*logs)
        self.batch_timeout_s = batch_timeout_s
        self._unusable = UnusableLog()  # reply_failed lines of results no robot should run
        self._stuck: tuple[float, int] | None = None  # (perf_counter at its start, requests) of a batch past the limit
        t0 = time.perf_counter()
        _log(logging.INFO, "loading")
        self.policy = loader()
        metadata, self.adapter = server_metadata(self.policy, ServerConfig(max_batch=max_batch, limits=limits), key_map)
        self.limits = limits
        # the key sets of the requests read so far (a tuple of a request's keys, in its order): a replica gets frames,
        # not connections, so it says the keys nothing reads once per key set (`first_request_warnings`), a few at most
        # for robot clients; bounded against a client that makes up keys
        self._key_sets: set[tuple[Any, ...]] = set()
        self._metadata = packb(metadata)
        self.infer.set_max_batch_size(max_batch)
        self.infer.set_batch_wait_timeout_s(max_wait_ms / 1000)
        warm_up(self.policy, self.adapter, warmup_requests, t0)

    def metadata(self) -> bytes:
        return self._metadata

    def _first_warnings(self, message: Any) -> list[str]:
        """What a request is told besides the policy's warnings the first time this replica reads its key set
        (`first_request_warnings`: keys nothing reads, camera slots read from one key, each logged); none after."""
        keys = tuple(message)
        if keys in self._key_sets or len(self._key_sets) >= _KEY_SETS_HELD:
            return []
        self._key_sets.add(keys)
        return first_request_warnings(self.adapter, message)

    def _stuck_text(self) -> str:
        started, size = self._stuck
        return stuck_text(size, time.perf_counter() - started, self.batch_timeout_s)

    def check_health(self) -> None:
        """Serve's health check (every `health_check_period_s`, 10 s by default): a replica whose batch has run past
        `batch_timeout_s` is unhealthy, so Serve routes nothing more to it and replaces it with a new one, a new
        process (the only way to end a policy call a thread is stuck in) while the other replicas serve. On Ray a
        replica's readiness and liveness are this one check; the single server's /readyz and /livez split them."""
        if self._stuck is not None:
            raise RuntimeError(self._stuck_text())

    async def _run(self, requests: list) -> tuple[list, list] | None:
        """run_batch in a thread; None (the clients are answered, the thread runs on) past `batch_timeout_s`."""
        call = asyncio.to_thread(run_batch, self.policy, requests)
        if self.batch_timeout_s is None:
            return await call
        started, call = time.perf_counter(), asyncio.ensure_future(call)
        done, _ = await asyncio.wait((call,), timeout=self.batch_timeout_s)
        if done:
            return call.result()
        self._stuck = (started, len(requests))
        _log(logging.ERROR, "batch_stuck", size=len(requests), seconds=round(time.perf_counter() - started, 3),
             batch_timeout_s=self.batch_timeout_s)

        def returned(_: asyncio.Future) -> None:  # before Serve replaced the replica: it serves again
            self._stuck = None
            call.cancelled() or call.exception()  # retrieved, so asyncio does not log it as never retrieved
            _log(logging.WARNING, "stuck_batch_returned", size=len(requests),
                 seconds=round(time.perf_counter() - started, 3))

        call.add_done_callback(returned)
        return None

    def __del__(self) -> None:
        """Serve calls this once when the replica shuts down, after its requests finished: release the model, as
        `worldpolicy serve` does after its last batch (`close_policy`). Also reached by garbage collection of a replica
        whose constructor failed, before it had a policy, and by garbage collection after Serve's call: closed once."""
        policy, self.policy = getattr(self, "policy", None), None
        close_policy(policy)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def infer(self, frames: list[bytes]) -> list[tuple[str, bytes | str]]:
        """Frames → ("ok", packed reply) or (metrics status, or `UNUSABLE`, error text), one per frame, in order."""
        if self._stuck is not None:  # one call at a time inside the policy: none joins a stuck one
            return [("stuck", unavailable_text(self._stuck_text()))] * len(frames)
        out: list[tuple[str, bytes | str] | None] = [None] * len(frames)
        valid, first = [], {}
        for i, frame in enumerate(frames):
            try:
                message = unpackb(frame, self.limits)
                valid.append((i, self.adapter.parse(message)))
                if said := self._first_warnings(message):
                    first[i] = said
            except (CodecError, RequestError) as exc:
                out[i] = ("bad_request", f"bad request: {exc}")
            except Exception as exc:  # noqa: BLE001 - a request our checks missed fails alone, not its batch
                log_failure("request_failed", exc)
                out[i] = ("bad_request", f"bad request: {error_text(exc)}")
        started = time.perf_counter()
        ran = await self._run([r for _, r in valid]) if valid else ([], [])
        if ran is None:
            text = timed_out_text(self._stuck_text())
            return [("timeout", text) if item is None else item for item in out]
        results, said = ran
        infer_ms = (time.perf_counter() - started) * 1000
        replica = serve.get_replica_context().replica_id.unique_id
        for (i, _), result, warnings in zip(valid, results, said):
            if isinstance(result, BaseException):
                out[i] = (failure_status(result), error_text(result))
                continue
            try:
                reply = reply_fields(result, [*first[i], *warnings] if i in first else warnings)
                reply["server_timing"] = {"infer_ms": infer_ms, "batch_size": len(valid), "replica": replica}
                out[i] = ("ok", packb(reply))
            except Exception as exc:  # noqa: BLE001 - not a Prediction, or unsafe actions: this request only
                text, windowed = self._unusable.refusal(exc)
                out[i] = (UNUSABLE if windowed else "error", text)
        return out  # type: ignore[return-value]


def _peer(conn: Request | WebSocket) -> str | None:
    return peer_name((conn.client.host, conn.client.port)) if conn.client else None


@serve.ingress(_app)
class WireIngress:
    """The openpi wire on `ws://host:port/` plus `GET /healthz`, `/readyz` and `/metrics`, in front of the replicas."""

    def __init__(self, replicas: DeploymentHandle, api_key: str | None, max_message_bytes: int,
                 tls_not_after: float | None = None, logs: tuple[str, bool] | None = None,
                 max_incoming_bytes: int = ServerConfig.max_incoming_bytes) -> None:
        if logs is not None:
            log_to_stderr(*logs)
        self.replicas = replicas
        self.api_key = api_key
        self.max_message_bytes = max_message_bytes
        self._incoming = IncomingBudget(max_incoming_bytes)  # frames read and not yet answered, over all connections
        self.registry = CollectorRegistry()
        self.requests, self.latency = request_metrics(self.registry, "Ingress time per request (frame in to reply out)")
        # as the single server's: the connections open on this router, ready once a replica gave the metadata frame
        connections, ready, self._info = state_metrics(self.registry)
        connections.set_function(lambda: len(self._sockets))
        ready.set_function(lambda: int(self._metadata is not None and not self._draining))
        if tls_not_after is not None:  # Serve's proxy serves TLS: the end of its certificate, as the single server's
            tls_expiry_metric(self.registry, lambda: tls_not_after)
        # the metadata frame is the same from every replica: fetched once (through the replicas' bounded queue, so the
        # first fetch can be refused as busy), then every connection and /readyz answer from this copy
        self._metadata: bytes | None = None
        self._metadata_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._draining = False
        self._active = 0  # requests read and not yet answered
        self._abandoned = 0  # unanswered at the drain deadline: their connections close there, not vanish
        self._sockets: set[WebSocket] = set()
        self._refusals = RefusalLog()

    async def drain(self, timeout_s: float) -> int:
        """SIGTERM, before the application is deleted (which drops every socket at once): refuse new work, give the
        requests in flight up to `timeout_s` to be answered, then close every connection with 1001. Returns how many
        requests were still unanswered (abandoned)."""
        self._draining = True
        _log(logging.INFO, "draining", active=self._active, connections=len(self._sockets))
        deadline = time.perf_counter() + timeout_s
        while self._active and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        abandoned = self._abandoned = self._active
        if abandoned:
            self.requests.labels("abandoned").inc(abandoned)
            _log(logging.WARNING, "abandoned", requests=abandoned, drain_timeout_s=timeout_s)
        for ws in list(self._sockets):
            try:
                await ws.close(code=1001, reason="worldpolicy: draining")
            except Exception:  # noqa: BLE001, S110 - already closed
                pass
        self._refusals.flush()
        return abandoned

    async def _fetch_metadata(self) -> bytes:
        if self._metadata is None:
            async with self._metadata_lock:
                if self._metadata is None:
                    metadata = await self.replicas.metadata.remote()
                    self._info.labels(*served_labels(unpackb(metadata))).set(1)
                    self._metadata = metadata
        return self._metadata

    def _authorized(self, headers: Any) -> bool:
        return authorized(headers.getlist("authorization"), self.api_key)

    @_app.get("/healthz")
    def healthz(self) -> PlainTextResponse:
        return PlainTextResponse("OK\n")

    @_app.get("/livez")
    def livez(self) -> PlainTextResponse:
        """The ingress answers; a replica stuck past `batch_timeout_s` fails Serve's own health check instead
        (`PolicyReplica.check_health`), which replaces it."""
        return PlainTextResponse("OK\n")

    @_app.get("/readyz")
    async def readyz(self) -> PlainTextResponse:
        """200 once a replica has answered the metadata call (each has loaded and warmed up its policy before it takes
        requests); after that from the cached metadata, never through the replicas' (possibly full) queue."""
        if self._draining:
            return PlainTextResponse("draining\n", status_code=503)
        if self._metadata is None:
            try:
                await asyncio.wait_for(self._fetch_metadata(), timeout=5)
            except Exception:  # noqa: BLE001 - no replica up (yet), or their queues are full: not ready yet
                return PlainTextResponse("loading\n", status_code=503)
        return PlainTextResponse("ready\n")

    @_app.get("/metrics")
    async def metrics(self, request: Request) -> PlainTextResponse:
        """On the event loop (async), where `RefusalLog` keeps its windows; a plain def ran in a thread pool."""
        if not self._authorized(request.headers):
            self._refusals("auth_refused", "unauthorized", path="/metrics", peer=_peer(request))
            self.requests.labels("unauthorized").inc()
            return PlainTextResponse("missing or wrong API key (send 'Authorization: Api-Key <key>')\n", 401,
                                     headers={"WWW-Authenticate": "Api-Key"})
        return PlainTextResponse(generate_latest(self.registry).decode(), media_type="text/plain; version=0.0.4")

    async def _refuse(self, ws: WebSocket, conn: int, text: str, code: int, status: str,
                      windowed: bool = False) -> int:
        """openpi error convention: one text frame, then the close; logged like the single server's refusals."""
        self.requests.labels(status).inc()
        self._refusals("refused", status, windowed, conn=conn, peer=_peer(ws), reason=text[:500])
        try:
            await ws.send_text(text)
            await ws.close(code=code)
        except Exception:  # noqa: BLE001, S110 - the client is already gone
            pass
        return code

    async def _call(self, ws: WebSocket, conn: int, call: Any) -> Any:
        """Await a replica call; on failure refuse the client (busy: 1013, a failed replica: 1011) and return None."""
        try:
            return await call
        except BackPressureError:
            await self._refuse(ws, conn, "server busy: every replica's queue is full; retry later", 1013, "busy")
        except Exception as exc:  # noqa: BLE001 - a replica died or failed: this client gets the text
            log_failure("replica_failed", exc, conn=conn)
            # a dead replica's error names its actor, pid and node: those stay in the log
            text = REPLICA_FAILED_TEXT if isinstance(exc, RayActorError) else f"internal server error: {error_text(exc)}"
            await self._refuse(ws, conn, text[:500], 1011, "error")
        return None

    @_app.websocket("/")
    async def wire(self, ws: WebSocket) -> None:
        conn = next(self._ids)
        if not self._authorized(ws.headers):
            self._refusals("auth_refused", "unauthorized", path="/", peer=_peer(ws))
            self.requests.labels("unauthorized").inc()
            await ws.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        if self._draining:  # before accept: the handshake is refused; the client reconnects elsewhere
            self.requests.labels("draining").inc()
            await ws.close(code=1001)
            return
        await ws.accept()
        _log(logging.INFO, "connect", conn=conn, peer=_peer(ws),
             client=client_agent(ws.headers.getlist("user-agent")))
        self._sockets.add(ws)
        code, answered, opened = None, [0, None], time.perf_counter()
        try:
            code = await self._session(ws, conn, answered)
        finally:
            self._sockets.discard(ws)
            _log(logging.INFO, "disconnect", conn=conn, peer=_peer(ws), code=code, requests=answered[0],
                 seconds=round(time.perf_counter() - opened, 3), slowest_ms=slowest_ms(answered[1]))

    async def _session(self, ws: WebSocket, conn: int, answered: list[Any]) -> int | None:
        """Metadata, then one reply per request, counted in `answered[0]` (the slowest's ms in `answered[1]`) for the
        disconnect line; returns the close code (the client's, or ours), None if unknown."""
        metadata = await self._call(ws, conn, self._fetch_metadata())
        if metadata is None:
            return None
        if not await self._send(ws, conn, metadata):
            return None
        held = [0]  # this connection's bytes counted in `_incoming`
        pending = asyncio.ensure_future(self._read(ws, held))
        try:
            while True:
                message = await pending
                if message["type"] == "websocket.disconnect":
                    return message.get("code")
                t0 = time.perf_counter()
                frame = message.get("bytes")
                if frame is None:
                    text = "bad request: expected a binary msgpack frame, got a text frame"
                    return await self._refuse(ws, conn, text, 1011, "bad_request")
                if self._draining:
                    return await self._refuse(ws, conn, DRAINING_TEXT, 1001, "draining")
                if len(frame) > self.max_message_bytes:
                    self.requests.labels("too_big").inc()
                    reason = f"message over max_message_bytes={self.max_message_bytes}"
                    self._refusals("refused", "too_big", conn=conn, peer=_peer(ws), reason=reason)
                    await ws.close(code=1009, reason=reason)
                    return 1009
                if (text := self._incoming.over()) is not None:
                    return await self._refuse(ws, conn, text, 1013, "busy")
                # listen while the replica works: a client that leaves mid-request is `vanished`, not `ok`
                pending = asyncio.ensure_future(self._read(ws, held))
                self._active += 1
                try:
                    call = asyncio.ensure_future(self._call(ws, conn, self.replicas.infer.remote(frame)))
                    await asyncio.wait((call, pending), return_when=asyncio.FIRST_COMPLETED)
                    if not call.done() and pending.result()["type"] == "websocket.disconnect":
                        call.add_done_callback(lambda c: c.cancelled() or c.exception())
                        self._vanished(ws, conn)
                        return pending.result().get("code")
                    result = await call
                    if result is None:
                        return 1011
                    status, payload = result
                    if status != "ok":  # a request that never reached the policy of a stuck replica: try again later
                        code, windowed = 1013 if status == "stuck" else 1011, status == UNUSABLE
                        return await self._refuse(ws, conn, payload, code, "error" if windowed else status, windowed)
                    if not await self._send(ws, conn, payload):
                        return None
                finally:
                    self._active -= 1
                    # answered (or failed): its bytes are no longer held, nor counted while the robot is idle
                    self._free(held, len(frame))
                    del message, frame
                self.requests.labels("ok").inc()
                took = time.perf_counter() - t0
                answered[0], answered[1] = answered[0] + 1, max(answered[1] or 0.0, took * 1000)
                self.latency.observe(took)
        finally:
            pending.cancel()
            self._free(held, held[0])

    async def _read(self, ws: WebSocket, held: list[int]) -> dict[str, Any]:
        """The next message of `ws`. Serve's proxy hands over whole messages only (it reads the fragments itself):
        a frame's bytes count against `max_incoming_bytes` from here, and in `held[0]`, until `_free`."""
        message = await ws.receive()
        size = len(message.get("bytes") or b"")
        held[0] += size
        self._incoming.add(size)
        return message

    def _free(self, held: list[int], size: int) -> None:
        held[0] -= size
        self._incoming.add(-size)

    async def _send(self, ws: WebSocket, conn: int, data: bytes) -> bool:
        try:
            await ws.send_bytes(data)
        except Exception:  # noqa: BLE001 - the peer is gone (Starlette raises several kinds for that)
            self._vanished(ws, conn)
            return False
        return True

    def _vanished(self, ws: WebSocket, conn: int) -> None:
        if self._abandoned:  # closed by the drain: counted as abandoned there
            return
        self.requests.labels("vanished").inc()
        _log(logging.INFO, "vanished", conn=conn, peer=_peer(ws))


def build_app(
    loader: Callable[[], Any],
    *,
    num_replicas: int = 2,
    max_batch: int = ServerConfig.max_batch,
    max_wait_ms: float = ServerConfig.max_wait_ms,
    api_key: str | None = None,
    key_map: dict[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    warmup_requests: int = 0,
    max_queue: int = 64,
    max_connections: int = 1024,
    batch_timeout_s: float | None = None,
    max_incoming_bytes: int = ServerConfig.max_incoming_bytes,
    replica_actor_options: dict[str, Any] | None = None,
    ingress_actor_options: dict[str, Any] | None = None,
    tls_not_after: float | None = None,
    logs: tuple[str, bool] | None = None,
) -> serve.Application:
    """The Ray Serve application: `loader()` runs once in every replica (e.g. `Policy.from_pretrained(...)` on its
    GPU, `replica_actor_options={"num_gpus": 1}`). Deploy with `run(app, port=...)` or `serve.run`. `max_queue`
    requests may wait per replica before clients get "server busy" (close 1013); `max_connections` WebSocket
    connections may be open at once (Ray counts each as one ongoing request of the ingress), and past them `max_queue`
    handshakes wait in Serve's proxy for one to close (Serve's `max_queued_requests` of the ingress; its default,
    no bound, let every further handshake and probe hang until its client gave up); more are refused at once with an
    HTTP error. `max_incoming_bytes`: the bytes of requests the router holds (read, not yet answered) over all
    connections, past which the connection that went over gets "server busy" (close 1013; `IncomingBudget`).
    `batch_timeout_s`: a
    replica whose batch runs longer answers its clients with an error and fails Serve's health check, which
    replaces it (`PolicyReplica.check_health`); None, the default, sets no limit. `tls_not_after`: when Serve's proxy
    serves TLS (`http_options`), its certificate's end (POSIX seconds) for /metrics'
    `worldpolicy_tls_cert_expiry_timestamp_seconds`. `logs`: (log format, verbose) of `worldpolicy serve`, whose log
    the replicas and the router then write in (`logformat.log_to_stderr`: their stderr, which Ray forwards to the
    command's, prefixed with the process, `(ServeReplica:… pid=…)`), Serve's own log files JSON with `json`; None:
    logging as the process has it."""
    config = ServerConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key, limits=limits,
                          max_queue=max_queue, max_connections=max_connections, batch_timeout_s=batch_timeout_s,
                          max_incoming_bytes=max_incoming_bytes)
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(f"num_replicas={num_replicas!r} must be an int >= 1")
    if limits.max_message_bytes > RAY_PROXY_MAX_MESSAGE_BYTES:
        _log(logging.WARNING, "max_message_bytes_capped", asked=limits.max_message_bytes,
             used=RAY_PROXY_MAX_MESSAGE_BYTES, why="Ray Serve's proxy refuses larger WebSocket messages")
        limits = dataclasses.replace(
            limits,
            max_message_bytes=RAY_PROXY_MAX_MESSAGE_BYTES,
            max_array_bytes=min(limits.max_array_bytes, RAY_PROXY_MAX_MESSAGE_BYTES),
        )
    # Serve's own lines (a request's `CALL infer OK`): JSON in its log files (Serve's stream to stderr keeps its text)
    serve_logs = {"logging_config": {"encoding": "JSON"}} if logs is not None and logs[0] == "json" else {}
    replica = serve.deployment(
        PolicyReplica,
        num_replicas=num_replicas,
        max_ongoing_requests=2 * max_batch,  # one batch running, the next one filling; the rest wait in Serve's queue
        max_queued_requests=max_queue * num_replicas,
        ray_actor_options=replica_actor_options or {}, **serve_logs,
    )
    # every open WebSocket holds one of the ingress's ongoing-request slots for as long as it stays open; past them,
    # Serve's proxy queues handshakes (and probes) per proxy: bounded, the rest are refused at once instead of hanging
    ingress = serve.deployment(
        WireIngress, max_ongoing_requests=max_connections, max_queued_requests=max_queue,
        ray_actor_options=ingress_actor_options or {}, **serve_logs,
    )
    replicas = replica.bind(loader, key_map, limits, max_batch, max_wait_ms, warmup_requests, batch_timeout_s, logs)
    # the key as checked
    return ingress.bind(replicas, config.api_key, limits.max_message_bytes, tls_not_after, logs, max_incoming_bytes)


def run(app: serve.Application, host: str = "0.0.0.0", port: int = 8000, name: str = "worldpolicy",
        certificate: ServingCertificate | None = None) -> DeploymentHandle:
    """Start Serve's HTTP proxy on host:port (wss:// with `certificate`: `http_options`) and deploy `app` at `/`
    (returns once every replica is up)."""
    serve.start(http_options=http_options(host, port, certificate))
    return serve.run(app, name=name, route_prefix="/")


def check_listen(host: str, port: int) -> None:
    """ValueError in the single server's words when host:port cannot be listened on (in use, not this machine's...):
    checked before Serve starts its proxy, whose failure is pages of actor tracebacks and no clear exit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(address)
    except OSError as exc:
        raise ValueError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})") from None


def http_options(host: str, port: int, certificate: ServingCertificate | None = None) -> HTTPOptions:
    """What Serve's proxy listens with. With `certificate` (loaded and checked: `tls.load_pair`), TLS on that one
    listener, which serves the WebSocket route and the probes alike (wss://, https://), from the files it was loaded
    from as absolute paths: the proxy is a process of its own, in a working directory of its own, and reads them once,
    when it starts. No `ssl_keyfile_password`: an encrypted key is refused, as by the single server. No
    `ssl_ca_certs`: Serve's uvicorn would load it without asking clients for a certificate."""
    tls = {} if certificate is None else {
        "ssl_certfile": os.path.abspath(certificate.cert), "ssl_keyfile": os.path.abspath(certificate.key)}
    return HTTPOptions(host=host, port=port, **tls)


def check_http_options(wanted: HTTPOptions, actual: HTTPOptions) -> None:
    """Serve already running on the cluster keeps its own proxy, address and TLS files alike (serve.start ignores new
    http_options)."""
    given = f"--host {wanted.host} --port {wanted.port}"
    if (actual.host, actual.port) != (wanted.host, wanted.port):
        raise ValueError(
            f"{given}: Ray Serve already runs on this cluster with its HTTP proxy on {actual.host}:{actual.port}, "
            f"which it cannot move; pass --host {actual.host} --port {actual.port}, or serve on another Ray cluster"
        )
    if (actual.ssl_certfile, actual.ssl_keyfile) != (wanted.ssl_certfile, wanted.ssl_keyfile):
        if actual.ssl_certfile is None:
            serving, fix = "without TLS", "leave out --tls-cert/--tls-key (a proxy in front may end TLS)"
        else:
            serving = f"with TLS from {actual.ssl_certfile} and {actual.ssl_keyfile}"
            fix = f"pass --tls-cert {actual.ssl_certfile} --tls-key {actual.ssl_keyfile}"
        asked = "no TLS" if wanted.ssl_certfile is None else f"{wanted.ssl_certfile} and {wanted.ssl_keyfile}"
        raise ValueError(
            f"{given}: Ray Serve already runs on this cluster with its HTTP proxy {serving}, which it cannot change "
            f"(asked: {asked}); {fix}, or serve on another Ray cluster"
        )


def check_capacity(num_replicas: int, actor_options: dict[str, Any], cluster: dict[str, float]) -> None:
    """ValueError naming --replicas when the cluster cannot place every replica (Serve would wait for ever)."""
    gpus = actor_options.get("num_gpus") or 0
    resource, each = ("GPU", gpus) if gpus else ("CPU", actor_options.get("num_cpus", 1))
    have = cluster.get(resource, 0)
    if each and num_replicas * each > have:
        raise ValueError(
            f"--replicas {num_replicas} needs {num_replicas * each:g} {resource} ({each:g} per replica) but the Ray "
            f"cluster has {have:g} {resource}; lower --replicas{' or use --device cpu' if gpus else ''}, or add nodes"
        )


def serve_until_signal(
    loader: Callable[[], Any],
    *,
    num_replicas: int,
    host: str,
    port: int,
    gpus_per_replica: float | None = None,
    name: str = "worldpolicy",
    drain_timeout_s: float = 30.0,
    certificate: ServingCertificate | None = None,
    **options: Any,
) -> int:
    """`worldpolicy serve --replicas N`: join the Ray cluster this machine belongs to (`RAY_ADDRESS` or a local
    `ray start`), else start a local one; deploy N replicas (`gpus_per_replica`, default one GPU each when the cluster
    has GPUs) behind ws://host:port (wss:// with `certificate`, served by Serve's proxy: `http_options`); serve until
    SIGTERM, SIGUSR1 or SIGINT (`fileio.STOP_PRIORITY`) (also effective while deploying), then delete this
    application (Serve and Ray themselves only when this process started them). With TLS, SIGHUP logs
    `tls_not_reloaded` (the proxy cannot reload its pair) instead of ending the process. Returns the exit code."""
    import ray
    from ray.serve._private.constants import SERVE_CONTROLLER_NAME, SERVE_NAMESPACE

    stops = STOP_PRIORITY
    # put back when it returns; without TLS SIGHUP keeps its default (the process ends), as under the single server
    hup = [signal.SIGHUP] if certificate is not None and hasattr(signal, "SIGHUP") else []  # Windows has no SIGHUP
    before = {sig: signal.getsignal(sig) for sig in (*stops, *hup)}
    # A local Ray instance's processes (GCS, raylet, dashboard and agents; not its actors' workers, which get groups of
    # their own) are in this process's group,
    # which a supervisor signals as a whole (Slurm's scancel, systemd's control-group, `timeout`, `kill -- -PGID`):
    # they inherit a mask blocking the stop signals, so only this process acts on them, drains, and stops them itself
    # (ray.shutdown's SIGTERM waits too: its SIGKILL follows a second later). A stop signal arriving meanwhile waits,
    # pending, for the handlers below. Harmless when joining a cluster, where ray.init starts no process. (Windows has
    # no signal masks.)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops) if hasattr(signal, "pthread_sigmask") else None
    if not is_terminal(sys.stderr):  # Ray colours the `(ServeReplica:… pid=…)` prefix of the lines it forwards, always
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")  # no escape codes in a file or a log pipeline; read per line
    started_serve = deployed = False
    stop = threading.Event()
    try:
        ray.init()
        for sig in stops:  # after ray.init, which installs its own
            signal.signal(sig, lambda *_: stop.set())
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    if hup:  # a renewal habit of the single server: said, not a silent exit without a drain
        signal.signal(signal.SIGHUP, lambda *_: _log(logging.WARNING, "tls_not_reloaded", cert=certificate.cert,
                                                      detail=RENEW_BY_RESTART))
    try:
        if gpus_per_replica is None:
            gpus_per_replica = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        replica_options = {"num_gpus": gpus_per_replica}
        check_capacity(num_replicas, replica_options, ray.cluster_resources())
        app = build_app(
            loader, num_replicas=num_replicas, replica_actor_options=replica_options,
            ingress_actor_options={"num_cpus": 0}, **options,  # the router reserves no CPU a replica could use
            tls_not_after=None if certificate is None else certificate.current.not_after,
        )
        try:
            controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
        except ValueError:
            controller = None
        wanted = http_options(host, port, certificate)
        if controller is None:
            check_listen(host, port)
            started_serve = True
            serve.start(http_options=wanted)  # returns once the proxy listens
        else:
            check_http_options(wanted, ray.get(controller.get_http_config.remote()))
        announce_listening(host, port, options.get("api_key"), certificate, renewal=RENEW_BY_RESTART)
        deployed = True
        serve._run(app, name=name, route_prefix="/", _blocking=False)  # a stop signal must work while it deploys
        while not stop.wait(0.5):
            status = serve.status().applications.get(name)
            if status is not None and status.status == "RUNNING":
                break
            if status is not None and status.status == "DEPLOY_FAILED":
                raise RuntimeError(f"the deployment failed: {status.message[:2000]}")
        else:
            _log(logging.INFO, "stopped_while_deploying", replicas=num_replicas)
            return 0
        _log(logging.INFO, "ready", replicas=num_replicas, gpus_per_replica=gpus_per_replica, host=host, port=port)
        stop.wait()
        # deleting the application drops every socket at once: the ingress drains first (as the single server does)
        abandoned = serve.get_app_handle(name).drain.remote(drain_timeout_s).result(timeout_s=drain_timeout_s + 30)
        return 1 if abandoned else 0
    finally:
        try:
            if deployed:
                serve.delete(name)  # this application only: others on a shared cluster keep running
            if started_serve:
                serve.shutdown()
        finally:
            ray.shutdown()  # stops the local instance this process started; from a joined cluster it only disconnects
            for sig, handler in before.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        _log(logging.INFO, "stopped")
