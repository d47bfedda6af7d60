"""A transparency log kept in the service's own PostgreSQL database.

Three tables a service adds to its metadata (`define_tables`) and creates in a migration
(`migration_steps.create_transparency_log_v1`):

* `tlog_logs`: one row per log (its origin), with `size` (entries sequenced) and
  `integrated_size` (entries hashed into the tiles). Appending locks the row, so entries of
  concurrent transactions, processes and replicas get consecutive, gap-free indices.
* `tlog_entries`: the entries, by index. `sequence` writes them in the caller's transaction,
  so an entry is durable exactly when what it records is (a ballot and its entry commit
  together, or neither).
* `tlog_tiles`: the hash tiles of the C2SP layout, one row per tile holding its hashes so far.
  Hashes are append-only, so a partial tile of width W is the first W hashes of its row, and
  any tree size a checkpoint names stays servable.

`integrate` (one integrator at a time per log, by an advisory lock) hashes new entries into the
tiles; `tree_head` computes the root of any integrated size from the tiles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import Checkpoint, parse_checkpoint
from comuna_platform.tlog.cosignature import cosignature_time
from comuna_platform.tlog.merkle import HASH_SIZE, Position
from comuna_platform.tlog.note import Signer
from comuna_platform.tlog.tiles import TILE_WIDTH, Tile


@dataclass(frozen=True, slots=True)
class LogTables:
    logs: Table
    entries: Table
    tiles: Table
    checkpoints: Table
    cosignatures: Table


def define_tables(metadata: MetaData) -> LogTables:
    logs = Table(
        "tlog_logs",
        metadata,
        Column("origin", String(200), primary_key=True),
        Column("size", BigInteger, nullable=False, server_default="0"),
        Column("integrated_size", BigInteger, nullable=False, server_default="0"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        CheckConstraint("integrated_size >= 0 AND integrated_size <= size", name="integrated_within_size"),
    )
    entries = Table(
        "tlog_entries",
        metadata,
        Column("origin", String(200), nullable=False),
        Column("idx", BigInteger, nullable=False),
        Column("data", LargeBinary, nullable=False),
        PrimaryKeyConstraint("origin", "idx", name="pk_tlog_entries"),
        CheckConstraint(f"octet_length(data) <= {tiles.MAX_ENTRY_SIZE}", name="entry_fits_a_bundle"),
    )
    tile_rows = Table(
        "tlog_tiles",
        metadata,
        Column("origin", String(200), nullable=False),
        Column("level", SmallInteger, nullable=False),
        Column("idx", BigInteger, nullable=False),
        Column("hashes", LargeBinary, nullable=False),
        PrimaryKeyConstraint("origin", "level", "idx", name="pk_tlog_tiles"),
        CheckConstraint(
            f"octet_length(hashes) % {HASH_SIZE} = 0 AND octet_length(hashes) <= {TILE_WIDTH * HASH_SIZE}",
            name="whole_hashes_within_a_tile",
        ),
    )
    checkpoints = Table(
        "tlog_checkpoints",
        metadata,
        Column("origin", String(200), nullable=False),
        Column("size", BigInteger, nullable=False),
        # The whole signed note, as served at `<prefix>/checkpoint`.
        Column("note", Text, nullable=False),
        Column("signed_at", DateTime(timezone=True), nullable=False),
        # One checkpoint per size: the log never signs two roots for one size (a fork).
        PrimaryKeyConstraint("origin", "size", name="pk_tlog_checkpoints"),
    )
    cosignatures = Table(
        "tlog_cosignatures",
        metadata,
        Column("origin", String(200), nullable=False),
        Column("size", BigInteger, nullable=False),
        # The witness's key (C2SP key id, hex) and its signature line, as served on the checkpoint.
        Column("key_id", String(8), nullable=False),
        Column("line", Text, nullable=False),
        Column("cosigned_at", BigInteger, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False),
        # One cosignature per witness and checkpoint: the latest timestamp a witness sent.
        PrimaryKeyConstraint("origin", "size", "key_id", name="pk_tlog_cosignatures"),
    )
    return LogTables(logs, entries, tile_rows, checkpoints, cosignatures)


class CosignatureRefused(ValueError):
    """A cosignature this log does not keep; `code` says why."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


# Seeds the advisory-lock key of a log's integrator (hash of the origin): a fixed, arbitrary value.
_LOCK_SEED = 6962


class TransparencyLog:
    """One log (by origin) over the service's tables."""

    def __init__(self, tables: LogTables, origin: str) -> None:
        self.tables = tables
        self.origin = origin

    async def sequence(self, conn: AsyncConnection, entries: Sequence[bytes]) -> int:
        """Append `entries` in the caller's transaction; the index of the first. Creates the log
        on first use, and locks its row until that transaction ends (appenders queue there:
        indices never have gaps)."""
        if not entries:
            raise ValueError("nothing to sequence")
        for entry in entries:
            if len(entry) > tiles.MAX_ENTRY_SIZE:
                raise ValueError(f"a log entry is at most {tiles.MAX_ENTRY_SIZE} bytes")
        logs = self.tables.logs
        statement = insert(logs).values(origin=self.origin, size=len(entries))
        end = (
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[logs.c.origin], set_={"size": logs.c.size + len(entries)}
                ).returning(logs.c.size)
            )
        ).scalar_one()
        start = int(end) - len(entries)
        await conn.execute(
            insert(self.tables.entries),
            [{"origin": self.origin, "idx": start + i, "data": entry} for i, entry in enumerate(entries)],
        )
        return start

    async def sizes(self, conn: AsyncConnection) -> tuple[int, int]:
        """(sequenced, integrated) entry counts; (0, 0) for a log nothing was appended to."""
        logs = self.tables.logs
        row = (
            await conn.execute(select(logs.c.size, logs.c.integrated_size).where(logs.c.origin == self.origin))
        ).one_or_none()
        return (0, 0) if row is None else (int(row.size), int(row.integrated_size))

    async def integrate(self, conn: AsyncConnection, *, limit: int = 65_536) -> int:
        """Hash up to `limit` sequenced entries into the tiles; the integrated size after.

        One integrator at a time per log (a transaction-scoped advisory lock: a second one waits,
        then finds nothing to do); appenders are not held up: the log row is only updated at the
        end, as briefly as an append does."""
        await conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(self.origin, _LOCK_SEED))))
        logs = self.tables.logs
        row = (
            await conn.execute(select(logs.c.size, logs.c.integrated_size).where(logs.c.origin == self.origin))
        ).one_or_none()
        if row is None:
            return 0
        start, end = int(row.integrated_size), min(int(row.size), int(row.integrated_size) + limit)
        if start == end:
            return start
        entries = self.tables.entries
        data = (
            await conn.execute(
                select(entries.c.data)
                .where(entries.c.origin == self.origin, entries.c.idx >= start, entries.c.idx < end)
                .order_by(entries.c.idx)
            )
        ).scalars()
        new_leaves = [merkle.leaf_hash(entry) for entry in data]
        if len(new_leaves) != end - start:
            raise RuntimeError(f"log {self.origin}: entries {start}..{end} are not all there")
        await self._append_hashes(conn, 0, start, new_leaves)
        integrated = update(logs).where(logs.c.origin == self.origin, logs.c.integrated_size == start)
        await conn.execute(integrated.values(integrated_size=end))
        return end

    async def _append_hashes(self, conn: AsyncConnection, level: int, first: int, hashes: list[bytes]) -> None:
        """Append tile-level hashes `first`… at tile level `level`; each tile they fill adds its
        root to the level above."""
        tile_rows = self.tables.tiles
        first_tile, last_tile = first // TILE_WIDTH, (first + len(hashes) - 1) // TILE_WIDTH
        existing = {
            int(r.idx): bytes(r.hashes)
            for r in await conn.execute(
                select(tile_rows.c.idx, tile_rows.c.hashes).where(
                    tile_rows.c.origin == self.origin,
                    tile_rows.c.level == level,
                    tile_rows.c.idx.in_([first_tile, last_tile]),
                )
            )
        }
        completed: list[bytes] = []
        first_completed: int | None = None
        values = []
        position = first
        remaining = hashes
        for n in range(first_tile, last_tile + 1):
            have = existing.get(n, b"")
            if len(have) != (position - n * TILE_WIDTH) * HASH_SIZE:
                raise RuntimeError(f"log {self.origin}: tile {level}/{n} is not where integration left it")
            take = min(TILE_WIDTH - (position - n * TILE_WIDTH), len(remaining))
            data = have + b"".join(remaining[:take])
            remaining, position = remaining[take:], position + take
            values.append({"origin": self.origin, "level": level, "idx": n, "hashes": data})
            if len(data) == TILE_WIDTH * HASH_SIZE:
                first_completed = n if first_completed is None else first_completed
                completed.append(tiles.tile_root(data))
        statement = insert(tile_rows)
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=[tile_rows.c.origin, tile_rows.c.level, tile_rows.c.idx],
                set_={"hashes": statement.excluded.hashes},
            ),
            values,
        )
        if first_completed is not None:
            # A full tile's root is the hash at the next tile level, at the tile's index.
            await self._append_hashes(conn, level + 1, first_completed, completed)

    async def read_tile(self, conn: AsyncConnection, tile: Tile) -> bytes | None:
        """The tile's bytes, None while the log has fewer hashes there than `tile.width`. Hashes
        are append-only: any width up to what is integrated is a valid (partial) tile."""
        if tile.level is None:
            raise ValueError("entry bundles are read with read_bundle")
        tile_rows = self.tables.tiles
        data = (
            await conn.execute(
                select(tile_rows.c.hashes).where(
                    tile_rows.c.origin == self.origin, tile_rows.c.level == tile.level, tile_rows.c.idx == tile.index
                )
            )
        ).scalar_one_or_none()
        if data is None or len(data) < tile.width * HASH_SIZE:
            return None
        return bytes(data[: tile.width * HASH_SIZE])

    async def read_bundle(self, conn: AsyncConnection, tile: Tile, size: int) -> bytes | None:
        """The entry bundle `tile` (level None), if its entries are among the first `size`
        (integrated: provable) ones; None otherwise."""
        if tile.level is not None:
            raise ValueError("hash tiles are read with read_tile")
        start, end = tile.index * TILE_WIDTH, tile.index * TILE_WIDTH + tile.width
        if end > size:
            return None
        entries = self.tables.entries
        rows = (
            await conn.execute(
                select(entries.c.data)
                .where(entries.c.origin == self.origin, entries.c.idx >= start, entries.c.idx < end)
                .order_by(entries.c.idx)
            )
        ).scalars()
        return tiles.encode_bundle(bytes(data) for data in rows)

    async def stored_hashes(
        self, conn: AsyncConnection, positions: Sequence[Position], size: int
    ) -> dict[Position, bytes]:
        """The tree hashes at `positions`, from the tiles of the tree of `size`."""
        needed = {tiles.tile_holding(p, size) for p in positions}
        tile_rows = self.tables.tiles
        rows = {
            (int(r.level), int(r.idx)): bytes(r.hashes)
            for r in await conn.execute(
                select(tile_rows.c.level, tile_rows.c.idx, tile_rows.c.hashes).where(
                    tile_rows.c.origin == self.origin,
                    tuple_(tile_rows.c.level, tile_rows.c.idx).in_([(t.level, t.index) for t in needed]),
                )
            )
        }
        found: dict[Position, bytes] = {}
        for position in positions:
            tile = tiles.tile_holding(position, size)
            assert tile.level is not None
            data = rows[(tile.level, tile.index)][: tile.width * HASH_SIZE]
            found[position] = tiles.hash_from_tile(tile, data, position)
        return found

    async def tree_head(self, conn: AsyncConnection, size: int) -> bytes:
        """The root hash of the first `size` entries (which must be integrated)."""
        positions = merkle.root_positions(size)
        hashes = await self.stored_hashes(conn, positions, size) if positions else {}
        return merkle.fold([hashes[p] for p in positions])

    async def inclusion_proof(self, conn: AsyncConnection, index: int, size: int) -> list[bytes]:
        plan = merkle.ranges_positions(merkle.inclusion_ranges(index, size))
        hashes = await self.stored_hashes(conn, [p for r in plan for p in r], size)
        return merkle.hashes_of_ranges(plan, hashes)

    async def consistency_proof(self, conn: AsyncConnection, old_size: int, size: int) -> list[bytes]:
        plan = merkle.ranges_positions(merkle.consistency_ranges(old_size, size))
        hashes = await self.stored_hashes(conn, [p for r in plan for p in r], size)
        return merkle.hashes_of_ranges(plan, hashes)

    async def checkpoint(
        self, conn: AsyncConnection, signers: Sequence[Signer], now: datetime, extensions: Sequence[str] = ()
    ) -> str:
        """Integrate what is sequenced, then the signed checkpoint of the integrated size: the
        stored one if this size was signed before (never two roots for one size), else a new
        one signed by every key of `signers` (two during a key rotation's overlap)."""
        if not signers:
            raise ValueError("a checkpoint needs at least one signing key")
        size = await self.integrate(conn)
        checkpoints = self.tables.checkpoints
        stored = (
            await conn.execute(
                select(checkpoints.c.note).where(checkpoints.c.origin == self.origin, checkpoints.c.size == size)
            )
        ).scalar_one_or_none()
        if stored is not None:
            return str(stored)
        body = Checkpoint(self.origin, size, await self.tree_head(conn, size), tuple(extensions)).text
        signed = note.format_note(body, [note.sign_note(body, signer) for signer in signers])
        await conn.execute(insert(checkpoints).values(origin=self.origin, size=size, note=signed, signed_at=now))
        return signed

    async def add_cosignature(
        self, conn: AsyncConnection, signed: str, witnesses: Sequence[note.Verifier], now: datetime
    ) -> int:
        """Keep a witness's cosignature of one of this log's checkpoints: `signed` is the
        checkpoint body with the witness's `cosignature/v1` line(s). The size it cosigned;
        `CosignatureRefused` if the body is no checkpoint this log signed, or no line is a valid
        cosignature by one of `witnesses`."""
        try:
            body, signatures = note.split_note(signed)
            size = parse_checkpoint(body).size
        except (note.NoteError, ValueError) as exc:
            raise CosignatureRefused(f"not a signed checkpoint: {exc}", code="cosignature_malformed") from exc
        checkpoints = self.tables.checkpoints
        stored = (
            await conn.execute(
                select(checkpoints.c.note).where(checkpoints.c.origin == self.origin, checkpoints.c.size == size)
            )
        ).scalar_one_or_none()
        if stored is None or note.split_note(str(stored))[0] != body:
            raise CosignatureRefused("not a checkpoint this log signed", code="checkpoint_unknown")
        valid: list[tuple[note.Signature, int]] = []
        for signature in signatures:
            for witness in witnesses:
                if witness.name == signature.name and witness.key_id == signature.key_id:
                    try:
                        valid.append((signature, cosignature_time(body, signature, witness)))
                    except note.NoteError as exc:
                        raise CosignatureRefused(str(exc), code="cosignature_invalid") from exc
        if not valid:
            raise CosignatureRefused("no cosignature by a witness this log knows", code="witness_unknown")
        cosignatures = self.tables.cosignatures
        for signature, timestamp in valid:
            statement = insert(cosignatures).values(
                origin=self.origin,
                size=size,
                key_id=signature.key_id.hex(),
                line=signature.line,
                cosigned_at=timestamp,
                received_at=now,
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[cosignatures.c.origin, cosignatures.c.size, cosignatures.c.key_id],
                    set_={"line": statement.excluded.line, "cosigned_at": statement.excluded.cosigned_at},
                    where=cosignatures.c.cosigned_at < statement.excluded.cosigned_at,
                )
            )
        return size

    async def latest_checkpoint(self, conn: AsyncConnection) -> str | None:
        """The largest signed checkpoint, with the witnesses' cosignatures kept for it."""
        checkpoints, cosignatures = self.tables.checkpoints, self.tables.cosignatures
        latest = (
            await conn.execute(
                select(checkpoints.c.note, checkpoints.c.size)
                .where(checkpoints.c.origin == self.origin)
                .order_by(checkpoints.c.size.desc())
                .limit(1)
            )
        ).one_or_none()
        if latest is None:
            return None
        lines = (
            await conn.execute(
                select(cosignatures.c.line)
                .where(cosignatures.c.origin == self.origin, cosignatures.c.size == latest.size)
                .order_by(cosignatures.c.key_id)
            )
        ).scalars()
        return str(latest.note) + "".join(lines)
