"""`comuna-treasury`: migrate | serve | deposit | balance.

A usage error or bad input is one line on stderr and exit status 2; a database that cannot be
reached is one line and exit status 1. Logs go to stderr; `serve` stops cleanly on SIGTERM
or SIGINT (calls in flight finish, then exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from comuna_treasury import rules

if TYPE_CHECKING:
    import grpc
    from sqlalchemy.ext.asyncio import AsyncEngine

# SQLAlchemy, asyncpg and gRPC are imported by the commands that use them, not here: `--help`
# and usage errors answer without loading them.

PROG = "comuna-treasury"
OK, FAILED, USAGE = 0, 1, 2
ENV_DATABASE_URL = "COMUNA_TREASURY_DATABASE_URL"
ENV_TOKEN = "COMUNA_TREASURY_TOKEN"  # noqa: S105 (the variable's name, not a token)
ENV_DELAY = "COMUNA_TREASURY_DELAY_SECONDS"
ENV_LOG_LEVEL = "COMUNA_TREASURY_LOG_LEVEL"
DEFAULT_LISTEN = "127.0.0.1:50070"
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table

_LISTEN = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})$")
_DIGITS = re.compile(r"^[0-9]{1,19}$")
_SECONDS = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6})?$")


class UsageError(Exception):
    """Bad input: exit status 2 with a one-line reason."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message}; see {self.prog} --help\n")
        sys.exit(USAGE)


def _minor_units(value: str) -> int:
    # [0-9], not int(): int() also takes '+5', ' 5' and digits of other scripts.
    if not _DIGITS.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of minor units")
    return int(value)


def _seconds(value: str) -> float:
    if not _SECONDS.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds (e.g. 2 or 0.5)")
    return float(value)


def _listen(value: str) -> str:
    match = _LISTEN.match(value)
    if not match or int(match["port"]) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not host:port (e.g. 127.0.0.1:50070)")
    return value


def _currency(value: str) -> str:
    try:
        return rules.check_currency(value, "--currency")
    except rules.InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _territory(value: str) -> str:
    if not value or not re.match(r"^[A-Za-z0-9._:-]{1,100}$", value):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a territory id (letters, digits, . _ : -)")
    return value


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="A reference funding source (comuna.funding.source.v1): a small treasury with its own "
        "PostgreSQL database. It stands in for a state's or a municipality's treasury in development and tests; "
        "it is not deployed in production.",
    )
    common = Parser(add_help=False)
    common.add_argument(
        "--database-url",
        default=os.environ.get(ENV_DATABASE_URL),
        help=f"postgresql+asyncpg://user@host:port/db of the treasury's own database (default: ${ENV_DATABASE_URL})",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    migrate = commands.add_parser(
        "migrate",
        parents=[common],
        help="create the tables and open the account (idempotent)",
        description="Create the treasury's tables if missing and open its one account in CURRENCY if not yet "
        "opened. Safe to run again; an account opened in another currency is refused (exit 2).",
    )
    migrate.add_argument("--currency", type=_currency, required=True, help="ISO 4217 code of the account, e.g. VES")

    serve = commands.add_parser(
        "serve",
        parents=[common],
        help="serve comuna.funding.source.v1 over gRPC",
        description=f"Serve the FundingSource contract. Callers must send 'authorization: Bearer <token>' with "
        f"the token in ${ENV_TOKEN} (required: without it the treasury refuses to start, exit 2). "
        "Stops cleanly on SIGTERM.",
    )
    serve.add_argument("--listen", type=_listen, default=DEFAULT_LISTEN, help=f"host:port (default {DEFAULT_LISTEN})")
    serve.add_argument("--name", default="Reference treasury", help="the source's name in Describe")
    serve.add_argument(
        "--currency", type=_currency, help="the account's currency; must be the one migrate opened (default: that one)"
    )
    serve.add_argument(
        "--territory",
        type=_territory,
        action="append",
        default=[],
        dest="territories",
        help="a Comuna territory id this source may fund, as Describe reports it (repeatable)",
    )
    serve.add_argument(
        "--delay-seconds",
        type=_seconds,
        default=os.environ.get(ENV_DELAY, "0"),
        help=f"TESTING AID: answer every call this long after its work is durable, to play a source that "
        f"answers late (default: ${ENV_DELAY} or 0)",
    )
    serve.add_argument("--tls-cert-file", type=Path, help="PEM certificate chain: serve TLS instead of plaintext")
    serve.add_argument("--tls-key-file", type=Path, help="PEM private key of --tls-cert-file")

    deposit = commands.add_parser(
        "deposit",
        parents=[common],
        help="record funds arriving (+ available)",
        description="Record funds arriving at the treasury (the government's budget): a deposit movement in the "
        "account's currency. Prints the movement as JSON.",
    )
    deposit.add_argument("--amount-minor", type=_minor_units, required=True, help="positive, in minor units")
    deposit.add_argument("--reference", required=True, help="what the funds are (at most 500 characters)")

    commands.add_parser(
        "balance",
        parents=[common],
        help="print the account's totals as JSON",
        description="Print currency, available, reserved and committed (minor units) as one JSON object.",
    )
    return parser


def _engine(args: argparse.Namespace) -> AsyncEngine:
    from sqlalchemy.exc import SQLAlchemyError

    from comuna_treasury import store

    if not args.database_url:
        raise UsageError(f"no database: pass --database-url or set {ENV_DATABASE_URL}")
    try:
        return store.engine_for(args.database_url)
    except rules.InvalidArgument as exc:
        raise UsageError(str(exc)) from None
    except (SQLAlchemyError, ValueError) as exc:
        raise UsageError(f"unusable database URL: {exc.__class__.__name__}") from None


async def _migrate(args: argparse.Namespace) -> int:
    from comuna_treasury import store

    engine = _engine(args)
    try:
        opened = await store.migrate(engine, args.currency)
    finally:
        await engine.dispose()
    logging.getLogger("comuna_treasury").info(
        "migrated; account %s in %s", "opened" if opened else "already open", args.currency
    )
    return OK


async def _deposit(args: argparse.Namespace) -> int:
    from comuna_treasury import store

    engine = _engine(args)
    try:
        movement = await store.Store(engine).deposit(args.amount_minor, args.reference)
    finally:
        await engine.dispose()
    print(
        json.dumps(
            {
                "movement_id": str(movement.id),
                "cursor": str(movement.seq),
                "kind": movement.kind,
                "amount_minor": movement.amount_minor,
                "currency": movement.currency,
                "reference": movement.reference,
                "at": movement.at.isoformat(),
            }
        )
    )
    return OK


async def _balance(args: argparse.Namespace) -> int:
    from comuna_treasury import store

    engine = _engine(args)
    try:
        funds = await store.Store(engine).funds()
    finally:
        await engine.dispose()
    print(
        json.dumps(
            {
                "currency": funds.currency,
                "available_minor": funds.available_minor,
                "reserved_minor": funds.reserved_minor,
                "committed_minor": funds.committed_minor,
            }
        )
    )
    return OK


def _credentials(args: argparse.Namespace) -> grpc.ServerCredentials | None:
    import grpc

    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        raise UsageError("--tls-cert-file and --tls-key-file go together")
    if args.tls_cert_file is None:
        return None
    try:
        chain, key = args.tls_cert_file.read_bytes(), args.tls_key_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return grpc.ssl_server_credentials([(key, chain)])


async def _serve(args: argparse.Namespace) -> int:
    from comuna_treasury import server, store

    token = os.environ.get(ENV_TOKEN, "")
    if not token or token != token.strip() or any(c.isspace() for c in token):
        raise UsageError(f"set {ENV_TOKEN} to the bearer token callers must present (no spaces); refusing to start")
    credentials = _credentials(args)
    engine = _engine(args)
    books = store.Store(engine)
    try:
        currency = await books.currency()
        if args.currency is not None and args.currency != currency:
            raise UsageError(f"--currency {args.currency} is not the account's currency ({currency})")
        config = server.Config(
            name=args.name,
            currency=currency,
            territory_ids=tuple(args.territories),
            token=token,
            delay_seconds=args.delay_seconds,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await server.serve(books, config, args.listen, stop, credentials=credentials)
        except RuntimeError as exc:  # grpc: the address could not be bound
            logging.getLogger("comuna_treasury").error("cannot listen on %s: %s", args.listen, exc)
            return FAILED
    finally:
        await engine.dispose()
    return OK


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "migrate": _migrate,
    "serve": _serve,
    "deposit": _deposit,
    "balance": _balance,
}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get(ENV_LOG_LEVEL, "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.error("a command is required (migrate, serve, deposit or balance)")
    from sqlalchemy.exc import DBAPIError, ProgrammingError

    try:
        status = asyncio.run(COMMANDS[args.command](args))
    except (UsageError, rules.InvalidArgument, rules.NoAccount) as exc:
        sys.stderr.write(f"{PROG} {args.command}: {exc}\n")
        status = USAGE
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) != _UNDEFINED_TABLE:
            raise
        sys.stderr.write(f"{PROG} {args.command}: the database has no treasury tables: run migrate first\n")
        status = USAGE
    except (DBAPIError, OSError) as exc:
        # The database is down or refuses us: an environment problem, not the caller's input.
        reason = getattr(exc, "orig", None) or exc
        sys.stderr.write(f"{PROG} {args.command}: database unreachable or refusing: {_one_line(reason)}\n")
        status = FAILED
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted\n")
        status = 130
    sys.exit(status)


def _one_line(exc: BaseException) -> str:
    text = f"{exc.__class__.__name__}: {exc}".strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


if __name__ == "__main__":
    main()
