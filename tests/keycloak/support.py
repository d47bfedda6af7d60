"""Running `comuna-identity keycloak sync` as operators do: the console script, env settings."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from tests.keycloak.conftest import KeycloakServer

SCRIPT = Path(sys.executable).parent / "comuna-identity"


@dataclass
class SyncResult:
    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()

    @property
    def summary(self) -> str:
        return self.lines[-1] if self.lines else ""


@dataclass
class SyncEnv:
    """The settings of one realm's sync; `run` invokes the real console script."""

    server: KeycloakServer
    database_url: str
    realm: str
    secrets_file: Path
    passwords_file: Path
    development: bool = True
    extra: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMUNA_IDENTITY_")}
        return env | {
            "COMUNA_IDENTITY_DATABASE_URL": self.database_url,
            "COMUNA_IDENTITY_KEYCLOAK_URL": self.server.base_url,
            "COMUNA_IDENTITY_KEYCLOAK_REALM": self.realm,
            "COMUNA_IDENTITY_KEYCLOAK_ADMIN_USERNAME": self.server.admin_username,
            "COMUNA_IDENTITY_KEYCLOAK_ADMIN_PASSWORD": self.server.admin_password,
            "COMUNA_IDENTITY_KEYCLOAK_DEVELOPMENT": "true" if self.development else "false",
            "COMUNA_IDENTITY_KEYCLOAK_CLIENT_SECRETS_FILE": str(self.secrets_file),
            **self.extra,
        }

    def run(self, *args: str | Path, **overrides: str) -> SyncResult:
        completed = subprocess.run(
            [str(SCRIPT), "keycloak", "sync", *map(str, args)],
            env=self.environment() | overrides,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return SyncResult(completed.returncode, completed.stdout, completed.stderr)


def client_secrets() -> dict[str, str]:
    return {f"svc-{name}": f"secret-{name}-0123456789" for name in ("identity", "consultations", "funding", "projects")}


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified: these tests read what Keycloak put in it."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def asyncpg_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://")


def sql(database_url: str, statement: str, *params: object) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(asyncpg_url(database_url))
        try:
            return list(await connection.fetch(statement, *params))
        finally:
            await connection.close()

    return asyncio.run(go())


def insert_territories(database_url: str, rows: list[tuple[str, str, str]]) -> None:
    """(code, name, kind), parents first, each under the code before its last dot: the register a
    sync reads (test setup only), one open version per unit."""
    for code, name, kind in rows:
        parent = code.rpartition(".")[0] or None
        sql(
            database_url,
            "WITH unit AS (INSERT INTO territories (id, code) VALUES (gen_random_uuid(), $1) RETURNING id) "
            "INSERT INTO territory_versions (id, territory_id, valid_from, name, kind, parent_id) "
            "SELECT gen_random_uuid(), unit.id, DATE '1900-01-01', $2, $3, "
            "(SELECT id FROM territories WHERE code = $4) FROM unit",
            code,
            name,
            kind,
            parent,
        )
