"""The saga that commits a remote funder's money through its own system (issue 10).

A remote funder's allocation starts `reserving`: a pending transfer with a timeout holds the
money in the ledger (`domain.cofunding`). `SourceCommitments` drives every such allocation to an
end, round after round (`drive_once`), over `comuna.funding.source.v1` (`sources.RemoteSource`):

1. `Reserve(reservation id = the pending transfer's id, amount, reference, commune, project =
   the allocation)`, then `Commit` of the whole reservation. COMMITTED: the pending transfer is
   posted, the allocation committed and `funding.allocation.created` staged, in one unit of
   work. REFUSED (Reserve) or a Commit the source will not make: voided, allocation refused.
2. No usable answer (deadline, unreachable, the source's own failure; or credentials the source
   does not accept, logged as errors): nothing changes, the next round asks again with the
   same ids; the source answers a retry with its first answer and no second effect. While the
   pending transfer has less time left than a call's deadline (plus a margin), no new call
   starts: an answer could only arrive too late.
3. Once the ledger released the pending transfer (its expiry worker writes an `expire`; or an
   operator voided it), the allocation fails: `Cancel` is sent, best effort, and the allocation
   is settled `failed` (or `refused` if the source says it had refused). A cancel with no
   answer, or one the source refuses because it committed meanwhile (a late answer), is
   flagged `needs_reconciliation` in `source_calls`; so is a commit that arrives after the
   pending transfer timed out.

Crash safety: every step can be repeated. The worker keeps nothing it cannot lose: after a
crash it reads the reserving allocations again and asks the source again with the same ids, and
the post or void of a pending transfer happens at most once (ids derived from the allocation,
the ledger's unique key on the resolved transfer, the allocation's row lock). Every replica
may run it: two replicas asking the same source twice get the same answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr

from comuna_funding.domain import commitments
from comuna_funding.domain.commitments import Call, FunderEndpoint, Reserving, Settlement
from comuna_funding.sources import (
    CancelOutcome,
    ConflictKind,
    RemoteSource,
    SourceConflict,
    SourceError,
    SourceNotFound,
    SourceRefused,
    SourceUnavailable,
)
from comuna_funding.vocabulary import (
    AllocationStatus,
    CommitmentReason,
    SourceCallOutcome,
    SourceOperation,
    TransferKind,
)
from comuna_platform.db import Database

log = logging.getLogger(__name__)

SETTLED = frozenset({Settlement.COMMITTED, Settlement.REFUSED, Settlement.FAILED})


def _now() -> datetime:
    return datetime.now(UTC)


class MissingCredentials(Exception):
    """A funder names credentials this deployment does not hold (COMUNA_FUNDING_SOURCE_CREDENTIALS)."""


class SourceDirectory:
    """One `RemoteSource` per remote funder, built from its `funders` row and the token its
    `credentials_ref` names in `credentials`; rebuilt when the row changes, all closed by `close()`."""

    def __init__(self, credentials: Mapping[str, SecretStr], *, root_certificates: bytes | None = None) -> None:
        self._credentials = dict(credentials)
        self._root_certificates = root_certificates
        self._sources: dict[str, tuple[FunderEndpoint, RemoteSource]] = {}
        self._retired: list[RemoteSource] = []

    def source_for(self, funder: FunderEndpoint) -> RemoteSource:
        cached = self._sources.get(funder.name)
        if cached is not None and cached[0] == funder:
            return cached[1]
        token = self._credentials.get(funder.credentials_ref)
        if token is None:
            raise MissingCredentials(
                f"funder {funder.name} names credentials {funder.credentials_ref!r}, "
                "which COMUNA_FUNDING_SOURCE_CREDENTIALS does not hold"
            )
        if cached is not None:
            # Still possibly in use by this round's other calls: closed before the next round.
            self._retired.append(cached[1])
        source = RemoteSource(
            funder.endpoint,
            token.get_secret_value(),
            funder.deadline_seconds,
            tls=funder.tls,
            root_certificates=self._root_certificates if funder.tls else None,
        )
        self._sources[funder.name] = (funder, source)
        return source

    async def sweep(self) -> None:
        """Close the clients replaced during the last round."""
        retired, self._retired = self._retired, []
        for source in retired:
            await source.close()

    async def close(self) -> None:
        await self.sweep()
        sources, self._sources = self._sources, {}
        for _, source in sources.values():
            await source.close()


@dataclass
class _Backoff:
    """Exponential delays between attempts, per key (a funder or an allocation); in memory
    only: a restart merely retries sooner."""

    initial: float
    cap: float
    _state: dict[str, tuple[int, float]] = field(default_factory=dict)

    def ready(self, key: str) -> bool:
        state = self._state.get(key)
        return state is None or time.monotonic() >= state[1]

    def failed(self, key: str) -> None:
        failures = self._state.get(key, (0, 0.0))[0] + 1
        delay = min(self.cap, self.initial * 2 ** (failures - 1))
        self._state[key] = (failures, time.monotonic() + delay)

    def succeeded(self, key: str) -> None:
        self._state.pop(key, None)


@dataclass
class _Round:
    """One pass over the reserving allocations: when they were read (monotonic), and the
    funders found unreachable or misconfigured in this pass (asked no more until the next)."""

    read_at: float
    tripped: dict[str, str] = field(default_factory=dict)


class SourceCommitments:
    """Drives reserving allocations of remote funders to an end (module docstring).

    `every`: seconds between rounds; `batch`: allocations read per round; `concurrency`: calls in
    flight at once; `retry_seconds`: (first, longest) delay before asking again a funder that
    gave no usable answer or about an allocation the source answered with an error;
    `margin_seconds`: time kept, beyond a call's deadline, to settle its answer before the
    pending transfer times out.
    """

    def __init__(
        self,
        db: Database,
        directory: SourceDirectory,
        every: float = 1.0,
        *,
        batch: int = 500,
        concurrency: int = 8,
        retry_seconds: tuple[float, float] = (1.0, 60.0),
        margin_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._directory = directory
        self._every = every
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._backoff = _Backoff(*retry_seconds)
        self._margin = margin_seconds

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                settled = await self.drive_once()
                if settled:
                    log.info("remote commitments settled", extra={"settled": settled})
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self._every)
                except TimeoutError:
                    pass
        finally:
            await self._directory.close()

    async def drive_once(self) -> int:
        """One round over the reserving allocations; how many reached an end (committed,
        refused or failed)."""
        await self._directory.sweep()
        async with self._db.transaction() as session:
            items = await commitments.reserving(session, self._batch)
        if not items:
            return 0
        this_round = _Round(time.monotonic())
        outcomes = await asyncio.gather(*(self._guarded(item, this_round) for item in items))
        return sum(1 for outcome in outcomes if outcome in SETTLED)

    async def _guarded(self, item: Reserving, this_round: _Round) -> Settlement | None:
        async with self._slots:
            try:
                return await self._drive(item, this_round)
            except Exception:
                # One allocation's bug must not stall the others; it is retried later.
                log.exception(
                    "driving a remote commitment failed",
                    extra={"allocation_id": str(item.allocation_id), "funder": item.funder.name},
                )
                self._backoff.failed(str(item.allocation_id))
                return None

    # --- one allocation -------------------------------------------------------------------

    async def _drive(self, item: Reserving, this_round: _Round) -> Settlement | None:
        if item.resolution is not None and item.resolution.kind != TransferKind.POST:
            return await self._give_up(item, this_round)
        # Posted by hand (an operator): the pending transfer's timeout no longer matters.
        left = item.seconds_left if item.resolution is None else None
        if left is not None and left <= 0:
            return None  # timed out: the expiry worker releases it, then the allocation fails
        funder, allocation = item.funder.name, str(item.allocation_id)
        if funder in this_round.tripped or not (self._backoff.ready(funder) and self._backoff.ready(allocation)):
            return None
        source = self._source(item, this_round)
        if source is None:
            return None
        due = None if left is None else this_round.read_at + left

        def time_for_a_call() -> bool:
            return due is None or time.monotonic() + item.funder.deadline_seconds + self._margin < due

        if not time_for_a_call():
            return None
        try:
            await source.reserve(
                item.reservation_id,
                item.amount_minor,
                item.currency,
                item.reference,
                commune_id=item.commune_id,
                project_id=item.allocation_id,
            )
        except SourceRefused as exc:
            self._backoff.succeeded(funder)
            refusal = Call(SourceOperation.RESERVE, SourceCallOutcome.REFUSED, str(exc), _now())
            async with self._db.unit_of_work() as uow:
                return await commitments.settle_refused(uow, item, exc.reason, [refusal])
        except SourceError as exc:
            await self._failed_call(item, this_round, SourceOperation.RESERVE, exc)
            return None
        self._backoff.succeeded(funder)
        reserved = Call(
            SourceOperation.RESERVE, SourceCallOutcome.OK, f"reserved {item.amount_minor} {item.currency}", _now()
        )
        if not time_for_a_call():
            await self._record(item, [reserved])
            return None
        try:
            answer = await source.commit(item.reservation_id, item.amount_minor, item.currency)
        except SourceConflict as exc:
            if exc.kind != ConflictKind.FAILED_PRECONDITION:
                await self._failed_call(item, this_round, SourceOperation.COMMIT, exc, earlier=[reserved])
                return None
            # The source cancelled (or refused) what it had reserved: it holds nothing for us.
            log.error(
                "a source will not commit a reservation it held: voided, flagged for reconciliation",
                extra={"allocation_id": allocation, "funder": funder, "detail": exc.message},
            )
            withdrawn = Call(SourceOperation.COMMIT, SourceCallOutcome.CONFLICT, str(exc), _now(), True)
            async with self._db.unit_of_work() as uow:
                return await commitments.settle_refused(uow, item, CommitmentReason.WITHDRAWN, [reserved, withdrawn])
        except SourceError as exc:
            await self._failed_call(item, this_round, SourceOperation.COMMIT, exc, earlier=[reserved])
            return None
        committed = Call(
            SourceOperation.COMMIT,
            SourceCallOutcome.OK,
            f"committed {answer.committed_minor} {answer.currency}",
            _now(),
        )
        async with self._db.unit_of_work() as uow:
            return await commitments.settle_committed(uow, item, [reserved, committed])

    async def _give_up(self, item: Reserving, this_round: _Round) -> Settlement:
        """The ledger released the pending commitment: cancel at the source (best effort), then
        settle the allocation failed, flagging whatever the source may still hold."""
        status, reason = AllocationStatus.FAILED, commitments.released_reason(item)
        call, had_refused = await self._cancel(item, this_round)
        if had_refused:
            status, reason = AllocationStatus.REFUSED, CommitmentReason.REFUSED
        elif call.outcome == SourceCallOutcome.CONFLICT:
            reason = CommitmentReason.COMMITTED_LATE
        async with self._db.unit_of_work() as uow:
            return await commitments.settle_released(uow, item, status, reason, [call])

    async def _cancel(self, item: Reserving, this_round: _Round) -> tuple[Call, bool]:
        """The cancel's record, and whether the source said it had refused the reservation."""
        cancel = SourceOperation.CANCEL
        funder = item.funder.name
        source = None if funder in this_round.tripped else self._source(item, this_round)
        if source is None:
            why = this_round.tripped[funder]
            return Call(cancel, SourceCallOutcome.UNAVAILABLE, f"not sent: {why}", _now(), True), False
        try:
            answer = await source.cancel(item.reservation_id)
        except SourceNotFound:
            return Call(cancel, SourceCallOutcome.OK, "nothing held: the source has no such reservation", _now()), False
        except SourceConflict as exc:
            # Cancel after commit: the source committed although the ledger gave up (a late answer).
            log.error(
                "a source committed after the ledger released its reservation: flagged for reconciliation",
                extra={"allocation_id": str(item.allocation_id), "funder": funder, "detail": exc.message},
            )
            return Call(cancel, SourceCallOutcome.CONFLICT, str(exc), _now(), True), False
        except SourceError as exc:
            self._note_failure(item, this_round, cancel, exc)
            return Call(cancel, _outcome_of(exc), str(exc), _now(), True), False
        self._backoff.succeeded(funder)
        if answer.outcome == CancelOutcome.REFUSED:
            return Call(cancel, SourceCallOutcome.OK, "nothing held: the source had refused it", _now()), True
        released = f"released {answer.released_minor} {answer.currency}"
        return Call(cancel, SourceCallOutcome.OK, released, _now()), False

    # --- helpers --------------------------------------------------------------------------

    def _source(self, item: Reserving, this_round: _Round) -> RemoteSource | None:
        try:
            return self._directory.source_for(item.funder)
        except MissingCredentials as exc:
            # Money may be fine once an operator adds the token: keep the allocation reserving
            # (it fails at its timeout like any unanswered one), and say so loudly every round.
            if item.funder.name not in this_round.tripped:
                log.error("remote funder not callable: %s", exc, extra={"funder": item.funder.name})
            this_round.tripped[item.funder.name] = "no credentials configured"
            return None

    def _note_failure(self, item: Reserving, this_round: _Round, operation: SourceOperation, exc: SourceError) -> None:
        funder, allocation = item.funder.name, str(item.allocation_id)
        extra = {"allocation_id": allocation, "funder": funder, "operation": operation.value, "detail": str(exc)}
        if isinstance(exc, SourceUnavailable):
            # The whole source is in question: ask it nothing more this round, then back off.
            this_round.tripped[funder] = f"the source gave no usable answer ({exc.cause})"
            self._backoff.failed(funder)
            if exc.misconfigured:
                log.error("a remote funder refuses our credentials; fix its registration or token", extra=extra)
            else:
                log.warning("a remote funder gave no usable answer; retrying later", extra=extra)
            return
        # This reservation only (the same id with another body, a malformed request, a source off
        # the contract): nothing a retry soon would change; it fails at its timeout unless fixed.
        self._backoff.failed(allocation)
        log.error("a remote funder answered with an error", extra=extra)

    async def _failed_call(
        self,
        item: Reserving,
        this_round: _Round,
        operation: SourceOperation,
        exc: SourceError,
        *,
        earlier: list[Call] | None = None,
    ) -> None:
        self._note_failure(item, this_round, operation, exc)
        # A conflict says the source's state disagrees with ours: worth a person's look now.
        flagged = isinstance(exc, SourceConflict)
        await self._record(item, [*(earlier or []), Call(operation, _outcome_of(exc), str(exc), _now(), flagged)])

    async def _record(self, item: Reserving, calls: list[Call]) -> None:
        async with self._db.transaction() as session:
            await commitments.record_calls(session, item, calls)


def _outcome_of(exc: SourceError) -> SourceCallOutcome:
    if isinstance(exc, SourceUnavailable):
        return SourceCallOutcome.UNAVAILABLE
    if isinstance(exc, SourceConflict):
        return SourceCallOutcome.CONFLICT
    if isinstance(exc, SourceRefused):
        return SourceCallOutcome.REFUSED
    return SourceCallOutcome.ERROR
