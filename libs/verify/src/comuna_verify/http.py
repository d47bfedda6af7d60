"""Fetching the published record over HTTP(S), with the standard library only."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

USER_AGENT = "comuna-verify/0.1"
TIMEOUT = 60.0


class UsageError(Exception):
    """Bad input, or a record that cannot be fetched: exit status 2 with this one-line message."""


@dataclass(frozen=True, slots=True)
class Response:
    url: str
    status: int
    body: bytes
    content_type: str

    def text(self) -> str:
        try:
            return self.body.decode()
        except UnicodeDecodeError as exc:
            raise UsageError(f"{self.url} answered text that is not UTF-8") from exc

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise UsageError(f"{self.url} answered something that is not JSON") from exc

    def problem(self) -> str:
        """The detail of an application/problem+json answer, else its first bytes."""
        try:
            detail = json.loads(self.body).get("detail")
        except (ValueError, AttributeError):
            detail = None
        return str(detail) if detail else self.body[:200].decode(errors="replace").strip()


def check_base(base: str) -> str:
    """A consultation's base URL, without a trailing slash; UsageError if it is no http(s) URL."""
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"{base!r} is not an http(s) URL; give the consultation's public base URL")
    return base.rstrip("/")


class Client:
    """GETs and POSTs under one base URL; any HTTP status is an answer, not an error, and a
    server that cannot be reached is a UsageError naming the URL."""

    def __init__(self, base: str, timeout: float = TIMEOUT) -> None:
        self.base = check_base(base)
        self.timeout = timeout

    def url(self, path: str) -> str:
        return f"{self.base}/{path}" if path else self.base

    def get(self, path: str) -> Response:
        request = urllib.request.Request(self.url(path), headers={"User-Agent": USER_AGENT})  # noqa: S310 (http(s) only)
        return self._send(request)

    def post(self, path: str, body: bytes, content_type: str) -> Response:
        headers = {"User-Agent": USER_AGENT, "Content-Type": content_type}
        request = urllib.request.Request(self.url(path), data=body, headers=headers, method="POST")  # noqa: S310
        return self._send(request)

    def get_ok(self, path: str) -> Response:
        """A 200 answer, else UsageError (for what the record must always serve)."""
        response = self.get(path)
        if response.status != 200:
            raise UsageError(f"{response.url} answered {response.status}: {response.problem()}; check the URL")
        return response

    def _send(self, request: urllib.request.Request) -> Response:
        url = request.full_url
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310 (checked scheme)
                return Response(url, answer.status, answer.read(), answer.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            body = exc.read()
            return Response(url, exc.code, body, exc.headers.get("Content-Type", "") if exc.headers else "")
        except (TimeoutError, urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise UsageError(f"cannot reach {url}: {reason}; is the platform running?") from exc
