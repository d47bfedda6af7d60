"""A token signer for tests of pure token logic: an RSA key, its JWKS over HTTP, tokens in
Keycloak's shape with any claims a case needs (expired, wrong audience, malformed roles...).

Everything else gets its tokens from the real Keycloak (`tests.support.issuer.TestIssuer`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from comuna_devstack.ports import free_port, wait_for_tcp

REALM = "comuna"
AUDIENCE = "comuna"


class SigningKeyIssuer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.issuer_url = f"{self.base_url}/realms/{REALM}"
        self.jwks_url = f"{self.issuer_url}/protocol/openid-connect/certs"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def token(
        self,
        *,
        roles: Sequence[str] = (),
        territories: Sequence[str] = (),
        subject: str | None = None,
        username: str = "tester",
        client_id: str = "comuna-web",
        ttl: int = 300,
        **overrides: Any,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_url,
            "aud": AUDIENCE,
            "sub": subject or str(uuid.uuid4()),
            "azp": client_id,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "typ": "Bearer",
            "preferred_username": username,
            "realm_access": {"roles": list(roles)},
            "comuna_territories": list(territories),
        }
        claims.update(overrides)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    def app(self) -> Starlette:
        async def certs(request: Request) -> JSONResponse:
            return JSONResponse(self.jwks())

        async def token(request: Request) -> JSONResponse:
            """client_credentials only: services under test get a `service` token."""
            form = parse_qs((await request.body()).decode())
            client_id = form.get("client_id", ["service"])[0]
            access = self.token(
                roles=["service"], territories=["VE"], client_id=client_id, subject=f"service-account-{client_id}"
            )
            return JSONResponse({"access_token": access, "expires_in": 300, "token_type": "Bearer"})

        return Starlette(
            routes=[
                Route(f"/realms/{REALM}/protocol/openid-connect/certs", certs),
                Route(f"/realms/{REALM}/protocol/openid-connect/token", token, methods=["POST"]),
            ]
        )


@contextmanager
def running_signing_issuer() -> Iterator[SigningKeyIssuer]:
    issuer = SigningKeyIssuer(free_port())
    server = uvicorn.Server(
        uvicorn.Config(issuer.app(), host="127.0.0.1", port=issuer.port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_tcp("127.0.0.1", issuer.port, 10)
    try:
        yield issuer
    finally:
        server.should_exit = True
        thread.join(10)
