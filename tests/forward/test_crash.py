"""A receiver killed with SIGKILL mid-forwarding loses nothing: after a restart every stored
change reaches the destination, in order per prediction (a redelivery may repeat one)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from tests.forward.sink import first_deliveries, running_sink
from tests.forward.support import SECRET_NEW, in_order
from tests.receiver.callback_harness import encode, mint, prediction_body
from tests.reliability.processes import ReceiverProcess
from tests.servers import free_port
from vlmhooks.store.db import make_engine
from vlmhooks.store.outbox import EVENT

PREDICTIONS = 30
KEY = "crash-forward-callback-key"


def _post(client: httpx.Client, prediction_id: str, status: str) -> None:
    token = mint("sub_" + prediction_id, keys=(KEY,))
    response = client.post(
        f"/v1/callbacks/{token}",
        content=encode(prediction_body(status, prediction_id)),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text


def _stored_changes(database_url: str) -> dict[str, list[str]]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(EVENT.c.prediction_id, EVENT.c.type).order_by(EVENT.c.seq)
            ).all()
    finally:
        engine.dispose()
    changes: dict[str, list[str]] = defaultdict(list)
    for prediction_id, event_type in rows:
        changes[prediction_id].append(event_type.removeprefix("prediction."))
    return changes


@pytest.mark.slow
def test_sigkill_loses_no_forwarded_change(database_url: str, tmp_path: Path) -> None:
    with running_sink() as sink:
        # A slow destination, so the kill lands while rows are claimed and in flight.
        def slow(_request: Request) -> tuple[int, dict[str, str]]:
            time.sleep(0.02)
            return 200, {}

        sink.respond = slow
        env = {
            "VLMHOOKS_SECRET_KEYS": KEY,
            "VLMHOOKS_API_KEYS": "crash-lookup",
            "VLMHOOKS_FORWARD_TO": f"{sink.url}/hook",
            "VLMHOOKS_FORWARD_SECRET": SECRET_NEW,
            "VLMHOOKS_FORWARD_POLL_INTERVAL": "0.05",
            "VLMHOOKS_FORWARD_BACKOFF": "0.05",
            "VLMHOOKS_FORWARD_TIMEOUT": "1",
            "VLMHOOKS_FORWARD_LEASE": "2",
        }
        receiver = ReceiverProcess(
            database_url=database_url, port=free_port(), env=env, log_path=tmp_path / "r.log"
        )
        with receiver, httpx.Client(base_url=receiver.url, timeout=10) as client:
            for n in range(PREDICTIONS):
                _post(client, f"pred_{n}", "running")
            sink.wait_for(lambda s: len(s.accepted()) >= 3)
            receiver.kill()
            receiver.start()
            for n in range(PREDICTIONS):
                _post(client, f"pred_{n}", "completed")
            stored = _stored_changes(database_url)
            total = sum(len(statuses) for statuses in stored.values())
            sink.wait_for(lambda s: len(first_deliveries(s.accepted())) == total)
    assert total == PREDICTIONS * 2
    delivered: dict[str, list[str]] = defaultdict(list)
    for item in first_deliveries(sink.accepted()):
        delivered[item.document["data"]["id"]].append(item.document["data"]["status"])
    assert delivered == stored
    everything: dict[str, list[str]] = defaultdict(list)
    for item in sink.accepted():
        everything[item.document["data"]["id"]].append(item.document["data"]["status"])
    assert all(in_order(statuses) for statuses in everything.values())
