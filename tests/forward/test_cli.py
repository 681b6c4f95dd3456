"""`vlm-receiver forward`, and configuration errors as one line at start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import pytest

from receiver.ops import cli
from receiver.ops.relay_process import run_forward
from tests import children
from tests.forward.sink import first_deliveries, running_sink
from tests.forward.support import forward_settings, running_receiver
from tests.reliability.processes import receiver_command


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("VLMHOOKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("VLMHOOKS_SECRET_KEYS", "cli-key")
    monkeypatch.setenv("VLMHOOKS_API_KEYS", "cli-lookup")
    return monkeypatch


@pytest.mark.parametrize("command", ["serve", "forward"])
@pytest.mark.parametrize(
    ("forward_to", "complaint"),
    [
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0: a redis destination"),
        ("http://127.0.0.1/x", "VLMHOOKS_FORWARD_SECRET is not set"),
    ],
)
def test_bad_forwarding_configuration_is_one_line(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
    forward_to: str,
    complaint: str,
) -> None:
    environment.setenv("VLMHOOKS_FORWARD_TO", forward_to)
    assert cli.main([command]) == 2
    err = capsys.readouterr().err
    assert complaint in err and len(err.strip().splitlines()) == 1
    assert "hunter2" not in err


def test_forward_runs_the_relay_apart_from_serve(sqlite_url: str) -> None:
    """`serve` with VLMHOOKS_FORWARD_IN_SERVE=false stores and registers; `forward` delivers."""
    with running_sink() as sink:
        web = forward_settings(sqlite_url, f"{sink.url}/hook", forward_in_serve=False)
        relay = forward_settings(sqlite_url, f"{sink.url}/hook")
        with running_receiver(web) as receiver:
            for status in ("running", "completed"):
                receiver.callback("pred_cli", status)
            assert receiver.forwarding()[0]["backlog"] == 2
            assert sink.all() == []  # nothing relays inside serve

            async def relay_until_delivered() -> None:
                stop = asyncio.Event()
                task = asyncio.create_task(run_forward(relay, stop=stop))
                await asyncio.to_thread(
                    sink.wait_for, lambda s: len(first_deliveries(s.accepted())) == 2
                )
                stop.set()
                await task

            asyncio.run(relay_until_delivered())
    statuses = [item.document["data"]["status"] for item in sink.accepted()]
    assert statuses == ["running", "completed"]


def test_forward_without_destinations_idles_until_terminated(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Under honcho one process ending stops them all: `forward:` must stay up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMHOOKS_")}
    env.update(DATABASE_URL=sqlite_url, VLMHOOKS_LOG_LEVEL="warning")
    process = subprocess.Popen(
        [*receiver_command(), "forward"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "no destinations configured; idle" in line
        assert process.poll() is None
    finally:
        children.stop(process, signal.SIGTERM, timeout=20, group=True)
    assert process.returncode == 0
