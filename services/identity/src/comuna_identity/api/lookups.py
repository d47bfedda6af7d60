"""Looking a person up by document, at the REST edge: the rate limit's answer and the count of
refused lookups, once for every endpoint that does it (enrolment, linking, registration, a move,
a census import)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from comuna_identity.domain import enrolment, registry
from comuna_platform.errors import ProblemError
from comuna_platform.rate_limit import Quota

RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many lookups by this caller: `rate_limited`, with `Retry-After`"}
}

# Refusals about a person outside the caller's scope, whatever they look like to the caller.
_OUT_OF_SCOPE = (registry.ResidentOutOfScope, registry.MovesOutOfScope, enrolment.ResidentOutOfReach)


@contextmanager
def counted_lookup(quota: Quota, *codes: str) -> Iterator[None]:
    """Count a refused lookup on `quota` (why goes to the operators' log, never the answer): a
    person out of the caller's scope, or a problem whose code is one of `codes`."""
    try:
        yield
    except _OUT_OF_SCOPE:
        quota.failed("resident_out_of_scope")
        raise
    except ProblemError as exc:
        if exc.code in codes:
            quota.failed(exc.code)
        raise
