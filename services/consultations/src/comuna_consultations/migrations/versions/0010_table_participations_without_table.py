"""Ballot secrecy: a participation at an electronic table no longer names its table.

Its ballot names the table (the results' per-table subtotals); with the table on both rows,
the participation and the ballot of the only voter of a table in a batch were paired by
`xmin` + table. Paper and offline participations keep their table: their ballots are counts
on a tally sheet or a device, never rows. A refused attempt (`participation_conflicts`) keeps
its table: it has no ballot.

* existing electronic-table participations lose their table (the rewrite also gives them this
  migration's `xmin`, which unlinks them from their batches);
* CHECK `(channel IN ('online', 'table')) = (table_id IS NULL)` replaces `ck_participations_table`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RULE = "(channel IN ('online', 'table')) = (table_id IS NULL)"
_OLD_RULE = "(channel = 'online') = (table_id IS NULL)"


def upgrade() -> None:
    op.drop_constraint("ck_participations_table", "participations", type_="check")
    op.execute("UPDATE participations SET table_id = NULL WHERE channel = 'table' AND table_id IS NOT NULL")
    op.execute(f"ALTER TABLE participations ADD CONSTRAINT ck_participations_table CHECK ({_RULE})")


def downgrade() -> None:
    # The tables of electronic participations are gone by design; the old rule is restored for
    # new rows only (NOT VALID), as 0007 added it.
    op.drop_constraint("ck_participations_table", "participations", type_="check")
    op.execute(f"ALTER TABLE participations ADD CONSTRAINT ck_participations_table CHECK ({_OLD_RULE}) NOT VALID")
