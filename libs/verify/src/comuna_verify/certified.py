"""The certified results the platform publishes (`BASE/results`) against the log's result entries."""

from __future__ import annotations

from typing import Any

from comuna_verify.audit import Ledger
from comuna_verify.entries import Result


def _compare(name: str, what: str, published: object, logged: object, problems: list[str]) -> None:
    if published != logged:
        problems.append(f"{name}: BASE/results says {what} {published}, the log's result entry says {logged}")


def _commune(published: dict[str, Any], result: Result, problems: list[str]) -> None:
    name = f"commune {result.code}"
    certification = published.get("certification") or {}
    _compare(name, "commune code", published.get("commune_code"), result.code, problems)
    _compare(name, "version", certification.get("version"), result.version, problems)
    _compare(name, "winner", published.get("winner_candidate_id") or "none", result.winner or "none", problems)
    for key, logged in (
        ("blank", result.blank),
        ("null", result.null),
        ("participations", result.participations),
        ("roll_size", result.roll),
        ("ballots", result.ballots),
    ):
        _compare(name, key, published.get(key), logged, problems)
    candidates = {str(c.get("candidate_id")): c for c in published.get("candidates") or []}
    for candidate in result.candidates:
        found = candidates.pop(candidate.candidate_id, None)
        if found is None:
            problems.append(f"{name}: candidate {candidate.candidate_id} of the log's result is not in BASE/results")
            continue
        _compare(name, f"votes of {candidate.candidate_id}", found.get("votes"), candidate.votes, problems)
        _compare(name, f"rank of {candidate.candidate_id}", found.get("rank"), candidate.rank, problems)
    for extra in sorted(candidates):
        problems.append(f"{name}: candidate {extra} of BASE/results is not in the log's result")


def compare_results(published: Any, ledger: Ledger) -> list[str]:
    try:
        return _compare_results(published, ledger)
    except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong JSON type
        return [f"results: BASE/results is malformed ({type(exc).__name__}: {exc})"]


def _compare_results(published: Any, ledger: Ledger) -> list[str]:
    problems: list[str] = []
    if not isinstance(published, dict) or not isinstance(published.get("communes"), list):
        return ["results: BASE/results is not an object with a list of communes"]
    if str(published.get("consultation_id")) != ledger.consultation_id:
        problems.append(f"results: BASE/results is of consultation {published.get('consultation_id')}")
    listed: set[str] = set()
    for commune in published["communes"]:
        if not isinstance(commune, dict):
            problems.append("results: a commune of BASE/results is not an object")
            continue
        commune_id = str(commune.get("commune_id"))
        listed.add(commune_id)
        latest = ledger.results.get(commune_id)
        if latest is None:
            problems.append(f"commune {commune.get('commune_code', commune_id)}: in BASE/results but no result entry")
            continue
        _commune(commune, latest.result, problems)
    for commune_id in sorted(ledger.results.keys() - listed):
        problems.append(f"{ledger.commune_name(commune_id)}: has a result entry but is not in BASE/results")
    total = sum(c.get("ballots", 0) for c in published["communes"] if isinstance(c, dict))
    if published.get("ballots") != total:
        problems.append(f"results: BASE/results says ballots {published.get('ballots')}, its communes sum to {total}")
    return problems
