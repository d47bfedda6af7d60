"""Pure rules of the project life cycle: deterministic ids and which milestone may be verified.

Kept free of I/O so they can be tested exhaustively without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from comuna_platform.errors import Conflict, FailedPrecondition
from comuna_platform.ids import DeterministicIds
from comuna_projects.vocabulary import MilestoneStatus

# Namespace of project ids. A project's id is derived from its allocation's id, so every
# replica (and any auditor) computes the same id for the same allocation, and a redelivered
# allocation event can never produce a second project under a new id.
PROJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://comuna.dev/ns/projects/project")
_PROJECT_IDS = DeterministicIds(PROJECT_NAMESPACE)


def project_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    return _PROJECT_IDS.derive(allocation_id)


def milestone_id_for(project_id: uuid.UUID, sequence: int) -> uuid.UUID:
    # The project id is the namespace of its milestones' ids.
    return DeterministicIds(project_id).derive(sequence)


class MilestoneState(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    @property
    def sequence(self) -> int: ...

    @property
    def status(self) -> str: ...


def check_verifiable(milestones: Sequence[MilestoneState], milestone_id: uuid.UUID) -> None:
    """Raise unless `milestone_id` is pending and every earlier milestone is verified.

    Milestones are verified in order: funding releases tranches as work progresses, so the
    completion tranche must not be released before the start-up work was checked.
    `milestones` are all of the project's milestones; the caller has checked the id is one.
    """
    target = next(m for m in milestones if m.id == milestone_id)
    if target.status != MilestoneStatus.PENDING:
        raise Conflict(f"milestone {target.sequence} is already {target.status}", code="milestone_not_pending")
    earlier = [m for m in milestones if m.sequence < target.sequence and m.status == MilestoneStatus.PENDING]
    if earlier:
        first = min(m.sequence for m in earlier)
        raise FailedPrecondition(
            f"milestone {first} must be verified before milestone {target.sequence}",
            code="milestone_out_of_order",
        )
