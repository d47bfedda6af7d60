"""Oversight's pure rules: four eyes on milestones, residents' reports, and spending.

- A spokesperson reports a milestone done; a member of the commune's oversight committee who
  is *not* that reporter verifies it (`check_verifier`). Verification is what releases the
  tranche, so nobody attests their own work.
- Residents file oversight reports (complaints, observations) that move
  received → under_review → answered → closed; an answer is public, and only a report under
  review can be answered (`move_report`).
- An expenditure never takes a project past what funding has disbursed to it
  (`check_expenditure`): the money spent must have arrived.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from comuna_platform.errors import FailedPrecondition, Forbidden, InvalidInput
from comuna_projects.vocabulary import ReportState

MAX_SUPPLIER = 200
MAX_DESCRIPTION = 2_000


def check_verifier(*, reported_by: str | None, verifier: str) -> None:
    """Refuse a verification by the person who reported the milestone done (or of a milestone
    nobody reported)."""
    if reported_by is None:
        raise FailedPrecondition("the milestone was not reported done yet", code="milestone_not_reported")
    if reported_by == verifier:
        raise Forbidden("a milestone is verified by someone other than its reporter", code="own_milestone")


class ReportMove(StrEnum):
    REVIEW = "review"
    ANSWER = "answer"
    CLOSE = "close"


REPORT_MOVES: dict[tuple[ReportState, ReportMove], ReportState] = {
    (ReportState.RECEIVED, ReportMove.REVIEW): ReportState.UNDER_REVIEW,
    (ReportState.UNDER_REVIEW, ReportMove.ANSWER): ReportState.ANSWERED,
    (ReportState.ANSWERED, ReportMove.CLOSE): ReportState.CLOSED,
}


_DONE = {ReportMove.REVIEW: "reviewed", ReportMove.ANSWER: "answered", ReportMove.CLOSE: "closed"}


def move_report(state: ReportState, action: ReportMove, *, answer: str | None = None) -> ReportState:
    after = REPORT_MOVES.get((state, action))
    if after is None:
        raise FailedPrecondition(
            f"an oversight report that is {state.value} cannot be {_DONE[action]}",
            code="report_transition_not_allowed",
        )
    if action is ReportMove.ANSWER and not (answer and answer.strip()):
        raise InvalidInput("an answer needs a text, which is published", code="answer_empty")
    return after


@dataclass(frozen=True, slots=True)
class Expenditure:
    amount_minor: int
    currency: str
    spent_on: date
    supplier: str
    description: str


def check_expenditure(
    expenditure: Expenditure, *, currency: str, spent_minor: int, disbursed_minor: int, today: date
) -> None:
    """Refuse a malformed expenditure, or one that would take spending past what was disbursed."""
    if expenditure.amount_minor <= 0:
        raise InvalidInput("an expenditure's amount must be positive", code="amount_invalid")
    if expenditure.currency != currency:
        raise InvalidInput(f"the project is funded in {currency}, not {expenditure.currency}", code="currency_mismatch")
    if expenditure.spent_on > today:
        raise InvalidInput("an expenditure cannot be dated in the future", code="expenditure_in_future")
    supplier, description = expenditure.supplier.strip(), expenditure.description.strip()
    if not supplier or len(supplier) > MAX_SUPPLIER:
        raise InvalidInput(f"the supplier has 1 to {MAX_SUPPLIER} characters", code="supplier_invalid")
    if not description or len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"the description has 1 to {MAX_DESCRIPTION} characters", code="description_invalid")
    if spent_minor + expenditure.amount_minor > disbursed_minor:
        raise FailedPrecondition(
            f"spending would reach {spent_minor + expenditure.amount_minor} {currency}; "
            f"funding has disbursed {disbursed_minor}",
            code="exceeds_disbursed",
        )
