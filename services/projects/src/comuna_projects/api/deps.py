"""What the projects routes reach on the running service (set on `app.state` at startup by
`comuna_projects.service.on_startup`)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from comuna_projects.domain.evidence import EvidencePolicy
from comuna_projects.domain.progress import FundingLedger
from comuna_projects.storage.evidence_store import EvidenceStore


async def get_evidence_store(request: Request) -> EvidenceStore:
    return cast(EvidenceStore, request.app.state.evidence_store)


async def get_evidence_policy(request: Request) -> EvidencePolicy:
    return cast(EvidencePolicy, request.app.state.evidence_policy)


async def get_funding_ledger(request: Request) -> FundingLedger:
    return cast(FundingLedger, request.app.state.funding_ledger)


EvidenceStoreDep = Annotated[EvidenceStore, Depends(get_evidence_store)]
EvidencePolicyDep = Annotated[EvidencePolicy, Depends(get_evidence_policy)]
FundingLedgerDep = Annotated[FundingLedger, Depends(get_funding_ledger)]
