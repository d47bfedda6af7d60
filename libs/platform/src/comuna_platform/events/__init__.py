"""Reliable events: transactional outbox -> JetStream -> idempotent inbox consumers."""

from comuna_platform.events.consumer import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.outbox import OutboxRelay, stage_event
from comuna_platform.events.tables import events_metadata, inbox_table, outbox_table

__all__ = [
    "EventConsumer",
    "EventHandler",
    "OutboxRelay",
    "ReceivedEvent",
    "events_metadata",
    "inbox_table",
    "outbox_table",
    "stage_event",
]
