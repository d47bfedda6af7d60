"""Reliable events: transactional outbox -> JetStream -> idempotent inbox consumers."""

from comuna_platform.events.consumer import EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.outbox import NewEvent, OutboxRelay, stage_event, stage_events
from comuna_platform.events.tables import events_metadata, inbox_table, outbox_table

__all__ = [
    "EventConsumer",
    "EventHandler",
    "NewEvent",
    "OutboxRelay",
    "ReceivedEvent",
    "events_metadata",
    "inbox_table",
    "outbox_table",
    "stage_event",
    "stage_events",
]
