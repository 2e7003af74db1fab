"""`RemotePolicy`: the local `Policy` interface over the openpi wire (our server, openpi's, or any compatible one).

Every failure maps to one distinct error: nothing listening (`ServerRefusedError`), wrong key (`AuthenticationError`),
no answer in time (`ServerTimeoutError`), a reply that is not msgpack-numpy (`UnreadableReplyError`), the connection
closed mid-exchange (`ServerClosedError`), or the server's own error text (`ServerError`, `ServerBusyError`). After
any incomplete exchange the connection is discarded, so a late reply can never be read as the next chunk; the next
call reconnects.
"""

from __future__ import annotations

import inspect
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import websockets
from websockets.exceptions import InvalidStatus, InvalidURI
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection, connect

from ..embodiments import Embodiment, get_embodiment
from ..results import Prediction
from .adapters import IMAGE_KEY
from .codec import DEFAULT_LIMITS, CodecError, Limits, packb, unpackb

__all__ = [
    "AuthenticationError",
    "RemotePolicy",
    "RemotePolicyError",
    "ServerBusyError",
    "ServerClosedError",
    "ServerError",
    "ServerRefusedError",
    "ServerTimeoutError",
    "UnreadableReplyError",
]


# websockets >= 15 warns unless a direct (non-context-manager) connection is asked for explicitly
_DIRECT = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}


class RemotePolicyError(RuntimeError):
    """Base class of every error `RemotePolicy` raises about the server or the connection."""


class ServerRefusedError(RemotePolicyError, ConnectionError):
    """No server accepted the connection (nothing listening, or it answered the handshake with an HTTP error)."""


class AuthenticationError(ServerRefusedError):
    """The server refused the API key (HTTP 401 or 403 at the handshake)."""


class ServerTimeoutError(RemotePolicyError, TimeoutError):
    """The server stayed silent past a timeout."""


class UnreadableReplyError(RemotePolicyError):
    """The server sent a frame that is not a msgpack-numpy action reply."""


class ServerClosedError(RemotePolicyError, ConnectionError):
    """The connection closed before the reply arrived."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ServerError(RemotePolicyError):
    """The server answered with an error (openpi convention: a text frame, then close)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ServerBusyError(ServerError):
    """The server's queue is full (close 1013); retry later or add replicas."""


def _normalise_url(url: str) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"url={url!r} must be a string such as 'ws://gpu-box:8000'")
    if "://" not in url:
        url = "ws://" + url
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"url={url!r} has an unsupported scheme; accepted: ws://host:port or wss://host:port")
    return url


def _image_array(image: Any) -> np.ndarray:
    """Path / PIL image / numpy / torch tensor → numpy array, sent as-is (the server validates it)."""
    if isinstance(image, (str, Path)):
        from PIL import Image

        with Image.open(image) as img:
            return np.asarray(img.convert("RGB"))
    if hasattr(image, "detach"):  # torch tensor, without importing torch
        return image.detach().cpu().numpy()
    return np.asarray(image)


class RemotePolicy:
    """A policy served over the openpi WebSocket wire, with the local `Policy` methods and `Prediction` results.

    `embodiment` names columns/units/fps when the server does not send them (e.g. an openpi server); our server's
    metadata frame carries them. `infer(obs) -> dict` is the raw openpi call, for code written against openpi-client.
    """

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        embodiment: str | Embodiment | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        limits: Limits = DEFAULT_LIMITS,
        connect_now: bool = True,
    ) -> None:
        self.url = _normalise_url(url)
        for name, value in (("connect_timeout_s", connect_timeout_s), ("read_timeout_s", read_timeout_s)):
            if not value > 0:
                raise ValueError(f"{name}={value!r} must be > 0 seconds")
        self._api_key = api_key
        self._embodiment = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.limits = limits
        self._ws: ClientConnection | None = None
        self._metadata: dict[str, Any] = {}
        self._lock = threading.Lock()
        if connect_now:
            with self._lock:
                self._connect()

    # ------------------------------------------------------------------------------------------- connection
    def _connect(self) -> ClientConnection:
        if self._ws is not None:
            return self._ws
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        try:
            ws = connect(
                self.url,
                compression=None,
                max_size=self.limits.max_message_bytes,
                additional_headers=headers,
                open_timeout=self.connect_timeout_s,
                **_DIRECT,
            )
        except InvalidURI as exc:
            raise ValueError(f"url={self.url!r} is not a valid WebSocket URL: {exc}") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
            if status in (401, 403):  # 403: Ray Serve / ASGI servers refuse a WebSocket handshake that way
                raise AuthenticationError(
                    f"{self.url} refused the API key (HTTP {status}): {body or 'pass api_key= matching the server'}"
                ) from None
            raise ServerRefusedError(f"{self.url} refused the connection with HTTP {status}: {body}") from None
        except TimeoutError:
            raise ServerTimeoutError(
                f"no WebSocket handshake from {self.url} within connect_timeout_s={self.connect_timeout_s}"
            ) from None
        except OSError as exc:
            raise ServerRefusedError(
                f"cannot connect to {self.url} ({exc.strerror or exc}); is `worldpolicy serve` running there?"
            ) from None
        self._ws = ws
        try:
            self._metadata = self._receive(self.connect_timeout_s, what="the metadata frame")
        except RemotePolicyError:
            self._drop()
            raise
        return ws

    def _drop(self) -> None:
        if self._ws is not None:
            ws, self._ws = self._ws, None
            ws.close()

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self, timeout: float, what: str) -> dict[str, Any]:
        assert self._ws is not None
        try:
            frame = self._ws.recv(timeout=timeout)
        except TimeoutError:
            raise ServerTimeoutError(
                f"no {what} from {self.url} within {timeout} s: the server may be loading, overloaded or wedged"
            ) from None
        except websockets.ConnectionClosed as exc:
            raise self._closed_error(exc, what) from None
        if isinstance(frame, str):
            code = self._close_code_after_error()
            cls = ServerBusyError if code == CloseCode.TRY_AGAIN_LATER else ServerError
            raise cls(f"error from {self.url}: {frame}", code)
        try:
            reply = unpackb(frame, self.limits)
        except CodecError as exc:
            raise UnreadableReplyError(
                f"unreadable {what} from {self.url} ({len(frame)} bytes, starts {bytes(frame[:60])!r}): {exc}"
            ) from None
        if not isinstance(reply, dict):
            raise UnreadableReplyError(f"{what} from {self.url} is a {type(reply).__name__}, expected a map")
        return reply

    def _close_code_after_error(self) -> int | None:
        try:
            self._ws.recv(timeout=1.0)
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        except TimeoutError:
            pass
        return None

    def _closed_error(self, exc: websockets.ConnectionClosed, what: str) -> ServerClosedError:
        code = exc.rcvd.code if exc.rcvd else (exc.sent.code if exc.sent else None)
        reason = exc.rcvd.reason if exc.rcvd else ""
        hint = ""
        if code == CloseCode.MESSAGE_TOO_BIG:
            hint = " (the request exceeds the server's max_message_bytes)"
        elif code == CloseCode.GOING_AWAY:
            hint = " (the server is shutting down)"
        return ServerClosedError(f"{self.url} closed the connection before {what}: code {code} {reason}{hint}", code)

    # ------------------------------------------------------------------------------------------- exchange
    def metadata(self) -> dict[str, Any]:
        """The server's metadata frame (embodiment, chunk, columns, model... on our server; often {} on openpi's)."""
        with self._lock:
            self._connect()
            return dict(self._metadata)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """One raw request/reply exchange (the openpi `BasePolicy.infer` contract)."""
        with self._lock:
            ws = self._connect()
            try:
                ws.send(packb(dict(obs)))
                return self._receive(self.read_timeout_s, what="a reply")
            except websockets.ConnectionClosed as exc:
                self._drop()
                raise self._closed_error(exc, "a reply") from None
            except BaseException:
                self._drop()  # an incomplete exchange: never reuse this connection
                raise

    def reset(self) -> None:
        """openpi compatibility: the wire has no episode state."""

    def _predict(self, request: dict[str, Any], **options: Any) -> Prediction:
        request.update({k: v for k, v in options.items() if v is not None and v is not False})
        t0 = time.perf_counter()
        reply = self.infer(request)
        return self._prediction(reply, request.get("mode", "policy"), time.perf_counter() - t0)

    @staticmethod
    def _observation(observation: Any) -> dict[str, Any]:
        if isinstance(observation, Mapping):
            return {k: _image_array(v) if hasattr(v, "detach") else v for k, v in observation.items()}
        return {IMAGE_KEY: _image_array(observation)}

    def act(
        self,
        observation: Any,
        prompt: str,
        *,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        decode_video: bool = False,
    ) -> Prediction:
        """Policy mode: observation (image or openpi key dict) + instruction → action chunk."""
        request = {**self._observation(observation), "prompt": prompt}
        return self._predict(request, seed=seed, steps=steps, guidance=guidance, decode_video=decode_video)

    def imagine(
        self,
        observation: Any,
        actions: Any,
        prompt: str,
        *,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        decode_video: bool = True,
    ) -> Prediction:
        """Forward dynamics: observation + action chunk [chunk, action_dim] → imagined rollout."""
        request = {**self._observation(observation), "prompt": prompt, "mode": "forward_dynamics"}
        request["actions"] = np.asarray(actions, dtype=np.float64)
        return self._predict(request, seed=seed, steps=steps, guidance=guidance, decode_video=decode_video)

    def infer_actions(
        self,
        video: Any,
        prompt: str,
        *,
        seed: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
    ) -> Prediction:
        """Inverse dynamics: clip uint8 [T, H, W, 3] (or an mp4 path) → the actions that explain it."""
        if isinstance(video, (str, os.PathLike)):
            from ..processing.video import read_video

            video, _ = read_video(video)
        request = {"video": np.asarray(video), "prompt": prompt, "mode": "inverse_dynamics"}
        return self._predict(request, seed=seed, steps=steps, guidance=guidance)

    # ------------------------------------------------------------------------------------------- results
    @property
    def embodiment(self) -> Embodiment | None:
        """The embodiment the server announces (if registered here), else the one given to the constructor."""
        name = self._metadata.get("embodiment")
        if isinstance(name, str):
            try:
                return get_embodiment(name)
            except KeyError:
                pass
        return self._embodiment

    def _prediction(self, reply: dict[str, Any], mode: str, roundtrip_s: float) -> Prediction:
        raw = reply.get("actions", reply.get("action"))
        if not isinstance(raw, np.ndarray) or raw.ndim != 2 or raw.dtype.kind not in "biuf":
            got = f"{raw.dtype} {raw.shape}" if isinstance(raw, np.ndarray) else type(raw).__name__
            raise UnreadableReplyError(f"reply from {self.url} lacks an 'actions'/'action' array [chunk, dim] ({got})")
        actions = raw.astype(np.float64)
        dim = actions.shape[1]
        e, meta = self.embodiment, self._metadata

        def pick(key: str, fallback: Any) -> Any:
            for source in (reply, meta):
                value = source.get(key)
                if isinstance(value, list) and len(value) == dim:
                    return [str(v) for v in value]
            return fallback

        known = e is not None and e.action_dim == dim
        columns = pick("columns", list(e.columns) if known else [f"a{i}" for i in range(dim)])
        units = pick("units", list(e.units) if known else ["1"] * dim)
        normalized = reply.get("actions_normalized")
        if isinstance(normalized, np.ndarray) and normalized.shape == actions.shape:
            normalized = normalized.astype(np.float64)
        else:
            normalized = e.normalize(actions) if known else actions.copy()
        fps = reply.get("fps", meta.get("fps", e.fps if e is not None else 0.0))
        video = reply.get("video")
        timings = {"roundtrip": roundtrip_s}
        for group in ("server_timing", "policy_timing"):
            for key, value in (reply.get(group) or {}).items():
                if isinstance(key, str) and key.endswith("_ms") and isinstance(value, (int, float)):
                    timings[f"{'server' if group == 'server_timing' else 'policy'}_{key[:-3]}"] = value / 1000
        settings = dict(reply.get("settings")) if isinstance(reply.get("settings"), dict) else {}
        batch_size = (reply.get("server_timing") or {}).get("batch_size")
        if isinstance(batch_size, int):
            settings["server_batch_size"] = batch_size  # how many requests shared this forward pass
        return Prediction(
            mode=str(reply.get("mode", mode)),
            embodiment=str(reply.get("embodiment", e.key if e is not None else meta.get("embodiment", "unknown"))),
            columns=columns,
            units=units,
            actions=actions,
            actions_normalized=normalized,
            fps=float(fps),
            video=np.array(video) if isinstance(video, np.ndarray) else None,
            timings=timings,
            settings={**settings, "server": self.url},
        )
