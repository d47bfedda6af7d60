"""Projects' vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain and the REST schemas all use these enums."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a project is in its life cycle (`domain.lifecycle` holds the moves between them)."""

    PLANNED = "planned"
    IN_EXECUTION = "in_execution"
    STALLED = "stalled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    # A spokesperson said the work is done; an overseer who is not them has to verify it.
    REPORTED = "reported"
    VERIFIED = "verified"
    FUNDED = "funded"


class RequestState(StrEnum):
    """A change request to the plan of a project in execution."""

    OPEN = "open"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class ReportState(StrEnum):
    """A resident's oversight report (complaint or observation)."""

    RECEIVED = "received"
    UNDER_REVIEW = "under_review"
    ANSWERED = "answered"
    CLOSED = "closed"


class ReportKind(StrEnum):
    COMPLAINT = "complaint"
    OBSERVATION = "observation"


class ProjectCategory(StrEnum):
    """What a project is about: the category of the candidate it came from (consultations'
    `ProposalCategory`, same values), `other` when the candidate had none."""

    WATER = "water"
    ELECTRICITY = "electricity"
    HEALTH = "health"
    EDUCATION = "education"
    ROADS = "roads"
    HOUSING = "housing"
    FOOD_PRODUCTION = "food_production"
    SPORTS = "sports"
    CULTURE = "culture"
    OTHER = "other"
