"""REST transport of the voting slice: cast a ballot, check a receipt."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from comuna_consultations.domain.record import RECEIPT_PATTERN
from comuna_consultations.transport import RecordDep
from comuna_consultations.voting import usecases
from comuna_consultations.voting.schemas import BallotIn, BallotOut, ReceiptOut
from comuna_platform.auth.fastapi import CurrentCaller, TerritoryLineagesDep
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["consultations"])

# Who may cast depends on the channel (the signed-in resident online, the table's officer at a
# table) and where: the use case checks both.
BallotCaster = CurrentCaller


async def voting_of(request: Request) -> usecases.Voting:
    voting: usecases.Voting = request.app.state.voting
    return voting


VotingDep = Annotated[usecases.Voting, Depends(voting_of)]


@router.post(
    "/consultations/{consultation_id}/ballots",
    status_code=status.HTTP_201_CREATED,
    response_model=BallotOut,
    summary="Cast a ballot: `online` by the signed-in resident, `table` by the officer of an electronic table",
    description="The 201 is sent once the ballot is durably committed (group commit: ballots of concurrent "
    "requests share one transaction). 503 `ballot_not_stored`: nothing was written, send it again.",
)
async def cast_ballot(
    consultation_id: uuid.UUID,
    body: BallotIn,
    *,
    caller: BallotCaster,
    runtime: RuntimeDep,
    voting: VotingDep,
    lineages: TerritoryLineagesDep,
) -> BallotOut:
    # The documented exception to the unit of work: the ballot goes to the group commit.
    request = usecases.BallotRequest(
        consultation_id, body.commune_id, body.candidate_id, body.channel, body.national_id, body.table_code
    )
    cast = await usecases.cast_ballot(voting, caller, request, lineages=lineages, now=runtime.clock.now())
    return BallotOut(ballot_id=cast.ballot_id, receipt=cast.receipt)


@router.get(
    "/consultations/{consultation_id}/receipts/{receipt}",
    response_model=ReceiptOut,
    summary="Was the ballot with this receipt stored, and where is it in the public record? With its "
    "inclusion proof (public; never says what it chose)",
)
async def check_receipt(
    consultation_id: uuid.UUID,
    receipt: Annotated[str, Path(pattern=RECEIPT_PATTERN, description="The receipt the ballot's 201 gave.")],
    uow: UnitOfWorkDep,
    record: RecordDep,
) -> ReceiptOut:
    proof = await usecases.receipt_proof(uow, record, consultation_id, receipt)
    return ReceiptOut(
        receipt=receipt,
        recorded=True,
        commitment=proof.commitment,
        entry_index=proof.entry_index,
        tree_size=proof.tree_size,
        inclusion_proof=None
        if proof.inclusion_proof is None
        else [base64.b64encode(h).decode() for h in proof.inclusion_proof],
        checkpoint=proof.checkpoint,
    )
