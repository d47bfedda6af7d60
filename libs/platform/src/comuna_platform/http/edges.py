"""The edge every REST request crosses before any route runs: limits, trusted hosts, input
safety and security headers, once for every service (no check per route).

In order: a request head bigger than `max_header_bytes` -> 431; a Host header not in
`allowed_hosts` -> 400 (so no URL the service builds, e.g. in a redirect, can name a host an
attacker chose); NUL or a lone surrogate in the path, the query string or a header -> 422; a
body bigger than `max_body_bytes` (declared by Content-Length, or counted while it streams in)
-> 413 (bulk imports and uploads, paths ending in `:import` or `:upload`, are streamed to the
route unread instead: only a declared length over `max_import_bytes` is refused here, the route
counts the rest against its own limit, `comuna_platform.http.streamed`); a JSON
body with duplicate keys or unstorable characters (in keys or values), or a form
body with unstorable characters -> 422. Every response, errors included, gets the security
headers. All refusals are problem+json, before the application reads anything.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from comuna_platform.http.problems import PROBLEM_MEDIA_TYPE, problem_body
from comuna_platform.input_safety import InputProblem, decode_json, is_unstorable, json_problems, unstorable
from comuna_platform.settings import ServiceSettings

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Browsers must not guess a content type, and nothing an API answers may be cached on the way
# unless a route says so itself (by setting its own Cache-Control).
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


@dataclass(frozen=True)
class EdgePolicy:
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 1024 * 1024 * 1024
    # Lower-case host names; `*.example.org` matches its subdomains; `*` matches anything.
    allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost", "[::1]")
    trusted_proxies: Sequence[IpNetwork] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, settings: ServiceSettings, service: str) -> EdgePolicy:
        hosts = settings.allowed_hosts or ["127.0.0.1", "localhost", "[::1]", service]
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_body_bytes,
            max_import_bytes=settings.max_import_bytes,
            allowed_hosts=tuple(host.lower() for host in hosts),
            trusted_proxies=tuple(ipaddress.ip_network(proxy, strict=False) for proxy in settings.trusted_proxies),
        )

    def host_allowed(self, host_header: str | None) -> bool:
        if "*" in self.allowed_hosts:
            return True
        if not host_header:
            return False
        host = _strip_port(host_header.strip().lower())
        for allowed in self.allowed_hosts:
            if host == allowed or (allowed.startswith("*.") and host.endswith(allowed[1:])):
                return True
        return False

    def came_over_tls(self, scope: Scope, headers: dict[bytes, bytes]) -> bool:
        if scope.get("scheme") == "https":
            return True
        forwarded = headers.get(b"x-forwarded-proto")
        if forwarded is None or not self.trusted_proxies:
            return False
        client = scope.get("client")
        try:
            address = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            return False
        if address is None or not any(address in network for network in self.trusted_proxies):
            return False
        # The nearest proxy (the trusted one) appends the last value.
        return forwarded.decode("latin-1").rsplit(",", 1)[-1].strip().lower() == "https"


def _strip_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8001
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_streamed_body(path: str) -> bool:
    """Bulk imports (`POST /v1/<things>:import`) read their body as a stream, row by row; uploads
    (`POST /v1/<things>:upload`) as a stream of bytes checked against the route's own limit."""
    return path.endswith((":import", ":upload"))


class _Refusal(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.code, self.title, self.detail, self.extra = status, code, title, detail, extra


def _invalid(problems: list[InputProblem]) -> _Refusal:
    return _Refusal(
        422,
        "validation_error",
        "Invalid request",
        "The request did not pass validation.",
        errors=[problem.as_error() for problem in problems],
    )


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, policy: EdgePolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        extra_headers = [*SECURITY_HEADERS, HSTS] if self.policy.came_over_tls(scope, headers) else SECURITY_HEADERS

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", ())}
                added = [(name, value) for name, value in extra_headers if name not in present]
                message = {**message, "headers": [*message.get("headers", ()), *added]}
            await send(message)

        try:
            self._check_head(scope, headers)
            if is_streamed_body(scope["path"]):
                self._check_declared_import(headers)
                await self.app(scope, receive, send_secured)
                return
            body = await self._read_body(headers, receive)
            if body is not None:
                self._check_body(headers, body)
        except _Refusal as refusal:
            await self._refuse(scope, send_secured, refusal)
            return
        await self.app(scope, _replay(body, receive) if body is not None else receive, send_secured)

    def _check_head(self, scope: Scope, headers: dict[bytes, bytes]) -> None:
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        head_size = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        head_size += sum(len(name) + len(value) + 4 for name, value in raw_headers)
        if head_size > self.policy.max_header_bytes:
            raise _Refusal(
                431,
                "headers_too_large",
                "Request header fields too large",
                f"The request line and headers exceed {self.policy.max_header_bytes} bytes.",
            )
        host = headers.get(b"host")
        if not self.policy.host_allowed(host.decode("latin-1") if host is not None else None):
            raise _Refusal(
                400, "host_not_allowed", "Bad request", "The Host header names a host this service does not serve."
            )
        problems: list[InputProblem] = []
        if is_unstorable(scope["path"]):
            problems.append(unstorable(("path",)))
        query = scope.get("query_string", b"").decode("latin-1")
        # Decoded as Starlette decodes it, so what is checked is what the routes will see.
        for name, value in parse_qsl(query, keep_blank_values=True):
            if is_unstorable(name) or is_unstorable(value):
                problems.append(unstorable(("query", name)))
        for name, value in raw_headers:
            if b"\x00" in value:
                problems.append(unstorable(("header", name.decode("latin-1"))))
        if problems:
            raise _invalid(problems)

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
        """The whole body, at most `max_body_bytes`; None when the request announces none."""
        limit = self.policy.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            return None
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away; nothing left to answer.
                raise _Refusal(400, "bad_request", "Bad request", "The client disconnected before sending its body.")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_declared_import(self, headers: dict[bytes, bytes]) -> None:
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.policy.max_import_bytes):
            raise _Refusal(
                413,
                "payload_too_large",
                "Payload too large",
                f"The import exceeds {self.policy.max_import_bytes} bytes.",
            )

    def _too_large(self) -> _Refusal:
        return _Refusal(
            413,
            "payload_too_large",
            "Payload too large",
            f"The request body exceeds {self.policy.max_body_bytes} bytes.",
        )

    def _check_body(self, headers: dict[bytes, bytes], body: bytes) -> None:
        if not body:
            return
        media_type = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
        if media_type == "application/x-www-form-urlencoded":
            problems = [
                unstorable(("body", name))
                for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True)
                if is_unstorable(name) or is_unstorable(value)
            ]
        elif media_type in ("", "application/json") or (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            # The body FastAPI will decode as JSON (it treats a missing content type as JSON too).
            try:
                document = decode_json(body)
            except (ValueError, RecursionError):
                return  # not JSON at all: the route's own validation answers 422 for that
            problems = json_problems(document)
        else:
            return
        if problems:
            raise _invalid(problems)

    async def _refuse(self, scope: Scope, send: Send, refusal: _Refusal) -> None:
        body = problem_body(
            status=refusal.status,
            code=refusal.code,
            title=refusal.title,
            detail=refusal.detail,
            instance=scope.get("path", ""),
            **refusal.extra,
        )
        content = json.dumps(body, separators=(",", ":")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read by the middleware, then whatever the client sends next (a disconnect)."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
