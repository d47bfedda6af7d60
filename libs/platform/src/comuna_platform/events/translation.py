"""Domain events -> protobuf event messages, registered at each service's transport edge.

A service's domain stays free of generated protobuf types: a use case stages a plain value (a
frozen dataclass of its own, e.g. `ConsultationOpened`) on the unit of work, and the service's
`events.py` module, imported when the service is assembled, registers how that value becomes
the event message of the contract in `proto/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf.message import Message

T = TypeVar("T")

_TRANSLATORS: dict[type[Any], Callable[[Any], Message]] = {}


class UntranslatedEvent(LookupError):
    """A staged value that is neither an event message nor a registered domain event."""


def translates(domain_type: type[T]) -> Callable[[Callable[[T], Message]], Callable[[T], Message]]:
    """Decorator: `@translates(ConsultationOpened) def _(e: ConsultationOpened) -> pb.ConsultationOpened`."""

    def register(translate: Callable[[T], Message]) -> Callable[[T], Message]:
        existing = _TRANSLATORS.get(domain_type)
        if existing is not None and existing is not translate:
            raise ValueError(f"{domain_type.__qualname__} already has a translation")
        _TRANSLATORS[domain_type] = translate
        return translate

    return register


def to_message(event: object) -> Message:
    """The event message for `event` (itself if it already is one)."""
    if isinstance(event, Message):
        return event
    translate = _TRANSLATORS.get(type(event))
    if translate is None:
        raise UntranslatedEvent(
            f"no event translation registered for {type(event).__qualname__}; "
            "import the service's events module where the service is assembled"
        )
    return translate(event)
