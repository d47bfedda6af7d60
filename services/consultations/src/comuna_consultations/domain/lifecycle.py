"""What the stored status of a consultation means: open -> certified.

Everything else about where a consultation stands (assemblies, registration closed, voting,
tally, certification) follows its published dates on the server clock (`domain.phases`): no
operator step starts or closes voting any more; an operator moves the dates instead, with a
recorded reason (`:amend-schedule`). The status keeps what the clock cannot know: whether the
results were certified. A certified consultation is final.
"""

from __future__ import annotations

from comuna_consultations.vocabulary import ConsultationStatus as Status
from comuna_platform.errors import FailedPrecondition

# target -> the only status it may be reached from
PREVIOUS: dict[Status, Status] = {
    Status.CERTIFIED: Status.OPEN,
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
    previous = PREVIOUS.get(target)
    if previous is None:  # the first status is set on opening, never reached by a step
        raise FailedPrecondition(
            f"no step leads to {target}", code=f"consultation_not_{target}", current_status=current
        )
    require_status(current, previous)
