"""Lambda event fixtures, shaped as AWS documents and sends them, and a reader for the
handler's answers: API Gateway HTTP API (v2), REST API (v1), ALB, Function URL."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

EventBuilder = Callable[..., dict[str, Any]]
Headers = Mapping[str, str | list[str]]

ACCOUNT = "123456789012"
SOURCE_IP = "203.0.113.7"
REQUEST_TIME_EPOCH = 1795521600000


@dataclass
class LambdaContext:
    """What the Python runtime passes as `context` (the fields Mangum and users read)."""

    function_name: str = "vlmhooks-receiver"
    function_version: str = "$LATEST"
    invoked_function_arn: str = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:vlmhooks-receiver"
    memory_limit_in_mb: int = 512
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/vlmhooks-receiver"
    log_stream_name: str = "2026/11/24/[$LATEST]abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _body_fields(body: bytes | None, base64_body: bool) -> dict[str, Any]:
    if body is None:
        return {"body": None, "isBase64Encoded": False}
    if base64_body:
        return {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    return {"body": body.decode(), "isBase64Encoded": False}


def _single(headers: Headers) -> dict[str, str]:
    """One value per name, the last one (what v1's `headers` and ALB's plain mode carry)."""
    return {
        name: value[-1] if isinstance(value, list) else value for name, value in headers.items()
    }


def _multi(headers: Headers) -> dict[str, list[str]]:
    return {
        name: list(value) if isinstance(value, list) else [value] for name, value in headers.items()
    }


def _query_maps(query: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    pairs = parse_qsl(query, keep_blank_values=True)
    if not pairs:
        return None, None
    multi: dict[str, list[str]] = {}
    for name, value in pairs:
        multi.setdefault(name, []).append(value)
    return {name: values[-1] for name, values in multi.items()}, multi


def _v2_event(
    method: str,
    path: str,
    *,
    domain: str,
    api_id: str,
    headers: Headers,
    query: str,
    body: bytes | None,
    base64_body: bool,
) -> dict[str, Any]:
    # Payload v2 joins repeated headers with commas and keeps cookies apart.
    joined = {
        name.lower(): ",".join(value) if isinstance(value, list) else value
        for name, value in headers.items()
    }
    joined.setdefault("host", domain)
    joined.setdefault("x-forwarded-proto", "https")
    joined.setdefault("x-forwarded-port", "443")
    joined.setdefault("x-forwarded-for", SOURCE_IP)
    single_query, _ = _query_maps(query)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": joined,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": joined.get("user-agent", "VLMRun-Webhooks/1.0"),
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": "$default",
            "time": "24/Nov/2026:12:00:00 +0000",
            "timeEpoch": REQUEST_TIME_EPOCH,
        },
        **_body_fields(body, base64_body),
    }
    if single_query is not None:
        event["queryStringParameters"] = single_query
    if event["body"] is None:
        del event["body"]
    return event


def http_api_v2(
    method: str,
    path: str,
    *,
    headers: Headers,
    query: str = "",
    body: bytes | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """API Gateway HTTP API, payload format 2.0, `$default` stage."""
    return _v2_event(
        method,
        path,
        domain="r2d2c3po.execute-api.eu-west-1.amazonaws.com",
        api_id="r2d2c3po",
        headers=headers,
        query=query,
        body=body,
        base64_body=base64_body,
    )


def function_url(
    method: str,
    path: str,
    *,
    headers: Headers,
    query: str = "",
    body: bytes | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """Lambda Function URL: payload 2.0 with the URL's own domain and id."""
    url_id = "a7wbsz4bhzkjzwq3p6xkz5pbqe0zfxyd"
    event = _v2_event(
        method,
        path,
        domain=f"{url_id}.lambda-url.eu-west-1.on.aws",
        api_id=url_id,
        headers=headers,
        query=query,
        body=body,
        base64_body=base64_body,
    )
    return event


def rest_api_v1(
    method: str,
    path: str,
    *,
    headers: Headers,
    query: str = "",
    body: bytes | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """API Gateway REST API (payload 1.0, proxy integration on `/{proxy+}`, stage `prod`).

    `path` has no stage: API Gateway gives the resource path; the stage is only in
    `requestContext.path`.
    """
    all_headers: dict[str, str | list[str]] = {
        "Host": "r2d2c3po.execute-api.eu-west-1.amazonaws.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Port": "443",
        "X-Forwarded-For": SOURCE_IP,
        **headers,
    }
    single_query, multi_query = _query_maps(query)
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": _single(all_headers),
        "multiValueHeaders": _multi(all_headers),
        "queryStringParameters": single_query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "r2d2c3po",
            "domainName": "r2d2c3po.execute-api.eu-west-1.amazonaws.com",
            "httpMethod": method,
            "identity": {"sourceIp": SOURCE_IP, "userAgent": "VLMRun-Webhooks/1.0"},
            "path": f"/prod{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTimeEpoch": REQUEST_TIME_EPOCH,
            "resourceId": "abc123",
            "resourcePath": "/{proxy+}",
            "stage": "prod",
        },
        **_body_fields(body, base64_body),
    }


def alb(
    method: str,
    path: str,
    *,
    headers: Headers,
    query: str = "",
    body: bytes | None = None,
    base64_body: bool = False,
    multi_value_headers: bool = True,
) -> dict[str, Any]:
    """Application Load Balancer target group, with or without multi-value headers."""
    all_headers: dict[str, str | list[str]] = {
        "host": "vlmhooks-1234567890.eu-west-1.elb.amazonaws.com",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
        "x-forwarded-for": SOURCE_IP,
        "x-amzn-trace-id": "Root=1-5bdb40ca-556d8b0c50dc66f0511bf520",
        **{name.lower(): value for name, value in headers.items()},
    }
    single_query, multi_query = _query_maps(query)
    event: dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": (
                    f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:targetgroup/vlmhooks/6d0ecf8"
                )
            }
        },
        "httpMethod": method,
        "path": path,
        **_body_fields(body, base64_body),
    }
    if event["body"] is None:
        event["body"] = ""
    if multi_value_headers:
        event["multiValueHeaders"] = _multi(all_headers)
        event["multiValueQueryStringParameters"] = multi_query or {}
    else:
        event["headers"] = _single(all_headers)
        event["queryStringParameters"] = single_query or {}
    return event


def alb_single_value(method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return alb(method, path, multi_value_headers=False, **kwargs)


EVENT_KINDS: dict[str, EventBuilder] = {
    "http-api-v2": http_api_v2,
    "rest-api-v1": rest_api_v1,
    "alb": alb,
    "alb-single-value": alb_single_value,
    "function-url": function_url,
}


@dataclass(frozen=True)
class LambdaAnswer:
    """The handler's return value, read the way the platform reads it."""

    status: int
    headers: dict[str, list[str]]
    body: bytes
    base64_encoded: bool

    @classmethod
    def read(cls, result: Mapping[str, Any]) -> LambdaAnswer:
        headers: dict[str, list[str]] = {}
        for name, value in (result.get("headers") or {}).items():
            headers.setdefault(name.lower(), []).append(value)
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.setdefault(name.lower(), []).extend(values)
        raw = result.get("body") or ""
        encoded = bool(result.get("isBase64Encoded"))
        body = base64.b64decode(raw) if encoded else raw.encode()
        return cls(int(result["statusCode"]), headers, body, encoded)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    def json(self) -> Any:
        import orjson

        return orjson.loads(self.body)
