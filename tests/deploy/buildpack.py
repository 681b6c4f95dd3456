"""A clean clone installed the way Heroku's Python buildpack installs it, in a cached venv.

The buildpack runs `pip install -r requirements.txt` in the app directory, inside a fresh
environment. Building that environment downloads every pinned package, so it is made once per
(requirements.txt, interpreter) and kept under ~/.cache/vlmhooks-tests/; each use then runs the
buildpack's own command again in it, which reinstalls the clone and changes nothing else.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.deploy.procfile import BUILD_COMMAND, REPO_ROOT

# The flags lib/pip.sh of heroku/heroku-buildpack-python adds to its `pip install`.
BUILDPACK_PIP_FLAGS = (
    "--disable-pip-version-check",
    "--exists-action=w",
    "--no-cache-dir",
    "--no-input",
    "--progress-bar",
    "off",
)
INSTALL_TIMEOUT_SECONDS = 600


class BuildFailed(Exception):
    """The clone could not be installed: the test fails, never skips."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vlmhooks-tests"


def clean_clone(destination: Path) -> Path:
    """`git clone` of this repository's HEAD: committed files only, as a push deploys them."""
    _run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(destination)])
    return destination


def venv_key(app: Path) -> str:
    digest = hashlib.sha256((app / "requirements.txt").read_bytes())
    digest.update(f"{sys.version}|{platform.machine()}|{sys.platform}".encode())
    return digest.hexdigest()[:16]


@contextmanager
def buildpack_install(app: Path) -> Iterator[Path]:
    """The venv with `app` installed by the buildpack's command; yields its `bin` directory.

    Held under a lock, since each use reinstalls the app and pytest-xdist workers (or other
    pytest runs) share the cache; a marker written last means "complete", so an interrupted
    build is made again rather than trusted.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"buildpack-venv-{venv_key(app)}"
    with open(root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            _run([sys.executable, "-m", "venv", str(venv)])
            _install(venv, app)
            (venv / ".complete").write_text(venv_key(app) + "\n")
        else:
            _install(venv, app)
        yield venv / "bin"


def _install(venv: Path, app: Path) -> None:
    # Exactly the buildpack's command, from the app directory (`.` in the file is relative to it).
    command = [*BUILD_COMMAND.split(), *BUILDPACK_PIP_FLAGS]
    command[0] = str(venv / "bin" / "pip")
    _run(command, cwd=app)


def _run(command: list[str], cwd: Path | None = None) -> None:
    # The test run's PYTHONPATH (the work tree) must not reach the install: a dyno has none.
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not key.startswith("VIRTUAL_ENV")
    }
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        raise BuildFailed(f"{' '.join(command)} (exit {result.returncode}):\n{tail}")
