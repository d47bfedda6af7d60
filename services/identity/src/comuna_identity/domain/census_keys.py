"""The census key ring: keyed hashes of documents under key generations, and why re-keying wraps.

A resident is found by `HMAC(k, b"national-id:" + type + number)`. The number is never stored,
so a record can never be hashed afresh under a new key: whoever re-keys has only the old hash.
Re-keying therefore wraps it: the record under generation `g` moves to the next generation `h`
by `hash_h = HMAC(k_h, hash_g)`, an onion. For every record of one generation to be the same
function of the document, new records are hashed through the same onion: the generations in
use by the database (table `census_keys`, oldest first) are applied in order, the first over
the document's message, each next one over the previous hash.

Consequences, by construction: every key ever used stays in the ring (the onion needs all of
them); a leaked old key alone no longer identifies anybody once the census has moved past it
(the current hash needs every later key too); and a lookup during a rotation computes the
hash under every generation in use (each layer of the onion, for free) and matches
(key id, hash) pairs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from comuna_platform.documents import Document

_FINGERPRINT_LABEL = b"comuna/census-key-fingerprint/v1"
MIN_KEY_BYTES = 16


class KeyRingError(ValueError):
    """The key ring is misconfigured (never says a secret)."""


def message_of(document: Document) -> bytes:
    # Equal to the message of before key ids for V/E cédulas ("national-id:V12345678"), so
    # records of then are generation 1 as they are.
    return b"national-id:" + document.type.value.encode() + document.number.encode()


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


@dataclass(frozen=True)
class KeyRing:
    """Key id -> secret, and the generation new records should reach (`current`)."""

    keys: Mapping[int, bytes]
    current: int

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the census key ring is empty: set COMUNA_IDENTITY_CENSUS_KEYS")
        for key_id, secret in self.keys.items():
            if not 0 < key_id < 2**15:
                raise KeyRingError(f"census key id {key_id} is out of range (1..32767)")
            if len(secret) < MIN_KEY_BYTES:
                raise KeyRingError(f"census key {key_id} is shorter than {MIN_KEY_BYTES} bytes")
        if self.current not in self.keys:
            raise KeyRingError(f"the current census key id {self.current} is not in the ring")

    def __repr__(self) -> str:  # never a secret, even in a traceback's locals
        return f"KeyRing(ids={sorted(self.keys)}, current={self.current})"

    def secret(self, key_id: int) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyRingError(f"census key {key_id} is in use by the database but not in the ring") from None

    def fingerprint(self, key_id: int) -> bytes:
        """What `census_keys` records for `key_id`: proves the same secret without holding it."""
        return _mac(self.secret(key_id), _FINGERPRINT_LABEL)

    def layers(self, document: Document, generations: Sequence[int]) -> list[tuple[int, bytes]]:
        """(generation, hash) for every generation in use, oldest first: the onion's layers."""
        digest = message_of(document)
        out = []
        for key_id in generations:
            digest = _mac(self.secret(key_id), digest)
            out.append((key_id, digest))
        return out

    def wrap(self, digest: bytes, to_generation: int) -> bytes:
        """Re-key one layer outward: the hash under the generation after the record's own."""
        return _mac(self.secret(to_generation), digest)


def parse_ring(ring_json: str, legacy_key: str, current: int | None) -> KeyRing:
    """The ring from settings: `{"1": "secret", ...}` (JSON), plus the single key of before as id 1."""
    keys: dict[int, bytes] = {}
    if ring_json.strip():
        try:
            raw = json.loads(ring_json)
        except json.JSONDecodeError:
            raise KeyRingError("COMUNA_IDENTITY_CENSUS_KEYS is not a JSON object of id -> secret") from None
        if not isinstance(raw, dict):
            raise KeyRingError("COMUNA_IDENTITY_CENSUS_KEYS is not a JSON object of id -> secret")
        for key_id, secret in raw.items():
            if not str(key_id).isascii() or not str(key_id).isdigit() or not isinstance(secret, str):
                raise KeyRingError("COMUNA_IDENTITY_CENSUS_KEYS maps decimal ids to secret strings")
            keys[int(key_id)] = secret.encode()
    if legacy_key:
        if 1 in keys and keys[1] != legacy_key.encode():
            raise KeyRingError("COMUNA_IDENTITY_CENSUS_HASH_KEY and key 1 of COMUNA_IDENTITY_CENSUS_KEYS differ")
        keys[1] = legacy_key.encode()
    if not keys:
        raise KeyRingError("the census key ring is empty: set COMUNA_IDENTITY_CENSUS_KEYS")
    return KeyRing(keys, current if current is not None else max(keys))
