"""What operators do with parked messages, the same for the CLI and the REST API.

List and inspect them, and replay one (or all) through its consumer once the cause is fixed:
the handler runs through the same inbox path, so a replay applies the event exactly once, and
replaying the same row twice applies nothing the second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from comuna_platform.db import Database
from comuna_platform.errors import FailedPrecondition, NotFound
from comuna_platform.events.consumer import EventConsumer, ReplayRefused
from comuna_platform.events.failures import is_transient
from comuna_platform.events.parking import PARKED_GAUGE, ParkedMessage, get_parked, list_parked, refresh_gauge

log = logging.getLogger(__name__)

# How often each process re-reads the parked count, so the gauge also reflects rows parked or
# replayed by other replicas and by the CLI.
GAUGE_REFRESH_SECONDS = 15.0


@dataclass(frozen=True)
class ReplayResult:
    id: int
    outcome: str  # applied | duplicate | already_replayed

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "outcome": self.outcome}


class ParkedMessages:
    def __init__(self, db: Database, consumers: Sequence[EventConsumer]) -> None:
        self._db = db
        self._consumers = {c.name: c for c in consumers}

    @property
    def consumer_names(self) -> list[str]:
        return sorted(self._consumers)

    async def list_messages(
        self, *, consumer: str | None = None, include_replayed: bool = False, after: int = 0, limit: int = 50
    ) -> list[ParkedMessage]:
        async with self._db.transaction() as session:
            return await list_parked(
                session, consumer=consumer, include_replayed=include_replayed, after=after, limit=limit
            )

    async def get(self, parked_id: int) -> ParkedMessage:
        async with self._db.transaction() as session:
            found = await get_parked(session, parked_id)
        if found is None:
            raise NotFound(f"no parked message {parked_id}", code="parked_message_not_found")
        return found

    async def replay(self, parked_id: int) -> ReplayResult:
        """Replay one row; `FailedPrecondition` when it cannot (yet) be applied, the row kept."""
        parked = await self.get(parked_id)
        consumer = self._consumers.get(parked.consumer)
        if consumer is None:
            raise FailedPrecondition(
                f"parked message {parked_id} belongs to consumer {parked.consumer}, which this service no longer runs",
                code="unknown_consumer",
            )
        try:
            outcome = await consumer.replay(parked)
        except ReplayRefused as exc:
            raise FailedPrecondition(
                f"parked message {parked_id} cannot be replayed: {exc}", code="not_replayable"
            ) from exc
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning("replay failed; the message stays parked", exc_info=exc, extra={"parked_id": parked_id})
            raise FailedPrecondition(
                f"parked message {parked_id} still fails: {type(exc).__name__}: {exc}"[:500], code="replay_failed"
            ) from exc
        await self.refresh_gauge()
        return ReplayResult(parked_id, outcome)

    async def replay_all(self, *, consumer: str | None = None) -> list[ReplayResult | dict[str, Any]]:
        """Replay every unreplayed row (of `consumer`); a failure is reported and the rest go on."""
        results: list[ReplayResult | dict[str, Any]] = []
        after = 0
        while batch := await self.list_messages(consumer=consumer, after=after, limit=100):
            for parked in batch:
                try:
                    results.append(await self.replay(parked.id))
                except FailedPrecondition as exc:
                    results.append({"id": parked.id, "outcome": "failed", "error": exc.detail})
            after = batch[-1].id
        return results

    async def refresh_gauge(self) -> None:
        await refresh_gauge(self._db, self.consumer_names)

    async def run_gauge(self, stop: asyncio.Event) -> None:
        """Worker: keep `comuna_parked_messages` in step with the database."""
        for name in self.consumer_names:
            PARKED_GAUGE.labels(name).set(0)
        while not stop.is_set():
            try:
                await self.refresh_gauge()
            except Exception as exc:
                # The database being down is reported by /readyz; the gauge simply keeps its value.
                log.warning("cannot refresh the parked-messages gauge: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=GAUGE_REFRESH_SECONDS)
            except TimeoutError:
                pass
