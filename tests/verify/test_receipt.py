"""`comuna-verify receipt`: what a receipt proves, from the public record."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from comuna_verify import cli
from comuna_verify.receipt import commitment_of
from tests.verify import record
from tests.verify.conftest import Published, Runner


def check(run: Runner, published: Published, receipt: str, *args: str) -> tuple[int, dict[str, object]]:
    ran = run(cli.main, "receipt", published.base, receipt, "--json", *args)
    assert ran.status in (0, 1), ran.err
    return ran.status, json.loads(ran.out)


def test_the_commitment_is_the_published_one() -> None:
    receipt = record.receipt(1)
    assert commitment_of(receipt) == record.commitment(receipt)


def test_a_receipt_counted_in_its_batch(run: Runner, published: Published) -> None:
    ran = run(cli.main, "receipt", published.base, published.receipts[0])
    assert ran.status == 0, ran.out
    assert "yes: entry 0 is in the signed log (inclusion proof verified)" in ran.out
    assert f"in this batch's tally: one of the 4 ballots of commune {record.A} in entry 0" in ran.out
    assert "which choice is yours" in ran.out
    status, report = check(run, published, published.receipts[3])
    assert status == 0 and report["commune"] == record.B and report["batch_ballots"] == 3


def test_a_lone_receipt_is_carried(run: Runner, published: Published) -> None:
    status, report = check(run, published, published.receipts[1])
    assert status == 0 and report["entry_index"] == 1 and report["batch_ballots"] == 0
    ran = run(cli.main, "receipt", published.base, published.receipts[1])
    assert "with a later batch of commune" in ran.out


def test_an_unknown_receipt(run: Runner, published: Published) -> None:
    status, report = check(run, published, record.receipt(999))
    assert status == 1 and report["mismatches"] == ["no ballot with this receipt"]


def test_entries_not_public_still_prove_inclusion(run: Runner, published: Published) -> None:
    published.server.entries_public = False
    ran = run(cli.main, "receipt", published.base, published.receipts[0])
    assert ran.status == 0, ran.out
    assert "inclusion proof verified" in ran.out and "not public until voting has closed" in ran.out
    assert "which choice is yours" in ran.out


def test_a_wrong_server_proof_and_an_entry_without_the_commitment(run: Runner, published: Published) -> None:
    answer_file = published.file(f"receipts/{published.receipts[0]}")
    answer = json.loads(answer_file.read_text())
    proof = answer["inclusion_proof"]
    proof[0] = base64.b64encode(bytes(32)).decode()
    answer_file.write_text(json.dumps(answer))
    status, report = check(run, published, published.receipts[0])
    assert status == 1
    assert report["mismatches"] == [
        "the answer's inclusion proof does not verify: inclusion proof does not lead to the root"
    ]
    answer["entry_index"] = 2  # a real entry, but not the one holding this receipt
    answer["inclusion_proof"] = None
    answer_file.write_text(json.dumps(answer))
    status, report = check(run, published, published.receipts[0])
    assert status == 1
    assert (
        f"entry 2 does not hold receipt commitment {record.commitment(published.receipts[0])}" in report["mismatches"]
    )


def test_a_tampered_entry_is_not_proven(run: Runner, published: Published) -> None:
    bundle = published.file(f"record/tile/entries/000.p/{published.log.size}")
    bundle.write_bytes(
        bundle.read_bytes().replace(
            f"tally {record.A} {record.X} 2".encode(), f"tally {record.A} {record.X} 9".encode()
        )
    )
    status, report = check(run, published, published.receipts[0])
    assert status == 1
    assert "tile 0: hash at 0 is not the hash of entry 0" in report["mismatches"]
    assert any(str(m).startswith("entry 0 is not proven in the checkpoint") for m in report["mismatches"])  # type: ignore[union-attr]


def test_receipt_with_state_detects_a_fork(run: Runner, published: Published, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    assert check(run, published, published.receipts[0], "--state", state)[0] == 0
    texts, results, _ = record.scenario()
    texts[2] += f"tally {record.A} {record.Y} 0\n"
    published.republish(texts, results)
    status, report = check(run, published, published.receipts[0], "--state", state)
    assert status == 1
    assert any(
        str(m).startswith(f"fork: the log signed two roots for size {published.log.size}") for m in report["mismatches"]
    )  # type: ignore[union-attr]


def test_a_malformed_receipt_is_a_usage_error(run: Runner, published: Published) -> None:
    ran = run(cli.main, "receipt", published.base, "not-a-receipt")
    assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1
    assert "a receipt is 22 characters of base64url" in ran.err
