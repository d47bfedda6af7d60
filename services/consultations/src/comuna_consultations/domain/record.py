"""What a consultation's public record (its transparency log) holds, and how it is spelled.

Ballots enter the log by group-commit batch, in the transaction that stores them, in a
`comuna-ballots/v1` entry:

    comuna-ballots/v1
    consultation <consultation id>
    receipt <commune id> <receipt commitment>      one per ballot first stored here, sorted
    tally <commune id> <candidate id | blank> <n>  the batch's count per choice, sorted

A receipt commitment is the first 16 bytes of SHA-256("comuna-receipt/v1\\n" || receipt),
unpadded base64url: the voter can find it, nobody can recover the receipt from it. Receipts
and tallies are separate and sorted, so an entry says which receipts are in a batch and what
the batch chose, never who chose what: a receipt proves "my ballot is one of these", no more
(docs/record.md, "What a receipt proves"). A batch of fewer than the minimum size (a quiet
moment, see `voting.group_commit`) logs its receipts at once and its tally with the batch that
carries its ballot, where it is one of several.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

BALLOTS_V1 = "comuna-ballots/v1"
# The origin prefix of a deployment that did not configure its own (`record_origin`).
DEFAULT_RECORD_ORIGIN = "comuna.localhost/record"
# Bytes of one log entry at most (the C2SP bundles' limit is 65,535; the lines are ASCII).
ENTRY_BUDGET = 60_000
_RECEIPT_DOMAIN = b"comuna-receipt/v1\n"


def receipt_commitment(receipt: str) -> str:
    digest = hashlib.sha256(_RECEIPT_DOMAIN + receipt.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


Choice = tuple[uuid.UUID, uuid.UUID | None]  # (commune, candidate or None: blank)


@dataclass(frozen=True, slots=True)
class BallotsEntry:
    consultation_id: uuid.UUID
    receipts: tuple[tuple[uuid.UUID, str], ...] = ()  # (commune, receipt commitment)
    tallies: dict[Choice, int] = field(default_factory=dict)

    def encode(self) -> list[EncodedEntry]:
        """The entry as one or more log entries: a log entry holds at most 64 KiB, so a large
        batch continues in the next entries (each with the same two head lines)."""
        head = f"{BALLOTS_V1}\nconsultation {self.consultation_id}\n"
        lines: list[tuple[str, str | None]] = [
            (f"receipt {commune} {commitment}\n", commitment) for commune, commitment in sorted(self.receipts)
        ]
        lines += [
            (f"tally {commune} {candidate or 'blank'} {count}\n", None)
            for (commune, candidate), count in sorted(self.tallies.items(), key=lambda item: _choice_key(item[0]))
        ]
        entries: list[EncodedEntry] = []
        text, commitments = head, list[str]()
        for line, commitment in lines:
            if len(text) + len(line) > ENTRY_BUDGET:
                entries.append(EncodedEntry(text.encode(), tuple(commitments)))
                text, commitments = head, list[str]()
            text += line
            if commitment is not None:
                commitments.append(commitment)
        entries.append(EncodedEntry(text.encode(), tuple(commitments)))
        return entries


@dataclass(frozen=True, slots=True)
class EncodedEntry:
    data: bytes
    commitments: tuple[str, ...]  # the receipt commitments this log entry holds


def _choice_key(choice: Choice) -> tuple[str, str]:
    commune, candidate = choice
    return str(commune), "" if candidate is None else str(candidate)


def new_receipt() -> str:
    """A ballot's receipt: 128 random bits, unpadded base64url (22 characters). Given to the
    voter only; stored nowhere, its commitment is in the log."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


RECEIPT_PATTERN = r"^[A-Za-z0-9_-]{22}$"


def ballots_entry(
    consultation_id: uuid.UUID, receipts: Iterable[tuple[uuid.UUID, str]], choices: Iterable[Choice]
) -> BallotsEntry:
    """The entry of one batch: `receipts` as (commune, receipt), `choices` the tallied ballots."""
    return BallotsEntry(
        consultation_id,
        tuple((commune, receipt_commitment(receipt)) for commune, receipt in receipts),
        dict(Counter(choices)),
    )
