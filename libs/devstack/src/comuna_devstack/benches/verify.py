"""Benchmark: `comuna-verify` on a national consultation's public record (issue 9's 6,500,000
ballots across 5,336 communes), served as a static mirror would serve it.

1. generate: the record a certified consultation leaves, in the service's own encodings
   (`domain.record`): ballot batches of `--batch` ballots from random communes with their
   receipts' commitments and tallies, then per commune its online bulletin (signed) and its
   `comuna-result/v1` entry; hash tiles, entry bundles, a signed checkpoint, the certified
   results and the bulletin list, written to files (streamed: memory stays flat).
2. serve: a threaded HTTP server on 127.0.0.1 maps the record's public URLs onto those files
   (a CDN or `python -m http.server` would do the same).
3. verify: `comuna-verify consultation BASE --json` in a process of its own; its wall time,
   its peak RSS (the kernel's high-water mark for the child) and its verdict.
"""

from __future__ import annotations

import json
import random
import resource
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from comuna_consultations.domain.ranking import DEFAULT_TIE_BREAK, Tally, rank_candidates, winner_of
from comuna_consultations.domain.record import (
    DEFAULT_RECORD_ORIGIN,
    Bulletin,
    Choices,
    RankedLine,
    ResultEntry,
    ballots_entry,
    new_receipt,
)
from comuna_consultations.storage.record import log_origin
from comuna_devstack.locations import cache_root, owned_temp_dir
from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import Checkpoint

CANDIDATES_PER_COMMUNE = 3
HEIGHT = 8  # C2SP tiles: 256 hashes wide


def _notice(message: str) -> None:
    print(f"comuna-dev: bench verify: {message}", file=sys.stderr, flush=True)


class RecordWriter:
    """Appends entries: bundles written as they fill, leaf hashes kept (32 bytes per entry)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.leaves: list[bytes] = []
        self.bytes = 0
        self._bundle: list[bytes] = []

    def append(self, entry: bytes) -> int:
        self.leaves.append(merkle.leaf_hash(entry))
        self._bundle.append(entry)
        self.bytes += len(entry)
        if len(self._bundle) == tiles.TILE_WIDTH:
            self._flush()
        return len(self.leaves) - 1

    def _flush(self) -> None:
        if not self._bundle:
            return
        index = (len(self.leaves) - 1) // tiles.TILE_WIDTH
        tile = tiles.Tile(None, index, len(self._bundle))
        _write(self.root / tile.path, tiles.encode_bundle(self._bundle))
        self._bundle = []

    def finish(self) -> bytes:
        """Write the last bundle and every hash tile; the tree's root."""
        self._flush()
        levels = [self.leaves]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([merkle.node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        size = len(self.leaves)
        for tile in tiles.tiles_for_size(size):
            if tile.level is None:
                continue
            nodes = levels[HEIGHT * tile.level] if HEIGHT * tile.level < len(levels) else []
            _write(self.root / tile.path, b"".join(nodes[p] for p in tile.positions))
        return merkle.fold([levels[level][index] for level, index in merkle.root_positions(size)])


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def generate(root: Path, ballots: int, communes: int, batch: int, seed: int) -> dict[str, Any]:
    """The record of a certified consultation of `ballots` across `communes`; what a verifier
    must find (per-commune totals) is written as the certified results."""
    rng = random.Random(seed)
    cid = uuid.UUID(int=rng.getrandbits(128), version=4)
    origin = log_origin(DEFAULT_RECORD_ORIGIN, cid)
    signer = note.Signer.generate(DEFAULT_RECORD_ORIGIN)
    commune_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(communes)]
    candidates = {
        c: [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(CANDIDATES_PER_COMMUNE)] for c in commune_ids
    }
    counted: dict[uuid.UUID, dict[uuid.UUID | None, int]] = {c: {} for c in commune_ids}
    writer = RecordWriter(root / "record")
    started, done = time.monotonic(), 0
    while done < ballots:
        size = min(batch, ballots - done)
        receipts: list[tuple[uuid.UUID, str]] = []
        choices: list[tuple[uuid.UUID, uuid.UUID | None]] = []
        for _ in range(size):
            commune = commune_ids[rng.randrange(communes)]
            # One in twenty blank.
            choice = None if rng.random() < 0.05 else candidates[commune][rng.randrange(CANDIDATES_PER_COMMUNE)]
            receipts.append((commune, new_receipt()))
            choices.append((commune, choice))
            counted[commune][choice] = counted[commune].get(choice, 0) + 1
        for encoded in ballots_entry(cid, receipts, choices).encode():
            writer.append(encoded.data)
        done += size
        if done % (batch * 5000) < batch:
            _notice(f"generated {done:,}/{ballots:,} ballots ({time.monotonic() - started:.0f} s)")

    registered = datetime(2026, 11, 1, tzinfo=UTC)
    seed_bytes = secrets.token_bytes(32)
    results: list[dict[str, Any]] = []
    bulletins: list[dict[str, Any]] = []
    for number, commune in enumerate(commune_ids):
        code = f"VE.BENCH.C{number:05d}"
        votes = counted[commune]
        tallies = [
            Tally(c, f"Proyecto {i}", i + 1, votes.get(c, 0), 100_000 * (i + 1), registered + timedelta(minutes=i))
            for i, c in enumerate(candidates[commune])
        ]
        ranked = rank_candidates(tallies, DEFAULT_TIE_BREAK, seed_bytes)
        winner = winner_of(ranked)
        total = sum(votes.values())
        choice_counts = Choices({c: votes.get(c, 0) for c in candidates[commune]}, votes.get(None, 0), 0)
        bulletin = Bulletin(commune, 1, "online", None, total, choice_counts)
        text = bulletin.text(cid)
        index = writer.append(text.encode())
        _write(
            root / "record" / "bulletins" / str(index),
            note.format_note(text, [note.sign_note(text, signer)]).encode(),
        )
        bulletins.append(
            {"index": index, "commune_id": str(commune), "channel": "online", "table_code": None, "version": 1}
        )
        roll = total + total // 2
        entry = ResultEntry(
            consultation_id=cid,
            commune_id=commune,
            commune_code=code,
            version=1,
            roll_size=roll,
            participations=total,
            tie_break=[str(r) for r in DEFAULT_TIE_BREAK],
            draw_seed=seed_bytes,
            candidates=[
                RankedLine(r.candidate_id, r.votes, r.rank, r.estimated_cost, r.registered_at, r.assembly_priority)
                for r in ranked
            ],
            blank=votes.get(None, 0),
            null=0,
            winner=winner,
            remainder={},
            bulletins=1,
        )
        writer.append(entry.encode())
        results.append(
            {
                "commune_id": str(commune),
                "commune_code": code,
                "ballots": total,
                "blank": votes.get(None, 0),
                "null": 0,
                "participations": total,
                "roll_size": roll,
                "winner_candidate_id": None if winner is None else str(winner),
                "candidates": [{"candidate_id": str(r.candidate_id), "votes": r.votes, "rank": r.rank} for r in ranked],
                "certification": {"version": 1},
            }
        )
    root_hash = writer.finish()
    size = len(writer.leaves)
    body = Checkpoint(origin, size, root_hash, ()).text
    _write(root / "record" / "checkpoint", note.format_note(body, [note.sign_note(body, signer)]).encode())
    _write(root / "record" / "keys", json.dumps({"origin": origin, "verifier_keys": [signer.verifier.vkey]}).encode())
    _write(root / "record" / "bulletins.json", json.dumps({"bulletins": bulletins}).encode())
    _write(root / "consultation", json.dumps({"id": str(cid), "code": "2026-Q4", "status": "certified"}).encode())
    _write(
        root / "results",
        json.dumps({"consultation_id": str(cid), "code": "2026-Q4", "ballots": ballots, "communes": results}).encode(),
    )
    return {"consultation_id": str(cid), "entries": size, "entry_bytes": writer.bytes}


def _handler(root: Path, prefix: str) -> type[SimpleHTTPRequestHandler]:
    class RecordFiles(SimpleHTTPRequestHandler):
        """The record's public URLs over the generated files."""

        def translate_path(self, path: str) -> str:
            path = path.split("?", 1)[0]
            if not path.startswith(prefix):
                return str(root / "missing")
            rest = path[len(prefix) :].strip("/")
            named = {"": "consultation", "record/bulletins": "record/bulletins.json"}
            return str(root / named.get(rest, rest))

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return RecordFiles


def _serve(root: Path, consultation_id: str) -> tuple[ThreadingHTTPServer, str]:
    prefix = f"/v1/consultations/{consultation_id}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, prefix))
    threading.Thread(target=server.serve_forever, name="record-files", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}{prefix}"


def _verify(base: str) -> tuple[float, dict[str, Any], int]:
    script = Path(sys.executable).parent / "comuna-verify"
    started = time.monotonic()
    with subprocess.Popen(
        [str(script), "consultation", base, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stderr is not None and process.stdout is not None
        last = ""
        for line in process.stderr:
            if line.startswith("entries ") and line != last:
                last = line
                _notice(f"verifier: {line.strip()}")
        out = process.stdout.read()
        code = process.wait()
    seconds = time.monotonic() - started
    try:
        answer: dict[str, Any] = json.loads(out)
    except json.JSONDecodeError:
        answer = {"output": out[-500:]}
    return seconds, answer, code


def run(ballots: int, *, communes: int, batch: int, seed: int = 9) -> dict[str, Any]:
    scratch = owned_temp_dir(cache_root() / "scratch", "bench-verify")
    try:
        _notice(f"generating the record of {ballots:,} ballots across {communes:,} communes")
        started = time.monotonic()
        made = generate(scratch, ballots, communes, batch, seed)
        generated = time.monotonic() - started
        server, base = _serve(scratch, made["consultation_id"])
        try:
            _notice(f"record of {made['entries']:,} entries ({made['entry_bytes'] / 1e6:.0f} MB); verifying")
            seconds, answer, code = _verify(base)
        finally:
            server.shutdown()
        # The high-water mark of the children, in KiB on Linux: the verifier is the only child.
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return {
            "ballots": ballots,
            "communes": communes,
            "batch": batch,
            "entries": made["entries"],
            "entry_mb": round(made["entry_bytes"] / 1e6, 1),
            "generate_seconds": round(generated, 1),
            "verify_seconds": round(seconds, 1),
            "verify_ballots_per_second": round(ballots / seconds) if seconds else None,
            "verify_peak_rss_mb": round(peak_mb, 1),
            "verified": code == 0 and answer.get("ok") is True,
            "verifier_exit": code,
            "mismatches": answer.get("mismatches", [])[:5],
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
