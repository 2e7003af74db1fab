"""`RemotePolicy`: the local `Policy` interface over the openpi wire (our server, openpi's, or any compatible one).

Every failure maps to one distinct error: nothing listening or not a WebSocket server (`ServerRefusedError`), wrong key
(`AuthenticationError`), no answer in time (`ServerTimeoutError`), a reply that is not msgpack-numpy or breaks this
client's limits (`UnreadableReplyError`), the connection closed mid-exchange (`ServerClosedError`), or the server's own
error text (`ServerError`, `ServerBusyError`), a server announcing another embodiment than the one asked for or first
heard (`EmbodimentMismatchError`), or this client's own `close()` ending a call in progress (`ClientClosedError`).
After any incomplete exchange the connection is discarded without
waiting on the server, so a late reply can never be read as the next chunk; the next call reconnects. `timeout_s` (per
client, or per call) bounds a whole request: the wait for another call on the client, the connect, the reply and a
resend (`ServerTimeoutError` naming it); the client's bounds its connect on construction and `metadata()` too. A
request whose connection the server closed while it sat idle (restart, drain), or that a draining server refused
unread, is sent once more on a new connection: it was never run.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import os
import queue
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Self
from urllib.parse import urljoin

import numpy as np

from ..errors import ClosedByCallerError, is_integer, is_real
from ..extras import extra_imports

with extra_imports():
    import websockets
    from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
    from websockets.frames import CloseCode
    from websockets.http11 import USER_AGENT
    from websockets.protocol import State
    from websockets.sync.client import ClientConnection, connect
    from websockets.uri import parse_uri

from ..embodiments import MAX_CHUNK_SIZE, Embodiment, check_chunk_size, embodiment_from_dict, get_embodiment
from ..logcapture import logged_warnings
from ..models import SERVER_SCHEMES
from ..policy import (
    DECODE_VIDEO_MODES,
    Policy,
    PolicyRequest,
    _request,
    check_clip_progress,
    check_decode_video,
    check_progress,
    check_requests,
    check_seed,
    fresh_seed,
    ignored_state_warning,
    label_windows,
    observation_state,
    prediction_clip,
    roll_out,
    start_row,
    warn_frame_rate,
)
from ..processing.actions import (
    ACTION_SPACES,
    ACTIONS_SUFFIXES,
    action_prefix_rows,
    actions_object,
    check_prefix_mode,
    load_actions,
    read_actions_file,
    state_numbers,
)
from ..processing.clip import check_clip_options, read_clip
from ..processing.observations import (
    VIDEO_SUFFIXES,
    check_pixel_count,
    clip_from_mapping,
    frame_keys,
    image_files,
    image_pages,
    pil_pixels,
)
from ..processing.prompts import check_task
from ..processing.trajectory import TrajectoryChunks, check_trajectory_options, trajectory_actions
from ..results import MODES, Prediction, is_string_list
from .adapters import IMAGE_KEY
from .codec import DEFAULT_LIMITS, CodecError, Limits, packb, unpackb
from .redaction import redact_credentials

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "EmbodimentMismatchError",
    "LocalOnlyError",
    "RemotePolicy",
    "RemotePolicyError",
    "ServerBusyError",
    "ServerClosedError",
    "ServerError",
    "ServerRefusedError",
    "ServerTimeoutError",
    "UnreadableReplyError",
    "UntrustedCertificateError",
]


logger = logging.getLogger("worldpolicy.serving")
redact_credentials("websockets.client")  # the handshake's Authorization header, at DEBUG

# error texts that blame the request: the server's own checks, and the policy's input errors (server.failure_status)
_REQUEST_FAULTS = ("bad request:", "ValueError:", "TypeError:", "KeyError:")


# how long the main thread waits on the server at a time (`RemotePolicy._recv`): the most a signal handler's close()
# may wait to run when its signal woke no wait
_HANDLER_SLICE_S = 0.25

# what a non-blocking connect_ex returns while the connection is being made (Windows: WSAEWOULDBLOCK)
_CONNECTING = {errno.EINPROGRESS, errno.EWOULDBLOCK, getattr(errno, "WSAEWOULDBLOCK", errno.EWOULDBLOCK)}


def _version_options(proxy: str | bool | None) -> dict[str, Any]:
    """`connect` keywords that only some websockets versions take (the serve extra allows >= 13), given only to one
    that takes them: before 15, the threading client has no keepalive and hands unknown keywords to
    `socket.create_connection`, which refuses them. Pings keep idle connections open through proxies, but never end
    one: a server that infers on its event loop (openpi's) cannot answer them mid-inference, so read_timeout_s alone
    decides "silent" (websockets < 15 sends none). websockets >= 15 warns unless a direct (non-context-manager)
    connection is asked for explicitly (`legacy`).

    `max_queue=1`: the wire has one reply in flight, so one buffered frame is all this client reads ahead; websockets'
    default, 16 frames of up to `max_message_bytes` each (1 GiB at the default 64 MiB), would let a misbehaving
    server fill a robot computer's memory. `proxy`: websockets >= 15 routes through the environment's proxy
    (`http_proxy`, `https_proxy`, `all_proxy`) by default, also to 127.0.0.1 unless `no_proxy` names it; a robot's
    shell often carries the lab's outbound proxy for pip, which cannot reach the GPU box next to it, so this client
    connects directly unless asked (`RemotePolicy(proxy=True)` for the environment's, or a proxy URL)."""
    takes = inspect.signature(connect).parameters
    if proxy is not None and "proxy" not in takes:
        raise ValueError(f"proxy={proxy!r} needs websockets >= 15 (installed: {websockets.__version__}); "
                         "accepted with it: None (direct)")
    options = {"ping_timeout": None, "legacy": True, "max_queue": 1, "proxy": proxy}
    return {k: v for k, v in options.items() if k in takes}


class RemotePolicyError(RuntimeError):
    """Base class of every error `RemotePolicy` raises about the server or the connection."""


class ServerRefusedError(RemotePolicyError, ConnectionError):
    """No policy server accepted the connection (nothing listening, an HTTP error at the handshake, or a peer that
    does not speak WebSocket)."""


class AuthenticationError(ServerRefusedError):
    """The server refused the API key (HTTP 401 or 403 at the handshake). `refusal` (which server, which status),
    `key_sent` and `says` (the server's text) let a command line say the fix in its own flags (`cli.with_key_hint`)
    where the message says it in Python's (`api_key=`)."""

    def __init__(self, message: str, refusal: str = "", key_sent: bool = False, says: str = "") -> None:
        super().__init__(message)
        self.refusal, self.key_sent, self.says = refusal, key_sent, says


class UntrustedCertificateError(ServerRefusedError):
    """A wss:// server whose TLS certificate this client does not trust (`RemotePolicy(ca_file=)` trusts a private
    CA's or a self-signed one)."""


class ServerTimeoutError(RemotePolicyError, TimeoutError):
    """The server stayed silent past a timeout."""


class UnreadableReplyError(RemotePolicyError):
    """The server sent a frame that is not a msgpack-numpy action reply, or one larger than this client accepts."""


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


class BadRequestError(ServerError, ValueError):
    """The server refused what the request holds (a key, shape, value or option): a ValueError, as the local `Policy`
    raises for the same input."""


class ServerBusyError(ServerError):
    """The server cannot take the request now (close 1013, "try again later"): its queue is full, or a batch is stuck
    past its `batch_timeout_s` (the text says which); retry later or on another replica."""


class EmbodimentMismatchError(RemotePolicyError, ValueError):
    """The server announces another embodiment (its name, columns or units) than `expected_embodiment=`, or than the
    one this client first heard from it (a restart or a balancer brought another checkpoint behind the same URL):
    refused at connect, before any of its actions reach a robot."""


class ClientClosedError(RemotePolicyError, ConnectionError, ClosedByCallerError):
    """This client's `close()` (from another thread: an e-stop handler) ended the call that was waiting on the server
    (the request may have run there, its reply is never read) or still connecting to it (nothing was sent)."""


class LocalOnlyError(AttributeError):
    """A local `Policy` attribute or method a `RemotePolicy` cannot offer: the model, its engine and its load-time
    checks live on the server. An AttributeError, so code that probes for one (`getattr(policy, "engine", None)`,
    `hasattr`) takes a remote policy as lacking it, and code that uses one is told why (docs/serving.md,
    "The client")."""


def _positive_int(value: Any) -> int | None:
    """A metadata count (chunk size, resolution tier) as an int, or None where the server does not announce one."""
    return value if is_integer(value) and value > 0 else None


def _rate(value: Any) -> float | None:
    """An action rate (a reply's or the metadata's `fps`) as a float, or None where it is none a robot could run at."""
    return float(value) if is_real(value) and value > 0 else None


def _check_seconds(name: str, value: Any, none: bool = False) -> float:
    """A timeout setting as given, or a ValueError naming it (`none`: None, no limit, is accepted too)."""
    # inf failed only on the first call, as an OverflowError from deep in the socket layer
    if not is_real(value) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a finite number of seconds > 0" + (" or None" if none else ""))
    return value


def _within(setting: str, seconds: float) -> str:
    """How every timeout's error names the setting that ran out (`_budget`), in one wording."""
    whole = " (this call's whole time, a connect included)" if setting == "timeout_s" else ""
    return f"within {setting}={seconds} s{whole}"


def _normalise_url(url: str) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError(f"url={url!r} must be a string such as 'ws://gpu-box:8000'")
    if "://" not in url:
        url = "ws://" + url
    if not url.startswith(SERVER_SCHEMES):
        raise ValueError(f"url={url!r} has an unsupported scheme; accepted: ws://host:port or wss://host:port")
    return url


def _tls_context(url: str, ca_file: str | os.PathLike | None) -> ssl.SSLContext | None:
    """The client's TLS context for a wss:// URL: the system's trusted CAs, or those in `ca_file` (a private CA's or a
    self-signed certificate, PEM); certificate and host name verification stay on. None for ws://, which refuses a
    `ca_file` it would ignore."""
    if ca_file is None:
        return None  # wss://: websockets' default context, the system's CAs
    if not isinstance(ca_file, (str, os.PathLike)) or not str(ca_file):
        raise ValueError(f"ca_file={ca_file!r} is invalid; accepted: None (the system's CAs) or a PEM file's path")
    if not url.startswith("wss://"):
        raise ValueError(f"ca_file={os.fspath(ca_file)!r} verifies a wss:// server's certificate; {url} is plain "
                         "ws://: use the server's wss:// URL, or leave ca_file out")
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_file))
    except OSError as exc:  # ssl.SSLError included: a file that holds no PEM certificate
        why = exc.strerror or (exc.reason if isinstance(exc, ssl.SSLError) else None) or exc
        raise ValueError(f"ca_file={os.fspath(ca_file)!r}: cannot load it ({why}); accepted: a PEM file of the CA "
                         "certificate(s) that signed the server's, or its self-signed certificate") from None


CLIENT_NAME_CHARS = 64  # a `client_name`, appended to the User-Agent a server logs (`server.CLIENT_CHARS` of it)


def _client_name(name: str | None) -> str | None:
    """A `client_name` as a User-Agent header carries it, or an error naming what is accepted: a header holds no
    control characters, and a server's `connect` line keeps only the start of a long one."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip() or len(name) > CLIENT_NAME_CHARS or \
            any(not c.isprintable() or not c.isascii() for c in name):
        raise ValueError(f"client_name={name!r:.80} is invalid; accepted: None, or 1 to {CLIENT_NAME_CHARS} printable "
                         "ASCII characters naming this client (a robot: 'arm-3'), sent in its User-Agent header")
    return name.strip()


def _api_key(key: str | None) -> str | None:
    """The key as a header can carry it: without surrounding whitespace (a key read from a file or a Kubernetes secret
    ends in a newline, which the server strips from its own key too); an empty one is none. Errors never show it."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ValueError(f"api_key must be a string, got {type(key).__name__}")
    key = key.strip()
    if any(not c.isprintable() for c in key):
        raise ValueError("api_key contains a control character (newline, tab...) inside; accepted: printable "
                         "characters, as the server's key")
    return key or None


def _as_uint8_if_exact(frames: np.ndarray) -> np.ndarray:
    """Composed float frames in [0, 1] as the uint8 they were made of, when they were (camera images are): a quarter
    of the bytes, the same pixels for the server (a DROID composite clip of 34 float frames is 141 MB, past a server's
    default message limit). Frames given as other floats travel as they are."""
    quantized = np.round(frames * 255.0).astype(np.uint8)
    return quantized if np.array_equal(quantized.astype(np.float32) / 255.0, frames) else frames


def _image_array(
    image: Any, param: str = "observation", last: int | None = None, first: int | None = None
) -> np.ndarray:
    """Image/video path, PIL image, torch tensor or list of frames → the numpy array the local `Policy` would read,
    without loss (uint8 stays uint8); the server runs the same processing on it. `last` or `first` bound what is read
    of a video file, an animated image, a folder or a list of frames, as the local `Policy` reads it (`load_frames`):
    what is not used does not travel."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if path.is_dir():  # a folder of frames, in the local Policy's order
            return _image_array(image_files(path, param), param, last, first)
        if not path.is_file():
            raise FileNotFoundError(f"{param}: file {str(path)!r} does not exist")
        if path.suffix.lower() in VIDEO_SUFFIXES:
            from ..processing.video import read_video

            return read_video(path, max_frames=first, last=last)[0]
        from PIL import Image

        with Image.open(path) as img:  # the frames of an animated GIF/WebP the local Policy reads, and only those
            check_pixel_count(img, path, param)
            frames = [pil_pixels(page, param) for page in image_pages(img, first, last)]  # 16-bit as float
            animated = getattr(img, "n_frames", 1) > 1
        return np.stack(frames) if animated else frames[0]
    if type(image).__module__.startswith("PIL."):
        return pil_pixels(image, param)  # palette and greyscale images as RGB, as `load_frames` does
    if hasattr(image, "detach"):  # torch tensor, without importing torch
        return image.detach().cpu().numpy()
    if isinstance(image, (list, tuple)) and image and not isinstance(image[0], (int, float)):
        used = range(len(image))[-last:] if last else range(len(image))[:first]  # a frame each: read only those used
        frames = [_image_array(image[i], f"{param}[{i}]") for i in used]
        if len({f.shape for f in frames}) != 1:
            raise ValueError(f"{param}: all frames must share one size, got {sorted({f.shape for f in frames})}")
        return np.stack(frames)
    if image is None or isinstance(image, (str, bytes, dict)):
        raise TypeError(f"{param}: unsupported type {type(image).__name__}; accepted: image/video path, PIL image, "
                        "numpy or torch array, a list of frames, or an openpi-style dict of camera keys")
    return np.asarray(image)


def _is_camera_key(key: str) -> bool:
    """openpi names cameras `.../<something>image<something>` (`observation/wrist_image_left`, `observation/image`)."""
    return "image" in key.rsplit("/", 1)[-1]


class RemotePolicy:
    """A policy served over the openpi WebSocket wire, with the local `Policy` methods and `Prediction` results.

    `embodiment` names columns/units/fps when the server does not send them (e.g. an openpi server); our server's
    metadata frame carries them. `expected_embodiment` is a check instead: every connect refuses a server that does
    not announce that embodiment (name, columns and units) with `EmbodimentMismatchError`; without it, the embodiment
    first announced is held to on every reconnect. `proxy`: None connects directly (default), True through the
    environment's proxy settings, or a proxy URL (websockets >= 15). `ca_file`: for a wss:// server whose certificate
    a private CA signed, or a self-signed one, that CA's (or that certificate's) PEM file, trusted instead of the
    system's CAs; verification stays on. `client_name` (a robot's name, "arm-3") is appended to the User-Agent this
    client sends, which the server's `connect` log line shows as `client`: several robots on one host are told apart
    by more than their port. `infer(obs) -> dict` is the raw openpi call, for code written against openpi-client.

    `timeout_s` bounds a whole request, where `connect_timeout_s` and `read_timeout_s` (sending a request, then the wait
    for its reply) bound one wait each: from the call to its reply, the wait for another thread's call on this client, a
    reconnect and a resend included; a call's own `timeout_s=` (`act`, `imagine`, `infer_actions`, `act_batch`, `infer`)
    replaces it for that call (for each of its requests). The client's also bounds the connect on construction
    (`connect_now=True`) and `metadata()` (which the attributes the server announces read through on an unconnected
    client), the handshake and the metadata frame together. Past it, `ServerTimeoutError` naming it; the connection is
    dropped, the next call reconnects. None (default): each wait has its own timeout only, so a call may take their sum,
    twice where it is resent.
    """

    def __init__(
        self,
        url: str = "ws://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        embodiment: str | Embodiment | None = None,
        expected_embodiment: str | Embodiment | None = None,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
        timeout_s: float | None = None,
        limits: Limits = DEFAULT_LIMITS,
        proxy: str | bool | None = None,
        ca_file: str | os.PathLike | None = None,
        client_name: str | None = None,
        connect_now: bool = True,
    ) -> None:
        self.client_name = _client_name(client_name)
        self.url = _normalise_url(url)
        self._ssl = _tls_context(self.url, ca_file)
        self.ca_file = ca_file
        if not (proxy is None or proxy is True or isinstance(proxy, str) and proxy):
            raise ValueError(f"proxy={proxy!r} is invalid; accepted: None (connect directly), True (the environment's "
                             "http_proxy/https_proxy/all_proxy) or a proxy URL such as 'socks5h://host:1080'")
        self._options = _version_options(proxy)  # a proxy this websockets cannot use fails here, not on connect
        self.proxy = proxy
        for name, value in (("connect_timeout_s", connect_timeout_s), ("read_timeout_s", read_timeout_s)):
            _check_seconds(name, value)
        for name, value in (("embodiment", embodiment), ("expected_embodiment", expected_embodiment)):
            if not (value is None or isinstance(value, (str, Embodiment))):
                raise TypeError(f"{name}={value!r:.80} must be a registered name ('droid', 'droid/relative_pose'), "
                                "an Embodiment, or None (the one the server announces)")
        self._api_key = _api_key(api_key)
        self._embodiment = get_embodiment(embodiment) if isinstance(embodiment, str) else embodiment
        self.expected_embodiment = (get_embodiment(expected_embodiment) if isinstance(expected_embodiment, str)
                                    else expected_embodiment)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.timeout_s = None if timeout_s is None else _check_seconds("timeout_s", timeout_s, none=True)
        self.limits = limits
        self._ws: ClientConnection | None = None
        self._metadata: dict[str, Any] = {}
        self._heard = False  # a metadata frame was read: what the server announces is known
        self._served_embodiment: Embodiment | None = None
        # what every connect must announce: the expected embodiment, else the first one announced (None: nothing yet)
        self._held: Embodiment | None = self.expected_embodiment
        # reentrant: an e-stop in a signal handler runs in the thread whose call it interrupts, which holds the lock;
        # its close() must not wait for itself
        self._lock = threading.RLock()
        self._closes = 0  # counts close() calls: a call or an `act_batch` running across one stops
        self._waiting = False  # an exchange holds the lock (close() from its own thread: a signal handler)
        self._connecting: socket.socket | None = None  # the socket of a connect in progress, which close() shuts
        # the call in progress's deadline (`time.monotonic()`) and the timeout_s it came from; None: none
        self._deadline: tuple[float, float] | None = None
        self._state_said = False  # a state the served embodiment ignores was said (`_say_ignored_state`)
        self._peers: list[RemotePolicy] = []  # an `act_batch`'s extra connections, which close() also closes
        if connect_now:
            with self._turn(self.timeout_s, "metadata frame"):
                self._connect()

    # ------------------------------------------------------------------------------------------- connection
    def _connect(self) -> ClientConnection:
        """The connection, opened if there is none. A close() from another thread (an e-stop while the server is
        unreachable or silent) cuts a connect in progress, in its TCP connect, TLS or WebSocket handshake, instead of
        leaving it to run out connect_timeout_s: it raises ClientClosedError."""
        if self._ws is not None:
            return self._ws
        closes = self._closes
        try:
            ws = self._handshake(closes)
        except RemotePolicyError:
            self._check_open(closes, "connected to")  # cut by close(): that close()'s error, not the server's
            raise
        finally:
            self._connecting = None
        self._ws = ws
        try:
            metadata = self._receive("connect_timeout_s", what="metadata frame")
            served = self._embodiment_from_metadata(metadata)
            self._check_embodiment(metadata, served)
        except RemotePolicyError:
            self._drop()
            raise
        self._metadata, self._served_embodiment, self._heard = metadata, served, True
        if self._held is None:
            self._held = served
        return ws

    def _cuttable(self, sock: socket.socket, closes: int) -> None:
        """Make `sock` the one close() shuts; ConnectionAbortedError if a close() came before it could."""
        self._connecting = sock
        if self._closes != closes:
            raise ConnectionAbortedError(errno.ECONNABORTED, "close() was called")

    def _tcp_connect(self, deadline: float, closes: int) -> socket.socket:
        """The TCP connection of a direct connect, made here rather than inside websockets so that close() can cut it:
        a host that is down or unreachable holds a blocking connect for connect_timeout_s, while a connecting socket
        (non-blocking, then waited on) ends as soon as close() shuts it. Each address the host resolves to in turn,
        as `socket.create_connection` tries them."""
        uri = parse_uri(self.url)
        error: OSError | None = None
        for family, kind, proto, _, address in socket.getaddrinfo(uri.host, uri.port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                failed = sock.connect_ex(address)
                self._cuttable(sock, closes)  # after connect_ex: shutting a socket not yet connecting does nothing
                if failed in _CONNECTING:
                    with selectors.DefaultSelector() as waiting:
                        waiting.register(sock, selectors.EVENT_WRITE)
                        if not waiting.select(max(deadline - time.monotonic(), 0.0)):
                            raise TimeoutError("no TCP connection in time")
                    failed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if failed:
                    raise OSError(failed, os.strerror(failed))
                sock.setblocking(True)
                return sock
            except OSError as exc:  # TimeoutError included: the next address, if there is one
                sock.close()
                if self._closes != closes:  # cut by close(): no next address
                    raise
                error = exc
        assert error is not None  # getaddrinfo gives at least one address, or raises
        raise error

    def _handshake(self, closes: int) -> ClientConnection:
        """A connected, handshaken WebSocket, its errors as RemotePolicyErrors. A direct connect's socket is made here
        (`_tcp_connect`) and close() can cut it all along, websockets getting a duplicate of it: a wss:// URL's TLS
        wraps that one, detaching it, while close() shuts the one kept. Through a proxy websockets makes the socket,
        and close() can cut the connect from its WebSocket handshake on, once websockets hands the socket over
        (`create_connection`)."""
        headers = {"Authorization": f"Api-Key {self._api_key}"} if self._api_key else None
        wait, setting, seconds = self._budget("connect_timeout_s")
        deadline = time.monotonic() + wait

        def handed_over(sock: socket.socket, *args: Any, **kwargs: Any) -> ClientConnection:
            self._cuttable(sock, closes)  # the socket the handshake runs on (TLS-wrapped for wss://)
            return ClientConnection(sock, *args, **kwargs)

        options: dict[str, Any] = {**self._options, "create_connection": handed_over}
        if self._ssl is not None:
            options["ssl"] = self._ssl
        kept = None  # the direct connect's socket, which close() shuts (`_tcp_connect`)
        try:
            if self.proxy is None:
                kept = self._tcp_connect(deadline, closes)
                options["sock"] = kept.dup()  # the same TCP connection, for websockets to wrap and own
            ws = connect(
                self.url,
                compression=None,
                max_size=self.limits.max_message_bytes,
                additional_headers=headers,
                user_agent_header=USER_AGENT if self.client_name is None else f"{USER_AGENT} {self.client_name}",
                open_timeout=max(deadline - time.monotonic(), 1e-3),  # what the TCP connect left of connect_timeout_s
                close_timeout=self.connect_timeout_s,
                **options,
            )
        except InvalidURI as exc:
            raise ValueError(f"url={self.url!r} is not a valid WebSocket URL: {exc}") from None
        except ssl.SSLCertVerificationError as exc:  # first: it is also a ValueError
            trusted = (f"the CA certificates in ca_file={os.fspath(self.ca_file)!r}" if self.ca_file is not None
                       else "the system's CA certificates")
            raise UntrustedCertificateError(
                f"{self.url}: the server's TLS certificate does not verify against {trusted} ({exc.verify_message}); "
                "for a private CA's or a self-signed certificate pass its PEM file as ca_file= (command line: "
                "--tls-ca FILE); a host name mismatch needs the name the certificate was made for in the URL"
            ) from None
        except ValueError as exc:  # websockets >= 17.1 follows a redirect, but not over a socket it was given (`sock`)
            if not isinstance(exc.__cause__, InvalidStatus):
                raise
            raise self._refused(exc.__cause__) from None
        except InvalidStatus as exc:
            raise self._refused(exc) from None
        except (InvalidHandshake, websockets.ConnectionClosed) as exc:
            raise ServerRefusedError(
                f"something at {self.url} accepted the connection but completed no WebSocket handshake ({exc}): "
                "not a WebSocket policy server, or a proxy or port forward (a Docker published port, kubectl "
                "port-forward) with no server listening behind it, or one serving TLS, reached at wss://; check the "
                "host, port and scheme, and that the server runs"
            ) from None
        except TimeoutError:
            if self.proxy is None and "sock" not in options:  # the TCP connect itself (`_tcp_connect`)
                raise ServerTimeoutError(
                    f"no TCP connection to {self.url} {_within(setting, seconds)}: the machine "
                    "is down or unreachable, or a firewall drops the packets; check the host, port and network"
                ) from None
            raise ServerTimeoutError(
                f"no WebSocket handshake from {self.url} {_within(setting, seconds)}: "
                "something accepted the connection but did not answer it (a server whose event loop is busy, as "
                "openpi's is while it infers; a proxy queueing connections, as Ray Serve's does when every replica is "
                "busy; or no WebSocket server)"
            ) from None
        except ssl.SSLError as exc:
            raise ServerRefusedError(
                f"no TLS handshake with {self.url} ({exc.reason or exc}): is the server serving TLS (worldpolicy serve "
                "--tls-cert/--tls-key)? A plain server is reached at ws://"
            ) from None
        except OSError as exc:
            raise ServerRefusedError(
                f"cannot connect to {self.url} ({exc.strerror or exc}); is `worldpolicy serve` running there?"
            ) from None
        finally:
            if kept is not None:
                kept.close()  # websockets' duplicate holds the connection
        return ws

    def _refused(self, refusal: InvalidStatus) -> ServerRefusedError:
        """The error for a handshake the server answered with an HTTP status other than 101."""
        status = refusal.response.status_code
        location = refusal.response.headers.get("Location")
        if 300 <= status < 400 and location:  # not followed (websockets < 17.1, or over the socket `_tcp_connect` made)
            return ServerRefusedError(f"{self.url} redirects (HTTP {status}) to {urljoin(self.url, location)}: "
                                      "connect to that URL")
        body = refusal.response.body.decode("utf-8", "replace").strip() if refusal.response.body else ""
        body = body if len(body) <= 300 else body[:300] + "…"  # another service's error page is not the point
        if status in (401, 403):  # 403: Ray Serve / ASGI servers refuse a WebSocket handshake that way
            why = ("this client sent no key: pass api_key=, the value of the variable the server's --api-key-env "
                   "names" if self._api_key is None else
                   "the api_key this client sent is not the server's (the value of its --api-key-env variable)")
            refusal = f"{self.url} refused the API key (HTTP {status})"
            return AuthenticationError(f"{refusal}: {why}" + (f"; it says: {body}" if body else ""), refusal,
                                       self._api_key is not None, body)
        hint = "" if status >= 500 else "; is this the policy server's port?"  # a 404: another service there
        return ServerRefusedError(f"{self.url} refused the connection with HTTP {status}: {body or '(no text)'}{hint}")

    def _check_embodiment(self, metadata: dict[str, Any], served: Embodiment | None) -> None:
        """Refuse a server whose announced embodiment is not the one held to (`expected_embodiment`, else the first
        one announced): its actions would be another robot's, or another action space's, under the same calls."""
        held = self._held
        if held is None:
            return
        why = "expected_embodiment" if self.expected_embodiment is not None else "the embodiment it first announced"
        if served is None:
            raise EmbodimentMismatchError(
                f"{self.url} announces no embodiment (openpi's server and other foreign ones do not), so {why} "
                f"({held.key!r}) cannot be checked; to name the columns of a server that announces none, pass "
                "embodiment= (not expected_embodiment=) to a new RemotePolicy"
            )
        announced = {"embodiment": served.key, "columns": list(served.columns), "units": list(served.units)}
        for field in ("columns", "units"):  # the lists themselves, where the spec could not be read
            if is_string_list(metadata.get(field)):
                announced[field] = metadata[field]
        wanted = {"embodiment": held.key, "columns": list(held.columns), "units": list(held.units)}
        differ = [f"{k} {announced[k]} instead of {wanted[k]}" for k in wanted if announced[k] != wanted[k]]
        if differ:
            raise EmbodimentMismatchError(
                f"{self.url} serves another embodiment than {why} ({'; '.join(differ)}): refused before any of its "
                "actions are used; connect to the server for this robot, or make a new RemotePolicy to accept it"
            )

    def _open_connection(self) -> ClientConnection:
        """The connection, reopened if the server closed it while it sat idle (a restart, a drain)."""
        if self._ws is not None and self._ws.protocol.state is not State.OPEN:
            self._drop()
        return self._connect()

    def _drop(self, abort: bool = True) -> None:
        """Forget the connection. `abort` (after an incomplete exchange): no closing handshake with a server that
        may be wedged, so a failed call returns within its own timeout."""
        if self._ws is not None:
            ws, self._ws = self._ws, None
            if abort:
                ws.close_timeout = 0
            ws.close()

    def close(self) -> None:
        """Close the connection (a later call reconnects). From another thread (an e-stop handler) it returns at once:
        a call waiting on the server ends with `ClientClosedError` (its reply is never read), and an `act_batch` stops;
        so does a call still connecting (`_connect`)."""
        self._closes += 1  # before the lock, which a call in progress holds: it checks this before any retry
        for peer in self._peers:
            peer.close()
        if not self._lock.acquire(blocking=False):
            self._shut()  # another thread's call in progress waits on the connection: end its wait now
            self._lock.acquire()
        elif self._waiting:
            # a signal handler's close() inside this thread's own call: shut the socket under it and leave the rest to
            # that call, which drops the connection as it ends; closing it here could wait forever on a lock
            # websockets holds in the very call interrupted (a signal landing inside `send`)
            self._shut()
            self._lock.release()
            return
        try:
            self._drop(abort=False)
        finally:
            self._lock.release()

    def _shut(self) -> None:
        """Shut the socket under the call waiting on it (the connection's, or that of a connect in progress), whose
        wait then ends at once (`close`)."""
        ws = self._ws
        for sock in (self._connecting, ws.socket if ws is not None else None):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # already closed, or not connected yet (then `_cuttable` saw the close)
                    pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        """The server and what it announced, in one line as `Policy`'s repr, for a notebook or log. From what is known
        already: a repr neither connects (as reading `embodiment` does) nor waits for a call in progress, and never
        shows the API key."""
        announced = self._metadata if self._heard else {}
        model = announced.get("model")
        embodiment = self._served_embodiment or self._embodiment
        counts = [f"{name}={value}" for name in ("chunk_size", "resolution_tier")
                  if (value := _positive_int(announced.get(name))) is not None]
        ws = self._ws
        state = "connected" if ws is not None and ws.protocol.state is State.OPEN else "not connected"
        return ", ".join([f"RemotePolicy({self.url!r}", *([f"model={model!r}"] if isinstance(model, str) else []),
                          f"embodiment={None if embodiment is None else embodiment.key!r}", *counts, f"{state})"])

    def _receive(self, setting: str, what: str) -> dict[str, Any]:
        """One frame, waited for as long as the timeout `setting` (connect_timeout_s, read_timeout_s) says, which a
        timeout's error names."""
        assert self._ws is not None
        wait, setting, timeout = self._budget(setting)
        try:
            frame = self._recv(wait)
        except TimeoutError:
            raise ServerTimeoutError(
                f"no {what} from {self.url} {_within(setting, timeout)}: the server may be loading, overloaded or "
                f"wedged (see its GET /readyz and log; a slow model needs a larger {setting}). The next call "
                "reconnects."
            ) from None
        except websockets.ConnectionClosed as exc:
            raise self._closed_error(exc, what) from None
        if isinstance(frame, str):
            code = self._close_code_after_error()
            cls = ServerBusyError if code == CloseCode.TRY_AGAIN_LATER else ServerError
            if cls is ServerError and frame.startswith(_REQUEST_FAULTS):
                cls = BadRequestError
            raise cls(f"error from {self.url}: {frame}", code)
        try:
            reply = unpackb(frame, self.limits)
        except CodecError as exc:
            raise UnreadableReplyError(
                f"unreadable {what} from {self.url} ({len(frame)} bytes, starts {bytes(frame[:60])!r}): {exc}; "
                "is it an openpi-wire (msgpack-numpy) policy server?"
            ) from None
        if not isinstance(reply, dict):
            raise UnreadableReplyError(
                f"the {what} from {self.url} is a {type(reply).__name__}, expected a map; "
                "is it an openpi-wire (msgpack-numpy) policy server?"
            )
        return reply

    def _budget(self, setting: str) -> tuple[float, str, float]:
        """How long the next wait may last: the timeout `setting` names (connect_timeout_s, read_timeout_s), or what
        is left of the call's `timeout_s` where that is less; with the setting that bounds it, and its value, for the
        error to name."""
        limit = getattr(self, setting)
        if self._deadline is not None:
            deadline, timeout_s = self._deadline
            left = max(deadline - time.monotonic(), 0.0)
            if left < limit:
                return left, "timeout_s", timeout_s
        return limit, setting, limit

    def _recv(self, timeout: float) -> Any:
        """The next frame within `timeout` s; in the main thread, waited for in slices of `_HANDLER_SLICE_S`. Python
        runs a signal handler (an e-stop's close()) only in the main thread, between bytecodes, and a signal that lands
        just before the thread blocks (preempted between its last check and the wait, as under load) wakes nothing: one
        uncut wait ran the handler only once the reply came, or the timeout. A handler pending after a slice runs, and
        its close() shuts the socket, which ends the next slice at once."""
        ws = self._ws
        if threading.current_thread() is not threading.main_thread():  # no handler runs in this thread
            return ws.recv(timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return ws.recv(timeout=min(left, _HANDLER_SLICE_S))
            except TimeoutError:
                if left <= _HANDLER_SLICE_S:
                    raise

    def _close_code_after_error(self) -> int | None:
        try:
            self._ws.recv(timeout=min(1.0, self._budget("read_timeout_s")[0]))
        except websockets.ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        except TimeoutError:
            pass
        return None

    def _closed_error(self, exc: websockets.ConnectionClosed, what: str) -> RemotePolicyError:
        if exc.rcvd is None and exc.sent is not None:  # this client closed: the server sent something it refuses
            if exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                return UnreadableReplyError(
                    f"the {what} from {self.url} exceeds this client's max_message_bytes="
                    f"{self.limits.max_message_bytes}; pass RemotePolicy(limits=Limits(max_message_bytes=...)) or "
                    "ask for less (decode_video=False)"
                )
            return UnreadableReplyError(
                f"{self.url} broke the WebSocket protocol before the {what} ({exc.sent.code} {exc.sent.reason}); "
                "is it a WebSocket policy server?"
            )
        if exc.rcvd is None:
            return ServerClosedError(
                f"{self.url} dropped the connection before the {what} (no close frame: crashed or network lost); "
                "the next call reconnects"
            )
        code, reason = exc.rcvd.code, exc.rcvd.reason
        hint = "; the next call reconnects"
        if code == CloseCode.MESSAGE_TOO_BIG:
            hint = " (the request exceeds the server's max_message_bytes: send smaller images or raise its limit)"
        elif code == CloseCode.GOING_AWAY:
            hint = " (the server is shutting down: the next call reconnects, to another replica behind a balancer)"
        return ServerClosedError(
            f"{self.url} closed the connection before the {what}: code {code} {reason}".rstrip() + hint, code
        )

    # ------------------------------------------------------------------------------------------- exchange
    def metadata(self) -> dict[str, Any]:
        """The server's metadata frame (embodiment, chunk, columns, model... on our server; often {} on openpi's)."""
        with self._turn(self.timeout_s, "metadata frame"):
            self._open_connection()
            return dict(self._metadata)

    def infer(self, obs: Mapping[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """One raw request/reply exchange (the openpi `BasePolicy.infer` contract). `timeout_s`: this call's, in place
        of the client's (`RemotePolicy(timeout_s=)`): the most it may take, from the call to the reply."""
        timeout_s = self._call_timeout(timeout_s)
        message = packb(dict(obs))  # an input that cannot be encoded fails here, before any network traffic
        with self._turn(timeout_s, "reply"):
            closes, self._waiting = self._closes, True
            try:
                try:
                    reply = self._exchange(message, closes)
                except ServerError as exc:
                    if exc.code != CloseCode.GOING_AWAY:
                        raise
                    # a server shutting down refused it unread (its text, then 1001; a request it had taken would
                    # have had its reply, or a bare 1001 at the drain deadline): another replica, or the server
                    # restarted, may take it
                    self._drop()
                    self._check_open(closes)
                    reply = self._exchange(message, closes)
                # a close() inside the call ends it even where it ran once the reply was in (a signal handler that
                # Python ran only then, another thread's e-stop as the reply arrived): its actions are not handed back
                self._check_open(closes)
                return reply
            except websockets.ConnectionClosed as exc:
                self._drop()
                self._check_open(closes)
                raise self._closed_error(exc, "reply") from None
            except RemotePolicyError as exc:
                self._drop()
                if not isinstance(exc, ClientClosedError):  # one from the connect says so already
                    self._check_open(closes)  # the error of a connection close() shut is that close(), not the server
                raise
            except BaseException:
                self._drop()  # an incomplete exchange: never reuse this connection
                raise
            finally:
                self._waiting = False

    @contextlib.contextmanager
    def _turn(self, timeout_s: float | None, what: str) -> Iterator[None]:
        """This client's connection, held for one call (calls from several threads take turns on it), which
        `timeout_s` bounds from here on (None: each wait its own timeout): the wait for the turn, then every wait of
        the call (`_budget`). `what`: what the call waits for, which a timeout's error names."""
        start = time.monotonic()
        if not self._lock.acquire(timeout=-1 if timeout_s is None else timeout_s):
            raise ServerTimeoutError(
                f"no {what} from {self.url} {_within('timeout_s', timeout_s)}: another call on this RemotePolicy held "
                "its connection all along (calls from several threads take turns on it; act_batch opens more)"
            )
        # a call inside another in this thread (a signal handler's): the outer one's deadline is back after it
        outer, self._deadline = self._deadline, None if timeout_s is None else (start + timeout_s, timeout_s)
        try:
            yield
        finally:
            self._deadline = outer
            self._lock.release()

    def _call_timeout(self, timeout_s: Any) -> float | None:
        """A call's `timeout_s` (checked), else the client's."""
        return self.timeout_s if timeout_s is None else _check_seconds("timeout_s", timeout_s, none=True)

    def _check_open(self, closes: int, doing: str = "waited on") -> None:
        """ClientClosedError once close() was called since the call began (`closes`): it is neither retried on a new
        connection nor reported as the server's fault."""
        if self._closes != closes:
            what = ("no request was sent" if doing == "connected to" else
                    "its reply, if any, is not used (the request may have run on the server)")
            raise ClientClosedError(f"close() was called while this call {doing} {self.url}: {what}") from None

    def _exchange(self, message: bytes, closes: int) -> dict[str, Any]:
        ws = self._open_connection()
        self._check_open(closes, "connected to")  # a close() just before the connect began, or the metadata frame
        self._check_size(message)
        try:
            self._send(ws, message)
        except websockets.ConnectionClosed:  # closed while idle, so the request never left: send it again
            self._drop()
            self._check_open(closes)
            ws = self._connect()
            self._check_open(closes)
            self._send(ws, message)
        return self._receive("read_timeout_s", what="reply")

    def _send(self, ws: ClientConnection, message: bytes) -> None:
        """Send `message` on `ws` within the wait `_budget` gives (what is left of the call's `timeout_s`, else
        `read_timeout_s`). websockets' send has no timeout of its own: to a server that reads nothing (frozen, wedged,
        a link that stalled) a request larger than the sockets' buffers blocked it for good, past `timeout_s`. At the
        budget the socket is shut, as `close()` shuts it (`_shut`), which ends the send: `ServerTimeoutError`, the
        connection dropped by the caller, never resent (part of the request may have left). A timer thread, not a
        socket timeout: the socket is shared with websockets' reading thread, whose reads one would bound too (the
        older releases `serve` accepts block in its recv between frames: an idle wait past it failed the
        connection)."""
        wait, setting, seconds = self._budget("read_timeout_s")
        guard, sent, cut = threading.Lock(), [], []

        def expire() -> None:
            with guard:
                if not sent:  # the send is still in progress: end it
                    cut.append(True)
                    with contextlib.suppress(OSError):  # already closed
                        ws.socket.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(wait, expire)
        timer.daemon = True
        timer.start()
        try:
            ws.send(message)
        except websockets.ConnectionClosed:
            if not cut:
                raise
        finally:
            with guard:
                sent.append(True)
            timer.cancel()
        if cut:
            raise ServerTimeoutError(
                f"the request to {self.url} was not sent {_within(setting, seconds)}: the server takes no data (frozen "
                f"or wedged, see its GET /readyz and log) or the network stalled; on a slow link a large request needs "
                f"a larger {setting}. The next call reconnects."
            )

    def _check_size(self, message: bytes) -> None:
        """A request larger than the server announces it accepts (`max_message_bytes`, our servers) is refused here,
        before it travels: the server would read it all, then close with 1009."""
        limit = self._metadata.get("max_message_bytes")
        if is_integer(limit) and len(message) > limit:
            raise BadRequestError(
                f"the request is {len(message)} bytes, over the {limit} ({limit / 2**20:.3g} MiB) the server at "
                f"{self.url} accepts (its max_message_bytes): send smaller images or fewer frames, or raise the "
                "server's --max-message-mb"
            )

    def reset(self) -> None:
        """openpi compatibility: the wire has no episode state."""

    def _wire_request(self, r: PolicyRequest) -> dict[str, Any]:
        """A `PolicyRequest` as wire keys (docs/serving.md), checked here so bad input fails before any traffic.
        Sampling knobs travel only when set, and `decode_video` only when it differs from the mode's default, so an
        openpi server sees a plain observation."""
        if not isinstance(r, PolicyRequest):
            raise TypeError(f"expected a PolicyRequest, got {type(r).__name__}")
        if r.mode not in MODES:
            raise ValueError(f"mode={r.mode!r} is not supported; accepted: {', '.join(MODES)}")
        check_decode_video(r.decode_video)
        if r.actions_space not in ACTION_SPACES:  # in every mode, as the local Policy refuses it
            raise ValueError(f"actions_space={r.actions_space!r}; accepted: {', '.join(ACTION_SPACES)}")
        check_task(r.prompt)
        if r.seed is not None:
            check_seed(r.seed)
        if r.action_prefix is not None:  # before anything connects for the server's embodiment
            check_prefix_mode(r.mode)
        if r.canvas is not None:
            raise ValueError(f"canvas={r.canvas!r}: the wire protocol carries no canvas, so a server puts frames on "
                             "the bin the pipeline picks for their aspect ratio; accepted: canvas=None (a local "
                             "Policy takes one)")
        if r.mode == "inverse_dynamics":
            request: dict[str, Any] = {"video": self._video(r.observation), "mode": r.mode}
        else:
            request = self._observation(r.observation)
            if r.mode == "forward_dynamics":
                request["mode"] = r.mode
                request["actions"], space = self._actions(r.actions, r.actions_space)
                if space != "physical":
                    request["actions_space"] = space
        if r.actions is not None and r.mode != "forward_dynamics":
            raise ValueError(f"actions were given but mode={r.mode!r} generates them; use imagine() instead")
        if r.action_prefix is not None:  # physical rows, as given: the server reads them as the local Policy does
            request["action_prefix"] = action_prefix_rows(r.action_prefix, r.mode, self.embodiment, self.chunk_size)
        request["prompt"] = r.prompt
        options = {"seed": r.seed, "steps": r.steps, "guidance": r.guidance, "negative_prompt": r.negative_prompt}
        request.update({k: v for k, v in options.items() if v is not None})
        given = r.state
        if given is None and r.mode == "inverse_dynamics" and isinstance(r.observation, Mapping):
            given = self._clip_state(r.observation)
        if given is not None:
            state = state_numbers(given, "state")
            # a history [T, dim] as the local Policy takes it: the row the chunk starts from (the wire takes one row)
            request["state"] = (state[start_row(r.mode)] if state.ndim == 2 else state).reshape(-1)
            self._say_ignored_state(state)
        if r.decodes_video != (r.mode in DECODE_VIDEO_MODES):  # the server applies the same default
            request["decode_video"] = r.decodes_video
        return request

    def _clip_state(self, video: Mapping[str, Any]) -> np.ndarray | None:
        """The state a dict of camera clips carries under the served embodiment's state keys, read as the local
        `Policy` reads it (`observation_state`: the clip's first frame), for the wire's `state`: the inverse-dynamics
        wire carries frames and one state row, not the dict's keys, so without it a state-conditioned server was
        refused for lacking the state the local `Policy` found. None where the embodiment does not condition on the
        state (the local `Policy` ignores the keys too, and says nothing), or where the dict carries none of its state
        keys (the server's policy says what it needs, as before); one of them without the other is refused here."""
        e = self.embodiment
        if e is None or not e.state_history or not any(key in video for key in e.state_keys.values()):
            return None
        return observation_state(video, e, "inverse_dynamics")

    def _say_ignored_state(self, state: np.ndarray) -> None:
        """A state the served embodiment does not condition on, said once by this client, as a local `Policy` says it
        once, in its words (no `server ...:` prefix): a server before told warnings once per connection
        (`logcapture.told_once`) said it once per policy, to the first client that sent one, so a second robot never
        heard that its state is ignored. Only for a server that announces its embodiment (ours); another's model may
        read the state. On the `worldpolicy.policy` logger, where the local `Policy` says it, so the reply's copy of the
        same line is not said twice (`_say`)."""
        if self._state_said:
            return
        self._announced()
        text = None if self._served_embodiment is None else ignored_state_warning(self._served_embodiment, state)
        if text is not None:
            self._state_said = True
            logging.getLogger("worldpolicy.policy").warning("%s", text)

    def _actions(self, actions: Any, space: str) -> tuple[np.ndarray, str]:
        """Forward-dynamics actions for the wire, read here exactly as the local `Policy` reads them (files, lists,
        one row, columns, a `Prediction`) and sent in model space. Without a known embodiment (an openpi server, or an
        older one whose metadata carries no `embodiment_spec`), arrays go as given, and a `Prediction` or actions
        object (or file) as its rows in the space it names, once its columns and units are the ones the server
        announces. `space` is one of ACTION_SPACES (`_wire_request` checked it)."""
        if actions is None:
            raise ValueError("actions are required for forward dynamics (imagine)")
        named = isinstance(actions, (Prediction, Mapping))  # a call's result or an actions object: rows named
        path = isinstance(actions, (str, os.PathLike))
        e = self.embodiment  # connected: the embodiment (or the columns) the server announces, to match them to
        if e is not None:
            return load_actions(actions, e, space), "normalized"  # model space, which 'normalized' means
        where = "actions"
        if path:  # an actions file (a run's actions.json) goes on as its object, its rows as an array
            actions, where = read_actions_file(actions)
            named = isinstance(actions, Mapping)
        if named:  # policy -> forward dynamics: a call's result rolls forward
            doc = actions.to_json() if isinstance(actions, Prediction) else actions
            actions, columns, units, space = actions_object(doc, space, where)
            self._check_named(columns, units)
        if hasattr(actions, "detach"):  # torch tensor, without importing torch
            actions = actions.detach().cpu().numpy()
        try:
            values = np.asarray(actions, dtype=np.float64)
        except (ValueError, TypeError):
            raise ValueError(
                f"actions: a {type(actions).__name__} is not a rectangular numeric [T, action_dim] array; accepted "
                "without the server's embodiment: an array, nested list or torch tensor, a Prediction, an actions "
                f"object or an actions file ({', '.join(ACTIONS_SUFFIXES)})"
            ) from None
        return (values[None] if values.ndim == 1 else values), space

    def _check_named(self, columns: Any, units: Any) -> None:
        """Rows named by an actions object go in their order: with no embodiment here to reorder them by name, they
        must be in the order, and units, the server announces (when it does; openpi's announces none)."""
        for field, given in (("columns", columns), ("units", units)):
            served = self._metadata.get(field)
            if given is not None and is_string_list(served) and given != served:
                raise ValueError(
                    f"actions: {field} {given!r} are not the server's {served}, and without its embodiment this "
                    f"client cannot match them by column name: pass RemotePolicy(embodiment=...), or rows in the "
                    f"server's order and units"
                )

    def _video(self, video: Any) -> np.ndarray:
        """Inverse-dynamics input for the wire: a path, frames or a per-camera dict, as the local `Policy` reads it,
        and no more frames than it reads (`_clip_frames`); as uint8 where its pixels were (a quarter of float's bytes,
        the same pixels)."""
        limit = self._clip_frames()
        e = self.embodiment
        if isinstance(video, Mapping):
            if e is None:
                raise ValueError("a per-camera video dict needs the embodiment (its cameras): pass RemotePolicy("
                                 "embodiment=...) or one composed video")
            # the cameras' first frames, composed and checked as the local Policy does
            frames = _as_uint8_if_exact(clip_from_mapping(video, e.camera_keys, e.composite, max_frames=limit))
            clips = [video[k] for k in frame_keys(video.keys(), e.camera_keys, e.composite, "video")]
        else:
            frames = _image_array(video, "video", first=limit)
            if frames.dtype.kind == "f" and np.isfinite(frames).all():  # `read_clip`'s windows of an image clip too
                frames = _as_uint8_if_exact(frames)
            clips = [video]
        if e is not None:  # a video file's frame rate: only here, the server receives its frames
            for clip in clips:
                warn_frame_rate(clip, e.fps)
        return frames[:limit] if frames.ndim == 4 else frames  # another shape is the server's to refuse, as sent

    def _clip_frames(self) -> int | None:
        """How many frames of a clip the server's inverse dynamics reads: chunk_size + 1, and one more so it still
        tells a longer clip apart (and warns, as the local `Policy`). None, all of them, for a server whose metadata
        names no chunk size (openpi's)."""
        chunk = self.chunk_size
        return chunk + 2 if chunk is not None else None

    def _prepared(self, request: PolicyRequest) -> tuple[dict[str, Any], list[str]]:
        """The request's wire keys, and what reading its inputs here warned about: the server runs the same checks
        on what it receives (actions far outside the training range), and says what this client already said only
        once."""
        with logged_warnings() as (said,):
            return self._wire_request(request), said

    def _run(self, wire: dict[str, Any], said: list[str], timeout_s: float | None = None) -> Prediction:
        t0 = time.perf_counter()
        reply = self.infer(wire, timeout_s=timeout_s)
        roundtrip = time.perf_counter() - t0
        self._say(reply, said)  # also when the reply proves unusable: they may say why
        prediction = self._prediction(reply, wire.get("mode", "policy"), roundtrip)
        prefix = wire.get("action_prefix")
        if prefix is not None and prediction.settings.get("action_prefix_rows") != len(prefix):
            raise RemotePolicyError(
                f"the server at {self.url} did not condition its chunk on action_prefix (its reply records no "
                f"settings['action_prefix_rows'] = {len(prefix)}): an openpi server, or a worldpolicy one from "
                "before real-time chunking, ignores the key; leave action_prefix out for it"
            )
        return prediction

    def _say(self, reply: dict[str, Any], said: list[str]) -> None:
        """Log the server's warnings about this request (a reply's `warnings`), at WARNING as the local `Policy` logs
        them, naming the server; those this client said itself while reading the inputs are not said twice."""
        warnings = reply.get("warnings")
        if not isinstance(warnings, list):
            return
        for text in warnings:
            if isinstance(text, str) and text not in said:
                logger.warning("server %s: %s", self.url, text)

    @staticmethod
    def _observation(observation: Any) -> dict[str, Any]:
        """A policy or forward-dynamics observation for the wire; of a video file only the current (last) frame, the
        one the server uses."""
        if isinstance(observation, Mapping):
            return {k: _image_array(v, k, last=1) if _is_camera_key(k) and not isinstance(v, np.ndarray) else
                    (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in observation.items()}
        return {IMAGE_KEY: _image_array(observation, last=1)}

    def act(self, observation: Any, prompt: str, *, timeout_s: float | None = None, **kwargs: Any) -> Prediction:
        """Policy mode: observation (image or openpi key dict) + instruction → action chunk. Options as the local
        `Policy.act`, refused as it refuses them: seed, steps, guidance, negative_prompt, state, decode_video,
        action_prefix (sent as the wire's `action_prefix`, physical rows; a server that does not apply it is an
        error, not a chunk that silently ignores it). `timeout_s`: the most this call may take, in place of the
        client's (`RemotePolicy(timeout_s=)`); past it, `ServerTimeoutError`."""
        timeout_s = self._call_timeout(timeout_s)  # checked before the inputs are read
        return self._run(*self._prepared(_request("act", observation, prompt, {"mode": "policy"}, kwargs)), timeout_s)

    def imagine(
        self, observation: Any, actions: Any, prompt: str, decode_video: bool | None = None, *,
        whole_trajectory: bool = False, progress: Callable[[int, int], None] | bool | None = None,
        timeout_s: float | None = None, **kwargs: Any
    ) -> Prediction:
        """Forward dynamics: observation + action chunk [chunk, action_dim] (array or file; physical units unless
        `actions_space="normalized"`) → imagined rollout, its video decoded unless `decode_video=False`.
        `whole_trajectory=True` rolls out every row as the local `Policy.imagine` does (`roll_out`), chained here on
        the client: each chunk an ordinary forward-dynamics request (the wire unchanged) from the previous reply's last
        frame, with seed + j for chunk j (the seed drawn here when none is given). It needs the chunk size and
        embodiment a worldpolicy server announces: refused, before any request, by one that announces neither
        (openpi's). `progress` as the local `Policy`'s. `timeout_s`: the most each request may take (`act`'s)."""
        request = _request("imagine", observation, prompt, {"mode": "forward_dynamics", "actions": actions},
                           {"decode_video": decode_video, **kwargs}, own=Policy.imagine)
        check_trajectory_options(whole_trajectory, decode_video)
        check_clip_progress(progress)
        timeout_s = self._call_timeout(timeout_s)
        if not whole_trajectory:
            if callable(progress):
                return self.act_batch([request], progress=progress, timeout_s=timeout_s)[0]
            return self._run(*self._prepared(request), timeout_s)
        started = time.perf_counter()
        e, chunk = self.embodiment, self.chunk_size
        if e is None or chunk is None:
            lacks = " and ".join(what for what, known in (("chunk size", chunk), ("embodiment", e)) if known is None)
            raise ValueError(f"whole_trajectory=True needs the server's {lacks}, which {self.url} does not announce "
                             "(openpi's server announces neither), to cut the actions into its chunks; accepted from "
                             "it: one chunk (whole_trajectory=False)")
        given = trajectory_actions(request.actions, e, request.actions_space, warn_range=True)
        seed = fresh_seed() if request.seed is None else check_seed(request.seed)  # seed + j for chunk j
        return roll_out(partial(self.act_batch, timeout_s=timeout_s), request, TrajectoryChunks(given, chunk, seed), e,
                        progress, started)

    def infer_actions(self, video: Any, prompt: str, *, start_frame: int = 0, whole_clip: bool = False,
                      resample: bool = False, batch_size: int = 8,
                      progress: Callable[[int, int], None] | bool | None = None, timeout_s: float | None = None,
                      **kwargs: Any) -> Prediction:
        """Inverse dynamics: a clip (frames, a video file, a folder, a dict of camera clips) → the actions that
        explain it, with the local `Policy.infer_actions`' options and results: the clip is read here, as the local
        `Policy` reads it (`read_clip`), and its windows travel as ordinary inverse-dynamics requests, the wire
        unchanged. `whole_clip=True` sends them `batch_size` at a time through `act_batch` (over as many connections
        as the server's `max_batch` allows, so it fuses them), with one seed for every window (drawn here when none is
        given), and joins their rows as the local `Policy` does (`join_windows`); `progress` as the local
        `Policy`'s (`check_clip_progress`). `start_frame`, `whole_clip` and `resample` need the chunk size and
        embodiment a worldpolicy server announces: refused, before any request, by a server that announces neither
        (openpi's), which gets the clip's first frames as before. `timeout_s`: the most each request may take
        (`act`'s)."""
        video, _ = prediction_clip(video, "infer_actions")  # a result's frames; its canvas stays here (no wire field)
        base = _request("infer_actions", video, prompt, {"mode": "inverse_dynamics"}, kwargs,
                        own=Policy.infer_actions)
        check_clip_options(start_frame, whole_clip, resample, batch_size)
        check_clip_progress(progress)
        act_batch = partial(self.act_batch, timeout_s=self._call_timeout(timeout_s))
        started = time.perf_counter()
        e, chunk = self.embodiment, self.chunk_size
        if e is None or chunk is None:
            given = [f"{name}={value!r}" for name, value, default in (
                ("start_frame", start_frame, 0), ("whole_clip", whole_clip, False), ("resample", resample, False))
                if value != default]
            if given:
                lacks = " and ".join(what for what, known in (("chunk size", chunk), ("embodiment", e))
                                     if known is None)
                raise ValueError(f"{' and '.join(given)} need{'s' if len(given) == 1 else ''} the server's {lacks}, "
                                 f"which {self.url} does not announce (openpi's server announces neither), to cut the "
                                 "clip into its windows; accepted from it: the clip's first frames (no start_frame, "
                                 "whole_clip or resample)")
            return act_batch([base], progress=progress if callable(progress) else None)[0]
        clip = read_clip(video, e, chunk + 1, start_frame, whole_clip, resample)
        for message in clip.warnings:  # where the local Policy says them: the server receives frames, not the file
            logging.getLogger("worldpolicy.policy").warning("%s", message)
        if not whole_clip:
            request = replace(base, observation=clip.window(0, pad=False), state=clip.state(base.state, 0))
            return label_windows(act_batch, [request], clip, progress, started, False)
        seed = fresh_seed() if base.seed is None else base.seed  # one seed for every window, as locally
        requests = [replace(base, observation=clip.window(k), state=clip.state(base.state, k), seed=seed)
                    for k in range(clip.windows)]
        return label_windows(act_batch, requests, clip, progress, started, True, batch_size)

    def act_batch(
        self,
        requests: list[PolicyRequest],
        progress: Callable[[int, int], None] | None = None,
        *,
        connections: int | None = None,
        keep_connections: bool = False,
        timeout_s: float | None = None,
    ) -> list[Prediction]:
        """Several requests at once, over up to `connections` connections (default: the server's `max_batch` from its
        metadata, 1 for a server that does not batch), so the server fuses them into shared forward passes. Results
        come in request order; if any request fails, the first failure is raised once all have finished. The extra
        connections close when it returns, unless `keep_connections`: a caller batching step after step (`worldpolicy
        sim --num-envs`) then reuses them on its next call instead of connecting again; those a call has no request
        for are closed (the server would wait on an idle one: docs/serving.md, Batching), the rest by
        `release_connections()` or `close()`. New connections open before any request is sent: the server waits for
        companions only from open ones, so a request sent sooner would run in a smaller batch.
        `progress(done, total)` is called after each reply (requests done; the local `Policy` counts denoising steps,
        which happen on the server here). `timeout_s`: the most each request may take (`act`'s)."""
        check_requests(requests)
        check_progress(progress)
        if connections is not None and (not is_integer(connections) or connections < 1):
            raise ValueError(f"connections={connections!r} must be an int >= 1")
        if not isinstance(keep_connections, bool):
            raise ValueError(f"keep_connections={keep_connections!r} must be True or False")
        timeout_s = self._call_timeout(timeout_s)
        wires = [self._prepared(r) for r in requests]
        if not wires:  # no request: none of the extra connections is used, kept or not
            self.release_connections()
            return []
        if connections is None:
            server_batch = self.metadata().get("max_batch")
            connections = server_batch if isinstance(server_batch, int) and server_batch >= 1 else 1
        width = min(connections, len(wires))
        # extra connections for this call only (or, kept, as many as it uses): left open idle, they would make the
        # server wait for requests from them
        kept, surplus = self._peers[:width - 1], self._peers[width - 1:]
        for peer in surplus:
            peer.close()
        peers = self._peers = kept + [self._spawn() for _ in range(width - 1 - len(kept))]  # close() closes them too
        closes = self._closes
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(wires)):
            todo.put(i)
        results: list[Prediction | BaseException | None] = [None] * len(wires)
        done, done_lock = [0], threading.Lock()
        callback_error: list[BaseException] = []

        def work(client: RemotePolicy, opening: threading.Event | None = None) -> None:
            if opening is not None:  # a new connection: opened before any request is sent (below)
                client._open_quietly()
                opening.set()
            while not callback_error and self._closes == closes:  # stop after a failed callback or a close()
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = client._run(*wires[i], timeout_s)
                except Exception as exc:  # noqa: BLE001 - raised below, after the other requests finish
                    results[i] = exc
                with done_lock:
                    done[0] += 1
                    if progress is not None and not callback_error:
                        try:
                            progress(done[0], len(wires))
                        except BaseException as exc:  # noqa: BLE001 - raised below, once every thread is back
                            callback_error.append(exc)

        opening = {peer: threading.Event() for peer in peers[len(kept):]}
        threads = [threading.Thread(target=work, args=(peer, opening.get(peer)), daemon=True) for peer in peers]
        for thread in threads:
            thread.start()
        try:
            # every connection open before any request is sent: one sent sooner finds the server with fewer
            # connections open, and it runs the request without waiting for the others' (smaller batches)
            if opening:
                self._open_quietly()
            for opened in opening.values():
                opened.wait()
            work(self)
        finally:
            for thread in threads:
                thread.join()
            if not keep_connections:
                self.release_connections()
        if callback_error:
            raise callback_error[0]
        if self._closes != closes:
            raise ClientClosedError(f"close() was called during act_batch: {done[0]} of {len(wires)} requests done")
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results  # type: ignore[return-value]

    def _open_quietly(self) -> None:
        """Open the connection if it can be (`act_batch`); if not, the first request reconnects and fails with why."""
        with contextlib.suppress(Exception):  # said by the request's own call, as without this
            self.metadata()

    def release_connections(self) -> None:
        """Close the extra connections `act_batch(keep_connections=True)` kept open; this client's own stays."""
        peers, self._peers = self._peers, []
        for peer in peers:
            peer.close()

    def _spawn(self) -> RemotePolicy:
        """Another connection to the same server, with the same settings (for `act_batch`)."""
        peer = RemotePolicy(
            self.url,
            api_key=self._api_key,
            embodiment=self._embodiment,
            expected_embodiment=self.expected_embodiment,
            connect_timeout_s=self.connect_timeout_s,
            read_timeout_s=self.read_timeout_s,
            timeout_s=self.timeout_s,
            limits=self.limits,
            proxy=self.proxy,
            ca_file=self.ca_file,
            client_name=self.client_name,
            connect_now=False,
        )
        # the one this client holds to, on every connection; its refusal names why (expected, or first announced)
        peer._held = self._held
        return peer

    # ------------------------------------------------------------------------------------------- results
    @property
    def embodiment(self) -> Embodiment | None:
        """The embodiment the server announces: its full spec (our server), else its name if registered here, else
        the one given to the constructor; None when neither says (openpi's server, no `embodiment=`). Like the other
        attributes the server announces, read from its metadata frame: a client made with `connect_now=False`
        connects for it."""
        self._announced()
        return self._served_embodiment or self._embodiment

    def _announced(self) -> dict[str, Any]:
        """The metadata frame as read on connect, connecting for it first if none was read yet: what the server
        announces, read without waiting for a call in progress on the connection."""
        if not self._heard:
            self.metadata()
        return self._metadata

    @property
    def chunk_size(self) -> int | None:
        """The rows of each action chunk, as the server announces it (its metadata frame, read on connect: a property
        read on an unconnected client connects); None for a server that announces none (openpi's), whose chunk is
        known only from a reply (`Prediction.chunk_size`). One no policy accepts (over `MAX_CHUNK_SIZE`: the clip
        and trajectory windows are cut to it) is refused; a smaller one a worldpolicy policy would not take (not a
        multiple of 4) is a foreign server's own."""
        chunk = _positive_int(self._announced().get("chunk_size"))
        if chunk is not None and chunk > MAX_CHUNK_SIZE:
            try:
                check_chunk_size(chunk)
            except ValueError as exc:
                raise ValueError(f"the server at {self.url} announces {exc}") from None
        return chunk

    @property
    def resolution_tier(self) -> int | None:
        """The resolution tier the server's policy composes frames at (metadata frame); None where not announced
        (openpi's server, or a worldpolicy server from before it announced one)."""
        return _positive_int(self._announced().get("resolution_tier"))

    @property
    def center_crop(self) -> float | None:
        """The share of each frame's area the server's policy crops from its centre before the model sees it (a
        checkpoint trained with `[augment]`: `Policy.center_crop`); None where it crops none or announces none."""
        area = self._announced().get("center_crop")
        return float(area) if is_real(area) and 0 < area < 1 else None

    @property
    def source(self) -> str:
        """The served checkpoint by its portable name (`model` in the metadata frame, as replies' `settings`
        name it), not where the server keeps it; "" where the server names none (openpi's), as for a local `Policy`
        built in code."""
        model = self._announced().get("model")
        return model if isinstance(model, str) else ""

    @property
    def engine(self) -> Any:
        """Local only (`LocalOnlyError`): the model runs on the server."""
        raise LocalOnlyError(f"RemotePolicy has no engine: the model runs on the server at {self.url}")

    @property
    def untrained_modes(self) -> dict[str, str]:
        """Local only (`LocalOnlyError`): the server reads its checkpoint's training record."""
        raise LocalOnlyError(
            "RemotePolicy has no untrained_modes: the server reads its checkpoint's training record and warns of a "
            "mode it never trained at that mode's first request, which this client relays"
        )

    @property
    def sampling(self) -> Any:
        """Local only (`LocalOnlyError`): the server's defaults are `metadata()["sampling"]`."""
        raise LocalOnlyError(
            "RemotePolicy has no sampling config (a SamplingConfig belongs to the server's engine): a worldpolicy "
            "server announces its defaults as metadata()['sampling']; pass steps=, guidance= or negative_prompt= "
            "with a request to override them"
        )

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> RemotePolicy:
        """Local only: a checkpoint is loaded where it is served (`worldpolicy serve --checkpoint ...`)."""
        raise LocalOnlyError("RemotePolicy.from_pretrained: a RemotePolicy loads no checkpoint; serve it with "
                             "`worldpolicy serve --checkpoint PATH` and connect with RemotePolicy(url)")

    @staticmethod
    def check_pretrained(*args: Any, **kwargs: Any) -> Any:
        """Local only: the server checks its checkpoint and settings before its port opens."""
        raise LocalOnlyError("RemotePolicy.check_pretrained: a checkpoint's settings are checked where it is served; "
                             "`worldpolicy serve` checks them before its port opens")

    def single_view_said(self, height: int, width: int) -> None:
        """Local only: the server says its own warnings about the frames it receives, and this client relays them."""
        raise LocalOnlyError(
            "RemotePolicy.single_view_said: the server warns about the frames it receives and this client relays its "
            "warnings; a front end's own warning cannot silence the server's"
        )

    def imagined_frame_said(self, frame: Any) -> None:
        """Local only: the server judges every frame it receives, imagined or not; this client relays its warnings."""
        raise LocalOnlyError(
            "RemotePolicy.imagined_frame_said: the server judges the frames it receives and this client relays its "
            "warnings; a front end cannot mark a frame as imagined for the server"
        )

    @staticmethod
    def _embodiment_from_metadata(metadata: dict[str, Any]) -> Embodiment | None:
        spec = metadata.get("embodiment_spec")
        if isinstance(spec, dict):
            try:
                return embodiment_from_dict(spec)
            except (ValueError, KeyError, TypeError) as exc:  # an older or foreign server: fall back to the name
                logger.warning("ignoring the server's embodiment_spec (%s)", exc)
        name = metadata.get("embodiment")
        if isinstance(name, str):
            try:
                return get_embodiment(name)
            except KeyError:
                pass
        return None

    def _check_reply_embodiment(self, reply: dict[str, Any], dim: int) -> None:
        """A reply naming another embodiment, or other columns, than its connection's metadata frame announced is
        refused (`EmbodimentMismatchError`) rather than read with the announced names: the server contradicts
        itself, and which one the actions follow cannot be told. Keys a server does not send are not checked."""
        served = self._served_embodiment
        named = reply.get("embodiment")
        if served is not None and isinstance(named, str) and named != served.key:
            raise EmbodimentMismatchError(f"a reply from {self.url} is for embodiment {named!r}, but the server "
                                          f"announced {served.key!r} on connect; its actions are not used")
        columns, announced = reply.get("columns"), self._metadata.get("columns")
        if is_string_list(columns) and is_string_list(announced) and len(columns) == dim and columns != announced:
            raise EmbodimentMismatchError(f"a reply from {self.url} has columns {columns}, but the server announced "
                                          f"{announced} on connect; its actions are not used")

    def _prediction(self, reply: dict[str, Any], mode: str, roundtrip_s: float) -> Prediction:
        if reply.get("type") == "error":  # how RoboLab-style proxies (vLLM-Omni, Cosmos reference) report a failure
            raise ServerError(f"error from {self.url}: {reply.get('message', reply)!s:.2000}")
        raw = reply.get("actions", reply.get("action"))
        if not isinstance(raw, np.ndarray) or raw.ndim != 2 or 0 in raw.shape or raw.dtype.kind not in "biuf":
            got = f"{raw.dtype} {raw.shape}" if isinstance(raw, np.ndarray) else type(raw).__name__
            raise UnreadableReplyError(f"reply from {self.url} lacks an 'actions'/'action' array [chunk, dim] ({got})")
        actions = raw.astype(np.float64)
        if not np.isfinite(actions).all():  # what our server never sends (reply_fields); another server may
            row, column = np.argwhere(~np.isfinite(actions))[0]
            raise ServerError(f"{self.url} sent actions no robot should run: {actions[row, column]} at row {row}, "
                              f"column {column} of {actions.shape}")
        dim = actions.shape[1]
        e, meta = self.embodiment, self._metadata
        self._check_reply_embodiment(reply, dim)

        def pick(key: str, fallback: Any) -> Any:
            for source in (reply, meta):
                value = source.get(key)
                if isinstance(value, list) and len(value) == dim:
                    return [str(v) for v in value]
            return fallback

        known = e is not None and e.action_dim == dim
        columns = pick("columns", list(e.columns) if known else [f"a{i}" for i in range(dim)])
        units = pick("units", list(e.units) if known else ["1"] * dim)
        # the keys beside the actions describe them: one this client cannot read (another server's convention) is
        # passed over, as columns of another length are, rather than failing a call whose actions arrived
        normalized = reply.get("actions_normalized")
        if isinstance(normalized, np.ndarray) and normalized.shape == actions.shape and normalized.dtype.kind in "biuf":
            normalized = normalized.astype(np.float64)
        else:
            normalized = e.normalize(actions) if known else actions.copy()
        # 0.0: no rate is known (a server that announces none, and no embodiment=); `Prediction.save` says so
        fps = _rate(reply.get("fps")) or _rate(meta.get("fps")) or (e.fps if e is not None else 0.0)
        video = reply.get("video")
        if video is not None and not (isinstance(video, np.ndarray) and video.ndim == 4 and video.shape[-1] == 3
                                      and video.dtype == np.uint8):  # asked for, so not passed over
            got = f"{video.dtype} {video.shape}" if isinstance(video, np.ndarray) else type(video).__name__
            raise UnreadableReplyError(f"reply from {self.url} has a 'video' that is no uint8 clip [T, H, W, 3] "
                                       f"({got})")
        timings = {"roundtrip": roundtrip_s}
        groups = {group: reply.get(group) for group in ("server_timing", "policy_timing")}
        groups = {group: values for group, values in groups.items() if isinstance(values, dict)}
        for group, values in groups.items():
            for key, value in values.items():
                if isinstance(key, str) and key.endswith("_ms") and isinstance(value, (int, float)):
                    # the policy's own stages keep the local Policy's names; the server's are prefixed
                    timings[f"server_{key[:-3]}" if group == "server_timing" else key[:-3]] = value / 1000
        settings = dict(reply.get("settings")) if isinstance(reply.get("settings"), dict) else {}
        batch_size = groups.get("server_timing", {}).get("batch_size")
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
            video=None if video is None else np.array(video),
            timings=timings,
            settings={**settings, "server": self.url},
            layout=e.layout if known and list(e.columns) == columns else None,
            gripper_column=e.gripper_column if known and list(e.columns) == columns else None,
        )
