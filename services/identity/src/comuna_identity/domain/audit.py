"""The audit log: every change to territories, census records and role assignments.

The seam every writer calls: `await audit.append(session, [AuditEntry(...), ...])` inside the
transaction that makes the change, so the entry commits with it or not at all. Appends are
serialised (an advisory lock held until that transaction ends): call `append` late in the
transaction, once the change itself is written, so the lock is held briefly.

Each stored entry is `seq, at, actor, action, object_kind, object_id, before_hash, after_hash,
prev_hash, entry_hash` (docs/audit.md, with what the chain proves and what it does not):

- `before_hash` / `after_hash` = SHA-256 of the canonical JSON of the state (`state_hash`):
  UTF-8, keys sorted, no whitespace (`","` and `":"`), non-ASCII kept as is, no NaN; UUIDs as
  their hyphenated string, dates and datetimes as ISO 8601 (`isoformat()`), enums by value.
  NULL when the object did not exist before / does not exist after.
- `entry_hash` = SHA-256 of (`entry_hash_of`):
  `b"comuna-audit-log/v1\\x00"` || prev_hash (32 bytes) || seq (8 bytes, big-endian unsigned)
  || at (8 bytes, big-endian signed: microseconds since 1970-01-01T00:00:00Z)
  || str(actor) || str(action) || str(object_kind) || str(object_id)
  || opt(before_hash) || opt(after_hash)
  where str(s) = len(UTF-8 of s) as 4 bytes big-endian || UTF-8 of s, and opt(h) = `0x00` for
  NULL or `0x01` || h.
- `prev_hash` = the previous entry's `entry_hash`; for seq 1, 32 zero bytes (`GENESIS`).
"""

from __future__ import annotations

import enum
import hashlib
import json
import struct
import time
import uuid
from collections.abc import AsyncIterable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage import audit_log
from comuna_identity.storage.audit_log import Head
from comuna_identity.storage.models import AuditLogEntry

GENESIS = bytes(32)
DOMAIN = b"comuna-audit-log/v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SEQ = struct.Struct(">Q")
_AT = struct.Struct(">q")
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    # Who: a Keycloak subject, a service client id, or "bootstrap"/"cli:<user>".
    actor: str
    # What was done, `<object_kind>.<verb>`: territory.created, resident.moved, role_assignment.revoked...
    action: str
    object_kind: str
    object_id: str
    # The object's state before and after, as plain JSON-able data; the log keeps only their
    # hashes. None: the object did not exist before / does not exist after.
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


async def append(session: AsyncSession, entries: Sequence[AuditEntry]) -> None:
    """Append `entries`, in order, to the audit log within the session's transaction."""
    await append_entries(session, entries)


async def append_entries(session: AsyncSession, entries: Sequence[AuditEntry]) -> Head:
    """`append`, returning the new head. All entries of one call share one `at` (the database's
    clock once the lock is held); the rows are hashed while the COPY streams them."""
    if not entries:
        return await audit_log.head(session, GENESIS)
    locked = await audit_log.lock_and_read_head(session, GENESIS)
    chained = _Chain(locked.head.seq, locked.head.entry_hash)
    await audit_log.copy_rows(session, chained.rows(entries, locked.now))
    return Head(chained.seq, chained.prev, locked.now)


class _Chain:
    """Hashes entries onto a head, remembering the last seq and hash it produced.

    The hot loop of a bulk import (10^6 entries in one call): locals only, each repeated
    actor/action/kind encoded once, the JSON encoder built once.
    """

    def __init__(self, seq: int, prev: bytes) -> None:
        self.seq = seq
        self.prev = prev

    def rows(self, entries: Sequence[AuditEntry], at: datetime) -> Iterator[tuple[Any, ...]]:
        sha256, to_json, pack_seq, join = hashlib.sha256, _to_json, _SEQ.pack, b"".join
        head = DOMAIN
        at_bytes = _AT.pack(micros_of(at))
        encoded: dict[tuple[str, str, str], bytes] = {}
        seq, prev = self.seq, self.prev
        for entry in entries:
            seq += 1
            before = None if entry.before is None else sha256(to_json(entry.before)).digest()
            after = None if entry.after is None else sha256(to_json(entry.after)).digest()
            key = (entry.actor, entry.action, entry.object_kind)
            fields = encoded.get(key)
            if fields is None:
                fields = encoded[key] = _str(key[0]) + _str(key[1]) + _str(key[2])
            digest = sha256(
                join(
                    (
                        head,
                        prev,
                        pack_seq(seq),
                        at_bytes,
                        fields,
                        _str(entry.object_id),
                        b"\x00" if before is None else b"\x01" + before,
                        b"\x00" if after is None else b"\x01" + after,
                    )
                )
            ).digest()
            yield (seq, at, key[0], key[1], key[2], entry.object_id, before, after, prev, digest)
            prev = digest
            self.seq, self.prev = seq, prev


def micros_of(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _str(value: str) -> bytes:
    data = value.encode()
    return _LENGTH.pack(len(data)) + data


def _opt(digest: bytes | None) -> bytes:
    return b"\x00" if digest is None else b"\x01" + digest


def _plain(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"audit state values must be JSON-able, not {type(value).__name__}")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_plain)
# The C encoder behind `_ENCODER`, built once: `json.dumps` with options builds one per call,
# which is most of its cost on small dicts (twice as fast on a census import's entries).
_C_ENCODER = (
    c_make_encoder(None, _plain, encode_basestring, None, ":", ",", True, False, False)
    if c_make_encoder is not None
    else None
)


def _to_json(state: Mapping[str, Any]) -> bytes:
    if _C_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(state).encode()
    return "".join(_C_ENCODER(state, 0)).encode()


def canonical_json(state: Mapping[str, Any]) -> bytes:
    """The canonical JSON of a state (see the module's docstring), as UTF-8."""
    return _to_json(state)


def state_hash(state: Mapping[str, Any] | None) -> bytes | None:
    return None if state is None else hashlib.sha256(_to_json(state)).digest()


def entry_hash_of(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_kind: str,
    object_id: str,
    before_hash: bytes | None,
    after_hash: bytes | None,
    prev_hash: bytes,
) -> bytes:
    """The hash of one entry as documented above (what `verify` recomputes)."""
    return hashlib.sha256(
        b"".join(
            (
                DOMAIN,
                prev_hash,
                _SEQ.pack(seq),
                _AT.pack(micros_of(at)),
                _str(actor),
                _str(action),
                _str(object_kind),
                _str(object_id),
                _opt(before_hash),
                _opt(after_hash),
            )
        )
    ).digest()


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pin:
    """A head published earlier (seq and entry_hash): the log must still contain it."""

    seq: int
    entry_hash: bytes


@dataclass(frozen=True)
class Problem:
    seq: int
    # missing | altered | broken_link | pin_mismatch
    kind: str
    detail: str


@dataclass(frozen=True)
class Verification:
    entries: int
    head: Head
    seconds: float
    problem: Problem | None

    @property
    def intact(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "intact": self.intact,
            "entries": self.entries,
            "head_seq": self.head.seq,
            "head_hash": self.head.entry_hash.hex(),
            "seconds": round(self.seconds, 3),
        }
        if self.problem is not None:
            report["first_problem"] = {
                "seq": self.problem.seq,
                "kind": self.problem.kind,
                "detail": self.problem.detail,
            }
        return report


Progress = Callable[[int, float], None]


async def verify(
    rows: AsyncIterable[Sequence[Any]],
    *,
    pins: Sequence[Pin] = (),
    progress: Progress | None = None,
    progress_every: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
) -> Verification:
    """Walk `rows` (every entry in seq order, its columns in `audit_log.COLUMNS` order) and
    recompute the chain; stop at the first problem.

    `progress(entries_checked, seconds)` is called about every `progress_every` seconds. The
    loop is the hashing of `_Chain.rows` again (one fixed-size prefix per row, repeated
    actor/action/kind and `at` encoded once); `entry_hash_of` is its reference.
    """
    started = last_report = clock()
    wanted = {pin.seq: pin.entry_hash for pin in pins}
    expected_seq, prev, last_at = 1, GENESIS, None
    checked = 0
    sha256, pack_seq, join = hashlib.sha256, _SEQ.pack, b"".join
    encoded: dict[tuple[str, str, str], bytes] = {}
    at_bytes = b""

    def done(problem: Problem | None) -> Verification:
        return Verification(checked, Head(expected_seq - 1, prev, last_at), clock() - started, problem)

    async for row in rows:
        seq, at, actor, action, object_kind, object_id, before, after, prev_hash, stored = row
        if seq != expected_seq:
            return done(Problem(expected_seq, "missing", f"entry {expected_seq} is missing (the next stored is {seq})"))
        if at != last_at:
            at_bytes = _AT.pack(micros_of(at))
        key = (actor, action, object_kind)
        fields = encoded.get(key)
        if fields is None:
            fields = encoded[key] = _str(actor) + _str(action) + _str(object_kind)
        recomputed = sha256(
            join(
                (
                    DOMAIN,
                    prev_hash,
                    pack_seq(seq),
                    at_bytes,
                    fields,
                    _str(object_id),
                    b"\x00" if before is None else b"\x01" + before,
                    b"\x00" if after is None else b"\x01" + after,
                )
            )
        ).digest()
        if recomputed != stored:
            return done(Problem(seq, "altered", f"entry {seq}: its entry_hash does not match its fields"))
        if prev_hash != prev:
            return done(
                Problem(
                    seq,
                    "broken_link",
                    f"entry {seq}: its prev_hash is not the entry_hash of entry {seq - 1} "
                    f"(entry {seq - 1} was rewritten with a recomputed hash, or entry {seq} was forged)",
                )
            )
        if seq in wanted and wanted[seq] != stored:
            return done(Problem(seq, "pin_mismatch", f"entry {seq}: its entry_hash is not the pinned hash"))
        checked += 1
        expected_seq, prev, last_at = seq + 1, stored, at
        if progress is not None and checked % 10_000 == 0 and (now := clock()) - last_report >= progress_every:
            last_report = now
            progress(checked, now - started)
    beyond = [seq for seq in wanted if seq >= expected_seq]
    if beyond:
        missing = min(beyond)
        return done(
            Problem(missing, "missing", f"entry {missing} was pinned but the log ends at entry {expected_seq - 1}")
        )
    return done(None)


# --- reading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntryPage:
    items: Sequence[AuditLogEntry]
    more: bool


async def entries_after(session: AsyncSession, *, after_seq: int, limit: int) -> EntryPage:
    """Entries with seq > `after_seq`, in seq order (auditors tail the log with it)."""
    rows = await audit_log.entries_after(session, after_seq, limit + 1)
    return EntryPage(rows[:limit], len(rows) > limit)


async def current_head(session: AsyncSession) -> Head:
    """The last committed entry (seq 0 and the genesis hash for an empty log): what outsiders pin."""
    return await audit_log.head(session, GENESIS)
