"""Funding's tables: a double-entry ledger (accounts, immutable transfers) and the business
records that point into it (allocations, disbursements).

The ledger's invariants are enforced by PostgreSQL itself, not only by the application:
balance-limit flags are CHECK constraints on the running totals, a transfer's currency must
equal both accounts' currency (composite foreign keys), and transfers cannot be updated or
deleted (triggers, created in the migration). A bug in the application can therefore fail a
request, but never commit an overdraft or rewrite history.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_funding.vocabulary import (
    LIVE_ALLOCATIONS,
    RESOLVING_KINDS,
    AccountKind,
    AllocationStatus,
    DisbursementStatus,
    FunderKind,
    LedgerItemStatus,
    StatementDirection,
    TrancheStatus,
    TransferKind,
)
from comuna_platform.tlog.store import define_tables
from comuna_platform.vocabulary import one_of

CURRENCY_RE = "^[A-Z]{3}$"
COMPLETED, REJECTED = DisbursementStatus.COMPLETED.value, DisbursementStatus.REJECTED.value
_live = ", ".join(f"'{status.value}'" for status in sorted(LIVE_ALLOCATIONS))
_resolving = ", ".join(f"'{kind.value}'" for kind in sorted(RESOLVING_KINDS))


class Base(DeclarativeBase):
    pass


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        # Target of the transfers' composite foreign keys: a transfer's currency must be its
        # accounts' currency, checked by the database.
        UniqueConstraint("id", "currency", name="uq_accounts_id_currency"),
        CheckConstraint(f"currency ~ '{CURRENCY_RE}'", name="ck_accounts_currency"),
        CheckConstraint(one_of("kind", AccountKind), name="ck_accounts_kind"),
        CheckConstraint(
            "debits_posted >= 0 AND credits_posted >= 0 AND debits_pending >= 0 AND credits_pending >= 0",
            name="ck_accounts_totals_nonnegative",
        ),
        # The balance-limit flags (TigerBeetle's), enforced on every committed row; a
        # reservation counts against the limit as if it were posted.
        CheckConstraint(
            "NOT debits_must_not_exceed_credits OR debits_posted + debits_pending <= credits_posted",
            name="ck_accounts_debits_within_credits",
        ),
        CheckConstraint(
            "NOT credits_must_not_exceed_debits OR credits_posted + credits_pending <= debits_posted",
            name="ck_accounts_credits_within_debits",
        ),
        CheckConstraint(
            "NOT (debits_must_not_exceed_credits AND credits_must_not_exceed_debits)",
            name="ck_accounts_flags_exclusive",
        ),
        CheckConstraint(
            "NOT closed OR (debits_pending = 0 AND credits_pending = 0)", name="ck_accounts_closed_settled"
        ),
        # Accounts are never deleted (trigger): the service's runtime role may not even try.
        {"info": {"runtime_privileges": ("SELECT", "INSERT", "UPDATE")}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Stable business name, e.g. "source:national:USD", "allocation:<uuid>", "commune:<uuid>:USD".
    key: Mapped[str] = mapped_column(Text, unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(Text)
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    debits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_posted: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    debits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    credits_pending: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    # Closing is final (the guard trigger refuses reopening): a closed account takes no transfer.
    closed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Transfer(Base):
    __tablename__ = "transfers"
    __table_args__ = (
        ForeignKeyConstraint(
            ["debit_account_id", "currency"],
            ["accounts.id", "accounts.currency"],
            name="fk_transfers_debit_account",
        ),
        ForeignKeyConstraint(
            ["credit_account_id", "currency"],
            ["accounts.id", "accounts.currency"],
            name="fk_transfers_credit_account",
        ),
        CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="ck_transfers_distinct_accounts"),
        CheckConstraint("code ~ '^[a-z][a-z0-9_]{0,63}$'", name="ck_transfers_code"),
        CheckConstraint("length(reference) <= 500", name="ck_transfers_reference_length"),
        CheckConstraint(one_of("kind", TransferKind), name="ck_transfers_kind"),
        # post, void and expire name the pending transfer they resolve; nothing else does.
        CheckConstraint(
            f"(kind IN ({_resolving})) = (pending_id IS NOT NULL)",
            name="ck_transfers_pending_reference",
        ),
        CheckConstraint(
            "timeout_seconds IS NULL OR (kind = 'pending' AND timeout_seconds > 0)", name="ck_transfers_timeout"
        ),
        CheckConstraint(
            "(exchange_base_id IS NULL) = (exchange_counter_id IS NULL) "
            "AND (exchange_base_id IS NULL) = (exchange_rate IS NULL) "
            "AND (exchange_base_id IS NULL OR id IN (exchange_base_id, exchange_counter_id)) "
            "AND (exchange_rate IS NULL OR exchange_rate > 0)",
            name="ck_transfers_exchange",
        ),
        Index("ix_transfers_debit_account_seq", "debit_account_id", "seq"),
        Index("ix_transfers_credit_account_seq", "credit_account_id", "seq"),
        # The expiry worker's scan: pending transfers that may time out.
        Index(
            "ix_transfers_timeouts",
            "created_at",
            postgresql_where=text("kind = 'pending' AND timeout_seconds IS NOT NULL"),
        ),
        # Transfers are immutable (trigger): the runtime role may only read and append.
        {"info": {"runtime_privileges": ("SELECT", "INSERT")}},
    )

    # Chosen by the caller: the idempotency key of the transfer.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Ledger order (like TigerBeetle's timestamp): unique and increasing, used for paging.
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), unique=True)
    debit_account_id: Mapped[uuid.UUID] = mapped_column()
    credit_account_id: Mapped[uuid.UUID] = mapped_column()
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(Text)
    reference: Mapped[str] = mapped_column(Text, server_default=text("''"))
    kind: Mapped[str] = mapped_column(Text, server_default=text("'single'"))
    # The pending transfer a post, void or expire resolves. Unique: a reservation is resolved
    # at most once, whoever races to resolve it.
    pending_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_transfers_pending"), unique=True
    )
    timeout_seconds: Mapped[int | None] = mapped_column(Integer)
    # An exchange's two legs both name the pair and the rate (counter minor units per base minor unit).
    exchange_base_id: Mapped[uuid.UUID | None] = mapped_column()
    exchange_counter_id: Mapped[uuid.UUID | None] = mapped_column()
    exchange_rate: Mapped[Decimal | None] = mapped_column(Numeric(38, 18))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Allocation(Base):
    """Funds one funder committed to one commune's project (a ranked candidate) of a consultation.

    An allocation is never edited: a recount that changes who is funded, or by how much, reverses
    it (status `reversed`, a reversing transfer) and creates the next generation.
    """

    __tablename__ = "allocations"
    __table_args__ = (
        # The business key: a replayed or duplicated certification can never allocate twice.
        UniqueConstraint(
            "consultation_id",
            "commune_id",
            "candidate_id",
            "funding_source",
            "generation",
            name="uq_allocations_business_key",
        ),
        # At most one live allocation per project and funder, whatever the generation.
        Index(
            "uq_allocations_live",
            "consultation_id",
            "commune_id",
            "candidate_id",
            "funding_source",
            unique=True,
            postgresql_where=text(f"status IN ({_live})"),
        ),
        CheckConstraint("amount_minor > 0", name="ck_allocations_amount_positive"),
        CheckConstraint(f"currency ~ '{CURRENCY_RE}'", name="ck_allocations_currency"),
        CheckConstraint(one_of("status", AllocationStatus), name="ck_allocations_status"),
        CheckConstraint("generation >= 1", name="ck_allocations_generation"),
        CheckConstraint(
            f"(status = '{AllocationStatus.REVERSED.value}') = (reversal_transfer_id IS NOT NULL)",
            name="ck_allocations_reversal",
        ),
        Index("ix_allocations_commune_id", "commune_id"),
        Index("ix_allocations_reserving", "created_at", postgresql_where=text("status = 'reserving'")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    commune_code: Mapped[str] = mapped_column(Text)
    candidate_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    funding_source: Mapped[str] = mapped_column(Text)
    # The commitment account ("allocation:<id>") the funder's money is held on.
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", name="fk_allocations_account"), unique=True)
    # The commitment transfer (single; pending while a remote source is asked).
    transfer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transfers.id", name="fk_allocations_transfer"), unique=True
    )
    # The candidate's rank and the rule tier that funded it (None: the built-in grant).
    rank: Mapped[int | None] = mapped_column(Integer)
    rule_tier: Mapped[int | None] = mapped_column(Integer)
    result_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    generation: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'committed'"))
    reason: Mapped[str | None] = mapped_column(Text)
    # The post or void of a remote source's pending commitment.
    resolution_transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_allocations_resolution"), unique=True
    )
    # The transfer that moved a reversed allocation's money back to its funder.
    reversal_transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_allocations_reversal"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Disbursement(Base):
    """The outcome of one verified milestone: a tranche paid out, or refused with a reason.

    `allocation_id` is deliberately not a foreign key: a refused disbursement records the
    allocation the event named even when that allocation does not exist.
    """

    __tablename__ = "disbursements"
    __table_args__ = (
        CheckConstraint(one_of("status", DisbursementStatus), name="ck_disbursements_status"),
        CheckConstraint(f"(status = '{COMPLETED}') = (transfer_id IS NOT NULL)", name="ck_disbursements_transfer"),
        CheckConstraint(f"(status = '{REJECTED}') = (reason IS NOT NULL)", name="ck_disbursements_reason"),
        CheckConstraint(
            f"status <> '{COMPLETED}' OR (amount_minor > 0 AND currency ~ '{CURRENCY_RE}' "
            "AND allocation_id IS NOT NULL AND commune_id IS NOT NULL)",
            name="ck_disbursements_completed_fields",
        ),
        CheckConstraint("length(currency) <= 16", name="ck_disbursements_currency_length"),
        Index("ix_disbursements_allocation_id", "allocation_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    allocation_id: Mapped[uuid.UUID | None] = mapped_column()
    project_id: Mapped[uuid.UUID] = mapped_column()
    milestone_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    commune_id: Mapped[uuid.UUID | None] = mapped_column()
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Text)
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_disbursements_transfer"), unique=True
    )
    status: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ResultSupersession(Base):
    """A recount superseded the certified result an allocation was made for (issue 8): recorded
    for review, never acted on here (issue 10 reverses and re-allocates). One row per
    allocation and superseding version; a replayed event finds its row already there."""

    __tablename__ = "result_supersessions"

    allocation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("allocations.id", name="fk_result_supersessions_allocation"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    supersedes: Mapped[int] = mapped_column(BigInteger)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    funded_candidate_id: Mapped[uuid.UUID] = mapped_column()
    # None: after the recount the commune chose nobody.
    new_winner_candidate_id: Mapped[uuid.UUID | None] = mapped_column()
    winner_changed: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Funder(Base):
    """A registered funding source: the national fund, a government's own system (remote), or
    a pledge. Its money enters the ledger through `source:<name>:<currency>`. A remote source's
    credentials are never stored: `credentials_ref` names an entry of the service's
    configuration (`COMUNA_FUNDING_SOURCE_CREDENTIALS`, from a Secret)."""

    __tablename__ = "funders"
    __table_args__ = (
        CheckConstraint("name ~ '^[a-z][a-z0-9_]{0,31}$'", name="ck_funders_name"),
        CheckConstraint(one_of("kind", FunderKind), name="ck_funders_kind"),
        CheckConstraint(f"currency ~ '{CURRENCY_RE}'", name="ck_funders_currency"),
        CheckConstraint("length(display_name) BETWEEN 1 AND 200", name="ck_funders_display_name"),
        CheckConstraint(
            f"(kind = '{FunderKind.REMOTE.value}') = (endpoint IS NOT NULL AND credentials_ref IS NOT NULL)",
            name="ck_funders_remote_endpoint",
        ),
        CheckConstraint("deadline_ms BETWEEN 100 AND 600000", name="ck_funders_deadline"),
    )

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    display_name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    # The territory it may fund (itself and everything inside it).
    territory_code: Mapped[str] = mapped_column(Text)
    endpoint: Mapped[str | None] = mapped_column(Text)
    credentials_ref: Mapped[str | None] = mapped_column(Text)
    tls: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    deadline_ms: Mapped[int] = mapped_column(Integer, server_default=text("5000"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FundingRule(Base):
    """One co-funding rule of a consultation, in declaration order (docs/ledger.md, "Co-funding")."""

    __tablename__ = "funding_rules"
    __table_args__ = (
        CheckConstraint("share_bp BETWEEN 1 AND 10000", name="ck_funding_rules_share"),
        CheckConstraint(
            "per_project_cap_minor IS NULL OR per_project_cap_minor > 0", name="ck_funding_rules_project_cap"
        ),
        CheckConstraint("total_cap_minor IS NULL OR total_cap_minor >= 0", name="ck_funding_rules_total_cap"),
        CheckConstraint("cardinality(ranks) >= 1", name="ck_funding_rules_ranks"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    funder: Mapped[str] = mapped_column(ForeignKey("funders.name", name="fk_funding_rules_funder"))
    tier: Mapped[int] = mapped_column(Integer)
    ranks: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    territory_code: Mapped[str | None] = mapped_column(Text)
    share_bp: Mapped[int] = mapped_column(Integer)
    per_project_cap_minor: Mapped[int | None] = mapped_column(BigInteger)
    total_cap_minor: Mapped[int | None] = mapped_column(BigInteger)
    declared_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CertifiedResult(Base):
    """A commune's certified result as funding received it (one row per version): what the
    co-funding plan is computed from, by funding and by anyone replaying it."""

    __tablename__ = "certified_results"

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    commune_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    commune_code: Mapped[str] = mapped_column(Text)
    funds_currency: Mapped[str] = mapped_column(String(3))
    # [{"candidate_id", "rank", "title", "estimated_cost_minor"}], in rank order.
    candidates: Mapped[list[dict[str, object]]] = mapped_column(JSONB)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsultationFunding(Base):
    """A consultation whose co-funding plan was applied (its rules are then fixed)."""

    __tablename__ = "consultation_fundings"

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    communes: Mapped[int] = mapped_column(Integer)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Tranche(Base):
    """A milestone's share of an allocation, reserved on the ledger until the milestone is
    verified (posted to the commune) or the project cancelled (voided)."""

    __tablename__ = "tranches"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="ck_tranches_amount_positive"),
        CheckConstraint(one_of("status", TrancheStatus), name="ck_tranches_status"),
        CheckConstraint(
            f"(status = '{TrancheStatus.RESERVED.value}') = (resolution_transfer_id IS NULL)",
            name="ck_tranches_resolution",
        ),
        Index("ix_tranches_allocation_id", "allocation_id"),
        Index("ix_tranches_project_id", "project_id"),
    )

    milestone_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    allocation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("allocations.id", name="fk_tranches_allocation"))
    project_id: Mapped[uuid.UUID] = mapped_column()
    sequence: Mapped[int] = mapped_column(Integer)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    pending_transfer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transfers.id", name="fk_tranches_pending_transfer"), unique=True
    )
    status: Mapped[str] = mapped_column(Text, server_default=text("'reserved'"))
    resolution_transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_tranches_resolution"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SourceCall(Base):
    """Every call to a remote source and what came of it; uncertain or late outcomes are
    flagged for reconciliation against the source's statement."""

    __tablename__ = "source_calls"
    __table_args__ = (
        CheckConstraint("operation IN ('reserve', 'commit', 'cancel')", name="ck_source_calls_operation"),
        Index("ix_source_calls_allocation_id", "allocation_id"),
        Index("ix_source_calls_reconcile", "at", postgresql_where=text("needs_reconciliation")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    allocation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("allocations.id", name="fk_source_calls_allocation"))
    funder: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)
    # ok, refused, unavailable, conflict, error
    outcome: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text, server_default=text("''"))
    needs_reconciliation: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- reconciliation of external statements (docs/ledger.md, "Reconciliation") ---------------
# Append-only, like the ledger: a report says what the file and the ledger said when it was
# imported, so the runtime role may only read and insert.


class Statement(Base):
    """An external statement (a bank's or a treasury's CSV) of one ledger account, reconciled
    against the ledger once, at import. The same file twice is the same statement."""

    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("account_id", "sha256", name="uq_statements_account_file"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_statements_sha256"),
        CheckConstraint(f"currency ~ '{CURRENCY_RE}'", name="ck_statements_currency"),
        CheckConstraint("period_from <= period_to", name="ck_statements_period"),
        CheckConstraint("lines > 0", name="ck_statements_lines"),
        {"info": {"runtime_privileges": ("SELECT", "INSERT")}},
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id", name="fk_statements_account"))
    # Of the file's bytes, hex: what makes a re-import the same statement.
    sha256: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    # The first and last dates of the file's lines (UTC days, both included).
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    lines: Mapped[int] = mapped_column(Integer)
    # The operator's subject (kept for accountability; not published with the report).
    imported_by: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StatementLine(Base):
    """One line of an imported statement and the ledger transfer it matched, if any."""

    __tablename__ = "statement_lines"
    __table_args__ = (
        # A transfer accounts for one line of a statement at most.
        UniqueConstraint("statement_id", "transfer_id", name="uq_statement_lines_transfer"),
        CheckConstraint("amount_minor > 0", name="ck_statement_lines_amount_positive"),
        CheckConstraint(one_of("direction", StatementDirection), name="ck_statement_lines_direction"),
        CheckConstraint("length(reference) <= 500", name="ck_statement_lines_reference_length"),
        CheckConstraint(
            "transfer_id IS NULL OR pending_transfer_id IS NULL", name="ck_statement_lines_matched_or_pending"
        ),
        {"info": {"runtime_privileges": ("SELECT", "INSERT")}},
    )

    statement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("statements.id", name="fk_statement_lines_statement"), primary_key=True
    )
    # The line of the file (the header is line 1).
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    booked_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(Text)
    # The posted transfer this line matched; None: unmatched in the ledger.
    transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_statement_lines_transfer")
    )
    # An unmatched line that an open pending transfer would match once posted.
    pending_transfer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("transfers.id", name="fk_statement_lines_pending_transfer")
    )


class StatementTransfer(Base):
    """A ledger transfer of the account that no line of the statement accounts for: posted in
    the period but unmatched, or a reservation still pending at the period's end. What the
    ledger showed is copied (amount, side, the reference compared) so the report stands alone."""

    __tablename__ = "statement_transfers"
    __table_args__ = (
        CheckConstraint(one_of("status", LedgerItemStatus), name="ck_statement_transfers_status"),
        CheckConstraint(one_of("direction", StatementDirection), name="ck_statement_transfers_direction"),
        CheckConstraint("amount_minor > 0", name="ck_statement_transfers_amount_positive"),
        Index("ix_statement_transfers_list", "statement_id", "status", "seq"),
        {"info": {"runtime_privileges": ("SELECT", "INSERT")}},
    )

    statement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("statements.id", name="fk_statement_transfers_statement"), primary_key=True
    )
    transfer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("transfers.id", name="fk_statement_transfers_transfer"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(Text)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reference: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# The ledger's public journal (docs/ledger.md): the platform's transparency-log tables, one log.
journal_tables = define_tables(Base.metadata)
