"""The console script every service exposes: `comuna-<svc> serve | migrate | openapi | parked ...`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comuna_platform.db import Database
from comuna_platform.errors import ProblemError
from comuna_platform.events.failures import is_transient
from comuna_platform.events.parked import ParkedMessages
from comuna_platform.migrations import migrate
from comuna_platform.runtime import ServiceSpec, open_runtime, serve, service_routers

MAX_ID = 2**63 - 1


class UsageError(Exception):
    """Bad input on the command line: exit status 2 with a one-line reason."""


@dataclass(frozen=True)
class Subcommand:
    """A subcommand one service adds to its console script (identity's `keycloak sync`).

    `configure` adds its arguments (or its own subcommands) to its parser; `run` receives the
    parsed arguments and returns the exit status.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def run_cli(
    spec: ServiceSpec, migrations_dir: Path, argv: list[str] | None = None, *, extra: Sequence[Subcommand] = ()
) -> None:
    parser = build_parser(spec, extra)
    args = parser.parse_args(argv)
    command = args.command or "serve"
    own = {sub.name: sub for sub in extra}
    if command in own:
        sys.exit(own[command].run(args))
    if command == "migrate":
        migrate(migrations_dir, spec.settings_factory())
    elif command == "openapi":
        print(json.dumps(openapi_document(spec), indent=2))
    elif command == "parked":
        sys.exit(run_parked(spec, args))
    else:
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency; keep the fallback honest
            pass
        asyncio.run(serve(spec))


def build_parser(spec: ServiceSpec, extra: Sequence[Subcommand] = ()) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"comuna-{spec.name}", description=spec.title)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the REST and gRPC servers, outbox relay and consumers")
    commands.add_parser("migrate", help="apply database migrations up to the latest revision")
    commands.add_parser("openapi", help="print the OpenAPI document")
    parked = commands.add_parser(
        "parked",
        help="inspect and replay parked event messages",
        description="Events a consumer could not apply are parked with their headers, payload and error. "
        "List and inspect them, fix the cause, then replay them: each applies exactly once.",
    )
    actions = parked.add_subparsers(dest="parked_command")
    listing = actions.add_parser("list", help="print the parked messages not yet replayed, as JSON lines")
    listing.add_argument("--consumer", help="only this consumer's messages")
    listing.add_argument("--include-replayed", action="store_true", help="also those already replayed")
    show = actions.add_parser("show", help="print one parked message with its headers and payload, as JSON")
    show.add_argument("id", help="id of the parked message")
    replay = actions.add_parser("replay", help="apply parked messages through their consumer's inbox")
    replay.add_argument("id", nargs="?", help="id of the parked message")
    replay.add_argument("--all", action="store_true", help="replay every parked message not yet replayed")
    replay.add_argument("--consumer", help="with --all: only this consumer's messages")
    for sub in extra:
        sub.configure(commands.add_parser(sub.name, help=sub.help))
    return parser


def parse_id(text: str | None) -> int:
    if text is None or not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise UsageError(f"invalid parked message id {text!r}: expected a positive integer")
    return int(text)


def run_parked(spec: ServiceSpec, args: argparse.Namespace) -> int:
    """Run one `parked` subcommand; returns the exit status (2 for bad input, 1 for a failure)."""
    try:
        if args.parked_command is None:
            raise UsageError("parked needs a command: list, show ID or replay ID|--all (see --help)")
        if args.parked_command == "replay" and args.all == (args.id is not None):
            raise UsageError("replay takes either an id or --all")
        wanted = parse_id(args.id) if args.parked_command in ("show", "replay") and args.id is not None else None
        asyncio.run(_parked(spec, args, wanted))
    except UsageError as exc:
        return _fail(spec, str(exc), 2)
    except ProblemError as exc:
        return _fail(spec, exc.detail, 2 if exc.status in (404, 422) else 1)
    except Exception as exc:
        if is_transient(exc):
            return _fail(spec, f"database or NATS unavailable: {exc}", 1)
        raise
    return 0


def _fail(spec: ServiceSpec, reason: str, status: int) -> int:
    print(f"comuna-{spec.name}: {' '.join(reason.split())}", file=sys.stderr)
    return status


async def _parked(spec: ServiceSpec, args: argparse.Namespace, wanted: int | None) -> None:
    settings = spec.settings_factory()
    if args.parked_command == "replay":
        # Replaying runs the consumer's handler: the service's full wiring, as `serve` has it.
        async with open_runtime(spec, settings) as (runtime, _):
            parked = ParkedMessages(runtime.db, runtime.consumers)
            if wanted is not None:
                _print((await parked.replay(wanted)).as_json())
            else:
                for result in await parked.replay_all(consumer=args.consumer):
                    _print(result if isinstance(result, dict) else result.as_json())
        return
    db = Database(settings.database_url, pool_size=1)
    try:
        parked = ParkedMessages(db, [])
        if args.parked_command == "show":
            assert wanted is not None
            print(json.dumps((await parked.get(wanted)).detail(), indent=2))
            return
        after = 0
        while rows := await parked.list_messages(
            consumer=args.consumer, include_replayed=args.include_replayed, after=after
        ):
            for row in rows:
                _print(row.summary())
            after = rows[-1].id
    finally:
        await db.dispose()


def _print(document: dict[str, Any]) -> None:
    print(json.dumps(document), flush=True)


def openapi_document(spec: ServiceSpec) -> dict[str, object]:
    from fastapi import FastAPI

    from comuna_platform.http import create_app

    app: FastAPI = create_app(
        service=spec.name, title=spec.title, description=spec.description, routers=service_routers(spec)
    )
    return app.openapi()
