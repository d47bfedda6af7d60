"""A consultation's phases follow its published dates on the server clock.

The schedule is published when the consultation opens (and amended only with a recorded reason,
never into the past). What may happen at an instant follows from the schedule alone:

    assemblies_open_at    assemblies debate; proposals, sessions, candidates may be recorded
    candidates_close_at   candidate registration closes: the candidate lists are final
    roll_cutoff_at        the voter roll is frozen as of this day
    voting_opens_at       ballots are accepted (in communes not excluded or postponed)
    voting_closes_at      no ballot any more; tally sheets and offline syncs come in (tally)
    certification_opens_at  results may be certified, per commune or all at once

A commune may be excluded (it does not vote) or postponed (it votes in its own window) by an
operator with a recorded reason: its `VotingWindow` is then None or its own.

Pure functions of (schedule, window, now): the tests drive them with a controllable clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Phase(StrEnum):
    SCHEDULED = "scheduled"  # before assemblies open
    ASSEMBLIES = "assemblies"
    REGISTRATION_CLOSED = "registration_closed"  # candidates final; the roll is being frozen
    VOTING = "voting"
    TALLY = "tally"  # voting closed; tally sheets and offline syncs still arrive
    CERTIFICATION = "certification"  # results may be certified


@dataclass(frozen=True, slots=True)
class VotingWindow:
    """When one commune votes: [opens_at, closes_at) on the server clock."""

    opens_at: datetime
    closes_at: datetime

    def accepts_ballots(self, now: datetime) -> bool:
        return self.opens_at <= now < self.closes_at

    def closed(self, now: datetime) -> bool:
        """Whether this commune's voting is over (its counts may be shown from now on)."""
        return now >= self.closes_at


@dataclass(frozen=True, slots=True)
class Schedule:
    assemblies_open_at: datetime
    candidates_close_at: datetime
    roll_cutoff_at: datetime
    voting_opens_at: datetime
    voting_closes_at: datetime
    certification_opens_at: datetime

    def is_ordered(self) -> bool:
        return (
            self.assemblies_open_at
            < self.candidates_close_at
            <= self.roll_cutoff_at
            < self.voting_opens_at
            < self.voting_closes_at
            <= self.certification_opens_at
        )

    @property
    def voting(self) -> VotingWindow:
        """The national voting window (a postponed commune has its own)."""
        return VotingWindow(self.voting_opens_at, self.voting_closes_at)

    def phase_at(self, now: datetime) -> Phase:
        if now < self.assemblies_open_at:
            return Phase.SCHEDULED
        if now < self.candidates_close_at:
            return Phase.ASSEMBLIES
        if now < self.voting_opens_at:
            return Phase.REGISTRATION_CLOSED
        if now < self.voting_closes_at:
            return Phase.VOTING
        if now < self.certification_opens_at:
            return Phase.TALLY
        return Phase.CERTIFICATION

    def accepts_candidates(self, now: datetime) -> bool:
        return self.phase_at(now) is Phase.ASSEMBLIES
