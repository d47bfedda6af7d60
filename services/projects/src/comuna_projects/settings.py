"""Projects settings, read from `COMUNA_PROJECTS_*` environment variables."""

from __future__ import annotations

from pydantic import field_validator
from pydantic_settings import SettingsConfigDict

from comuna_platform.settings import ServiceSettings
from comuna_projects.domain.plan import DEFAULT_PLAN, MilestonePlan, parse_plan


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="COMUNA_PROJECTS_", extra="ignore")

    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:55432/comuna_projects"
    http_port: int = 8004
    grpc_port: int = 50054
    metrics_port: int = 9104
    # Milestones every new project gets, as `title:percent` pairs adding up to 100. Applies to
    # projects created after a change; existing projects keep the plan they were created with.
    milestone_plan: str = DEFAULT_PLAN

    @field_validator("milestone_plan")
    @classmethod
    def _plan_is_valid(cls, value: str) -> str:
        # Fail at startup, not when the first allocation arrives.
        parse_plan(value)
        return value

    @property
    def plan(self) -> MilestonePlan:
        return parse_plan(self.milestone_plan)
