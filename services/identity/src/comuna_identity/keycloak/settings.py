"""Settings of `keycloak sync`: identity's own settings plus the Keycloak admin connection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from comuna_identity.settings import Settings

# Loopback redirects for the command line (RFC 8252): Keycloak accepts any port on a loopback
# redirect URI registered without one.
LOOPBACK_REDIRECTS = ("http://127.0.0.1/*", "http://localhost/*")


class KeycloakSettings(Settings):
    """`COMUNA_IDENTITY_KEYCLOAK_*`; only the sync command reads them, the server never does."""

    model_config = SettingsConfigDict(env_prefix="COMUNA_IDENTITY_", extra="ignore")

    # Base URL of the Keycloak server (no /realms/... suffix).
    keycloak_url: str = "http://127.0.0.1:8080"
    # The realm the services trust (its URL is their OIDC_ISSUER).
    keycloak_realm: str = "comuna"
    # Realm of the admin account below (Keycloak's own `master` by default).
    keycloak_admin_realm: str = "master"
    keycloak_admin_username: str = "admin"
    keycloak_admin_password: SecretStr = SecretStr("")
    # Development only: lets the public client use the password grant (curl, tests, the demo).
    keycloak_development: bool = False
    # Secrets of the confidential clients svc-<service>: a JSON file {client_id: secret}, and/or
    # a directory with one file per client named by its client id (a mounted Kubernetes Secret).
    keycloak_client_secrets_file: Path | None = None
    keycloak_client_secrets_dir: Path | None = None
    # Redirect URIs of the public client, comma-separated; the loopback ones are always there.
    keycloak_redirect_uris: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Seconds before a Keycloak admin request is given up.
    keycloak_timeout_seconds: float = 30.0

    @field_validator("keycloak_redirect_uris", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
