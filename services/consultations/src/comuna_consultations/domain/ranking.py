"""The counting rule, written down so that nobody decides a winner by hand.

Within a commune, candidates are ranked by:
1. more votes first;
2. on equal votes, the assembly's order of priority (a lower `assembly_priority` first): the
   assembly already said which problem it considers most pressing;
3. on equal priority (impossible while priorities are unique per commune, kept so the order is
   total whatever the data), the candidate id in its canonical text form.

Every candidate gets a distinct rank 1..n. The winner is rank 1, but only if the commune cast at
least one ballot: with no ballots nobody was chosen, whatever the assembly's order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tally:
    candidate_id: uuid.UUID
    title: str
    assembly_priority: int
    votes: int


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    candidate_id: uuid.UUID
    title: str
    assembly_priority: int
    votes: int
    rank: int


def rank_key(tally: Tally) -> tuple[int, int, str]:
    return (-tally.votes, tally.assembly_priority, str(tally.candidate_id))


def rank_candidates(tallies: Iterable[Tally]) -> list[RankedCandidate]:
    """The candidates of one commune in rank order, ranks 1..n."""
    ordered = sorted(tallies, key=rank_key)
    return [
        RankedCandidate(t.candidate_id, t.title, t.assembly_priority, t.votes, rank)
        for rank, t in enumerate(ordered, start=1)
    ]


def winner_of(ranked: Sequence[RankedCandidate]) -> uuid.UUID | None:
    """Rank 1 when the commune had at least one ballot, otherwise nobody."""
    if not ranked or sum(c.votes for c in ranked) == 0:
        return None
    return ranked[0].candidate_id
