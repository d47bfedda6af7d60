"""The event registry: every event contract declares its subject once, in proto/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.funding.v1 import events_pb2 as funding_events
from comuna_platform.events import EventConsumer, EventHandler, NewEvent
from comuna_platform.events.registry import (
    UnregisteredEvent,
    all_contracts,
    contract_for_type,
    contract_of,
    subject_of,
)
from tools import gen_event_docs

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("identity", "consultations", "funding", "projects")
SUBJECT_LITERAL = re.compile(r"""["'](?:identity|consultations|funding|projects)\.[a-z_]+\.[a-z_]+["']""")
STREAM_LITERAL = re.compile(r"""["'](?:IDENTITY|CONSULTATIONS|FUNDING|PROJECTS)["']""")


def test_every_service_declares_events_on_its_own_subjects() -> None:
    contracts = all_contracts()
    assert {c.service for c in contracts} == set(SERVICES)
    for contract in contracts:
        package = contract.event_type.split(".")[1]
        assert contract.service == package, f"{contract.event_type} publishes on {contract.subject}"
        assert contract.stream == contract.service.upper()
        assert contract_for_type(contract.event_type) == contract


def test_subject_is_read_from_the_message_option() -> None:
    assert subject_of(funding_events.AllocationCreated) == "funding.allocation.created"
    assert subject_of(consultation_events.CommuneResultCertified()) == "consultations.commune_result.certified"
    event = NewEvent(message=funding_events.TrancheRejected(), aggregate_id="x")
    assert event.subject == "funding.tranche.rejected"


def test_a_building_block_message_is_not_an_event() -> None:
    with pytest.raises(UnregisteredEvent):
        contract_of(consultation_events.CandidateResult)
    with pytest.raises(UnregisteredEvent):
        NewEvent(message=consultation_events.CandidateResult(), aggregate_id="x").subject  # noqa: B018


def test_a_consumer_reads_one_stream() -> None:
    async def noop(session: object, event: object) -> None:
        return None

    handlers = [
        EventHandler(funding_events.AllocationCreated, noop),
        EventHandler(consultation_events.CommuneResultCertified, noop),
    ]
    with pytest.raises(ValueError, match="mixes streams"):
        EventConsumer(None, None, name="mixed", handlers=handlers)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="handles no event type"):
        EventConsumer(None, None, name="empty", handlers=[])  # type: ignore[arg-type]


def test_documents_list_the_registry() -> None:
    for path in gen_event_docs.DOCUMENTS:
        text = path.read_text()
        assert gen_event_docs.render(text) == text, f"{path.name} is out of step: run `make proto`"
        mentioned = set(re.findall(r"\b(?:identity|consultations|funding|projects)\.[a-z_]+\.[a-z_]+\b", text))
        unknown = mentioned - {c.subject for c in all_contracts()}
        assert not unknown, f"{path.name} names subjects that no contract declares: {sorted(unknown)}"


def test_no_subject_or_stream_is_written_by_hand_in_code() -> None:
    offenders = []
    for src in [*ROOT.glob("services/*/src"), ROOT / "libs" / "platform" / "src", ROOT / "libs" / "devstack" / "src"]:
        for path in src.rglob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if SUBJECT_LITERAL.search(line) or STREAM_LITERAL.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "derive subjects and streams from the registry:\n" + "\n".join(offenders)
