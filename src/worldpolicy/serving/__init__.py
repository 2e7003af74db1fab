"""Serving over the openpi WebSocket wire: codec, batching server, observation adapters, `RemotePolicy` client.

Needs the `serve` extra. Names load on first use, so a robot-side process
importing `RemotePolicy` never imports the server's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CodecError": "codec",
    "Limits": "codec",
    "packb": "codec",
    "unpackb": "codec",
    "ObservationAdapter": "adapters",
    "RequestError": "adapters",
    "WireRequest": "adapters",
    "PolicyServer": "server",
    "ServerConfig": "server",
    "ServerThread": "server",
    "RemotePolicy": "client",
    "RemotePolicyError": "client",
    "AuthenticationError": "client",
    "BadRequestError": "client",
    "ClientClosedError": "client",
    "EmbodimentMismatchError": "client",
    "LocalOnlyError": "client",
    "ServerBusyError": "client",
    "ServerClosedError": "client",
    "ServerError": "client",
    "ServerRefusedError": "client",
    "ServerTimeoutError": "client",
    "UnreadableReplyError": "client",
    "UntrustedCertificateError": "client",
}
__all__ = ["API_KEY_ENV"] + list(_EXPORTS)

# The variable a ws:// policy server's key is read from where nothing names one: the command lines' `--policy` client
# (`cli.policy_api_key`) and LeRobot's adapter (`WorldpolicyConfig.api_key_env` unset). `RemotePolicy` itself reads no
# environment (`api_key=`); here rather than in its module, which needs the serve extra, so the CLI imports it freely.
API_KEY_ENV = "WORLDPOLICY_API_KEY"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
