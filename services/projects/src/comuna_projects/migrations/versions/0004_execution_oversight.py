"""Execution under public oversight: project stages, plans with due dates and their history,
change requests, milestone reports (four eyes), progress reports with evidence files,
expenditures, residents' oversight reports, and the candidates' categories.

Existing projects were already executing: `in_progress` becomes `in_execution`, started when
created. Their milestones get due dates a month apart from the project's creation, and the
ones already verified count as reported by `migration:0004` (the old flow had no reports).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = "('planned', 'in_execution', 'stalled', 'completed', 'cancelled')"
CATEGORIES = (
    "('water', 'electricity', 'health', 'education', 'roads', 'housing', 'food_production', "
    "'sports', 'culture', 'other')"
)
EMPTY = sa.text("'[]'::jsonb")


def _jsonb(name: str) -> sa.Column[object]:
    return sa.Column(name, postgresql.JSONB(astext_type=sa.Text()), server_default=EMPTY, nullable=False)


def upgrade() -> None:
    _projects()
    _milestones()
    _returns()
    _plans()
    _reports()


def _projects() -> None:
    op.drop_constraint("ck_projects_status", "projects", type_="check")
    for column in (
        sa.Column("state_code", sa.String(length=64), nullable=True),
        sa.Column("municipality_code", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        _jsonb("funders"),
        _jsonb("spokespeople"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stalled_since", sa.DateTime(timezone=True), nullable=True),
        _jsonb("stall_reasons"),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.Column("percent_complete", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("disbursed_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("spent_minor", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("plan_revision", sa.Integer(), server_default=sa.text("1"), nullable=False),
    ):
        op.add_column("projects", column)
    op.execute("UPDATE projects SET status = 'in_execution', started_at = created_at WHERE status = 'in_progress'")
    op.execute("UPDATE projects SET started_at = created_at WHERE status = 'completed'")
    op.execute(
        "UPDATE projects p SET disbursed_minor = COALESCE("
        "(SELECT sum(funded_minor) FROM milestones m WHERE m.project_id = p.id), 0)"
    )
    checks = {
        "ck_projects_status": f"status IN {STAGES}",
        "ck_projects_category": f"category IS NULL OR category IN {CATEGORIES}",
        "ck_projects_planned_not_started": "status <> 'planned' OR started_at IS NULL",
        "ck_projects_started_at": "status IN ('planned', 'cancelled') OR started_at IS NOT NULL",
        "ck_projects_stalled_since": "(status = 'stalled') = (stalled_since IS NOT NULL)",
        "ck_projects_cancelled": "(status = 'cancelled') = (cancelled_at IS NOT NULL AND cancel_reason IS NOT NULL)",
        "ck_projects_percent_complete": "percent_complete BETWEEN 0 AND 100",
        "ck_projects_disbursed_within_budget": "disbursed_minor BETWEEN 0 AND budget_minor",
        "ck_projects_spent_within_disbursed": "spent_minor BETWEEN 0 AND disbursed_minor",
        "ck_projects_plan_revision": "plan_revision >= 1",
    }
    for name, condition in checks.items():
        op.create_check_constraint(name, "projects", condition)
    op.create_index("ix_projects_status_id", "projects", ["status", "id"])


def _milestones() -> None:
    op.drop_constraint("ck_milestones_status", "milestones", type_="check")
    op.drop_constraint("ck_milestones_verification", "milestones", type_="check")
    op.add_column("milestones", sa.Column("due_on", sa.Date(), nullable=True))
    op.add_column("milestones", sa.Column("reported_by", sa.String(length=255), nullable=True))
    op.add_column("milestones", sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("milestones", sa.Column("report_note", sa.Text(), nullable=True))
    op.add_column("milestones", sa.Column("transfer_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE milestones m SET due_on = (p.created_at + make_interval(months => m.sequence))::date "
        "FROM projects p WHERE p.id = m.project_id"
    )
    op.execute(
        "UPDATE milestones SET reported_by = 'migration:0004', reported_at = verified_at, "
        "report_note = 'reported before reports existed' WHERE status <> 'pending'"
    )
    op.alter_column("milestones", "due_on", nullable=False)
    checks = {
        "ck_milestones_status": "status IN ('pending', 'reported', 'verified', 'funded')",
        "ck_milestones_report": (
            "(status = 'pending') = (reported_by IS NULL AND reported_at IS NULL AND report_note IS NULL)"
        ),
        "ck_milestones_verification": (
            "(status IN ('pending', 'reported')) = "
            "(verified_by IS NULL AND verified_at IS NULL AND verification_note IS NULL)"
        ),
        "ck_milestones_four_eyes": "verified_by IS NULL OR verified_by <> reported_by",
    }
    for name, condition in checks.items():
        op.create_check_constraint(name, "milestones", condition)


def _returns() -> None:
    op.create_table(
        "milestone_returns",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("milestone_id", sa.Uuid(), nullable=False),
        sa.Column("milestone_title", sa.String(length=200), nullable=False),
        sa.Column("reported_by", sa.String(length=255), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_note", sa.Text(), nullable=False),
        sa.Column("returned_by", sa.String(length=255), nullable=False),
        sa.Column("returned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("returned_by <> reported_by", name="ck_milestone_returns_four_eyes"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="milestone_returns_project_id_fkey"),
        sa.PrimaryKeyConstraint("id", name="milestone_returns_pkey"),
    )
    op.create_index("ix_milestone_returns_project", "milestone_returns", ["project_id", "returned_at"])


def _plans() -> None:
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("base_revision", sa.Integer(), nullable=False),
        sa.Column("milestones", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=255), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'approved', 'rejected', 'withdrawn')", name="ck_change_requests_state"),
        sa.CheckConstraint(
            "(state IN ('approved', 'rejected')) = (decided_by IS NOT NULL AND decided_at IS NOT NULL)",
            name="ck_change_requests_decision",
        ),
        sa.CheckConstraint("decided_by IS NULL OR decided_by <> requested_by", name="ck_change_requests_four_eyes"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="change_requests_project_id_fkey"),
        sa.PrimaryKeyConstraint("id", name="change_requests_pkey"),
    )
    op.create_index("ix_change_requests_project_id", "change_requests", ["project_id"])
    op.create_index(
        "uq_change_requests_one_open",
        "change_requests",
        ["project_id"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_table(
        "plan_revisions",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("milestones", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("made_by", sa.String(length=255), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("change_request_id", sa.Uuid(), nullable=True),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("revision >= 1", name="ck_plan_revisions_revision"),
        sa.ForeignKeyConstraint(
            ["change_request_id"], ["change_requests.id"], name="plan_revisions_change_request_id_fkey"
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="plan_revisions_project_id_fkey"),
        sa.PrimaryKeyConstraint("project_id", "revision", name="plan_revisions_pkey"),
    )
    # The first revision of every existing project: the plan it has.
    op.execute(
        "INSERT INTO plan_revisions (project_id, revision, milestones, made_by, reason, made_at) "
        "SELECT p.id, 1, COALESCE((SELECT jsonb_agg(jsonb_build_object('title', m.title, 'due_on', m.due_on, "
        "'share_minor', m.tranche_minor) ORDER BY m.sequence) FROM milestones m WHERE m.project_id = p.id), "
        "'[]'::jsonb), 'migration:0004', 'the plan the project was created with', p.created_at FROM projects p"
    )


def _reports() -> None:
    op.create_table(
        "evidence_files",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_by", sa.String(length=255), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_evidence_files_sha256"),
        sa.CheckConstraint("size_bytes > 0", name="ck_evidence_files_size"),
        sa.PrimaryKeyConstraint("sha256", name="evidence_files_pkey"),
    )
    op.create_table(
        "progress_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("percent_complete", sa.SmallInteger(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reported_by", sa.String(length=255), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("percent_complete BETWEEN 0 AND 100", name="ck_progress_reports_percent"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="progress_reports_project_id_fkey"),
        sa.PrimaryKeyConstraint("id", name="progress_reports_pkey"),
    )
    op.create_index("ix_progress_reports_project", "progress_reports", ["project_id", "reported_at"])
    op.create_table(
        "report_evidence",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('progress', 'oversight')", name="ck_report_evidence_kind"),
        sa.ForeignKeyConstraint(["sha256"], ["evidence_files.sha256"], name="report_evidence_sha256_fkey"),
        sa.PrimaryKeyConstraint("kind", "report_id", "position", name="report_evidence_pkey"),
        sa.UniqueConstraint("kind", "report_id", "sha256", name="uq_report_evidence_once"),
    )
    op.create_index("ix_report_evidence_sha256", "report_evidence", ["sha256"])
    op.create_table(
        "expenditures",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("spent_on", sa.Date(), nullable=False),
        sa.Column("supplier", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("receipt_sha256", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=255), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_expenditures_amount_positive"),
        sa.ForeignKeyConstraint(
            ["project_id", "currency"], ["projects.id", "projects.currency"], name="fk_expenditures_project_currency"
        ),
        sa.ForeignKeyConstraint(["receipt_sha256"], ["evidence_files.sha256"], name="expenditures_receipt_sha256_fkey"),
        sa.PrimaryKeyConstraint("id", name="expenditures_pkey"),
    )
    op.create_index("ix_expenditures_project", "expenditures", ["project_id", "spent_on"])
    op.create_table(
        "oversight_reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=255), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reviewed_by", sa.String(length=255), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=255), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('complaint', 'observation')", name="ck_oversight_reports_kind"),
        sa.CheckConstraint(
            "state IN ('received', 'under_review', 'answered', 'closed')", name="ck_oversight_reports_state"
        ),
        sa.CheckConstraint(
            "(state IN ('answered', 'closed')) = (answer IS NOT NULL AND answered_by IS NOT NULL "
            "AND answered_at IS NOT NULL)",
            name="ck_oversight_reports_answer",
        ),
        sa.CheckConstraint("(state = 'received') = (reviewed_by IS NULL)", name="ck_oversight_reports_review"),
        sa.CheckConstraint("(state = 'closed') = (closed_at IS NOT NULL)", name="ck_oversight_reports_closed"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="oversight_reports_project_id_fkey"),
        sa.PrimaryKeyConstraint("id", name="oversight_reports_pkey"),
    )
    op.create_index("ix_oversight_reports_project", "oversight_reports", ["project_id", "filed_at"])
    op.create_table(
        "known_candidates",
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.CheckConstraint(f"category IN {CATEGORIES}", name="ck_known_candidates_category"),
        sa.PrimaryKeyConstraint("candidate_id", name="known_candidates_pkey"),
    )


def downgrade() -> None:
    for table in (
        "known_candidates",
        "oversight_reports",
        "expenditures",
        "report_evidence",
        "progress_reports",
        "evidence_files",
        "plan_revisions",
        "change_requests",
        "milestone_returns",
    ):
        op.drop_table(table)
    for name in (
        "ck_milestones_four_eyes",
        "ck_milestones_verification",
        "ck_milestones_report",
        "ck_milestones_status",
    ):
        op.drop_constraint(name, "milestones", type_="check")
    # Reports did not exist: a reported milestone is pending again.
    op.execute("UPDATE milestones SET status = 'pending' WHERE status = 'reported'")
    for column in ("transfer_id", "report_note", "reported_at", "reported_by", "due_on"):
        op.drop_column("milestones", column)
    op.create_check_constraint("ck_milestones_status", "milestones", "status IN ('pending', 'verified', 'funded')")
    op.create_check_constraint(
        "ck_milestones_verification",
        "milestones",
        "(status = 'pending') = (verified_by IS NULL AND verified_at IS NULL AND verification_note IS NULL)",
    )
    op.drop_index("ix_projects_status_id", table_name="projects")
    for name in (
        "ck_projects_plan_revision",
        "ck_projects_spent_within_disbursed",
        "ck_projects_disbursed_within_budget",
        "ck_projects_percent_complete",
        "ck_projects_cancelled",
        "ck_projects_stalled_since",
        "ck_projects_started_at",
        "ck_projects_planned_not_started",
        "ck_projects_category",
        "ck_projects_status",
    ):
        op.drop_constraint(name, "projects", type_="check")
    # The old model had two states: everything not completed was in progress.
    op.execute("UPDATE projects SET status = 'in_progress' WHERE status <> 'completed'")
    for column in (
        "plan_revision",
        "spent_minor",
        "disbursed_minor",
        "percent_complete",
        "cancel_reason",
        "cancelled_at",
        "stall_reasons",
        "stalled_since",
        "last_report_at",
        "started_at",
        "spokespeople",
        "funders",
        "category",
        "municipality_code",
        "state_code",
    ):
        op.drop_column("projects", column)
    op.create_check_constraint("ck_projects_status", "projects", "status IN ('in_progress', 'completed')")
