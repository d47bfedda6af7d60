"""The device's SQLite file on its own (no server): what it stores, and what it refuses.

Unit tests of the device's pure logic: a snapshot signed here with a throwaway key plays the
consultation's; the server side is covered by tests/consultations/test_offline.py.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from comuna_platform import offline_tables
from comuna_platform.documents import normalise_document
from comuna_platform.voter_keys import document_point, multiply, scalar_from
from comuna_table.store import BLANK, NULL, Refused, Store, key_file_of, verified_snapshot

CANDIDATES = [str(uuid.uuid4()), str(uuid.uuid4())]
DEVICE_KEY = scalar_from(b"k" * 32, "device")
DOCUMENTS = [f"V{10_000_000 + n}" for n in range(8)]
SIGNER = SigningKey.generate()
SYNC_KEY = b"s" * 32


def entry(document: str) -> str:
    return multiply(DEVICE_KEY, document_point(normalise_document(document))).hex()


def snapshot_payload(consultation_id: str = "c0ffee00-0000-4000-8000-000000000000") -> bytes:
    return offline_tables.canonical(
        {
            "format": offline_tables.SNAPSHOT_FORMAT,
            "consultation": {"id": consultation_id, "code": "2026-Q4", "title": "Consulta"},
            "table": {"id": str(uuid.uuid4()), "code": "OFF1", "kind": "offline"},
            "commune": {"id": str(uuid.uuid4()), "code": "VE.C1", "name": "Comuna"},
            "candidates": [{"id": c, "title": c, "assembly_priority": i} for i, c in enumerate(CANDIDATES, 1)],
            "voting_window": {"opens_at": "2026-12-02T06:00:00-04:00", "closes_at": "2026-12-02T18:00:00-04:00"},
            "device_key": DEVICE_KEY.hex(),
            "entries": sorted(entry(d) for d in DOCUMENTS),
        }
    )


def new_store(tmp_path: Path, mode: str = "electronic") -> Store:
    payload = snapshot_payload()
    signature = offline_tables.sign(SIGNER, payload)
    snapshot = verified_snapshot(payload, signature, bytes(SIGNER.verify_key))
    db = tmp_path / "table.sqlite"
    return Store.create(
        db,
        key_file_of(db),
        snapshot=snapshot,
        signature=signature,
        public_key=bytes(SIGNER.verify_key),
        sync_key=SYNC_KEY,
        server="http://testserver",
        mode=mode,
    )


def vote_all(store: Store, choices: list[str]) -> None:
    for document, choice in zip(DOCUMENTS, choices, strict=False):
        store.check_in(entry(document))
        store.vote(choice)


def test_ballots_are_counts_and_check_ins_carry_no_order(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    vote_all(store, [CANDIDATES[0], CANDIDATES[1], BLANK, CANDIDATES[0]])
    store.close()
    with sqlite3.connect(tmp_path / "table.sqlite") as db:
        assert sorted(db.execute("SELECT choice, pending FROM votes")) == sorted(
            [(CANDIDATES[0], 2), (CANDIDATES[1], 1), (BLANK, 1)]
        )
        # No rowid (insertion order) on check-ins; they are kept in key order.
        with pytest.raises(sqlite3.OperationalError):
            db.execute("SELECT rowid FROM checkins")
        keys = [k for (k,) in db.execute("SELECT key FROM checkins")]
        assert keys == sorted(entry(d) for d in DOCUMENTS[:4])
        assert db.execute("SELECT value FROM meta WHERE name = 'awaiting'").fetchone() == ("",)
    # The sync key is never in the SQLite file; its own file is the owner's only.
    assert SYNC_KEY not in (tmp_path / "table.sqlite").read_bytes()
    assert key_file_of(tmp_path / "table.sqlite").stat().st_mode & 0o777 == 0o600


def test_secure_delete_is_on(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    assert store._db.execute("PRAGMA secure_delete").fetchone() == (1,)
    assert store._db.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_batch_is_sealed_for_the_server_and_leaves_the_voter_still_at_the_table(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    vote_all(store, [CANDIDATES[0], BLANK])
    store.check_in(entry(DOCUMENTS[5]))  # at the table, not voted yet
    batch_id = store.make_batch()
    (batch,) = store.unsent_batches()
    assert batch["batch_id"] == batch_id
    assert sorted(batch["checkins"]) == sorted([entry(DOCUMENTS[0]), entry(DOCUMENTS[1])])
    assert sorted(batch["ballots"], key=json.dumps) == sorted(
        [{"candidate_id": CANDIDATES[0], "count": 1}, {"candidate_id": None, "count": 1}], key=json.dumps
    )
    assert offline_tables.batch_mac_ok(SYNC_KEY, batch)
    assert not offline_tables.batch_mac_ok(b"x" * 32, batch)
    assert not offline_tables.batch_mac_ok(SYNC_KEY, {**batch, "null_votes": 1})
    assert store.make_batch() is None  # nothing new (the voter at the table stays until they vote)
    store.vote(CANDIDATES[1])
    assert store.make_batch() is not None
    assert len(store.unsent_batches()) == 2
    store.mark_sent(batch_id, {"recorded": True})
    assert [b["batch_id"] for b in store.unsent_batches()] != [batch_id]


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("UPDATE votes SET pending = pending + 1", ()),
        ("DELETE FROM checkins WHERE key = (SELECT min(key) FROM checkins)", ()),
        ("INSERT INTO checkins VALUES (?, NULL)", ("ab" * 32,)),
        ("UPDATE meta SET value = 'paper' WHERE name = 'mode'", ()),
        ("UPDATE batches SET sent = 1", ()),
        (
            "UPDATE meta SET value = ? WHERE name = 'payload'",
            (offline_tables.b64(snapshot_payload(str(uuid.uuid4()))),),
        ),
    ],
)
def test_every_edit_of_the_file_is_detected(tmp_path: Path, sql: str, params: tuple[Any, ...]) -> None:
    store = new_store(tmp_path)
    vote_all(store, [CANDIDATES[0], CANDIDATES[1]])
    store.make_batch()
    store.close()
    with sqlite3.connect(tmp_path / "table.sqlite") as db:
        db.execute(sql, params)
    with pytest.raises(Refused, match=r"tampered|signature"):
        Store.open(tmp_path / "table.sqlite", key_file_of(tmp_path / "table.sqlite"))


def test_a_snapshot_signed_by_another_key_is_refused() -> None:
    payload = snapshot_payload()
    with pytest.raises(Refused, match="signature"):
        verified_snapshot(payload, offline_tables.sign(SigningKey.generate(), payload), bytes(SIGNER.verify_key))
    with pytest.raises(Refused, match="signature"):
        verified_snapshot(payload + b" ", offline_tables.sign(SIGNER, payload), bytes(SIGNER.verify_key))


def test_the_device_refuses_what_a_table_must_not_record(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    stranger = multiply(DEVICE_KEY, document_point(normalise_document("V99999999"))).hex()
    with pytest.raises(Refused, match="not on this table's roll"):
        store.check_in(stranger)
    with pytest.raises(Refused, match="check the voter in first"):
        store.vote(BLANK)
    store.check_in(entry(DOCUMENTS[0]))
    with pytest.raises(Refused, match="has not voted yet"):
        store.check_in(entry(DOCUMENTS[1]))
    with pytest.raises(Refused, match="not a candidate"):
        store.vote(str(uuid.uuid4()))
    store.vote(BLANK)
    with pytest.raises(Refused, match="already checked in"):
        store.check_in(entry(DOCUMENTS[0]))
    with pytest.raises(Refused, match="electronic table"):
        store.record_tally({BLANK: 1})


def test_a_paper_tally_never_exceeds_the_check_ins_and_is_sent_once(tmp_path: Path) -> None:
    store = new_store(tmp_path, mode="paper")
    for document in DOCUMENTS[:3]:
        store.check_in(entry(document))
    with pytest.raises(Refused, match="paper table"):
        store.vote(BLANK)
    with pytest.raises(Refused, match="only 3 people checked in"):
        store.record_tally({CANDIDATES[0]: 3, NULL: 1})
    store.record_tally({CANDIDATES[0]: 2, NULL: 1})
    store.record_tally({CANDIDATES[0]: 1, BLANK: 1, NULL: 1})  # corrected before it left
    store.make_batch()
    (batch,) = store.unsent_batches()
    assert batch["null_votes"] == 1 and len(batch["checkins"]) == 3
    assert sorted(batch["ballots"], key=json.dumps) == sorted(
        [{"candidate_id": CANDIDATES[0], "count": 1}, {"candidate_id": None, "count": 1}], key=json.dumps
    )
    with pytest.raises(Refused, match="already put in a batch"):
        store.record_tally({CANDIDATES[0]: 2})
