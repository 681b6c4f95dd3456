"""`vlm-receiver check`: why don't my callbacks arrive? One line per check, exit 1 on a failure.

The checks: the database answers and is migrated; `VLMHOOKS_PUBLIC_URL` answers as a vlmhooks
receiver; a self-signed callback through that URL passes every configured check there
(token key, VLM Run secret, Standard Webhooks secret) and lands on a receiver that uses this
database. The callback is a self-test (`receiver/ingest/selftest.py`): answered, never stored.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from receiver.ingest.selftest import SelfTestTokens, marker_id, self_test_body
from vlmhooks.cli_args import positive_seconds
from vlmhooks.errors import ConfigError
from vlmhooks.http_url import require_http_url
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine, sqlite_file
from vlmhooks.store.tables import WEBHOOK_MESSAGE
from vlmhooks.trust.signatures import (
    VLMRUN_SIGNATURE_HEADER,
    parse_standard_webhook_secret,
    sign_vlmrun,
    standard_webhook_headers,
)
from vlmhooks.trust.tokens import CALLBACK_PATH_PREFIX

__all__ = ["CheckResult", "add_check_command", "run_checks"]

DEFAULT_TIMEOUT_SECONDS = 10.0
PUBLIC_URL_SETTING = "--public-url / VLMHOOKS_PUBLIC_URL"
# Which setting to compare with the receiver's when a piece of the round trip is refused.
_PIECE_SETTING = {
    "token": "token key (VLMHOOKS_SECRET_KEYS)",
    "vlmrun_signature": "VLM Run secret (VLMHOOKS_VLMRUN_WEBHOOK_SECRETS)",
    "standard_webhooks": "Standard Webhooks secret (VLMHOOKS_STANDARD_WEBHOOK_SECRETS)",
    "payload": "self-test payload",
}


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def add_check_command(commands: Any) -> None:
    check = commands.add_parser(
        "check", help="check the database, the public URL and a signed callback round trip"
    )
    check.add_argument("--public-url", default=None, help="default $VLMHOOKS_PUBLIC_URL")
    check.add_argument("--timeout", type=positive_seconds, default=DEFAULT_TIMEOUT_SECONDS)
    check.set_defaults(handler=_cmd_check)


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    results = run_checks(settings, public_url=args.public_url, timeout=args.timeout)
    for result in results:
        print(result.line(), flush=True)
    return 0 if all(result.ok for result in results) else 1


def run_checks(
    settings: Settings,
    *,
    public_url: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> list[CheckResult]:
    base = require_http_url(public_url or settings.public_url, PUBLIC_URL_SETTING).rstrip("/")
    missing = _missing_sqlite_file(settings.database_url)
    # Connecting would create the file: a check must leave nothing behind.
    engine = (
        None
        if missing
        else make_engine(settings.database_url, pool_size=1, pooler=settings.db_pooler)
    )
    try:
        if engine is None:
            database = CheckResult(
                "database",
                False,
                f"the database file {missing} does not exist: "
                "run `vlm-receiver db upgrade` to create it",
            )
        else:
            database = _check_database(engine)
        with httpx.Client(timeout=timeout, transport=transport) as client:
            reach = _check_public_url(client, base)
            if not reach.ok:
                skipped = CheckResult("callback round trip", False, "skipped: URL unreachable")
                return [database, reach, skipped]
            trip = _check_round_trip(
                client, base, settings, engine if database.ok else None, clock=clock
            )
        return [database, reach, trip]
    finally:
        if engine is not None:
            engine.dispose()


def _missing_sqlite_file(database_url: str) -> str | None:
    """The absolute path a SQLite URL names when no such file exists, else None."""
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    path = sqlite_file(url.database)
    return path if path is not None and not os.path.exists(path) else None


def _check_database(engine: Engine) -> CheckResult:
    # Imported here: Alembic is heavy and only this check needs it.
    from vlmhooks.store import migrate

    try:
        current = migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        return CheckResult("database", False, f"unreachable: {first}")
    head = migrate.head_revision()
    if current is None:
        return CheckResult("database", False, "no schema: run `vlm-receiver db upgrade`")
    if current != head:
        return CheckResult(
            "database", False, f"at revision {current}, this code expects {head}: upgrade it"
        )
    return CheckResult("database", True, f"reachable, migrated (revision {current})")


def _check_public_url(client: httpx.Client, base: str) -> CheckResult:
    name = "public URL"
    try:
        response = client.get(f"{base}/healthz")
    except httpx.HTTPError as exc:
        return CheckResult(name, False, f"URL unreachable: GET {base}/healthz: {exc!r}")
    if response.status_code != 200 or not _is_health(response):
        return CheckResult(
            name,
            False,
            f"wrong receiver: GET {base}/healthz answered {response.status_code}, "
            "not a vlmhooks receiver's health check",
        )
    return CheckResult(name, True, f"{base} answers as a vlmhooks receiver")


def _is_health(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "ok"


def _check_round_trip(
    client: httpx.Client,
    base: str,
    settings: Settings,
    engine: Engine | None,
    *,
    clock: Callable[[], float],
) -> CheckResult:
    name = "callback round trip"
    try:
        keys = settings.require_secret_keys()
        nonce = secrets.token_hex(8)
        now = clock()
        body = self_test_body(nonce, datetime.fromtimestamp(now, UTC).isoformat())
        headers = {"content-type": "application/json", **_signature_headers(settings, body, now)}
    except ConfigError as exc:
        return CheckResult(name, False, exc.detail)
    token = SelfTestTokens(keys, clock=clock).mint(nonce)
    if engine is not None:
        _write_marker(engine, nonce, now)
    try:
        response = client.post(
            f"{base}{CALLBACK_PATH_PREFIX}{token}", content=body, headers=headers
        )
    except httpx.HTTPError as exc:
        return CheckResult(name, False, f"URL unreachable: POST to the callback path: {exc!r}")
    finally:
        if engine is not None:
            _delete_marker(engine, nonce)
    return _judge(response, settings, nonce, checked_database=engine is not None)


def _signature_headers(settings: Settings, body: bytes, now: float) -> dict[str, str]:
    """Signed with the newest secret of each configured scheme, as the senders would."""
    headers: dict[str, str] = {}
    if settings.vlmrun_webhook_secrets:
        secret = settings.vlmrun_webhook_secrets[-1].get_secret_value()
        headers[VLMRUN_SIGNATURE_HEADER] = sign_vlmrun(secret, body)
    signing = [
        s.get_secret_value()
        for s in settings.standard_webhook_secrets
        if parse_standard_webhook_secret(s.get_secret_value()).kind != "whpk"
    ]
    if settings.standard_webhook_secrets and not signing:
        raise ConfigError(
            "Standard Webhooks: only whpk_ public keys are configured here; a self-signed "
            "round trip needs the whsec_/whsk_ secret"
        )
    if signing:
        msg_id = f"msg_selftest_{secrets.token_hex(8)}"
        headers.update(standard_webhook_headers(signing[-1], msg_id, int(now), body))
    return headers


def _judge(
    response: httpx.Response, settings: Settings, nonce: str, *, checked_database: bool
) -> CheckResult:
    name = "callback round trip"
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        return CheckResult(
            name, False, f"wrong receiver: the callback path answered {response.status_code}"
        )
    if response.status_code != 200:
        piece = answer.get("piece", "token" if response.status_code == 401 else "payload")
        setting = _PIECE_SETTING.get(str(piece), str(piece))
        return CheckResult(
            name,
            False,
            f"{setting} does not match the receiver's: {response.status_code} "
            f"{answer.get('detail', '')}",
        )
    if answer.get("self_test") is not True or answer.get("nonce") != nonce:
        return CheckResult(name, False, "wrong receiver: the answer is not this self-test's")
    verified = set(answer.get("verified", []))
    unchecked = [
        _PIECE_SETTING[piece]
        for piece, configured in (
            ("vlmrun_signature", bool(settings.vlmrun_webhook_secrets)),
            ("standard_webhooks", bool(settings.standard_webhook_secrets)),
        )
        if configured and piece not in verified
    ]
    if unchecked:
        return CheckResult(
            name,
            False,
            f"{', '.join(unchecked)} set here, but the receiver does not check it",
        )
    if checked_database and not answer.get("same_database"):
        return CheckResult(
            name,
            False,
            "wrong receiver: it verified the callback but uses another database "
            "(compare DATABASE_URL)",
        )
    return CheckResult(
        name, True, f"verified ({', '.join(sorted(verified))}), not stored (self-test)"
    )


def _write_marker(engine: Engine, nonce: str, now: float) -> None:
    row = {"id": marker_id(nonce), "received_at": datetime.fromtimestamp(now, UTC)}
    with engine.begin() as connection:
        connection.execute(WEBHOOK_MESSAGE.insert(), row)


def _delete_marker(engine: Engine, nonce: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            sa.delete(WEBHOOK_MESSAGE).where(WEBHOOK_MESSAGE.c.id == marker_id(nonce))
        )
