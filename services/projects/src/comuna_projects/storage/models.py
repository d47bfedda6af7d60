"""Projects' tables: one project per funded allocation and its milestones (tranches).

The state rules the application enforces are repeated as constraints, so even a bug (or a
hand-written UPDATE) cannot leave a milestone funded without a verification, or a
tranche in a different currency than its project.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_platform.vocabulary import one_of
from comuna_projects.vocabulary import MilestoneStatus, ProjectStatus

COMPLETED = ProjectStatus.COMPLETED.value
PENDING, VERIFIED, FUNDED = (s.value for s in MilestoneStatus)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(one_of("status", ProjectStatus), name="ck_projects_status"),
        CheckConstraint("budget_minor > 0", name="ck_projects_budget_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_projects_currency"),
        CheckConstraint(f"(status = '{COMPLETED}') = (completed_at IS NOT NULL)", name="ck_projects_completed_at"),
        # Target of the milestones' composite foreign key (same project, same currency).
        UniqueConstraint("id", "currency", name="uq_projects_id_currency"),
        Index("ix_projects_consultation_commune", "consultation_id", "commune_id"),
        Index("ix_projects_commune_id", "commune_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # One project per allocation: redelivered or re-published AllocationCreated events
    # collide here instead of creating a second project.
    allocation_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    consultation_id: Mapped[uuid.UUID]
    commune_id: Mapped[uuid.UUID]
    # The commune's territory code as funding reported it; territory scope checks use it.
    commune_code: Mapped[str] = mapped_column(String(64))
    candidate_id: Mapped[uuid.UUID | None]
    title: Mapped[str] = mapped_column(Text)
    budget_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=ProjectStatus.IN_PROGRESS.value)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Milestone(Base):
    __tablename__ = "milestones"
    __table_args__ = (
        UniqueConstraint("project_id", "sequence", name="uq_milestones_project_sequence"),
        ForeignKeyConstraint(
            ["project_id", "currency"],
            ["projects.id", "projects.currency"],
            name="fk_milestones_project_currency",
        ),
        CheckConstraint(one_of("status", MilestoneStatus), name="ck_milestones_status"),
        CheckConstraint("sequence >= 1", name="ck_milestones_sequence_positive"),
        CheckConstraint("tranche_minor >= 0", name="ck_milestones_tranche_not_negative"),
        # Verified (and later funded) milestones always say who verified them and when.
        CheckConstraint(
            f"(status = '{PENDING}') = (verified_by IS NULL AND verified_at IS NULL AND verification_note IS NULL)",
            name="ck_milestones_verification",
        ),
        CheckConstraint(
            f"(status = '{FUNDED}') = (funded_at IS NOT NULL AND disbursement_id IS NOT NULL "
            "AND funded_minor IS NOT NULL)",
            name="ck_milestones_funding",
        ),
        # A refused tranche is recorded with both its reason and time, on a verified milestone only.
        CheckConstraint(
            "(disbursement_rejected_reason IS NULL) = (disbursement_rejected_at IS NULL)",
            name="ck_milestones_rejection_fields",
        ),
        CheckConstraint(
            f"disbursement_rejected_reason IS NULL OR status = '{VERIFIED}'",
            name="ck_milestones_rejection_status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Foreign key via fk_milestones_project_currency; indexed by uq_milestones_project_sequence.
    project_id: Mapped[uuid.UUID]
    sequence: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    tranche_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=MilestoneStatus.PENDING.value)
    verified_by: Mapped[str | None] = mapped_column(String(255))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification_note: Mapped[str | None] = mapped_column(Text)
    funded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What funding reported as disbursed (normally equal to the tranche).
    funded_minor: Mapped[int | None] = mapped_column(BigInteger)
    disbursement_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    # Funding refused the tranche (funding.tranche.rejected): why, and when funding decided it.
    # The milestone stays verified; the work was done, the money is what is missing.
    disbursement_rejected_reason: Mapped[str | None] = mapped_column(String(200))
    disbursement_rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
