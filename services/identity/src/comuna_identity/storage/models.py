"""Identity's tables: the territory register, the census (keyed hashes only), who may act where
(role assignments) and the Keycloak accounts linked to census records (enrolment)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_identity.vocabulary import RollStatus, RollTerritoryKind, TerritoryKind
from comuna_platform.auth.roles import Role
from comuna_platform.vocabulary import one_of

# Stands for "no consultation" in the uniqueness of live assignments (NULLs never collide).
NO_CONSULTATION = "00000000-0000-0000-0000-000000000000"


class Base(DeclarativeBase):
    pass


class Territory(Base):
    __tablename__ = "territories"
    __table_args__ = (
        CheckConstraint(one_of("kind", TerritoryKind), name="ck_territories_kind"),
        # Only the country root has no parent.
        CheckConstraint(f"(parent_id IS NULL) = (kind = '{TerritoryKind.COUNTRY}')", name="ck_territories_root"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("territories.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Resident(Base):
    __tablename__ = "residents"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # HMAC-SHA256 of the normalised national id number under the census key; the number
    # itself is never stored. Unique: one person, one census entry.
    national_id_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    birth_date: Mapped[date] = mapped_column(Date)
    council_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"), index=True)
    # The council's commune, kept beside it so eligibility is one indexed lookup.
    commune_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RoleAssignment(Base):
    """One role held by one person (Keycloak `sub`) in one territory (and below), for a period."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        CheckConstraint(one_of("role", Role), name="ck_role_assignments_role"),
        # A table officer, and only a table officer, acts at one table of one consultation.
        CheckConstraint(
            f"((role = '{Role.TABLE_OFFICER}') = (consultation_id IS NOT NULL))"
            f" AND ((role = '{Role.TABLE_OFFICER}') = (table_code IS NOT NULL))",
            name="ck_role_assignments_table",
        ),
        CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_role_assignments_validity"),
        CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="ck_role_assignments_revoked"),
        # The same live assignment cannot be granted twice; a revoked one may be granted again.
        Index(
            "uq_role_assignments_live",
            "subject",
            "role",
            "territory_id",
            text(f"coalesce(consultation_id, '{NO_CONSULTATION}'::uuid)"),
            text("coalesce(table_code, '')"),
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    subject: Mapped[str] = mapped_column(String(255), index=True)
    role: Mapped[str] = mapped_column(String(32))
    territory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"), index=True)
    consultation_id: Mapped[uuid.UUID | None] = mapped_column()
    table_code: Mapped[str | None] = mapped_column(String(64))
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The granter's subject, or "bootstrap" for the seed (`keycloak sync`).
    granted_by: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    revoke_reason: Mapped[str | None] = mapped_column(String(500))


class ResidentAccount(Base):
    """A Keycloak account linked to a census record: one account per resident, one resident per account."""

    __tablename__ = "resident_accounts"

    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("residents.id"), unique=True)
    linked_by: Mapped[str] = mapped_column(String(255))
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EnrolmentCode(Base):
    """A one-time code a registrar handed to a resident; only its SHA-256 is kept."""

    __tablename__ = "enrolment_codes"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="ck_enrolment_codes_attempts"),
        # One live code per resident (not redeemed, not burnt); reissuing burns the old one.
        Index(
            "uq_enrolment_codes_live",
            "resident_id",
            unique=True,
            postgresql_where=text("redeemed_at IS NULL AND burnt_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("residents.id"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    issued_by: Mapped[str] = mapped_column(String(255))
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    redeemed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the code stopped being usable without a redemption: replaced, or too many failed attempts.
    burnt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")


# --- voter rolls (ROLL) -------------------------------------------------------------------


class VoterRoll(Base):
    """The roll of one consultation: its terms, and once frozen its size and digest (docs/voter-roll.md)."""

    __tablename__ = "voter_rolls"
    __table_args__ = (
        CheckConstraint(one_of("status", RollStatus), name="ck_voter_rolls_status"),
        CheckConstraint("cutoff <= voting_day", name="ck_voter_rolls_dates"),
        CheckConstraint(
            f"(status = '{RollStatus.FROZEN}') = (frozen_at IS NOT NULL AND digest IS NOT NULL"
            " AND entry_count IS NOT NULL)",
            name="ck_voter_rolls_frozen",
        ),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    cutoff: Mapped[date] = mapped_column(Date)
    voting_day: Mapped[date] = mapped_column(Date)
    # The participating communes, sorted: part of the terms a second FreezeRoll must repeat.
    commune_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    status: Mapped[str] = mapped_column(String(16))
    entry_count: Mapped[int | None] = mapped_column(BigInteger)
    digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    frozen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Seconds spent computing entry keys ahead, and in the freeze itself (for the operators).
    prepare_seconds: Mapped[float | None] = mapped_column(Float)
    freeze_seconds: Mapped[float | None] = mapped_column(Float)


class VoterRollKey(Base):
    """`s_c·B` of a resident for a consultation, computed ahead of the cut-off (point
    multiplication is the slow part of a freeze); the freeze computes only what is missing."""

    __tablename__ = "voter_roll_keys"

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("voter_rolls.consultation_id", ondelete="CASCADE"), primary_key=True
    )
    resident_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    voter_key: Mapped[bytes] = mapped_column(LargeBinary(32))


class VoterRollEntry(Base):
    """One voter of a frozen roll. No resident id: the entry is what consultations receives."""

    __tablename__ = "voter_roll_entries"
    __table_args__ = (UniqueConstraint("consultation_id", "voter_key", name="uq_voter_roll_entries_key"),)

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("voter_rolls.consultation_id", ondelete="CASCADE"), primary_key=True
    )
    # 1.. in voter_key order, so seq order is digest order.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    voter_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    # HMAC(L_c, Keycloak subject) for a resident with a linked account at the freeze.
    login_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    commune_id: Mapped[uuid.UUID] = mapped_column()
    council_id: Mapped[uuid.UUID] = mapped_column()


class VoterRollCount(Base):
    """Voters per commune and per council of a frozen roll (public)."""

    __tablename__ = "voter_roll_counts"
    __table_args__ = (CheckConstraint(one_of("kind", RollTerritoryKind), name="ck_voter_roll_counts_kind"),)

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("voter_rolls.consultation_id", ondelete="CASCADE"), primary_key=True
    )
    territory_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The commune of a council row; the commune itself for a commune row.
    commune_id: Mapped[uuid.UUID] = mapped_column()
    voters: Mapped[int] = mapped_column(BigInteger)
