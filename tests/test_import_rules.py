"""The import rules of ARCHITECTURE.md ("Layers"), checked on the source: who may import whom.

Parsed, not imported, so a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("schemas", "vlmhooks", "receiver", "submit", "sandbox")

# Each part and the parts of ours it may import (its own modules always). A part is a package,
# or a folder of one; "receiver" and "vlmhooks" alone mean the modules at that package's root.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "schemas": frozenset(),
    # The core's root: settings, errors, durations, the public read shape, retry timing, URL
    # checks. Settings takes the signature and token defaults from the modules that own them.
    "vlmhooks": frozenset({"schemas", "vlmhooks.trust"}),
    "vlmhooks.trust": frozenset({"vlmhooks"}),
    "vlmhooks.ingest": frozenset({"schemas", "vlmhooks"}),
    "vlmhooks.store": frozenset({"schemas", "vlmhooks", "vlmhooks.trust", "vlmhooks.ingest"}),
    "vlmhooks.reads": frozenset({"schemas", "vlmhooks", "vlmhooks.trust", "vlmhooks.store"}),
    "vlmhooks.forward": frozenset(
        {"schemas", "vlmhooks", "vlmhooks.trust", "vlmhooks.store", "vlmhooks.reads"}
    ),
}
CORE = frozenset({"schemas", *MAY_IMPORT})
MAY_IMPORT |= {
    "submit": CORE - {"vlmhooks.forward"},
    # The receiver's root holds the app (the composition root, below), the state, the error
    # tree and the metrics registry.
    "receiver": CORE | {"receiver.http"},
    "receiver.http": CORE | {"receiver"},
    "receiver.writer": CORE,
    "receiver.server": CORE | {"receiver", "receiver.http", "receiver.writer"},
    "receiver.live": CORE | {"receiver", "receiver.http"},
    "receiver.ingest": CORE | {"receiver", "receiver.http", "receiver.writer"},
    "receiver.api": CORE
    | {"receiver", "receiver.http", "receiver.writer", "receiver.live"}
    | {"receiver.ingest"},
    "receiver.openapi": CORE | {"receiver", "receiver.http"},
    "receiver.dashboard": CORE
    | {"receiver", "receiver.http", "receiver.writer", "receiver.live"}
    | {"receiver.ingest", "receiver.api"},
    "receiver.ops": CORE
    | {"receiver", "receiver.http", "receiver.writer", "receiver.live"}
    | {"receiver.ingest", "receiver.api", "receiver.server", "receiver.openapi"},
    "sandbox": frozenset(),  # anything: the demo runs a real receiver and uses submit/
}
# Single modules with a rule of their own: the app composes every part; the state holds the
# writer, the live readers and the request path's verifiers, never a feature.
MODULE_MAY_IMPORT = {
    "receiver.app": frozenset(MAY_IMPORT) - {"sandbox", "submit"},
    "receiver.state": MAY_IMPORT["receiver"]
    | {"receiver.writer", "receiver.live"}
    | {"receiver.ingest"},
}


def part_of(module: str, root: Path = REPO) -> str:
    """The part a dotted module name belongs to (see MAY_IMPORT)."""
    top, _, rest = module.partition(".")
    if top in ("receiver", "vlmhooks") and rest:
        folder = rest.split(".")[0]
        if (root / top / folder).is_dir():
            return f"{top}.{folder}"
    return top


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name


def sources(root: Path = REPO) -> Iterator[tuple[str, Path]]:
    for package in OURS:
        for path in sorted((root / package).rglob("*.py")):
            yield ".".join(path.relative_to(root).with_suffix("").parts), path


def violations(root: Path = REPO) -> list[str]:
    found = []
    for module, path in sources(root):
        part = part_of(module, root)
        if part == "sandbox":
            continue
        allowed = MODULE_MAY_IMPORT.get(module, MAY_IMPORT[part])
        for line, imported in imports_of(path):
            if imported.split(".")[0] not in OURS:
                continue
            target = part_of(imported, root)
            if target != part and target not in allowed:
                found.append(f"{path.relative_to(root)}:{line}: {part} imports {imported}")
    return found


def test_every_part_of_ours_has_a_rule() -> None:
    parts = {part_of(module) for module, _ in sources()}
    assert parts <= set(MAY_IMPORT), sorted(parts - set(MAY_IMPORT))


def test_no_module_imports_a_part_it_may_not() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("receiver.app", "receiver"),
        ("receiver.writer.group_commit", "receiver.writer"),
        ("vlmhooks.store.batch", "vlmhooks.store"),
        ("vlmhooks.settings", "vlmhooks"),
        ("submit.cli", "submit"),
    ],
)
def test_a_module_belongs_to_its_folder(module: str, expected: str) -> None:
    assert part_of(module) == expected


def test_the_check_finds_a_forbidden_import(tmp_path: Path) -> None:
    files = {
        "receiver/state.py": "from receiver.dashboard.sessions import DashboardSessions\n",
        "receiver/dashboard/sessions.py": "import receiver.state\n",
        "receiver/live/sse.py": "from receiver.api.params import parse_int\n",
        "receiver/api/params.py": "from receiver.http.problems import Problem\n",
        "receiver/http/problems.py": "from vlmhooks.errors import ProblemError\n",
        "vlmhooks/store/batch.py": "from receiver.app import create_app\n",
        "vlmhooks/trust/tokens.py": "from vlmhooks.errors import ConfigError\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert sorted(violations(tmp_path)) == [
        "receiver/live/sse.py:1: receiver.live imports receiver.api.params",
        "receiver/state.py:1: receiver imports receiver.dashboard.sessions",
        "vlmhooks/store/batch.py:1: vlmhooks.store imports receiver.app",
    ]
