"""Initial funding schema: ledger (accounts, transfers), allocations, disbursements, outbox/inbox.

Besides tables and constraints this revision installs the ledger's guard triggers, so the
database itself refuses what the application must never do:

- transfers can be neither updated, deleted nor truncated (history is append-only);
- an account starts with zero totals, never changes identity, currency, kind or flags, and its
  totals never decrease; accounts are never deleted;
- every statement that changes accounts' totals must add as much to debits as to credits in
  each currency, so the sum of all debits always equals the sum of all credits.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUARDS = [
    """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
""",
    """
CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
""",
    """
CREATE TRIGGER transfers_no_truncate BEFORE TRUNCATE ON transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
""",
    """
CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
""",
    """
CREATE TRIGGER accounts_no_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
""",
    """
CREATE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.debits_posted <> 0 OR NEW.credits_posted <> 0 THEN
            RAISE EXCEPTION 'account % must open with zero totals', NEW.key
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    IF (NEW.id, NEW.key, NEW.currency, NEW.kind, NEW.debits_must_not_exceed_credits,
        NEW.credits_must_not_exceed_debits, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.key, OLD.currency, OLD.kind, OLD.debits_must_not_exceed_credits,
        OLD.credits_must_not_exceed_debits, OLD.created_at) THEN
        RAISE EXCEPTION 'account % may only change its posted totals', OLD.key
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.debits_posted < OLD.debits_posted OR NEW.credits_posted < OLD.credits_posted THEN
        RAISE EXCEPTION 'posted totals of account % cannot decrease', OLD.key
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$
""",
    """
CREATE TRIGGER accounts_guard BEFORE INSERT OR UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_guard()
""",
    """
CREATE FUNCTION ledger_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT n.currency INTO unbalanced
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    GROUP BY n.currency
    HAVING sum(n.debits_posted - o.debits_posted) <> sum(n.credits_posted - o.credits_posted)
    LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'unbalanced postings in %: debits and credits must change by the same amount',
            unbalanced USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$
""",
    """
CREATE TRIGGER accounts_postings_balanced AFTER UPDATE ON accounts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_balanced()
""",
]

DROP_GUARDS = [
    "DROP TRIGGER IF EXISTS accounts_postings_balanced ON accounts",
    "DROP TRIGGER IF EXISTS accounts_guard ON accounts",
    "DROP TRIGGER IF EXISTS accounts_no_truncate ON accounts",
    "DROP TRIGGER IF EXISTS accounts_no_delete ON accounts",
    "DROP TRIGGER IF EXISTS transfers_no_truncate ON transfers",
    "DROP TRIGGER IF EXISTS transfers_immutable ON transfers",
    "DROP FUNCTION IF EXISTS ledger_postings_balanced()",
    "DROP FUNCTION IF EXISTS ledger_account_guard()",
    "DROP FUNCTION IF EXISTS ledger_refuse_change()",
]


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("debits_posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("credits_posted", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_accounts_currency"),
        sa.CheckConstraint("kind IN ('source', 'allocation', 'commune')", name="ck_accounts_kind"),
        sa.CheckConstraint("debits_posted >= 0 AND credits_posted >= 0", name="ck_accounts_posted_nonnegative"),
        sa.CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted <= credits_posted",
            name="ck_accounts_debits_within_credits",
        ),
        sa.CheckConstraint(
            "NOT credits_must_not_exceed_debits OR credits_posted <= debits_posted",
            name="ck_accounts_credits_within_debits",
        ),
        sa.CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name="ck_accounts_flags_exclusive",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("accounts_pkey")),
        sa.UniqueConstraint("id", "currency", name="uq_accounts_id_currency"),
        sa.UniqueConstraint("key", name=op.f("accounts_key_key")),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("debit_account_id", sa.Uuid(), nullable=False),
        sa.Column("credit_account_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name="ck_transfers_distinct_accounts"),
        sa.CheckConstraint("code ~ '^[a-z][a-z0-9_]{0,63}$'", name="ck_transfers_code"),
        sa.CheckConstraint("length(reference) <= 500", name="ck_transfers_reference_length"),
        sa.ForeignKeyConstraint(
            ["debit_account_id", "currency"], ["accounts.id", "accounts.currency"], name="fk_transfers_debit_account"
        ),
        sa.ForeignKeyConstraint(
            ["credit_account_id", "currency"], ["accounts.id", "accounts.currency"], name="fk_transfers_credit_account"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("transfers_pkey")),
        sa.UniqueConstraint("seq", name=op.f("transfers_seq_key")),
    )
    op.create_index("ix_transfers_debit_account_seq", "transfers", ["debit_account_id", "seq"])
    op.create_index("ix_transfers_credit_account_seq", "transfers", ["credit_account_id", "seq"])

    op.create_table(
        "allocations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("consultation_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=False),
        sa.Column("commune_code", sa.Text(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("funding_source", sa.Text(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("amount_minor > 0", name="ck_allocations_amount_positive"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_allocations_currency"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name="fk_allocations_account"),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"], name="fk_allocations_transfer"),
        sa.PrimaryKeyConstraint("id", name=op.f("allocations_pkey")),
        sa.UniqueConstraint("consultation_id", "commune_id", "funding_source", name="uq_allocations_business_key"),
        sa.UniqueConstraint("account_id", name=op.f("allocations_account_id_key")),
        sa.UniqueConstraint("transfer_id", name=op.f("allocations_transfer_id_key")),
    )
    op.create_index("ix_allocations_commune_id", "allocations", ["commune_id"])

    op.create_table(
        "disbursements",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("allocation_id", sa.Uuid(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("milestone_id", sa.Uuid(), nullable=False),
        sa.Column("commune_id", sa.Uuid(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("transfer_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('completed', 'rejected')", name="ck_disbursements_status"),
        sa.CheckConstraint("(status = 'completed') = (transfer_id IS NOT NULL)", name="ck_disbursements_transfer"),
        sa.CheckConstraint("(status = 'rejected') = (reason IS NOT NULL)", name="ck_disbursements_reason"),
        sa.CheckConstraint(
            "status <> 'completed' OR (amount_minor > 0 AND currency ~ '^[A-Z]{3}$' "
            "AND allocation_id IS NOT NULL AND commune_id IS NOT NULL)",
            name="ck_disbursements_completed_fields",
        ),
        sa.CheckConstraint("length(currency) <= 16", name="ck_disbursements_currency_length"),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"], name="fk_disbursements_transfer"),
        sa.PrimaryKeyConstraint("id", name=op.f("disbursements_pkey")),
        sa.UniqueConstraint("milestone_id", name=op.f("disbursements_milestone_id_key")),
        sa.UniqueConstraint("transfer_id", name=op.f("disbursements_transfer_id_key")),
    )
    op.create_index("ix_disbursements_allocation_id", "disbursements", ["allocation_id"])

    # The platform's transactional outbox and idempotent inbox (comuna_platform.events.tables).
    op.create_table(
        "outbox_events",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("aggregate_id", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "headers", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("outbox_events_pkey")),
        sa.UniqueConstraint("event_id", name=op.f("outbox_events_event_id_key")),
    )
    op.create_index(
        "ix_outbox_events_unpublished", "outbox_events", ["seq"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_table(
        "inbox_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_inbox_events"),
    )

    for statement in GUARDS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_GUARDS:
        op.execute(statement)
    op.drop_table("inbox_events")
    op.drop_index("ix_outbox_events_unpublished", table_name="outbox_events")
    op.drop_table("outbox_events")
    op.drop_index("ix_disbursements_allocation_id", table_name="disbursements")
    op.drop_table("disbursements")
    op.drop_index("ix_allocations_commune_id", table_name="allocations")
    op.drop_table("allocations")
    op.drop_index("ix_transfers_credit_account_seq", table_name="transfers")
    op.drop_index("ix_transfers_debit_account_seq", table_name="transfers")
    op.drop_table("transfers")
    op.drop_table("accounts")
