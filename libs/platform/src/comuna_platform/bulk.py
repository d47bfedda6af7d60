"""Bulk files, read row by row: CSV with a header, or JSON (an array of objects, or JSON Lines).

Imports of the territory register and the census share these rules, so they live once here:

* Rows are yielded one at a time from a stream of bytes (a request body, a file), so memory
  does not grow with the file.
* Every row carries the number people look for in their file: the CSV line where the record
  starts (the header is line 1), or the item's position in JSON (1-based).
* A file is accepted or refused whole. Callers collect every bad row in `RowErrors` and raise
  it at the end, so one answer lists them all. A file that cannot be read at all (not UTF-8, a
  missing column, a record too long to be real) is refused at once.
* Error messages name the line and the column, never the value: values may be document
  numbers.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import ijson

from comuna_platform.errors import InvalidInput, ProblemError

# A record longer than this is not a register row; refusing it bounds the memory of one row.
MAX_RECORD_BYTES = 64 * 1024
# How many errors an answer lists; the total is always given.
MAX_LISTED_ERRORS = 1000
_READ_SIZE = 64 * 1024


class BulkFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


class UnsupportedFormat(ProblemError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


@dataclass(frozen=True, slots=True)
class BulkRow:
    # CSV: the line where the record starts (header = 1). JSON: the item's 1-based position.
    line: int
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    code: str
    detail: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "code": self.code, "detail": self.detail}
        if self.field is not None:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.detail} ({self.code})"


class BulkInputError(InvalidInput):
    """The whole file is refused; `errors` lists why, line by line."""

    code = "import_invalid"

    def __init__(self, errors: Sequence[RowError], total: int | None = None) -> None:
        total = len(errors) if total is None else total
        listed = list(errors[:MAX_LISTED_ERRORS])
        more = f" (the first {len(listed)} are listed)" if total > len(listed) else ""
        super().__init__(
            f"the file was refused, nothing was written: {total} bad row(s){more}",
            errors=[e.as_dict() for e in listed],
            error_count=total,
        )
        self.errors = listed
        self.error_count = total


class RowErrors:
    """Collects the bad rows of one file; `raise_if_any()` refuses the file with all of them."""

    def __init__(self) -> None:
        self._errors: list[RowError] = []
        self.count = 0

    def add(self, line: int, code: str, detail: str, field: str | None = None) -> None:
        self.count += 1
        if len(self._errors) < MAX_LISTED_ERRORS:
            self._errors.append(RowError(line, code, detail, field))

    def extend(self, errors: Iterable[RowError]) -> None:
        for error in errors:
            self.add(error.line, error.code, error.detail, error.field)

    def __bool__(self) -> bool:
        return self.count > 0

    def raise_if_any(self) -> None:
        if self.count:
            raise BulkInputError(sorted(self._errors, key=lambda e: e.line), self.count)


def format_of(
    *, content_type: str | None = None, path: Path | str | None = None, declared: str | None = None
) -> BulkFormat:
    """The format named explicitly, else by the media type, else by the file's extension."""
    if declared:
        try:
            return BulkFormat(declared.lower())
        except ValueError:
            raise UnsupportedFormat(f"unknown format {declared[:20]!r}: use csv or json") from None
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media in ("text/csv", "application/csv"):
            return BulkFormat.CSV
        if media in ("application/json", "application/x-ndjson", "application/jsonl"):
            return BulkFormat.JSON
        raise UnsupportedFormat("send the file as text/csv or application/json")
    if path is not None:
        suffix = Path(path).suffix.lower()
        if suffix == ".csv":
            return BulkFormat.CSV
        if suffix in (".json", ".jsonl", ".ndjson"):
            return BulkFormat.JSON
    raise UnsupportedFormat("cannot tell the file's format: name it .csv or .json, or say --format")


def _fatal(line: int, code: str, detail: str, field: str | None = None) -> BulkInputError:
    return BulkInputError([RowError(line, code, detail, field)])


class _Columns:
    """Checks a header once, then turns records into dicts of the known columns."""

    def __init__(self, header: Sequence[str], columns: Sequence[str], required: Sequence[str], *, line: int) -> None:
        names = [name.strip().lower() for name in header]
        errors = RowErrors()
        for name in names:
            if name not in columns:
                errors.add(line, "column_unknown", f"unknown column {name[:40]!r}; expected {', '.join(columns)}")
        for name in required:
            if name not in names:
                errors.add(line, "column_missing", f"the column {name} is missing", name)
        if len(set(names)) != len(names):
            errors.add(line, "column_repeated", "a column appears twice")
        errors.raise_if_any()
        self.names = names

    def row(self, line: int, values: Sequence[str]) -> BulkRow:
        if len(values) != len(self.names):
            raise _fatal(line, "row_shape", f"expected {len(self.names)} values, found {len(values)}")
        return BulkRow(line, dict(zip(self.names, map(str.strip, values), strict=True)))


class _CsvRecords:
    """Splits decoded text into whole CSV records (a quoted field may hold newlines)."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending = ""
        self._line = 1  # physical line where `_pending` starts
        self._started = False

    def feed(self, chunk: bytes, *, final: bool = False) -> Iterator[tuple[int, str]]:
        try:
            self._pending += self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise _fatal(self._line, "encoding_invalid", "the file is not UTF-8 text") from None
        # Split on every newline at once (str.split is C); a record whose quotes are still open
        # at the end of a line continues on the next one. Scanning or slicing the buffer per
        # record would cost O(buffer) each time: ~13 µs a row at a million rows.
        *lines, self._pending = self._pending.split("\n")
        parts: list[str] = []
        quotes = 0
        for text in lines:
            parts.append(text)
            quotes += text.count('"')
            if quotes % 2:
                continue
            start = self._line
            self._line += len(parts)
            record = parts[0] if len(parts) == 1 else "\n".join(parts)
            parts, quotes = [], 0
            if record.strip():
                yield start, record.rstrip("\r")
        if parts:  # an open quoted field: the record waits for more text
            self._pending = "\n".join([*parts, self._pending])
        if len(self._pending) > MAX_RECORD_BYTES:
            raise _fatal(self._line, "row_too_long", f"a record is longer than {MAX_RECORD_BYTES} bytes")
        if final and self._pending.strip():
            record, self._pending = self._pending, ""
            yield self._line, record.rstrip("\r\n")


def _csv_values(line: int, record: str) -> list[str]:
    try:
        rows = list(csv.reader([record], strict=True))
    except csv.Error:
        raise _fatal(line, "csv_invalid", "the record is not valid CSV") from None
    return rows[0] if rows else []


def _csv_batch(batch: list[tuple[int, str]]) -> Iterator[tuple[int, list[str]]]:
    """The values of whole records, parsed by one csv.reader (one reader per record costs more
    than the parsing); a bad record is named by its line."""
    try:
        for (line, _), values in zip(batch, csv.reader([record for _, record in batch], strict=True), strict=True):
            yield line, values
    except csv.Error:
        for line, record in batch:
            _csv_values(line, record)
        raise _fatal(batch[0][0], "csv_invalid", "the record is not valid CSV") from None


def _json_fields(line: int, item: Any, allowed: Sequence[str]) -> dict[str, str]:
    if not isinstance(item, dict):
        raise _fatal(line, "item_invalid", "each item must be a JSON object")
    fields: dict[str, str] = {}
    for key, value in item.items():
        if key not in allowed:
            raise _fatal(line, "column_unknown", f"unknown field {str(key)[:40]!r}; expected {', '.join(allowed)}")
        if isinstance(value, dict | list):
            raise _fatal(line, "item_invalid", "field values must be strings or numbers", str(key))
        text = "" if value is None else str(value).strip()
        if not _is_text(text):
            raise _fatal(line, "item_invalid", "field values must be valid text", str(key))
        fields[key] = text
    return fields


def _is_text(value: str) -> bool:
    """False for strings no database or file can hold: lone surrogates (`"\udfff"` in JSON)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _AsyncChunks:
    """An async byte source shaped like a file, for ijson's async parser."""

    def __init__(self, chunks: AsyncIterator[bytes], first: bytes) -> None:
        self._chunks = chunks
        self._buffer = first

    async def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                self._buffer = await anext(self._chunks)
            except StopAsyncIteration:
                return b""
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


async def read_rows(
    chunks: AsyncIterator[bytes], fmt: BulkFormat, *, columns: Sequence[str], required: Sequence[str]
) -> AsyncIterator[BulkRow]:
    """The rows of a streamed file, one at a time, with their line numbers."""
    if fmt is BulkFormat.CSV:
        records = _CsvRecords()
        header: _Columns | None = None
        final = False
        stream = aiter(chunks)
        while not final:
            try:
                chunk = await anext(stream)
            except StopAsyncIteration:
                chunk, final = b"", True
            batch = list(records.feed(chunk, final=final))
            if header is None and batch:
                line, record = batch.pop(0)
                header = _Columns(_csv_values(line, record), columns, required, line=line)
            if header is not None:
                for line, values in _csv_batch(batch):
                    yield header.row(line, values)
        if header is None:
            raise _fatal(1, "file_empty", "the file is empty: a header line is expected")
        return
    first = b""
    async for chunk in chunks:
        first += chunk
        if first.strip():
            break
    stripped = first.lstrip()
    if not stripped:
        raise _fatal(1, "file_empty", "the file is empty")
    if stripped.startswith(b"["):
        source = _AsyncChunks(chunks, first)
        number = 0
        try:
            async for item in ijson.items(source, "item", use_float=True):
                number += 1
                yield _required_present(number, _json_fields(number, item, columns), required)
        except (ijson.JSONError, UnicodeError):
            # UnicodeError: bytes that are not UTF-8, or an escaped lone surrogate (`"\udfff"`).
            raise _fatal(number + 1, "json_invalid", "the file is not valid JSON") from None
        return
    # JSON Lines: one object per line.
    async for line, text in _json_lines(first, chunks):
        yield _required_present(line, _json_fields(line, _parse_json(line, text), columns), required)


async def _json_lines(first: bytes, chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    splitter = _LineSplitter()
    for item in splitter.feed(first):
        yield item
    async for chunk in chunks:
        for item in splitter.feed(chunk):
            yield item
    for item in splitter.feed(b"", final=True):
        yield item


class _LineSplitter:
    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._pending = ""
        self._line = 1

    def feed(self, chunk: bytes, *, final: bool = False) -> Iterator[tuple[int, str]]:
        try:
            self._pending += self._decoder.decode(chunk, final=final)
        except UnicodeDecodeError:
            raise _fatal(self._line, "encoding_invalid", "the file is not UTF-8 text") from None
        *complete, self._pending = self._pending.split("\n")
        for text in complete:
            line, self._line = self._line, self._line + 1
            if text.strip():
                yield line, text
        if len(self._pending) > MAX_RECORD_BYTES:
            raise _fatal(self._line, "row_too_long", f"a record is longer than {MAX_RECORD_BYTES} bytes")
        if final and self._pending.strip():
            text, self._pending = self._pending, ""
            yield self._line, text


def _parse_json(line: int, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise _fatal(line, "json_invalid", "the line is not valid JSON") from None


def _required_present(line: int, fields: dict[str, str], required: Sequence[str]) -> BulkRow:
    for name in required:
        fields.setdefault(name, "")
    return BulkRow(line, fields)


async def chunks_of_file(stream: BinaryIO, size: int = _READ_SIZE) -> AsyncIterator[bytes]:
    """A file's bytes as an async stream of chunks (for the command line path)."""
    while chunk := stream.read(size):
        yield chunk


async def read_file_rows(
    path: Path, fmt: BulkFormat | None = None, *, columns: Sequence[str], required: Sequence[str]
) -> AsyncIterator[BulkRow]:
    """The rows of a file on disk (format from its extension unless given)."""
    chosen = fmt or format_of(path=path)
    with path.open("rb") as stream:
        async for row in read_rows(chunks_of_file(stream), chosen, columns=columns, required=required):
            yield row
