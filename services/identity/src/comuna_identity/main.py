"""Console script `comuna-identity`."""

from __future__ import annotations

from pathlib import Path

from comuna_identity.api.census_cli import CENSUS_COMMAND
from comuna_identity.cli.audit import AUDIT_COMMAND
from comuna_identity.imports_cli import IMPORT_COMMAND
from comuna_identity.keycloak.cli import KEYCLOAK_COMMAND
from comuna_identity.service import SPEC
from comuna_platform.cli import run_cli


def main() -> None:
    run_cli(
        SPEC,
        Path(__file__).parent / "migrations",
        extra=[KEYCLOAK_COMMAND, IMPORT_COMMAND, CENSUS_COMMAND, AUDIT_COMMAND],
    )
