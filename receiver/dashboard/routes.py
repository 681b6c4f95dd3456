"""Every dashboard route with its middleware and its OpenAPI operation: security headers on
all of them, and the key-or-session check on all but sign-in, sign-out and the static assets
(which hold no data). Routes that change data check their origin themselves
(`receiver.dashboard.origin`).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from typing_extensions import TypedDict

from receiver.dashboard.access import SIGN_IN_PATH, RequireDashboardAccess
from receiver.dashboard.data import delivery_body_data, overview_data, prediction_data
from receiver.dashboard.headers import SecurityHeaders
from receiver.dashboard.pages import (
    ASSETS,
    overview_page,
    prediction_page,
    sign_in_page,
    static_asset,
)
from receiver.dashboard.replay import MAX_REQUEST_BYTES, DashboardReplayRequest, replay_prediction
from receiver.dashboard.sessions import SESSION_COOKIE
from receiver.dashboard.signin import FORM_MEDIA_TYPE, SignInForm, sign_in, sign_out
from receiver.dashboard.stream import dashboard_events
from receiver.http.params import SeqParam, TextParam
from receiver.http.routing import Answer, DocumentedRoute, Operation
from receiver.http.shapes import ReplayReport
from schemas.enums import Status
from vlmhooks.reads.shapes import Delivery

__all__ = ["dashboard_routes"]


class OverviewQuery(TypedDict, total=False):
    status: Annotated[Status, Field(description="Only predictions with this status.")]
    domain: Annotated[TextParam, Field(description="Only predictions of this domain.")]
    q: Annotated[TextParam, Field(description="A prefix of the prediction or submission id.")]


class ResumeQuery(TypedDict, total=False):
    after: Annotated[SeqParam, Field(description="Event seq to resume after.")]
    after_delivery: Annotated[SeqParam, Field(description="Delivery id to resume after.")]


class AssetPath(TypedDict):
    name: Annotated[
        str, Field(description="The file name.", json_schema_extra={"enum": sorted(ASSETS)})
    ]


async def sign_in_route(request: Request) -> Response:
    """One route for both methods, so a 405 there names both in `Allow`."""
    return await (sign_in if request.method == "POST" else sign_in_page)(request)


def _page(operation_id: str, summary: str, **rest: Any) -> Operation:
    html = Answer("The page; it holds no data itself.", str, ("text/html",))
    return Operation(operation_id, summary, {200: html}, **rest)


def _json(operation_id: str, summary: str, answer: Answer, **rest: Any) -> Operation:
    return Operation(operation_id, summary, {200: answer, **rest.pop("errors", {})}, **rest)


def dashboard_routes() -> list[BaseRoute]:
    open_ = [Middleware(SecurityHeaders)]
    # SecurityHeaders outermost, so redirects and 401s carry the headers too.
    guarded = [Middleware(SecurityHeaders), Middleware(RequireDashboardAccess)]
    history = "The prediction, its failure reason, status timeline, submission and its most "
    history += "recent 100 deliveries (no raw bodies)."
    replay = (
        "`POST /v1/deliveries/replay` narrowed to the deliveries that name this prediction, for "
        "a browser signed in with the session cookie (the bearer header works too). The page "
        "sends `dry_run: true` first and replays only when the operator confirms. Refused when "
        "posted from another site's page; needs a key even where reads are anonymous."
    )
    overview = (
        "Counts by status and domain, callbacks per minute over the last hour, credits today "
        "and over 7 days by domain, the latest predictions (filtered) and refused deliveries, "
        "the forwarding destinations (`forwarding`, shaped as the answer of `GET "
        "/v1/forwarding`), and the stream positions read first."
    )
    cross_site = "Posted from another site."
    see_other = "Always, to `next` (signed in) or back to the form (wrong key)."
    media_types = tuple(sorted({media.partition(";")[0] for media in ASSETS.values()}))
    return [
        DocumentedRoute(
            "/dashboard",
            overview_page,
            middleware=guarded,
            get=_page("dashboardOverview", "The operations console (HTML; its script reads data)"),
        ),
        DocumentedRoute(
            "/dashboard/predictions/{prediction_id}",
            prediction_page,
            middleware=guarded,
            get=_page("dashboardPrediction", "One prediction's detail page (HTML)"),
        ),
        DocumentedRoute(
            "/dashboard/data/overview",
            overview_data,
            middleware=guarded,
            get=_json(
                "dashboardOverviewData",
                "What the overview shows, as JSON",
                Answer("The overview.", dict[str, Any]),
                description=overview,
                query=OverviewQuery,
            ),
        ),
        DocumentedRoute(
            "/dashboard/data/predictions/{prediction_id}",
            prediction_data,
            middleware=guarded,
            get=_json(
                "dashboardPredictionData",
                "One prediction's history, as JSON",
                Answer("The history.", dict[str, Any]),
                description=history,
                errors={404: "Not received."},
            ),
        ),
        DocumentedRoute(
            "/dashboard/predictions/{prediction_id}/replay",
            replay_prediction,
            middleware=guarded,
            post=_json(
                "dashboardReplayPrediction",
                "Replay this prediction's stored deliveries (the detail page's button)",
                Answer("What each delivery did (or would do).", ReplayReport),
                description=replay,
                body=DashboardReplayRequest,
                body_required=True,
                errors={
                    400: "The body is not JSON.",
                    403: f"{cross_site} Or no API keys are configured (replay is never anonymous).",
                    404: "No stored delivery names this prediction.",
                    413: f"The body is over {MAX_REQUEST_BYTES} bytes.",
                    415: "The content type is not JSON.",
                    422: "`dry_run` is missing or not a boolean; see `errors`.",
                },
            ),
        ),
        DocumentedRoute(
            "/dashboard/data/deliveries/{delivery_id}",
            delivery_body_data,
            middleware=guarded,
            get=_json(
                "dashboardDelivery",
                "One delivery with its stored raw body",
                Answer("The delivery.", Delivery),
                errors={400: "The id is not an integer.", 404: "No such delivery."},
            ),
        ),
        DocumentedRoute(
            "/dashboard/events",
            dashboard_events,
            middleware=guarded,
            get=_json(
                "dashboardEvents",
                "The dashboard's live stream (Server-Sent Events)",
                Answer("An endless stream.", str, ("text/event-stream",)),
                description="`prediction.<status>` (data: id and status) and `delivery.rejected` "
                "(data: the refusal). Event ids are `<seq>.<delivery id>`; resume with "
                "`Last-Event-ID` or both `after` and `after_delivery`.",
                query=ResumeQuery,
                errors={400: "A resume position is invalid."},
            ),
        ),
        DocumentedRoute(
            SIGN_IN_PATH,
            sign_in_route,
            middleware=open_,
            get=Operation(
                "dashboardSignInForm",
                "The sign-in form",
                {200: Answer("The form.", str, ("text/html",))},
            ),
            post=Operation(
                "dashboardSignIn",
                "Sign in with an API key; sets the session cookie",
                {
                    303: see_other,
                    403: cross_site,
                    413: "The form is too large.",
                    415: "Not a form.",
                },
                description=f"Sets `{SESSION_COOKIE}` (HttpOnly, SameSite=Strict, Path="
                "/dashboard, Secure over https, expiring after VLMHOOKS_SESSION_MAX_AGE).",
                body=SignInForm,
                body_media_type=FORM_MEDIA_TYPE,
                body_required=True,
            ),
        ),
        DocumentedRoute(
            "/dashboard/sign-out",
            sign_out,
            middleware=open_,
            post=Operation(
                "dashboardSignOut",
                "Sign out: clears the session cookie",
                {303: "To the sign-in form.", 403: cross_site},
            ),
        ),
        DocumentedRoute(
            "/dashboard/static/{name}",
            static_asset,
            middleware=open_,
            get=Operation(
                "dashboardAsset",
                "The dashboard's stylesheet, scripts and icon",
                {
                    200: Answer("The file.", str, media_types),
                    304: "Not modified (If-None-Match).",
                    404: "No such asset.",
                },
                path=AssetPath,
            ),
        ),
    ]
