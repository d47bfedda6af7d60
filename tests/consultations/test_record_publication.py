"""What a certification, a receipt and a witness add to the public record, against the real
service: signed table bulletins (and their QR codes) and a `comuna-result/v1` entry whose
remainder closes the books with the ballot entries; receipts with inclusion proofs that Comuna's
own Merkle code checks; witnesses' cosignatures kept only when valid and from a known witness."""

from __future__ import annotations

import base64
import uuid
from collections import Counter

import httpx
import pytest

from comuna_consultations.domain.record import DEFAULT_RECORD_ORIGIN, receipt_commitment
from comuna_consultations.storage.models import record_tables
from comuna_consultations.storage.record import Record
from comuna_platform.tlog import merkle, note
from comuna_platform.tlog.checkpoint import parse_checkpoint
from comuna_platform.tlog.checkpointer import Checkpointer
from comuna_platform.tlog.cosignature import cosign
from tests.consultations.helpers import (
    ADULT,
    Stack,
    close_voting,
    record_entries,
    register_residents,
    table_code,
    transition,
    vote,
    voting_consultation,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1 = "VE.01.01.C1"


def with_record(stack: Stack, *, witnesses: tuple[note.Verifier, ...] = ()) -> note.Signer:
    """Give the service a record key (and witnesses); the signer, to check what it signs."""
    signer = note.Signer.generate(DEFAULT_RECORD_ORIGIN)
    stack.consultations.app.state.record = Record(DEFAULT_RECORD_ORIGIN, (signer,), witnesses)
    return signer


def checkpointer(stack: Stack, signer: note.Signer) -> Checkpointer:
    return Checkpointer(stack.consultations.runtime.db, record_tables, [signer], every=1.0, now=stack.clock.now)


def tallies(entries: list[list[str]], commune: uuid.UUID) -> Counter[str]:
    """Votes per choice the commune's `comuna-ballots/v1` entries count."""
    counted: Counter[str] = Counter()
    for lines in entries:
        if lines[0] == "comuna-ballots/v1":
            for line in lines[2:]:
                kind, where, *rest = line.split()
                if kind == "tally" and where == str(commune):
                    counted[rest[0]] += int(rest[1])
    return counted


async def test_a_certification_publishes_signed_bulletins_and_a_result_that_closes_the_books(
    stack: Stack, issuer: TestIssuer
) -> None:
    signer = with_record(stack)
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 3)
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    first, second = consultation.candidates[C1]
    for voter, choice in zip(voters, [first, second, first], strict=True):
        assert (await vote(stack, issuer, consultation, C1, choice, voter)).status_code == 201
    pending = stack.consultations.app.state.voting.writer.pending_tallies
    await close_voting(stack, issuer, consultation)
    certified = await transition(stack, issuer, consultation.id, "certify")
    assert certified.status_code == 200, certified.text

    commune = stack.commune_ids[C1]

    entries = await record_entries(stack, consultation)
    # Every commune of the consultation is certified; this one's bulletin, then its result.
    mine = [i for i, lines in enumerate(entries) if len(lines) > 2 and lines[2].startswith(f"commune {commune}")]
    index, result_at = mine[-2:]
    bulletin_lines, result_lines = entries[index], entries[result_at]
    assert result_at == index + 1
    assert bulletin_lines == [
        "comuna-bulletin/v1",
        f"consultation {consultation.id}",
        f"commune {commune}",
        "version 1",
        "channel table",
        f"table {table_code(C1)}",
        "participations 3",
        *sorted([f"tally {first} 2", f"tally {second} 1"]),
        "tally blank 0",
        "tally null 0",
    ]
    assert result_lines[:3] == ["comuna-result/v1", f"consultation {consultation.id}", f"commune {commune} {C1}"]
    fields = {line.split()[0]: line.split()[1:] for line in result_lines[3:] if not line.startswith("candidate ")}
    assert fields["version"] == ["1"] and fields["winner"] == [first] and fields["bulletins"] == ["1"]
    assert fields["participations"] == ["3"] and fields["blank"] == ["0"] and fields["null"] == ["0"]
    ranked = [line.split() for line in result_lines if line.startswith("candidate ")]
    assert [(r[1], r[2], r[3]) for r in ranked] == [(first, "2", "1"), (second, "1", "2")]
    # What the ballot entries tally plus the remainder is what was certified; the remainder is
    # exactly the tallies the writer still carried (lone batches) when voting closed.
    remainder = Counter({r[1]: int(r[2]) for r in (line.split() for line in result_lines) if r[0] == "remainder"})
    assert sum(remainder.values()) == pending
    assert tallies(entries, commune) + remainder == Counter({first: 2, second: 1})

    client = stack.consultations.client
    listed = (await client.get(f"/v1/consultations/{consultation.id}/record/bulletins")).json()["bulletins"]
    assert listed == [
        {"index": index, "commune_id": str(commune), "channel": "table", "table_code": table_code(C1), "version": 1}
    ]
    served = await client.get(f"/v1/consultations/{consultation.id}/record/bulletins/{index}")
    assert served.status_code == 200 and served.headers["cache-control"].endswith("immutable")
    body, signed_by = note.open_note(served.text, [signer.verifier])
    assert body.splitlines() == bulletin_lines and signed_by == [signer.verifier]
    image = await client.get(f"/v1/consultations/{consultation.id}/record/bulletins/{index}.png")
    assert image.headers["content-type"] == "image/png" and image.content.startswith(b"\x89PNG\r\n\x1a\n")
    for missing in (f"{index + 1}", "x.png", f"{index}.jpg"):
        response = await client.get(f"/v1/consultations/{consultation.id}/record/bulletins/{missing}")
        assert response.status_code in (404, 422) and response.headers["content-type"] == "application/problem+json"


async def test_a_receipt_carries_its_inclusion_proof_once_a_checkpoint_covers_it(
    stack: Stack, issuer: TestIssuer
) -> None:
    signer = with_record(stack)
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 2)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    (candidate,) = consultation.candidates[C1]
    receipts = []
    for voter in voters:
        response = await vote(stack, issuer, consultation, C1, candidate, voter)
        receipts.append(response.json()["receipt"])
    client = stack.consultations.client
    before = (await client.get(f"/v1/consultations/{consultation.id}/receipts/{receipts[0]}")).json()
    assert before["commitment"] == receipt_commitment(receipts[0])
    assert (before["tree_size"], before["inclusion_proof"], before["checkpoint"]) == (None, None, None)

    await checkpointer(stack, signer).checkpoint_grown()
    entries = await record_entries(stack, consultation)
    for receipt in receipts:
        found = (await client.get(f"/v1/consultations/{consultation.id}/receipts/{receipt}")).json()
        head = parse_checkpoint(note.open_note(found["checkpoint"], [signer.verifier])[0])
        assert found["tree_size"] == head.size == len(entries)
        entry = ("\n".join(entries[found["entry_index"]]) + "\n").encode()
        assert f"receipt {stack.commune_ids[C1]} {found['commitment']}\n".encode() in entry
        proof = [base64.b64decode(h) for h in found["inclusion_proof"]]
        merkle.verify_inclusion(merkle.leaf_hash(entry), found["entry_index"], head.size, proof, head.root)
        with pytest.raises(ValueError):  # the proof is of this entry, not of another one
            merkle.verify_inclusion(merkle.leaf_hash(entry + b"x"), found["entry_index"], head.size, proof, head.root)


async def test_cosignatures_are_kept_only_from_known_witnesses_and_served_on_the_checkpoint(
    stack: Stack, issuer: TestIssuer
) -> None:
    witness = note.Signer.generate("witness.example.org", note.COSIGNATURE_V1)
    stranger = note.Signer.generate("stranger.example.org", note.COSIGNATURE_V1)
    signer = with_record(stack, witnesses=(witness.verifier,))
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    (candidate,) = consultation.candidates[C1]
    assert (await vote(stack, issuer, consultation, C1, candidate, voters[0])).status_code == 201
    await checkpointer(stack, signer).checkpoint_grown()
    client = stack.consultations.client
    path = f"/v1/consultations/{consultation.id}/record"
    signed = (await client.get(f"{path}/checkpoint")).text
    body = note.split_note(signed)[0]

    async def post(text: str) -> httpx.Response:
        return await client.post(f"{path}/cosignatures", content=text.encode(), headers={"content-type": "text/plain"})

    kept = await post(note.format_note(body, [cosign(body, witness, 1_800_000_000)]))
    assert (kept.status_code, kept.json()) == (201, {"size": parse_checkpoint(body).size})
    served = (await client.get(f"{path}/checkpoint")).text
    assert served.startswith(signed) and served.count("\n— witness.example.org ") == 1
    # The checkpoint still opens with the log's key, and the witness's line checks as a cosignature.
    assert note.open_note(served, [signer.verifier])[0] == body

    refusals = {
        "witness_unknown": note.format_note(body, [cosign(body, stranger, 1_800_000_000)]),
        "checkpoint_unknown": note.format_note(
            body.replace(body.splitlines()[2], base64.b64encode(b"\0" * 32).decode()),
            [cosign(body, witness, 1_800_000_001)],
        ),
        "cosignature_malformed": "not a note at all",
    }
    forged = cosign(body, witness, 1_800_000_002)
    refusals["cosignature_invalid"] = note.format_note(
        body, [note.Signature(forged.name, forged.key_id, forged.signature[:8] + bytes(64))]
    )
    for code, text in refusals.items():
        refused = await post(text)
        assert refused.status_code in (403, 404, 422) and refused.json()["code"] == code, (code, refused.text)
    assert (await client.get(f"{path}/checkpoint")).text == served  # nothing of them was kept

    stack.consultations.app.state.record = Record(DEFAULT_RECORD_ORIGIN, (signer,), ())
    closed = await post(note.format_note(body, [cosign(body, witness, 1_800_000_003)]))
    assert (closed.status_code, closed.json()["code"]) == (409, "no_witnesses")
