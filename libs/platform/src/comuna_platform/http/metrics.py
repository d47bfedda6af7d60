"""Prometheus request metrics, labelled by route template (not raw path, to bound cardinality),
and the app of the internal metrics port that serves them."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("comuna_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "comuna_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # The router records the matched route in the (shared) scope; its path template keeps
            # label cardinality bounded, unlike the raw path.
            matched = scope.get("route")
            route = str(getattr(matched, "path", "unmatched"))
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()


async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The whole app of the internal metrics port: `GET /metrics`, and 404 for anything else."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/metrics" and scope["method"] in ("GET", "HEAD"):
        status, content_type, body = 200, CONTENT_TYPE_LATEST, generate_latest()
    else:
        status, content_type, body = 404, "text/plain; charset=utf-8", b"not found\n"
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
