"""Every dashboard route with its middleware: security headers on all of them, and the
key-or-session check on all but sign-in, sign-out and the static assets (which hold no data).
Routes that change data check their origin themselves (`receiver.dashboard.origin`).
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from receiver.dashboard.access import SIGN_IN_PATH, RequireDashboardAccess
from receiver.dashboard.data import delivery_body_data, overview_data, prediction_data
from receiver.dashboard.headers import SecurityHeaders
from receiver.dashboard.pages import overview_page, prediction_page, sign_in_page, static_asset
from receiver.dashboard.replay import replay_prediction
from receiver.dashboard.signin import sign_in, sign_out
from receiver.dashboard.stream import dashboard_events

__all__ = ["dashboard_routes"]


def dashboard_routes() -> list[BaseRoute]:
    open_ = [Middleware(SecurityHeaders)]
    # SecurityHeaders outermost, so redirects and 401s carry the headers too.
    guarded = [Middleware(SecurityHeaders), Middleware(RequireDashboardAccess)]
    return [
        Route("/dashboard", overview_page, methods=["GET"], middleware=guarded),
        Route(
            "/dashboard/predictions/{prediction_id}",
            prediction_page,
            methods=["GET"],
            middleware=guarded,
        ),
        Route("/dashboard/data/overview", overview_data, methods=["GET"], middleware=guarded),
        Route(
            "/dashboard/data/predictions/{prediction_id}",
            prediction_data,
            methods=["GET"],
            middleware=guarded,
        ),
        Route(
            "/dashboard/predictions/{prediction_id}/replay",
            replay_prediction,
            methods=["POST"],
            middleware=guarded,
        ),
        Route(
            "/dashboard/data/deliveries/{delivery_id}",
            delivery_body_data,
            methods=["GET"],
            middleware=guarded,
        ),
        Route("/dashboard/events", dashboard_events, methods=["GET"], middleware=guarded),
        Route(SIGN_IN_PATH, sign_in_page, methods=["GET"], middleware=open_),
        Route(SIGN_IN_PATH, sign_in, methods=["POST"], middleware=open_),
        Route("/dashboard/sign-out", sign_out, methods=["POST"], middleware=open_),
        Route("/dashboard/static/{name}", static_asset, methods=["GET"], middleware=open_),
    ]
