"""Fixtures shared by the auth unit tests (keys are generated once per session: RSA is slow)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from comuna_platform.auth import TokenVerifier
from tests.unit.auth.comuna_auth_testkit import AUDIENCE, ISSUER, FakeClock, FakeJwks, KeyMaterial, rsa_key


@pytest.fixture(scope="session")
def key_a() -> KeyMaterial:
    return rsa_key("key-a")


@pytest.fixture(scope="session")
def key_b() -> KeyMaterial:
    return rsa_key("key-b")


@pytest.fixture
def jwks(key_a: KeyMaterial) -> FakeJwks:
    return FakeJwks(keys=[key_a.jwk])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def verifier(jwks: FakeJwks, clock: FakeClock) -> AsyncIterator[TokenVerifier]:
    async with jwks.client() as http:
        yield TokenVerifier(ISSUER, AUDIENCE, http=http, clock=clock)
