"""REST transport of the offline slice: the signed snapshot of an offline table, its public
keys, and the idempotent sync of a device's batches."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from comuna_consultations.offline import usecases
from comuna_consultations.offline.schemas import SnapshotKeyOut, SnapshotKeysOut, SnapshotOut, SyncIn, SyncOut
from comuna_consultations.offline.signing import SnapshotKeys
from comuna_consultations.transport import PseudonymsDep, RecordDep
from comuna_platform import offline_tables
from comuna_platform.auth.fastapi import CurrentCaller, TerritoryLineagesDep
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["consultations"])

TableCode = Annotated[str, Path(min_length=1, max_length=64, pattern="^[A-Za-z0-9._-]+$")]


async def snapshot_keys_of(request: Request) -> SnapshotKeys | None:
    keys: SnapshotKeys | None = request.app.state.snapshot_keys
    return keys


SnapshotKeysDep = Annotated[SnapshotKeys | None, Depends(snapshot_keys_of)]


@router.get("/snapshot-keys", response_model=SnapshotKeysOut, summary="Public keys that sign offline tables' snapshots")
async def snapshot_public_keys(keys: SnapshotKeysDep) -> SnapshotKeysOut:
    if keys is None:
        return SnapshotKeysOut(keys=[])
    key = SnapshotKeyOut(
        key_id=keys.key_id, algorithm=offline_tables.SIGNATURE_ALGORITHM, public_key=offline_tables.b64(keys.public_key)
    )
    return SnapshotKeysOut(keys=[key])


@router.get(
    "/consultations/{consultation_id}/tables/{table_code}/snapshot",
    response_model=SnapshotOut,
    summary="Signed snapshot of an offline table's commune roll and candidates (officer of that table)",
)
async def table_snapshot(
    consultation_id: uuid.UUID,
    table_code: TableCode,
    *,
    caller: CurrentCaller,
    uow: UnitOfWorkDep,
    keys: SnapshotKeysDep,
    lineages: TerritoryLineagesDep,
    runtime: RuntimeDep,
) -> SnapshotOut:
    signed = await usecases.table_snapshot(
        uow, keys, caller, consultation_id, table_code, lineages=lineages, now=runtime.clock.now()
    )
    return SnapshotOut(
        payload=offline_tables.b64(signed.payload),
        signature=offline_tables.b64(signed.signature),
        key_id=signed.key_id,
        algorithm=offline_tables.SIGNATURE_ALGORITHM,
        sync_key=offline_tables.b64(signed.sync_key),
    )


@router.post(
    "/consultations/{consultation_id}/tables/{table_code}:sync",
    response_model=SyncOut,
    summary="Sync one batch of an offline table's check-ins and ballots (idempotent by batch id)",
)
async def sync_table(
    consultation_id: uuid.UUID,
    table_code: TableCode,
    body: SyncIn,
    *,
    caller: CurrentCaller,
    uow: UnitOfWorkDep,
    keys: SnapshotKeysDep,
    lineages: TerritoryLineagesDep,
    pseudonyms: PseudonymsDep,
    record: RecordDep,
) -> SyncOut:
    batch = usecases.Batch(
        batch_id=body.batch_id,
        snapshot_digest=body.snapshot_digest,
        checkins=list(body.checkins),
        ballots=[usecases.BallotCount(b.candidate_id, b.count) for b in body.ballots],
        null_votes=body.null_votes,
        mac=body.mac,
    )
    answer = await usecases.sync_batch(
        uow,
        keys,
        caller,
        consultation_id,
        table_code,
        batch=batch,
        lineages=lineages,
        pseudonyms=pseudonyms,
        record=record,
    )
    return SyncOut.model_validate(answer)
