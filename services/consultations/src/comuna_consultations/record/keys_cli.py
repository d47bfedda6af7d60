"""`comuna-consultations record-key`: a new key for the public record's checkpoints.

Prints JSON with the signer key (a secret: put it in `COMUNA_CONSULTATIONS_RECORD_SIGNING_KEYS`,
the Helm value `secrets.values.consultations.recordSigningKeys`) and its verifier key (public:
witnesses and `comuna-verify` use it; the record also serves it).
"""

from __future__ import annotations

import argparse
import json
import sys

from comuna_consultations.settings import Settings
from comuna_platform.cli import Subcommand
from comuna_platform.tlog.note import NoteError, Signer


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--name",
        help="the key's name (default: the configured record origin, COMUNA_CONSULTATIONS_RECORD_ORIGIN)",
    )


def _run(args: argparse.Namespace) -> int:
    name = args.name or Settings().record_origin
    try:
        signer = Signer.generate(name)
    except NoteError as exc:
        print(f"comuna-consultations record-key: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"signer_key": signer.skey, "verifier_key": signer.verifier.vkey}, indent=2))
    return 0


RECORD_KEY = Subcommand(
    name="record-key",
    help="generate a checkpoint signing key for the public record (prints the signer and verifier keys as JSON)",
    configure=_configure,
    run=_run,
)
