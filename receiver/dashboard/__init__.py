"""The operations console: `/dashboard` (overview), `/dashboard/predictions/{id}` (detail),
sign-in with a session cookie, and the JSON and SSE feeds the pages read.

Routes are built by `receiver.dashboard.routes.dashboard_routes()`; nothing is imported here.
"""
