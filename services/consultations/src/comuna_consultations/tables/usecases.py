"""Where and how people vote: voting centres and tables, check-ins, paper tables' tally sheets.

* Centres and tables are imported (CSV or JSON, all or nothing) or added one at a time, only
  before voting opens, by the national operator or a state/municipal official over every
  commune the rows name. Re-importing the same rows changes nothing.
* An officer acts only at their own table (`lookup.require_table_officer`).
* A check-in by document answers only "may vote" or "may not", never why: not on the roll,
  under age, another commune and already voted are one answer. The document is turned into its
  roll entry key here and forgotten: never stored, never logged.
* A paper table records check-ins (one participation per person across every channel; a second
  one is refused and kept as a conflict) and, once its commune's voting closed, its tally
  sheet, which a SECOND officer of the same table confirms. Nothing here counts participations
  before that commune's voting closed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from comuna_consultations.domain.consultations import existing, not_found
from comuna_consultations.domain.phases import VotingWindow
from comuna_consultations.domain.pseudonyms import Pseudonyms
from comuna_consultations.domain.record import Choices, tally_sheet_entry
from comuna_consultations.domain.schedules import commune_window
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, TallySheet
from comuna_consultations.storage.participations import ParticipationRow, take_part
from comuna_consultations.storage.record import Record
from comuna_consultations.tables import storage
from comuna_consultations.tables.events import TallySheetConfirmed
from comuna_consultations.tables.lookup import VotingTable, existing_table, require_table_officer
from comuna_consultations.vocabulary import ConsultationStatus, ParticipationChannel, TableKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.bulk import BulkInputError, BulkRow, RowErrors
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Conflict, FailedPrecondition, Forbidden, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork
from comuna_platform.voter_keys import document_point, multiply

# Who lays out centres and tables: the national operator, or the officials over the communes.
TABLE_PLANNERS = (Role.OPERATOR, Role.REGIONAL_OFFICIAL, Role.MUNICIPAL_OFFICIAL)

COLUMNS = ("centre_code", "centre_name", "address", "commune_code", "table_code", "table_kind")
REQUIRED = ("centre_code", "centre_name", "commune_code", "table_code", "table_kind")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KINDS = {kind.value for kind in TableKind}


# --- phases -----------------------------------------------------------------------------


def _require_before_voting(consultation: Consultation, now: datetime) -> None:
    if consultation.status == ConsultationStatus.CERTIFIED or now >= consultation.voting_opens_at:
        raise FailedPrecondition("centres and tables are laid out only before voting opens", code="voting_already_open")


def _voting(consultation: Consultation, window: VotingWindow | None, now: datetime) -> bool:
    """The commune votes now: inside its window on the server clock, and not certified."""
    return window is not None and window.accepts_ballots(now) and consultation.status == ConsultationStatus.OPEN


def _voting_closed(consultation: Consultation, window: VotingWindow | None, now: datetime) -> bool:
    """The commune's voting is over: its window has passed (or the consultation is certified)."""
    if consultation.status == ConsultationStatus.CERTIFIED:
        return True
    return window is not None and window.closed(now)


def _require_voting(consultation: Consultation, window: VotingWindow | None, now: datetime) -> None:
    if not _voting(consultation, window, now):
        raise FailedPrecondition("this table's commune is not voting now", code="voting_not_open")


def _require_voting_closed(consultation: Consultation, window: VotingWindow | None, now: datetime) -> None:
    if not _voting_closed(consultation, window, now):
        raise FailedPrecondition("this table's commune has not closed its voting yet", code="voting_not_closed")


# --- centres and tables: import, single additions ---------------------------------------


@dataclass(frozen=True, slots=True)
class LayoutRow:
    """One line of a centres file: a table of a centre (or, from the single centre POST, only
    a commune the centre serves: `table_code` None)."""

    line: int
    centre_code: str
    centre_name: str
    address: str
    commune_code: str
    table_code: str | None
    table_kind: str | None


@dataclass
class LayoutReport:
    centres_created: int = 0
    tables_created: int = 0
    communes_added: int = 0
    unchanged: int = 0
    total: int = 0

    @property
    def changes(self) -> bool:
        return bool(self.centres_created or self.tables_created or self.communes_added)


def layout_row(row: BulkRow) -> LayoutRow:
    f = row.fields
    return LayoutRow(
        line=row.line,
        centre_code=f.get("centre_code", ""),
        centre_name=f.get("centre_name", ""),
        address=f.get("address", ""),
        commune_code=f.get("commune_code", ""),
        table_code=f.get("table_code", ""),
        table_kind=f.get("table_kind", "").lower(),
    )


async def import_layout(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    rows: AsyncIterator[BulkRow],
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> LayoutReport:
    """A file of centres and tables, all or nothing: 422 `import_invalid` listing every bad line."""
    consultation = await _consultation_for_layout(uow, consultation_id, now)
    parsed = [layout_row(row) async for row in rows]
    return await _apply_layout(uow, caller, consultation, parsed, lineages=lineages, single=False)


async def add_layout(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    rows: Sequence[LayoutRow],
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> LayoutReport:
    """One centre (with the communes it serves) or one table: the import's rules, one clear error."""
    consultation = await _consultation_for_layout(uow, consultation_id, now)
    return await _apply_layout(uow, caller, consultation, list(rows), lineages=lineages, single=True)


async def _consultation_for_layout(uow: UnitOfWork, consultation_id: uuid.UUID, now: datetime) -> Consultation:
    # FOR SHARE: start-voting (FOR UPDATE) waits for a layout being written, and vice versa.
    consultation = await repository.consultation_by_id(uow.session, consultation_id, lock="share")
    if consultation is None:
        raise not_found(consultation_id)
    _require_before_voting(consultation, now)
    return consultation


@dataclass
class _Plan:
    centres: dict[str, LayoutRow] = field(default_factory=dict)
    centre_communes: dict[tuple[str, str], int] = field(default_factory=dict)  # (centre, commune) -> line
    tables: dict[str, LayoutRow] = field(default_factory=dict)


def _check_fields(row: LayoutRow, errors: RowErrors) -> bool:
    ok = True
    codes = [("centre_code", row.centre_code), ("commune_code", row.commune_code)]
    if row.table_code is not None:
        codes.append(("table_code", row.table_code))
    for name, value in codes:
        if not value:
            errors.add(row.line, "field_missing", f"the {name} is empty", name)
            ok = False
        elif name != "commune_code" and not _CODE.match(value):
            errors.add(row.line, "code_invalid", f"the {name} must be 1-64 letters, digits, '.', '_' or '-'", name)
            ok = False
    if not row.centre_name or len(row.centre_name) > 200:
        errors.add(row.line, "field_invalid", "the centre_name must have 1-200 characters", "centre_name")
        ok = False
    if len(row.address) > 500:
        errors.add(row.line, "field_invalid", "the address has more than 500 characters", "address")
        ok = False
    if row.table_code is not None and row.table_kind not in _KINDS:
        errors.add(
            row.line, "table_kind_unknown", f"the table_kind must be one of {', '.join(sorted(_KINDS))}", "table_kind"
        )
        ok = False
    return ok


def _plan(rows: Sequence[LayoutRow], commune_ids: Mapping[str, uuid.UUID], errors: RowErrors) -> _Plan:
    """The file's own consistency: known communes, one meaning per centre code and table code."""
    plan = _Plan()
    for row in rows:
        if not _check_fields(row, errors):
            continue
        if row.commune_code not in commune_ids:
            errors.add(
                row.line, "commune_unknown", "the commune_code is not a commune of this consultation", "commune_code"
            )
            continue
        centre = plan.centres.setdefault(row.centre_code, row)
        if (centre.centre_name, centre.address) != (row.centre_name, row.address):
            errors.add(
                row.line,
                "centre_differs",
                f"centre {row.centre_code} has another name or address on line {centre.line}",
            )
            continue
        plan.centre_communes.setdefault((row.centre_code, row.commune_code), row.line)
        if row.table_code is None:
            continue
        table = plan.tables.setdefault(row.table_code, row)
        if (table.centre_code, table.commune_code, table.table_kind) != (
            row.centre_code,
            row.commune_code,
            row.table_kind,
        ):
            errors.add(
                row.line,
                "table_code_reused",
                f"table {row.table_code} is on line {table.line} with another centre, commune or kind",
                "table_code",
            )
    return plan


async def _apply_layout(
    uow: UnitOfWork,
    caller: Caller,
    consultation: Consultation,
    rows: list[LayoutRow],
    *,
    lineages: TerritoryLineages,
    single: bool,
) -> LayoutReport:
    session = uow.session
    consultation_id = consultation.id
    if not rows and not single:
        raise InvalidInput("the file has no rows", code="import_empty")
    commune_ids = await storage.commune_ids_by_code(session, consultation_id)
    errors = RowErrors()
    plan = _plan(rows, commune_ids, errors)
    _raise(errors, single)
    # Where: every commune the rows name, in the caller's scope (the commune as snapshotted).
    for code in sorted({commune for _, commune in plan.centre_communes}):
        caller.require(TABLE_PLANNERS, await lineages.of(code))

    existing_centres = await storage.centres_by_code(session, consultation_id, plan.centres)
    existing_tables = await storage.tables_by_code(session, consultation_id, list(plan.tables))
    served = await storage.communes_of_centres(session, [c.id for c in existing_centres.values()])
    for code, row in plan.centres.items():
        known = existing_centres.get(code)
        if known is not None and (known.name, known.address) != (row.centre_name, row.address):
            errors.add(row.line, "centre_differs", f"centre {code} exists with another name or address")
    for code, row in plan.tables.items():
        table = existing_tables.get(code)
        if table is not None and (table.centre_code, table.commune_code, table.kind) != (
            row.centre_code,
            row.commune_code,
            row.table_kind,
        ):
            errors.add(
                row.line,
                "table_code_reused",
                f"table {code} exists with another centre, commune or kind",
                "table_code",
            )
    _raise(errors, single)

    report = LayoutReport(total=len(rows))
    centre_ids = {code: c.id for code, c in existing_centres.items()}
    new_centres = []
    for code, row in plan.centres.items():
        if code not in centre_ids:
            centre_ids[code] = new_id()
            new_centres.append(
                {
                    "id": centre_ids[code],
                    "consultation_id": consultation_id,
                    "code": code,
                    "name": row.centre_name,
                    "address": row.address,
                }
            )
    new_served = [
        {"centre_id": centre_ids[centre], "commune_id": commune_ids[commune], "consultation_id": consultation_id}
        for centre, commune in plan.centre_communes
        if (centre_ids[centre], commune_ids[commune]) not in served
    ]
    new_tables = [
        {
            "id": new_id(),
            "consultation_id": consultation_id,
            "centre_id": centre_ids[row.centre_code],
            "commune_id": commune_ids[row.commune_code],
            "code": code,
            "kind": row.table_kind,
        }
        for code, row in plan.tables.items()
        if code not in existing_tables
    ]
    await storage.insert_centres(session, new_centres)
    await storage.insert_centre_communes(session, new_served)
    await storage.insert_tables(session, new_tables)
    report.centres_created = len(new_centres)
    report.communes_added = len(new_served)
    report.tables_created = len(new_tables)
    if single and not report.changes:
        what = f"table {rows[0].table_code}" if rows[0].table_code else f"centre {rows[0].centre_code}"
        raise Conflict(f"{what} already exists as given", code="already_exists")
    report.unchanged = sum(1 for row in rows if _unchanged(row, existing_tables, centre_ids, commune_ids, served))
    return report


def _unchanged(
    row: LayoutRow,
    existing_tables: Mapping[str, storage.TableRow],
    centre_ids: Mapping[str, uuid.UUID],
    commune_ids: Mapping[str, uuid.UUID],
    served: set[tuple[uuid.UUID, uuid.UUID]],
) -> bool:
    """Whether the row was already there before this request (its table, or for a centre-only
    row the commune it serves)."""
    if row.table_code is not None:
        return row.table_code in existing_tables
    return (centre_ids[row.centre_code], commune_ids[row.commune_code]) in served


def _raise(errors: RowErrors, single: bool) -> None:
    """A file: every bad line at once. A single addition: its one error, as a plain problem."""
    try:
        errors.raise_if_any()
    except BulkInputError as refused:
        if not single:
            raise
        first = refused.errors[0]
        cls = Conflict if first.code in ("centre_differs", "table_code_reused") else InvalidInput
        raise cls(first.detail, code=first.code, field=first.field) from None


T = TypeVar("T")


# --- reads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    more: bool


async def list_centres(
    uow: UnitOfWork, consultation_id: uuid.UUID, *, after_code: str, limit: int
) -> Page[storage.CentreListing]:
    await existing(uow, consultation_id)
    rows = await storage.list_centres(uow.session, consultation_id, after_code=after_code, limit=limit + 1)
    return Page(rows[:limit], len(rows) > limit)


async def list_tables(
    uow: UnitOfWork,
    consultation_id: uuid.UUID,
    *,
    after_code: str,
    limit: int,
    commune_id: uuid.UUID | None,
    centre_code: str | None,
) -> Page[storage.TableRow]:
    await existing(uow, consultation_id)
    rows = await storage.list_tables(
        uow.session,
        consultation_id,
        after_code=after_code,
        limit=limit + 1,
        commune_id=commune_id,
        centre_code=centre_code,
    )
    return Page(rows[:limit], len(rows) > limit)


async def get_table(uow: UnitOfWork, consultation_id: uuid.UUID, code: str) -> VotingTable:
    await existing(uow, consultation_id)
    return await existing_table(uow.session, consultation_id, code)


# --- check-ins --------------------------------------------------------------------------


def not_on_table_roll() -> Forbidden:
    # One answer for every reason (not registered, under age, another commune, moved).
    return Forbidden("the person is not on this table's roll", code="voter_not_on_roll")


def wrong_kind(table: VotingTable, wanted: TableKind) -> FailedPrecondition:
    return FailedPrecondition(
        f"table {table.code} is an {table.kind} table, not a {wanted} one", code="wrong_table_kind"
    )


@dataclass(frozen=True, slots=True)
class _AtTable:
    consultation: Consultation
    table: VotingTable
    window: VotingWindow | None


async def _at_table(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    kind: TableKind,
    *,
    lineages: TerritoryLineages,
) -> _AtTable:
    consultation = await existing(uow, consultation_id)
    table = await existing_table(uow.session, consultation_id, table_code)
    await require_table_officer(caller, table, lineages)
    if table.kind is not kind:
        raise wrong_kind(table, kind)
    return _AtTable(consultation, table, await commune_window(uow.session, consultation, table.commune_id))


async def _entry_key(uow: UnitOfWork, consultation_id: uuid.UUID, document: str) -> bytes:
    """The document's roll entry key; the document itself goes no further than this function."""
    voter_key = await storage.verified_voter_key(uow.session, consultation_id)
    if voter_key is None:
        raise FailedPrecondition("this consultation's roll is not loaded and verified", code="roll_not_verified")
    return multiply(voter_key, document_point(normalise_document(document)))


async def check_in(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    document: str,
    *,
    lineages: TerritoryLineages,
    now: datetime,
    pseudonyms: Pseudonyms,
) -> bool:
    """Electronic table: may this person vote here now? Only yes or no (see the module docstring)."""
    at = await _at_table(uow, caller, consultation_id, table_code, TableKind.ELECTRONIC, lineages=lineages)
    _require_voting(at.consultation, at.window, now)
    key = await _entry_key(uow, consultation_id, document)
    voter_ref = pseudonyms.voter_ref(consultation_id, key)
    return await storage.may_vote(uow.session, consultation_id, key, voter_ref, at.table.commune_id)


async def record_paper_check_in(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    document: str,
    *,
    lineages: TerritoryLineages,
    now: datetime,
    pseudonyms: Pseudonyms,
) -> bool:
    """Paper table: record that this person took part here. False: they already took part
    (through any channel); the refused attempt is written as a conflict, and the caller must
    commit it (it is never dropped). Not on this table's roll: 403, nothing written."""
    at = await _at_table(uow, caller, consultation_id, table_code, TableKind.PAPER, lineages=lineages)
    _require_voting(at.consultation, at.window, now)
    key = await _entry_key(uow, consultation_id, document)
    if not await storage.on_commune_roll(uow.session, consultation_id, key, at.table.commune_id):
        raise not_on_table_roll()
    voter_ref = pseudonyms.voter_ref(consultation_id, key)
    row = ParticipationRow(consultation_id, voter_ref, at.table.commune_id, ParticipationChannel.PAPER, at.table.id)
    (new,) = await take_part(await uow.session.connection(), [row])
    return new


def already_took_part() -> Conflict:
    return Conflict("this person has already taken part in this consultation", code="already_took_part")


# --- tally sheets -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SheetIn:
    votes: Mapping[uuid.UUID, int]
    blank: int
    null_votes: int
    checked_in: int
    scan_sha256: bytes


@dataclass(frozen=True, slots=True)
class SheetView:
    id: uuid.UUID
    table: VotingTable
    votes: dict[uuid.UUID, int]
    blank: int
    null_votes: int
    checked_in: int
    scan_sha256: bytes
    submitted_by: str
    submitted_at: datetime
    confirmed_by: str | None
    confirmed_at: datetime | None


def _sheet_view(sheet: TallySheet, table: VotingTable, votes: dict[uuid.UUID, int]) -> SheetView:
    return SheetView(
        id=sheet.id,
        table=table,
        votes=votes,
        blank=int(sheet.blank),
        null_votes=int(sheet.null_votes),
        checked_in=int(sheet.checked_in),
        scan_sha256=bytes(sheet.scan_sha256),
        submitted_by=sheet.submitted_by,
        submitted_at=sheet.submitted_at,
        confirmed_by=sheet.confirmed_by,
        confirmed_at=sheet.confirmed_at,
    )


async def submit_tally_sheet(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    sheet_in: SheetIn,
    *,
    lineages: TerritoryLineages,
    now: datetime,
) -> SheetView:
    """A paper table's count at close; replaces an unconfirmed sheet, never a confirmed one.
    Every refusal happens before the first write."""
    at = await _at_table(uow, caller, consultation_id, table_code, TableKind.PAPER, lineages=lineages)
    _require_voting_closed(at.consultation, at.window, now)
    session = uow.session
    table = at.table
    await storage.lock_table(session, table.id)
    current = await storage.sheet_of_table(session, table.id)
    if current is not None and current.confirmed_at is not None:
        raise Conflict(
            "this table's tally sheet is confirmed and final (a recount goes through results)",
            code="tally_sheet_confirmed",
        )
    communes = await storage.candidate_communes(session, consultation_id, sheet_in.votes)
    for candidate_id in sheet_in.votes:
        commune_id = communes.get(candidate_id)
        if commune_id is None:
            raise NotFound(f"candidate {candidate_id} does not exist", code="candidate_not_found")
        if commune_id != table.commune_id:
            raise InvalidInput(f"candidate {candidate_id} belongs to another commune", code="candidate_not_in_commune")
    # Final now: the commune's voting is closed, so no check-in can arrive at this table any more.
    recorded = await storage.paper_check_ins(session, table.id)
    if sheet_in.checked_in != recorded:
        raise InvalidInput(
            "checked_in differs from the check-ins recorded at this table",
            code="checked_in_mismatch",
            recorded=recorded,
        )
    counted = sum(sheet_in.votes.values()) + sheet_in.blank + sheet_in.null_votes
    if counted > recorded:
        raise InvalidInput(
            "the sheet counts more votes than people checked in at this table", code="tally_exceeds_check_ins"
        )
    if current is not None:
        await storage.delete_sheet(session, current.id)
        session.expunge(current)
    sheet_id = new_id()
    votes = {
        candidate_id: 0 for candidate_id in await storage.commune_candidates(session, consultation_id, table.commune_id)
    }
    votes.update(sheet_in.votes)
    await storage.insert_sheet(
        session,
        {
            "id": sheet_id,
            "consultation_id": consultation_id,
            "commune_id": table.commune_id,
            "table_id": table.id,
            "blank": sheet_in.blank,
            "null_votes": sheet_in.null_votes,
            "checked_in": sheet_in.checked_in,
            "scan_sha256": sheet_in.scan_sha256,
            "submitted_by": caller.subject,
            "submitted_at": now,
        },
        [
            {
                "sheet_id": sheet_id,
                "candidate_id": candidate_id,
                "consultation_id": consultation_id,
                "commune_id": table.commune_id,
                "votes": n,
            }
            for candidate_id, n in votes.items()
        ],
    )
    return SheetView(
        id=sheet_id,
        table=table,
        votes=votes,
        blank=sheet_in.blank,
        null_votes=sheet_in.null_votes,
        checked_in=sheet_in.checked_in,
        scan_sha256=sheet_in.scan_sha256,
        submitted_by=caller.subject,
        submitted_at=now,
        confirmed_by=None,
        confirmed_at=None,
    )


async def confirm_tally_sheet(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    table_code: str,
    sheet_id: uuid.UUID,
    *,
    lineages: TerritoryLineages,
    record: Record,
    now: datetime,
) -> SheetView:
    """A second officer of the same table confirms the sheet they read (named by its id, so a
    correction submitted meanwhile is not confirmed unseen). Final from then on, and in the
    consultation's public record (`comuna-tally-sheet/v1`) in the same transaction."""
    at = await _at_table(uow, caller, consultation_id, table_code, TableKind.PAPER, lineages=lineages)
    _require_voting_closed(at.consultation, at.window, now)
    session = uow.session
    table = at.table
    await storage.lock_table(session, table.id)
    sheet = await storage.sheet_of_table(session, table.id)
    if sheet is None:
        raise NotFound("this table has no tally sheet to confirm", code="tally_sheet_not_found")
    if sheet.id != sheet_id:
        raise Conflict("the tally sheet was replaced by a correction; read it again", code="tally_sheet_replaced")
    if sheet.confirmed_at is not None:
        raise Conflict("this tally sheet is already confirmed", code="tally_sheet_already_confirmed")
    if sheet.submitted_by == caller.subject:
        raise PermissionDeniedError("second_officer_required", "a second officer of the table must confirm the sheet")
    if not await storage.confirm_sheet(session, sheet.id, by=caller.subject, at=now):
        raise Conflict("this tally sheet is already confirmed", code="tally_sheet_already_confirmed")
    await session.refresh(sheet)
    votes = await storage.sheet_votes_of(session, sheet.id)
    entry = tally_sheet_entry(
        consultation_id,
        table.commune_id,
        table.code,
        sheet_id=sheet.id,
        checked_in=int(sheet.checked_in),
        scan_sha256=bytes(sheet.scan_sha256),
        choices=Choices(votes, int(sheet.blank), int(sheet.null_votes)),
    )
    await record.log(consultation_id).sequence(await session.connection(), [entry])
    await uow.stage(
        TallySheetConfirmed(
            consultation_id=consultation_id,
            commune_id=table.commune_id,
            table_id=table.id,
            table_code=table.code,
            sheet_id=sheet.id,
            votes=tuple(sorted(votes.items(), key=lambda item: str(item[0]))),
            blank=int(sheet.blank),
            null_votes=int(sheet.null_votes),
            checked_in=int(sheet.checked_in),
            scan_sha256=bytes(sheet.scan_sha256),
            confirmed_at=now,
        ),
        aggregate_id=str(consultation_id),
    )
    return _sheet_view(sheet, table, votes)


async def get_tally_sheet(uow: UnitOfWork, consultation_id: uuid.UUID, table_code: str, *, now: datetime) -> SheetView:
    """Public, and only once the commune's voting closed (a sheet cannot exist before)."""
    consultation = await existing(uow, consultation_id)
    table = await existing_table(uow.session, consultation_id, table_code)
    sheet = await storage.sheet_of_table(uow.session, table.id)
    window = await commune_window(uow.session, consultation, table.commune_id)
    if sheet is None or not _voting_closed(consultation, window, now):
        raise NotFound("this table has no tally sheet", code="tally_sheet_not_found")
    return _sheet_view(sheet, table, await storage.sheet_votes_of(uow.session, sheet.id))
