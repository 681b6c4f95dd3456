"""Over real HTTP: the submitter against the sandbox API, the receiver, and the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.contract import PredictionRequest
from submit.client import AsyncVlmRunClient, VlmRunClient
from submit.errors import AuthenticationError, BadRequest, NotFound
from submit.images import expand_image_inputs
from submit.reconcile import reconcile_once
from submit.retry import RetryPolicy
from submit.submitter import SubmitItem, Submitter
from tests.submit.conftest import API_KEY, CountingTransport, SandboxFactory, wait_for
from vlmhooks.store.db import make_engine
from vlmhooks.store.tables import DELIVERY, PREDICTION, PREDICTION_READ, SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, immediate_writes=True)
    yield engine
    engine.dispose()


def items_for(paths: list[Path]) -> list[SubmitItem]:
    return [SubmitItem((source,)) for source in expand_image_inputs(paths)]


def rows(engine: Engine, table: sa.Table) -> list[sa.RowMapping]:
    # A prediction as the receiver reads it: its response is in its newest event.
    columns = PREDICTION_READ if table is PREDICTION else (table,)
    with engine.connect() as connection:
        return list(connection.execute(sa.select(*columns)).mappings())


def test_submit_then_callback_then_stored_prediction(
    sandbox: SandboxFactory,
    receiver_url: str,
    db: Engine,
    tokens: CallbackTokens,
    image_files: list[Path],
) -> None:
    with sandbox() as api_url, VlmRunClient(API_KEY, api_url) as client:
        submitter = Submitter(
            client,
            domain="image.caption",
            prompt="Describe the image",
            engine=db,
            tokens=tokens,
            public_url=receiver_url,
            concurrency=2,
        )
        results = list(submitter.submit(items_for(image_files)))
        assert [r.error for r in results] == [None, None, None]
        assert {r.status for r in results} == {"enqueued"}

        def all_completed() -> bool:
            stored = rows(db, PREDICTION)
            return len(stored) == 3 and {p["status"] for p in stored} == {"completed"}

        wait_for(all_completed, what="three completed predictions in the database")

    by_prediction = {p["id"]: p for p in rows(db, PREDICTION)}
    submissions = rows(db, SUBMISSION)
    assert len(submissions) == 3
    for submission in submissions:
        result = next(r for r in results if r.submission_id == submission["id"])
        assert submission["prediction_id"] == result.prediction_id
        assert submission["request_id"] == result.request_id
        assert submission["domain"] == "image.caption"
        assert submission["prompt"] == "Describe the image"
        assert submission["image_count"] == 1
        assert submission["batch"] is True
        assert submission["callback_url"].startswith(f"{receiver_url}/v1/callbacks/")
        assert tokens.verify(submission["callback_url"].rsplit("/", 1)[1]) == submission["id"]
        assert submission["sent_at"] is not None
        assert submission["error"] is None
        prediction = by_prediction[result.prediction_id]
        assert prediction["submission_id"] == submission["id"]
        assert prediction["source"] == "callback"
        assert prediction["response"] is not None
    wait_for(
        lambda: {s["status"] for s in rows(db, SUBMISSION)} == {"completed"},
        what="submission statuses to follow the callbacks",
    )


def test_reconcile_heals_a_callback_that_never_arrived(
    sandbox: SandboxFactory, db: Engine, tokens: CallbackTokens, image_files: list[Path]
) -> None:
    # `drop`: the sandbox completes the predictions but never calls back.
    with sandbox(faults="drop") as api_url, VlmRunClient(API_KEY, api_url) as client:
        submitter = Submitter(
            client,
            domain="document.invoice",
            engine=db,
            tokens=tokens,
            public_url="http://127.0.0.1:9/unreachable",
        )
        results = list(submitter.submit(items_for(image_files[:2])))
        ids = [r.prediction_id for r in results]
        assert None not in ids
        wait_for(
            lambda: all(client.get_prediction(i).status.is_terminal for i in ids if i),
            what="the sandbox to finish the predictions",
        )
        assert rows(db, PREDICTION) == []

        too_young = reconcile_once(db, client, older_than=timedelta(hours=1))
        assert (too_young.checked, too_young.healed) == (0, 0)

        summary = reconcile_once(db, client, older_than=timedelta(0))
        assert (summary.checked, summary.healed, summary.pending, summary.errors) == (2, 2, 0, 0)

        again = reconcile_once(db, client, older_than=timedelta(0))
        assert again.checked == 0, "healed submissions are not polled again"

    stored = rows(db, PREDICTION)
    assert {p["id"] for p in stored} == set(ids)
    assert {p["status"] for p in stored} == {"completed"}
    assert {p["source"] for p in stored} == {"poll"}
    assert {p["submission_id"] for p in stored} == {r.submission_id for r in results}
    assert {d["source"] for d in rows(db, DELIVERY)} == {"poll"}


def test_sync_result_is_stored_with_source_sync(
    sandbox: SandboxFactory, db: Engine, image_files: list[Path]
) -> None:
    with sandbox() as api_url, VlmRunClient(API_KEY, api_url) as client:
        submitter = Submitter(client, domain="image.caption", batch=False, engine=db)
        (result,) = list(submitter.submit(items_for(image_files[:1])))
    assert result.error is None
    assert result.status == "completed"
    (prediction,) = rows(db, PREDICTION)
    assert prediction["id"] == result.prediction_id
    assert prediction["source"] == "sync"
    assert prediction["status"] == "completed"
    assert prediction["submission_id"] == result.submission_id
    assert prediction["response"] is not None
    (delivery,) = rows(db, DELIVERY)
    assert (delivery["source"], delivery["verdict"]) == ("sync", "stored")
    (submission,) = rows(db, SUBMISSION)
    assert submission["batch"] is False
    assert submission["callback_url"] is None
    assert (submission["status"], submission["prediction_id"]) == ("completed", prediction["id"])


def test_generate_retries_503_then_429_honoring_retry_after(
    sandbox: SandboxFactory, image_files: list[Path]
) -> None:
    sleeps: list[float] = []
    transport = CountingTransport()
    faults = "generate_503=1, generate_429=1, retry_after=2"
    with (
        sandbox(faults=faults) as api_url,
        VlmRunClient(API_KEY, api_url, transport=transport, sleep=sleeps.append) as client,
    ):
        (result,) = list(
            Submitter(client, domain="image.caption").submit(items_for(image_files)[:1])
        )
        assert result.error is None
        assert result.status == "enqueued"
    assert sleeps == [2.0, 2.0]
    assert len(transport.requests) == 3
    assert len({request.content for request in transport.requests}) == 1


def test_400_class_errors_are_not_retried(sandbox: SandboxFactory) -> None:
    sleeps: list[float] = []
    transport = CountingTransport()
    # Valid base64, not an image: the sandbox's synchronous path answers 422 for it.
    request = PredictionRequest(images=["aGVsbG8gd29ybGQ="], domain="image.caption", batch=False)
    with (
        sandbox() as api_url,
        VlmRunClient(
            API_KEY, api_url, transport=transport, sleep=sleeps.append, retry=RetryPolicy()
        ) as client,
        pytest.raises(BadRequest) as caught,
    ):
        client.generate(request)
    assert caught.value.status_code == 422
    assert "images.0" in caught.value.message
    assert len(transport.requests) == 1
    assert sleeps == []


def test_wrong_key_is_an_authentication_error_and_stops_the_run(
    sandbox: SandboxFactory, db: Engine, image_files: list[Path]
) -> None:
    transport = CountingTransport()
    with (
        sandbox() as api_url,
        VlmRunClient("sk-wrong", api_url, transport=transport) as client,
    ):
        submitter = Submitter(client, domain="image.caption", engine=db, concurrency=1)
        with pytest.raises(AuthenticationError, match="VLMRUN_API_KEY"):
            list(submitter.submit(items_for(image_files)))
    assert len(transport.requests) == 1, "one 401 is enough to stop sending"
    (submission,) = rows(db, SUBMISSION)
    assert "401" in submission["error"]


@pytest.mark.anyio
async def test_async_client_round_trip(sandbox: SandboxFactory, image_files: list[Path]) -> None:
    (source,) = expand_image_inputs(image_files[:1])
    request = PredictionRequest(
        images=[source.to_request_value()], domain="image.caption", batch=True
    )
    with sandbox(processing_delay=0.05) as api_url:
        async with AsyncVlmRunClient(API_KEY, api_url) as client:
            assert (await client.health())["status"] == "ok"
            created = await client.generate(request)
            assert created.status.value == "enqueued"
            for _ in range(200):
                fetched = await client.get_prediction(created.id)
                if fetched.status.is_terminal:
                    break
                await anyio.sleep(0.02)
            assert fetched.status.value == "completed"
            assert fetched.response is not None
            with pytest.raises(NotFound):
                await client.get_prediction("no-such-prediction")
