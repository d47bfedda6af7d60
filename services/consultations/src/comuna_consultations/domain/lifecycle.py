"""The life of a consultation: assembly -> voting -> closed -> certified, one step at a time.

Steps are explicit operator actions (the published dates are a schedule, not a trigger), so a
voting day can be held open longer or started late without editing data. No step can be skipped
or undone: results are certified only from a closed vote, and a certified consultation is final.
"""

from __future__ import annotations

from comuna_consultations.vocabulary import ConsultationStatus as Status
from comuna_platform.errors import FailedPrecondition

# target -> the only status it may be reached from
PREVIOUS: dict[Status, Status] = {
    Status.VOTING: Status.ASSEMBLY,
    Status.CLOSED: Status.VOTING,
    Status.CERTIFIED: Status.CLOSED,
}


def require_status(current: str, required: Status) -> None:
    """FailedPrecondition (409) `consultation_not_in_<required>` unless `current == required`."""
    if current != required:
        raise FailedPrecondition(
            f"the consultation is in status {current}, not {required}",
            code=f"consultation_not_in_{required}",
            current_status=current,
        )


def check_transition(current: str, target: Status) -> None:
    """Raise FailedPrecondition unless `target` is the next step after `current`."""
    if current == target:
        raise FailedPrecondition(
            f"the consultation is already {target}", code=f"consultation_already_{target}", current_status=current
        )
    require_status(current, PREVIOUS[target])
