"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A note is a UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> base64(key id || signature)`. A key id is the first 4 bytes of
SHA-256(name || "\\n" || type || public key); type 0x01 is an Ed25519 signature over the text,
0x04 a timestamped cosignature (`cosignature`). Keys travel as `vkey` strings:
`<name>+<hex key id>+base64(type || public key)` (and the signer's
`PRIVATE+KEY+<name>+<hex key id>+base64(type || seed)`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A malformed note or key, or a note no trusted key signed."""


def key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError(f"key name must be non-empty, without spaces or '+': {name!r}")


@dataclass(frozen=True, slots=True)
class Verifier:
    """A public key that checks signatures of one name, type and key id."""

    name: str
    key_type: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public_key)

    @property
    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([self.key_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_vkey(vkey: str) -> Verifier:
    parts = vkey.split("+", 2)  # base64 may hold "+"; a name never does
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<hex key id>+<base64 key>")
    name, hex_id, encoded = parts
    check_key_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
        expected_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"verifier key {name}: bad encoding") from exc
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"verifier key {name}: not an Ed25519 key")
    verifier = Verifier(name, raw[0], raw[1:])
    if verifier.key_id != expected_id or len(hex_id) != 8:
        raise NoteError(f"verifier key {name}: key id does not match the key")
    return verifier


@dataclass(frozen=True, slots=True)
class Signer:
    name: str
    key_type: int
    seed: bytes  # the 32-byte Ed25519 private key

    @classmethod
    def generate(cls, name: str, key_type: int = ED25519) -> Signer:
        check_key_name(name)
        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, key_type, seed)

    @property
    def verifier(self) -> Verifier:
        public_key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        public = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return Verifier(self.name, self.key_type, public)

    @property
    def skey(self) -> str:
        encoded = base64.b64encode(bytes([self.key_type]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def parse_skey(skey: str) -> Signer:
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("a signer key is PRIVATE+KEY+<name>+<hex key id>+<base64 key>")
    name, hex_id, encoded = parts[2:]
    check_key_name(name)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise NoteError(f"signer key {name}: bad encoding") from exc
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"signer key {name}: not an Ed25519 key")
    signer = Signer(name, raw[0], raw[1:])
    if signer.verifier.key_id.hex() != hex_id:
        raise NoteError(f"signer key {name}: key id does not match the key")
    return signer


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: bytes
    signature: bytes  # what follows the key id (a cosignature's timestamp included)

    @property
    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


def sign_note(text: str, signer: Signer) -> Signature:
    """A type-0x01 signature of `text` (which must end in a newline)."""
    check_text(text)
    return Signature(signer.name, signer.verifier.key_id, signer.sign(text.encode()))


def format_note(text: str, signatures: list[Signature]) -> str:
    return text + "\n" + "".join(signature.line for signature in signatures)


def check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text or "\r" in text:
        raise NoteError("a note text ends in a newline and has no blank lines")


def split_note(note: str) -> tuple[str, list[Signature]]:
    """The text and the signature lines of a note, unverified; NoteError if malformed."""
    if len(note) > 1_000_000:
        raise NoteError("note too large")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a note is a text, a blank line and signature lines")
    text, lines = note[: cut + 1], note[cut + 2 :].splitlines()
    check_text(text)
    if not lines or len(lines) > _MAX_SIGNATURES:
        raise NoteError("a note carries between 1 and 100 signatures")
    signatures = []
    for line in lines:
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        check_key_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError(f"signature of {name}: bad base64") from exc
        if len(raw) < 5:
            raise NoteError(f"signature of {name}: too short")
        signatures.append(Signature(name, raw[:4], raw[4:]))
    return text, signatures


def open_note(note: str, verifiers: list[Verifier]) -> tuple[str, list[Verifier]]:
    """The text of a note and the type-0x01 verifiers whose valid signatures it carries.

    Signatures by unknown keys are ignored (others may cosign); a known key with an invalid
    signature, or no valid signature by any of `verifiers`, is a NoteError.
    """
    text, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers if v.key_type == ED25519}
    valid: list[Verifier] = []
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            continue
        if not verifier.verify(text.encode(), signature.signature):
            raise NoteError(f"invalid signature by {signature.name}")
        valid.append(verifier)
    if not valid:
        raise NoteError("no signature by a trusted key")
    return text, valid
