"""Token-based authentication for Comuna services (Keycloak-compatible OIDC access tokens).

Transport adapters live in submodules so a service imports only what it serves:
`comuna_platform.auth.fastapi` for REST, `comuna_platform.auth.grpc` for gRPC.
"""

from .errors import (
    AuthenticationError,
    KeySetUnavailableError,
    PermissionDeniedError,
    TokenSourceError,
)
from .principal import Principal, scope_covers
from .token_source import ClientCredentialsTokenSource, TokenProvider
from .verifier import TokenVerifier

__all__ = [
    "AuthenticationError",
    "ClientCredentialsTokenSource",
    "KeySetUnavailableError",
    "PermissionDeniedError",
    "Principal",
    "TokenProvider",
    "TokenSourceError",
    "TokenVerifier",
    "scope_covers",
]
