"""The ballot path's in-memory snapshot: TTL, one load for many waiters, cheap refresh while voting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from comuna_consultations.voting import storage
from comuna_consultations.voting.snapshot import VotingSnapshotCache
from comuna_platform.db import Database

pytestmark = pytest.mark.asyncio

CONSULTATION = uuid.uuid4()
COMMUNE = uuid.uuid4()
CANDIDATE = uuid.uuid4()
OPENS = datetime(2026, 6, 1, 10, tzinfo=UTC)
CLOSES = datetime(2026, 6, 1, 22, tzinfo=UTC)


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
    state: dict[str, Any] = {"status": "assembly", "status_reads": 0, "full_reads": 0}

    async def status(session: object, consultation_id: uuid.UUID) -> storage.VotingState | None:
        state["status_reads"] += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up
        if consultation_id != CONSULTATION:
            return None
        return storage.VotingState(str(state["status"]), OPENS, CLOSES)

    async def codes(session: object, consultation_id: uuid.UUID) -> dict[uuid.UUID, str]:
        state["full_reads"] += 1
        return {COMMUNE: "VE.01.01.C1"}

    async def candidates(session: object, consultation_id: uuid.UUID) -> dict[uuid.UUID, uuid.UUID]:
        return {CANDIDATE: COMMUNE}

    monkeypatch.setattr(storage, "voting_state", status)
    monkeypatch.setattr(storage, "commune_codes", codes)

    async def roll_keys(session: object, consultation_id: uuid.UUID) -> storage.RollKeys | None:
        return storage.RollKeys(b"k" * 32, b"l" * 32) if state["status"] != "assembly" else None

    monkeypatch.setattr(storage, "candidate_communes", candidates)
    monkeypatch.setattr(storage, "verified_roll_keys", roll_keys)
    return state


async def test_many_waiters_share_one_load_and_ttl_is_honoured(calls: dict[str, Any]) -> None:
    clock = Clock()
    cache = VotingSnapshotCache(cast(Database, FakeDb()), ttl=1.0, clock=clock)
    snapshots = await asyncio.gather(*(cache.get(CONSULTATION) for _ in range(200)))
    assert calls["status_reads"] == 1
    assert {s.status for s in snapshots if s} == {"assembly"}
    clock.now = 0.5
    await cache.get(CONSULTATION)
    assert calls["status_reads"] == 1
    clock.now = 1.5
    await cache.get(CONSULTATION)
    assert calls["status_reads"] == 2


async def test_refresh_while_voting_reads_only_the_status(calls: dict[str, Any]) -> None:
    clock = Clock()
    cache = VotingSnapshotCache(cast(Database, FakeDb()), ttl=1.0, clock=clock)
    calls["status"] = "voting"
    first = await cache.get(CONSULTATION)
    assert first is not None and calls["full_reads"] == 1
    calls["status"] = "closed"
    clock.now = 2.0
    second = await cache.get(CONSULTATION)
    assert second is not None and second.status == "closed"
    assert second.candidate_communes == {CANDIDATE: COMMUNE}
    # Every refresh re-reads the window with the status.
    assert second.window_of(COMMUNE) is not None and second.window_of(COMMUNE) == first.window
    assert second.window.accepts_ballots(OPENS) and not second.window.accepts_ballots(CLOSES)
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
