"""Whole dev stacks in tests share the session's one Keycloak, each in a realm of its own."""

from __future__ import annotations

import uuid
from typing import Any

from comuna_devstack.keycloak import EmbeddedKeycloak


def shared_keycloak(keycloak: EmbeddedKeycloak, name: str) -> dict[str, Any]:
    """`StackConfig` fields pointing a stack at the session Keycloak, in a new realm."""
    return {
        "external_keycloak_url": keycloak.base_url,
        "keycloak_admin_username": keycloak.admin_username,
        "keycloak_admin_password": keycloak.admin_password,
        "realm": f"{name}-{uuid.uuid4().hex[:8]}",
    }


def shared_keycloak_env(keycloak: EmbeddedKeycloak, name: str) -> dict[str, str]:
    """The same as `comuna-dev` settings, for stacks run as a child process."""
    return {
        "COMUNA_DEV_KEYCLOAK_URL": keycloak.base_url,
        "COMUNA_DEV_KEYCLOAK_ADMIN_USERNAME": keycloak.admin_username,
        "COMUNA_DEV_KEYCLOAK_ADMIN_PASSWORD": keycloak.admin_password,
        "COMUNA_DEV_KEYCLOAK_REALM": f"{name}-{uuid.uuid4().hex[:8]}",
    }
