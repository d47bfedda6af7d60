"""Projects' vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain and the REST schemas all use these enums."""

from __future__ import annotations

from enum import StrEnum


class ProjectStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    FUNDED = "funded"
