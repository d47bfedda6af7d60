"""Pure rules of the project life cycle: deterministic ids and which milestone may be reported
or verified.

Kept free of I/O so they can be tested exhaustively without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from comuna_platform.errors import Conflict, FailedPrecondition
from comuna_platform.ids import DeterministicIds
from comuna_projects.domain.oversight import check_verifier
from comuna_projects.vocabulary import MilestoneStatus

# Namespace of project ids. A project's id is derived from its allocation's id, so every
# replica (and any auditor) computes the same id for the same allocation, and a redelivered
# allocation event can never produce a second project under a new id.
PROJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://comuna.dev/ns/projects/project")
_PROJECT_IDS = DeterministicIds(PROJECT_NAMESPACE)

DONE = frozenset({MilestoneStatus.VERIFIED, MilestoneStatus.FUNDED})


def project_id_for(allocation_id: uuid.UUID) -> uuid.UUID:
    return _PROJECT_IDS.derive(allocation_id)


def milestone_id_for(project_id: uuid.UUID, sequence: int, revision: int = 1) -> uuid.UUID:
    """The id of the milestone at `sequence` in plan `revision` of a project. The project id is
    the namespace; the first plan's ids depend on the sequence alone (as they always did), a
    later plan's new milestones on the revision too, so no id is ever reused for other work."""
    ids = DeterministicIds(project_id)
    return ids.derive(sequence) if revision == 1 else ids.derive(revision, sequence)


class MilestoneState(Protocol):
    @property
    def id(self) -> uuid.UUID: ...

    @property
    def sequence(self) -> int: ...

    @property
    def status(self) -> str: ...


def _target(milestones: Sequence[MilestoneState], milestone_id: uuid.UUID) -> MilestoneState:
    return next(m for m in milestones if m.id == milestone_id)


def check_reportable(milestones: Sequence[MilestoneState], milestone_id: uuid.UUID) -> None:
    """Raise unless `milestone_id` is pending and every earlier milestone was reported.

    Milestones are done in order, like the tranches they release. `milestones` are all of the
    project's milestones; the caller has checked the id is one of them.
    """
    target = _target(milestones, milestone_id)
    if target.status != MilestoneStatus.PENDING:
        raise Conflict(f"milestone {target.sequence} is already {target.status}", code="milestone_not_pending")
    earlier = [m.sequence for m in milestones if m.sequence < target.sequence and m.status == MilestoneStatus.PENDING]
    if earlier:
        raise FailedPrecondition(
            f"milestone {min(earlier)} must be reported before milestone {target.sequence}",
            code="milestone_out_of_order",
        )


def check_verifiable(
    milestones: Sequence[MilestoneState], milestone_id: uuid.UUID, *, reported_by: str | None, verifier: str
) -> None:
    """Raise unless `milestone_id` was reported by someone other than `verifier` and every
    earlier milestone is verified.

    Verification releases the tranche, so the completion tranche must not be released before
    the start-up work was checked, and nobody releases money for work they reported themselves.
    """
    target = _target(milestones, milestone_id)
    if target.status in DONE:
        raise Conflict(f"milestone {target.sequence} is already {target.status}", code="milestone_not_pending")
    check_verifier(reported_by=reported_by if target.status == MilestoneStatus.REPORTED else None, verifier=verifier)
    earlier = [m.sequence for m in milestones if m.sequence < target.sequence and m.status not in DONE]
    if earlier:
        raise FailedPrecondition(
            f"milestone {min(earlier)} must be verified before milestone {target.sequence}",
            code="milestone_out_of_order",
        )


def attested_count(milestones: Sequence[MilestoneState]) -> int:
    """How many milestones, from the first, were reported done (or verified, or paid): a change
    of plan keeps them as they are."""
    ordered = sorted(milestones, key=lambda m: m.sequence)
    count = 0
    for m in ordered:
        if m.status == MilestoneStatus.PENDING:
            break
        count += 1
    return count
