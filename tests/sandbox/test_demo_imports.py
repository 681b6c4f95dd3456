"""`vlm-sandbox demo` needs only `pip install -e .`: nothing it imports, start to finish, comes
from a distribution outside the runtime dependencies (the dev extra is for the tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy.pins import REPO_ROOT as PROJECT_ROOT
from deploy.pins import installed_closure, project_requirements

REPO_ROOT = Path(__file__).resolve().parents[2]
# Runs the demo, then names the distribution of every module it loaded (stdlib and our own
# packages have none).
_PROBE = """
import json, sys
from importlib.metadata import packages_distributions
from sandbox.cli import main
code = main(["demo", "--database", sys.argv[1], "--timeout", "30"])
owners = packages_distributions()
tops = {name.partition(".")[0] for name in list(sys.modules)}
print(json.dumps({"code": code, "dists": sorted({d for t in tops for d in owners.get(t, ())})}))
"""
OUR_DISTRIBUTION = "vlmhooks"


def test_the_demo_imports_only_runtime_dependencies(tmp_path: Path) -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path / "demo.db")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    report = json.loads(probe.stdout.splitlines()[-1])
    assert report["code"] == 0, probe.stderr[-3000:]
    # Libraries import optional helpers when present (jsonschema's format checkers), so the
    # rule names the dev extra's own tools and clients: none of them may be loaded.
    runtime = set(installed_closure(project_requirements())) | {OUR_DISTRIBUTION}
    dev_only = {canonicalize_name(req.name) for req in _dev_requirements()} - runtime
    loaded = {canonicalize_name(name) for name in report["dists"]}
    assert loaded & dev_only == set(), "the demo imports what only the dev extra installs"


def _dev_requirements() -> list[Requirement]:
    with (PROJECT_ROOT / "pyproject.toml").open("rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]
    return [Requirement(line) for line in extras["dev"]]
