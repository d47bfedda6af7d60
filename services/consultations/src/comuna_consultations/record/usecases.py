"""The public record of a consultation (docs/record.md): its transparency log, served in the
C2SP tlog-tiles layout, with signed checkpoints.

Hash tiles and checkpoints are public at all times: they say how many entries there are and
nothing of what they hold. Entry bundles hold batch tallies, so they are public only once no
commune of the consultation votes any more (the national window and every postponed commune's
closed): no count, partial or whole, is visible before (issue 8's rule for results).
"""

from __future__ import annotations

import io
import uuid
from datetime import datetime

import segno
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_consultations.domain.consultations import not_found
from comuna_consultations.record import storage
from comuna_consultations.storage import record as record_storage
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation
from comuna_consultations.storage.record import BulletinRef, Record
from comuna_platform.errors import NotFound
from comuna_platform.http import public_log


def no_checkpoint(consultation_id: uuid.UUID) -> str:
    return f"consultation {consultation_id} has no signed checkpoint yet"


async def latest_checkpoint(session: AsyncSession, record: Record, consultation_id: uuid.UUID) -> str:
    await _require_consultation(session, consultation_id)
    return await public_log.latest_checkpoint(
        await session.connection(), record.log(consultation_id), no_checkpoint(consultation_id)
    )


async def record_keys(session: AsyncSession, record: Record, consultation_id: uuid.UUID) -> tuple[str, list[str]]:
    """The log's origin and the verifier keys of its checkpoints."""
    await _require_consultation(session, consultation_id)
    return record.log(consultation_id).origin, [signer.verifier.vkey for signer in record.signers]


async def tile(session: AsyncSession, record: Record, consultation_id: uuid.UUID, path: str, now: datetime) -> bytes:
    """The bytes at `<prefix>/<path>` (a C2SP tile path); NotFound for a tile the log does not
    have (yet), 409 `record_entries_not_public` for entries while a commune still votes."""
    consultation = await _require_consultation(session, consultation_id)
    public = await storage.nobody_votes(session, consultation, now)
    return await public_log.read_tile(
        await session.connection(), record.log(consultation_id), path, entries_public=public
    )


async def _require_consultation(session: AsyncSession, consultation_id: uuid.UUID) -> Consultation:
    found = await repository.consultation_by_id(session, consultation_id)
    if found is None:
        raise not_found(consultation_id)
    return found


# --- bulletins ------------------------------------------------------------------------------


async def bulletins(session: AsyncSession, consultation_id: uuid.UUID) -> list[BulletinRef]:
    """The table bulletins of the consultation's certifications, in log order (public)."""
    await _require_consultation(session, consultation_id)
    return await record_storage.bulletins_of(await session.connection(), consultation_id)


async def bulletin(session: AsyncSession, consultation_id: uuid.UUID, entry_index: int) -> str:
    """The signed bulletin at `entry_index` of the log (its body is that entry)."""
    await _require_consultation(session, consultation_id)
    found = await record_storage.bulletin_note(await session.connection(), consultation_id, entry_index)
    if found is None:
        raise NotFound(f"no bulletin at entry {entry_index}", code="bulletin_not_found")
    return found


def bulletin_qr(signed: str) -> bytes:
    """The signed bulletin as a QR code (PNG), for anyone to scan and add up."""
    buffer = io.BytesIO()
    segno.make(signed, error="m", micro=False).save(buffer, kind="png", scale=4, border=4)
    return buffer.getvalue()


# --- witnesses --------------------------------------------------------------------------------


async def add_cosignature(
    session: AsyncSession, record: Record, consultation_id: uuid.UUID, signed: str, now: datetime
) -> int:
    """Keep a witness's cosignature of one of the log's checkpoints; the size it cosigned."""
    await _require_consultation(session, consultation_id)
    return await public_log.add_cosignature(
        await session.connection(), record.log(consultation_id), signed, record.witnesses, now
    )
