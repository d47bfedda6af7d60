"""Queries of the voting slice: the one-statement ballot, receipts, and the snapshot's reads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, insert, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comuna_consultations.domain.schedules import commune_holds
from comuna_consultations.storage.repository import (
    ballots,
    candidates,
    communes,
    consultations,
    participations,
    roll_entries,
    roll_loads,
)
from comuna_consultations.vocabulary import ConsultationStatus, HoldKind, RollLoadStatus


async def commune_codes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
    query = select(communes.c.commune_id, communes.c.code).where(communes.c.consultation_id == consultation_id)
    return {row.commune_id: row.code for row in await session.execute(query)}


async def candidate_communes(session: AsyncSession, consultation_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
    """candidate id -> commune id, for the ballot path's in-memory check."""
    query = select(candidates.c.id, candidates.c.commune_id).where(candidates.c.consultation_id == consultation_id)
    return {row.id: row.commune_id for row in await session.execute(query)}


async def verified_voter_key(session: AsyncSession, consultation_id: uuid.UUID) -> bytes | None:
    query = select(roll_loads.c.voter_key).where(
        roll_loads.c.consultation_id == consultation_id, roll_loads.c.status == RollLoadStatus.VERIFIED.value
    )
    key = (await session.execute(query)).scalar_one_or_none()
    return bytes(key) if key is not None else None


async def on_roll(
    conn: AsyncSession | AsyncConnection, consultation_id: uuid.UUID, voter_key: bytes, commune_id: uuid.UUID
) -> bool:
    query = select(roll_entries.c.seq).where(
        roll_entries.c.consultation_id == consultation_id,
        roll_entries.c.voter_key == voter_key,
        roll_entries.c.commune_id == commune_id,
    )
    return (await conn.execute(query)).first() is not None


async def cast_ballot(
    session: AsyncSession | AsyncConnection,
    *,
    consultation_id: uuid.UUID,
    voter_key: bytes,
    ballot_id: uuid.UUID,
    commune_id: uuid.UUID,
    candidate_id: uuid.UUID,
    channel: str,
    accepted_at: datetime,
) -> bool:
    """Insert the participation and the ballot in ONE statement; True if both were written.

    Nothing is written (False) when the voter is not on this commune's roll, already took part,
    or `accepted_at` is outside the commune's voting window. The participation's key is the voter's
    roll entry key (hex), found in the same statement by the roll's primary key. The
    participation is inserted only if the consultation row, locked FOR KEY SHARE, is not
    certified and its dates (or the commune's hold: excluded never, postponed its own window)
    contain `accepted_at`: an amendment, a hold and certification hold FOR UPDATE on that row,
    which conflicts, so a ballot either commits before them or is re-checked against the row
    version they committed (see `domain/phases.py`). The ballot is inserted
    from the participation's RETURNING, so it exists exactly when the participation is new.
    """
    written = await session.execute(
        _CAST_BALLOT,
        {
            "consultation_id": consultation_id,
            "voter_key": voter_key,
            "voter_ref": voter_key.hex(),
            "ballot_id": ballot_id,
            "commune_id": commune_id,
            "candidate_id": candidate_id,
            "channel": channel,
            "accepted_at": accepted_at,
        },
    )
    return written.first() is not None


def _cast_ballot_statement() -> Any:
    """The ballot statement, built once: it runs for every ballot, and building a SQLAlchemy
    construct per call cost more CPU than executing it."""
    participation = (
        pg_insert(participations)
        .from_select(
            ["consultation_id", "voter_ref", "commune_id", "channel"],
            select(
                consultations.c.id,
                bindparam("voter_ref", type_=participations.c.voter_ref.type),
                roll_entries.c.commune_id,
                bindparam("channel", type_=participations.c.channel.type),
            )
            .join(
                roll_entries,
                (roll_entries.c.consultation_id == consultations.c.id)
                & (roll_entries.c.voter_key == bindparam("voter_key", type_=roll_entries.c.voter_key.type))
                & (roll_entries.c.commune_id == bindparam("commune_id", type_=roll_entries.c.commune_id.type)),
            )
            .where(
                consultations.c.id == bindparam("consultation_id", type_=consultations.c.id.type),
                consultations.c.status == ConsultationStatus.OPEN.value,
                _inside_window(),
            )
            .with_for_update(of=consultations, read=True, key_share=True),
        )
        .on_conflict_do_nothing(index_elements=["consultation_id", "voter_ref"])
        .returning(participations.c.consultation_id)
        .cte("participation")
    )
    return (
        insert(ballots)
        .from_select(
            ["id", "consultation_id", "commune_id", "candidate_id", "channel"],
            select(
                bindparam("ballot_id", type_=ballots.c.id.type),
                participation.c.consultation_id,
                bindparam("commune_id", type_=ballots.c.commune_id.type),
                bindparam("candidate_id", type_=ballots.c.candidate_id.type),
                bindparam("channel", type_=ballots.c.channel.type),
            ),
        )
        .returning(ballots.c.id)
    )


def _inside_window() -> Any:
    """`:accepted_at` is inside the commune's window: the national one unless it is held."""
    at = bindparam("accepted_at", type_=consultations.c.voting_opens_at.type)
    h = commune_holds.c
    held = (h.consultation_id == consultations.c.id) & (
        h.commune_id == bindparam("commune_id", type_=roll_entries.c.commune_id.type)
    )
    return or_(
        and_(
            ~exists().where(held),
            consultations.c.voting_opens_at <= at,
            at < consultations.c.voting_closes_at,
        ),
        exists().where(held, h.kind == HoldKind.POSTPONED.value, h.voting_opens_at <= at, at < h.voting_closes_at),
    )


_CAST_BALLOT = _cast_ballot_statement()


async def ballot_exists(session: AsyncSession, consultation_id: uuid.UUID, ballot_id: uuid.UUID) -> bool:
    query = select(ballots.c.id).where(ballots.c.id == ballot_id, ballots.c.consultation_id == consultation_id)
    return (await session.execute(query)).first() is not None
