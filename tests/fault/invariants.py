"""What must hold after every fault, checked through the services' public REST APIs.

Each check returns the broken invariants as sentences with the numbers, so a failing scenario
says what went wrong (e.g. "commune VE.01.01.C0007: 0 allocations") instead of a bare assert.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from comuna_devstack.client import items
from tests.fault.cycle import Cycle


def cycle_problems(cycle: Cycle, *, grant_minor: int) -> list[str]:
    problems: list[str] = []
    problems += _vote_problems(cycle)
    allocations = cycle.allocations()
    problems += _allocation_problems(cycle, allocations, grant_minor)
    projects = cycle.projects()
    problems += _project_problems(cycle, allocations, projects)
    for allocation in allocations:
        problems += _money_problems(cycle, allocation, projects)
    problems += ledger_problems(cycle)
    return problems


def _vote_problems(cycle: Cycle) -> list[str]:
    """Every acknowledged ballot is counted once: certified counts equal what was accepted."""
    results = cycle.client.call("GET", "consultations", f"{cycle.base}/results")
    problems = []
    for commune in results["communes"]:
        for candidate in commune["candidates"]:
            expected = cycle.cast[candidate["candidate_id"]]
            if candidate["votes"] != expected:
                problems.append(
                    f"commune {commune['commune_code']}: candidate {candidate['candidate_id']} certified with"
                    f" {candidate['votes']} votes, {expected} ballots were accepted"
                )
        if not commune.get("winner_candidate_id"):
            problems.append(f"commune {commune['commune_code']}: certified without a winner")
    return problems


def _allocation_problems(cycle: Cycle, allocations: list[dict[str, Any]], grant_minor: int) -> list[str]:
    per_commune = Counter(a["commune_id"] for a in allocations)
    problems = [
        f"commune {c.code}: {per_commune[c.id]} allocations, expected exactly 1"
        for c in cycle.communes
        if per_commune[c.id] != 1
    ]
    problems += [
        f"allocation {a['id']} ({a['commune_code']}): {a['amount_minor']} minor units, the grant is {grant_minor}"
        for a in allocations
        if a["amount_minor"] != grant_minor
    ]
    return problems


def _project_problems(cycle: Cycle, allocations: list[dict[str, Any]], projects: list[dict[str, Any]]) -> list[str]:
    per_allocation = Counter(p["allocation_id"] for p in projects)
    problems = [
        f"allocation {a['id']} ({a['commune_code']}): {per_allocation[a['id']]} projects, expected exactly 1"
        for a in allocations
        if per_allocation[a["id"]] != 1
    ]
    known = {a["id"] for a in allocations}
    problems += [
        f"project {p['id']} refers to unknown allocation {p['allocation_id']}"
        for p in projects
        if p["allocation_id"] not in known
    ]
    return problems


def _money_problems(cycle: Cycle, allocation: dict[str, Any], projects: list[dict[str, Any]]) -> list[str]:
    """One tranche per verified milestone, and the allocation's account moved exactly that."""
    client, where = cycle.client, f"allocation {allocation['id']} ({allocation['commune_code']})"
    project = next((p for p in projects if p["allocation_id"] == allocation["id"]), None)
    if project is None:
        return []  # reported by _project_problems
    milestones = client.call("GET", "projects", f"/v1/projects/{project['id']}")["milestones"]
    detail = client.call("GET", "funding", f"/v1/allocations/{allocation['id']}")
    tranches = Counter(d["milestone_id"] for d in detail["disbursements"] if d["status"] == "completed")
    problems = [
        f"{where}: milestone {m['sequence']} ({m['status']}) has {tranches[m['id']]} tranches, expected exactly 1"
        for m in milestones
        if tranches[m["id"]] != 1 or m["status"] != "funded"
    ]
    unknown = set(tranches) - {m["id"] for m in milestones}
    if unknown:
        problems.append(f"{where}: tranches for milestones the project does not have: {sorted(unknown)}")
    if detail["disbursed_minor"] != allocation["amount_minor"] or detail["remaining_minor"] != 0:
        problems.append(
            f"{where}: disbursed {detail['disbursed_minor']} of {allocation['amount_minor']},"
            f" {detail['remaining_minor']} remaining"
        )
    transfers = items(
        client.call("GET", "funding", "/v1/transfers", params={"account_id": allocation["account_id"], "limit": 500})
    )
    # The grant, then per milestone its tranche's reservation (at the project's creation) and post.
    expected = 1 + 2 * len(milestones)
    if len(transfers) != expected:
        problems.append(
            f"{where}: its account has {len(transfers)} transfers, expected {expected}"
            " (the grant, and a reservation and a post per milestone): an event was applied twice or not at all"
        )
    return problems


def ledger_problems(cycle: Cycle) -> list[str]:
    totals = cycle.client.call("GET", "funding", "/v1/ledger/totals")
    return [
        f"ledger {t['currency']}: debits {t['debits_minor']} != credits {t['credits_minor']}"
        for t in items(totals)
        if t["debits_minor"] != t["credits_minor"]
    ] + ([] if totals["balanced"] else ["ledger totals say balanced=false"])
