"""`comuna-identity census rotation`, and the census import the `import residents` command runs.

Exit 0 on success; 2 with a one-line reason on stderr for bad input (a bad file: every bad line
follows on stdout as JSON lines, by number, never with its document); 1 when the database is
unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from comuna_identity.domain import census_rotation
from comuna_identity.domain.census import Census
from comuna_identity.domain.census_import import ImportReport, Preparer, import_residents
from comuna_identity.domain.census_keys import KeyRingError, parse_ring
from comuna_identity.domain.census_prepare import COLUMNS, REQUIRED_COLUMNS
from comuna_identity.settings import Settings
from comuna_platform.bulk import BulkFormat, read_file_rows
from comuna_platform.cli import Subcommand
from comuna_platform.db import Database
from comuna_platform.errors import ProblemError
from comuna_platform.events.failures import is_transient


def census_from(settings: Settings) -> Census:
    ring = parse_ring(
        settings.census_keys.get_secret_value(), settings.census_hash_key.get_secret_value(), settings.census_key_id
    )
    return Census(ring, settings.roll_secret.get_secret_value().encode())


async def import_file(
    settings: Settings, path: Path, workers: int | None, fmt: BulkFormat | None = None
) -> ImportReport:
    census = census_from(settings)
    # The command line runs no threads: its workers fork with everything imported already.
    preparer = Preparer(census, workers, start_method="fork")
    db = Database(settings.database_url, pool_size=1)
    try:
        async with db.transaction() as session:
            return await import_residents(
                session,
                census,
                preparer,
                read_file_rows(path, fmt, columns=COLUMNS, required=REQUIRED_COLUMNS),
                actor=f"cli:{getpass.getuser()}",
                today=datetime.now(UTC).date(),
            )
    finally:
        preparer.close()
        await db.dispose()


def configure_census(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="census_command")
    rotation = actions.add_parser(
        "rotation",
        help="show the key rotation's progress (residents per key id); --run: rotate now until done",
    )
    rotation.add_argument("--run", action="store_true", help="re-key in the foreground until done")


async def _rotation(settings: Settings, run: bool) -> dict[str, object]:
    census = census_from(settings)
    db = Database(settings.database_url, pool_size=1)
    try:
        moved = await census_rotation.rotate_until_done(db, census, settings.census_rotation_batch) if run else 0
        progress = await census_rotation.progress(db, census)
        return {**progress.as_json(), **({"re_keyed": moved} if run else {})}
    finally:
        await db.dispose()


def run_census(args: argparse.Namespace) -> int:
    if args.census_command != "rotation":
        return _fail("census needs a command: rotation (see --help)")
    try:
        print(json.dumps(asyncio.run(_rotation(_settings(), args.run)), indent=2))
    except _Refused as exc:
        return _fail(str(exc))
    except (KeyRingError, ValueError) as exc:
        return _fail(f"invalid census settings: {exc}")
    except ProblemError as exc:
        return _fail(exc.detail)
    except Exception as exc:
        if is_transient(exc):
            return _fail(f"identity's database is unavailable: {exc.__class__.__name__}", status=1)
        raise
    return 0


class _Refused(Exception):
    pass


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _Refused(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _fail(reason: str, *, status: int = 2) -> int:
    print(f"comuna-identity: {' '.join(reason.split())}", file=sys.stderr)
    return status


CENSUS_COMMAND = Subcommand(
    name="census", help="census operations (census rotation)", configure=configure_census, run=run_census
)
