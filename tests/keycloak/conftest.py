"""The session's one real Keycloak (`embedded_keycloak` of the dev stack's pytest plugin), seen
by the sync tests as an admin connection. Each test module provisions realms of its own names."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from comuna_devstack.keycloak import EmbeddedKeycloak


@dataclass(frozen=True)
class KeycloakServer:
    base_url: str
    admin_username: str
    admin_password: str


@pytest.fixture(scope="session")
def keycloak_admin(embedded_keycloak: EmbeddedKeycloak) -> KeycloakServer:
    return KeycloakServer(
        embedded_keycloak.base_url, embedded_keycloak.admin_username, embedded_keycloak.admin_password
    )
