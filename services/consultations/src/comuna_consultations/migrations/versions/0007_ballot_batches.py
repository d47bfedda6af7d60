"""The ballot path: group-committed participations and ballots.

* Every online row has no table and every other row has one: CHECK `(channel = 'online') =
  (table_id IS NULL)` on participations and ballots (NOT VALID: table ballots written before
  this revision carry no table; every new row is checked).
* `ix_roll_entries_login`: the online channel finds a signed-in resident's entry by its login key.
* From this revision on, `participations.voter_ref` is HMAC(consultations' secret, entry key),
  no longer the entry key itself (voting/pseudonyms.py). Participations stored before it keep
  the old form: do not upgrade a consultation that is in its voting window.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLE_RULE = "(channel = 'online') = (table_id IS NULL)"


def upgrade() -> None:
    for table in ("participations", "ballots"):
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_table CHECK ({_TABLE_RULE}) NOT VALID")
    op.create_index(
        "ix_roll_entries_login",
        "roll_entries",
        ["consultation_id", "login_key"],
        postgresql_where="login_key IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_index("ix_roll_entries_login", table_name="roll_entries")
    for table in ("participations", "ballots"):
        op.drop_constraint(f"ck_{table}_table", table, type_="check")
