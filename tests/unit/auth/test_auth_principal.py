"""Principal semantics: territory coverage by lineage (see docs/conventions.md) and claim mapping.

A token says who calls, never where: its `comuna_territories` claim is not read at all."""

from __future__ import annotations

from typing import Any

import pytest

from comuna_platform.auth import AuthenticationError, Principal
from comuna_platform.auth.access import Assignment, Lineage
from comuna_platform.auth.roles import Role


def principal(roles: frozenset[str] = frozenset()) -> Principal:
    return Principal("sub", "alice", roles, "comuna-web")


def lineage(*codes: str) -> Lineage:
    return Lineage(codes)


@pytest.mark.parametrize(
    ("held_at", "where", "expected"),
    [
        ("VE", lineage("VE"), True),
        ("VE", lineage("VE", "LARA", "IRIBARREN", "C0001", "CC01"), True),
        ("LARA", lineage("VE", "LARA", "IRIBARREN"), True),
        ("C0001", lineage("VE", "LARA", "IRIBARREN", "C0001"), True),
        ("LARA", lineage("VE"), False),  # an assignment never covers its parent
        ("LARA", lineage("VE", "FALCON", "MIRANDA"), False),  # nor a sibling's descendants
        # Codes are names, not paths: a code that extends another says nothing about nesting.
        ("VE.1", lineage("VE", "VE.10"), False),
        ("C0001", lineage("VE", "LARA", "IRIBARREN", "C00011"), False),
    ],
)
def test_an_assignment_covers_its_territory_and_what_sits_under_it(
    held_at: str, where: Lineage, expected: bool
) -> None:
    assert Assignment(Role.REGISTRAR, held_at).covers(where) is expected


def test_a_council_that_moved_is_covered_by_its_new_communes_assignment_only() -> None:
    before = lineage("VE", "LARA", "IRIBARREN", "C1", "CC1")
    after = lineage("VE", "LARA", "IRIBARREN", "C2", "CC1")
    old, new = Assignment(Role.REGISTRAR, "C1"), Assignment(Role.REGISTRAR, "C2")
    assert (old.covers(before), new.covers(before)) == (True, False)
    assert (old.covers(after), new.covers(after)) == (False, True)


def test_a_bare_code_is_refused_rather_than_read_as_a_path() -> None:
    with pytest.raises(TypeError):
        Assignment(Role.REGISTRAR, "VE").covers("VE.01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        Lineage(())


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
