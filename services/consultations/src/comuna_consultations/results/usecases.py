"""Use cases of the results slice: full results after a commune's voting closed, per-commune
certification (one commune or all), recounts, auditors' conflict decisions and the tie-break.

Nothing here shows, stores, announces or logs a count of a commune before its voting closed:
every read and every write first checks the commune's window on the server clock.
Every refusal is raised before the first write, so a refused act writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comuna_consultations.domain.consultations import StatusWatcher, existing, existing_commune, not_found
from comuna_consultations.domain.ranking import TieRule, tie_break_of
from comuna_consultations.domain.schedules import schedule_from
from comuna_consultations.results import paper, publication, storage
from comuna_consultations.results.counting import CommuneResult, count_communes, result_of
from comuna_consultations.results.events import CommuneResultCertified, ConsultationCertified
from comuna_consultations.results.outcomes import Certification, CommuneOutcome, Summary, from_stored
from comuna_consultations.results.windows import CommuneWindows, not_closed, windows_of
from comuna_consultations.storage import repository
from comuna_consultations.storage.models import Consultation, ConsultationCommune
from comuna_consultations.storage.record import Record
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import FailedPrecondition, InvalidInput
from comuna_platform.ids import new_id
from comuna_platform.uow import Staged, UnitOfWork

MAX_REASON = 2000


def _reason(text: str, code: str) -> str:
    reason = text.strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(f"a reason of 1 to {MAX_REASON} characters is required", code=code)
    return reason


def _seed_and_rules(consultation: Consultation) -> tuple[tuple[TieRule, ...], bytes]:
    return tie_break_of(consultation.tie_break), bytes(consultation.draw_seed)


async def _count(
    uow: UnitOfWork, consultation: Consultation, communes: Sequence[ConsultationCommune], *, every: bool
) -> dict[uuid.UUID, CommuneResult]:
    """The full result of `communes` now (of every commune with one statement per source when
    `every`, else filtered to them)."""
    session = uow.session
    ids = None if every else [c.commune_id for c in communes]
    cid = consultation.id
    counts = count_communes(
        await storage.ballot_groups(session, cid, ids),
        await paper.confirmed_tally_sheets(session, cid, ids),
        await storage.participation_groups(session, cid, ids),
        await storage.roll_sizes(session, cid, ids),
        await storage.conflict_counts(session, cid, ids),
        offline_nulls=await storage.offline_null_votes(session, cid, ids),
    )
    by_commune: dict[uuid.UUID, list[Any]] = {}
    for candidate in await storage.candidates_of(session, cid, ids):
        by_commune.setdefault(candidate.commune_id, []).append(candidate)
    rules, seed = _seed_and_rules(consultation)
    return {
        c.commune_id: result_of(c.commune_id, by_commune.get(c.commune_id, []), counts.get(c.commune_id), rules, seed)
        for c in communes
    }


# --- reading ----------------------------------------------------------------------------------


async def commune_results(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID, *, now: datetime
) -> CommuneOutcome:
    """The commune's latest certified version, or (not yet certified) its full result counted
    now; 409 before its voting closed."""
    consultation = await existing(uow, consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    windows = await windows_of(uow.session, consultation)
    if not windows.closed(commune_id, now):
        raise not_closed(commune_id, windows.of(commune_id))
    stored = await storage.stored_certifications(uow.session, consultation_id, commune_ids=[commune_id])
    if stored:
        return from_stored(commune, stored[0])
    counted = await _count(uow, consultation, [commune], every=False)
    return CommuneOutcome(commune.commune_id, commune.code, commune.name, counted[commune_id], None)


async def commune_history(
    uow: UnitOfWork, consultation_id: uuid.UUID, commune_id: uuid.UUID, *, now: datetime
) -> list[CommuneOutcome]:
    """Every certified version of a commune, oldest first; 409 before its voting closed."""
    consultation = await existing(uow, consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    windows = await windows_of(uow.session, consultation)
    if not windows.closed(commune_id, now):
        raise not_closed(commune_id, windows.of(commune_id))
    stored = await storage.stored_certifications(
        uow.session, consultation_id, commune_ids=[commune_id], latest_only=False
    )
    return [from_stored(commune, s) for s in stored]


@dataclass(frozen=True, slots=True)
class ConsultationResults:
    consultation: Consultation
    # The latest certified version of each certified commune, in commune code order.
    communes: list[CommuneOutcome]

    @property
    def ballots(self) -> int:
        return sum(c.ballots for c in self.communes)


async def certified_results(uow: UnitOfWork, consultation_id: uuid.UUID, *, now: datetime) -> ConsultationResults:
    """The certified communes (latest versions); 409 before the national voting closed."""
    consultation = await existing(uow, consultation_id)
    windows = await windows_of(uow.session, consultation)
    if not windows.national.closed(now):
        raise not_closed(None, windows.national)
    communes = await repository.communes_of(uow.session, consultation_id)
    return ConsultationResults(consultation, await _certified_of(uow, consultation_id, communes))


async def _certified_of(
    uow: UnitOfWork, consultation_id: uuid.UUID, communes: Sequence[ConsultationCommune], *, every: bool = True
) -> list[CommuneOutcome]:
    by_id = {c.commune_id: c for c in communes}
    stored = await storage.stored_certifications(
        uow.session, consultation_id, commune_ids=None if every else list(by_id)
    )
    outcomes = [from_stored(by_id[s.row.commune_id], s) for s in stored if s.row.commune_id in by_id]
    return sorted(outcomes, key=lambda o: o.code)


# --- certification ---------------------------------------------------------------------------


def _gate(result: CommuneResult, decided: int | None, missing_sheets: list[str]) -> FailedPrecondition | None:
    """Why this commune may not be certified now, or None. See `results/counting.py`."""
    if missing_sheets:
        return FailedPrecondition(
            f"paper tables without a confirmed tally sheet: {', '.join(missing_sheets)}",
            code="tally_sheets_unconfirmed",
            tables=missing_sheets,
        )
    if result.conflicts_could_change_winner and (decided is None or decided < result.counted_conflicts):
        return FailedPrecondition(
            "participation conflicts could change the winner: an auditor's recorded decision is needed",
            code="conflict_decision_required",
            conflicts=result.conflicts,
            counted_conflicts=result.counted_conflicts,
            margin=result.margin,
        )
    return None


async def _lock(uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID) -> Consultation:
    # Certifying is a national act; one certification act at a time per consultation (rare,
    # operator-driven), which also keeps the version numbers of a commune gap-free.
    caller.require_national(Role.OPERATOR)
    consultation = await repository.consultation_by_id(uow.session, consultation_id, lock="update")
    if consultation is None:
        raise not_found(consultation_id)
    return consultation


def _require_certifiable(windows: CommuneWindows, commune_id: uuid.UUID, now: datetime) -> None:
    if not windows.closed(commune_id, now):
        raise not_closed(commune_id, windows.of(commune_id))
    if now < windows.certification_opens_at:
        raise FailedPrecondition(
            f"certification opens at {windows.certification_opens_at.isoformat()}",
            code="certification_not_open",
            opens_at=windows.certification_opens_at.isoformat(),
        )


@dataclass(frozen=True, slots=True)
class Blocked:
    commune_id: uuid.UUID
    code: str
    problem: FailedPrecondition


@dataclass(frozen=True, slots=True)
class CertificationRun:
    consultation: Consultation
    certified: list[CommuneOutcome]
    blocked: list[Blocked]


async def _store(
    uow: UnitOfWork,
    caller: Caller,
    consultation: Consultation,
    items: Sequence[tuple[ConsultationCommune, CommuneResult, int, str | None]],
    *,
    now: datetime,
    record: Record,
) -> list[CommuneOutcome]:
    """Store each (commune, result, version, reason), publish it in the record (bulletins and
    result entry, `publication`) and stage its event, in commune code order."""
    rules, seed = _seed_and_rules(consultation)
    tie_break = [str(r) for r in rules]
    outcomes: list[CommuneOutcome] = []
    cert_rows: list[dict[str, Any]] = []
    result_rows: list[dict[str, Any]] = []
    for commune, result, version, reason in sorted(items, key=lambda i: i[0].code):
        supersedes = version - 1 if version > 1 else None
        cert = Certification(version, supersedes, reason, now, caller.subject, tie_break)
        outcomes.append(CommuneOutcome(commune.commune_id, commune.code, commune.name, result, cert))
        cert_rows.append(
            {
                "consultation_id": consultation.id,
                "commune_id": commune.commune_id,
                "version": version,
                "supersedes": supersedes,
                "reason": reason,
                "certified_by": caller.subject,
                "certified_at": now,
                "ballots": result.ballots,
                "blank": result.blank,
                "null_votes": result.null,
                "participations": result.participations,
                "roll_size": result.roll_size,
                "conflicts": result.conflicts,
                "counted_conflicts": result.counted_conflicts,
                "winner_candidate_id": result.winner_candidate_id,
                "tie_break": tie_break,
                "subtotals": [s.as_json() for s in result.subtotals],
            }
        )
        result_rows.extend(
            {
                "consultation_id": consultation.id,
                "commune_id": commune.commune_id,
                "candidate_id": k.candidate_id,
                "version": version,
                "votes": k.votes,
                "rank": k.rank,
            }
            for k in result.ranked
        )
    await storage.insert_certifications(uow.session, cert_rows, result_rows)
    await publication.publish(
        await uow.session.connection(),
        record,
        consultation.id,
        items=[
            (commune.code, result, version) for commune, result, version, _ in sorted(items, key=lambda i: i[0].code)
        ],
        tie_break=tie_break,
        draw_seed=seed,
    )
    await uow.stage_all(
        [
            Staged(
                CommuneResultCertified(consultation.id, consultation.code, o, consultation.funds_currency),
                aggregate_id=str(o.commune_id),
            )
            for o in outcomes
        ]
    )
    return outcomes


async def _finish_if_complete(
    uow: UnitOfWork, consultation: Consultation, windows: CommuneWindows, now: datetime, watcher: StatusWatcher
) -> None:
    """Once every voting commune is certified, the consultation is: status, and its summary event
    (after every commune's event, so a consumer of the summary has them all)."""
    if consultation.certified_at is not None:
        return
    communes = await repository.communes_of(uow.session, consultation.id)
    voting = [c.commune_id for c in communes if windows.of(c.commune_id) is not None]
    if await storage.uncertified_count(uow.session, consultation.id, voting):
        return
    totals = await storage.certified_totals(uow.session, consultation.id)
    consultation.status = ConsultationStatus.CERTIFIED
    consultation.certified_at = now
    await uow.session.flush()
    uow.after_commit(lambda: watcher.invalidate(consultation.id))
    summary = Summary(
        consultation.id, consultation.code, now, totals.ballots, consultation.commune_count, totals.communes_with_winner
    )
    await uow.stage(ConsultationCertified(summary), aggregate_id=str(consultation.id))


async def certify_commune(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    *,
    now: datetime,
    watcher: StatusWatcher,
    record: Record,
) -> CommuneOutcome:
    """Version 1 of one commune (409 if already certified: a recount makes the next)."""
    consultation = await _lock(uow, caller, consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    windows = await windows_of(uow.session, consultation)
    _require_certifiable(windows, commune_id, now)
    if await storage.latest_versions(uow.session, consultation_id, [commune_id]):
        raise FailedPrecondition(
            "this commune is already certified; a recount (with a reason) certifies it again",
            code="commune_already_certified",
        )
    result = (await _count(uow, consultation, [commune], every=False))[commune_id]
    problem = _gate(
        result,
        (await storage.decided_conflicts(uow.session, consultation_id, [commune_id])).get(commune_id),
        (await paper.paper_tables_without_confirmed_sheet(uow.session, consultation_id, [commune_id])).get(
            commune_id, []
        ),
    )
    if problem is not None:
        raise problem
    [outcome] = await _store(uow, caller, consultation, [(commune, result, 1, None)], now=now, record=record)
    await _finish_if_complete(uow, consultation, windows, now, watcher)
    return outcome


async def certify_all(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    *,
    now: datetime,
    watcher: StatusWatcher,
    record: Record,
) -> CertificationRun:
    """Version 1 of every commune whose voting closed, not yet certified and whose gate passes;
    the others are reported as blocked (excluded communes and communes still voting are skipped)."""
    consultation = await _lock(uow, caller, consultation_id)
    if consultation.certified_at is not None:
        raise FailedPrecondition(
            "the consultation is already certified",
            code="consultation_already_certified",
            current_status=consultation.status,
        )
    windows = await windows_of(uow.session, consultation)
    if now < windows.certification_opens_at or not windows.national.closed(now):
        raise FailedPrecondition(
            f"certification opens at {max(windows.certification_opens_at, windows.national.closes_at).isoformat()}",
            code="certification_not_open",
            opens_at=max(windows.certification_opens_at, windows.national.closes_at).isoformat(),
            phase=str(schedule_from(consultation).phase_at(now)),
        )
    session = uow.session
    communes = await repository.communes_of(session, consultation_id)
    certified = await storage.latest_versions(session, consultation_id)
    pending = [c for c in communes if c.commune_id not in certified and windows.certifiable(c.commune_id, now)]
    counted = await _count(uow, consultation, pending, every=True)
    decided = await storage.decided_conflicts(session, consultation_id)
    missing = await paper.paper_tables_without_confirmed_sheet(session, consultation_id)
    ready: list[tuple[ConsultationCommune, CommuneResult, int, str | None]] = []
    blocked: list[Blocked] = []
    for commune in pending:
        result = counted[commune.commune_id]
        problem = _gate(result, decided.get(commune.commune_id), missing.get(commune.commune_id, []))
        if problem is None:
            ready.append((commune, result, 1, None))
        else:
            blocked.append(Blocked(commune.commune_id, commune.code, problem))
    outcomes = await _store(uow, caller, consultation, ready, now=now, record=record)
    await _finish_if_complete(uow, consultation, windows, now, watcher)
    return CertificationRun(consultation, outcomes, blocked)


async def recount(
    uow: UnitOfWork,
    caller: Caller,
    consultation_id: uuid.UUID,
    commune_id: uuid.UUID,
    *,
    reason: str,
    now: datetime,
    record: Record,
) -> CommuneOutcome:
    """Certify a certified commune again (version n+1 superseding n), with the operator's reason.
    The earlier versions stay; the new one is announced with `supersedes` = n."""
    why = _reason(reason, "recount_reason_required")
    consultation = await _lock(uow, caller, consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    windows = await windows_of(uow.session, consultation)
    _require_certifiable(windows, commune_id, now)
    latest = (await storage.latest_versions(uow.session, consultation_id, [commune_id])).get(commune_id)
    if latest is None:
        raise FailedPrecondition("this commune is not certified yet; certify it first", code="commune_not_certified")
    result = (await _count(uow, consultation, [commune], every=False))[commune_id]
    problem = _gate(
        result,
        (await storage.decided_conflicts(uow.session, consultation_id, [commune_id])).get(commune_id),
        (await paper.paper_tables_without_confirmed_sheet(uow.session, consultation_id, [commune_id])).get(
            commune_id, []
        ),
    )
    if problem is not None:
        raise problem
    [outcome] = await _store(uow, caller, consultation, [(commune, result, latest + 1, why)], now=now, record=record)
    return outcome


@dataclass(frozen=True, slots=True)
class Decision:
    commune_id: uuid.UUID
    conflicts: int
    margin: int
    decided_at: datetime
    decided_by: str
    reason: str


async def decide_conflicts(
    uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID, commune_id: uuid.UUID, *, reason: str, now: datetime
) -> Decision:
    """An auditor's recorded decision on a commune's conflicts (after its voting closed): it
    covers the counted conflicts (`ballot_counted`) now; more later need a new decision."""
    caller.require_national(Role.AUDITOR)
    why = _reason(reason, "decision_reason_required")
    consultation = await existing(uow, consultation_id)
    commune = await existing_commune(uow, consultation_id, commune_id)
    windows = await windows_of(uow.session, consultation)
    if not windows.closed(commune_id, now):
        raise not_closed(commune_id, windows.of(commune_id))
    result = (await _count(uow, consultation, [commune], every=False))[commune_id]
    if result.counted_conflicts == 0:
        raise FailedPrecondition(
            "this commune has no participation conflict whose ballot was counted", code="no_conflicts"
        )
    decision = Decision(commune_id, result.counted_conflicts, result.margin, now, caller.subject, why)
    await storage.insert_decision(
        uow.session,
        {
            "id": new_id(),
            "consultation_id": consultation_id,
            "commune_id": commune_id,
            "decided_by": caller.subject,
            "reason": why,
            "conflicts": result.conflicts,
            "margin": result.margin,
            "decided_at": now,
        },
    )
    return decision


# --- the tie-break -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TieBreak:
    rules: tuple[TieRule, ...]
    draw_seed: bytes


async def tie_break(uow: UnitOfWork, consultation_id: uuid.UUID) -> TieBreak:
    consultation = await existing(uow, consultation_id)
    rules, seed = _seed_and_rules(consultation)
    return TieBreak(rules, seed)


async def declare_tie_break(
    uow: UnitOfWork, caller: Caller, consultation_id: uuid.UUID, rules: Sequence[str], *, now: datetime
) -> TieBreak:
    """Declare the consultation's tie-break (operator), only before voting opens anywhere."""
    parsed = tie_break_of(rules)
    consultation = await _lock(uow, caller, consultation_id)
    windows = await windows_of(uow.session, consultation)
    opens = min([windows.national.opens_at, *(w.opens_at for w in windows.exceptions.values() if w is not None)])
    if now >= opens:
        raise FailedPrecondition("the tie-break is final once voting opened", code="tie_break_final")
    consultation.tie_break = [str(r) for r in parsed]
    await uow.session.flush()
    return TieBreak(parsed, bytes(consultation.draw_seed))


# --- a page of certified communes (gRPC) -----------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500


@dataclass(frozen=True, slots=True)
class CertifiedPage:
    summary: Summary
    communes: list[CommuneOutcome]
    # Code of the last commune this page looked at (certified or not) when more follow, else None.
    next_after_code: str | None


async def certified_page(
    uow: UnitOfWork, consultation_id: uuid.UUID, *, after_code: str, page_size: int, now: datetime
) -> CertifiedPage:
    """The summary (over the certified communes so far) and at most `page_size` communes after
    `after_code`, in code order, each at its latest certified version; communes not certified
    are not listed. 409 before the national voting closed."""
    session = uow.session
    consultation = await existing(uow, consultation_id)
    windows = await windows_of(session, consultation)
    if not windows.national.closed(now):
        raise not_closed(None, windows.national)
    # One more than asked, to know whether another page follows without an empty last page.
    communes = await repository.communes_of(session, consultation_id, after_code=after_code, limit=page_size + 1)
    more, communes = len(communes) > page_size, communes[:page_size]
    outcomes = await _certified_of(uow, consultation_id, communes, every=False)
    totals = await storage.certified_totals(session, consultation_id)
    summary = Summary(
        consultation.id,
        consultation.code,
        consultation.certified_at or totals.last_certified_at or now,
        totals.ballots,
        consultation.commune_count,
        totals.communes_with_winner,
    )
    return CertifiedPage(summary, outcomes, communes[-1].code if more and communes else None)
