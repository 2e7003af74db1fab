"""Certificates for the TLS tests, made with `cryptography` (the serve extra): each with the dates and names its test
needs (`make_certificate`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


@dataclass(frozen=True)
class Made:
    """A certificate file and its key's, as `make_certificate` wrote them, with the dates chosen for it."""

    cert: Path
    key: Path
    not_before: datetime
    not_after: datetime
    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey

    @property
    def validity(self) -> tuple[float, float]:
        return self.not_before.timestamp(), self.not_after.timestamp()


def make_certificate(folder: Path, name: str, not_before: datetime, not_after: datetime, names=LOOPBACK,
                     issuer: Made | None = None, ca: bool = False) -> Made:
    """A P-256 certificate for `names` valid from `not_before` to `not_after`, and its unencrypted PKCS#8 key, written
    to folder/<name>.pem and <name>.key. Self-signed, with the extensions `openssl req -x509` gives one (CA:TRUE, key
    identifiers), unless `issuer` signs it: then an end-entity certificate for a server, the file holding the chain
    (it, then the issuer's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer = issuer.private_key if issuer else key
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer.certificate.subject if issuer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=issuer is None or ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    certificate = builder.sign(signer, hashes.SHA256())
    cert, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    chain = [certificate] + ([issuer.certificate] if issuer else [])
    cert.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return Made(cert, key_file, not_before, not_after, certificate, key)
