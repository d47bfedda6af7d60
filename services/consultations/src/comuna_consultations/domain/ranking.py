"""The counting rule, written down so that nobody decides a winner by hand.

Within a commune, candidates are ranked by more votes first. Candidates with equal votes are
ordered by the consultation's tie-break: an ordered list of rules declared before voting opens
(`consultations.tie_break`), each applied only to candidates every earlier rule left tied:

    lower_cost            a lower estimated cost first (a candidate without an estimate last)
    earlier_registration  registered earlier first (the candidate's `created_at`)
    assembly_priority     the assembly's order of priority first (a lower number first)
    draw                  a draw nobody can steer: HMAC-SHA256(draw_seed, candidate id bytes),
                          the lower digest first. `draw_seed` is generated when the consultation
                          opens and published with it, before voting opens and before anyone
                          knows which candidates will tie, so the draw can be re-computed by
                          anyone and chosen by no one.

Default: lower_cost, earlier_registration, draw. A declared list without `draw` gets it appended
(rules after `draw` never decide anything), and the candidate id in canonical text form comes after everything, so the
order is total whatever the data: every candidate gets a distinct rank 1..n.

The winner is rank 1, but only if at least one vote went to a candidate: with none (no ballots,
or blank and null ones only) nobody was chosen, whatever the tie-break.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from comuna_platform.errors import InvalidInput


class TieRule(StrEnum):
    LOWER_COST = "lower_cost"
    EARLIER_REGISTRATION = "earlier_registration"
    ASSEMBLY_PRIORITY = "assembly_priority"
    DRAW = "draw"


DEFAULT_TIE_BREAK: tuple[TieRule, ...] = (TieRule.LOWER_COST, TieRule.EARLIER_REGISTRATION, TieRule.DRAW)


@dataclass(frozen=True, slots=True)
class Tally:
    candidate_id: uuid.UUID
    title: str
    assembly_priority: int
    votes: int
    # Integer minor units; None when the candidate has no estimate.
    estimated_cost: int | None = None
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    candidate_id: uuid.UUID
    title: str
    assembly_priority: int
    votes: int
    rank: int
    estimated_cost: int | None = None
    registered_at: datetime | None = None


def tie_break_of(rules: Iterable[str]) -> tuple[TieRule, ...]:
    """The declared rules, validated (known, no repeats, at least one) and ending with `draw`."""
    names = list(rules)
    known = {r.value for r in TieRule}
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise InvalidInput(
            f"tie_break must be distinct rules among {sorted(known)}, got {names}", code="tie_break_invalid"
        )
    parsed = tuple(TieRule(n) for n in names)
    return parsed if TieRule.DRAW in parsed else (*parsed, TieRule.DRAW)


def draw_digest(seed: bytes, candidate_id: uuid.UUID) -> bytes:
    return hmac.new(seed, candidate_id.bytes, hashlib.sha256).digest()


def _rule_key(rule: TieRule, tally: Tally, seed: bytes) -> Any:
    if rule is TieRule.LOWER_COST:
        return (tally.estimated_cost is None, tally.estimated_cost or 0)
    if rule is TieRule.EARLIER_REGISTRATION:
        return (tally.registered_at is None, tally.registered_at.timestamp() if tally.registered_at else 0.0)
    if rule is TieRule.ASSEMBLY_PRIORITY:
        return tally.assembly_priority
    return draw_digest(seed, tally.candidate_id)


def rank_key(tally: Tally, rules: Sequence[TieRule] = DEFAULT_TIE_BREAK, seed: bytes = b"") -> tuple[Any, ...]:
    return (-tally.votes, *(_rule_key(r, tally, seed) for r in rules), str(tally.candidate_id))


def rank_candidates(
    tallies: Iterable[Tally], rules: Sequence[TieRule] = DEFAULT_TIE_BREAK, seed: bytes = b""
) -> list[RankedCandidate]:
    """The candidates of one commune in rank order, ranks 1..n."""
    # By votes first; the tie-break keys (an HMAC each for the draw) only where votes tie.
    by_votes = sorted(tallies, key=lambda t: -t.votes)
    ordered: list[Tally] = []
    for _, group in itertools.groupby(by_votes, key=lambda t: t.votes):
        tied = list(group)
        ordered += sorted(tied, key=lambda t: rank_key(t, rules, seed)) if len(tied) > 1 else tied
    return [
        RankedCandidate(t.candidate_id, t.title, t.assembly_priority, t.votes, rank, t.estimated_cost, t.registered_at)
        for rank, t in enumerate(ordered, start=1)
    ]


def winner_of(ranked: Sequence[RankedCandidate]) -> uuid.UUID | None:
    """Rank 1 when at least one vote went to a candidate, otherwise nobody."""
    if not ranked or sum(c.votes for c in ranked) == 0:
        return None
    return ranked[0].candidate_id


def margin_of(ranked: Sequence[RankedCandidate]) -> int:
    """Votes between first and second place (the first's votes when it stands alone)."""
    if not ranked:
        return 0
    return ranked[0].votes - (ranked[1].votes if len(ranked) > 1 else 0)
