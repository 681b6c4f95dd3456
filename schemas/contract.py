"""The wire contract of `POST /v1/image/generate`, as the public API reference gives it.

Requests are validated strictly (they are what we send, and what the sandbox checks);
prediction responses are parsed leniently (they are what we receive): `usage` may be
missing and unknown fields are kept, so a payload round-trips without loss.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.enums import MODEL_VLM_1, Domain, Status

# A data URL of an image, or an http(s) URL, or bare standard/URL-safe base64.
_DATA_URL = re.compile(r"^data:image/[A-Za-z0-9.+-]+;base64,[A-Za-z0-9+/_-]+={0,2}$")
_HTTP_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_BASE64 = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes on the wire (and from SQLite) are UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class RequestMetadata(BaseModel):
    """Optional metadata to pass to the model."""

    environment: str = "dev"
    session_id: str | None = None
    allow_training: bool = True


class GenerationConfig(BaseModel):
    """The VLM generation config to be used for /<dtype>/generate."""

    model_config = ConfigDict(protected_namespaces=())

    prompt: str | None = None
    detail: str = "auto"
    response_model: Any = None
    json_schema: dict[str, Any] | None = None
    max_retries: int = 3
    max_tokens: int = 4096
    temperature: float = 0.0
    confidence: bool = False
    grounding: bool = False


class PredictionRequest(BaseModel):
    """Request to the VLM API (i.e. structured prediction)."""

    model_config = ConfigDict(protected_namespaces=())

    images: list[str] = Field(min_length=1)
    domain: Domain
    metadata: RequestMetadata = Field(default_factory=RequestMetadata)
    config: GenerationConfig = Field(default_factory=GenerationConfig)
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = Field(default_factory=utc_now)
    callback_url: str | None = Field(default=None, min_length=1)
    model: Literal["vlm-1"] = MODEL_VLM_1
    batch: bool = False

    @field_validator("images")
    @classmethod
    def _images_are_base64_or_urls(cls, images: list[str]) -> list[str]:
        for index, image in enumerate(images):
            if not (_DATA_URL.match(image) or _HTTP_URL.match(image) or _BASE64.match(image)):
                raise ValueError(
                    f"images[{index}] must be base64, a data:image/...;base64, URL "
                    "or an http(s) URL"
                )
        return images

    @field_validator("created_at")
    @classmethod
    def _created_at_utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class Usage(BaseModel):
    """The usage metrics for the request."""

    model_config = ConfigDict(extra="allow")

    elements_processed: int | None = None
    element_type: str | None = None
    credits_used: int | None = None


class PredictionResponse(BaseModel):
    """Base prediction response for all API responses (and the callback body)."""

    model_config = ConfigDict(extra="allow")

    usage: Usage | None = None
    id: str = Field(min_length=1)
    created_at: datetime = Field(default_factory=utc_now)
    completed_at: datetime | None = None
    response: Any = None
    status: Status = Status.PENDING

    @field_validator("created_at")
    @classmethod
    def _created_at_utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @field_validator("completed_at")
    @classmethod
    def _completed_at_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Fields the contract does not name (e.g. `domain`), kept verbatim."""
        return dict(self.__pydantic_extra__ or {})

    def to_wire(self) -> dict[str, Any]:
        """The JSON the API would send: contract fields first, unknown fields kept."""
        return self.model_dump(mode="json", exclude_none=False)
