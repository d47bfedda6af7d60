"""Consultations' tables.

Ballot secrecy is a property of the schema, not of the code that happens to write it:

* `participations` records THAT a voter took part (their per-consultation roll entry key),
  and its primary key is the one-person-one-vote guarantee.
* `ballots` records WHAT was chosen, with no column that points back to a voter: no voter
  reference, no timestamp (a time would let anyone re-link a ballot to a participation written
  in the same instant), and a random (uuid4, not time-ordered uuid7) id.

The two rows are written by a group commit (voting/group_commit.py): one transaction per batch
of ballots from many voters, the ballots shuffled within it, so `xmin` and heap order link a
ballot only to its batch, never to one participation.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from comuna_consultations.vocabulary import (
    BallotChannel,
    ConsultationStatus,
    HoldKind,
    ParticipationChannel,
    ProposalCategory,
    RollLoadStatus,
    TableKind,
)
from comuna_platform.vocabulary import one_of


class Base(DeclarativeBase):
    pass


SCHEDULE_ORDER = (
    "assemblies_open_at < candidates_close_at AND candidates_close_at <= roll_cutoff_at"
    " AND roll_cutoff_at < voting_opens_at AND voting_opens_at < voting_closes_at"
    " AND voting_closes_at <= certification_opens_at"
)


class Consultation(Base):
    __tablename__ = "consultations"
    __table_args__ = (
        CheckConstraint(one_of("status", ConsultationStatus), name="ck_consultations_status"),
        CheckConstraint("code ~ '^[0-9]{4}-Q[1-4]$'", name="ck_consultations_code"),
        # `domain.phases.Schedule.is_ordered`, kept by the database too (opening and amendments).
        CheckConstraint(SCHEDULE_ORDER, name="ck_consultations_schedule"),
        CheckConstraint("max_candidates >= 1", name="ck_consultations_max_candidates"),
        CheckConstraint("funds_per_commune > 0", name="ck_consultations_funds"),
        CheckConstraint("funds_currency ~ '^[A-Z]{3}$'", name="ck_consultations_currency"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    # The published schedule (`domain.phases.Schedule`): the phases follow it on the server
    # clock; an operator moves it only by a recorded amendment (`schedule_amendments`).
    assemblies_open_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    candidates_close_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    roll_cutoff_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    voting_opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    voting_closes_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    certification_opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The declared rules of prioritisation: at most this many candidates per commune, each
    # costing at most the funds announced for the cycle per commune (minor units).
    max_candidates: Mapped[int] = mapped_column(Integer, server_default="10")
    funds_per_commune: Mapped[int] = mapped_column(BigInteger, server_default="1000000")
    funds_currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    commune_count: Mapped[int] = mapped_column(Integer)
    voting_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    certified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ConsultationCommune(Base):
    """The communes taking part, copied from identity when the consultation opens.

    A snapshot: territory codes checked against tokens, and the results, stay as they were
    on opening day even if the territory register changes later.
    """

    __tablename__ = "consultation_communes"
    __table_args__ = (UniqueConstraint("consultation_id", "code", name="uq_consultation_communes_code"),)

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_consultation_communes_consultation"), primary_key=True
    )
    commune_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_candidates_commune",
        ),
        # The assembly's order of priority is a ranking: no two candidates share a place.
        UniqueConstraint("consultation_id", "commune_id", "assembly_priority", name="uq_candidates_priority"),
        # Target of the ballots' foreign key: a ballot's candidate must belong to its commune.
        UniqueConstraint("consultation_id", "commune_id", "id", name="uq_candidates_commune_id"),
        CheckConstraint("assembly_priority >= 1", name="ck_candidates_priority"),
        # NOT VALID in migration 0005: candidates recorded before it have no category or cost.
        CheckConstraint("category IS NOT NULL AND estimated_cost IS NOT NULL", name="ck_candidates_costed"),
        CheckConstraint(one_of("category", ProposalCategory), name="ck_candidates_category"),
        CheckConstraint("estimated_cost > 0", name="ck_candidates_cost"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_candidates_currency"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    assembly_priority: Mapped[int] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(32))
    # Integer minor units (cents) of `currency`.
    estimated_cost: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), server_default="USD")
    # Set when the candidate came from the commune's prioritisation of its proposals.
    proposal_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("proposals.id", name="fk_candidates_proposal"))
    proposing_council_id: Mapped[uuid.UUID | None] = mapped_column()
    # The registration time (the results' tie-break: earlier registration first).
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# --- PHASES (issue 8): schedule amendments, commune holds, assemblies, proposals, prioritisation ---


class ScheduleAmendment(Base):
    """An operator's recorded change of the published schedule: what moved, who, when, why."""

    __tablename__ = "schedule_amendments"
    __table_args__ = (Index("ix_schedule_amendments_consultation", "consultation_id", "amended_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_schedule_amendments_consultation")
    )
    # {"voting_opens_at": ["<before>", "<after>"], ...}: only the dates that moved.
    changes: Mapped[dict[str, list[str]]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(Text)
    amended_by: Mapped[str] = mapped_column(String(255))
    amended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CommuneHold(Base):
    """A commune excluded from the vote or postponed to its own window, by a national operator
    before its voting opened. At most one per commune and consultation."""

    __tablename__ = "commune_holds"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_commune_holds_commune",
        ),
        CheckConstraint(one_of("kind", HoldKind), name="ck_commune_holds_kind"),
        CheckConstraint(
            "(kind = 'postponed') = (voting_opens_at IS NOT NULL AND voting_closes_at IS NOT NULL)"
            " AND (voting_opens_at IS NULL OR voting_opens_at < voting_closes_at)",
            name="ck_commune_holds_window",
        ),
        CheckConstraint("length(reason) > 0", name="ck_commune_holds_reason"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    commune_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    voting_opens_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    voting_closes_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text)
    held_by: Mapped[str] = mapped_column(String(255))
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AssemblySession(Base):
    """A session of a commune's assembly (or of one of its councils feeding it)."""

    __tablename__ = "assembly_sessions"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_assembly_sessions_commune",
        ),
        CheckConstraint("attendance >= 0", name="ck_assembly_sessions_attendance"),
        CheckConstraint("minutes_sha256 ~ '^[0-9a-f]{64}$'", name="ck_assembly_sessions_sha256"),
        Index("ix_assembly_sessions_commune", "consultation_id", "commune_id", "held_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    # NULL: the commune's own assembly; else the council (identity's territory id) that met.
    council_id: Mapped[uuid.UUID | None] = mapped_column()
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    place: Mapped[str] = mapped_column(String(200))
    attendance: Mapped[int] = mapped_column(Integer)
    minutes: Mapped[str] = mapped_column(Text)
    # SHA-256 (lowercase hex) of the signed minutes' document kept outside the service.
    minutes_sha256: Mapped[str | None] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Proposal(Base):
    """A proposal debated in an assembly session: what a commune might ask to fund."""

    __tablename__ = "proposals"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_proposals_commune",
        ),
        CheckConstraint(one_of("category", ProposalCategory), name="ck_proposals_category"),
        CheckConstraint("estimated_cost > 0", name="ck_proposals_cost"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_proposals_currency"),
        Index("ix_proposals_commune", "consultation_id", "commune_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("assembly_sessions.id", name="fk_proposals_session", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(200))
    problem: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    estimated_cost: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    proposing_council_id: Mapped[uuid.UUID] = mapped_column()


class Prioritisation(Base):
    """Who recorded a commune's ordered candidate list from its proposals, and when (the list
    itself is the commune's candidates, each pointing at its proposal)."""

    __tablename__ = "prioritisations"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_prioritisations_commune",
        ),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    commune_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    proposal_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    recorded_by: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- end PHASES ---


class VotingCentre(Base):
    """A place where people vote in one consultation (a school, a communal house)."""

    __tablename__ = "voting_centres"
    __table_args__ = (UniqueConstraint("consultation_id", "code", name="uq_voting_centres_code"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_voting_centres_consultation")
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, server_default="")


class VotingCentreCommune(Base):
    """A commune a centre serves (a centre may serve several)."""

    __tablename__ = "voting_centre_communes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id"],
            ["consultation_communes.consultation_id", "consultation_communes.commune_id"],
            name="fk_voting_centre_communes_commune",
        ),
    )

    centre_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("voting_centres.id", name="fk_voting_centre_communes_centre", ondelete="CASCADE"),
        primary_key=True,
    )
    commune_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()


class VotingTable(Base):
    """A table of a centre, serving one of the centre's communes. Its `code` is what a table
    officer's role assignment names (`table_code`), unique within the consultation."""

    __tablename__ = "voting_tables"
    __table_args__ = (
        UniqueConstraint("consultation_id", "code", name="uq_voting_tables_code"),
        # Targets of the participations' and ballots' foreign keys: a row's table serves its commune.
        UniqueConstraint("consultation_id", "commune_id", "id", name="uq_voting_tables_commune_id"),
        ForeignKeyConstraint(
            ["centre_id", "commune_id"],
            ["voting_centre_communes.centre_id", "voting_centre_communes.commune_id"],
            name="fk_voting_tables_centre_commune",
        ),
        CheckConstraint(one_of("kind", TableKind), name="ck_voting_tables_kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    centre_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    code: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))


class Participation(Base):
    """That a voter took part, and where; the primary key makes a second participation
    impossible, whatever the channel."""

    __tablename__ = "participations"
    __table_args__ = (
        CheckConstraint(one_of("channel", ParticipationChannel), name="ck_participations_channel"),
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_participations_table",
        ),
        # NOT NULL for every row written since migration 0004 (a NOT VALID check there: rows
        # from before it may lack a commune when their roll entry is gone).
        CheckConstraint("commune_id IS NOT NULL", name="ck_participations_commune"),
        # BALLOTS (0007): online has no table, every other channel names its table.
        CheckConstraint("(channel = 'online') = (table_id IS NULL)", name="ck_participations_table"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_participations_consultation"), primary_key=True
    )
    # The voter's pseudonym: HMAC(consultations' secret, roll entry key) in hex (voting/pseudonyms.py),
    # which neither identity nor a reader of this database can compute from a document.
    voter_ref: Mapped[str] = mapped_column(String(128), primary_key=True)
    # The commune of the voter's roll entry (turnout per commune is a count of these).
    commune_id: Mapped[uuid.UUID | None] = mapped_column()
    channel: Mapped[str] = mapped_column(String(8))
    table_id: Mapped[uuid.UUID | None] = mapped_column()


class ParticipationConflict(Base):
    """A second participation of one person, refused by the primary key of `participations` (or,
    from an offline table, recorded on its device before the sync found the first one).

    Never silently dropped: results report conflicts per commune, and `ballot_counted` says
    whether a ballot of the second attempt is nevertheless in the count (an offline table's
    ballots cannot be told apart from each other, so they all stay in its count)."""

    __tablename__ = "participation_conflicts"
    __table_args__ = (
        CheckConstraint(one_of("channel", ParticipationChannel), name="ck_participation_conflicts_channel"),
        Index("ix_participation_conflicts_commune", "consultation_id", "commune_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_participation_conflicts_consultation")
    )
    commune_id: Mapped[uuid.UUID] = mapped_column()
    voter_ref: Mapped[str] = mapped_column(String(128))
    # The refused (second) attempt's channel and table.
    channel: Mapped[str] = mapped_column(String(8))
    table_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("voting_tables.id", name="fk_participation_conflicts_table")
    )
    ballot_counted: Mapped[bool] = mapped_column(server_default="false")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Ballot(Base):
    """What was chosen, by nobody in particular. See the module docstring."""

    __tablename__ = "ballots"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_ballots_candidate",
        ),
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_ballots_table",
        ),
        CheckConstraint(one_of("channel", BallotChannel), name="ck_ballots_channel"),
        # BALLOTS (0007): online has no table, a table or offline ballot names its table.
        CheckConstraint("(channel = 'online') = (table_id IS NULL)", name="ck_ballots_table"),
        # Counting at certification is an index-only scan of this index.
        Index("ix_ballots_tally", "consultation_id", "commune_id", "candidate_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    # NULL: a blank ballot (no candidate chosen). Null (spoiled) votes exist only on paper.
    candidate_id: Mapped[uuid.UUID | None] = mapped_column()
    channel: Mapped[str] = mapped_column(String(8))
    table_id: Mapped[uuid.UUID | None] = mapped_column()


class OfflineSync(Base):
    """One batch an offline table's device synced (owner: the offline slice).

    `batch_id` is chosen by the device: a batch sent again (the answer was lost) is found here
    and answered with the stored `response`, writing nothing new. The counts are the batch's
    own sizes, kept so that a later batch can be checked (ballots never above check-ins); they
    are never shown by any API before the commune's voting closes."""

    __tablename__ = "offline_syncs"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_offline_syncs_table",
        ),
        CheckConstraint("checkins >= 0 AND ballots >= 0 AND null_votes >= 0", name="ck_offline_syncs_counts"),
        Index("ix_offline_syncs_table", "consultation_id", "table_id"),
    )

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    table_id: Mapped[uuid.UUID] = mapped_column()
    # SHA-256 of the batch as MACed: the same id with other content is refused, not replayed.
    digest: Mapped[bytes] = mapped_column(LargeBinary(32))
    checkins: Mapped[int] = mapped_column(Integer)
    ballots: Mapped[int] = mapped_column(Integer)
    # Spoiled votes of a paper-mode device's tally (ballot rows exist only for candidates and blanks).
    null_votes: Mapped[int] = mapped_column(Integer, server_default="0")
    response: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Result(Base):
    """Certified count and rank of each candidate, written once when the consultation is certified."""

    __tablename__ = "results"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_results_candidate",
        ),
        UniqueConstraint("consultation_id", "commune_id", "rank", name="uq_results_rank"),
        CheckConstraint("votes >= 0", name="ck_results_votes"),
        CheckConstraint("rank >= 1", name="ck_results_rank"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    candidate_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    commune_id: Mapped[uuid.UUID] = mapped_column()
    votes: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int] = mapped_column(Integer)


class RollLoad(Base):
    """The voter roll this consultation asked identity to freeze, and how far it was loaded.

    `voter_key` (t_c) is what turns a document into its entry key (`multiply(t_c, P(doc))`);
    with it and the roll anyone can test a guessed document number against this consultation's
    roll, so it stays in this database and the processes of this service.
    """

    __tablename__ = "roll_loads"
    __table_args__ = (
        CheckConstraint(one_of("status", RollLoadStatus), name="ck_roll_loads_status"),
        CheckConstraint("loaded_seq >= 0", name="ck_roll_loads_seq"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("consultations.id", name="fk_roll_loads_consultation"), primary_key=True
    )
    cutoff: Mapped[date] = mapped_column(Date)
    voting_day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    # Identity's published size and digest, once it froze the roll.
    expected_count: Mapped[int | None] = mapped_column(BigInteger)
    expected_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    voter_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    login_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The last seq stored in `roll_entries`, written with each chunk: a restart resumes after it.
    loaded_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    error: Mapped[str | None] = mapped_column(String(500))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RollEntry(Base):
    """One voter of the roll as identity froze it: who may vote where, by entry key only."""

    __tablename__ = "roll_entries"
    __table_args__ = (
        # BALLOTS (0007): the online channel finds a signed-in resident's entry by login key.
        Index("ix_roll_entries_login", "consultation_id", "login_key", postgresql_where="login_key IS NOT NULL"),
    )

    consultation_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # multiply(t_c, document_point(doc)): the key a table computes from the document shown.
    voter_key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    # HMAC(L_c, Keycloak subject) for a resident with a linked account, else NULL.
    login_key: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    commune_id: Mapped[uuid.UUID] = mapped_column()
    council_id: Mapped[uuid.UUID] = mapped_column()


# --- TABLES (issue 8): paper tables' tally sheets -------------------------------------------


# A paper table's recorded check-ins are counted when its sheet comes in (partial: no cost on
# the other channels' participations).
Index(
    "ix_participations_paper_table",
    Participation.table_id,
    postgresql_where=text("channel = 'paper'"),
)


class TallySheet(Base):
    """A paper table's count at close, as its officer submitted it; final once a SECOND officer
    of the same table confirmed it. An unconfirmed sheet is replaced by a corrected one (a new
    id, so a confirmation names exactly the sheet its officer read)."""

    __tablename__ = "tally_sheets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "table_id"],
            ["voting_tables.consultation_id", "voting_tables.commune_id", "voting_tables.id"],
            name="fk_tally_sheets_table",
        ),
        # One sheet per table: a correction replaces the unconfirmed one, a confirmed one is final.
        UniqueConstraint("table_id", name="uq_tally_sheets_table"),
        UniqueConstraint("consultation_id", "commune_id", "id", name="uq_tally_sheets_commune_id"),
        CheckConstraint("blank >= 0 AND null_votes >= 0 AND checked_in >= 0", name="ck_tally_sheets_counts"),
        CheckConstraint("confirmed_by IS NULL OR confirmed_by <> submitted_by", name="ck_tally_sheets_two_officers"),
        CheckConstraint("(confirmed_by IS NULL) = (confirmed_at IS NULL)", name="ck_tally_sheets_confirmation"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    table_id: Mapped[uuid.UUID] = mapped_column()
    blank: Mapped[int] = mapped_column(BigInteger)
    # Spoiled ballots ("nulos"); `null` itself is an SQL keyword.
    null_votes: Mapped[int] = mapped_column(BigInteger)
    checked_in: Mapped[int] = mapped_column(BigInteger)
    # SHA-256 of the scan or photo of the paper sheet (the file itself is kept outside).
    scan_sha256: Mapped[bytes] = mapped_column(LargeBinary(32))
    # Keycloak subjects of the two officers (officers act in public; they are not voters here).
    submitted_by: Mapped[str] = mapped_column(String(64))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class TallySheetVote(Base):
    """Votes for one candidate of the table's commune on one tally sheet (every candidate of the
    commune has a row, 0 when the sheet gave none)."""

    __tablename__ = "tally_sheet_votes"
    __table_args__ = (
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "sheet_id"],
            ["tally_sheets.consultation_id", "tally_sheets.commune_id", "tally_sheets.id"],
            name="fk_tally_sheet_votes_sheet",
            ondelete="CASCADE",
        ),
        # The candidate belongs to the sheet's commune, by the schema.
        ForeignKeyConstraint(
            ["consultation_id", "commune_id", "candidate_id"],
            ["candidates.consultation_id", "candidates.commune_id", "candidates.id"],
            name="fk_tally_sheet_votes_candidate",
        ),
        CheckConstraint("votes >= 0", name="ck_tally_sheet_votes_votes"),
    )

    sheet_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    candidate_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    consultation_id: Mapped[uuid.UUID] = mapped_column()
    commune_id: Mapped[uuid.UUID] = mapped_column()
    votes: Mapped[int] = mapped_column(BigInteger)
