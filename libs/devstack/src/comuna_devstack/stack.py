"""The whole platform on one machine: embedded PostgreSQL, NATS and Keycloak, four service processes.

Used by `comuna-dev run` (fixed, documented ports) and by the end-to-end tests (free ports), so
both exercise the same start-up path: create databases, launch Keycloak, migrate, provision the
realm from identity's data (`comuna-identity keycloak sync` with the dev seed), start the
services, wait until ready.

Before anything starts, the state directory is claimed (`pids/stack.pid`; a second live run
on it is refused), whatever an earlier run of it left alive is stopped (services and NATS from
their pid files under `pids/`, PostgreSQL from its postmaster.pid), and every port the stack
needs is checked: one held by another program is reported with the setting that moves it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from comuna_consultations.domain.record import DEFAULT_RECORD_ORIGIN
from comuna_devstack._process import read_pid_file, stop_recorded, write_pid_file
from comuna_devstack.db_roles import DatabaseRoles, provision
from comuna_devstack.errors import DevStackError, PortInUse
from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.nats_auth import READER, accounts_config
from comuna_devstack.ports import port_is_free
from comuna_devstack.postgres import PG_SYSTEM_USER, EmbeddedPostgres, reachable_data_dir, relocated_parent
from comuna_devstack.seed import dev_seed
from comuna_devstack.supervisor import ProcessGroup
from comuna_funding.storage.journal import DEFAULT_ORIGIN as DEFAULT_JOURNAL_ORIGIN
from comuna_platform.events.streams import service_inbox_prefix
from comuna_platform.tlog.note import COSIGNATURE_V1, Signer, parse_skey

SERVICES = ("identity", "consultations", "funding", "projects")
DEFAULT_HTTP_PORTS = {"identity": 8001, "consultations": 8002, "funding": 8003, "projects": 8004}
DEFAULT_GRPC_PORTS = {"identity": 50051, "consultations": 50052, "funding": 50053, "projects": 50054}
# Prometheus `/metrics` of each service, apart from its public REST port.
DEFAULT_METRICS_PORTS = {"identity": 9101, "consultations": 9102, "funding": 9103, "projects": 9104}
DEFAULT_PG_PORT = 55432
# The demo's witness of the public record (`comuna-witness`, docs/record.md).
DEV_WITNESS_NAME = "witness.comuna.localhost"
DEFAULT_NATS_PORT = 54222
# The reference funding source (`comuna-treasury`): a state's treasury the demo co-funds from.
DEFAULT_TREASURY_PORT = 50070
TREASURY_PORT_ENV = "COMUNA_DEV_TREASURY_PORT"
TREASURY_DATABASE = "comuna_treasury"
# The dev state treasury: the funder funding registers, and the name of its token in
# COMUNA_FUNDING_SOURCE_CREDENTIALS.
DEV_TREASURY_CREDENTIALS = "dev-state-treasury"
DEV_TREASURY_CURRENCY = "USD"
# 1,000,000.00 USD: enough for every demo run's rank-2 projects.
DEV_TREASURY_BUDGET = 100_000_000
# Keycloak's own defaults: its public HTTP port and its management interface (health, metrics).
DEFAULT_KEYCLOAK_PORT = 8080
DEFAULT_KEYCLOAK_MANAGEMENT_PORT = 9000
REALM = "comuna"
AUDIENCE = "comuna"
PUBLIC_CLIENT = "comuna-cli"
KEYCLOAK_ADMIN = "admin"
KEYCLOAK_DATABASE = "keycloak"

# Settings that move the embedded servers and the services off their default ports.
PG_PORT_ENV = "COMUNA_DEV_PG_PORT"
NATS_PORT_ENV = "COMUNA_DEV_NATS_PORT"
KEYCLOAK_PORT_ENV = "COMUNA_DEV_KEYCLOAK_PORT"
KEYCLOAK_MANAGEMENT_PORT_ENV = "COMUNA_DEV_KEYCLOAK_MANAGEMENT_PORT"
# An existing Keycloak instead of the embedded one (the realm is provisioned there).
KEYCLOAK_URL_ENV = "COMUNA_DEV_KEYCLOAK_URL"
KEYCLOAK_ADMIN_USERNAME_ENV = "COMUNA_DEV_KEYCLOAK_ADMIN_USERNAME"
KEYCLOAK_ADMIN_PASSWORD_ENV = "COMUNA_DEV_KEYCLOAK_ADMIN_PASSWORD"  # noqa: S105 (a setting name)
KEYCLOAK_REALM_ENV = "COMUNA_DEV_KEYCLOAK_REALM"


def http_port_env(service: str) -> str:
    return f"COMUNA_DEV_{service.upper()}_HTTP_PORT"


def grpc_port_env(service: str) -> str:
    return f"COMUNA_DEV_{service.upper()}_GRPC_PORT"


def processes_env(service: str) -> str:
    return f"COMUNA_DEV_{service.upper()}_PROCESSES"


# Process n >= 2 of a service serves its metrics on the service's metrics port + 100 * (n - 1):
# 9202 for the second consultations process (REST and gRPC ports are shared, SO_REUSEPORT).
METRICS_PORT_STEP = 100
MAX_PROCESSES = 8


def _processes_from(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return 1
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PROCESSES:
        raise DevStackError(f"{name} must be a number of processes from 1 to {MAX_PROCESSES}, not {raw!r}")
    return int(raw)


def _port_from(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DevStackError(f"{name} must be a TCP port number (1-65535), not {raw!r}")
    return int(raw)


@dataclass
class StackConfig:
    state_dir: Path
    pg_port: int = DEFAULT_PG_PORT
    nats_port: int = DEFAULT_NATS_PORT
    keycloak_port: int = DEFAULT_KEYCLOAK_PORT
    keycloak_management_port: int = DEFAULT_KEYCLOAK_MANAGEMENT_PORT
    treasury_port: int = DEFAULT_TREASURY_PORT
    http_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_HTTP_PORTS))
    grpc_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GRPC_PORTS))
    metrics_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_METRICS_PORTS))
    # Processes per service on this host (COMUNA_DEV_<SERVICE>_PROCESSES, default 1): replicas,
    # as Kubernetes runs them, sharing the service's REST and gRPC ports; one Python process
    # uses one core, so a second one lets a service use the second core.
    processes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))
    # Existing servers to use instead of the embedded ones, e.g.
    # postgresql+asyncpg://postgres@db:5432 (one database per service is created there).
    postgres_url: str | None = None
    nats_url: str | None = None
    # An existing Keycloak (base URL, no /realms) and its admin account, e.g. the test session's
    # one server shared by several stacks, each in a realm of its own.
    external_keycloak_url: str | None = None
    keycloak_admin_username: str = KEYCLOAK_ADMIN
    keycloak_admin_password: str | None = None
    realm: str = REALM
    # Seed the demo territory and its staff (`make run`); tests with a territory of their own
    # get the country root and the nationwide staff only.
    demo_territory: bool = True
    # Tests trade durability for speed (fsync off); `make run` keeps PostgreSQL's defaults.
    fast: bool = False
    log_level: str = "INFO"
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, state_dir: Path, env: Mapping[str, str] = os.environ) -> StackConfig:
        return cls(
            state_dir=state_dir,
            pg_port=_port_from(env, PG_PORT_ENV, DEFAULT_PG_PORT),
            nats_port=_port_from(env, NATS_PORT_ENV, DEFAULT_NATS_PORT),
            keycloak_port=_port_from(env, KEYCLOAK_PORT_ENV, DEFAULT_KEYCLOAK_PORT),
            keycloak_management_port=_port_from(env, KEYCLOAK_MANAGEMENT_PORT_ENV, DEFAULT_KEYCLOAK_MANAGEMENT_PORT),
            treasury_port=_port_from(env, TREASURY_PORT_ENV, DEFAULT_TREASURY_PORT),
            http_ports={s: _port_from(env, http_port_env(s), DEFAULT_HTTP_PORTS[s]) for s in SERVICES},
            grpc_ports={s: _port_from(env, grpc_port_env(s), DEFAULT_GRPC_PORTS[s]) for s in SERVICES},
            processes={s: _processes_from(env, processes_env(s)) for s in SERVICES},
            postgres_url=env.get("COMUNA_DEV_POSTGRES_URL") or None,
            nats_url=env.get("COMUNA_DEV_NATS_URL") or None,
            external_keycloak_url=env.get(KEYCLOAK_URL_ENV, "").rstrip("/") or None,
            keycloak_admin_username=env.get(KEYCLOAK_ADMIN_USERNAME_ENV) or KEYCLOAK_ADMIN,
            keycloak_admin_password=env.get(KEYCLOAK_ADMIN_PASSWORD_ENV) or None,
            realm=env.get(KEYCLOAK_REALM_ENV) or REALM,
        )

    def listening_ports(self) -> dict[int, str]:
        """Every port this stack listens on, with the setting that moves it; duplicates refused."""
        wanted: list[tuple[int, str]] = []
        if self.postgres_url is None:
            wanted.append((self.pg_port, PG_PORT_ENV))
        if self.nats_url is None:
            wanted.append((self.nats_port, NATS_PORT_ENV))
        if self.external_keycloak_url is None:
            wanted.append((self.keycloak_port, KEYCLOAK_PORT_ENV))
            wanted.append((self.keycloak_management_port, KEYCLOAK_MANAGEMENT_PORT_ENV))
        wanted.append((self.treasury_port, TREASURY_PORT_ENV))
        for service in SERVICES:
            wanted.append((self.http_ports[service], http_port_env(service)))
            wanted.append((self.grpc_ports[service], grpc_port_env(service)))
            for n in range(2, self.processes[service] + 1):
                wanted.append((self.process_metrics_port(service, n), processes_env(service)))
        ports: dict[int, str] = {}
        for port, setting in wanted:
            if port in ports:
                raise DevStackError(f"port {port} is configured twice ({ports[port]} and {setting})")
            ports[port] = setting
        return ports

    def http_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.http_ports[service]}"

    def process_metrics_port(self, service: str, n: int) -> int:
        """The metrics port of process `n` (1-based) of a service."""
        return self.metrics_ports[service] + METRICS_PORT_STEP * (n - 1)

    def metrics_url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.metrics_ports[service]}/metrics"

    @property
    def keycloak_url(self) -> str:
        return self.external_keycloak_url or f"http://127.0.0.1:{self.keycloak_port}"

    @property
    def issuer_url(self) -> str:
        return f"{self.keycloak_url}/realms/{self.realm}"

    @property
    def token_url(self) -> str:
        return f"{self.issuer_url}/protocol/openid-connect/token"


@dataclass(frozen=True)
class DevSecrets:
    census_hash_key: str
    # The secret identity's roll base points and voter roll keys derive from.
    roll_secret: str
    # Keycloak: the bootstrap admin (master realm) and its database role's password.
    keycloak: dict[str, str]
    client_secrets: dict[str, str]
    # NATS users: one per service plus the read-only `reader`.
    nats_passwords: dict[str, str] = field(default_factory=dict)
    # PostgreSQL roles: `comuna_<service>_owner` (migrations) and `comuna_<service>_app` (runtime).
    database_passwords: dict[str, str] = field(default_factory=dict)
    # consultations' key of the participations' voter pseudonyms (voting/pseudonyms.py).
    voter_ref_secret: str = ""
    # Consultations' Ed25519 seed (base64, 32 bytes) that signs offline tables' snapshots.
    snapshot_signing_key: str = ""
    # Consultations' C2SP signer key of the public record's checkpoints (docs/record.md).
    record_signing_key: str = ""
    # The demo's witness (`comuna-witness`): its C2SP cosignature/v1 signer key; consultations
    # and funding keep cosignatures by its verifier key.
    witness_signing_key: str = ""
    # Funding's C2SP signer key of the ledger journal's checkpoints (docs/ledger.md).
    journal_signing_key: str = ""
    # The bearer token of the dev state treasury (`comuna-treasury`), which funding presents.
    treasury_token: str = ""

    @classmethod
    def load_or_create(cls, path: Path) -> DevSecrets:
        """The machine's dev secrets; any missing entry (a file from an older checkout) is generated."""
        data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        wanted: dict[str, dict[str, str]] = {
            "keycloak": {"admin_password": secrets.token_urlsafe(18), "database_password": secrets.token_urlsafe(24)},
            "client_secrets": {f"svc-{svc}": secrets.token_urlsafe(24) for svc in SERVICES},
            "nats_passwords": {user: secrets.token_urlsafe(24) for user in (*SERVICES, READER)},
            "database_passwords": {
                f"comuna_{svc}_{kind}": secrets.token_urlsafe(24) for svc in SERVICES for kind in ("owner", "app")
            },
        }
        generated_values: dict[str, Callable[[], str]] = {
            "census_hash_key": lambda: secrets.token_urlsafe(32),
            "roll_secret": lambda: secrets.token_urlsafe(48),
            "voter_ref_secret": lambda: secrets.token_urlsafe(48),
            "snapshot_signing_key": lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
            "record_signing_key": lambda: Signer.generate(DEFAULT_RECORD_ORIGIN).skey,
            "witness_signing_key": lambda: Signer.generate(DEV_WITNESS_NAME, COSIGNATURE_V1).skey,
            "journal_signing_key": lambda: Signer.generate(DEFAULT_JOURNAL_ORIGIN).skey,
            "treasury_token": lambda: secrets.token_urlsafe(32),
        }
        changed = False
        for name, generate in generated_values.items():
            if name not in data:
                data[name] = generate()
                changed = True
        for section, generated in wanted.items():
            current = data.setdefault(section, {})
            for key, value in generated.items():
                if key not in current:
                    current[key] = value
                    changed = True
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.chmod(0o600)
            path.write_text(json.dumps(data, indent=2))
        return cls(
            data["census_hash_key"],
            data["roll_secret"],
            data["keycloak"],
            data["client_secrets"],
            data["nats_passwords"],
            data["database_passwords"],
            data["voter_ref_secret"],
            data["snapshot_signing_key"],
            data["record_signing_key"],
            data["witness_signing_key"],
            data["journal_signing_key"],
            data["treasury_token"],
        )

    @property
    def witness_verifier_key(self) -> str:
        return parse_skey(self.witness_signing_key).verifier.vkey

    def database_roles(self, service: str) -> DatabaseRoles:
        database = f"comuna_{service}"
        return DatabaseRoles.for_database(
            database, self.database_passwords[f"{database}_owner"], self.database_passwords[f"{database}_app"]
        )


def staff_passwords_file(state_dir: Path) -> Path:
    """Generated passwords of the dev seed's staff (written by `keycloak sync`, 0600)."""
    return state_dir / "staff-passwords.json"


def console_script(name: str) -> str:
    """The console script installed next to this interpreter (the project's environment)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


class Stack:
    def __init__(self, config: StackConfig, *, notify: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.state_dir = config.state_dir
        self.secrets = DevSecrets.load_or_create(self.state_dir / "secrets.json")
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None
        self.keycloak: EmbeddedKeycloak | None = None
        self.notify = notify or logging.getLogger(__name__).warning
        self.pid_dir = self.state_dir / "pids"
        self.processes = ProcessGroup(grace_period=10.0, pid_dir=self.pid_dir)
        self._claimed = False

    # -- infrastructure ------------------------------------------------------------------------
    def start_infrastructure(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o755)  # the unprivileged PostgreSQL user must traverse it
        self._claim_state_dir()
        if self.config.postgres_url is None:
            data_dir = reachable_data_dir(self.state_dir / "pg")
            if data_dir != self.state_dir / "pg":
                self.notify(f"PostgreSQL data lives in {data_dir} ({PG_SYSTEM_USER} cannot reach {self.state_dir})")
            self.postgres = EmbeddedPostgres(data_dir, self.config.pg_port, fast=self.config.fast, notify=self.notify)
        self._stop_leftovers()
        self._check_ports()
        if self.postgres is not None:
            self.postgres.start()
        if self.config.nats_url is None:
            # Authentication on: every service as its own user, no anonymous access.
            accounts = accounts_config(self.secrets.nats_passwords)
            self.nats = EmbeddedNats(self.state_dir / "nats", self.config.nats_port, accounts=accounts)
            self.nats.start()
            if self.nats.pid is not None:
                write_pid_file(self.pid_dir / "nats.pid", self.nats.pid)
        for service in SERVICES:
            self._create_database(f"comuna_{service}")
            self._create_roles(service)
        self._create_database(TREASURY_DATABASE)

    def launch_keycloak(self) -> None:
        """Start the embedded Keycloak on its own database (`start` waits for it after the
        migrations), or check the settings of an external one."""
        if self.config.external_keycloak_url is not None:
            if not self.config.keycloak_admin_password:
                raise DevStackError(f"{KEYCLOAK_URL_ENV} needs {KEYCLOAK_ADMIN_PASSWORD_ENV} (its admin's password)")
            return
        self._create_database(KEYCLOAK_DATABASE)
        # Keycloak migrates its own schema (Liquibase), so it runs as the database's owner role.
        password = self.secrets.keycloak["database_password"]
        asyncio.run(provision(self._admin_url, DatabaseRoles.for_database(KEYCLOAK_DATABASE, password, password)))
        server = make_url(self._admin_url)
        self.keycloak = EmbeddedKeycloak(
            self.state_dir / "keycloak",
            http_port=self.config.keycloak_port,
            management_port=self.config.keycloak_management_port,
            jdbc_url=f"jdbc:postgresql://{server.host}:{server.port}/{KEYCLOAK_DATABASE}",
            db_username=f"{KEYCLOAK_DATABASE}_owner",
            db_password=self.secrets.keycloak["database_password"],
            admin_username=KEYCLOAK_ADMIN,
            admin_password=self.secrets.keycloak["admin_password"],
            notify=self.notify,
        )
        self.keycloak.launch()
        if self.keycloak.pid is not None:
            write_pid_file(self.pid_dir / "keycloak.pid", self.keycloak.pid)

    def _create_roles(self, service: str) -> None:
        """The owner (migrations) and runtime (the service) roles of the service's database."""
        asyncio.run(provision(self._admin_url, self.secrets.database_roles(service)))

    @property
    def _admin_url(self) -> str:
        """A superuser connection to the server (the embedded one, or COMUNA_DEV_POSTGRES_URL)."""
        if self.postgres is not None:
            return self.postgres.dsn("postgres")
        assert self.config.postgres_url is not None
        return f"{self.config.postgres_url.rstrip('/')}/postgres"

    def _claim_state_dir(self) -> None:
        """Record this process as the state directory's user; refuse if another live one is."""
        _refuse_live_owner(self.pid_dir, self.state_dir)
        write_pid_file(self.pid_dir / "stack.pid", os.getpid())
        self._claimed = True

    def _stop_leftovers(self) -> None:
        """Stop what an earlier (killed) run of this state directory left alive."""
        _stop_recorded_leftovers(self.pid_dir, self.notify)
        if self.postgres is not None:
            self.postgres.stop_leftover()

    def _check_ports(self) -> None:
        """Every port is free before anything starts, so a busy one is never a late, vague failure."""
        for port, setting in self.config.listening_ports().items():
            if not port_is_free("127.0.0.1", port):
                raise PortInUse(port, setting)

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

    def database_url(self, service: str, *, owner: bool = False) -> str:
        """The service's database as its runtime role (or, for migrations, its owner role)."""
        return self.secrets.database_roles(service).url(self._admin_url, owner=owner)

    def nats_options(self, user: str = READER) -> dict[str, str]:
        """`nats.connect` keyword arguments for a NATS user of the embedded server: a service
        (with the inbox prefix its permissions allow), or the read-only `reader` (dashboards,
        the press). Empty for an external server, whose users are not ours."""
        if self.nats is None:
            return {}
        options = {"user": user, "password": self.secrets.nats_passwords[user]}
        if user in SERVICES:
            options["inbox_prefix"] = service_inbox_prefix(user)
        return options

    @property
    def nats_url(self) -> str:
        if self.nats is not None:
            return self.nats.url
        assert self.config.nats_url is not None
        return self.config.nats_url

    # -- services ------------------------------------------------------------------------------
    @property
    def staff_passwords_file(self) -> Path:
        return staff_passwords_file(self.state_dir)

    def staff_passwords(self) -> dict[str, str]:
        return self.read_staff_passwords(self.state_dir)

    @staticmethod
    def read_staff_passwords(state_dir: Path) -> dict[str, str]:
        """The dev seed's staff passwords, username -> password, as `keycloak sync` kept them."""
        path = staff_passwords_file(state_dir)
        if not path.exists():
            raise DevStackError(f"no {path}: start the platform with `make run` first")
        data: dict[str, str] = json.loads(path.read_text())
        return data

    def service_env(self, service: str) -> dict[str, str]:
        prefix = f"COMUNA_{service.upper()}_"
        env = {
            "DATABASE_URL": self.database_url(service),
            "MIGRATION_DATABASE_URL": self.database_url(service, owner=True),
            "NATS_URL": self.nats_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(self.config.http_ports[service]),
            "GRPC_PORT": str(self.config.grpc_ports[service]),
            "METRICS_PORT": str(self.config.metrics_ports[service]),
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
        if self.nats is not None:
            env["NATS_USER"] = service
            env["NATS_PASSWORD"] = self.secrets.nats_passwords[service]
        if service == "identity":
            env["CENSUS_HASH_KEY"] = self.secrets.census_hash_key
            env["ROLL_SECRET"] = self.secrets.roll_secret
            env.update(self._keycloak_admin_env())
        if service == "consultations":
            env["VOTER_REF_SECRET"] = self.secrets.voter_ref_secret
            env["SNAPSHOT_SIGNING_KEY"] = self.secrets.snapshot_signing_key
            env["RECORD_SIGNING_KEYS"] = json.dumps([self.secrets.record_signing_key])
            env["RECORD_WITNESS_KEYS"] = json.dumps([self.secrets.witness_verifier_key])
        if service == "projects":
            # Evidence files (photos, receipts) on the local disk, beside the stack's other data.
            env["EVIDENCE_DIR"] = str(self.config.state_dir / "evidence")
        if service == "funding":
            env["RECORD_SIGNING_KEYS"] = json.dumps([self.secrets.journal_signing_key])
            env["RECORD_WITNESS_KEYS"] = json.dumps([self.secrets.witness_verifier_key])
            env["SOURCE_CREDENTIALS"] = json.dumps({DEV_TREASURY_CREDENTIALS: self.secrets.treasury_token})
        merged = {prefix + key: value for key, value in env.items()}
        merged.update(self.config.extra_env)
        return merged

    def _keycloak_admin_env(self) -> dict[str, str]:
        """identity's settings for `comuna-identity keycloak sync` (unprefixed names)."""
        return {
            "KEYCLOAK_URL": self.config.keycloak_url,
            "KEYCLOAK_REALM": self.config.realm,
            "KEYCLOAK_ADMIN_USERNAME": self.config.keycloak_admin_username,
            "KEYCLOAK_ADMIN_PASSWORD": self.config.keycloak_admin_password or self.secrets.keycloak["admin_password"],
            "KEYCLOAK_DEVELOPMENT": "true",
            "KEYCLOAK_CLIENT_SECRETS_FILE": str(self._client_secrets_file()),
        }

    def _client_secrets_file(self) -> Path:
        path = self.state_dir / "client-secrets.json"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(self.secrets.client_secrets, indent=2))
        return path

    def sync_keycloak(self) -> None:
        """Provision the realm, the dev seed's territories and staff (Keycloak users and
        identity's assignments) with identity's own command, as an operator would."""
        seed_file = self.state_dir / "dev-seed.json"
        seed = dev_seed(demo_territory=self.config.demo_territory)
        seed_file.write_text(json.dumps(seed, indent=2, ensure_ascii=False))
        env = {**os.environ, **self.service_env("identity")}
        command = [
            console_script("comuna-identity"),
            "keycloak",
            "sync",
            "--seed",
            str(seed_file),
            "--passwords-file",
            str(self.staff_passwords_file),
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(
                f"keycloak sync failed ({result.returncode}): {(result.stderr or result.stdout).strip()}"
            )
        summary = result.stdout.strip().splitlines()
        self.notify(f"Keycloak realm {self.config.realm!r}: {summary[-1] if summary else 'synced'}")

    def migrate(self) -> None:
        for service in SERVICES:
            env = {**os.environ, **self.service_env(service)}
            subprocess.run([console_script(f"comuna-{service}"), "migrate"], env=env, check=True)
        subprocess.run(
            [console_script("comuna-treasury"), "migrate", "--currency", DEV_TREASURY_CURRENCY],
            env=self.treasury_env(),
            check=True,
        )
        self._fund_treasury()

    def _fund_treasury(self) -> None:
        """The dev state treasury's budget, once (an empty treasury gets it; a used one is left)."""
        balance = subprocess.run(
            [console_script("comuna-treasury"), "balance"],
            env=self.treasury_env(),
            check=True,
            capture_output=True,
            text=True,
        )
        funds = json.loads(balance.stdout)
        if funds["available_minor"] + funds["reserved_minor"] + funds["committed_minor"] == 0:
            reference = "Presupuesto de cofinanciamiento (desarrollo)"
            subprocess.run(
                [
                    console_script("comuna-treasury"),
                    "deposit",
                    "--amount-minor",
                    str(DEV_TREASURY_BUDGET),
                    "--reference",
                    reference,
                ],
                env=self.treasury_env(),
                check=True,
                capture_output=True,
            )

    # -- the reference funding source ----------------------------------------------------------
    @property
    def treasury_target(self) -> str:
        return f"127.0.0.1:{self.config.treasury_port}"

    def treasury_env(self) -> dict[str, str]:
        """`comuna-treasury`'s environment: its own database (not a Comuna service's) and token."""
        url = make_url(self._admin_url).set(drivername="postgresql+asyncpg", database=TREASURY_DATABASE)
        return {
            **os.environ,
            "COMUNA_TREASURY_DATABASE_URL": url.render_as_string(hide_password=False),
            "COMUNA_TREASURY_TOKEN": self.secrets.treasury_token,
        }

    def _spawn_treasury(self) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        command = [
            console_script("comuna-treasury"),
            "serve",
            "--listen",
            self.treasury_target,
            "--name",
            "Tesorería del estado (referencia)",
            "--currency",
            DEV_TREASURY_CURRENCY,
        ]
        self.processes.start("treasury", command, env=self.treasury_env(), log_file=logs / "treasury.log")

    def start_services(self, timeout: float = 60.0) -> None:
        self._spawn_treasury()
        for service in SERVICES:
            self._spawn(service)
        for service in SERVICES:
            self.processes.wait_http_ready(service, f"{self.config.http_url(service)}/readyz", timeout=timeout)

    def _spawn(self, service: str) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(exist_ok=True)
        count = self.config.processes[service]
        for n in range(1, count + 1):
            env = self.service_env(service)
            name = service if n == 1 else f"{service}-{n}"
            if count > 1:
                prefix = f"COMUNA_{service.upper()}_"
                env[prefix + "REUSE_PORT"] = "true"
                env[prefix + "METRICS_PORT"] = str(self.config.process_metrics_port(service, n))
            self.processes.start(
                name, [console_script(f"comuna-{service}"), "serve"], env=env, log_file=logs / f"{name}.log"
            )

    # -- fault injection (tests): crash a service, start it again ------------------------------
    def kill_service(self, service: str) -> None:
        """kill -9 one service process (its whole process group), as a crash would."""
        self.processes.kill(service)

    def start_service(self, service: str, timeout: float = 60.0) -> None:
        """Start one service (e.g. after `kill_service`) and wait until it is ready."""
        self._spawn(service)
        self.processes.wait_http_ready(service, f"{self.config.http_url(service)}/readyz", timeout=timeout)

    def stop_nats(self) -> None:
        """Stop the embedded NATS (gracefully); `start_nats` brings it back on the same port and store."""
        assert self.nats is not None, "only the embedded NATS can be stopped"
        self.nats.stop()
        (self.pid_dir / "nats.pid").unlink(missing_ok=True)

    def start_nats(self) -> None:
        assert self.nats is not None, "only the embedded NATS can be started"
        self.nats.start()
        if self.nats.pid is not None:
            write_pid_file(self.pid_dir / "nats.pid", self.nats.pid)

    def start(self) -> None:
        self.start_infrastructure()
        self.launch_keycloak()
        self.migrate()  # while Keycloak starts
        if self.keycloak is not None:
            self.keycloak.wait_ready()
            self.notify(f"Keycloak ready in {self.keycloak.startup_seconds:.1f} s")
        self.sync_keycloak()
        self.start_services()

    def stop(self) -> None:
        self.processes.stop()
        if self.keycloak is not None:
            self.keycloak.stop()
            (self.pid_dir / "keycloak.pid").unlink(missing_ok=True)
        if self.nats is not None:
            self.nats.stop()
            (self.pid_dir / "nats.pid").unlink(missing_ok=True)
        if self.postgres is not None:
            self.postgres.stop()
        if self._claimed:
            (self.pid_dir / "stack.pid").unlink(missing_ok=True)
            self._claimed = False

    def __enter__(self) -> Stack:
        # Entering the process group turns SIGTERM/SIGHUP into SystemExit, so a terminated
        # `comuna-dev run` still reaches `stop()` and shuts everything down in order (services
        # before the infrastructure under them), rather than relying on parent-death signals.
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


def clean_state(state_dir: Path, *, notify: Callable[[str], None]) -> None:
    """Delete a state directory and its relocated PostgreSQL data, after stopping its leftovers."""
    pid_dir = state_dir / "pids"
    _refuse_live_owner(pid_dir, state_dir)
    _stop_recorded_leftovers(pid_dir, notify)
    relocated = relocated_parent(state_dir)
    for data_dir in (state_dir / "pg", relocated / "pg"):
        if (data_dir / "postmaster.pid").exists():
            EmbeddedPostgres(data_dir, 0, notify=notify).stop_leftover()
    for path in (relocated, state_dir):
        if path.is_dir():
            shutil.rmtree(path)
            notify(f"removed {path}")


def _refuse_live_owner(pid_dir: Path, state_dir: Path) -> None:
    owner = read_pid_file(pid_dir / "stack.pid")
    if owner is not None and owner.pid != os.getpid() and owner.alive():
        raise DevStackError(
            f"{state_dir} is in use by another comuna-dev run (pid {owner.pid}); "
            "stop it first or choose another --state-dir"
        )


def _stop_recorded_leftovers(pid_dir: Path, notify: Callable[[str], None]) -> None:
    """Stop the processes recorded under `pid_dir` that are still alive, and forget them all.

    Children of a killed run were told to exit when it died (PR_SET_PDEATHSIG) but may still
    be shutting down, holding their ports.
    """
    for path in sorted(pid_dir.glob("*.pid")):
        if path.name == "stack.pid":
            continue
        record = read_pid_file(path)
        if record is not None and record.alive():
            notify(f"stopping {record.name} left running by an earlier run (pid {record.pid})")
            stop_recorded(record)
        path.unlink(missing_ok=True)
