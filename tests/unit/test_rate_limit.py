"""Token buckets per caller and per limit, and the log of repeated failures (pure logic, a fake clock)."""

from __future__ import annotations

import logging

import pytest

from comuna_platform.auth.principal import Principal
from comuna_platform.errors import RateLimited
from comuna_platform.rate_limit import DOCUMENT_LOOKUPS, Rate, RateLimiter, caller_key

# A second limit, to show that limits are counted apart (identity has only document lookups today).
OTHER = "other"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, *, per_minute: float = 30, burst: int = 10, **options: int) -> RateLimiter:
    rates = {DOCUMENT_LOOKUPS: Rate(per_minute, burst), OTHER: Rate(600, 1)}
    return RateLimiter(rates, clock=clock, **options)


def test_the_burst_passes_and_the_next_call_waits_for_a_token() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(10):
        limits.check(DOCUMENT_LOOKUPS, "subject:a")
    with pytest.raises(RateLimited) as refused:
        limits.check(DOCUMENT_LOOKUPS, "subject:a")
    # 30 per minute: one token every 2 s.
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (429, "rate_limited", 2)
    assert refused.value.extra == {"retry_after": 2}


def test_another_caller_and_another_limit_are_unaffected() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(10):
        limits.check(DOCUMENT_LOOKUPS, "subject:a")
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") > 0
    assert limits.take(DOCUMENT_LOOKUPS, "subject:b") == 0
    assert limits.take(OTHER, "subject:a") == 0


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = Clock()
    limits = limiter(clock)
    for _ in range(10):
        limits.check(DOCUMENT_LOOKUPS, "subject:a")
    clock.now += 1.0  # half a token
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") == pytest.approx(1.0)
    clock.now += 1.0
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") == 0
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") > 0
    clock.now += 3600  # an hour idle refills the burst, not 1,800 tokens
    allowed = sum(limits.take(DOCUMENT_LOOKUPS, "subject:a") == 0 for _ in range(50))
    assert allowed == 10


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    clock = Clock()
    limits = limiter(clock, per_minute=600, burst=1)  # a token every 0.1 s
    limits.check(DOCUMENT_LOOKUPS, "subject:a")
    with pytest.raises(RateLimited) as refused:
        limits.check(DOCUMENT_LOOKUPS, "subject:a")
    assert refused.value.retry_after == 1
    slow = limiter(clock, per_minute=1, burst=1)
    slow.check(DOCUMENT_LOOKUPS, "subject:a")
    clock.now += 0.5
    with pytest.raises(RateLimited) as waited:
        slow.check(DOCUMENT_LOOKUPS, "subject:a")
    assert waited.value.retry_after == 60  # 59.5 s, rounded up


def test_the_least_recently_seen_callers_are_forgotten_beyond_the_cap() -> None:
    clock = Clock()
    limits = limiter(clock, burst=1, max_callers=2)
    limits.check(DOCUMENT_LOOKUPS, "subject:a")
    limits.check(DOCUMENT_LOOKUPS, "subject:b")
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") > 0  # a is now the most recent
    limits.check(DOCUMENT_LOOKUPS, "subject:c")  # forgets b
    assert limits.take(DOCUMENT_LOOKUPS, "subject:a") > 0  # remembered, still empty
    assert limits.take(DOCUMENT_LOOKUPS, "subject:b") == 0  # forgotten: a full bucket again


@pytest.mark.parametrize("rate", [Rate(0, 10), Rate(30, 0), Rate(-1, 1)])
def test_a_limit_needs_a_positive_rate_and_burst(rate: Rate) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter({DOCUMENT_LOOKUPS: rate})


def test_services_count_by_client_id_and_people_by_subject() -> None:
    service = Principal(subject="sa-1", username=None, roles=frozenset({"service"}), client_id="svc-consultations")
    person = Principal(subject="sub-1", username="ana", roles=frozenset(), client_id="comuna-web")
    assert caller_key(service) == "client:svc-consultations"
    assert caller_key(person) == "subject:sub-1"


def test_repeated_failures_are_logged_with_the_caller_and_count_when_they_repeat(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limits = limiter(clock)
    caplog.set_level(logging.INFO, logger="comuna_platform.rate_limit")
    counts = [limits.failures.record(DOCUMENT_LOOKUPS, "subject:a", "enrolment_refused") for _ in range(9)]
    assert counts == list(range(1, 10))
    logged = [r for r in caplog.records if r.levelno == logging.WARNING]
    # At the threshold (3), then each time the count doubles.
    assert [r.__dict__["failures"] for r in logged] == [3, 4, 8]
    assert all(r.__dict__["caller"] == "subject:a" and "subject:a" in r.getMessage() for r in logged)
    assert limits.failures.count(DOCUMENT_LOOKUPS, "subject:b") == 0
    clock.now += 3600  # a new window
    assert limits.failures.record(DOCUMENT_LOOKUPS, "subject:a", "enrolment_refused") == 1
