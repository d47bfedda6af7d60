"""The treasury's books refuse what the code must never do: totals below zero, a second
account, a movement rewritten or deleted."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_devstack.postgres import EmbeddedPostgres
from tests.treasury.conftest import new_database

pytestmark = pytest.mark.asyncio

REFUSED = [
    "UPDATE treasury_account SET available_minor = -1",
    "UPDATE treasury_account SET reserved_minor = -1",
    "UPDATE treasury_account SET committed_minor = -1",
    "INSERT INTO treasury_account VALUES (2, 'USD', 0, 0, 0)",
    "UPDATE treasury_movements SET amount_minor = amount_minor + 1",
    "DELETE FROM treasury_movements",
    "TRUNCATE treasury_movements CASCADE",
]


@pytest.fixture(scope="module")
def db_url(embedded_postgres: EmbeddedPostgres) -> str:
    return new_database(embedded_postgres)


@pytest.mark.parametrize("statement", REFUSED)
async def test_the_database_refuses(db_url: str, statement: str) -> None:
    url = db_url
    engine = create_async_engine(url)
    try:
        with pytest.raises(DBAPIError):
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        async with engine.connect() as conn:
            movements = (await conn.execute(text("SELECT count(*) FROM treasury_movements"))).scalar_one()
            available = (await conn.execute(text("SELECT available_minor FROM treasury_account"))).scalar_one()
        assert (movements, available) == (1, 1_000_000)
    finally:
        await engine.dispose()
