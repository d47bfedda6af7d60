"""The device's SQLite file: the signed snapshot, check-ins, ballots as counts, and batches.

Ballot secrecy on the device (documented in docs/offline-tables.md):
* a check-in is one row of `checkins`, a WITHOUT ROWID table keyed by the blinded entry key,
  so rows are stored in key order (effectively random), with no rowid and no time;
* a ballot is not a row: `votes` holds one counter per choice (a multiset), so nothing records
  which ballot came after which check-in, or in what order ballots were cast;
* `secure_delete` overwrites freed pages, and the rollback journal (the default mode, not WAL)
  is deleted at each commit, so earlier values of a counter do not linger in the file.
The one link kept while a voter is at the table is `awaiting` (which check-in has not voted
yet, so that it is not sent before its ballot); it is cleared by the vote.

Tampering: every write recomputes a seal, HMAC(sync key, the whole state); the sync key lives in
a separate key file (0600), never in the SQLite file. Every command first verifies the snapshot's
signature and the seal, so an edited, added or deleted row, or a snapshot swapped for another
one, is refused. Someone holding both files can forge a consistent state; the server still
accepts only check-ins that are entries of the table's commune, ballots of its candidates and
never more votes than check-ins (see consultations' `offline.usecases`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_platform import offline_tables

BLANK = "blank"
NULL = "null"  # spoiled votes: paper tallies only

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE checkins (key TEXT PRIMARY KEY, batch_id TEXT) WITHOUT ROWID;
CREATE TABLE votes (choice TEXT PRIMARY KEY, pending INTEGER NOT NULL CHECK (pending >= 0)) WITHOUT ROWID;
CREATE TABLE batches (batch_id TEXT PRIMARY KEY, body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
                      answer TEXT) WITHOUT ROWID;
"""


class Refused(Exception):
    """Bad input or a file that cannot be trusted: the CLI exits 2 with this one-line reason."""


@dataclass(frozen=True)
class Snapshot:
    payload: bytes
    document: dict[str, Any]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()

    @property
    def consultation_id(self) -> str:
        return str(self.document["consultation"]["id"])

    @property
    def table_code(self) -> str:
        return str(self.document["table"]["code"])

    @property
    def entries(self) -> frozenset[str]:
        return frozenset(self.document["entries"])

    @property
    def candidate_ids(self) -> list[str]:
        return [str(c["id"]) for c in self.document["candidates"]]


def verified_snapshot(payload: bytes, signature: bytes, public_key: bytes) -> Snapshot:
    if not offline_tables.verify(public_key, payload, signature):
        raise Refused("the snapshot's signature does not verify with the consultation's snapshot key")
    try:
        document = json.loads(payload)
    except ValueError:
        raise Refused("the snapshot is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != offline_tables.SNAPSHOT_FORMAT:
        raise Refused("the snapshot is not a comuna-table snapshot this program reads")
    return Snapshot(payload, document)


def key_file_of(db: Path) -> Path:
    return db.with_name(db.name + ".key")


class Store:
    def __init__(self, connection: sqlite3.Connection, sync_key: bytes) -> None:
        self._db = connection
        self._sync_key = sync_key

    # -- creation and opening ---------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: Path,
        key_file: Path,
        *,
        snapshot: Snapshot,
        signature: bytes,
        public_key: bytes,
        sync_key: bytes,
        server: str,
        mode: str,
    ) -> Store:
        if path.exists() or key_file.exists():
            raise Refused(f"{path} or its key file already exists: a table keeps one file per snapshot")
        # The key file first, readable by its owner only (created 0600, never widened).
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(offline_tables.b64(sync_key) + "\n")
        store = cls(_connect(path), sync_key)
        with store._db:
            store._db.executescript(_SCHEMA)
        meta = {
            "payload": offline_tables.b64(snapshot.payload),
            "signature": offline_tables.b64(signature),
            "public_key": offline_tables.b64(public_key),
            "server": server,
            "mode": mode,
            "awaiting": "",
            "tally_batched": "0",
        }
        with store._db:
            store._db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            store._seal()
        return store

    @classmethod
    def open(cls, path: Path, key_file: Path) -> Store:
        if not path.exists():
            raise Refused(f"{path} does not exist: run `comuna-table download` first")
        try:
            sync_key = offline_tables.unb64(key_file.read_text().strip())
        except (OSError, ValueError):
            raise Refused(f"cannot read the key file {key_file}") from None
        try:
            store = cls(_connect(path), sync_key)
            store.verify()
        except sqlite3.DatabaseError:
            raise Refused(f"{path} is not a comuna-table file") from None
        return store

    def close(self) -> None:
        self._db.close()

    # -- integrity --------------------------------------------------------------------------
    def meta(self, name: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise Refused("the file is tampered with: its metadata is incomplete")
        return str(row[0])

    def snapshot(self) -> Snapshot:
        try:
            payload = offline_tables.unb64(self.meta("payload"))
            signature = offline_tables.unb64(self.meta("signature"))
            public_key = offline_tables.unb64(self.meta("public_key"))
        except ValueError:
            raise Refused("the file is tampered with: its snapshot is not readable") from None
        return verified_snapshot(payload, signature, public_key)

    def verify(self) -> Snapshot:
        """The snapshot, once its signature and the seal over every row verified."""
        snapshot = self.snapshot()
        stored = self._db.execute("SELECT value FROM meta WHERE name = 'seal'").fetchone()
        if stored is None or not hmac.compare_digest(str(stored[0]), self._state_mac()):
            raise Refused("the file is tampered with: its rows do not match its seal")
        return snapshot

    def _state_mac(self) -> str:
        state = {
            "meta": sorted(self._db.execute("SELECT name, value FROM meta WHERE name != 'seal'").fetchall()),
            "checkins": sorted(self._db.execute("SELECT key, batch_id FROM checkins").fetchall(), key=str),
            "votes": sorted(self._db.execute("SELECT choice, pending FROM votes").fetchall()),
            "batches": sorted(self._db.execute("SELECT batch_id, body, sent FROM batches").fetchall()),
        }
        return hmac.new(self._sync_key, json.dumps(state, sort_keys=True).encode(), hashlib.sha256).hexdigest()

    def _seal(self) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seal', ?)", (self._state_mac(),))

    # -- recording --------------------------------------------------------------------------
    def check_in(self, key: str) -> None:
        snapshot = self.verify()
        if self.meta("awaiting"):
            raise Refused("the voter checked in before has not voted yet: record their vote first")
        known = self._db.execute("SELECT 1 FROM checkins WHERE key = ?", (key,)).fetchone()
        # One answer for both: the officer learns only that this person cannot vote here now.
        if key not in snapshot.entries or known is not None:
            raise Refused("not on this table's roll, or already checked in here")
        with self._db:
            self._db.execute("INSERT INTO checkins VALUES (?, NULL)", (key,))
            if self.meta("mode") == "electronic":
                self._db.execute("UPDATE meta SET value = ? WHERE name = 'awaiting'", (key,))
            self._seal()

    def vote(self, choice: str) -> None:
        snapshot = self.verify()
        if self.meta("mode") != "electronic":
            raise Refused("this is a paper table: record its tally with `comuna-table tally`")
        if not self.meta("awaiting"):
            raise Refused("nobody is checked in: check the voter in first")
        if choice != BLANK and choice not in snapshot.candidate_ids:
            raise Refused(f"{choice} is not a candidate of this table's commune")
        with self._db:
            self._db.execute(
                "INSERT INTO votes VALUES (?, 1) ON CONFLICT (choice) DO UPDATE SET pending = pending + 1", (choice,)
            )
            self._db.execute("UPDATE meta SET value = '' WHERE name = 'awaiting'")
            self._seal()

    def record_tally(self, counts: dict[str, int]) -> None:
        """A paper table's tally sheet: counts per candidate, blank and null (replaces an unsent one)."""
        snapshot = self.verify()
        if self.meta("mode") != "paper":
            raise Refused("this is an electronic table: its votes are recorded one by one with `vote`")
        if self.meta("tally_batched") == "1":
            raise Refused("the tally was already put in a batch for the server")
        for choice, count in counts.items():
            if choice not in (BLANK, NULL) and choice not in snapshot.candidate_ids:
                raise Refused(f"{choice} is not a candidate of this table's commune")
            if count < 0:
                raise Refused("a count cannot be negative")
        checked_in = self._db.execute("SELECT count(*) FROM checkins").fetchone()[0]
        if sum(counts.values()) > checked_in:
            raise Refused(f"the tally counts {sum(counts.values())} votes but only {checked_in} people checked in")
        with self._db:
            self._db.execute("DELETE FROM votes")
            self._db.executemany("INSERT INTO votes VALUES (?, ?)", [(c, n) for c, n in counts.items() if n > 0])
            self._seal()

    # -- batches ----------------------------------------------------------------------------
    def pending_ballots(self) -> int:
        return int(
            self._db.execute("SELECT coalesce(sum(pending), 0) FROM votes WHERE choice != ?", (NULL,)).fetchone()[0]
        )

    def make_batch(self) -> str | None:
        """Move every pending check-in (but a voter still at the table) and every pending count
        into a new sealed batch; None when there is nothing to send."""
        snapshot = self.verify()
        awaiting = self.meta("awaiting")
        checkins = [
            key
            for (key,) in self._db.execute("SELECT key FROM checkins WHERE batch_id IS NULL ORDER BY key")
            if key != awaiting
        ]
        votes = dict(self._db.execute("SELECT choice, pending FROM votes WHERE pending > 0").fetchall())
        if not checkins and not votes:
            return None
        batch_id = str(uuid.uuid4())
        ballots = [
            {"candidate_id": None if choice == BLANK else choice, "count": count}
            for choice, count in sorted(votes.items())
            if choice != NULL
        ]
        document: dict[str, Any] = {
            "format": offline_tables.BATCH_FORMAT,
            "batch_id": batch_id,
            "consultation_id": snapshot.consultation_id,
            "table_code": snapshot.table_code,
            "snapshot_digest": snapshot.digest,
            "checkins": checkins,
            "ballots": ballots,
            "null_votes": int(votes.get(NULL, 0)),
        }
        document["mac"] = offline_tables.b64(offline_tables.batch_mac(self._sync_key, document))
        with self._db:
            self._db.execute("INSERT INTO batches (batch_id, body) VALUES (?, ?)", (batch_id, json.dumps(document)))
            self._db.executemany("UPDATE checkins SET batch_id = ? WHERE key = ?", [(batch_id, k) for k in checkins])
            self._db.execute("UPDATE votes SET pending = 0")
            if votes and self.meta("mode") == "paper":
                self._db.execute("UPDATE meta SET value = '1' WHERE name = 'tally_batched'")
            self._seal()
        return batch_id

    def unsent_batches(self) -> list[dict[str, Any]]:
        self.verify()
        rows = self._db.execute("SELECT body FROM batches WHERE sent = 0 ORDER BY batch_id").fetchall()
        return [json.loads(body) for (body,) in rows]

    def mark_sent(self, batch_id: str, answer: dict[str, Any]) -> None:
        with self._db:
            self._db.execute(
                "UPDATE batches SET sent = 1, answer = ? WHERE batch_id = ?", (json.dumps(answer), batch_id)
            )
            self._seal()

    def status(self) -> dict[str, Any]:
        snapshot = self.verify()
        q = self._db.execute
        return {
            "consultation_id": snapshot.consultation_id,
            "consultation_code": snapshot.document["consultation"]["code"],
            "table_code": snapshot.table_code,
            "commune_code": snapshot.document["commune"]["code"],
            "mode": self.meta("mode"),
            "voting_window": snapshot.document["voting_window"],
            "roll_entries": len(snapshot.entries),
            "checked_in": q("SELECT count(*) FROM checkins").fetchone()[0],
            "voter_at_table": bool(self.meta("awaiting")),
            "checkins_unsent": q("SELECT count(*) FROM checkins WHERE batch_id IS NULL").fetchone()[0]
            + q("SELECT count(*) FROM checkins c JOIN batches b USING (batch_id) WHERE b.sent = 0").fetchone()[0],
            "batches_sent": q("SELECT count(*) FROM batches WHERE sent = 1").fetchone()[0],
            "batches_unsent": q("SELECT count(*) FROM batches WHERE sent = 0").fetchone()[0],
        }


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA secure_delete = ON")
    connection.execute("PRAGMA journal_mode = DELETE")
    return connection
