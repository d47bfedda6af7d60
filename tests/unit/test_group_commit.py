"""`comuna_platform.group_commit.GroupCommit`: concurrent single writes stored by shared batches,
and how funding cuts such a batch into parts the ledger accepts (`transfer_commits.parts`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_funding.domain.ledger import Exchange, NewTransfer
from comuna_funding.transfer_commits import parts
from comuna_funding.vocabulary import TransferKind
from comuna_platform.group_commit import GroupCommit


class Store:
    """A write recording each batch; `gate` holds writes until released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def write(self, items: Sequence[int]) -> list[str]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")
        return [f"stored {item}" for item in items]


async def settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_lone_item_is_written_at_once_and_alone() -> None:
    store = Store()
    commits = GroupCommit(store.write)
    assert await commits.submit(7) == "stored 7"
    assert store.batches == [[7]]


@pytest.mark.asyncio
async def test_items_queued_while_writers_are_busy_share_the_next_batch_in_order() -> None:
    store = Store()
    store.gate.clear()
    commits = GroupCommit(store.write, max_size=3, writers=1)
    calls = [asyncio.ensure_future(commits.submit(i)) for i in range(7)]
    await settle()
    assert store.batches == [[0]]  # the first went alone; the rest wait for the writer
    store.gate.set()
    assert await asyncio.gather(*calls) == [f"stored {i}" for i in range(7)]
    assert store.batches == [[0], [1, 2, 3], [4, 5, 6]]


@pytest.mark.asyncio
async def test_a_failed_batch_fails_each_of_its_callers_and_no_other() -> None:
    store = Store()
    store.gate.clear()
    commits = GroupCommit(store.write, writers=1)
    first = asyncio.ensure_future(commits.submit(1))
    await settle()
    store.fail_next = True  # the first batch, [1], fails
    queued = [asyncio.ensure_future(commits.submit(i)) for i in (2, 3)]
    await settle()
    store.gate.set()
    with pytest.raises(ConnectionError):
        await first
    assert await asyncio.gather(*queued) == ["stored 2", "stored 3"]
    assert store.batches == [[1], [2, 3]]
    assert await commits.submit(4) == "stored 4"  # the group commit keeps working


@pytest.mark.asyncio
async def test_a_caller_that_goes_away_does_not_cancel_the_batch_of_others() -> None:
    store = Store()
    store.gate.clear()
    commits = GroupCommit(store.write, writers=1)
    blocker = asyncio.ensure_future(commits.submit(0))
    await settle()
    leaving, staying = asyncio.ensure_future(commits.submit(1)), asyncio.ensure_future(commits.submit(2))
    await settle()
    leaving.cancel()
    store.gate.set()
    assert await staying == "stored 2"
    assert await blocker == "stored 0"
    assert store.batches == [[0], [1, 2]]


@pytest.mark.asyncio
async def test_a_write_answering_the_wrong_number_of_results_fails_its_batch() -> None:
    async def short(items: Sequence[int]) -> list[str]:
        return []

    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        await GroupCommit(short).submit(1)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Store().write, max_size=0)
    with pytest.raises(ValueError):
        GroupCommit(Store().write, writers=0)


# -- funding's parts of a batch ---------------------------------------------------------------

IDS = [uuid.UUID(int=n) for n in range(1, 6)]


def transfer(n: int, *, linked: bool = False, exchange: bool = False) -> NewTransfer:
    return NewTransfer(
        id=IDS[n],
        debit_account_id=IDS[0],
        credit_account_id=IDS[1],
        amount=1,
        currency="USD",
        code="test",
        kind=TransferKind.SINGLE,
        linked=linked,
        exchange=Exchange(IDS[2], IDS[3], Decimal("1")) if exchange else None,
    )


@given(st.lists(st.tuples(st.integers(0, 4), st.booleans(), st.booleans()), max_size=30))
@settings(max_examples=200, deadline=None)
def test_parts_keep_the_order_repeat_no_id_and_isolate_linked_transfers_and_exchange_legs(
    shape: list[tuple[int, bool, bool]],
) -> None:
    batch = [transfer(n, linked=linked, exchange=exchange) for n, linked, exchange in shape]
    cut = parts(batch)
    assert [t for part in cut for t in part] == batch
    for part in cut:
        assert part
        assert len({t.id for t in part}) == len(part)
        if any(t.linked or t.exchange is not None for t in part):
            assert len(part) == 1
