"""Least-privileged PostgreSQL roles for one service database: an owner and a runtime role.

The owner role owns the database, its `public` schema and every object in it; migrations run as
it. The runtime role (the service itself) may only connect and use the schema; `migrate` grants
it its table privileges (`comuna_platform.migrations.runtime_grants`). Neither is a superuser,
and nobody else may create anything in the schema. Safe to run on every start: roles and
passwords are brought up to date, objects left owned by someone else (a database created
before roles existed) are handed to the owner.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,50}$")


@dataclass(frozen=True)
class DatabaseRoles:
    database: str
    owner: str
    owner_password: str
    runtime: str
    runtime_password: str

    @classmethod
    def for_database(cls, database: str, owner_password: str, runtime_password: str) -> DatabaseRoles:
        if not _NAME.match(database):
            raise ValueError(f"unsupported database name {database!r}")
        return cls(database, f"{database}_owner", owner_password, f"{database}_app", runtime_password)

    def url(self, server_url: str, *, owner: bool = False) -> str:
        """`server_url` (any database, any user) pointed at this database as one of the roles."""
        url = make_url(server_url).set(
            username=self.owner if owner else self.runtime,
            password=self.owner_password if owner else self.runtime_password,
            database=self.database,
        )
        return url.render_as_string(hide_password=False)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# Hands every object in `public` to the owner role, so that later migrations (run as the owner)
# can alter them. Sequences that belong to a column follow their table.
_REASSIGN = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS name, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND c.relowner <> '{owner}'::regrole LOOP
    EXECUTE format('ALTER %s %s OWNER TO {owner}',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS name FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind = 'S' AND c.relowner <> '{owner}'::regrole
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO {owner}', r.name);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS name FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.proowner <> '{owner}'::regrole LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO {owner}', r.name);
  END LOOP;
  FOR r IN SELECT t.oid::regtype AS name FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'r') AND t.typowner <> '{owner}'::regrole LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO {owner}', r.name);
  END LOOP;
END $$
"""


async def provision(admin_url: str, roles: DatabaseRoles) -> None:
    """As a superuser (`admin_url`, any database): create or update both roles and hand them
    the database. The database must exist."""
    dsn = make_url(admin_url).set(drivername="postgresql")
    server = await asyncpg.connect(dsn.set(database="postgres").render_as_string(hide_password=False))
    try:
        for role, password in ((roles.owner, roles.owner_password), (roles.runtime, roles.runtime_password)):
            exists = await server.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
            verb = "ALTER" if exists else "CREATE"
            # Names matched _NAME; passwords are quoted as literals (DDL takes no parameters).
            await server.execute(
                f"{verb} ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                f"PASSWORD {_literal(password)}"
            )
        await server.execute(f"ALTER DATABASE {roles.database} OWNER TO {roles.owner}")
        await server.execute(f"REVOKE ALL ON DATABASE {roles.database} FROM PUBLIC")
        # TEMPORARY: bulk imports stage their rows in a temporary table (dropped at commit).
        await server.execute(f"GRANT CONNECT, TEMPORARY ON DATABASE {roles.database} TO {roles.runtime}")
    finally:
        await server.close()
    database = await asyncpg.connect(dsn.set(database=roles.database).render_as_string(hide_password=False))
    try:
        async with database.transaction():
            await database.execute(f"ALTER SCHEMA public OWNER TO {roles.owner}")
            await database.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
            await database.execute(f"GRANT USAGE ON SCHEMA public TO {roles.runtime}")
            await database.execute(_REASSIGN.replace("{owner}", roles.owner))
    finally:
        await database.close()
