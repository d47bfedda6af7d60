"""One chunk of a census import, checked and hashed: what the worker processes compute.

Pure and CPU-bound, so `census_import` runs it over chunks in a process pool, one worker per
core, in two steps: `prepare` checks and hashes a chunk (~20 µs a row), then `roll_bases`
computes the roll base point (~120 µs a row, most of an import's CPU) only for the rows whose
person the census does not already hold with a roll base: a re-import or a file of moves costs
no points. A worker holds the key ring and the roll secret from its initialiser, never from the
rows it receives. Errors name the line and the field only, never the document; the documents a
step returns for the next one stay in the importer's memory.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from comuna_identity.domain.census import Census
from comuna_identity.domain.census_keys import KeyRing
from comuna_identity.vocabulary import ResidentStatus
from comuna_platform.bulk import BulkRow, RowError
from comuna_platform.documents import Document, normalise_document
from comuna_platform.errors import InvalidInput

COLUMNS = ("document_type", "document_number", "birth_date", "council_code", "valid_from", "status")
REQUIRED_COLUMNS = COLUMNS[:5]
_CODE = re.compile(r"^[A-Z0-9]+(\.[A-Z0-9]+)*$")
_STATUSES = frozenset(s.value for s in ResidentStatus)
EARLIEST_BIRTH = date(1900, 1, 1)

# (line, key_id, hash, roll_base, birth_date, council_code, valid_from, status): a staging row.
# roll_base None: the census already holds this person's (it never changes for a document).
StagedRow = tuple[int, int, bytes, bytes | None, date, str, date, str | None]
# (line, key_id, hash): the record's hash under an older generation still in use.
OlderLayer = tuple[int, int, bytes]


@dataclass
class Prepared:
    rows: list[StagedRow] = field(default_factory=list)
    # The normalised document of each staged row, same order, for `roll_bases`.
    documents: list[Document] = field(default_factory=list)
    older: list[OlderLayer] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # CPU seconds in this chunk: parsing, normalising and HMAC (the points are `RollBases.seconds`).
    parse_seconds: float = 0.0

    def with_roll_bases(self, needed: Sequence[int], bases: Sequence[bytes]) -> list[StagedRow]:
        """The staged rows, with `bases[i]` as the roll base of row `needed[i]`."""
        rows = list(self.rows)
        for index, base in zip(needed, bases, strict=True):
            line, key_id, digest, _, birth, council_code, since, status = rows[index]
            rows[index] = (line, key_id, digest, base, birth, council_code, since, status)
        return rows


@dataclass(frozen=True)
class RollBases:
    bases: list[bytes]
    seconds: float


# The worker process's census (one per process, set by the pool's initialiser).
_worker: dict[str, Census] = {}


def init_worker(keys: dict[int, bytes], current: int, roll_secret: bytes) -> None:
    """Process pool initialiser: the secrets arrive once per worker."""
    _worker["census"] = Census(KeyRing(keys, current), roll_secret)


def prepare_in_worker(rows: Sequence[BulkRow], generations: Sequence[int], keep_older: bool, today: date) -> Prepared:
    return prepare(_worker["census"], rows, generations, keep_older, today)


def roll_bases_in_worker(documents: Sequence[Document]) -> RollBases:
    return roll_bases(_worker["census"], documents)


def roll_bases(census: Census, documents: Sequence[Document]) -> RollBases:
    started = time.process_time()
    bases = [census.roll_base(document) for document in documents]
    return RollBases(bases, time.process_time() - started)


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        return None


def prepare(
    census: Census,
    rows: Sequence[BulkRow],
    generations: Sequence[int],
    keep_older: bool,
    today: date,
) -> Prepared:
    """Check and hash `rows` (roll bases left None). `keep_older`: also return the hashes under
    the older generations (only useful while some records are still under them, i.e. during a
    rotation)."""
    out = Prepared()
    parse_started = time.process_time()
    for row in rows:
        line, fields = row.line, row.fields
        doc_type, number, birth_text, council_code, from_text = (fields.get(name, "") for name in REQUIRED_COLUMNS)
        status = fields.get("status", "").lower() or None
        errors_before = len(out.errors)
        try:
            document = normalise_document(number, doc_type or None)
        except InvalidInput as exc:
            out.errors.append(RowError(line, "document_invalid", exc.detail, "document_number"))
            document = None
        birth = _date(birth_text)
        if birth is None:
            out.errors.append(RowError(line, "date_invalid", "not a date (YYYY-MM-DD)", "birth_date"))
        elif not EARLIEST_BIRTH <= birth <= today:
            out.errors.append(RowError(line, "birth_date_invalid", "birth date is not plausible", "birth_date"))
        since = _date(from_text)
        if since is None:
            out.errors.append(RowError(line, "date_invalid", "not a date (YYYY-MM-DD)", "valid_from"))
        elif since > today or (birth is not None and since < birth):
            out.errors.append(
                RowError(
                    line, "valid_from_invalid", "valid_from must be between the birth date and today", "valid_from"
                )
            )
        if not _CODE.match(council_code):
            out.errors.append(RowError(line, "council_invalid", "not a territory code", "council_code"))
        if status is not None and status not in _STATUSES:
            out.errors.append(
                RowError(line, "status_invalid", f"status must be one of {', '.join(sorted(_STATUSES))}", "status")
            )
        if len(out.errors) > errors_before or document is None or birth is None or since is None:
            continue
        layers = census.ring.layers(document, generations)
        key_id, digest = layers[-1]
        out.rows.append((line, key_id, digest, None, birth, council_code, since, status))
        out.documents.append(document)
        if keep_older:
            out.older.extend((line, older_id, older_hash) for older_id, older_hash in layers[:-1])
    out.parse_seconds = time.process_time() - parse_started
    return out
