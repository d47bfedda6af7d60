"""Funding's protobuf edge: consumed events become domain inputs, or are dropped when malformed."""

from __future__ import annotations

import uuid

from comuna.common.v1 import money_pb2
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.projects.v1 import events_pb2 as project_events
from comuna_funding import messages
from comuna_funding.domain import allocations


def test_a_commune_result_names_its_winner_or_nothing() -> None:
    consultation, commune, candidate = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def event(**result: object) -> consultation_events.CommuneResultCertified:
        fields: dict[str, object] = {
            "commune_id": str(commune),
            "commune_code": "VE.1",
            "winner_candidate_id": str(candidate),
            "candidates": [
                consultation_events.CandidateResult(candidate_id=str(uuid.uuid4()), title="Otro"),
                consultation_events.CandidateResult(candidate_id=str(candidate), title="Agua potable"),
            ],
            **result,
        }
        return consultation_events.CommuneResultCertified(
            consultation_id=str(consultation),
            consultation_code="2026-Q1",
            result=consultation_events.CommuneResult(**fields),
        )  # type: ignore[arg-type]

    assert messages.winner_of(event()) == (
        consultation,
        allocations.Winner(commune, "VE.1", candidate, "Agua potable"),
    )
    assert messages.winner_of(event(winner_candidate_id="")) is None
    assert messages.winner_of(event(commune_id="bad")) is None
    assert messages.winner_of(event(winner_candidate_id="bad")) is None
    malformed_consultation = event()
    malformed_consultation.consultation_id = "bad"
    assert messages.winner_of(malformed_consultation) is None
    # Upper-case spellings name the same commune (and so derive the same allocation id).
    upper = messages.winner_of(event(commune_id=str(commune).upper()))
    assert upper is not None and upper[1].commune_id == commune
    long_title = event(candidates=[consultation_events.CandidateResult(candidate_id=str(candidate), title="x" * 900)])
    found = messages.winner_of(long_title)
    assert found is not None and len(found[1].title) == allocations.MAX_TEXT


def test_milestone_events_without_usable_ids_are_not_recorded() -> None:
    event = project_events.MilestoneVerified(
        project_id=str(uuid.uuid4()), milestone_id="x", tranche=money_pb2.Money(amount_minor=1, currency="USD")
    )
    assert messages.tranche_of(event) is None
    event.milestone_id = str(uuid.uuid4())
    parsed = messages.tranche_of(event)
    assert parsed is not None and parsed.allocation_id is None and parsed.commune_id is None
