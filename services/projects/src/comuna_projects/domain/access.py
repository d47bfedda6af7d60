"""Who may act on a project, checked against this service's own data (the project's commune)
and where that commune sits in identity's register today (a commune may have moved).

- The commune's spokespeople run the project: plan, start, report, spend, complete, cancel.
- Its oversight committee (overseers) checks them: verifies milestones, decides change
  requests, answers residents' reports.
- Its residents (signed in, enrolled at a council of the commune) file oversight reports.
- The national operator may do what spokespeople and overseers do (but four eyes still hold:
  never both on one milestone or one change request). Auditors read everything.
"""

from __future__ import annotations

from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_projects.storage.models import Project

RUNNERS = (Role.SPOKESPERSON, Role.OPERATOR)
OVERSEERS = (Role.OVERSEER, Role.OPERATOR)
READERS = (Role.AUDITOR, Role.OVERSEER, Role.OPERATOR)


async def require_runner(caller: Caller, lineages: TerritoryLineages, project: Project) -> None:
    caller.require(RUNNERS, await lineages.of(project.commune_code))


async def require_overseer(caller: Caller, lineages: TerritoryLineages, project: Project) -> None:
    caller.require(OVERSEERS, await lineages.of(project.commune_code))


async def require_reader(caller: Caller, lineages: TerritoryLineages, project: Project) -> None:
    """Auditors everywhere; the commune's overseers and the operator (who see who filed what)."""
    caller.require(READERS, await lineages.of(project.commune_code))


async def require_resident(caller: Caller, lineages: TerritoryLineages, project: Project) -> None:
    """403 unless the caller is enrolled at a communal council inside the project's commune."""
    caller.require_role(Role.RESIDENT)
    for assignment in caller.assignments:
        if assignment.role is Role.RESIDENT and project.commune_code in await lineages.of(assignment.territory_code):
            return
    raise PermissionDeniedError(
        "forbidden_territory", f"only residents of commune {project.commune_code} report on its projects"
    )
