"""Outgoing gRPC to other services: the service's own client-credentials token and a channel.

Every service that calls identity (consultations for the census, all of them for
`ResolvePrincipal`) builds these the same way, so it is done once here.
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc

from comuna_platform.auth.errors import TokenSourceError
from comuna_platform.auth.grpc import bearer_token_interceptors
from comuna_platform.auth.token_source import ClientCredentialsTokenSource
from comuna_platform.rpc import client_channel
from comuna_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


class ServiceTokens(Protocol):
    """A bearer-token source that can be told its cached token was refused."""

    async def token(self) -> str: ...

    def invalidate(self) -> None: ...


class MissingServiceClient:
    """Stands in for a token source when no service client is configured: calls fail as 503."""

    async def token(self) -> str:
        raise TokenSourceError("SERVICE_CLIENT_ID is not set")

    def invalidate(self) -> None:
        pass


def service_tokens(settings: ServiceSettings) -> ServiceTokens:
    """The service account's client-credentials tokens (cached until shortly before expiry)."""
    if not settings.service_client_id:
        log.warning("no service client configured: calls to other services will fail")
        return MissingServiceClient()
    secret = settings.service_client_secret.get_secret_value() if settings.service_client_secret else ""
    return ClientCredentialsTokenSource(settings.token_url, settings.service_client_id, secret)


def identity_channel(settings: ServiceSettings, tokens: ServiceTokens) -> grpc.aio.Channel:
    """A channel to identity's gRPC API that sends the service's token with every call."""
    return client_channel(settings.identity_grpc_target, bearer_token_interceptors(tokens))
