"""Consultations' snapshot signing key, and what each offline table derives from it.

From the one configured Ed25519 seed (`COMUNA_CONSULTATIONS_SNAPSHOT_SIGNING_KEY`):

* the signing key of snapshots (its public key is served at `GET /v1/snapshot-keys`);
* per table, a blinding scalar `b_T` (never leaves this service). A device is given
  `k_T = b_T·t_c` instead of the consultation's voter key `t_c`, and its snapshot lists the
  commune's entries as `b_T·E` instead of the entry keys `E = t_c·P(doc)`. The device computes
  `k_T·P(doc) = b_T·E` from a document and finds it in its snapshot; at sync, consultations
  turns each check-in back into `E` with `b_T⁻¹`. A stolen device therefore lets its thief test
  guessed documents against THIS table's snapshot only (one commune's roll, which is what the
  device must do to check people in offline); it cannot compute the consultation's entry keys,
  match `participations.voter_ref`, or test documents against other communes;
* per table, the sync key that MACs the device's batches (`comuna_platform.offline_tables`).

Derived, not stored: nothing to migrate or back up besides the one secret. The price: rotating
the seed invalidates every snapshot already downloaded (rotate between consultations).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

from nacl import bindings
from nacl.signing import SigningKey

from comuna_platform import offline_tables
from comuna_platform.voter_keys import multiply, scalar_from, scalar_product


@dataclass(frozen=True)
class SnapshotKeys:
    signing_key: SigningKey

    @classmethod
    def from_seed_b64(cls, seed_b64: str) -> SnapshotKeys:
        """ValueError unless the setting is the base64 of exactly 32 bytes."""
        seed = offline_tables.unb64(seed_b64.strip())
        if len(seed) != 32:
            raise ValueError("the snapshot signing key must be 32 bytes (base64)")
        return cls(SigningKey(seed))

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def key_id(self) -> str:
        return offline_tables.key_id(self.public_key)

    def sign(self, payload: bytes) -> bytes:
        return offline_tables.sign(self.signing_key, payload)

    def _seed(self) -> bytes:
        return bytes(self.signing_key)

    def blinding(self, consultation_id: uuid.UUID, table_id: uuid.UUID) -> bytes:
        return scalar_from(self._seed(), f"offline-table-blinding:{consultation_id}:{table_id}")

    def device_key(self, voter_key: bytes, consultation_id: uuid.UUID, table_id: uuid.UUID) -> bytes:
        """`k_T = b_T·t_c`: what the device multiplies a document's point by."""
        return scalar_product(self.blinding(consultation_id, table_id), voter_key)

    def blind(self, entry_key: bytes, consultation_id: uuid.UUID, table_id: uuid.UUID) -> bytes:
        return multiply(self.blinding(consultation_id, table_id), entry_key)

    def unblinder(self, consultation_id: uuid.UUID, table_id: uuid.UUID) -> bytes:
        """`b_T⁻¹`: turns a device's check-in `b_T·E` back into the entry key `E`."""
        return bytes(bindings.crypto_core_ed25519_scalar_invert(self.blinding(consultation_id, table_id)))

    def sync_key(self, consultation_id: uuid.UUID, table_id: uuid.UUID) -> bytes:
        label = f"comuna/offline/sync-key/v1:{consultation_id}:{table_id}".encode()
        return hmac.new(self._seed(), label, hashlib.sha256).digest()
