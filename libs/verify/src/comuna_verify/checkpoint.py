"""The C2SP tlog-checkpoint: its body, and who signed or cosigned a signed one."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from comuna_verify.merkle import HASH_SIZE
from comuna_verify.notes import ED25519, NoteError, PublicKey, SignatureLine, signs, split_note, verify_line

_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: str  # the exact signed text

    @property
    def root_b64(self) -> str:
        return base64.b64encode(self.root).decode()


def parse_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint body is origin, size and root hash lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or _SIZE.fullmatch(size) is None:
        raise NoteError(f"checkpoint: bad origin or size {size!r}")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError("checkpoint: root hash is not base64") from exc
    if len(root_hash) != HASH_SIZE:
        raise NoteError("checkpoint: root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root_hash, body)


@dataclass(frozen=True, slots=True)
class Cosigner:
    name: str
    key_id: str
    verified: bool | None  # None: no key given for it
    timestamp: int | None = None


@dataclass(slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: str
    signers: list[str] = field(default_factory=list)  # log keys with a valid signature
    cosigners: list[Cosigner] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def signed(self) -> bool:
        return bool(self.signers)


def open_checkpoint(
    note: str, log_keys: Sequence[PublicKey], witness_keys: Sequence[PublicKey] = (), what: str = "checkpoint"
) -> SignedCheckpoint:
    """Parse a signed checkpoint and sort its signatures: valid log signatures, cosignatures
    (verified when their key is in `witness_keys`), and problems (a bad signature by a known
    key, no valid log signature). NoteError if it is no checkpoint at all."""
    text, lines = split_note(note)
    result = SignedCheckpoint(parse_body(text), note)
    for line in lines:
        # Matched by name and key id: during a rotation two log keys may share a name.
        log_key = next((k for k in log_keys if k.key_type == ED25519 and signs(k, line)), None)
        if log_key is not None:
            if verify_line(text, log_key, line) is None:
                result.problems.append(f"{what}: invalid signature by log key {line.name}")
            else:
                result.signers.append(line.name)
            continue
        result.cosigners.append(_cosigner(text, line, witness_keys, what, result.problems))
    if not result.signers:
        result.problems.append(f"{what}: no valid signature by a log key")
    return result


def _cosigner(
    text: str, line: SignatureLine, witness_keys: Sequence[PublicKey], what: str, problems: list[str]
) -> Cosigner:
    key = next((k for k in witness_keys if k.name == line.name and k.key_id == line.key_id), None)
    if key is None:
        return Cosigner(line.name, line.key_id.hex(), None)
    timestamp = verify_line(text, key, line)
    if timestamp is None:
        problems.append(f"{what}: invalid cosignature by witness {line.name}")
        return Cosigner(line.name, line.key_id.hex(), False)
    return Cosigner(line.name, line.key_id.hex(), True, timestamp if key.key_type != ED25519 else None)
