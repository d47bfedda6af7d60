"""Offline validation of Keycloak-issued access tokens.

Every request carries a token; calling the issuer for each one (introspection) would make the
identity provider a hard runtime dependency and a bottleneck. Instead the issuer's public keys
(JWKS) are fetched once, cached, and each token is checked locally with PyJWT.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx
import jwt

from .errors import AuthenticationError, KeySetUnavailableError
from .principal import Principal

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: a symmetric (HS*) algorithm would let anyone holding the
# *public* key forge tokens, and `none` would let anyone at all.
SAFE_ALGORITHMS = frozenset(
    {
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
    }
)
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
_FAILURE_BACKOFF_SECONDS = 2.0
# Clock skew tolerated on exp/nbf/iat.
DEFAULT_LEEWAY_SECONDS = 30.0


class TokenVerifier:
    """Turns a bearer token into a `Principal`, or raises `AuthenticationError`.

    `min_refresh_interval` bounds JWKS re-fetches triggered by unknown `kid`s: without it,
    anyone could make every service hammer the issuer by sending tokens with random key ids.
    `max_key_age` re-fetches the set periodically so keys removed at the issuer stop being
    trusted even if no new key shows up.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        *,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        leeway: float = DEFAULT_LEEWAY_SECONDS,
        http: httpx.AsyncClient | None = None,
        min_refresh_interval: float = 30.0,
        max_key_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url or f"{issuer.rstrip('/')}/protocol/openid-connect/certs"
        self.algorithms = frozenset(algorithms)
        unsafe = self.algorithms - SAFE_ALGORITHMS
        if unsafe or not self.algorithms:
            raise ValueError(f"refusing unsafe or empty algorithm list: {sorted(unsafe)}")
        self.leeway = leeway
        self._http = http
        self._min_refresh_interval = min_refresh_interval
        self._max_key_age = max_key_age
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._next_attempt = float("-inf")
        self._lock = asyncio.Lock()
        # Verified tokens, so a client's repeated calls cost one signature check, not one each.
        # An entry is used only while the token's `exp` holds and its key is still trusted.
        self._wall_clock = wall_clock
        self._cache_size = cache_size
        self._verified: OrderedDict[str, tuple[Principal, float, str]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        """Validate signature, issuer, audience and lifetime; return the caller."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires_at, kid = cached
            if self._wall_clock() < expires_at + self.leeway and kid in self._keys:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, expires_at, kid = await self._verify_uncached(token)
        self._verified[token] = (principal, expires_at, kid)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    async def _verify_uncached(self, token: str) -> tuple[Principal, float, str]:
        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthenticationError("token_invalid", "token algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("token_invalid", "token has no key id")
        key = await self._key_for(kid)
        if key is None:
            raise AuthenticationError("token_invalid", "token signed by an unknown key")
        if key.algorithm_name != alg:
            raise AuthenticationError("token_invalid", "token algorithm does not match its key")
        claims = self._decode(token, key, alg)
        typ = claims.get("typ")
        if not isinstance(typ, str) or typ.lower() != "bearer":
            # Keycloak ID and refresh tokens share issuer and keys; only access tokens count, and
            # Keycloak always marks those `typ: Bearer`: a token without `typ` is not one of them.
            raise AuthenticationError("token_invalid", "not an access token")
        return Principal.from_claims(claims, self.audience), float(claims["exp"]), kid

    async def refresh(self) -> None:
        """Fetch the key set now (e.g. at startup, to fail fast on a wrong issuer URL).

        Raises `KeySetUnavailableError` if no keys have ever been loaded.
        """
        async with self._lock:
            await self._fetch()

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": REQUIRED_CLAIMS,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token_expired", "token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationError("token_not_yet_valid", "token is not valid yet") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("token_issuer", "token issuer is not trusted") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("token_audience", "token is not meant for this service") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError("token_invalid", f"token rejected: {type(exc).__name__}") from exc

    async def _key_for(self, kid: str) -> jwt.PyJWK | None:
        if self._wants_refresh(kid):
            async with self._lock:
                # Another task may have refreshed while this one waited for the lock.
                if self._wants_refresh(kid):
                    await self._fetch()
        if self._fetched_at is None:
            raise KeySetUnavailableError(f"no signing keys loaded from {self.jwks_url}")
        return self._keys.get(kid)

    def _wants_refresh(self, kid: str) -> bool:
        now = self._clock()
        if now < self._next_attempt:
            return False
        if self._fetched_at is None:
            return True
        age = now - self._fetched_at
        if age >= self._max_key_age:
            return True
        return kid not in self._keys and age >= self._min_refresh_interval

    async def _fetch(self) -> None:
        started = self._clock()
        try:
            keys = parse_jwks(await self._get_jwks(), self.algorithms)
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            # Back off even on failure, or an issuer outage turns every request into a fetch.
            self._next_attempt = started + _FAILURE_BACKOFF_SECONDS
            if self._fetched_at is None:
                raise KeySetUnavailableError(f"cannot fetch JWKS from {self.jwks_url}") from exc
            # Keep the keys we have rather than rejecting every token while the issuer blips.
            logger.warning("JWKS refresh from %s failed: %s", self.jwks_url, exc)
            return
        self._keys = keys
        self._fetched_at = started
        logger.info("loaded %d signing keys from %s", len(keys), self.jwks_url)

    async def _get_jwks(self) -> Mapping[str, Any]:
        if self._http is not None:
            response = await self._http.get(self.jwks_url)
        else:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.get(self.jwks_url)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict):
            raise TypeError("JWKS document is not an object")
        return document


def parse_jwks(document: Mapping[str, Any], algorithms: frozenset[str]) -> dict[str, jwt.PyJWK]:
    """Usable signing keys by `kid`; encryption keys and unknown algorithms are skipped.

    Keycloak publishes an RSA-OAEP encryption key next to its signing keys, so unusable
    entries are normal and must not fail the whole set.
    """
    keys: dict[str, jwt.PyJWK] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise TypeError("JWKS document has no key list")
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str):
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in algorithms:
            keys[kid] = key
    return keys


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError("token_invalid", "token is malformed") from exc
