"""What the tables slice announces, as plain values (see `tables/messages.py`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TallySheetConfirmed:
    """A paper table's sheet, confirmed by a second officer: final. Emitted only after the
    commune's voting closed (a sheet cannot be submitted before), so its counts may travel."""

    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    table_id: uuid.UUID
    table_code: str
    sheet_id: uuid.UUID
    votes: tuple[tuple[uuid.UUID, int], ...]
    blank: int
    null_votes: int
    checked_in: int
    scan_sha256: bytes
    confirmed_at: datetime
