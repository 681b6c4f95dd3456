"""/openapi.json: a valid OpenAPI 3.1 document, in sync with the routes, and honest about
security and response shapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from sqlalchemy.engine import Engine
from starlette.routing import Route

from receiver.app import create_app
from receiver.http.routing import DocumentedRoute
from receiver.openapi.document import REF_TEMPLATE, openapi_document
from receiver.ops.routes import openapi_info
from schemas.contract import PredictionResponse
from tests.receiver.lookup_support import AUTH, prediction, receiver_settings
from tests.servers import serve
from vlmhooks.store.ingest_one import ingest_prediction
from vlmhooks.store.tables import SUBMISSION
from vlmhooks.trust.tokens import CallbackTokens

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def _document(sqlite_url: str, *, auth_required: bool) -> dict[str, Any]:
    """The document of a receiver that was built and never started (no database opened)."""
    routes = create_app(receiver_settings(sqlite_url)).routes
    info = openapi_info(auth_required=auth_required)
    return openapi_document(routes, info=info, auth_required=auth_required)


def test_document_is_valid_openapi_31(sqlite_url: str) -> None:
    for auth_required in (True, False):
        document = _document(sqlite_url, auth_required=auth_required)
        assert document["openapi"].startswith("3.1")
        validate(document)
    # schemathesis (issue 7) must be able to build every operation, $refs resolved.
    loaded = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert len(loaded) == len(_documented(document))
    assert all(result.ok() for result in loaded)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_schema_is_generated_referenced_and_resolvable(sqlite_url: str) -> None:
    document = _document(sqlite_url, auth_required=True)
    components = document["components"]["schemas"]
    # The callback body is the contract model's own schema, not a copy of it.
    contract = PredictionResponse.model_json_schema(ref_template=REF_TEMPLATE)
    definitions = contract.pop("$defs")
    assert components["PredictionResponse"] == contract
    assert all(components[name] == schema for name, schema in definitions.items())
    prefix = REF_TEMPLATE.format(model="")
    refs = set(_refs(document))
    assert all(ref.startswith(prefix) for ref in refs), refs
    named = {ref.removeprefix(prefix) for ref in refs}
    assert named <= set(components), named - set(components)
    # Nothing is generated that no operation (or other schema) names.
    reachable: set[str] = set()
    frontier = {ref.removeprefix(prefix) for ref in _refs(document["paths"])}
    while frontier:
        name = frontier.pop()
        reachable.add(name)
        frontier |= {ref.removeprefix(prefix) for ref in _refs(components[name])} - reachable
    assert reachable == set(components)


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def test_every_route_is_documented_and_vice_versa(sqlite_url: str) -> None:
    app = create_app(receiver_settings(sqlite_url))
    routes: set[tuple[str, str]] = set()
    for route in app.routes:
        assert isinstance(route, Route), f"{route!r} is not a plain route: document it"
        # Starlette adds HEAD to every GET route; it is not a separate operation.
        routes |= {(route.path, method) for method in route.methods or () if method != "HEAD"}
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert _documented(document) == routes
    assert ("/v1/callbacks/{token}", "POST") in routes


def test_routes_refusing_unknown_query_parameters_document_them(sqlite_url: str) -> None:
    # A strict route answers 400 to a parameter it does not declare, and the document lists
    # both that 400 and every parameter it does take (none of which is refused as unknown).
    app = create_app(receiver_settings(sqlite_url))
    strict = [r for r in app.routes if isinstance(r, DocumentedRoute) and r.strict_query]
    assert {r.path for r in strict} >= {
        "/v1/submissions/{submission_id}",
        "/v1/predictions",
        "/v1/usage",
        "/v1/health",
        "/v1/forwarding",
        "/v1/forwarding/{destination_id}/dead-letters",
        "/metrics",
    }
    with serve(app) as server, httpx.Client(base_url=server.url, headers=AUTH) as http:
        document = http.get("/openapi.json").json()
        for route in strict:
            for method, operation in document["paths"][route.path].items():
                url = _concrete(route.path)
                refused = http.request(method, url, params={"foo": "1"})
                assert refused.status_code == 400, (route.path, refused.text)
                assert refused.json()["parameter"] == "foo"
                assert "400" in operation["responses"], route.path
                for parameter in operation.get("parameters", ()):
                    if parameter["in"] == "query":
                        assert not _unknown(http, method, url, parameter["name"]), parameter


def _unknown(http: httpx.Client, method: str, url: str, name: str) -> bool:
    """Whether the route refuses `name` as unknown; a stream that starts is not read."""
    with http.stream(method, url, params={name: "1"}) as answer:
        if answer.headers.get("content-type", "").startswith("text/event-stream"):
            return False
        return "unknown query parameter" in answer.read().decode()


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_allow_names_every_documented_method(sqlite_url: str) -> None:
    # A 405 answers `Allow` from the same route the document is collected from.
    app = create_app(receiver_settings(sqlite_url))
    with serve(app) as server, httpx.Client(base_url=server.url, headers=AUTH) as http:
        document = http.get("/openapi.json").json()
        for path, item in document["paths"].items():
            answer = http.request("PATCH", _concrete(path))
            assert answer.status_code == 405, path
            allowed = {method.strip().lower() for method in answer.headers["allow"].split(",")}
            assert allowed - {"head"} == set(item), path
    assert {"get", "post"} <= set(document["paths"]["/dashboard/sign-in"])


def test_declared_security_is_enforced(sqlite_url: str) -> None:
    app = create_app(receiver_settings(sqlite_url))
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        document = http.get("/openapi.json").json()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                if method != "get":
                    continue
                url = _concrete(path)
                if operation["security"]:
                    assert "401" in operation["responses"], path
                    assert http.get(url).status_code == 401, path
                else:
                    assert http.get(url).status_code != 401, path


def test_anonymous_deployment_documents_no_security(sqlite_url: str) -> None:
    app = create_app(receiver_settings(sqlite_url, api_keys=(), allow_anonymous_reads=True))
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        document = http.get("/openapi.json").json()
    assert "anonymously" in document["info"]["description"]
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["security"] == []
            if operation["operationId"] != "receiveCallback":  # its 401 is the token's
                assert "401" not in operation["responses"]


@pytest.mark.parametrize("auth_required", [True, False])
def test_every_read_of_stored_data_documents_its_503(sqlite_url: str, auth_required: bool) -> None:
    # A read the database cannot answer in time is a 503 (vlmhooks/reads/bounded.py).
    paths = _document(sqlite_url, auth_required=auth_required)["paths"]
    for path, method in [
        ("/v1/predictions/{prediction_id}", "get"),
        ("/v1/predictions", "get"),
        ("/v1/usage", "get"),
        ("/v1/deliveries", "get"),
    ]:
        answer = paths[path][method]["responses"]["503"]
        assert "VLMHOOKS_DB_TIMEOUT" in answer["description"]
        assert "application/problem+json" in answer["content"]


def _validator(document: dict[str, Any], schema_name: str) -> Draft202012Validator:
    root = {"components": document["components"], "$ref": f"#/components/schemas/{schema_name}"}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _add_submission(engine: Engine, submission_id: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            SUBMISSION.insert().values(
                id=submission_id,
                request_id="req-x",
                domain="document.ocr",
                json_schema={"type": "object"},
                callback_url="https://hooks.example/v1/callbacks/secret",
                batch=True,
                image_count=1,
                prediction_id=None,
                created_at=now,
                updated_at=now,
                sent_at=now,
            )
        )


def test_responses_match_their_documented_schemas(database_url: str, engine: Engine) -> None:
    _add_submission(engine, "sub-x")
    _add_submission(engine, "sub-empty")
    ingest_prediction(
        engine,
        prediction("doc-1", domain="document.ocr", extra_api_field=[1]),
        submission_id="sub-x",
        source="callback",
    )
    ingest_prediction(engine, prediction("doc-2", "running"), submission_id=None, source="callback")
    app = create_app(receiver_settings(database_url))
    with serve(app) as server, httpx.Client(base_url=server.url, headers=AUTH) as http:
        document = http.get("/openapi.json").json()
        checks = [
            ("/v1/predictions/doc-1", "Prediction"),
            ("/v1/predictions/doc-2", "Prediction"),
            ("/v1/predictions?limit=1", "Prediction[]"),
            ("/v1/predictions?skip=1", "Prediction[]"),
            ("/v1/deliveries?include_body=true", "DeliveryPage"),
            ("/v1/deliveries?prediction_id=doc-2", "DeliveryPage"),
            ("/v1/submissions/sub-x", "Submission"),
            ("/v1/submissions/sub-empty", "Submission"),
            ("/v1/submissions/missing", "Problem"),
            ("/v1/predictions/missing", "Problem"),
            ("/v1/predictions?limit=0", "Problem"),
            ("/v1/predictions?skip=x", "Problem"),
            ("/v1/predictions?offset=1", "Problem"),
            ("/healthz", "Health"),
            ("/v1/health", "Health"),
            ("/readyz", "Ready"),
            ("/", "Index"),
        ]
        for url, schema_name in checks:
            response = http.get(url)
            operation = _operation_for(document, url)
            assert str(response.status_code) in operation["responses"], url
            # A list answers a plain array of the named schema, like the API's.
            name, is_list = schema_name.removesuffix("[]"), schema_name.endswith("[]")
            bodies = response.json() if is_list else [response.json()]
            assert isinstance(bodies, list) and bodies, url
            for body in bodies:
                errors = list(_validator(document, name).iter_errors(body))
                assert errors == [], (url, [error.message for error in errors])
    # The validator itself can fail: a wrong shape, or a member no type declares, is reported.
    assert list(_validator(document, "Prediction").iter_errors({"id": 3}))
    health = _validator(document, "Health")
    assert list(health.iter_errors({"status": "ok", "undeclared": 1}))


def test_forwarding_answers_match_their_documented_schemas(sqlite_url: str) -> None:
    # A configured destination whose relay does not run: listed, with its backlog, as typed.
    settings = receiver_settings(
        sqlite_url,
        forward_to="https://user:secret@hooks.example/in",
        forward_secret=("whsec_cmVsaWFiaWxpdHktc3RhbmRhcmQtd2ViaG9vaw==",),
        forward_in_serve=False,
    )
    with serve(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        http.headers.update(AUTH)
        document = http.get("/openapi.json").json()
        status = http.get("/v1/forwarding").json()
        (destination,) = status["destinations"]
        dead = http.get(f"/v1/forwarding/{destination['id']}/dead-letters").json()
        retried = http.post(f"/v1/forwarding/{destination['id']}/retry").json()
    assert "secret" not in destination["target"]
    for body, name in [
        (status, "ForwardingStatus"),
        (dead, "DeadLetterPage"),
        (retried, "RetryAnswer"),
    ]:
        errors = list(_validator(document, name).iter_errors(body))
        assert errors == [], (name, [error.message for error in errors])


def test_callback_acknowledgements_match_their_documented_schema(sqlite_url: str) -> None:
    settings = receiver_settings(sqlite_url)
    token = CallbackTokens(settings.require_secret_keys()).mint("sub-ack")
    body = orjson.dumps(prediction("ack-1", "running"))
    app = create_app(settings)
    with serve(app) as server, httpx.Client(base_url=server.url) as http:
        document = http.get("/openapi.json").json()
        operation = document["paths"]["/v1/callbacks/{token}"]["post"]
        posts = [
            (body, "CallbackAck"),  # stored
            (body, "CallbackAck"),  # duplicate
            (b"{", "Problem"),
            (b'{"id": ""}', "Problem"),
        ]
        verdicts = []
        for content, schema_name in posts:
            response = http.post(
                f"/v1/callbacks/{token}",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert str(response.status_code) in operation["responses"], response.text
            errors = list(_validator(document, schema_name).iter_errors(response.json()))
            assert errors == [], (response.text, [error.message for error in errors])
            verdicts.append(response.json().get("verdict"))
    assert verdicts == ["stored", "duplicate", None, None]


def _operation_for(document: dict[str, Any], url: str) -> dict[str, Any]:
    path = url.split("?")[0]
    for template, item in document["paths"].items():
        prefix = template.split("{")[0]
        if template == path or (
            "{" in template and path.startswith(prefix) and "/" not in path[len(prefix) :]
        ):
            return dict(item["get"])
    raise AssertionError(f"{url} is not documented")
