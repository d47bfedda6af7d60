"""Single transfers (`POST /v1/transfers`) from concurrent requests, written by group commit.

One transaction per request would serialize every writer on the journal's row lock (each
transfer is appended to the public journal in the transaction that stores it) and pay a
commit per transfer. Here concurrent requests share a transaction (`GroupCommit`): their
transfers are decided as one non-atomic batch, so each is accepted or refused on its own, in
arrival order, exactly as if they had come one after another; the journal gets one append per
batch. Each request is answered after the commit, with its own decision.

Transfers in one batch must not repeat an id (`ledger.submit_transfers` refuses such a batch
whole), so a resent transfer that meets its original in the queue goes into a later part of
the same transaction and is answered "exists" (or refused as a reused id), as it would be
alone. A linked transfer or an exchange leg is decided alone too: in a single request it has
no partner, and must not find one in somebody else's request.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from comuna_funding.domain import ledger
from comuna_funding.domain.ledger import Decision, NewTransfer, TransferOutcome
from comuna_funding.storage import ledger_store
from comuna_platform.db import Database
from comuna_platform.group_commit import GroupCommit

# Batches of requests: far below the ledger's batch limit; two in flight, one committing while
# the next decides (the journal's lock orders their appends).
MAX_GROUP = 500
WRITERS = 2


@dataclass(frozen=True, slots=True)
class Submitted:
    decision: Decision
    # The keys of the accounts the stored transfer moves between (its REST shape names them).
    account_keys: dict[uuid.UUID, str]


def parts(batch: Sequence[NewTransfer]) -> list[list[NewTransfer]]:
    """`batch` in order, cut so that no part repeats an id and linked transfers and exchange
    legs stand alone."""
    result: list[list[NewTransfer]] = []
    current: list[NewTransfer] = []
    ids: set[uuid.UUID] = set()
    for transfer in batch:
        alone = transfer.linked or transfer.exchange is not None
        if current and (alone or transfer.id in ids):
            result.append(current)
            current, ids = [], set()
        current.append(transfer)
        ids.add(transfer.id)
        if alone:
            result.append(current)
            current, ids = [], set()
    if current:
        result.append(current)
    return result


class TransferCommits:
    def __init__(self, db: Database, *, max_group: int = MAX_GROUP, writers: int = WRITERS) -> None:
        self._db = db
        self._group: GroupCommit[NewTransfer, Submitted] = GroupCommit(self._write, max_size=max_group, writers=writers)

    async def submit(self, transfer: NewTransfer) -> Submitted:
        return await self._group.submit(transfer)

    async def _write(self, batch: Sequence[NewTransfer]) -> list[Submitted]:
        async with self._db.unit_of_work() as uow:
            decisions: list[Decision] = []
            for part in parts(batch):
                decisions += await ledger.submit_transfers(uow.session, part)
            stored = [d.transfer for d in decisions if isinstance(d, TransferOutcome)]
            keys = await ledger_store.account_keys(
                uow.session, [aid for t in stored for aid in (t.debit_account_id, t.credit_account_id)]
            )
        return [Submitted(d, keys) for d in decisions]
