"""HTTP(S) requests to a site on a given host, by the site's name (as `curl --resolve` does)."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    names: tuple[str, ...]
    not_after: datetime


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str
    certificate: Certificate | None

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


class _PlainConnectionToAddress(http.client.HTTPConnection):
    """Connects to a fixed address while naming the site in the Host header."""

    def __init__(self, address: str, hostname: str, port: int, timeout: float) -> None:
        super().__init__(hostname, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _TlsConnectionToAddress(http.client.HTTPSConnection):
    """Connects to a fixed address while naming the site in SNI and the Host header."""

    def __init__(
        self, address: str, hostname: str, port: int, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(hostname, port, context=context, timeout=timeout)
        self._address = address
        self._tls_context = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls_context.wrap_socket(raw, server_hostname=self.host)


def _context(cafile: Path | None, verify: bool) -> ssl.SSLContext:
    if not verify:
        # A bare client context: the default one loads the system's certificate authorities (about 40 ms),
        # which an unverified probe never reads.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(cafile) if cafile else None)


def request(
    address: str,
    hostname: str,
    path: str = "/",
    *,
    port: int = 443,
    auth: tuple[str, str] | None = None,
    cafile: Path | None = None,
    verify: bool = True,
    tls: bool = True,
    timeout: float = 10.0,
    read_certificate: bool = True,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """GET (or method, with body and extra headers) https://hostname:port/path from address (http:// without
    tls); raise OSError/ssl.SSLError when it cannot be reached.

    read_certificate: parse the certificate the site presented (cryptography, about 60 ms to import); a
    check that needs only the answer leaves it out.
    """
    connection: http.client.HTTPConnection = (
        _TlsConnectionToAddress(address, hostname, port, _context(cafile, verify), timeout)
        if tls
        else _PlainConnectionToAddress(address, hostname, port, timeout)
    )
    sent = {"User-Agent": "djdeploy", **(headers or {})}
    if auth:
        sent["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        text = response.read(1_000_000).decode(errors="replace")
        tls_socket = connection.sock if isinstance(connection.sock, ssl.SSLSocket) else None
        der = tls_socket.getpeercert(binary_form=True) if tls_socket and read_certificate else None
        return Response(
            status=response.status,
            headers={key.lower(): value for key, value in response.getheaders()},
            body=text,
            certificate=_certificate(der) if der else None,
        )
    finally:
        connection.close()


def _certificate(der: bytes) -> Certificate:
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(alternative.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return Certificate(names=names, not_after=certificate.not_valid_after_utc)
