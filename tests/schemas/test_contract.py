from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.contract import PredictionRequest, PredictionResponse
from schemas.enums import STATUS_RANK, Domain, Status

# The API reference's own example bodies, verbatim.
REFERENCE_REQUEST: dict[str, Any] = {
    "metadata": {"environment": "dev", "session_id": "<string>", "allow_training": True},
    "config": {
        "prompt": "<string>",
        "detail": "auto",
        "response_model": "<any>",
        "json_schema": {},
        "max_retries": 3,
        "max_tokens": 4096,
        "temperature": 0,
        "confidence": True,
        "grounding": True,
    },
    "id": "<string>",
    "created_at": "2023-11-07T05:31:56Z",
    "callback_url": "<string>",
    "images": ["<string>"],
    "model": "vlm-1",
    "domain": "aerospace.remote-sensing",
    "batch": False,
}
REFERENCE_RESPONSE: dict[str, Any] = {
    "usage": {"elements_processed": 123, "element_type": "image", "credits_used": 123},
    "id": "<string>",
    "created_at": "2023-11-07T05:31:56Z",
    "completed_at": "2023-11-07T05:31:56Z",
    "response": "<any>",
    "status": "pending",
}
PNG_DATA_URL = "data:image/png;base64,iVBORw0KGgo="


def _request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"images": [PNG_DATA_URL], "domain": "document.invoice"}
    body.update(overrides)
    return body


def _error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(error["loc"]) for error in exc.value.errors()]


def test_reference_request_parses_except_placeholder_image() -> None:
    # "<string>" is the reference's placeholder, not base64: the image rule rejects it ...
    with pytest.raises(ValidationError) as exc:
        PredictionRequest.model_validate(REFERENCE_REQUEST)
    assert _error_locations(exc) == [("images",)]
    # ... and with a real image the reference body parses field for field.
    request = PredictionRequest.model_validate({**REFERENCE_REQUEST, "images": [PNG_DATA_URL]})
    assert request.domain is Domain.AEROSPACE_REMOTE_SENSING
    assert request.metadata.session_id == "<string>"
    assert request.config.max_tokens == 4096 and request.config.grounding is True
    assert request.created_at == datetime(2023, 11, 7, 5, 31, 56, tzinfo=UTC)
    assert request.callback_url == "<string>" and request.model == "vlm-1"


def test_reference_response_parses() -> None:
    response = PredictionResponse.model_validate(REFERENCE_RESPONSE)
    assert response.status is Status.PENDING
    assert response.usage is not None and response.usage.credits_used == 123
    assert response.to_wire() == REFERENCE_RESPONSE


def test_request_defaults() -> None:
    request = PredictionRequest.model_validate(_request())
    assert request.model == "vlm-1"
    assert request.batch is False
    assert request.callback_url is None
    assert request.metadata.environment == "dev" and request.metadata.allow_training is True
    assert request.config.detail == "auto" and request.config.max_retries == 3
    assert request.config.temperature == 0.0 and request.config.json_schema is None
    assert request.id and request.created_at.tzinfo is not None


@pytest.mark.parametrize("domain", [d.value for d in Domain])
def test_every_domain_is_accepted(domain: str) -> None:
    assert PredictionRequest.model_validate(_request(domain=domain)).domain == domain


def test_there_are_exactly_fifteen_domains() -> None:
    assert len(Domain) == 15


@pytest.mark.parametrize("status", [s.value for s in Status])
def test_every_status_is_accepted(status: str) -> None:
    response = PredictionResponse.model_validate({**REFERENCE_RESPONSE, "status": status})
    assert response.status == status


@pytest.mark.parametrize(
    ("overrides", "location"),
    [
        ({"domain": "document.passport"}, ("domain",)),
        ({"images": []}, ("images",)),
        ({"images": ["not base64!"]}, ("images",)),
        ({"images": "iVBORw0KGgo="}, ("images",)),
        ({"model": "vlm-2"}, ("model",)),
        ({"callback_url": ""}, ("callback_url",)),
        ({"callback_url": 5}, ("callback_url",)),
        ({"batch": "perhaps"}, ("batch",)),
        ({"created_at": "yesterday"}, ("created_at",)),
        ({"config": {"max_tokens": "many"}}, ("config", "max_tokens")),
        ({"config": {"json_schema": []}}, ("config", "json_schema")),
        ({"metadata": {"allow_training": "sometimes"}}, ("metadata", "allow_training")),
    ],
)
def test_request_rules_reject_with_field_errors(
    overrides: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as exc:
        PredictionRequest.model_validate(_request(**overrides))
    assert location in [loc[: len(location)] for loc in _error_locations(exc)]


@pytest.mark.parametrize("missing", ["images", "domain"])
def test_request_required_fields(missing: str) -> None:
    body = _request()
    del body[missing]
    with pytest.raises(ValidationError) as exc:
        PredictionRequest.model_validate(body)
    assert (missing,) in _error_locations(exc)


@pytest.mark.parametrize(
    "image",
    [
        PNG_DATA_URL,
        "data:image/jpeg;base64,/9j/4AAQ",
        "https://example.com/a.png",
        "http://127.0.0.1:9/x.jpg",
        "iVBORw0KGgo=",
    ],
)
def test_image_forms_accepted(image: str) -> None:
    assert PredictionRequest.model_validate(_request(images=[image])).images == [image]


def test_null_callback_url_is_allowed() -> None:
    assert PredictionRequest.model_validate(_request(callback_url=None)).callback_url is None


def test_response_is_lenient_and_round_trips_unknown_fields() -> None:
    body = {
        "id": "pred_1",
        "created_at": "2023-11-07T05:31:56Z",
        "status": "completed",
        "response": {"total": 12.5},
        "domain": "document.invoice",
        "extra_field": {"nested": [1, 2]},
    }
    response = PredictionResponse.model_validate(body)
    assert response.usage is None
    assert response.extra_fields == {
        "domain": "document.invoice",
        "extra_field": {"nested": [1, 2]},
    }
    wire = response.to_wire()
    assert {key: wire[key] for key in body} == body


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"created_at": "2023-11-07T05:31:56Z"}, ("id",)),
        ({"id": "", "created_at": "2023-11-07T05:31:56Z"}, ("id",)),
        ({"id": "p", "status": "done"}, ("status",)),
        ({"id": "p", "completed_at": "soon"}, ("completed_at",)),
        ({"id": "p", "usage": {"credits_used": "lots"}}, ("usage", "credits_used")),
    ],
)
def test_response_rules_reject_with_field_errors(
    body: dict[str, Any], location: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as exc:
        PredictionResponse.model_validate(body)
    assert location in _error_locations(exc)


def test_status_order_moves_forward_only() -> None:
    assert Status.ENQUEUED.rank < Status.PENDING.rank < Status.RUNNING.rank
    assert Status.RUNNING.rank == Status.PAUSED.rank < Status.COMPLETED.rank
    assert Status.COMPLETED.rank == Status.FAILED.rank
    assert set(STATUS_RANK) == set(Status)
    assert [s for s in Status if s.is_terminal] == [Status.COMPLETED, Status.FAILED]


def test_naive_timestamps_are_utc() -> None:
    response = PredictionResponse.model_validate({"id": "p", "created_at": "2024-01-01T00:00:00"})
    assert response.created_at == datetime(2024, 1, 1, tzinfo=UTC)
