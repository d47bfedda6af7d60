"""A commune's full result from the raw counts, as pure functions (no database, no clock).

What is counted, per commune:

* votes per candidate, blank and null: ballot rows of the online, electronic-table and offline
  channels (a ballot row without a candidate is blank; ballot rows are never null), plus the
  confirmed tally sheets of paper tables (their votes, blank and null);
* null votes of offline tables (a device counts them without a ballot row);
* participations: people who took part, whatever the channel (one per person, by the
  participations' primary key); turnout = participations / roll_size (the commune's entries of
  the frozen roll);
* conflicts: refused second participations (`participation_conflicts`), and how many of them
  have their second ballot in the count (`ballot_counted`: it came from an offline table);
* subtotals per channel and table, with the same counts.

The conflict rule (issue 8, docs/offline-tables.md): a commune whose counted conflicts could
change its winner, that is `counted_conflicts >= margin` (votes between first and second place)
with at least one counted conflict, is certified only after an auditor recorded a decision
covering at least that many. A refused attempt whose ballot was never counted changes nothing.
A commune with a paper table whose tally sheet is not confirmed is not certified at all.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from comuna_consultations.domain.ranking import RankedCandidate, Tally, TieRule, margin_of, rank_candidates, winner_of
from comuna_consultations.vocabulary import ParticipationChannel


@dataclass(frozen=True, slots=True)
class BallotGroup:
    """Ballot rows of one commune, channel, table and choice (candidate, or None = blank)."""

    commune_id: uuid.UUID
    channel: str
    table_id: uuid.UUID | None
    candidate_id: uuid.UUID | None
    count: int


@dataclass(frozen=True, slots=True)
class PaperSheet:
    """A paper table's confirmed tally sheet."""

    commune_id: uuid.UUID
    table_id: uuid.UUID
    votes: Mapping[uuid.UUID, int]
    blank: int
    null: int


@dataclass(frozen=True, slots=True)
class ParticipationGroup:
    commune_id: uuid.UUID
    channel: str
    table_id: uuid.UUID | None
    count: int


@dataclass(slots=True)
class Subtotal:
    channel: str
    table_id: uuid.UUID | None
    votes: dict[uuid.UUID, int] = field(default_factory=dict)
    blank: int = 0
    null: int = 0
    participations: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "table_id": str(self.table_id) if self.table_id else None,
            "votes": {str(k): v for k, v in sorted(self.votes.items(), key=lambda kv: str(kv[0]))},
            "blank": self.blank,
            "null": self.null,
            "participations": self.participations,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subtotal:
        table = data.get("table_id")
        return cls(
            channel=str(data["channel"]),
            table_id=uuid.UUID(table) if table else None,
            votes={uuid.UUID(k): int(v) for k, v in dict(data.get("votes", {})).items()},
            blank=int(data.get("blank", 0)),
            null=int(data.get("null", 0)),
            participations=int(data.get("participations", 0)),
        )


@dataclass(slots=True)
class CommuneCounts:
    """Everything counted for one commune, before ranking."""

    votes: dict[uuid.UUID, int] = field(default_factory=dict)
    blank: int = 0
    null: int = 0
    participations: int = 0
    roll_size: int = 0
    conflicts: int = 0
    counted_conflicts: int = 0
    subtotals: dict[tuple[str, uuid.UUID | None], Subtotal] = field(default_factory=dict)

    def subtotal(self, channel: str, table_id: uuid.UUID | None) -> Subtotal:
        key = (channel, table_id)
        if key not in self.subtotals:
            self.subtotals[key] = Subtotal(channel, table_id)
        return self.subtotals[key]

    def ordered_subtotals(self) -> list[Subtotal]:
        return sorted(self.subtotals.values(), key=lambda s: (s.channel, str(s.table_id or "")))


PAPER = ParticipationChannel.PAPER.value
ELECTRONIC_TABLE = ParticipationChannel.TABLE.value
OFFLINE = ParticipationChannel.OFFLINE.value


def count_communes(
    ballots: Iterable[BallotGroup],
    sheets: Iterable[PaperSheet],
    participations: Iterable[ParticipationGroup],
    roll: Mapping[uuid.UUID, int],
    conflicts: Mapping[uuid.UUID, tuple[int, int]],
    *,
    offline_nulls: Iterable[tuple[uuid.UUID, uuid.UUID, int]] = (),
) -> dict[uuid.UUID, CommuneCounts]:
    counts: dict[uuid.UUID, CommuneCounts] = defaultdict(CommuneCounts)
    for commune_id, table_id, n in offline_nulls:
        counts[commune_id].null += n
        counts[commune_id].subtotal(OFFLINE, table_id).null += n
    for b in ballots:
        c, sub = counts[b.commune_id], counts[b.commune_id].subtotal(b.channel, b.table_id)
        if b.channel == ELECTRONIC_TABLE:
            # An electronic table's participations name no table (secrecy, migration 0010):
            # each has exactly one ballot row, which names it.
            sub.participations += b.count
        if b.candidate_id is None:
            c.blank += b.count
            sub.blank += b.count
        else:
            c.votes[b.candidate_id] = c.votes.get(b.candidate_id, 0) + b.count
            sub.votes[b.candidate_id] = sub.votes.get(b.candidate_id, 0) + b.count
    for s in sheets:
        c, sub = counts[s.commune_id], counts[s.commune_id].subtotal(PAPER, s.table_id)
        for candidate_id, n in s.votes.items():
            c.votes[candidate_id] = c.votes.get(candidate_id, 0) + n
            sub.votes[candidate_id] = sub.votes.get(candidate_id, 0) + n
        c.blank += s.blank
        c.null += s.null
        sub.blank += s.blank
        sub.null += s.null
    for p in participations:
        counts[p.commune_id].participations += p.count
        if p.channel != ELECTRONIC_TABLE:
            counts[p.commune_id].subtotal(p.channel, p.table_id).participations += p.count
    for commune_id, n in roll.items():
        counts[commune_id].roll_size = n
    for commune_id, (n, counted) in conflicts.items():
        counts[commune_id].conflicts = n
        counts[commune_id].counted_conflicts = counted
    return counts


@dataclass(frozen=True, slots=True)
class CandidateInfo:
    id: uuid.UUID
    commune_id: uuid.UUID
    title: str
    assembly_priority: int
    estimated_cost: int | None
    registered_at: Any  # datetime | None (kept loose: the ranking only compares it)


@dataclass(frozen=True, slots=True)
class CommuneResult:
    """One commune's full result: ranking and counts (what a certification stores and announces)."""

    commune_id: uuid.UUID
    ranked: list[RankedCandidate]
    winner_candidate_id: uuid.UUID | None
    margin: int
    blank: int
    null: int
    participations: int
    roll_size: int
    conflicts: int
    counted_conflicts: int
    subtotals: list[Subtotal]

    @property
    def ballots(self) -> int:
        """Ballots cast: votes for candidates, blank and null."""
        return sum(c.votes for c in self.ranked) + self.blank + self.null

    @property
    def conflicts_could_change_winner(self) -> bool:
        return self.counted_conflicts > 0 and self.counted_conflicts >= self.margin


def result_of(
    commune_id: uuid.UUID,
    candidates: Sequence[CandidateInfo],
    counts: CommuneCounts | None,
    rules: Sequence[TieRule],
    seed: bytes,
) -> CommuneResult:
    counts = counts or CommuneCounts()
    tallies = [
        Tally(c.id, c.title, c.assembly_priority, counts.votes.get(c.id, 0), c.estimated_cost, c.registered_at)
        for c in candidates
    ]
    ranked = rank_candidates(tallies, rules, seed)
    return CommuneResult(
        commune_id=commune_id,
        ranked=ranked,
        winner_candidate_id=winner_of(ranked),
        margin=margin_of(ranked),
        blank=counts.blank,
        null=counts.null,
        participations=counts.participations,
        roll_size=counts.roll_size,
        conflicts=counts.conflicts,
        counted_conflicts=counts.counted_conflicts,
        subtotals=counts.ordered_subtotals(),
    )
