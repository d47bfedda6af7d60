"""`read_ahead`: the same items in the same order, never more than `depth` ahead, errors where they happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_platform.read_ahead import read_ahead


class Boom(Exception):
    pass


async def numbers(count: int, produced: list[int], fail_at: int | None = None) -> AsyncIterator[int]:
    for i in range(count):
        if i == fail_at:
            raise Boom(i)
        produced.append(i)
        yield i


@given(count=st.integers(0, 50), depth=st.integers(1, 5))
def test_items_come_in_order_and_all_of_them(count: int, depth: int) -> None:
    async def collect() -> list[int]:
        return [i async for i in read_ahead(numbers(count, []), depth)]

    assert asyncio.run(collect()) == list(range(count))


@pytest.mark.asyncio
async def test_never_more_than_depth_ahead_of_the_consumer() -> None:
    produced: list[int] = []
    ahead = []
    async for item in read_ahead(numbers(20, produced), depth=3):
        await asyncio.sleep(0)  # let the reader run as far as it may
        await asyncio.sleep(0)
        ahead.append(len(produced) - (item + 1))
    # The queue holds 3, and the reader may hold one more it is waiting to put.
    assert max(ahead) <= 4
    assert max(ahead) >= 1  # it does read ahead


@pytest.mark.asyncio
async def test_an_error_is_raised_after_the_items_before_it() -> None:
    seen: list[int] = []
    with pytest.raises(Boom):
        async for item in read_ahead(numbers(10, [], fail_at=4), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3]


@pytest.mark.asyncio
async def test_leaving_early_stops_the_reader() -> None:
    produced: list[int] = []
    stream = read_ahead(numbers(1000, produced), depth=2)
    async for item in stream:
        if item == 3:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    count = len(produced)
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(produced) == count < 1000


def test_depth_must_be_positive() -> None:
    async def first() -> None:
        async for _ in read_ahead(numbers(1, []), depth=0):
            pass

    with pytest.raises(ValueError):
        asyncio.run(first())
