"""The real Keycloak, as provisioned by `keycloak sync`, driven by stock python-keycloak, and its
tokens accepted by the platform's verifier exactly as the services accept them."""

from __future__ import annotations

import pytest
from keycloak import KeycloakAdmin, KeycloakOpenID
from keycloak.exceptions import KeycloakPostError

from comuna_platform.auth import TokenVerifier
from comuna_platform.auth.roles import SERVICE_ROLE, Role
from tests.support.issuer import AUDIENCE, PUBLIC_CLIENT, SERVICE_CLIENTS, TestIssuer, username_of

pytestmark = pytest.mark.asyncio(loop_scope="session")


def openid(issuer: TestIssuer, client_id: str = PUBLIC_CLIENT, secret: str | None = None) -> KeycloakOpenID:
    return KeycloakOpenID(
        server_url=issuer.base_url, realm_name=issuer.realm, client_id=client_id, client_secret_key=secret
    )


async def test_a_staff_login_is_keycloaks_own_from_token_to_logout(issuer: TestIssuer) -> None:
    subject = issuer.person()
    cli = openid(issuer)
    tokens = cli.token(username_of(subject), issuer.password_of(subject))
    assert cli.userinfo(tokens["access_token"])["sub"] == subject

    # Keycloak introspects a token only for a client in its audience: the API client `comuna`.
    service = openid(issuer, AUDIENCE, api_client_secret(issuer))
    introspected = service.introspect(tokens["access_token"])
    assert introspected["active"] is True
    assert introspected["sub"] == subject

    refreshed = cli.refresh_token(tokens["refresh_token"])
    assert refreshed["access_token"] != tokens["access_token"]
    cli.logout(refreshed["refresh_token"])
    # After logout the session is gone: neither refresh token works any more.
    with pytest.raises(KeycloakPostError):
        cli.refresh_token(refreshed["refresh_token"])
    assert service.introspect(refreshed["access_token"])["active"] is False


def api_client_secret(issuer: TestIssuer) -> str:
    admin = keycloak_admin(issuer)
    return str(admin.get_client_secrets(admin.get_client_id(AUDIENCE))["value"])


def keycloak_admin(issuer: TestIssuer) -> KeycloakAdmin:
    return KeycloakAdmin(
        server_url=issuer.base_url,
        username=issuer.keycloak.admin_username,
        password=issuer.keycloak.admin_password,
        realm_name=issuer.realm,
        user_realm_name="master",
    )


async def test_services_verify_keycloak_tokens_offline_and_no_territory_claim_exists(issuer: TestIssuer) -> None:
    verifier = TokenVerifier(issuer=issuer.issuer_url, audience=AUDIENCE)
    person = await verifier.verify(issuer.token(subject=issuer.person()))
    assert not person.has_role(SERVICE_ROLE)
    raw = openid(issuer).decode_token(issuer.token(), validate=False)
    assert "comuna_territories" not in raw
    assert raw["aud"] == AUDIENCE

    service = await verifier.verify(issuer.service_token("svc-funding"))
    assert service.has_role(SERVICE_ROLE)
    assert service.client_id == "svc-funding"


async def test_the_admin_api_lists_the_provisioned_roles_and_clients(issuer: TestIssuer) -> None:
    admin = keycloak_admin(issuer)
    roles = {role["name"] for role in admin.get_realm_roles()}
    assert {str(role) for role in Role} | {SERVICE_ROLE} <= roles
    clients = {client["clientId"]: client for client in admin.get_clients()}
    assert set(SERVICE_CLIENTS) | {PUBLIC_CLIENT, AUDIENCE} <= set(clients)
    assert clients[PUBLIC_CLIENT]["publicClient"] is True
    assert all(clients[c]["serviceAccountsEnabled"] for c in SERVICE_CLIENTS)
