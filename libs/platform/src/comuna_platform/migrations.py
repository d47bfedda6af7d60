"""Alembic, the same way for every service, and the privileges of the role the service runs as.

Each service keeps its revisions in `comuna_<svc>/migrations/versions`; its `env.py` only calls
`run_env` with its metadata. The outbox/inbox tables are always part of the target.

Migrations run as the database's owner role (`MIGRATION_DATABASE_URL`); the service runs as a
runtime role (the user of `DATABASE_URL`) that owns nothing. When the two differ, every
migration run ends, in the same transaction, by granting the runtime role exactly what it needs:
USAGE on the schema, SELECT/INSERT/UPDATE/DELETE on the tables (fewer where a table says so in
its `info["runtime_privileges"]`, e.g. an append-only ledger), USAGE on the sequences, the same
as default privileges for whatever later migrations create, and nothing on `alembic_version`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from comuna_platform.events.tables import events_metadata
from comuna_platform.settings import ServiceSettings

RUNTIME_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
_PRIVILEGE_NAMES = frozenset(RUNTIME_PRIVILEGES)


def alembic_config(migrations_dir: Path, database_url: str, runtime_role: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["runtime_role"] = runtime_role
    return config


def upgrade(
    migrations_dir: Path, database_url: str, revision: str = "head", *, runtime_role: str | None = None
) -> None:
    """Migrate to `revision`; with `runtime_role`, then grant that role its privileges."""
    command.upgrade(alembic_config(migrations_dir, database_url, runtime_role), revision)


def runtime_role_of(settings: ServiceSettings) -> str | None:
    """The role to grant to: the user of DATABASE_URL when migrations connect as someone else."""
    if settings.migration_database_url is None:
        return None
    runtime_user = make_url(settings.database_url).username
    if runtime_user is None or runtime_user == make_url(settings.migration_database_url).username:
        return None
    return runtime_user


def migrate(migrations_dir: Path, settings: ServiceSettings) -> None:
    """`comuna-<svc> migrate`: upgrade as the owner, grant the runtime role."""
    url = settings.migration_database_url or settings.database_url
    upgrade(migrations_dir, url, runtime_role=runtime_role_of(settings))


def runtime_grants(
    role: str, tables: Iterable[tuple[str, Sequence[str]]], *, analysable: Iterable[str] = ()
) -> list[str]:
    """The statements that give `role` exactly the runtime privileges (idempotent).

    `tables` lists tables whose privileges differ from the default, with what they allow.
    `analysable` lists tables the service ANALYZEs itself right after writing millions of rows
    (PostgreSQL 17's MAINTAIN; without it ANALYZE only warns and skips, and plans stay blind).
    """
    q = _quote(role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {q}",
        f"GRANT {', '.join(RUNTIME_PRIVILEGES)} ON ALL TABLES IN SCHEMA public TO {q}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {q}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT {', '.join(RUNTIME_PRIVILEGES)} ON TABLES TO {q}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {q}",
        # Only migrations read or write the revision table.
        f"REVOKE ALL ON alembic_version FROM {q}",
    ]
    for table, privileges in tables:
        unknown = set(privileges) - _PRIVILEGE_NAMES
        if unknown:
            raise ValueError(f"table {table}: unsupported runtime privileges {sorted(unknown)}")
        statements.append(f"REVOKE ALL ON {_quote(table)} FROM {q}")
        if privileges:
            statements.append(f"GRANT {', '.join(privileges)} ON {_quote(table)} TO {q}")
    statements += [f"GRANT MAINTAIN ON {_quote(table)} TO {q}" for table in analysable]
    return statements


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def restricted_tables(metadata: Iterable[MetaData]) -> list[tuple[str, Sequence[str]]]:
    """Tables that declare `info={"runtime_privileges": (...)}` (fewer than the default)."""
    return [
        (table.name, tuple(table.info["runtime_privileges"]))
        for meta in metadata
        for table in meta.sorted_tables
        if "runtime_privileges" in table.info
    ]


def analysable_tables(metadata: Iterable[MetaData]) -> list[str]:
    """Tables that declare `info={"runtime_analyze": True}`: the service ANALYZEs them itself."""
    return [table.name for meta in metadata for table in meta.sorted_tables if table.info.get("runtime_analyze")]


# The first PostgreSQL with the MAINTAIN privilege (ANALYZE by a role that does not own the table).
MAINTAIN_SINCE = (17,)


def run_env(metadata: MetaData) -> None:
    """Body of every service's Alembic env.py (online mode, async engine)."""
    target = [metadata, events_metadata]
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    runtime_role = context.config.attributes.get("runtime_role")

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
            if runtime_role:
                version = connection.dialect.server_version_info or (0,)
                analysable = analysable_tables(target) if tuple(version[:1]) >= MAINTAIN_SINCE else []
                for statement in runtime_grants(runtime_role, restricted_tables(target), analysable=analysable):
                    connection.execute(text(statement))

    async def run() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run())
        return
    # Called from async code (a test fixture, a bootstrap task): Alembic is synchronous, so
    # give the async engine a loop of its own in a worker thread.
    with ThreadPoolExecutor(max_workers=1) as worker:
        worker.submit(asyncio.run, run()).result()
