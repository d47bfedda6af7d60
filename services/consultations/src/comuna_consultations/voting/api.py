"""REST transport of the voting slice: cast a ballot, check a receipt."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from comuna_consultations.voting import usecases
from comuna_consultations.voting.schemas import BallotIn, BallotOut, ReceiptOut
from comuna_consultations.voting.snapshot import VotingSnapshotCache
from comuna_platform.auth.fastapi import CurrentCaller, TerritoryLineagesDep
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["consultations"])

# Who may submit depends on the channel (a table officer of the commune, or a service) and
# where, on the consultation's communes: the use case checks both.
BallotSubmitter = CurrentCaller


async def snapshots_of(request: Request) -> VotingSnapshotCache:
    cache: VotingSnapshotCache = request.app.state.voting_snapshots
    return cache


SnapshotsDep = Annotated[VotingSnapshotCache, Depends(snapshots_of)]


@router.post(
    "/consultations/{consultation_id}/ballots",
    status_code=status.HTTP_201_CREATED,
    response_model=BallotOut,
    summary="Cast a ballot (polling officer of the commune for `table`, service for `online`)",
)
async def cast_ballot(
    consultation_id: uuid.UUID,
    body: BallotIn,
    *,
    caller: BallotSubmitter,
    runtime: RuntimeDep,
    snapshots: SnapshotsDep,
    lineages: TerritoryLineagesDep,
) -> BallotOut:
    # The documented exception to the unit of work: one autocommit statement (see usecases).
    request = usecases.BallotRequest(
        consultation_id, body.commune_id, body.candidate_id, body.national_id, body.channel
    )
    cast = await usecases.cast_ballot(
        runtime.db, snapshots, caller, request, lineages=lineages, now=runtime.clock.now()
    )
    return BallotOut(ballot_id=cast.ballot_id, receipt=cast.receipt)


@router.get(
    "/consultations/{consultation_id}/receipts/{receipt}",
    response_model=ReceiptOut,
    summary="Was the ballot with this receipt stored? (public; never says what it chose)",
)
async def check_receipt(consultation_id: uuid.UUID, receipt: uuid.UUID, uow: UnitOfWorkDep) -> ReceiptOut:
    await usecases.check_receipt(uow, consultation_id, receipt)
    return ReceiptOut(receipt=str(receipt), recorded=True)
