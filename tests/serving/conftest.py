from __future__ import annotations

import pytest
from serving_standins import StandInPolicy

from worldpolicy.serving import PolicyServer, ServerConfig, ServerThread


@pytest.fixture
def serve():
    """Factory: start a stand-in (or given) policy on a free loopback port; every server is stopped at teardown."""
    threads: list[ServerThread] = []

    def start(policy=None, **config) -> ServerThread:
        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", 0)
        key_map = config.pop("key_map", None)
        server = PolicyServer(policy or StandInPolicy(), ServerConfig(**config), key_map=key_map)
        thread = ServerThread(server).start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.stop()
