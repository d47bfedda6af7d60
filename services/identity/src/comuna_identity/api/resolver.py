"""Identity resolves its own callers from its own database: no gRPC hop to itself, no cache
(a revocation is effective for identity's own routes at the next request)."""

from __future__ import annotations

from comuna_identity.domain import access
from comuna_platform.auth.access import Resolution
from comuna_platform.auth.principal import Principal
from comuna_platform.db import Database


class DatabaseAccessResolver:
    """`comuna_platform.auth.access.AccessResolver` over identity's role assignments."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def resolve(self, principal: Principal) -> Resolution:
        # Its own short read-only transaction, apart from the route's unit of work: a
        # resolution is read before the route runs, and never holds the route's locks.
        async with self._db.unit_of_work() as uow:
            return (await access.resolve(uow, principal.subject)).resolution()
