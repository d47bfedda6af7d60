"""`comuna-verify receipt`: what a voter's receipt proves, checked from the public record.

The platform answers where the receipt's commitment is (an entry index, a proof, a checkpoint);
none of that is taken on trust: the inclusion proof is recomputed from the public hash tiles
against the latest signed checkpoint, and the entry itself, once entries are public, must hold
the commitment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_verify import entries, merkle, record
from comuna_verify.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint
from comuna_verify.http import Client, UsageError
from comuna_verify.notes import NoteError, PublicKey
from comuna_verify.report import Report
from comuna_verify.state import consistency_problem
from comuna_verify.tiles import WIDTH, EntriesNotPublic, TileError, TileReader

RECEIPT = re.compile(r"[A-Za-z0-9_-]{22}")
DOMAIN = b"comuna-receipt/v1\n"


@dataclass(frozen=True, slots=True)
class Options:
    base: str
    receipt: str
    state: Path | None
    log_keys: Sequence[str]


def commitment_of(receipt: str) -> str:
    """Unpadded base64url of the first 16 bytes of SHA-256("comuna-receipt/v1\\n" || receipt)."""
    return base64.urlsafe_b64encode(hashlib.sha256(DOMAIN + receipt.encode()).digest()[:16]).rstrip(b"=").decode()


def _decode_proof(proof: Any) -> list[bytes]:
    if not isinstance(proof, list):
        raise ValueError("not a list")
    hashes = [base64.b64decode(str(h), validate=True) for h in proof]
    if any(len(h) != merkle.HASH_SIZE for h in hashes):
        raise ValueError("a hash is not 32 bytes")
    return hashes


def _server_proof(
    answer: dict[str, Any], keys: Sequence[PublicKey], index: int, leaf: bytes
) -> tuple[list[str], SignedCheckpoint | None]:
    """The platform's own proof and checkpoint in its answer, checked; (problems, checkpoint)."""
    if answer.get("checkpoint") is None:
        return [], None
    try:
        signed = open_checkpoint(str(answer["checkpoint"]), keys, what="the answer's checkpoint")
    except NoteError as exc:
        return [f"the answer's checkpoint is malformed: {exc}"], None
    problems = list(signed.problems)
    size = signed.checkpoint.size
    if answer.get("tree_size") != size:
        problems.append(f"the answer's tree_size {answer.get('tree_size')} is not its checkpoint's size {size}")
    if answer.get("inclusion_proof") is not None:
        try:
            merkle.verify_inclusion(leaf, index, size, _decode_proof(answer["inclusion_proof"]), signed.checkpoint.root)
        except (ValueError, binascii.Error) as exc:
            problems.append(f"the answer's inclusion proof does not verify: {exc}")
    return problems, signed


def _consistent(a: Checkpoint, b: Checkpoint, reader: TileReader) -> str | None:
    old, new = (a, b) if a.size <= b.size else (b, a)
    return consistency_problem(old, new, reader)


def verify(options: Options) -> Report:
    if RECEIPT.fullmatch(options.receipt) is None:
        raise UsageError("a receipt is 22 characters of base64url (A-Z a-z 0-9 - _); copy it exactly as given")
    client = Client(options.base)
    report = Report()
    commitment = commitment_of(options.receipt)
    report.row("receipt", options.receipt)
    report.row("commitment", commitment)
    report.data.update(receipt=options.receipt, commitment=commitment)
    response = client.get(f"receipts/{options.receipt}")
    if response.status == 404:
        report.mismatches.append("no ballot with this receipt")
        return report
    if response.status != 200:
        raise UsageError(f"{response.url} answered {response.status}: {response.problem()}")
    answer = response.json()
    if not isinstance(answer, dict) or not isinstance(answer.get("entry_index"), int):
        if isinstance(answer, dict) and answer.get("recorded") is False:
            report.mismatches.append("the ballot is stored but not in the log yet; run again in a few seconds")
            return report
        raise UsageError(f"{response.url} is not a receipt answer (no entry_index)")
    if answer.get("commitment") != commitment:
        report.mismatches.append(
            f"the platform names commitment {answer.get('commitment')}, the receipt's is {commitment}"
        )
    index: int = answer["entry_index"]

    keys, origin, problems = record.log_keys(client, options.log_keys)
    report.mismatches.extend(problems)
    latest = record.fetch_checkpoint(client, keys, (), origin)
    report.mismatches.extend(latest.problems)
    checkpoint, reader = latest.checkpoint, TileReader(client)
    report.row("log", f"{checkpoint.origin}, size {checkpoint.size}, signed by {', '.join(latest.signers) or 'NOBODY'}")
    report.row("entry", index)
    report.data.update(entry_index=index, log={"origin": checkpoint.origin, "size": checkpoint.size})
    if options.state is not None:
        report.mismatches.extend(record.check_state(options.state, latest, reader))
    if index >= checkpoint.size:
        report.mismatches.append(
            f"entry {index} is not in the latest checkpoint (size {checkpoint.size}) yet; run again in a few seconds"
        )
        return report

    subtree = reader.subtree_of(checkpoint.size)
    try:
        leaf = subtree(index, index + 1)
        entry = _entry(reader, index, checkpoint.size)
        if entry is not None and merkle.leaf_hash(entry) != leaf:
            report.mismatches.append(f"tile 0: hash at {index} is not the hash of entry {index}")
        leaf = merkle.leaf_hash(entry) if entry is not None else leaf
        merkle.verify_inclusion(
            leaf, index, checkpoint.size, merkle.inclusion_proof(index, checkpoint.size, subtree), checkpoint.root
        )
    except (TileError, merkle.ProofError) as exc:
        report.mismatches.append(f"entry {index} is not proven in the checkpoint of size {checkpoint.size}: {exc}")
        return report
    server_problems, theirs = _server_proof(answer, keys, index, leaf)
    report.mismatches.extend(server_problems)
    if theirs is not None:
        problem = _consistent(theirs.checkpoint, checkpoint, reader)
        if problem:
            report.mismatches.append(f"the answer's checkpoint and the latest one: {problem}")
    _explain(report, entry, index, commitment)
    return report


def _entry(reader: TileReader, index: int, size: int) -> bytes | None:
    n = index // WIDTH
    try:
        return reader.bundle(n, min(WIDTH, size - n * WIDTH))[index % WIDTH]
    except EntriesNotPublic:
        return None


NOT_PROVEN = "which choice is yours: receipts and tallies are separate sorted lists"


def _explain(report: Report, entry: bytes | None, index: int, commitment: str) -> None:
    report.row("stored", f"yes: entry {index} is in the signed log (inclusion proof verified)")
    if entry is None:
        report.row("entry text", "not public until voting has closed everywhere; run again after the close")
        report.row("not proven", NOT_PROVEN)
        report.data.update(stored=True, entry_public=False)
        return
    try:
        kind, _, lines = entries.split_entry(entry)
        if kind != entries.BALLOTS:
            raise entries.EntryError(f"a {kind[:40]} entry, not {entries.BALLOTS}")
        batch = entries.parse_ballots(lines)
    except entries.EntryError as exc:
        report.mismatches.append(f"entry {index} is no ballot batch: {exc}")
        return
    found = next((line for line in lines if line.startswith("receipt ") and line.endswith(f" {commitment}")), None)
    if found is None:
        report.mismatches.append(f"entry {index} does not hold receipt commitment {commitment}")
        report.data.update(stored=False, entry_public=True)
        return
    commune = found.split(" ")[1]
    tallied = sum(batch.tallies.get(commune, {}).values())
    if tallied:
        counted = f"in this batch's tally: one of the {tallied} ballots of commune {commune} in entry {index}"
    else:
        counted = (
            f"with a later batch of commune {commune} that carried it, or in its certified remainder "
            "(this batch was too small to log its own tally)"
        )
    report.row("counted", counted)
    report.row("not proven", NOT_PROVEN)
    report.data.update(stored=True, entry_public=True, commune=commune, batch_ballots=tallied)
