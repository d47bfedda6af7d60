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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

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
TallyLine = tuple[uuid.UUID, uuid.UUID | None, int]  # (commune, candidate or None: blank, count)


@dataclass(frozen=True, slots=True)
class BallotsEntry:
    consultation_id: uuid.UUID
    receipts: tuple[tuple[uuid.UUID, str], ...] = ()  # (commune, receipt commitment)
    tallies: dict[Choice, int] = field(default_factory=dict)

    def encode(self) -> list[EncodedEntry]:
        """The entry as one or more log entries: a log entry holds at most 64 KiB, so a large
        batch continues in the next entries (each with the same two head lines)."""
        head = f"{BALLOTS_V1}\nconsultation {self.consultation_id}\n"
        lines: list[tuple[str, str | TallyLine]] = [
            (f"receipt {commune} {commitment}\n", commitment) for commune, commitment in sorted(self.receipts)
        ]
        lines += [
            (f"tally {commune} {candidate or 'blank'} {count}\n", (commune, candidate, count))
            for (commune, candidate), count in sorted(self.tallies.items(), key=lambda item: _choice_key(item[0]))
        ]
        entries: list[EncodedEntry] = []
        text, commitments, tallies = head, list[str](), list[TallyLine]()
        for line, item in lines:
            if len(text) + len(line) > ENTRY_BUDGET:
                entries.append(EncodedEntry(text.encode(), tuple(commitments), tuple(tallies)))
                text, commitments, tallies = head, list[str](), list[TallyLine]()
            text += line
            if isinstance(item, str):
                commitments.append(item)
            else:
                tallies.append(item)
        entries.append(EncodedEntry(text.encode(), tuple(commitments), tuple(tallies)))
        return entries


@dataclass(frozen=True, slots=True)
class EncodedEntry:
    data: bytes
    commitments: tuple[str, ...]  # the receipt commitments this log entry holds
    tallies: tuple[TallyLine, ...] = ()  # and its tally lines


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


# --- the other entries (docs/record.md, "Entries") ---------------------------------------------
OFFLINE_BALLOTS_V1 = "comuna-offline-ballots/v1"
TALLY_SHEET_V1 = "comuna-tally-sheet/v1"
BULLETIN_V1 = "comuna-bulletin/v1"
RESULT_V1 = "comuna-result/v1"


@dataclass(frozen=True, slots=True)
class Choices:
    """Counts of one table, batch or commune: per candidate, blank and null."""

    votes: Mapping[uuid.UUID, int]
    blank: int = 0
    null: int = 0

    def lines(self) -> str:
        """`tally <candidate | blank | null> <n>` lines: candidates by id, then blank, then null
        (zero counts included, so every candidate of a table appears on its bulletin)."""
        text = "".join(f"tally {candidate} {n}\n" for candidate, n in sorted(self.votes.items(), key=_by_id))
        text += f"tally blank {self.blank}\n"
        return text + f"tally null {self.null}\n"


def _by_id(item: tuple[uuid.UUID, int]) -> str:
    return str(item[0])


def _head(kind: str, consultation_id: uuid.UUID) -> str:
    return f"{kind}\nconsultation {consultation_id}\n"


def offline_ballots_entry(
    consultation_id: uuid.UUID, commune_id: uuid.UUID, table_code: str, *, batch_id: uuid.UUID, choices: Choices
) -> bytes:
    """One synced batch of an offline table, as it was counted."""
    return (
        _head(OFFLINE_BALLOTS_V1, consultation_id)
        + f"commune {commune_id}\ntable {table_code}\nbatch {batch_id}\n"
        + choices.lines()
    ).encode()


def tally_sheet_entry(
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    table_code: str,
    *,
    sheet_id: uuid.UUID,
    checked_in: int,
    scan_sha256: bytes,
    choices: Choices,
) -> bytes:
    """A paper table's tally sheet, as its second officer confirmed it."""
    return (
        _head(TALLY_SHEET_V1, consultation_id)
        + f"commune {commune_id}\ntable {table_code}\nsheet {sheet_id}\nchecked-in {checked_in}\n"
        + f"scan {scan_sha256.hex()}\n"
        + choices.lines()
    ).encode()


@dataclass(frozen=True, slots=True)
class Bulletin:
    """A table's result at a commune's certification (the online channel is one "table")."""

    commune_id: uuid.UUID
    version: int
    channel: str
    table_code: str | None
    participations: int
    choices: Choices

    def text(self, consultation_id: uuid.UUID) -> str:
        return (
            _head(BULLETIN_V1, consultation_id)
            + f"commune {self.commune_id}\nversion {self.version}\nchannel {self.channel}\n"
            + f"table {self.table_code or '-'}\nparticipations {self.participations}\n"
            + self.choices.lines()
        )


@dataclass(frozen=True, slots=True)
class RankedLine:
    candidate_id: uuid.UUID
    votes: int
    rank: int
    estimated_cost: int | None
    registered_at: datetime | None
    assembly_priority: int


@dataclass(frozen=True, slots=True)
class ResultEntry:
    """A commune's certification, with everything its ranking needs to be recomputed."""

    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    version: int
    roll_size: int
    participations: int
    tie_break: Sequence[str]
    draw_seed: bytes
    candidates: Sequence[RankedLine]
    blank: int
    null: int
    winner: uuid.UUID | None
    # Electronic ballots counted whose tally no comuna-ballots/v1 entry holds (a lone ballot
    # carried at the close); negative only if the stored ballots lost some the record holds.
    remainder: Mapping[uuid.UUID | None, int]
    bulletins: int

    def encode(self) -> bytes:
        lines = [
            f"commune {self.commune_id} {self.commune_code}",
            f"version {self.version}",
            f"roll {self.roll_size}",
            f"participations {self.participations}",
            f"tie-break {','.join(self.tie_break)}",
            f"draw-seed {self.draw_seed.hex()}",
        ]
        lines += [
            f"candidate {c.candidate_id} {c.votes} {c.rank} "
            f"{'-' if c.estimated_cost is None else c.estimated_cost} {_instant(c.registered_at)} {c.assembly_priority}"
            for c in sorted(self.candidates, key=lambda c: c.rank)
        ]
        lines += [f"blank {self.blank}", f"null {self.null}", f"winner {self.winner or 'none'}"]
        lines += [
            f"remainder {choice or 'blank'} {n}"
            for choice, n in sorted(self.remainder.items(), key=lambda item: "" if item[0] is None else str(item[0]))
            if n
        ]
        lines.append(f"bulletins {self.bulletins}")
        return (_head(RESULT_V1, self.consultation_id) + "".join(line + "\n" for line in lines)).encode()


def _instant(at: datetime | None) -> str:
    """UTC, microseconds always: the text sorts as the instants do."""
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
