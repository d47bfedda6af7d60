"""C2SP tlog-cosignature/v1: a witness's timestamped statement that a checkpoint is the
largest consistent tree it has seen for the log."""

from __future__ import annotations

import struct

from comuna_platform.tlog.note import COSIGNATURE_V1, NoteError, Signature, Signer, Verifier, check_text


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, signer: Signer, timestamp: int) -> Signature:
    if signer.key_type != COSIGNATURE_V1:
        raise NoteError("a cosignature needs a cosignature/v1 key (type 0x04)")
    check_text(text)
    if not 0 <= timestamp < 1 << 63:
        raise NoteError("cosignature timestamp out of range")
    signed = signer.sign(cosigned_message(text, timestamp))
    return Signature(signer.name, signer.verifier.key_id, struct.pack(">Q", timestamp) + signed)


def cosignature_time(text: str, signature: Signature, verifier: Verifier) -> int:
    """The timestamp of a valid cosignature by `verifier` on `text`; NoteError otherwise."""
    if verifier.key_type != COSIGNATURE_V1 or signature.name != verifier.name or signature.key_id != verifier.key_id:
        raise NoteError(f"not a cosignature by {verifier.name}")
    if len(signature.signature) != 8 + 64:
        raise NoteError(f"cosignature by {verifier.name}: wrong length")
    (timestamp,) = struct.unpack(">Q", signature.signature[:8])
    if timestamp >= 1 << 63 or not verifier.verify(cosigned_message(text, timestamp), signature.signature[8:]):
        raise NoteError(f"invalid cosignature by {verifier.name}")
    return int(timestamp)
