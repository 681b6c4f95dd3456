"""`GET /dashboard`: recent predictions as server-rendered HTML, kept live by an EventSource.

No build step: the template, stylesheet and script are plain files in `receiver/static/`.
"""

from __future__ import annotations

import functools
import html
from importlib.resources import files
from string import Template
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from receiver.state import receiver_state
from vlmhooks.reads import PredictionFilters, list_predictions

DASHBOARD_ROWS = 50


@functools.cache
def _asset(name: str) -> str:
    return files("receiver").joinpath("static", name).read_text(encoding="utf-8")


def _cell(value: Any, css_class: str = "") -> str:
    text = "" if value is None else html.escape(str(value))
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<td{attribute}>{text}</td>"


def render_row(prediction: dict[str, Any]) -> str:
    """One table row; every value is escaped (ids and domains come from the network)."""
    ours = prediction.get("vlmhooks") or {}
    valid = ours.get("schema_valid")
    status = html.escape(str(prediction["status"]))
    return (
        f'<tr data-id="{html.escape(str(prediction["id"]))}">'
        + _cell(prediction["id"], "id")
        + f'<td><span class="badge status-{status}">{status}</span></td>'
        + _cell(prediction.get("domain"))
        + _cell(prediction.get("created_at"))
        + _cell(prediction.get("completed_at"))
        + _cell(ours.get("submission_id"), "id")
        + _cell(None if valid is None else ("valid" if valid else "invalid"))
        + "</tr>"
    )


def render_dashboard(predictions: list[dict[str, Any]]) -> str:
    return Template(_asset("dashboard.html")).substitute(
        css=_asset("dashboard.css"),
        js=_asset("dashboard.js"),
        count=len(predictions),
        rows="\n".join(render_row(prediction) for prediction in predictions),
    )


async def dashboard(request: Request) -> HTMLResponse:
    state = receiver_state(request)
    predictions, _ = await run_in_threadpool(
        list_predictions, state.engine, PredictionFilters(), None, DASHBOARD_ROWS
    )
    # no-store: the page carries prediction data and may have been opened with a key.
    return HTMLResponse(render_dashboard(predictions), headers={"Cache-Control": "no-store"})
