"""The whole platform on one machine: embedded PostgreSQL and NATS, four service processes.

Used by `comuna-dev run` (fixed, documented ports) and by the end-to-end tests (free ports), so
both exercise the same start-up path: create databases, migrate, start, wait until ready.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres, reachable_data_dir
from comuna_devstack.supervisor import ProcessGroup

SERVICES = ("identity", "consultations", "funding", "projects")
DEFAULT_HTTP_PORTS = {"identity": 8001, "consultations": 8002, "funding": 8003, "projects": 8004}
DEFAULT_GRPC_PORTS = {"identity": 50051, "consultations": 50052, "funding": 50053, "projects": 50054}
DEFAULT_PG_PORT = 55432
DEFAULT_NATS_PORT = 54222
REALM = "comuna"

# Staff accounts of the development issuer. Each acts nationwide (scope "VE"); passwords are
# generated per machine and kept in the state directory, never in code.
DEV_USERS: dict[str, list[str]] = {
    "operator": ["operator", "registrar"],
    "registrar": ["registrar"],
    "spokesperson": ["spokesperson"],
    "officer": ["polling_officer"],
    "overseer": ["overseer"],
}
PUBLIC_CLIENT = "comuna-cli"


@dataclass
class StackConfig:
    state_dir: Path
    pg_port: int = DEFAULT_PG_PORT
    nats_port: int = DEFAULT_NATS_PORT
    http_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_HTTP_PORTS))
    grpc_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GRPC_PORTS))
    # Existing servers to use instead of the embedded ones, e.g.
    # postgresql+asyncpg://postgres@db:5432 (one database per service is created there).
    postgres_url: str | None = None
    nats_url: str | None = None
    # Tests trade durability for speed (fsync off); `make run` keeps PostgreSQL's defaults.
    fast: bool = False
    log_level: str = "INFO"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, state_dir: Path) -> StackConfig:
        return cls(
            state_dir=state_dir,
            postgres_url=os.environ.get("COMUNA_DEV_POSTGRES_URL") or None,
            nats_url=os.environ.get("COMUNA_DEV_NATS_URL") or None,
        )

    def http_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.http_ports[service]}"

    @property
    def issuer_url(self) -> str:
        return f"{self.http_url('identity')}/realms/{REALM}"


@dataclass(frozen=True)
class DevSecrets:
    census_hash_key: str
    passwords: dict[str, str]
    client_secrets: dict[str, str]

    @classmethod
    def load_or_create(cls, path: Path) -> DevSecrets:
        if path.exists():
            data = json.loads(path.read_text())
            return cls(data["census_hash_key"], data["passwords"], data["client_secrets"])
        created = cls(
            census_hash_key=secrets.token_urlsafe(32),
            passwords={user: secrets.token_urlsafe(12) for user in DEV_USERS},
            client_secrets={f"svc-{svc}": secrets.token_urlsafe(24) for svc in SERVICES},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created.__dict__, indent=2))
        path.chmod(0o600)
        return created


def console_script(name: str) -> str:
    """The console script installed next to this interpreter (the project's environment)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.secrets = DevSecrets.load_or_create(self.state_dir / "secrets.json")
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.processes = ProcessGroup(grace_period=10.0)

    # -- infrastructure ------------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # the unprivileged PostgreSQL user must traverse it
        if self.config.postgres_url is None:
            data_dir = reachable_data_dir(self.state_dir / "pg")
            self.postgres = EmbeddedPostgres(data_dir, self.config.pg_port, fast=self.config.fast)
            self.postgres.start()
        if self.config.nats_url is None:
            self.nats = EmbeddedNats(self.state_dir / "nats", self.config.nats_port)
            self.nats.start()
        for service in SERVICES:
            self._create_database(f"comuna_{service}")

    def _create_database(self, name: str) -> None:
        if self.postgres is not None:
            self.postgres.create_database(name)
            return
        import asyncio

        import asyncpg

        async def create() -> None:
            assert self.config.postgres_url is not None
            conn = await asyncpg.connect(self.config.postgres_url.replace("+asyncpg", "") + "/postgres")
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def database_url(self, service: str) -> str:
        if self.postgres is not None:
            return self.postgres.dsn(f"comuna_{service}")
        assert self.config.postgres_url is not None
        return f"{self.config.postgres_url.rstrip('/')}/comuna_{service}"

    @property
    def nats_url(self) -> str:
        if self.nats is not None:
            return self.nats.url
        assert self.config.nats_url is not None
        return self.config.nats_url

    # -- services ------------------------------------------------------------------------------
    def write_dev_issuer_config(self) -> Path:
        path = self.state_dir / "dev-issuer.json"
        config: dict[str, Any] = {
            "realm": REALM,
            "issuer_base_url": self.config.http_url("identity"),
            "signing_key_file": str(self.state_dir / "issuer-key.pem"),
            "access_token_ttl_seconds": 3600,
            "audience": "comuna",
            "users": [
                {
                    "username": user,
                    "password": self.secrets.passwords[user],
                    "realm_roles": roles,
                    "territories": ["VE"],
                }
                for user, roles in DEV_USERS.items()
            ],
            "clients": [
                {"client_id": PUBLIC_CLIENT, "secret": None},
                *(
                    {"client_id": client, "secret": secret, "realm_roles": ["service"], "territories": ["VE"]}
                    for client, secret in self.secrets.client_secrets.items()
                ),
            ],
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
        return path

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"COMUNA_{service.upper()}_"
        env = {
            "DATABASE_URL": self.database_url(service),
            "NATS_URL": self.nats_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.config.http_ports[service]),
            "GRPC_PORT": str(self.config.grpc_ports[service]),
            "OIDC_ISSUER": self.config.issuer_url,
            "OIDC_AUDIENCE": "comuna",
            "SERVICE_CLIENT_ID": f"svc-{service}",
            "SERVICE_CLIENT_SECRET": self.secrets.client_secrets[f"svc-{service}"],
            "LOG_LEVEL": self.config.log_level,
            "IDENTITY_GRPC_TARGET": f"127.0.0.1:{self.config.grpc_ports['identity']}",
            "CONSULTATIONS_GRPC_TARGET": f"127.0.0.1:{self.config.grpc_ports['consultations']}",
            "FUNDING_GRPC_TARGET": f"127.0.0.1:{self.config.grpc_ports['funding']}",
            "PROJECTS_GRPC_TARGET": f"127.0.0.1:{self.config.grpc_ports['projects']}",
        }
        if service == "identity":
            env["CENSUS_HASH_KEY"] = self.secrets.census_hash_key
            env["DEV_ISSUER_CONFIG"] = str(self.write_dev_issuer_config())
        merged = {prefix + key: value for key, value in env.items()}
        merged.update(self.config.extra_env)
        return merged

    def migrate(self) -> None:
        import subprocess

        for service in SERVICES:
            env = {**os.environ, **self.service_env(service)}
            subprocess.run([console_script(f"comuna-{service}"), "migrate"], env=env, check=True)

    def start_services(self, timeout: float = 60.0) -> None:
        for service in SERVICES:
            self._spawn(service)
        for service in SERVICES:
            self.processes.wait_http_ready(service, f"{self.config.http_url(service)}/readyz", timeout=timeout)

    def _spawn(self, service: str) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.processes.start(
            service,
            [console_script(f"comuna-{service}"), "serve"],
            env=self.service_env(service),
            log_file=logs / f"{service}.log",
        )

    # -- fault injection (tests): crash a service, start it again ------------------------------
    def kill_service(self, service: str) -> None:
        """kill -9 one service process (its whole process group), as a crash would."""
        self.processes.kill(service)

    def start_service(self, service: str, timeout: float = 60.0) -> None:
        """Start one service (e.g. after `kill_service`) and wait until it is ready."""
        self._spawn(service)
        self.processes.wait_http_ready(service, f"{self.config.http_url(service)}/readyz", timeout=timeout)

    def start(self) -> None:
        self.start_infrastructure()
        self.migrate()
        self.start_services()

    def stop(self) -> None:
        self.processes.stop()
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def __enter__(self) -> Stack:
        # Entering the process group turns SIGTERM into SystemExit, so a terminated
        # `comuna-dev run` still reaches `stop()`: PostgreSQL (daemonised by pg_ctl) would
        # otherwise outlive it, unlike the children that die with their parent.
        self.processes.__enter__()
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.processes.__exit__(None, None, None)
