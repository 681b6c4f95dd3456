"""`vlm-receiver serve` as a real child process that a test can SIGKILL and start again."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

# Variables the receiver reads; the test's own values replace whatever the caller's shell has.
_RECEIVER_ENV = ("DATABASE_URL", "PORT", "WEB_CONCURRENCY", "VLMRUN_API_KEY", "VLMRUN_BASE_URL")
START_TIMEOUT_SECONDS = 60.0


def receiver_command() -> list[str]:
    """The `vlm-receiver` console script of this interpreter (else `python -m receiver.ops.cli`)."""
    script = shutil.which("vlm-receiver", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "receiver.ops.cli"]


class ReceiverProcess:
    """One `vlm-receiver serve` on 127.0.0.1:`port`, in its own process group (workers too)."""

    def __init__(
        self,
        *,
        database_url: str,
        port: int,
        env: dict[str, str],
        log_path: Path,
        workers: int = 1,
    ) -> None:
        self.port = port
        self.log_path = log_path
        self.workers = workers
        base = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("VLMHOOKS_") and key not in _RECEIVER_ENV
        }
        self.env = {
            **base,
            "DATABASE_URL": database_url,
            "VLMHOOKS_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until `/readyz` answers 200; a dead child fails with its log."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the receiver is already running")
        command = [
            *receiver_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        with self.log_path.open("ab") as log:
            log.write(f"--- start #{self.starts + 1}: {' '.join(command)}\n".encode())
            log.flush()
            # A new session makes the child the leader of its own process group, so one
            # killpg reaches uvicorn's worker processes too.
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"vlm-receiver exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"vlm-receiver did not get ready:\n{self.log_tail()}")
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no flush, like a power cut."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        """A graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            self.process.wait(timeout=20)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> ReceiverProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
