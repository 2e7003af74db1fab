"""A loopback port for the tests that start a server in another process, or need one where nothing listens: the one
helper the test folders share (tests/ is on `sys.path` through its conftest.py)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS's pick); nothing listens there once this returns."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
