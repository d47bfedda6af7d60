"""Principal semantics: territory coverage (see docs/conventions.md) and claim mapping.

A token says who calls, never where: its `comuna_territories` claim is not read at all."""

from __future__ import annotations

from typing import Any

import pytest

from comuna_platform.auth import AuthenticationError, Principal, scope_covers


def principal(roles: frozenset[str] = frozenset()) -> Principal:
    return Principal("sub", "alice", roles, "comuna-web")


@pytest.mark.parametrize(
    ("scope", "code", "expected"),
    [
        ("VE", "VE", True),
        ("VE", "VE.01.01.C0001.CC01", True),
        ("VE.01", "VE.01.01", True),
        ("VE.01.01.C0001", "VE.01.01.C0001", True),
        ("VE.01", "VE", False),  # a scope never covers its parent
        ("VE.01", "VE.02.01", False),  # nor a sibling
        ("VE.1", "VE.10", False),  # prefix without the separator is not a descendant
        ("VE.01.01.C0001", "VE.01.01.C00011", False),
        ("VE.01", "", False),
    ],
)
def test_scope_covers(scope: str, code: str, expected: bool) -> None:
    assert scope_covers(scope, code) is expected


def test_roles() -> None:
    p = principal(roles=frozenset({"operator", "registrar"}))
    assert p.has_role("operator")
    assert not p.has_role("overseer")
    assert p.has_any_role("overseer", "registrar")
    assert not p.has_any_role()


def test_from_claims_unions_realm_roles_and_audience_client_roles_only() -> None:
    claims: dict[str, Any] = {
        "sub": "u-1",
        "preferred_username": "alice",
        "azp": "comuna-web",
        "realm_access": {"roles": ["operator"]},
        "resource_access": {
            "comuna": {"roles": ["registrar"]},
            "other-client": {"roles": ["overseer"]},
        },
        "comuna_territories": ["VE.01", "VE.02", "VE.01"],
    }
    p = Principal.from_claims(claims, "comuna")
    assert p == Principal(
        subject="u-1",
        username="alice",
        roles=frozenset({"operator", "registrar"}),
        client_id="comuna-web",
    )
    assert not hasattr(p, "territories")


@pytest.mark.parametrize("territories", [["VE"], "VE", [1], {"VE": True}])
def test_a_territory_claim_is_ignored_whatever_it_holds(territories: object) -> None:
    plain = Principal.from_claims({"sub": "u-1", "realm_access": {"roles": ["spokesperson"]}}, "comuna")
    claimed = Principal.from_claims(
        {"sub": "u-1", "realm_access": {"roles": ["spokesperson"]}, "comuna_territories": territories}, "comuna"
    )
    assert claimed == plain


def test_from_claims_defaults_when_optional_claims_absent() -> None:
    p = Principal.from_claims({"sub": "svc"}, "comuna")
    assert (p.roles, p.username, p.client_id) == (frozenset(), None, None)


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": ""},
        {"sub": 5},
        {"sub": "x", "realm_access": {"roles": "operator"}},
        {"sub": "x", "realm_access": ["operator"]},
        {"sub": "x", "azp": 3},
    ],
)
def test_malformed_claims_reject_the_token(bad: dict[str, Any]) -> None:
    with pytest.raises(AuthenticationError) as info:
        Principal.from_claims(bad, "comuna")
    assert info.value.code == "token_invalid"


def test_principal_is_immutable() -> None:
    p = principal()
    with pytest.raises(AttributeError):
        p.subject = "other"  # type: ignore[misc]
