"""A route and its OpenAPI operation, declared together: `DocumentedRoute(path, endpoint, get=...)`.

The route's methods, its unknown-query check and its security all come from the declaration
and the middleware the document is collected from (`receiver/openapi/document.py`), so the
two cannot drift. Body and parameter schemas are generated from the types named here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from starlette.middleware import Middleware
from starlette.routing import Route

from receiver.http.auth import AuthGuard
from receiver.http.known_query import KnownQuery
from receiver.http.problems import PROBLEM_MEDIA_TYPE
from receiver.http.shapes import PathIds, Problem

__all__ = ["Answer", "DocumentedRoute", "Operation", "query_names"]

JSON = ("application/json",)


@dataclass(frozen=True)
class Answer:
    """A response: its description, the type its body is made from, its media types."""

    description: str
    shape: Any = None  # None: no body
    media_types: tuple[str, ...] = JSON
    headers: Mapping[str, str] = field(default_factory=dict)  # name: description


@dataclass(frozen=True)
class Operation:
    """One method of one route. A response given as text is a problem (4xx, 5xx), or has no
    body (a 303 carries `Location`). `query`, `headers` and `path` are TypedDicts whose keys
    are the parameters; a route takes from `path` the keys its path names."""

    id: str
    summary: str
    responses: Mapping[int, Answer | str]
    description: str = ""
    query: Any = None
    headers: Any = None
    path: Any = PathIds
    body: Any = None
    body_media_type: str = "application/json"
    body_required: bool = False

    def answers(self, defaults: Mapping[int, Answer | str]) -> dict[int, Answer]:
        """The declared responses over the `defaults` the route's middleware adds, by status."""
        merged = {**defaults, **self.responses}
        return {status: _answer(status, merged[status]) for status in sorted(merged)}


def _answer(status: int, answer: Answer | str) -> Answer:
    if isinstance(answer, Answer):
        return answer
    if status >= 400:
        return Answer(answer, Problem, (PROBLEM_MEDIA_TYPE,))
    return Answer(answer, headers={"Location": "Where to go."} if status == 303 else {})


def query_names(shape: Any) -> frozenset[str]:
    """The query parameters a TypedDict declares (none for None)."""
    if shape is None:
        return frozenset()
    return frozenset(shape.__required_keys__ | shape.__optional_keys__)


def _is_guard(factory: object) -> TypeGuard[type[AuthGuard]]:
    return isinstance(factory, type) and issubclass(factory, AuthGuard)


class DocumentedRoute(Route):
    """A `Route` whose methods are its operations (`get=`, `post=`).

    `strict_query`: any query parameter the operations do not declare is a 400 (`KnownQuery`,
    added innermost, so the key is checked first and an anonymous caller learns nothing).
    The guard is the `AuthGuard` among the middleware: the operations' security and the
    responses it adds come from it (`receiver/http/auth.py`).
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        middleware: Sequence[Middleware] = (),
        strict_query: bool = False,
        name: str | None = None,
        **operations: Operation,
    ) -> None:
        self.operations = {method.upper(): operation for method, operation in operations.items()}
        self.strict_query = strict_query
        self.guard = next((m.cls for m in middleware if _is_guard(m.cls)), None)
        if strict_query:
            names = frozenset().union(*(query_names(op.query) for op in operations.values()))
            middleware = [*middleware, Middleware(KnownQuery, names=names)]
        super().__init__(
            path, endpoint, methods=list(self.operations), middleware=middleware, name=name
        )
