"""A commune's certification in the public record (docs/record.md): one signed bulletin per
table (and one for the online channel), then a `comuna-result/v1` entry with what the ranking
needs to be recomputed and the remainder, all in the certification's transaction.

The remainder is what the certification counts of the electronic channels (online and
electronic tables) beyond what the record's ballot entries already tally: the ballots of a lone
batch whose carry never came because the commune closed first (`voting.group_commit`). It is
never negative on an honest database; a negative one says the stored ballots lost some the
record holds, and a verifier reports it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from comuna_consultations.domain.record import Bulletin, Choices, RankedLine, ResultEntry
from comuna_consultations.results import storage
from comuna_consultations.results.counting import CommuneResult, Subtotal
from comuna_consultations.storage.record import Record, insert_bulletins, logged_tallies
from comuna_consultations.vocabulary import ParticipationChannel
from comuna_platform.tlog import note

# The channels whose ballots enter the record in `comuna-ballots/v1` batches.
_BATCHED = frozenset({ParticipationChannel.ONLINE.value, ParticipationChannel.TABLE.value})


def bulletins_of(result: CommuneResult, version: int, codes: Mapping[uuid.UUID, str]) -> list[Bulletin]:
    """One bulletin per subtotal (channel and table) of the commune's result."""
    return [_bulletin(result.commune_id, version, subtotal, codes) for subtotal in result.subtotals]


def _bulletin(commune_id: uuid.UUID, version: int, s: Subtotal, codes: Mapping[uuid.UUID, str]) -> Bulletin:
    code = None if s.table_id is None else codes.get(s.table_id, str(s.table_id))
    return Bulletin(commune_id, version, s.channel, code, s.participations, Choices(dict(s.votes), s.blank, s.null))


def remainder_of(result: CommuneResult, logged: Mapping[uuid.UUID | None, int]) -> dict[uuid.UUID | None, int]:
    counted: dict[uuid.UUID | None, int] = {}
    for s in result.subtotals:
        if s.channel in _BATCHED:
            for candidate_id, n in s.votes.items():
                counted[candidate_id] = counted.get(candidate_id, 0) + n
            counted[None] = counted.get(None, 0) + s.blank
    choices = set(counted) | set(logged)
    return {c: counted.get(c, 0) - logged.get(c, 0) for c in choices if counted.get(c, 0) != logged.get(c, 0)}


async def publish(
    conn: AsyncConnection,
    record: Record,
    consultation_id: uuid.UUID,
    *,
    items: Sequence[tuple[str, CommuneResult, int]],
    tie_break: Sequence[str],
    draw_seed: bytes,
) -> None:
    """Append the bulletins and the result entry of each (commune code, result, version)."""
    if not items:
        return
    codes = await storage.table_codes(conn, consultation_id)
    logged = await logged_tallies(conn, consultation_id, [result.commune_id for _, result, _ in items])
    entries: list[bytes] = []
    bulletin_rows: list[tuple[int, Bulletin, str]] = []  # (offset in `entries`, bulletin, text)
    for commune_code, result, version in items:
        bulletins = bulletins_of(result, version, codes)
        for bulletin in bulletins:
            text = bulletin.text(consultation_id)
            bulletin_rows.append((len(entries), bulletin, text))
            entries.append(text.encode())
        entry = ResultEntry(
            consultation_id=consultation_id,
            commune_id=result.commune_id,
            commune_code=commune_code,
            version=version,
            roll_size=result.roll_size,
            participations=result.participations,
            tie_break=tie_break,
            draw_seed=draw_seed,
            candidates=[
                RankedLine(c.candidate_id, c.votes, c.rank, c.estimated_cost, c.registered_at, c.assembly_priority)
                for c in result.ranked
            ],
            blank=result.blank,
            null=result.null,
            winner=result.winner_candidate_id,
            remainder=remainder_of(result, logged.get(result.commune_id, {})),
            bulletins=len(bulletins),
        )
        entries.append(entry.encode())
    # One append for the whole certification: a national run is one statement, not thousands.
    first = await record.log(consultation_id).sequence(conn, entries)
    await insert_bulletins(
        conn,
        [
            {
                "consultation_id": consultation_id,
                "entry_index": first + offset,
                "commune_id": bulletin.commune_id,
                "version": bulletin.version,
                "channel": bulletin.channel,
                "table_code": bulletin.table_code,
                "note": signed(text, record),
            }
            for offset, bulletin, text in bulletin_rows
        ],
    )


def signed(text: str, record: Record) -> str:
    """The bulletin as a signed note by every record key (none configured: the bare text, which
    a verifier reports as unsigned)."""
    if not record.signers:
        return text
    return note.format_note(text, [note.sign_note(text, signer) for signer in record.signers])
