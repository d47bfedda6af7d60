"""Console script `comuna-funding`."""

from __future__ import annotations

from pathlib import Path

from comuna_funding.service import SPEC
from comuna_platform.cli import run_cli


def main() -> None:
    run_cli(SPEC, Path(__file__).parent / "migrations")
