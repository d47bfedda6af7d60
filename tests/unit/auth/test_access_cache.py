"""The per-subject cache of identity's answers: TTL, end dates, LRU bound, single flight and
invalidation (pure logic: a fake clock and a fake loader)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from comuna_platform.auth.access import Assignment, Resolution
from comuna_platform.auth.access_cache import AccessCache
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Unavailable

pytestmark = pytest.mark.asyncio

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def wall(self) -> datetime:
        return NOW + timedelta(seconds=self.t - 1000.0)


class Loader:
    """Answers with a numbered resolution per call; `gate` holds calls until released."""

    def __init__(self, valid_until: datetime | None = None) -> None:
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None
        # Per-call gates (call number -> event), to finish calls in a chosen order.
        self.gates: dict[int, asyncio.Event] = {}
        self.valid_until = valid_until
        self.fail: Exception | None = None

    async def __call__(self, subject: str) -> Resolution:
        self.calls.append(subject)
        number = len(self.calls)
        gate = self.gates.get(number, self.gate)
        if gate is not None:
            await gate.wait()
        if self.fail is not None:
            raise self.fail
        assignment = Assignment(Role.SPOKESPERSON, "VE.01", assignment_id=str(number), valid_until=self.valid_until)
        return Resolution(subject, (assignment,))


async def until_called(loader: Loader, times: int) -> None:
    """Let the event loop run the pending tasks until the loader was entered `times` times
    (no wall-clock wait: a bounded number of scheduler turns)."""
    for _ in range(100):
        if len(loader.calls) >= times:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"loader entered {len(loader.calls)} times, expected {times}")


def cache_with(
    loader: Loader, clock: FakeClock, ttl: float = 30.0, max_entries: int = 100, stale: float = 0.0
) -> AccessCache:
    return AccessCache(loader, ttl=ttl, stale_seconds=stale, max_entries=max_entries, clock=clock, now=clock.wall)


def answer_number(resolution: Resolution) -> str:
    return resolution.assignments[0].assignment_id


async def test_answers_are_reused_until_the_ttl_then_asked_again() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock)
    assert answer_number(await cache.get("ana")) == "1"
    clock.t += 29.9
    assert answer_number(await cache.get("ana")) == "1"
    clock.t += 0.2
    assert answer_number(await cache.get("ana")) == "2"
    assert loader.calls == ["ana", "ana"]


async def test_an_entry_never_outlives_the_earliest_end_of_its_assignments() -> None:
    clock = FakeClock()
    loader = Loader(valid_until=NOW + timedelta(seconds=5))
    cache = cache_with(loader, clock)
    await cache.get("ana")
    clock.t += 4.9
    await cache.get("ana")
    assert len(loader.calls) == 1
    clock.t += 0.2
    await cache.get("ana")
    assert len(loader.calls) == 2


async def test_an_answer_whose_assignment_already_ended_is_not_stored() -> None:
    clock = FakeClock()
    cache = cache_with(Loader(valid_until=NOW - timedelta(seconds=1)), clock)
    await cache.get("ana")
    assert len(cache) == 0


async def test_zero_ttl_asks_every_time() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=0)
    await cache.get("ana")
    await cache.get("ana")
    assert loader.calls == ["ana", "ana"]


async def test_invalidate_drops_one_subject_and_clear_drops_everyone() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock)
    await cache.get("ana")
    await cache.get("bob")
    cache.invalidate("ana")
    await cache.get("ana")
    await cache.get("bob")
    assert loader.calls == ["ana", "bob", "ana"]
    cache.clear()
    await cache.get("bob")
    assert loader.calls == ["ana", "bob", "ana", "bob"]


async def test_least_recently_used_subjects_go_first_beyond_the_bound() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, max_entries=2)
    await cache.get("ana")
    await cache.get("bob")
    await cache.get("ana")  # ana is now the most recently used
    await cache.get("eva")  # evicts bob
    assert len(cache) == 2
    await cache.get("ana")
    await cache.get("bob")
    assert loader.calls == ["ana", "bob", "eva", "bob"]


async def test_concurrent_misses_share_one_call() -> None:
    clock, loader = FakeClock(), Loader()
    loader.gate = asyncio.Event()
    cache = cache_with(loader, clock)
    waiters = [asyncio.create_task(cache.get("ana")) for _ in range(20)]
    await until_called(loader, 1)
    loader.gate.set()
    answers = await asyncio.gather(*waiters)
    assert loader.calls == ["ana"]
    assert {answer_number(a) for a in answers} == {"1"}


async def test_an_answer_in_flight_during_an_invalidation_is_never_stored() -> None:
    clock, loader = FakeClock(), Loader()
    loader.gates = {1: asyncio.Event(), 2: asyncio.Event()}
    cache = cache_with(loader, clock)
    before = asyncio.create_task(cache.get("ana"))
    await until_called(loader, 1)
    cache.invalidate("ana")  # the revocation arrives while identity's old answer is on its way
    after = asyncio.create_task(cache.get("ana"))  # must not join the stale call
    await until_called(loader, 2)
    # The fresh answer arrives first, the stale one last: the stale one must not overwrite it.
    loader.gates[2].set()
    assert answer_number(await after) == "2"
    loader.gates[1].set()
    assert answer_number(await before) == "1"
    assert answer_number(await cache.get("ana")) == "2"
    assert loader.calls == ["ana", "ana"]


async def test_a_failure_reaches_every_waiter_and_is_not_cached() -> None:
    clock, loader = FakeClock(), Loader()
    loader.gate = asyncio.Event()
    loader.fail = RuntimeError("identity down")
    cache = cache_with(loader, clock)
    waiters = [asyncio.create_task(cache.get("ana")) for _ in range(3)]
    await until_called(loader, 1)
    loader.gate.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    loader.fail, loader.gate = None, None
    assert answer_number(await cache.get("ana")) == "2"


async def test_a_waiter_that_goes_away_does_not_cancel_the_shared_call() -> None:
    clock, loader = FakeClock(), Loader()
    loader.gate = asyncio.Event()
    cache = cache_with(loader, clock)
    leaving = asyncio.create_task(cache.get("ana"))
    staying = asyncio.create_task(cache.get("ana"))
    await until_called(loader, 1)
    leaving.cancel()
    loader.gate.set()
    assert answer_number(await staying) == "1"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert loader.calls == ["ana"]


async def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="ttl"):
        AccessCache(Loader(), ttl=-1)
    with pytest.raises(ValueError, match="max_entries"):
        AccessCache(Loader(), ttl=1, max_entries=0)
    with pytest.raises(ValueError, match="stale_seconds"):
        AccessCache(Loader(), ttl=1, stale_seconds=-1)


IDENTITY_DOWN = Unavailable("identity could not say where the caller may act", code="identity_unavailable")


async def test_an_expired_answer_stands_in_while_identity_is_unavailable_up_to_its_bound() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=30, stale=60)
    await cache.get("ana")
    loader.fail = IDENTITY_DOWN
    clock.t += 31
    assert answer_number(await cache.get("ana")) == "1"
    assert len(loader.calls) == 2  # identity was asked, and could not answer
    clock.t += 0.5
    await cache.get("ana")
    assert len(loader.calls) == 2  # within the retry pause: no doomed call per request
    clock.t += 1
    await cache.get("ana")
    assert len(loader.calls) == 3
    clock.t = 1000 + 90.1  # past ttl + stale
    with pytest.raises(Unavailable):
        await cache.get("ana")
    loader.fail = None
    assert answer_number(await cache.get("ana")) == "5"


async def test_identity_back_replaces_the_stand_in_at_once() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=30, stale=60)
    await cache.get("ana")
    loader.fail = IDENTITY_DOWN
    clock.t += 31
    await cache.get("ana")
    loader.fail = None
    clock.t += 1.1
    assert answer_number(await cache.get("ana")) == "3"
    assert answer_number(await cache.get("ana")) == "3"


async def test_only_unavailability_lets_a_stale_answer_stand_in() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=30, stale=60)
    await cache.get("ana")
    loader.fail = RuntimeError("a bug, not an outage")
    clock.t += 31
    with pytest.raises(RuntimeError):
        await cache.get("ana")


async def test_no_stand_in_after_an_invalidation_or_past_an_assignment_end() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=30, stale=60)
    await cache.get("ana")
    cache.invalidate("ana")  # the revocation identity announced applies even with identity down
    loader.fail = IDENTITY_DOWN
    with pytest.raises(Unavailable):
        await cache.get("ana")

    ending = Loader(valid_until=NOW + timedelta(seconds=40))
    cache = cache_with(ending, clock, ttl=30, stale=60)
    await cache.get("bob")
    ending.fail = IDENTITY_DOWN
    clock.t += 35
    assert answer_number(await cache.get("bob")) == "1"
    clock.t += 5.1  # the assignment ended: it must not be served even as a stand-in
    with pytest.raises(Unavailable):
        await cache.get("bob")


async def test_without_a_stale_window_identity_down_is_unavailable_once_the_answer_expires() -> None:
    clock, loader = FakeClock(), Loader()
    cache = cache_with(loader, clock, ttl=30)
    await cache.get("ana")
    loader.fail = IDENTITY_DOWN
    clock.t += 30.1
    with pytest.raises(Unavailable):
        await cache.get("ana")
