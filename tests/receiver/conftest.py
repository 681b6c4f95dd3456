"""Fixtures shared by the receiver tests: a running receiver or console, the group committer's
probe table, and the browser for the dashboard tests (Playwright driving Debian's Chromium).

Playwright's own browser download is not reachable here, so it is pointed at the system
binary. Like PostgreSQL in tests/conftest.py, a missing Chromium is installed by the test
setup, and a setup that cannot install it fails: these tests are never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.engine import Engine

from tests.receiver.callback_harness import Receiver, receiver_settings, running_receiver
from tests.receiver.dashboard_support import Console, running_console
from tests.receiver.group_commit_support import PROBE
from tests.receiver.sdk_venv import sdk_python

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("VLMHOOKS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_PACKAGE = "chromium"
# No sandbox (containers run as root), no GPU, and nothing that phones home mid-test.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
APT_TIMEOUT_SECONDS = 900


def _apt(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["apt-get", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT_SECONDS,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        check=False,
    )


def _install_chromium() -> str:
    """Install the Debian package; refresh the package lists once if the first try fails."""
    result = _apt("install", "-y", "--no-install-recommends", CHROMIUM_PACKAGE)
    if result.returncode != 0:
        _apt("update")
        result = _apt("install", "-y", "--no-install-recommends", CHROMIUM_PACKAGE)
    return (result.stderr or result.stdout)[-2000:]


def pytest_collection_finish(session: pytest.Session) -> None:
    """Make the SDK's environment in the background while other tests run, when a test that
    needs it was collected (it is cached: usually this finds it made and returns at once).
    A failure is left for the test's own fixture to report."""
    if any("test_sdk_parity.py" in item.nodeid for item in session.items):

        def warm() -> None:
            with contextlib.suppress(Exception):
                sdk_python()

        threading.Thread(target=warm, name="sdk-venv", daemon=True).start()


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    if not Path(CHROMIUM).exists():
        if shutil.which("apt-get") is None:
            pytest.fail(f"{CHROMIUM} is missing and apt-get is not available to install it")
        output = _install_chromium()
        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} is missing and `apt-get install chromium` failed:\n{output}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_executable: str) -> Iterator[Browser]:
    """One browser per test module; each test opens its own context (fresh cookies).

    Per module, not per session: while Playwright's sync API is up, its event loop counts
    as running in the main thread, and tests that call `asyncio.run` would fail after it.
    """
    from playwright.sync_api import expect, sync_playwright

    # The machine is shared: give auto-waiting assertions room before calling a failure.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests leave their screenshots (a temporary folder per session)."""
    return tmp_path_factory.mktemp("dashboard-screenshots")


@pytest.fixture
def receiver(database_url: str) -> Iterator[Receiver]:
    with running_receiver(receiver_settings(database_url)) as running:
        yield running


@pytest.fixture
def console(sqlite_url: str) -> Iterator[Console]:
    with running_console(sqlite_url) as running:
        yield running


@pytest.fixture
def any_console(database_url: str) -> Iterator[Console]:
    """For the reads whose SQL differs by database (time buckets, sums, substr)."""
    with running_console(database_url) as running:
        yield running


@pytest.fixture
def probe(engine: Engine) -> Iterator[Engine]:
    """The database with the group committer's probe table."""
    PROBE.create(engine)
    yield engine
