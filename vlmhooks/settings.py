"""Twelve-factor configuration: every setting comes from the environment.

Secrets are `SecretStr` so they never appear in reprs or logs; list settings are
comma-separated (oldest first where order matters, e.g. rotation).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vlmhooks.durations import parse_duration
from vlmhooks.errors import ConfigError
from vlmhooks.trust.signatures import DEFAULT_TOLERANCE_SECONDS
from vlmhooks.trust.tokens import DEFAULT_CLOCK_SKEW_SECONDS

__all__ = [
    "DEFAULT_BACKLOG",
    "DEFAULT_BODY_TIMEOUT_SECONDS",
    "DEFAULT_CALLBACK_BYTES_IN_FLIGHT",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_DB_TIMEOUT_SECONDS",
    "DEFAULT_DELIVERY_BODY_CAP_BYTES",
    "DEFAULT_FORWARDED_ALLOW_IPS",
    "DEFAULT_HEADER_TIMEOUT_SECONDS",
    "DEFAULT_KEEPALIVE_TIMEOUT_SECONDS",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_WAIT_SECONDS",
    "DEFAULT_SSE_BUFFER_BYTES",
    "DEFAULT_TOKEN_MAX_AGE_SECONDS",
    "DEFAULT_VLMRUN_BASE_URL",
    "Settings",
    "load_settings",
]

DEFAULT_DATABASE_URL = "sqlite:///vlmhooks.db"
DEFAULT_VLMRUN_BASE_URL = "https://api.vlm.run/v1"
DEFAULT_TOKEN_MAX_AGE_SECONDS = 7 * 24 * 3600
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_DELIVERY_BODY_CAP_BYTES = 64 * 1024
DEFAULT_MAX_WAIT_SECONDS = 60
DEFAULT_SESSION_MAX_AGE_SECONDS = 8 * 3600
DEFAULT_FORWARD_MAX_AGE_SECONDS = 24 * 3600
DEFAULT_FORWARD_TIMEOUT_SECONDS = 10.0
DEFAULT_FORWARD_LEASE_SECONDS = 60.0
DEFAULT_FORWARD_POLL_INTERVAL = 1.0
DEFAULT_FORWARD_BACKOFF_SECONDS = 1.0
DEFAULT_FORWARD_BACKOFF_MAX_SECONDS = 300.0
# Limits on what any client, credentials or not, can hold (README, "Limits").
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_HEADER_TIMEOUT_SECONDS = 10.0
# The API gives up on a callback after 30 s, so a body still arriving then is worthless.
DEFAULT_BODY_TIMEOUT_SECONDS = 30.0
DEFAULT_KEEPALIVE_TIMEOUT_SECONDS = 5
DEFAULT_MAX_CONNECTIONS = 1000
# Callback body bytes admitted at once (each counts its Content-Length): the memory bound.
DEFAULT_CALLBACK_BYTES_IN_FLIGHT = 32 * 1024 * 1024
DEFAULT_BACKLOG = 2048
DEFAULT_SSE_BUFFER_BYTES = 4 * 1024 * 1024
# The API gives up on a callback after 30 s: a request waiting on the database is answered
# (503 + Retry-After at worst) well before that, whatever the network does.
DEFAULT_DB_TIMEOUT_SECONDS = 10.0
# uvicorn's own default: only a proxy on this host may set X-Forwarded-For.
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"

SecretList = Annotated[tuple[SecretStr, ...], NoDecode]


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Read once at start; passed explicitly to `create_app` and the CLIs."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    # repr=False: a database URL may carry a password.
    database_url: str = Field(
        DEFAULT_DATABASE_URL, repr=False, validation_alias=_env("DATABASE_URL")
    )
    port: int = Field(8000, ge=1, le=65535, validation_alias=_env("PORT"))
    web_concurrency: int = Field(1, ge=1, validation_alias=_env("WEB_CONCURRENCY"))
    vlmrun_api_key: SecretStr | None = Field(None, validation_alias=_env("VLMRUN_API_KEY"))
    vlmrun_base_url: str = Field(DEFAULT_VLMRUN_BASE_URL, validation_alias=_env("VLMRUN_BASE_URL"))

    secret_keys: SecretList = Field((), validation_alias=_env("VLMHOOKS_SECRET_KEYS"))
    token_max_age: int = Field(
        DEFAULT_TOKEN_MAX_AGE_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_TOKEN_MAX_AGE")
    )
    clock_skew: int = Field(
        DEFAULT_CLOCK_SKEW_SECONDS, ge=0, validation_alias=_env("VLMHOOKS_CLOCK_SKEW")
    )
    vlmrun_webhook_secrets: SecretList = Field(
        (), validation_alias=_env("VLMHOOKS_VLMRUN_WEBHOOK_SECRETS")
    )
    standard_webhook_secrets: SecretList = Field(
        (), validation_alias=_env("VLMHOOKS_STANDARD_WEBHOOK_SECRETS")
    )
    signature_tolerance: int = Field(
        DEFAULT_TOLERANCE_SECONDS,
        gt=0,
        validation_alias=_env("VLMHOOKS_SIGNATURE_TOLERANCE"),
    )
    api_keys: SecretList = Field((), validation_alias=_env("VLMHOOKS_API_KEYS"))
    allow_anonymous_reads: bool = Field(
        False, validation_alias=_env("VLMHOOKS_ALLOW_ANONYMOUS_READS")
    )
    # Unset: http://127.0.0.1:$PORT (see `_public_url_follows_port`).
    public_url: str = Field("http://127.0.0.1:8000", validation_alias=_env("VLMHOOKS_PUBLIC_URL"))
    # With VLMRUN_API_KEY, a lookup of an id not stored asks the API
    # (receiver/ingest/read_through.py).
    read_through: bool = Field(True, validation_alias=_env("VLMHOOKS_READ_THROUGH"))
    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, gt=0, validation_alias=_env("VLMHOOKS_MAX_BODY_BYTES")
    )
    delivery_body_cap: int = Field(
        DEFAULT_DELIVERY_BODY_CAP_BYTES,
        ge=0,
        validation_alias=_env("VLMHOOKS_DELIVERY_BODY_CAP"),
    )
    # Deliveries (audit rows and raw bodies) older than this are pruned; None keeps them.
    delivery_retention: timedelta | None = Field(
        None, validation_alias=_env("VLMHOOKS_DELIVERY_RETENTION")
    )
    # A submission with no callback this long after it was sent counts as overdue (the
    # `vlmhooks_callbacks_overdue` gauge, deploy/prometheus/alerts.yml).
    overdue_after: timedelta = Field(
        timedelta(minutes=15), validation_alias=_env("VLMHOOKS_OVERDUE_AFTER")
    )
    fetch_back: bool = Field(False, validation_alias=_env("VLMHOOKS_FETCH_BACK"))
    max_wait: int = Field(
        DEFAULT_MAX_WAIT_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_MAX_WAIT")
    )
    log_level: str = Field("info", validation_alias=_env("VLMHOOKS_LOG_LEVEL"))
    max_header_bytes: int = Field(
        DEFAULT_MAX_HEADER_BYTES, ge=1024, validation_alias=_env("VLMHOOKS_MAX_HEADER_BYTES")
    )
    header_timeout: float = Field(
        DEFAULT_HEADER_TIMEOUT_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_HEADER_TIMEOUT")
    )
    body_timeout: float = Field(
        DEFAULT_BODY_TIMEOUT_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_BODY_TIMEOUT")
    )
    keepalive_timeout: int = Field(
        DEFAULT_KEEPALIVE_TIMEOUT_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_KEEPALIVE_TIMEOUT")
    )
    max_connections: int = Field(
        DEFAULT_MAX_CONNECTIONS, ge=1, validation_alias=_env("VLMHOOKS_MAX_CONNECTIONS")
    )
    callback_bytes_in_flight: int = Field(
        DEFAULT_CALLBACK_BYTES_IN_FLIGHT,
        ge=1024,
        validation_alias=_env("VLMHOOKS_CALLBACK_BYTES_IN_FLIGHT"),
    )
    sse_buffer_bytes: int = Field(
        DEFAULT_SSE_BUFFER_BYTES, ge=1024, validation_alias=_env("VLMHOOKS_SSE_BUFFER_BYTES")
    )
    backlog: int = Field(DEFAULT_BACKLOG, ge=1, validation_alias=_env("VLMHOOKS_BACKLOG"))
    # uvicorn's own variable name, so its documentation applies as written.
    forwarded_allow_ips: str = Field(
        DEFAULT_FORWARDED_ALLOW_IPS, validation_alias=_env("FORWARDED_ALLOW_IPS")
    )
    # Serverless deploys (receiver/server/runtime.py): None means "inside AWS Lambda or not".
    serverless: bool | None = Field(None, validation_alias=_env("VLMHOOKS_SERVERLESS"))
    serverless_allow_sqlite: bool = Field(
        False, validation_alias=_env("VLMHOOKS_SERVERLESS_ALLOW_SQLITE")
    )
    db_timeout: float = Field(
        DEFAULT_DB_TIMEOUT_SECONDS, gt=0, le=30, validation_alias=_env("VLMHOOKS_DB_TIMEOUT")
    )
    db_pooler: Literal["none", "session", "transaction"] = Field(
        "none", validation_alias=_env("VLMHOOKS_DB_POOLER")
    )
    # Set by the Lambda runtime itself, never by the user.
    aws_lambda_function_name: str | None = Field(
        None, validation_alias=_env("AWS_LAMBDA_FUNCTION_NAME")
    )
    # How long a dashboard sign-in lasts; the cookie is signed with VLMHOOKS_SECRET_KEYS.
    session_max_age: int = Field(
        DEFAULT_SESSION_MAX_AGE_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_SESSION_MAX_AGE")
    )
    # Forwarding (vlmhooks/forward). None = not set: this process leaves the database's
    # destination registry as it is; "" = set and empty: forward nowhere. repr=False: the
    # URLs may carry credentials.
    forward_to: str | None = Field(None, repr=False, validation_alias=_env("VLMHOOKS_FORWARD_TO"))
    forward_secret: SecretList = Field((), validation_alias=_env("VLMHOOKS_FORWARD_SECRET"))
    forward_max_age: int = Field(
        DEFAULT_FORWARD_MAX_AGE_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_FORWARD_MAX_AGE")
    )
    forward_in_serve: bool = Field(True, validation_alias=_env("VLMHOOKS_FORWARD_IN_SERVE"))
    forward_timeout: float = Field(
        DEFAULT_FORWARD_TIMEOUT_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_FORWARD_TIMEOUT")
    )
    forward_lease: float = Field(
        DEFAULT_FORWARD_LEASE_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_FORWARD_LEASE")
    )
    forward_backoff: float = Field(
        DEFAULT_FORWARD_BACKOFF_SECONDS, gt=0, validation_alias=_env("VLMHOOKS_FORWARD_BACKOFF")
    )
    forward_backoff_max: float = Field(
        DEFAULT_FORWARD_BACKOFF_MAX_SECONDS,
        gt=0,
        validation_alias=_env("VLMHOOKS_FORWARD_BACKOFF_MAX"),
    )
    forward_poll_interval: float = Field(
        DEFAULT_FORWARD_POLL_INTERVAL,
        gt=0,
        validation_alias=_env("VLMHOOKS_FORWARD_POLL_INTERVAL"),
    )

    @field_validator(
        "secret_keys",
        "vlmrun_webhook_secrets",
        "standard_webhook_secrets",
        "api_keys",
        "forward_secret",
        mode="before",
    )
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("delivery_retention", mode="before")
    @classmethod
    def _parse_retention(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_duration(value) if value.strip() else None
        return value

    @field_validator("overdue_after", mode="before")
    @classmethod
    def _parse_overdue_after(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _public_url_follows_port(self) -> Settings:
        # Local process managers (honcho, foreman) pick the port through PORT alone; a default
        # URL naming another port would mint callback URLs nothing listens on.
        if "public_url" not in self.model_fields_set:
            object.__setattr__(self, "public_url", f"http://127.0.0.1:{self.port}")  # frozen
        return self

    def require_secret_keys(self) -> list[str]:
        """The callback-token keys, oldest first; their absence stops start-up."""
        if not self.secret_keys:
            raise ConfigError(
                "VLMHOOKS_SECRET_KEYS is not set: give one or more comma-separated keys "
                "(oldest first) to sign callback URLs"
            )
        return [key.get_secret_value() for key in self.secret_keys]

    def require_lookup_auth(self) -> list[str]:
        """Lookup API keys; with none, reads must be opened explicitly."""
        keys = [key.get_secret_value() for key in self.api_keys]
        if not keys and not self.allow_anonymous_reads:
            raise ConfigError(
                "VLMHOOKS_API_KEYS is not set: give one or more lookup API keys, "
                "or set VLMHOOKS_ALLOW_ANONYMOUS_READS=true to serve reads without auth"
            )
        return keys

    def require_vlmrun_api_key(self) -> str:
        if self.vlmrun_api_key is None or not self.vlmrun_api_key.get_secret_value():
            raise ConfigError("VLMRUN_API_KEY is not set: the API key to call VLM Run with")
        return self.vlmrun_api_key.get_secret_value()


def load_settings() -> Settings:
    """Read the environment, mapping a validation failure to one clear line."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        errors = getattr(exc, "errors", None)
        if callable(errors):
            first = errors()[0]
            name = str(first.get("loc", ("?",))[0]).upper()
            raise ConfigError(f"{name}: {first.get('msg', 'invalid value')}") from exc
        raise ConfigError(str(exc)) from exc
