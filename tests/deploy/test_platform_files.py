"""app.json (Heroku Button, review apps) and render.yaml (a Render Blueprint) name every
setting the code requires and run the Procfile's commands, nothing of their own."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs in the dev extra

from tests.deploy.procfile import (
    BUILD_COMMAND,
    REPO_ROOT,
    RequiredSetting,
    procfile,
    required_settings,
    setting_variables,
)

# Secrets VLM Run issues: the operator pastes them in, no platform can generate them.
ISSUED_BY_VLMRUN = {"VLMRUN_API_KEY"}


@pytest.fixture(scope="module")
def required() -> list[RequiredSetting]:
    settings = required_settings()
    variables = {setting.variable for setting in settings}
    assert {"VLMHOOKS_SECRET_KEYS", "VLMHOOKS_API_KEYS"} <= variables
    assert variables >= ISSUED_BY_VLMRUN, "ISSUED_BY_VLMRUN names a setting no longer required"
    return settings


def app_json() -> dict[str, Any]:
    with (REPO_ROOT / "app.json").open() as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def render_yaml() -> dict[str, Any]:
    with (REPO_ROOT / "render.yaml").open() as handle:
        loaded: dict[str, Any] = yaml.safe_load(handle)
    return loaded


def test_app_json_provisions_postgresql_and_runs_the_procfile_release() -> None:
    app = app_json()
    assert [addon["plan"].split(":")[0] for addon in app["addons"]] == ["heroku-postgresql"]
    assert app["buildpacks"] == [{"url": "heroku/python"}]
    # The Procfile's release phase migrates on every deploy; postdeploy once at creation.
    assert app["scripts"]["postdeploy"] == procfile()["release"]
    assert set(app["formation"]) <= set(procfile()) - {"release"}
    assert app["formation"]["web"]["quantity"] >= 1


def test_app_json_asks_for_every_required_setting_and_generates_our_secrets(
    required: list[RequiredSetting],
) -> None:
    env = app_json()["env"]
    assert set(env) <= set(setting_variables()), "a variable vlmhooks does not read"
    for setting in required:
        entry = env.get(setting.variable)
        assert entry is not None, f"app.json does not ask for {setting.variable}"
        assert entry.get("required", True) is True, setting.variable
        if setting.variable in ISSUED_BY_VLMRUN:
            assert "generator" not in entry and "value" not in entry, setting.variable
        elif setting.secret:
            assert entry.get("generator") == "secret", setting.variable


def test_render_blueprint_builds_from_requirements_and_runs_procfile_commands() -> None:
    blueprint = render_yaml()
    commands = procfile()
    databases = {database["name"] for database in blueprint["databases"]}
    services = blueprint["services"]
    assert {service["type"] for service in services} >= {"web"}
    for service in services:
        assert service["runtime"] == "python", service["name"]
        assert service["buildCommand"] == BUILD_COMMAND, service["name"]
        assert service["startCommand"] in commands.values(), service["name"]
        env = {entry["key"]: entry for entry in service["envVars"] if "key" in entry}
        database_url = env["DATABASE_URL"]["fromDatabase"]
        assert database_url["name"] in databases
        assert database_url["property"] == "connectionString"
    (web,) = (service for service in services if service["type"] == "web")
    assert web["startCommand"] == commands["web"]
    assert web["preDeployCommand"] == commands["release"]


def test_render_blueprint_shares_generated_secrets_and_asks_for_the_rest(
    required: list[RequiredSetting],
) -> None:
    blueprint = render_yaml()
    groups = {group["name"]: group["envVars"] for group in blueprint.get("envVarGroups", [])}
    known = set(setting_variables())
    declared: dict[str, list[dict[str, Any]]] = {}
    for service in blueprint["services"]:
        entries = list(service["envVars"])
        for entry in service["envVars"]:
            entries.extend(groups.get(entry.get("fromGroup", ""), []))
        for entry in entries:
            if "key" in entry:
                assert entry["key"] in known, f"a variable vlmhooks does not read: {entry['key']}"
                declared.setdefault(entry["key"], []).append(entry)
        for setting in required:
            if setting.secret and setting.variable not in ISSUED_BY_VLMRUN:
                # From a group, so the worker that mints and the web that verifies agree.
                (shared,) = (
                    entry
                    for name, group in groups.items()
                    if {"fromGroup": name} in service["envVars"]
                    for entry in group
                    if entry["key"] == setting.variable
                )
                assert shared.get("generateValue") is True, setting.variable
    for variable in ISSUED_BY_VLMRUN:
        assert declared.get(variable), f"render.yaml does not ask for {variable}"
        assert all(entry.get("sync") is False for entry in declared[variable]), variable
    for setting in required:
        assert setting.variable in declared, f"render.yaml does not set {setting.variable}"
