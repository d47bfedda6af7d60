"""Settings every service reads from its environment.

Each service subclasses `ServiceSettings` and sets its own prefix, e.g. `COMUNA_FUNDING_`, so
one process environment can hold the settings of all four services without clashes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from comuna_platform.tlog.note import COSIGNATURE_V1, NoteError, Signer, Verifier, parse_skey, parse_vkey

# A comma-separated list in the environment (`a,b,c`), not JSON.
CommaList = Annotated[list[str], NoDecode]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna"
    # Migrations connect as the database's owner role; the service itself as the runtime role
    # of DATABASE_URL, which `migrate` then grants its privileges. Unset = DATABASE_URL.
    migration_database_url: str | None = None
    database_pool_size: int = 30
    nats_url: str = "nats://127.0.0.1:54222"
    # The service's own NATS identity: a user and password, or a credentials file (JWT + NKey
    # seed, `.creds`) or a bare NKey seed file. The server limits what each may publish.
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_credentials_file: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50050
    # Bind the REST and gRPC ports with SO_REUSEPORT, so several processes of this service on
    # one host share them (the kernel spreads connections): how the dev stack runs a service
    # on more than one core (`COMUNA_DEV_<SERVICE>_PROCESSES`). Off, a second process on the
    # same port fails to start, which is what catches a port clash. Pods never need it.
    reuse_port: bool = False
    oidc_issuer: str = "http://127.0.0.1:8080/realms/comuna"
    oidc_audience: str = "comuna"
    oidc_jwks_url: str | None = None
    oidc_token_url: str | None = None
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None
    # Identity over gRPC: who may act where (ResolvePrincipal) and, for consultations, the census.
    identity_grpc_target: str = "127.0.0.1:50051"
    identity_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a process reuses identity's answer for one person (never past an assignment's
    # end); `identity.role_assignment.*` events drop it sooner. 0 = ask identity every request.
    access_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    # How long past that an answer still stands in while identity cannot be reached (voting
    # goes on through an identity restart); invalidations and end dates still apply. 0 = never.
    access_stale_seconds: float = Field(default=300.0, ge=0, le=86400)
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    log_level: str = "INFO"
    # How often the outbox relay looks for unsent events when nobody woke it up.
    outbox_poll_seconds: float = 0.5
    # Failed deliveries of an event (handler errors, not outages) after which it is parked.
    consumer_max_deliveries: int = Field(default=5, ge=1, le=100)
    # /readyz answers 503 when a consumer has completed no fetch for this many seconds.
    consumer_stall_seconds: float = Field(default=30.0, gt=0)
    # Prometheus `/metrics` listens here, apart from the public REST port.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9100
    # Edges of the REST API: bigger request heads are refused with 431, bigger bodies with 413.
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    # Bulk imports (`POST ...:import`) stream their body past the edge instead: this is their cap.
    max_import_bytes: int = Field(default=1024 * 1024 * 1024, ge=1)
    # Host header values the REST API answers (port ignored; `*.example.org` matches subdomains;
    # `*` turns the check off). Empty = `127.0.0.1`, `localhost` and the service's name.
    allowed_hosts: CommaList = []
    # Addresses (IPs or CIDRs) of reverse proxies whose `X-Forwarded-Proto` is believed; a
    # request that came over TLS, directly or through one of them, gets HSTS.
    trusted_proxies: CommaList = []

    # Rate limits per caller (a person's subject, a service's client id), per replica: a token
    # bucket refilled at `..._PER_MINUTE` holding at most `..._BURST` (`comuna_platform.rate_limit`).
    # Lookups of a person by document, one token per call: enrolment (`POST /v1/enrolment:redeem`,
    # `:link`, `:enrolment-code`), "can I vote?" (`GET /v1/me/roll`), registration (`POST /v1/residents`,
    # `:batch`), a move (`:move`) and a census import (`:import`); identity's REST, the CLI is not limited.
    rate_limit_document_lookups_per_minute: float = Field(default=30.0, gt=0)
    rate_limit_document_lookups_burst: int = Field(default=10, ge=1)
    # Check-ins at a voting table by document (consultations' `:check-in` and paper `check-ins`),
    # per officer: a busy table checks in one person every ~10 s; a burst covers a queue at opening.
    rate_limit_table_check_ins_per_minute: float = Field(default=12.0, gt=0)
    rate_limit_table_check_ins_burst: int = Field(default=20, ge=1)
    # Buckets kept per limit; the least recently seen callers beyond it start again full.
    rate_limit_max_callers: int = Field(default=100_000, ge=1)

    @field_validator("allowed_hosts", "trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @property
    def token_url(self) -> str:
        """Client-credentials endpoint; Keycloak's layout unless configured otherwise."""
        return self.oidc_token_url or f"{self.oidc_issuer}/protocol/openid-connect/token"


class PublicLogSettings(BaseSettings):
    """The settings of a service that keeps public transparency logs (docs/record.md,
    docs/ledger.md); the service declares its own `record_origin`. Checkpoints are signed by
    every key of `record_signing_keys` (C2SP signer keys; two during a rotation's overlap)
    every `record_checkpoint_seconds`; no key: nothing is signed (the logs still grow).
    Witnesses' cosignatures are kept from `record_witness_keys` (C2SP verifier keys of type
    cosignature/v1, `<name>+<key id>+<key>`; public, not secrets)."""

    model_config = SettingsConfigDict(extra="ignore")

    record_signing_keys: list[SecretStr] = Field(default_factory=list)
    record_checkpoint_seconds: float = Field(default=2.0, gt=0)
    record_witness_keys: list[str] = Field(default_factory=list)

    @field_validator("record_witness_keys")
    @classmethod
    def _witness_keys(cls, keys: list[str]) -> list[str]:
        for key in keys:
            try:
                verifier = parse_vkey(key)
            except NoteError as exc:
                raise ValueError(f"not a C2SP verifier key ({exc}): {key[:40]}") from exc
            if verifier.key_type != COSIGNATURE_V1:
                raise ValueError(f"witness key {verifier.name} is not a cosignature/v1 key (type 0x04)")
        return keys

    def record_signers(self) -> tuple[Signer, ...]:
        return tuple(parse_skey(key.get_secret_value()) for key in self.record_signing_keys)

    def record_witnesses(self) -> tuple[Verifier, ...]:
        return tuple(parse_vkey(key) for key in self.record_witness_keys)
