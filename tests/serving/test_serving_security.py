"""The API key stays out of logs (websockets logs each handshake header at DEBUG, on both ends); what a client may
make the server hold is bounded."""

from __future__ import annotations

import logging
import time
import urllib.request

import numpy as np
import pytest
import websockets
from serving_standins import droid_request, metric
from websockets.sync.client import connect

from worldpolicy.serving import Limits, RemotePolicy, ServerConfig, packb, unpackb

KEY = "s3cret-key-123"


def test_debug_logging_shows_the_handshake_without_the_api_key(serve, caplog):
    t = serve(api_key=KEY)
    # each end's logger at DEBUG itself: `worldpolicy serve`, run in-process by an earlier test, quiets the server's
    with (caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="websockets.server"),
          caplog.at_level(logging.DEBUG, logger="websockets.client"), RemotePolicy(t.url, api_key=KEY)):
        pass
    lines = [f"{r.name}: {r.getMessage()}" for r in caplog.records]
    said = [line for line in lines if "Authorization" in line]
    # both ends log the header (so the test sees the lines it guards), neither its value
    assert {line.split(":")[0] for line in said} == {"websockets.client", "websockets.server"}
    assert all(line.endswith("Authorization: <redacted>") for line in said), said
    assert not [line for line in lines if KEY in line]


@pytest.mark.parametrize("header", ["Authorization", "proxy-authorization"])
def test_only_credential_headers_are_redacted(caplog, header):
    from worldpolicy.serving.redaction import redact_credentials

    redact_credentials("worldpolicy.test_redaction")
    log = logging.getLogger("worldpolicy.test_redaction")
    with caplog.at_level(logging.DEBUG, logger="worldpolicy.test_redaction"):
        log.debug("> %s: %s", header, "Api-Key abc")
        log.debug("> %s: %s", "Host", "robot:8000")
    assert [r.getMessage() for r in caplog.records] == [f"> {header}: <redacted>", "> Host: robot:8000"]


def test_metrics_answer_with_one_content_type(serve):
    """websockets' response headers are a multi-map: setting Content-Type added a second one beside its default
    (text/plain; charset=utf-8), and a scraper reading the first took the exposition format for plain text."""
    t = serve(api_key=KEY)
    http = "http" + t.url.removeprefix("ws")
    request = urllib.request.Request(http + "/metrics", headers={"Authorization": f"Api-Key {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers.get_all("Content-Type") == ["text/plain; version=0.0.4; charset=utf-8"]


def test_a_server_configs_repr_does_not_show_its_api_key():
    """A config printed in a notebook, a log line or a traceback's locals keeps the key out, as RemotePolicy's repr."""
    from worldpolicy.serving import ServerConfig

    config = ServerConfig(api_key=KEY)
    assert KEY not in repr(config) and KEY not in str(config)
    assert "max_batch=8" in repr(config)  # the rest is still shown


def _start_of_a_message(ws, size: int) -> None:
    """Send the first `size` bytes of a fragmented binary message on `ws`, and nothing more (the client still answers
    pings: websockets' does)."""
    unpackb(ws.recv())  # the server's metadata
    with ws.send_context():
        ws.protocol.send_binary(b"\0" * size, fin=False)


def _closed_with(ws) -> websockets.ConnectionClosed:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        ws.recv(timeout=30)
    return closed.value


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_a_message_left_unfinished_is_closed_1008_and_counted(serve, caplog, event_loop):
    """Its bytes were held for as long as the client answered pings (websockets bounds a message's size, not its
    time)."""
    if event_loop == "uvloop":
        pytest.importorskip("uvloop")
    t = serve(message_timeout_s=0.2, event_loop=event_loop)
    with connect(t.url, compression=None, max_size=None) as ws:
        _start_of_a_message(ws, 1000)
        closed = _closed_with(ws)
    assert closed.rcvd.code == 1008 and "message_timeout_s=0.2" in closed.rcvd.reason
    assert metric(t, 'worldpolicy_requests_total{status="too_slow"}') == 1.0
    assert any('"too_slow"' in r.getMessage() and "1000 bytes so far" in r.getMessage() for r in caplog.records)
    assert t.server._incoming.held == 0
    with RemotePolicy(t.url) as policy:  # the server serves on
        policy.act(droid_request(np.zeros(7)), "go")


def test_a_message_after_one_that_arrived_in_pieces_still_has_its_deadline(serve):
    """The timer armed by the first message is left armed when it ends (no cancel per message) and re-armed for the
    message arriving when it fires: the next message, left unfinished, is still cut."""
    t = serve(message_timeout_s=0.2)
    with connect(t.url, compression=None, max_size=None) as ws:
        unpackb(ws.recv())  # the server's metadata
        request = packb(droid_request(np.zeros(7)))
        with ws.send_context():
            ws.protocol.send_binary(request[:100], fin=False)
        deadline = time.monotonic() + 10
        while t.server._incoming.held == 0 and time.monotonic() < deadline:  # the server has read its first piece
            time.sleep(0.01)
        with ws.send_context():
            ws.protocol.send_continuation(request[100:], fin=True)
        assert "actions" in unpackb(ws.recv(timeout=30))  # it arrived whole within its deadline: answered
        time.sleep(0.1)  # the next one starts well after the first's start (a clock tick on uvloop is 1 ms)
        with ws.send_context():
            ws.protocol.send_binary(b"\0" * 1000, fin=False)
        closed = _closed_with(ws)
    assert closed.rcvd.code == 1008 and "message_timeout_s=0.2" in closed.rcvd.reason
    assert metric(t, 'worldpolicy_requests_total{status="too_slow"}') == 1.0
    assert t.server._incoming.held == 0


def test_unfinished_messages_over_max_incoming_bytes_are_refused_1013(serve):
    """Eight clients each holding 48 MiB of an unfinished message held ~380 MiB; the sum is bounded now."""
    limits = Limits(max_message_bytes=64 * 2**10, max_array_bytes=64 * 2**10)
    t = serve(limits=limits, max_incoming_bytes=96 * 2**10, message_timeout_s=None)
    with connect(t.url, compression=None, max_size=None) as first:
        _start_of_a_message(first, 48 * 2**10)
        deadline = time.monotonic() + 10
        while t.server._incoming.held < 48 * 2**10 and time.monotonic() < deadline:  # the server has read it
            time.sleep(0.01)
        with connect(t.url, compression=None, max_size=None) as second:
            _start_of_a_message(second, 60 * 2**10)
            closed = _closed_with(second)
        assert closed.rcvd.code == 1013 and "max_incoming_bytes=98304" in closed.rcvd.reason
        assert metric(t, 'worldpolicy_requests_total{status="busy"}') == 1.0
        with first.send_context():  # the first one finishes its message: read (a bad request), not refused as too much
            first.protocol.send_continuation(b"\0", fin=True)
        assert "bad request" in first.recv(timeout=30)
    assert t.server._incoming.held == 0


def test_max_incoming_bytes_must_hold_one_message():
    with pytest.raises(ValueError, match=r"max_incoming_bytes=1000 is invalid; accepted: an int >= limits"):
        ServerConfig(max_incoming_bytes=1000)
    with pytest.raises(ValueError, match=r"message_timeout_s=0 is invalid"):
        ServerConfig(message_timeout_s=0)
