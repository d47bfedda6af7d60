"""The milestone plan: how a project's budget is cut into tranches.

A plan is a list of (title, percent) steps, written in settings as
`"Start-up:40,Midpoint:40,Completion:20"`. Money is split in integer minor units: every step
but the last gets the floor of its share, and the last one takes whatever is left, so the
tranches always add up to the budget exactly — no unit is created or lost by rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PLAN = "Start-up:40,Midpoint:40,Completion:20"
MAX_STEPS = 20
MAX_TITLE_LENGTH = 200


@dataclass(frozen=True)
class PlanStep:
    title: str
    percent: int


@dataclass(frozen=True)
class MilestonePlan:
    steps: tuple[PlanStep, ...]

    def __post_init__(self) -> None:
        # Checked here (not only in `parse_plan`) so no invalid plan can exist at all.
        if not 1 <= len(self.steps) <= MAX_STEPS:
            raise ValueError(f"a milestone plan needs 1 to {MAX_STEPS} steps")
        for step in self.steps:
            if not step.title or len(step.title) > MAX_TITLE_LENGTH:
                raise ValueError(f"milestone title must be 1 to {MAX_TITLE_LENGTH} characters")
            if not 0 < step.percent <= 100:
                raise ValueError(f"milestone {step.title!r}: percent must be between 1 and 100")
        if sum(step.percent for step in self.steps) != 100:
            raise ValueError("milestone percentages must add up to 100")

    def split(self, budget_minor: int) -> list[int]:
        """Tranche of each step, in minor units; see `split_budget`."""
        return split_budget(budget_minor, [step.percent for step in self.steps])


def parse_plan(text: str) -> MilestonePlan:
    """Parse `"Title:percent,Title:percent,..."`; raises ValueError on anything malformed."""
    steps = []
    for raw in text.split(","):
        title, sep, percent = raw.rpartition(":")
        title = title.strip()
        if not sep or not title:
            raise ValueError(f"milestone plan entry {raw.strip()!r} is not 'title:percent'")
        try:
            value = int(percent.strip())
        except ValueError as exc:
            raise ValueError(f"milestone plan entry {raw.strip()!r}: percent is not an integer") from exc
        steps.append(PlanStep(title=title, percent=value))
    return MilestonePlan(tuple(steps))


def split_budget(budget_minor: int, percents: Sequence[int]) -> list[int]:
    """Cut `budget_minor` into tranches proportional to `percents` (which add up to 100).

    Every tranche but the last is rounded down; the last takes the remainder. Integer
    arithmetic only, so the sum is exactly the budget for any budget size.
    """
    if budget_minor < 0:
        raise ValueError("budget must not be negative")
    if not percents or sum(percents) != 100 or any(p <= 0 for p in percents):
        raise ValueError("percentages must be positive and add up to 100")
    head = [budget_minor * percent // 100 for percent in percents[:-1]]
    return [*head, budget_minor - sum(head)]
