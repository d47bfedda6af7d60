"""An honest published record, built with the platform's own `comuna_platform.tlog` (not with the
code under test), written to a directory and served over HTTP like the platform serves it.

The scenario: consultation with two communes.

* C01 (candidates X, Y; tie at 5 votes broken by lower cost, X wins): electronic ballots in three
  batches (one a lone batch whose tally a later batch carries) plus one lone ballot at the close
  (the result's remainder), an online and an electronic table bulletin, an offline table OFF1
  with two synced batches.
* C02 (candidates Z, W): electronic ballots and paper table P1; certified twice (a recount after
  a corrected tally sheet): version 2 counts, W wins.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import Checkpoint
from comuna_platform.tlog.note import Signer

CID = "6f1c1d2e-0000-4000-8000-000000000001"
A, B = "a0000000-0000-4000-8000-00000000000a", "b0000000-0000-4000-8000-00000000000b"
X, Y = "c0000000-0000-4000-8000-0000000000c1", "c0000000-0000-4000-8000-0000000000c2"
Z, W = "d0000000-0000-4000-8000-0000000000d1", "d0000000-0000-4000-8000-0000000000d2"
ORIGIN = f"comuna.localhost/record/consultations/{CID}"
SEED = "11" * 32
BASE_PATH = f"/v1/consultations/{CID}"


def receipt(n: int) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(f"receipt {n}".encode()).digest()[:16]).rstrip(b"=").decode()


def commitment(r: str) -> str:
    digest = hashlib.sha256(b"comuna-receipt/v1\n" + r.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _head(kind: str) -> str:
    return f"{kind}\nconsultation {CID}\n"


def ballots(receipts: list[tuple[str, str]], tallies: dict[tuple[str, str], int]) -> str:
    lines = [f"receipt {c} {commitment(r)}\n" for c, r in sorted(receipts, key=lambda cr: (cr[0], commitment(cr[1])))]
    lines += [f"tally {c} {choice} {n}\n" for (c, choice), n in sorted(tallies.items())]
    return _head("comuna-ballots/v1") + "".join(lines)


def _tally(tally: dict[str, int]) -> str:
    order = sorted(k for k in tally if k not in ("blank", "null")) + [k for k in ("blank", "null") if k in tally]
    return "".join(f"tally {k} {tally[k]}\n" for k in order)


def offline(commune: str, table: str, batch: str, tally: dict[str, int]) -> str:
    return _head("comuna-offline-ballots/v1") + f"commune {commune}\ntable {table}\nbatch {batch}\n" + _tally(tally)


def sheet(commune: str, table: str, sheet_id: str, checked_in: int, tally: dict[str, int]) -> str:
    scan = hashlib.sha256(sheet_id.encode()).hexdigest()
    head = f"commune {commune}\ntable {table}\nsheet {sheet_id}\nchecked-in {checked_in}\nscan {scan}\n"
    return _head("comuna-tally-sheet/v1") + head + _tally(tally)


def bulletin(commune: str, version: int, channel: str, table: str, participations: int, tally: dict[str, int]) -> str:
    head = f"commune {commune}\nversion {version}\nchannel {channel}\ntable {table}\nparticipations {participations}\n"
    return _head("comuna-bulletin/v1") + head + _tally(tally)


@dataclass
class Candidate:
    cid: str
    votes: int
    rank: int
    cost: int | None
    registered: str | None
    priority: int


@dataclass
class ResultSpec:
    commune: str
    code: str
    version: int
    roll: int
    participations: int
    candidates: list[Candidate]
    blank: int
    null: int
    winner: str | None
    remainder: dict[str, int] = field(default_factory=dict)
    bulletins: int = 0
    rules: str = "lower_cost,earlier_registration,draw"

    def entry(self) -> str:
        lines = [
            f"commune {self.commune} {self.code}\n",
            f"version {self.version}\n",
            f"roll {self.roll}\n",
            f"participations {self.participations}\n",
            f"tie-break {self.rules}\n",
            f"draw-seed {SEED}\n",
        ]
        for c in self.candidates:
            cost = "-" if c.cost is None else str(c.cost)
            lines.append(f"candidate {c.cid} {c.votes} {c.rank} {cost} {c.registered or '-'} {c.priority}\n")
        lines += [f"blank {self.blank}\n", f"null {self.null}\n", f"winner {self.winner or 'none'}\n"]
        lines += [f"remainder {k} {n}\n" for k, n in sorted(self.remainder.items())]
        lines.append(f"bulletins {self.bulletins}\n")
        return _head("comuna-result/v1") + "".join(lines)

    def published(self) -> dict[str, object]:
        ballots = sum(c.votes for c in self.candidates) + self.blank + self.null
        return {
            "commune_id": self.commune,
            "commune_code": self.code,
            "ballots": ballots,
            "blank": self.blank,
            "null": self.null,
            "participations": self.participations,
            "roll_size": self.roll,
            "winner_candidate_id": self.winner,
            "candidates": [{"candidate_id": c.cid, "votes": c.votes, "rank": c.rank} for c in self.candidates],
            "certification": {"version": self.version, "tie_break": self.rules.split(",")},
        }


REG = "2026-11-01T10:00:00.000000+00:00"


def scenario(extra: int = 0) -> tuple[list[str], list[ResultSpec], list[str]]:
    """The entries (text), the latest results, and receipts: of a batch with a tally, of a lone
    batch carried by the next, of the lone ballot at the close, of commune C02.

    `extra` more one-ballot batches for X in C01 (bigger logs: several tiles and levels)."""
    r = [receipt(n) for n in range(20)]
    out: list[str] = []
    out.append(ballots([(A, r[0]), (A, r[1]), (A, r[2]), (A, r[3]), (B, r[10]), (B, r[11]), (B, r[12])],
                       {(A, X): 2, (A, Y): 1, (A, "blank"): 1, (B, Z): 1, (B, W): 2}))  # fmt: skip
    out.append(ballots([(A, r[4])], {}))  # a lone batch: its tally comes with the next
    out.append(ballots([(A, r[5]), (A, r[6])], {(A, X): 2, (A, Y): 1}))
    for n in range(extra):
        out.append(ballots([(A, receipt(1000 + n))], {(A, X): 1}))
    out.append(ballots([(A, r[7])], {}))  # lone at the close: the result's remainder
    out.append(offline(A, "OFF1", "batch-1", {X: 1, "null": 1}))
    out.append(offline(A, "OFF1", "batch-2", {Y: 2, "blank": 1}))
    out.append(sheet(B, "P1", "sheet-1", 5, {Z: 3, W: 1, "null": 1}))
    a_online = bulletin(A, 1, "online", "-", 6 + extra, {X: 3 + extra, Y: 2, "blank": 1})
    out += [
        a_online,
        bulletin(A, 1, "table", "T1", 2, {X: 1, Y: 1}),
        bulletin(A, 1, "offline", "OFF1", 5, {X: 1, Y: 2, "blank": 1, "null": 1}),
    ]
    a = ResultSpec(A, "C01", 1, 20 + extra, 13 + extra,
                   [Candidate(X, 5 + extra, 1, 100, REG, 1), Candidate(Y, 5, 2, 200, REG, 2)],
                   blank=2, null=1, winner=X, remainder={Y: 1}, bulletins=3)  # fmt: skip
    out.append(a.entry())
    out += [bulletin(B, 1, "online", "-", 3, {Z: 1, W: 2}), bulletin(B, 1, "paper", "P1", 5, {Z: 3, W: 1, "null": 1})]
    b1 = ResultSpec(B, "C02", 1, 10, 8, [Candidate(Z, 4, 1, None, None, 1), Candidate(W, 3, 2, None, None, 2)],
                    blank=0, null=1, winner=Z, bulletins=2)  # fmt: skip
    out.append(b1.entry())
    out.append(sheet(B, "P1", "sheet-2", 5, {Z: 2, W: 2, "null": 1}))  # corrected: a recount
    out += [bulletin(B, 2, "online", "-", 3, {Z: 1, W: 2}), bulletin(B, 2, "paper", "P1", 5, {Z: 2, W: 2, "null": 1})]
    b2 = ResultSpec(B, "C02", 2, 10, 8, [Candidate(Z, 3, 2, None, None, 1), Candidate(W, 4, 1, None, None, 2)],
                    blank=0, null=1, winner=W, bulletins=2)  # fmt: skip
    out.append(b2.entry())
    return out, [a, b2], [r[0], r[4], r[7], r[10]]


@dataclass
class Log:
    """A log built with the platform's tlog code: entries, tiles, a signed checkpoint."""

    entries: list[bytes]
    signer: Signer
    extra_signatures: list[note.Signature] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.entries)

    def tile_files(self) -> dict[str, bytes]:
        files: dict[str, bytes] = {}
        level_hashes = [merkle.leaf_hash(e) for e in self.entries]
        level = 0
        while level_hashes:
            for n in range(0, len(level_hashes), tiles.TILE_WIDTH):
                chunk = level_hashes[n : n + tiles.TILE_WIDTH]
                files[tiles.Tile(level, n // tiles.TILE_WIDTH, len(chunk)).path] = tiles.tile_data(chunk)
            full = len(level_hashes) // tiles.TILE_WIDTH
            level_hashes = [
                tiles.tile_root(tiles.tile_data(level_hashes[i * tiles.TILE_WIDTH : (i + 1) * tiles.TILE_WIDTH]))
                for i in range(full)
            ]
            level += 1
        for n in range(0, self.size, tiles.TILE_WIDTH):
            chunk = self.entries[n : n + tiles.TILE_WIDTH]
            files[tiles.Tile(None, n // tiles.TILE_WIDTH, len(chunk)).path] = tiles.encode_bundle(chunk)
        return files

    def hashes(self, positions: list[merkle.Position]) -> dict[merkle.Position, bytes]:
        files = self.tile_files()
        found = {}
        for p in positions:
            tile = tiles.tile_holding(p, self.size)
            found[p] = tiles.hash_from_tile(tile, files[tile.path], p)
        return found

    def root(self) -> bytes:
        positions = merkle.root_positions(self.size)
        hashes = self.hashes(positions)
        return merkle.fold([hashes[p] for p in positions])

    def checkpoint_body(self) -> str:
        return Checkpoint(ORIGIN, self.size, self.root()).text

    def checkpoint(self) -> str:
        body = self.checkpoint_body()
        return note.format_note(body, [note.sign_note(body, self.signer), *self.extra_signatures])

    def inclusion_proof(self, index: int) -> list[bytes]:
        plan = merkle.ranges_positions(merkle.inclusion_ranges(index, self.size))
        return merkle.hashes_of_ranges(plan, self.hashes([p for r in plan for p in r]))

    def consistency_proof(self, old: int) -> list[bytes]:
        plan = merkle.ranges_positions(merkle.consistency_ranges(old, self.size))
        return merkle.hashes_of_ranges(plan, self.hashes([p for r in plan for p in r]))


def _write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


INDEX = "__index__"  # the file answering for a path that is also a directory


def publish(
    root: Path,
    texts: list[str],
    results: list[ResultSpec],
    signer: Signer,
    receipts: list[str] | None = None,
    tweak: Callable[[list[bytes]], list[bytes]] | None = None,
) -> Log:
    """Write the record of `texts` under `root` (a URL path per file); `tweak` changes the
    entries before the log is built from them (a dishonest but consistently signed log)."""
    data = [t.encode() for t in texts]
    if tweak is not None:
        data = tweak(data)
    log = Log(data, signer)
    base = root / BASE_PATH.lstrip("/")
    for sub in ("record/tile", "record/bulletins", "receipts"):
        if (base / sub).exists():
            for f in sorted((base / sub).rglob("*"), reverse=True):
                f.unlink() if f.is_file() else f.rmdir()
    _write(base / INDEX, json.dumps({"id": CID, "code": "CONSULTA-1", "status": "closed"}))
    _write(base / "record" / "keys", json.dumps({"origin": ORIGIN, "verifier_keys": [signer.verifier.vkey]}))
    _write(base / "record" / "checkpoint", log.checkpoint())
    for path, content in log.tile_files().items():
        _write(base / "record" / path, content)
    listed = []
    for index, entry in enumerate(data):
        text = entry.decode(errors="replace")
        if text.startswith("comuna-bulletin/v1\n"):
            fields = dict(
                line.split(" ", 1) for line in text.split("\n")[2:] if " " in line and line.split(" ")[0] != "tally"
            )
            listed.append({
                "index": index,
                "commune_id": fields["commune"],
                "channel": fields["channel"],
                "table_code": None if fields["table"] == "-" else fields["table"],
                "version": int(fields["version"]),
            })  # fmt: skip
            _write(base / "record" / "bulletins" / str(index), note.format_note(text, [note.sign_note(text, signer)]))
    _write(base / "record" / "bulletins" / INDEX, json.dumps({"bulletins": listed}))
    published = [r.published() for r in results]
    results_json = {
        "consultation_id": CID,
        "code": "CONSULTA-1",
        "certified_at": "2026-11-02T10:00:00Z",
        "ballots": sum(int(str(c["ballots"])) for c in published),
        "communes": published,
    }
    _write(base / "results", json.dumps(results_json))
    for r in receipts or []:
        index = next(i for i, e in enumerate(data) if f" {commitment(r)}\n".encode() in e)
        answer = {
            "receipt": r,
            "recorded": True,
            "commitment": commitment(r),
            "entry_index": index,
            "tree_size": log.size,
            "inclusion_proof": [base64.b64encode(h).decode() for h in log.inclusion_proof(index)],
            "checkpoint": log.checkpoint(),
        }
        _write(base / "receipts" / r, json.dumps(answer))
    return log


class Handler(BaseHTTPRequestHandler):
    server: RecordServer

    def log_message(self, format: str, *args: object) -> None:  # quiet tests
        pass

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _problem(self, status: int, detail: str) -> None:
        self._answer(status, json.dumps({"status": status, "detail": detail}).encode(), "application/problem+json")

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path.startswith(BASE_PATH + "/record/tile/entries/") and not self.server.entries_public:
            self._problem(409, "entries of the record are public once voting closed in every commune")
            return
        file = self.server.root / path.lstrip("/")
        if file.is_dir():
            file = file / INDEX
        if ".." in path or not file.is_file():
            self._problem(404, f"not found: {path}")
            return
        self._answer(200, file.read_bytes(), "application/octet-stream")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path != BASE_PATH + "/record/cosignatures":
            self._problem(404, "not found")
            return
        self.server.posted.append(body.decode())
        if self.server.reject_cosignatures:
            self._problem(400, "cosignature rejected")
            return
        self._answer(201, b"{}", "application/json")


class RecordServer(ThreadingHTTPServer):
    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.entries_public = True
        self.reject_cosignatures = False
        self.posted: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{BASE_PATH}"


@contextmanager
def serving(root: Path) -> Iterator[RecordServer]:
    server = RecordServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def new_signer() -> Signer:
    return Signer.generate(ORIGIN)


def uuid_ok(value: str) -> bool:
    return str(uuid.UUID(value)) == value
