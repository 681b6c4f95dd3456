"""The baselines the full receiver is measured against (uvicorn factories).

- `bare_app`: returns 204 without reading the body: the ceiling of Starlette + uvicorn.
- `textbook_app`: what most webhook receivers look like: verify, parse, then one SQLModel
  session and one durable commit per request.
- `sketch_app`, `sketch_asgi_app`: issue 13's reference sketch (`bench/sketch.py`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import orjson
from sqlmodel import Session, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.payloads import BENCH_SECRET_KEY, BENCH_WEBHOOK_SECRET
from bench.sketch import sketch_app, sketch_asgi_app
from schemas.contract import PredictionResponse
from schemas.enums import STATUS_RANK
from schemas.tables import Prediction
from vlmhooks.errors import VlmhooksError
from vlmhooks.store.db import make_engine
from vlmhooks.trust.signatures import verify_vlmrun_signature
from vlmhooks.trust.tokens import CallbackTokens

__all__ = ["bare_app", "sketch_app", "sketch_asgi_app", "textbook_app"]


def bare_app() -> Starlette:
    async def callback(_request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(routes=[Route("/v1/callbacks/{token}", callback, methods=["POST"])])


def textbook_app() -> Starlette:
    # BEGIN IMMEDIATE: without it, merge()'s read-then-write fails under load with
    # "database is locked" instead of waiting; the baseline must be correct to be fair.
    engine = make_engine(os.environ["DATABASE_URL"], immediate_writes=True)
    tokens = CallbackTokens([BENCH_SECRET_KEY], max_age_seconds=30 * 24 * 3600)

    def store(prediction: PredictionResponse, submission_id: str) -> None:
        now = datetime.now(UTC)
        with Session(engine) as session:
            # merge() finds a row by its primary key, the row_key: the id leads to it.
            row_key = session.exec(
                select(Prediction.row_key).where(Prediction.id == prediction.id)
            ).first()
            session.merge(
                Prediction(
                    row_key=row_key,
                    id=prediction.id,
                    submission_id=submission_id,
                    domain=prediction.extra_fields.get("domain"),
                    status=prediction.status.value,
                    status_rank=STATUS_RANK[prediction.status],
                    response=prediction.response,
                    usage=prediction.usage.model_dump() if prediction.usage else None,
                    created_at=prediction.created_at,
                    completed_at=prediction.completed_at,
                    received_at=now,
                    updated_at=now,
                    body_sha256="",
                )
            )
            session.commit()

    async def callback(request: Request) -> Response:
        try:
            submission_id = tokens.verify(request.path_params["token"])
            body = await request.body()
            verify_vlmrun_signature(
                body, request.headers.get("x-vlmrun-signature"), [BENCH_WEBHOOK_SECRET]
            )
            prediction = PredictionResponse.model_validate(orjson.loads(body))
        except VlmhooksError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        await run_in_threadpool(store, prediction, submission_id)
        return JSONResponse({"id": prediction.id, "status": prediction.status.value})

    return Starlette(routes=[Route("/v1/callbacks/{token}", callback, methods=["POST"])])
