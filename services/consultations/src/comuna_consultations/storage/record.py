"""Each consultation's public record: a log in the platform's log tables of this database
(`models.record_tables`), named by the deployment's origin prefix (`log_origin`).
The voting slice appends to it, the record slice serves it."""

from __future__ import annotations

import uuid

from comuna_consultations.storage.models import record_tables
from comuna_platform.tlog.store import TransparencyLog


def log_origin(prefix: str, consultation_id: uuid.UUID) -> str:
    """The log's origin (C2SP checkpoint origin line) under the deployment's prefix."""
    return f"{prefix.rstrip('/')}/consultations/{consultation_id}"


def consultation_log(origin_prefix: str, consultation_id: uuid.UUID) -> TransparencyLog:
    return TransparencyLog(record_tables, log_origin(origin_prefix, consultation_id))
