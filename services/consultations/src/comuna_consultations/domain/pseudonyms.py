"""The participation's `voter_ref`: a pseudonym of the voter that only this service can compute.

`voter_ref = HMAC-SHA256(S, "comuna/consultations/v1/voter-ref:" || consultation id || entry key)`
with S the consultations-only secret `COMUNA_CONSULTATIONS_VOTER_REF_SECRET` (a Kubernetes
Secret, never in the database). Identity can compute every entry key of a roll (it froze it),
and anyone holding this database holds `t_c` (`roll_loads.voter_key`), which turns a guessed
document into its entry key: without S neither can turn a participation into a roll entry, so
neither can turn it into a person. Per consultation by construction (the id is in the input).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

_LABEL = b"comuna/consultations/v1/voter-ref:"


class Pseudonyms:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the voter reference secret must be at least 32 bytes")
        self._secret = secret

    def voter_ref(self, consultation_id: uuid.UUID, entry_key: bytes) -> str:
        return hmac.new(self._secret, _LABEL + consultation_id.bytes + entry_key, hashlib.sha256).hexdigest()


def login_entry(login_key: bytes, subject: str) -> bytes:
    """A signed-in resident's `roll_entries.login_key`: HMAC-SHA256(L_c, Keycloak subject), the
    same function identity used when it froze the roll (`comuna_identity.domain.roll_keys`)."""
    return hmac.new(login_key, subject.encode(), hashlib.sha256).digest()
