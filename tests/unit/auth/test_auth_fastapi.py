"""FastAPI dependencies: header parsing, 401 on bad tokens, 403 unless identity's assignments
(here a fake resolver: pure wiring) give the role; token roles and territory claims give nothing."""

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
from comuna_platform.auth.access import Assignment, Caller, Lineage, Resolution
from comuna_platform.auth.bearer import bearer_token
from comuna_platform.auth.fastapi import CurrentCaller, CurrentPrincipal, require_assignment
from comuna_platform.auth.roles import Role
from tests.unit.auth.comuna_auth_testkit import KeyMaterial, claims, sign

# What identity would answer, by subject.
ASSIGNMENTS = {
    "u-operator": (Assignment(Role.OPERATOR, "VE"),),
    "u-spokesperson-c1": (Assignment(Role.SPOKESPERSON, "VE.01.01.C1"),),
}


class FakeResolver:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def resolve(self, principal: Principal) -> Resolution:
        self.asked.append(principal.subject)
        return Resolution(principal.subject, ASSIGNMENTS.get(principal.subject, ()))


def build_app(verifier: TokenVerifier, resolver: FakeResolver | None) -> FastAPI:
    app = FastAPI()
    app.state.token_verifier = verifier
    if resolver is not None:
        app.state.access_resolver = resolver

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
    async def operators(caller: Annotated[Caller, require_assignment(Role.OPERATOR)]) -> dict[str, str]:
        return {"sub": caller.subject}

    @app.get("/communes/{code}/candidates")
    async def candidates(code: str, caller: CurrentCaller) -> dict[str, bool]:
        # This app's register: each code sits under the code before its last dot.
        parts = code.split(".")
        lineage = Lineage(tuple(".".join(parts[:i]) for i in range(1, len(parts) + 1)))
        caller.require([Role.SPOKESPERSON, Role.OPERATOR], lineage)
        return {"ok": True}

    @app.get("/whoami")
    async def whoami(caller: CurrentCaller) -> dict[str, object]:
        return {"service": caller.is_service, "roles": sorted(a.role for a in caller.assignments)}

    return app


@pytest.fixture
def resolver() -> FakeResolver:
    return FakeResolver()


@pytest_asyncio.fixture
async def client(verifier: TokenVerifier, resolver: FakeResolver) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(verifier, resolver))
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
async def test_the_role_comes_from_identity_not_from_the_token(client: httpx.AsyncClient, key_a: KeyMaterial) -> None:
    ok = await client.get("/operators", headers=bearer(key_a, sub="u-operator", realm_access={"roles": []}))
    assert (ok.status_code, ok.json()) == (200, {"sub": "u-operator"})
    # The token claims the operator role everywhere; identity knows no assignment of this subject.
    claimed = bearer(key_a, sub="u-nobody", realm_access={"roles": ["operator"]}, comuna_territories=["VE"])
    denied = await client.get("/operators", headers=claimed)
    assert (denied.status_code, denied.json()) == (403, {"code": "forbidden_role"})
    anonymous = await client.get("/operators")
    assert anonymous.status_code == 401


@pytest.mark.asyncio
async def test_a_territory_claim_never_widens_an_assignment(client: httpx.AsyncClient, key_a: KeyMaterial) -> None:
    headers = bearer(key_a, sub="u-spokesperson-c1", comuna_territories=["VE"])
    assert (await client.get("/communes/VE.01.01.C1/candidates", headers=headers)).status_code == 200
    elsewhere = await client.get("/communes/VE.01.01.C2/candidates", headers=headers)
    assert (elsewhere.status_code, elsewhere.json()) == (403, {"code": "forbidden_territory"})
    national = await client.get("/communes/VE.01.01.C2/candidates", headers=bearer(key_a, sub="u-operator"))
    assert national.status_code == 200


@pytest.mark.asyncio
async def test_service_accounts_are_not_resolved(
    client: httpx.AsyncClient, key_a: KeyMaterial, resolver: FakeResolver
) -> None:
    headers = bearer(key_a, sub="svc-1", azp="svc-funding", realm_access={"roles": ["service"]})
    response = await client.get("/whoami", headers=headers)
    assert response.json() == {"service": True, "roles": []}
    assert resolver.asked == []


@pytest.mark.asyncio
async def test_a_missing_resolver_is_a_wiring_error_never_allowed(verifier: TokenVerifier, key_a: KeyMaterial) -> None:
    transport = httpx.ASGITransport(app=build_app(verifier, None), raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        with pytest.raises(RuntimeError, match="access_resolver"):
            await http.get("/operators", headers=bearer(key_a, sub="u-operator"))


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER abc ") == "abc"


def test_require_assignment_needs_a_role() -> None:
    with pytest.raises(ValueError, match="at least one role"):
        require_assignment()
