"""Scale-out: two Ray Serve replicas on CPU behind one openpi-wire endpoint (~30 s, most of it starting Ray).

Runs in the default suite: CI installs the `ray` extra through `all`, so a missing Ray fails here instead of skipping.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import ray
from ports import free_port
from ray import serve
from serving_standins import droid_request, expected_actions, http_get

import worldpolicy
from worldpolicy.serving.ray_serve import build_app, run


def _stand_in():
    from serving_standins import StandInPolicy  # imported inside the replica process

    return StandInPolicy(batch_cost_s=0.05)


@pytest.fixture(scope="module")
def ray_endpoint():
    port = free_port()
    # the replicas import the stand-in from here (and this module's own imports: tests/ports.py one folder up), and
    # worldpolicy from where this process does (a checkout's src/ run with PYTHONPATH, not the installed copy)
    here = Path(__file__).parent
    paths = [str(here), str(here.parent), str(Path(worldpolicy.__file__).parents[1])]
    sigterm = signal.getsignal(signal.SIGTERM)  # ray.init installs its own, which would outlive this module's tests
    ray.init(num_cpus=4, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})
    try:
        app = build_app(
            _stand_in, num_replicas=2, max_batch=4, max_wait_ms=20, api_key="ray-key-0001",
            replica_actor_options={"num_cpus": 0.5}, ingress_actor_options={"num_cpus": 0.5},
        )
        run(app, host="127.0.0.1", port=port)
        yield f"ws://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        signal.signal(signal.SIGTERM, sigterm)


def test_two_replicas_behind_one_endpoint(ray_endpoint):
    from worldpolicy.serving import AuthenticationError, RemotePolicy, ServerError

    assert http_get(ray_endpoint, "/healthz") == (200, "OK\n")
    with pytest.raises(AuthenticationError):
        RemotePolicy(ray_endpoint, api_key="wrong-key-0000")

    def client(i: int):
        with RemotePolicy(ray_endpoint, api_key="ray-key-0001", read_timeout_s=60) as policy:
            replicas, good = set(), 0
            for k in range(6):
                joints = np.full(7, i * 10 + k, np.float64)
                raw = policy.infer({**droid_request(joints), "prompt": f"task {i}"})
                good += np.allclose(raw["actions"], expected_actions(joints, f"task {i}"))
                replicas.add(raw["server_timing"]["replica"])
            return good, replicas

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(client, range(8)))
    assert [good for good, _ in results] == [6] * 8  # every client got its own answers
    assert len(set().union(*(r for _, r in results))) == 2  # both replicas served
    with RemotePolicy(ray_endpoint, api_key="ray-key-0001") as policy:
        meta = policy.metadata()
        assert meta["embodiment"] == "droid/joint_pos"
        assert meta["max_message_bytes"] == 16 * 2**20  # what Serve's proxy accepts, not the 64 MiB asked for
        # a replica's warnings about a request travel in its reply, as the single server's
        assert policy.infer(droid_request(np.zeros(7), "warn"))["warnings"] == [
            "stand-in: this request asked for a warning"]
        with pytest.raises(ServerError, match="bad request: .*'prompt'"):
            policy.infer({k: v for k, v in droid_request(np.zeros(7)).items() if k != "prompt"})


def test_one_bad_request_fails_alone_and_probes_answer(ray_endpoint):
    from worldpolicy.serving import RemotePolicy, ServerError

    assert http_get(ray_endpoint, "/readyz") == (200, "ready\n")
    bad = {**droid_request(np.zeros(7)), "observation/joint_position": [[1.0], [2.0, 3.0]]}

    def send(request):
        with RemotePolicy(ray_endpoint, api_key="ray-key-0001", read_timeout_s=60) as policy:
            try:
                return policy.infer(request)["actions"]
            except ServerError as exc:
                return str(exc)

    good = [{**droid_request(np.full(7, k)), "prompt": "fine"} for k in range(3)]
    requests = [bad, *good, {**droid_request(np.zeros(7)), "prompt": "nan"}]
    with ThreadPoolExecutor(len(requests)) as pool:  # concurrent: they share batches
        results = list(pool.map(send, requests))
    assert "bad request: observation/joint_position must be a numeric array, got a ragged list" in results[0]
    for k, actions in enumerate(results[1:4]):
        np.testing.assert_allclose(actions, expected_actions(np.full(7, k), "fine"))
    assert "unusable policy result (actions contain NaN, inf or values beyond float32's range)" in results[4]
    assert http_get(ray_endpoint, "/metrics")[0] == 401
    status, text = http_get(ray_endpoint, "/metrics", {"Authorization": "Api-Key ray-key-0001"})
    assert status == 200, text
    assert 'worldpolicy_requests_total{status="bad_request"}' in text and "worldpolicy_request_latency" in text
    assert 'worldpolicy_requests_total{status="error"} 1.0' in text  # the NaN reply, as the single server counts it


def test_more_open_connections_than_serve_default_slots(ray_endpoint):
    from worldpolicy.serving import RemotePolicy

    # Serve counts an open WebSocket as one ongoing request of the ingress (its default limit is 5)
    clients = [RemotePolicy(ray_endpoint, api_key="ray-key-0001", connect_timeout_s=5) for _ in range(8)]
    try:
        for k, client in enumerate(clients):
            raw = client.infer({**droid_request(np.full(7, k)), "prompt": "many"})
            np.testing.assert_allclose(raw["actions"], expected_actions(np.full(7, k), "many"))
    finally:
        for client in clients:
            client.close()


def test_handshakes_past_max_connections_wait_in_a_bounded_queue(ray_endpoint):
    """Serve queues what its ingress has no slot for (every open WebSocket holds one) without a bound by default:
    handshakes, and /healthz with them, hung until their clients gave up. With the ingress's own
    `max_queued_requests` (max_queue), a handshake past the queue is refused at once, and one gets in again once a
    connection closes."""
    from worldpolicy.serving import RemotePolicy, ServerRefusedError, ServerTimeoutError

    app = build_app(_stand_in, num_replicas=1, max_connections=1, max_queue=1,
                    replica_actor_options={"num_cpus": 0.25}, ingress_actor_options={"num_cpus": 0.25})
    serve.run(app, name="small", route_prefix="/small")
    url = ray_endpoint + "/small/"
    try:
        first = RemotePolicy(url)  # holds the one slot
        waiting: dict = {}

        def wait_in_the_queue() -> None:  # takes the queue's one place until the slot frees
            try:
                waiting["policy"] = RemotePolicy(url, connect_timeout_s=120)
            except Exception as exc:  # noqa: BLE001 - asserted below
                waiting["error"] = exc

        for _ in range(10):  # until one stays queued: just after `first` got in, Ray may still count it as queued
            waiting.clear()
            waiter = threading.Thread(target=wait_in_the_queue, daemon=True)
            waiter.start()
            waiter.join(3)  # refused at once while the place is not free yet: again
            if waiter.is_alive():
                break
        assert waiter.is_alive(), f"no handshake stayed in the queue: {waiting}"
        refused = None
        for _ in range(10):
            try:
                RemotePolicy(url, connect_timeout_s=2).close()
            except ServerTimeoutError:
                continue
            except ServerRefusedError as exc:
                refused = exc
                break
        assert refused is not None and "refused the connection with HTTP" in str(refused)
        assert waiter.is_alive() and not waiting  # still queued: neither in nor refused
        first.close()  # the slot frees: the queued handshake gets in
        waiter.join(120)
        assert "policy" in waiting, f"the queued handshake did not get in after the slot freed: {waiting}"
        with waiting["policy"] as later:
            raw = later.infer({**droid_request(np.zeros(7)), "prompt": "later"})
        np.testing.assert_allclose(raw["actions"], expected_actions(np.zeros(7), "later"))
    finally:
        serve.delete("small")


class _FakeSocket:
    """One binary frame, then a disconnect; records what the ingress sends (no Ray cluster needed)."""

    # Starlette's headers: a client's User-Agent, a tab in it (the `connect` line escapes it)
    headers = type("Headers", (), {"getlist": lambda self, key: ["sim\tarm-3"] if key == "user-agent" else []})()
    client = None

    def __init__(self) -> None:
        self.sent, self.frames = [], [{"type": "websocket.receive", "bytes": b"\x80"}]

    async def accept(self) -> None:
        pass

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.sent.append(("close", code))

    async def receive(self) -> dict:
        return self.frames.pop(0) if self.frames else {"type": "websocket.disconnect"}


@pytest.mark.parametrize(
    "failure, text, code, status",
    [
        (serve.exceptions.BackPressureError(num_queued_requests=9, max_queued_requests=8),
         "server busy: every replica's queue is full; retry later", 1013, "busy"),
        (RuntimeError("replica died"), "internal server error: RuntimeError: replica died", 1011, "error"),
        (ray.exceptions.ActorDiedError(), "internal server error: a replica failed; retry", 1011, "error"),
    ],
)
def test_a_full_queue_or_a_failed_replica_reaches_the_client_as_text(failure, text, code, status):
    import asyncio

    from prometheus_client import generate_latest

    from worldpolicy.serving.ray_serve import WireIngress

    class Replicas:  # mirrors the DeploymentHandle attributes the ingress calls
        class metadata:
            @staticmethod
            async def remote():
                return b"\x80"

        class infer:
            @staticmethod
            async def remote(frame):
                raise failure

    ingress = WireIngress.__mro__[1](Replicas(), None, 2**20)  # the class as written, without Serve's ASGI wrapper
    ws = _FakeSocket()
    asyncio.run(ingress.wire(ws))
    assert ws.sent == [b"\x80", text, ("close", code)]  # metadata frame, the error text, the close
    assert f'worldpolicy_requests_total{{status="{status}"}} 1.0' in generate_latest(ingress.registry).decode()


def _ingress(metadata_failures: list, infer=None, **options):
    """A bare WireIngress whose replica handle raises `metadata_failures` one by one, then answers b"\\x80"."""
    from worldpolicy.serving.ray_serve import WireIngress

    calls = []

    class Replicas:
        class metadata:
            @staticmethod
            async def remote():
                calls.append("metadata")
                if metadata_failures:
                    raise metadata_failures.pop(0)
                return b"\x80"

        class infer:
            @staticmethod
            async def remote(frame):
                return await infer(frame)

    return WireIngress.__mro__[1](Replicas(), None, 2**20, **options), calls


def test_the_ingress_metrics_say_when_the_proxys_certificate_expires():
    """With TLS on Serve's proxy, /metrics has the single server's expiry gauge: the end of the certificate served."""
    from prometheus_client import generate_latest

    from worldpolicy.serving.ray_serve import WireIngress

    name = "worldpolicy_tls_cert_expiry_timestamp_seconds"
    plain, _ = _ingress([])
    assert name not in generate_latest(plain.registry).decode()
    assert "process_start_time_seconds" in generate_latest(plain.registry).decode()  # the router's process, as ever
    tls = WireIngress.__mro__[1](plain.replicas, None, 2**20, tls_not_after=1_900_000_000.0)
    assert f"{name} 1.9e+09" in generate_latest(tls.registry).decode()


def test_metadata_is_fetched_once_and_a_full_queue_at_connect_is_busy(caplog):
    import asyncio
    import json
    import logging

    from prometheus_client import generate_latest

    busy = serve.exceptions.BackPressureError(num_queued_requests=9, max_queued_requests=8)
    ingress, calls = _ingress([busy])

    async def ok(frame):
        return "ok", b"reply"

    ingress.replicas.infer.remote = staticmethod(ok)
    ws = _FakeSocket()
    asyncio.run(ingress.wire(ws))  # the first metadata fetch finds every queue full: busy text + 1013, not a drop
    assert ws.sent == ["server busy: every replica's queue is full; retry later", ("close", 1013)]
    assert 'worldpolicy_requests_total{status="busy"} 1.0' in generate_latest(ingress.registry).decode()
    assert asyncio.run(ingress.readyz()).status_code == 200  # fetched now
    caplog.clear()  # the refused connection's lines above: only the two below are counted
    for _ in range(2):
        ws = _FakeSocket()
        with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
            asyncio.run(ingress.wire(ws))
        assert ws.sent == [b"\x80", b"reply"]
    assert asyncio.run(ingress.readyz()).status_code == 200
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "worldpolicy.serving"]
    assert [e["requests"] for e in lines if e["event"] == "disconnect"] == [1, 1]  # each answered its one request
    # its slowest reply's time, as on the single server (a stand-in's reply takes well under 0.01 ms here)
    assert all(e["slowest_ms"] is not None and e["slowest_ms"] >= 0 for e in lines if e["event"] == "disconnect")
    assert calls == ["metadata", "metadata"]  # once refused, once fetched; then from the cache


def test_a_client_gone_mid_request_is_vanished_and_refusals_are_logged(caplog):
    import asyncio
    import logging

    from prometheus_client import generate_latest

    async def slow(frame):
        await asyncio.sleep(0.2)
        return "ok", b"reply"

    ingress, _ = _ingress([], infer=slow)
    ws = _FakeSocket()  # one frame, then the client leaves while the replica still works on it
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        asyncio.run(ingress.wire(ws))
        asyncio.run(_FakeSocketText().run(ingress))
    assert ws.sent == [b"\x80"]
    text = generate_latest(ingress.registry).decode()
    assert 'status="vanished"} 1.0' in text and 'status="ok"' not in text
    events = [r.getMessage() for r in caplog.records]
    assert any('"event": "vanished"' in e for e in events)
    # which robot: its User-Agent, as the single server says it (`client_agent`)
    assert any('"event": "connect"' in e and '"client": "sim\\\\tarm-3"' in e for e in events)
    assert any('"event": "refused"' in e and '"status": "bad_request"' in e for e in events)
    assert any('"event": "disconnect"' in e and '"requests": 0' in e for e in events)  # nothing was answered
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="worldpolicy.serving"):
        ingress.api_key = "ray-key-0001"

        class Req:
            headers = _FakeSocket.headers
            client = None

        response = asyncio.run(ingress.metrics(Req()))  # async: on the loop, where refusals are summed up
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Api-Key"
    assert any('"event": "auth_refused"' in r.getMessage() for r in caplog.records)


class _FakeSocketText(_FakeSocket):
    def __init__(self) -> None:
        super().__init__()
        self.frames = [{"type": "websocket.receive", "text": "hello"}]

    async def run(self, ingress) -> None:
        await ingress.wire(self)


def test_a_local_ray_instance_inherits_blocked_stop_signals_and_one_sent_meanwhile_waits(monkeypatch):
    """`serve --replicas` starts Ray's processes with SIGTERM, SIGUSR1 and SIGINT blocked (a supervisor signalling the
    whole process group reaches only the command, which drains and stops them), and a stop signal arriving while Ray
    starts is kept for the command's own handler (the default SIGINT handler would raise KeyboardInterrupt here)."""
    from worldpolicy.serving.ray_serve import serve_until_signal

    seen = []

    def init() -> None:  # where Ray forks its processes, which inherit this thread's mask
        seen.append(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    def cluster_resources() -> dict:  # past the window: the pending SIGINT went to the command's handler
        seen.append(signal.getsignal(signal.SIGUSR1))
        raise LookupError("stop here")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "cluster_resources", cluster_resources)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with pytest.raises(LookupError, match="stop here"):
        serve_until_signal(_stand_in, num_replicas=2, host="127.0.0.1", port=free_port())
    assert {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT} <= seen[0]
    assert callable(seen[1])  # Slurm's advance warning drains as SIGTERM does, instead of killing the command
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before  # put back, as the handlers are
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_startup_checks_are_one_line_errors():
    from worldpolicy.serving.ray_serve import check_capacity, check_http_options, check_listen, http_options

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"^--host 127.0.0.1 --port {port}: cannot listen there \(Address"):
            check_listen("127.0.0.1", port)
    check_listen("127.0.0.1", port)  # free again
    with pytest.raises(ValueError, match="^--host 0.0.0.0 --port 8000: Ray Serve already runs .* 127.0.0.1:8001"):
        check_http_options(http_options("0.0.0.0", 8000), http_options("127.0.0.1", 8001))
    check_http_options(http_options("0.0.0.0", 8000), http_options("0.0.0.0", 8000))
    with pytest.raises(ValueError, match=r"^--replicas 3 needs 3 CPU \(1 per replica\) but the Ray cluster has 2 CPU"):
        check_capacity(3, {"num_gpus": 0}, {"CPU": 2.0})
    with pytest.raises(ValueError, match=r"^--replicas 4 needs 4 GPU .* has 2 GPU"):
        check_capacity(4, {"num_gpus": 1}, {"CPU": 64.0, "GPU": 2.0})
    check_capacity(2, {"num_gpus": 1}, {"CPU": 1.0, "GPU": 2.0})
    check_capacity(2, {"num_gpus": 0}, {"CPU": 2.0})


def test_serves_proxy_is_given_the_checked_pair_and_a_running_one_must_serve_the_same(tmp_path, monkeypatch):
    """What `serve --replicas --tls-cert/--tls-key` hands Ray (`HTTPOptions`), without starting it: the files the
    pair was checked from, as absolute paths (Serve's proxy runs in a working directory of its own), no key password
    (an encrypted key is refused before) and no client CA. A Serve instance already running keeps its proxy: one
    serving other files, or none, is a one-line error naming the flags."""
    from datetime import UTC, datetime, timedelta

    from certificates import make_certificate
    from ray.serve.config import HTTPOptions

    from worldpolicy.serving.ray_serve import check_http_options, http_options
    from worldpolicy.serving.tls import ServingCertificate

    now = datetime.now(UTC)
    made = make_certificate(tmp_path, "server", now - timedelta(hours=1), now + timedelta(days=30))
    monkeypatch.chdir(tmp_path)
    certificate = ServingCertificate("server.pem", "server.key")
    options = http_options("0.0.0.0", 8443, certificate)
    assert isinstance(options, HTTPOptions) and (options.host, options.port) == ("0.0.0.0", 8443)
    assert (options.ssl_certfile, options.ssl_keyfile) == (str(made.cert), str(made.key))
    assert options.ssl_keyfile_password is None and options.ssl_ca_certs is None
    plain = http_options("0.0.0.0", 8443)
    assert plain.ssl_certfile is None and plain.ssl_keyfile is None

    check_http_options(options, http_options("0.0.0.0", 8443, certificate))  # the same files: joined
    with pytest.raises(ValueError, match=r"^--host 0.0.0.0 --port 8443: Ray Serve already runs on this cluster with "
                       r"its HTTP proxy without TLS, which it cannot change \(asked: .*server.pem and .*server.key\); "
                       r"leave out --tls-cert/--tls-key"):
        check_http_options(options, plain)
    with pytest.raises(ValueError, match=rf"proxy with TLS from {made.cert} and {made.key}, which it cannot change "
                       rf"\(asked: no TLS\); pass --tls-cert {made.cert} --tls-key {made.key}, or serve on"):
        check_http_options(plain, options)


class _HeldSocket(_FakeSocket):
    """One binary frame, then stays open until the server closes it (a robot between requests)."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await super().close(code, reason)
        self.closed.set()

    async def receive(self) -> dict:
        if self.frames:
            return self.frames.pop(0)
        await self.closed.wait()
        return {"type": "websocket.disconnect", "code": 1001}


@pytest.mark.parametrize("timeout_s, abandoned", [(5.0, 0), (0.05, 1)])
def test_drain_answers_requests_in_flight_then_closes_with_1001(timeout_s, abandoned):
    """Deleting the application drops every socket at once: SIGTERM drains the ingress first."""
    import asyncio

    from prometheus_client import generate_latest

    async def slow(frame):
        await asyncio.sleep(0.3)
        return "ok", b"reply"

    ingress, _ = _ingress([], infer=slow)

    async def scenario():
        ws = _HeldSocket()
        ws.closed = asyncio.Event()
        session = asyncio.create_task(ingress.wire(ws))
        await asyncio.sleep(0.05)  # the request is with a replica
        left = await ingress.drain(timeout_s)
        late = _FakeSocket()
        await ingress.wire(late)  # a connection after the drain began
        await session  # an abandoned request's session ends when the drain closes its socket
        return ws, left, late, await ingress.readyz()

    ws, left, late, ready = asyncio.run(scenario())
    assert left == abandoned and late.sent == [("close", 1001)] and ready.status_code == 503
    if abandoned:
        assert ws.sent == [b"\x80", ("close", 1001)]
        metrics = generate_latest(ingress.registry).decode()
        assert 'status="abandoned"} 1.0' in metrics and 'status="vanished"' not in metrics  # counted once
    else:
        assert ws.sent == [b"\x80", b"reply", ("close", 1001)]  # answered, then closed going away


def test_a_replica_closes_its_policy_when_serve_shuts_it_down():
    """Serve calls a replica's `__del__` once at shutdown, after its requests: the replica releases the model there,
    as the single server does after its last batch. A replica whose loader failed has no policy and closes nothing."""
    from serving_standins import StandInPolicy

    from worldpolicy.serving.codec import DEFAULT_LIMITS
    from worldpolicy.serving.ray_serve import PolicyReplica

    stand_in = StandInPolicy()
    replica = PolicyReplica(lambda: stand_in, None, DEFAULT_LIMITS, max_batch=4, max_wait_ms=5, warmup_requests=0)
    replica.__del__()
    replica.__del__()  # garbage collection after Serve's call
    assert stand_in.closed == 1
    PolicyReplica.__new__(PolicyReplica).__del__()  # the constructor never ran: nothing to close, no error


def test_a_replica_past_batch_timeout_s_answers_its_clients_and_fails_serves_health_check(monkeypatch):
    """Serve replaces a replica whose health check fails: the only way to end a policy call a thread is stuck in.
    Until then its batch's clients get the timeout text and later frames the stuck one, without reaching the policy."""
    import asyncio
    import threading
    from types import SimpleNamespace

    from serving_standins import StandInPolicy

    from worldpolicy.serving.codec import DEFAULT_LIMITS, packb
    from worldpolicy.serving.ray_serve import PolicyReplica

    class Blocking(StandInPolicy):
        release = threading.Event()

        def _pay(self, n: int) -> None:
            self.release.wait(60)
            super()._pay(n)

    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8),
                              replica_id=SimpleNamespace(unique_id="replica-1"))
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)  # what @serve.batch asks of a replica
    stand_in = Blocking()
    replica = PolicyReplica(lambda: stand_in, None, DEFAULT_LIMITS, max_batch=4, max_wait_ms=5, warmup_requests=0,
                            batch_timeout_s=0.2)
    frame = packb(droid_request(np.zeros(7)))

    async def scenario() -> None:
        status, text = await replica.infer(frame)
        assert status == "timeout" and "the policy did not answer in time (stuck: a batch of 1 requests" in text
        with pytest.raises(RuntimeError, match=r"stuck: .* past batch_timeout_s=0.2"):
            replica.check_health()
        status, text = await replica.infer(frame)
        assert status == "stuck" and text.startswith("server unavailable: stuck:") and stand_in.calls == 0
        stand_in.release.set()  # returned before Serve replaced the replica: it serves again
        for _ in range(1000):
            if replica._stuck is None:
                break
            await asyncio.sleep(0.01)
        replica.check_health()
        assert (await replica.infer(frame))[0] == "ok"

    try:
        asyncio.run(scenario())
    finally:
        stand_in.release.set()


@pytest.mark.parametrize(("status", "code"), [("stuck", 1013), ("timeout", 1011)])
def test_the_ingress_closes_a_stuck_replicas_refusals_with_their_codes(status, code):
    import asyncio

    async def answer(frame):
        return status, "text of " + status

    ingress, _ = _ingress([], infer=answer)
    ws = _FakeSocket()
    asyncio.run(ingress.wire(ws))
    assert ws.sent == [b"\x80", "text of " + status, ("close", code)]
    assert ingress.livez().body == b"OK\n"


def test_a_replica_says_the_keys_nothing_reads_once_per_key_set(monkeypatch):
    """The single server says them once per connection; a replica gets frames, not connections."""
    import asyncio
    from types import SimpleNamespace

    from serving_standins import StandInPolicy

    from worldpolicy.models import shipped_model
    from worldpolicy.policy import checkpoint_embodiment
    from worldpolicy.serving.codec import DEFAULT_LIMITS, packb, unpackb
    from worldpolicy.serving.ray_serve import PolicyReplica

    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8),
                              replica_id=SimpleNamespace(unique_id="replica-1"))
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    stand_in = StandInPolicy(checkpoint_embodiment(shipped_model(), None))
    replica = PolicyReplica(lambda: stand_in, None, DEFAULT_LIMITS, max_batch=4, max_wait_ms=5, warmup_requests=0)
    droid = droid_request(np.zeros(7))

    async def warnings(message: dict) -> list[str]:
        # the batch function itself: `@serve.batch`'s queue is bound to the event loop it first ran on (another
        # test's `asyncio.run`, closed by now)
        [(status, reply)] = await PolicyReplica.infer.__wrapped__(replica, [packb(message)])
        assert status == "ok"
        return unpackb(reply).get("warnings", [])

    async def scenario() -> None:
        first = await warnings(droid)
        assert len(first) == 1 and "'observation/joint_position'" in first[0] and "'panda_reach'" in first[0]
        assert await warnings(droid) == []
        other = {k: v for k, v in droid.items() if k != "observation/gripper_position"}
        assert "'observation/gripper_position'" not in (await warnings(other))[0]  # another key set: said too

    asyncio.run(scenario())


def test_unusable_results_are_logged_once_per_window_by_the_replica_and_the_router(monkeypatch, caplog):
    """A model that answers NaN to every request: the replica's `reply_failed` line is said once per window
    (`UnusableLog`), and so is the router's `refused` line for it (it was written per request), while /metrics counts
    each as `error`, as on the single server."""
    import asyncio
    import json
    import logging
    from types import SimpleNamespace

    from prometheus_client import generate_latest
    from serving_standins import StandInPolicy

    from worldpolicy.serving.codec import DEFAULT_LIMITS, packb
    from worldpolicy.serving.ray_serve import PolicyReplica

    context = SimpleNamespace(_deployment_config=SimpleNamespace(max_ongoing_requests=8),
                              replica_id=SimpleNamespace(unique_id="replica-1"))
    monkeypatch.setattr(serve, "get_replica_context", lambda: context)
    replica = PolicyReplica(StandInPolicy, None, DEFAULT_LIMITS, max_batch=4, max_wait_ms=5, warmup_requests=0)

    async def through_the_replica(frame):
        [item] = await PolicyReplica.infer.__wrapped__(replica, [frame])
        return item

    class Waiting(_FakeSocket):  # one request, then waits for its reply (the plain one leaves at once: vanished)
        async def receive(self) -> dict:
            if self.frames:
                return self.frames.pop(0)
            await asyncio.Event().wait()

    ingress, _ = _ingress([], infer=through_the_replica)
    sockets = [Waiting() for _ in range(3)]
    for ws in sockets:
        ws.frames = [{"type": "websocket.receive", "bytes": packb({**droid_request(np.zeros(7)), "prompt": "nan"})}]

    async def connections() -> None:
        for ws in sockets:
            await ingress.wire(ws)

    with caplog.at_level(logging.WARNING, logger="worldpolicy.serving"):
        asyncio.run(connections())
    for ws in sockets:
        assert "unusable policy result (actions contain NaN" in ws.sent[1] and ws.sent[2] == ("close", 1011)
    # the warnings and errors only: the replica's `loading` (INFO) is captured too where an earlier test left the
    # logger at INFO
    lines = [json.loads(r.getMessage()) for r in caplog.records
             if r.name == "worldpolicy.serving" and r.levelno >= logging.WARNING]
    assert [(e["event"], "traceback" in e) for e in lines] == [("reply_failed", False), ("refused", False)]
    assert 'worldpolicy_requests_total{status="error"} 3.0' in generate_latest(ingress.registry).decode()


def test_the_router_bounds_the_request_bytes_it_holds_over_all_connections():
    """`max_incoming_bytes` on Ray Serve: Serve's proxy hands the router whole frames, which it held without bound
    (one in flight and one read ahead per connection, up to `max_connections`); past the budget the connection whose
    frame went over is told "server busy" (close 1013), as the single server does (`IncomingBudget`)."""
    import asyncio

    from prometheus_client import generate_latest

    gate, leave = asyncio.Event(), asyncio.Event()

    async def held_back(frame):
        await gate.wait()
        return "ok", b"reply"

    class Staying(_FakeSocket):  # one request, then stays until told to leave
        def __init__(self, size: int) -> None:
            super().__init__()
            self.frames = [{"type": "websocket.receive", "bytes": b"\0" * size}]

        async def receive(self) -> dict:
            if self.frames:
                return self.frames.pop(0)
            await leave.wait()
            return {"type": "websocket.disconnect", "code": 1000}

    ingress, _ = _ingress([], infer=held_back, max_incoming_bytes=1500)
    first, second = Staying(1000), Staying(1000)

    async def scenario() -> None:
        answering = asyncio.ensure_future(ingress.wire(first))
        while ingress._incoming.held < 1000:  # the first frame is read and on its way to a replica
            await asyncio.sleep(0)
        await ingress.wire(second)  # 2000 bytes held: over
        assert ingress._incoming.held == 1000
        gate.set()
        while b"reply" not in first.sent:
            await asyncio.sleep(0)
        assert ingress._incoming.held == 0  # answered: not held while its robot is idle, until its next request
        leave.set()
        await answering

    asyncio.run(scenario())
    assert second.sent[0] == b"\x80" and second.sent[2] == ("close", 1013)
    assert second.sent[1].startswith("server busy: 2000 bytes of requests held over all connections, past "
                                     "max_incoming_bytes=1500")
    assert first.sent == [b"\x80", b"reply"] and ingress._incoming.held == 0
    assert 'worldpolicy_requests_total{status="busy"} 1.0' in generate_latest(ingress.registry).decode()


def test_the_router_metrics_have_the_single_servers_connections_ready_and_info():
    """One Grafana dashboard for both front ends: the router's /metrics had only requests and latency."""
    import asyncio

    from worldpolicy.serving.codec import packb

    seen = []

    async def metadata():
        return packb({"server_version": "9.9", "model": "tiny", "embodiment": "droid/joint_pos"})

    async def answer(frame):
        seen.append(ingress.registry.get_sample_value("worldpolicy_connections"))
        return "ok", b"reply"

    ingress, _ = _ingress([], infer=answer)
    ingress.replicas.metadata.remote = staticmethod(metadata)
    value = ingress.registry.get_sample_value
    assert (value("worldpolicy_ready"), value("worldpolicy_connections")) == (0.0, 0.0)
    assert asyncio.run(ingress.readyz()).status_code == 200
    assert value("worldpolicy_ready") == 1.0
    labels = {"version": "9.9", "model": "tiny", "embodiment": "droid/joint_pos"}
    assert value("worldpolicy_server_info", labels) == 1.0
    asyncio.run(ingress.wire(_FakeSocket()))
    assert seen == [1.0] and value("worldpolicy_connections") == 0.0  # open while it asked, closed after
    asyncio.run(ingress.drain(0))
    assert value("worldpolicy_ready") == 0.0


@pytest.mark.parametrize("closed", [False, True])
def test_the_lines_ray_forwards_carry_no_colour_codes_in_a_file(monkeypatch, closed):
    """Ray wrapped each forwarded line's `(ServeReplica:… pid=…)` prefix in ANSI colour codes, also into a file or a
    log pipeline (`\\x1b[36m(ServeReplica…)\\x1b[0m {"event": …}`); off where stderr is not a terminal, unless asked.
    A closed stderr is none either: asking it itself (`isatty()`) raised ValueError before Ray started."""
    from worldpolicy.serving.ray_serve import serve_until_signal

    seen = []
    monkeypatch.delenv("RAY_COLOR_PREFIX", raising=False)
    monkeypatch.setattr(ray, "init", lambda: seen.append(os.environ.get("RAY_COLOR_PREFIX")))
    monkeypatch.setattr(ray, "cluster_resources", lambda: (_ for _ in ()).throw(LookupError("stop here")))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with open(os.devnull, "w") as log, pytest.raises(LookupError, match="stop here"):
        monkeypatch.setattr("sys.stderr", log)  # a file, as under systemd or `2> log`
        if closed:
            log.close()
        serve_until_signal(_stand_in, num_replicas=2, host="127.0.0.1", port=free_port())
    assert seen == ["0"]
