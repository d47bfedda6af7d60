"""Co-funding rules of a consultation, checked when they are declared (issue 10).

Pure functions over frozen dataclasses: no database, no transport. The plan that applies the
rules to certified results is in `funding_plan`.

Terms
-----
- A **funder** (`Funder`) is a registered source of money in one currency (the national fund,
  a state's treasury, a municipality's pledge). Its territory bounds where it may fund.
- A **rule** (`Rule`) of a funder *claims* the projects ranked `ranks` in the communes inside
  its territory (the funder's when `territory_id` is None; otherwise a territory inside the
  funder's). It pays `share_bp` basis points of a project's estimated cost (10000 = the whole
  cost), at most `per_project_cap_minor` per project and `total_cap_minor` over the whole
  consultation (the quarter), never more than what is still unfunded.
- Territories form a tree (`Territories.contains`; a territory contains itself), so two
  territories *intersect* exactly when one contains the other.

Overlap
-------
Two rules *can claim the same project* when their rank sets intersect and their territories
intersect (rules are declared before results exist, so a commune may yet be certified in the
smaller territory). Such a pair is refused when:

- both have the same `order` (`rules_overlap`): which one pays first would be undefined;
- both belong to the same funder (`rule_double_claim`): a funder pays a project under one rule,
  so an allocation is identified by (commune, candidate, funder).

Rules of different funders at different orders may claim the same project: that is co-funding,
and the lower order pays first. Rules may share an order when they never claim the same project
(every state's rule for rank 2 in its own territory, say): rules sharing an order then touch
disjoint sets of projects and each consumes only its own cap, so the plan does not depend on the
sequence in which they are applied.

Other refusals (all `InvalidInput`, 422, naming `rules[i].<field>` in the message and in the
`field` extra, with the rule's index in `rule`):

| code | when |
| --- | --- |
| `too_many_rules` | more than `MAX_RULES` rules |
| `rule_funder_unknown` | the rule names no funder of the consultation |
| `rule_order_invalid` | `order` is not an integer >= 1 |
| `rule_ranks_empty` / `rule_rank_invalid` | no rank / a rank that is not an integer >= 1 |
| `rule_territory_outside_funder` | the rule's territory is not inside its funder's |
| `rule_share_invalid` | `share_bp` not an integer in 1..10000 |
| `rule_cap_invalid` | a per-project cap < 1, a total cap < 0, or either above 2**63 - 1 |

Caps: a per-project cap of 0 would be a rule that can never pay (leave it unset for no cap), so
it is refused; a total cap of 0 is allowed: a rule declared before its money is appropriated,
whose dry run then lists every project it would claim as `cap_exhausted`. Negative caps are
refused. Funders themselves are checked by `validate_funders` (`funder_duplicate`,
`funder_name_invalid`, `funder_currency_invalid`, naming `funders[i].<field>`).

Territories the `Territories` object does not know are its business: `TerritoryTree` (the
in-memory implementation, built from identity's parent links or lineages) refuses them with
`territory_unknown`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from comuna_platform.errors import InvalidInput

MAX_RULES = 200
MAX_AMOUNT = 2**63 - 1  # PostgreSQL bigint, as the ledger
FULL_SHARE_BP = 10_000
CURRENCY = re.compile(r"^[A-Z]{3}$")
# Funder names end up in ledger account keys (`source:<name>:<CUR>`), hence a plain slug.
FUNDER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Territories(Protocol):
    """Where territories sit. Backed by identity's lineages (as of the consultation's day)."""

    def contains(self, outer: uuid.UUID, inner: uuid.UUID) -> bool:
        """Whether `inner` is `outer` or lies inside it."""
        ...


@dataclass(frozen=True)
class Funder:
    name: str  # slug, unique among the consultation's funders
    currency: str  # ISO 4217; the rules of this funder pay in it
    territory_id: uuid.UUID


@dataclass(frozen=True)
class Rule:
    funder: str
    order: int
    ranks: frozenset[int]
    territory_id: uuid.UUID | None = None  # None: the funder's territory
    share_bp: int = FULL_SHARE_BP
    per_project_cap_minor: int | None = None
    total_cap_minor: int | None = None


@dataclass(frozen=True)
class ResolvedRule:
    """A validated rule with its funder and the territory it effectively covers."""

    index: int  # position in the declared sequence (error messages only)
    rule: Rule
    funder: Funder
    territory_id: uuid.UUID

    def sort_key(self) -> tuple[int, str, str, tuple[int, ...]]:
        """Canonical application order: by `order`; ties (disjoint rules) by funder, territory, ranks."""
        return (self.rule.order, self.funder.name, str(self.territory_id), tuple(sorted(self.rule.ranks)))


class TerritoryTree:
    """`Territories` over an in-memory tree: each territory's ancestors (root first)."""

    def __init__(self, lineages: Mapping[uuid.UUID, Iterable[uuid.UUID]]) -> None:
        # lineage of t: the ids from the root down to t's parent (t itself may end it or not).
        self._within = {t: frozenset((*chain, t)) for t, chain in lineages.items()}

    @classmethod
    def from_parents(cls, parents: Mapping[uuid.UUID, uuid.UUID | None]) -> TerritoryTree:
        """From parent links (None for a root); a cycle or an unknown parent is refused."""
        lineages: dict[uuid.UUID, list[uuid.UUID]] = {}
        for territory in parents:
            chain: list[uuid.UUID] = []
            seen = {territory}
            parent = parents[territory]
            while parent is not None:
                if parent not in parents:
                    raise InvalidInput(
                        f"territory {territory} has an unknown parent {parent}",
                        code="territory_unknown",
                        territory_id=str(parent),
                    )
                if parent in seen:
                    raise InvalidInput(
                        f"territory {territory}'s parents form a cycle",
                        code="territory_cycle",
                        territory_id=str(territory),
                    )
                seen.add(parent)
                chain.append(parent)
                parent = parents[parent]
            lineages[territory] = chain[::-1]
        return cls(lineages)

    def contains(self, outer: uuid.UUID, inner: uuid.UUID) -> bool:
        within = self._within.get(inner)
        if within is None:
            raise InvalidInput(f"territory {inner} is unknown", code="territory_unknown", territory_id=str(inner))
        return outer in within


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse(index: int, field: str, message: str, code: str) -> InvalidInput:
    where = f"rules[{index}].{field}"
    return InvalidInput(f"{where}: {message}", code=code, field=where, rule=index)


def validate_funders(funders: Sequence[Funder]) -> dict[str, Funder]:
    """Check the funders; return them by name."""
    by_name: dict[str, Funder] = {}
    for i, funder in enumerate(funders):
        if not isinstance(funder.name, str) or not FUNDER_NAME.match(funder.name):
            raise InvalidInput(
                f"funders[{i}].name: {funder.name!r} is not a slug (lowercase letters, digits, - and _, 1 to 63)",
                code="funder_name_invalid",
                field=f"funders[{i}].name",
            )
        if not isinstance(funder.currency, str) or not CURRENCY.match(funder.currency):
            raise InvalidInput(
                f"funders[{i}].currency: {funder.currency!r} is not an ISO 4217 code",
                code="funder_currency_invalid",
                field=f"funders[{i}].currency",
            )
        if funder.name in by_name:
            raise InvalidInput(
                f"funders[{i}].name: funder {funder.name} appears twice",
                code="funder_duplicate",
                field=f"funders[{i}].name",
            )
        by_name[funder.name] = funder
    return by_name


def _check_fields(index: int, rule: Rule, funders: Mapping[str, Funder], territories: Territories) -> ResolvedRule:
    funder = funders.get(rule.funder)
    if funder is None:
        raise _refuse(index, "funder", f"no funder {rule.funder!r} in this consultation", "rule_funder_unknown")
    if not _is_int(rule.order) or rule.order < 1:
        raise _refuse(index, "order", f"{rule.order!r} is not an integer >= 1", "rule_order_invalid")
    if not rule.ranks:
        raise _refuse(index, "ranks", "a rule funds at least one rank", "rule_ranks_empty")
    bad = sorted((rank for rank in rule.ranks if not _is_int(rank) or rank < 1), key=repr)
    if bad:
        raise _refuse(index, "ranks", f"rank {bad[0]!r} is not an integer >= 1", "rule_rank_invalid")
    territory = funder.territory_id if rule.territory_id is None else rule.territory_id
    if not territories.contains(funder.territory_id, territory):
        raise _refuse(
            index,
            "territory_id",
            f"territory {territory} is not inside funder {funder.name}'s territory {funder.territory_id}",
            "rule_territory_outside_funder",
        )
    if not _is_int(rule.share_bp) or not 1 <= rule.share_bp <= FULL_SHARE_BP:
        raise _refuse(
            index, "share_bp", f"{rule.share_bp!r} is not a share of 1 to 10000 basis points", "rule_share_invalid"
        )
    cap = rule.per_project_cap_minor
    if cap is not None and (not _is_int(cap) or not 1 <= cap <= MAX_AMOUNT):
        raise _refuse(
            index,
            "per_project_cap_minor",
            f"{cap!r} is not a cap of 1 to {MAX_AMOUNT} minor units (leave it unset for no cap)",
            "rule_cap_invalid",
        )
    total = rule.total_cap_minor
    if total is not None and (not _is_int(total) or not 0 <= total <= MAX_AMOUNT):
        raise _refuse(
            index, "total_cap_minor", f"{total!r} is not a cap of 0 to {MAX_AMOUNT} minor units", "rule_cap_invalid"
        )
    return ResolvedRule(index, rule, funder, territory)


def _can_claim_same_project(a: ResolvedRule, b: ResolvedRule, territories: Territories) -> bool:
    if not a.rule.ranks & b.rule.ranks:
        return False
    return territories.contains(a.territory_id, b.territory_id) or territories.contains(b.territory_id, a.territory_id)


def resolve_rules(rules: Sequence[Rule], funders: Sequence[Funder], territories: Territories) -> list[ResolvedRule]:
    """`validate_rules`, returning the rules with their funders and territories, in canonical order."""
    by_name = validate_funders(funders)
    if len(rules) > MAX_RULES:
        raise InvalidInput(
            f"rules: {len(rules)} rules, at most {MAX_RULES} per consultation", code="too_many_rules", field="rules"
        )
    resolved = [_check_fields(i, rule, by_name, territories) for i, rule in enumerate(rules)]
    for j, b in enumerate(resolved):
        for a in resolved[:j]:
            same_order = a.rule.order == b.rule.order
            same_funder = a.funder.name == b.funder.name
            if not (same_order or same_funder) or not _can_claim_same_project(a, b, territories):
                continue
            ranks = ", ".join(str(r) for r in sorted(a.rule.ranks & b.rule.ranks))
            # Territories of a tree intersect in the inner one.
            inner = b.territory_id if territories.contains(a.territory_id, b.territory_id) else a.territory_id
            claim = f"rules[{a.index}] and rules[{b.index}] can both claim rank {ranks} in territory {inner}"
            if same_order:
                raise _refuse(
                    b.index, "order", f"{claim} at order {b.rule.order}: which pays first is undefined", "rules_overlap"
                )
            raise _refuse(
                b.index,
                "funder",
                f"{claim}, both for funder {b.funder.name}: a funder pays a project under one rule",
                "rule_double_claim",
            )
    return sorted(resolved, key=ResolvedRule.sort_key)


def validate_rules(rules: Sequence[Rule], funders: Sequence[Funder], territories: Territories) -> None:
    """Refuse, with the first problem found, rules that cannot be applied unambiguously (module docstring)."""
    resolve_rules(rules, funders, territories)
