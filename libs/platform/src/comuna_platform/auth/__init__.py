"""Token-based authentication for Comuna services (Keycloak-compatible OIDC access tokens).

Transport adapters live in submodules so a service imports only what it serves:
`comuna_platform.auth.fastapi` for REST, `comuna_platform.auth.grpc` for gRPC.
"""

from .access import Lineage
from .errors import (
    AuthenticationError,
    KeySetUnavailableError,
    PermissionDeniedError,
    TokenSourceError,
)
from .principal import Principal
from .token_source import ClientCredentialsTokenSource, TokenProvider
from .verifier import TokenVerifier

__all__ = [
    "AuthenticationError",
    "ClientCredentialsTokenSource",
    "KeySetUnavailableError",
    "Lineage",
    "PermissionDeniedError",
    "Principal",
    "TokenProvider",
    "TokenSourceError",
    "TokenVerifier",
]
