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

What the ballot path (BALLOTS) must check, and why it is enough:

* A ballot is accepted at ONE instant `accepted_at = runtime.clock.now()`, read once per request
  (or once per group-commit batch, before its statement runs), and only if
  `window.accepts_ballots(accepted_at)` for the voter's commune, where `window` is
  `voting_windows(...)[commune]` when the commune is held (None = excluded: refuse) and
  `schedule.voting` otherwise (`lifecycle.phases_storage`).
* The insert statement itself re-checks that instant against the row it locks FOR KEY SHARE:
  the consultation's `voting_opens_at <= :accepted_at < voting_closes_at` (national communes) and
  the commune's hold (excluded: nothing; postponed: its own window), and `status <> 'certified'`.
  An amendment of the schedule or a hold takes FOR UPDATE on the consultation row, which
  conflicts: a ballot either commits before it, or is re-checked against the dates it committed.
* Dates already past never move (`Schedule.amended`), so once `voting_closes_at` has passed on
  the clock no amendment can reopen voting, and a ballot whose `accepted_at` is at or after the
  close is refused whatever it waited for. Certification starts no earlier than
  `certification_opens_at >= voting_closes_at` and locks the row FOR UPDATE, so a ballot still in
  flight then either committed before it or sees `certified`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum

from comuna_platform.errors import FailedPrecondition, InvalidInput


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

    def accepts_roll_request(self, now: datetime) -> bool:
        """The roll is requested (frozen) only before voting opens."""
        return now < self.voting_opens_at

    def certifiable(self, now: datetime) -> bool:
        return now >= self.certification_opens_at

    def window_of(self, holds: Mapping[uuid.UUID, VotingWindow | None], commune: uuid.UUID) -> VotingWindow | None:
        """A commune's voting window: its hold's (None if excluded) or the national one."""
        return holds.get(commune, self.voting)

    def amended(self, changes: Mapping[str, datetime], now: datetime) -> Schedule:
        """The schedule with `changes` applied, refused (422) unless every changed date was and
        will be in the future and the result keeps the order. A date already past is history:
        moving it would rewrite what happened in that phase."""
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise InvalidInput(f"unknown schedule dates: {sorted(unknown)}", code="schedule_invalid")
        for name, new in changes.items():
            if getattr(self, name) <= now:
                raise InvalidInput(f"{name} has already passed and cannot move", code="schedule_date_passed")
            if new <= now:
                raise InvalidInput(f"{name} cannot move into the past", code="schedule_date_passed")
        amended = replace(self, **changes)
        amended.require_ordered()
        return amended

    def require_ordered(self) -> None:
        if not self.is_ordered():
            raise InvalidInput(
                "the schedule must be ordered: assemblies_open_at < candidates_close_at <= roll_cutoff_at"
                " < voting_opens_at < voting_closes_at <= certification_opens_at",
                code="schedule_invalid",
            )


def require_registration_open(schedule: Schedule, now: datetime) -> None:
    """409 `registration_closed` unless candidates may be recorded or changed at `now`."""
    if not schedule.accepts_candidates(now):
        raise FailedPrecondition(
            f"candidate registration is not open (phase {schedule.phase_at(now)})",
            code="registration_closed",
            phase=str(schedule.phase_at(now)),
        )


def require_phase(schedule: Schedule, now: datetime, allowed: bool, action: str, code: str) -> None:
    """409 `code` naming the current phase unless `allowed`."""
    if not allowed:
        phase = schedule.phase_at(now)
        raise FailedPrecondition(f"{action} is not possible in phase {phase}", code=code, phase=str(phase))
