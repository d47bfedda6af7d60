"""Offline tables: the signed snapshot a device takes away, and the batches it brings back.

Snapshot (`table_snapshot`): for an officer of THIS offline table, everything the device needs
to run the table without connectivity: the consultation, the table and its commune, the
commune's candidates, the voting window, and the commune's roll entries blinded for this table
(see `offline.signing`: the device never receives the consultation's voter key), signed with
Ed25519. Given only while voting or in the tally phase (candidates and roll are final then).

Sync (`sync_batch`): one batch of check-ins and ballot counts, in one transaction:
1. the batch id seen before -> the stored answer, nothing written (the device retries freely);
   the same id with other content -> 409;
2. the MAC with this table's sync key, which only the device that downloaded this table's
   snapshot holds -> else 422 `batch_not_authentic` (an edited file, or a batch made for another
   table or consultation);
3. every check-in must unblind to an entry of the table's commune, once per batch, and the
   ballots (plus null votes) of all this table's batches never exceed its check-ins; every
   candidate must be one of the commune's -> else 422, nothing written;
4. check-ins go through `take_part` with channel `offline`: a person who already took part
   elsewhere (another table, online) becomes a `participation_conflicts` row with
   `ballot_counted = true` (the device's ballots cannot be linked to check-ins, so they all stay
   in the count) - flagged for the results, never dropped;
5. ballots are inserted as channel `offline` with the table, in random order with random ids.
Accepted while voting and after the close (the tally phase), never once the results are
certified. The answer echoes the batch's own sizes only: no count of the server's.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comuna_consultations.domain import tables
from comuna_consultations.domain.consultations import not_found
from comuna_consultations.domain.pseudonyms import Pseudonyms
from comuna_consultations.domain.record import Choices, offline_ballots_entry
from comuna_consultations.domain.schedules import commune_window
from comuna_consultations.offline import storage
from comuna_consultations.offline.signing import SnapshotKeys
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, VotingTable
from comuna_consultations.storage.participations import ParticipationRow, take_part
from comuna_consultations.storage.record import Record
from comuna_consultations.vocabulary import BallotChannel, ConsultationStatus, ParticipationChannel, TableKind
from comuna_platform import offline_tables
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_platform.voter_keys import is_point, multiply


def unconfigured() -> Unavailable:
    return Unavailable("offline tables are not configured on this server", code="offline_tables_unconfigured")


@dataclass(frozen=True, slots=True)
class SignedSnapshot:
    payload: bytes
    signature: bytes
    key_id: str
    sync_key: bytes


async def _offline_table(
    uow: UnitOfWork,
    caller: Caller,
    lineages: TerritoryLineages,
    consultation_id: uuid.UUID,
    table_code: str,
    *,
    lock: bool = False,
) -> tuple[Consultation, VotingTable, str]:
    # The role before any lookup: who holds none learns nothing about which tables exist.
    tables.require_any_table(caller)
    consultation = await repository.consultation_by_id(uow.session, consultation_id)
    if consultation is None:
        raise not_found(consultation_id)
    table = await storage.table_by_code(uow.session, consultation_id, table_code, lock=lock)
    if table is None:
        raise NotFound(f"table {table_code} does not exist in this consultation", code="table_not_found")
    commune = await repository.commune(uow.session, consultation_id, table.commune_id)
    if commune is None:  # the foreign keys make this impossible; defensive
        raise NotFound(f"table {table_code} does not exist in this consultation", code="table_not_found")
    tables.require_officer_of(caller, consultation_id, table.code, await lineages.of(commune.code))
    if table.kind != TableKind.OFFLINE:
        raise FailedPrecondition(f"table {table_code} is not an offline table", code="table_not_offline")
    if consultation.status != ConsultationStatus.OPEN:
        raise FailedPrecondition(
            f"the consultation is in status {consultation.status}: offline tables download and sync"
            " only before certification",
            code="offline_tables_closed",
            current_status=consultation.status,
        )
    return consultation, table, commune.code


async def table_snapshot(
    uow: UnitOfWork,
    keys: SnapshotKeys | None,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> SignedSnapshot:
    consultation, table, commune_code = await _offline_table(uow, caller, lineages, consultation_id, table_code)
    if keys is None:
        raise unconfigured()
    commune = await repository.commune(uow.session, consultation_id, table.commune_id)
    assert commune is not None
    load = await repository.roll_load(uow.session, consultation_id)
    if load is None or load.voter_key is None:  # voting never starts without a verified roll
        raise FailedPrecondition("the voter roll is not verified", code="roll_not_verified")
    voter_key = bytes(load.voter_key)
    entries = await storage.commune_entry_keys(uow.session, consultation_id, table.commune_id)
    # Sorted blinded keys: the order says nothing about the roll's order (seq) or anyone's document.
    blinded = sorted(keys.blind(entry, consultation_id, table.id).hex() for entry in entries)
    candidates = await storage.commune_candidates(uow.session, consultation_id, table.commune_id)
    window = await commune_window(uow.session, consultation, table.commune_id)
    if window is None:
        raise FailedPrecondition("this table's commune is excluded from this consultation", code="commune_excluded")
    document = {
        "format": offline_tables.SNAPSHOT_FORMAT,
        "key_id": keys.key_id,
        "issued_at": now.isoformat(),
        "consultation": {"id": str(consultation.id), "code": consultation.code, "title": consultation.title},
        "table": {"id": str(table.id), "code": table.code, "kind": table.kind},
        "commune": {"id": str(commune.commune_id), "code": commune_code, "name": commune.name},
        "candidates": [
            {"id": str(c.id), "title": c.title, "assembly_priority": c.assembly_priority} for c in candidates
        ],
        # The commune's window: the national one, or its own if postponed.
        "voting_window": {"opens_at": window.opens_at.isoformat(), "closes_at": window.closes_at.isoformat()},
        "device_key": keys.device_key(voter_key, consultation_id, table.id).hex(),
        "entries": blinded,
    }
    payload = offline_tables.canonical(document)
    return SignedSnapshot(payload, keys.sign(payload), keys.key_id, keys.sync_key(consultation_id, table.id))


@dataclass(frozen=True, slots=True)
class BallotCount:
    candidate_id: uuid.UUID | None
    count: int


@dataclass(frozen=True, slots=True)
class Batch:
    """A device's batch as it MACed it (see `comuna_platform.offline_tables`)."""

    batch_id: uuid.UUID
    snapshot_digest: str
    checkins: list[str]
    ballots: list[BallotCount]
    null_votes: int
    mac: str

    def document(self, consultation_id: uuid.UUID, table_code: str) -> dict[str, Any]:
        """The batch in the form the device MACed; consultation and table come from the URL,
        so a batch made for another table or consultation fails the MAC."""
        return {
            "format": offline_tables.BATCH_FORMAT,
            "batch_id": str(self.batch_id),
            "consultation_id": str(consultation_id),
            "table_code": table_code,
            "snapshot_digest": self.snapshot_digest,
            "checkins": self.checkins,
            "ballots": [
                {"candidate_id": None if b.candidate_id is None else str(b.candidate_id), "count": b.count}
                for b in self.ballots
            ],
            "null_votes": self.null_votes,
            "mac": self.mac,
        }


def _refuse(detail: str, code: str) -> InvalidInput:
    return InvalidInput(detail, code=code)


async def sync_batch(
    uow: UnitOfWork,
    keys: SnapshotKeys | None,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    *,
    batch: Batch,
    lineages: TerritoryLineages,
    pseudonyms: Pseudonyms,
    record: Record,
) -> dict[str, Any]:
    """`pseudonyms`: the participations' voter references (`domain.pseudonyms`), the same for
    every channel, so that one person counts once whichever table or channel they reach. The
    batch enters the public record (`comuna-offline-ballots/v1`) in the same transaction."""
    # The table row locked: this table's syncs run one at a time, each seeing the previous totals.
    _, table, _ = await _offline_table(uow, caller, lineages, consultation_id, table_code, lock=True)
    if keys is None:
        raise unconfigured()
    document = batch.document(consultation_id, table_code)
    digest = hashlib.sha256(offline_tables.canonical(document)).digest()

    seen = await storage.synced_batch(uow.session, batch.batch_id)
    if seen is not None:
        if seen.table_id != table.id or bytes(seen.digest) != digest:
            raise Conflict("this batch id was already used for other content", code="batch_id_reused")
        answer: dict[str, Any] = json.loads(seen.response)
        return answer

    if not offline_tables.batch_mac_ok(keys.sync_key(consultation_id, table.id), document):
        raise _refuse(
            "the batch is not one this table's device sealed (edited, or made for another table)",
            "batch_not_authentic",
        )

    entry_keys = _unblind(keys, consultation_id, table.id, batch.checkins)
    on_roll = await storage.keys_on_commune_roll(uow.session, consultation_id, table.commune_id, entry_keys)
    if len(on_roll) != len(entry_keys):
        raise _refuse("a check-in is not an entry of this table's roll", "checkin_not_on_roll")

    commune_candidates = {
        c.id for c in await storage.commune_candidates(uow.session, consultation_id, table.commune_id)
    }
    choices = [b.candidate_id for b in batch.ballots]
    if len(set(choices)) != len(choices):
        raise _refuse("a candidate is counted twice in the batch", "duplicate_candidate")
    if any(c is not None and c not in commune_candidates for c in choices):
        raise _refuse("a candidate is not one of this table's commune", "candidate_not_in_commune")
    ballots = sum(b.count for b in batch.ballots)
    totals = await storage.table_totals(uow.session, consultation_id, table.id)
    if totals.votes + ballots + batch.null_votes > totals.checkins + len(entry_keys):
        raise _refuse("the table's votes exceed its check-ins", "votes_exceed_checkins")

    conn = await uow.session.connection()
    # ballot_counted: the device's ballots cannot be told apart, so a refused person's stays counted.
    await take_part(
        conn,
        [
            ParticipationRow(
                consultation_id,
                pseudonyms.voter_ref(consultation_id, key),
                table.commune_id,
                ParticipationChannel.OFFLINE.value,
                table.id,
                ballot_counted=True,
            )
            for key in entry_keys
        ],
    )
    rows = [storage.BallotRow(new_id(), b.candidate_id) for b in batch.ballots for _ in range(b.count)]
    random.SystemRandom().shuffle(rows)
    # new_id() is a random uuid4, so neither ids nor insertion order say which choice came first.
    await storage.insert_ballots(
        conn,
        consultation_id=consultation_id,
        commune_id=table.commune_id,
        table_id=table.id,
        channel=BallotChannel.OFFLINE.value,
        rows=rows,
    )
    counted = Choices(
        {b.candidate_id: b.count for b in batch.ballots if b.candidate_id is not None},
        blank=sum(b.count for b in batch.ballots if b.candidate_id is None),
        null=batch.null_votes,
    )
    entry = offline_ballots_entry(
        consultation_id, table.commune_id, table.code, batch_id=batch.batch_id, choices=counted
    )
    await record.log(consultation_id).sequence(conn, [entry])
    answer = {
        "batch_id": str(batch.batch_id),
        "recorded": True,
        "checkins": len(entry_keys),
        "ballots": ballots,
        "null_votes": batch.null_votes,
    }
    await storage.record_sync(
        conn,
        {
            "batch_id": batch.batch_id,
            "consultation_id": consultation_id,
            "commune_id": table.commune_id,
            "table_id": table.id,
            "digest": digest,
            "checkins": len(entry_keys),
            "ballots": ballots,
            "null_votes": batch.null_votes,
            "response": json.dumps(answer, sort_keys=True),
        },
    )
    return answer


def _unblind(keys: SnapshotKeys, consultation_id: uuid.UUID, table_id: uuid.UUID, checkins: list[str]) -> list[bytes]:
    if len(set(checkins)) != len(checkins):
        raise _refuse("a person is checked in twice in the batch", "duplicate_checkin")
    inverse = keys.unblinder(consultation_id, table_id)
    entry_keys = []
    for checkin in checkins:
        try:
            point = bytes.fromhex(checkin)
        except ValueError:
            raise _refuse("a check-in is not a key", "checkin_not_on_roll") from None
        if not is_point(point):
            raise _refuse("a check-in is not a key", "checkin_not_on_roll")
        entry_keys.append(multiply(inverse, point))
    return entry_keys
