"""schemathesis against the receiver's own `/openapi.json`: every GET route of the lookup API,
and the callback route.

The receiver runs in a uvicorn thread on a SQLite file, then on PostgreSQL, holding a few
stored predictions and their deliveries. For each GET operation the document describes,
schemathesis generates requests that fit the schema (checked: no 5xx, a documented status
and content type, a body that matches the documented schema, and a 400 only for a cursor
this server never issued) and requests that do not (checked: no 5xx, and every error is an
`application/problem+json` problem). `/v1/events` is left out: an SSE stream never ends.

Callbacks are generated from the document's request body (the `PredictionResponse` contract)
and posted with a fresh valid token and a valid signature over the exact bytes sent, so what
is exercised is the body: a positive one is acknowledged in the documented `CallbackAck` shape
(or refused with a documented problem), a negative one is never a 5xx.

Then schemathesis's own runner, with every check it has (`--checks all`: a documented status,
content type and headers, the schema, unsupported methods and `Allow`, negative data refused,
auth not ignored, ...) over all its phases, derandomized, on every GET route but the streams:
a status a route can answer and the document does not list fails it.

Examples per operation and mode: `SCHEMATHESIS_EXAMPLES` (see `tests/reliability/sizing.py`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from receiver.app import create_app
from schemas.enums import Status
from tests.reliability.callbacks import (
    DATABASES,
    LOOKUP_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    add_submissions,
    encode,
    prediction_body,
    scratch_database,
    vlmrun_headers,
)
from tests.reliability.sizing import size
from tests.servers import serve
from vlmhooks.settings import Settings
from vlmhooks.store.db import make_engine
from vlmhooks.trust.signatures import VLMRUN_SIGNATURE_HEADER, sign_vlmrun
from vlmhooks.trust.tokens import CallbackTokens

# An SSE stream never ends on its own, so a generated request to it would never return.
STREAMING_PATHS = {"/v1/events", "/dashboard/events"}
CALLBACK_PATH = "/v1/callbacks/{token}"
# A generated `?wait=` is honoured up to the server's cap; a test waiting seconds per example
# learns nothing more than one waiting 50 ms.
MAX_TEST_WAIT_SECONDS = 0.05
POSITIVE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
PROBLEM = "application/problem+json"


@dataclass
class LookupServer:
    url: str
    prediction_ids: list[str]
    submission_ids: list[str]


@pytest.fixture(scope="module", params=DATABASES)
def lookup_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LookupServer]:
    folder = tmp_path_factory.mktemp("schemathesis")
    with scratch_database(request.param, request, folder) as url:
        submission_ids = [f"sub_st_{n}" for n in range(3)]
        engine = make_engine(url)
        add_submissions(engine, submission_ids)
        engine.dispose()
        settings_ = Settings(
            database_url=url,
            secret_keys=(SECRET_KEY,),
            vlmrun_webhook_secrets=(WEBHOOK_SECRET,),
            api_keys=(LOOKUP_KEY,),
            max_wait=1,
        )
        tokens = CallbackTokens([SECRET_KEY])
        prediction_ids = []
        with serve(create_app(settings_)) as server, httpx.Client(base_url=server.url) as client:
            for index, status in enumerate([Status.COMPLETED, Status.RUNNING, Status.FAILED]):
                prediction_id = f"pred_st_{index}_{uuid.uuid4().hex[:8]}"
                body = encode(prediction_body(prediction_id, status))
                token = tokens.mint(submission_ids[index])
                answer = client.post(
                    f"/v1/callbacks/{token}", content=body, headers=vlmrun_headers(body)
                )
                assert answer.status_code == 200, answer.text
                prediction_ids.append(prediction_id)
            yield LookupServer(server.url, prediction_ids, submission_ids)


def lookup_operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    operations = []
    for result in schema.include(method="GET").get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result}"
        operation = result.ok()
        if operation.path not in STREAMING_PATHS:
            operations.append(operation)
    return operations


def has_parameters(operation: Any) -> bool:
    parameter_sets = (operation.path_parameters, operation.query, operation.headers)
    return any(len(list(parameters)) for parameters in parameter_sets)


def with_short_wait(case: Any) -> None:
    wait = (case.query or {}).get("wait")
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0:
        case.query["wait"] = min(wait, MAX_TEST_WAIT_SECONDS)


def exercise(
    operation: Any,
    mode: GenerationMode,
    server: LookupServer,
    statuses: Counter[str],
) -> None:
    """Run `SCHEMATHESIS_EXAMPLES` generated requests of one operation in one mode."""
    auth = {"Authorization": f"Bearer {LOOKUP_KEY}"}
    known_ids = {
        "prediction_id": st.sampled_from(server.prediction_ids),
        "submission_id": st.sampled_from(server.submission_ids),
    }

    @settings(
        max_examples=size("SCHEMATHESIS_EXAMPLES"),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        case=operation.as_strategy(generation_mode=mode),
        known=st.fixed_dictionaries(known_ids),
        use=st.integers(0, 2).map(bool),
    )
    def run(case: Any, known: dict[str, str], use: bool) -> None:
        # Two in three positive lookups name a stored row, so 200 bodies get checked too.
        if use and case.path_parameters and mode is GenerationMode.POSITIVE:
            for name in case.path_parameters:
                if name in known:
                    case.path_parameters[name] = known[name]
        with_short_wait(case)
        response = case.call(base_url=server.url, headers=auth, timeout=15)
        statuses[f"{operation.path} {mode.value} {response.status_code}"] += 1
        if mode is GenerationMode.POSITIVE:
            case.validate_response(response, checks=POSITIVE_CHECKS, headers=auth)
            if response.status_code == 400:
                # A request the document allows may be refused only for an opaque cursor
                # this server never issued; anything else means the document is too loose.
                assert json.loads(response.content).get("parameter") == "cursor", response.text
            return
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            content_type = ",".join(response.headers.get("content-type", []))
            assert content_type.startswith(PROBLEM), (response.status_code, content_type)
            assert json.loads(response.content)["status"] == response.status_code

    run()


def test_lookup_api_conforms_to_its_openapi_document(lookup_server: LookupServer) -> None:
    operations = lookup_operations(lookup_server.url)
    paths = {operation.path for operation in operations}
    assert {"/v1/predictions", "/v1/predictions/{prediction_id}", "/v1/deliveries"} <= paths
    statuses: Counter[str] = Counter()
    for operation in operations:
        exercise(operation, GenerationMode.POSITIVE, lookup_server, statuses)
        if has_parameters(operation):  # without any, there is nothing to get wrong
            exercise(operation, GenerationMode.NEGATIVE, lookup_server, statuses)
    print("\nschemathesis:", dict(sorted(statuses.items())))
    for path in ("/v1/predictions/{prediction_id}", "/v1/submissions/{submission_id}"):
        found = [key for key in statuses if key.startswith(f"{path} positive")]
        assert any(key.endswith(" 200") for key in found), statuses
        assert any(key.endswith(" 404") for key in found), statuses


def callback_operation(url: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=10)
    (result,) = list(schema.include(method="POST", path=CALLBACK_PATH).get_all_operations())
    assert isinstance(result, Ok), f"the document has an invalid operation: {result}"
    return result.ok()


def encode_body(body: Any) -> bytes:
    """The exact bytes to sign and send; negative cases may be raw bytes or no body at all."""
    if isinstance(body, NotSet):
        return b""
    if isinstance(body, bytes):
        return body
    # stdlib json: it encodes integers of any size, which the receiver must then refuse.
    return json.dumps(body).encode()


def exercise_callback(
    operation: Any, mode: GenerationMode, server: LookupServer, statuses: Counter[str]
) -> None:
    """Post `SCHEMATHESIS_EXAMPLES` generated callbacks, each for a submission of its own."""
    tokens = CallbackTokens([SECRET_KEY])

    @settings(
        max_examples=size("SCHEMATHESIS_EXAMPLES"),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.path_parameters = {"token": tokens.mint(f"sub_st_cb_{uuid.uuid4().hex[:12]}")}
        raw = encode_body(case.body)
        case.headers = {
            name: value
            for name, value in (case.headers or {}).items()
            if name.lower() != VLMRUN_SIGNATURE_HEADER.lower()
        }
        signature = {VLMRUN_SIGNATURE_HEADER: sign_vlmrun(WEBHOOK_SECRET, raw)}
        response = case.call(base_url=server.url, headers=signature, data=raw, timeout=15)
        statuses[f"{CALLBACK_PATH} {mode.value} {response.status_code}"] += 1
        if mode is GenerationMode.POSITIVE:
            case.validate_response(response, checks=POSITIVE_CHECKS, headers=signature)
            return
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            content_type = ",".join(response.headers.get("content-type", []))
            assert content_type.startswith(PROBLEM), (response.status_code, content_type)
            assert json.loads(response.content)["status"] == response.status_code

    run()


def test_callback_route_conforms_to_its_openapi_document(lookup_server: LookupServer) -> None:
    operation = callback_operation(lookup_server.url)
    statuses: Counter[str] = Counter()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        exercise_callback(operation, mode, lookup_server, statuses)
    print("\nschemathesis:", dict(sorted(statuses.items())))
    # A body the document allows is, at least sometimes, stored and acknowledged.
    assert statuses[f"{CALLBACK_PATH} positive 200"] > 0, statuses


# A cursor this server never issued is a 400 however well formed: no schema can say which
# strings it issued. `test_lookup_api_conforms_to_its_openapi_document` checks that such a 400
# names `cursor` and nothing else.
RUNNER_CONFIG = """
[[operations]]
include-path-regex = "^/v1/(predictions|deliveries)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]
"""


def test_every_status_a_get_route_answers_is_documented(
    lookup_server: LookupServer, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(RUNNER_CONFIG)
    streams = "|".join(sorted(STREAMING_PATHS))
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"),
        f"{lookup_server.url}/openapi.json",
        *("--checks", "all", "--include-method", "GET", "--exclude-path-regex", f"^({streams})$"),
        *("-H", f"Authorization: Bearer {LOOKUP_KEY}", "--generation-deterministic"),
        *("--max-examples", str(size("SCHEMATHESIS_EXAMPLES")), "--continue-on-failure"),
        "--no-color",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "Coverage" in run.stdout and "Fuzzing" in run.stdout, run.stdout
