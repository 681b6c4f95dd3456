"""Cold start, as a module-set check (not a timing): what importing the handler and serving
one callback load, each in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.receiver.callback_harness import LOOKUP_KEY, NEW_KEY, OLD_KEY, encode, mint
from tests.receiver.callback_harness import prediction_body as callback_body
from tests.receiver.lambda_events import http_api_v2
from tests.receiver.serverless_support import WEBHOOK_SECRET
from vlmhooks.trust.signatures import sign_vlmrun

REPO = Path(__file__).resolve().parents[3]
# Never needed by a callback: migrations (and Alembic's templating), an HTTP client (whose
# import also loads its CLI: click, rich, pygments), the server, optional validators, images.
NEVER_FOR_A_CALLBACK = {
    "alembic",
    "mako",
    "pygments",
    "rich",
    "click",
    "httpx",
    "uvicorn",
    "jsonschema",
    "PIL",
    "vlmhooks.store.migrate",
}
# Importing the handler builds nothing: the app and its database layer wait for the first
# invocation (receiver/server/serverless.py).
NOT_AT_IMPORT = NEVER_FOR_A_CALLBACK | {
    "receiver.app",
    "starlette.applications",
    "sqlalchemy",
    "sqlmodel",
    "pydantic",
    "psycopg",
}

CHILD = """
import json, sys
events = json.loads(sys.stdin.read())
import receiver.server.serverless
loaded = {"import": sorted(sys.modules)}
if events:
    answer = receiver.server.serverless.handler(events[0], None)
    loaded["status"] = answer["statusCode"]
    loaded["callback"] = sorted(sys.modules)
print(json.dumps(loaded))
"""


def _run_child(events: list[dict[str, object]], env: dict[str, str]) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VLMHOOKS_")}
    environment.update(env)
    environment["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", CHILD],
        input=json.dumps(events),
        capture_output=True,
        text=True,
        check=True,
        env=environment,
        cwd=REPO,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _loaded(modules: object, names: set[str]) -> set[str]:
    assert isinstance(modules, list)
    return {name for name in names if name in modules}


def test_importing_the_handler_loads_none_of_the_app() -> None:
    result = _run_child([], {})
    assert _loaded(result["import"], NOT_AT_IMPORT) == set()
    assert "mangum" in result["import"]  # type: ignore[operator]


def test_a_callback_loads_nothing_it_does_not_need(sqlite_url: str) -> None:
    body = encode(callback_body("completed"))
    token = mint("sub_1")
    event = http_api_v2(
        "POST",
        f"/v1/callbacks/{token}",
        headers={
            "content-type": "application/json",
            "x-vlmrun-signature": sign_vlmrun(WEBHOOK_SECRET, body),
        },
        body=body,
    )
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "vlmhooks-receiver",
        "DATABASE_URL": sqlite_url,
        "VLMHOOKS_SERVERLESS_ALLOW_SQLITE": "true",
        "VLMHOOKS_SECRET_KEYS": f"{OLD_KEY},{NEW_KEY}",
        "VLMHOOKS_API_KEYS": LOOKUP_KEY,
        "VLMHOOKS_VLMRUN_WEBHOOK_SECRETS": WEBHOOK_SECRET,
    }
    result = _run_child([event], env)
    assert result["status"] == 200
    # On SQLite not even the PostgreSQL driver: it comes with a PostgreSQL engine only.
    assert _loaded(result["callback"], NEVER_FOR_A_CALLBACK | {"psycopg"}) == set()
