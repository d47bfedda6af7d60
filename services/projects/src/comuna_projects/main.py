"""Console script `comuna-projects`."""

from __future__ import annotations

from pathlib import Path

from comuna_platform.cli import run_cli
from comuna_projects.service import SPEC


def main() -> None:
    run_cli(SPEC, Path(__file__).parent / "migrations")
