"""Rows of a census CSV as they stream in: (line number, fields), never the whole file in memory.

`document_type,document_number,birth_date,council_code,valid_from[,status]`, UTF-8, an optional
header line. Fields are never quoted across lines (none of these columns holds a newline).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from pathlib import Path

from comuna_identity.domain.census_prepare import COLUMNS
from comuna_platform.errors import InvalidInput

MAX_LINE_BYTES = 4096
_BLOCK = 1 << 20


async def csv_rows(blocks: AsyncIterable[bytes]) -> AsyncIterator[tuple[int, Sequence[str]]]:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    line_no = 0
    async for block in blocks:
        text = pending + decoder.decode(block)
        lines = text.split("\n")
        pending = lines.pop()
        if len(pending) > MAX_LINE_BYTES:
            raise InvalidInput(f"line {line_no + len(lines) + 1} is too long", code="import_invalid")
        for fields in _parse(lines):
            line_no += 1
            if _keep(line_no, fields):
                yield line_no, fields
    tail = pending + decoder.decode(b"", final=True)
    if tail.strip():
        for fields in _parse([tail]):
            line_no += 1
            if _keep(line_no, fields):
                yield line_no, fields


def _parse(lines: Iterable[str]) -> Iterable[list[str]]:
    # One csv.reader per block: the C parser over many lines at once. Blank lines give [].
    return csv.reader(line.rstrip("\r") for line in lines)


def _keep(line_no: int, fields: list[str]) -> bool:
    if not fields or (len(fields) == 1 and not fields[0].strip()):
        return False
    return not (line_no == 1 and [f.strip().lower() for f in fields] == list(COLUMNS[: len(fields)]))


async def file_blocks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            yield block
