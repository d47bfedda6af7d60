"""Session-wide embedded PostgreSQL and NATS for tests.

Enable in the rootdir conftest with `pytest_plugins = ["comuna_devstack.pytest_plugin"]`
(pytest rejects `pytest_plugins` in conftests below the rootdir). Both servers are private
to the test session, on free ports: tests never touch a system PostgreSQL or NATS.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    """A throw-away cluster (fsync off). Create one database per test module or service.

    Not under `tmp_path_factory`: pytest's base temp directory is 0700, which the
    unprivileged account PostgreSQL runs as (when tests run as root) cannot traverse.
    """
    base = Path(tempfile.mkdtemp(prefix="comuna-pg-"))
    base.chmod(0o755)
    try:
        with EmbeddedPostgres(base / "data", free_port(), fast=True) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A NATS server with JetStream, its store in the session's temp directory."""
    store = tmp_path_factory.mktemp("nats") / "jetstream"
    with EmbeddedNats(store, free_port()) as server:
        yield server
