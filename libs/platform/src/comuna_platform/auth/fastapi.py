"""FastAPI dependencies that turn the `Authorization` header into a `Principal`, and a
`Principal` into a `Caller` (where it may act, from identity's role assignments).

The verifier lives on `app.state.token_verifier` and the resolver on `app.state.access_resolver`
(both set by the app factory) rather than in module globals, so tests and multiple apps in one
process each get their own settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from .access import AccessResolver, Caller
from .bearer import bearer_token
from .lineages import TerritoryLineages
from .principal import Principal
from .roles import SERVICE_ROLE, Role
from .verifier import TokenVerifier


async def bearer_principal(request: Request) -> Principal:
    """Dependency: the verified caller, or `AuthenticationError` (mapped to 401)."""
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        # A wiring bug, not the caller's fault: fail loudly as a 500, never as "allowed".
        raise RuntimeError("app.state.token_verifier is not configured")
    return await verifier.verify(bearer_token(request.headers.get("authorization")))


CurrentPrincipal = Annotated[Principal, Depends(bearer_principal)]
"""Annotated shortcut: `async def endpoint(principal: CurrentPrincipal)`."""


async def current_caller(request: Request, principal: CurrentPrincipal) -> Caller:
    """Dependency: the verified caller with its current assignments (resolved by identity)."""
    resolver: AccessResolver | None = getattr(request.app.state, "access_resolver", None)
    if resolver is None:
        raise RuntimeError("app.state.access_resolver is not configured")
    if principal.has_role(SERVICE_ROLE):
        # A service account is not a person: it holds no assignments to resolve.
        return Caller(principal)
    resolution = await resolver.resolve(principal)
    return Caller(principal, resolution.assignments, resolution.resident_id)


CurrentCaller = Annotated[Caller, Depends(current_caller)]
"""Annotated shortcut: `async def endpoint(caller: CurrentCaller)`; territory checks in the handler."""


async def territory_lineages(request: Request) -> TerritoryLineages:
    """The service's `TerritoryLineages` (`ServiceSpec.territory_lineages`). Async, as every
    dependency here: FastAPI runs a plain `def` dependency in a worker thread, a thread hop
    per request for a getattr."""
    lineages: TerritoryLineages | None = getattr(request.app.state, "territory_lineages", None)
    if lineages is None:
        raise RuntimeError("app.state.territory_lineages is not configured")
    return lineages


TerritoryLineagesDep = Annotated[TerritoryLineages, Depends(territory_lineages)]


def require_assignment(*roles: Role) -> Any:
    """`Depends(...)` yielding the `Caller` if it holds ANY of `roles` somewhere, else 403.

    The territory check stays in the handler (`caller.require(roles, lineage)`),
    because only it knows, from its own data, which territory the request touches.
    """
    if not roles:
        raise ValueError("require_assignment() needs at least one role")

    async def _require(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
        caller.require_role(*roles)
        return caller

    # Declared on the dependency, so the roles an endpoint admits are read from its code
    # (`admitted_roles`), e.g. by the authorization matrix test, and never typed twice.
    setattr(_require, _ADMITTED_ROLES, frozenset(roles))
    return Depends(_require)


_ADMITTED_ROLES = "__comuna_admitted_roles__"


def admitted_roles(dependency: Callable[..., Any] | None) -> frozenset[Role] | None:
    """The roles a `require_assignment` dependency admits; None for any other callable."""
    roles: frozenset[Role] | None = getattr(dependency, _ADMITTED_ROLES, None)
    return roles
