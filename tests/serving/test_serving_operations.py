"""What an operator running the server for a fleet meets: a policy call that never returns (batch watchdog), an IPv6
address, serving a stopped server again (and one that could not listen), and what the queue-depth gauge counts. No test here depends on how fast the
machine is: the stuck policy blocks on an Event, and every wait is a poll with a generous deadline."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest
import websockets
from serving_standins import StandInPolicy, droid_request, http_get
from websockets.sync.client import connect

import worldpolicy.serving.server as server_module
from worldpolicy.serving import PolicyServer, RemotePolicy, ServerConfig, ServerThread, packb


class BlockingPolicy(StandInPolicy):
    """A stand-in whose calls wait for `release` (a wedged GPU, a deadlock), after saying so on `entered`."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def _pay(self, n: int) -> None:
        self.entered.set()
        self.release.wait(120)  # bounded, so a failing test cannot leave the worker inside it for good
        super()._pay(n)


@pytest.fixture
def blocking():
    policy = BlockingPolicy()
    yield policy
    policy.release.set()  # before the serve fixture's teardown stops the server (fixtures finish in reverse order)


def _until(condition, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.01)


def _sample(server: PolicyServer, name: str, **labels: str) -> float:
    return server._metrics.registry.get_sample_value(name, labels) or 0.0


def _refusal(ws) -> tuple[str, int]:
    """The text frame of a refused request, then the close code."""
    text = ws.recv(timeout=30)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        ws.recv(timeout=30)
    return text, closed.value.rcvd.code


@pytest.fixture
def opened():
    """Factory: a raw WebSocket connection past its metadata frame; every one is closed at teardown."""
    with contextlib.ExitStack() as stack:

        def open_one(url: str):
            ws = stack.enter_context(connect(url, compression=None, max_size=None))
            ws.recv(timeout=10)  # the metadata frame
            return ws

        yield open_one


# ------------------------------------------------------------------------------------------- batch watchdog
def test_a_batch_past_batch_timeout_s_makes_the_server_unready_and_its_clients_are_told(serve, blocking, opened,
                                                                                        caplog):
    t = serve(blocking, batch_timeout_s=0.2)
    server = t.server
    assert "_watch" in _task_names(t)
    with caplog.at_level(logging.INFO, logger="worldpolicy.serving"):
        inside, behind = opened(t.url), opened(t.url)
        inside.send(packb(droid_request(np.zeros(7))))
        assert blocking.entered.wait(10)
        behind.send(packb(droid_request(np.ones(7))))  # waits behind the stuck batch (or is refused: stuck already)

        text, code = _refusal(inside)
        assert code == 1011 and "batch 1 (1 requests) has been inside the policy" in text
        assert "past batch_timeout_s=0.2" in text and "retry on another replica" in text
        text, code = _refusal(behind)
        assert code == 1013 and text.startswith("server unavailable: stuck: batch 1")  # RemotePolicy: ServerBusyError

        status, body = http_get(t.url, "/readyz")
        assert status == 503 and body.startswith("stuck: batch 1 (1 requests)")
        assert http_get(t.url, "/livez")[0] == 503
        assert http_get(t.url, "/healthz") == (200, "OK\n")  # openpi's probe: the process still answers
        assert not server.ready and _sample(server, "worldpolicy_ready") == 0
        assert _sample(server, "worldpolicy_batch_running_seconds") > 0.2
        with pytest.raises(websockets.InvalidStatus) as refused:  # no new clients while stuck
            connect(t.url)
        assert refused.value.response.status_code == 503 and b"stuck: batch 1" in refused.value.response.body
        assert _sample(server, "worldpolicy_requests_total", status="timeout") == 1
        assert _sample(server, "worldpolicy_requests_total", status="stuck") == 1
        assert sum(1 for r in caplog.records if '"event": "batch_stuck"' in r.getMessage()) == 1  # said once

        blocking.release.set()  # the call returns after all: its result is dropped, the server is ready again
        _until(lambda: server.ready, "ready again after the stuck batch returned")
        assert http_get(t.url, "/readyz") == (200, "ready\n") and http_get(t.url, "/livez") == (200, "OK\n")
        with RemotePolicy(t.url) as policy:
            assert policy.act(droid_request(np.zeros(7)), "after").actions.shape == (32, 8)
    assert any('"event": "stuck_batch_returned", "batch": 1' in r.getMessage() for r in caplog.records)
    assert _sample(server, "worldpolicy_requests_total", status="ok") == 1  # the late results were never sent
    assert _sample(server, "worldpolicy_batch_running_seconds") == 0


def test_without_batch_timeout_s_a_long_batch_keeps_the_server_ready(serve, blocking, opened):
    """The default: no limit, no watchdog task (a long call is not taken for a stuck one)."""
    t = serve(blocking)
    ws = opened(t.url)
    ws.send(packb(droid_request(np.zeros(7))))
    assert blocking.entered.wait(10)
    assert http_get(t.url, "/readyz") == (200, "ready\n") and http_get(t.url, "/livez") == (200, "OK\n")
    assert "_watch" not in _task_names(t)
    blocking.release.set()
    assert isinstance(ws.recv(timeout=30), bytes)  # its reply


def _task_names(t: ServerThread) -> set[str]:
    async def names() -> set[str]:
        return {task.get_coro().__name__ for task in asyncio.all_tasks()}

    return asyncio.run_coroutine_threadsafe(names(), t._loop).result(5)


def test_batch_timeout_s_is_validated():
    for bad in (0, -1, float("inf"), float("nan"), "300", True):
        with pytest.raises(ValueError, match=r"ServerConfig.batch_timeout_s=.* is invalid; accepted: None \(no "
                                             r"limit\) or a finite number of seconds > 0"):
            ServerConfig(batch_timeout_s=bad)
    assert ServerConfig(batch_timeout_s=300).batch_timeout_s == 300 and ServerConfig().batch_timeout_s is None


def test_the_watchdog_adds_nothing_per_request(serve, monkeypatch):
    """Counted, not timed: the same clock reads, loop wake-ups and queue operations per request with the watchdog on
    as off (the worker stores one tuple per batch; the watchdog reads it on its own schedule)."""

    def calls(**config) -> Counter:
        seen: list[str] = []  # list.append is atomic: the loop and the worker both record

        class CountingTime:
            def __getattr__(self, name):
                return getattr(time, name)

            @staticmethod
            def perf_counter() -> float:
                seen.append("perf_counter from " + sys._getframe(1).f_code.co_name)
                return time.perf_counter()

        class CountingQueue:
            def __init__(self, inner) -> None:
                self.inner = inner

            def __getattr__(self, name):
                seen.append("queue." + name)
                return getattr(self.inner, name)

        t = serve(**config)
        with RemotePolicy(t.url) as policy:
            policy.act(droid_request(np.zeros(7)), "first")  # connected and warm before counting
            monkeypatch.setattr(server_module, "time", CountingTime())
            monkeypatch.setattr(t.server, "_queue", CountingQueue(t.server._queue))
            call_on_loop = t.server._call_on_loop
            monkeypatch.setattr(t.server, "_call_on_loop", lambda *a: seen.append("call_on_loop") or call_on_loop(*a))
            for i in range(5):
                policy.act(droid_request(np.full(7, i / 10)), "counted")
            monkeypatch.undo()
        watchdog = ("_watch", "_declare_stuck", "_stuck_text", "_batch_running_s")
        return Counter(name for name in seen if not name.endswith(watchdog))

    off, on = calls(), calls(batch_timeout_s=60)
    assert on == off
    assert off["call_on_loop"] == 5 and off["perf_counter from _exchange"] == 10  # the counting saw the requests


# ---------------------------------------------------------------------------------------------------- IPv6
@pytest.mark.parametrize(("host", "url"), [
    ("0.0.0.0", "ws://127.0.0.1:8123"), ("", "ws://127.0.0.1:8123"), ("127.0.0.1", "ws://127.0.0.1:8123"),
    ("::", "ws://[::1]:8123"), ("::1", "ws://[::1]:8123"), ("[::1]", "ws://[::1]:8123"),
    ("fe80::1%eth0", "ws://[fe80::1%25eth0]:8123"), ("gpu-box", "ws://gpu-box:8123"),
])
def test_server_thread_url_brackets_an_ipv6_host(host, url):
    server = PolicyServer(StandInPolicy(), ServerConfig(host=host))
    server.port = 8123
    assert ServerThread(server).url == url


def _ipv6_loopback() -> str | None:
    """None when this machine can listen on ::1, else why not."""
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        return f"cannot listen on ::1 here ({exc})"
    return None


@pytest.mark.skipif(_ipv6_loopback() is not None, reason=f"no IPv6 loopback: {_ipv6_loopback()}")
def test_a_server_on_ipv6_loopback_is_reached_at_its_url(serve):
    t = serve(host="::1")
    assert t.url == f"ws://[::1]:{t.server.port}"
    assert http_get(t.url, "/healthz") == (200, "OK\n")
    with RemotePolicy(t.url) as policy:
        assert policy.act(droid_request(np.zeros(7)), "v6").actions.shape == (32, 8)


# ------------------------------------------------------------------------------------------ serving again
@pytest.mark.parametrize("close_on_stop", [False, True])
def test_a_stopped_server_refuses_to_serve_again_and_says_how(close_on_stop):
    config = ServerConfig(host="127.0.0.1", port=0)
    server = PolicyServer(StandInPolicy(), config, close_on_stop=close_on_stop)
    with ServerThread(server):
        pass
    with pytest.raises(RuntimeError, match="already served once") as refused:
        ServerThread(server).start()
    if close_on_stop:
        assert "its policy was closed at stop (close_on_stop=True)" in str(refused.value)
        assert "PolicyServer(loader=" in str(refused.value)
    else:  # what it says works
        assert "PolicyServer(policy=server.policy, config=server.config" in str(refused.value)
        with ServerThread(PolicyServer(policy=server.policy, config=server.config)) as again, \
                RemotePolicy(again.url) as policy:
            assert policy.act(droid_request(np.zeros(7)), "again").actions.shape == (32, 8)


def test_a_server_that_could_not_listen_may_serve_once_the_address_is_free():
    """A bind failure (the port still held by a server being replaced) ran nothing: retrying the same server must
    serve, not say it 'has already served once'."""
    holder = socket.create_server(("127.0.0.1", 0))
    server = PolicyServer(StandInPolicy(), ServerConfig(host="127.0.0.1", port=holder.getsockname()[1]))
    with holder, pytest.raises(RuntimeError, match="server failed to start") as refused:
        ServerThread(server).start()
    assert isinstance(refused.value.__cause__, OSError) and server.port is None
    with ServerThread(server) as t, RemotePolicy(t.url) as policy:
        assert policy.act(droid_request(np.zeros(7)), "retried").actions.shape == (32, 8)
    with pytest.raises(RuntimeError, match="already served once"):  # once it has served, it has
        ServerThread(server).start()


# ------------------------------------------------------------------------------------------- queue depth
def test_queue_depth_counts_requests_waiting_for_a_batch_only(serve, blocking, opened):
    """Not a request whose client left, nor the stop marker the drain puts behind the queue."""
    t = serve(blocking, drain_timeout_s=60)
    server = t.server

    def depth() -> float:
        return _sample(server, "worldpolicy_queue_depth")

    running, leaving, waiting = opened(t.url), opened(t.url), opened(t.url)
    running.send(packb(droid_request(np.zeros(7))))
    assert blocking.entered.wait(10)
    assert depth() == 0  # the running batch does not wait
    leaving.send(packb(droid_request(np.ones(7))))
    _until(lambda: depth() == 1, "the second request queued")
    leaving.close()
    _until(lambda: _sample(server, "worldpolicy_requests_total", status="vanished") == 1, "the client counted gone")
    assert depth() == 0 and server._queue.qsize() == 1  # still in the queue, but nobody waits for it
    waiting.send(packb(droid_request(np.full(7, 0.5))))
    _until(lambda: depth() == 1, "the third request queued")
    t._loop.call_soon_threadsafe(lambda: t._stop.done() or t._stop.set_result(None))  # drain, without joining
    _until(lambda: server._queue.qsize() == 3, "the drain's stop marker queued")
    assert depth() == 1
    blocking.release.set()
    assert isinstance(running.recv(timeout=30), bytes) and isinstance(waiting.recv(timeout=30), bytes)
    _until(lambda: depth() == 0, "the waiting request taken")
