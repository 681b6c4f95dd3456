"""The clean clone, installed by the buildpack's command, shared by this folder's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.buildpack import BuildFailed, buildpack_install, clean_clone


@pytest.fixture(scope="module")
def installed_clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the clone, the venv's bin directory), the venv locked while the module uses it."""
    try:
        app = clean_clone(tmp_path_factory.mktemp("deploy") / "app")
        with buildpack_install(app) as bin_dir:
            yield app, bin_dir
    except BuildFailed as exc:
        pytest.fail(f"the buildpack's install failed: {exc}")
