"""Authentication and authorisation failures with stable machine-readable codes.

These are deliberately plain exceptions (not `ProblemError`s): the auth package must not decide
how a transport renders them. The REST layer maps `AuthenticationError` to 401 and
`PermissionDeniedError` to 403; the gRPC interceptor maps them to UNAUTHENTICATED and
PERMISSION_DENIED. `code` is part of the public contract (clients and dashboards key on it);
`detail` is for humans and never contains token material.
"""

from __future__ import annotations


class AuthenticationError(Exception):
    """The caller did not prove who it is (no, malformed, expired or untrusted token).

    Known codes: ``token_missing``, ``token_invalid``, ``token_expired``,
    ``token_not_yet_valid``, ``token_issuer``, ``token_audience``.
    """

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code


class PermissionDeniedError(Exception):
    """The caller is known but lacks the role or territory scope for the operation."""

    def __init__(self, code: str = "forbidden_role", detail: str | None = None) -> None:
        super().__init__(detail or code)
        self.code = code
        self.detail = detail or code


class KeySetUnavailableError(Exception):
    """The issuer's key set could not be fetched, so no token can be checked right now.

    Kept apart from `AuthenticationError` on purpose: this is the server's problem, not the
    caller's, so it should surface as 503/UNAVAILABLE (retry later) rather than 401, which
    would make well-behaved clients throw away a perfectly good token.
    """

    code = "jwks_unavailable"


class TokenSourceError(Exception):
    """Obtaining an outgoing client-credentials token failed (issuer down or credentials refused)."""

    code = "token_source_failed"
