"""Start a server as a subprocess on a free loopback port, and stop it; shared by benches."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


# `--pin`: the server on CPU 0 and the load generator on CPU 1. Unpinned, the scheduler
# moves the server's threads and wrk's between the two cores, and runs of one build differed
# by up to 20% (bench/README.md, "Issue 13, fifth pass").
PIN_ENV = "VLMHOOKS_BENCH_PIN"


def pin_cores(enabled: bool) -> None:
    """Pin what this process starts from now on (`--pin`), and itself to the load's core."""
    if enabled:
        os.environ[PIN_ENV] = "1"
        os.sched_setaffinity(0, {1})


def server_pin() -> list[str]:
    return ["taskset", "-c", "0"] if os.environ.get(PIN_ENV) else []


def load_pin() -> list[str]:
    return ["taskset", "-c", "1"] if os.environ.get(PIN_ENV) else []


@contextmanager
def run_server(
    argv: Sequence[str],
    env: Mapping[str, str],
    port: int | None = None,
    repo: Path = REPO,
) -> Iterator[Server]:
    """`repo`: the source tree the server imports (another one compares two builds)."""
    port = port or free_port()
    full_env = {**os.environ, **env, "PORT": str(port), "PYTHONPATH": str(repo)}
    process = subprocess.Popen(
        [*server_pin(), *(arg.replace("{port}", str(port)) for arg in argv)],
        env=full_env,
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=None,
        start_new_session=True,
    )
    try:
        wait_until_listening(port, process)
        yield Server(process, port)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def uvicorn_argv(factory: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
        "--port", "{port}", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


def receiver_env(database_url: str) -> dict[str, str]:
    """The receiver's environment for the benches: bench keys, anonymous reads, quiet logs."""
    from bench.payloads import BENCH_SECRET_KEY, BENCH_WEBHOOK_SECRET

    return {
        "DATABASE_URL": database_url,
        "VLMHOOKS_SECRET_KEYS": BENCH_SECRET_KEY,
        "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": BENCH_WEBHOOK_SECRET,
        "VLMHOOKS_ALLOW_ANONYMOUS_READS": "true",
        "VLMHOOKS_LOG_LEVEL": "warning",
    }


def receiver_argv(workers: int = 1, tree: Path | None = None) -> list[str]:
    # `python -m`, not the installed script: the tree on PYTHONPATH is served. A tree from
    # before the CLI moved to receiver/ops/ (a side-by-side baseline) has it at receiver/cli.py.
    legacy = tree is not None and (tree / "receiver" / "cli.py").exists()
    module = "receiver.cli" if legacy else "receiver.ops.cli"
    return [sys.executable, "-m", module, "serve", "--host", "127.0.0.1",
            "--port", "{port}", "--workers", str(workers)]  # fmt: skip


class ContentLengthServer(asyncio.Protocol):
    """A raw-asyncio HTTP/1.1 peer for benches: splits requests by Content-Length and hands
    each body to `answer`, whose bytes are written back. Not uvicorn: on a 2-core machine a
    Starlette peer would take the CPU the measured process needs."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            marker = head.find(b"content-length:")
            length = int(head[marker + 15 :].split(b"\r\n", 1)[0]) if marker >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            assert self.transport is not None
            self.transport.write(self.answer(body))

    def answer(self, body: bytes) -> bytes:
        raise NotImplementedError
