"""The keys of a consultation's voter roll, derived from identity's roll secret, and the date
rule of eligibility. Pure: no database, no I/O (unit-tested directly).

Per consultation `c` (see `comuna_platform.voter_keys` for the construction):
* `s_c = scalar_from(secret, "consultation:<c>")`: an entry's key is `s_c·B` (B: the resident's roll base);
* `t_c = k·s_c` with `k = scalar_from(secret, "roll-base")`: handed to consultations, which
  computes `t_c·P(d)` from a document, the same point;
* `L_c = HMAC-SHA256(secret, "comuna/voter-roll/v1/login:<c>")`: an entry's login key is
  `HMAC-SHA256(L_c, subject)` for a resident with a linked Keycloak account, so consultations
  can recognise a signed-in resident without learning anything identity did not put on the roll.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from comuna_platform.voter_keys import multiply, scalar_from, scalar_product


@dataclass(frozen=True, slots=True)
class ConsultationKeys:
    entry_scalar: bytes  # s_c: stays in identity
    voter_key: bytes  # t_c: for consultations
    login_key: bytes  # L_c: for consultations

    def login_entry(self, subject: str) -> bytes:
        return login_entry(self.login_key, subject)


class RollSecret:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the roll secret must be at least 32 bytes")
        self._secret = secret
        self._base_scalar = scalar_from(secret, "roll-base")

    def for_consultation(self, consultation_id: uuid.UUID) -> ConsultationKeys:
        entry_scalar = scalar_from(self._secret, f"consultation:{consultation_id}")
        login_key = hmac.new(
            self._secret, f"comuna/voter-roll/v1/login:{consultation_id}".encode(), hashlib.sha256
        ).digest()
        return ConsultationKeys(entry_scalar, scalar_product(self._base_scalar, entry_scalar), login_key)


def login_entry(login_key: bytes, subject: str) -> bytes:
    return hmac.new(login_key, subject.encode(), hashlib.sha256).digest()


def entry_keys(entry_scalar: bytes, roll_bases: Sequence[bytes]) -> list[bytes]:
    """`s_c·B` for each roll base. ~100 µs each, in libsodium, which releases the GIL (cffi), so
    a few threads running this use as many cores."""
    return [multiply(entry_scalar, base) for base in roll_bases]


def born_by(voting_day: date, voting_age: int) -> date:
    """The latest birth date of someone `voting_age` or older on `voting_day` (a 29 February
    birthday counts from 1 March in common years, as `census.age_on` does)."""
    year = voting_day.year - voting_age
    try:
        return voting_day.replace(year=year)
    except ValueError:  # 29 February of a leap voting day, in a common year
        return date(year, 2, 28)
