"""The voters' roll entries as the ballot path reads them: coalesced across concurrent ballots.

Each ballot needs its voter's entry on this consultation's roll (by entry key at a table, by
login key online). Read one by one, those reads cost more of this process's CPU than the group
commit itself; `comuna_platform.coalesce.Coalescer` answers the ballots in flight with one
`= ANY(...)` query per consultation instead.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence

from comuna_consultations.voting import storage
from comuna_platform.coalesce import Coalescer
from comuna_platform.db import Database

EntryKey = tuple[uuid.UUID, bytes]  # (consultation, key)


class RollLookups:
    def __init__(self, db: Database, *, max_keys: int = 500, max_in_flight: int = 2) -> None:
        self._db = db
        self._communes: Coalescer[EntryKey, uuid.UUID] = Coalescer(
            self._fetch_communes, max_keys=max_keys, max_in_flight=max_in_flight
        )
        self._logins: Coalescer[EntryKey, tuple[bytes, uuid.UUID]] = Coalescer(
            self._fetch_logins, max_keys=max_keys, max_in_flight=max_in_flight
        )

    async def commune_of(self, consultation_id: uuid.UUID, entry_key: bytes) -> uuid.UUID | None:
        """The commune of the roll entry with this key; None if it is not on the roll."""
        return await self._communes.get((consultation_id, entry_key))

    async def entry_of_login(self, consultation_id: uuid.UUID, login_key: bytes) -> tuple[bytes, uuid.UUID] | None:
        """(entry key, commune) of the signed-in resident with this login key; None if not on the roll."""
        return await self._logins.get((consultation_id, login_key))

    async def _fetch_communes(self, keys: Sequence[EntryKey]) -> Mapping[EntryKey, uuid.UUID]:
        found: dict[EntryKey, uuid.UUID] = {}
        async with self._db.autocommit() as conn:
            for consultation_id, entry_keys in _by_consultation(keys).items():
                rows = await storage.entry_communes(conn, consultation_id, entry_keys)
                found.update(((consultation_id, key), commune) for key, commune in rows.items())
        return found

    async def _fetch_logins(self, keys: Sequence[EntryKey]) -> Mapping[EntryKey, tuple[bytes, uuid.UUID]]:
        found: dict[EntryKey, tuple[bytes, uuid.UUID]] = {}
        async with self._db.autocommit() as conn:
            for consultation_id, login_keys in _by_consultation(keys).items():
                rows = await storage.entries_by_login(conn, consultation_id, login_keys)
                found.update(((consultation_id, key), entry) for key, entry in rows.items())
        return found


def _by_consultation(keys: Sequence[EntryKey]) -> dict[uuid.UUID, list[bytes]]:
    grouped: dict[uuid.UUID, list[bytes]] = defaultdict(list)
    for consultation_id, key in keys:
        grouped[consultation_id].append(key)
    return grouped
