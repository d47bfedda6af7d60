"""Fixtures every test folder can use: real PostgreSQL, NATS and Keycloak (started by the suite
on free ports), the realm provisioned by identity's own `keycloak sync`, and a key-signing
issuer for tests of pure token logic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import comuna_identity
from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.postgres import EmbeddedPostgres
from tests.support.issuer import TestIssuer, keycloak_issuer
from tests.support.signing_issuer import SigningKeyIssuer, running_signing_issuer

pytest_plugins = ["comuna_devstack.pytest_plugin"]

IDENTITY_MIGRATIONS = Path(comuna_identity.__file__).parent / "migrations"


@pytest.fixture(scope="session")
def issuer(
    embedded_keycloak: EmbeddedKeycloak, embedded_postgres: EmbeddedPostgres, comuna_scratch_dir: Path
) -> Iterator[TestIssuer]:
    """Keycloak tokens of the realm `comuna` (people by subject, services by client)."""
    with keycloak_issuer(
        embedded_keycloak, embedded_postgres, comuna_scratch_dir / "realm", identity_migrations=IDENTITY_MIGRATIONS
    ) as issuer:
        yield issuer


@pytest.fixture(scope="session")
def signing_issuer() -> Iterator[SigningKeyIssuer]:
    """Tokens signed with a test key, with any claims: only for tests of token logic."""
    with running_signing_issuer() as issuer:
        yield issuer
