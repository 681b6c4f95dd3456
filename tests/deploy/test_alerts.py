"""The operators' files in deploy/: the alerting rules pass `promtool test rules`, and every
metric the rules and the Grafana dashboard name is one that `/metrics` exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from receiver.app import create_app
from tests.receiver.callback_harness import LOOKUP_KEY, receiver_settings
from tests.receiver.conftest import _apt
from tests.servers import serve

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bvlmhooks_[a-z0-9_]+\b")
# A family's samples: a histogram's buckets, sum and count (a counter's TYPE line already
# names its `_total`).
SUFFIXES = {"histogram": ("_bucket", "_sum", "_count")}


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's prometheus package, installed by the test setup when missing; never skipped."""
    found = shutil.which("promtool")
    if found is None:
        if shutil.which("apt-get") is None:
            pytest.fail("promtool is missing and apt-get is not available to install it")
        result = _apt("install", "-y", "--no-install-recommends", "prometheus")
        if result.returncode != 0:
            _apt("update")
            result = _apt("install", "-y", "--no-install-recommends", "prometheus")
        found = shutil.which("promtool")
        if found is None:
            pytest.fail(f"`apt-get install prometheus` did not provide promtool:\n{result.stderr}")
    return found


def test_every_alert_rule_passes_its_promtool_tests(promtool: str) -> None:
    for command in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [promtool, *command],
            cwd=RULES.parent,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES.parent / "alerts_test.yml").read_text()))
    assert tested == set(re.findall(r"- alert: (\w+)", RULES.read_text()))


def named_metrics() -> set[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "vlmhooks.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return set(METRIC.findall(RULES.read_text() + "\n".join(queries)))


def exposed_metrics(text: str) -> set[str]:
    exposed = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        exposed |= {name + suffix for suffix in SUFFIXES.get(kind, ("",))}
    return exposed


def test_every_metric_the_rules_and_dashboard_name_is_exposed(sqlite_url: str) -> None:
    # Forwarding configured, so its families are registered; the destination need not answer.
    settings = receiver_settings(sqlite_url, forward_to="python:tests.forward.handlers:record")
    with serve(create_app(settings)) as server:
        text = httpx.get(
            f"{server.url}/metrics", headers={"authorization": f"Bearer {LOOKUP_KEY}"}
        ).text
    named = named_metrics()
    assert len(named) >= 10
    assert named - exposed_metrics(text) == set()
