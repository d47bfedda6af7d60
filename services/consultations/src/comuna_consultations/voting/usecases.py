"""Casting a ballot: the hot path of voting day.

Per ballot: checks against an in-memory snapshot (no query), the document normalised and
turned into its roll entry key here (`multiply(t_c, document_point(doc))`, ~150 µs of CPU, no
call to identity), then ONE transaction with ONE statement that finds the entry in this
consultation's own copy of the roll and inserts the participation and the ballot together (see
`voting.storage.cast_ballot`), sent in autocommit mode since a single statement is its own
transaction. This is the one use case
that receives the database rather than a unit of work: it stages no event and needs no
after-commit hook, and BEGIN/COMMIT around one statement would cost two round trips per
ballot on the hottest path of voting day (see docs/architecture.md).

One person, one vote is enforced by PostgreSQL, not by a read-then-write in this code: the
participation's primary key (consultation_id, voter_ref = the entry key) admits one row per voter, and the
ballot is written only if that row was new. Concurrent double submissions therefore produce
exactly one ballot, whichever process or replica they reach.

Ballot secrecy, and its limits (documented on purpose):
* The ballot row has no voter reference and no timestamp; its id is a random uuid4 (a uuid7
  or a sequence would order ballots in time and so re-link them to the voting queue).
* The receipt is the ballot id. It proves to the voter that a ballot was stored (see the public
  receipt check) without revealing the choice to anyone who only sees the receipt, so it cannot
  be used to prove a vote to a buyer or a boss. Someone who can read the `ballots` table AND
  obtains a voter's receipt can see that voter's choice; the receipt is shown to the officer's
  device, which is why database access must stay with a separate operator role.
* Participation and ballot are written by one transaction, so PostgreSQL's system column
  `xmin` (and, less reliably, physical row order) is equal on both rows. A database superuser
  could join them on it and learn which pseudonym chose what; turning the pseudonym into a
  person additionally needs identity's census key. Writing them in two transactions would
  break the all-or-nothing guarantee, so we keep one and rely on separation of duties between
  the consultations database operators and the identity key holders.
* The voter is refused as `voter_not_on_roll` without saying why (not registered, too young,
  another commune, moved after the cut-off): the table learns nothing more about the person. A rewrite of the ballots
  (new xmin and row order) at close is a possible future hardening.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from comuna_consultations.domain.consultations import commune_not_found, not_found
from comuna_consultations.domain.lifecycle import require_status
from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.domain.schedules import schedule_of, voting_windows
from comuna_consultations.storage import repository
from comuna_consultations.vocabulary import BallotChannel, ConsultationStatus
from comuna_consultations.voting import storage
from comuna_consultations.voting.snapshot import VotingSnapshot, VotingSnapshotCache
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.db import Database
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Conflict, FailedPrecondition, Forbidden, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_platform.voter_keys import document_point, multiply

# Who may submit a ballot on each channel: an officer of a table of THIS consultation in the
# ballot's commune; online ballots come through a gateway that authenticated the voter, which
# calls with a service token.


@dataclass(frozen=True, slots=True)
class BallotRequest:
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    candidate_id: uuid.UUID
    # The document as shown (any spelling `comuna_platform.documents` accepts); never stored.
    national_id: str
    channel: BallotChannel


@dataclass(frozen=True, slots=True)
class CastBallot:
    ballot_id: uuid.UUID
    receipt: str


def not_on_roll() -> Forbidden:
    # One answer for every reason (not registered, too young, another commune, moved): see above.
    return Forbidden("the voter is not on the roll of this commune", code="voter_not_on_roll")


async def cast_ballot(
    db: Database,
    snapshots: VotingSnapshotCache,
    caller: Caller,
    request: BallotRequest,
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> CastBallot:
    _require_channel_role(caller, request.channel)
    snapshot = await _voting_snapshot(snapshots, request.consultation_id, request.commune_id, now)
    code = snapshot.commune_codes.get(request.commune_id)
    if code is None:
        raise commune_not_found(request.commune_id)
    if request.channel == BallotChannel.TABLE:
        # The commune as snapshotted by this consultation, never a territory the caller sent.
        where = await lineages.of(code)
        caller.require([Role.TABLE_OFFICER], where, consultation_id=str(request.consultation_id))
    candidate_commune = snapshot.candidate_communes.get(request.candidate_id)
    if candidate_commune is None:
        raise NotFound(f"candidate {request.candidate_id} does not exist", code="candidate_not_found")
    if candidate_commune != request.commune_id:
        raise InvalidInput("the candidate belongs to another commune", code="candidate_not_in_commune")

    if snapshot.voter_key is None:  # voting day came, but the roll was not (yet) loaded and verified
        raise FailedPrecondition("the voter roll is not loaded and verified", code="roll_not_verified")
    voter_key = multiply(snapshot.voter_key, document_point(normalise_document(request.national_id)))

    ballot_id = new_id()
    # The ballot is one statement, atomic on its own: run it in autocommit (one round trip).
    async with db.autocommit() as conn:
        written = await storage.cast_ballot(
            conn,
            consultation_id=request.consultation_id,
            voter_key=voter_key,
            ballot_id=ballot_id,
            commune_id=request.commune_id,
            candidate_id=request.candidate_id,
            channel=request.channel,
            accepted_at=now,
        )
        if not written:
            # Nothing was written; say why. The dates are read after our statement, so a
            # concurrent amendment may report "not in voting" for what was also a second vote:
            # either way the ballot was refused.
            status = await repository.consultation_status(conn, request.consultation_id)
            schedule = await schedule_of(conn, request.consultation_id)
            if status is None or schedule is None:
                raise not_found(request.consultation_id)
            _require_window(
                status, schedule, await voting_windows(conn, request.consultation_id), request.commune_id, now
            )
            if not await storage.on_roll(conn, request.consultation_id, voter_key, request.commune_id):
                raise not_on_roll()
            raise Conflict("this voter has already voted in this consultation", code="already_voted")
    return CastBallot(ballot_id=ballot_id, receipt=str(ballot_id))


def _require_channel_role(caller: Caller, channel: BallotChannel) -> None:
    if channel == BallotChannel.ONLINE:
        if not caller.is_service:
            raise PermissionDeniedError("forbidden_role", "online ballots are submitted by a service")
        return
    if caller.is_service:
        raise PermissionDeniedError("forbidden_role", "table ballots are submitted by a table officer")
    caller.require_role(Role.TABLE_OFFICER)


def _accepts(
    status: str,
    schedule: Schedule,
    windows: Mapping[uuid.UUID, VotingWindow | None],
    commune_id: uuid.UUID,
    now: datetime,
) -> bool:
    window = schedule.window_of(windows, commune_id)
    return status == ConsultationStatus.OPEN and window is not None and window.accepts_ballots(now)


def _require_window(
    status: str,
    schedule: Schedule,
    windows: Mapping[uuid.UUID, VotingWindow | None],
    commune_id: uuid.UUID,
    now: datetime,
) -> None:
    """409 unless the commune takes ballots at `now`: `consultation_not_in_open` once certified,
    `commune_excluded`, or `consultation_not_in_voting` (naming the phase)."""
    if _accepts(status, schedule, windows, commune_id, now):
        return
    require_status(status, ConsultationStatus.OPEN)
    if schedule.window_of(windows, commune_id) is None:
        raise FailedPrecondition("this commune was excluded from the vote", code="commune_excluded")
    raise FailedPrecondition(
        f"the commune is not voting now (phase {schedule.phase_at(now)})",
        code="consultation_not_in_voting",
        phase=str(schedule.phase_at(now)),
    )


async def _voting_snapshot(
    snapshots: VotingSnapshotCache, consultation_id: uuid.UUID, commune_id: uuid.UUID, now: datetime
) -> VotingSnapshot:
    snapshot = await snapshots.get(consultation_id)
    if snapshot is not None and not _accepts(snapshot.status, snapshot.schedule, snapshot.windows, commune_id, now):
        # Maybe the schedule was amended a moment ago in another process: look again before refusing.
        snapshot = await snapshots.get(consultation_id, fresh=True)
    if snapshot is None:
        raise not_found(consultation_id)
    _require_window(snapshot.status, snapshot.schedule, snapshot.windows, commune_id, now)
    return snapshot


async def check_receipt(uow: UnitOfWork, consultation_id: uuid.UUID, receipt: uuid.UUID) -> None:
    """NotFound unless a ballot with this receipt was stored (never says what it chose)."""
    if not await storage.ballot_exists(uow.session, consultation_id, receipt):
        raise NotFound("no ballot with this receipt in this consultation", code="receipt_not_found")
