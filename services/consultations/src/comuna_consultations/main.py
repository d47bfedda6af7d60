"""Console script `comuna-consultations`."""

from __future__ import annotations

from pathlib import Path

from comuna_consultations.service import SPEC
from comuna_consultations.settings import Settings
from comuna_platform.cli import run_cli
from comuna_platform.tlog.keys_cli import signing_key_subcommand

RECORD_KEY = signing_key_subcommand(
    prog="comuna-consultations",
    name="record-key",
    what="the public record",
    default_name=lambda: Settings().record_origin,
    env="COMUNA_CONSULTATIONS_RECORD_ORIGIN",
)


def main() -> None:
    run_cli(SPEC, Path(__file__).parent / "migrations", extra=[RECORD_KEY])
