"""The consultations service's server clock in tests: set it to an instant of the test schedule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from comuna_platform.clock import ManualClock
from tests.consultations.helpers import SCHEDULE, Stack

OPENS_AT = datetime.fromisoformat(SCHEDULE["voting_opens_at"])
CLOSES_AT = datetime.fromisoformat(SCHEDULE["voting_closes_at"])
# When results are visible and certification open (an hour after certification opens).
AFTER_CLOSE = datetime.fromisoformat(SCHEDULE["certification_opens_at"]) + timedelta(hours=1)


@contextmanager
def clock_at(stack: Stack, instant: datetime) -> Iterator[ManualClock]:
    """The consultations service's clock set to `instant` (restored afterwards)."""
    runtime = stack.consultations.runtime
    previous, clock = runtime.clock, ManualClock(instant)
    runtime.clock = clock
    try:
        yield clock
    finally:
        runtime.clock = previous
