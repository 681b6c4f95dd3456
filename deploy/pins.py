"""The runtime dependency closure of `pyproject.toml`, pinned for `requirements.txt`.

`python -m deploy.pins > requirements.txt` writes the file from the packages installed in the
current environment; `tests/deploy/test_requirements.py` checks the file against the closure
of the versions it pins.
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

__all__ = [
    "PROJECT_LINE",
    "installed_closure",
    "parse_requirements_file",
    "project_requirements",
    "render_requirements",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
# Installs the project itself, non-editable: the buildpack builds in one directory and runs the
# slug from another, so an editable install would point at a path that is gone at run time.
PROJECT_LINE = "."
HEADER = """\
# Runtime dependencies of pyproject.toml's [project], every one pinned, then the project itself.
# The platforms' Python buildpacks run `pip install -r requirements.txt` in the app directory.
# Regenerate with `python -m deploy.pins > requirements.txt` (tests/deploy checks the pins).
"""


def project_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[Requirement]:
    """`[project].dependencies`: what a plain `pip install .` asks for, no extras."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [Requirement(line) for line in project["dependencies"]]


def installed_closure(
    roots: Iterable[Requirement], path: Sequence[str] | None = None
) -> dict[NormalizedName, str]:
    """Every distribution `roots` need, transitively, with its installed version.

    Read from the distributions on `path` (sys.path when None), so the closure is that of
    the versions actually installed there; markers are evaluated for this interpreter.
    """
    found = metadata.distributions() if path is None else metadata.distributions(path=list(path))
    installed: dict[NormalizedName, metadata.Distribution] = {}
    for found_dist in found:  # the first on the path shadows the rest, as for imports
        installed.setdefault(canonicalize_name(found_dist.metadata["Name"]), found_dist)
    closure: dict[NormalizedName, str] = {}
    seen: set[tuple[NormalizedName, str]] = set()
    pending = [(req, "") for req in roots]
    while pending:
        req, parent_extra = pending.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": parent_extra}):
            continue
        name = canonicalize_name(req.name)
        dist = installed.get(name)
        if dist is None:
            raise LookupError(f"{req.name} is needed but not installed (asked for by {req})")
        closure[name] = dist.version
        for extra in ("", *sorted(req.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            pending.extend((Requirement(line), extra) for line in dist.requires or ())
    return closure


def render_requirements(pins: Mapping[NormalizedName, str]) -> str:
    lines = [f"{name}=={pins[name]}" for name in sorted(pins)]
    return HEADER + "\n".join([*lines, PROJECT_LINE]) + "\n"


def parse_requirements_file(text: str) -> tuple[list[str], list[Requirement]]:
    """(lines that are not `name==version` pins, the pins), comments and blanks dropped."""
    others: list[str] = []
    pins: list[Requirement] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            req = Requirement(line)
        except ValueError:
            others.append(line)
            continue
        operators = [spec.operator for spec in req.specifier]
        if req.url is None and operators == ["=="]:
            pins.append(req)
        else:
            others.append(line)
    return others, pins


def main() -> None:
    sys.stdout.write(render_requirements(installed_closure(project_requirements())))


if __name__ == "__main__":
    main()
