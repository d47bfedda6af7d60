"""The tables slice's protobuf edge: its domain events -> `consultations/v1/events.proto`."""

from __future__ import annotations

from comuna.consultations.v1 import events_pb2
from comuna_consultations.tables.events import TallySheetConfirmed
from comuna_platform.events.translation import translates


@translates(TallySheetConfirmed)
def tally_sheet_confirmed(e: TallySheetConfirmed) -> events_pb2.TallySheetConfirmed:
    message = events_pb2.TallySheetConfirmed(
        consultation_id=str(e.consultation_id),
        commune_id=str(e.commune_id),
        table_id=str(e.table_id),
        table_code=e.table_code,
        sheet_id=str(e.sheet_id),
        votes=[events_pb2.TallySheetVotes(candidate_id=str(c), votes=v) for c, v in e.votes],
        blank=e.blank,
        null_votes=e.null_votes,
        checked_in=e.checked_in,
        scan_sha256=e.scan_sha256.hex(),
    )
    message.confirmed_at.FromDatetime(e.confirmed_at)
    return message
