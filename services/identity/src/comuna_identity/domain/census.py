"""The census: keyed hashes of national id numbers, eligibility, and per-consultation pseudonyms."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date

from comuna_platform.errors import InvalidInput

# Venezuelan cédula: optional V/E nationality letter, 1 to 10 digits, optional separators.
_NATIONAL_ID = re.compile(r"^(?:([VvEe])[-\s]?)?(\d{1,10})$")


def normalise_national_id(raw: str) -> str:
    """Canonical form `V12345678`, so that `v-12.345.678` and `V12345678` hash alike."""
    match = _NATIONAL_ID.match(raw.strip().replace(".", ""))
    if match is None:
        raise InvalidInput("national id number is not valid", code="national_id_invalid")
    letter, digits = match.groups()
    return f"{(letter or 'V').upper()}{int(digits)}"


class CensusHasher:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("census hash key must be at least 16 bytes")
        self._key = key

    def national_id_hash(self, raw_national_id: str) -> bytes:
        normalised = normalise_national_id(raw_national_id)
        return hmac.new(self._key, b"national-id:" + normalised.encode(), hashlib.sha256).digest()

    def voter_ref(self, consultation_id: str, resident_id: str) -> str:
        """Stable pseudonym of a resident inside one consultation, unlinkable across them."""
        message = f"voter-ref:{consultation_id}:{resident_id}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def age_on(birth_date: date, day: date) -> int:
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years
