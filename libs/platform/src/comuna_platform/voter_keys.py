"""Keys of the voter roll: recognising a voter from a document without the census key.

A table must recognise the person in front of it from the document they show, offline if need
be, and identity must build the roll from what it stores, which is never the document number.
A keyed hash (HMAC) cannot do both: identity could only compute it from the number. So the
roll uses a keyed function with a homomorphic structure, in the prime-order group of
edwards25519 (libsodium):

* `P(d)`: the document hashed to the group (`document_point`), with no known discrete log.
* At import identity stores `B = k·P(d)` (the *roll base*), `k` derived from its roll secret.
* For consultation `c` it derives `s_c` and publishes to that consultation's roll the entry key
  `s_c·B`. Consultations receives `t_c = k·s_c` (its *voter key*) and computes `t_c·P(d)` from a
  document: the same point. `t_c` reveals neither `k` nor `s_c`, so consultations can match
  documents against its own roll only; entries of two consultations cannot be linked without
  identity's secret; and nothing here lets anyone compute identity's census hashes.

What `t_c` still allows, by construction: whoever holds it can test a guessed document number
against this consultation's roll (document numbers are few enough to enumerate). That is
inherent in recognising documents offline; it is why `t_c` stays inside consultations and the
table devices of one consultation.
"""

from __future__ import annotations

import hashlib
import hmac

from nacl import bindings

from comuna_platform.documents import Document

POINT_BYTES = bindings.crypto_core_ed25519_BYTES
SCALAR_BYTES = bindings.crypto_core_ed25519_SCALARBYTES
_DOMAIN = b"comuna/voter-key/v1:"


def document_point(document: Document) -> bytes:
    """`P(d)`: the document hashed onto the prime-order group (Elligator 2, cofactor cleared)."""
    return bytes(
        bindings.crypto_core_ed25519_from_uniform(hashlib.sha256(_DOMAIN + document.canonical.encode()).digest())
    )


def scalar_from(secret: bytes, label: str) -> bytes:
    """A non-zero scalar derived from `secret` for `label` (HMAC-SHA512, reduced mod the group order)."""
    if len(secret) < 32:
        raise ValueError("the roll secret must be at least 32 bytes")
    wide = hmac.new(secret, b"comuna/voter-key/v1/scalar:" + label.encode(), hashlib.sha512).digest()
    scalar = bytes(bindings.crypto_core_ed25519_scalar_reduce(wide))
    if scalar == bytes(SCALAR_BYTES):
        raise ValueError("derived a zero scalar")  # probability 2^-252; never silently
    return scalar


def multiply(scalar: bytes, point: bytes) -> bytes:
    """`scalar·point`, no clamping (the scalars are already reduced)."""
    return bytes(bindings.crypto_scalarmult_ed25519_noclamp(scalar, point))


def scalar_product(a: bytes, b: bytes) -> bytes:
    return bytes(bindings.crypto_core_ed25519_scalar_mul(a, b))


def is_point(value: bytes) -> bool:
    return len(value) == POINT_BYTES and bool(bindings.crypto_core_ed25519_is_valid_point(value))
