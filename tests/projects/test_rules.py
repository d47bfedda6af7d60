"""Pure rules: deterministic ids, reporting and verification order (four eyes), and event translation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna.common.v1 import money_pb2
from comuna.funding.v1 import events_pb2 as funding_events
from comuna_platform.errors import Conflict, FailedPrecondition, Forbidden
from comuna_platform.events import ReceivedEvent
from comuna_platform.events.envelope import Envelope
from comuna_projects.consumers.funding import MalformedEvent, allocation_from, disbursement_from
from comuna_projects.domain.rules import (
    attested_count,
    check_reportable,
    check_verifiable,
    milestone_id_for,
    project_id_for,
)


@dataclass
class M:
    id: uuid.UUID
    sequence: int
    status: str


def test_ids_are_deterministic_and_distinct() -> None:
    allocation = uuid.uuid4()
    project = project_id_for(allocation)
    assert project == project_id_for(uuid.UUID(str(allocation)))
    assert project != project_id_for(uuid.uuid4())
    assert milestone_id_for(project, 1) == milestone_id_for(project, 1)
    assert len({milestone_id_for(project, s) for s in range(1, 10)}) == 9
    assert project.version == 5


# A project's milestones always look like: some verified-or-funded ones, then reported ones,
# then pending ones (each is reported and verified in order).
states = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(min_value=0, max_value=n).flatmap(lambda d: st.tuples(st.just(d), st.integers(d, n))),
        st.lists(st.sampled_from(["verified", "funded"]), min_size=n, max_size=n),
    )
)


def _milestones(count: int, done: int, reported: int, done_statuses: list[str]) -> list[M]:
    def status(seq: int) -> str:
        if seq <= done:
            return done_statuses[seq - 1]
        return "reported" if seq <= reported else "pending"

    return [M(uuid.uuid4(), seq, status(seq)) for seq in range(1, count + 1)]


@given(state=states, data=st.data())
def test_only_the_first_pending_milestone_can_be_reported(
    state: tuple[int, tuple[int, int], list[str]], data: st.DataObject
) -> None:
    count, (done, reported), done_statuses = state
    milestones = _milestones(count, done, reported, done_statuses)
    target = data.draw(st.sampled_from(milestones))
    if target.sequence == reported + 1:
        check_reportable(milestones, target.id)
    elif target.sequence <= reported:
        with pytest.raises(Conflict) as conflict:
            check_reportable(milestones, target.id)
        assert conflict.value.code == "milestone_not_pending"
    else:
        with pytest.raises(FailedPrecondition) as precondition:
            check_reportable(milestones, target.id)
        assert precondition.value.code == "milestone_out_of_order"
    assert attested_count(milestones) == reported


@given(state=states, data=st.data(), same_person=st.booleans())
def test_only_the_first_reported_milestone_can_be_verified_and_never_by_its_reporter(
    state: tuple[int, tuple[int, int], list[str]], data: st.DataObject, same_person: bool
) -> None:
    count, (done, reported), done_statuses = state
    milestones = _milestones(count, done, reported, done_statuses)
    target = data.draw(st.sampled_from(milestones))
    verifier = "reporter" if same_person else "overseer"

    def verify() -> None:
        check_verifiable(milestones, target.id, reported_by="reporter", verifier=verifier)

    if target.sequence <= done:
        with pytest.raises(Conflict) as conflict:
            verify()
        assert conflict.value.code == "milestone_not_pending"
    elif target.sequence > reported:
        with pytest.raises(FailedPrecondition) as precondition:
            verify()
        assert precondition.value.code == "milestone_not_reported"
    elif same_person:
        with pytest.raises(Forbidden) as forbidden:
            verify()
        assert forbidden.value.code == "own_milestone"
    elif target.sequence == done + 1:
        verify()
    else:
        with pytest.raises(FailedPrecondition) as precondition:
            verify()
        assert precondition.value.code == "milestone_out_of_order"
        assert precondition.value.status == 409


def test_later_plans_never_reuse_a_milestone_id() -> None:
    project = uuid.uuid4()
    ids = {milestone_id_for(project, s, r) for s in range(1, 6) for r in range(1, 5)}
    assert len(ids) == 20
    assert milestone_id_for(project, 2) == milestone_id_for(project, 2, 1)


def _allocation(**overrides: object) -> funding_events.AllocationCreated:
    fields: dict[str, object] = {
        "allocation_id": str(uuid.uuid4()),
        "consultation_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "candidate_id": str(uuid.uuid4()),
        "title": "Water tank",
        "amount": money_pb2.Money(amount_minor=1_000_000, currency="USD"),
        "commune_code": "VE.01.01.C0001",
    }
    fields.update(overrides)
    return funding_events.AllocationCreated(**fields)  # type: ignore[arg-type]


def test_allocation_translation() -> None:
    message = _allocation(candidate_id="", title="  Water tank  ")
    allocation = allocation_from(message)
    assert allocation.candidate_id is None
    assert allocation.title == "Water tank"
    assert allocation.budget_minor == 1_000_000
    assert allocation.allocation_id == uuid.UUID(message.allocation_id)


@pytest.mark.parametrize(
    "overrides",
    [
        {"allocation_id": "nope"},
        {"consultation_id": ""},
        {"commune_id": "x"},
        {"candidate_id": "x"},
        {"title": "   "},
        {"commune_code": ""},
        {"commune_code": "ve.01"},
        {"commune_code": "VE." + "1" * 70},
        {"amount": money_pb2.Money(amount_minor=0, currency="USD")},
        {"amount": money_pb2.Money(amount_minor=-5, currency="USD")},
        {"amount": money_pb2.Money(amount_minor=5, currency="usd")},
    ],
)
def test_malformed_allocations_are_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(MalformedEvent):
        allocation_from(_allocation(**overrides))


def test_allocation_without_amount_is_rejected() -> None:
    message = _allocation()
    message.ClearField("amount")
    with pytest.raises(MalformedEvent):
        allocation_from(message)


def _disbursed(message: funding_events.TrancheDisbursed) -> ReceivedEvent[funding_events.TrancheDisbursed]:
    envelope = Envelope(
        event_id=uuid.uuid4(),
        source="/comuna/funding",
        event_type=message.DESCRIPTOR.full_name,
        time=datetime(2025, 1, 2, tzinfo=UTC),
        subject="x",
    )
    return ReceivedEvent(envelope, message, "funding.tranche.disbursed")


def test_disbursement_translation() -> None:
    milestone = uuid.uuid4()
    event = _disbursed(
        funding_events.TrancheDisbursed(
            disbursement_id=str(uuid.uuid4()),
            milestone_id=str(milestone),
            amount=money_pb2.Money(amount_minor=10, currency="USD"),
        )
    )
    disbursement = disbursement_from(event)
    assert disbursement.milestone_id == milestone
    assert disbursement.project_id is None and disbursement.allocation_id is None
    assert disbursement.disbursed_at == datetime(2025, 1, 2, tzinfo=UTC)
    with pytest.raises(MalformedEvent):
        disbursement_from(
            _disbursed(
                funding_events.TrancheDisbursed(
                    disbursement_id="x",
                    milestone_id=str(milestone),
                    amount=money_pb2.Money(amount_minor=10, currency="USD"),
                )
            )
        )
