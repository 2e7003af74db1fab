"""The server's TLS certificate: loaded and checked (PEM blocks, the key's match, the validity dates) with errors naming
the `ServerConfig` field at fault (or the CLI flag: `ServingCertificate.names`), and swapped for a renewed pair while
the server runs (`ServingCertificate.reload`, SIGHUP under `worldpolicy serve`). The validity dates are read with
`cryptography` (the serve extra).

Why a swap and not `load_cert_chain` again on the listening context: that does change the pair later handshakes get,
but a load that fails half-way (a key that is not the new certificate's) leaves the context without a usable pair, and
every handshake after it fails ("no shared cipher"). So each pair gets a context of its own, made and checked in full
first, and the listening context's `sni_callback`, which OpenSSL calls on every ClientHello (with or without a server
name), hands each new handshake the current one. A connection keeps the pair it was made with: nothing open is dropped.
"""

from __future__ import annotations

import os
import re
import ssl
import time
from dataclasses import dataclass

from ..extras import extra_imports

with extra_imports():
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

__all__ = ["CONFIG_NAMES", "EXPIRY_WARNING_DAYS", "ServingCertificate", "TlsPair", "certificate_validity", "load_pair",
           "utc_text"]

EXPIRY_WARNING_DAYS = 14  # a certificate closer than this to its end is warned about, at start and at each reload
CONFIG_NAMES = ("ServerConfig.tls_cert", "ServerConfig.tls_key")  # what errors call the two files, by default

# the PEM block each file must hold, and what is accepted there (`_pem_file`)
_PEM_KINDS = {
    "tls_cert": ("CERTIFICATE", ("a PEM certificate file (-----BEGIN CERTIFICATE-----), the server's certificate "
                                 "first, then any intermediate ones")),
    "tls_key": ("PRIVATE KEY", ("a PEM private key file (-----BEGIN PRIVATE KEY-----, or RSA/EC PRIVATE KEY), "
                                "unencrypted")),
}


def _pem_file(kind: str, path: str, name: str) -> bytes:
    """The file's bytes; ValueError naming it `name` unless it is readable and holds the PEM block a `kind` file
    must."""
    marker, accepted = _PEM_KINDS[kind]
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"{name}={path!r}: cannot read it ({exc.strerror or exc}); accepted: {accepted}") from None
    if not re.search(rb"-----BEGIN [A-Z ]*" + marker.encode() + rb"-----", text):
        raise ValueError(f"{name}={path!r} holds no PEM {marker} block (a DER file, or the other one of the pair?); "
                         f"accepted: {accepted}")
    return text


def certificate_validity(pem: bytes) -> tuple[float, float]:
    """(notBefore, notAfter) of the first certificate in a PEM file, as POSIX seconds (Python's `ssl` only decodes a
    peer's certificate, after a handshake)."""
    certificate = x509.load_pem_x509_certificate(pem)
    return certificate.not_valid_before_utc.timestamp(), certificate.not_valid_after_utc.timestamp()


def utc_text(seconds: float) -> str:
    """A validity date as errors and log lines write it: 2026-12-06 10:00:00 UTC."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(seconds))


@dataclass(frozen=True)
class TlsPair:
    """A certificate and its key as loaded: the context that serves them, and the certificate's validity (POSIX
    seconds)."""

    context: ssl.SSLContext
    not_before: float
    not_after: float

    def days_left(self) -> float:
        return (self.not_after - time.time()) / 86400


def load_pair(cert: str, key: str, names: tuple[str, str] = CONFIG_NAMES) -> TlsPair:
    """The pair in `cert` and `key`, with errors naming the file at fault by `names` (the `ServerConfig` fields, or the
    CLI's --tls-cert/--tls-key): a missing or unreadable file, one that is not PEM, an encrypted key (no prompt: a
    server has no terminal), a key that is not the certificate's, a certificate expired or not valid yet (this
    machine's clock). The certificate file is read once (`_load_chain`)."""
    cert_name, key_name = names
    pem = _pem_file("tls_cert", cert, cert_name)
    key_pem = _pem_file("tls_key", key, key_name)

    def no_password() -> str:
        raise ValueError(f"{key_name}={key!r} is encrypted; accepted: an unencrypted key (openssl pkey -in {key} -out "
                         "KEY.pem writes one; keep it readable by this user only)")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # TLS 1.2 and up, the ciphers OpenSSL deems secure
    # No TLS 1.3 session tickets. A client of websockets' sync API (RemotePolicy, openpi-client) reads its socket on a
    # thread of its own from the handshake on, which then processes the tickets while the other thread writes the
    # upgrade request on the same SSL object: now and then (1 in ~1000 connects under CPU load, asyncio's loop and
    # uvloop alike) the request never reached the server, and the client timed out ("no WebSocket handshake"). No
    # client here resumes a session, so the tickets bought nothing.
    context.num_tickets = 0
    try:
        _load_chain(context, pem, cert, key, no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(f"{key_name}={key!r} is not the private key of {cert_name}={cert!r}; accepted: the key "
                             "the certificate was made for") from None
        # which file: OpenSSL's "PEM lib" does not say (a renewal's file cut short, say)
        for name, path, kind, parse in ((cert_name, cert, "tls_cert", lambda: certificate_validity(pem)),
                                        (key_name, key, "tls_key", lambda: load_pem_private_key(key_pem, None))):
            marker, accepted = _PEM_KINDS[kind]
            try:
                parse()
            except ValueError:
                raise ValueError(f"{name}={path!r}: its {marker} block does not parse (cut short or corrupt?); "
                                 f"accepted: {accepted}") from None
        raise ValueError(f"{cert_name}={cert!r} / {key_name}={key!r}: OpenSSL cannot load them ({exc.reason or exc}); "
                         "accepted: a PEM certificate and its unencrypted PEM key") from None
    try:
        not_before, not_after = certificate_validity(pem)
    except ValueError as exc:  # one OpenSSL loads and cryptography does not (a TRUSTED CERTIFICATE block)
        raise ValueError(f"{cert_name}={cert!r}: cannot read its validity dates ({exc}); accepted: "
                         f"{_PEM_KINDS['tls_cert'][1]}") from None
    now = time.time()
    if not not_before <= now <= not_after:
        state = f"expired on {utc_text(not_after)}" if now > not_after else f"is not valid until {utc_text(not_before)}"
        raise ValueError(f"{cert_name}={cert!r} {state} (valid {utc_text(not_before)} to "
                         f"{utc_text(not_after)}; this machine's clock says {utc_text(now)}); accepted: a certificate "
                         "valid now (renew it, or check the clock)")
    return TlsPair(context, not_before, not_after)


def _load_chain(context: ssl.SSLContext, pem: bytes, cert: str, key: str, password) -> None:
    """Load the chain `pem` (the bytes read from `cert`) and `key` into `context`. OpenSSL loads a chain only from a
    path: on Linux the bytes go through an in-memory file (`memfd_create`, nothing on disk, nothing a read-only root
    refuses), so the chain served is the one whose dates were checked even when a renewal replaces the file meanwhile;
    elsewhere OpenSSL reads `cert` again."""
    try:
        if not os.path.isdir("/proc/self/fd"):  # no procfs to name the in-memory file by
            raise OSError
        fd = os.memfd_create("worldpolicy-tls-cert", os.MFD_CLOEXEC)
    except (AttributeError, OSError):  # not Linux, or refused (a seccomp profile)
        context.load_cert_chain(cert, key, password=password)
        return
    with open(fd, "wb") as f:  # closes the in-memory file once loaded
        f.write(pem)
        f.flush()
        context.load_cert_chain(f"/proc/self/fd/{fd}", key, password=password)


class ServingCertificate:
    """The certificate a server serves, renewable while it runs. `context` is what the server listens with: each
    handshake is handed the current pair's context (module docstring). `reload()` reads the files again; a pair that
    does not load leaves the current one serving. `names`: what a reload's errors call the two files, as the user
    gave them (`worldpolicy serve` sets its flags)."""

    def __init__(self, cert: str | os.PathLike, key: str | os.PathLike) -> None:
        self.cert, self.key = os.fspath(cert), os.fspath(key)
        self.names = CONFIG_NAMES
        self.current = load_pair(self.cert, self.key)
        self.context = self.current.context
        self.context.sni_callback = self._hand_current

    def _hand_current(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                      context: ssl.SSLContext) -> None:
        current = self.current.context  # one read: a reload on another thread swaps the whole pair
        if current is not context:
            connection.context = current

    def reload(self) -> TlsPair:
        """Load the files again and serve the new pair from the next handshake on; ValueError (as `load_pair`) keeps
        the current one."""
        self.current = load_pair(self.cert, self.key, self.names)
        return self.current
