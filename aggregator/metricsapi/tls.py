"""The metrics API's TLS listener: cheroot with the standard library's `ssl`, and a self-signed certificate.

Why cheroot: waitress speaks no TLS, and a TLS-terminating sidecar would leave the client certificate
(needed to trust the API server's front proxy) outside the process. cheroot is CherryPy's pure-Python
WSGI server, maintained for two decades (jaraco/cheroot), with a thread pool like waitress's and TLS
through `ssl.SSLContext`, so the context is ours to build: TLS 1.2+, our certificate, and client
certificates verified against the request-header CA only (never the system trust store).

Without --tls-cert-file/--tls-private-key-file a self-signed certificate is generated at start, as
metrics-server does; the APIService then uses insecureSkipTLSVerify or the cert-manager caBundle variant.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)


def self_signed(hosts: Sequence[str], *, days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 certificate (PEM) for `hosts` (DNS names or IPs) and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{hosts[0]}@k8s-monitor")])
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(cert_file: str, key_file: str, *, client_ca: str = "") -> ssl.SSLContext:
    """TLS 1.2+ server context; with `client_ca` (PEM) a client certificate is asked for and, when sent,
    must chain to it (the handshake fails otherwise, as with Go's VerifyClientCertIfGiven)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if client_ca:
        context.load_verify_locations(cadata=client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class TlsServer:
    """One cheroot server bound at construction (so `port` is known before `start()`)."""

    def __init__(self, app: Any, *, host: str, port: int, cert_file: str = "", key_file: str = "",
                 client_ca: str = "", threads: int = 8, hosts: Sequence[str] = ("localhost",)) -> None:
        with tempfile.TemporaryDirectory(prefix="k8smon-tls-") as tmp:
            if not cert_file:
                cert_pem, key_pem = self_signed([*hosts, host] if host not in hosts else hosts)
                cert_file, key_file = str(Path(tmp, "tls.crt")), str(Path(tmp, "tls.key"))
                Path(cert_file).write_bytes(cert_pem)
                fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(key_pem)
                log.info("metrics API: no --tls-cert-file; serving a self-signed certificate")
            self.certificate = Path(cert_file).read_bytes()
            adapter = BuiltinSSLAdapter(cert_file, key_file)
            adapter.context = server_context(cert_file, key_file, client_ca=client_ca)
        self._server = wsgi.Server((host, port), app, numthreads=threads, server_name="k8s-monitor")
        self._server.ssl_adapter = adapter
        self._server.prepare()  # binds; bind_addr now holds the real port
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.bind_addr[0])

    @property
    def port(self) -> int:
        return int(self._server.bind_addr[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    def start(self) -> TlsServer:
        self._thread = threading.Thread(target=self._server.serve, name=f"metrics-api:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout)
