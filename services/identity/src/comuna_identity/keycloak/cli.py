"""`comuna-identity keycloak sync`: argument parsing, output and exit statuses.

Exit 0 when the realm matches (after applying, or in a dry run after reporting); exit 2 with
one line on stderr when an input is wrong (seed file, settings, Keycloak unreachable or
refusing the admin login); exit 1 when identity's database is unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from comuna_identity.keycloak.changes import Change
from comuna_identity.keycloak.client_secrets import ConfigurationError
from comuna_identity.keycloak.passwords import PasswordFileError
from comuna_identity.keycloak.seed import SeedError
from comuna_identity.keycloak.settings import KeycloakSettings
from comuna_identity.keycloak.sync import KeycloakUnavailable, SyncOptions, run_sync
from comuna_platform.cli import Subcommand
from comuna_platform.errors import ProblemError
from comuna_platform.events.failures import is_transient

PROG = "comuna-identity keycloak sync"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="keycloak_command")
    sync = actions.add_parser(
        "sync",
        help="create or update the Keycloak realm from identity's register",
        description="Create or update the realm: settings, roles, clients, audience mapper, one group per "
        "government and commune. Applies only the difference; prints one line per change and 'N changes'.",
    )
    sync.add_argument("--seed", type=Path, help="development: JSON file of territories and staff to ensure")
    sync.add_argument(
        "--passwords-file", type=Path, help="JSON file (0600) keeping the seeded staff's generated passwords"
    )
    sync.add_argument("--dry-run", action="store_true", help="report what would change, apply nothing")
    sync.add_argument("--json", action="store_true", help="print one JSON report instead of lines")


def run(args: argparse.Namespace) -> int:
    if args.keycloak_command != "sync":
        return _fail("keycloak needs a command: sync (see --help)")
    try:
        settings = KeycloakSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        return _fail(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}")
    options = SyncOptions(seed=args.seed, passwords_file=args.passwords_file, dry_run=args.dry_run)

    def emit(change: Change) -> None:
        if not args.json:
            print(change.line(), flush=True)

    try:
        report = asyncio.run(run_sync(settings, options, emit))
    except (SeedError, ConfigurationError, PasswordFileError, KeycloakUnavailable) as exc:
        return _fail(str(exc))
    except ProblemError as exc:
        # identity's own rules refused a seeded territory or assignment (nothing was committed).
        return _fail(f"seed refused by identity: {exc.detail}")
    except Exception as exc:
        if is_transient(exc):
            return _fail(f"identity's database is unavailable: {exc.__class__.__name__}", status=1)
        raise
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        print(report.summary())
    return 0


def _fail(reason: str, *, status: int = 2) -> int:
    print(f"{PROG}: {' '.join(reason.split())}", file=sys.stderr)
    return status


KEYCLOAK_COMMAND = Subcommand(
    name="keycloak", help="provision the Keycloak realm (keycloak sync)", configure=configure, run=run
)
