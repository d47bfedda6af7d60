"""The gRPC edge of the treasury: `comuna.funding.source.v1.FundingSource` over the store.

Every method goes through `_rpc`: the bearer token is checked first (UNAUTHENTICATED, nothing
done), the store's refusals become status codes, and the work itself is shielded from the
caller's cancellation: a caller whose deadline passes mid-way does not cut a transaction in
half; the treasury finishes (commits or rolls back) and the caller learns the outcome by
retrying or from the statement. `delay_seconds` (a testing aid) holds every answer back that
long AFTER the work is durable, to play a source that answers late.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import DBAPIError, IntegrityError

from comuna.common.v1.money_pb2 import Money
from comuna.funding.source.v1 import source_pb2 as pb
from comuna.funding.source.v1 import source_pb2_grpc
from comuna_treasury import rules, store
from comuna_treasury.store import Kind, Status

log = logging.getLogger("comuna_treasury")

CONTRACT_VERSION = 1
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FundingSource"].full_name

T = TypeVar("T")
if TYPE_CHECKING:
    Context = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    Status.RESERVED: pb.RESERVATION_STATUS_RESERVED,
    Status.REFUSED: pb.RESERVATION_STATUS_REFUSED,
    Status.COMMITTED: pb.RESERVATION_STATUS_COMMITTED,
    Status.CANCELLED: pb.RESERVATION_STATUS_CANCELLED,
}
_KIND = {
    Kind.RESERVE: pb.MOVEMENT_KIND_RESERVE,
    Kind.COMMIT: pb.MOVEMENT_KIND_COMMIT,
    Kind.CANCEL: pb.MOVEMENT_KIND_CANCEL,
    Kind.DEPOSIT: pb.MOVEMENT_KIND_DEPOSIT,
}
_CODES: dict[type[rules.TreasuryError], grpc.StatusCode] = {
    rules.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    rules.NotFound: grpc.StatusCode.NOT_FOUND,
    rules.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    rules.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    rules.NoAccount: grpc.StatusCode.FAILED_PRECONDITION,
}


@dataclass(frozen=True)
class Config:
    name: str
    currency: str
    territory_ids: tuple[str, ...]
    token: str
    delay_seconds: float = 0.0


def _timestamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def _money(amount_minor: int, currency: str) -> Money:
    return Money(amount_minor=amount_minor, currency=currency)


def _authorised(metadata: Iterable[tuple[str, str | bytes]] | None, token: str) -> bool:
    for key, value in metadata or ():
        if key.lower() != "authorization" or not isinstance(value, str):
            continue
        scheme, _, given = value.partition(" ")
        # Constant-time comparison: the token is the only thing between the internet and the money.
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return False


class TreasuryServicer(source_pb2_grpc.FundingSourceServicer):
    def __init__(self, books: store.Store, config: Config) -> None:
        self.store = books
        self.config = config
        # Work in flight, kept referenced so a shielded task outlives a cancelled RPC.
        self._work: set[asyncio.Task[object]] = set()

    async def _rpc(self, context: Context, method: str, work: Callable[[], Awaitable[T]]) -> T:
        if not _authorised(context.invocation_metadata(), self.config.token):
            log.warning("%s refused: missing or wrong bearer token", method)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid 'authorization: Bearer <token>' is required")
        task: asyncio.Task[T] = asyncio.ensure_future(work())
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        task.add_done_callback(_log_unseen_failure)
        try:
            result = await asyncio.shield(task)
        except rules.TreasuryError as exc:
            log.info("%s refused: %s", method, exc)
            await self._late()
            await context.abort(_CODES.get(type(exc), grpc.StatusCode.INVALID_ARGUMENT), str(exc))
        except IntegrityError as exc:
            # A constraint caught what the code should have: a bug, and nothing was written.
            log.error("%s: the database refused a write: %s", method, exc.orig)
            await context.abort(grpc.StatusCode.INTERNAL, "the treasury refused an inconsistent write")
        except (DBAPIError, OSError) as exc:
            # Nothing was committed (or the commit's outcome is unknown): the caller retries.
            log.error("%s: database unavailable: %s", method, getattr(exc, "orig", None) or exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the treasury's database is unavailable")
        await self._late()
        return result

    async def _late(self) -> None:
        if self.config.delay_seconds > 0:
            await asyncio.sleep(self.config.delay_seconds)

    async def drain(self) -> None:
        """Wait for work whose callers went away (on shutdown: let transactions finish)."""
        if self._work:
            await asyncio.gather(*self._work, return_exceptions=True)

    async def Describe(self, request: pb.DescribeRequest, context: Context) -> pb.DescribeResponse:
        async def work() -> pb.DescribeResponse:
            return pb.DescribeResponse(
                name=self.config.name,
                currency=self.config.currency,
                territory_ids=list(self.config.territory_ids),
                contract_version=CONTRACT_VERSION,
            )

        return await self._rpc(context, "Describe", work)

    async def CheckFunds(self, request: pb.CheckFundsRequest, context: Context) -> pb.CheckFundsResponse:
        async def work() -> pb.CheckFundsResponse:
            funds = await self.store.funds()
            return pb.CheckFundsResponse(
                available=_money(funds.available_minor, funds.currency),
                reserved=_money(funds.reserved_minor, funds.currency),
                committed=_money(funds.committed_minor, funds.currency),
                at=_timestamp(store.now()),
            )

        return await self._rpc(context, "CheckFunds", work)

    async def Reserve(self, request: pb.ReserveRequest, context: Context) -> pb.ReserveResponse:
        async def work() -> pb.ReserveResponse:
            if not request.HasField("amount"):
                raise rules.InvalidArgument("amount is required")
            ask = store.ReserveRequest(
                reservation_id=rules.parse_reservation_id(request.reservation_id),
                amount_minor=rules.check_amount(request.amount.amount_minor),
                currency=rules.check_currency(request.amount.currency, "amount.currency"),
                reference=rules.check_text(request.reference, "reference", rules.MAX_REFERENCE),
                commune_id=rules.optional_id(request.commune_id, "commune_id"),
                project_id=rules.optional_id(request.project_id, "project_id"),
            )
            outcome = await self.store.reserve(ask)
            log.info(
                "reserve %s %s %s: %s%s",
                outcome.reservation_id,
                outcome.amount_minor,
                outcome.currency,
                outcome.status,
                f" ({outcome.reason})" if outcome.reason else "",
            )
            return pb.ReserveResponse(
                reservation_id=str(outcome.reservation_id),
                status=_STATUS[outcome.status],
                reason=outcome.reason or "",
                amount=_money(outcome.amount_minor, outcome.currency),
                at=_timestamp(outcome.at),
                message=_refusal_message(outcome),
            )

        return await self._rpc(context, "Reserve", work)

    async def Commit(self, request: pb.CommitRequest, context: Context) -> pb.CommitResponse:
        async def work() -> pb.CommitResponse:
            reservation_id = rules.parse_reservation_id(request.reservation_id)
            amount: int | None = None
            currency: str | None = None
            if request.HasField("amount"):
                amount = rules.check_amount(request.amount.amount_minor)
                currency = rules.check_currency(request.amount.currency, "amount.currency")
            outcome = await self.store.commit(reservation_id, amount, currency)
            log.info(
                "commit %s: %s committed, %s released", reservation_id, outcome.committed_minor, outcome.released_minor
            )
            return pb.CommitResponse(
                reservation_id=str(outcome.reservation_id),
                status=pb.RESERVATION_STATUS_COMMITTED,
                committed=_money(outcome.committed_minor, outcome.currency),
                released=_money(outcome.released_minor, outcome.currency),
                at=_timestamp(outcome.at),
            )

        return await self._rpc(context, "Commit", work)

    async def Cancel(self, request: pb.CancelRequest, context: Context) -> pb.CancelResponse:
        async def work() -> pb.CancelResponse:
            reservation_id = rules.parse_reservation_id(request.reservation_id)
            outcome = await self.store.cancel(reservation_id)
            log.info("cancel %s: %s, %s released", reservation_id, outcome.status, outcome.released_minor)
            return pb.CancelResponse(
                reservation_id=str(outcome.reservation_id),
                status=_STATUS[outcome.status],
                released=_money(outcome.released_minor, outcome.currency),
                at=_timestamp(outcome.at),
            )

        return await self._rpc(context, "Cancel", work)

    async def Statement(self, request: pb.StatementRequest, context: Context) -> pb.StatementResponse:
        async def work() -> pb.StatementResponse:
            after = rules.parse_cursor(request.after_cursor)
            limit = rules.page_limit(request.limit)
            page, more = await self.store.statement(after, limit)
            return pb.StatementResponse(
                movements=[
                    pb.Movement(
                        id=str(m.id),
                        reservation_id=str(m.reservation_id) if m.reservation_id else "",
                        kind=_KIND[m.kind],
                        amount=_money(m.amount_minor, m.currency),
                        at=_timestamp(m.at),
                        reference=m.reference,
                        released=_money(m.released_minor, m.currency),
                        cursor=str(m.seq),
                    )
                    for m in page
                ],
                next_cursor=str(page[-1].seq) if page else request.after_cursor,
                has_more=more,
            )

        return await self._rpc(context, "Statement", work)


def _log_unseen_failure(task: asyncio.Task[Any]) -> None:
    """A shielded task whose caller went away still has its failure logged (and retrieved)."""
    if not task.cancelled() and (exc := task.exception()) is not None and not isinstance(exc, rules.TreasuryError):
        log.debug("work ended in %s", exc.__class__.__name__)


def _refusal_message(outcome: store.ReserveOutcome) -> str:
    if outcome.reason == store.Reason.INSUFFICIENT_FUNDS:
        return f"not enough available to hold {outcome.amount_minor} {outcome.currency}"
    if outcome.reason == store.Reason.CURRENCY_MISMATCH:
        return f"this treasury holds no {outcome.currency}"
    return ""


async def serve(
    books: store.Store,
    config: Config,
    listen: str,
    stop: asyncio.Event,
    *,
    credentials: grpc.ServerCredentials | None = None,
    grace_seconds: float = 5.0,
) -> None:
    """Serve until `stop` is set, then finish the calls in flight (up to `grace_seconds`)."""
    server = grpc.aio.server()
    servicer = TreasuryServicer(books, config)
    source_pb2_grpc.add_FundingSourceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_secure_port(listen, credentials) if credentials else server.add_insecure_port(listen)
    await server.start()
    log.info(
        "treasury %r (%s, territories %s) serving %s on %s:%s%s",
        config.name,
        config.currency,
        ",".join(config.territory_ids) or "-",
        SERVICE_NAME,
        listen.rpartition(":")[0],
        port,
        f", answering {config.delay_seconds} s late (testing aid)" if config.delay_seconds else "",
    )
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing calls in flight")
        await server.stop(grace_seconds)
        await servicer.drain()
        log.info("stopped")
