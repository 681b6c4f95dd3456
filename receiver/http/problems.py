"""RFC 9457 problem details: every error the receiver returns is `application/problem+json`."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from receiver.http.shapes import Problem
from vlmhooks.errors import ProblemError, StorageUnavailable

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_BASE",
    "handle_database_error",
    "handle_http_exception",
    "handle_receiver_error",
    "handle_timeout",
    "handle_unexpected",
    "problem_response",
    "receiver_error_response",
]

PROBLEM_TYPE_BASE = "https://vlmhooks.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem_response(
    status: int, title: str, detail: str, *, slug: str = "about:blank", **extra: Any
) -> Response:
    body: Problem = {
        "type": slug if slug == "about:blank" else PROBLEM_TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    # Extra members (a 422's `errors`, a 503's revisions) go after the standard four.
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(
        orjson.dumps({**body, **extra}),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def receiver_error_response(exc: ProblemError) -> Response:
    response = problem_response(exc.status, exc.title, exc.detail, slug=exc.type_slug, **exc.extra)
    if exc.retry_after is not None:
        response.headers["retry-after"] = str(exc.retry_after)
    return response


async def handle_receiver_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return receiver_error_response(exc)


async def handle_http_exception(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    from http import HTTPStatus

    title = HTTPStatus(exc.status_code).phrase
    response = problem_response(exc.status_code, title, str(exc.detail or title))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def handle_database_error(_request: Request, exc: Exception) -> Response:
    # A read that escaped vlmhooks/reads/bounded.py: the database's failure is a 503 to
    # retry, not the caller's 500. Its message may name hosts and users, so only its type.
    return receiver_error_response(
        StorageUnavailable(f"the database is unavailable ({type(exc).__name__})")
    )


async def handle_timeout(_request: Request, exc: Exception) -> Response:
    # A wait that ran out: a write not committed within VLMHOOKS_DB_TIMEOUT (the writer's
    # CommitTimedOut, a TimeoutError). Its outcome is unknown; the retry is safe.
    return receiver_error_response(
        StorageUnavailable(f"the database did not answer in time ({type(exc).__name__})")
    )


async def handle_unexpected(_request: Request, _exc: Exception) -> Response:
    # Never a traceback on the wire; the server log keeps it.
    return problem_response(500, "Internal Server Error", "unexpected error; see server logs")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ProblemError: handle_receiver_error,
    HTTPException: handle_http_exception,
    SQLAlchemyError: handle_database_error,
    TimeoutError: handle_timeout,
    Exception: handle_unexpected,
}
