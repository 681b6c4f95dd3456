"""`SandboxConfig` from the environment: names, parsing, and one clear line when a value is bad."""

from __future__ import annotations

import pytest

from sandbox.faults import FaultPlan
from sandbox.settings import SandboxConfig, load_config
from vlmhooks.errors import ConfigError


def test_defaults_match_the_real_service(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_ATTEMPTS", "DELIVERY_TIMEOUT", "FAULTS", "API_KEYS"):
        monkeypatch.delenv(f"VLMHOOKS_SANDBOX_{name}", raising=False)
    config = load_config()
    assert config.max_attempts == 2
    assert config.delivery_timeout == 30.0
    assert config.default_faults == FaultPlan()
    assert config.api_key_values == ()
    assert config.deliver_intermediate is False


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "VLMHOOKS_SANDBOX_API_KEYS": " k1 , k2,",
        "VLMHOOKS_SANDBOX_VLMRUN_WEBHOOK_SECRET": "vlm-secret",
        "VLMHOOKS_SANDBOX_STANDARD_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "VLMHOOKS_SANDBOX_MAX_ATTEMPTS": "5",
        "VLMHOOKS_SANDBOX_BACKOFF_BASE": "0.5",
        "VLMHOOKS_SANDBOX_DELIVERY_TIMEOUT": "7",
        "VLMHOOKS_SANDBOX_PROCESSING_DELAY": "0.25",
        "VLMHOOKS_SANDBOX_CONCURRENCY": "2",
        "VLMHOOKS_SANDBOX_DELIVERY_CONCURRENCY": "3",
        "VLMHOOKS_SANDBOX_DELIVER_INTERMEDIATE": "true",
        "VLMHOOKS_SANDBOX_FAULTS": "duplicate=2,delay=0.1",
        "VLMHOOKS_SANDBOX_MAX_REQUEST_BYTES": "1000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_config()
    assert config.api_key_values == ("k1", "k2")
    assert config.vlmrun_webhook_secret is not None
    assert config.vlmrun_webhook_secret.get_secret_value() == "vlm-secret"
    assert (config.max_attempts, config.backoff_base, config.delivery_timeout) == (5, 0.5, 7.0)
    assert (config.processing_delay, config.concurrency, config.delivery_concurrency) == (
        0.25,
        2,
        3,
    )
    assert config.deliver_intermediate is True
    assert config.default_faults == FaultPlan(duplicate=2, delay=0.1)
    assert config.max_request_bytes == 1000
    # Secrets stay out of reprs.
    assert "vlm-secret" not in repr(config)
    assert "k1" not in repr(config)
    assert "MfKQ9r8" not in repr(config)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "MAX_ATTEMPTS",
            "0",
            "VLMHOOKS_SANDBOX_MAX_ATTEMPTS: Input should be greater than or equal to 1",
        ),
        ("FAULTS", "explode", "VLMHOOKS_SANDBOX_FAULTS: unknown fault 'explode'"),
        ("STANDARD_WEBHOOK_SECRET", "nope", "VLMHOOKS_SANDBOX_STANDARD_WEBHOOK_SECRET: "),
        (
            "STANDARD_WEBHOOK_SECRET",
            "whpk_" + "A" * 43,
            "VLMHOOKS_SANDBOX_STANDARD_WEBHOOK_SECRET: a whpk_ public key cannot sign",
        ),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"VLMHOOKS_SANDBOX_{name}", value)
    with pytest.raises(ConfigError) as excinfo:
        load_config()
    assert str(excinfo.value).startswith(message)
    assert "\n" not in str(excinfo.value)


def test_direct_construction_accepts_plain_values() -> None:
    config = SandboxConfig(api_keys=("a",), vlmrun_webhook_secret="s", faults="fail")
    assert config.api_key_values == ("a",)
    assert config.default_faults.fail is True
