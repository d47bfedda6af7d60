"""`comuna-identity audit verify`: walk the audit log's hash chain and report the first problem.

Exit 0 with a summary (entries, head, seconds) when the chain is intact; exit 1 naming the
first altered, missing or forged entry (or when the database is unavailable); exit 2 with one
line on stderr for bad arguments or settings. Progress goes to stderr on long runs. Reads as
the service's runtime role (`DATABASE_URL`), in one read-only snapshot, constant memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys

import asyncpg
from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from comuna_identity.domain import audit
from comuna_identity.settings import Settings
from comuna_identity.storage import audit_log
from comuna_platform.cli import Subcommand
from comuna_platform.events.failures import is_transient

PROG = "comuna-identity audit"
_PIN = re.compile(r"^([0-9]{1,18}):([0-9a-fA-F]{64})$")


class UsageError(Exception):
    pass


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="audit_command")
    verify = actions.add_parser(
        "verify",
        help="walk the audit log's hash chain and report the first altered or missing entry",
        description="Recompute every entry's hash in seq order and check each links to the previous one. "
        "Exit 0 and a summary when intact; exit 1 naming the first altered, missing or forged entry. "
        "A chain rewritten from some entry on (its hashes recomputed) is caught only against a head "
        "published earlier: pass it with --pin SEQ:HASH (GET /v1/audit/head).",
    )
    verify.add_argument("--json", action="store_true", help="print one JSON report instead of a line")
    verify.add_argument(
        "--pin",
        action="append",
        default=[],
        metavar="SEQ:HASH",
        help="a head published earlier (seq and hex entry_hash) that the log must still contain; repeatable",
    )
    verify.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def parse_pin(text: str) -> audit.Pin:
    match = _PIN.match(text)
    if match is None or int(match.group(1)) < 1:
        raise UsageError(f"invalid --pin {text!r}: expected SEQ:HASH (a positive seq, 64 hex digits)")
    return audit.Pin(int(match.group(1)), bytes.fromhex(match.group(2)))


def run(args: argparse.Namespace) -> int:
    if getattr(args, "audit_command", None) != "verify":
        return _fail("audit needs a command: verify (see --help)")
    try:
        pins = [parse_pin(text) for text in args.pin]
        dsn = _dsn(Settings().database_url)
    except UsageError as exc:
        return _fail(str(exc))
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}")

    def progress(checked: int, seconds: float) -> None:
        if not args.quiet:
            print(f"{PROG} verify: {checked} entries checked in {seconds:.0f} s", file=sys.stderr, flush=True)

    try:
        result = asyncio.run(verify_database(dsn, pins, progress))
    except Exception as exc:
        if is_transient(exc) or isinstance(exc, OSError | asyncpg.PostgresConnectionError):
            return _fail(f"identity's database is unavailable: {exc.__class__.__name__}", status=1)
        raise
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    elif result.problem is None:
        print(
            f"audit log intact: {result.entries} entries, head {result.head.seq} {result.head.entry_hash.hex()}, "
            f"verified in {result.seconds:.1f} s"
        )
    else:
        print(f"audit log broken at entry {result.problem.seq} ({result.problem.kind}): {result.problem.detail}")
    return 0 if result.intact else 1


async def verify_database(dsn: str, pins: list[audit.Pin], progress: audit.Progress | None) -> audit.Verification:
    connection = await asyncpg.connect(dsn)
    try:
        return await audit.verify(audit_log.walk(connection), pins=pins, progress=progress)
    finally:
        await connection.close()


def _dsn(url: str) -> str:
    try:
        return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    except ArgumentError as exc:
        raise UsageError("invalid setting database_url: not a database URL") from exc


def _fail(reason: str, *, status: int = 2) -> int:
    print(f"{PROG}: {' '.join(reason.split())}", file=sys.stderr)
    return status


AUDIT_COMMAND = Subcommand(
    name="audit", help="check the audit log's hash chain (audit verify)", configure=configure, run=run
)
