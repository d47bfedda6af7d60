"""Voting day's shared tables: voting centres and tables, where each participation happened,
table and blank ballots, and conflicts between participations.

Rows written before this revision keep what they had: their participations become `online` with
the commune of their roll entry (when the roll holds it), and the new CHECK constraints are
NOT VALID so that they bind every new row without rewriting old ones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 23:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voting_centres",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(["consultation_id"], ["consultations.id"], name="fk_voting_centres_consultation"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consultation_id", "code", name="uq_voting_centres_code"),
    )
    op.create_table(
        "voting_centre_communes",
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["centre_id"], ["voting_centres.id"], name="fk_voting_centre_communes_centre", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_voting_centre_communes_commune",
        ),
        sa.PrimaryKeyConstraint("centre_id", "commune_id"),
    )
    op.create_table(
        "voting_tables",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("centre_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.CheckConstraint("kind IN ('electronic', 'paper', 'offline')", name="ck_voting_tables_kind"),
        sa.ForeignKeyConstraint(
            ["centre_id", "commune_id"],
            ["voting_centre_communes.centre_id", "voting_centre_communes.commune_id"],
            name="fk_voting_tables_centre_commune",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("consultation_id", "code", name="uq_voting_tables_code"),
        sa.UniqueConstraint("consultation_id", "commune_id", "id", name="uq_voting_tables_commune_id"),
    )

    op.add_column("participations", sa.Column("commune_id", sa.Uuid(), nullable=True))
    op.add_column("participations", sa.Column("channel", sa.String(length=8), server_default="online", nullable=False))
    op.alter_column("participations", "channel", server_default=None)
    op.add_column("participations", sa.Column("table_id", sa.Uuid(), nullable=True))
    op.execute(
        "UPDATE participations p SET commune_id = r.commune_id FROM roll_entries r"
        " WHERE r.consultation_id = p.consultation_id AND r.voter_key = decode(p.voter_ref, 'hex')"
    )
    op.execute(
        "ALTER TABLE participations ADD CONSTRAINT ck_participations_commune CHECK (commune_id IS NOT NULL) NOT VALID"
    )
    op.create_check_constraint(
        "ck_participations_channel", "participations", "channel IN ('table', 'online', 'offline', 'paper')"
    )
    op.create_foreign_key(
        "fk_participations_table",
        "participations",
        "voting_tables",
        ["consultation_id", "commune_id", "table_id"],
        ["consultation_id", "commune_id", "id"],
    )

    op.add_column("ballots", sa.Column("table_id", sa.Uuid(), nullable=True))
    op.alter_column("ballots", "candidate_id", nullable=True)
    op.drop_constraint("ck_ballots_channel", "ballots", type_="check")
    op.create_check_constraint("ck_ballots_channel", "ballots", "channel IN ('table', 'online', 'offline')")
    op.create_foreign_key(
        "fk_ballots_table",
        "ballots",
        "voting_tables",
        ["consultation_id", "commune_id", "table_id"],
        ["consultation_id", "commune_id", "id"],
    )

    op.create_table(
        "participation_conflicts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("voter_ref", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("table_id", sa.Uuid(), nullable=True),
        sa.Column("ballot_counted", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "channel IN ('table', 'online', 'offline', 'paper')", name="ck_participation_conflicts_channel"
        ),
        sa.ForeignKeyConstraint(
            ["consultation_id"], ["consultations.id"], name="fk_participation_conflicts_consultation"
        ),
        sa.ForeignKeyConstraint(["table_id"], ["voting_tables.id"], name="fk_participation_conflicts_table"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_participation_conflicts_commune", "participation_conflicts", ["consultation_id", "commune_id"])


def downgrade() -> None:
    op.drop_index("ix_participation_conflicts_commune", table_name="participation_conflicts")
    op.drop_table("participation_conflicts")
    op.drop_constraint("fk_ballots_table", "ballots", type_="foreignkey")
    op.drop_constraint("ck_ballots_channel", "ballots", type_="check")
    op.create_check_constraint("ck_ballots_channel", "ballots", "channel IN ('table', 'online')")
    op.execute("DELETE FROM ballots WHERE candidate_id IS NULL")
    op.alter_column("ballots", "candidate_id", nullable=False)
    op.drop_column("ballots", "table_id")
    op.drop_constraint("fk_participations_table", "participations", type_="foreignkey")
    op.drop_constraint("ck_participations_channel", "participations", type_="check")
    op.drop_constraint("ck_participations_commune", "participations", type_="check")
    op.drop_column("participations", "table_id")
    op.drop_column("participations", "channel")
    op.drop_column("participations", "commune_id")
    op.drop_table("voting_tables")
    op.drop_table("voting_centre_communes")
    op.drop_table("voting_centres")
