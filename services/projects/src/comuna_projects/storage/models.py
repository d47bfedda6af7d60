"""Projects' tables: one project per funded allocation, its milestones (tranches), the history
of its plan and the change requests to it, progress reports and their evidence files,
expenditures, and residents' oversight reports.

The state rules the application enforces are repeated as constraints, so even a bug (or a
hand-written UPDATE) cannot leave a milestone funded without a verification, or a
tranche in a different currency than its project.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_platform.vocabulary import one_of
from comuna_projects.vocabulary import (
    MilestoneStatus,
    ProjectCategory,
    ReportKind,
    ReportState,
    RequestState,
    Stage,
)

PLANNED, IN_EXECUTION, STALLED, COMPLETED, CANCELLED = (s.value for s in Stage)
PENDING, REPORTED, VERIFIED, FUNDED = (s.value for s in MilestoneStatus)
SHA256_HEX = "^[0-9a-f]{64}$"


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(one_of("status", Stage), name="ck_projects_status"),
        CheckConstraint("budget_minor > 0", name="ck_projects_budget_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_projects_currency"),
        CheckConstraint(f"(status = '{COMPLETED}') = (completed_at IS NOT NULL)", name="ck_projects_completed_at"),
        CheckConstraint("category IS NULL OR " + one_of("category", ProjectCategory), name="ck_projects_category"),
        # Execution starts once, and a planned project has not started.
        CheckConstraint(f"status <> '{PLANNED}' OR started_at IS NULL", name="ck_projects_planned_not_started"),
        CheckConstraint(
            f"status IN ('{PLANNED}', '{CANCELLED}') OR started_at IS NOT NULL", name="ck_projects_started_at"
        ),
        CheckConstraint(f"(status = '{STALLED}') = (stalled_since IS NOT NULL)", name="ck_projects_stalled_since"),
        CheckConstraint(
            f"(status = '{CANCELLED}') = (cancelled_at IS NOT NULL AND cancel_reason IS NOT NULL)",
            name="ck_projects_cancelled",
        ),
        CheckConstraint("percent_complete BETWEEN 0 AND 100", name="ck_projects_percent_complete"),
        # No money created or lost on this side either: funding cannot pay a project more than its
        # budget, and a project cannot spend what has not reached it.
        CheckConstraint("disbursed_minor BETWEEN 0 AND budget_minor", name="ck_projects_disbursed_within_budget"),
        CheckConstraint("spent_minor BETWEEN 0 AND disbursed_minor", name="ck_projects_spent_within_disbursed"),
        CheckConstraint("plan_revision >= 1", name="ck_projects_plan_revision"),
        # Target of the milestones' composite foreign key (same project, same currency).
        UniqueConstraint("id", "currency", name="uq_projects_id_currency"),
        Index("ix_projects_consultation_commune", "consultation_id", "commune_id"),
        Index("ix_projects_commune_id", "commune_id"),
        # The stall detector walks the projects in execution, in id order.
        Index("ix_projects_status_id", "status", "id"),
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
    status: Mapped[str] = mapped_column(String(16), default=PLANNED)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the commune sat when the project was created (its lineage in identity's register:
    # country, state, municipality, ...), for the aggregates by state and municipality.
    state_code: Mapped[str | None] = mapped_column(String(64))
    municipality_code: Mapped[str | None] = mapped_column(String(64))
    # The candidate's category (consultations.candidate.recorded); null until that event is seen.
    category: Mapped[str | None] = mapped_column(String(32))
    # Who pays for the budget: [{"source": funding source, "amount_minor": n}], adding up to it.
    funders: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    # The public names of the spokespeople answerable for the project, set when it starts.
    spokespeople: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_report_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stalled_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stall_reasons: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # The physical progress of the latest progress report.
    percent_complete: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    # The financial progress: what funding reported disbursed, and what the commune spent of it.
    disbursed_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    spent_minor: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # The plan in force (`plan_revisions`); 1 is the plan the project was created with.
    plan_revision: Mapped[int] = mapped_column(Integer, server_default=text("1"))


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
        # Reported (and later) milestones say who reported them; verified (and later funded)
        # ones who verified them, and that was somebody else: nobody attests their own work.
        CheckConstraint(
            f"(status = '{PENDING}') = (reported_by IS NULL AND reported_at IS NULL AND report_note IS NULL)",
            name="ck_milestones_report",
        ),
        CheckConstraint(
            f"(status IN ('{PENDING}', '{REPORTED}')) = "
            "(verified_by IS NULL AND verified_at IS NULL AND verification_note IS NULL)",
            name="ck_milestones_verification",
        ),
        CheckConstraint("verified_by IS NULL OR verified_by <> reported_by", name="ck_milestones_four_eyes"),
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
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    due_on: Mapped[date] = mapped_column(Date)
    reported_by: Mapped[str | None] = mapped_column(String(255))
    reported_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    report_note: Mapped[str | None] = mapped_column(Text)
    verified_by: Mapped[str | None] = mapped_column(String(255))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verification_note: Mapped[str | None] = mapped_column(Text)
    funded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What funding reported as disbursed (normally equal to the tranche).
    funded_minor: Mapped[int | None] = mapped_column(BigInteger)
    disbursement_id: Mapped[uuid.UUID | None] = mapped_column(unique=True)
    # The ledger transfer that paid it (funding.tranche.disbursed): the open data points at it.
    transfer_id: Mapped[uuid.UUID | None]
    # Funding refused the tranche (funding.tranche.rejected): why, and when funding decided it.
    # The milestone stays verified; the work was done, the money is what is missing.
    disbursement_rejected_reason: Mapped[str | None] = mapped_column(String(200))
    disbursement_rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MilestoneReturn(Base):
    """A milestone report the oversight committee sent back: the work was not (all) done. The
    milestone is pending again; what was reported, and why it was refused, stay here, even if
    a later plan replaces the milestone (so no foreign key to it)."""

    __tablename__ = "milestone_returns"
    __table_args__ = (
        CheckConstraint("returned_by <> reported_by", name="ck_milestone_returns_four_eyes"),
        Index("ix_milestone_returns_project", "project_id", "returned_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    milestone_id: Mapped[uuid.UUID]
    milestone_title: Mapped[str] = mapped_column(String(200))
    reported_by: Mapped[str] = mapped_column(String(255))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_note: Mapped[str] = mapped_column(Text)
    returned_by: Mapped[str] = mapped_column(String(255))
    returned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text)


class PlanRevision(Base):
    """Every plan a project has had, in order: the first one, each edit made while it was
    planned, each approved change request. The plan's history, never rewritten."""

    __tablename__ = "plan_revisions"
    __table_args__ = (CheckConstraint("revision >= 1", name="ck_plan_revisions_revision"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    # [{"title", "due_on", "share_minor"}] in order.
    milestones: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    made_by: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    change_request_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("change_requests.id"))
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChangeRequest(Base):
    __tablename__ = "change_requests"
    __table_args__ = (
        CheckConstraint(one_of("state", RequestState), name="ck_change_requests_state"),
        CheckConstraint(
            "(state IN ('approved', 'rejected')) = (decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name="ck_change_requests_decision",
        ),
        CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="ck_change_requests_four_eyes"),
        # One open request per project: a second proposal waits for the first to be decided.
        Index(
            "uq_change_requests_one_open",
            "project_id",
            unique=True,
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    # The plan revision the proposal was made against; a request is decided on that plan only.
    base_revision: Mapped[int] = mapped_column(Integer)
    milestones: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16))
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str | None] = mapped_column(Text)


class EvidenceFile(Base):
    """A file stored once by its SHA-256 (`storage.evidence_store`); reports point at it."""

    __tablename__ = "evidence_files"
    __table_args__ = (
        CheckConstraint(f"sha256 ~ '{SHA256_HEX}'", name="ck_evidence_files_sha256"),
        CheckConstraint("size_bytes > 0", name="ck_evidence_files_size"),
    )

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    # The first uploader; identical files uploaded later are the same row.
    uploaded_by: Mapped[str] = mapped_column(String(255))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProgressReport(Base):
    __tablename__ = "progress_reports"
    __table_args__ = (
        CheckConstraint("percent_complete BETWEEN 0 AND 100", name="ck_progress_reports_percent"),
        Index("ix_progress_reports_project", "project_id", "reported_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    percent_complete: Mapped[int] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(Text)
    reported_by: Mapped[str] = mapped_column(String(255))
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ReportEvidence(Base):
    """Which evidence files a progress report or an oversight report cites, in order: the
    foreign key keeps every cited hash a stored file."""

    __tablename__ = "report_evidence"
    __table_args__ = (
        CheckConstraint("kind IN ('progress', 'oversight')", name="ck_report_evidence_kind"),
        UniqueConstraint("kind", "report_id", "sha256", name="uq_report_evidence_once"),
    )

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    report_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Order of the files as the reporter gave them.
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    sha256: Mapped[str] = mapped_column(ForeignKey("evidence_files.sha256"), index=True)


class Expenditure(Base):
    __tablename__ = "expenditures"
    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "currency"], ["projects.id", "projects.currency"], name="fk_expenditures_project_currency"
        ),
        CheckConstraint("amount_minor > 0", name="ck_expenditures_amount_positive"),
        Index("ix_expenditures_project", "project_id", "spent_on"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID]
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    spent_on: Mapped[date] = mapped_column(Date)
    supplier: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    receipt_sha256: Mapped[str] = mapped_column(ForeignKey("evidence_files.sha256"))
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OversightReport(Base):
    """A resident's complaint or observation. Who filed it is kept for the committee and never
    published (`filed_by`); the text, its state and the answer are public."""

    __tablename__ = "oversight_reports"
    __table_args__ = (
        CheckConstraint(one_of("kind", ReportKind), name="ck_oversight_reports_kind"),
        CheckConstraint(one_of("state", ReportState), name="ck_oversight_reports_state"),
        CheckConstraint(
            "(state IN ('answered', 'closed')) = (answer IS NOT NULL AND answered_by IS NOT NULL "
            "AND answered_at IS NOT NULL)",
            name="ck_oversight_reports_answer",
        ),
        CheckConstraint("(state = 'received') = (reviewed_by IS NULL)", name="ck_oversight_reports_review"),
        CheckConstraint("(state = 'closed') = (closed_at IS NOT NULL)", name="ck_oversight_reports_closed"),
        Index("ix_oversight_reports_project", "project_id", "filed_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String(255))
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16))
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(255))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class KnownCandidate(Base):
    """What consultations said about a candidate (consultations.candidate.recorded) that a
    project shows: its category. Kept because the allocation event does not carry it."""

    __tablename__ = "known_candidates"
    __table_args__ = (CheckConstraint(one_of("category", ProjectCategory), name="ck_known_candidates_category"),)

    candidate_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
