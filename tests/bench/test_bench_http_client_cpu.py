"""bench.http_client_cpu, the bench behind issue 29's CPU per POST of the forwarding client:
it runs end to end against its own server process, and refuses bad arguments in one line."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bench.harness import REPO
from bench.http_client_cpu import relay_headers, webhook_body


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.http_client_cpu", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_body_is_a_webhooks_size_of_json_sent_with_the_relays_headers() -> None:
    body = webhook_body()
    assert 1100 <= len(body) <= 1300
    assert json.loads(body)["type"] == "prediction.completed"
    assert set(relay_headers()) >= {"webhook-id", "webhook-timestamp", "webhook-signature"}


@pytest.mark.parametrize(
    ("args", "source"),
    [
        ((), "OriginClient from " + str(REPO / "vlmhooks/forward/http_client.py")),
        (("--tree", str(REPO), "--status", "204"), "OriginClient from "),
        (("--client", "httpx"), "httpx"),
    ],
)
def test_each_client_posts_every_request_and_reports_cpu_per_post(
    args: tuple[str, ...], source: str
) -> None:
    done = _bench("--count", "25", "--concurrency", "3", *args)
    assert done.returncode == 0, done.stderr
    status = "204" if "204" in args else "200"
    line = done.stdout.strip()
    assert line.startswith(source)
    match = re.search(rf": 25 POSTs, 3 at a time: 25 x {status}; ([0-9.]+) µs CPU per POST", line)
    assert match, line
    assert 0 < float(match[1]) < 1_000_000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--count", "0"), "argument --count: '0' is not a whole number of at least 1"),
        (("--concurrency", "-2"), "argument --concurrency: '-2' is not a whole number"),
        (("--tree", "/nonexistent"), "'/nonexistent' has no vlmhooks/forward/http_client.py"),
        (("--tree", str(REPO), "--client", "httpx"), "--tree picks the OriginClient"),
        (("--client", "curl"), "argument --client: invalid choice: 'curl'"),
        (("--serve",), "--serve needs --port"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(args: tuple[str, ...], message: str) -> None:
    done = _bench(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert message in last, done.stderr
