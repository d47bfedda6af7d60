"""A two-phase ledger with a public journal (issue 10, docs/ledger.md).

- accounts: pending totals, the `closed` flag, the account codes source / commitment / commune /
  project / clearing (the grant earmarks, kind `allocation` so far, become `commitment`);
- transfers: a kind (single, pending, post, void, expire), the pending transfer a resolution
  names (unique: resolved at most once), an optional timeout, an exchange's pair and rate;
- the guard triggers learn the pending totals: posted totals never decrease, pending ones move
  only with their counterpart (every statement still balances per currency), closing is final;
- the platform's transparency-log tables, for the journal of every account and transfer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from comuna_platform import migration_steps

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACCOUNT_GUARD = """
CREATE OR REPLACE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.debits_posted <> 0 OR NEW.credits_posted <> 0
           OR NEW.debits_pending <> 0 OR NEW.credits_pending <> 0 OR NEW.closed THEN
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
        RAISE EXCEPTION 'account % may only change its totals or close', OLD.key
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.debits_posted < OLD.debits_posted OR NEW.credits_posted < OLD.credits_posted THEN
        RAISE EXCEPTION 'posted totals of account % cannot decrease', OLD.key
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.closed AND (NOT NEW.closed OR (NEW.debits_posted, NEW.credits_posted, NEW.debits_pending,
        NEW.credits_pending) IS DISTINCT FROM (OLD.debits_posted, OLD.credits_posted,
        OLD.debits_pending, OLD.credits_pending)) THEN
        RAISE EXCEPTION 'account % is closed', OLD.key USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$
"""

POSTINGS_BALANCED = """
CREATE OR REPLACE FUNCTION ledger_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unbalanced text;
BEGIN
    SELECT n.currency INTO unbalanced
    FROM new_rows n JOIN old_rows o ON o.id = n.id
    GROUP BY n.currency
    HAVING sum(n.debits_posted - o.debits_posted) <> sum(n.credits_posted - o.credits_posted)
        OR sum(n.debits_pending - o.debits_pending) <> sum(n.credits_pending - o.credits_pending)
    LIMIT 1;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'unbalanced postings in %: debits and credits must change by the same amount',
            unbalanced USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$
"""

OLD_ACCOUNT_GUARD = """
CREATE OR REPLACE FUNCTION ledger_account_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""

OLD_POSTINGS_BALANCED = """
CREATE OR REPLACE FUNCTION ledger_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
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
"""

KINDS = "kind IN ('source', 'commitment', 'commune', 'project', 'clearing')"
OLD_KINDS = "kind IN ('source', 'allocation', 'commune')"


def upgrade() -> None:
    op.add_column("accounts", sa.Column("debits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False))
    op.add_column(
        "accounts", sa.Column("credits_pending", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
    )
    op.add_column("accounts", sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.drop_constraint("ck_accounts_kind", "accounts", type_="check")
    # The earmarks keep their ids and keys; only their code changes (the guard would refuse it).
    op.execute("ALTER TABLE accounts DISABLE TRIGGER accounts_guard")
    op.execute("UPDATE accounts SET kind = 'commitment' WHERE kind = 'allocation'")
    op.execute("ALTER TABLE accounts ENABLE TRIGGER accounts_guard")
    op.create_check_constraint("ck_accounts_kind", "accounts", KINDS)
    op.drop_constraint("ck_accounts_posted_nonnegative", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_totals_nonnegative",
        "accounts",
        "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
    )
    op.drop_constraint("ck_accounts_debits_within_credits", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_debits_within_credits",
        "accounts",
        "NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted",
    )
    op.drop_constraint("ck_accounts_credits_within_debits", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_credits_within_debits",
        "accounts",
        "NOT credits_must_not_exceed_debits OR credits_posted + credits_pending <= debits_posted",
    )
    op.create_check_constraint(
        "ck_accounts_closed_settled", "accounts", "NOT closed OR (debits_pending = 0 AND credits_pending = 0)"
    )

    op.add_column("transfers", sa.Column("kind", sa.Text(), server_default=sa.text("'single'"), nullable=False))
    op.add_column("transfers", sa.Column("pending_id", sa.Uuid(), nullable=True))
    op.add_column("transfers", sa.Column("timeout_seconds", sa.Integer(), nullable=True))
    op.add_column("transfers", sa.Column("exchange_base_id", sa.Uuid(), nullable=True))
    op.add_column("transfers", sa.Column("exchange_counter_id", sa.Uuid(), nullable=True))
    op.add_column("transfers", sa.Column("exchange_rate", sa.Numeric(38, 18), nullable=True))
    op.create_foreign_key("fk_transfers_pending", "transfers", "transfers", ["pending_id"], ["id"])
    op.create_unique_constraint(op.f("transfers_pending_id_key"), "transfers", ["pending_id"])
    op.create_check_constraint(
        "ck_transfers_kind", "transfers", "kind IN ('single', 'pending', 'post', 'void', 'expire')"
    )
    op.create_check_constraint(
        "ck_transfers_pending_reference",
        "transfers",
        "(kind IN ('expire', 'post', 'void')) = (pending_id IS NOT NULL)",
    )
    op.create_check_constraint(
        "ck_transfers_timeout", "transfers", "timeout_seconds IS NULL OR (kind = 'pending' AND timeout_seconds > 0)"
    )
    op.create_check_constraint(
        "ck_transfers_exchange",
        "transfers",
        "(exchange_base_id IS NULL) = (exchange_counter_id IS NULL) "
        "AND (exchange_base_id IS NULL) = (exchange_rate IS NULL) "
        "AND (exchange_base_id IS NULL OR id IN (exchange_base_id, exchange_counter_id)) "
        "AND (exchange_rate IS NULL OR exchange_rate > 0)",
    )
    op.create_index(
        "ix_transfers_timeouts",
        "transfers",
        ["created_at"],
        postgresql_where=sa.text("kind = 'pending' AND timeout_seconds IS NOT NULL"),
    )
    op.execute(ACCOUNT_GUARD)
    op.execute(POSTINGS_BALANCED)

    migration_steps.create_transparency_log_v1()
    migration_steps.create_transparency_log_cosignatures_v1()


def downgrade() -> None:
    migration_steps.drop_transparency_log_cosignatures_v1()
    migration_steps.drop_transparency_log_v1()
    op.execute(OLD_POSTINGS_BALANCED)
    op.execute(OLD_ACCOUNT_GUARD)
    op.drop_index("ix_transfers_timeouts", table_name="transfers")
    for name in (
        "ck_transfers_exchange",
        "ck_transfers_timeout",
        "ck_transfers_pending_reference",
        "ck_transfers_kind",
    ):
        op.drop_constraint(name, "transfers", type_="check")
    op.drop_constraint(op.f("transfers_pending_id_key"), "transfers", type_="unique")
    op.drop_constraint("fk_transfers_pending", "transfers", type_="foreignkey")
    for column in ("exchange_rate", "exchange_counter_id", "exchange_base_id", "timeout_seconds", "pending_id", "kind"):
        op.drop_column("transfers", column)
    op.drop_constraint("ck_accounts_closed_settled", "accounts", type_="check")
    op.drop_constraint("ck_accounts_credits_within_debits", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_credits_within_debits",
        "accounts",
        "NOT credits_must_not_exceed_debits OR credits_posted <= debits_posted",
    )
    op.drop_constraint("ck_accounts_debits_within_credits", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_debits_within_credits",
        "accounts",
        "NOT debits_must_not_exceed_credits OR debits_posted <= credits_posted",
    )
    op.drop_constraint("ck_accounts_totals_nonnegative", "accounts", type_="check")
    op.create_check_constraint(
        "ck_accounts_posted_nonnegative", "accounts", "debits_posted >= 0 AND credits_posted >= 0"
    )
    op.drop_constraint("ck_accounts_kind", "accounts", type_="check")
    op.execute("ALTER TABLE accounts DISABLE TRIGGER accounts_guard")
    op.execute("UPDATE accounts SET kind = 'allocation' WHERE kind = 'commitment'")
    op.execute("ALTER TABLE accounts ENABLE TRIGGER accounts_guard")
    op.create_check_constraint("ck_accounts_kind", "accounts", OLD_KINDS)
    for column in ("closed", "credits_pending", "debits_pending"):
        op.drop_column("accounts", column)
