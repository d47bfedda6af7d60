"""FastAPI dependencies: header parsing, 401 on bad tokens, 403 on missing roles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from comuna_platform.auth import (
    AuthenticationError,
    PermissionDeniedError,
    Principal,
    TokenVerifier,
)
from comuna_platform.auth.bearer import bearer_token
from comuna_platform.auth.fastapi import CurrentPrincipal, require_roles
from tests.unit.auth.comuna_auth_testkit import KeyMaterial, claims, sign


def build_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = verifier

    @app.exception_handler(AuthenticationError)
    async def unauthenticated(_: Request, exc: AuthenticationError) -> JSONResponse:
        return JSONResponse({"code": exc.code}, status_code=401)

    @app.exception_handler(PermissionDeniedError)
    async def forbidden(_: Request, exc: PermissionDeniedError) -> JSONResponse:
        return JSONResponse({"code": exc.code}, status_code=403)

    @app.get("/me")
    async def me(principal: CurrentPrincipal) -> dict[str, str | None]:
        return {"sub": principal.subject, "username": principal.username}

    @app.get("/operators")
    async def operators(
        principal: Annotated[Principal, require_roles("operator", "overseer")],
    ) -> dict[str, str | None]:
        return {"username": principal.username}

    @app.get("/registrars", dependencies=[require_roles("registrar")])
    async def registrars() -> dict[str, bool]:
        return {"ok": True}

    return app


@pytest_asyncio.fixture
async def client(verifier: TokenVerifier) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def bearer(key: KeyMaterial, **overrides: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign(key, claims(**overrides))}"}


@pytest.mark.asyncio
async def test_valid_token(client: httpx.AsyncClient, key_a: KeyMaterial) -> None:
    response = await client.get("/me", headers=bearer(key_a, sub="u-1"))
    assert response.status_code == 200
    assert response.json() == {"sub": "u-1", "username": "alice"}


@pytest.mark.asyncio
@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer  "])
async def test_missing_or_non_bearer_header_is_401(client: httpx.AsyncClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = await client.get("/me", headers=headers)
    assert (response.status_code, response.json()) == (401, {"code": "token_missing"})


@pytest.mark.asyncio
async def test_invalid_token_is_401_with_code(client: httpx.AsyncClient, key_a: KeyMaterial) -> None:
    response = await client.get("/me", headers=bearer(key_a, aud="elsewhere"))
    assert (response.status_code, response.json()) == (401, {"code": "token_audience"})


@pytest.mark.asyncio
async def test_require_roles_accepts_any_listed_role(client: httpx.AsyncClient, key_a: KeyMaterial) -> None:
    ok = await client.get("/operators", headers=bearer(key_a))
    assert (ok.status_code, ok.json()) == (200, {"username": "alice"})
    denied = await client.get("/registrars", headers=bearer(key_a))
    assert (denied.status_code, denied.json()) == (403, {"code": "forbidden_role"})
    anonymous = await client.get("/registrars")
    assert anonymous.status_code == 401


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER abc ") == "abc"


def test_require_roles_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_roles()
