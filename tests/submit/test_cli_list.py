"""`vlm-submit list`: newest first, filtered and limited, from the source `get` would read (the
database, a receiver, the VLM Run API), named on stderr; a bad flag is argparse's one line."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from schemas.contract import PredictionRequest
from schemas.enums import Domain
from submit.cli import EXIT_OK, EXIT_USAGE, main
from submit.client import VlmRunClient
from tests.receiver.lookup_support import BASE_TIME, prediction
from tests.submit.conftest import API_KEY, LOOKUP_KEY, SandboxFactory, png_bytes
from vlmhooks.store.db import make_engine
from vlmhooks.store.ingest_one import ingest_prediction

ENV_NAMES = ["DATABASE_URL", "VLMRUN_API_KEY", "VLMRUN_BASE_URL", "VLMHOOKS_RECEIVER_URL"]
# Stored out of order: the list is ordered by created_at, not by arrival.
SEEDED = [
    # id, minutes after BASE_TIME, status, domain, submission id
    ("p2", 2, "failed", "document.invoice", None),
    ("p0", 0, "completed", "document.invoice", "sub-0"),
    ("p4", 4, "completed", "image.caption", None),
    ("p1", 1, "running", "image.caption", None),
    ("p3", 3, "completed", "document.invoice", None),
]
NEWEST_FIRST = ["p4", "p3", "p2", "p1", "p0"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLMHOOKS_API_KEY", LOOKUP_KEY)
    monkeypatch.chdir(tmp_path)
    yield


def _seed(engine: Engine) -> None:
    for prediction_id, minutes, status, domain, submission_id in SEEDED:
        body = prediction(
            prediction_id, status, created_at=BASE_TIME + timedelta(minutes=minutes), domain=domain
        )
        ingest_prediction(engine, body, submission_id=submission_id, source="callback")


def _list(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[Any, str]:
    """`vlm-submit list --json ARGV`: the parsed list, and stderr."""
    code = main(["list", "--json", *argv])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    return json.loads(out), err


def _ids(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    return [body["id"] for body in _list(capsys, *argv)[0]]


def _check_stored_listing(capsys: pytest.CaptureFixture[str], *source: str) -> None:
    """The filters, the limit and the order, against the SEEDED predictions."""
    assert _ids(capsys, *source) == NEWEST_FIRST
    assert _ids(capsys, *source, "--status", "completed") == ["p4", "p3", "p0"]
    assert _ids(capsys, *source, "--domain", "image.caption") == ["p4", "p1"]
    assert _ids(capsys, *source, "--submission-id", "sub-0") == ["p0"]
    assert _ids(capsys, *source, "--submission-id", "sub-none") == []
    assert _ids(capsys, *source, "--limit", "2") == ["p4", "p3"]
    both = ["--status", "completed", "--domain", "document.invoice", "--limit", "1"]
    assert _ids(capsys, *source, *both) == ["p3"]


def test_the_database_is_listed_newest_first_with_filters_and_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)  # migrated by the fixture
    try:
        _seed(engine)
    finally:
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    _check_stored_listing(capsys)
    bodies, err = _list(capsys)
    assert err.startswith("vlm-submit: read from the database (sqlite:///")
    # The receiver's shape, as `GET /v1/predictions` answers: the API's fields and ours.
    first = bodies[0]
    assert first["status"] == "completed" and first["domain"] == "image.caption"
    assert first["created_at"] == "2026-01-01T00:04:00Z"
    assert first["vlmhooks"]["source"] == "callback"
    assert bodies[-1]["vlmhooks"]["submission_id"] == "sub-0"


def test_the_table_lists_newest_first(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    engine = make_engine(sqlite_url)
    try:
        _seed(engine)
    finally:
        engine.dispose()
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert main(["list"]) == EXIT_OK
    out = capsys.readouterr().out
    header = out.splitlines()[1]
    for column in ("prediction", "status", "domain", "created", "completed", "submission"):
        assert column in header
    rows = [line for line in out.splitlines() if line.startswith("│ p")]
    assert [row.split()[1] for row in rows] == NEWEST_FIRST
    assert "sub-0" in rows[-1] and "failed" in rows[2]


def test_an_empty_list_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert main(["list"]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("vlm-submit: no predictions match\n")
    assert _list(capsys)[0] == []


def test_a_receiver_is_listed_through_its_lookup_api(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    engine: Engine,
    receiver_url: str,
    tmp_path: Path,
) -> None:
    _seed(engine)
    _check_stored_listing(capsys, "--receiver-url", receiver_url)
    # An explicit --receiver-url beats DATABASE_URL, which is not even opened.
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    bodies, err = _list(capsys, "--receiver-url", receiver_url)
    assert err == f"vlm-submit: read from the receiver at {receiver_url}\n"
    assert [body["id"] for body in bodies] == NEWEST_FIRST
    assert bodies[0]["vlmhooks"]["terminal"] is True
    assert not (tmp_path / "elsewhere.db").exists()
    # $VLMHOOKS_RECEIVER_URL does not beat DATABASE_URL; without it, it is read.
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("VLMHOOKS_RECEIVER_URL", receiver_url)
    bodies, err = _list(capsys, "--limit", "3")
    assert err == f"vlm-submit: read from the receiver at {receiver_url}\n"
    assert [body["id"] for body in bodies] == NEWEST_FIRST[:3]


def test_the_api_is_listed_filtered_here_and_announced(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, sandbox: SandboxFactory
) -> None:
    image = f"data:image/png;base64,{base64.b64encode(png_bytes((10, 20, 30))).decode()}"
    with sandbox() as api_url:
        monkeypatch.setenv("VLMRUN_BASE_URL", api_url)
        monkeypatch.setenv("VLMRUN_API_KEY", API_KEY)
        made = []
        with VlmRunClient() as client:
            for domain in (Domain.IMAGE_CAPTION, Domain.DOCUMENT_INVOICE, Domain.IMAGE_CAPTION):
                request = PredictionRequest(images=[image], domain=domain, batch=False)
                made.append(client.generate(request).id)
        bodies, err = _list(capsys)
        captions = _ids(capsys, "--domain", "image.caption")
        completed = _ids(capsys, "--status", "completed", "--limit", "2")
        failed = _ids(capsys, "--status", "failed")
        refused = main(["list", "--submission-id", "sub-0"])
        refusal = capsys.readouterr().err
    assert err.startswith(f"vlm-submit: read from the VLM Run API at {api_url}")
    # The API's own shape: no `vlmhooks` fields.
    assert [body["id"] for body in bodies] == made[::-1]
    assert all("vlmhooks" not in body for body in bodies)
    assert bodies[1]["domain"] == "document.invoice" and bodies[1]["status"] == "completed"
    assert captions == [made[2], made[0]]
    assert completed == made[:0:-1]
    assert failed == []
    assert refused == EXIT_USAGE
    assert refusal.splitlines()[-1] == (
        "vlm-submit: error: --submission-id needs the receiver's records: set DATABASE_URL "
        "or --receiver-url/VLMHOOKS_RECEIVER_URL"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--limit", "0"], "argument --limit: '0' is not a whole number of at least 1"),
        (["--status", "done"], "argument --status: invalid choice: 'done'"),
        (["--newest"], "unrecognized arguments: --newest"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["list", *argv]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and message in error_lines[0]
    assert error_lines[0].startswith("vlm-submit")
