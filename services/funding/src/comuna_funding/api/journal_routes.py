"""REST transport of the ledger's public journal (docs/ledger.md), under `/v1/ledger/`: the
transparency log of every account and transfer in the C2SP tlog-tiles layout, and the
balances it adds up to. All public: money moved for communes is open data."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from comuna_funding.domain import journal as entries
from comuna_funding.storage import journal, ledger_store
from comuna_platform.http import public_log
from comuna_platform.http.deps import RuntimeDep, UnitOfWorkDep
from comuna_platform.tlog.note import Signer, Verifier

router = APIRouter(prefix="/v1/ledger", tags=["ledger journal"])


@dataclass(frozen=True, slots=True)
class JournalKeys:
    """Who signs the journal's checkpoints and whose cosignatures it keeps (`app.state.journal_keys`)."""

    signers: tuple[Signer, ...] = ()
    witnesses: tuple[Verifier, ...] = ()


def _keys(request: Request) -> JournalKeys:
    keys: JournalKeys = request.app.state.journal_keys
    return keys


@router.get(
    "/record/checkpoint",
    response_class=Response,
    responses=public_log.CHECKPOINT_RESPONSES,
    summary="The latest signed checkpoint of the ledger's journal (C2SP tlog-checkpoint), with cosignatures",
)
async def checkpoint(uow: UnitOfWorkDep) -> Response:
    signed = await public_log.latest_checkpoint(
        await uow.session.connection(), journal.journal().log, "the ledger's journal has no signed checkpoint yet"
    )
    return public_log.checkpoint_response(signed)


@router.get(
    "/record/tile/{path:path}",
    response_class=Response,
    responses=public_log.TILE_RESPONSES,
    summary="A hash tile (`tile/<L>/<N>[.p/<W>]`) or entry bundle (`tile/entries/<N>[.p/<W>]`) of the journal",
)
async def tile(path: str, uow: UnitOfWorkDep) -> Response:
    data = await public_log.read_tile(await uow.session.connection(), journal.journal().log, f"tile/{path}")
    return public_log.immutable_response(data)


@router.get(
    "/record/keys", response_model=public_log.LogKeysOut, summary="The journal's origin and its checkpoints' keys"
)
async def keys(request: Request) -> public_log.LogKeysOut:
    return public_log.LogKeysOut(
        origin=journal.journal().origin, verifier_keys=[s.verifier.vkey for s in _keys(request).signers]
    )


@router.post(
    "/record/cosignatures",
    response_model=public_log.CosignatureOut,
    status_code=201,
    openapi_extra=public_log.COSIGNATURE_BODY,
    summary="A witness's cosignature of one of the journal's checkpoints; kept only from the deployment's "
    "witnesses, and served on `checkpoint`",
    description="403 `witness_unknown` for a witness this deployment does not list; 404 `checkpoint_unknown` for "
    "a checkpoint the journal did not sign; 422 `cosignature_invalid` / `cosignature_malformed`; 409 `no_witnesses`.",
)
async def cosignature(request: Request, uow: UnitOfWorkDep, runtime: RuntimeDep) -> public_log.CosignatureOut:
    signed = await public_log.cosigned_body(request)
    size = await public_log.add_cosignature(
        await uow.session.connection(), journal.journal().log, signed, _keys(request).witnesses, runtime.clock.now()
    )
    return public_log.CosignatureOut(size=size)


@router.get(
    "/balances",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "comuna-balances/v1 (docs/ledger.md)"}},
    summary="Every account's posted and pending totals, as of a journal size (one snapshot)",
)
async def balances(uow: UnitOfWorkDep) -> PlainTextResponse:
    origin = journal.journal().origin
    size, accounts = await ledger_store.balances_snapshot(uow.session, origin)
    return PlainTextResponse(entries.balances_document(origin, size, accounts), headers={"Cache-Control": "no-store"})
