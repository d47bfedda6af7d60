"""Co-funding rules and the funding plan (issue 10): pure domain logic, no database.

Examples pin the issue's three-funder scenario to exact figures, recounts, and every refusal;
property tests draw random territory trees, funders, rules and certified results and check the
plan against an independent reading of the rules (territories walked by parent links here, not
by `TerritoryTree`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comuna_funding.domain.funding_plan import (
    CertifiedCommune,
    FunderUsage,
    FundingPlan,
    PlanChanges,
    PlannedAllocation,
    ProjectPlan,
    RankedCandidate,
    RuleUsage,
    Skip,
    SkipReason,
    apply_changes,
    diff,
    diff_allocations,
    plan,
    supersede,
    validate_results,
)
from comuna_funding.domain.rules import (
    MAX_RULES,
    Funder,
    Rule,
    TerritoryTree,
    resolve_rules,
    validate_funders,
    validate_rules,
)
from comuna_platform.errors import Conflict, InvalidInput


def usd(units: int) -> int:
    return units * 100


def tid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"territory:{name}")


def cid(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"candidate:{name}")


# --- the scenario ------------------------------------------------------------------
#
#   VE (country)
#   ├── ZU (state Zulia)
#   │   ├── MA (municipality Maracaibo): communes C001, C002
#   │   └── SF (municipality San Francisco): commune C003
#   └── LA (state Lara)
#       └── IR (municipality Iribarren): commune C004

PARENTS: dict[str, str | None] = {
    "VE": None,
    "ZU": "VE",
    "LA": "VE",
    "MA": "ZU",
    "SF": "ZU",
    "IR": "LA",
    "C001": "MA",
    "C002": "MA",
    "C003": "SF",
    "C004": "IR",
}
TREE = TerritoryTree.from_parents({tid(t): None if p is None else tid(p) for t, p in PARENTS.items()})

NATIONAL = Funder("national", "USD", tid("VE"))
ZULIA = Funder("zulia", "USD", tid("ZU"))
LARA = Funder("lara", "USD", tid("LA"))
MARACAIBO = Funder("maracaibo", "USD", tid("MA"))
FUNDERS = (NATIONAL, ZULIA, MARACAIBO)

# The national fund pays rank 1 in every commune up to 10,000 USD; Zulia pays rank 2 in its
# communes up to a quarterly cap of 20,000 USD; Maracaibo matches 30% of the cost of rank 1 in
# its communes, up to 3,000 USD a project and 5,000 USD in all.
RULES = (
    Rule("national", 1, frozenset({1}), per_project_cap_minor=usd(10_000)),
    Rule("zulia", 2, frozenset({2}), total_cap_minor=usd(20_000)),
    Rule("maracaibo", 3, frozenset({1}), share_bp=3000, per_project_cap_minor=usd(3_000), total_cap_minor=usd(5_000)),
)


def candidate(name: str, rank: int, cost_units: int | None, currency: str | None = "USD") -> RankedCandidate:
    cost = None if cost_units is None else usd(cost_units)
    return RankedCandidate(cid(name), rank, f"project {name}", cost, currency)


def commune(code: str, *candidates: RankedCandidate, version: int = 1) -> CertifiedCommune:
    return CertifiedCommune(tid(code), code, version, tuple(candidates))


RESULTS = (
    commune("C001", candidate("A1", 1, 15_000), candidate("B1", 2, 12_000), candidate("D1", 3, 6_000)),
    commune("C002", candidate("A2", 1, 8_000), candidate("B2", 2, 9_000)),
    commune("C003", candidate("A3", 1, 12_500), candidate("B3", 2, 4_000)),
    commune("C004", candidate("A4", 1, None, None), candidate("B4", 2, 5_000)),
)


def alloc(code: str, name: str, rank: int, funder: str, order: int, units: int) -> PlannedAllocation:
    return PlannedAllocation(tid(code), code, cid(name), rank, funder, order, usd(units), "USD")


def summary(p: FundingPlan) -> dict[tuple[str, int], tuple[int | None, int, int | None, tuple[tuple[str, str], ...]]]:
    """Per (commune, rank): cost, funded, unfunded, skipped (funder, reason) -- in whole USD."""

    def whole(v: int | None) -> int | None:
        return None if v is None else v // 100

    return {
        (pp.commune_code, pp.rank): (
            whole(pp.cost_minor),
            pp.funded_minor // 100,
            whole(pp.unfunded_minor),
            tuple((s.funder, s.reason.value) for s in pp.skipped),
        )
        for pp in p.projects
    }


def test_three_funders_exact_figures() -> None:
    result = plan(RULES, FUNDERS, TREE, RESULTS)

    assert result.allocations == (
        alloc("C001", "A1", 1, "national", 1, 10_000),
        alloc("C001", "A1", 1, "maracaibo", 3, 3_000),  # 30% of 15,000 is 4,500: capped at 3,000
        alloc("C001", "B1", 2, "zulia", 2, 12_000),
        alloc("C002", "A2", 1, "national", 1, 8_000),  # the whole cost: nothing left to match
        alloc("C002", "B2", 2, "zulia", 2, 8_000),  # what is left of Zulia's 20,000
        alloc("C003", "A3", 1, "national", 1, 10_000),
        alloc("C004", "A4", 1, "national", 1, 10_000),  # no known cost: the flat grant
    )
    assert summary(result) == {
        ("C001", 1): (15_000, 13_000, 2_000, ()),
        ("C001", 2): (12_000, 12_000, 0, ()),
        ("C002", 1): (8_000, 8_000, 0, (("maracaibo", "fully_funded"),)),
        ("C002", 2): (9_000, 8_000, 1_000, ()),
        ("C003", 1): (12_500, 10_000, 2_500, ()),  # San Francisco is not Maracaibo
        ("C003", 2): (4_000, 0, 4_000, (("zulia", "cap_exhausted"),)),  # C003 comes after C001, C002
        ("C004", 1): (None, 10_000, None, ()),
        ("C004", 2): (5_000, 0, 5_000, ()),  # Lara declared no rule
    }
    # Rank 3 is funded by no rule: not a project of the plan.
    assert {pp.rank for pp in result.projects} == {1, 2}
    by_place = {(pp.commune_code, pp.rank): pp for pp in result.projects}
    assert not by_place["C004", 2].covered
    assert all(pp.covered for key, pp in by_place.items() if key != ("C004", 2))
    assert by_place["C004", 1].currency == "USD"
    assert result.rules == (
        RuleUsage("national", 1, frozenset({1}), tid("VE"), "USD", 4, usd(38_000), None, None),
        RuleUsage("zulia", 2, frozenset({2}), tid("ZU"), "USD", 2, usd(20_000), usd(20_000), 0),
        RuleUsage("maracaibo", 3, frozenset({1}), tid("MA"), "USD", 1, usd(3_000), usd(5_000), usd(2_000)),
    )
    assert result.funders == (
        FunderUsage("maracaibo", "USD", usd(3_000), usd(5_000), usd(2_000)),
        FunderUsage("national", "USD", usd(38_000), None, None),
        FunderUsage("zulia", "USD", usd(20_000), usd(20_000), 0),
    )


def test_a_dry_run_is_the_same_whatever_the_order_of_the_inputs() -> None:
    expected = plan(RULES, FUNDERS, TREE, RESULTS)
    shuffled = tuple(replace(c, candidates=c.candidates[::-1]) for c in RESULTS[::-1])
    assert plan(RULES[::-1], FUNDERS[::-1], TREE, shuffled) == expected


def test_a_recount_that_changes_the_winner_reverses_and_reallocates() -> None:
    before = plan(RULES, FUNDERS, TREE, RESULTS)
    recount = commune("C002", candidate("B2", 1, 9_000), candidate("A2", 2, 8_000), version=2)
    after = plan(RULES, FUNDERS, TREE, supersede(RESULTS, [recount]))

    changes = diff(before, after)
    assert changes.reverse == (
        alloc("C002", "A2", 1, "national", 1, 8_000),
        alloc("C002", "B2", 2, "zulia", 2, 8_000),
    )
    assert changes.create == (
        alloc("C002", "B2", 1, "national", 1, 9_000),
        alloc("C002", "A2", 2, "zulia", 2, 8_000),
    )
    assert {a.commune_code for a in changes.unchanged} == {"C001", "C003", "C004"}
    assert apply_changes(before.allocations, changes) == after.allocations
    assert next(pp for pp in after.projects if pp.commune_code == "C002").version == 2


def test_a_recount_reaches_other_communes_through_a_total_cap() -> None:
    before = plan(RULES, FUNDERS, TREE, RESULTS)
    # C001's recount puts the 6,000 USD project second: Zulia's cap then reaches C002 and C003.
    recount = commune(
        "C001", candidate("A1", 1, 15_000), candidate("D1", 2, 6_000), candidate("B1", 3, 12_000), version=2
    )
    after = plan(RULES, FUNDERS, TREE, supersede(RESULTS, [recount]))

    changes = diff(before, after)
    assert changes.reverse == (
        alloc("C001", "B1", 2, "zulia", 2, 12_000),
        alloc("C002", "B2", 2, "zulia", 2, 8_000),
    )
    assert changes.create == (
        alloc("C001", "D1", 2, "zulia", 2, 6_000),
        alloc("C002", "B2", 2, "zulia", 2, 9_000),  # an amount change is a reversal and a creation
        alloc("C003", "B3", 2, "zulia", 2, 4_000),
    )
    assert apply_changes(before.allocations, changes) == after.allocations
    zulia = next(u for u in after.rules if u.funder == "zulia")
    assert (zulia.planned_minor, zulia.cap_left_minor) == (usd(19_000), usd(1_000))


def test_an_unchanged_recount_changes_nothing() -> None:
    before = plan(RULES, FUNDERS, TREE, RESULTS)
    after = plan(RULES, FUNDERS, TREE, supersede(RESULTS, [replace(RESULTS[1], version=2)]))
    changes = diff(before, after)
    assert changes.reverse == changes.create == ()
    assert changes.unchanged == before.allocations


def test_supersede_refuses_a_version_that_is_not_newer() -> None:
    with pytest.raises(InvalidInput) as refused:
        supersede(RESULTS, [replace(RESULTS[2], version=1)])
    assert refused.value.code == "result_not_newer"
    assert "newer[0].version" in refused.value.detail
    assert "C003" in refused.value.detail


def test_supersede_adds_a_commune_certified_later() -> None:
    late = commune("C000", candidate("A0", 1, 100))
    tree = TerritoryTree.from_parents(
        {**{tid(t): None if p is None else tid(p) for t, p in PARENTS.items()}, tid("C000"): tid("SF")}
    )
    merged = supersede(RESULTS, [late])
    assert [c.commune_code for c in merged] == ["C000", "C001", "C002", "C003", "C004"]
    assert plan(RULES, FUNDERS, tree, merged).allocations[0] == alloc("C000", "A0", 1, "national", 1, 100)


def test_apply_changes_refuses_changes_that_do_not_fit() -> None:
    before = plan(RULES, FUNDERS, TREE, RESULTS)
    stray = alloc("C009", "Z9", 1, "national", 1, 1)
    with pytest.raises(Conflict) as missing:
        apply_changes(before.allocations, PlanChanges(reverse=(stray,), create=(), unchanged=()))
    assert missing.value.code == "plan_changes_do_not_apply"
    with pytest.raises(Conflict) as held:
        apply_changes(before.allocations, PlanChanges(reverse=(), create=(before.allocations[0],), unchanged=()))
    assert held.value.code == "plan_changes_do_not_apply"
    with pytest.raises(InvalidInput) as repeated:
        diff_allocations([stray, replace(stray, amount_minor=2)], [])
    assert repeated.value.code == "allocation_repeated"


# --- edge cases of the plan ----------------------------------------------------------------


def one(rules: Sequence[Rule], *candidates: RankedCandidate, funders: Sequence[Funder] = FUNDERS) -> ProjectPlan:
    """The plan's first project of commune C001 with these candidates."""
    return plan(rules, funders, TREE, [commune("C001", *candidates)]).projects[0]


def test_a_funder_in_another_currency_is_skipped() -> None:
    project = one([RULES[0]], candidate("A1", 1, 5_000, "VES"))
    assert project.funded_minor == 0
    assert project.skipped == (Skip("national", 1, SkipReason.CURRENCY_MISMATCH),)
    assert (project.currency, project.unfunded_minor) == ("VES", usd(5_000))


def test_a_project_without_a_cost_needs_a_flat_grant() -> None:
    share = Rule("national", 1, frozenset({1}), share_bp=5000, per_project_cap_minor=usd(10_000))
    uncapped = Rule("national", 1, frozenset({1}))
    for rule in (share, uncapped):
        project = one([rule], candidate("A1", 1, None, None))
        assert project.skipped == (Skip("national", 1, SkipReason.COST_UNKNOWN),)
        assert (project.funded_minor, project.unfunded_minor, project.currency) == (0, None, None)


def test_a_flat_grant_is_limited_by_the_total_cap_and_taken_once() -> None:
    rules = [
        Rule("national", 1, frozenset({1}), per_project_cap_minor=usd(10_000), total_cap_minor=usd(4_000)),
        Rule("zulia", 2, frozenset({1}), per_project_cap_minor=usd(10_000)),
    ]
    project = one(rules, candidate("A1", 1, None, None))
    assert project.funded_minor == usd(4_000)
    assert project.skipped == (Skip("zulia", 2, SkipReason.FULLY_FUNDED),)


def test_a_flat_grant_fixes_the_currency_of_a_project_without_one() -> None:
    rules = [
        Rule("national", 1, frozenset({1}), per_project_cap_minor=usd(10_000)),
        Rule("bolivar", 2, frozenset({1}), per_project_cap_minor=10_000_000),
    ]
    funders = [*FUNDERS, Funder("bolivar", "VES", tid("VE"))]
    project = one(rules, candidate("A1", 1, None, None), funders=funders)
    assert (project.funded_minor, project.currency) == (usd(10_000), "USD")
    assert project.skipped == (Skip("bolivar", 2, SkipReason.CURRENCY_MISMATCH),)


def test_a_total_cap_of_zero_shows_what_the_rule_would_claim() -> None:
    project = one([Rule("zulia", 1, frozenset({1}), total_cap_minor=0)], candidate("A1", 1, 700))
    assert project.skipped == (Skip("zulia", 1, SkipReason.CAP_EXHAUSTED),)
    assert project.unfunded_minor == usd(700)


def test_shares_round_down_to_whole_minor_units() -> None:
    rule = Rule("zulia", 1, frozenset({1}), share_bp=3333)
    assert one([rule], RankedCandidate(cid("A"), 1, "a", 1000, "USD")).funded_minor == 333  # 333.3
    assert one([rule], RankedCandidate(cid("A"), 1, "a", 2, "USD")).skipped == (
        Skip("zulia", 1, SkipReason.ROUNDS_TO_ZERO),
    )


def test_rules_sharing_an_order_fund_their_own_territories() -> None:
    rules = [
        Rule("zulia", 2, frozenset({2}), total_cap_minor=usd(1_000)),
        Rule("lara", 2, frozenset({2}), total_cap_minor=usd(2_000)),
    ]
    result = plan(rules, [ZULIA, LARA], TREE, RESULTS)
    assert [(a.commune_code, a.funder, a.amount_minor) for a in result.allocations] == [
        ("C001", "zulia", usd(1_000)),
        ("C004", "lara", usd(2_000)),
    ]
    assert [pp.skipped for pp in result.projects if pp.commune_code in {"C002", "C003"}] == [
        (Skip("zulia", 2, SkipReason.CAP_EXHAUSTED),),
        (Skip("zulia", 2, SkipReason.CAP_EXHAUSTED),),
    ]


def test_a_plan_without_results_or_rules() -> None:
    empty = plan([], FUNDERS, TREE, RESULTS)
    assert (empty.allocations, empty.projects, empty.rules) == ((), (), ())
    assert [(f.funder, f.planned_minor, f.total_cap_minor) for f in empty.funders] == [
        ("maracaibo", 0, 0),
        ("national", 0, 0),
        ("zulia", 0, 0),
    ]
    assert plan(RULES, FUNDERS, TREE, []).allocations == ()


def test_a_commune_the_territories_do_not_know_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        plan(RULES, FUNDERS, TREE, [CertifiedCommune(uuid.uuid4(), "X1", 1, (candidate("A", 1, 1),))])
    assert refused.value.code == "territory_unknown"


@pytest.mark.parametrize(
    ("communes", "code", "where"),
    [
        ([RESULTS[0], replace(RESULTS[1], commune_id=RESULTS[0].commune_id)], "result_commune_repeated", "communes[1]"),
        ([RESULTS[0], replace(RESULTS[1], commune_code="C001")], "result_commune_repeated", "communes[1]"),
        ([replace(RESULTS[0], commune_code="")], "result_code_invalid", "communes[0].commune_code"),
        ([replace(RESULTS[0], version=0)], "result_version_invalid", "communes[0].version"),
        (
            [commune("C001", candidate("A", 1, 1), candidate("A", 2, 1))],
            "result_candidate_repeated",
            "communes[0].candidates[1]",
        ),
        ([commune("C001", candidate("A", 1, 1), candidate("B", 1, 1))], "result_rank_repeated", "candidates[1].rank"),
        ([commune("C001", candidate("A", 0, 1))], "result_rank_invalid", "communes[0].candidates[0].rank"),
        ([commune("C001", candidate("A", 1, 0))], "result_cost_invalid", "candidates[0].estimated_cost_minor"),
        ([commune("C001", candidate("A", 1, -5))], "result_cost_invalid", "candidates[0].estimated_cost_minor"),
        ([commune("C001", candidate("A", 1, 5, None))], "result_currency_invalid", "candidates[0].cost_currency"),
        ([commune("C001", candidate("A", 1, 5, "usd"))], "result_currency_invalid", "candidates[0].cost_currency"),
    ],
)
def test_bad_results_are_refused(communes: list[CertifiedCommune], code: str, where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_results(communes)
    assert refused.value.code == code
    assert where in refused.value.detail
    assert where in refused.value.extra["field"]
    with pytest.raises(InvalidInput):
        plan(RULES, FUNDERS, TREE, communes)


# --- validation of rules -------------------------------------------------------------------

NATIONAL_RANK_1 = RULES[0]


@pytest.mark.parametrize(
    ("rule", "code", "field"),
    [
        (Rule("mars", 2, frozenset({1})), "rule_funder_unknown", "funder"),
        (Rule("zulia", 0, frozenset({2})), "rule_order_invalid", "order"),
        (Rule("zulia", True, frozenset({2})), "rule_order_invalid", "order"),
        (Rule("zulia", 2, frozenset()), "rule_ranks_empty", "ranks"),
        (Rule("zulia", 2, frozenset({0, 2})), "rule_rank_invalid", "ranks"),
        (Rule("zulia", 2, frozenset({2}), tid("IR")), "rule_territory_outside_funder", "territory_id"),
        (Rule("maracaibo", 2, frozenset({2}), tid("ZU")), "rule_territory_outside_funder", "territory_id"),
        (Rule("zulia", 2, frozenset({2}), share_bp=0), "rule_share_invalid", "share_bp"),
        (Rule("zulia", 2, frozenset({2}), share_bp=10_001), "rule_share_invalid", "share_bp"),
        (Rule("zulia", 2, frozenset({2}), per_project_cap_minor=0), "rule_cap_invalid", "per_project_cap_minor"),
        (Rule("zulia", 2, frozenset({2}), per_project_cap_minor=-1), "rule_cap_invalid", "per_project_cap_minor"),
        (Rule("zulia", 2, frozenset({2}), total_cap_minor=-1), "rule_cap_invalid", "total_cap_minor"),
        (Rule("zulia", 2, frozenset({2}), total_cap_minor=2**63), "rule_cap_invalid", "total_cap_minor"),
        # Zulia's rank 1 at the national fund's order: which pays first?
        (Rule("zulia", 1, frozenset({1, 2})), "rules_overlap", "order"),
        (Rule("maracaibo", 1, frozenset({1}), tid("C002")), "rules_overlap", "order"),
        # The national fund paying Zulia's rank 1 again under a second rule.
        (Rule("national", 5, frozenset({1, 3}), tid("ZU")), "rule_double_claim", "funder"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_field(rule: Rule, code: str, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_rules([NATIONAL_RANK_1, rule], FUNDERS, TREE)
    assert refused.value.code == code
    assert refused.value.status == 422
    assert refused.value.extra == {"field": f"rules[1].{field}", "rule": 1}
    assert refused.value.detail.startswith(f"rules[1].{field}: ")


def test_an_overlap_names_both_rules_and_where() -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_rules([NATIONAL_RANK_1, Rule("maracaibo", 1, frozenset({1, 2}))], FUNDERS, TREE)
    assert "rules[0] and rules[1] can both claim rank 1 in territory " + str(tid("MA")) in refused.value.detail


def test_rules_that_never_claim_the_same_project_are_accepted() -> None:
    validate_rules(
        [
            *RULES,
            Rule("zulia", 2, frozenset({3}), tid("MA")),  # same funder and order, other rank
            Rule("lara", 2, frozenset({2})),  # same order as Zulia's, another state
            Rule("lara", 3, frozenset({1}), tid("IR"), total_cap_minor=0),
            Rule("maracaibo", 4, frozenset({2}), tid("C001")),  # co-funds Zulia's rank 2, later
        ],
        [*FUNDERS, LARA],
        TREE,
    )


def test_too_many_rules() -> None:
    rules = [Rule("national", 1, frozenset({rank})) for rank in range(1, MAX_RULES + 2)]
    validate_rules(rules[:MAX_RULES], FUNDERS, TREE)
    with pytest.raises(InvalidInput) as refused:
        validate_rules(rules, FUNDERS, TREE)
    assert refused.value.code == "too_many_rules"


@pytest.mark.parametrize(
    ("funders", "code", "field"),
    [
        ([NATIONAL, replace(ZULIA, name="national")], "funder_duplicate", "funders[1].name"),
        ([replace(NATIONAL, name="National Fund")], "funder_name_invalid", "funders[0].name"),
        ([replace(NATIONAL, name="")], "funder_name_invalid", "funders[0].name"),
        ([replace(NATIONAL, currency="US$")], "funder_currency_invalid", "funders[0].currency"),
    ],
)
def test_bad_funders_are_refused(funders: list[Funder], code: str, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_funders(funders)
    assert (refused.value.code, refused.value.extra["field"]) == (code, field)
    with pytest.raises(InvalidInput):
        validate_rules([], funders, TREE)


def test_territory_tree() -> None:
    assert TREE.contains(tid("VE"), tid("C003"))
    assert TREE.contains(tid("C003"), tid("C003"))
    assert not TREE.contains(tid("MA"), tid("C003"))
    assert not TREE.contains(tid("C003"), tid("SF"))
    same = TerritoryTree({tid("C003"): [tid("VE"), tid("ZU"), tid("SF")], tid("VE"): []})
    assert same.contains(tid("ZU"), tid("C003"))
    with pytest.raises(InvalidInput) as unknown:
        TREE.contains(tid("VE"), uuid.uuid4())
    assert unknown.value.code == "territory_unknown"
    with pytest.raises(InvalidInput) as rule_unknown:
        validate_rules([Rule("national", 1, frozenset({1}), uuid.uuid4())], FUNDERS, TREE)
    assert rule_unknown.value.code == "territory_unknown"
    with pytest.raises(InvalidInput) as cycle:
        TerritoryTree.from_parents({tid("A"): tid("B"), tid("B"): tid("A")})
    assert cycle.value.code == "territory_cycle"
    with pytest.raises(InvalidInput) as orphan:
        TerritoryTree.from_parents({tid("A"): tid("B")})
    assert orphan.value.code == "territory_unknown"


# --- property tests ------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    parents: Mapping[uuid.UUID, uuid.UUID | None]
    funders: tuple[Funder, ...]
    rules: tuple[Rule, ...]  # valid
    communes: tuple[CertifiedCommune, ...]

    @property
    def tree(self) -> TerritoryTree:
        return TerritoryTree.from_parents(self.parents)

    def inside(self, outer: uuid.UUID, inner: uuid.UUID) -> bool:
        """The oracle's containment: walk up the parent links."""
        node: uuid.UUID | None = inner
        while node is not None:
            if node == outer:
                return True
            node = self.parents[node]
        return False

    def funder(self, name: str) -> Funder:
        return next(f for f in self.funders if f.name == name)

    def territory(self, rule: Rule) -> uuid.UUID:
        return rule.territory_id or self.funder(rule.funder).territory_id

    def claims(self, rule: Rule, commune_id: uuid.UUID, rank: int) -> bool:
        return (
            rank in rule.ranks
            and self.inside(self.territory(rule), commune_id)
            and self.inside(self.funder(rule.funder).territory_id, commune_id)
        )

    def rule_of(self, a: PlannedAllocation) -> Rule:
        (rule,) = [r for r in self.rules if r.funder == a.funder and self.claims(r, a.commune_id, a.rank)]
        return rule

    def rule_of_usage(self, u: RuleUsage) -> Rule:
        (rule,) = [
            r
            for r in self.rules
            if (r.funder, r.order, r.ranks, self.territory(r)) == (u.funder, u.order, u.ranks, u.territory_id)
        ]
        return rule


CURRENCIES = ["USD", "VES"]
# Mostly one currency, so that most claims get past the currency check.
MOSTLY_USD = st.sampled_from(["USD"] * 5 + ["VES"])


@st.composite
def trees(draw: st.DrawFn) -> dict[uuid.UUID, uuid.UUID | None]:
    size = draw(st.integers(1, 12))
    nodes = [uuid.UUID(int=i + 1) for i in range(size)]
    parents: dict[uuid.UUID, uuid.UUID | None] = {nodes[0]: None}
    for i in range(1, size):
        parents[nodes[i]] = nodes[draw(st.integers(0, i - 1))]
    return parents


@st.composite
def raw_rules(draw: st.DrawFn, names: Sequence[str], nodes: Sequence[uuid.UUID]) -> Rule:
    return Rule(
        funder=draw(st.sampled_from(names)),
        order=draw(st.integers(1, 5)),
        ranks=draw(st.frozensets(st.integers(1, 3), min_size=1)),
        territory_id=draw(st.sampled_from([None, None, *nodes])),
        share_bp=draw(st.sampled_from([10_000, 5000, 3000, 2500]) | st.integers(1, 10_000)),
        per_project_cap_minor=draw(st.none() | st.integers(1, 2_000_000)),
        total_cap_minor=draw(st.none() | st.integers(0, 5_000_000)),
    )


@st.composite
def certified(draw: st.DrawFn, nodes: Sequence[uuid.UUID], version: int = 1) -> tuple[CertifiedCommune, ...]:
    places = draw(st.lists(st.sampled_from(nodes), unique=True, min_size=1, max_size=8))
    codes = draw(st.permutations(range(len(places))))
    out = []
    for place, code in zip(places, codes, strict=True):
        out.append(CertifiedCommune(place, f"C{code:03d}", version, draw(candidate_lists())))
    return tuple(out)


@st.composite
def candidate_lists(draw: st.DrawFn) -> tuple[RankedCandidate, ...]:
    # Usually ranks 1..k, as a ranking gives them; sometimes with gaps.
    ranks = draw(st.integers(1, 4).map(lambda k: list(range(1, k + 1))) | st.lists(st.integers(1, 4), unique=True))
    out = []
    for rank in ranks:
        size = draw(st.sampled_from(["known"] * 6 + ["tiny", "unknown"]))
        costs = {"known": st.integers(1, 3_000_000), "tiny": st.integers(1, 20), "unknown": st.none()}
        cost = draw(costs[size])
        currency = draw(MOSTLY_USD) if cost is not None else draw(st.sampled_from([None, *CURRENCIES]))
        out.append(RankedCandidate(draw(st.uuids()), rank, f"r{rank}", cost, currency))
    return tuple(out)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    parents = draw(trees())
    nodes = list(parents)
    names = [f"f{k}" for k in range(draw(st.integers(1, 4)))]
    # The first funder is usually national (the root), the others anywhere.
    places = [
        draw(st.sampled_from(nodes[:1]) | st.sampled_from(nodes)),
        *(draw(st.sampled_from(nodes)) for _ in names[1:]),
    ]
    funders = tuple(Funder(n, draw(MOSTLY_USD), t) for n, t in zip(names, places, strict=True))
    tree = TerritoryTree.from_parents(parents)
    accepted: list[Rule] = []
    for rule in draw(st.lists(raw_rules(names, nodes), min_size=1, max_size=12)):
        try:
            validate_rules([*accepted, rule], funders, tree)
        except InvalidInput:
            continue
        accepted.append(rule)
    return World(parents, funders, tuple(accepted), draw(certified(nodes)))


PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_invariants(world: World, result: FundingPlan) -> None:
    by_project: dict[tuple[uuid.UUID, uuid.UUID], list[PlannedAllocation]] = {}
    for a in result.allocations:
        by_project.setdefault((a.commune_id, a.candidate_id), []).append(a)
        rule = world.rule_of(a)  # exactly one rule of its funder claims it: coverage, no double claim
        funder = world.funder(a.funder)
        assert world.inside(funder.territory_id, a.commune_id)
        assert (a.rule_order, a.currency) == (rule.order, funder.currency)
        assert isinstance(a.amount_minor, int)
        assert a.amount_minor > 0
        if rule.per_project_cap_minor is not None:
            assert a.amount_minor <= rule.per_project_cap_minor
    assert len({a.key for a in result.allocations}) == len(result.allocations)

    for usage in result.rules:
        rule = world.rule_of_usage(usage)
        mine = [a for a in result.allocations if world.rule_of(a) == rule]
        paid = sum(a.amount_minor for a in mine)
        assert (usage.planned_minor, usage.allocations) == (paid, len(mine))
        if rule.total_cap_minor is not None:
            assert paid <= rule.total_cap_minor
            assert usage.cap_left_minor == rule.total_cap_minor - paid
    assert len(result.rules) == len(world.rules)

    candidates = {(c.commune_id, k.candidate_id): (c, k) for c in world.communes for k in c.candidates}
    for project in result.projects:
        c, k = candidates[project.commune_id, project.candidate_id]
        allocations = by_project.get((c.commune_id, k.candidate_id), [])
        funded = sum(a.amount_minor for a in allocations)
        assert project.funded_minor == funded
        assert project.cost_minor == k.estimated_cost_minor
        if k.estimated_cost_minor is not None:
            assert funded <= k.estimated_cost_minor
            assert project.unfunded_minor is not None
            assert project.funded_minor + project.unfunded_minor == k.estimated_cost_minor
        else:
            assert project.unfunded_minor is None
            assert len(allocations) <= 1  # one flat grant
        assert len({a.currency for a in allocations}) <= 1
        if k.cost_currency is not None:
            assert all(a.currency == k.cost_currency for a in allocations)
        claiming = [r for r in world.rules if world.claims(r, c.commune_id, k.rank)]
        assert project.covered == bool(claiming)
        # Every claim is either paid or skipped with a reason, once.
        paid_by = {world.rule_of(a) for a in allocations}
        skipped = [(s.funder, s.rule_order) for s in project.skipped]
        assert sorted(skipped + [(r.funder, r.order) for r in paid_by]) == sorted((r.funder, r.order) for r in claiming)
        for skip in project.skipped:
            check_reason(world, result, project, skip, allocations)
        # No money left on the table: a claim paid less than its share and cap only when the
        # project is fully funded or the rule's total cap is used up.
        for rule in claiming:
            if k.estimated_cost_minor is None or k.cost_currency != world.funder(rule.funder).currency:
                continue
            wanted = k.estimated_cost_minor * rule.share_bp // 10_000
            if rule.per_project_cap_minor is not None:
                wanted = min(wanted, rule.per_project_cap_minor)
            got = sum(a.amount_minor for a in allocations if world.rule_of(a) == rule)
            assert got <= wanted
            if got < wanted:
                left = next(u.cap_left_minor for u in result.rules if world.rule_of_usage(u) == rule)
                assert project.unfunded_minor == 0 or left == 0

    expected_projects = {
        (c.commune_id, k.candidate_id)
        for c in world.communes
        for k in c.candidates
        if any(k.rank in r.ranks for r in world.rules)
    }
    assert {(p.commune_id, p.candidate_id) for p in result.projects} == expected_projects
    for f in result.funders:
        assert f.planned_minor == sum(a.amount_minor for a in result.allocations if a.funder == f.funder)


def check_reason(
    world: World, result: FundingPlan, project: ProjectPlan, skip: Skip, allocations: list[PlannedAllocation]
) -> None:
    """A skip's reason is borne out by the final plan."""
    (rule,) = [
        r
        for r in world.rules
        if (r.funder, r.order) == (skip.funder, skip.rule_order) and world.claims(r, project.commune_id, project.rank)
    ]
    currency = world.funder(rule.funder).currency
    cost = project.cost_minor
    if skip.reason is SkipReason.CURRENCY_MISMATCH:
        assert project.currency is not None
        assert project.currency != currency
    elif skip.reason is SkipReason.FULLY_FUNDED:
        assert project.unfunded_minor == 0 or (cost is None and len(allocations) == 1)
    elif skip.reason is SkipReason.COST_UNKNOWN:
        assert cost is None
        assert rule.share_bp < 10_000 or rule.per_project_cap_minor is None
    elif skip.reason is SkipReason.CAP_EXHAUSTED:
        assert next(u.cap_left_minor for u in result.rules if world.rule_of_usage(u) == rule) == 0
    else:
        assert skip.reason is SkipReason.ROUNDS_TO_ZERO
        assert cost is not None
        assert cost * rule.share_bp // 10_000 == 0


@PROPERTIES
@given(world=worlds())
def test_plan_respects_costs_caps_and_territories(world: World) -> None:
    check_invariants(world, plan(world.rules, world.funders, world.tree, world.communes))


@PROPERTIES
@given(world=worlds(), data=st.data())
def test_plan_is_deterministic_whatever_the_input_order(world: World, data: st.DataObject) -> None:
    expected = plan(world.rules, world.funders, world.tree, world.communes)
    rules = data.draw(st.permutations(world.rules))
    funders = data.draw(st.permutations(world.funders))
    communes = [replace(c, candidates=tuple(data.draw(st.permutations(c.candidates)))) for c in world.communes]
    communes = data.draw(st.permutations(communes))
    assert plan(rules, funders, world.tree, communes) == expected
    assert plan(world.rules, world.funders, world.tree, world.communes) == expected


@PROPERTIES
@given(world=worlds(), data=st.data())
def test_diff_of_a_recount_turns_one_plan_into_the_other(world: World, data: st.DataObject) -> None:
    before = plan(world.rules, world.funders, world.tree, world.communes)
    recounted = data.draw(st.lists(st.sampled_from(world.communes), unique=True) if world.communes else st.just([]))
    newer = [replace(c, version=c.version + 1, candidates=data.draw(candidate_lists())) for c in recounted]
    results = supersede(world.communes, newer)
    after = plan(world.rules, world.funders, world.tree, results)
    check_invariants(replace(world, communes=results), after)

    changes = diff(before, after)
    assert apply_changes(before.allocations, changes) == after.allocations
    assert sorted(changes.unchanged + changes.create, key=str) == sorted(after.allocations, key=str)
    assert sorted(changes.unchanged + changes.reverse, key=str) == sorted(before.allocations, key=str)
    assert not {a.key for a in changes.reverse} - {a.key for a in before.allocations}
    if all(r.total_cap_minor is None for r in world.rules):
        # Without total caps a recount changes only the recounted communes' allocations.
        touched = {c.commune_id for c in recounted}
        assert {a.commune_id for a in changes.reverse + changes.create} <= touched


def oracle_refuses(world: World, rules: Sequence[Rule]) -> bool:
    """Whether some pair of (individually valid) rules can claim the same project at one order or for one funder."""
    for i, a in enumerate(rules):
        for b in rules[:i]:
            if not (a.order == b.order or a.funder == b.funder) or not a.ranks & b.ranks:
                continue
            ta, tb = world.territory(a), world.territory(b)
            if world.inside(ta, tb) or world.inside(tb, ta):
                return True
    return False


@PROPERTIES
@given(world=worlds(), data=st.data())
def test_validate_refuses_exactly_the_overlapping_rules(world: World, data: st.DataObject) -> None:
    nodes = list(world.parents)
    names = [f.name for f in world.funders]
    drawn = data.draw(st.lists(raw_rules(names, nodes), max_size=8))
    # Only rules each valid on its own, so that an overlap is the only possible refusal.
    rules = [r for r in drawn if world.inside(world.funder(r.funder).territory_id, world.territory(r))]
    if oracle_refuses(world, rules):
        with pytest.raises(InvalidInput) as refused:
            validate_rules(rules, world.funders, world.tree)
        assert refused.value.code in {"rules_overlap", "rule_double_claim"}
    else:
        validate_rules(rules, world.funders, world.tree)
        assert len(resolve_rules(rules, world.funders, world.tree)) == len(rules)


@PROPERTIES
@given(world=worlds(), data=st.data())
def test_a_rule_claiming_a_declared_rules_projects_is_refused(world: World, data: st.DataObject) -> None:
    if not world.rules:
        return
    taken = data.draw(st.sampled_from(world.rules))
    ranks = frozenset({data.draw(st.sampled_from(sorted(taken.ranks)))})
    inner = data.draw(st.sampled_from([t for t in world.parents if world.inside(world.territory(taken), t)]))
    # Its own funder again, at an order no one uses: a double claim.
    later = max(r.order for r in world.rules) + 1
    again = Rule(taken.funder, later, ranks, inner)
    with pytest.raises(InvalidInput) as double:
        validate_rules([*world.rules, again], world.funders, world.tree)
    assert double.value.code == "rule_double_claim"
    assert double.value.extra["rule"] == len(world.rules)
    # Another funder covering everything, at the same order: undefined precedence.
    root = next(t for t, p in world.parents.items() if p is None)
    everywhere = Funder("everywhere", "USD", root)
    rival = Rule("everywhere", taken.order, ranks, inner)
    with pytest.raises(InvalidInput) as overlap:
        validate_rules([*world.rules, rival], [*world.funders, everywhere], world.tree)
    assert overlap.value.code == "rules_overlap"
    # Moved to an order of its own, the rival co-funds instead.
    validate_rules([*world.rules, replace(rival, order=later)], [*world.funders, everywhere], world.tree)
