"""The census: documents to keyed hashes under the generations in use, roll base points, age.

Every reader and writer of census records goes through `Census`: it knows the key ring
(`census_keys.KeyRing`) and the roll secret, and it reads the generations the database uses
(table `census_keys`) so that every process hashes through the same onion.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.domain.census_keys import KeyRing, KeyRingError
from comuna_identity.storage import census as storage
from comuna_identity.storage.models import Resident
from comuna_platform.documents import Document, normalise_document
from comuna_platform.errors import Unavailable
from comuna_platform.voter_keys import document_point, multiply, scalar_from

ROLL_BASE_LABEL = "roll-base"


def key_ring_unusable(reason: str) -> Unavailable:
    return Unavailable(f"the census key ring does not match the census: {reason}", code="census_key_ring")


@dataclass(frozen=True)
class Generations:
    """The key generations in use, oldest first; records are written under the newest."""

    ids: Sequence[int]

    @property
    def newest(self) -> int:
        return self.ids[-1]


class Census:
    def __init__(self, ring: KeyRing, roll_secret: bytes) -> None:
        self.ring = ring
        self.roll_secret = roll_secret
        self._roll_scalar = scalar_from(roll_secret, ROLL_BASE_LABEL)

    def __repr__(self) -> str:
        return f"Census({self.ring!r})"

    def roll_base(self, document: Document) -> bytes:
        """B = k·P(d), k derived from the roll secret (see comuna_platform.voter_keys)."""
        return multiply(self._roll_scalar, document_point(document))

    def layers(self, document: Document, generations: Generations) -> list[tuple[int, bytes]]:
        try:
            return self.ring.layers(document, generations.ids)
        except KeyRingError as exc:
            raise key_ring_unusable(str(exc)) from exc

    def voter_ref(self, consultation_id: str, resident_id: str) -> str:
        """Stable pseudonym of a resident inside one consultation, unlinkable across them."""
        key = self.ring.secret(min(self.ring.keys))
        return hmac.new(key, f"voter-ref:{consultation_id}:{resident_id}".encode(), hashlib.sha256).hexdigest()

    async def generations(self, session: AsyncSession, *, writing: bool = False) -> Generations:
        """The generations in use. `writing`: also held (FOR SHARE) until the transaction ends, so
        no new generation is activated while this transaction writes under the newest."""
        rows = await storage.census_keys(session)
        if not rows:
            # A census of before key ids is generation 1 (the migration says so).
            first = 1 if 1 in self.ring.keys else min(self.ring.keys)
            await storage.add_census_key(session, first, self._fingerprint(first))
            rows = await storage.census_keys(session)
        if writing:
            while True:
                locked = await storage.census_keys(session, share_lock=True)
                # A locking read does not see rows committed after its snapshot: read again.
                rows = await storage.census_keys(session)
                if [r.key_id for r in locked] == [r.key_id for r in rows]:
                    break
        for row in rows:
            if not hmac.compare_digest(row.fingerprint, self._fingerprint(row.key_id)):
                raise key_ring_unusable(f"key {row.key_id} is not the secret the census was hashed with")
        return Generations([row.key_id for row in rows])

    def _fingerprint(self, key_id: int) -> bytes:
        try:
            return self.ring.fingerprint(key_id)
        except KeyRingError as exc:
            raise key_ring_unusable(str(exc)) from exc

    async def find(self, session: AsyncSession, raw: str, document_type: str | None = None) -> Resident | None:
        """The resident holding document `raw`, under whichever generation their record is."""
        document = normalise_document(raw, document_type)
        return await storage.resident_by_layers(session, self.layers(document, await self.generations(session)))


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years
