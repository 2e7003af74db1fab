"""The loopback helpers the test folders share (tests/ is on `sys.path` through its conftest.py): a port for the tests
that start a server in another process, or need one where nothing listens; the connections a served policy holds."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS's pick); nothing listens there once this returns."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_connections(served, expected: int, timeout_s: float = 10) -> int:
    """How many WebSocket connections the `ServerThread` `served` holds, once it has seen those closed go (waiting up
    to `timeout_s` for `expected`)."""
    deadline = time.monotonic() + timeout_s
    while len(served.server._connections) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return len(served.server._connections)
