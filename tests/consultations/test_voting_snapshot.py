"""The ballot path's in-memory snapshot: TTL, one load for many waiters, cheap refresh while voting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.storage import repository
from comuna_consultations.voting import snapshot as snapshot_module
from comuna_consultations.voting import storage
from comuna_consultations.voting.snapshot import VotingSnapshotCache
from comuna_platform.db import Database

pytestmark = pytest.mark.asyncio

CONSULTATION = uuid.uuid4()
COMMUNE = uuid.uuid4()
CANDIDATE = uuid.uuid4()
TABLE = uuid.uuid4()
T0 = datetime(2030, 1, 1, tzinfo=UTC)
# Registration closes at T0, voting on T0 + 2 days.
SCHEDULE = Schedule(
    T0 - timedelta(days=10),
    T0,
    T0,
    T0 + timedelta(days=2),
    T0 + timedelta(days=2, hours=12),
    T0 + timedelta(days=3),
)


class FakeDb:
    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield None


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {
        "status": "open",
        "verified": False,
        "now": T0 - timedelta(days=1),
        "status_reads": 0,
        "full_reads": 0,
    }

    async def status(session: object, consultation_id: uuid.UUID) -> str | None:
        state["status_reads"] += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        return str(state["status"]) if consultation_id == CONSULTATION else None

    async def codes(session: object, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
        state["full_reads"] += 1
        return {COMMUNE: "VE.01.01.C1"}

    async def candidates(session: object, consultation_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
        return {CANDIDATE: COMMUNE}

    monkeypatch.setattr(repository, "consultation_status", status)
    monkeypatch.setattr(storage, "commune_codes", codes)

    async def roll_keys(session: object, consultation_id: uuid.UUID) -> storage.RollKeys | None:
        return storage.RollKeys(b"k" * 32, None) if state["verified"] else None

    async def schedule(session: object, consultation_id: uuid.UUID) -> Schedule | None:
        return SCHEDULE if consultation_id == CONSULTATION else None

    async def windows(session: object, consultation_id: uuid.UUID) -> dict[uuid.UUID, VotingWindow | None]:
        return {}

    async def tables(session: object, consultation_id: uuid.UUID) -> dict[str, storage.TableRef]:
        return {"T-1": storage.TableRef(TABLE, "T-1", COMMUNE, "electronic")}

    monkeypatch.setattr(storage, "candidate_communes", candidates)
    monkeypatch.setattr(storage, "tables", tables)
    monkeypatch.setattr(storage, "verified_roll_keys", roll_keys)
    monkeypatch.setattr(snapshot_module, "schedule_of", schedule)
    monkeypatch.setattr(snapshot_module, "voting_windows", windows)
    return state


def cache_of(calls: dict[str, Any], clock: Clock) -> VotingSnapshotCache:
    return VotingSnapshotCache(cast(Database, FakeDb()), ttl=1.0, clock=clock, server_now=lambda: calls["now"])


async def test_many_waiters_share_one_load_and_ttl_is_honoured(calls: dict[str, Any]) -> None:
    clock = Clock()
    cache = cache_of(calls, clock)
    snapshots = await asyncio.gather(*(cache.get(CONSULTATION) for _ in range(200)))
    assert calls["status_reads"] == 1
    assert {s.status for s in snapshots if s} == {"open"}
    assert {s.layout_final for s in snapshots if s} == {False}
    clock.now = 0.5
    await cache.get(CONSULTATION)
    assert calls["status_reads"] == 1
    clock.now = 1.5
    await cache.get(CONSULTATION)
    assert calls["status_reads"] == 2


async def test_before_voting_opens_a_refresh_rereads_candidates_and_tables(calls: dict[str, Any]) -> None:
    clock = Clock()
    cache = cache_of(calls, clock)
    calls["verified"] = True
    await cache.get(CONSULTATION)
    clock.now = 2.0
    await cache.get(CONSULTATION)
    # Voting not open on the server clock: candidates and tables may still change.
    assert calls["full_reads"] == 2


async def test_refresh_while_voting_reads_only_the_status(calls: dict[str, Any]) -> None:
    clock = Clock()
    cache = cache_of(calls, clock)
    calls["verified"] = True
    calls["now"] = T0 + timedelta(days=2, hours=1)
    first = await cache.get(CONSULTATION)
    assert first is not None and calls["full_reads"] == 1 and first.layout_final
    calls["status"] = "certified"
    clock.now = 2.0
    second = await cache.get(CONSULTATION)
    assert second is not None and second.status == "certified"
    assert second.candidate_communes == {CANDIDATE: COMMUNE}
    assert second.tables["T-1"].id == TABLE
    assert calls["full_reads"] == 1
    fresh = await cache.get(CONSULTATION, fresh=True)
    assert fresh is not None and calls["status_reads"] == 3
    cache.invalidate(CONSULTATION)
    await cache.get(CONSULTATION)
    assert calls["full_reads"] == 2


async def test_unknown_consultations_are_not_cached(calls: dict[str, Any]) -> None:
    cache = VotingSnapshotCache(cast(Database, FakeDb()), ttl=1.0, clock=Clock())
    assert await cache.get(uuid.uuid4()) is None
    assert await cache.get(uuid.uuid4()) is None
    assert calls["status_reads"] == 2
