"""REST transport of the record slice: the consultation's log in the C2SP tlog-tiles layout,
public and cacheable, under `/v1/consultations/{id}/record/`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from comuna_consultations.record import usecases
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["record"])

# The checkpoint changes every few seconds (C2SP: no caching beyond a few seconds); tiles and
# bundles never change once served (partial ones are prefixes of what comes later).
CHECKPOINT_CACHE = "public, max-age=2"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"


async def record_of(request: Request) -> usecases.Record:
    record: usecases.Record = request.app.state.record
    return record


RecordDep = Annotated[usecases.Record, Depends(record_of)]


@router.get(
    "/consultations/{consultation_id}/record/checkpoint",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "A C2SP signed checkpoint"}},
    summary="The latest signed checkpoint of the consultation's log (C2SP tlog-checkpoint; public)",
)
async def checkpoint(consultation_id: uuid.UUID, uow: UnitOfWorkDep, record: RecordDep) -> Response:
    signed = await usecases.latest_checkpoint(uow.session, record, consultation_id)
    return Response(signed, media_type="text/plain; charset=utf-8", headers={"Cache-Control": CHECKPOINT_CACHE})


@router.get(
    "/consultations/{consultation_id}/record/tile/{path:path}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "A C2SP tile or entry bundle"}},
    summary="A hash tile (`tile/<L>/<N>[.p/<W>]`) or entry bundle (`tile/entries/<N>[.p/<W>]`) of the log (public; "
    "entries once no commune votes)",
)
async def tile(
    consultation_id: uuid.UUID, path: str, uow: UnitOfWorkDep, record: RecordDep, runtime: RuntimeDep
) -> Response:
    data = await usecases.tile(uow.session, record, consultation_id, f"tile/{path}", runtime.clock.now())
    return Response(data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE_CACHE})


class RecordKeysOut(BaseModel):
    origin: str = Field(description="The checkpoint origin of this consultation's log.")
    verifier_keys: list[str] = Field(
        description="C2SP verifier keys (`<name>+<key id>+<key>`) that sign its checkpoints; more than one while "
        "a key rotation overlaps."
    )


@router.get(
    "/consultations/{consultation_id}/record/keys",
    response_model=RecordKeysOut,
    summary="The log's origin and the public keys of its checkpoints (public)",
)
async def keys(consultation_id: uuid.UUID, uow: UnitOfWorkDep, record: RecordDep) -> RecordKeysOut:
    origin, verifiers = await usecases.record_keys(uow.session, record, consultation_id)
    return RecordKeysOut(origin=origin, verifier_keys=verifiers)
