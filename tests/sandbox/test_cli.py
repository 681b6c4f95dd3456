"""`vlm-sandbox`: serve really serves, and every mistake is one line on stderr with exit 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from sandbox.cli import main
from tests import children
from tests.servers import free_port


def test_serve_runs_the_api() -> None:
    port = free_port()
    env = {**os.environ, "VLMHOOKS_SANDBOX_API_KEYS": "cli-key"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        unauthorized = httpx.get(f"http://127.0.0.1:{port}/v1/predictions", timeout=5)
    finally:
        _, stderr = children.stop(process, signal.SIGINT, timeout=15)
    assert health.status_code == 200
    assert unauthorized.status_code == 401
    # uvicorn re-raises the signal after a clean shutdown: Ctrl-C ends as 130, like any CLI.
    assert process.returncode == 130
    assert "Traceback" not in stderr
    assert f"API at http://127.0.0.1:{port}/v1" in stderr


def test_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlm-sandbox: error: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1


def test_bad_environment_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VLMHOOKS_SANDBOX_FAULTS", "duplicate=zero")
    assert main(["serve", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err == (
        "vlm-sandbox: error: VLMHOOKS_SANDBOX_FAULTS: "
        "fault 'duplicate' needs a whole number, got 'zero'\n"
    )


def test_unresolvable_host(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--host", "no-such-host.invalid", "--port", "8100"]) == 2
    assert capsys.readouterr().err.startswith("vlm-sandbox: error: cannot resolve host")


@pytest.mark.parametrize("argv", [[], ["serve", "--port", "70000"], ["demo-not-yet"]])
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2
