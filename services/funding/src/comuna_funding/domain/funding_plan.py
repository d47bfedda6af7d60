"""Who would fund what: the co-funding rules (`rules`) applied to certified results (issue 10).

Pure and deterministic: the same rules, funders, territories and results give the same plan
whatever the order of the inputs, so anyone holding the public results and the declared rules
can recompute it. Nothing here moves money; the caller turns `plan` (a dry run, or the
allocations to create on certification) and `diff` (a recount) into ledger transfers.

How a plan is computed
----------------------
The *projects* are the candidates whose rank some rule funds (the union of the rules' ranks),
in every certified commune; those no rule claims in their commune are listed with
`covered=False`. Then:

1. Rules are applied in ascending `order` (rules sharing an order never claim the same project,
   see `rules`; ties are broken by funder, territory and ranks only to fix the output's order).
2. Within a rule, communes in ascending `commune_code`, and within a commune candidates in
   ascending rank: **a total cap is consumed in that order**, so when it runs out, the communes
   with the higher codes are the ones left without.
3. A rule claims a candidate whose rank is in its ranks in a commune inside its territory (and
   its funder's). It pays `min(unfunded remainder, cost * share_bp // 10000, per-project cap,
   what is left of its total cap)`: integers of minor units, rounded down, never floating point.
   A project without a known cost takes a *flat grant* from a rule with share 10000 and a
   per-project cap (the cap; the national grant's historic flat 10,000 USD), and that grant
   stands for its whole cost: later rules find it fully funded.
4. Otherwise the claim is skipped and the project records why (`SkipReason`), checked in this
   order: `currency_mismatch` (the funder's currency is not the project's: no exchange in
   planning), `fully_funded`, `cost_unknown`, `cap_exhausted`, `rounds_to_zero` (the share of a
   tiny cost is less than one minor unit).

An allocation is identified by (commune, candidate, funder): a funder claims a project under at
most one rule. A recount is `plan` over the results with the superseding versions (`supersede`)
and `diff` against the previous plan: allocations that differ in any way are reversed and
created again, never edited; through total caps a recount may change other communes'.

Refusals (`InvalidInput`, 422, naming `communes[i]...` in the message and the `field` extra):
`result_commune_repeated`, `result_code_invalid`, `result_version_invalid`,
`result_candidate_repeated`, `result_rank_invalid`, `result_rank_repeated`, `result_cost_invalid`,
`result_currency_invalid`; `supersede`: `result_not_newer`; `apply_changes`: 409
`plan_changes_do_not_apply`. Rules are validated again by `plan` (`rules.resolve_rules`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from comuna_funding.domain.rules import (
    CURRENCY,
    FULL_SHARE_BP,
    MAX_AMOUNT,
    Funder,
    ResolvedRule,
    Rule,
    Territories,
    resolve_rules,
)
from comuna_platform.errors import Conflict, InvalidInput


class SkipReason(StrEnum):
    """Why a rule that claims a project pays it nothing."""

    CURRENCY_MISMATCH = "currency_mismatch"
    FULLY_FUNDED = "fully_funded"
    COST_UNKNOWN = "cost_unknown"
    CAP_EXHAUSTED = "cap_exhausted"
    ROUNDS_TO_ZERO = "rounds_to_zero"


@dataclass(frozen=True)
class RankedCandidate:
    candidate_id: uuid.UUID
    rank: int  # 1 = the commune's winner
    title: str
    estimated_cost_minor: int | None = None
    cost_currency: str | None = None  # required with a cost


@dataclass(frozen=True)
class CertifiedCommune:
    commune_id: uuid.UUID  # the commune's territory id
    commune_code: str
    version: int  # the certified result's version (a recount supersedes with a higher one)
    candidates: tuple[RankedCandidate, ...]


class AllocationKey(NamedTuple):
    commune_id: uuid.UUID
    candidate_id: uuid.UUID
    funder: str


@dataclass(frozen=True)
class PlannedAllocation:
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    rank: int
    funder: str
    rule_order: int
    amount_minor: int  # > 0
    currency: str

    @property
    def key(self) -> AllocationKey:
        return AllocationKey(self.commune_id, self.candidate_id, self.funder)


@dataclass(frozen=True)
class Skip:
    funder: str
    rule_order: int
    reason: SkipReason


@dataclass(frozen=True)
class ProjectPlan:
    commune_id: uuid.UUID
    commune_code: str
    version: int
    candidate_id: uuid.UUID
    rank: int
    title: str
    cost_minor: int | None
    currency: str | None  # the cost's, or for a project of unknown cost the flat grant's
    funded_minor: int
    unfunded_minor: int | None  # cost - funded; None when the cost is unknown
    covered: bool  # some rule claims it
    skipped: tuple[Skip, ...]  # in the order the rules were applied


@dataclass(frozen=True)
class RuleUsage:
    funder: str
    order: int
    ranks: frozenset[int]
    territory_id: uuid.UUID
    currency: str
    allocations: int
    planned_minor: int
    total_cap_minor: int | None
    cap_left_minor: int | None


@dataclass(frozen=True)
class FunderUsage:
    funder: str
    currency: str
    planned_minor: int
    total_cap_minor: int | None  # the sum of its rules' caps; None if one of them has none
    cap_left_minor: int | None


@dataclass(frozen=True)
class FundingPlan:
    allocations: tuple[PlannedAllocation, ...]  # by commune code, rank, rule order, funder
    projects: tuple[ProjectPlan, ...]  # by commune code, rank
    rules: tuple[RuleUsage, ...]  # in the order they were applied
    funders: tuple[FunderUsage, ...]  # by name


@dataclass(frozen=True)
class PlanChanges:
    reverse: tuple[PlannedAllocation, ...]
    create: tuple[PlannedAllocation, ...]
    unchanged: tuple[PlannedAllocation, ...]


def _result_error(where: str, message: str, code: str) -> InvalidInput:
    return InvalidInput(f"{where}: {message}", code=code, field=where)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_candidate(where: str, c: RankedCandidate) -> None:
    if not _is_int(c.rank) or c.rank < 1:
        raise _result_error(f"{where}.rank", f"{c.rank!r} is not an integer >= 1", "result_rank_invalid")
    cost = c.estimated_cost_minor
    if cost is not None and (not _is_int(cost) or not 1 <= cost <= MAX_AMOUNT):
        raise _result_error(
            f"{where}.estimated_cost_minor",
            f"{cost!r} is not a cost of 1 to {MAX_AMOUNT} minor units",
            "result_cost_invalid",
        )
    currency = c.cost_currency
    if currency is not None and (not isinstance(currency, str) or not CURRENCY.match(currency)):
        raise _result_error(
            f"{where}.cost_currency", f"{currency!r} is not an ISO 4217 code", "result_currency_invalid"
        )
    if cost is not None and currency is None:
        raise _result_error(f"{where}.cost_currency", "a cost needs its currency", "result_currency_invalid")


def validate_results(communes: Sequence[CertifiedCommune]) -> None:
    """Refuse results a plan cannot be computed from (one per commune, unique ranks, sane costs)."""
    ids: set[uuid.UUID] = set()
    codes: set[str] = set()
    for i, commune in enumerate(communes):
        where = f"communes[{i}]"
        if commune.commune_id in ids or commune.commune_code in codes:
            raise _result_error(
                where,
                f"commune {commune.commune_code} appears twice (one result per commune)",
                "result_commune_repeated",
            )
        ids.add(commune.commune_id)
        codes.add(commune.commune_code)
        if not isinstance(commune.commune_code, str) or not commune.commune_code:
            raise _result_error(f"{where}.commune_code", "a commune code is required", "result_code_invalid")
        if not _is_int(commune.version) or commune.version < 1:
            raise _result_error(
                f"{where}.version", f"{commune.version!r} is not an integer >= 1", "result_version_invalid"
            )
        candidates: set[uuid.UUID] = set()
        ranks: set[int] = set()
        for j, c in enumerate(commune.candidates):
            cwhere = f"{where}.candidates[{j}]"
            _validate_candidate(cwhere, c)
            if c.candidate_id in candidates:
                raise _result_error(cwhere, f"candidate {c.candidate_id} appears twice", "result_candidate_repeated")
            if c.rank in ranks:
                raise _result_error(f"{cwhere}.rank", f"rank {c.rank} appears twice", "result_rank_repeated")
            candidates.add(c.candidate_id)
            ranks.add(c.rank)


@dataclass
class _Project:
    commune: CertifiedCommune
    candidate: RankedCandidate
    funded: int = 0
    closed: bool = False  # nothing left to pay (known cost covered, or the flat grant taken)
    currency: str | None = None
    covered: bool = False
    skipped: list[Skip] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.currency = self.candidate.cost_currency


def _claim(project: _Project, r: ResolvedRule, cap_left: int | None) -> int | SkipReason:
    """What rule `r` pays `project` now (> 0), or why nothing."""
    rule, cost = r.rule, project.candidate.estimated_cost_minor
    if project.currency is not None and project.currency != r.funder.currency:
        return SkipReason.CURRENCY_MISMATCH
    if project.closed:
        return SkipReason.FULLY_FUNDED
    if cost is None:
        if rule.share_bp != FULL_SHARE_BP or rule.per_project_cap_minor is None:
            return SkipReason.COST_UNKNOWN
        wanted = rule.per_project_cap_minor
    else:
        wanted = min(cost - project.funded, cost * rule.share_bp // FULL_SHARE_BP)
        if rule.per_project_cap_minor is not None:
            wanted = min(wanted, rule.per_project_cap_minor)
    if cap_left == 0:
        return SkipReason.CAP_EXHAUSTED
    amount = wanted if cap_left is None else min(wanted, cap_left)
    return amount if amount > 0 else SkipReason.ROUNDS_TO_ZERO


def plan(
    rules: Sequence[Rule], funders: Sequence[Funder], territories: Territories, communes: Sequence[CertifiedCommune]
) -> FundingPlan:
    """Apply the rules to certified results (one per commune); see the module docstring."""
    resolved = resolve_rules(rules, funders, territories)
    validate_results(communes)
    ordered = sorted(communes, key=lambda c: c.commune_code)
    funded_ranks = {rank for r in resolved for rank in r.rule.ranks}
    projects: dict[tuple[uuid.UUID, uuid.UUID], _Project] = {}
    for commune in ordered:
        for candidate in sorted(commune.candidates, key=lambda c: c.rank):
            if candidate.rank in funded_ranks:
                projects[commune.commune_id, candidate.candidate_id] = _Project(commune, candidate)
    # One containment question per distinct territory and commune (rules share territories). A
    # rule's territory is inside its funder's (`resolve_rules`), so its communes are the funder's too.
    inside: dict[uuid.UUID, list[CertifiedCommune]] = {}
    allocations: list[PlannedAllocation] = []
    usages: list[RuleUsage] = []
    for r in resolved:
        if r.territory_id not in inside:
            inside[r.territory_id] = [c for c in ordered if territories.contains(r.territory_id, c.commune_id)]
        cap_left, paid, count = r.rule.total_cap_minor, 0, 0
        for commune in inside[r.territory_id]:
            for candidate in sorted(commune.candidates, key=lambda c: c.rank):
                if candidate.rank not in r.rule.ranks:
                    continue
                project = projects[commune.commune_id, candidate.candidate_id]
                project.covered = True
                outcome = _claim(project, r, cap_left)
                if isinstance(outcome, SkipReason):
                    project.skipped.append(Skip(r.funder.name, r.rule.order, outcome))
                    continue
                project.funded += outcome
                project.currency = r.funder.currency
                cost = candidate.estimated_cost_minor
                project.closed = cost is None or project.funded == cost
                cap_left = None if cap_left is None else cap_left - outcome
                paid, count = paid + outcome, count + 1
                allocations.append(
                    PlannedAllocation(
                        commune.commune_id,
                        commune.commune_code,
                        candidate.candidate_id,
                        candidate.rank,
                        r.funder.name,
                        r.rule.order,
                        outcome,
                        r.funder.currency,
                    )
                )
        usages.append(
            RuleUsage(
                funder=r.funder.name,
                order=r.rule.order,
                ranks=r.rule.ranks,
                territory_id=r.territory_id,
                currency=r.funder.currency,
                allocations=count,
                planned_minor=paid,
                total_cap_minor=r.rule.total_cap_minor,
                cap_left_minor=cap_left,
            )
        )
    return FundingPlan(
        allocations=tuple(sorted(allocations, key=_allocation_order)),
        projects=tuple(_project_plan(p) for p in projects.values()),
        rules=tuple(usages),
        funders=_funder_usages(funders, usages),
    )


def _allocation_order(a: PlannedAllocation) -> tuple[str, int, int, str]:
    return (a.commune_code, a.rank, a.rule_order, a.funder)


def _project_plan(p: _Project) -> ProjectPlan:
    cost = p.candidate.estimated_cost_minor
    return ProjectPlan(
        commune_id=p.commune.commune_id,
        commune_code=p.commune.commune_code,
        version=p.commune.version,
        candidate_id=p.candidate.candidate_id,
        rank=p.candidate.rank,
        title=p.candidate.title,
        cost_minor=cost,
        currency=p.currency,
        funded_minor=p.funded,
        unfunded_minor=None if cost is None else cost - p.funded,
        covered=p.covered,
        skipped=tuple(p.skipped),
    )


def _funder_usages(funders: Sequence[Funder], usages: Sequence[RuleUsage]) -> tuple[FunderUsage, ...]:
    out = []
    for funder in sorted(funders, key=lambda f: f.name):
        own = [u for u in usages if u.funder == funder.name]
        planned = sum(u.planned_minor for u in own)
        capped = all(u.total_cap_minor is not None for u in own)
        cap = sum(u.total_cap_minor or 0 for u in own) if capped else None
        out.append(FunderUsage(funder.name, funder.currency, planned, cap, None if cap is None else cap - planned))
    return tuple(out)


def diff_allocations(previous: Iterable[PlannedAllocation], current: Iterable[PlannedAllocation]) -> PlanChanges:
    """What turns `previous` into `current`: an allocation that changed in any way is reversed and created."""
    before = _by_key(previous, "previous")
    after = _by_key(current, "current")
    return PlanChanges(
        reverse=tuple(sorted((a for k, a in before.items() if after.get(k) != a), key=_allocation_order)),
        create=tuple(sorted((a for k, a in after.items() if before.get(k) != a), key=_allocation_order)),
        unchanged=tuple(sorted((a for k, a in after.items() if before.get(k) == a), key=_allocation_order)),
    )


def diff(previous: FundingPlan, current: FundingPlan) -> PlanChanges:
    """The allocations to reverse and to create to go from `previous` to `current` (a recount)."""
    return diff_allocations(previous.allocations, current.allocations)


def _by_key(allocations: Iterable[PlannedAllocation], side: str) -> dict[AllocationKey, PlannedAllocation]:
    out: dict[AllocationKey, PlannedAllocation] = {}
    for a in allocations:
        if a.key in out:
            raise InvalidInput(
                f"{side}: two allocations of commune {a.commune_code}, candidate {a.candidate_id}, funder {a.funder}",
                code="allocation_repeated",
                field=side,
            )
        out[a.key] = a
    return out


def apply_changes(allocations: Iterable[PlannedAllocation], changes: PlanChanges) -> tuple[PlannedAllocation, ...]:
    """`allocations` after reversing and creating `changes` (what the ledger will hold), canonically ordered."""
    held = _by_key(allocations, "allocations")
    for a in changes.reverse:
        if held.get(a.key) != a:
            raise Conflict(
                f"allocation of commune {a.commune_code}, candidate {a.candidate_id}, funder {a.funder} to reverse "
                "is not held as planned",
                code="plan_changes_do_not_apply",
            )
        del held[a.key]
    for a in changes.create:
        if a.key in held:
            raise Conflict(
                f"allocation of commune {a.commune_code}, candidate {a.candidate_id}, funder {a.funder} to create "
                "is already held",
                code="plan_changes_do_not_apply",
            )
        held[a.key] = a
    return tuple(sorted(held.values(), key=_allocation_order))


def supersede(communes: Sequence[CertifiedCommune], newer: Sequence[CertifiedCommune]) -> tuple[CertifiedCommune, ...]:
    """The results with `newer` (recounts, or communes certified since) in place, by commune code."""
    by_id = {c.commune_id: c for c in communes}
    for i, commune in enumerate(newer):
        old = by_id.get(commune.commune_id)
        if old is not None and commune.version <= old.version:
            raise _result_error(
                f"newer[{i}].version",
                f"commune {commune.commune_code}'s version {commune.version} does not supersede version {old.version}",
                "result_not_newer",
            )
        by_id[commune.commune_id] = commune
    return tuple(sorted(by_id.values(), key=lambda c: c.commune_code))
