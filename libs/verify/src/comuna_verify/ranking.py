"""The counting rule, re-computed: who ranks where, and who wins.

By votes, more first; candidates with equal votes ordered by each tie-break rule in turn, then by
the candidate id string, so ranks are 1..n and distinct:

    lower_cost            lower cost first, no cost last
    earlier_registration  earlier registered_at first, none last
    assembly_priority     lower number first
    draw                  lower HMAC-SHA256(key=draw seed, msg=candidate id's 16 bytes) first

The platform appends `draw` to a declared list without it (rules after it can never decide),
so a list without `draw` is read the same way. The winner is rank 1 if any candidate got a vote.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from comuna_verify.entries import Candidate


def _rule_key(rule: str, candidate: Candidate, seed: bytes) -> Any:
    if rule == "lower_cost":
        return (candidate.cost is None, candidate.cost or 0)
    if rule == "earlier_registration":
        registered = candidate.registered_at
        return (registered is None, registered.timestamp() if isinstance(registered, datetime) else 0.0)
    if rule == "assembly_priority":
        return candidate.priority
    return hmac.new(seed, uuid.UUID(candidate.candidate_id).bytes, hashlib.sha256).digest()


def rank(candidates: Sequence[Candidate], rules: Sequence[str], seed: bytes) -> list[str]:
    """Candidate ids in rank order."""
    applied = list(rules) if "draw" in rules else [*rules, "draw"]

    def key(candidate: Candidate) -> tuple[Any, ...]:
        return (-candidate.votes, *(_rule_key(r, candidate, seed) for r in applied), candidate.candidate_id)

    return [c.candidate_id for c in sorted(candidates, key=key)]


def winner(candidates: Sequence[Candidate], ordered: Sequence[str]) -> str | None:
    if not ordered or sum(c.votes for c in candidates) == 0:
        return None
    return ordered[0]
