"""`comuna-identity import territories|residents FILE`: bulk imports from the command line.

Each importer writes through the same domain code as the REST import, with actor `cli:<user>`
(the operator at the machine; the database credentials are the authority). Exit 0 with one
summary line (residents: `--json` for the report with timings); exit 2 when an argument is wrong
or the file is refused: nothing was written, stderr has the one-line reason and stdout one JSON
object per bad line (`{"line": .., "code": .., "detail": .., "field": ..}`, never a value of the
file); exit 1 when the database is unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import resource
import sys
from pathlib import Path

from pydantic import ValidationError

import comuna_identity.messages  # noqa: F401  (registers the translations of the events imports stage)
from comuna_identity.api import census_cli
from comuna_identity.domain import register_import
from comuna_identity.domain.census_keys import KeyRingError
from comuna_identity.domain.census_prepare import COLUMNS as RESIDENT_COLUMNS
from comuna_identity.settings import Settings
from comuna_platform.bulk import BulkFormat, BulkInputError, format_of, read_file_rows
from comuna_platform.cli import Subcommand
from comuna_platform.db import Database
from comuna_platform.errors import ProblemError
from comuna_platform.events.failures import is_transient

PROG = "comuna-identity import"


def actor() -> str:
    return f"cli:{getpass.getuser()}"


async def import_territories(settings: Settings, path: Path, fmt: BulkFormat) -> str:
    db = Database(settings.database_url, pool_size=1)
    try:
        async with db.unit_of_work() as uow:
            rows = read_file_rows(path, fmt, columns=register_import.COLUMNS, required=register_import.REQUIRED)
            result = await register_import.import_rows(uow, rows, actor=actor())
    finally:
        await db.dispose()
    verdict = "no changes" if not (result.created or result.changed) else "imported"
    return (
        f"{verdict}: {result.created} created, {result.changed} changed, {result.unchanged} unchanged "
        f"({result.total} rows)"
    )


async def import_residents(settings: Settings, path: Path, fmt: BulkFormat, args: argparse.Namespace) -> str:
    report = await census_cli.import_file(settings, path, args.workers, fmt)
    if not args.json:
        return report.summary()
    # Linux reports KiB. Workers: the largest of the hashing processes.
    peak = {
        "importer": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "workers": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    return json.dumps({**report.as_json(), "seconds": report.seconds, "peak_rss_mb": peak}, indent=2)


def configure(parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="what", required=True, metavar="{territories,residents}")
    territories = kinds.add_parser(
        "territories",
        help="import the territory register (upsert by code, all or nothing)",
        description=f"CSV header: {','.join(register_import.COLUMNS)} (or JSON objects with those fields). "
        "Any bad row: nothing is written and every bad row is listed.",
    )
    residents = kinds.add_parser(
        "residents",
        help="import census records (upsert by document, all or nothing)",
        description=f"CSV header: {','.join(RESIDENT_COLUMNS)} (or JSON objects with those fields). "
        "Any bad line: nothing is written and every bad line is listed, never with its document.",
    )
    for kind in (territories, residents):
        kind.add_argument("file", type=Path, help="CSV with a header line, or JSON (array or lines)")
        kind.add_argument("--format", choices=[f.value for f in BulkFormat], help="default: from the file's extension")
    residents.add_argument("--json", action="store_true", help="print the report (with timings) as JSON")
    residents.add_argument("--workers", type=int, default=None, help="hashing processes (default: one per core)")


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        return _fail(f"{path}: no such file")
    try:
        fmt = format_of(path=path, declared=args.format)
        settings = Settings()
    except ProblemError as exc:
        return _fail(exc.detail)
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}")
    try:
        if args.what == "territories":
            summary = asyncio.run(import_territories(settings, path, fmt))
        else:
            summary = asyncio.run(import_residents(settings, path, fmt, args))
    except BulkInputError as exc:
        for error in exc.errors:
            print(json.dumps(error.as_dict()), flush=True)
        return _fail(exc.detail)
    except ProblemError as exc:
        return _fail(exc.detail)
    except (KeyRingError, ValueError) as exc:
        return _fail(f"invalid census settings: {exc}")
    except Exception as exc:
        if is_transient(exc):
            return _fail(f"identity's database is unavailable: {exc.__class__.__name__}", status=1)
        raise
    print(summary)
    return 0


def _fail(reason: str, *, status: int = 2) -> int:
    print(f"{PROG}: {' '.join(reason.split())}", file=sys.stderr)
    return status


IMPORT_COMMAND = Subcommand(
    name="import",
    help="bulk-import a file into identity (all or nothing)",
    configure=configure,
    run=run,
)
