"""The public record over REST: ballots' batches become a signed, tiled log that Comuna's own
proofs check; hash tiles and checkpoints are public at once, entries (batch tallies) only once
no commune votes; unknown tiles and consultations are 404 problems."""

from __future__ import annotations

import uuid

import pytest

from comuna_consultations.domain.record import receipt_commitment
from comuna_consultations.storage.models import record_tables
from comuna_consultations.storage.record import log_origin
from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import parse_checkpoint
from comuna_platform.tlog.checkpointer import Checkpointer
from tests.consultations.helpers import ADULT, Stack, close_voting, register_residents, vote, voting_consultation
from tests.support.issuer import TestIssuer
from tests.unit.tlog.test_merkle import mth

pytestmark = pytest.mark.asyncio

C1 = "VE.01.01.C1"
ORIGIN_PREFIX = "comuna.localhost/record"  # the service's default `record_origin`


async def test_ballots_make_a_signed_tiled_log_whose_entries_open_after_the_close(
    stack: Stack, issuer: TestIssuer
) -> None:
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 3)
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    first, second = consultation.candidates[C1]
    receipts = []
    for voter, choice in zip(voters, [first, second, first], strict=True):
        response = await vote(stack, issuer, consultation, C1, choice, voter)
        assert response.status_code == 201, response.text
        receipts.append(response.json()["receipt"])
    client = stack.consultations.client
    base = f"/v1/consultations/{consultation.id}/record"
    assert (await client.get(f"{base}/checkpoint")).json()["code"] == "no_checkpoint"

    signer = note.Signer.generate(ORIGIN_PREFIX)
    checkpointer = Checkpointer(stack.consultations.runtime.db, record_tables, [signer], every=1.0, now=stack.clock.now)
    assert await checkpointer.checkpoint_grown() >= 1
    assert log_origin(ORIGIN_PREFIX, uuid.UUID(consultation.id)) not in await checkpointer.grown()
    served = await client.get(f"{base}/checkpoint")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/plain")
    assert served.headers["cache-control"] == "public, max-age=2"
    body, _ = note.open_note(served.text, [signer.verifier])
    head = parse_checkpoint(body)
    assert head.origin == log_origin(ORIGIN_PREFIX, uuid.UUID(consultation.id)) and head.size >= 1

    # Hash tiles are public during voting; entries are not (they hold batch tallies).
    level0 = tiles.Tile(0, 0, head.size)
    leaf_tile = await client.get(f"{base}/{level0.path}")
    assert leaf_tile.status_code == 200 and leaf_tile.headers["cache-control"].endswith("immutable")
    bundle_path = f"{base}/{tiles.Tile(None, 0, head.size).path}"
    hidden = await client.get(bundle_path)
    assert (hidden.status_code, hidden.json()["code"]) == (409, "record_entries_not_public")

    await close_voting(stack, issuer, consultation)
    bundle = await client.get(bundle_path)
    assert bundle.status_code == 200
    entries = tiles.decode_bundle(bundle.content)
    leaves = [merkle.leaf_hash(e) for e in entries]
    assert leaf_tile.content == b"".join(leaves)
    assert mth(entries) == head.root  # the signed root is the RFC 6962 root of the served entries
    text = "".join(e.decode() for e in entries)
    commune = stack.commune_ids[C1]
    for receipt in receipts:
        assert f"receipt {commune} {receipt_commitment(receipt)}\n" in text
    tallies: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("tally "):
            _, _, choice, count = line.split()
            tallies[choice] = tallies.get(choice, 0) + int(count)
    # Every ballot is tallied in the log, but one whose batch was lone (a quiet moment) waits for
    # a batch to carry it (docs/record.md): those are the writer's pending tallies.
    pending = stack.consultations.app.state.voting.writer.pending_tallies
    assert sum(tallies.values()) + pending == 3
    assert tallies.get(first, 0) <= 2 and tallies.get(second, 0) <= 1


async def test_unknown_tiles_paths_and_consultations_are_404(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    client = stack.consultations.client
    base = f"/v1/consultations/{consultation.id}/record"
    for path in ("tile/0/000", "tile/0/x000/001", "tile/99/000", "tile/entries/00", "tile/0/000.p/256"):
        response = await client.get(f"{base}/{path}")
        assert (response.status_code, response.json()["code"]) == (404, "tile_not_found"), path
    unknown = await client.get(f"/v1/consultations/{uuid.uuid4()}/record/checkpoint")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "consultation_not_found")
    keys = await client.get(f"{base}/keys")
    assert keys.json() == {"origin": log_origin(ORIGIN_PREFIX, uuid.UUID(consultation.id)), "verifier_keys": []}
