"""Suite-wide fixtures."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _restore_root_logging():
    """`cli.main` binds the root log handler to the current stderr, which under pytest is a per-test capture closed
    when the test ends; a later log line (often from a server's thread) then printed "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def default_sigterm():
    """SIGTERM's disposition as a shell starts a command (default: terminate), for a test that sends one to this
    process: a handler an earlier test left behind (ray.init installs its own) would otherwise decide what it does,
    up to ending the test run."""
    import signal

    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
