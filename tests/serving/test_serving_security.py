"""The API key stays out of logs: websockets logs each handshake header at DEBUG, on both ends."""

from __future__ import annotations

import logging
import urllib.request

import pytest

from worldpolicy.serving import RemotePolicy

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
