"""Identity's tables: the territory register, the census (keyed hashes only), who may act where
(role assignments) and the Keycloak accounts linked to census records (enrolment)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    Uuid,
    column,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_identity.vocabulary import ResidentStatus, RollStatus, RollTerritoryKind, TerritoryKind, TerritoryStatus
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


# --- census (CENSUS) ---------------------------------------------------------------------------


class Resident(Base):
    """One person of the census, known only by a keyed hash of their document.

    `document_hash` is HMAC-SHA256 of `national-id:<type><number>` under key generation
    `document_key_id` (an onion when the record was re-keyed: see `domain/census_keys.py`).
    Unique on the hash value alone: two generations of one person differ, so the writers look
    a person up under every generation in use before inserting (`domain/census.py`).
    """

    __tablename__ = "residents"
    __table_args__ = (
        CheckConstraint(one_of("status", ResidentStatus), name="ck_residents_status"),
        CheckConstraint("document_key_id > 0", name="ck_residents_key_id"),
        CheckConstraint("octet_length(document_hash) = 32", name="ck_residents_hash_length"),
        CheckConstraint("roll_base IS NULL OR octet_length(roll_base) = 32", name="ck_residents_roll_base_length"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    document_key_id: Mapped[int] = mapped_column(SmallInteger, index=True)
    document_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    # B = k·P(d) (comuna_platform.voter_keys), computed at import; NULL for records migrated
    # from before roll bases existed (re-importing the person computes it).
    roll_base: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    birth_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), server_default=ResidentStatus.ACTIVE.value)
    status_since: Mapped[date] = mapped_column(Date)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ResidentResidence(Base):
    """Where a resident lives, from `valid_from` until `valid_until` (exclusive, NULL: still)."""

    __tablename__ = "resident_residences"
    __table_args__ = (
        CheckConstraint("valid_until IS NULL OR valid_until > valid_from", name="ck_resident_residences_validity"),
        # No two residences of one resident overlap (btree_gist gives uuid its `=` in GiST).
        ExcludeConstraint(
            (Column("resident_id"), "="),
            (func.daterange(Column("valid_from"), Column("valid_until")), "&&"),
            name="ex_resident_residences_overlap",
            using="gist",
        ),
        # The current residence of each resident: one at most.
        Index("uq_resident_residences_open", "resident_id", unique=True, postgresql_where=text("valid_until IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    resident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("residents.id"))
    council_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)


class CensusKey(Base):
    """A generation of the census key ring in use by this database, oldest first.

    Holds no secret: the fingerprint (HMAC of a fixed label under the key) lets every process
    check that its secret for this id is the one the records were hashed with. Writers hold a
    SHARE lock on this table while they write, so a new generation is activated only between
    writes (then every writer uses it).
    """

    __tablename__ = "census_keys"

    key_id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    fingerprint: Mapped[bytes] = mapped_column(LargeBinary(32))
    activated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- end census ---------------------------------------------------------------------------------


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


# --- audit log (AUDIT) ---------------------------------------------------------------------


class AuditLogEntry(Base):
    """One entry of the hash-chained audit log (`comuna_identity.domain.audit`, docs/audit.md).

    Append-only: the runtime role may only read and insert, and a trigger refuses UPDATE,
    DELETE and TRUNCATE for everyone (migration 0007). `seq` is assigned by `append` under an
    advisory lock, gap-free, so it has no sequence of its own.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint("seq > 0", name="ck_audit_log_seq"),
        CheckConstraint(
            "octet_length(prev_hash) = 32 AND octet_length(entry_hash) = 32"
            " AND (before_hash IS NULL OR octet_length(before_hash) = 32)"
            " AND (after_hash IS NULL OR octet_length(after_hash) = 32)",
            name="ck_audit_log_hashes",
        ),
        {"info": {"runtime_privileges": ("SELECT", "INSERT")}},
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(100))
    object_kind: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the canonical JSON of the object's state before / after; NULL for none.
    before_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    after_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The previous entry's entry_hash (32 zero bytes for seq 1), and this entry's own hash.
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


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
    # A prepare writes millions of keys, then ANALYZEs them for the freeze's joins.
    __table_args__ = ({"info": {"runtime_analyze": True}},)

    # Of an existing roll: checked once per statement by a trigger, not per row (migration 0008).
    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    resident_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    voter_key: Mapped[bytes] = mapped_column(LargeBinary(32))


class VoterRollEntry(Base):
    """One voter of a frozen roll. No resident id: the entry is what consultations receives."""

    __tablename__ = "voter_roll_entries"
    __table_args__ = (
        UniqueConstraint("consultation_id", "voter_key", name="uq_voter_roll_entries_key"),
        # The freeze ANALYZEs the entries it wrote: without statistics the digest's and every
        # stream chunk's query scanned and sorted the whole roll (160 ms a chunk instead of 19).
        {"info": {"runtime_analyze": True}},
    )

    # Of an existing roll: checked once per statement by a trigger, not per row (migration 0008).
    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
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
