"""One chunk of a census import, checked and hashed: what the worker processes compute.

Pure and CPU-bound (the roll base point, ~140 µs a resident, is most of an import's CPU), so
`census_import` runs it over chunks in a process pool, one worker per core. A worker holds the
key ring and the roll secret from its initialiser, never from the rows it receives. Nothing it
returns holds a document number: errors name the line and the field only.
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
from comuna_platform.documents import normalise_document
from comuna_platform.errors import InvalidInput

COLUMNS = ("document_type", "document_number", "birth_date", "council_code", "valid_from", "status")
REQUIRED_COLUMNS = COLUMNS[:5]
_CODE = re.compile(r"^[A-Z0-9]+(\.[A-Z0-9]+)*$")
_STATUSES = frozenset(s.value for s in ResidentStatus)
EARLIEST_BIRTH = date(1900, 1, 1)

# (line, key_id, hash, roll_base, birth_date, council_code, valid_from, status): a staging row.
StagedRow = tuple[int, int, bytes, bytes, date, str, date, str | None]
# (line, key_id, hash): the record's hash under an older generation still in use.
OlderLayer = tuple[int, int, bytes]


@dataclass
class Prepared:
    rows: list[StagedRow] = field(default_factory=list)
    older: list[OlderLayer] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # CPU seconds in this chunk: parsing, normalising and HMAC; roll base point multiplication.
    parse_seconds: float = 0.0
    point_seconds: float = 0.0


# The worker process's census (one per process, set by the pool's initialiser).
_worker: dict[str, Census] = {}


def init_worker(keys: dict[int, bytes], current: int, roll_secret: bytes) -> None:
    """Process pool initialiser: the secrets arrive once per worker."""
    _worker["census"] = Census(KeyRing(keys, current), roll_secret)


def prepare_in_worker(rows: Sequence[BulkRow], generations: Sequence[int], keep_older: bool, today: date) -> Prepared:
    return prepare(_worker["census"], rows, generations, keep_older, today)


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
    """Check and hash `rows`. `keep_older`: also return the hashes under the older generations
    (only useful while some records are still under them, i.e. during a rotation)."""
    out = Prepared()
    parse_started = time.process_time()
    point_seconds = 0.0
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
        point_started = time.process_time()
        roll_base = census.roll_base(document)
        point_seconds += time.process_time() - point_started
        key_id, digest = layers[-1]
        out.rows.append((line, key_id, digest, roll_base, birth, council_code, since, status))
        if keep_older:
            out.older.extend((line, older_id, older_hash) for older_id, older_hash in layers[:-1])
    out.point_seconds = point_seconds
    out.parse_seconds = time.process_time() - parse_started - point_seconds
    return out
