"""The wire format shared by consultations and `comuna-table` (an offline table's device).

One definition of what is signed and what is MACed, used by both ends, so they cannot drift:

* A snapshot is a JSON document in canonical form (`canonical`: sorted keys, no spaces, UTF-8)
  signed with Ed25519 by consultations' snapshot signing key. The device checks the signature
  against the public key served at `GET /v1/snapshot-keys` (or one given to it out of band)
  before storing it, and again before every sync.
* A sync batch is MACed (HMAC-SHA256, `batch_mac`) with the table's sync key, handed to the
  device next to the snapshot. Consultations derives the same key from its signing key, so a
  batch whose rows were edited, or one made for another table or consultation, fails the check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

SNAPSHOT_FORMAT = "comuna-table-snapshot/1"
BATCH_FORMAT = "comuna-table-batch/1"
SIGNATURE_ALGORITHM = "Ed25519"


def canonical(document: dict[str, Any]) -> bytes:
    """The one byte string a JSON document is signed or MACed as."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    """Strict base64 (ValueError on anything else)."""
    return base64.b64decode(text.encode(), validate=True)


def key_id(public_key: bytes) -> str:
    """A short, stable name of a public key (the first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def sign(signing_key: SigningKey, payload: bytes) -> bytes:
    return bytes(signing_key.sign(payload).signature)


def verify(public_key: bytes, payload: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(public_key).verify(payload, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def batch_mac(sync_key: bytes, batch: dict[str, Any]) -> bytes:
    """HMAC-SHA256 of the batch without its `mac` field."""
    unsigned = {name: value for name, value in batch.items() if name != "mac"}
    return hmac.new(sync_key, canonical(unsigned), hashlib.sha256).digest()


def batch_mac_ok(sync_key: bytes, batch: dict[str, Any]) -> bool:
    try:
        given = unb64(str(batch.get("mac", "")))
    except ValueError:
        return False
    return hmac.compare_digest(given, batch_mac(sync_key, batch))
