"""What the platforms read from the repository: the Procfile's commands and the settings a
deploy must be given, the latter derived from `vlmhooks.settings` rather than copied."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import AliasChoices

from vlmhooks.errors import ConfigError
from vlmhooks.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# The package-manager files Heroku's Python buildpack detects; exactly one may be present.
PACKAGE_MANAGER_FILES = ("requirements.txt", "Pipfile", "Pipfile.lock", "poetry.lock", "uv.lock")
BUILD_COMMAND = "pip install -r requirements.txt"
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]+")


def procfile(root: Path = REPO_ROOT) -> dict[str, str]:
    """Process type -> command, as the platform reads `Procfile`."""
    processes: dict[str, str] = {}
    for line in (root / "Procfile").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes[name.strip()] = command.strip()
    return processes


@dataclass(frozen=True)
class RequiredSetting:
    variable: str
    secret: bool


def _variable_names() -> dict[str, str]:
    """Environment variable -> Settings field name."""
    names: dict[str, str] = {}
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        assert isinstance(alias, AliasChoices), field_name
        names[str(alias.choices[0])] = field_name
    return names


def required_settings() -> list[RequiredSetting]:
    """Each variable a `Settings.require_*` check refuses to start without, given no
    environment at all; `secret` when the field holds `SecretStr` values."""
    empty = Settings.model_construct()  # every default, nothing read from the environment
    fields = _variable_names()
    required: list[RequiredSetting] = []
    for method in sorted(name for name in dir(Settings) if name.startswith("require_")):
        try:
            getattr(empty, method)()
        except ConfigError as exc:
            found = _VARIABLE.match(str(exc))
            if found is None or found.group() not in fields:
                raise AssertionError(f"{method} names no setting: {exc}") from exc
            variable = found.group()
            annotation = str(Settings.model_fields[fields[variable]].annotation)
            required.append(RequiredSetting(variable, secret="SecretStr" in annotation))
    return required


def setting_variables() -> list[str]:
    """Every environment variable `Settings` reads."""
    return sorted(_variable_names())
