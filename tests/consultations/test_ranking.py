"""The counting rule and the lifecycle, as pure functions."""

from __future__ import annotations

import itertools
import random
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_consultations.domain.lifecycle import check_transition
from comuna_consultations.domain.ranking import Tally, rank_candidates, winner_of
from comuna_consultations.vocabulary import ConsultationStatus as Status
from comuna_platform.errors import FailedPrecondition


def tally(votes: int, priority: int, cid: int = 0) -> Tally:
    return Tally(uuid.UUID(int=cid), f"c{cid}", priority, votes)


tallies = st.lists(
    st.builds(
        Tally,
        candidate_id=st.uuids(),
        title=st.text(max_size=5),
        # Small ranges on purpose: ties in votes AND in priority must be common.
        assembly_priority=st.integers(1, 4),
        votes=st.integers(0, 5),
    ),
    max_size=12,
    unique_by=lambda t: t.candidate_id,
)


@given(tallies)
def test_ranks_are_a_permutation(items: list[Tally]) -> None:
    ranked = rank_candidates(items)
    assert sorted(r.rank for r in ranked) == list(range(1, len(items) + 1))
    assert {r.candidate_id for r in ranked} == {t.candidate_id for t in items}
    assert [r.rank for r in ranked] == list(range(1, len(items) + 1))


@given(tallies)
def test_winner_has_the_most_votes(items: list[Tally]) -> None:
    ranked = rank_candidates(items)
    winner = winner_of(ranked)
    if sum(t.votes for t in items) == 0:
        assert winner is None
        return
    best = max(t.votes for t in items)
    top = next(r for r in ranked if r.candidate_id == winner)
    assert top.rank == 1
    assert top.votes == best
    # Among the candidates with the most votes, the winner has the assembly's highest priority.
    assert top.assembly_priority == min(t.assembly_priority for t in items if t.votes == best)


@given(tallies, st.randoms())
def test_order_of_input_does_not_matter(items: list[Tally], rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert rank_candidates(shuffled) == rank_candidates(items)


@given(tallies)
def test_each_rank_beats_the_next_by_the_rule(items: list[Tally]) -> None:
    ranked = rank_candidates(items)
    for a, b in itertools.pairwise(ranked):
        assert (
            a.votes > b.votes
            or (a.votes == b.votes and a.assembly_priority < b.assembly_priority)
            or (
                a.votes == b.votes
                and a.assembly_priority == b.assembly_priority
                and str(a.candidate_id) < str(b.candidate_id)
            )
        )


def test_tie_on_votes_goes_to_the_assembly_priority() -> None:
    ranked = rank_candidates([tally(3, 2, 1), tally(3, 1, 2), tally(5, 3, 3), tally(0, 4, 4)])
    assert [(r.candidate_id.int, r.rank) for r in ranked] == [(3, 1), (2, 2), (1, 3), (4, 4)]
    assert winner_of(ranked) == uuid.UUID(int=3)


def test_full_tie_goes_to_the_lower_candidate_id() -> None:
    ranked = rank_candidates([tally(1, 1, 9), tally(1, 1, 4)])
    assert [r.candidate_id.int for r in ranked] == [4, 9]


def test_no_ballots_means_no_winner_even_with_candidates() -> None:
    ranked = rank_candidates([tally(0, 1, 1), tally(0, 2, 2)])
    assert [r.rank for r in ranked] == [1, 2]
    assert winner_of(ranked) is None
    assert winner_of([]) is None


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
