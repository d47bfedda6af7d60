"""C2SP signed notes (c2sp.org/signed-note), Ed25519 keys and tlog-cosignature/v1.

A note is a text ending in "\\n", a blank line, then lines `— <name> <base64(key id || sig)>`.
key id = SHA-256(name || "\\n" || type || public key)[:4]; type 0x01 signs the text itself,
type 0x04 (cosignature/v1) signs "cosignature/v1\\ntime <t>\\n" || text and prefixes the
signature with t as 8 big-endian bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
DASH = "\u2014 "  # em dash and a space start every signature line
MAX_NOTE = 1_000_000
MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A malformed note or key."""


def compute_key_id(name: str, key_type: int, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public_key).digest()[:4]


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"key name {name!r} is empty or holds a space or '+'")


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what}: not base64") from exc


@dataclass(frozen=True, slots=True)
class PublicKey:
    name: str
    key_type: int
    key: bytes  # 32-byte Ed25519 public key

    @property
    def key_id(self) -> bytes:
        return compute_key_id(self.name, self.key_type, self.key)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(bytes([self.key_type]) + self.key).decode()}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_vkey(vkey: str) -> PublicKey:
    """`<name>+<key id hex>+<base64(type || key)>`; the key id must match the key."""
    parts = vkey.strip().split("+", 2)  # base64 may hold '+', a name never does
    if len(parts) != 3:
        raise NoteError("a verifier key is <name>+<key id hex>+<base64 key>")
    name, hex_id, encoded = parts
    _check_name(name)
    raw = _b64(encoded, f"key {name}")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"key {name}: not an Ed25519 (0x01) or cosignature/v1 (0x04) key")
    key = PublicKey(name, raw[0], raw[1:])
    if len(hex_id) != 8 or key.key_id.hex() != hex_id.lower():
        raise NoteError(f"key {name}: key id {hex_id} does not match the key")
    return key


@dataclass(frozen=True, slots=True)
class PrivateKey:
    name: str
    key_type: int
    seed: bytes

    @classmethod
    def generate(cls, name: str, key_type: int) -> PrivateKey:
        _check_name(name)
        seed = Ed25519PrivateKey.generate().private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return cls(name, key_type, seed)

    @property
    def public(self) -> PublicKey:
        raw = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey(self.name, self.key_type, raw)

    @property
    def skey(self) -> str:
        encoded = base64.b64encode(bytes([self.key_type]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.public.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


def parse_skey(skey: str) -> PrivateKey:
    parts = skey.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteError("a private key is PRIVATE+KEY+<name>+<key id hex>+<base64 key>")
    name, hex_id, encoded = parts[2:]
    _check_name(name)
    raw = _b64(encoded, f"private key {name}")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
        raise NoteError(f"private key {name}: not an Ed25519 key")
    key = PrivateKey(name, raw[0], raw[1:])
    if key.public.key_id.hex() != hex_id.lower():
        raise NoteError(f"private key {name}: key id {hex_id} does not match the key")
    return key


@dataclass(frozen=True, slots=True)
class SignatureLine:
    name: str
    key_id: bytes
    signature: bytes  # after the key id (a cosignature's timestamp included)

    @property
    def line(self) -> str:
        return f"{DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


def split_note(note: str) -> tuple[str, list[SignatureLine]]:
    """The text and the (unverified) signature lines of a note."""
    if len(note) > MAX_NOTE:
        raise NoteError("note larger than 1 MB")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a note is a text, a blank line and signature lines")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    if "\r" in note or "\n\n" in text or text == "\n":
        raise NoteError("a note's text is non-empty lines, without carriage returns or blank lines")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:60]!r}")
        name, _, encoded = line[len(DASH) :].partition(" ")
        _check_name(name)
        raw = _b64(encoded, f"signature by {name}")
        if len(raw) < 5:
            raise NoteError(f"signature by {name}: too short")
        signatures.append(SignatureLine(name, raw[:4], raw[4:]))
    return text, signatures


def signs(key: PublicKey, line: SignatureLine) -> bool:
    """Whether `line` claims to be by `key` (same name and key id)."""
    return line.name == key.name and line.key_id == key.key_id


def sign_text(text: str, key: PrivateKey) -> SignatureLine:
    return SignatureLine(key.name, key.public.key_id, key.sign(text.encode()))


def cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, key: PrivateKey, timestamp: int) -> SignatureLine:
    if key.key_type != COSIGNATURE_V1:
        raise NoteError("a cosignature needs a cosignature/v1 (0x04) key")
    signature = key.sign(cosigned_message(text, timestamp))
    return SignatureLine(key.name, key.public.key_id, struct.pack(">Q", timestamp) + signature)


def verify_line(text: str, key: PublicKey, line: SignatureLine) -> int | None:
    """Whether `line` is a valid signature of `text` by `key`: for an Ed25519 key 0 when it is,
    for a cosignature key its timestamp; None when it is not."""
    if not signs(key, line):
        return None
    if key.key_type == ED25519:
        return 0 if key.verify(text.encode(), line.signature) else None
    if len(line.signature) != 8 + 64:
        return None
    (timestamp,) = struct.unpack(">Q", line.signature[:8])
    if timestamp >= 1 << 63 or not key.verify(cosigned_message(text, timestamp), line.signature[8:]):
        return None
    return int(timestamp)
