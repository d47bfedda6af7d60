"""Consultations settings, read from `COMUNA_CONSULTATIONS_*` environment variables."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from comuna_platform.settings import PublicLogSettings, ServiceSettings


class Settings(ServiceSettings, PublicLogSettings):
    model_config = SettingsConfigDict(env_prefix="COMUNA_CONSULTATIONS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna_consultations"
    http_port: int = 8002
    grpc_port: int = 50052
    metrics_port: int = 9102
    # Identity lists the communes and hands over the frozen voter roll over gRPC, at the
    # platform's `identity_grpc_target`; no call per ballot.
    # Calls to identity in flight at once from this process; more wait (within the timeout)
    # instead of piling up on identity during the voting-day peak.
    identity_max_in_flight: int = 500
    # How long a process trusts its in-memory copy of a consultation's status, communes and
    # candidates on the ballot path. The status is re-checked inside every ballot transaction,
    # so staleness can only delay a refusal, never let a ballot in.
    voting_snapshot_ttl_seconds: float = 1.0
    # How often the roll loader looks for rolls to pull from identity, and entries per chunk.
    roll_poll_seconds: float = 1.0
    roll_chunk_size: int = 20_000
    # The ballot group commit (voting/group_commit.py): a batch leaves at `ballot_batch_max`
    # ballots, or once `ballot_batch_min` wait and the oldest waited `ballot_batch_linger_seconds`;
    # a lone ballot waits up to `ballot_batch_max_hold_seconds` for company (secrecy), and at most
    # `ballot_batch_writers` batches are in flight at once.
    ballot_batch_max: int = 500
    ballot_batch_min: int = 2
    ballot_batch_linger_seconds: float = 0.002
    ballot_batch_max_hold_seconds: float = 1.0
    ballot_batch_writers: int = 2
    # The secret of the participations' voter references (voting/pseudonyms.py): at least 32
    # bytes, kept out of the database and out of identity. Without it ballots answer 503.
    voter_ref_secret: SecretStr = SecretStr("")
    # Ed25519 seed (32 bytes, base64) that signs offline tables' snapshots; each table's roll
    # blinding and sync key derive from it too (see `offline/signing.py`), so rotating it
    # invalidates snapshots already on devices: rotate between consultations. Unset: offline
    # tables are refused (503 `offline_tables_unconfigured`).
    snapshot_signing_key: SecretStr | None = None
    # The public record (docs/record.md): each consultation's log has the origin
    # `<record_origin>/consultations/<id>`, conventionally the public URL of the record without
    # its scheme; signing keys (`PRIVATE+KEY+<record_origin>+...`), checkpoint interval and
    # witnesses come from `PublicLogSettings`.
    record_origin: str = "comuna.localhost/record"
