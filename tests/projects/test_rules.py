"""Pure rules: deterministic ids, verification order, and event translation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna.common.v1 import money_pb2
from comuna.funding.v1 import events_pb2 as funding_events
from comuna_platform.errors import Conflict, FailedPrecondition
from comuna_platform.events import ReceivedEvent
from comuna_platform.events.envelope import Envelope
from comuna_projects.consumers.funding import MalformedEvent, allocation_from, disbursement_from
from comuna_projects.domain.rules import check_verifiable, milestone_id_for, project_id_for


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


# A project's milestones always look like: some verified-or-funded ones, then pending ones.
states = st.integers(min_value=1, max_value=8).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(min_value=0, max_value=n),
        st.lists(st.sampled_from(["verified", "funded"]), min_size=n, max_size=n),
    )
)


@given(state=states, data=st.data())
def test_only_the_first_pending_milestone_can_be_verified(
    state: tuple[int, int, list[str]], data: st.DataObject
) -> None:
    count, done, done_statuses = state
    milestones = [
        M(uuid.uuid4(), seq, done_statuses[seq - 1] if seq <= done else "pending") for seq in range(1, count + 1)
    ]
    target = data.draw(st.sampled_from(milestones))
    if target.sequence == done + 1:
        check_verifiable(milestones, target.id)
    elif target.sequence <= done:
        with pytest.raises(Conflict) as conflict:
            check_verifiable(milestones, target.id)
        assert conflict.value.code == "milestone_not_pending"
    else:
        with pytest.raises(FailedPrecondition) as precondition:
            check_verifiable(milestones, target.id)
        assert precondition.value.code == "milestone_out_of_order"
        assert precondition.value.status == 409


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
