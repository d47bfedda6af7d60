"""The worker that flags projects stalled: in execution with no progress report for
`quiet_days`, or a milestone overdue (`lifecycle.stall_reasons`, on the runtime's clock).

Every replica may run it: each pass locks the projects it looks at (skipping any a use case
holds), so two replicas never flag one project twice, and a project already stalled is not
looked at again until a progress report resumes it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from comuna_platform.db import Database
from comuna_platform.uow import UnitOfWork
from comuna_projects.domain import lifecycle
from comuna_projects.domain.events import ProjectStalled
from comuna_projects.domain.projects import milestone_progress
from comuna_projects.storage import repository
from comuna_projects.vocabulary import Stage

log = logging.getLogger(__name__)

BATCH = 500


async def flag_stalled(
    uow: UnitOfWork, *, policy: lifecycle.StallPolicy, now: datetime, after: uuid.UUID | None, limit: int
) -> tuple[int, uuid.UUID | None, bool]:
    """One batch of projects in execution after `after`: (flagged, last id seen, more left)."""
    session = uow.session
    projects = await repository.projects_in_execution(session, after=after, limit=limit)
    milestones = await repository.milestones_of_many(session, [p.id for p in projects])
    flagged = 0
    for project in projects:
        assert project.started_at is not None
        reasons = lifecycle.stall_reasons(
            started_at=project.started_at,
            last_report_at=project.last_report_at,
            milestones=milestone_progress(milestones[project.id]),
            now=now,
            policy=policy,
        )
        if lifecycle.stage_at(Stage(project.status), reasons) is Stage.STALLED:
            project.status = Stage.STALLED
            project.stalled_since = now
            project.stall_reasons = reasons
            flagged += 1
            await session.flush()
            await uow.stage(ProjectStalled(project), aggregate_id=str(project.id))
    last = projects[-1].id if projects else None
    return flagged, last, len(projects) == limit


class StallDetector:
    def __init__(
        self, db: Database, policy: lifecycle.StallPolicy, *, every: float, now: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._policy = policy
        self._every = every
        self._now = now

    async def check_once(self) -> int:
        """One pass over every project in execution, a batch per transaction; how many stalled."""
        total, after, more = 0, None, True
        now = self._now()
        while more:
            async with self._db.unit_of_work() as uow:
                flagged, after, more = await flag_stalled(uow, policy=self._policy, now=now, after=after, limit=BATCH)
            total += flagged
        return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            flagged = await self.check_once()
            if flagged:
                log.info("projects flagged stalled", extra={"flagged": flagged})
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._every)
            except TimeoutError:
                pass
