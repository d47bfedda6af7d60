"""The log entries of a consultation's record, parsed (docs: the record's entry formats).

Every entry is UTF-8 text, one item per line, each line ending in "\\n": its type, then
`consultation <id>`, then lines of that type. A malformed entry is an `EntryError` (a
mismatch); ballot batches, by far the most entries, take a fast path that keeps counts only.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

BALLOTS = "comuna-ballots/v1"
OFFLINE = "comuna-offline-ballots/v1"
SHEET = "comuna-tally-sheet/v1"
BULLETIN = "comuna-bulletin/v1"
RESULT = "comuna-result/v1"
CHANNELS = ("online", "table", "paper", "offline")
ELECTRONIC = ("online", "table")
TIE_RULES = ("lower_cost", "earlier_registration", "assembly_priority", "draw")

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COUNT = re.compile(r"0|[1-9][0-9]{0,17}")
SIGNED = re.compile(r"-?(0|[1-9][0-9]{0,17})")
COMMITMENT = re.compile(r"[A-Za-z0-9_-]{22}")
TOKEN = re.compile(r"[^\s]+")
HEX64 = re.compile(r"[0-9a-f]{64}")
HEX = re.compile(r"(?:[0-9a-f]{2})+")

Tally = dict[str, int]  # choice (candidate id, "blank", "null") -> count


class EntryError(ValueError):
    """A malformed entry."""


@dataclass(slots=True)
class Ballots:
    receipts: Counter[str] = field(default_factory=Counter)  # commune -> receipts in this entry
    tallies: dict[str, Tally] = field(default_factory=dict)  # commune -> choice -> n


@dataclass(frozen=True, slots=True)
class Offline:
    commune: str
    table: str
    batch: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class Sheet:
    commune: str
    table: str
    sheet: str
    checked_in: int
    scan: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class Bulletin:
    commune: str
    version: int
    channel: str
    table: str  # "-" for online
    participations: int
    tally: Tally


@dataclass(frozen=True, slots=True)
class Candidate:
    candidate_id: str
    votes: int
    rank: int
    cost: int | None
    registered_at: datetime | None
    priority: int


@dataclass(frozen=True, slots=True)
class Result:
    commune: str
    code: str
    version: int
    roll: int
    participations: int
    tie_break: tuple[str, ...]
    draw_seed: bytes
    candidates: tuple[Candidate, ...]
    blank: int
    null: int
    winner: str | None
    remainder: Tally
    bulletins: int

    @property
    def ballots(self) -> int:
        return sum(c.votes for c in self.candidates) + self.blank + self.null


Entry = Ballots | Offline | Sheet | Bulletin | Result


def count(text: str, what: str) -> int:
    if COUNT.fullmatch(text) is None:
        raise EntryError(f"{what} {text!r} is not a count")
    return int(text)


def uuid_of(text: str, what: str) -> str:
    if UUID.fullmatch(text) is None:
        raise EntryError(f"{what} {text!r} is not a canonical lowercase UUID")
    return text


class _Lines:
    """The lines of one entry after its head, read in order."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines
        self._at = 0

    def one(self, keyword: str, fields: int) -> list[str]:
        if self._at >= len(self._lines):
            raise EntryError(f"missing line {keyword!r}")
        parts = self._lines[self._at].split(" ")
        if parts[0] != keyword or len(parts) != fields + 1 or any(not p for p in parts):
            raise EntryError(f"expected {keyword!r} with {fields} fields, got {self._lines[self._at][:80]!r}")
        self._at += 1
        return parts[1:]

    def many(self, keyword: str, fields: int) -> list[list[str]]:
        found = []
        while self._at < len(self._lines) and self._lines[self._at].startswith(keyword + " "):
            found.append(self.one(keyword, fields))
        return found

    def end(self) -> None:
        if self._at != len(self._lines):
            raise EntryError(f"unexpected line {self._lines[self._at][:80]!r}")


def _tally(lines: _Lines, allowed: tuple[str, ...]) -> Tally:
    tally: Tally = {}
    for choice, n in lines.many("tally", 2):
        if choice not in allowed:
            uuid_of(choice, "candidate")
        if choice in tally:
            raise EntryError(f"choice {choice} tallied twice")
        tally[choice] = count(n, "tally")
    return tally


def split_entry(data: bytes) -> tuple[str, str, list[str]]:
    """(type, consultation id, the other lines) of an entry; EntryError if not text lines."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise EntryError("not UTF-8") from exc
    if not text.endswith("\n") or "\r" in text:
        raise EntryError("lines must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 2 or not lines[1].startswith("consultation "):
        raise EntryError("the second line must be 'consultation <id>'")
    return lines[0], lines[1][len("consultation ") :], lines[2:]


def parse(kind: str, lines: list[str]) -> Entry:
    """The entry of a known type; KeyError for an unknown one."""
    return _PARSERS[kind](lines)


def parse_ballots(lines: list[str]) -> Ballots:
    """Fast path (millions of receipt lines): fixed-width receipt lines are checked by shape."""
    entry = Ballots()
    receipts = entry.receipts
    at = 0
    while at < len(lines) and lines[at].startswith("receipt "):
        line = lines[at]
        # "receipt " + 36-char commune id + " " + 22-char commitment
        if len(line) != 67 or line[44] != " " or COMMITMENT.fullmatch(line, 45) is None:
            raise EntryError(f"malformed receipt line {line[:80]!r}")
        commune = line[8:44]
        if commune not in receipts:  # validated once per entry, not once per line
            uuid_of(commune, "commune")
        receipts[commune] += 1
        at += 1
    for line in lines[at:]:
        parts = line.split(" ")
        if len(parts) != 4 or parts[0] != "tally":
            raise EntryError(f"expected a receipt or tally line, got {line[:80]!r}")
        commune = uuid_of(parts[1], "commune")
        choice = parts[2] if parts[2] == "blank" else uuid_of(parts[2], "candidate")
        tally = entry.tallies.setdefault(commune, {})
        if choice in tally:
            raise EntryError(f"commune {commune}: choice {choice} tallied twice")
        tally[choice] = count(parts[3], "tally")
    return entry


def parse_offline(lines: list[str]) -> Offline:
    reader = _Lines(lines)
    commune = uuid_of(reader.one("commune", 1)[0], "commune")
    table = reader.one("table", 1)[0]
    batch = reader.one("batch", 1)[0]
    tally = _tally(reader, ("blank", "null"))
    reader.end()
    return Offline(commune, table, batch, tally)


def parse_sheet(lines: list[str]) -> Sheet:
    reader = _Lines(lines)
    commune = uuid_of(reader.one("commune", 1)[0], "commune")
    table = reader.one("table", 1)[0]
    sheet = reader.one("sheet", 1)[0]
    checked_in = count(reader.one("checked-in", 1)[0], "checked-in")
    scan = reader.one("scan", 1)[0]
    if HEX64.fullmatch(scan) is None:
        raise EntryError("scan is not a SHA-256 in hex")
    tally = _tally(reader, ("blank", "null"))
    reader.end()
    return Sheet(commune, table, sheet, checked_in, scan, tally)


def parse_bulletin(lines: list[str]) -> Bulletin:
    reader = _Lines(lines)
    commune = uuid_of(reader.one("commune", 1)[0], "commune")
    version = count(reader.one("version", 1)[0], "version")
    channel = reader.one("channel", 1)[0]
    if channel not in CHANNELS:
        raise EntryError(f"unknown channel {channel!r}")
    table = reader.one("table", 1)[0]
    if (channel == "online") != (table == "-"):
        raise EntryError("the online channel, and only it, has table '-'")
    participations = count(reader.one("participations", 1)[0], "participations")
    tally = _tally(reader, ("blank", "null"))
    reader.end()
    return Bulletin(commune, version, channel, table, participations, tally)


def _signed(text: str, what: str) -> int:
    if SIGNED.fullmatch(text) is None:
        raise EntryError(f"{what} {text!r} is not a number")
    return int(text)


def _optional_int(text: str, what: str) -> int | None:
    return None if text == "-" else count(text, what)


def _timestamp(text: str) -> datetime | None:
    if text == "-":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EntryError(f"registered_at {text!r} is not ISO-8601") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # the format says UTC


def parse_result(lines: list[str]) -> Result:
    reader = _Lines(lines)
    commune, code = reader.one("commune", 2)
    uuid_of(commune, "commune")
    version = count(reader.one("version", 1)[0], "version")
    roll = count(reader.one("roll", 1)[0], "roll")
    participations = count(reader.one("participations", 1)[0], "participations")
    rules = tuple(reader.one("tie-break", 1)[0].split(","))
    if any(r not in TIE_RULES for r in rules) or len(set(rules)) != len(rules):
        raise EntryError(f"tie-break {','.join(rules)!r} is not distinct rules among {', '.join(TIE_RULES)}")
    seed = reader.one("draw-seed", 1)[0]
    if HEX.fullmatch(seed) is None:
        raise EntryError("draw-seed is not hex")
    candidates = []
    for candidate_id, votes, rank, cost, registered, priority in reader.many("candidate", 6):
        candidates.append(
            Candidate(
                uuid_of(candidate_id, "candidate"),
                count(votes, "votes"),
                count(rank, "rank"),
                _optional_int(cost, "cost"),
                _timestamp(registered),
                _signed(priority, "assembly priority"),
            )
        )
    blank = count(reader.one("blank", 1)[0], "blank")
    null = count(reader.one("null", 1)[0], "null")
    winner = reader.one("winner", 1)[0]
    if winner != "none":
        uuid_of(winner, "winner")
    remainder: Tally = {}
    for choice, n in reader.many("remainder", 2):
        if choice != "blank":
            uuid_of(choice, "remainder candidate")
        remainder[choice] = remainder.get(choice, 0) + _signed(n, "remainder")  # negative is checked (and named) later
    bulletins = count(reader.one("bulletins", 1)[0], "bulletins")
    reader.end()
    return Result(
        commune,
        code,
        version,
        roll,
        participations,
        rules,
        bytes.fromhex(seed),
        tuple(candidates),
        blank,
        null,
        None if winner == "none" else winner,
        remainder,
        bulletins,
    )


_PARSERS: dict[str, Callable[[list[str]], Entry]] = {
    BALLOTS: parse_ballots,
    OFFLINE: parse_offline,
    SHEET: parse_sheet,
    BULLETIN: parse_bulletin,
    RESULT: parse_result,
}
