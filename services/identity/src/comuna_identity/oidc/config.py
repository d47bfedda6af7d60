"""Configuration of the built-in development issuer (one realm, users and clients in a file).

Production uses a real Keycloak. There is none to install on developer and CI machines, so the
identity service can stand in for one realm; it is switched on only by pointing
`COMUNA_IDENTITY_DEV_ISSUER_CONFIG` at such a file, never by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

SERVICE_ACCOUNT_PREFIX = "service-account-"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserConfig(_Frozen):
    """A person who can log in with the password grant."""

    username: str = Field(min_length=1)
    password: SecretStr
    realm_roles: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()

    @field_validator("username")
    @classmethod
    def _not_a_service_account(cls, value: str) -> str:
        # Keycloak reserves this prefix; allowing it would let a user share a service's `sub`.
        if value.startswith(SERVICE_ACCOUNT_PREFIX):
            raise ValueError(f"usernames must not start with {SERVICE_ACCOUNT_PREFIX!r}")
        return value


class ClientConfig(_Frozen):
    """An OAuth client. `secret` None makes it public (password grant only, no service account)."""

    client_id: str = Field(min_length=1)
    secret: SecretStr | None = None
    realm_roles: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()

    @property
    def is_public(self) -> bool:
        return self.secret is None


class DevIssuerConfig(_Frozen):
    realm: str = Field(default="comuna", pattern=r"^[A-Za-z0-9_.-]+$")
    issuer_base_url: str = "http://127.0.0.1:8001"
    signing_key_file: Path
    access_token_ttl_seconds: int = Field(default=300, gt=0, le=86_400)
    audience: str = "comuna"
    users: tuple[UserConfig, ...] = ()
    clients: tuple[ClientConfig, ...] = ()

    @field_validator("issuer_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        for kind, names in (
            ("username", [u.username for u in self.users]),
            ("client_id", [c.client_id for c in self.clients]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"duplicate {kind}: {', '.join(duplicates)}")
        return self

    @property
    def issuer(self) -> str:
        """The `iss` value, laid out like Keycloak: `<base>/realms/<realm>`."""
        return f"{self.issuer_base_url}/realms/{self.realm}"

    def user(self, username: str) -> UserConfig | None:
        return next((u for u in self.users if u.username == username), None)

    def client(self, client_id: str) -> ClientConfig | None:
        return next((c for c in self.clients if c.client_id == client_id), None)


def load_config(path: str | Path) -> DevIssuerConfig:
    """Read and validate the JSON file; a relative key path is taken relative to the file."""
    path = Path(path)
    config = DevIssuerConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    if not config.signing_key_file.is_absolute():
        key_file = (path.parent / config.signing_key_file).resolve()
        config = config.model_copy(update={"signing_key_file": key_file})
    return config
