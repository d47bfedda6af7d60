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
from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput, NotFound
from comuna_platform.tlog.store import CosignatureRefused
from comuna_platform.tlog.tiles import parse_tile_path


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
    if not record.witnesses:
        raise FailedPrecondition("this deployment keeps no witness cosignatures", code="no_witnesses")
    try:
        return await record.log(consultation_id).add_cosignature(
            await session.connection(), signed, record.witnesses, now
        )
    except CosignatureRefused as exc:
        if exc.code == "witness_unknown":
            raise Forbidden(str(exc), code=exc.code) from exc
        if exc.code == "checkpoint_unknown":
            raise NotFound(str(exc), code=exc.code) from exc
        raise InvalidInput(str(exc), code=exc.code) from exc
