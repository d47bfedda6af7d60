"""Helpers for the auth unit tests: throwaway keys, a fake JWKS endpoint, a fake clock.

Everything runs in-process (httpx.MockTransport) so the verifier's caching and rate limiting
can be asserted by counting fetches, without a network or a real issuer.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.test/realms/comuna"
AUDIENCE = "comuna"
JWKS_URL = f"{ISSUER}/protocol/openid-connect/certs"


@dataclass(frozen=True)
class KeyMaterial:
    kid: str
    alg: str
    private_key: Any
    jwk: dict[str, Any]


def rsa_key(kid: str) -> KeyMaterial:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return KeyMaterial(kid, "RS256", private, {**jwk, "kid": kid, "alg": "RS256", "use": "sig"})


def ec_key(kid: str) -> KeyMaterial:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return KeyMaterial(kid, "ES256", private, {**jwk, "kid": kid, "alg": "ES256", "use": "sig"})


def claims(**overrides: Any) -> dict[str, Any]:
    """Valid Keycloak-like access-token claims; pass `name=None` to drop a claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "typ": "Bearer",
        "azp": "comuna-web",
        "preferred_username": "alice",
        "realm_access": {"roles": ["operator"]},
        "comuna_territories": ["VE.01"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: KeyMaterial, payload: dict[str, Any], kid: str | None = None) -> str:
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers={"kid": kid or key.kid})


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """Hand-built JWS, for attacks PyJWT refuses to produce (alg none, HMAC key confusion)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    return f"{head}.{body}.{b64(signature)}"


@dataclass
class FakeJwks:
    """A JWKS endpoint whose key list tests can change, counting every fetch."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    fetches: int = 0
    down: bool = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json={"keys": self.keys})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handler))


@dataclass
class FakeClock:
    now: float = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
