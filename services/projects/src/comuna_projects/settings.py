"""Projects settings, read from `COMUNA_PROJECTS_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from comuna_platform.settings import ServiceSettings
from comuna_projects.domain.evidence import DEFAULT_MAX_BYTES, EvidencePolicy
from comuna_projects.domain.lifecycle import StallPolicy
from comuna_projects.domain.plan import DEFAULT_PLAN, MilestonePlan, parse_plan
from comuna_projects.storage.evidence_store import (
    EvidenceStore,
    LocalEvidenceStore,
    S3EvidenceStore,
    S3Location,
)


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMUNA_PROJECTS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna_projects"
    http_port: int = 8004
    grpc_port: int = 50054
    metrics_port: int = 9104
    # Where funding's gRPC API answers: expenditures are checked against its ledger.
    funding_grpc_target: str = "127.0.0.1:50053"
    funding_timeout_seconds: float = Field(default=5.0, gt=0)
    # Milestones every new project gets, as `title:percent` pairs adding up to 100. Applies to
    # projects created after a change; existing projects keep the plan they were created with.
    milestone_plan: str = DEFAULT_PLAN

    # A project in execution with no progress report for this many days is flagged stalled
    # (so is one with a milestone overdue); the detector looks every `stall_check_seconds`.
    stall_quiet_days: int = Field(default=30, ge=1)
    stall_check_seconds: float = Field(default=60.0, gt=0)

    # Evidence files: `local` keeps them under `evidence_dir`; `s3` in an S3-compatible bucket.
    evidence_backend: Literal["local", "s3"] = "local"
    evidence_dir: Path = Path(".devstack/evidence")
    evidence_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1)
    evidence_s3_endpoint: str = ""
    evidence_s3_bucket: str = ""
    evidence_s3_prefix: str = ""
    evidence_s3_region: str = "us-east-1"
    evidence_s3_access_key_id: str = ""
    evidence_s3_secret_access_key: SecretStr | None = None

    @field_validator("milestone_plan")
    @classmethod
    def _plan_is_valid(cls, value: str) -> str:
        # Fail at startup, not when the first allocation arrives.
        parse_plan(value)
        return value

    @model_validator(mode="after")
    def _s3_is_complete(self) -> Settings:
        if self.evidence_backend == "s3":
            missing = [
                name
                for name, value in (
                    ("EVIDENCE_S3_ENDPOINT", self.evidence_s3_endpoint),
                    ("EVIDENCE_S3_BUCKET", self.evidence_s3_bucket),
                    ("EVIDENCE_S3_ACCESS_KEY_ID", self.evidence_s3_access_key_id),
                    ("EVIDENCE_S3_SECRET_ACCESS_KEY", self.evidence_s3_secret_access_key),
                )
                if not value
            ]
            if missing:
                raise ValueError(f"EVIDENCE_BACKEND=s3 needs {', '.join(missing)}")
        return self

    @property
    def plan(self) -> MilestonePlan:
        return parse_plan(self.milestone_plan)

    @property
    def stall_policy(self) -> StallPolicy:
        return StallPolicy(quiet_days=self.stall_quiet_days)

    @property
    def evidence_policy(self) -> EvidencePolicy:
        return EvidencePolicy(max_bytes=self.evidence_max_bytes)

    def evidence_store(self) -> EvidenceStore:
        if self.evidence_backend == "local":
            return LocalEvidenceStore(self.evidence_dir)
        assert self.evidence_s3_secret_access_key is not None
        return S3EvidenceStore(
            S3Location(
                endpoint_url=self.evidence_s3_endpoint,
                bucket=self.evidence_s3_bucket,
                access_key=self.evidence_s3_access_key_id,
                secret_key=self.evidence_s3_secret_access_key.get_secret_value(),
                region=self.evidence_s3_region,
                prefix=self.evidence_s3_prefix,
            )
        )
