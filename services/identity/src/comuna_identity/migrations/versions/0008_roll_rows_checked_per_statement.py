"""A roll's keys and entries are checked against their roll once per statement, not per row.

A foreign key checks every inserted row with its own lookup: a million-voter freeze spent
3.8 s of its 12 s of writing in that trigger, and a prepare as much again for the keys. The
rows of one roll are always written in bulk (COPY, INSERT ... SELECT), so the same rule is
kept by a statement-level trigger over the statement's new rows (one anti-join, ~0.1 s a
million): no key or entry of a roll that does not exist. Deleting a roll still deletes its
keys and entries (what ON DELETE CASCADE did), from a statement trigger on `voter_rolls`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILDREN = ("voter_roll_keys", "voter_roll_entries")

CHECK = """
CREATE FUNCTION voter_roll_rows_need_their_roll() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM (SELECT DISTINCT consultation_id FROM new_rows) n
        WHERE NOT EXISTS (SELECT 1 FROM voter_rolls r WHERE r.consultation_id = n.consultation_id)
    ) THEN
        RAISE EXCEPTION '% rows for a voter roll that does not exist', TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END;
$$
"""

CASCADE = """
CREATE FUNCTION voter_rolls_delete_their_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM voter_roll_keys WHERE consultation_id IN (SELECT consultation_id FROM old_rolls);
    DELETE FROM voter_roll_entries WHERE consultation_id IN (SELECT consultation_id FROM old_rolls);
    RETURN NULL;
END;
$$
"""


def upgrade() -> None:
    op.execute(CHECK)
    op.execute(CASCADE)
    for table in CHILDREN:
        op.drop_constraint(f"{table}_consultation_id_fkey", table, type_="foreignkey")
        # Transition tables allow one event per trigger: one for INSERT, one for UPDATE.
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_need_their_roll_on_{event.lower()} AFTER {event} ON {table}"
                " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
                " EXECUTE FUNCTION voter_roll_rows_need_their_roll()"
            )
    op.execute(
        "CREATE TRIGGER voter_rolls_delete_their_rows AFTER DELETE ON voter_rolls"
        " REFERENCING OLD TABLE AS old_rolls FOR EACH STATEMENT EXECUTE FUNCTION voter_rolls_delete_their_rows()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER voter_rolls_delete_their_rows ON voter_rolls")
    for table in CHILDREN:
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {table}_need_their_roll_on_{event} ON {table}")
        op.create_foreign_key(
            f"{table}_consultation_id_fkey",
            table,
            "voter_rolls",
            ["consultation_id"],
            ["consultation_id"],
            ondelete="CASCADE",
        )
    op.execute("DROP FUNCTION voter_rolls_delete_their_rows()")
    op.execute("DROP FUNCTION voter_roll_rows_need_their_roll()")
