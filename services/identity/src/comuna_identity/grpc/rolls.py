"""gRPC transport of the voter roll: FreezeRoll, GetRoll, StreamRoll (consultations only)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from comuna.identity.v1 import identity_pb2 as pb
from comuna_identity.domain import roll
from comuna_identity.domain.roll_keys import RollSecret
from comuna_identity.messages import timestamp
from comuna_identity.storage.models import VoterRoll
from comuna_identity.vocabulary import RollStatus, RollTerritoryKind
from comuna_platform.db import Database
from comuna_platform.errors import InvalidInput, Unavailable
from comuna_platform.ids import parse_id
from comuna_platform.rpc import require_service_caller

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_date(value: str, field: str) -> date:
    try:
        if not _ISO_DATE.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} must be a date YYYY-MM-DD", code="invalid_date", field=field) from exc


def summary_message(r: VoterRoll) -> pb.RollSummary:
    message = pb.RollSummary(
        consultation_id=str(r.consultation_id),
        cutoff=r.cutoff.isoformat(),
        voting_day=r.voting_day.isoformat(),
        entry_count=r.entry_count or 0,
        digest=r.digest.hex() if r.digest else "",
        commune_count=len(r.commune_ids),
        status=str(r.status),
    )
    if r.frozen_at is not None:
        message.frozen_at.CopyFrom(timestamp(r.frozen_at))
    return message


class RollRpcs:
    """The roll methods of IdentityService (mixed into the servicer)."""

    db: Database
    _roll_secret: RollSecret | None

    def _secret(self) -> RollSecret:
        if self._roll_secret is None:
            raise Unavailable("identity has no roll secret configured", code="roll_secret_missing")
        return self._roll_secret

    async def FreezeRoll(self, request: pb.FreezeRollRequest, context: Any) -> pb.RollSummary:
        require_service_caller()
        self._secret()
        terms = roll.RollTerms.of(
            parse_id(request.consultation_id, "consultation_id"),
            parse_date(request.cutoff, "cutoff"),
            parse_date(request.voting_day, "voting_day"),
            [parse_id(c, "commune_ids") for c in request.commune_ids],
        )
        async with self.db.unit_of_work() as uow:
            recorded = await roll.request_freeze(uow, terms)
        return summary_message(recorded)

    async def GetRoll(self, request: pb.GetRollRequest, context: Any) -> pb.GetRollResponse:
        require_service_caller()
        consultation_id = parse_id(request.consultation_id, "consultation_id")
        keys = self._secret().for_consultation(consultation_id)
        async with self.db.unit_of_work() as uow:
            found = await roll.summary(uow, consultation_id)
            counted = await roll.counts(uow, consultation_id) if found.status == RollStatus.FROZEN else []
        return pb.GetRollResponse(
            summary=summary_message(found),
            commune_counts=[
                pb.RollCount(territory_id=str(c.territory_id), voters=c.voters)
                for c in counted
                if c.kind == RollTerritoryKind.COMMUNE
            ],
            council_counts=[
                pb.RollCount(territory_id=str(c.territory_id), voters=c.voters)
                for c in counted
                if c.kind == RollTerritoryKind.COUNCIL
            ],
            voter_key=keys.voter_key,
            login_key=keys.login_key,
        )

    async def StreamRoll(self, request: pb.StreamRollRequest, context: Any) -> AsyncIterator[pb.RollChunk]:
        require_service_caller()
        consultation_id = parse_id(request.consultation_id, "consultation_id")
        after = request.after_seq
        while True:
            # One short transaction per chunk: a slow reader holds no snapshot open for minutes.
            async with self.db.unit_of_work() as uow:
                chunk = await roll.chunk(uow, consultation_id, after_seq=after, size=request.chunk_size)
            if not chunk.count:
                return
            yield pb.RollChunk(first_seq=chunk.first_seq, entries=chunk.packed, entry_count=chunk.entry_count)
            after = chunk.first_seq + chunk.count - 1
