"""REST transport of the record slice: the consultation's log in the C2SP tlog-tiles layout,
public and cacheable, under `/v1/consultations/{id}/record/`."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from comuna_consultations.record import usecases
from comuna_consultations.transport import RecordDep
from comuna_platform.http import public_log
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["record"])


@router.get(
    "/consultations/{consultation_id}/record/checkpoint",
    response_class=Response,
    responses=public_log.CHECKPOINT_RESPONSES,
    summary="The latest signed checkpoint of the consultation's log (C2SP tlog-checkpoint; public)",
)
async def checkpoint(consultation_id: uuid.UUID, uow: UnitOfWorkDep, record: RecordDep) -> Response:
    return public_log.checkpoint_response(await usecases.latest_checkpoint(uow.session, record, consultation_id))


@router.get(
    "/consultations/{consultation_id}/record/tile/{path:path}",
    response_class=Response,
    responses=public_log.TILE_RESPONSES,
    summary="A hash tile (`tile/<L>/<N>[.p/<W>]`) or entry bundle (`tile/entries/<N>[.p/<W>]`) of the log (public; "
    "entries once no commune votes)",
)
async def tile(
    consultation_id: uuid.UUID, path: str, uow: UnitOfWorkDep, record: RecordDep, runtime: RuntimeDep
) -> Response:
    data = await usecases.tile(uow.session, record, consultation_id, f"tile/{path}", runtime.clock.now())
    return public_log.immutable_response(data)


RecordKeysOut = public_log.LogKeysOut


@router.get(
    "/consultations/{consultation_id}/record/keys",
    response_model=RecordKeysOut,
    summary="The log's origin and the public keys of its checkpoints (public)",
)
async def keys(consultation_id: uuid.UUID, uow: UnitOfWorkDep, record: RecordDep) -> RecordKeysOut:
    origin, verifiers = await usecases.record_keys(uow.session, record, consultation_id)
    return RecordKeysOut(origin=origin, verifier_keys=verifiers)


class BulletinOut(BaseModel):
    index: int = Field(description="The bulletin's entry in the log; its signed note is `bulletins/{index}`.")
    commune_id: uuid.UUID
    channel: str = Field(description="online, table (electronic), paper or offline.")
    table_code: str | None = Field(description="None for the online channel.")
    version: int = Field(description="The commune's certification version it belongs to.")


class BulletinsOut(BaseModel):
    bulletins: list[BulletinOut]


@router.get(
    "/consultations/{consultation_id}/record/bulletins",
    response_model=BulletinsOut,
    summary="The table bulletins of the consultation's certifications, in log order (public)",
)
async def bulletins(consultation_id: uuid.UUID, uow: UnitOfWorkDep) -> BulletinsOut:
    found = await usecases.bulletins(uow.session, consultation_id)
    return BulletinsOut(
        bulletins=[
            BulletinOut(
                index=b.entry_index,
                commune_id=b.commune_id,
                channel=b.channel,
                table_code=b.table_code,
                version=b.version,
            )
            for b in found
        ]
    )


@router.get(
    "/consultations/{consultation_id}/record/bulletins/{name}",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {}, "image/png": {}},
            "description": "`{index}`: the signed bulletin (a C2SP signed note); `{index}.png`: its QR code",
        }
    },
    summary="One table bulletin, signed (`{index}`) or as a QR code image (`{index}.png`) (public)",
)
async def bulletin(
    consultation_id: uuid.UUID,
    name: Annotated[str, Path(pattern=r"^[0-9]{1,18}(\.png)?$", description="`<index>` or `<index>.png`")],
    uow: UnitOfWorkDep,
) -> Response:
    index, _, image = name.partition(".")
    signed = await usecases.bulletin(uow.session, consultation_id, int(index))
    if image:
        return public_log.immutable_response(usecases.bulletin_qr(signed), "image/png")
    return public_log.immutable_response(signed, "text/plain; charset=utf-8")


@router.post(
    "/consultations/{consultation_id}/record/cosignatures",
    response_model=public_log.CosignatureOut,
    status_code=201,
    openapi_extra=public_log.COSIGNATURE_BODY,
    summary="A witness's cosignature of one of the log's checkpoints (the checkpoint with the witness's "
    "C2SP cosignature/v1 line); kept only from the deployment's witnesses, and served on `checkpoint`",
    description="403 `witness_unknown` for a witness this deployment does not list; 404 `checkpoint_unknown` for "
    "a checkpoint the log did not sign; 422 `cosignature_invalid` / `cosignature_malformed`; 409 `no_witnesses`.",
)
async def cosignature(
    consultation_id: uuid.UUID, request: Request, uow: UnitOfWorkDep, record: RecordDep, runtime: RuntimeDep
) -> public_log.CosignatureOut:
    signed = await public_log.cosigned_body(request)
    size = await usecases.add_cosignature(uow.session, record, consultation_id, signed, runtime.clock.now())
    return public_log.CosignatureOut(size=size)
