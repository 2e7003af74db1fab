"""RemotePolicy failure modes against misbehaving fake servers: refused, silent, unreadable, closed; then reconnect."""

from __future__ import annotations

import contextlib
import functools
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from ports import free_port
from serving_standins import droid_request
from websockets.sync.server import serve as sync_serve

from worldpolicy import get_embodiment
from worldpolicy.serving import (
    BadRequestError,
    Limits,
    RemotePolicy,
    ServerClosedError,
    ServerError,
    ServerRefusedError,
    ServerTimeoutError,
    UnreadableReplyError,
    packb,
)
from worldpolicy.serving.server import DRAINING_TEXT

REPLY = {"actions": np.ones((4, 8), np.float32)}  # what an openpi DROID server sends: no columns, no metadata


class FakeServer:
    """A wire server whose n-th request gets `behaviours[n]` (default: a good reply); counts connections."""

    def __init__(self, behaviours: dict[int, str], metadata: dict | None = None) -> None:
        self.behaviours, self.requests, self.connections = behaviours, 0, 0
        self.metadata = metadata or {}
        self._server = sync_serve(self._handler, "127.0.0.1", 0, compression=None)
        self.url = f"ws://127.0.0.1:{self._server.socket.getsockname()[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _handler(self, ws) -> None:
        self.connections += 1
        ws.send(packb(self.metadata))
        for message in ws:
            behaviour = self.behaviours.get(self.requests, "good")
            self.requests += 1
            if behaviour == "silent":
                time.sleep(1.0)
                ws.send(packb({"actions": np.zeros((4, 8))}))  # a late, stale reply
            elif behaviour == "garbage":
                ws.send(b"\xc1\xc1 not msgpack at all")
            elif behaviour == "no_actions":
                ws.send(packb({"result": 1}))
            elif behaviour == "nan":  # a server that sends what no robot should run (ours refuses to)
                ws.send(packb({"actions": np.where(np.eye(4, 8) > 0, np.inf, 1.0)}))
            elif behaviour == "empty":
                ws.send(packb({"actions": np.ones((0, 8))}))
            elif behaviour == "odd_extras":  # another server's descriptive keys in shapes ours never sends
                ws.send(packb({**REPLY, "fps": "15", "server_timing": [1, 2], "policy_timing": "fast",
                               "actions_normalized": np.zeros((4, 8), "U2"), "settings": [1]}))
            elif behaviour == "bad_video":
                ws.send(packb({**REPLY, "video": np.zeros((4, 4), np.float32)}))
            elif behaviour == "error_reply":  # RoboLab-style proxies answer a failure with a reply map
                ws.send(packb({"type": "error", "message": "model not loaded"}))
            elif behaviour == "close":
                ws.close(1011, "boom")
                return
            elif behaviour == "crash":  # a server process killed mid-request: the connection ends, no close frame
                ws.socket.shutdown(socket.SHUT_RDWR)
                return
            elif behaviour == "draining":  # what our servers answer a request that arrives while they shut down
                ws.send(DRAINING_TEXT)
                ws.close(1001, "worldpolicy: draining")
                return
            elif behaviour == "text":
                ws.send("Traceback: something broke")
                ws.close(1011, "Internal server error. Traceback included in previous frame.")
                return
            else:
                ws.send(packb(REPLY))

    def close(self) -> None:
        self._server.shutdown()


@pytest.fixture
def fake():
    servers = []

    def make(metadata=None, **behaviours):
        server = FakeServer({int(k[1:]): v for k, v in behaviours.items()}, metadata)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def test_refused():
    with pytest.raises(ServerRefusedError, match=r"cannot connect to ws://127.0.0.1:\d+ .*worldpolicy serve"):
        RemotePolicy(f"127.0.0.1:{free_port()}")


@contextlib.contextmanager
def _silent_after_handshake():
    """The URL of a server that takes the WebSocket but never sends its metadata frame (it closes 2 s later)."""
    server = sync_serve(lambda ws: time.sleep(2), "127.0.0.1", 0, compression=None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()


@contextlib.contextmanager
def _silent_before_handshake():
    """The URL of something that accepts TCP but never answers the HTTP upgrade."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield f"ws://127.0.0.1:{listener.getsockname()[1]}"


def test_silent_handshake():
    with _silent_before_handshake() as url, \
            pytest.raises(ServerTimeoutError, match=r"no WebSocket handshake .* within connect_timeout_s=0.3 s: "):
        RemotePolicy(url, connect_timeout_s=0.3)


@pytest.mark.skipif(sys.platform != "linux", reason="Linux drops a connection past a full listen queue unanswered")
def test_a_machine_that_does_not_answer_is_said_to_be_unreachable_not_silent():
    """A TCP connect that never completes (the machine down, a firewall) is not a server that stays silent."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener, \
            socket.create_connection(listener.getsockname()), \
            pytest.raises(ServerTimeoutError, match=r"no TCP connection .* within connect_timeout_s=0.3 s: the machine "
                                                    r"is down or unreachable"):
        # the listen queue is full: the next SYN is dropped
        RemotePolicy(f"ws://127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=0.3)


@pytest.mark.parametrize("stage", ["handshake", "tls_handshake", "tcp_connect"])
def test_close_from_another_thread_cuts_a_connect_in_progress(stage):
    """An e-stop while the robot's client reconnects ends the connect at once, not after connect_timeout_s: a server
    that accepted the connection but does not answer its handshake (a busy event loop, a queueing proxy), a wss://
    one's TLS handshake included, or a machine whose TCP connect does not complete (on Linux a full listen queue drops
    the SYN, as a host gone does)."""
    from worldpolicy.serving import ClientClosedError

    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=0))
        listener.settimeout(30)
        if stage == "tcp_connect":
            stack.enter_context(socket.create_connection(listener.getsockname()))  # fills the listen queue
        scheme = "wss" if stage == "tls_handshake" else "ws"
        remote = RemotePolicy(f"{scheme}://127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=600,
                              connect_now=False)
        outcome: list[BaseException | None] = []

        def control_loop() -> None:
            try:
                remote.infer({"prompt": "a"})
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - inspected below
                outcome.append(exc)

        loop = threading.Thread(target=control_loop, daemon=True)
        loop.start()
        if stage != "tcp_connect":
            accepted = stack.enter_context(listener.accept()[0])  # the client's connection
            accepted.settimeout(30)
            accepted.recv(1, socket.MSG_PEEK)  # its TLS or WebSocket handshake began: it now waits for the answer
        else:
            deadline = time.monotonic() + 30
            while remote._connecting is None and time.monotonic() < deadline:  # its socket is connecting
                time.sleep(0.005)
        e_stop = threading.Thread(target=remote.close, daemon=True)  # itself waited for the connect to end
        e_stop.start()
        e_stop.join(30)
        loop.join(30)
        assert not e_stop.is_alive() and not loop.is_alive(), "close() did not cut the connect in progress"
        assert isinstance(outcome[0], ClientClosedError) and "no request was sent" in str(outcome[0])


def test_a_redirect_names_the_url_to_connect_to():
    """websockets follows a redirect, but not over the socket this client connects itself: it raised a bare
    ValueError about a "preexisting socket" nobody passed. Refused naming where the server points."""
    import http.server

    class Redirect(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", "/policy")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        url = f"ws://127.0.0.1:{web.server_address[1]}"
        try:
            with pytest.raises(ServerRefusedError, match=f"redirects \\(HTTP 302\\) to {url}/policy: connect to that"):
                RemotePolicy(url)
        finally:
            web.shutdown()


def test_another_web_service_on_the_port_is_named_as_the_likely_mistake():
    """A wrong port that reaches some other HTTP service: its status, the start of its error page, and the hint."""
    import http.server

    class NotFound(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # what a WebSocket client reads a status from (a web app's server speaks it)

        def do_GET(self) -> None:
            page = b"<html>" + b"x" * 5000 + b"</html>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        try:
            with pytest.raises(ServerRefusedError, match=r"HTTP 404: <html>x+…; is this the policy server's port\?") \
                    as refused:
                RemotePolicy(f"ws://127.0.0.1:{web.server_address[1]}")
            assert len(str(refused.value)) < 500  # not the whole page
        finally:
            web.shutdown()


def test_silent_reply_discards_the_connection(fake):
    server = fake(r0="silent")
    policy = RemotePolicy(server.url, read_timeout_s=0.3)
    with pytest.raises(ServerTimeoutError, match="loading, overloaded or wedged"):
        policy.act(droid_request(np.zeros(7)), "a")
    pred = policy.act(droid_request(np.zeros(7)), "b")  # not the stale reply of the first request
    np.testing.assert_array_equal(pred.actions, np.ones((4, 8)))
    assert server.connections == 2
    policy.close()


def test_unreadable_reply(fake):
    server = fake(r0="garbage", r1="no_actions")
    with RemotePolicy(server.url) as policy:
        with pytest.raises(UnreadableReplyError, match=r"starts b'\\xc1\\xc1 not msgpack"):
            policy.act(droid_request(np.zeros(7)), "a")
        with pytest.raises(UnreadableReplyError, match="lacks an 'actions'/'action' array"):
            policy.act(droid_request(np.zeros(7)), "a")
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
    assert server.connections == 2  # a complete but useless reply leaves the stream in sync: kept


def test_actions_no_robot_should_run_are_refused_from_any_server(fake):
    """Our server never sends NaN/inf actions; another openpi-wire server's went straight to the robot, as did an
    empty chunk."""
    server = fake(r0="nan", r1="empty")
    with RemotePolicy(server.url) as policy:
        with pytest.raises(ServerError, match=r"sent actions no robot should run: inf at row 0, column 0 of \(4, 8\)"):
            policy.act(droid_request(np.zeros(7)), "a")
        with pytest.raises(UnreadableReplyError, match=r"lacks an 'actions'/'action' array \[chunk, dim\] "
                                                       r"\(float64 \(0, 8\)\)"):
            policy.act(droid_request(np.zeros(7)), "a")
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
    assert server.connections == 1  # complete exchanges: the connection stays in sync


def test_a_silent_metadata_frame_names_the_connect_timeout():
    """The timeout error for a server that accepts the WebSocket but never sends its metadata frame told the user to
    raise read_timeout_s, which does not apply there."""
    with _silent_after_handshake() as url, \
            pytest.raises(ServerTimeoutError, match=r"no metadata frame .* within connect_timeout_s=0.3 s: .* needs "
                                                    r"a larger connect_timeout_s"):
        RemotePolicy(url, connect_timeout_s=0.3)


def test_error_reply_map_is_a_server_error(fake):
    server = fake(r0="error_reply")
    with RemotePolicy(server.url) as policy:
        with pytest.raises(ServerError, match="error from ws://.*: model not loaded"):
            policy.act(droid_request(np.zeros(7)), "a")
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
    assert server.connections == 1  # a complete exchange: the connection stays in sync


def test_closed_and_server_error(fake):
    server = fake(r0="close", r1="text")
    with RemotePolicy(server.url) as policy:
        with pytest.raises(ServerClosedError, match="closed the connection before the reply: code 1011 boom") as info:
            policy.act(droid_request(np.zeros(7)), "a")
        assert info.value.code == 1011
        with pytest.raises(ServerError, match="Traceback: something broke") as info:
            policy.act(droid_request(np.zeros(7)), "a")
        assert info.value.code == 1011
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)


def test_a_request_a_draining_server_refused_unread_is_sent_again_on_a_new_connection(fake):
    """A request that reached a server (or a replica behind a balancer) as it began to shut down failed with "server
    is shutting down; reconnect to another replica", though it was never run: the client now does what the text
    says, once."""
    server = fake(r0="draining", r2="draining", r3="draining")
    with RemotePolicy(server.url) as policy:
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
        assert (server.requests, server.connections) == (2, 2)
        with pytest.raises(ServerError, match="server is shutting down") as info:  # once only: not a retry loop
            policy.act(droid_request(np.zeros(7)), "a")
        assert info.value.code == 1001 and (server.requests, server.connections) == (4, 3)


def test_openpi_reply_fills_columns_from_the_embodiment(fake):
    server = fake()
    with RemotePolicy(server.url, embodiment="droid") as policy:
        pred = policy.act(droid_request(np.zeros(7)), "a")
    assert pred.columns[-1] == "gripper" and pred.units[0] == "rad" and pred.fps == 15.0
    assert pred.actions.dtype == np.float64 and pred.embodiment == "droid/joint_pos"
    assert (pred.layout, pred.gripper_column) == ("joint_position", "gripper")  # for the plots of its actions.json
    with RemotePolicy(server.url) as policy:  # unknown embodiment: generic names, no layout to tell
        pred = policy.act(droid_request(np.zeros(7)), "a")
    assert pred.columns == [f"a{i}" for i in range(8)] and "layout" not in pred.to_json()


def test_another_servers_odd_descriptive_keys_are_ignored_as_the_actions_arrive(fake):
    """Keys beside the actions that this client cannot read (a rate as text, timings as a list, a metadata frame whose
    fps is no number) were read anyway: every call raised a bare ValueError or AttributeError, as if the request were
    at fault, though the actions had arrived. They are now passed over, as columns of the wrong length are."""
    server = fake(metadata={"fps": "fast", "columns": 5}, r0="odd_extras", r1="odd_extras")
    with RemotePolicy(server.url, embodiment="droid") as policy:
        pred = policy.act(droid_request(np.zeros(7)), "a")
    assert pred.actions.tolist() == REPLY["actions"].tolist() and pred.fps == 15.0  # the embodiment's rate
    assert list(pred.timings) == ["roundtrip"] and pred.settings == {"server": server.url}
    np.testing.assert_array_equal(pred.actions_normalized, get_embodiment("droid").normalize(pred.actions))
    with RemotePolicy(server.url) as policy:  # nothing names a rate: none is made up
        assert policy.act(droid_request(np.zeros(7)), "a").fps == 0.0


def test_a_result_without_a_rate_is_refused_by_save_before_anything_is_written(fake, tmp_path):
    """An openpi server announces no embodiment: without embodiment= the result knows no rate, and `save` wrote its
    actions.json with fps 0 (which `worldpolicy viz` refuses), then failed in the plots naming an `fps` no
    caller passed. It now refuses first, saying what to pass."""
    server = fake()
    with RemotePolicy(server.url) as policy:
        pred = policy.act(droid_request(np.zeros(7)), "a")
    with pytest.raises(ValueError, match=r"fps=0\.0: .*no action rate.*RemotePolicy\(embodiment="):
        pred.save(tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_video_that_is_no_clip_is_an_unreadable_reply(fake):
    server = fake(r0="bad_video")
    with RemotePolicy(server.url, embodiment="droid") as policy:
        with pytest.raises(UnreadableReplyError, match=r"'video'.*\[T, H, W, 3\].*float32 \(4, 4\)"):
            policy.act(droid_request(np.zeros(7)), "a")
        assert policy.act(droid_request(np.zeros(7)), "a").video is None


def test_bad_arguments():
    with pytest.raises(ValueError, match="unsupported scheme"):
        RemotePolicy("http://localhost:8000", connect_now=False)
    with pytest.raises(ValueError, match="read_timeout_s=0"):
        RemotePolicy("localhost:8000", read_timeout_s=0, connect_now=False)
    # inf and a string failed only at the first call (OverflowError, TypeError from the socket layer)
    for bad in (float("inf"), "5", None):
        with pytest.raises(ValueError, match=rf"read_timeout_s={bad!r} must be a finite number of seconds > 0"):
            RemotePolicy("localhost:8000", read_timeout_s=bad, connect_now=False)
    with pytest.raises(TypeError, match=r"embodiment=\{'name': 'droid'\} must be a registered name"):
        RemotePolicy("localhost:8000", embodiment={"name": "droid"}, connect_now=False)
    # numpy's numbers are seconds too (a config array's); a bool is none
    RemotePolicy("localhost:8000", read_timeout_s=np.float32(2.5), connect_now=False)
    with pytest.raises(ValueError, match=r"read_timeout_s=True must be a finite number of seconds > 0"):
        RemotePolicy("localhost:8000", read_timeout_s=True, connect_now=False)


def test_not_a_websocket_server():
    """A peer that takes the connection and hangs up is also what a Docker published port or a kubectl port-forward
    does while no server listens behind it (not started yet, or exited): the error says so, not only "not a WebSocket
    policy server"."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def accept_and_hang_up() -> None:
        connection, _ = listener.accept()
        connection.close()

    threading.Thread(target=accept_and_hang_up, daemon=True).start()
    try:
        with pytest.raises(ServerRefusedError, match="completed no WebSocket handshake .*: not a WebSocket policy "
                           "server, or a proxy or port forward .* with no server listening behind it"):
            RemotePolicy(f"ws://127.0.0.1:{listener.getsockname()[1]}", connect_timeout_s=5)
    finally:
        listener.close()


def _blocking_server(release: threading.Event) -> tuple[str, Callable[[], None]]:
    """Like the reference openpi server: inference blocks its event loop (until `release` is set, at most 60 s), so it
    answers no ping and no close frame."""
    import asyncio

    from websockets.asyncio.server import serve

    started, stop = threading.Event(), threading.Event()
    url = {}

    async def handler(ws) -> None:
        await ws.send(packb({}))
        async for _ in ws:
            release.wait(60)  # blocking the loop on purpose, as the reference server does
            await ws.send(packb(REPLY))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None) as server:
            url["url"] = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    started.wait(10)
    return url["url"], stop.set


@contextlib.contextmanager
def _frozen_after_metadata():
    """The URL of a server that takes the WebSocket and sends its metadata frame, then reads nothing more (a process
    stopped with SIGSTOP, a wedged machine): a request larger than the sockets' buffers cannot be sent."""
    from websockets.frames import Frame, Opcode
    from websockets.utils import accept_key

    held = []

    def take(listener: socket.socket) -> None:
        with contextlib.suppress(OSError):  # the listener closed when the test ends
            conn, _ = listener.accept()
            held.append(conn)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            key = next(line.split(b":", 1)[1].strip().decode() for line in request.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:"))
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n")
            conn.sendall(Frame(Opcode.BINARY, packb({})).serialize(mask=False, extensions=[]))

    with socket.create_server(("127.0.0.1", 0)) as listener:
        threading.Thread(target=take, args=(listener,), daemon=True).start()
        try:
            yield f"ws://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            for conn in held:
                conn.close()


@pytest.mark.parametrize("setting", ["timeout_s", "read_timeout_s"])
def test_a_request_a_frozen_server_does_not_read_ends_at_the_timeout(setting):
    """websockets' send has no timeout: a request larger than the sockets' buffers, to a server that reads nothing,
    blocked the call for good, past timeout_s (a robot loop's step with it). It ends at the call's timeout_s, else at
    read_timeout_s, naming it, and the connection is dropped."""
    with _frozen_after_metadata() as url:
        policy = RemotePolicy(url, connect_timeout_s=30, **{"read_timeout_s": 600, setting: 0.3})
        big = {"image": np.zeros(64 * 2**20, np.uint8)}  # 64 MiB: past any loopback buffering
        with pytest.raises(ServerTimeoutError, match=rf"^the request to {url} was not sent within {setting}=0.3 s"
                                                     r".*: the server takes no data \(frozen or wedged"):
            policy.infer(big)
        assert policy._ws is None  # dropped: the next call reconnects
        policy.close()


def test_a_send_timer_that_fires_after_the_send_leaves_the_connection_alone(fake, monkeypatch):
    """The timer that cuts a stalled send (`RemotePolicy._send`) may fire only once the send is done (a cancel that
    lost the race): it must not shut the connection under the reply's wait, nor under the next request on it."""
    from worldpolicy.serving import client

    late = []

    class Late:  # a timer that never fires on its own: the test fires it after the send returned
        def __init__(self, interval, function):
            self.function, self.daemon = function, False
            late.append(self)

        def start(self):
            pass

        def cancel(self):
            pass

    monkeypatch.setattr(client.threading, "Timer", Late)
    server = fake()
    policy = RemotePolicy(server.url, read_timeout_s=5)
    policy.infer({"prompt": "stack the cups"})
    ws = policy._ws
    for timer in late:
        timer.function()
    assert ws.protocol.state is ws.protocol.state.OPEN
    policy.infer({"prompt": "stack the cups"})  # the same connection, still good
    assert policy._ws is ws and server.connections == 1 and server.requests == 2 and len(late) == 2
    policy.close()


def test_read_timeout_is_kept_when_the_server_is_wedged():
    """The call ends at read_timeout_s, without a closing handshake with a server that cannot answer it: one waited
    for close_timeout (the connect timeout, 600 s here), so the call would still be running when the server is
    released."""
    release = threading.Event()
    url, stop = _blocking_server(release)
    try:
        with ThreadPoolExecutor(1) as pool:
            policy = RemotePolicy(url, read_timeout_s=0.3, connect_timeout_s=600)
            assert policy._ws.ping_timeout is None  # pings never end a connection: read_timeout_s alone means "silent"
            pending = pool.submit(policy.act, droid_request(np.zeros(7)), "a")
            with pytest.raises(ServerTimeoutError, match=r"within read_timeout_s=0.3 s: .* a larger read_timeout_s"):
                pending.result(30)  # a hang guard: a closing handshake would wait 600 s
            assert not release.is_set()  # the server is still wedged: the call did not wait for it
    finally:
        release.set()
        stop()


def test_reply_over_the_client_limit_names_the_client_setting(fake):
    server = fake()
    with (
        RemotePolicy(server.url, limits=Limits(max_message_bytes=100)) as policy,
        pytest.raises(UnreadableReplyError, match="exceeds this client's max_message_bytes=100"),
    ):
        policy.act(droid_request(np.zeros(7)), "a")


def test_an_api_key_read_from_a_file_is_sent_without_its_newline_and_never_shown(serve):
    """`api_key=Path("key").read_text()` kept the file's newline: websockets refused the header, reported as "answered
    but is not a WebSocket policy server ... check the host and port", with the key in the message."""
    t = serve(api_key="robot-key-0001")
    with RemotePolicy(t.url, api_key="robot-key-0001\n") as policy:
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (32, 8)
    with pytest.raises(ValueError, match=r"api_key contains a control character \(newline, tab...\) inside") as info:
        RemotePolicy(t.url, api_key="robot-key\n0001")
    assert "robot" not in str(info.value)


def test_a_request_over_the_servers_announced_limit_is_refused_before_it_travels():
    """The metadata frame announces `max_message_bytes`; a larger request (a long clip) was uploaded whole, only for
    the server to close with 1009."""
    received = []

    def serving(metadata: dict, **options) -> tuple[str, Callable[[], None]]:
        def handler(ws) -> None:
            ws.send(packb(metadata))
            for message in ws:
                received.append(len(message))
                ws.send(packb(REPLY))

        server = sync_serve(handler, "127.0.0.1", 0, compression=None, **options)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}", server.shutdown

    url, stop = serving({"max_message_bytes": 5000})
    try:
        with RemotePolicy(url) as policy:
            with pytest.raises(BadRequestError, match=r"the request is \d+ bytes, over the 5000 \(0.00477 MiB\) the "
                                                      r"server at ws://.* accepts \(its max_message_bytes\)"):
                policy.act(droid_request(np.zeros(7)), "a")  # three 32x32 images: 9 kB
            assert received == []
            assert policy.act(droid_request(np.zeros(7), size=8), "a").actions.shape == (4, 8)
    finally:
        stop()
    # a server that announces no limit (openpi's, an older one) closes with 1009: the error says what to change
    url, stop = serving({}, max_size=5000)
    try:
        with RemotePolicy(url) as policy:
            with pytest.raises(ServerClosedError, match="code 1009 .* exceeds the server's max_message_bytes") as info:
                policy.act(droid_request(np.zeros(7)), "a")
            assert info.value.code == 1009
    finally:
        stop()


def test_a_16_bit_image_travels_as_the_local_policy_reads_it(tmp_path):
    """RemotePolicy converted every image file to RGB before sending: a 16-bit PNG (a depth-of-field ramp, a deep
    camera's frame) arrived clipped to black and white, while the local Policy reads its grey levels."""
    from PIL import Image

    from worldpolicy.processing.observations import load_frames
    from worldpolicy.serving.client import _image_array

    ramp = np.tile(np.linspace(0, 1, 64), (32, 1))
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / "deep.png")
    local = load_frames(tmp_path / "deep.png")
    for given in (tmp_path / "deep.png", Image.open(tmp_path / "deep.png")):
        sent = _image_array(given)
        np.testing.assert_allclose(load_frames(sent), local, atol=1e-6)  # what the server reads from it
    rgb = (np.random.default_rng(0).random((32, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "plain.png")
    assert _image_array(tmp_path / "plain.png").dtype == np.uint8  # 8-bit images still travel as uint8


def test_connects_with_a_websockets_older_than_15(fake, monkeypatch):
    """websockets 13 and 14 (the serve extra allows >= 13) have no keepalive in their threading client: `connect`
    hands unknown keywords to `socket.create_connection`, so every connection failed with "create_connection() got an
    unexpected keyword argument 'ping_timeout'". The keepalive options go only to a `connect` that takes them."""
    from worldpolicy.serving import client

    real = client.connect

    def connect_14(uri, *, sock=None, compression="deflate", additional_headers=None, user_agent_header=None,
                   open_timeout=10, close_timeout=10, max_size=2**20, max_queue=16, create_connection=None,
                   **kwargs):  # websockets 14.2's signature, less what is not passed
        if kwargs:
            raise TypeError(f"create_connection() got an unexpected keyword argument {next(iter(kwargs))!r}")
        return real(uri, sock=sock, compression=compression, additional_headers=additional_headers,
                    user_agent_header=user_agent_header, open_timeout=open_timeout, close_timeout=close_timeout,
                    max_size=max_size, max_queue=max_queue,
                    create_connection=create_connection, proxy=None, legacy=True)  # 14's direct connection

    monkeypatch.setattr(client, "connect", connect_14)
    server = fake()
    with RemotePolicy(server.url, embodiment="droid") as policy:
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
    with pytest.raises(ValueError, match=r"proxy='socks5h://p:1080' needs websockets >= 15"):
        RemotePolicy(server.url, proxy="socks5h://p:1080", connect_now=False)  # 14 has no proxy support


def test_a_robot_shells_proxy_settings_are_not_used_unless_asked(fake, monkeypatch):
    """websockets >= 15 sends ws:// through http_proxy/all_proxy, 127.0.0.1 included; a lab's outbound proxy (set for
    pip) cannot reach the GPU box beside the robot. Here the "proxy" is a closed port: used, it refuses."""
    from worldpolicy.serving import client

    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")
    server = fake()
    seen = []
    real = client.connect
    monkeypatch.setattr(client, "connect", functools.wraps(real)(lambda uri, **kw: seen.append(kw) or real(uri, **kw)))
    with RemotePolicy(server.url, embodiment="droid") as policy:
        assert policy.act(droid_request(np.zeros(7)), "a").actions.shape == (4, 8)
    # one reply in flight on the wire: one frame read ahead, not websockets' 16 of up to max_message_bytes each
    assert seen[0]["max_queue"] == 1 and seen[0]["proxy"] is None
    with pytest.raises(ServerRefusedError, match="cannot connect"):
        RemotePolicy(server.url, proxy=True)  # asked for: the environment's proxy, which refuses here
    for bad in (False, "", 8080):
        with pytest.raises(ValueError, match="accepted: None .connect directly., True"):
            RemotePolicy(server.url, proxy=bad, connect_now=False)


def test_a_calls_timeout_bounds_the_whole_request_and_names_itself(fake):
    """`timeout_s`, the client's or a call's own, ends a call the server does not answer in time whatever the per-wait
    timeouts (600 s here: a robot's loop stalled that long), with an error naming the setting that ran out; the
    connection is dropped, and the next call, on a new one, gets its own reply, not the late one."""
    server = fake(r0="silent", r1="silent")
    policy = RemotePolicy(server.url, read_timeout_s=600, connect_timeout_s=600, timeout_s=0.3)
    with pytest.raises(ServerTimeoutError, match=r"no reply from .* within timeout_s=0.3 s \(this call's whole "
                                                 r"time, a connect included\): .* a larger timeout_s"):
        policy.act(droid_request(np.zeros(7)), "a")
    with pytest.raises(ServerTimeoutError, match=r"within timeout_s=0.2 s"):  # a call's own replaces the client's
        policy.act(droid_request(np.zeros(7)), "a", timeout_s=0.2)
    pred = policy.act(droid_request(np.zeros(7)), "b", timeout_s=60)
    np.testing.assert_array_equal(pred.actions, np.ones((4, 8)))
    assert server.connections == 3
    policy.close()


def test_a_calls_own_timeout_does_not_outlast_it(fake):
    """A call's `timeout_s` bounds that call only: what uses the connection next on the same client (`metadata()`'s
    reconnect, a call with none, as the client has none) has its per-wait timeouts, the first call's deadline gone."""
    server = fake(r0="silent", r1="silent")  # each reply 1 s late, well past the first call's 0.2 s
    with RemotePolicy(server.url) as policy:
        with pytest.raises(ServerTimeoutError, match=r"within timeout_s=0.2 s"):
            policy.act(droid_request(np.zeros(7)), "a", timeout_s=0.2)
        assert policy.metadata() == {}  # the reconnect: a deadline kept, run out, would fail it at once
        pred = policy.act(droid_request(np.zeros(7)), "b")
        np.testing.assert_array_equal(pred.actions, np.zeros((4, 8)))  # its own reply, on the new connection
    assert (server.requests, server.connections) == (2, 2)


def test_a_calls_timeout_bounds_its_connect():
    """A reconnect counts toward the call's timeout_s: a server that takes the connection but never sends its metadata
    frame held the call for connect_timeout_s (600 s here) before its request was even sent."""
    with _silent_after_handshake() as url:
        policy = RemotePolicy(url, connect_timeout_s=600, connect_now=False)
        with pytest.raises(ServerTimeoutError, match=r"no metadata frame .* within timeout_s=0.3 s"):
            policy.infer(droid_request(np.zeros(7)), timeout_s=0.3)


@pytest.mark.parametrize(("silent", "what"), [(_silent_before_handshake, "WebSocket handshake"),
                                              (_silent_after_handshake, "metadata frame")])
def test_the_clients_timeout_bounds_its_connect_on_construction(silent, what):
    """A robot starting against a stalled server waits the client's timeout_s in all, not connect_timeout_s (60 s
    here) for the handshake and as long again for the metadata frame; the error names timeout_s, as a call's does."""
    with silent() as url, pytest.raises(ServerTimeoutError, match=rf"no {what} from .* within timeout_s=0.3 s \(this "
                                                                  r"call's whole time, a connect included\): "):
        RemotePolicy(url, connect_timeout_s=60, timeout_s=0.3)


def test_the_clients_timeout_bounds_metadata_and_the_attributes_read_through_it():
    """`metadata()`, and an announced attribute read on an unconnected client, connect within the client's timeout_s;
    a client without one still waits connect_timeout_s for each step."""
    with _silent_after_handshake() as url:
        policy = RemotePolicy(url, connect_timeout_s=60, timeout_s=0.3, connect_now=False)
        for read in (policy.metadata, lambda: policy.chunk_size):
            with pytest.raises(ServerTimeoutError, match=r"no metadata frame .* within timeout_s=0.3 s \(this call's "):
                read()
        with pytest.raises(ServerTimeoutError, match=r"no metadata frame .* within connect_timeout_s=0.3 s: "):
            RemotePolicy(url, connect_timeout_s=0.3, connect_now=False).metadata()


def _until_held(policy: RemotePolicy) -> None:
    """Until a call on `policy` holds its connection (a hang guard, not a timing)."""
    for _ in range(3000):
        if policy._waiting:
            return
        time.sleep(0.01)


def test_metadata_waiting_for_another_threads_call_is_bounded_by_the_clients_timeout():
    """metadata() takes its turn on the connection like a call: behind a wedged server's call it ends at the client's
    timeout_s, saying why, and the call that held the connection (its own timeout_s, longer) still gets its reply."""
    release = threading.Event()
    url, stop = _blocking_server(release)
    try:
        policy = RemotePolicy(url, read_timeout_s=600, timeout_s=0.3)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(policy.act, droid_request(np.zeros(7)), "a", timeout_s=60)
            _until_held(policy)
            with pytest.raises(ServerTimeoutError, match=r"no metadata frame .* within timeout_s=0.3 s \(.*\): another "
                                                         r"call on this RemotePolicy held its connection"):
                policy.metadata()
            release.set()
            np.testing.assert_array_equal(first.result(30).actions, np.ones((4, 8)))
        policy.close()
    finally:
        release.set()
        stop()


def test_a_call_waiting_for_another_threads_call_is_bounded_by_its_timeout():
    """Calls from several threads take turns on the one connection: the one waiting its turn behind a wedged server's
    call ends at its own timeout_s, saying so, and the call that held the connection still gets its own reply."""
    release = threading.Event()
    url, stop = _blocking_server(release)
    try:
        policy = RemotePolicy(url, read_timeout_s=600)
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(policy.act, droid_request(np.zeros(7)), "a")
            _until_held(policy)
            with pytest.raises(ServerTimeoutError, match=r"no reply from .* within timeout_s=0.3 s \(this call's "
                                                         r"whole time, a connect included\): another call on this "
                                                         r"RemotePolicy held its connection"):
                policy.act(droid_request(np.zeros(7)), "b", timeout_s=0.3)
            release.set()
            np.testing.assert_array_equal(first.result(30).actions, np.ones((4, 8)))
        policy.close()
    finally:
        release.set()
        stop()


@pytest.mark.parametrize("bad", [0, -1.0, float("inf"), float("nan"), "1", True])
def test_a_timeout_that_is_no_positive_number_of_seconds_is_refused_naming_it(bad):
    """Refused when the client is made, and a call's own before anything travels (nothing listens at port 9)."""
    with pytest.raises(ValueError, match=r"timeout_s=.* must be a finite number of seconds > 0 or None"):
        RemotePolicy("localhost:8000", timeout_s=bad, connect_now=False)
    policy = RemotePolicy("ws://127.0.0.1:9", connect_now=False)
    calls = [lambda: policy.act(droid_request(np.zeros(7)), "a", timeout_s=bad),
             lambda: policy.infer(droid_request(np.zeros(7)), timeout_s=bad),
             lambda: policy.act_batch([], timeout_s=bad)]
    for call in calls:
        with pytest.raises(ValueError, match=r"timeout_s=.* must be a finite number of seconds > 0 or None"):
            call()


def test_a_server_killed_mid_request_loses_that_request_and_the_next_call_reconnects(fake):
    """docs/robot.md, "When the server goes away": a request in flight when the server dies is not resent (it may have
    run); its call says the connection ended without a close frame, and the next call gets a new connection."""
    server = fake(r0="crash")
    with RemotePolicy(server.url) as policy:
        with pytest.raises(ServerClosedError, match=r"dropped the connection before the reply \(no close frame: "
                                                    r"crashed or network lost\); the next call reconnects"):
            policy.act(droid_request(np.zeros(7)), "a")
        assert policy.act(droid_request(np.zeros(7)), "b").actions.shape == (4, 8)
    assert (server.requests, server.connections) == (2, 2)
