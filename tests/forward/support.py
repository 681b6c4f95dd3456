"""A receiver with forwarding on loopback, and callbacks to drive it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from receiver.app import create_app
from schemas.enums import STATUS_RANK, Status
from tests.forward.sink import wait_until
from tests.receiver.callback_harness import encode, mint, prediction_body
from tests.servers import serve
from vlmhooks.forward.destinations import parse_destinations
from vlmhooks.settings import Settings

SECRET_OLD = "whsec_b2xkLWZvcndhcmRpbmctc2VjcmV0LWtleQ=="
SECRET_NEW = "whsec_bmV3LWZvcndhcmRpbmctc2VjcmV0LWtleXM="
LOOKUP_KEY = "forward-lookup-key"
AUTH = {"Authorization": f"Bearer {LOOKUP_KEY}"}
FAST = {
    "forward_poll_interval": 0.05,
    "forward_backoff": 0.05,
    "forward_backoff_max": 0.2,
    "forward_timeout": 2.0,
    "forward_lease": 5.0,
}


def forward_settings(database_url: str, forward_to: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_keys": ("forward-callback-key",),
        "api_keys": (LOOKUP_KEY,),
        "forward_to": forward_to,
        "forward_secret": (SECRET_OLD, SECRET_NEW),
        **FAST,
    }
    values.update(overrides)
    return Settings(**values)


class Receiver:
    def __init__(self, client: httpx.Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def callback(self, prediction_id: str, status: str, **fields: Any) -> None:
        token = mint("sub_" + prediction_id, keys=("forward-callback-key",))
        response = self.client.post(
            f"/v1/callbacks/{token}",
            content=encode(prediction_body(status, prediction_id, **fields)),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 200, response.text

    def forwarding(self) -> list[dict[str, Any]]:
        response = self.client.get("/v1/forwarding", headers=AUTH)
        assert response.status_code == 200, response.text
        destinations: list[dict[str, Any]] = response.json()["destinations"]
        return destinations

    def wait_registered(self, count: int = 1) -> None:
        """Forwarding registers its destinations in the background at start; changes
        stored before that are not forwarded, so tests wait for it."""
        wait_until(lambda: len(self.forwarding()) >= count)


@contextmanager
def running_receiver(settings: Settings) -> Iterator[Receiver]:
    app = create_app(settings)
    with serve(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        receiver = Receiver(client, settings)
        receiver.wait_registered(len(parse_destinations(settings.forward_to or "")))
        yield receiver


def in_order(statuses: list[str]) -> bool:
    ranks = [STATUS_RANK[Status(status)] for status in statuses]
    return ranks == sorted(ranks)
