"""SQLite on a full disk: callbacks get 503 with Retry-After, nothing acknowledged is lost,
the file stays sound, and ingest is back as soon as there is space again.

The receiver's database sits on a tmpfs of 2 MiB that the test mounts (as root) and fills.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import sqlalchemy as sa

from receiver.app import create_app
from schemas.enums import Status
from tests.reliability.callbacks import (
    LOOKUP_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    encode,
    prediction_body,
    prediction_rows,
    vlmrun_headers,
)
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store import migrate
from vlmhooks.store.db import make_engine
from vlmhooks.trust.tokens import CallbackTokens

# Until the disk is full: each callback adds its row, its delivery (the raw body) and its
# event, so a few hundred of these fill what is left of 2 MiB many times over.
MAX_CALLBACKS = 400
PADDING = "x" * 4000


@contextlib.contextmanager
def small_tmpfs(parent: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted on a fresh directory under `parent`, unmounted afterwards."""
    mount_point = parent / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mounting a tmpfs failed (the test runs as root): {done.stderr}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)


def fill(path: Path) -> None:
    """Write `path` until the file system has no byte left."""
    with path.open("wb", buffering=0) as filler:
        for size in (65536, 4096, 512, 1):
            chunk = b"\0" * size
            while True:
                try:
                    filler.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break


def callback(client: httpx.Client, tokens: CallbackTokens, prediction_id: str) -> httpx.Response:
    body = prediction_body(prediction_id, Status.COMPLETED)
    body["response"] = {"caption": PADDING, "confidence": 0.5}
    raw = encode(body)
    path = f"/v1/callbacks/{tokens.mint(f'sub_{prediction_id}')}"
    return client.post(path, content=raw, headers=vlmrun_headers(raw))


def test_a_full_disk_gets_503_loses_nothing_acknowledged_and_ingest_resumes_once_freed(
    tmp_path: Path,
) -> None:
    tokens = CallbackTokens([SECRET_KEY])
    with small_tmpfs(tmp_path) as disk:
        url = f"sqlite:///{disk / 'vlmhooks.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        settings = Settings(
            database_url=url,
            secret_keys=(SECRET_KEY,),
            vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
            api_keys=(LOOKUP_KEY,),
            forward_in_serve=False,
        )
        filler = disk / "filler"
        acknowledged: list[str] = []
        refused: list[httpx.Response] = []
        with (
            serve(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=30.0) as client,
        ):
            assert callback(client, tokens, "pred_disk_before").status_code == 200
            acknowledged.append("pred_disk_before")
            fill(filler)
            for index in range(MAX_CALLBACKS):
                prediction_id = f"pred_disk_full_{index}"
                answer = callback(client, tokens, prediction_id)
                assert answer.status_code in (200, 503), answer.text
                if answer.status_code == 200:
                    acknowledged.append(prediction_id)
                else:
                    refused.append(answer)
                    if len(refused) == 3:
                        break
            assert refused, f"{MAX_CALLBACKS} callbacks fitted on a full disk"
            for answer in refused:
                assert answer.headers["content-type"] == "application/problem+json"
                assert answer.headers["retry-after"]
                assert answer.json()["type"].endswith("/storage-unavailable")
            os.unlink(filler)
            resumed = callback(client, tokens, "pred_disk_after")
            assert resumed.status_code == 200, resumed.text
            acknowledged.append("pred_disk_after")
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                integrity = connection.execute(sa.text("PRAGMA integrity_check")).scalars().all()
            stored = prediction_rows(engine)
        finally:
            engine.dispose()
    assert integrity == ["ok"]
    assert set(acknowledged) <= set(stored)
