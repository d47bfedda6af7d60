"""The issuer's RSA signing key: loaded from a PEM file, created on first use.

Persisting the key (instead of generating one per start) keeps tokens valid across restarts
of the identity service, so the other services' cached JWKS stay correct during development.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

logger = logging.getLogger(__name__)

MIN_KEY_BITS = 2048


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str
    public_jwk: dict[str, Any]

    @classmethod
    def from_private_key(cls, private_key: rsa.RSAPrivateKey) -> SigningKey:
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
        kid = _thumbprint(jwk)
        return cls(
            private_key,
            kid,
            {
                "kid": kid,
                "kty": "RSA",
                "alg": "RS256",
                "use": "sig",
                "n": jwk["n"],
                "e": jwk["e"],
            },
        )

    def public_key_der_b64(self) -> str:
        """SubjectPublicKeyInfo, base64 (no PEM armour), as Keycloak's realm endpoint shows it."""
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Load the PEM at `path`, or create a fresh RSA-2048 key there with mode 0600."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return SigningKey.from_private_key(_create(path))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("signing key %s is readable by group/others; chmod 600 it", path)
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < MIN_KEY_BITS:
        raise ValueError(f"{path} must hold an RSA private key of at least {MIN_KEY_BITS} bits")
    return SigningKey.from_private_key(key)


def _create(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=MIN_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL + mode at creation: the key is never briefly world-readable, and two processes
    # starting at once cannot overwrite each other's key (the loser loads the winner's).
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_existing(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    logger.info("created new development signing key at %s", path)
    return key


def _load_existing(path: Path) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{path} does not hold an RSA private key")
    return key


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint: a kid that changes exactly when the key changes."""
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
