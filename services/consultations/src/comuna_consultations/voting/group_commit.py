"""Group commit of ballots: one transaction per batch of ballots from concurrent requests.

Each accepted ballot waits in this process's queue; a batch is written in ONE transaction:
lock the consultations FOR KEY SHARE (a `:close` waits for the batch; a batch after a close
refuses its ballots), `take_part` (participations, conflict rows for refused ones), then the
ballots of the new participations only, in a shuffled order, commit, and only then each
request gets its answer. A failure writes nothing of the batch (one transaction) and every
request of it gets 503 `ballot_not_stored`: a retry is safe, the participation key counts it once.

When a batch is written (`BatchPolicy`):
* at once when `max_size` ballots wait;
* when at least `min_size` wait and the oldest has waited `linger` seconds (the usual case);
* a ballot alone (below `min_size`) waits for company up to `max_hold` seconds: one lone
  ballot per transaction would share its `xmin` with its participation only. After `max_hold`
  (a quiet moment: fewer than `min_size` ballots in `max_hold` seconds in this process) it is
  written as it is rather than failing the voter, and *carried*: the next batch of this
  process deletes it and inserts it again, same id and same choice, shuffled
  among its own ballots, so the stored row's `xmin` and place are that batch's, where it is
  one of several. No filler is ever written and counts never change. What a carry cannot hide
  (the WAL of the lone transaction, a crash before the next batch) is in docs/architecture.md.
The same transaction sequences the batch into the consultation's public record
(`BallotRecord`, `domain.record`): its receipts, and its tally unless it is a lone batch to be
carried, so a ballot is in the log exactly when it is stored.
While `writers` batches are in flight the queue fills and the next batch leaves as soon as one
of them commits (a natural pipeline under load).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Uuid, bindparam, insert, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import String

from comuna_consultations.domain.phases import VotingWindow
from comuna_consultations.domain.record import DEFAULT_RECORD_ORIGIN, ballots_entry, new_receipt
from comuna_consultations.storage.models import RecordReceipt
from comuna_consultations.storage.participations import ParticipationRow, take_part
from comuna_consultations.storage.record import consultation_log, index_tallies
from comuna_consultations.vocabulary import ConsultationStatus, HoldKind
from comuna_platform.db import Database
from comuna_platform.errors import Unavailable
from comuna_platform.tlog.store import TransparencyLog

log = logging.getLogger(__name__)

_random = secrets.SystemRandom()


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_size: int = 500
    min_size: int = 2
    linger: float = 0.002
    max_hold: float = 1.0
    writers: int = 2

    def __post_init__(self) -> None:
        if self.max_size < self.min_size or self.min_size < 1 or self.writers < 1:
            raise ValueError("ballot batches need 1 <= min_size <= max_size and at least one writer")


@dataclass(frozen=True, slots=True)
class BallotToWrite:
    participation: ParticipationRow
    candidate_id: uuid.UUID | None  # None: blank
    # The server clock's instant when the ballot was accepted: the batch checks it against the
    # commune's window as the locked consultation row has it (see `domain/phases.py`).
    accepted_at: datetime


class Outcome(StrEnum):
    CAST = "cast"
    ALREADY_VOTED = "already_voted"
    NOT_IN_VOTING = "not_in_voting"


@dataclass(frozen=True, slots=True)
class Written:
    outcome: Outcome
    ballot_id: uuid.UUID | None = None
    receipt: str | None = None  # CAST only: the voter's receipt (`domain.record`)


def not_stored() -> Unavailable:
    return Unavailable("the ballot was not stored; send it again", code="ballot_not_stored")


@dataclass(slots=True)
class _Waiting:
    ballot: BallotToWrite
    queued_at: float
    answer: asyncio.Future[Written] = field(repr=False)


# FOR KEY SHARE conflicts with the FOR UPDATE that an amendment, a hold and a certification
# take on the consultation row: a batch commits before them or reads the dates they committed.
_OPEN = text(
    "SELECT id, voting_opens_at, voting_closes_at FROM consultations"
    " WHERE id = ANY(:ids) AND status = :open ORDER BY id FOR KEY SHARE"
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))
_HOLDS = text(
    "SELECT consultation_id, commune_id, kind, voting_opens_at, voting_closes_at FROM commune_holds"
    " WHERE consultation_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))

_BALLOTS = text(
    "INSERT INTO ballots (id, consultation_id, commune_id, candidate_id, channel, table_id)"
    " SELECT * FROM unnest(:ids, :consultation_ids, :commune_ids, :candidate_ids, :channels, :table_ids)"
).bindparams(
    bindparam("ids", type_=ARRAY(Uuid())),
    bindparam("consultation_ids", type_=ARRAY(Uuid())),
    bindparam("commune_ids", type_=ARRAY(Uuid())),
    bindparam("candidate_ids", type_=ARRAY(Uuid())),
    bindparam("channels", type_=ARRAY(String())),
    bindparam("table_ids", type_=ARRAY(Uuid())),
)


@dataclass(frozen=True, slots=True)
class Carried:
    """A ballot written in a transaction with fewer than `min_size` ballots, to be rewritten by
    the next batch (see the module docstring)."""

    ballot_id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class BatchWritten:
    answers: list[Written]  # one per ballot of the batch, in order
    rows: list[Carried]  # every ballot row this transaction wrote: new ones and carried ones


# (id, consultation, commune, candidate or None, channel, table or None): a ballots row.
_BallotRow = tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID | None, str, uuid.UUID | None]

_CARRY = text(
    "DELETE FROM ballots WHERE id = ANY(:ids)"
    " RETURNING id, consultation_id, commune_id, candidate_id, channel, table_id"
).bindparams(bindparam("ids", type_=ARRAY(Uuid())))


@dataclass(frozen=True, slots=True)
class BallotRecord:
    """Where a batch's ballots enter the public record (`domain.record`): the log of each
    consultation under `origin_prefix`; a transaction of fewer than `min_size` ballots logs its
    receipts only (its tally goes with the batch that carries its ballots)."""

    origin_prefix: str = DEFAULT_RECORD_ORIGIN
    min_size: int = 2

    def log(self, consultation_id: uuid.UUID) -> TransparencyLog:
        return consultation_log(self.origin_prefix, consultation_id)

    async def append(self, conn: AsyncConnection, rows: Sequence[_BallotRow], receipts: dict[uuid.UUID, str]) -> None:
        """Sequence the entries of this transaction's `rows` (new and carried ballots), with the
        `receipts` of the new ones (by ballot id), and index the receipts."""
        tallied = len(rows) >= self.min_size
        by_consultation: dict[uuid.UUID, list[_BallotRow]] = {}
        for row in rows:
            by_consultation.setdefault(row[1], []).append(row)
        # In consultation order, as the batch locked the consultations: no lock-order deadlock.
        for consultation_id in sorted(by_consultation):
            mine = by_consultation[consultation_id]
            entry = ballots_entry(
                consultation_id,
                receipts=[(row[2], receipts[row[0]]) for row in mine if row[0] in receipts],
                choices=[(row[2], row[3]) for row in mine] if tallied else [],
            )
            if not (entry.receipts or entry.tallies):
                continue
            encoded = entry.encode()
            first = await self.log(consultation_id).sequence(conn, [e.data for e in encoded])
            index = [
                {"consultation_id": consultation_id, "commitment": commitment, "entry_index": first + offset}
                for offset, e in enumerate(encoded)
                for commitment in e.commitments
            ]
            if index:
                await conn.execute(insert(RecordReceipt), index)
            for offset, e in enumerate(encoded):
                await index_tallies(conn, consultation_id, first + offset, e.tallies)


async def write_batch(
    conn: AsyncConnection,
    batch: Sequence[BallotToWrite],
    carry: Sequence[Carried] = (),
    record: BallotRecord | None = None,
) -> BatchWritten:
    """Write one batch inside the caller's transaction, rewriting the `carry` ballots whose
    commune still votes among its own, and its entries in the public record (`record`; the
    default one when None); the answer of each ballot, in order."""
    consultation_ids = sorted({b.participation.consultation_id for b in batch} | {c.consultation_id for c in carry})
    found = await conn.execute(_OPEN, {"ids": consultation_ids, "open": ConsultationStatus.OPEN.value})
    national = {row.id: VotingWindow(row.voting_opens_at, row.voting_closes_at) for row in found}
    held: dict[tuple[uuid.UUID, uuid.UUID], VotingWindow | None] = {
        (row.consultation_id, row.commune_id): (
            VotingWindow(row.voting_opens_at, row.voting_closes_at) if row.kind == HoldKind.POSTPONED else None
        )
        for row in await conn.execute(_HOLDS, {"ids": list(national)})
    }

    def accepts(ballot: BallotToWrite) -> bool:
        p = ballot.participation
        return _window_accepts(national, held, p.consultation_id, p.commune_id, ballot.accepted_at)

    live = [index for index, b in enumerate(batch) if accepts(b)]
    taken = await take_part(conn, [batch[index].participation for index in live])
    answers = [Written(Outcome.NOT_IN_VOTING)] * len(batch)
    rows: list[_BallotRow] = []
    for index, is_new in zip(live, taken, strict=True):
        if is_new:
            ballot_id, p = uuid.uuid4(), batch[index].participation
            rows.append((ballot_id, p.consultation_id, p.commune_id, batch[index].candidate_id, p.channel, p.table_id))
            answers[index] = Written(Outcome.CAST, ballot_id, new_receipt())
        else:
            answers[index] = Written(Outcome.ALREADY_VOTED)
    if carry and batch:
        # Only while the carried ballot's commune still votes (at this batch's latest instant):
        # a ballot of a closed commune may be counted or certified already, and stays as it is.
        now = max(b.accepted_at for b in batch)
        still = [c.ballot_id for c in carry if _window_accepts(national, held, c.consultation_id, c.commune_id, now)]
        if still:
            rows.extend(tuple(row) for row in await conn.execute(_CARRY, {"ids": still}))
    # The heap order of the ballots must say nothing about the order of the participations, nor
    # about which of them were carried.
    _random.shuffle(rows)
    if rows:
        columns = list(zip(*rows, strict=True))
        await conn.execute(
            _BALLOTS,
            {
                "ids": list(columns[0]),
                "consultation_ids": list(columns[1]),
                "commune_ids": list(columns[2]),
                "candidate_ids": list(columns[3]),
                "channels": list(columns[4]),
                "table_ids": list(columns[5]),
            },
        )
        receipts = {a.ballot_id: a.receipt for a in answers if a.ballot_id is not None and a.receipt is not None}
        await (record or BallotRecord()).append(conn, rows, receipts)
    return BatchWritten(answers, [Carried(row[0], row[1], row[2]) for row in rows])


def _window_accepts(
    national: dict[uuid.UUID, VotingWindow],
    held: dict[tuple[uuid.UUID, uuid.UUID], VotingWindow | None],
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    at: datetime,
) -> bool:
    if consultation_id not in national:
        return False
    window = held.get((consultation_id, commune_id), national[consultation_id])
    return window is not None and window.accepts_ballots(at)


def _retrieve(answer: asyncio.Future[Written]) -> None:
    if not answer.cancelled():
        answer.exception()


class BallotWriter:
    """The per-process group commit (see the module docstring)."""

    def __init__(self, db: Database, policy: BatchPolicy | None = None, *, record_origin: str | None = None) -> None:
        self._db = db
        self._policy = policy or BatchPolicy()
        self._record = BallotRecord(record_origin or DEFAULT_RECORD_ORIGIN, self._policy.min_size)
        self._waiting: list[_Waiting] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        # The ballots of this process's last transaction if it wrote fewer than `min_size`.
        self._carry: list[Carried] = []

    @property
    def pending_tallies(self) -> int:
        """Ballots of this process written in a lone transaction: their receipts are in the
        record, their tally enters it with the batch that carries them."""
        return len(self._carry)

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    async def write(self, ballot: BallotToWrite) -> Written:
        """Queue the ballot and wait until its batch committed (or failed: 503 `ballot_not_stored`)."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(ballot, loop.time(), loop.create_future())
        # Retrieved here too: a request that went away must not leave "exception never retrieved".
        waiting.answer.add_done_callback(_retrieve)
        self._waiting.append(waiting)
        self._kick()
        # A request cancelled now (client gone) leaves its ballot in the queue: it is written,
        # and a retry learns it was (already voted), as if the answer had been lost on the way.
        return await asyncio.shield(waiting.answer)

    def _kick(self) -> None:
        """Start every batch that is due; otherwise arm the timer for the next one."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        policy = self._policy
        loop = asyncio.get_running_loop()
        while self._waiting and len(self._in_flight) < policy.writers:
            waited = loop.time() - self._waiting[0].queued_at
            count = len(self._waiting)
            due = (
                count >= policy.max_size
                or (count >= policy.min_size and waited >= policy.linger)
                or waited >= policy.max_hold
            )
            if not due:
                wait = (policy.linger if count >= policy.min_size else policy.max_hold) - waited
                self._timer = loop.call_later(max(wait, 0.0), self._kick)
                return
            batch, self._waiting = self._waiting[: policy.max_size], self._waiting[policy.max_size :]
            task = asyncio.ensure_future(self._write(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._kick()

    async def _write(self, batch: list[_Waiting]) -> None:
        carry, self._carry = self._carry, []
        try:
            async with self._db.engine.begin() as conn:
                written = await write_batch(conn, [w.ballot for w in batch], carry, self._record)
        except Exception as error:  # every request of the batch must get an answer
            # No count and nothing about the voters: the kind of failure only.
            log.warning("a ballot batch was not stored (%s)", type(error).__name__)
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(not_stored())
            self._carry = carry + self._carry  # nothing was rewritten: carry them on
            return
        if len(written.rows) < self._policy.min_size:
            self._carry.extend(written.rows)
        for waiting, answer in zip(batch, written.answers, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(answer)
