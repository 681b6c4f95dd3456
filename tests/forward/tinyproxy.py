"""A real forward proxy for the forwarding client's tests: Debian's tinyproxy, installed when
missing, one process per test on a port of its own, its config and log in the test's tmp."""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests import children


@dataclass(frozen=True)
class Tinyproxy:
    url: str
    log: Path


def _binary() -> str:
    found = shutil.which("tinyproxy")
    if found is None:
        # Fails (check=True), never skips, when it cannot be installed.
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "tinyproxy"], check=True, env=env)
        found = shutil.which("tinyproxy")
    assert found is not None, "tinyproxy is not on PATH after apt-get install"
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def tinyproxy(workdir: Path, *, connect_port: int) -> Iterator[Tinyproxy]:
    """tinyproxy on 127.0.0.1, allowing CONNECT to `connect_port` only; stopped by its PID."""
    binary = _binary()
    port = _free_port()
    log = workdir / "tinyproxy.log"
    config = workdir / "tinyproxy.conf"
    config.write_text(
        f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nConnectPort {connect_port}\n"
        f'Timeout 10\nMaxClients 20\nLogLevel Connect\nLogFile "{log}"\n'
    )
    process = subprocess.Popen(
        [binary, "-d", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while True:
            assert process.poll() is None, f"tinyproxy exited: {log.read_text()[-500:]}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not listen within 5 s"
                time.sleep(0.02)
        yield Tinyproxy(f"http://127.0.0.1:{port}", log)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        children.reap(process, timeout=5)


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files: (certificate, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / "cert.pem", workdir / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
