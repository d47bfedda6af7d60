"""Console script `comuna-consultations`."""

from __future__ import annotations

from pathlib import Path

from comuna_consultations.record.keys_cli import RECORD_KEY
from comuna_consultations.service import SPEC
from comuna_platform.cli import run_cli


def main() -> None:
    run_cli(SPEC, Path(__file__).parent / "migrations", extra=[RECORD_KEY])
