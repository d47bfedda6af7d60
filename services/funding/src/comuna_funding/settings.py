"""Funding settings, read from `COMUNA_FUNDING_*` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from comuna_platform.settings import PublicLogSettings, ServiceSettings


class Settings(ServiceSettings, PublicLogSettings):
    model_config = SettingsConfigDict(env_prefix="COMUNA_FUNDING_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna_funding"
    http_port: int = 8003
    grpc_port: int = 50053
    metrics_port: int = 9103
    # The national grant earmarked for each commune's winning project per consultation, in
    # minor units of `grant_currency` (1_000_000 = 10,000.00 USD, the amount used since 2024).
    grant_amount_minor: int = Field(default=1_000_000, gt=0)
    grant_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    # Who pays for first-placed projects; part of the allocation's business key, so a later
    # co-funder (e.g. "state") can earmark a second allocation for the same commune.
    funding_source: str = Field(default="national", pattern=r"^[a-z][a-z0-9_]{0,31}$")
    # The ledger's public journal (docs/ledger.md): the origin of its log, conventionally the
    # journal's public URL without its scheme; signing keys (`PRIVATE+KEY+<record_origin>+...`),
    # checkpoint interval and witnesses come from `PublicLogSettings`.
    record_origin: str = Field(default="comuna.localhost/ledger", min_length=1, max_length=200)
    # How often pending transfers whose timeout passed are expired (voided by the ledger).
    expiry_seconds: float = Field(default=1.0, gt=0)
    # The national fund (built in, funder `funding_source`): the territory it may fund (the
    # country's root in identity's register).
    national_territory: str = Field(default="VE", min_length=1, max_length=64)
    # A remote funder's pending commitment voids itself after this long without its source's
    # confirmation (the saga then fails it and flags it for reconciliation).
    source_commit_timeout_seconds: int = Field(default=900, gt=0, le=86_400)
    # Remote funders' bearer tokens by name (`credentials_ref` of a funder), JSON, from a Secret
    # (`funding-source-credentials`): never stored in the database.
    source_credentials: dict[str, SecretStr] = Field(default_factory=dict)
