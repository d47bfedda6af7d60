"""Outgoing service-to-service tokens via the OAuth2 client-credentials grant.

Services call each other with their own identity (a Keycloak service account). Fetching a
token per call would double the latency of every RPC and load the issuer, so the token is
cached until shortly before it expires; the lock makes concurrent callers share one fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from .errors import TokenSourceError


class TokenProvider(Protocol):
    """Anything that can hand out a current bearer token (real source or a test fake)."""

    async def token(self) -> str: ...


class ClientCredentialsTokenSource:
    """Caches a client-credentials access token until `refresh_margin` seconds before expiry."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        http: httpx.AsyncClient | None = None,
        refresh_margin: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._http = http
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._token: str | None = None
        self._valid_until = float("-inf")
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the secret or the token
        return f"ClientCredentialsTokenSource(token_url={self.token_url!r}, client_id={self.client_id!r})"

    async def token(self) -> str:
        """A bearer token valid for at least a little while; fetches a new one when needed."""
        async with self._lock:
            if self._token is None or self._clock() >= self._valid_until:
                await self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget the cached token, e.g. after a peer answered UNAUTHENTICATED."""
        self._token = None

    async def _fetch(self) -> None:
        started = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if self._scope:
            form["scope"] = self._scope
        try:
            response = await self._post(form)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TokenSourceError(f"token endpoint {self.token_url} unreachable: {exc}") from exc
        if response.status_code != httpx.codes.OK or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenSourceError(
                f"token endpoint {self.token_url} refused client {self.client_id!r}: "
                f"HTTP {response.status_code} {error or ''}".rstrip()
            )
        access_token = body.get("access_token")
        expires_in = body.get("expires_in")
        if not isinstance(access_token, str) or not isinstance(expires_in, (int, float)):
            raise TokenSourceError(f"token endpoint {self.token_url} sent no usable token")
        # Short-lived tokens: never keep one for less than half its life, never past it.
        margin = min(self._refresh_margin, expires_in / 2)
        self._token = access_token
        self._valid_until = started + expires_in - margin

    async def _post(self, form: dict[str, str]) -> httpx.Response:
        if self._http is not None:
            return await self._http.post(self.token_url, data=form)
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(self.token_url, data=form)
