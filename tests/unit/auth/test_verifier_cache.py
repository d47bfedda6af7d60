"""The verified-token cache: repeated calls skip the signature check, but never outlive `exp`
or the key that signed the token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from comuna_platform.auth import AuthenticationError, TokenVerifier
from tests.unit.auth.comuna_auth_testkit import AUDIENCE, ISSUER, FakeClock, FakeJwks, KeyMaterial, claims, sign

pytestmark = pytest.mark.asyncio


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def setup(jwks: FakeJwks, clock: FakeClock) -> AsyncIterator[tuple[TokenVerifier, WallClock, list[str]]]:
    wall = WallClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(jwks.handler)) as http:
        verifier = TokenVerifier(ISSUER, AUDIENCE, http=http, clock=clock, wall_clock=wall, leeway=0, cache_size=2)
        decoded: list[str] = []
        original = verifier._decode

        def spy(token: str, key: Any, alg: str) -> dict[str, Any]:
            decoded.append(token)
            return original(token, key, alg)

        verifier._decode = spy  # type: ignore[method-assign]
        yield verifier, wall, decoded


async def test_a_repeated_token_is_checked_once(
    setup: tuple[TokenVerifier, WallClock, list[str]], key_a: KeyMaterial
) -> None:
    verifier, _, decoded = setup
    token = sign(key_a, claims())
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert decoded == [token]


async def test_the_cache_never_outlives_exp(
    setup: tuple[TokenVerifier, WallClock, list[str]], key_a: KeyMaterial
) -> None:
    verifier, wall, decoded = setup
    payload = claims()
    token = sign(key_a, payload)
    await verifier.verify(token)
    wall.now = payload["exp"] + 1
    await verifier.verify(token)  # still valid in real time, so accepted, but checked afresh
    assert decoded == [token, token]


async def test_a_removed_key_is_not_trusted_from_the_cache(
    setup: tuple[TokenVerifier, WallClock, list[str]], key_a: KeyMaterial, jwks: FakeJwks, clock: FakeClock
) -> None:
    verifier, _, _ = setup
    token = sign(key_a, claims())
    await verifier.verify(token)
    jwks.keys = []
    verifier._keys.clear()  # as after a refresh that no longer lists the key
    with pytest.raises(AuthenticationError):
        await verifier.verify(token)


async def test_the_cache_is_bounded(setup: tuple[TokenVerifier, WallClock, list[str]], key_a: KeyMaterial) -> None:
    verifier, _, decoded = setup
    tokens = [sign(key_a, claims()) for _ in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[0])  # evicted by the bound of 2, so checked again
    assert decoded == [*tokens, tokens[0]]
