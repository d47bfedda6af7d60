"""The treasury's books in its own PostgreSQL database: one account, reservations, movements.

Every operation that moves money runs in one transaction that first locks the account row
(`SELECT ... FOR UPDATE`). That one lock is what makes the rules hold under concurrency:

* concurrent reserves cannot overdraw: each sees the totals the previous one committed;
* a reservation id is looked up and inserted under the lock, so two racing calls with the
  same id cannot both take effect (the primary key would refuse the second anyway);
* movements are numbered (`seq`, the statement's cursor) while the lock is held and the lock is
  released only by the commit, so numbering order is commit order: a statement reader that
  has seen movement N will never later find a movement below N appear.

The totals also carry CHECK constraints (none negative), so even a bug here cannot overdraw:
the database refuses the transaction. Nothing is answered before the commit returns.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from comuna_treasury.rules import (
    MAX_AMOUNT,
    MAX_REFERENCE,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NoAccount,
    NotFound,
    check_amount,
    check_currency,
    check_text,
)

# Serialises concurrent `migrate` runs (an arbitrary constant of this program).
_MIGRATE_LOCK = 0x7472656173757279


class Status(StrEnum):
    RESERVED = "reserved"
    REFUSED = "refused"
    COMMITTED = "committed"
    CANCELLED = "cancelled"


class Kind(StrEnum):
    RESERVE = "reserve"
    COMMIT = "commit"
    CANCEL = "cancel"
    DEPOSIT = "deposit"


class Reason(StrEnum):
    """Refusal codes this treasury gives (the contract lets a source add its own)."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    CURRENCY_MISMATCH = "currency_mismatch"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# --- schema -----------------------------------------------------------------------------------

metadata = MetaData()

account = Table(
    "treasury_account",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("available_minor", BigInteger, nullable=False),
    Column("reserved_minor", BigInteger, nullable=False),
    Column("committed_minor", BigInteger, nullable=False),
    # One account per treasury: a state's budget line in one currency.
    CheckConstraint("id = 1", name="ck_treasury_account_single"),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_treasury_account_currency"),
    CheckConstraint("available_minor >= 0", name="ck_treasury_account_available"),
    CheckConstraint("reserved_minor >= 0", name="ck_treasury_account_reserved"),
    CheckConstraint("committed_minor >= 0", name="ck_treasury_account_committed"),
)

reservations = Table(
    "treasury_reservations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("status", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", Text, nullable=False),
    Column("commune_id", Text, nullable=True),
    Column("project_id", Text, nullable=True),
    # SHA-256 of the Reserve body (amount, currency, reference, commune, project): a retry with
    # the same body is answered again, another body under the same id is refused.
    Column("body_hash", LargeBinary, nullable=False),
    Column("reason", Text, nullable=True),
    Column("committed_minor", BigInteger, nullable=True),
    Column("reserved_at", DateTime(timezone=True), nullable=False),
    Column("resolved_at", DateTime(timezone=True), nullable=True),
    CheckConstraint(_one_of("status", Status), name="ck_treasury_reservations_status"),
    CheckConstraint("amount_minor > 0", name="ck_treasury_reservations_amount"),
    CheckConstraint("octet_length(body_hash) = 32", name="ck_treasury_reservations_hash"),
    CheckConstraint("(status = 'refused') = (reason IS NOT NULL)", name="ck_treasury_reservations_reason"),
    CheckConstraint(
        "(status = 'committed') = (committed_minor IS NOT NULL)"
        " AND (committed_minor IS NULL OR committed_minor BETWEEN 1 AND amount_minor)",
        name="ck_treasury_reservations_committed",
    ),
    CheckConstraint(
        "(status IN ('committed', 'cancelled')) = (resolved_at IS NOT NULL)", name="ck_treasury_reservations_resolved"
    ),
)

movements = Table(
    "treasury_movements",
    metadata,
    # The statement's cursor: numbered under the account lock, so in commit order.
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("id", Uuid, nullable=False, unique=True),
    Column("reservation_id", Uuid, ForeignKey("treasury_reservations.id"), nullable=True),
    Column("kind", Text, nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("released_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reference", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    CheckConstraint(_one_of("kind", Kind), name="ck_treasury_movements_kind"),
    CheckConstraint("amount_minor > 0", name="ck_treasury_movements_amount"),
    CheckConstraint(
        "released_minor >= 0 AND (kind = 'commit' OR released_minor = 0)", name="ck_treasury_movements_released"
    ),
    CheckConstraint("(kind = 'deposit') = (reservation_id IS NULL)", name="ck_treasury_movements_reservation"),
)

# A statement is history: the table refuses UPDATE, DELETE and TRUNCATE for everyone.
_APPEND_ONLY = [
    """
    CREATE OR REPLACE FUNCTION treasury_movements_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'treasury_movements is append-only (% refused)', TG_OP;
    END
    $$
    """,
    """
    CREATE OR REPLACE TRIGGER treasury_movements_append_only
    BEFORE UPDATE OR DELETE ON treasury_movements
    FOR EACH ROW EXECUTE FUNCTION treasury_movements_append_only()
    """,
    """
    CREATE OR REPLACE TRIGGER treasury_movements_no_truncate
    BEFORE TRUNCATE ON treasury_movements
    FOR EACH STATEMENT EXECUTE FUNCTION treasury_movements_append_only()
    """,
]


# --- values -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funds:
    currency: str
    available_minor: int
    reserved_minor: int
    committed_minor: int


@dataclass(frozen=True)
class ReserveRequest:
    reservation_id: uuid.UUID
    amount_minor: int
    currency: str
    reference: str
    commune_id: str | None
    project_id: str | None

    def body_hash(self) -> bytes:
        body = {
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "reference": self.reference,
            "commune_id": self.commune_id,
            "project_id": self.project_id,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).digest()


@dataclass(frozen=True)
class ReserveOutcome:
    reservation_id: uuid.UUID
    status: Status  # RESERVED or REFUSED: the outcome of the request, never the later state
    reason: str | None
    amount_minor: int
    currency: str
    at: datetime


@dataclass(frozen=True)
class CommitOutcome:
    reservation_id: uuid.UUID
    committed_minor: int
    released_minor: int
    currency: str
    at: datetime


@dataclass(frozen=True)
class CancelOutcome:
    reservation_id: uuid.UUID
    status: Status  # CANCELLED, or REFUSED when nothing was ever held
    released_minor: int
    currency: str
    at: datetime


@dataclass(frozen=True)
class Movement:
    seq: int
    id: uuid.UUID
    reservation_id: uuid.UUID | None
    kind: Kind
    amount_minor: int
    released_minor: int
    currency: str
    reference: str
    at: datetime


def now() -> datetime:
    return datetime.now(UTC)


# --- the store --------------------------------------------------------------------------------


def engine_for(database_url: str) -> AsyncEngine:
    """An engine for `postgresql+asyncpg://...` (a plain `postgresql://` URL is taken as asyncpg)."""
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+asyncpg://" + database_url.removeprefix("postgresql://")
    if not database_url.startswith("postgresql+asyncpg://"):
        raise InvalidArgument("the database URL must start with postgresql+asyncpg:// or postgresql://")
    # hide_parameters: references and amounts are the government's business, not the log's.
    # pool_pre_ping: connections left dead by a database restart are replaced, not handed out.
    return create_async_engine(database_url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


async def migrate(engine: AsyncEngine, currency: str) -> bool:
    """Create the tables (if missing) and open the account in `currency` (if not yet opened).

    Idempotent; returns whether the account was opened now. An account already opened in
    another currency is refused: a treasury's currency never changes.
    """
    check_currency(currency)
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATE_LOCK})
        await conn.run_sync(metadata.create_all, checkfirst=True)
        for statement in _APPEND_ONLY:
            await conn.execute(text(statement))
        row = (await conn.execute(select(account.c.currency))).one_or_none()
        if row is None:
            await conn.execute(
                insert(account).values(id=1, currency=currency, available_minor=0, reserved_minor=0, committed_minor=0)
            )
            return True
        if row.currency != currency:
            raise InvalidArgument(f"the treasury's account is in {row.currency}; it cannot become {currency}")
        return False


class Store:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def currency(self) -> str:
        async with self.engine.connect() as conn:
            value: str | None = (await conn.execute(select(account.c.currency))).scalar_one_or_none()
        if value is None:
            raise NoAccount("the treasury has no account: run `comuna-treasury migrate --currency CODE` first")
        return value

    async def funds(self) -> Funds:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(account))).one_or_none()
        if row is None:
            raise NoAccount("the treasury has no account: run `comuna-treasury migrate --currency CODE` first")
        return Funds(row.currency, row.available_minor, row.reserved_minor, row.committed_minor)

    async def _lock_account(self, conn: AsyncConnection) -> Funds:
        row = (await conn.execute(select(account).where(account.c.id == 1).with_for_update())).one_or_none()
        if row is None:
            raise NoAccount("the treasury has no account: run `comuna-treasury migrate --currency CODE` first")
        return Funds(row.currency, row.available_minor, row.reserved_minor, row.committed_minor)

    async def _move(
        self,
        conn: AsyncConnection,
        *,
        kind: Kind,
        reservation_id: uuid.UUID | None,
        amount_minor: int,
        currency: str,
        reference: str,
        at: datetime,
        released_minor: int = 0,
        available: int = 0,
        reserved: int = 0,
        committed: int = 0,
    ) -> Movement:
        """Apply deltas to the (locked) account and append the movement that explains them."""
        await conn.execute(
            update(account)
            .where(account.c.id == 1)
            .values(
                available_minor=account.c.available_minor + available,
                reserved_minor=account.c.reserved_minor + reserved,
                committed_minor=account.c.committed_minor + committed,
            )
        )
        movement_id = uuid.uuid4()
        seq = (
            await conn.execute(
                insert(movements)
                .values(
                    id=movement_id,
                    reservation_id=reservation_id,
                    kind=kind,
                    amount_minor=amount_minor,
                    released_minor=released_minor,
                    currency=currency,
                    reference=reference,
                    at=at,
                )
                .returning(movements.c.seq)
            )
        ).scalar_one()
        return Movement(seq, movement_id, reservation_id, kind, amount_minor, released_minor, currency, reference, at)

    async def reserve(self, request: ReserveRequest) -> ReserveOutcome:
        body_hash = request.body_hash()
        async with self.engine.begin() as conn:
            funds = await self._lock_account(conn)
            existing = (
                await conn.execute(select(reservations).where(reservations.c.id == request.reservation_id))
            ).one_or_none()
            if existing is not None:
                if existing.body_hash != body_hash:
                    raise AlreadyExists(f"reservation {request.reservation_id} was made with another body")
                refused = existing.status == Status.REFUSED
                return ReserveOutcome(
                    existing.id,
                    Status.REFUSED if refused else Status.RESERVED,
                    existing.reason,
                    existing.amount_minor,
                    existing.currency,
                    existing.reserved_at,
                )
            at = now()
            reason: Reason | None = None
            if request.currency != funds.currency:
                reason = Reason.CURRENCY_MISMATCH
            elif request.amount_minor > funds.available_minor:
                reason = Reason.INSUFFICIENT_FUNDS
            # The reservation row first: the movement's foreign key points at it.
            await conn.execute(
                insert(reservations).values(
                    id=request.reservation_id,
                    status=Status.REFUSED if reason else Status.RESERVED,
                    amount_minor=request.amount_minor,
                    currency=request.currency,
                    reference=request.reference,
                    commune_id=request.commune_id,
                    project_id=request.project_id,
                    body_hash=body_hash,
                    reason=reason,
                    reserved_at=at,
                )
            )
            if reason is None:
                await self._move(
                    conn,
                    kind=Kind.RESERVE,
                    reservation_id=request.reservation_id,
                    amount_minor=request.amount_minor,
                    currency=request.currency,
                    reference=request.reference,
                    at=at,
                    available=-request.amount_minor,
                    reserved=request.amount_minor,
                )
        return ReserveOutcome(
            request.reservation_id,
            Status.REFUSED if reason else Status.RESERVED,
            reason,
            request.amount_minor,
            request.currency,
            at,
        )

    async def commit(
        self, reservation_id: uuid.UUID, amount_minor: int | None, currency: str | None = None
    ) -> CommitOutcome:
        """Take the reservation's amount (or `amount_minor` of it, releasing the rest)."""
        if amount_minor is not None:
            check_amount(amount_minor)
        async with self.engine.begin() as conn:
            await self._lock_account(conn)
            row = (await conn.execute(select(reservations).where(reservations.c.id == reservation_id))).one_or_none()
            if row is None:
                raise NotFound(f"no reservation {reservation_id}")
            if row.status == Status.REFUSED:
                raise FailedPrecondition(f"reservation {reservation_id} was refused ({row.reason}): nothing to commit")
            if row.status == Status.CANCELLED:
                raise FailedPrecondition(f"reservation {reservation_id} was cancelled: it cannot be committed")
            if currency is not None and currency != row.currency:
                raise InvalidArgument(f"reservation {reservation_id} is in {row.currency}, not {currency}")
            if amount_minor is not None and amount_minor > row.amount_minor:
                raise InvalidArgument(
                    f"cannot commit {amount_minor}: reservation {reservation_id} holds {row.amount_minor}"
                )
            target = row.amount_minor if amount_minor is None else amount_minor
            if row.status == Status.COMMITTED:
                if row.committed_minor != target:
                    raise AlreadyExists(
                        f"reservation {reservation_id} was committed for {row.committed_minor}, not {target}"
                    )
                return CommitOutcome(
                    row.id, row.committed_minor, row.amount_minor - row.committed_minor, row.currency, row.resolved_at
                )
            at = now()
            released = row.amount_minor - target
            await conn.execute(
                update(reservations)
                .where(reservations.c.id == reservation_id)
                .values(status=Status.COMMITTED, committed_minor=target, resolved_at=at)
            )
            await self._move(
                conn,
                kind=Kind.COMMIT,
                reservation_id=reservation_id,
                amount_minor=target,
                released_minor=released,
                currency=row.currency,
                reference=row.reference,
                at=at,
                available=released,
                reserved=-row.amount_minor,
                committed=target,
            )
        return CommitOutcome(reservation_id, target, released, row.currency, at)

    async def cancel(self, reservation_id: uuid.UUID) -> CancelOutcome:
        async with self.engine.begin() as conn:
            await self._lock_account(conn)
            row = (await conn.execute(select(reservations).where(reservations.c.id == reservation_id))).one_or_none()
            if row is None:
                raise NotFound(f"no reservation {reservation_id}")
            if row.status == Status.COMMITTED:
                raise FailedPrecondition(f"reservation {reservation_id} was committed: it cannot be cancelled")
            if row.status == Status.REFUSED:
                return CancelOutcome(row.id, Status.REFUSED, 0, row.currency, row.reserved_at)
            if row.status == Status.CANCELLED:
                return CancelOutcome(row.id, Status.CANCELLED, row.amount_minor, row.currency, row.resolved_at)
            at = now()
            await conn.execute(
                update(reservations)
                .where(reservations.c.id == reservation_id)
                .values(status=Status.CANCELLED, resolved_at=at)
            )
            await self._move(
                conn,
                kind=Kind.CANCEL,
                reservation_id=reservation_id,
                amount_minor=row.amount_minor,
                currency=row.currency,
                reference=row.reference,
                at=at,
                available=row.amount_minor,
                reserved=-row.amount_minor,
            )
        return CancelOutcome(reservation_id, Status.CANCELLED, row.amount_minor, row.currency, at)

    async def deposit(self, amount_minor: int, reference: str) -> Movement:
        """Funds arriving (the government's budget): + available, one deposit movement."""
        check_amount(amount_minor, "--amount-minor")
        check_text(reference, "--reference", MAX_REFERENCE)
        async with self.engine.begin() as conn:
            funds = await self._lock_account(conn)
            if funds.available_minor + funds.reserved_minor + funds.committed_minor + amount_minor > MAX_AMOUNT:
                raise InvalidArgument("the deposit would take the treasury past the largest amount it can hold")
            return await self._move(
                conn,
                kind=Kind.DEPOSIT,
                reservation_id=None,
                amount_minor=amount_minor,
                currency=funds.currency,
                reference=reference,
                at=now(),
                available=amount_minor,
            )

    async def statement(self, after: int, limit: int) -> tuple[list[Movement], bool]:
        """Up to `limit` movements after cursor `after`, oldest first, and whether more follow."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(movements).where(movements.c.seq > after).order_by(movements.c.seq).limit(limit + 1)
                )
            ).all()
        page = [
            Movement(
                r.seq,
                r.id,
                r.reservation_id,
                Kind(r.kind),
                r.amount_minor,
                r.released_minor,
                r.currency,
                r.reference,
                r.at,
            )
            for r in rows[:limit]
        ]
        return page, len(rows) > limit
