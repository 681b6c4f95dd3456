"""The console's part of `/openapi.json`: the dashboard routes and `GET /v1/usage`.

Kept apart from `receiver/openapi/document.py` and merged into its document by one call, so either
file can change without the other; the ledger's schema comes from its pydantic model.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from receiver.api.shapes import ReplayReport
from receiver.dashboard.pages import ASSETS
from receiver.dashboard.replay import MAX_REQUEST_BYTES, DashboardReplayRequest
from receiver.dashboard.sessions import SESSION_COOKIE
from receiver.openapi.parts import (
    TEXT_PARAM,
    TIME,
    content,
    json_content,
    path_param,
    problem,
    query_param,
)
from receiver.openapi.schemas import schema_ref
from vlmhooks.reads.pagination import MAX_ROW_ID
from vlmhooks.reads.usage import DEFAULT_USAGE_GROUPS, MAX_USAGE_GROUPS, UsageLedger

__all__ = ["add_console_paths"]

REF = "#/components/schemas/{model}"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": REF.format(model=name)}


def _html(description: str) -> dict[str, Any]:
    return content(description, "text/html", {"type": "string"})


def _redirect(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"Location": {"schema": {"type": "string"}, "description": "Where to go."}},
    }


_OBJECT: Schema = {"type": "object"}
_PREDICTION_ID = path_param("prediction_id", "The API's prediction id.")


def _page(description: str, auth_required: bool) -> dict[str, Any]:
    responses = {"200": _html(description)}
    if auth_required:
        responses["303"] = _redirect(
            "A browser (Accept: text/html) without a session goes to the sign-in form."
        )
    return responses


def _guarded_paths(auth_required: bool) -> dict[str, Any]:
    """Routes that need a bearer key or the session cookie."""
    return {
        "/dashboard": {
            "get": {
                "operationId": "dashboardOverview",
                "summary": "The operations console (HTML; its script reads the data routes)",
                "responses": _page("The page; it holds no data itself.", auth_required),
            }
        },
        "/dashboard/predictions/{prediction_id}": {
            "get": {
                "operationId": "dashboardPrediction",
                "summary": "One prediction's detail page (HTML)",
                "parameters": [_PREDICTION_ID],
                "responses": _page("The page; it holds no data itself.", auth_required),
            }
        },
        "/dashboard/predictions/{prediction_id}/replay": {
            "post": {
                "operationId": "dashboardReplayPrediction",
                "summary": "Replay this prediction's stored deliveries (the detail page's button)",
                "description": "`POST /v1/deliveries/replay` narrowed to the deliveries that name "
                "this prediction, for a browser signed in with the session cookie (the bearer "
                "header works too). The page sends `dry_run: true` first and replays only when "
                "the operator confirms. Refused when posted from another site's page; needs a "
                "key even where reads are anonymous.",
                "parameters": [_PREDICTION_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": TypeAdapter(DashboardReplayRequest).json_schema()
                        }
                    },
                },
                "responses": {
                    "200": json_content(
                        "What each delivery did (or would do).", schema_ref(ReplayReport)
                    ),
                    "400": problem("The body is not JSON."),
                    "403": problem(
                        "Posted from another site, or no API keys are configured "
                        "(replay is never anonymous)."
                    ),
                    "404": problem("No stored delivery names this prediction."),
                    "413": problem(f"The body is over {MAX_REQUEST_BYTES} bytes."),
                    "415": problem("The content type is not JSON."),
                    "422": problem("`dry_run` is missing or not a boolean; see `errors`."),
                },
            }
        },
        "/dashboard/data/overview": {
            "get": {
                "operationId": "dashboardOverviewData",
                "summary": "What the overview shows, as JSON",
                "description": "Counts by status and domain, callbacks per minute over the last "
                "hour, credits today and over 7 days by domain, the latest predictions "
                "(filtered) and refused deliveries, the forwarding destinations (`forwarding`, "
                "shaped as the answer of `GET /v1/forwarding`), and the stream positions read "
                "first.",
                "parameters": [
                    query_param("status", "Only predictions with this status.", _ref("Status")),
                    query_param("domain", "Only predictions of this domain.", TEXT_PARAM),
                    query_param(
                        "q", "A prefix of the prediction id or of the submission id.", TEXT_PARAM
                    ),
                ],
                "responses": {
                    "200": json_content("The overview.", _OBJECT),
                    "400": problem("A query parameter is invalid; `parameter` names it."),
                },
            }
        },
        "/dashboard/data/predictions/{prediction_id}": {
            "get": {
                "operationId": "dashboardPredictionData",
                "summary": "One prediction's history, as JSON",
                "description": "The prediction, its failure reason, status timeline, submission "
                "and its most recent 100 deliveries (no raw bodies).",
                "parameters": [_PREDICTION_ID],
                "responses": {
                    "200": json_content("The history.", _OBJECT),
                    "404": problem("Not received."),
                },
            }
        },
        "/dashboard/data/deliveries/{delivery_id}": {
            "get": {
                "operationId": "dashboardDelivery",
                "summary": "One delivery with its stored raw body",
                "parameters": [
                    path_param(
                        "delivery_id",
                        "The delivery's id.",
                        {"type": "integer", "minimum": 1, "maximum": MAX_ROW_ID},
                    )
                ],
                "responses": {
                    "200": json_content("The delivery.", _ref("Delivery")),
                    "400": problem("The id is not an integer."),
                    "404": problem("No such delivery."),
                },
            }
        },
        "/dashboard/events": {
            "get": {
                "operationId": "dashboardEvents",
                "summary": "The dashboard's live stream (Server-Sent Events)",
                "description": "`prediction.<status>` (data: id and status) and "
                "`delivery.rejected` (data: the refusal). Event ids are `<seq>.<delivery id>`; "
                "resume with `Last-Event-ID` or both `after` and `after_delivery`.",
                "parameters": [
                    query_param(
                        "after", "Event seq to resume after.", {"type": "integer", "minimum": 0}
                    ),
                    query_param(
                        "after_delivery",
                        "Delivery id to resume after.",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
                "responses": {
                    "200": content("An endless stream.", "text/event-stream", {"type": "string"}),
                    "400": problem("A resume position is invalid."),
                },
            }
        },
    }


def _usage_path() -> dict[str, Any]:
    return {
        "/v1/usage": {
            "get": {
                "operationId": "getUsage",
                "summary": "The usage ledger: credits and elements summed from stored usage",
                "description": "Grouped by domain, by UTC day or by submission, over the "
                "predictions created in [since, until). Rows are ordered by key.",
                "parameters": [
                    query_param(
                        "group_by",
                        "How to group (default domain).",
                        {"type": "string", "enum": ["domain", "day", "submission"]},
                    ),
                    query_param("since", "created_at >= this (ISO 8601; UTC if no offset).", TIME),
                    query_param("until", "created_at < this (ISO 8601; UTC if no offset).", TIME),
                    query_param(
                        "limit",
                        f"At most this many groups (default {DEFAULT_USAGE_GROUPS}).",
                        {"type": "integer", "minimum": 1, "maximum": MAX_USAGE_GROUPS},
                    ),
                ],
                "responses": {
                    "200": json_content("The ledger.", _ref("UsageLedger")),
                    "400": problem("A query parameter is invalid; `parameter` names it."),
                },
            }
        }
    }


def _open_paths() -> dict[str, Any]:
    see_other = "Always, to `next` (signed in) or back to the form (wrong key)."
    return {
        "/dashboard/sign-in": {
            "get": {
                "operationId": "dashboardSignInForm",
                "summary": "The sign-in form",
                "responses": {"200": _html("The form.")},
            },
            "post": {
                "operationId": "dashboardSignIn",
                "summary": "Sign in with an API key; sets the session cookie",
                "description": f"Sets `{SESSION_COOKIE}` (HttpOnly, SameSite=Strict, Path="
                "/dashboard, Secure over https, expiring after VLMHOOKS_SESSION_MAX_AGE).",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["key"],
                                "properties": {
                                    "key": {"type": "string"},
                                    "next": {"type": "string"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "303": _redirect(see_other),
                    "403": problem("Posted from another site."),
                    "413": problem("The form is too large."),
                    "415": problem("Not a form."),
                },
            },
        },
        "/dashboard/sign-out": {
            "post": {
                "operationId": "dashboardSignOut",
                "summary": "Sign out: clears the session cookie",
                "responses": {
                    "303": _redirect("To the sign-in form."),
                    "403": problem("Posted from another site."),
                },
            }
        },
        "/dashboard/static/{name}": {
            "get": {
                "operationId": "dashboardAsset",
                "summary": "The dashboard's stylesheet, scripts and icon",
                "parameters": [
                    path_param("name", "The file name.", {"type": "string", "enum": sorted(ASSETS)})
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            media_type.partition(";")[0]: {"schema": {"type": "string"}}
                            for media_type in sorted(set(ASSETS.values()))
                        },
                    },
                    "304": {"description": "Not modified (If-None-Match)."},
                    "404": problem("No such asset."),
                },
            }
        },
    }


def _secure(paths: dict[str, Any], security: list[dict[str, list[str]]]) -> None:
    for item in paths.values():
        for operation in item.values():
            operation["security"] = security
            if security:
                operation["responses"]["401"] = problem(
                    "Missing or wrong key, or no valid session (`WWW-Authenticate: Bearer`)."
                )


def add_console_paths(document: dict[str, Any], *, auth_required: bool) -> None:
    """Add the dashboard and usage routes, their schemas and the session scheme, in place."""
    guarded, usage, open_ = _guarded_paths(auth_required), _usage_path(), _open_paths()
    _secure(guarded, [{"bearerAuth": []}, {"dashboardSession": []}] if auth_required else [])
    _secure(usage, [{"bearerAuth": []}, {"accessToken": []}] if auth_required else [])
    _secure(open_, [])
    document["paths"].update({**guarded, **usage, **open_})
    ledger = UsageLedger.model_json_schema(ref_template=REF)
    components = document["components"]
    components["schemas"].update({**ledger.pop("$defs", {}), "UsageLedger": ledger})
    components["securitySchemes"]["dashboardSession"] = {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
    }
    metrics = document["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["description"] += " Also credits used by domain (the whole database)."
