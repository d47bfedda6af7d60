"""Streamed bulk files: rows with their line numbers, whole-file refusals, no values in errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from comuna_platform.bulk import (
    MAX_RECORD_BYTES,
    BulkFormat,
    BulkInputError,
    RowErrors,
    UnsupportedFormat,
    format_of,
    read_rows,
)

COLUMNS = ("code", "name", "parent_code")
REQUIRED = ("code", "name")


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _rows(data: bytes, fmt: BulkFormat, size: int = 7) -> list[tuple[int, dict[str, str]]]:
    return [
        (row.line, row.fields) async for row in read_rows(_chunks(data, size), fmt, columns=COLUMNS, required=REQUIRED)
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [1, 3, 64, 10_000])
async def test_csv_rows_keep_their_line_numbers_whatever_the_chunking(size: int) -> None:
    text = '\ufeffcode,name,parent_code\r\nVE,Venezuela,\r\n\r\nVE-A,"Amazonas, ""Sur""\nnorte",VE\nVE-B,Bolívar,VE'
    data = text.encode()
    assert await _rows(data, BulkFormat.CSV, size) == [
        (2, {"code": "VE", "name": "Venezuela", "parent_code": ""}),
        (4, {"code": "VE-A", "name": 'Amazonas, "Sur"\nnorte', "parent_code": "VE"}),
        (6, {"code": "VE-B", "name": "Bolívar", "parent_code": "VE"}),
    ]


@pytest.mark.asyncio
async def test_json_array_and_json_lines_give_the_same_rows() -> None:
    items = [{"code": "VE", "name": "Venezuela"}, {"code": "VE-A", "name": "Amazonas", "parent_code": "VE"}]
    expected = [
        (1, {"code": "VE", "name": "Venezuela"}),
        (2, {"code": "VE-A", "name": "Amazonas", "parent_code": "VE"}),
    ]
    assert await _rows(json.dumps(items).encode(), BulkFormat.JSON) == expected
    lines = "\n".join(json.dumps(item) for item in items).encode()
    assert await _rows(lines, BulkFormat.JSON) == expected


@pytest.mark.parametrize(
    ("data", "fmt", "code", "line"),
    [
        (b"code,nombre\nVE,x\n", BulkFormat.CSV, "column_unknown", 1),
        (b"code,parent_code\nVE,\n", BulkFormat.CSV, "column_missing", 1),
        (b"code,name\nVE,x,extra\n", BulkFormat.CSV, "row_shape", 2),
        (b"code,name\nVE,\xff\n", BulkFormat.CSV, "encoding_invalid", 1),
        (b"", BulkFormat.CSV, "file_empty", 1),
        (b'[{"code": "VE", "name": "x"}, {"code": ', BulkFormat.JSON, "json_invalid", 2),
        (b'[{"code": "VE", "name": "x"}, 3]', BulkFormat.JSON, "item_invalid", 2),
        (b'{"code": "VE", "name": "x"}\n{"code": "VE-A", "nombre": "y"}', BulkFormat.JSON, "column_unknown", 2),
    ],
)
@pytest.mark.asyncio
async def test_unreadable_files_are_refused_at_once_with_the_line(
    data: bytes, fmt: BulkFormat, code: str, line: int
) -> None:
    with pytest.raises(BulkInputError) as caught:
        await _rows(data, fmt)
    assert [(e.line, e.code) for e in caught.value.errors][:1] == [(line, code)]
    assert caught.value.status == 422


@pytest.mark.asyncio
async def test_a_record_without_end_is_refused_before_it_fills_memory() -> None:
    data = b"code,name\n" + b'"' + b"x" * (MAX_RECORD_BYTES + 10)
    with pytest.raises(BulkInputError) as caught:
        await _rows(data, BulkFormat.CSV, size=4096)
    assert caught.value.errors[0].code == "row_too_long"


def test_row_errors_list_every_line_sorted_and_count_beyond_the_listing() -> None:
    errors = RowErrors()
    assert not errors
    errors.raise_if_any()
    for line in (9, 3, 5):
        errors.add(line, "bad", "a bad value", "code")
    with pytest.raises(BulkInputError) as caught:
        errors.raise_if_any()
    assert [e.line for e in caught.value.errors] == [3, 5, 9]
    assert caught.value.extra["error_count"] == 3
    assert caught.value.extra["errors"][0] == {"line": 3, "code": "bad", "detail": "a bad value", "field": "code"}


def test_the_format_comes_from_what_was_declared_then_the_media_type_then_the_extension() -> None:
    assert format_of(declared="JSON", content_type="text/csv") is BulkFormat.JSON
    assert format_of(content_type="text/csv; charset=utf-8") is BulkFormat.CSV
    assert format_of(path="register.ndjson") is BulkFormat.JSON
    for kwargs in ({"content_type": "application/xml"}, {"path": "register.xlsx"}, {"declared": "xml"}):
        with pytest.raises(UnsupportedFormat):
            format_of(**kwargs)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "data", [b'["x\\udfffy"]', b'[{"code": "x\\udfffy", "name": "n"}]', b'{"code": "\\ud800", "name": "n"}']
)
async def test_a_lone_surrogate_is_refused_as_bad_input_not_an_error(data: bytes) -> None:
    with pytest.raises(BulkInputError) as caught:
        await _rows(data, BulkFormat.JSON)
    assert caught.value.errors[0].code in ("json_invalid", "item_invalid")
