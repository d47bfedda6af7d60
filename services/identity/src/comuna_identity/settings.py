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
    # The census key ring (keyed hashes, HMAC-SHA256, of document numbers): a JSON object of key
    # id -> secret, e.g. {"1": "...", "2": "..."}. Every id ever used must stay in the ring: a
    # re-keyed record's hash is an onion over every generation (see domain/census_keys.py).
    census_keys: SecretStr = SecretStr("")
    # The generation new records should be under; the rotation worker re-keys the census to it.
    # Default: the ring's highest id.
    census_key_id: int | None = None
    # The ring's key 1 when `census_keys` does not give one (the single key of before rotation).
    census_hash_key: SecretStr = SecretStr("")
    # Records re-keyed per transaction by the rotation worker.
    census_rotation_batch: int = 5000
    # How long the rotation worker rests when nothing is left to re-key.
    census_rotation_idle_seconds: float = 30.0
    # The secret the roll base points (B = k·P(d)) and every consultation's roll keys derive
    # from (comuna_platform.voter_keys). At least 32 bytes. Required.
    roll_secret: SecretStr = SecretStr("")
    # Minimum age to vote, on the voting day.
    voting_age: int = 15
    # Threads computing entry keys (libsodium releases the GIL): one per core.
    roll_threads: int = 2
    # How often the roll freezer looks for rolls to prepare or freeze.
    roll_poll_seconds: float = 1.0
