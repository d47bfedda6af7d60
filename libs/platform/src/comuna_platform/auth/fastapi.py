"""FastAPI dependencies that turn the `Authorization` header into a `Principal`.

The verifier lives on `app.state.token_verifier` (set by the app factory) rather than in a
module global, so tests and multiple apps in one process each get their own issuer settings.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from .bearer import bearer_token
from .errors import PermissionDeniedError
from .principal import Principal
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


def require_roles(*roles: str) -> Any:
    """`Depends(...)` yielding the Principal if it holds ANY of `roles`, else 403.

    Use as a parameter default, in `Annotated[Principal, require_roles("operator")]`, or in a
    router's `dependencies=[...]`. Territory checks stay in the handlers, because only they
    know which territory a request touches.
    """
    if not roles:
        raise ValueError("require_roles() needs at least one role")
    wanted = frozenset(roles)

    async def _require(principal: CurrentPrincipal) -> Principal:
        if principal.roles.isdisjoint(wanted):
            raise PermissionDeniedError(
                "forbidden_role",
                f"requires one of the roles: {', '.join(sorted(wanted))}",
            )
        return principal

    return Depends(_require)
