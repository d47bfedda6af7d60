"""Identity settings, read from `COMUNA_IDENTITY_*` environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from comuna_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMUNA_IDENTITY_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna_identity"
    http_port: int = 8001
    grpc_port: int = 50051
    metrics_port: int = 9101
    # Secret key for the keyed hash (HMAC-SHA256) of national id numbers. Required: without it
    # the census cannot be read or written. Rotating it means re-importing the census.
    census_hash_key: SecretStr = SecretStr("")
    # Minimum age to vote, on the voting day.
    voting_age: int = 15
    # Secret of the voter-roll keys (>= 32 bytes): roll bases at import, per-consultation entry
    # keys at a freeze. Shared by the CENSUS import and the roll.
    roll_secret: SecretStr = SecretStr("")
    # Threads computing entry keys (libsodium releases the GIL): one per core.
    roll_threads: int = 2
    # How often the roll freezer looks for rolls to prepare or freeze.
    roll_poll_seconds: float = 1.0
