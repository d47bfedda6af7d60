"""Minting Keycloak-shaped access tokens.

Consumers (our `TokenVerifier`, python-keycloak, any OIDC library) must not be able to tell
these from a Keycloak realm's tokens, so claim names and layout follow Keycloak exactly; only
Keycloak features Comuna does not use (sessions, refresh tokens, client roles) are left out.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from .config import SERVICE_ACCOUNT_PREFIX, ClientConfig, DevIssuerConfig, UserConfig
from .keys import SigningKey

# Keycloak's default client scopes; `openid` is added only when asked for, as Keycloak does.
DEFAULT_SCOPES = ("profile", "email")
SUPPORTED_SCOPES = frozenset({"openid", *DEFAULT_SCOPES})


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str


def subject_for(config: DevIssuerConfig, name: str) -> str:
    """A stable UUID `sub` per realm and user/service-account name (Keycloak subs are UUIDs).

    Stable across restarts and machines, so rows that store a `sub` stay attributable.
    """
    realm_namespace = uuid.uuid5(uuid.NAMESPACE_URL, f"comuna-dev-issuer:{config.realm}")
    return str(uuid.uuid5(realm_namespace, name))


def granted_scope(requested: str | None) -> str | None:
    """Scope string to grant, or None if an unknown scope was requested (Keycloak rejects those)."""
    asked = set((requested or "").split())
    if not asked <= SUPPORTED_SCOPES:
        return None
    return " ".join((["openid"] if "openid" in asked else []) + list(DEFAULT_SCOPES))


def issue_for_user(
    config: DevIssuerConfig,
    key: SigningKey,
    user: UserConfig,
    client: ClientConfig,
    scope: str,
) -> IssuedToken:
    return _issue(
        config,
        key,
        subject=subject_for(config, user.username),
        username=user.username,
        client=client,
        roles=user.realm_roles,
        territories=user.territories,
        scope=scope,
        extra={},
    )


def issue_for_service_account(
    config: DevIssuerConfig, key: SigningKey, client: ClientConfig, scope: str
) -> IssuedToken:
    username = SERVICE_ACCOUNT_PREFIX + client.client_id
    return _issue(
        config,
        key,
        subject=subject_for(config, username),
        username=username,
        client=client,
        roles=client.realm_roles,
        territories=client.territories,
        scope=scope,
        extra={"client_id": client.client_id},
    )


def _issue(
    config: DevIssuerConfig,
    key: SigningKey,
    *,
    subject: str,
    username: str,
    client: ClientConfig,
    roles: tuple[str, ...],
    territories: tuple[str, ...],
    scope: str,
    extra: dict[str, str],
) -> IssuedToken:
    now = int(time.time())
    ttl = config.access_token_ttl_seconds
    claims = {
        "exp": now + ttl,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "iss": config.issuer,
        "aud": config.audience,
        "sub": subject,
        "typ": "Bearer",
        "azp": client.client_id,
        "acr": "1",
        "realm_access": {"roles": list(roles)},
        "scope": scope,
        "preferred_username": username,
        "comuna_territories": list(territories),
        **extra,
    }
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    return IssuedToken(access_token=token, expires_in=ttl, scope=scope)
