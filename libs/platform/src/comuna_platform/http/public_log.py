"""Serving a transparency log over REST (C2SP tlog-tiles), for every service that keeps one:
consultations' records (docs/record.md) and funding's ledger journal (docs/ledger.md).

The service decides which log a request names and whether its entries are public yet; what
is read, how it is cached and how a witness's cosignature is taken is the same everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput, NotFound
from comuna_platform.tlog.note import Verifier
from comuna_platform.tlog.store import CosignatureRefused, TransparencyLog
from comuna_platform.tlog.tiles import parse_tile_path

# The checkpoint changes every few seconds (C2SP: no caching beyond a few seconds); tiles and
# bundles never change once served (partial ones are prefixes of what comes later).
CHECKPOINT_CACHE = "public, max-age=2"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"
# A checkpoint (a few hundred bytes) with a handful of cosignature lines.
MAX_COSIGNED_BYTES = 8192

CHECKPOINT_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"text/plain": {}}, "description": "A C2SP signed checkpoint"}
}
TILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "A C2SP tile or entry bundle"}
}
COSIGNATURE_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"text/plain": {"schema": {"type": "string", "maxLength": MAX_COSIGNED_BYTES}}},
    }
}


class LogKeysOut(BaseModel):
    origin: str = Field(description="The checkpoint origin of the log.")
    verifier_keys: list[str] = Field(
        description="C2SP verifier keys (`<name>+<key id>+<key>`) that sign its checkpoints; more than one while "
        "a key rotation overlaps."
    )


class CosignatureOut(BaseModel):
    size: int = Field(description="The size of the checkpoint the witness cosigned.")


def checkpoint_response(signed: str) -> Response:
    return Response(signed, media_type="text/plain; charset=utf-8", headers={"Cache-Control": CHECKPOINT_CACHE})


def immutable_response(data: bytes | str, media_type: str = "application/octet-stream") -> Response:
    return Response(data, media_type=media_type, headers={"Cache-Control": IMMUTABLE_CACHE})


async def latest_checkpoint(conn: AsyncConnection, log: TransparencyLog, missing: str) -> str:
    signed = await log.latest_checkpoint(conn)
    if signed is None:
        raise NotFound(missing, code="no_checkpoint")
    return signed


async def read_tile(conn: AsyncConnection, log: TransparencyLog, path: str, *, entries_public: bool = True) -> bytes:
    """The bytes at a C2SP tile path (`tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`);
    NotFound for a tile the log does not have (yet), 409 `record_entries_not_public` for
    entries the service does not publish yet."""
    try:
        wanted = parse_tile_path(path)
    except ValueError as exc:
        raise NotFound(f"no such tile: {path}", code="tile_not_found") from exc
    if wanted.level is not None:
        data = await log.read_tile(conn, wanted)
    else:
        if not entries_public:
            raise FailedPrecondition(
                "entries of the record are public once voting closed in every commune (they hold batch tallies)",
                code="record_entries_not_public",
            )
        _, integrated = await log.sizes(conn)
        data = await log.read_bundle(conn, wanted, integrated)
    if data is None:
        raise NotFound(f"no such tile: {path}", code="tile_not_found")
    return data


async def cosigned_body(request: Request) -> str:
    """The body of a cosignature POST: a checkpoint with the witness's line, as UTF-8 text."""
    body = await request.body()
    if len(body) > MAX_COSIGNED_BYTES:
        raise InvalidInput(f"a cosigned checkpoint is at most {MAX_COSIGNED_BYTES} bytes", code="cosignature_malformed")
    try:
        return body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidInput("a cosigned checkpoint is UTF-8 text", code="cosignature_malformed") from exc


async def add_cosignature(
    conn: AsyncConnection, log: TransparencyLog, signed: str, witnesses: Sequence[Verifier], now: datetime
) -> int:
    """Keep a witness's cosignature of one of the log's checkpoints; the size it cosigned."""
    if not witnesses:
        raise FailedPrecondition("this deployment keeps no witness cosignatures", code="no_witnesses")
    try:
        return await log.add_cosignature(conn, signed, witnesses, now)
    except CosignatureRefused as exc:
        if exc.code == "witness_unknown":
            raise Forbidden(str(exc), code=exc.code) from exc
        if exc.code == "checkpoint_unknown":
            raise NotFound(str(exc), code=exc.code) from exc
        raise InvalidInput(str(exc), code=exc.code) from exc
