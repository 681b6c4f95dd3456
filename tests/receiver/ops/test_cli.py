"""`vlm-receiver`: serve defaults, callback URLs, one-line database errors, and the Procfile
(checked and started with honcho)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.ops import cli
from tests import children
from tests.servers import free_port
from vlmhooks.trust.tokens import CallbackTokens

REPO_ROOT = Path(__file__).resolve().parents[3]
KEYS = "old-key,new-key"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("VLMHOOKS_") or name in ("PORT", "WEB_CONCURRENCY", "DATABASE_URL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", KEYS)
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "lookup-key")
    return monkeypatch


def test_callback_url_is_signed_for_the_submission(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("VLMHOOKS_PUBLIC_URL", "https://hooks.example.com/")
    assert cli.main(["callback-url", "--submission-id", "sub_cli"]) == 0
    url = capsys.readouterr().out.strip()
    prefix = "https://hooks.example.com/v1/callbacks/"
    assert url.startswith(prefix)
    assert CallbackTokens(KEYS.split(",")).verify(url.removeprefix(prefix)) == "sub_cli"

    assert cli.main(["callback-url", "--public-url", "http://127.0.0.1:9"]) == 0
    fresh = capsys.readouterr().out.strip()
    token = fresh.removeprefix("http://127.0.0.1:9/v1/callbacks/")
    assert CallbackTokens(KEYS.split(",")).verify(token).startswith("sub_")


def test_callback_url_refuses_a_submission_id_no_row_could_hold(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["callback-url", "--submission-id", "s" * 65]) == 2
    assert "1-64 printable characters" in capsys.readouterr().err
    assert cli.main(["callback-url", "--submission-id", "s" * 64]) == 0


def test_missing_keys_is_one_clear_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.delenv("VLMHOOKS_SECRET_KEYS")
    assert cli.main(["callback-url"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VLMHOOKS_SECRET_KEYS" in err


def test_serve_defaults_come_from_the_environment(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[dict[str, Any]] = []
    environment.setattr("uvicorn.run", lambda app, **kwargs: calls.append(kwargs))
    # Nothing listens here (uvicorn is replaced), so whether the ports are free is moot.
    environment.setattr("receiver.ops.startup.ensure_port_free", lambda host, port: None)
    assert cli.main(["serve"]) == 0
    environment.setenv("PORT", "5123")
    environment.setenv("WEB_CONCURRENCY", "3")
    assert cli.main(["serve"]) == 0
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "7000", "--workers", "2"]) == 0
    chosen = [(c["host"], c["port"], c["workers"]) for c in calls]
    assert chosen == [("0.0.0.0", 8000, 1), ("0.0.0.0", 5123, 3), ("127.0.0.1", 7000, 2)]
    assert all(c["factory"] for c in calls)


@pytest.mark.parametrize(
    ("database_url", "expected"),
    [
        ("postgresql://vlm:hunter2@127.0.0.1:{port}/nowhere", "127.0.0.1"),
        ("sqlite:////nonexistent-dir/vlmhooks.db", "unable to open database file"),
    ],
)
def test_database_errors_are_one_line(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    database_url: str,
    expected: str,
) -> None:
    environment.setenv("DATABASE_URL", database_url.format(port=free_port()))
    for command in (["db", "upgrade"], ["serve"]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith("vlm-receiver: error: cannot use the database at ")
        assert err.count("\n") == 1 and expected in err
        assert "hunter2" not in err and "Traceback" not in err


def test_serve_refuses_a_database_without_schema(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    environment.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert cli.main(["serve"]) == 2
    assert "vlm-receiver db upgrade" in capsys.readouterr().err


def test_procfile_declares_release_web_and_worker() -> None:
    lines = (REPO_ROOT / "Procfile").read_text().splitlines()
    assert "release: vlm-receiver db upgrade" in lines
    assert "web: vlm-receiver serve" in lines
    assert any(line.startswith("worker: ") for line in lines)
    check = subprocess.run(
        ["honcho", "check"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stderr
    assert "Valid procfile detected (release, web, worker, forward)" in check.stderr + check.stdout


def test_honcho_runs_release_then_web(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("VLMHOOKS_") and key not in ("PORT", "WEB_CONCURRENCY")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'honcho.db'}",
        VLMHOOKS_SECRET_KEYS=KEYS,
        VLMHOOKS_API_KEYS="lookup-key",
        VLMHOOKS_LOG_LEVEL="warning",
    )
    release = subprocess.run(
        ["honcho", "run", "vlm-receiver", "db", "upgrade"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert release.returncode == 0, release.stderr
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "--no-colour", "-p", str(port), "web"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        response = _wait_for_receiver(f"http://127.0.0.1:{port}", web)
        assert response.status_code == 401  # a real receiver refusing a bad token
        assert response.headers["content-type"] == "application/problem+json"
    finally:
        output = children.stop(web, signal.SIGTERM, timeout=20, group=True)[0].decode()
    assert "web.1 stopped" in output, output


def _wait_for_receiver(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = children.communicate(process, timeout=10, group=True)[0]
            raise AssertionError(f"exited early: {output.decode()}")
        try:
            return httpx.post(f"{url}/v1/callbacks/not-a-token", content=b"{}", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the receiver did not come up")


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (["deliveries", "prune", "--older-than", "999999999d"], None, "--older-than: "),
        (["deliveries", "replay", "--since", "999999999d"], None, "--since: "),
        (["deliveries", "replay", "--until", "36501d"], None, "--until: "),
        (["deliveries", "prune"], "999999999d", "VLMHOOKS_DELIVERY_RETENTION: "),
    ],
)
def test_a_duration_too_long_to_subtract_is_one_line(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    env: str | None,
    expected: str,
) -> None:
    """`now - 999999999d` overflows datetime: a clear line, not an OverflowError traceback."""
    if env is not None:
        environment.setenv("VLMHOOKS_DELIVERY_RETENTION", env)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlm-receiver: error: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["serve", "--port", "99999"], "argument --port: '99999' is not a port number (1-65535)"),
        (["serve", "--port", "-5"], "argument --port: '-5' is not a port number (1-65535)"),
        (["serve", "--workers", "0"], "argument --workers: '0' is not a whole number"),
        (["forward", "--metrics-port", "70000"], "argument --metrics-port: '70000' is not a port"),
        (["check", "--timeout", "-1"], "argument --timeout: '-1' is not a positive number"),
        (["check", "--timeout", "nan"], "argument --timeout: 'nan' is not a positive number"),
    ],
)
def test_out_of_range_numbers_are_a_usage_line_not_a_traceback(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    expected: str,
) -> None:
    """A port past 65535 was an `OverflowError` at bind, a bad timeout a `ValueError`."""
    with pytest.raises(SystemExit) as exited:
        cli.main(command)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith(f"vlm-receiver {command[0]}: error: {expected}")
    assert "Traceback" not in err


def test_port_out_of_range_in_the_environment_is_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environment.setenv("PORT", "99999")
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlm-receiver: error: PORT: ")
    assert err.count("\n") == 1 and "65535" in err


def test_forward_metrics_port_in_use_is_one_line(
    environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.create_server(("0.0.0.0", 0)) as taken:  # bound first: no race for the port
        port = taken.getsockname()[1]
        assert cli.main(["forward", "--metrics-port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == f"vlm-receiver: error: --metrics-port: cannot listen on port {port}: " + (
        "Address already in use\n"
    )


@pytest.mark.parametrize(
    ("command", "env", "expected"),
    [
        (
            ["deliveries", "prune", "--older-than", "1d"],
            {"DATABASE_URL": "postgresql://u:p@[::1/x"},
            "DATABASE_URL is not a database URL: ",
        ),
        (
            ["db", "upgrade"],
            {"DATABASE_URL": "postgres://u:p@db.example:abc/x"},
            "DATABASE_URL is not a database URL: ",
        ),
        (
            ["db", "upgrade", "nosuchrev"],
            {},
            "db upgrade nosuchrev: Can't locate revision identified by 'nosuchrev'",
        ),
        (
            ["db", "downgrade", "nosuchrev"],
            {},
            "db downgrade nosuchrev: Can't locate revision identified by 'nosuchrev'",
        ),
        (
            ["check"],
            {"VLMHOOKS_PUBLIC_URL": "http://[::1"},
            "--public-url / VLMHOOKS_PUBLIC_URL must be an http(s) URL, got 'http://[::1'",
        ),
        (
            ["check", "--public-url", "ftp://hooks.example"],
            {},
            "--public-url / VLMHOOKS_PUBLIC_URL must be an http(s) URL, got 'ftp://",
        ),
        (
            ["check", "--public-url", "http://:8000"],
            {},
            "--public-url / VLMHOOKS_PUBLIC_URL must be an http(s) URL, got 'http://:8000'",
        ),
    ],
)
def test_malformed_urls_and_revisions_are_one_line(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    """Each was a traceback: SQLAlchemy's int(port), Alembic's CommandError, httpx's
    InvalidURL."""
    for name, value in env.items():
        environment.setenv(name, value)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vlm-receiver: error: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err and "p@" not in err
