"""A small REST client for the platform's public APIs, used by the seed, demo, bench and e2e tests."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from comuna_devstack.stack import PUBLIC_CLIENT


class StepFailed(RuntimeError):
    """A call answered something other than what the step expected."""


@dataclass(frozen=True)
class Tokens:
    access: str = field(repr=False)
    refresh: str = field(repr=False)
    # time.monotonic() when the access token expires (Keycloak's `expires_in`).
    expires_at: float = 0.0


def password_grant(http: httpx.Client, token_url: str, username: str, password: str) -> Tokens:
    """Sign in with the public client's password grant (enabled in development only)."""
    data = {"grant_type": "password", "client_id": PUBLIC_CLIENT, "username": username, "password": password}
    return _token_request(http, token_url, data, username)


def refresh_grant(http: httpx.Client, token_url: str, tokens: Tokens, username: str = "a resident") -> Tokens:
    """A fresh access token for the same session (no password, nothing hashed)."""
    data = {"grant_type": "refresh_token", "client_id": PUBLIC_CLIENT, "refresh_token": tokens.refresh}
    return _token_request(http, token_url, data, username)


def _token_request(http: httpx.Client, token_url: str, data: dict[str, str], username: str) -> Tokens:
    for attempt in range(3):
        asked = time.monotonic()
        response = http.post(token_url, data=data)
        if response.status_code == 200:
            body = response.json()
            return Tokens(str(body["access_token"]), str(body["refresh_token"]), asked + float(body["expires_in"]))
        if response.status_code < 500 or attempt == 2:
            break
        time.sleep(1.0 + attempt)
    raise StepFailed(f"sign-in of {username} failed: {response.status_code} {response.text[:300]}")


class PlatformClient:
    def __init__(self, urls: Mapping[str, str], *, token_url: str, timeout: float = 30.0) -> None:
        self.urls = dict(urls)
        self.token_url = token_url
        self.http = httpx.Client(timeout=timeout)
        self._tokens: dict[str, Tokens] = {}
        # Kept so that a long run (a benchmark, a fault scenario) signs in again when a token expires.
        self._passwords: dict[str, str] = {}

    def close(self) -> None:
        self.http.close()

    def login(self, username: str, password: str) -> str:
        """Password grant against Keycloak with the public client (enabled in development only)."""
        tokens = password_grant(self.http, self.token_url, username, password)
        self._tokens[username] = tokens
        self._passwords[username] = password
        return tokens.access

    def auth(self, user: str) -> dict[str, str]:
        """The user's bearer header, signing in again first when the token is about to expire
        (a slow machine can take a fault scenario or a demo past a token's lifetime)."""
        tokens = self._tokens[user]
        if user in self._passwords and tokens.expires_at - time.monotonic() < _RENEW_BEFORE_EXPIRY_SECONDS:
            self.login(user, self._passwords[user])
            tokens = self._tokens[user]
        return {"Authorization": f"Bearer {tokens.access}"}

    def subject(self, user: str) -> str:
        """The Keycloak subject (`sub`) of a logged-in user, read from their own token: what
        identity's role assignments are granted to."""
        payload = self._tokens[user].access.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims["sub"])

    def call(
        self,
        method: str,
        service: str,
        path: str,
        *,
        as_user: str | None = None,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        expect: int | tuple[int, ...] = 200,
    ) -> Any:
        """`content`: a raw body (a file upload), sent as application/octet-stream."""

        def headers_of(auth: dict[str, str]) -> dict[str, str]:
            return auth if content is None else {**auth, "Content-Type": "application/octet-stream"}

        def send(auth: dict[str, str]) -> httpx.Response:
            return self.http.request(
                method,
                f"{self.urls[service]}{path}",
                json=json,
                content=content,
                params=params,
                headers=headers_of(auth),
            )

        headers = self.auth(as_user) if as_user else {}
        response = send(headers)
        for _ in range(_RATE_LIMITED_RETRIES):
            if response.status_code != 429 or 429 in ((expect,) if isinstance(expect, int) else expect):
                break
            # Rate-limited (bulk seeding by one registrar): wait as told, as a well-behaved client.
            time.sleep(float(response.headers.get("retry-after", "1")))
            response = send(headers)
        if response.status_code == 401 and as_user in self._passwords and "token_expired" in response.text:
            # The user's token ran out during a long run: sign in again, once, and repeat the call.
            self.login(as_user, self._passwords[as_user])
            response = send(self.auth(as_user))
        expected = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in expected:
            raise StepFailed(
                f"{method} {service}{path}: expected {expected}, got {response.status_code} {response.text[:500]}"
            )
        return response.json() if response.content else None

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll until `probe` returns something truthy: events cross services asynchronously."""
        deadline = time.monotonic() + timeout
        while True:
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                raise StepFailed(f"timed out waiting for {what}")
            time.sleep(0.2)


# Renewing this early leaves a request sent now time to be checked before the token expires.
_RENEW_BEFORE_EXPIRY_SECONDS = 30.0

# Enough for a bulk seed at a rate limit of 30 a minute to go on for many minutes.
_RATE_LIMITED_RETRIES = 1000


def items(body: Any) -> list[Any]:
    """List endpoints answer {"items": [...]}; accept a bare list too."""
    if isinstance(body, list):
        return body
    return list(body["items"])
