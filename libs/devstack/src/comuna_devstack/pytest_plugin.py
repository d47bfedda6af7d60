"""Session-wide embedded PostgreSQL, NATS and Keycloak for tests.

Enable in the rootdir conftest with `pytest_plugins = ["comuna_devstack.pytest_plugin"]`
(pytest rejects `pytest_plugins` in conftests below the rootdir). The servers are private
to the test session, on free ports: tests never touch a system PostgreSQL, NATS or Keycloak.
Keycloak starts only when a test asks for it (one server for the whole run), with its
database in the session's PostgreSQL.

Their data lives in one scratch directory of the session under the dev stack's cache
(`<cache>/scratch/session.<pid>.<start>.<random>`, see `comuna_devstack.locations`), never
under /tmp: it is removed when the session ends, and a directory left by a killed session
(its servers die with it) is swept by the next one. The PostgreSQL binaries, when they have
to be copied for the unprivileged server account, are cached once per version and reused.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.locations import cache_root, owned_temp_dir, sweep_abandoned
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres

_SCRATCH_KIND = "session"


@pytest.fixture(scope="session")
def comuna_scratch_dir() -> Iterator[Path]:
    """This session's world-traversable scratch directory, removed at the end.

    Not under `tmp_path_factory`: pytest's base temp directory is 0700, which the
    unprivileged account PostgreSQL runs as (when tests run as root) cannot traverse.
    """
    scratch = cache_root() / "scratch"
    sweep_abandoned(scratch, _SCRATCH_KIND)
    path = owned_temp_dir(scratch, _SCRATCH_KIND)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_postgres(comuna_scratch_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A throw-away cluster (fsync off). Create one database per test module or service."""
    with EmbeddedPostgres(comuna_scratch_dir / "pg", free_port(), fast=True) as server:
        yield server


@pytest.fixture(scope="session")
def embedded_nats(comuna_scratch_dir: Path) -> Iterator[EmbeddedNats]:
    """A NATS server with JetStream, its store in the session's scratch directory."""
    with EmbeddedNats(comuna_scratch_dir / "nats" / "jetstream", free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def embedded_keycloak(comuna_scratch_dir: Path, embedded_postgres: EmbeddedPostgres) -> Iterator[EmbeddedKeycloak]:
    """A real Keycloak (the dev stack's distribution) with an empty database: master realm and
    a bootstrap admin only; provisioning a realm is the caller's business."""
    embedded_postgres.create_database("keycloak")
    server = EmbeddedKeycloak(
        comuna_scratch_dir / "keycloak",
        http_port=free_port(),
        management_port=free_port(),
        jdbc_url=f"jdbc:postgresql://127.0.0.1:{embedded_postgres.port}/keycloak",
        db_username="postgres",
        db_password="",  # the session cluster trusts loopback connections
        admin_username="admin",
        admin_password=secrets.token_urlsafe(18),
    )
    with server:
        yield server
