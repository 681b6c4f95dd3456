"""The sandbox's configuration, read from `VLMHOOKS_SANDBOX_*` variables or given directly.

Secrets are `SecretStr` so they never show in reprs; lists are comma-separated.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sandbox.delivery import (
    DEFAULT_BACKOFF_BASE_SECONDS,
    DEFAULT_DELIVERY_TIMEOUT_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
)
from sandbox.faults import FaultPlan, parse_faults
from vlmhooks.errors import ConfigError
from vlmhooks.trust.signatures import parse_standard_webhook_secret

__all__ = ["ENV_PREFIX", "SandboxConfig", "load_config"]

ENV_PREFIX = "VLMHOOKS_SANDBOX_"
DEFAULT_CONCURRENCY = 4
DEFAULT_DELIVERY_CONCURRENCY = 64
# Base64 makes images a third bigger; 50 MiB of JSON is a few dozen large photos.
DEFAULT_MAX_REQUEST_BYTES = 50 * 1024 * 1024


class SandboxConfig(BaseSettings):
    """Everything `create_sandbox_app` needs; built once and passed explicitly."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # Bearer keys accepted by the API; none configured means no auth, like a local dev server.
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # Signs callbacks with X-VLMRun-Signature when set.
    vlmrun_webhook_secret: SecretStr | None = None
    # Adds Standard Webhooks headers when set: a whsec_ (HMAC) or whsk_ (ed25519) secret.
    standard_webhook_secret: SecretStr | None = None
    max_attempts: int = Field(DEFAULT_MAX_ATTEMPTS, ge=1, le=20)
    backoff_base: float = Field(DEFAULT_BACKOFF_BASE_SECONDS, ge=0, le=3600)
    delivery_timeout: float = Field(DEFAULT_DELIVERY_TIMEOUT_SECONDS, gt=0, le=3600)
    # Seconds a prediction spends `running` before its result is computed.
    processing_delay: float = Field(0.0, ge=0, le=3600)
    concurrency: int = Field(DEFAULT_CONCURRENCY, ge=1, le=256)
    # Callback POSTs in flight at once, across all predictions.
    delivery_concurrency: int = Field(DEFAULT_DELIVERY_CONCURRENCY, ge=1, le=1024)
    # Also send a `running` callback, which the real service does not.
    deliver_intermediate: bool = False
    # A fault spec (see sandbox.faults) applied to requests without an X-Sandbox-Faults header.
    faults: str = ""
    max_request_bytes: int = Field(DEFAULT_MAX_REQUEST_BYTES, gt=0)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("standard_webhook_secret")
    @classmethod
    def _usable_for_signing(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            parsed = parse_standard_webhook_secret(value.get_secret_value())
        except ConfigError as exc:
            raise ValueError(exc.detail) from exc
        if parsed.kind == "whpk":
            raise ValueError("a whpk_ public key cannot sign; give the whsec_ or whsk_ secret")
        return value

    @field_validator("faults")
    @classmethod
    def _faults_parse(cls, value: str) -> str:
        parse_faults(value)  # FaultSyntaxError is a ValueError: pydantic reports it
        return value

    @property
    def default_faults(self) -> FaultPlan:
        return parse_faults(self.faults)

    @property
    def api_key_values(self) -> tuple[str, ...]:
        return tuple(key.get_secret_value() for key in self.api_keys)


def load_config() -> SandboxConfig:
    """Read the environment; a bad value becomes one line naming the variable."""
    try:
        return SandboxConfig()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ENV_PREFIX + str(first["loc"][0]).upper() if first["loc"] else ENV_PREFIX + "*"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}: {message}") from exc
