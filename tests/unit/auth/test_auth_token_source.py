"""ClientCredentialsTokenSource: caching, early refresh, one fetch under concurrency, errors."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx
import pytest

from comuna_platform.auth import ClientCredentialsTokenSource, TokenSourceError
from tests.unit.auth.comuna_auth_testkit import FakeClock

TOKEN_URL = "https://idp.test/realms/comuna/protocol/openid-connect/token"


@dataclass
class FakeTokenEndpoint:
    expires_in: int = 300
    status: int = 200
    forms: list[dict[str, list[str]]] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.forms.append(parse_qs(request.content.decode()))
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "unauthorized_client"})
        body = {"access_token": f"t{len(self.forms)}", "expires_in": self.expires_in}
        return httpx.Response(200, json=body)


def source(endpoint: FakeTokenEndpoint, clock: FakeClock) -> tuple[ClientCredentialsTokenSource, httpx.AsyncClient]:
    http = httpx.AsyncClient(transport=httpx.MockTransport(endpoint.handler))
    tokens = ClientCredentialsTokenSource(TOKEN_URL, "svc", "s3cret", http=http, clock=clock)
    return tokens, http


@pytest.mark.asyncio
async def test_token_is_cached_until_30s_before_expiry() -> None:
    endpoint, clock = FakeTokenEndpoint(), FakeClock()
    tokens, http = source(endpoint, clock)
    async with http:
        assert await tokens.token() == "t1"
        clock.advance(269)
        assert await tokens.token() == "t1"
        clock.advance(1)
        assert await tokens.token() == "t2"
    assert endpoint.forms[0] == {
        "grant_type": ["client_credentials"],
        "client_id": ["svc"],
        "client_secret": ["s3cret"],
    }


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_fetch() -> None:
    endpoint, clock = FakeTokenEndpoint(), FakeClock()
    tokens, http = source(endpoint, clock)
    async with http:
        results = await asyncio.gather(*(tokens.token() for _ in range(10)))
    assert set(results) == {"t1"}
    assert len(endpoint.forms) == 1


@pytest.mark.asyncio
async def test_short_lived_tokens_are_kept_for_half_their_life() -> None:
    endpoint, clock = FakeTokenEndpoint(expires_in=20), FakeClock()
    tokens, http = source(endpoint, clock)
    async with http:
        await tokens.token()
        clock.advance(9)
        assert await tokens.token() == "t1"
        clock.advance(1)
        assert await tokens.token() == "t2"


@pytest.mark.asyncio
async def test_invalidate_forces_a_new_token() -> None:
    endpoint, clock = FakeTokenEndpoint(), FakeClock()
    tokens, http = source(endpoint, clock)
    async with http:
        await tokens.token()
        tokens.invalidate()
        assert await tokens.token() == "t2"


@pytest.mark.asyncio
async def test_refused_credentials_raise_without_leaking_the_secret() -> None:
    endpoint, clock = FakeTokenEndpoint(status=401), FakeClock()
    tokens, http = source(endpoint, clock)
    async with http:
        with pytest.raises(TokenSourceError) as info:
            await tokens.token()
    assert "unauthorized_client" in str(info.value)
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(tokens)
