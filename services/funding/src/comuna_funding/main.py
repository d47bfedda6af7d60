"""Console script `comuna-funding`."""

from __future__ import annotations

from pathlib import Path

from comuna_funding.service import SPEC
from comuna_funding.settings import Settings
from comuna_platform.cli import run_cli
from comuna_platform.tlog.keys_cli import signing_key_subcommand

JOURNAL_KEY = signing_key_subcommand(
    prog="comuna-funding",
    name="journal-key",
    what="the ledger's public journal",
    default_name=lambda: Settings().record_origin,
    env="COMUNA_FUNDING_RECORD_ORIGIN",
)


def main() -> None:
    run_cli(SPEC, Path(__file__).parent / "migrations", extra=[JOURNAL_KEY])
