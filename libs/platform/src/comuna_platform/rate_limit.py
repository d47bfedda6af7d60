"""Rate limits per caller and per named limit: token buckets, a FastAPI dependency, a gRPC helper.

A caller is who the token says: a person by subject, a service by its client id. Each named
limit (`DOCUMENT_LOOKUPS`, `TABLE_CHECK_INS`) has a rate per minute and a burst (the bucket's size);
a call takes one token, and a caller with an empty bucket is refused with 429 problem+json
`rate_limited` and `Retry-After` (whole seconds until a token is back) on REST, or
RESOURCE_EXHAUSTED with the same code and `retry_after` in the ErrorInfo on gRPC.

Buckets live in the process: the limits are per replica (N replicas let a caller through up to
N times the rate). That is the intent: a limit that stops enumeration of the census by one
caller needs no shared state to do so, and a shared one would put a database write on every
lookup. The least recently used buckets are forgotten beyond `max_callers` per limit (a
forgotten caller starts again with a full bucket).

Repeated failures (a wrong enrolment code or document, a document not in the census, a person
outside the caller's scope) are
counted per caller and logged with the caller and the count, never the document
(`Quota.failed`).

One line puts a REST route under a limit: a parameter `quota: DocumentLookupQuota` (or
`dependencies=[rate_limit(DOCUMENT_LOOKUPS)]`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from comuna_platform.auth.fastapi import CurrentPrincipal
from comuna_platform.auth.principal import Principal
from comuna_platform.auth.roles import SERVICE_ROLE
from comuna_platform.errors import RateLimited
from comuna_platform.settings import ServiceSettings

log = logging.getLogger(__name__)

# Lookups of a person by document, one token per call: enrolment (POST /v1/enrolment:redeem,
# /v1/residents:link, /v1/residents:enrolment-code), "can I vote?" (GET /v1/me/roll), registration
# (POST /v1/residents, /v1/residents:batch), a move (/v1/residents:move), a census import (/v1/residents:import).
DOCUMENT_LOOKUPS = "document_lookups"
# Check-ins at a voting table by document, one token per call, counted per officer
# (consultations: POST .../tables/{code}:check-in and .../tables/{code}/check-ins): an officer
# checks in one person every few seconds at most, never hundreds a second.
TABLE_CHECK_INS = "table_check_ins"

Clock = Callable[[], float]


@dataclass(frozen=True)
class Rate:
    per_minute: float
    burst: int


def rates_from(settings: ServiceSettings) -> dict[str, Rate]:
    s = settings
    return {
        DOCUMENT_LOOKUPS: Rate(s.rate_limit_document_lookups_per_minute, s.rate_limit_document_lookups_burst),
        TABLE_CHECK_INS: Rate(s.rate_limit_table_check_ins_per_minute, s.rate_limit_table_check_ins_burst),
    }


def caller_key(principal: Principal) -> str:
    """Who a limit counts: a service by its client id, a person by subject."""
    if principal.has_role(SERVICE_ROLE) and principal.client_id:
        return f"client:{principal.client_id}"
    return f"subject:{principal.subject}"


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    """Token buckets per (limit, caller) in this process, and the failure counts beside them."""

    def __init__(
        self,
        rates: Mapping[str, Rate],
        *,
        clock: Clock = time.monotonic,
        max_callers: int = 100_000,
        failure_window_seconds: float = 3600.0,
        failure_log_threshold: int = 3,
    ) -> None:
        for name, rate in rates.items():
            if rate.per_minute <= 0 or rate.burst < 1:
                raise ValueError(f"rate limit {name}: needs a positive rate and a burst of at least 1")
        self._rates = dict(rates)
        self._clock = clock
        self._max_callers = max_callers
        self._buckets: dict[str, OrderedDict[str, _Bucket]] = {name: OrderedDict() for name in rates}
        self.failures = FailureLog(
            clock=clock,
            window_seconds=failure_window_seconds,
            threshold=failure_log_threshold,
            max_callers=max_callers,
        )

    @classmethod
    def from_settings(cls, settings: ServiceSettings, *, clock: Clock = time.monotonic) -> RateLimiter:
        return cls(rates_from(settings), clock=clock, max_callers=settings.rate_limit_max_callers)

    def take(self, name: str, caller: str) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is back."""
        rate = self._rates[name]
        buckets = self._buckets[name]
        now = self._clock()
        bucket = buckets.get(caller)
        if bucket is None:
            bucket = buckets[caller] = _Bucket(float(rate.burst), now)
            if len(buckets) > self._max_callers:
                buckets.popitem(last=False)
        else:
            buckets.move_to_end(caller)
            per_second = rate.per_minute / 60.0
            bucket.tokens = min(float(rate.burst), bucket.tokens + (now - bucket.updated) * per_second)
            bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / (rate.per_minute / 60.0)

    def check(self, name: str, caller: str) -> None:
        """Take one token or raise `RateLimited` (429 / RESOURCE_EXHAUSTED) with the wait."""
        wait = self.take(name, caller)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            log.info("rate limit %s reached", name, extra={"caller": caller, "limit": name, "retry_after": retry_after})
            raise RateLimited(f"too many requests; retry in {retry_after} s", retry_after=retry_after)


class FailureLog:
    """Failures per (limit, caller) within a window, logged when they repeat: at the threshold,
    then each time the count doubles (3, 4, 8, 16, ... by default), so a guesser shows up in the
    logs at once and keeps showing, without one line per attempt."""

    def __init__(self, *, clock: Clock, window_seconds: float, threshold: int, max_callers: int) -> None:
        self._clock = clock
        self._window = window_seconds
        self._threshold = threshold
        self._max_callers = max_callers
        # (limit, caller) -> (first failure in the window, count)
        self._counts: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def record(self, name: str, caller: str, reason: str) -> int:
        """Count one failure (`reason` is a stable code, never input); returns the count in the window."""
        now = self._clock()
        key = (name, caller)
        first, count = self._counts.get(key, (now, 0))
        if now - first >= self._window:
            first, count = now, 0
        count += 1
        self._counts[key] = (first, count)
        self._counts.move_to_end(key)
        if len(self._counts) > self._max_callers:
            self._counts.popitem(last=False)
        if count >= self._threshold and (count == self._threshold or count & (count - 1) == 0):
            log.warning(
                "repeated %s failures by %s: %d in the last %.0f s (latest: %s)",
                name,
                caller,
                count,
                now - first,
                reason,
                extra={"caller": caller, "limit": name, "failures": count, "reason": reason},
            )
        return count

    def count(self, name: str, caller: str) -> int:
        first, count = self._counts.get((name, caller), (0.0, 0))
        return count if self._clock() - first < self._window else 0


@dataclass(frozen=True)
class Quota:
    """The caller's place under one limit, as a route holds it after taking its token."""

    limiter: RateLimiter
    name: str
    caller: str

    def failed(self, reason: str) -> int:
        """Record a failed lookup by this caller (logged when repeated); returns the count."""
        return self.limiter.failures.record(self.name, self.caller, reason)


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        # A wiring bug: fail loudly (500), never as "unlimited".
        raise RuntimeError("app.state.rate_limiter is not configured")
    return limiter


def rate_limit(name: str) -> Any:
    """`Depends(...)` taking one token of limit `name` for the authenticated caller (else 429)."""

    async def _take(request: Request, principal: CurrentPrincipal) -> Quota:
        limiter = limiter_of(request)
        key = caller_key(principal)
        limiter.check(name, key)
        return Quota(limiter, name, key)

    return Depends(_take)


DocumentLookupQuota = Annotated[Quota, rate_limit(DOCUMENT_LOOKUPS)]
"""Annotated shortcut: `async def endpoint(quota: DocumentLookupQuota)`."""

TableCheckInQuota = Annotated[Quota, rate_limit(TABLE_CHECK_INS)]
"""Annotated shortcut: `async def endpoint(quota: TableCheckInQuota)` (per officer)."""


def grpc_quota(limiter: RateLimiter, name: str, principal: Principal) -> Quota:
    """Inside a servicer method: take one token for the caller (else RESOURCE_EXHAUSTED)."""
    key = caller_key(principal)
    limiter.check(name, key)
    return Quota(limiter, name, key)
