"""Rules of the territory register: which kind may sit under which, and how codes nest."""

from __future__ import annotations

from comuna_identity.vocabulary import COMMUNE_KINDS, TerritoryKind
from comuna_platform.errors import InvalidInput

# Allowed parent kind for each kind. A communal circuit is a commune not yet consolidated:
# it sits where a commune sits and holds councils the same way.
PARENT_KIND: dict[TerritoryKind, frozenset[TerritoryKind]] = {
    TerritoryKind.COUNTRY: frozenset(),
    TerritoryKind.STATE: frozenset({TerritoryKind.COUNTRY}),
    TerritoryKind.MUNICIPALITY: frozenset({TerritoryKind.STATE}),
    TerritoryKind.COMMUNE: frozenset({TerritoryKind.MUNICIPALITY}),
    TerritoryKind.COMMUNAL_CIRCUIT: frozenset({TerritoryKind.MUNICIPALITY}),
    TerritoryKind.COMMUNAL_COUNCIL: COMMUNE_KINDS,
}


def check_placement(*, kind: str, code: str, parent_kind: str | None, parent_code: str | None) -> None:
    """Raise InvalidInput unless a `kind` territory coded `code` may sit under the parent."""
    try:
        allowed = PARENT_KIND[TerritoryKind(kind)]
    except ValueError:
        allowed = None
    if allowed is None:
        raise InvalidInput(f"unknown territory kind {kind!r}", code="territory_kind_invalid")
    if parent_kind is None:
        if allowed:
            raise InvalidInput(f"a {kind} needs a parent territory", code="territory_parent_required")
        if "." in code:
            raise InvalidInput("the country code cannot contain '.'", code="territory_code_invalid")
        return
    if parent_kind not in allowed:
        raise InvalidInput(f"a {kind} cannot sit under a {parent_kind}", code="territory_parent_invalid")
    assert parent_code is not None
    local = code.removeprefix(parent_code + ".")
    if local == code or not local or "." in local:
        raise InvalidInput(
            f"code must be the parent's code plus one segment, e.g. {parent_code}.X",
            code="territory_code_invalid",
        )
