"""`comuna-verify consultation`: download a consultation's whole record and check it.

Entries are streamed bundle by bundle (a few bundles in flight, fetched by a small thread pool)
and reduced to counters, so memory stays bounded whatever the number of ballots. From the
entries alone the tree is rebuilt: each leaf hash must be the level-0 tile's hash, each upper
tile's hash the root of the full tile below, and the root the signed checkpoint's.
"""

from __future__ import annotations

import base64
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_verify import merkle, record
from comuna_verify.audit import Ledger
from comuna_verify.bulletins import check_bulletins
from comuna_verify.certified import compare_results
from comuna_verify.checkpoint import Cosigner, SignedCheckpoint
from comuna_verify.http import Client, UsageError
from comuna_verify.notes import COSIGNATURE_V1
from comuna_verify.report import Progress, Report
from comuna_verify.tiles import (
    HEIGHT,
    WIDTH,
    EntriesNotPublic,
    TileError,
    TileReader,
    fold_tile,
    split_hashes,
    tile_path,
)

IN_FLIGHT = 4  # bundles fetched ahead (at most 16 MiB each): bounded memory, a busy enough connection
SHOWN_PER_TILE = 3  # hash mismatches listed per tile before "and N more"


@dataclass(frozen=True, slots=True)
class Options:
    base: str
    state: Path | None
    log_keys: Sequence[str]
    witness_keys: Sequence[str]


class EntriesClosed(UsageError):
    """The record's entries are not public yet: exit 2, after what could be checked."""


def _cosigner_state(cosigner: Cosigner) -> str:
    if cosigner.verified is None:
        return "unverified: no --witness-key for it"
    return f"verified, time {cosigner.timestamp}" if cosigner.verified else "INVALID"


def cosigner_rows(signed: SignedCheckpoint) -> tuple[str, list[dict[str, Any]]]:
    listed = [
        {"name": c.name, "key_id": c.key_id, "verified": c.verified, "time": c.timestamp} for c in signed.cosigners
    ]
    shown = ", ".join(f"{c.name} ({_cosigner_state(c)})" for c in signed.cosigners)
    return shown or "none", listed


def _fetch_pair(reader: TileReader, n: int, width: int) -> tuple[list[bytes], bytes | TileError]:
    entries = reader.bundle(n, width)
    try:
        tile: bytes | TileError = reader.hash_tile(0, n, width)
    except TileError as exc:
        tile = exc
    return entries, tile


def bundles(reader: TileReader, size: int) -> Iterator[tuple[int, list[bytes], bytes | TileError]]:
    """(n, entries, level-0 tile or why not) for every bundle of a tree of `size`, in order."""
    count = (size + WIDTH - 1) // WIDTH
    with ThreadPoolExecutor(max_workers=4) as pool:
        pending: deque[tuple[int, Future[tuple[list[bytes], bytes | TileError]]]] = deque()
        submitted = 0
        try:
            while submitted < count or pending:
                while submitted < count and len(pending) < IN_FLIGHT:
                    width = min(WIDTH, size - submitted * WIDTH)
                    pending.append((submitted, pool.submit(_fetch_pair, reader, submitted, width)))
                    submitted += 1
                n, future = pending.popleft()
                entries, tile = future.result()
                yield n, entries, tile
        finally:
            for _, future in pending:
                future.cancel()


class TreeCheck:
    """Rebuilds the tree from the entries and compares it with the served tiles."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.builder = merkle.TreeBuilder()
        self.upper: list[bytes] = []  # roots of the full level-0 tiles: the level-1 tiles' hashes
        self.problems: list[str] = []

    def add_tile(self, n: int, leaves: list[bytes], tile: bytes | TileError) -> None:
        for leaf in leaves:
            self.builder.add(leaf)
        if len(leaves) == WIDTH:
            self.upper.append(fold_tile(list(leaves)))
        if isinstance(tile, TileError):
            self.problems.append(str(tile))
            return
        self._compare(tile_path(0, n, len(leaves))[5:], n * WIDTH, leaves, split_hashes(tile), "the hash of entry")

    def _compare(self, path: str, first: int, expected: list[bytes], served: list[bytes], what: str) -> None:
        wrong = [first + i for i, (a, b) in enumerate(zip(expected, served, strict=True)) if a != b]
        for index in wrong[:SHOWN_PER_TILE]:
            self.problems.append(f"tile {path}: hash at {index} is not {what} {index}")
        if len(wrong) > SHOWN_PER_TILE:
            self.problems.append(f"tile {path}: and {len(wrong) - SHOWN_PER_TILE} more hashes differ")

    def check_upper(self, reader: TileReader) -> None:
        """Upper tiles hold the roots of the full tiles below; computed ones are the truth."""
        computed, level = self.upper, 1
        while self.size >> (HEIGHT * level):
            hashes_here = self.size >> (HEIGHT * level)
            above: list[bytes] = []
            for n in range((hashes_here + WIDTH - 1) // WIDTH):
                expected = computed[n * WIDTH : (n + 1) * WIDTH]
                if len(expected) == WIDTH:
                    above.append(fold_tile(list(expected)))
                try:
                    served = reader.hash_tile(level, n, len(expected))
                except TileError as exc:
                    self.problems.append(str(exc))
                    continue
                what = f"the root of level-{level - 1} tile"
                self._compare(tile_path(level, n, len(expected))[5:], n * WIDTH, expected, split_hashes(served), what)
            computed, level = above, level + 1

    def check_root(self, root: bytes) -> None:
        if self.builder.root() != root:
            self.problems.append(
                f"root: the {self.size} entries give root {_b64(self.builder.root())}, the checkpoint says {_b64(root)}"
            )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def verify(options: Options, progress: bool = True) -> Report:
    client = Client(options.base)
    report = Report()
    consultation = client.get_ok("").json()
    if not isinstance(consultation, dict) or "id" not in consultation:
        raise UsageError(f"{client.base} is not a consultation (no id); give the consultation's base URL")
    cid, code = str(consultation["id"]), str(consultation.get("code", ""))
    keys, origin, key_problems = record.log_keys(client, options.log_keys)
    report.mismatches.extend(key_problems)
    witnesses = record.parse_keys(options.witness_keys, "--witness-key", COSIGNATURE_V1)
    signed = record.fetch_checkpoint(client, keys, witnesses, origin)
    report.mismatches.extend(signed.problems)
    checkpoint = signed.checkpoint
    reader = TileReader(client)
    if options.state is not None:
        report.mismatches.extend(record.check_state(options.state, signed, reader))

    cosigners, listed = cosigner_rows(signed)
    report.row("consultation", f"{code} ({cid})")
    report.row("log", f"{checkpoint.origin}, size {checkpoint.size}, root {checkpoint.root_b64}")
    report.row("signed by", ", ".join(signed.signers) or "NOBODY")
    report.row("cosigned by", cosigners)
    report.data.update(
        consultation={"id": cid, "code": code},
        log={"origin": checkpoint.origin, "size": checkpoint.size, "root": checkpoint.root_b64},
        signers=signed.signers,
        cosigners=listed,
    )

    ledger = Ledger(cid)
    tree = TreeCheck(checkpoint.size)
    meter = Progress("entries", checkpoint.size, stream=sys.stderr) if progress else None
    try:
        for n, bundle, tile in bundles(reader, checkpoint.size):
            tree.add_tile(n, [merkle.leaf_hash(e) for e in bundle], tile)
            for i, entry in enumerate(bundle):
                ledger.add(n * WIDTH + i, entry)
            if meter:
                meter.update(n * WIDTH + len(bundle))
    except EntriesNotPublic as exc:
        if report.mismatches:  # a bad checkpoint or a fork is worth exit 1 even before the close
            report.mismatches.append(f"entries: not public yet ({exc}); the rest was not checked")
            return report
        raise EntriesClosed(
            "the record's entries are not public until voting has closed everywhere; run again after the close"
        ) from exc
    except TileError as exc:
        report.mismatches.extend([*tree.problems, f"entries: {exc}; the tree and the counts were not checked"])
        return report
    tree.check_root(checkpoint.root)
    tree.check_upper(reader)
    report.mismatches.extend(tree.problems)
    report.mismatches.extend(ledger.finish())
    report.mismatches.extend(check_bulletins(client, ledger, keys, progress=progress))
    results = client.get("results")
    if results.status == 200:
        report.mismatches.extend(compare_results(results.json(), ledger))
    else:
        report.mismatches.append(f"results: BASE/results not served ({results.status}: {results.problem()})")

    kinds = ", ".join(f"{kind.split('/')[0].removeprefix('comuna-')} {n}" for kind, n in sorted(ledger.kinds.items()))
    report.row("entries", f"{checkpoint.size} ({kinds or 'none'})")
    report.row("communes verified", len(ledger.results))
    report.row("ballots counted", ledger.ballots_counted)
    report.data.update(entries=dict(ledger.kinds), communes=len(ledger.results), ballots=ledger.ballots_counted)
    return report
