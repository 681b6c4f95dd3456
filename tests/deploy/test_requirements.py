"""The one package-manager file Heroku's buildpack detects, pinned, runtime only.

Its closure against pyproject.toml is checked on the installed pins in test_buildpack_run.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.pins import (
    PROJECT_LINE,
    installed_closure,
    parse_requirements_file,
    project_requirements,
)
from tests.deploy.procfile import PACKAGE_MANAGER_FILES, REPO_ROOT


def tracked_files() -> set[str]:
    """What a `git push` deploys: the committed files, not the work tree's leftovers."""
    listing = subprocess.run(
        ["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return set(listing.stdout.splitlines())


def requirements_text() -> str:
    return (REPO_ROOT / "requirements.txt").read_text()


def pinned_versions() -> dict[str, str]:
    _, pins = parse_requirements_file(requirements_text())
    return {canonicalize_name(pin.name): next(iter(pin.specifier)).version for pin in pins}


def test_exactly_one_package_manager_file_is_committed() -> None:
    present = sorted(tracked_files() & set(PACKAGE_MANAGER_FILES))
    assert present == ["requirements.txt"]


def test_python_version_names_the_major_version_the_pins_were_made_on() -> None:
    assert ".python-version" in tracked_files()
    text = (REPO_ROOT / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", text), f"a major version like 3.12, not {text!r}"
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert text == running, f".python-version says {text}, the tests run {running}"
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        requires_python = tomllib.load(handle)["project"]["requires-python"]
    assert Requirement(f"python{requires_python}").specifier.contains(f"{text}.0")


def test_every_line_is_an_exact_pin_and_the_last_installs_the_project() -> None:
    others, pins = parse_requirements_file(requirements_text())
    # `.`: built and installed as a wheel, so the slug does not depend on the build directory;
    # not `.[dev]`, not `-e .`, no index options.
    assert others == [PROJECT_LINE]
    lines = [line for line in requirements_text().splitlines() if line and line[0] != "#"]
    assert lines[-1] == PROJECT_LINE
    names = [canonicalize_name(pin.name) for pin in pins]
    assert len(names) == len(set(names)), "a package pinned twice"
    assert all(not pin.extras and pin.marker is None for pin in pins)


def test_every_project_dependency_is_pinned_to_a_version_it_accepts() -> None:
    pinned = pinned_versions()
    for requirement in project_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not pinned"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{name}=={pinned[name]} does not satisfy {requirement}"
        )


def test_nothing_only_the_dev_extra_needs_is_pinned() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    development = installed_closure(Requirement(line) for line in extras["dev"])
    runtime = installed_closure(project_requirements())
    dev_only = development.keys() - runtime.keys()
    assert {"pytest", "mypy", "playwright", "schemathesis"} <= dev_only
    assert sorted(dev_only & pinned_versions().keys()) == []
