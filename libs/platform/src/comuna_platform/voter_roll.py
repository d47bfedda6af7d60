"""The canonical encoding and digest of a frozen voter roll, shared by identity (which freezes
and publishes it) and consultations (which loads it and must recompute the same digest).

Encoding (docs/voter-roll.md): SHA-256 over

    b"comuna/voter-roll/v1\\x00" || consultation_id (16 bytes, RFC 4122 order)
    || for each entry, sorted by voter_key (bytewise ascending):
         voter_key (32) || login_key (32, or 32 zero bytes without a linked account)
         || commune_id (16) || council_id (16)

96 bytes per entry, no separators (every field has a fixed width). Seqs are assigned in the
same order (seq 1 = smallest voter_key), so a reader that hashes entries in seq order gets the
digest without sorting. `ENTRY_BYTES_SQL` builds the same 96 bytes inside PostgreSQL, so a
digest over millions of rows is computed from a few large chunks instead of a Python object
per row.
"""

from __future__ import annotations

import hashlib
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

DIGEST_PREFIX = b"comuna/voter-roll/v1\x00"
KEY_BYTES = 32
NO_LOGIN_KEY = bytes(KEY_BYTES)
ENTRY_BYTES = 96

# One row's 96 bytes in SQL; the table must have voter_key, login_key, commune_id, council_id.
ENTRY_BYTES_SQL = (
    "voter_key || coalesce(login_key, '\\x" + "00" * KEY_BYTES + "'::bytea)"
    " || uuid_send(commune_id) || uuid_send(council_id)"
)


def entry_bytes(voter_key: bytes, login_key: bytes | None, commune_id: uuid.UUID, council_id: uuid.UUID) -> bytes:
    if len(voter_key) != KEY_BYTES or (login_key is not None and len(login_key) != KEY_BYTES):
        raise ValueError("roll keys are 32 bytes")
    return voter_key + (login_key or NO_LOGIN_KEY) + commune_id.bytes + council_id.bytes


class RollDigest:
    """Incremental digest: feed entries (or chunks of encoded entries) in voter_key order."""

    def __init__(self, consultation_id: uuid.UUID) -> None:
        self._hash = hashlib.sha256(DIGEST_PREFIX + consultation_id.bytes)
        self.count = 0

    def add(self, voter_key: bytes, login_key: bytes | None, commune_id: uuid.UUID, council_id: uuid.UUID) -> None:
        self._hash.update(entry_bytes(voter_key, login_key, commune_id, council_id))
        self.count += 1

    def add_encoded(self, chunk: bytes) -> None:
        if len(chunk) % ENTRY_BYTES:
            raise ValueError("an encoded chunk is a whole number of 96-byte entries")
        self._hash.update(chunk)
        self.count += len(chunk) // ENTRY_BYTES

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def roll_digest(consultation_id: uuid.UUID, entries: list[tuple[bytes, bytes | None, uuid.UUID, uuid.UUID]]) -> str:
    """The digest of a whole roll given in any order (sorts by voter_key): the reference implementation."""
    digest = RollDigest(consultation_id)
    for voter_key, login_key, commune_id, council_id in sorted(entries, key=lambda e: e[0]):
        digest.add(voter_key, login_key, commune_id, council_id)
    return digest.hexdigest()


async def stored_digest(
    session: AsyncSession | AsyncConnection,
    table: str,
    consultation_id: uuid.UUID,
    *,
    order: str = "seq",
    chunk: int = 100_000,
) -> RollDigest:
    """The digest of a roll stored in `table` (columns consultation_id, seq and the four entry
    fields), read in `order` ("seq" or "voter_key": the same order by construction, use the
    one the table has an index on), `chunk` entries per round trip, each chunk aggregated into
    one bytea by PostgreSQL. `table` is a constant of the caller, never input."""
    if order not in ("seq", "voter_key"):
        raise ValueError("order is seq or voter_key")
    last = f"(array_agg({order} ORDER BY {order} DESC))[1]"
    statement = text(
        f"SELECT {last} AS last, count(*) AS n, string_agg(entry, ''::bytea ORDER BY {order}) AS entries"  # noqa: S608
        f" FROM (SELECT {order}, {ENTRY_BYTES_SQL} AS entry FROM {table}"
        f" WHERE consultation_id = :consultation_id AND {order} > :after ORDER BY {order} LIMIT :chunk) AS page"
    )
    digest = RollDigest(consultation_id)
    after: int | bytes = 0 if order == "seq" else b""
    while True:
        params = {"consultation_id": consultation_id, "after": after, "chunk": chunk}
        row = (await session.execute(statement, params)).one()
        if not row.n:
            return digest
        digest.add_encoded(bytes(row.entries))
        after = row.last if order == "seq" else bytes(row.last)
