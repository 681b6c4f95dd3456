"""The real brokers on 127.0.0.1: checked, started when installed but down, else a failure
(never a skip: a forwarding test that did not run must not look green)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

START_TIMEOUT_SECONDS = 90.0

REDIS_PORT, NATS_PORT, AMQP_PORT = 6379, 4222, 5672
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
NATS_URL = f"nats://127.0.0.1:{NATS_PORT}"
AMQP_URL = f"amqp://guest:guest@127.0.0.1:{AMQP_PORT}/"

_START: dict[str, tuple[int, list[str], tuple[str, ...]]] = {
    "redis": (
        REDIS_PORT,
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/var/lib/redis",
            "--logfile",
            "/var/log/redis/ci.log",
        ],
        ("/var/lib/redis", "/var/log/redis"),
    ),
    "rabbitmq": (AMQP_PORT, ["rabbitmq-server", "-detached"], ()),
    "nats": (
        NATS_PORT,
        [
            "start-stop-daemon",
            "--start",
            "--oknodo",
            "--background",
            "--exec",
            "/usr/sbin/nats-server",
            "--",
            "-a",
            "127.0.0.1",
            "-p",
            str(NATS_PORT),
            "-js",
            "-sd",
            "/var/lib/nats-server",
            "-l",
            "/var/log/nats-server.log",
        ],
        ("/var/lib/nats-server",),
    ),
}


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def ensure_service(name: str) -> None:
    port, command, folders = _START[name]
    if port_open(port):
        return
    executable = command[0] if name != "nats" else "/usr/sbin/nats-server"
    if shutil.which(executable) is None and not os.path.exists(executable):
        pytest.fail(f"{name} is not listening on 127.0.0.1:{port} and is not installed")
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    subprocess.run(command, check=False, capture_output=True, timeout=60)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not port_open(port):
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not start on 127.0.0.1:{port}")
        time.sleep(0.5)
