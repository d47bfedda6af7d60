"""Casting a ballot: the hot path of voting day.

Per ballot: checks against an in-memory snapshot (no query: status, windows, candidates,
tables), the voter's roll entry found in this consultation's own copy of the roll (one indexed
read shared by the ballots in flight, `voting.roll_lookups`), then the ballot joins the
process's group commit (`voting.group_commit`) and the 201 is sent once its batch committed.

Who casts, on which channel:
* online: the signed-in resident themself (a person's token, linked to their census record);
  their entry is the one whose login key is `HMAC(L_c, subject)`. No service token and no
  document: nobody votes online on someone else's behalf. The resident may learn that they
  already voted (409 `already_voted`) or are not on the roll (403 `voter_not_on_roll`).
* table: an officer of THIS electronic table of this consultation records the ballot of the
  person whose document they checked; the entry must be on the roll of the table's commune.
  Every refusal about the person (not on the roll, another commune, under age, moved, already
  voted) is the same 403 `voter_may_not_vote`: the officer learns "may vote or not", never why.
* The window: a ballot is accepted while the commune's `VotingWindow.accepts_ballots(now)`,
  `now` the runtime clock's instant when the request is handled (the instant compared: a
  ballot accepted before the close commits even if its batch commits a moment later), and the
  consultation is in `voting` (a batch re-checks that on the locked row).

One person, one vote is enforced by PostgreSQL (the participation's primary key), whichever
channel, process or replica the attempts reach; a refused second attempt leaves a conflict row.
Secrecy: see `voting.group_commit` (batches, shuffled ballots), `domain.pseudonyms` and
docs/architecture.md "Ballot secrecy".
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain import tables
from comuna_consultations.domain.consultations import commune_not_found, not_found
from comuna_consultations.domain.pseudonyms import Pseudonyms, login_entry
from comuna_consultations.domain.record import receipt_commitment
from comuna_consultations.storage.participations import ParticipationRow
from comuna_consultations.storage.record import Record
from comuna_consultations.vocabulary import BallotChannel, ConsultationStatus, TableKind
from comuna_consultations.voting import storage
from comuna_consultations.voting.group_commit import BallotToWrite, BallotWriter, Outcome
from comuna_consultations.voting.roll_lookups import RollLookups
from comuna_consultations.voting.snapshot import VotingSnapshot, VotingSnapshotCache
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Conflict, FailedPrecondition, Forbidden, InvalidInput, NotFound, Unavailable
from comuna_platform.tlog.checkpoint import parse_checkpoint
from comuna_platform.tlog.note import split_note
from comuna_platform.uow import UnitOfWork
from comuna_platform.voter_keys import document_point, multiply


@dataclass(frozen=True, slots=True)
class BallotRequest:
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    candidate_id: uuid.UUID | None  # None: blank
    channel: BallotChannel
    # table only: the document as shown (any spelling `comuna_platform.documents` accepts;
    # never stored) and the officer's table.
    national_id: str | None = None
    table_code: str | None = None


@dataclass(frozen=True, slots=True)
class CastBallot:
    ballot_id: uuid.UUID
    receipt: str


@dataclass(frozen=True, slots=True)
class Voting:
    """What the ballot path works with, one per process."""

    snapshots: VotingSnapshotCache
    roll: RollLookups
    writer: BallotWriter
    pseudonyms: Pseudonyms | None  # None without a configured secret: 503


def may_not_vote() -> Forbidden:
    # The table's one answer about a person, whatever the reason (see the module docstring).
    return Forbidden("this person may not vote at this table", code="voter_may_not_vote")


def not_on_roll() -> Forbidden:
    return Forbidden("you are not on the roll of this commune in this consultation", code="voter_not_on_roll")


def not_in_voting() -> Conflict:
    return Conflict("the consultation is not accepting ballots", code="consultation_not_in_voting")


async def cast_ballot(
    voting: Voting, caller: Caller, request: BallotRequest, *, lineages: TerritoryLineages, now: datetime
) -> CastBallot:
    _require_channel(caller, request)
    snapshot = await _voting_snapshot(voting.snapshots, request.consultation_id, request.commune_id, now)
    code = snapshot.commune_codes.get(request.commune_id)
    if code is None:
        raise commune_not_found(request.commune_id)
    # The phase is public: refused first, before anything about tables or people is looked up.
    if not _accepts(snapshot, request.commune_id, now):
        if snapshot.status == ConsultationStatus.OPEN and snapshot.window_of(request.commune_id) is None:
            raise FailedPrecondition("this commune does not vote in this consultation", code="commune_excluded")
        raise not_in_voting()
    if snapshot.roll_keys is None:  # a public fact about the consultation, not about a person
        raise FailedPrecondition("this consultation's voter roll is not verified", code="roll_not_verified")
    table = None
    if request.channel == BallotChannel.TABLE:
        table = await _officers_table(snapshot, caller, request, lineages=lineages, commune_code=code)
    if request.candidate_id is not None:
        candidate_commune = snapshot.candidate_communes.get(request.candidate_id)
        if candidate_commune is None:
            raise NotFound(f"candidate {request.candidate_id} does not exist", code="candidate_not_found")
        if candidate_commune != request.commune_id:
            raise InvalidInput("the candidate belongs to another commune", code="candidate_not_in_commune")
    if voting.pseudonyms is None:
        raise Unavailable("ballots cannot be recorded: no voter reference secret", code="voter_ref_secret_missing")

    if table is not None:
        assert request.national_id is not None  # _require_channel
        entry_key = multiply(snapshot.roll_keys.voter_key, document_point(normalise_document(request.national_id)))
        if await voting.roll.commune_of(request.consultation_id, entry_key) != table.commune_id:
            raise may_not_vote()
    else:
        if snapshot.roll_keys.login_key is None:
            raise not_on_roll()
        login = login_entry(snapshot.roll_keys.login_key, caller.subject)
        found = await voting.roll.entry_of_login(request.consultation_id, login)
        if found is None or found[1] != request.commune_id:
            raise not_on_roll()
        entry_key = found[0]

    participation = ParticipationRow(
        consultation_id=request.consultation_id,
        voter_ref=voting.pseudonyms.voter_ref(request.consultation_id, entry_key),
        commune_id=request.commune_id,
        channel=request.channel.value,
        table_id=table.id if table is not None else None,
    )
    written = await voting.writer.write(BallotToWrite(participation, request.candidate_id, accepted_at=now))
    if written.outcome is Outcome.CAST:
        assert written.ballot_id is not None and written.receipt is not None
        return CastBallot(ballot_id=written.ballot_id, receipt=written.receipt)
    if written.outcome is Outcome.NOT_IN_VOTING:
        raise not_in_voting()
    if table is not None:
        raise may_not_vote()
    raise Conflict("you have already voted in this consultation", code="already_voted")


def _require_channel(caller: Caller, request: BallotRequest) -> None:
    """Who may cast on the channel, and what the body of each channel carries."""
    if request.channel == BallotChannel.ONLINE:
        if caller.is_service or caller.resident_id is None:
            raise PermissionDeniedError("forbidden_role", "online ballots are cast by the signed-in resident")
        if request.national_id is not None or request.table_code is not None:
            raise InvalidInput("an online ballot carries no document and no table", code="online_ballot_fields")
        return
    if request.channel != BallotChannel.TABLE:
        raise InvalidInput("offline ballots come through the offline table's sync", code="channel_not_accepted")
    tables.require_any_table(caller)
    if request.national_id is None or request.table_code is None:
        raise InvalidInput("a table ballot needs the document and the table code", code="table_ballot_fields")


async def _officers_table(
    snapshot: VotingSnapshot,
    caller: Caller,
    request: BallotRequest,
    *,
    lineages: TerritoryLineages,
    commune_code: str,
) -> storage.TableRef:
    """The caller's electronic table serving the ballot's commune; 403 `forbidden_table` otherwise
    (an unknown code too: an officer learns nothing about other tables)."""
    assert request.table_code is not None
    table = snapshot.tables.get(request.table_code)
    lineage = await lineages.of(commune_code)
    if (
        table is None
        or table.commune_id != request.commune_id
        or not tables.is_officer_of(caller, request.consultation_id, table.code, lineage)
    ):
        raise tables.forbidden_table(request.table_code)
    if table.kind != TableKind.ELECTRONIC:
        raise Conflict("ballots are recorded only at electronic tables", code="table_not_electronic")
    return table


async def _voting_snapshot(
    snapshots: VotingSnapshotCache, consultation_id: uuid.UUID, commune_id: uuid.UUID, now: datetime
) -> VotingSnapshot:
    snapshot = await snapshots.get(consultation_id)
    if snapshot is not None and (not _accepts(snapshot, commune_id, now) or snapshot.roll_keys is None):
        # Maybe the schedule or a hold was amended, or the roll verified, a moment ago in another
        # process: look again before refusing (a stale acceptance is re-checked by the batch on the
        # locked row).
        snapshot = await snapshots.get(consultation_id, fresh=True)
    if snapshot is None:
        raise not_found(consultation_id)
    return snapshot


def _accepts(snapshot: VotingSnapshot, commune_id: uuid.UUID, now: datetime) -> bool:
    window = snapshot.window_of(commune_id)
    return snapshot.status == ConsultationStatus.OPEN and window is not None and window.accepts_ballots(now)


@dataclass(frozen=True, slots=True)
class ReceiptProof:
    commitment: str
    entry_index: int
    # None while the entry is not in a signed checkpoint yet (integration lags a few seconds).
    checkpoint: str | None
    tree_size: int | None
    inclusion_proof: list[bytes] | None


async def receipt_proof(uow: UnitOfWork, record: Record, consultation_id: uuid.UUID, receipt: str) -> ReceiptProof:
    """Where a receipt's commitment is in the log, and its inclusion proof against the latest
    signed checkpoint (when that checkpoint covers it). NotFound unless a ballot with this
    receipt was stored; never says what it chose."""
    session = uow.session
    commitment = receipt_commitment(receipt)
    index = await storage.receipt_entry(session, consultation_id, commitment)
    conn = await session.connection()
    if index is None:
        raise NotFound("no ballot with this receipt in this consultation", code="receipt_not_found")
    log = record.log(consultation_id)
    signed = await log.latest_checkpoint(conn)
    if signed is None:
        return ReceiptProof(commitment, index, None, None, None)
    size = parse_checkpoint(split_note(signed)[0]).size
    if index >= size:
        return ReceiptProof(commitment, index, None, None, None)
    return ReceiptProof(commitment, index, signed, size, await log.inclusion_proof(conn, index, size))
