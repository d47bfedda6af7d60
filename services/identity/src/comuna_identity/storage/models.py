"""Identity's tables: the territory register, the census (keyed hashes only), who may act where
(role assignments) and the Keycloak accounts linked to census records (enrolment)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    column,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_identity.vocabulary import TerritoryKind, TerritoryStatus
from comuna_platform.auth.roles import Role
from comuna_platform.vocabulary import one_of

# Stands for "no consultation" in the uniqueness of live assignments (NULLs never collide).
NO_CONSULTATION = "00000000-0000-0000-0000-000000000000"


class Base(DeclarativeBase):
    pass


# --- territory register (REGISTER) -------------------------------------------------------------
class Territory(Base):
    """A unit's identity: a stable id and a human code, both immutable. What it is called, what it
    is and where it sits change over time and live in its versions."""

    __tablename__ = "territories"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TerritoryVersion(Base):
    """One period of a unit: in force on day d when valid_from <= d < valid_until (or open-ended).
    A unit's versions never overlap (exclusion constraint over the date ranges, btree_gist)."""

    __tablename__ = "territory_versions"
    __table_args__ = (
        CheckConstraint(one_of("kind", TerritoryKind), name="ck_territory_versions_kind"),
        CheckConstraint(one_of("status", TerritoryStatus), name="ck_territory_versions_status"),
        # Only the country root has no parent.
        CheckConstraint(f"(parent_id IS NULL) = (kind = '{TerritoryKind.COUNTRY}')", name="ck_territory_versions_root"),
        CheckConstraint("parent_id IS NULL OR parent_id <> territory_id", name="ck_territory_versions_not_own_parent"),
        CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_territory_versions_validity"),
        ExcludeConstraint(
            (column("territory_id"), "="),
            (text("daterange(valid_from, valid_until)"), "&&"),
            name="ex_territory_versions_overlap",
            using="gist",
        ),
        Index("ix_territory_versions_parent", "parent_id", "valid_from"),
        UniqueConstraint("territory_id", "valid_from", name="uq_territory_versions_start"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    territory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("territories.id"))
    status: Mapped[str] = mapped_column(String(16), server_default=TerritoryStatus.ACTIVE.value)


# --- end territory register ---------------------------------------------------------------------


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
