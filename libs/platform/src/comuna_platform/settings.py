"""Settings every service reads from its environment.

Each service subclasses `ServiceSettings` and sets its own prefix, e.g. `COMUNA_FUNDING_`, so
one process environment can hold the settings of all four services without clashes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna"
    database_pool_size: int = 30
    nats_url: str = "nats://127.0.0.1:54222"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50050
    oidc_issuer: str = "http://127.0.0.1:8001/realms/comuna"
    oidc_audience: str = "comuna"
    oidc_jwks_url: str | None = None
    oidc_token_url: str | None = None
    service_client_id: str | None = None
    service_client_secret: SecretStr | None = None
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    log_level: str = "INFO"
    # How often the outbox relay looks for unsent events when nobody woke it up.
    outbox_poll_seconds: float = 0.5
    # Failed deliveries of an event (handler errors, not outages) after which it is parked.
    consumer_max_deliveries: int = Field(default=5, ge=1, le=100)
    # /readyz answers 503 when a consumer has completed no fetch for this many seconds.
    consumer_stall_seconds: float = Field(default=30.0, gt=0)

    @property
    def token_url(self) -> str:
        """Client-credentials endpoint; Keycloak's layout unless configured otherwise."""
        return self.oidc_token_url or f"{self.oidc_issuer}/protocol/openid-connect/token"
