"""Who may hold and grant which role where: the pure rules, table-driven and with Hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_identity.domain import rules
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.auth.access import Assignment, Caller, Lineage
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Forbidden, InvalidInput

K = TerritoryKind
STATE_A, STATE_B = "VE.01", "VE.02"
MUNICIPALITY = "VE.01.01"
COMMUNE = "VE.01.01.C1"


def at(code: str) -> Lineage:
    """The lineage of a unit in this test's register, where each unit sits under the code
    before its last dot (the rules only see lineages; how they are found is the register's)."""
    parts = code.split(".")
    return Lineage(tuple(".".join(parts[:i]) for i in range(1, len(parts) + 1)))


def caller(*held: tuple[Role, str], subject: str = "granter") -> Caller:
    principal = Principal(subject=subject, username=None, roles=frozenset(), client_id="comuna-cli")
    return Caller(principal, tuple(Assignment(role, code) for role, code in held))


@pytest.mark.parametrize(
    ("role", "kind", "ok"),
    [
        (Role.OPERATOR, K.COUNTRY, True),
        (Role.OPERATOR, K.STATE, False),
        (Role.AUDITOR, K.COUNTRY, True),
        (Role.AUDITOR, K.COMMUNE, False),
        (Role.REGIONAL_OFFICIAL, K.STATE, True),
        (Role.REGIONAL_OFFICIAL, K.MUNICIPALITY, False),
        (Role.MUNICIPAL_OFFICIAL, K.MUNICIPALITY, True),
        (Role.MUNICIPAL_OFFICIAL, K.STATE, False),
        (Role.SPOKESPERSON, K.COMMUNE, True),
        (Role.SPOKESPERSON, K.COMMUNAL_CIRCUIT, True),
        (Role.SPOKESPERSON, K.COMMUNAL_COUNCIL, False),
        (Role.OVERSEER, K.COMMUNAL_CIRCUIT, True),
        (Role.OVERSEER, K.MUNICIPALITY, False),
        (Role.TABLE_OFFICER, K.COMMUNE, True),
        (Role.TABLE_OFFICER, K.COUNTRY, False),
        *[(Role.REGISTRAR, kind, True) for kind in K],
        (Role.RESIDENT, K.COMMUNAL_COUNCIL, True),
        (Role.RESIDENT, K.COMMUNE, False),
    ],
)
def test_each_role_is_held_at_its_kind_of_territory(role: Role, kind: TerritoryKind, ok: bool) -> None:
    if ok:
        rules.check_role_territory(role, kind)
    else:
        with pytest.raises(InvalidInput) as refused:
            rules.check_role_territory(role, kind)
        assert refused.value.code == "role_territory_invalid"


@pytest.mark.parametrize(
    ("held", "role", "where", "outcome"),
    [
        ((Role.OPERATOR, "VE"), Role.OPERATOR, "VE", "ok"),
        ((Role.OPERATOR, "VE"), Role.AUDITOR, "VE", "ok"),
        ((Role.OPERATOR, "VE"), Role.REGIONAL_OFFICIAL, STATE_B, "ok"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.MUNICIPAL_OFFICIAL, MUNICIPALITY, "ok"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.SPOKESPERSON, COMMUNE, "ok"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.REGISTRAR, STATE_A, "ok"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.REGISTRAR, STATE_B, "forbidden_territory"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.OPERATOR, "VE", "forbidden_role"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.REGIONAL_OFFICIAL, STATE_A, "forbidden_role"),
        ((Role.REGIONAL_OFFICIAL, STATE_A), Role.AUDITOR, "VE", "forbidden_role"),
        ((Role.MUNICIPAL_OFFICIAL, MUNICIPALITY), Role.TABLE_OFFICER, COMMUNE, "ok"),
        ((Role.MUNICIPAL_OFFICIAL, MUNICIPALITY), Role.MUNICIPAL_OFFICIAL, MUNICIPALITY, "forbidden_role"),
        ((Role.MUNICIPAL_OFFICIAL, MUNICIPALITY), Role.OVERSEER, "VE.01.02.C1", "forbidden_territory"),
        ((Role.REGISTRAR, MUNICIPALITY), Role.OVERSEER, COMMUNE, "ok"),
        ((Role.REGISTRAR, MUNICIPALITY), Role.REGISTRAR, COMMUNE, "forbidden_role"),
        ((Role.REGISTRAR, COMMUNE), Role.SPOKESPERSON, "VE.01.01.C10", "forbidden_territory"),
        ((Role.SPOKESPERSON, COMMUNE), Role.OVERSEER, COMMUNE, "forbidden_role"),
        ((Role.AUDITOR, "VE"), Role.SPOKESPERSON, COMMUNE, "forbidden_role"),
        ((Role.OPERATOR, "VE"), Role.RESIDENT, "VE.01.01.C1.CC1", "role_not_grantable"),
    ],
)
def test_who_grants_what_where(held: tuple[Role, str], role: Role, where: str, outcome: str) -> None:
    if outcome == "ok":
        rules.check_grant(caller(held), subject="grantee", role=role, lineage=at(where))
        return
    with pytest.raises(Forbidden) as refused:
        rules.check_grant(caller(held), subject="grantee", role=role, lineage=at(where))
    assert refused.value.code == outcome


def test_nobody_grants_to_themselves() -> None:
    operator = caller((Role.OPERATOR, "VE"), subject="me")
    with pytest.raises(Forbidden) as refused:
        rules.check_grant(operator, subject="me", role=Role.SPOKESPERSON, lineage=at(COMMUNE))
    assert refused.value.code == "own_assignment"


codes = st.lists(st.sampled_from(["01", "02", "1", "10", "C1", "C10"]), min_size=0, max_size=4).map(
    lambda parts: ".".join(["VE", *parts])
)
granting = st.sampled_from(sorted(rules.GRANTS))


@given(held_role=granting, held_at=codes, role=st.sampled_from(list(Role)), where=codes)
def test_a_grant_is_allowed_exactly_when_the_granter_role_covers_the_place(
    held_role: Role, held_at: str, role: Role, where: str
) -> None:
    """For any single assignment: allowed iff its role may grant `role` and its territory covers
    `where` (so a state official's power stops at the state's border, `VE.1` never covering `VE.10`)."""
    expected = role is not Role.RESIDENT and role in rules.GRANTS[held_role] and held_at in at(where)
    try:
        rules.check_grant(caller((held_role, held_at)), subject="grantee", role=role, lineage=at(where))
        allowed = True
    except Forbidden:
        allowed = False
    assert allowed == expected


def test_only_the_operator_grants_national_roles_and_registrars_grant_only_local_ones() -> None:
    assert rules.granters_of(Role.OPERATOR) == {Role.OPERATOR}
    assert rules.granters_of(Role.AUDITOR) == {Role.OPERATOR}
    assert rules.granters_of(Role.REGISTRAR) == {Role.OPERATOR, Role.REGIONAL_OFFICIAL, Role.MUNICIPAL_OFFICIAL}
    assert rules.GRANTS[Role.REGISTRAR] == {Role.SPOKESPERSON, Role.OVERSEER, Role.TABLE_OFFICER}
    assert rules.granters_of(Role.RESIDENT) == frozenset()


@pytest.mark.parametrize(
    ("role", "consultation", "table", "ok"),
    [
        (Role.TABLE_OFFICER, "c", "T1", True),
        (Role.TABLE_OFFICER, None, "T1", False),
        (Role.TABLE_OFFICER, "c", None, False),
        (Role.SPOKESPERSON, None, None, True),
        (Role.SPOKESPERSON, "c", None, False),
        (Role.REGISTRAR, None, "T1", False),
    ],
)
def test_table_terms_belong_to_table_officers_only(
    role: Role, consultation: str | None, table: str | None, ok: bool
) -> None:
    now = datetime.now(UTC)

    def call() -> None:
        rules.check_terms(role, consultation_id=consultation, table_code=table, valid_from=now, valid_until=None)

    if ok:
        call()
    else:
        with pytest.raises(InvalidInput) as refused:
            call()
        assert refused.value.code == "table_terms_invalid"


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)])
def test_the_period_cannot_be_empty(delta: timedelta) -> None:
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput) as refused:
        rules.check_terms(Role.OVERSEER, consultation_id=None, table_code=None, valid_from=now, valid_until=now + delta)
    assert refused.value.code == "validity_invalid"


def test_operators_and_auditors_see_everything_others_where_they_grant() -> None:
    assert rules.visibility(caller((Role.AUDITOR, "VE"))) is None
    assert rules.visibility(caller((Role.OPERATOR, "VE"))) is None
    assert rules.visibility(caller((Role.REGISTRAR, COMMUNE), (Role.SPOKESPERSON, "VE.01.01.C2"))) == (COMMUNE,)
    assert rules.visibility(caller((Role.SPOKESPERSON, COMMUNE))) == ()
