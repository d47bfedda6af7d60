"""Identity's tables: the territory register and the census (keyed hashes only)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, ForeignKey, LargeBinary, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.vocabulary import one_of


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
