"""Least-privileged PostgreSQL roles, as the dev stack provisions them and `migrate` grants them.

Funding's database gets an owner role (migrations) and a runtime role (the service). The runtime
role does its normal work (a certified result becomes an allocation and ledger transfers) and
nothing more: no DDL, no CREATE in the schema, no UPDATE or DELETE of the immutable ledger rows,
no access to the migrations' revision table.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import nats
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

import comuna_funding
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna_devstack.db_roles import DatabaseRoles, provision
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC
from comuna_funding.settings import Settings
from comuna_platform.events.streams import ensure_stream
from comuna_platform.migrations import migrate, runtime_role_of
from tests.funding.helpers import eventually, publish
from tests.support.issuer import TestIssuer
from tests.support.service import running_service

pytestmark = pytest.mark.asyncio

MIGRATIONS = Path(comuna_funding.__file__).parent / "migrations"


@dataclass
class Provisioned:
    roles: DatabaseRoles
    admin_url: str
    runtime_url: str
    owner_url: str


def plain(url: str) -> str:
    """An asyncpg DSN from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest_asyncio.fixture(scope="module")
async def funding_db(embedded_postgres: EmbeddedPostgres) -> Provisioned:
    database = f"funding_roles_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(database)
    admin = embedded_postgres.dsn("postgres")
    roles = DatabaseRoles.for_database(database, uuid.uuid4().hex, uuid.uuid4().hex)
    await provision(admin, roles)
    await provision(admin, roles)  # every `make run` provisions again
    settings = Settings(database_url=roles.url(admin), migration_database_url=roles.url(admin, owner=True))
    assert runtime_role_of(settings) == roles.runtime
    migrate(MIGRATIONS, settings)
    migrate(MIGRATIONS, settings)  # and migrates again
    return Provisioned(roles, admin, roles.url(admin), roles.url(admin, owner=True))


@pytest_asyncio.fixture
async def runtime(funding_db: Provisioned) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(plain(funding_db.runtime_url))
    try:
        yield conn
    finally:
        await conn.close()


async def test_roles_are_not_superusers_and_own_what_they_should(funding_db: Provisioned) -> None:
    admin = await asyncpg.connect(plain(funding_db.admin_url).rsplit("/", 1)[0] + f"/{funding_db.roles.database}")
    try:
        flags = await admin.fetch(
            "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = ANY($1)",
            [funding_db.roles.owner, funding_db.roles.runtime],
        )
        assert {r["rolname"]: tuple(r)[1:] for r in flags} == {
            funding_db.roles.owner: (False, False, False, True),
            funding_db.roles.runtime: (False, False, False, True),
        }
        owners = await admin.fetch(
            "SELECT DISTINCT pg_get_userbyid(relowner) AS owner FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
        )
        assert [r["owner"] for r in owners] == [funding_db.roles.owner]
    finally:
        await admin.close()


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE sneaky (id int)",
        "DROP TABLE transfers",
        "ALTER TABLE transfers ADD COLUMN note text",
        "ALTER TABLE accounts DISABLE TRIGGER accounts_guard",
        "TRUNCATE transfers",
        "UPDATE transfers SET amount = amount + 1",
        "DELETE FROM transfers",
        "DELETE FROM accounts",
        "SELECT * FROM alembic_version",
        "UPDATE alembic_version SET version_num = 'x'",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
async def test_the_runtime_role_cannot(runtime: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute(statement)


async def test_default_privileges_cover_what_later_migrations_create(
    funding_db: Provisioned, runtime: asyncpg.Connection
) -> None:
    owner = await asyncpg.connect(plain(funding_db.owner_url))
    try:
        await owner.execute("CREATE TABLE IF NOT EXISTS later_feature (id bigint GENERATED ALWAYS AS IDENTITY, x int)")
    finally:
        await owner.close()
    await runtime.execute("INSERT INTO later_feature (x) VALUES (1)")
    assert await runtime.fetchval("SELECT count(*) FROM later_feature") >= 1
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await runtime.execute("DROP TABLE later_feature")


async def test_the_service_does_its_work_as_the_runtime_role(
    funding_db: Provisioned, issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with EmbeddedNats(tmp_path_factory.mktemp("nats-roles") / "jetstream", free_port()) as server:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            for upstream in ("consultations", "projects"):
                await ensure_stream(js, upstream)
            async with running_service(
                SPEC, Settings, database_url=funding_db.runtime_url, nats_url=server.url, issuer=issuer
            ) as funding:
                consultation_id = str(uuid.uuid4())
                candidate = str(uuid.uuid4())
                event = consultation_events.CommuneResultCertified(
                    consultation_id=consultation_id,
                    consultation_code="2040-Q1",
                    result=consultation_events.CommuneResult(
                        commune_id=str(uuid.uuid4()),
                        commune_code="VE.01.01.C0001",
                        commune_name="Uno",
                        ballots=3,
                        winner_candidate_id=candidate,
                        candidates=[
                            consultation_events.CandidateResult(candidate_id=candidate, title="Pozo", votes=3, rank=1)
                        ],
                    ),
                )
                await publish(js, "consultations.commune_result.certified", event, source="/comuna/consultations")

                async def allocated() -> list[dict[str, object]] | None:
                    response = await funding.client.get("/v1/allocations", params={"consultation_id": consultation_id})
                    assert response.status_code == 200, response.text
                    return response.json()["items"] or None

                [allocation] = await eventually(allocated, "funding to allocate as its runtime role")
                assert allocation["amount_minor"] == 1_000_000

                # The outbox relay (runtime role) publishes the allocation event too, just after
                # the commit that made the allocation visible: wait for it rather than race it.
                async def published() -> int | None:
                    return (await js.stream_info("FUNDING")).state.messages or None

                assert await eventually(published, "the relay to publish as the runtime role") >= 1
        finally:
            await nc.close()
    runtime = await asyncpg.connect(plain(funding_db.runtime_url))
    try:
        assert await runtime.fetchval("SELECT count(*) FROM transfers") >= 1
    finally:
        await runtime.close()


async def test_a_database_migrated_before_roles_existed_is_handed_to_its_owner(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    """An existing `.devstack/` (tables made by the superuser) keeps working after the upgrade."""
    database = f"funding_legacy_{uuid.uuid4().hex[:8]}"
    embedded_postgres.create_database(database)
    admin = embedded_postgres.dsn("postgres")
    migrate(MIGRATIONS, Settings(database_url=embedded_postgres.dsn(database)))  # as the superuser, as before
    roles = DatabaseRoles.for_database(database, uuid.uuid4().hex, uuid.uuid4().hex)
    await provision(admin, roles)
    migrate(MIGRATIONS, Settings(database_url=roles.url(admin), migration_database_url=roles.url(admin, owner=True)))
    runtime = await asyncpg.connect(plain(roles.url(admin)))
    try:
        assert await runtime.fetchval("SELECT count(*) FROM transfers") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("DROP TABLE transfers")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await runtime.execute("UPDATE transfers SET amount = 1")
    finally:
        await runtime.close()
    owner = await asyncpg.connect(plain(roles.url(admin, owner=True)))
    try:
        # The owner can run later migrations on what the superuser created.
        await owner.execute("ALTER TABLE allocations ADD COLUMN later_note text")
        await owner.execute("ALTER TABLE allocations DROP COLUMN later_note")
    finally:
        await owner.close()
