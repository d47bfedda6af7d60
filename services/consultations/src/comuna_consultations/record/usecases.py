"""The public record of a consultation (docs/record.md): its transparency log, served in the
C2SP tlog-tiles layout, with signed checkpoints.

Hash tiles and checkpoints are public at all times: they say how many entries there are and
nothing of what they hold. Entry bundles hold batch tallies, so they are public only once no
commune of the consultation votes any more (the national window and every postponed commune's
closed): no count, partial or whole, is visible before (issue 8's rule for results).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.domain.consultations import not_found
from comuna_consultations.record import storage
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation
from comuna_platform.errors import FailedPrecondition, NotFound
from comuna_platform.tlog.note import Signer
from comuna_platform.tlog.store import TransparencyLog
from comuna_platform.tlog.tiles import parse_tile_path


@dataclass(frozen=True, slots=True)
class Record:
    """Where this deployment's consultation logs live and who signs their checkpoints."""

    origin_prefix: str
    signers: tuple[Signer, ...] = ()

    def log(self, consultation_id: uuid.UUID) -> TransparencyLog:
        return storage.consultation_log(self.origin_prefix, consultation_id)


def no_checkpoint(consultation_id: uuid.UUID) -> NotFound:
    return NotFound(f"consultation {consultation_id} has no signed checkpoint yet", code="no_checkpoint")


async def latest_checkpoint(session: AsyncSession, record: Record, consultation_id: uuid.UUID) -> str:
    await _require_consultation(session, consultation_id)
    signed = await record.log(consultation_id).latest_checkpoint(await session.connection())
    if signed is None:
        raise no_checkpoint(consultation_id)
    return signed


async def record_keys(session: AsyncSession, record: Record, consultation_id: uuid.UUID) -> tuple[str, list[str]]:
    """The log's origin and the verifier keys of its checkpoints."""
    await _require_consultation(session, consultation_id)
    return record.log(consultation_id).origin, [signer.verifier.vkey for signer in record.signers]


async def tile(session: AsyncSession, record: Record, consultation_id: uuid.UUID, path: str, now: datetime) -> bytes:
    """The bytes at `<prefix>/<path>` (a C2SP tile path); NotFound for a tile the log does not
    have (yet), 409 `record_entries_not_public` for entries while a commune still votes."""
    try:
        wanted = parse_tile_path(path)
    except ValueError as exc:
        raise NotFound(f"no such tile: {path}", code="tile_not_found") from exc
    consultation = await _require_consultation(session, consultation_id)
    log = record.log(consultation_id)
    conn = await session.connection()
    if wanted.level is not None:
        data = await log.read_tile(conn, wanted)
    else:
        if not await storage.nobody_votes(session, consultation, now):
            raise FailedPrecondition(
                "entries of the record are public once voting closed in every commune (they hold batch tallies)",
                code="record_entries_not_public",
            )
        _, integrated = await log.sizes(conn)
        data = await log.read_bundle(conn, wanted, integrated)
    if data is None:
        raise NotFound(f"no such tile: {path}", code="tile_not_found")
    return data


async def _require_consultation(session: AsyncSession, consultation_id: uuid.UUID) -> Consultation:
    found = await repository.consultation_by_id(session, consultation_id)
    if found is None:
        raise not_found(consultation_id)
    return found
