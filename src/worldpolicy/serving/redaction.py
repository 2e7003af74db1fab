"""The API key kept out of websockets' debug log.

websockets logs every handshake header at DEBUG (`> Authorization: Api-Key <key>` on the client, `< ...` on the
server), so `worldpolicy -v sim --api-key ...`, or any program that turns on DEBUG logging, wrote the key to its log.
The client and the server install this filter on websockets' loggers when they are imported.
"""

from __future__ import annotations

import logging

__all__ = ["redact_credentials"]

_SECRET_HEADERS = {"authorization", "proxy-authorization"}


class _RedactCredentials(logging.Filter):
    """A header line (`"> %s: %s"`, name and value as its args) naming a credential header keeps its name only."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() in _SECRET_HEADERS:
            record.args = (args[0], "<redacted>")
        return True


def redact_credentials(*logger_names: str) -> None:
    """Install the filter on each named logger, once."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactCredentials) for f in logger.filters):
            logger.addFilter(_RedactCredentials())
