"""The sandbox's state, in memory: predictions, request-id idempotency, delivery attempts and
generate-fault counters. Only touched from the event loop, so it needs no locks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.delivery import DeliveryAttempt
from sandbox.faults import FaultPlan
from schemas.contract import PredictionResponse, Usage
from schemas.enums import Domain, Status

__all__ = ["PredictionRecord", "SandboxStore"]


@dataclass
class PredictionRecord:
    """One prediction as the sandbox holds it; `to_wire` is what GET, POST and callbacks send."""

    id: str
    request_id: str
    fingerprint: str  # of the request body, to tell a retry from a reused id
    domain: Domain
    created_at: datetime
    # Dropped once the prediction is made, so a long-running sandbox does not keep every image.
    images: Sequence[str] = field(repr=False)
    config: dict[str, Any] = field(repr=False)
    callback_url: str | None = None
    faults: FaultPlan = field(default_factory=FaultPlan)
    status: Status = Status.ENQUEUED
    completed_at: datetime | None = None
    response: Any = None
    image_count: int = field(init=False)

    def __post_init__(self) -> None:
        self.image_count = len(self.images)

    @property
    def usage(self) -> Usage:
        count = self.image_count
        return Usage(elements_processed=count, element_type="image", credits_used=count)

    def to_wire(self) -> dict[str, Any]:
        # `domain` is not in the contract's response but the real service sends it.
        prediction = PredictionResponse.model_validate(
            {
                "usage": self.usage,
                "id": self.id,
                "created_at": self.created_at,
                "completed_at": self.completed_at,
                "response": self.response,
                "status": self.status,
                "domain": self.domain.value,
            }
        )
        return prediction.to_wire()


class SandboxStore:
    """Predictions by id (in creation order), attempts in the order they finished."""

    def __init__(self) -> None:
        self._predictions: dict[str, PredictionRecord] = {}
        self._by_request_id: dict[str, str] = {}
        self._attempts: list[DeliveryAttempt] = []
        self._generate_calls: Counter[str] = Counter()

    def add(self, record: PredictionRecord) -> None:
        if record.request_id in self._by_request_id:
            raise ValueError(f"request id {record.request_id!r} already has a prediction")
        self._predictions[record.id] = record
        self._by_request_id[record.request_id] = record.id

    def get(self, prediction_id: str) -> PredictionRecord | None:
        return self._predictions.get(prediction_id)

    def by_request_id(self, request_id: str) -> PredictionRecord | None:
        prediction_id = self._by_request_id.get(request_id)
        return None if prediction_id is None else self._predictions[prediction_id]

    def newest_first(self, *, skip: int, limit: int) -> list[PredictionRecord]:
        records = list(reversed(self._predictions.values()))
        return records[skip : skip + limit]

    def record_attempt(self, attempt: DeliveryAttempt) -> None:
        self._attempts.append(attempt)

    def attempts(self, prediction_id: str | None = None) -> list[DeliveryAttempt]:
        if prediction_id is None:
            return list(self._attempts)
        return [a for a in self._attempts if a.prediction_id == prediction_id]

    def count_generate_call(self, key: str) -> int:
        """Count one more generate call under `key`; returns its 1-based number."""
        self._generate_calls[key] += 1
        return self._generate_calls[key]
