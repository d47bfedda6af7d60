"""TokenVerifier: claim checks, algorithm attacks, JWKS caching, rate limiting and rotation."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from comuna_platform.auth import AuthenticationError, KeySetUnavailableError, TokenVerifier
from tests.unit.auth.comuna_auth_testkit import (
    AUDIENCE,
    ISSUER,
    FakeClock,
    FakeJwks,
    KeyMaterial,
    claims,
    ec_key,
    raw_token,
    sign,
)


async def rejected(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await verifier.verify(token)
    return info.value.code


@pytest.mark.asyncio
async def test_valid_token_gives_principal(verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    payload = claims(resource_access={"comuna": {"roles": ["registrar"]}})
    principal = await verifier.verify(sign(key_a, payload))
    assert principal.subject == payload["sub"]
    assert principal.username == "alice"
    assert principal.roles == {"operator", "registrar"}
    assert principal.client_id == "comuna-web"


@pytest.mark.asyncio
async def test_audience_may_be_a_list(verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    await verifier.verify(sign(key_a, claims(aud=["account", AUDIENCE])))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        # Times are offsets from "now" at test time, not at collection time: a long suite run
        # must not age these tokens into validity.
        ({"exp": -120}, "token_expired"),
        ({"nbf": +120}, "token_not_yet_valid"),
        ({"iat": +120}, "token_not_yet_valid"),
        ({"iss": "https://evil.test/realms/comuna"}, "token_issuer"),
        ({"iss": ISSUER + "/"}, "token_issuer"),
        ({"aud": "another-api"}, "token_audience"),
        ({"aud": None}, "token_invalid"),
        ({"iat": None}, "token_invalid"),
        ({"exp": None}, "token_invalid"),
        ({"sub": None}, "token_invalid"),
        ({"typ": "ID"}, "token_invalid"),
        ({"typ": "Refresh"}, "token_invalid"),
        # Keycloak access tokens always say `typ: Bearer`; a token that does not is no access token.
        ({"typ": None}, "token_invalid"),
        ({"typ": ["Bearer"]}, "token_invalid"),
    ],
)
async def test_bad_claims_are_rejected(
    verifier: TokenVerifier, key_a: KeyMaterial, overrides: dict[str, Any], code: str
) -> None:
    now = int(time.time())
    resolved = {k: now + v if k in {"exp", "nbf", "iat"} and isinstance(v, int) else v for k, v in overrides.items()}
    assert await rejected(verifier, sign(key_a, claims(**resolved))) == code


@pytest.mark.asyncio
async def test_leeway_tolerates_small_clock_skew(verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    now = int(time.time())
    await verifier.verify(sign(key_a, claims(exp=now - 10, nbf=now + 10, iat=now + 10)))


@pytest.mark.asyncio
async def test_alg_none_is_rejected(verifier: TokenVerifier) -> None:
    token = raw_token({"alg": "none", "typ": "JWT", "kid": "key-a"}, claims())
    assert await rejected(verifier, token) == "token_invalid"


@pytest.mark.asyncio
async def test_hs256_signed_with_the_public_key_is_rejected(verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    """Classic key confusion: HMAC keyed with the (public) RSA key bytes."""
    pem = key_a.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-a"}
    unsigned = raw_token(header, claims()).rsplit(".", 1)[0]
    signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    token = raw_token(header, claims(), signature)
    assert await rejected(verifier, token) == "token_invalid"


@pytest.mark.asyncio
async def test_signature_from_another_key_with_a_known_kid_is_rejected(
    verifier: TokenVerifier, key_b: KeyMaterial
) -> None:
    assert await rejected(verifier, sign(key_b, claims(), kid="key-a")) == "token_invalid"


@pytest.mark.asyncio
async def test_garbage_and_missing_kid_are_rejected(verifier: TokenVerifier) -> None:
    assert await rejected(verifier, "not-a-jwt") == "token_invalid"
    no_kid = raw_token({"alg": "RS256", "typ": "JWT"}, claims())
    assert await rejected(verifier, no_kid) == "token_invalid"


def test_symmetric_or_none_algorithms_cannot_be_configured() -> None:
    for algorithms in (("HS256",), ("none",), ("RS256", "HS512"), ()):
        with pytest.raises(ValueError, match="unsafe"):
            TokenVerifier(ISSUER, AUDIENCE, algorithms=algorithms)


@pytest.mark.asyncio
async def test_es256_keys_are_supported(jwks: FakeJwks, verifier: TokenVerifier) -> None:
    key = ec_key("ec-1")
    jwks.keys.append(key.jwk)
    assert (await verifier.verify(sign(key, claims()))).username == "alice"


@pytest.mark.asyncio
async def test_jwks_is_fetched_once_and_cached(jwks: FakeJwks, verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    await asyncio.gather(*(verifier.verify(sign(key_a, claims())) for _ in range(20)))
    await verifier.verify(sign(key_a, claims()))
    assert jwks.fetches == 1


@pytest.mark.asyncio
async def test_unknown_kid_triggers_one_refresh_then_fails(
    jwks: FakeJwks, clock: FakeClock, verifier: TokenVerifier, key_a: KeyMaterial
) -> None:
    await verifier.verify(sign(key_a, claims()))
    assert jwks.fetches == 1
    clock.advance(31)
    assert await rejected(verifier, sign(key_a, claims(), kid="random-1")) == "token_invalid"
    assert jwks.fetches == 2
    # Rate limit: more unknown kids right after do not reach the issuer again.
    for i in range(5):
        assert await rejected(verifier, sign(key_a, claims(), kid=f"random-{i}")) == "token_invalid"
    assert jwks.fetches == 2


@pytest.mark.asyncio
async def test_unknown_kid_within_rate_limit_window_does_not_refetch(
    jwks: FakeJwks, clock: FakeClock, verifier: TokenVerifier, key_a: KeyMaterial
) -> None:
    await verifier.verify(sign(key_a, claims()))
    clock.advance(10)
    assert await rejected(verifier, sign(key_a, claims(), kid="nope")) == "token_invalid"
    assert jwks.fetches == 1


@pytest.mark.asyncio
async def test_key_rotation(
    jwks: FakeJwks,
    clock: FakeClock,
    verifier: TokenVerifier,
    key_a: KeyMaterial,
    key_b: KeyMaterial,
) -> None:
    await verifier.verify(sign(key_a, claims()))
    jwks.keys[:] = [key_b.jwk]  # issuer rotates: new key in, old key out
    clock.advance(31)
    assert (await verifier.verify(sign(key_b, claims()))).username == "alice"
    assert jwks.fetches == 2
    assert await rejected(verifier, sign(key_a, claims())) == "token_invalid"


@pytest.mark.asyncio
async def test_keys_are_refetched_after_max_age(
    jwks: FakeJwks, clock: FakeClock, verifier: TokenVerifier, key_a: KeyMaterial
) -> None:
    await verifier.verify(sign(key_a, claims()))
    clock.advance(3601)
    await verifier.verify(sign(key_a, claims()))
    assert jwks.fetches == 2


@pytest.mark.asyncio
async def test_issuer_down_at_start_is_not_an_authentication_failure(
    jwks: FakeJwks, clock: FakeClock, verifier: TokenVerifier, key_a: KeyMaterial
) -> None:
    jwks.down = True
    with pytest.raises(KeySetUnavailableError):
        await verifier.verify(sign(key_a, claims()))
    with pytest.raises(KeySetUnavailableError):  # backing off: no second fetch yet
        await verifier.verify(sign(key_a, claims()))
    assert jwks.fetches == 1
    jwks.down = False
    clock.advance(3)
    await verifier.verify(sign(key_a, claims()))


@pytest.mark.asyncio
async def test_issuer_down_later_keeps_known_keys(
    jwks: FakeJwks, clock: FakeClock, verifier: TokenVerifier, key_a: KeyMaterial
) -> None:
    await verifier.verify(sign(key_a, claims()))
    jwks.down = True
    clock.advance(3601)
    await verifier.verify(sign(key_a, claims()))
    assert jwks.fetches == 2


@pytest.mark.asyncio
async def test_default_jwks_url_follows_keycloak_layout(jwks: FakeJwks, key_a: KeyMaterial) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return jwks.handler(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        await TokenVerifier(ISSUER, AUDIENCE, http=http).verify(sign(key_a, claims()))
    assert seen == [f"{ISSUER}/protocol/openid-connect/certs"]
