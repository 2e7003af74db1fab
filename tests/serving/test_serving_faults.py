"""Faults: bad frames and values, vanishing clients, 32 clients × 20 requests, SIGTERM; the server keeps serving."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import numpy as np
import pytest
import websockets
from ports import free_port
from serving_standins import StandInPolicy, droid_request, expected_actions, start_server_script
from websockets.sync.client import connect

from worldpolicy.serving import BadRequestError, Limits, RemotePolicy, ServerClosedError, ServerError, packb, unpackb


def _exchange(url: str, frame: bytes | str) -> tuple[str, int]:
    """Send one frame on a fresh connection; return (the server's text frame, close code)."""
    with connect(url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        ws.send(frame)
        text = ws.recv(timeout=5)
        assert isinstance(text, str), "expected an error text frame"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
        return text, closed.value.rcvd.code


def _with(**changes):
    return {**droid_request(np.zeros(7)), **{k.replace("__", "/"): v for k, v in changes.items()}}


def _raw_array(value: np.ndarray, dtype: str) -> dict:
    return {b"__ndarray__": True, b"data": value.tobytes(), b"dtype": dtype, b"shape": list(value.shape)}


GOOD = packb(droid_request(np.zeros(7)))
BAD_FRAMES = [
    (b"\xc1\x00garbage", "bad request: malformed msgpack"),
    (GOOD[: len(GOOD) // 2], "bad request: malformed msgpack message"),  # truncated
    (GOOD + b"\x01", "trailing bytes"),
    ("a text frame", "expected a binary msgpack frame"),
    (packb([1, 2, 3]), "request must be a msgpack map"),
    (msgpack.packb({**{k: v for k, v in droid_request(np.zeros(7)).items() if isinstance(v, str)},
                    "observation/joint_position": _raw_array(np.zeros(2, np.complex64), "<c8")}, default=packb),
     "unsupported dtype '<c8'"),
    (packb(_with(observation__wrist_image_left=np.zeros((8, 8, 3), "<U1"))), "wrist_image_left must be a numeric"),
    (packb(_with(observation__joint_position=np.full(7, np.nan))), "joint_position contains NaN, inf or"),
    (packb(_with(observation__exterior_image_1_left=np.full((8, 8, 3), np.inf, np.float32))), "contains NaN"),
    (packb({k: v for k, v in droid_request(np.zeros(7)).items() if k != "prompt"}), "missing or empty key 'prompt'"),
    (packb({k: v for k, v in droid_request(np.zeros(7)).items() if "wrist" not in k}), "missing camera key"),
    (packb(_with(mode="forward_dynamics", actions=np.zeros((32, 3)))), "actions has shape (32, 3)"),
    (packb(_with(observation__joint_position=[[1.0], [2.0, 3.0]])), "numeric array, got a ragged list"),
    (packb(_with(mode=np.array(["policy", "policy"]))), "mode=array(['policy', 'policy']"),
    (msgpack.packb({**droid_request(np.zeros(7)), "seed": _raw_array(np.zeros(1, "<u4") + 0xFFFFFFFF, "<U1")},
                   default=packb), "beyond U+10FFFF"),
    # a small frame of nested empty lists would expand into ~70x its size in Python objects
    (b"\x81\xa1x\x92" + (b"\xdc\xff\xff" + b"\x90" * 65535) * 2, "more than max_objects"),
]


def test_bad_frames_get_a_clear_error_then_close_1011_and_the_server_keeps_serving(serve):
    stand_in = StandInPolicy()
    t = serve(stand_in, limits=Limits(max_message_bytes=200_000, max_array_bytes=200_000))
    for frame, message in BAD_FRAMES:
        text, code = _exchange(t.url, frame)
        assert message in text and code == 1011, (message, text)
        assert "Traceback" not in text  # no server internals leak to clients
    assert stand_in.calls == 0  # everything was refused before reaching the policy
    # oversized: refused by the WebSocket layer with 1009 before being buffered in full
    with connect(t.url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        ws.send(packb(_with(observation__wrist_image_left=np.zeros((300, 300, 3), np.uint8))))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1009
    with RemotePolicy(t.url, limits=Limits(max_message_bytes=10**7, max_array_bytes=10**7)) as policy:
        # the client knows the server's limit from its metadata frame: refused before it travels
        with pytest.raises(BadRequestError, match="over the 200000 .* accepts \\(its max_message_bytes\\)"):
            policy.act(_with(observation__wrist_image_left=np.zeros((300, 300, 3), np.uint8)), "big")
        pred = policy.act(droid_request(np.ones(7)), "still here")
    np.testing.assert_allclose(pred.actions, expected_actions(np.ones(7), "still here"))


def test_a_client_vanishing_mid_inference_does_not_disturb_the_server(serve):
    stand_in = StandInPolicy(batch_cost_s=0.5)
    t = serve(stand_in)
    with connect(t.url, compression=None, max_size=None, close_timeout=0.1) as ws:
        unpackb(ws.recv())
        ws.send(packb(droid_request(np.zeros(7))))
        assert stand_in.running.wait(5)
        ws.socket.shutdown(socket.SHUT_RDWR)  # vanish without a close handshake
    with RemotePolicy(t.url) as policy:
        np.testing.assert_allclose(policy.act(droid_request(np.ones(7)), "next").actions,
                                   expected_actions(np.ones(7), "next"))
    deadline = time.monotonic() + 5
    while t.server._metrics.requests.labels("vanished")._value.get() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.server._metrics.requests.labels("vanished")._value.get() == 1


def test_a_reply_that_cannot_be_sent_counts_as_vanished(serve, monkeypatch):
    """A client gone between its result and the reply's send was counted nowhere (Ray Serve's ingress counts it
    vanished): the connection is made to fail exactly there."""
    from websockets.asyncio.server import ServerConnection

    send = ServerConnection.send

    async def failing_send(self, message, *args, **kwargs):
        if isinstance(message, bytes) and b"actions_normalized" in message:  # a reply, not the metadata frame
            raise websockets.ConnectionClosed(None, None)
        return await send(self, message, *args, **kwargs)

    monkeypatch.setattr(ServerConnection, "send", failing_send)
    t = serve()
    with connect(t.url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        ws.send(GOOD)
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=5)
    requests = t.server._metrics.requests
    assert requests.labels("vanished")._value.get() == 1 and requests.labels("ok")._value.get() == 0
    assert t.server._active == 0


def test_a_client_sending_without_reading_is_answered_in_order_but_not_read_ahead(serve):
    """A client that sends requests without waiting for replies made the server read 16 frames ahead, each up to
    max_message_bytes (1 GiB per connection at the default 64 MiB). Now it reads one frame ahead, then stops reading
    (TCP pushes back on the client); every request is still answered, in order."""
    import threading

    stand_in = StandInPolicy(batch_cost_s=0.5)
    t = serve(stand_in)
    frames = [packb(droid_request(np.full(7, i * 0.1), size=400)) for i in range(8)]  # ~1.4 MB each
    with connect(t.url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())
        sender = threading.Thread(target=lambda: [ws.send(f) for f in frames])
        sender.start()
        assert stand_in.running.wait(5)
        (conn,) = t.server._connections
        deadline = time.monotonic() + 5  # until the server's reading pauses (websockets' receive buffer)
        while not conn.recv_messages.paused and time.monotonic() < deadline:
            time.sleep(0.01)
        assert conn.recv_messages.paused and len(conn.recv_messages.frames) <= 2  # was 7 frames, not paused
        for i in range(8):
            reply = unpackb(ws.recv(timeout=10))
            np.testing.assert_allclose(reply["actions"], expected_actions(np.full(7, i * 0.1), "pick up the cup"))
        sender.join(10)


def test_32_clients_x_20_requests_each_get_their_own_answers(serve):
    stand_in = StandInPolicy(batch_cost_s=0.002)
    t = serve(stand_in, max_batch=16, max_queue=64)

    def client(i: int) -> int:
        good = 0
        with RemotePolicy(t.url) as policy:
            for k in range(20):
                joints = np.full(7, i * 100 + k, np.float64)
                prompt = f"client {i} request {k}"
                pred = policy.act(droid_request(joints, size=16), prompt, seed=k)
                good += np.allclose(pred.actions, expected_actions(joints, prompt, seed=k))
        return good

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(client, range(32))) == [20] * 32
    assert sum(stand_in.batch_sizes) == 640 and max(stand_in.batch_sizes) > 1


SERVER_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    sys.path.insert(0, {tests!r})
    from serving_standins import StandInPolicy
    from worldpolicy.serving import PolicyServer, ServerConfig
    logging.basicConfig(level=logging.INFO)
    config = ServerConfig(host="127.0.0.1", port={port}, drain_timeout_s={drain_timeout_s})
    policy = StandInPolicy(batch_cost_s={batch_cost_s})
    loader = (lambda: time.sleep(60)) if {slow_load} else None  # a load SIGTERM cannot interrupt
    sys.exit(PolicyServer(None if loader else policy, config, loader=loader).run())
    """
)


def _server_process(tmp_path: Path, batch_cost_s: float = 1.0, drain_timeout_s: float = 30.0,
                    slow_load: bool = False) -> tuple[subprocess.Popen, int]:
    """`PolicyServer.run()` in a process of its own (it owns the process: signals, exit code), once ready (once
    listening, with `slow_load`)."""
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER_SCRIPT.format(tests=str(Path(__file__).parent), port=port, batch_cost_s=batch_cost_s,
                                           drain_timeout_s=drain_timeout_s, slow_load=slow_load))
    return start_server_script(script, port, "healthz" if slow_load else "readyz"), port


@pytest.mark.parametrize("name", ["SIGTERM", "SIGUSR1"])
def test_sigterm_drains_inflight_requests_then_exits(tmp_path, name):
    """SIGTERM, and Slurm's advance warning SIGUSR1 (`sbatch --signal=USR1@120`), whose default action had killed the
    server at once (exit -10) with the request unanswered: both drain, then exit 0."""
    proc, port = _server_process(tmp_path)
    try:
        with ThreadPoolExecutor(1) as pool, RemotePolicy(f"ws://127.0.0.1:{port}", connect_timeout_s=2) as policy:
            pending = pool.submit(policy.act, droid_request(np.zeros(7)), "drain me")
            time.sleep(0.4)  # the request is inside the 1 s inference
            proc.send_signal(getattr(signal, name))
            np.testing.assert_allclose(pending.result(10).actions, expected_actions(np.zeros(7), "drain me"))
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    log = proc.stderr.read()
    assert '"event": "draining"' in log and '"event": "stopped"' in log and "abandoned" not in log


def test_a_request_outliving_the_drain_timeout_is_abandoned_and_the_exit_code_says_so(tmp_path):
    proc, port = _server_process(tmp_path, batch_cost_s=30.0, drain_timeout_s=0.3)
    try:
        with ThreadPoolExecutor(1) as pool, RemotePolicy(f"ws://127.0.0.1:{port}", connect_timeout_s=2) as policy:
            pending = pool.submit(policy.act, droid_request(np.zeros(7)), "too slow")
            time.sleep(0.4)  # the request is inside the 30 s inference
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(ServerClosedError, match="1001"):
                pending.result(10)
        # ended at the drain deadline (its inference takes 30 s), without waiting for (or aborting inside) the policy
        assert proc.wait(10) == 1
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    log = proc.stderr.read()
    assert '{"event": "abandoned", "requests": 1, "drain_timeout_s": 0.3, "worker": "busy"}' in log
    assert '"event": "stopped"' in log  # the log handlers were flushed before os._exit


def test_a_loop_without_add_signal_handler_takes_the_stop_signals_through_signal_signal(monkeypatch):
    """Windows' event loop has no `add_signal_handler` (it raises NotImplementedError): `PolicyServer.run` failed
    there before serving. `_on_signal` falls back to a `signal.signal` handler that calls the callback in the loop."""
    import asyncio

    from worldpolicy.serving.server import _on_signal

    loop = asyncio.new_event_loop()

    def unsupported(*_):
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    before = signal.getsignal(signal.SIGUSR2)
    stop = loop.create_future()
    try:
        _on_signal(loop, signal.SIGUSR2, lambda: stop.set_result(signal.SIGUSR2))
        signal.raise_signal(signal.SIGUSR2)  # its default had ended the process
        assert loop.run_until_complete(asyncio.wait_for(stop, 60)) == signal.SIGUSR2
    finally:
        signal.signal(signal.SIGUSR2, before)
        loop.close()


def test_sigterm_while_loading_exits_0_at_once(tmp_path):
    proc, _ = _server_process(tmp_path, slow_load=True)
    try:
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0  # nothing was admitted, so nothing was lost; the 60 s load is not waited for
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert '{"event": "abandoned", "requests": 0, "drain_timeout_s": 30.0, "worker": "loading"}' in proc.stderr.read()


def test_actions_no_robot_should_run_are_refused(serve):
    t = serve(StandInPolicy(batching=False))
    with RemotePolicy(t.url) as policy:
        with pytest.raises(ServerError, match=r"unusable policy result \(actions contain NaN, inf or values beyond"):
            policy.act(droid_request(np.zeros(7)), "nan")
        with pytest.raises(ServerError, match=r"actions float64 \(32, 3\) do not match the 8 columns"):
            policy.act(droid_request(np.zeros(7)), "narrow")
        assert policy.act(droid_request(np.zeros(7)), "fine").actions.shape == (32, 8)


def test_shutdown_does_not_wait_on_peers_that_never_answer_the_close_frame(serve):
    t = serve(drain_timeout_s=0.2)
    silent = []
    for _ in range(3):  # complete the WebSocket handshake, then read nothing and never answer
        s = socket.create_connection(("127.0.0.1", t.server.port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert b"101" in s.recv(4096)
        silent.append(s)
    t0 = time.monotonic()
    t.stop()
    assert time.monotonic() - t0 < 4  # closed together, stragglers aborted (was ~10 s each, one after another)
    assert not t._thread.is_alive()
    for s in silent:
        s.close()
