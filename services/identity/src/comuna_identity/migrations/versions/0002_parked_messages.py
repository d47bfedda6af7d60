"""Parked messages: events a consumer could not apply, kept for operators to inspect and replay.

The table is the platform's (comuna_platform.events.tables.parked_table), migrated with each
service like the outbox and inbox.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

from comuna_platform.migration_steps import create_parked_messages_v1, drop_parked_messages_v1

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_parked_messages_v1()


def downgrade() -> None:
    drop_parked_messages_v1()
