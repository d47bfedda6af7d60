"""The counting rule (votes, then the declared tie-break) and the lifecycle, as pure functions."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_consultations.domain.lifecycle import check_transition
from comuna_consultations.domain.ranking import (
    DEFAULT_TIE_BREAK,
    Tally,
    TieRule,
    margin_of,
    rank_candidates,
    tie_break_of,
    winner_of,
)
from comuna_consultations.vocabulary import ConsultationStatus as Status
from comuna_platform.errors import FailedPrecondition, InvalidInput


def tally(votes: int, priority: int, cid: int = 0, cost: int | None = None, at: int = 0) -> Tally:
    return Tally(uuid.UUID(int=cid), f"c{cid}", priority, votes, cost, T0 + timedelta(minutes=at))


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SEED = bytes(range(32))

tallies = st.lists(
    st.builds(
        Tally,
        candidate_id=st.uuids(),
        title=st.text(max_size=5),
        # Small ranges on purpose: ties in votes AND in every tie-break field must be common.
        assembly_priority=st.integers(1, 4),
        votes=st.integers(0, 5),
        estimated_cost=st.one_of(st.none(), st.integers(0, 3)),
        registered_at=st.one_of(st.none(), st.sampled_from([T0, T0 + timedelta(seconds=1), T0 + timedelta(days=1)])),
    ),
    max_size=12,
    unique_by=lambda t: t.candidate_id,
)
rule_lists = st.lists(st.sampled_from(list(TieRule)), unique=True, min_size=1).map(tie_break_of)
seeds = st.binary(min_size=32, max_size=32)


def _field(rule: TieRule, t: Tally, seed: bytes) -> tuple[object, ...]:
    """The rule's comparison, written independently of the implementation's keys."""
    if rule is TieRule.LOWER_COST:
        return (t.estimated_cost is None, t.estimated_cost if t.estimated_cost is not None else 0)
    if rule is TieRule.EARLIER_REGISTRATION:
        return (t.registered_at is None, t.registered_at or T0)
    if rule is TieRule.ASSEMBLY_PRIORITY:
        return (t.assembly_priority,)
    return (hmac.new(seed, t.candidate_id.bytes, hashlib.sha256).digest(),)


def _beats(a: Tally, b: Tally, rules: tuple[TieRule, ...], seed: bytes) -> bool:
    if a.votes != b.votes:
        return a.votes > b.votes
    for rule in rules:
        fa, fb = _field(rule, a, seed), _field(rule, b, seed)
        if fa != fb:
            return fa < fb
    return str(a.candidate_id) < str(b.candidate_id)


@given(tallies, rule_lists, seeds)
def test_ranks_are_a_permutation(items: list[Tally], rules: tuple[TieRule, ...], seed: bytes) -> None:
    ranked = rank_candidates(items, rules, seed)
    assert [r.rank for r in ranked] == list(range(1, len(items) + 1))
    assert {r.candidate_id for r in ranked} == {t.candidate_id for t in items}


@given(tallies, rule_lists, seeds)
def test_each_rank_beats_the_next_by_the_declared_rules(
    items: list[Tally], rules: tuple[TieRule, ...], seed: bytes
) -> None:
    by_id = {t.candidate_id: t for t in items}
    ranked = rank_candidates(items, rules, seed)
    for a, b in itertools.pairwise(ranked):
        assert _beats(by_id[a.candidate_id], by_id[b.candidate_id], rules, seed)


@given(tallies, rule_lists, seeds, st.randoms())
def test_order_of_input_does_not_matter(
    items: list[Tally], rules: tuple[TieRule, ...], seed: bytes, rnd: random.Random
) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert rank_candidates(shuffled, rules, seed) == rank_candidates(items, rules, seed)


@given(tallies, seeds)
def test_winner_has_the_most_votes(items: list[Tally], seed: bytes) -> None:
    ranked = rank_candidates(items, DEFAULT_TIE_BREAK, seed)
    winner = winner_of(ranked)
    if sum(t.votes for t in items) == 0:
        assert winner is None
        return
    best = max(t.votes for t in items)
    top = next(r for r in ranked if r.candidate_id == winner)
    assert (top.rank, top.votes) == (1, best)
    assert margin_of(ranked) == best - (ranked[1].votes if len(ranked) > 1 else 0)


def test_default_tie_break_is_cost_then_registration_then_the_draw() -> None:
    assert DEFAULT_TIE_BREAK == (TieRule.LOWER_COST, TieRule.EARLIER_REGISTRATION, TieRule.DRAW)
    # 1 and 2 tie on votes; 2 is cheaper.
    ranked = rank_candidates([tally(3, 1, 1, cost=500, at=0), tally(3, 2, 2, cost=100, at=9)], seed=SEED)
    assert [r.candidate_id.int for r in ranked] == [2, 1]
    # Same cost: the earlier registration first, whatever the assembly's priority.
    ranked = rank_candidates([tally(3, 1, 1, cost=100, at=5), tally(3, 2, 2, cost=100, at=1)], seed=SEED)
    assert [r.candidate_id.int for r in ranked] == [2, 1]
    # A candidate without an estimate comes after any estimated cost.
    ranked = rank_candidates([tally(3, 1, 1, cost=None, at=0), tally(3, 2, 2, cost=10**9, at=9)], seed=SEED)
    assert [r.candidate_id.int for r in ranked] == [2, 1]
    # Same cost and registration: the draw, from the published seed.
    a, b = tally(3, 1, 1, cost=100, at=0), tally(3, 2, 2, cost=100, at=0)
    expected = sorted([a, b], key=lambda t: hmac.new(SEED, t.candidate_id.bytes, hashlib.sha256).digest())
    assert [r.candidate_id for r in rank_candidates([a, b], seed=SEED)] == [t.candidate_id for t in expected]


def test_the_draw_follows_the_seed_and_only_the_seed() -> None:
    items = [tally(1, p, cid, cost=7, at=0) for p, cid in enumerate(range(1, 9), start=1)]
    orders = {tuple(r.candidate_id.int for r in rank_candidates(items, seed=bytes([s]) * 32)) for s in range(8)}
    assert len(orders) > 1  # different seeds draw differently
    assert rank_candidates(items, seed=SEED) == rank_candidates(list(reversed(items)), seed=SEED)


def test_more_votes_always_beat_any_tie_break() -> None:
    ranked = rank_candidates([tally(2, 1, 1, cost=1, at=0), tally(3, 9, 2, cost=10**6, at=99)], seed=SEED)
    assert [r.candidate_id.int for r in ranked] == [2, 1]


def test_declared_rules_are_validated_and_end_with_the_draw() -> None:
    assert tie_break_of(["assembly_priority"]) == (TieRule.ASSEMBLY_PRIORITY, TieRule.DRAW)
    assert tie_break_of(["draw", "lower_cost"]) == (TieRule.DRAW, TieRule.LOWER_COST)
    for bad in ([], ["lower_cost", "lower_cost"], ["coin_toss"]):
        with pytest.raises(InvalidInput) as info:
            tie_break_of(bad)
        assert info.value.code == "tie_break_invalid"


def test_assembly_priority_rule_when_declared() -> None:
    rules = tie_break_of(["assembly_priority"])
    ranked = rank_candidates([tally(3, 2, 1), tally(3, 1, 2), tally(5, 3, 3), tally(0, 4, 4)], rules, SEED)
    assert [(r.candidate_id.int, r.rank) for r in ranked] == [(3, 1), (2, 2), (1, 3), (4, 4)]
    assert winner_of(ranked) == uuid.UUID(int=3)


def test_no_ballots_means_no_winner_even_with_candidates() -> None:
    ranked = rank_candidates([tally(0, 1, 1), tally(0, 2, 2)])
    assert [r.rank for r in ranked] == [1, 2]
    assert winner_of(ranked) is None
    assert winner_of([]) is None
    assert margin_of([]) == 0


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        ("open", Status.CERTIFIED, True),
        ("certified", Status.CERTIFIED, False),
        ("certified", Status.OPEN, False),
    ],
)
def test_lifecycle_moves_one_step_forward_only(current: str, target: Status, ok: bool) -> None:
    if ok:
        check_transition(current, target)
    else:
        with pytest.raises(FailedPrecondition):
            check_transition(current, target)


def test_certifying_twice_has_its_own_code() -> None:
    with pytest.raises(FailedPrecondition) as info:
        check_transition("certified", Status.CERTIFIED)
    assert info.value.code == "consultation_already_certified"
