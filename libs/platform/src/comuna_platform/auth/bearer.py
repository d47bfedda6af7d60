"""Parsing of `Authorization: Bearer <token>` values, shared by the HTTP and gRPC transports."""

from __future__ import annotations

from .errors import AuthenticationError


def bearer_token(authorization: str | None) -> str:
    """The token from a bearer authorization value; the scheme is case-insensitive (RFC 9110).

    Anything else (absent, Basic, empty) is `token_missing`: the caller did not present a
    bearer token at all, which clients handle differently from a rejected one.
    """
    if not authorization:
        raise AuthenticationError("token_missing", "missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthenticationError("token_missing", "authorization header is not a bearer token")
    return token
