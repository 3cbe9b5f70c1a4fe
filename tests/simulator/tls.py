"""Throw-away TLS material for the simulated stream broker.

BMW's broker presents a publicly trusted certificate and, since early 2026, speaks TLS 1.3 only
(spec §3.1). The simulator makes its own CA at start-up so clients can verify the server as they
would in production, just against a different trust anchor (`ca_file`).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import ipaddress
import logging
import os
from pathlib import Path
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LOGGER = logging.getLogger(__name__)

TLS_1_3 = 0x0304
_HANDSHAKE_RECORD = 0x16
_CLIENT_HELLO = 0x01
_SUPPORTED_VERSIONS = 0x002B
_ALERT_RECORD = 0x15
_FATAL = 2
_PROTOCOL_VERSION = 70
_MAX_RECORD = 5 + (1 << 14)
_HELLO_POLL = 0.005  # real seconds between looks at a ClientHello that has not fully arrived

# Long enough for any test run; certificate checks use wall time, not the simulator's clock.
_VALIDITY = timedelta(days=365)
_BACKDATE = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """The CA clients must trust and the broker's ready-made server context."""

    ca_file: Path
    server_context: ssl.SSLContext


def make_tls(directory: Path) -> TlsMaterial:
    """Create a CA and a server certificate for 127.0.0.1 and localhost in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    # EC keys: RSA generation would take long enough to show up in every test's start-up time.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CarData simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, "CarData simulator root CA"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    ca_file = directory / "ca.pem"
    cert_file = directory / "server.pem"
    key_file = directory / "server-key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        key_file,
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert_file, key_file)
    return TlsMaterial(ca_file=ca_file, server_context=context)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """Key usage for a CA (signs certificates) or a TLS server (signs handshakes)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key readable by the owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


async def screen_client_hello(client: socket.socket) -> bool:
    """Whether a new connection may go on to the TLS handshake (its ClientHello left unread).

    BMW's broker speaks TLS 1.3 only: a client offering nothing newer gets a fatal
    protocol_version alert, as in production, and False, as does a client not speaking TLS.
    asyncio's own handshake would just reset such a connection without the alert.
    """
    hello = await _peek_first_record(client)
    if hello is None:
        return False
    versions = offered_versions(hello)
    if versions is None or TLS_1_3 in versions:
        return True  # what cannot be read here, OpenSSL will judge
    # Read what was peeked first: closing with unread data would reset the connection before
    # the client has read the alert.
    with contextlib.suppress(OSError):
        client.recv(len(hello))
        client.send(protocol_version_alert(hello))
        client.shutdown(socket.SHUT_WR)
    _LOGGER.debug("Refused a TLS handshake offering only %s", sorted(versions))
    return False


async def _peek_first_record(client: socket.socket) -> bytes | None:
    """The connection's first TLS record, left unread; None if it is not TLS at all."""
    while True:
        await _readable(client)
        data = client.recv(_MAX_RECORD, socket.MSG_PEEK)
        if not data or data[0] != _HANDSHAKE_RECORD:
            return None
        needed = record_length(data)
        if needed is not None and len(data) >= needed:
            return data[:needed]
        # The socket stays readable while peeked bytes wait: poll for the rest.
        await asyncio.sleep(_HELLO_POLL)


async def _readable(client: socket.socket) -> None:
    """Wait until the (non-blocking) socket has something to read."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(client.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(client.fileno())


def record_length(data: bytes) -> int | None:
    """Bytes the first TLS record needs in all (header included); None before the header."""
    if len(data) < 5:
        return None
    return 5 + int.from_bytes(data[3:5], "big")


def offered_versions(record: bytes) -> frozenset[int] | None:
    """The TLS versions a ClientHello record offers; None when it cannot be read.

    Without a supported_versions extension a client speaks TLS 1.2 or older: its
    `legacy_version` is its highest version (RFC 8446 §4.2.1).
    """
    try:
        if record[0] != _HANDSHAKE_RECORD or record[5] != _CLIENT_HELLO:
            return None
        legacy_version = int.from_bytes(record[9:11], "big")
        position = 43  # record header 5, handshake header 4, version 2, random 32
        position += 1 + record[position]  # session id
        position += 2 + int.from_bytes(record[position : position + 2], "big")  # cipher suites
        position += 1 + record[position]  # compression methods
        end = position + 2 + int.from_bytes(record[position : position + 2], "big")
        position += 2
        if end > len(record):
            return None
        while position + 4 <= end:
            kind = int.from_bytes(record[position : position + 2], "big")
            size = int.from_bytes(record[position + 2 : position + 4], "big")
            body = record[position + 4 : position + 4 + size]
            if kind == _SUPPORTED_VERSIONS:
                return frozenset(
                    int.from_bytes(body[i : i + 2], "big") for i in range(1, 1 + body[0], 2)
                )
            position += 4 + size
    except IndexError:
        return None
    return frozenset({legacy_version})


def protocol_version_alert(record: bytes) -> bytes:
    """The fatal protocol_version alert BMW answers a TLS 1.2 ClientHello with."""
    return bytes([_ALERT_RECORD, *record[1:3], 0, 2, _FATAL, _PROTOCOL_VERSION])
