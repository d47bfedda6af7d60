"""The registry of event contracts, read from `proto/`.

Every event message declares its subject with the `(comuna.common.v1.event_subject)` option.
Subjects are `<service>.<aggregate>.<event>`; the first token names the producing service, whose
JetStream stream is `<SERVICE>` with subjects `<service>.>`. Producers stage a message without
writing its subject, consumers are declared by the message types they handle: both ask here.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from google.protobuf.message import Message

import comuna
from comuna.common.v1 import options_pb2

_SUBJECT = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*\.[a-z][a-z_]*$")
# Generated modules that hold event messages: comuna.<service>.v1.events_pb2.
_EVENTS_MODULE = re.compile(r"^comuna\.[a-z_]+\.v[0-9]+\.events_pb2$")


class UnregisteredEvent(LookupError):
    """A message type that declares no `event_subject`: it is not an event contract."""


def stream_name(service: str) -> str:
    """The JetStream stream a service owns and publishes to."""
    return service.upper()


@dataclass(frozen=True)
class EventContract:
    subject: str
    message_type: type[Message]

    @property
    def event_type(self) -> str:
        """The CloudEvents `ce-type`: the message's full protobuf name."""
        return str(self.message_type.DESCRIPTOR.full_name)

    @property
    def service(self) -> str:
        return self.subject.split(".", 1)[0]

    @property
    def stream(self) -> str:
        return stream_name(self.service)

    @property
    def source(self) -> str:
        """The CloudEvents `ce-source` its producer stamps on every event."""
        return event_source(self.service)


def event_source(service: str) -> str:
    return f"/comuna/{service}"


_SUBJECT_OPTION: Any = options_pb2.event_subject


def contract_of(message_type: type[Message]) -> EventContract:
    subject = str(message_type.DESCRIPTOR.GetOptions().Extensions[_SUBJECT_OPTION])
    if not subject:
        raise UnregisteredEvent(f"{message_type.DESCRIPTOR.full_name} declares no event_subject")
    if not _SUBJECT.match(subject):
        raise ValueError(f"{message_type.DESCRIPTOR.full_name}: malformed event_subject {subject!r}")
    return EventContract(subject=subject, message_type=message_type)


def subject_of(message: Message | type[Message]) -> str:
    return contract_of(message if isinstance(message, type) else type(message)).subject


def _event_modules() -> list[ModuleType]:
    names = sorted(
        info.name for info in pkgutil.walk_packages(comuna.__path__, "comuna.") if _EVENTS_MODULE.match(info.name)
    )
    return [importlib.import_module(name) for name in names]


@cache
def all_contracts() -> tuple[EventContract, ...]:
    """Every event contract in `proto/`, ordered by subject."""
    contracts: list[EventContract] = []
    for module in _event_modules():
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            message_type = getattr(module, descriptor.name)
            try:
                contracts.append(contract_of(message_type))
            except UnregisteredEvent:
                continue  # a building block of events (e.g. CandidateResult), not an event itself
    subjects = [c.subject for c in contracts]
    duplicated = sorted({s for s in subjects if subjects.count(s) > 1})
    if duplicated:
        raise ValueError(f"event subjects declared twice: {duplicated}")
    return tuple(sorted(contracts, key=lambda c: c.subject))


def contracts_of_service(service: str) -> tuple[EventContract, ...]:
    return tuple(c for c in all_contracts() if c.service == service)


def contract_for_type(event_type: str) -> EventContract | None:
    """The contract whose `ce-type` this is, if any."""
    for contract in all_contracts():
        if contract.event_type == event_type:
            return contract
    return None
