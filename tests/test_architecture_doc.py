"""ARCHITECTURE.md names only what exists: every repository path, module file and dotted module
it writes, so the map cannot drift from the tree."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOP = ("schemas", "vlmhooks", "receiver", "submit", "sandbox", "tests", "bench", "deploy")
PACKAGES = ("schemas", "vlmhooks", "receiver", "submit", "sandbox")

# `receiver/ingest/callbacks.py`, `vlmhooks/store/`, bench/README.md: anywhere in the text.
_PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(TOP)})/[\w./-]*[\w/]")
# A module file named alone in backticks: `group_commit.py`.
_FILE = re.compile(r"`([\w-]+\.py)`")
# A dotted module, and maybe an attribute: `receiver.server.serverless.handler`.
_DOTTED = re.compile(rf"`((?:{'|'.join(PACKAGES)})(?:\.\w+)+)`")


def repository_paths(text: str) -> set[str]:
    return set(_PATH.findall(text))


def missing_paths(text: str, root: Path = REPO) -> list[str]:
    return sorted(path for path in repository_paths(text) if not (root / path).exists())


def missing_files(text: str, root: Path = REPO) -> list[str]:
    names = {path.name for package in PACKAGES for path in (root / package).rglob("*.py")}
    return sorted(name for name in set(_FILE.findall(text)) if name not in names)


def _module_file(parts: list[str], root: Path) -> Path | None:
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(module: Path, name: str) -> bool:
    """Whether `module` defines or imports `name` at its top level."""
    pattern = rf"^(?:async def |def |class )?{name}\b\s*[(:=]|^from .* import .*\b{name}\b"
    return re.search(pattern, module.read_text(), re.MULTILINE) is not None


def missing_modules(text: str, root: Path = REPO) -> list[str]:
    """Dotted names that are neither a module nor a name a module defines."""
    missing = []
    for name in set(_DOTTED.findall(text)):
        *module, attribute = name.split(".")
        if _module_file([*module, attribute], root) is not None:
            continue
        parent = _module_file(module, root)
        if parent is None or not _defines(parent, attribute):
            missing.append(name)
    return sorted(missing)


def _architecture() -> str:
    return (REPO / "ARCHITECTURE.md").read_text()


def test_the_page_names_the_folders_of_the_map() -> None:
    paths = repository_paths(_architecture())
    assert {"receiver/ingest/callbacks.py", "vlmhooks/store/", "receiver/writer/"} <= paths


def test_every_repository_path_in_the_page_exists() -> None:
    assert missing_paths(_architecture()) == []


def test_every_module_file_named_alone_exists() -> None:
    assert missing_files(_architecture()) == []


def test_every_dotted_module_in_the_page_exists() -> None:
    assert missing_modules(_architecture()) == []


def test_the_check_finds_a_wrong_path() -> None:
    text = (
        "`receiver/ingest/callbacks.py` and `receiver/openapi/paths.py`, `vlmhooks/store/`,"
        " vlmhooks/storage/ and `writer.py`; `receiver.server.serverless.handler`,"
        " `receiver.callbacks`."
    )
    assert missing_paths(text) == ["receiver/openapi/paths.py", "vlmhooks/storage/"]
    assert missing_files(text) == ["writer.py"]
    assert missing_modules(text) == ["receiver.callbacks"]
