"""A service subcommand that makes a new checkpoint signing key for one of its public logs
(consultations' `record-key`, funding's `journal-key`).

It prints JSON with the signer key (a secret: it goes into the service's
`..._RECORD_SIGNING_KEYS`) and its verifier key (public: witnesses and `comuna-verify` use it;
the log serves it too at `.../record/keys`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from comuna_platform.cli import Subcommand
from comuna_platform.tlog.note import NoteError, Signer


def signing_key_subcommand(*, prog: str, name: str, what: str, default_name: Callable[[], str], env: str) -> Subcommand:
    def configure(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--name", help=f"the key's name (default: the configured origin, {env})")

    def run(args: argparse.Namespace) -> int:
        key_name = args.name or default_name()
        try:
            signer = Signer.generate(key_name)
        except NoteError as exc:
            print(f"{prog} {name}: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"signer_key": signer.skey, "verifier_key": signer.verifier.vkey}, indent=2))
        return 0

    return Subcommand(
        name=name,
        help=f"generate a checkpoint signing key for {what} (prints the signer and verifier keys as JSON)",
        configure=configure,
        run=run,
    )
