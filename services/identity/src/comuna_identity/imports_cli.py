"""`comuna-identity import <what> FILE`: bulk imports from the command line.

Each importer writes through the same domain code as the REST import, with actor `cli:<user>`
(the operator at the machine; the database credentials are the authority). Exit 0 with one
summary line; exit 2 when the file is refused (each error on stderr, one line each; nothing was
written) or an argument is wrong; exit 1 when the database is unavailable.
`IMPORTERS` maps what to its runner, so other imports (residents) join the same command.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import comuna_identity.messages  # noqa: F401  (registers the translations of the events imports stage)
from comuna_identity.domain import register_import
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


IMPORTERS: dict[str, Callable[[Settings, Path, BulkFormat], Coroutine[Any, Any, str]]] = {
    "territories": import_territories
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=sorted(IMPORTERS), help="what the file holds")
    parser.add_argument("file", type=Path, help="CSV with a header line, or JSON (array or lines)")
    parser.add_argument("--format", choices=[f.value for f in BulkFormat], help="default: from the file's extension")


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
    importer = IMPORTERS[args.what]
    try:
        summary = asyncio.run(importer(settings, path, fmt))
    except BulkInputError as exc:
        for error in exc.errors:
            print(f"{path}:{error}", file=sys.stderr)
        return _fail(exc.detail)
    except ProblemError as exc:
        return _fail(exc.detail)
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
