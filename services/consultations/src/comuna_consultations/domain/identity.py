"""What consultations needs from identity, as the domain sees it: plain data and its questions.

`clients/identity.py` answers them over gRPC; the domain only knows these types, so it stays
free of gRPC and protobuf. No question is asked per ballot: the voter roll is frozen by
identity and streamed here once (`RollSource`), and ballots are matched against it locally.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CommuneRef:
    id: uuid.UUID
    code: str
    name: str


class CommuneDirectory(Protocol):
    async def list_all_communes(self) -> list[CommuneRef]: ...


@dataclass(frozen=True, slots=True)
class RollInfo:
    """Identity's roll of a consultation: `frozen` once entries, count and digest are final."""

    frozen: bool
    cutoff: date
    voting_day: date
    entry_count: int
    digest: bytes
    voter_key: bytes
    login_key: bytes


@dataclass(frozen=True, slots=True)
class PackedEntries:
    """Entries `first_seq`.. in seq order, 96 bytes each (`comuna_platform.voter_roll`)."""

    first_seq: int
    packed: bytes
    entry_count: int


class RollSource(Protocol):
    async def freeze_roll(
        self, *, consultation_id: uuid.UUID, cutoff: date, voting_day: date, commune_ids: Sequence[uuid.UUID]
    ) -> RollInfo: ...

    async def get_roll(self, consultation_id: uuid.UUID) -> RollInfo: ...

    def stream_roll(
        self, consultation_id: uuid.UUID, *, after_seq: int, chunk_size: int
    ) -> AsyncIterator[PackedEntries]: ...
