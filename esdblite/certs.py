"""Certificates for secure mode: a private CA and a node certificate it signs (for localhost)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
NODE_DAYS = 825


@dataclass(frozen=True)
class Authority:
    """A certificate authority: its key and self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        """The CA certificate, PEM (what a client's tlsCAFile holds)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_authority(common_name: str = "esdblite local CA", days: int = CA_DAYS) -> Authority:
    """A new CA, valid from now for `days`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def node_certificate(
    ca: Authority,
    hosts: tuple[str, ...] = LOCAL_HOSTS,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A node's (private key, certificate) in PEM, signed by `ca`, for the given host names."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - dt.timedelta(minutes=5)
    end = not_after or _now() + dt.timedelta(days=NODE_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("eventstoredb-node"))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (0600 from the start, never wider)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


@dataclass(frozen=True)
class NodeFiles:
    """Where a node's certificate files are."""

    ca: Path
    cert: Path
    key: Path


def node_files(directory: Path) -> NodeFiles:
    """The file names of a node's certificate files in a directory."""
    return NodeFiles(directory / "ca.pem", directory / "node.pem", directory / "node.key")


def expires_within(cert_file: Path, days: int) -> bool:
    """Whether a certificate file is missing, unreadable or expires within `days`."""
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - _now() < dt.timedelta(days=days)


def ensure_node_files(directory: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> NodeFiles:
    """A CA and a node certificate in `directory` (0700, files 0600): made once, renewed (by a
    new CA) when the node certificate is missing or near its end."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = node_files(directory)
    if all(p.exists() for p in (files.ca, files.cert, files.key)) and not expires_within(
        files.cert, 30
    ):
        return files
    ca = new_authority()
    key_pem, cert_pem = node_certificate(ca, hosts)
    write_private(files.key, key_pem)
    write_private(files.cert, cert_pem)
    write_private(files.ca, ca.cert_pem)
    return files
