"""Small builders shared by the funding tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from nats.js.errors import NotFoundError

from comuna_funding.domain import ledger
from comuna_funding.domain.ledger import AccountSpec, NewTransfer
from comuna_funding.storage.ledger_store import AccountRow
from comuna_platform.db import Database
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.registry import contract_of

T = TypeVar("T")
M = TypeVar("M", bound=Message)


def spec(
    kind: str = "commune", currency: str = "USD", *, limit_debits: bool = False, limit_credits: bool = False
) -> AccountSpec:
    return AccountSpec(
        key=f"test:{uuid.uuid4()}",
        currency=currency,
        kind=kind,
        debits_must_not_exceed_credits=limit_debits,
        credits_must_not_exceed_debits=limit_credits,
    )


async def open_accounts(db: Database, *specs: AccountSpec) -> list[AccountRow]:
    async with db.transaction() as session:
        rows = await ledger.ensure_accounts(session, list(specs))
    return [rows[s.key] for s in specs]


def transfer(
    debit: AccountRow,
    credit: AccountRow,
    amount: int,
    *,
    transfer_id: uuid.UUID | None = None,
    code: str = "test",
    reference: str = "",
) -> NewTransfer:
    return NewTransfer(
        id=transfer_id or uuid.uuid4(),
        debit_account_id=debit.id,
        credit_account_id=credit.id,
        amount=amount,
        currency=debit.currency,
        code=code,
        reference=reference,
    )


async def post(db: Database, *transfers: NewTransfer) -> list[ledger.TransferOutcome]:
    async with db.transaction() as session:
        return await ledger.create_transfers(session, list(transfers))


async def funded_earmark(db: Database, amount: int, currency: str = "USD") -> tuple[AccountRow, AccountRow]:
    """A source and a flagged account holding `amount` that it received from the source."""
    source, earmark = await open_accounts(db, spec("source", currency), spec("commitment", currency, limit_debits=True))
    await post(db, transfer(source, earmark, amount))
    return source, earmark


async def account(db: Database, account_id: uuid.UUID) -> AccountRow:
    from comuna_funding.storage import ledger_store

    async with db.transaction() as session:
        row = await ledger_store.account_by_id(session, account_id)
    assert row is not None
    return row


# --- events ---------------------------------------------------------------------------------

ASYNC_TIMEOUT = 20.0


async def publish(
    js: Any,
    subject: str,
    message: Message,
    *,
    event_id: uuid.UUID | None = None,
    msg_id: str | None = None,
    source: str | None = None,
) -> uuid.UUID:
    """Publish like a Comuna outbox relay does: CloudEvents headers, protobuf payload.

    `msg_id` overrides Nats-Msg-Id, so the same CloudEvents id can get past JetStream's
    duplicate window and reach the consumer a second time (a true redelivery). `source` defaults
    to the rightful producer's (consumers park an event from anyone else).
    """
    event_id = event_id or uuid.uuid4()
    envelope = Envelope(
        event_id=event_id,
        source=source or contract_of(type(message)).source,
        event_type=message.DESCRIPTOR.full_name,
        time=datetime.now(UTC),
        subject=subject,
    )
    headers = envelope.to_headers()
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id
    await js.publish(subject, message.SerializeToString(), headers=headers)
    return event_id


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, within: float = ASYNC_TIMEOUT) -> T:
    """Poll `check` until it returns something other than None/False."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result is not None and result is not False:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def drained(js: Any, stream: str, durable: str) -> None:
    """Wait until the durable consumer has been delivered everything and acknowledged it all."""
    last = (await js.stream_info(stream)).state.last_seq

    async def done() -> bool:
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            return False
        return bool(info.delivered.stream_seq >= last and info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(done, f"{durable} to drain {stream}")


async def stream_messages(js: Any, stream: str, subject: str, message_type: type[M]) -> list[tuple[dict[str, str], M]]:
    """Every message stored on `subject`, decoded (read directly, without a consumer)."""
    info = await js.stream_info(stream)
    found: list[tuple[dict[str, str], M]] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            stored = await js.get_msg(stream, seq)
        except NotFoundError:
            continue
        if stored.subject == subject:
            found.append((dict(stored.headers or {}), message_type.FromString(stored.data or b"")))
    return found
