"""`AccessResolver` for services other than identity: ask `IdentityService.ResolvePrincipal`.

Answers are cached briefly per subject (`AccessCache`) and dropped when identity announces a
change of that subject's assignments on `identity.role_assignment.*` (a core NATS subscription:
JetStream publishes reach core subscribers too). Identity unreachable, slow or refusing is a
503 for the request, never "allowed" and never "no assignments".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.message import DecodeError
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from comuna.common.v1 import territory_pb2
from comuna.identity.v1 import events_pb2, identity_pb2, identity_pb2_grpc
from comuna.identity.v1.access_pb2 import RoleAssignment
from comuna_platform.errors import Unavailable
from comuna_platform.events.registry import subject_of

from .access import Assignment, Resolution
from .access_cache import DEFAULT_MAX_ENTRIES, AccessCache
from .errors import TokenSourceError
from .identity_errors import Invalidatable, identity_unavailable
from .principal import Principal
from .roles import Role

log = logging.getLogger(__name__)

_ASSIGNMENT_EVENTS = (events_pb2.RoleAssignmentGranted, events_pb2.RoleAssignmentRevoked)
_EVENTS: dict[str, type[events_pb2.RoleAssignmentGranted] | type[events_pb2.RoleAssignmentRevoked]] = {
    subject_of(event): event for event in _ASSIGNMENT_EVENTS
}
# `identity.role_assignment.>`: every assignment event (`<service>.<aggregate>.<what>`), from the contracts.
(_AGGREGATE,) = {subject.rsplit(".", 1)[0] for subject in _EVENTS}
INVALIDATION_SUBJECTS = f"{_AGGREGATE}.>"


def assignment_of(message: RoleAssignment) -> Assignment | None:
    """The platform's view of one assignment; None for a role this version does not know
    (a newer identity may have more roles: ignoring one grants less, never more)."""
    try:
        role = Role(message.role)
    except ValueError:
        log.warning("identity sent an unknown role; ignored", extra={"role": message.role[:64]})
        return None
    return Assignment(
        role=role,
        territory_code=message.territory.code,
        assignment_id=message.id,
        consultation_id=message.consultation_id or None,
        table_code=message.table_code or None,
        valid_until=message.valid_until.ToDatetime(tzinfo=UTC) if message.HasField("valid_until") else None,
        national=message.territory.kind == territory_pb2.TERRITORY_KIND_COUNTRY,
    )


def resolution_of(response: identity_pb2.ResolvePrincipalResponse, subject: str) -> Resolution:
    assignments = tuple(a for a in map(assignment_of, response.assignments) if a is not None)
    return Resolution(subject=subject, assignments=assignments, resident_id=response.resident_id or None)


class GrpcAccessResolver:
    """Where callers may act, from identity, through `channel` (which its owner closes: a
    runtime shares one channel to identity among all its clients of identity)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        tokens: Invalidatable | None = None,
        timeout: float = 5.0,
        cache_seconds: float = 30.0,
        stale_seconds: float = 0.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Not closed here: whoever built the channel closes it (a runtime shares one per process).
        self.channel = channel
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tokens = tokens
        self._timeout = timeout
        self.cache = AccessCache(
            self._fetch, ttl=cache_seconds, stale_seconds=stale_seconds, max_entries=max_entries, clock=clock, now=now
        )
        # True while the invalidation subscription is live.
        self.listening = False

    async def resolve(self, principal: Principal) -> Resolution:
        return await self.cache.get(principal.subject)

    async def _fetch(self, subject: str) -> Resolution:
        request = identity_pb2.ResolvePrincipalRequest(subject=subject)
        try:
            response = await self._stub.ResolvePrincipal(request, timeout=self._timeout)
        except (grpc.aio.AioRpcError, TokenSourceError) as exc:
            raise identity_unavailable(
                exc,
                method="ResolvePrincipal",
                unable="identity could not say where the caller may act",
                tokens=self._tokens,
            ) from exc
        if response.subject and response.subject != subject:
            # Another person's assignments must never be used for this one.
            log.error("identity resolved a different subject than asked")
            raise Unavailable("identity answered for another subject", code="identity_bad_answer")
        return resolution_of(response, subject)

    # Invalidation -----------------------------------------------------------------------

    async def on_message(self, msg: Msg) -> None:
        """Drop the cached resolution of the subject an assignment event names."""
        event_type = _EVENTS.get(msg.subject)
        subject = ""
        if event_type is not None:
            try:
                subject = event_type.FromString(msg.data).subject
            except DecodeError:
                subject = ""
        if subject:
            self.cache.invalidate(subject)
            log.debug("access cache entry dropped", extra={"nats_subject": msg.subject})
        else:
            # An event of a kind this version does not know, or unreadable: forget everyone.
            self.cache.clear()
            log.warning("unreadable role assignment event; access cache cleared", extra={"nats_subject": msg.subject})

    def on_reconnect(self) -> None:
        """While disconnected, invalidations may have been missed: start from scratch."""
        self.cache.clear()
        log.info("NATS reconnected; access cache cleared")

    async def watch_invalidations(self, nc: NATS, stop: asyncio.Event) -> None:
        """Listen for assignment events until `stop` (a supervised worker of the service)."""
        subscription = await nc.subscribe(INVALIDATION_SUBJECTS, cb=self.on_message)
        try:
            # The server has the subscription once a round trip completes; anything cached before
            # then may have missed an event.
            await nc.flush()
            self.cache.clear()
            self.listening = True
            await stop.wait()
        finally:
            self.listening = False
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the connection may be closing already
                log.debug("unsubscribe failed: %s", exc)
