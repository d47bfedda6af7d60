"""Bulk import of the census: millions of rows, all or nothing, memory flat in the file's size.

The file streams through in chunks: worker processes check and hash each chunk (key ring
layers, `census_prepare`), the main process asks the census which of its people it already
holds with a roll base, the workers compute the roll base point of the others only, and the
main process COPYs the results into a staging table of the transaction; then the checks that
need the whole file or the database (the same person twice, unknown councils, a move that would
rewrite past residence) and the merge are set-based SQL (`storage/census_import`). Any bad
line and nothing is written; every bad line is listed (up to `MAX_LISTED_ERRORS`), by line
number, never with its document.

Upsert by document: a known person in another council moves from `valid_from` (the open
residence closes that day, history kept); a known person whose birth date or status differ is
updated; the same file twice changes nothing and says so. One audit entry per created
or changed record, in the same transaction.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.domain import audit
from comuna_identity.domain.census import Census
from comuna_identity.domain.census_prepare import (
    Prepared,
    RollBases,
    init_worker,
    prepare,
    prepare_in_worker,
    roll_bases,
    roll_bases_in_worker,
)
from comuna_identity.storage import census as census_storage
from comuna_identity.storage import census_import as staging
from comuna_platform.bulk import MAX_LISTED_ERRORS, BulkRow, RowErrors
from comuna_platform.documents import Document

CHUNK_ROWS = 5000
# Below this many rows an import is hashed in the calling process (a pool costs ~0.3 s to start).
INLINE_ROWS = 2000
AUDIT_CHUNK = 10_000

Row = BulkRow


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    moved: int = 0
    updated: int = 0
    # Roll base points computed: one per person new to the census, none for the people it holds.
    roll_bases: int = 0
    # Wall seconds per phase; parse/points are CPU seconds summed over the workers.
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return self.created + self.moved + self.updated

    @property
    def unchanged(self) -> int:
        return self.rows - self.changes

    def summary(self) -> str:
        if not self.changes:
            return f"{self.rows} rows, 0 changes: the census already holds this file"
        return (
            f"{self.rows} rows, {self.changes} changes: {self.created} created, {self.moved} moved, "
            f"{self.updated} updated, {self.unchanged} unchanged"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "changes": self.changes,
            "created": self.created,
            "moved": self.moved,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "roll_bases_computed": self.roll_bases,
            "summary": self.summary(),
        }


class Preparer:
    """Runs `census_prepare` over chunks: in a process pool (one worker per core) for big files."""

    def __init__(self, census: Census, workers: int | None = None, *, start_method: str = "forkserver") -> None:
        """`start_method`: "fork" only from a process without threads (the command line): its
        workers start at once with every module already imported. A server (gRPC, uvicorn
        threads) uses "forkserver", whose server imports the hashing module once."""
        self._census = census
        self._workers = workers or os.cpu_count() or 1
        self._start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            ring = self._census.ring
            context = multiprocessing.get_context(self._start_method)
            if self._start_method == "forkserver":
                context.set_forkserver_preload([prepare.__module__])
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=context,
                initializer=init_worker,
                initargs=(dict(ring.keys), ring.current, self._census.roll_secret),
            )
        return self._pool

    def submit(
        self, rows: list[Row], generations: Sequence[int], keep_older: bool, today: date, *, pooled: bool
    ) -> asyncio.Future[Prepared]:
        loop = asyncio.get_running_loop()
        if not pooled:
            future: asyncio.Future[Prepared] = loop.create_future()
            future.set_result(prepare(self._census, rows, generations, keep_older, today))
            return future
        pool_future: Future[Prepared] = self._ensure_pool().submit(
            prepare_in_worker, rows, list(generations), keep_older, today
        )
        return asyncio.wrap_future(pool_future)

    def submit_roll_bases(self, documents: list[Document], *, pooled: bool) -> asyncio.Future[RollBases]:
        if not pooled or not documents:
            future: asyncio.Future[RollBases] = asyncio.get_running_loop().create_future()
            future.set_result(roll_bases(self._census, documents))
            return future
        return asyncio.wrap_future(self._ensure_pool().submit(roll_bases_in_worker, documents))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


async def _chunks(rows: AsyncIterable[Row], size: int) -> Any:
    chunk: list[Row] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def import_residents(
    session: AsyncSession,
    census: Census,
    preparer: Preparer,
    rows: AsyncIterable[Row],
    *,
    actor: str,
    today: date,
    authorise: Callable[[list[str]], Awaitable[None]] | None = None,
    authorise_moves_from: Callable[[list[str]], Awaitable[None]] | None = None,
) -> ImportReport:
    """Import `rows` (line number, fields) in the session's transaction; raises `import_invalid`.

    A caller with a scope passes both checks: `authorise` gets the councils of the file,
    `authorise_moves_from` the councils the file moves known people out of (it must refuse
    without naming them: that would say where someone lives). The command line passes neither."""
    report = ImportReport()
    seconds = report.seconds
    for phase in ("parse", "lookup", "points", "copy", "validate", "merge", "audit"):
        seconds[phase] = 0.0
    started = time.perf_counter()
    generations = await census.generations(session, writing=True)
    keep_older = False
    for older in generations.ids[:-1]:
        keep_older = keep_older or await census_storage.generation_has_residents(session, older)
    await staging.create_staging(session)

    errors = RowErrors()
    # Two stages in flight, so that the pool always has work: chunks being hashed, then chunks
    # whose new people's roll bases are being computed.
    hashing: deque[asyncio.Future[Prepared]] = deque()
    pointing: deque[tuple[Prepared, list[int], asyncio.Future[RollBases]]] = deque()
    pooled = False
    first = True

    async def hashed_one() -> None:
        prepared = await hashing.popleft()
        seconds["parse"] += prepared.parse_seconds
        errors.extend(prepared.errors)
        lookup_started = time.perf_counter()
        held = await staging.with_roll_base(session, generations.newest, [row[2] for row in prepared.rows])
        seconds["lookup"] += time.perf_counter() - lookup_started
        needed = [i for i, row in enumerate(prepared.rows) if row[2] not in held]
        documents = [prepared.documents[i] for i in needed]
        prepared.documents = []
        report.roll_bases += len(documents)
        pointing.append((prepared, needed, preparer.submit_roll_bases(documents, pooled=pooled)))

    async def staged_one() -> None:
        prepared, needed, future = pointing.popleft()
        computed = await future
        seconds["points"] += computed.seconds
        copy_started = time.perf_counter()
        # Good rows are staged even once errors are found: the whole-file checks list theirs too.
        await staging.copy_rows(session, prepared.with_roll_bases(needed, computed.bases))
        await staging.copy_older(session, prepared.older)
        seconds["copy"] += time.perf_counter() - copy_started

    depth = preparer.workers * 2
    async for chunk in _chunks(rows, CHUNK_ROWS):
        if first:
            # A first chunk that is also the last one stays in this process.
            pooled = len(chunk) >= CHUNK_ROWS and len(chunk) >= INLINE_ROWS
            first = False
        hashing.append(preparer.submit(chunk, generations.ids, keep_older, today, pooled=pooled))
        while len(hashing) > (depth if pooled else 0):
            await hashed_one()
        while len(pointing) > (depth if pooled else 0):
            await staged_one()
    while hashing:
        await hashed_one()
    while pointing:
        await staged_one()

    validate_started = time.perf_counter()
    # Only as many as can still be listed are fetched; the rest are counted.
    duplicates = await staging.duplicates(session, MAX_LISTED_ERRORS)
    for line, first_line in duplicates.lines:
        errors.add(line, "duplicate_resident", f"the same person as line {first_line}", "document_number")
    errors.count += duplicates.count - len(duplicates.lines)
    await staging.resolve(session, with_older=keep_older)
    if authorise_moves_from is not None:
        # Before any line is listed: a refused move of someone out of scope would tell when they
        # moved to where they live, and the counts that they are in the census at all.
        await authorise_moves_from(await staging.moved_from_council_codes(session))
    refused, refused_total = await staging.refused(session, MAX_LISTED_ERRORS)
    for line, code in refused:
        if code == "council_not_found":
            errors.add(line, code, "no communal council with this code", "council_code")
        else:
            errors.add(line, code, "a move must start after the current residence began", "valid_from")
    errors.count += refused_total - len(refused)
    seconds["validate"] = time.perf_counter() - validate_started
    errors.raise_if_any()
    if authorise is not None:
        await authorise(await staging.council_codes(session))

    merge_started = time.perf_counter()
    counts = await staging.counts(session)
    report.rows, report.created, report.moved, report.updated = (
        counts.rows,
        counts.created,
        counts.moved,
        counts.updated,
    )
    await staging.merge(session)
    seconds["merge"] = time.perf_counter() - merge_started

    audit_started = time.perf_counter()
    async for changes in staging.changes(session, AUDIT_CHUNK):
        await audit.append(
            session,
            [
                audit.AuditEntry(
                    actor,
                    "resident.registered" if c.is_new else "resident.moved" if c.moves else "resident.updated",
                    "resident",
                    c.resident_id,
                    c.before,
                    c.after,
                )
                for c in changes
            ],
        )
    seconds["audit"] = time.perf_counter() - audit_started
    seconds["total"] = time.perf_counter() - started
    return report
