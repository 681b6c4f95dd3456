"""`vlm-receiver serve` in a newcomer's first hour: `honcho -f Procfile.dev start` from a fresh
clone, no empty database left behind, weak keys named, a busy port in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from receiver.ops import cli
from tests import children
from tests.receiver.lookup_support import AUTH, running_receiver
from tests.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
STRONG_KEY = "k" * 32
CHECK_MAIN = "from receiver.ops.cli import main; raise SystemExit(main())"  # `vlm-receiver`


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("VLMHOOKS_") or name in ("PORT", "WEB_CONCURRENCY", "DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", STRONG_KEY)
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "lookup-key")
    return monkeypatch


def test_procfile_dev_starts_serves_and_stops_from_a_fresh_clone(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VLMHOOKS_") and key not in ("PORT", "WEB_CONCURRENCY")
    }
    database = tmp_path / "never-migrated.db"
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        VLMHOOKS_SECRET_KEYS=STRONG_KEY,
        VLMHOOKS_API_KEYS="lookup-key",
        VLMHOOKS_LOG_LEVEL="warning",
    )
    port = free_port()
    honcho = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "honcho",
            "-f",
            "Procfile.dev",
            "start",
            "--no-colour",
            "-p",
            str(port),
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/healthz", honcho)
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        # The environment honcho gives its processes: PORT, and no VLMHOOKS_PUBLIC_URL.
        check = subprocess.run(
            [sys.executable, "-c", CHECK_MAIN, "check", "--timeout", "5"],
            cwd=REPO_ROOT,
            env={**env, "PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        output = children.stop(honcho, signal.SIGTERM, timeout=30, group=True)[0].decode()
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    # Migrated on start: the schema is at head without a separate `db upgrade`.
    assert ready.status_code == 200, ready.text
    assert database.exists()
    assert "web.1 stopped" in output and "Traceback" not in output, output
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"http://127.0.0.1:{port} answers as a vlmhooks receiver" in check.stdout


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = children.communicate(process, timeout=10, group=True)[0]
            raise AssertionError(f"exited early: {output.decode()}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the receiver did not come up")


def test_serve_before_upgrade_leaves_no_database_file(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "vlm-receiver db upgrade" in err
    assert list(tmp_path.iterdir()) == []


def test_short_secret_keys_are_named_in_a_warning(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Up to the point of listening: uvicorn itself is replaced.
    environment.setattr("uvicorn.run", lambda app, **kwargs: None)
    environment.setattr("receiver.ops.startup.ensure_port_free", lambda host, port: None)
    environment.setenv("VLMHOOKS_SECRET_KEYS", f"short-key,{STRONG_KEY}")
    assert cli.main(["serve", "--migrate"]) == 0
    err = capsys.readouterr().err
    assert err == (
        "vlm-receiver: warning: VLMHOOKS_SECRET_KEYS: key 1 of 2 is 9 bytes; use at least 32 "
        "random bytes (python -c 'import secrets; print(secrets.token_urlsafe(32))')\n"
    )
    environment.setenv("VLMHOOKS_SECRET_KEYS", STRONG_KEY)
    assert cli.main(["serve"]) == 0
    assert capsys.readouterr().err == ""


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    database = tmp_path / "ready.db"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VLMHOOKS_") and key not in ("PORT", "WEB_CONCURRENCY")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        VLMHOOKS_SECRET_KEYS=STRONG_KEY,
        VLMHOOKS_API_KEYS="lookup-key",
    )
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        serve = subprocess.run(
            [
                sys.executable,
                "-m",
                "receiver.ops.cli",
                "serve",
                "--migrate",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert serve.returncode == 2
    assert serve.stderr == (
        f"vlm-receiver: error: port {port} on 127.0.0.1 is already in use (another receiver?): "
        "stop it, or choose another port with --port or $PORT\n"
    )


def test_the_root_is_an_index_of_links(sqlite_url: str) -> None:
    with running_receiver(sqlite_url) as server, httpx.Client(base_url=server.url) as http:
        index = http.get("/")
        # Every link answers (the dashboard behind the key, like the lookup API).
        answers = {
            name: http.get(path, headers=AUTH).status_code
            for name, path in index.json()["links"].items()
        }
    assert index.status_code == 200 and index.headers["content-type"] == "application/json"
    assert index.json()["service"] == "vlmhooks receiver"
    assert answers == {"dashboard": 200, "openapi": 200, "health": 200, "ready": 200}
