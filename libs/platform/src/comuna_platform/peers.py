"""Outgoing gRPC to other services: the service's own client-credentials token and a channel.

Every service that calls identity (consultations for the roll, all of them for
`ResolvePrincipal`, some for `GetTerritory`) builds these the same way, so it is done once here,
and a runtime holds one `IdentityPeer` shared by all its clients of identity
(`Runtime.identity()`): one token source, one channel (one HTTP/2 connection), closed once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
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


@dataclass(frozen=True)
class IdentityPeer:
    """The service's one way to identity: its token source and a channel that sends the token.

    The clients built on it (access resolver, territory lineages, consultations' identity
    client) share it and never close it; its owner (the runtime) does, once."""

    tokens: ServiceTokens
    channel: grpc.aio.Channel
    # Deadline of each call to identity (`IDENTITY_TIMEOUT_SECONDS`).
    timeout: float

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> IdentityPeer:
        tokens = service_tokens(settings)
        return cls(tokens, identity_channel(settings, tokens), settings.identity_timeout_seconds)

    async def close(self) -> None:
        await self.channel.close()
