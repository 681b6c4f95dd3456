"""A clean clone, installed as the buildpack installs it, released and served as the Procfile
says, with only what a platform gives a dyno: PORT, DATABASE_URL and the required secrets."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from packaging.utils import canonicalize_name

from deploy.pins import installed_closure, parse_requirements_file, project_requirements
from tests import children
from tests.deploy.procfile import procfile, required_settings
from tests.servers import free_port
from vlmhooks.trust.tokens import CallbackTokens, mint_callback_url, new_submission_id

pytestmark = pytest.mark.postgres

START_TIMEOUT_SECONDS = 60
RELEASE_TIMEOUT_SECONDS = 120


def heroku_database_url(url: str) -> str:
    """The `postgres://` spelling Heroku's add-on sets."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgres"))


def dyno_environment(bin_dir: Path, port: int, database_url: str) -> dict[str, str]:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PORT": str(port),
        "DATABASE_URL": heroku_database_url(database_url),
    }
    for setting in required_settings():
        env[setting.variable] = secrets.token_urlsafe(32)
    return env


def callback_body(prediction_id: str) -> dict[str, object]:
    created = datetime.now(UTC) - timedelta(seconds=5)
    return {
        "id": prediction_id,
        "status": "completed",
        "created_at": created.isoformat(),
        "completed_at": (created + timedelta(seconds=3)).isoformat(),
        "usage": {"elements_processed": 1, "element_type": "image", "credits_used": 1},
        "response": {"text": "deployed"},
    }


def wait_ready(base_url: str, web: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if web.poll() is not None:
            pytest.fail(f"web exited with {web.returncode}")
        try:
            ready = httpx.get(f"{base_url}/readyz", timeout=5)
            if ready.status_code == 200:
                return ready
        except httpx.TransportError:
            ready = None
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz not 200 after {START_TIMEOUT_SECONDS} s: {ready and ready.text}")
        time.sleep(0.2)


def stop(web: subprocess.Popen[str]) -> str:
    """SIGTERM, as the platform stops a dyno; SIGKILL if it has not exited in 30 s."""
    os.killpg(web.pid, signal.SIGTERM)
    try:
        return web.communicate(timeout=30)[0]
    except subprocess.TimeoutExpired:
        os.killpg(web.pid, signal.SIGKILL)
        output = web.communicate(timeout=children.KILLED_WAIT_SECONDS)[0]
        return output + "\n(killed: still running 30 s after SIGTERM)"


def test_a_clean_clone_installs_releases_and_stores_a_signed_callback(
    installed_clone: tuple[Path, Path], empty_postgres_url: str
) -> None:
    app, bin_dir = installed_clone
    commands = procfile(app)
    port = free_port()
    env = dyno_environment(bin_dir, port, empty_postgres_url)

    # The platform runs each Procfile command through a shell, in the app directory.
    release = subprocess.run(
        ["bash", "-c", commands["release"]],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=RELEASE_TIMEOUT_SECONDS,
        check=False,
    )
    assert release.returncode == 0, release.stderr + release.stdout

    web = subprocess.Popen(
        ["bash", "-c", f"exec {commands['web']}"],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, web)
        tokens = CallbackTokens([env["VLMHOOKS_SECRET_KEYS"]])
        submission_id = new_submission_id()
        prediction_id = f"pred_{secrets.token_hex(8)}"
        callback_url = mint_callback_url(base_url, tokens, submission_id)
        stored = httpx.post(callback_url, json=callback_body(prediction_id), timeout=30)
        read = httpx.get(
            f"{base_url}/v1/predictions/{prediction_id}",
            headers={"Authorization": f"Bearer {env['VLMHOOKS_API_KEYS']}"},
            timeout=30,
        )
        forged = httpx.post(
            mint_callback_url(base_url, CallbackTokens(["another-key" * 4]), submission_id),
            json=callback_body(f"pred_{secrets.token_hex(8)}"),
            timeout=30,
        )
    finally:
        output = stop(web)

    assert stored.status_code == 200, stored.text
    assert stored.json()["id"] == prediction_id
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["id"] == prediction_id and body["status"] == "completed"
    assert body["response"] == {"text": "deployed"}
    assert body["vlmhooks"]["submission_id"] == submission_id
    assert forged.status_code == 401, forged.text
    # uvicorn re-raises the SIGTERM it handled once shut down, so -SIGTERM is a clean stop.
    assert web.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output and "Traceback" not in output, output


def test_the_buildpack_installs_exactly_the_pinned_runtime_closure(
    installed_clone: tuple[Path, Path],
) -> None:
    """Out of sync with pyproject.toml fails here: a dependency (or one of its own) left
    unpinned is installed anyway and shows up unpinned; a pin nothing needs shows up unneeded."""
    app, bin_dir = installed_clone
    venv = bin_dir.parent
    (site_packages,) = venv.glob("lib/python*/site-packages")
    closure = installed_closure(project_requirements(app / "pyproject.toml"), [str(site_packages)])
    _, pins = parse_requirements_file((app / "requirements.txt").read_text())
    pinned = {canonicalize_name(pin.name): next(iter(pin.specifier)).version for pin in pins}
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in metadata.distributions(path=[str(site_packages)])
    }
    for own in ("vlmhooks", "pip", "setuptools"):  # the project and the venv's installers
        installed.pop(canonicalize_name(own), None)

    assert sorted(closure.keys() - pinned.keys()) == [], "needed but not pinned"
    assert sorted(pinned.keys() - closure.keys()) == [], "pinned but not needed at run time"
    assert pinned == closure
    assert installed == pinned
    check = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
