"""The identity service as this service needs it: the list of communes and the voter roll.

One place owns the gRPC details (service token, deadline, error mapping), so the domain sees
plain data and the platform's errors:

* UNAVAILABLE / DEADLINE_EXCEEDED (and a missing service token) -> `Unavailable` (503, retry);
* NOT_FOUND -> `NotFound`; INVALID_ARGUMENT -> `InvalidInput`; ALREADY_EXISTS -> `Conflict`;
  FAILED_PRECONDITION -> `FailedPrecondition`, each keeping identity's error code;
* anything else means the two services disagree (bad credentials, a bug) -> `Unavailable`,
  never a 500.

In-flight calls are bounded by a semaphore: on the voting-day peak, requests beyond the bound
wait (within the same deadline) instead of piling onto identity and making every call slow.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any, Protocol

import grpc

from comuna.identity.v1 import identity_pb2 as pb
from comuna.identity.v1 import identity_pb2_grpc
from comuna_consultations.domain.identity import CommuneRef, PackedEntries, RollInfo
from comuna_platform.auth.errors import TokenSourceError
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable
from comuna_platform.rpc import error_code_of

log = logging.getLogger(__name__)

PAGE_SIZE = 1000
# A safety stop for paging: 1,000 pages of 1,000 is far beyond the ~5,400 communes that exist.
MAX_PAGES = 1000

# RollSummary.status of a frozen roll (identity's RollStatus).
FROZEN = "frozen"


class Invalidatable(Protocol):
    def invalidate(self) -> None: ...


class IdentityClient:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        tokens: Invalidatable | None = None,
        timeout: float = 5.0,
        max_in_flight: int = 500,
    ) -> None:
        # Not closed here: whoever built the channel closes it (a runtime shares one per process).
        self.channel = channel
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tokens = tokens
        self._timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)

    async def list_all_communes(self) -> list[CommuneRef]:
        """Every commune and communal circuit in the country, in code order."""
        communes: list[CommuneRef] = []
        token = ""
        for _ in range(MAX_PAGES):
            request = pb.ListCommunesRequest(under_code="", page_size=PAGE_SIZE, page_token=token)
            response = await self._call("ListCommunes", self._stub.ListCommunes, request)
            communes += [CommuneRef(uuid.UUID(c.id), c.code, c.name) for c in response.communes]
            if not response.next_page_token or response.next_page_token == token:
                return communes
            token = response.next_page_token
        raise Unavailable("identity kept paging communes without end", code="identity_paging_runaway")

    async def freeze_roll(
        self, *, consultation_id: uuid.UUID, cutoff: date, voting_day: date, commune_ids: Sequence[uuid.UUID]
    ) -> RollInfo:
        request = pb.FreezeRollRequest(
            consultation_id=str(consultation_id),
            cutoff=cutoff.isoformat(),
            voting_day=voting_day.isoformat(),
            commune_ids=[str(c) for c in commune_ids],
        )
        summary = await self._call("FreezeRoll", self._stub.FreezeRoll, request)
        return RollInfo(
            frozen=summary.status == FROZEN,
            cutoff=date.fromisoformat(summary.cutoff),
            voting_day=date.fromisoformat(summary.voting_day),
            entry_count=summary.entry_count,
            digest=bytes.fromhex(summary.digest),
            voter_key=b"",
            login_key=b"",
        )

    async def get_roll(self, consultation_id: uuid.UUID) -> RollInfo:
        response = await self._call(
            "GetRoll", self._stub.GetRoll, pb.GetRollRequest(consultation_id=str(consultation_id))
        )
        summary = response.summary
        return RollInfo(
            frozen=summary.status == FROZEN,
            cutoff=date.fromisoformat(summary.cutoff),
            voting_day=date.fromisoformat(summary.voting_day),
            entry_count=summary.entry_count,
            digest=bytes.fromhex(summary.digest),
            voter_key=response.voter_key,
            login_key=response.login_key,
        )

    async def stream_roll(
        self, consultation_id: uuid.UUID, *, after_seq: int, chunk_size: int
    ) -> AsyncIterator[PackedEntries]:
        """The roll's entries after `after_seq`. No overall deadline (5 million entries take a
        while); a stalled stream is cut by `stall_seconds` between two chunks."""
        request = pb.StreamRollRequest(consultation_id=str(consultation_id), after_seq=after_seq, chunk_size=chunk_size)
        try:
            call = self._stub.StreamRoll(request)
            async for chunk in call:
                yield PackedEntries(chunk.first_seq, chunk.entries, chunk.entry_count)
        except grpc.aio.AioRpcError as exc:
            raise self._mapped("StreamRoll", exc) from exc
        except TokenSourceError as exc:
            log.error("no service token for identity: %s", exc)
            raise Unavailable("could not obtain a service token", code="service_token_unavailable") from exc

    async def _call(self, name: str, method: Any, request: Any) -> Any:
        deadline = time.monotonic() + self._timeout
        if self._slots.locked():
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=self._timeout)
            except TimeoutError as exc:
                raise Unavailable("too many calls to identity in flight", code="identity_busy") from exc
        else:
            await self._slots.acquire()  # free slot: returns at once, no timer task needed
        try:
            return await method(request, timeout=max(deadline - time.monotonic(), 0.001))
        except grpc.aio.AioRpcError as exc:
            raise self._mapped(name, exc) from exc
        except TokenSourceError as exc:
            log.error("no service token for identity: %s", exc)
            raise Unavailable("could not obtain a service token", code="service_token_unavailable") from exc
        finally:
            self._slots.release()

    def _mapped(self, name: str, exc: grpc.aio.AioRpcError) -> Exception:
        code = exc.code()
        detail = exc.details() or ""
        reason = error_code_of(exc)
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(detail or "not found in identity", code=reason or "not_found")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidInput(detail or "identity refused the input", code=reason or "invalid_input")
        if code == grpc.StatusCode.ALREADY_EXISTS:
            return Conflict(detail or "identity refused a conflicting request", code=reason or "conflict")
        if code == grpc.StatusCode.FAILED_PRECONDITION:
            return FailedPrecondition(detail or "identity is not ready for this", code=reason or "failed_precondition")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"identity did not answer {name} in time", code="identity_unavailable")
        if code == grpc.StatusCode.UNAUTHENTICATED and self._tokens is not None:
            # Perhaps the cached token was revoked or the issuer rotated keys: fetch anew next time.
            self._tokens.invalidate()
        log.error("identity %s failed: %s %s", name, code, detail)
        return Unavailable(f"identity refused {name}", code="identity_error")
