"""Funding's client of a plug-in funding source (`comuna.funding.source.v1.FundingSource`).

One `RemoteSource` per registered source: one gRPC channel (opened on first use, reused by
every call, closed by `close()`), the source's bearer token on every call, one deadline per
call. It translates and nothing more:

* answers become small frozen dataclasses (amounts in integer minor units, times in UTC);
* a Reserve answered REFUSED raises `SourceRefused(reason)`: the source holds nothing;
* DEADLINE_EXCEEDED, UNAVAILABLE and the source's own failures (INTERNAL, UNKNOWN, ...) raise
  `SourceUnavailable` with `cause` saying which and `outcome_unknown` True: the call may or
  may not have taken effect at the source (retry it: every call is idempotent by reservation
  id; or cancel; the statement tells);
* UNAUTHENTICATED / PERMISSION_DENIED raise `SourceUnavailable` with `misconfigured` True:
  the token Comuna holds is not the one the source expects; nothing happened and a retry will
  not help until an operator fixes the registration;
* ALREADY_EXISTS (the reservation id was used with another body) and FAILED_PRECONDITION (commit
  after cancel, cancel after commit, commit of a refused reservation) raise `SourceConflict`;
* NOT_FOUND raises `SourceNotFound` (the source never recorded that reservation);
* INVALID_ARGUMENT / OUT_OF_RANGE raise `SourceInvalidRequest` (Comuna sent something the
  contract forbids: a bug, nothing happened);
* UNIMPLEMENTED, and answers that contradict the request or the contract, raise
  `SourceProtocolError` (the source does not implement this contract as written).

Every exception derives from `SourceError`. Reservation ids go out as lowercase UUID text.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from comuna.common.v1.money_pb2 import Money
from comuna.funding.source.v1 import source_pb2 as pb
from comuna.funding.source.v1 import source_pb2_grpc

log = logging.getLogger(__name__)

# The contract revision this client speaks (DescribeResponse.contract_version).
CONTRACT_VERSION = 1


class UnavailableCause(StrEnum):
    DEADLINE_EXCEEDED = "deadline_exceeded"  # no answer within the deadline (it may still act)
    UNAVAILABLE = "unavailable"  # not reachable, or the connection broke
    SOURCE_ERROR = "source_error"  # the source failed (INTERNAL, UNKNOWN, ABORTED, ...)
    UNAUTHENTICATED = "unauthenticated"  # the source does not accept our token: misconfiguration
    PERMISSION_DENIED = "permission_denied"  # the token is known but may not do this: misconfiguration


class ConflictKind(StrEnum):
    ALREADY_EXISTS = "already_exists"  # the reservation id was used with another body
    FAILED_PRECONDITION = "failed_precondition"  # the reservation is past this step


class MovementKind(StrEnum):
    RESERVE = "reserve"
    COMMIT = "commit"
    CANCEL = "cancel"
    DEPOSIT = "deposit"


class CancelOutcome(StrEnum):
    CANCELLED = "cancelled"  # the reserved amount was released
    REFUSED = "refused"  # the reservation had been refused: nothing was ever held


# --- errors -----------------------------------------------------------------------------------


class SourceError(Exception):
    """Anything a funding source call can end in other than its answer."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SourceRefused(SourceError):
    """The source refused the reservation (final: retrying the same id gets the same refusal)."""

    def __init__(self, reason: str, message: str, *, reservation_id: uuid.UUID, at: datetime | None) -> None:
        super().__init__(f"refused ({reason}){': ' + message if message else ''}")
        self.reason = reason
        self.detail = message
        self.reservation_id = reservation_id
        self.at = at


class SourceUnavailable(SourceError):
    """No usable answer: see `cause`, `outcome_unknown` and `misconfigured`."""

    def __init__(self, cause: UnavailableCause, message: str) -> None:
        super().__init__(f"{cause}: {message}")
        self.cause = cause

    @property
    def misconfigured(self) -> bool:
        """Our credentials are wrong for this source: nothing happened, retrying will not help."""
        return self.cause in (UnavailableCause.UNAUTHENTICATED, UnavailableCause.PERMISSION_DENIED)

    @property
    def outcome_unknown(self) -> bool:
        """The call may have taken effect at the source."""
        return not self.misconfigured


class SourceConflict(SourceError):
    def __init__(self, kind: ConflictKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class SourceNotFound(SourceError):
    """The source has no such reservation."""


class SourceInvalidRequest(SourceError):
    """The source refused the request as malformed (nothing happened)."""


class SourceProtocolError(SourceError):
    """The source does not implement the contract as written."""


# --- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDescription:
    name: str
    currency: str
    territory_ids: tuple[str, ...]
    contract_version: int


@dataclass(frozen=True)
class SourceFunds:
    currency: str
    available_minor: int
    reserved_minor: int
    committed_minor: int
    at: datetime | None


@dataclass(frozen=True)
class SourceReservation:
    """A Reserve answered RESERVED: `amount_minor` is held at the source."""

    reservation_id: uuid.UUID
    amount_minor: int
    currency: str
    at: datetime | None


@dataclass(frozen=True)
class SourceCommit:
    reservation_id: uuid.UUID
    committed_minor: int
    released_minor: int
    currency: str
    at: datetime | None


@dataclass(frozen=True)
class SourceCancellation:
    reservation_id: uuid.UUID
    outcome: CancelOutcome
    released_minor: int
    currency: str
    at: datetime | None


@dataclass(frozen=True)
class SourceMovement:
    movement_id: str
    reservation_id: uuid.UUID | None  # None for a deposit
    kind: MovementKind
    amount_minor: int
    released_minor: int  # commit only: what returned to available
    currency: str
    at: datetime | None
    reference: str
    cursor: str


@dataclass(frozen=True)
class SourceStatement:
    movements: tuple[SourceMovement, ...]
    next_cursor: str  # pass as `after` to continue (or to poll for new movements)
    has_more: bool


_MOVEMENT_KINDS = {
    pb.MOVEMENT_KIND_RESERVE: MovementKind.RESERVE,
    pb.MOVEMENT_KIND_COMMIT: MovementKind.COMMIT,
    pb.MOVEMENT_KIND_CANCEL: MovementKind.CANCEL,
    pb.MOVEMENT_KIND_DEPOSIT: MovementKind.DEPOSIT,
}
_UNAVAILABLE = {
    grpc.StatusCode.DEADLINE_EXCEEDED: UnavailableCause.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE: UnavailableCause.UNAVAILABLE,
    grpc.StatusCode.UNAUTHENTICATED: UnavailableCause.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED: UnavailableCause.PERMISSION_DENIED,
}

# After a source drops, gRPC retries the connection with exponential backoff (up to 120 s by
# default); a source back after a restart should be found within a call's deadline.
_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 2000)]


def _at(stamp: Timestamp, present: bool) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None


def _reservation_id(value: uuid.UUID | str) -> str:
    """Lowercase canonical UUID text (a source compares ids as text)."""
    return str(value if isinstance(value, uuid.UUID) else uuid.UUID(value))


class RemoteSource:
    """A plug-in funding source at `target` ("host:port"), called with `token` within
    `deadline_seconds` per call. `tls=True` opens a TLS channel (system roots, or
    `root_certificates` in PEM); otherwise plaintext, for a source on a private network."""

    def __init__(
        self,
        target: str,
        token: str,
        deadline_seconds: float,
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
    ) -> None:
        if deadline_seconds <= 0:
            raise ValueError("deadline_seconds must be positive")
        self.target = target
        self.deadline_seconds = deadline_seconds
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._tls = tls
        self._root_certificates = root_certificates
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def __repr__(self) -> str:  # never the token
        return f"RemoteSource({self.target!r}, deadline_seconds={self.deadline_seconds})"

    def _client(self) -> Any:
        # Opened on first use, inside the event loop that will drive it.
        if self._stub is None:
            if self._tls:
                credentials = grpc.ssl_channel_credentials(root_certificates=self._root_certificates)
                self._channel = grpc.aio.secure_channel(self.target, credentials, options=_CHANNEL_OPTIONS)
            else:
                self._channel = grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
            self._stub = source_pb2_grpc.FundingSourceStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> RemoteSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, name: str, request: Any) -> Any:
        method = getattr(self._client(), name)
        try:
            # wait_for_ready: a source that is restarting (or a connection being re-established)
            # is waited for within the deadline rather than failing the call at once.
            return await method(request, timeout=self.deadline_seconds, metadata=self._metadata, wait_for_ready=True)
        except grpc.aio.AioRpcError as exc:
            raise self._mapped(name, exc) from exc

    def _mapped(self, name: str, exc: grpc.aio.AioRpcError) -> SourceError:
        code = exc.code()
        detail = exc.details() or ""
        if code in _UNAVAILABLE:
            cause = _UNAVAILABLE[code]
            log.warning("funding source %s: %s %s (%s)", self.target, name, cause, detail)
            return SourceUnavailable(cause, f"{name} to {self.target}: {detail or code.name}")
        if code == grpc.StatusCode.ALREADY_EXISTS:
            return SourceConflict(ConflictKind.ALREADY_EXISTS, detail)
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return SourceConflict(ConflictKind.FAILED_PRECONDITION, detail)
        if code == grpc.StatusCode.NOT_FOUND:
            return SourceNotFound(detail or "no such reservation")
        if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE):
            return SourceInvalidRequest(detail or code.name)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return SourceProtocolError(f"{name} is not implemented by {self.target}: {detail}")
        log.error("funding source %s: %s failed: %s %s", self.target, name, code, detail)
        return SourceUnavailable(UnavailableCause.SOURCE_ERROR, f"{name} to {self.target}: {code.name} {detail}")

    def _protocol(self, name: str, problem: str) -> SourceProtocolError:
        log.error("funding source %s: %s answer breaks the contract: %s", self.target, name, problem)
        return SourceProtocolError(f"{name} answer from {self.target}: {problem}")

    def _money(self, name: str, money: Money, currency: str | None = None) -> int:
        if currency is not None and money.currency != currency:
            raise self._protocol(name, f"amount in {money.currency or '(none)'}, expected {currency}")
        return int(money.amount_minor)

    # --- the contract ---------------------------------------------------------------------

    async def describe(self) -> SourceDescription:
        answer = await self._call("Describe", pb.DescribeRequest())
        return SourceDescription(
            name=answer.name,
            currency=answer.currency,
            territory_ids=tuple(answer.territory_ids),
            contract_version=int(answer.contract_version),
        )

    async def check_funds(self) -> SourceFunds:
        answer = await self._call("CheckFunds", pb.CheckFundsRequest())
        currency = answer.available.currency
        return SourceFunds(
            currency=currency,
            available_minor=self._money("CheckFunds", answer.available, currency),
            reserved_minor=self._money("CheckFunds", answer.reserved, currency),
            committed_minor=self._money("CheckFunds", answer.committed, currency),
            at=_at(answer.at, answer.HasField("at")),
        )

    async def reserve(
        self,
        reservation_id: uuid.UUID | str,
        amount_minor: int,
        currency: str,
        reference: str,
        *,
        commune_id: uuid.UUID | str | None = None,
        project_id: uuid.UUID | str | None = None,
    ) -> SourceReservation:
        """Hold `amount_minor` at the source; `SourceRefused` if it will not."""
        rid = _reservation_id(reservation_id)
        request = pb.ReserveRequest(
            reservation_id=rid, amount=Money(amount_minor=amount_minor, currency=currency), reference=reference
        )
        if commune_id is not None:
            request.commune_id = str(commune_id)
        if project_id is not None:
            request.project_id = str(project_id)
        answer = await self._call("Reserve", request)
        if answer.reservation_id != rid:
            raise self._protocol("Reserve", f"answered for reservation {answer.reservation_id!r}, asked {rid}")
        at = _at(answer.at, answer.HasField("at"))
        if answer.status == pb.RESERVATION_STATUS_REFUSED:
            raise SourceRefused(answer.reason or "unspecified", answer.message, reservation_id=uuid.UUID(rid), at=at)
        if answer.status != pb.RESERVATION_STATUS_RESERVED:
            raise self._protocol("Reserve", f"status {pb.ReservationStatus.Name(answer.status)}")
        held = self._money("Reserve", answer.amount, currency)
        if held != amount_minor:
            raise self._protocol("Reserve", f"held {held}, asked {amount_minor}")
        return SourceReservation(uuid.UUID(rid), held, currency, at)

    async def commit(
        self, reservation_id: uuid.UUID | str, amount_minor: int | None = None, currency: str | None = None
    ) -> SourceCommit:
        """Take the whole reservation (`amount_minor` None) or `amount_minor` of it, in
        `currency` (required then: the contract's amounts name their currency)."""
        rid = _reservation_id(reservation_id)
        request = pb.CommitRequest(reservation_id=rid)
        if amount_minor is not None:
            if currency is None:
                raise ValueError("a partial commit names its currency")
            request.amount.CopyFrom(Money(amount_minor=amount_minor, currency=currency))
        answer = await self._call("Commit", request)
        if answer.reservation_id != rid or answer.status != pb.RESERVATION_STATUS_COMMITTED:
            raise self._protocol("Commit", f"{answer.reservation_id!r} {pb.ReservationStatus.Name(answer.status)}")
        committed_currency = answer.committed.currency
        committed = self._money("Commit", answer.committed, currency)
        if amount_minor is not None and committed != amount_minor:
            raise self._protocol("Commit", f"committed {committed}, asked {amount_minor}")
        return SourceCommit(
            reservation_id=uuid.UUID(rid),
            committed_minor=committed,
            released_minor=self._money("Commit", answer.released, committed_currency),
            currency=committed_currency,
            at=_at(answer.at, answer.HasField("at")),
        )

    async def cancel(self, reservation_id: uuid.UUID | str) -> SourceCancellation:
        """Release the reservation; answers REFUSED (nothing held) for one the source refused."""
        rid = _reservation_id(reservation_id)
        answer = await self._call("Cancel", pb.CancelRequest(reservation_id=rid))
        outcomes = {
            pb.RESERVATION_STATUS_CANCELLED: CancelOutcome.CANCELLED,
            pb.RESERVATION_STATUS_REFUSED: CancelOutcome.REFUSED,
        }
        if answer.reservation_id != rid or answer.status not in outcomes:
            raise self._protocol("Cancel", f"{answer.reservation_id!r} {pb.ReservationStatus.Name(answer.status)}")
        return SourceCancellation(
            reservation_id=uuid.UUID(rid),
            outcome=outcomes[answer.status],
            released_minor=self._money("Cancel", answer.released),
            currency=answer.released.currency,
            at=_at(answer.at, answer.HasField("at")),
        )

    async def statement(self, after: str = "", limit: int = 0) -> SourceStatement:
        """Up to `limit` movements (0: the source's default) after cursor `after` ("" = the start)."""
        answer = await self._call("Statement", pb.StatementRequest(after_cursor=after, limit=limit))
        movements = []
        for m in answer.movements:
            if m.kind not in _MOVEMENT_KINDS:
                raise self._protocol("Statement", f"movement {m.id} of kind {m.kind}")
            try:
                reservation = uuid.UUID(m.reservation_id) if m.reservation_id else None
            except ValueError:
                raise self._protocol("Statement", f"movement {m.id}: reservation {m.reservation_id!r}") from None
            movements.append(
                SourceMovement(
                    movement_id=m.id,
                    reservation_id=reservation,
                    kind=_MOVEMENT_KINDS[m.kind],
                    amount_minor=self._money("Statement", m.amount),
                    released_minor=self._money("Statement", m.released) if m.HasField("released") else 0,
                    currency=m.amount.currency,
                    at=_at(m.at, m.HasField("at")),
                    reference=m.reference,
                    cursor=m.cursor,
                )
            )
        return SourceStatement(tuple(movements), answer.next_cursor, bool(answer.has_more))
