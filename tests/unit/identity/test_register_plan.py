"""The import's checks across rows and against the register, as pure logic (no database)."""

from __future__ import annotations

import uuid
from datetime import date

from comuna_identity.domain.register_import import Row, plan
from comuna_identity.storage.territory_bulk import Registered
from comuna_platform.bulk import RowErrors

SINCE = date(2000, 1, 1)


def registered(code: str, kind: str, parent: Registered | None, *, status: str = "active") -> Registered:
    return Registered(uuid.uuid4(), code, code, kind, parent.id if parent else None, status, SINCE, None, SINCE)


def register() -> dict[str, Registered]:
    root = registered("VE", "country", None)
    state = registered("ST", "state", root)
    municipality = registered("MU", "municipality", state)
    commune = registered("C1", "commune", municipality)
    council = registered("CC1", "communal_council", commune)
    return {u.code: u for u in (root, state, municipality, commune, council)}


def row(line: int, code: str, kind: str, parent: str | None, *, day: date = date(2025, 1, 1), **extra: str) -> Row:
    return Row(line, code, extra.get("name", code), kind, parent, day, extra.get("status", "active"))


def codes(errors: RowErrors) -> set[tuple[int, str]]:
    try:
        errors.raise_if_any()
    except Exception as exc:
        return {(e.line, e.code) for e in exc.errors}  # type: ignore[attr-defined]
    return set()


def test_rows_equal_to_the_register_change_nothing_whatever_their_day() -> None:
    known = register()
    errors = RowErrors()
    planned = plan([row(2, "CC1", "communal_council", "C1", day=date(2030, 1, 1))], known, errors)
    assert codes(errors) == set() and planned[0][1] is None


def test_a_change_starts_on_or_after_the_latest_version() -> None:
    errors = RowErrors()
    plan([row(2, "CC1", "communal_council", "C1", day=date(1999, 1, 1), name="Otro")], register(), errors)
    # (and its parent did not exist yet then either)
    assert codes(errors) == {(2, "territory_history_conflict"), (2, "territory_parent_too_late")}
    errors = RowErrors()
    planned = plan([row(2, "CC1", "communal_council", "C1", day=SINCE, name="Otro")], register(), errors)
    staged = planned[0][1]
    assert codes(errors) == set() and staged is not None and staged.amend and not staged.create


def test_registered_children_must_still_fit_a_changed_parent() -> None:
    errors = RowErrors()
    # A commune turned into a municipality would leave its council under a municipality.
    plan([row(4, "C1", "municipality", "ST")], register(), errors)
    assert (4, "territory_parent_invalid") in codes(errors)
    errors = RowErrors()
    plan([row(5, "C1", "commune", "MU", status="dissolved")], register(), errors)
    assert codes(errors) == {(5, "territory_has_children")}


def test_a_unit_may_not_start_before_its_parent() -> None:
    errors = RowErrors()
    plan(
        [row(2, "NEWC", "commune", "MU", day=date(2030, 1, 1)), row(3, "CCX", "communal_council", "NEWC")],
        register(),
        errors,
    )
    assert codes(errors) == {(3, "territory_parent_too_late")}
