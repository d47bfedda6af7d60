"""`comuna_platform.coalesce.Coalescer`: concurrent single-key reads answered by shared fetches."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comuna_platform.coalesce import Coalescer


class Table:
    """A fetch over a dict, recording each call's keys; `gate` holds fetches until released."""

    def __init__(self, rows: Mapping[int, str]) -> None:
        self.rows = dict(rows)
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next = False

    async def fetch(self, keys: Sequence[int]) -> Mapping[int, str]:
        self.calls.append(list(keys))
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database went away")
        return {key: self.rows[key] for key in keys if key in self.rows}


async def settle() -> None:
    """Let the callers queue and the fetches they started begin (a few loop iterations)."""
    for _ in range(3):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_lone_key_is_fetched_at_once_and_alone() -> None:
    table = Table({1: "a"})
    coalescer = Coalescer(table.fetch)
    assert await coalescer.get(1) == "a"
    assert await coalescer.get(2) is None
    assert table.calls == [[1], [2]]


@pytest.mark.asyncio
async def test_keys_asked_while_fetches_run_share_the_next_fetch() -> None:
    table = Table({i: str(i) for i in range(100)})
    table.gate.clear()
    coalescer = Coalescer(table.fetch, max_in_flight=1)
    answers = [asyncio.ensure_future(coalescer.get(i)) for i in range(100)]
    await settle()
    assert table.calls == [[0]]  # the first went alone; 99 wait behind it
    table.gate.set()
    assert await asyncio.gather(*answers) == [str(i) for i in range(100)]
    assert table.calls == [[0], list(range(1, 100))]


@pytest.mark.asyncio
async def test_a_fetch_takes_at_most_max_keys() -> None:
    table = Table({i: str(i) for i in range(25)})
    table.gate.clear()
    coalescer = Coalescer(table.fetch, max_keys=10, max_in_flight=1)
    answers = [asyncio.ensure_future(coalescer.get(i)) for i in range(25)]
    await settle()
    table.gate.set()
    assert await asyncio.gather(*answers) == [str(i) for i in range(25)]
    assert [len(call) for call in table.calls] == [1, 10, 10, 4]


@pytest.mark.asyncio
async def test_the_same_key_twice_is_fetched_once() -> None:
    table = Table({7: "seven"})
    table.gate.clear()
    coalescer = Coalescer(table.fetch, max_in_flight=1)
    blocker = asyncio.ensure_future(coalescer.get(1))
    twice = [asyncio.ensure_future(coalescer.get(7)) for _ in range(2)]
    await settle()
    table.gate.set()
    assert await asyncio.gather(*twice) == ["seven", "seven"]
    assert await blocker is None
    assert table.calls == [[1], [7]]


@pytest.mark.asyncio
async def test_a_failed_fetch_fails_its_callers_only_and_caches_nothing() -> None:
    table = Table({1: "a", 2: "b"})
    coalescer = Coalescer(table.fetch)
    table.fail_next = True
    with pytest.raises(ConnectionError):
        await coalescer.get(1)
    assert await coalescer.get(1) == "a"  # read again, not remembered as failed
    assert await coalescer.get(2) == "b"


@pytest.mark.asyncio
async def test_a_caller_that_goes_away_does_not_cancel_the_shared_answer() -> None:
    table = Table({5: "five"})
    table.gate.clear()
    coalescer = Coalescer(table.fetch, max_in_flight=1)
    gone = asyncio.ensure_future(coalescer.get(5))
    stays = asyncio.ensure_future(coalescer.get(5))
    await settle()
    gone.cancel()
    table.gate.set()
    assert await stays == "five"


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        Coalescer(Table({}).fetch, max_keys=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        Coalescer(Table({}).fetch, max_in_flight=0)


@settings(max_examples=50, deadline=None)
@given(
    keys=st.lists(st.integers(min_value=0, max_value=40), max_size=80),
    max_keys=st.integers(min_value=1, max_value=16),
    max_in_flight=st.integers(min_value=1, max_value=4),
)
def test_every_caller_gets_exactly_what_the_table_holds(keys: list[int], max_keys: int, max_in_flight: int) -> None:
    rows = {i: f"v{i}" for i in range(0, 40, 3)}

    async def scenario() -> None:
        table = Table(rows)
        coalescer = Coalescer(table.fetch, max_keys=max_keys, max_in_flight=max_in_flight)
        answers = await asyncio.gather(*(coalescer.get(key) for key in keys))
        assert answers == [rows.get(key) for key in keys]
        assert all(len(call) <= max_keys for call in table.calls)
        assert all(len(set(call)) == len(call) for call in table.calls)

    asyncio.run(scenario())
