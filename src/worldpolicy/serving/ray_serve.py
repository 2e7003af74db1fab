"""Scale-out on Ray Serve: several policy replicas (one GPU each) behind one openpi-wire WebSocket endpoint.

Two deployments (needs the `ray` extra): `WireIngress` speaks the wire (metadata frame, API key, message bound,
errors as text + close 1011) through a FastAPI WebSocket route and forwards each request's *raw frame* to
`PolicyReplica`; Ray routes frames across replicas and `@serve.batch` fuses concurrent ones inside a replica into
one `policy.act_batch`. Frames are decoded and validated in the replica by the same codec and adapter as
`worldpolicy serve`, so both front ends answer identically. Inside the cluster Ray moves bytes between its own
processes; clients only ever reach the msgpack wire.
"""

# No `from __future__ import annotations` here: FastAPI must see the real `WebSocket` annotation of the route through
# Ray's class-based view, else it validates the argument as a query parameter and closes every socket with 1008.
import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from .adapters import ObservationAdapter, RequestError, warmup_message
from .codec import DEFAULT_LIMITS, CodecError, Limits, packb, unpackb
from .server import ServerConfig, _log, api_key_matches, error_text, reply_fields, run_batch, server_metadata

__all__ = ["PolicyReplica", "WireIngress", "build_app", "run", "serve_until_signal"]

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
    ) -> None:
        self.policy = loader()
        self.adapter = ObservationAdapter(self.policy.embodiment, key_map)
        self.limits = limits
        self._metadata = packb(server_metadata(self.policy, ServerConfig(max_batch=max_batch, limits=limits)))
        self.infer.set_max_batch_size(max_batch)
        self.infer.set_batch_wait_timeout_s(max_wait_ms / 1000)
        if warmup_requests:
            request = self.adapter.parse(warmup_message(self.policy.embodiment))
            for result in run_batch(self.policy, [request] * warmup_requests):
                if isinstance(result, BaseException):
                    raise RuntimeError(f"warm-up request failed: {result}") from result

    def metadata(self) -> bytes:
        return self._metadata

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def infer(self, frames: list[bytes]) -> list[tuple[bool, bytes | str]]:
        """Frames → (True, packed reply) or (False, error text), one per frame, in order."""
        out: list[tuple[bool, bytes | str] | None] = [None] * len(frames)
        valid = []
        for i, frame in enumerate(frames):
            try:
                valid.append((i, self.adapter.parse(unpackb(frame, self.limits))))
            except (CodecError, RequestError) as exc:
                out[i] = (False, f"bad request: {exc}")
        started = time.perf_counter()
        results = await asyncio.to_thread(run_batch, self.policy, [r for _, r in valid]) if valid else []
        infer_ms = (time.perf_counter() - started) * 1000
        replica = serve.get_replica_context().replica_id.unique_id
        for (i, _), result in zip(valid, results):
            if isinstance(result, BaseException):
                out[i] = (False, error_text(result))
                continue
            reply = reply_fields(result)
            reply["server_timing"] = {"infer_ms": infer_ms, "batch_size": len(valid), "replica": replica}
            out[i] = (True, packb(reply))
        return out  # type: ignore[return-value]


@serve.ingress(_app)
class WireIngress:
    """The openpi wire on `ws://host:port/` plus `GET /healthz`, in front of the replicas."""

    def __init__(self, replicas: DeploymentHandle, api_key: str | None, max_message_bytes: int) -> None:
        self.replicas = replicas
        self.api_key = api_key
        self.max_message_bytes = max_message_bytes

    @_app.get("/healthz")
    def healthz(self) -> PlainTextResponse:
        return PlainTextResponse("OK\n")

    @_app.websocket("/")
    async def wire(self, ws: WebSocket) -> None:
        if self.api_key is not None and not api_key_matches(ws.headers.get("authorization"), self.api_key):
            await ws.close(code=1008)  # before accept: the handshake is refused (HTTP 403)
            return
        await ws.accept()
        await ws.send_bytes(await self.replicas.metadata.remote())
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = message.get("bytes")
            if frame is None:
                await ws.send_text("bad request: expected a binary msgpack frame, got a text frame")
                await ws.close(code=1011)
                return
            if len(frame) > self.max_message_bytes:
                await ws.close(code=1009, reason=f"message over max_message_bytes={self.max_message_bytes}")
                return
            ok, payload = await self.replicas.infer.remote(frame)
            if not ok:
                await ws.send_text(payload)
                await ws.close(code=1011)
                return
            await ws.send_bytes(payload)


def build_app(
    loader: Callable[[], Any],
    *,
    num_replicas: int = 2,
    max_batch: int = 8,
    max_wait_ms: float = 5.0,
    api_key: str | None = None,
    key_map: dict[str, str] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    warmup_requests: int = 0,
    replica_actor_options: dict[str, Any] | None = None,
    ingress_actor_options: dict[str, Any] | None = None,
) -> serve.Application:
    """The Ray Serve application: `loader()` runs once in every replica (e.g. `Policy.from_pretrained(...)` on its
    GPU, `replica_actor_options={"num_gpus": 1}`). Deploy with `run(app, port=...)` or `serve.run`."""
    ServerConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, api_key=api_key, limits=limits)  # validate early
    if not isinstance(num_replicas, int) or num_replicas < 1:
        raise ValueError(f"num_replicas={num_replicas!r} must be an int >= 1")
    replica = serve.deployment(
        PolicyReplica,
        num_replicas=num_replicas,
        max_ongoing_requests=4 * max_batch,
        ray_actor_options=replica_actor_options or {},
    )
    ingress = serve.deployment(WireIngress, ray_actor_options=ingress_actor_options or {})
    replicas = replica.bind(loader, key_map, limits, max_batch, max_wait_ms, warmup_requests)
    return ingress.bind(replicas, api_key, limits.max_message_bytes)


def run(app: serve.Application, host: str = "0.0.0.0", port: int = 8000, name: str = "worldpolicy") -> DeploymentHandle:
    """Start Serve's HTTP proxy on host:port and deploy `app` at `/` (returns once every replica is up)."""
    serve.start(http_options={"host": host, "port": port})
    return serve.run(app, name=name, route_prefix="/")


def serve_until_signal(
    loader: Callable[[], Any],
    *,
    num_replicas: int,
    host: str,
    port: int,
    gpus_per_replica: float | None = None,
    **options: Any,
) -> None:
    """`worldpolicy serve --replicas N`: join the Ray cluster this machine belongs to (`RAY_ADDRESS` or a local
    `ray start`), else start a local one; deploy N replicas (`gpus_per_replica`, default one GPU each when the cluster
    has GPUs) behind ws://host:port; serve until SIGTERM/SIGINT, then shut the deployment down."""
    import ray

    ray.init()
    if gpus_per_replica is None:
        gpus_per_replica = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which installs its own
        signal.signal(sig, lambda *_: stop.set())
    try:
        app = build_app(
            loader, num_replicas=num_replicas, replica_actor_options={"num_gpus": gpus_per_replica},
            ingress_actor_options={"num_cpus": 0}, **options,  # the router reserves no CPU a replica could use
        )
        run(app, host=host, port=port)
        _log(logging.INFO, "ready", replicas=num_replicas, gpus_per_replica=gpus_per_replica, host=host, port=port)
        stop.wait()
        _log(logging.INFO, "draining", replicas=num_replicas)
    finally:
        serve.shutdown()
        ray.shutdown()
    _log(logging.INFO, "stopped")
