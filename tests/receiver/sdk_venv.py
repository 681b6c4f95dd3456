"""The public `vlmrun` SDK in a virtual environment of its own, made once and reused.

Its dependencies are pinned exactly (`pydantic==`, `Pillow==`, `rich==`, ...): installed
beside vlmhooks they would move our own dependencies to its versions, so the parity tests
drive it in a subprocess from its own environment, as a user's backend would.

The environment is cached across runs and checkouts under the user's cache folder, named by
a hash of what it is made from (the requirement and this interpreter), so a changed pin or
Python makes a new one and an unchanged one is never rebuilt.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

SDK_REQUIREMENT = "vlmrun==0.9.2"
# Set it to reuse an environment across checkouts (or to point at one made by hand).
VENV_ENV = "VLMHOOKS_SDK_VENV"
INSTALL_TIMEOUT_SECONDS = 600


class SdkUnavailable(Exception):
    """The environment could not be made (no index reachable): the test setup fails, never skips."""


def _cache_root() -> Path:
    configured = os.environ.get("XDG_CACHE_HOME")
    return (Path(configured) if configured else Path.home() / ".cache") / "vlmhooks"


def _location() -> Path:
    configured = os.environ.get(VENV_ENV)
    if configured:
        return Path(configured)
    made_from = f"{SDK_REQUIREMENT}\n{sys.version}\n{os.path.realpath(sys.executable)}"
    digest = hashlib.sha256(made_from.encode()).hexdigest()[:16]
    return _cache_root() / f"sdk-venv-{digest}"


def sdk_python() -> Path:
    """The interpreter of an environment with the SDK installed; made on first use.

    A lock file serializes concurrent test runs; a marker written last means "complete", so
    an install that was interrupted is redone rather than trusted.
    """
    venv = _location()
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return python
        for command in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", SDK_REQUIREMENT],
        ):
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS
            )
            if result.returncode != 0:
                tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
                raise SdkUnavailable(f"{' '.join(command[:4])}: {' / '.join(tail)}")
        marker.write_text(SDK_REQUIREMENT + "\n")
    return python
