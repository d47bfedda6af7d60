"""What projects announces, as plain values; `comuna_projects.messages` turns them into the
event messages of `proto/comuna/projects/v1/events.proto`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from comuna_projects.storage.models import Milestone, Project


@dataclass(frozen=True)
class ProjectCreated:
    project: Project
    milestones: Sequence[Milestone]


@dataclass(frozen=True)
class MilestoneVerified:
    project: Project
    milestone: Milestone
    verified_by: str


@dataclass(frozen=True)
class MilestoneFunded:
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    disbursement_id: uuid.UUID
