"""What a failed call to identity means for the request that needed it, in one place.

The platform asks identity where a caller may act (`ResolvePrincipal`) and where a territory
sits (`GetTerritory`). Neither answer may be guessed: identity unreachable, slow or refusing is
503 for the request (gRPC UNAVAILABLE), never "allowed" and never "nothing". Both clients map
their failures here, so the codes, the token refresh and the logging cannot drift apart.
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc

from comuna_platform.errors import Unavailable

from .errors import TokenSourceError

log = logging.getLogger(__name__)

# Worth no error line: the network or identity's load, not a bug (the 503 says so to the caller).
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class Invalidatable(Protocol):
    """A token source that can be told its cached token was refused."""

    def invalidate(self) -> None: ...


def identity_unavailable(
    exc: grpc.aio.AioRpcError | TokenSourceError, *, method: str, unable: str, tokens: Invalidatable | None
) -> Unavailable:
    """The 503 for a failed call of identity's `method`; `unable` is what the client could not
    learn (the problem's detail). A refused token (UNAUTHENTICATED) is dropped from `tokens`:
    perhaps it was revoked or identity's keys rotated, so the next call fetches a new one."""
    if isinstance(exc, TokenSourceError):
        log.error("no service token for identity: %s", exc)
        return Unavailable("could not obtain a service token", code="service_token_unavailable")
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED and tokens is not None:
        tokens.invalidate()
    if code not in _TRANSIENT:
        log.error("identity %s failed: %s %s", method, code, exc.details())
    return Unavailable(unable, code="identity_unavailable")
