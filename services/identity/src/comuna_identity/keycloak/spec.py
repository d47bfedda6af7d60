"""The realm Comuna wants, as plain data: built from settings and identity's register."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from comuna_platform.auth.roles import SERVICE_ROLE, Role

PUBLIC_CLIENT_ID = "comuna-cli"
SERVICES = ("identity", "consultations", "funding", "projects")
SERVICE_CLIENT_IDS = tuple(f"svc-{name}" for name in SERVICES)
AUDIENCE_MAPPER_NAME = "comuna-audience"
PASSWORD_POLICY = "length(12) and notUsername and notEmail and passwordHistory(3)"  # noqa: S105 (a policy)

# Brute-force detection: 5 wrong passwords lock the account for 60 s, doubling up to 15 min;
# two attempts within a second count as a robot and wait a minute.
REALM_SETTINGS: dict[str, Any] = {
    "enabled": True,
    "sslRequired": "external",
    "registrationAllowed": False,
    "loginWithEmailAllowed": True,
    "duplicateEmailsAllowed": False,
    "bruteForceProtected": True,
    "permanentLockout": False,
    "failureFactor": 5,
    "waitIncrementSeconds": 60,
    "maxFailureWaitSeconds": 900,
    "maxDeltaTimeSeconds": 43200,
    "quickLoginCheckMilliSeconds": 1000,
    "minimumQuickLoginWaitSeconds": 60,
    "passwordPolicy": PASSWORD_POLICY,
    "accessTokenLifespan": 300,
    "ssoSessionIdleTimeout": 1800,
    "ssoSessionMaxLifespan": 36000,
    "offlineSessionIdleTimeout": 2592000,
    "revokeRefreshToken": True,
    "refreshTokenMaxReuse": 0,
}

ROLE_DESCRIPTIONS: dict[str, str] = {
    SERVICE_ROLE: "Service account of a Comuna service (client credentials). The only role ever assigned.",
    **{
        role.value: f"Comuna role name {role.value}; not assigned in Keycloak: identity's role assignments decide"
        for role in Role
    },
}


@dataclass(frozen=True)
class ClientSpec:
    client_id: str
    representation: dict[str, Any]
    # Confidential clients only: the secret from configuration.
    secret: str | None = None
    # Realm roles of its service account.
    service_account_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class GroupSpec:
    """One government or commune of the register; `path` is the group path, root first."""

    code: str
    name: str
    kind: str
    parent_code: str | None

    @property
    def attributes(self) -> dict[str, list[str]]:
        return {"territory_code": [self.code], "territory_name": [self.name], "territory_kind": [self.kind]}


@dataclass(frozen=True)
class UserSpec:
    username: str
    email: str | None
    first_name: str
    last_name: str
    # Codes of the groups (territories) the user belongs to.
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class RealmSpec:
    realm: str
    settings: dict[str, Any]
    roles: dict[str, str]
    clients: tuple[ClientSpec, ...]
    audience: str
    groups: tuple[GroupSpec, ...] = ()
    users: tuple[UserSpec, ...] = field(default_factory=tuple)


def audience_mapper(audience: str) -> dict[str, Any]:
    return {
        "name": AUDIENCE_MAPPER_NAME,
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {
            "included.custom.audience": audience,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
            "lightweight.claim": "false",
        },
    }


def public_client(*, development: bool, redirect_uris: list[str]) -> ClientSpec:
    return ClientSpec(
        client_id=PUBLIC_CLIENT_ID,
        representation={
            "name": "Comuna command line and web portal",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": True,
            "standardFlowEnabled": True,
            "implicitFlowEnabled": False,
            # The password grant exists only so curl, tests and the demo can get a staff token.
            "directAccessGrantsEnabled": development,
            "serviceAccountsEnabled": False,
            "frontchannelLogout": True,
            "redirectUris": sorted(set(redirect_uris)),
            "webOrigins": ["+"],
            "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": "+"},
        },
    )


def service_client(client_id: str, secret: str) -> ClientSpec:
    return ClientSpec(
        client_id=client_id,
        representation={
            "name": f"Comuna service {client_id.removeprefix('svc-')}",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": True,
            "redirectUris": [],
            "webOrigins": [],
        },
        secret=secret,
        service_account_roles=(SERVICE_ROLE,),
    )


def api_client(audience: str) -> ClientSpec:
    """The services' API as a client of its own, named by the audience every token carries: no
    flow issues tokens to it, but it is in every token's audience, so it may introspect them
    (Keycloak answers introspection only to a client the token is meant for). Its secret is
    Keycloak's own, read from the admin console by whoever needs introspection."""
    return ClientSpec(
        client_id=audience,
        representation={
            "name": "Comuna APIs (the audience of every token)",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": False,
            "redirectUris": [],
            "webOrigins": [],
        },
    )


def realm_spec(
    *,
    realm: str,
    audience: str,
    development: bool,
    redirect_uris: list[str],
    client_secrets: dict[str, str],
    groups: tuple[GroupSpec, ...] = (),
    users: tuple[UserSpec, ...] = (),
) -> RealmSpec:
    clients = (
        public_client(development=development, redirect_uris=redirect_uris),
        *(service_client(cid, client_secrets[cid]) for cid in SERVICE_CLIENT_IDS),
        api_client(audience),
    )
    return RealmSpec(
        realm=realm,
        settings=dict(REALM_SETTINGS),
        roles=dict(ROLE_DESCRIPTIONS),
        clients=clients,
        audience=audience,
        groups=groups,
        users=users,
    )
