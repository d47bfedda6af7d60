"""Who is calling, reduced to what Comuna authorisation needs.

Services never look at raw token claims: they get a `Principal`, so the Keycloak claim layout
(realm vs. client roles) is interpreted in exactly one place. A token proves who calls, never
where they may act: that comes from identity's role assignments (`comuna_platform.auth.access`),
so no territory claim is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AuthenticationError


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a person (password grant) or a service account."""

    subject: str
    username: str | None
    roles: frozenset[str]
    client_id: str | None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def has_any_role(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], audience: str) -> Principal:
        """Build from verified Keycloak access-token claims.

        Roles are realm roles plus the client roles of `audience` only: client roles granted
        for some other client must not leak authority into this one. Malformed role claims
        reject the token rather than being silently dropped. Any `comuna_territories` claim
        is ignored: a token never says where its bearer may act.
        """
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthenticationError("token_invalid", "token has no subject")
        roles = set(_string_list(_nested(claims, "realm_access", "roles"), "realm_access.roles"))
        client_roles = _nested(claims, "resource_access", audience, "roles")
        roles.update(_string_list(client_roles, f"resource_access.{audience}.roles"))
        return cls(
            subject=subject,
            username=_optional_str(claims.get("preferred_username"), "preferred_username"),
            roles=frozenset(roles),
            client_id=_optional_str(claims.get("azp"), "azp"),
        )


def _nested(claims: Mapping[str, Any], *path: str) -> object:
    node: object = claims
    for depth, key in enumerate(path):
        if node is None:
            return None
        if not isinstance(node, Mapping):
            name = ".".join(path[:depth])
            raise AuthenticationError("token_invalid", f"claim {name} must be an object")
        node = node.get(key)
    return node


def _string_list(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthenticationError("token_invalid", f"claim {name} must be a list of strings")
    return list(value)


def _optional_str(value: object, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise AuthenticationError("token_invalid", f"claim {name} must be a string")
