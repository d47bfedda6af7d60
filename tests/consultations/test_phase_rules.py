"""The pure rules of a consultation's phases (domain/phases.py): each boundary, amendments and
a commune's window, without a database or a clock."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_platform.errors import InvalidInput

TICK = timedelta(microseconds=1)
DATES = (
    "assemblies_open_at",
    "candidates_close_at",
    "roll_cutoff_at",
    "voting_opens_at",
    "voting_closes_at",
    "certification_opens_at",
)


def pure_schedule() -> Schedule:
    t = datetime(2030, 1, 1, tzinfo=UTC)
    return Schedule(*(t + timedelta(days=d) for d in (0, 10, 12, 14, 15, 16)))


def test_phase_at_each_boundary_is_the_next_phase() -> None:
    s = pure_schedule()
    expected = ["assemblies", "registration_closed", "registration_closed", "voting", "tally", "certification"]
    for name, phase_at in zip(DATES, expected, strict=True):
        at = getattr(s, name)
        assert s.phase_at(at) == phase_at, name
    assert s.phase_at(s.assemblies_open_at - TICK) == "scheduled"
    assert s.phase_at(s.voting_closes_at - TICK) == "voting"
    assert s.accepts_candidates(s.candidates_close_at - TICK) and not s.accepts_candidates(s.candidates_close_at)
    assert s.accepts_roll_request(s.voting_opens_at - TICK) and not s.accepts_roll_request(s.voting_opens_at)


def test_amended_refuses_the_past_and_disorder() -> None:
    s = pure_schedule()
    now = s.candidates_close_at + TICK  # registration just closed
    with pytest.raises(InvalidInput) as passed:
        s.amended({"candidates_close_at": now + timedelta(days=1)}, now)
    assert passed.value.code == "schedule_date_passed"
    with pytest.raises(InvalidInput) as past:
        s.amended({"voting_opens_at": now - timedelta(days=1)}, now)
    assert past.value.code == "schedule_date_passed"
    with pytest.raises(InvalidInput) as disorder:
        s.amended({"voting_opens_at": s.voting_closes_at}, now)
    assert disorder.value.code == "schedule_invalid"
    with pytest.raises(InvalidInput):
        s.amended({"tomorrow": now}, now)
    moved = s.amended({"voting_closes_at": s.voting_closes_at + timedelta(hours=2)}, now)
    assert moved.voting_closes_at - s.voting_closes_at == timedelta(hours=2) and moved.is_ordered()


def test_window_of_a_commune() -> None:
    s = pure_schedule()
    excluded, postponed, national = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    own = VotingWindow(s.voting_closes_at, s.certification_opens_at)
    holds: dict[uuid.UUID, VotingWindow | None] = {excluded: None, postponed: own}
    assert s.window_of(holds, excluded) is None
    assert s.window_of(holds, postponed) == own
    assert s.window_of(holds, national) == s.voting
    assert own.accepts_ballots(own.opens_at) and not own.accepts_ballots(own.closes_at) and own.closed(own.closes_at)
