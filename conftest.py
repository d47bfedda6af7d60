"""Fixtures every test folder can use: real PostgreSQL and NATS (started by the suite on free
ports) and a real token issuer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.issuer import TestIssuer, running_issuer

pytest_plugins = ["comuna_devstack.pytest_plugin"]


@pytest.fixture(scope="session")
def issuer() -> Iterator[TestIssuer]:
    with running_issuer() as issuer:
        yield issuer
