"""Residents sign up: a Keycloak account of their own, signed in with their own password, linked
by a registrar to their census record. The demo and the benchmarks play this step for the
residents who vote online (the dev seed creates staff only: residents enrol).

* Accounts are created in bulk with Keycloak's partial import, as the realm's admin. Each has a
  fixed Keycloak user id (`account_subject`: a UUID derived from the realm and the username),
  so a second run recreates the same user (`ifResourceExists: OVERWRITE`, with a new password)
  and finds its link to the census already there (409, fine).
* Passwords are generated, kept in memory only, never printed. They are imported as an already
  hashed credential (PBKDF2, `IMPORTED_HASH_ITERATIONS`): the password is 192 random bits, so
  key stretching would protect nothing, and Keycloak hashing every imported password with the
  realm's policy (Argon2) would double the cost of a bench of thousands. Keycloak re-hashes a
  credential that does not match the realm's policy at its first successful sign-in
  (`PasswordCredentialProvider.rehashPasswordIfRequired`), so from then on each account's
  password is stored as every staff member's is; the realm's policy is not touched.
* Signing in is the password grant of the public client the staff use (`PlatformClient.login`),
  one account at a time per account: Keycloak refuses a second concurrent sign-in of the same
  user (`user_temporarily_disabled`), never two different ones.
* Linking (`POST /v1/residents:link`) is rate-limited per registrar (`DOCUMENT_LOOKUPS`): on 429
  the registrar waits `Retry-After`, then paces itself at the limit's rate, and says so on stderr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from comuna_devstack.client import PlatformClient, StepFailed
from comuna_devstack.errors import DevStackError
from comuna_devstack.stack import StackConfig
from comuna_platform.settings import ServiceSettings

Progress = Callable[[str], None]

# Users' ids are derived from this namespace, the realm and the username (`account_subject`).
ACCOUNT_NAMESPACE = uuid.UUID("5b0f3c9e-4a43-4f3e-9d1c-6f0a4c7e2b11")
# The imported credential's iterations: its password is `secrets.token_urlsafe(24)`, 192 random
# bits (see the module docstring); Keycloak re-hashes it to the realm's policy at the first sign-in.
IMPORTED_HASH_ITERATIONS = 1
# Identity's default limit on links (`DOCUMENT_LOOKUPS`), per registrar: a burst, then a rate.
_limits = ServiceSettings.model_fields
LINKS_PER_MINUTE = float(_limits["rate_limit_document_lookups_per_minute"].default)
LINKS_BURST = int(_limits["rate_limit_document_lookups_burst"].default)
LINK_INTERVAL = 60.0 / LINKS_PER_MINUTE
# Users per partial import request, and requests in flight.
IMPORT_CHUNK = 250
IMPORT_REQUESTS = 4


def notice(message: str) -> None:
    """Progress on stderr, as `comuna-dev` prints it."""
    print(f"comuna-dev: {message}", file=sys.stderr, flush=True)


def account_subject(realm: str, username: str) -> str:
    """The Keycloak user id (the tokens' `sub`) of `username` in `realm`: the same on every run."""
    return str(uuid.uuid5(ACCOUNT_NAMESPACE, f"{realm}/{username}"))


@dataclass(frozen=True)
class Account:
    username: str
    subject: str
    password: str = field(repr=False)
    first_name: str = "Residente"
    last_name: str = "Demo"

    @classmethod
    def new(cls, realm: str, username: str, *, first_name: str = "Residente", last_name: str = "Demo") -> Account:
        """An account with a fresh generated password (never printed: not in the repr)."""
        return cls(username, account_subject(realm, username), secrets.token_urlsafe(24), first_name, last_name)


def imported_credential(password: str, *, iterations: int = IMPORTED_HASH_ITERATIONS) -> dict[str, Any]:
    """A Keycloak password credential already hashed (PBKDF2-SHA256), as the partial import and
    the realm export write it: Keycloak stores it as given and verifies it at sign-in."""
    salt = os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 32)
    secret = {"value": base64.b64encode(derived).decode(), "salt": base64.b64encode(salt).decode()}
    return {
        "type": "password",
        "temporary": False,
        "secretData": json.dumps({**secret, "additionalParameters": {}}),
        "credentialData": json.dumps(
            {"hashIterations": iterations, "algorithm": "pbkdf2-sha256", "additionalParameters": {}}
        ),
    }


def user_representation(account: Account, email_domain: str) -> dict[str, Any]:
    # The realm's user profile requires an email, a first and a last name of every user.
    return {
        "id": account.subject,
        "username": account.username,
        "enabled": True,
        "email": f"{account.username}@{email_domain}",
        "emailVerified": True,
        "firstName": account.first_name,
        "lastName": account.last_name,
        "credentials": [imported_credential(account.password)],
    }


@dataclass(frozen=True)
class RealmAdmin:
    """An account that manages the realm (the Keycloak bootstrap admin in development)."""

    url: str  # Keycloak's base URL, no /realms
    realm: str
    username: str
    password: str = field(repr=False)
    admin_realm: str = "master"

    @classmethod
    def for_stack(cls, config: StackConfig) -> RealmAdmin:
        """The admin of a stack's Keycloak: an external one's from its settings, the embedded
        one's bootstrap admin from the state directory's secrets (written by `make run`)."""
        password = config.keycloak_admin_password
        if not password:
            path = config.state_dir / "secrets.json"
            try:
                password = json.loads(path.read_text())["keycloak"]["admin_password"]
            except (OSError, ValueError, KeyError) as exc:
                raise DevStackError(f"no Keycloak admin password in {path}: start it with `make run`") from exc
        return cls(config.keycloak_url, config.realm, config.keycloak_admin_username, str(password))


class KeycloakUsers:
    """The realm's users through Keycloak's admin REST API, as `RealmAdmin` (its token renewed
    before it expires: the master realm's last a minute). Thread-safe."""

    def __init__(self, admin: RealmAdmin, *, timeout: float = 300.0) -> None:
        self.admin = admin
        self.http = httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> KeycloakUsers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() > self._token[1]:
                response = self.http.post(
                    f"{self.admin.url}/realms/{self.admin.admin_realm}/protocol/openid-connect/token",
                    data={
                        "grant_type": "password",
                        "client_id": "admin-cli",
                        "username": self.admin.username,
                        "password": self.admin.password,
                    },
                )
                if response.status_code != 200:
                    raise StepFailed(f"Keycloak admin sign-in failed: {response.status_code} {response.text[:300]}")
                body = response.json()
                self._token = (str(body["access_token"]), time.monotonic() + float(body["expires_in"]) - 15)
            return {"Authorization": f"Bearer {self._token[0]}"}

    def import_accounts(
        self,
        accounts: Sequence[Account],
        *,
        email_domain: str = "residentes.comuna.invalid",
        progress: Progress | None = None,
    ) -> dict[str, int]:
        """Create (or recreate, same id, new password) each account; returns Keycloak's counts.
        `IMPORT_REQUESTS` requests in flight: recreating a user (a delete, then an insert) waits
        on the database more than it computes."""
        chunks = [accounts[first : first + IMPORT_CHUNK] for first in range(0, len(accounts), IMPORT_CHUNK)]
        counts = {"added": 0, "overwritten": 0}
        lock = threading.Lock()

        def one(chunk: Sequence[Account]) -> None:
            response = self.http.post(
                f"{self.admin.url}/admin/realms/{self.admin.realm}/partialImport",
                headers=self._headers(),
                json={
                    "ifResourceExists": "OVERWRITE",
                    "users": [user_representation(a, email_domain) for a in chunk],
                },
            )
            if response.status_code != 200:
                raise StepFailed(f"Keycloak partial import: {response.status_code} {response.text[:300]}")
            body = response.json()
            moved = {r["resourceName"]: r["id"] for r in body.get("results", [])}
            for account in chunk:
                if moved.get(account.username, account.subject) != account.subject:
                    raise StepFailed(f"Keycloak user {account.username} kept another id than {account.subject}")
            with lock:
                counts["added"] += int(body.get("added", 0))
                counts["overwritten"] += int(body.get("overwritten", 0))
                done = counts["added"] + counts["overwritten"]
                if progress is not None and len(chunks) > 1:
                    progress(f"Keycloak accounts: {done} of {len(accounts)} imported")

        with ThreadPoolExecutor(max(1, min(IMPORT_REQUESTS, len(chunks)))) as pool:
            list(pool.map(one, chunks))
        return counts


def in_parallel(
    work: Callable[[int], Any], count: int, *, workers: int, what: str, progress: Progress | None, every: float = 10.0
) -> list[Any]:
    """`work(i)` for i in range(count) on a thread pool, results in order; progress every `every` s."""
    done = 0
    lock = threading.Lock()
    started = last = time.monotonic()

    def one(index: int) -> Any:
        nonlocal done, last
        result = work(index)
        with lock:
            done += 1
            now = time.monotonic()
            if progress is not None and (now - last >= every) and done < count:
                last = now
                progress(f"{what}: {done} of {count} ({done / (now - started):.0f}/s)")
        return result

    with ThreadPoolExecutor(max(1, min(workers, count))) as pool:
        return list(pool.map(one, range(count)))


@dataclass
class LinkCounts:
    linked: int = 0
    already: int = 0
    waits: int = 0
    waited_seconds: float = 0.0

    def add(self, other: LinkCounts) -> None:
        self.linked += other.linked
        self.already += other.already
        self.waits += other.waits
        self.waited_seconds += other.waited_seconds


def link_accounts(
    client: PlatformClient,
    registrar: str,
    links: Iterable[tuple[str, Account]],
    *,
    interval: float = LINK_INTERVAL,
    progress: Progress | None = None,
    on_done: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> LinkCounts:
    """The registrar (signed in on `client`) links each (national id, account), one after the
    other. 409 `subject_already_linked` (this account, linked on an earlier run) is fine; a
    resident linked to ANOTHER account is not (their ballot would be refused).

    On 429 the registrar waits `Retry-After` (the problem's `retry_after`, the same whole
    seconds) and from then on starts a link at most every `interval` (the limit's refill, one
    token per 2 s by default) or `Retry-After`, whichever is longer; refused again at that pace,
    it slows down by a quarter each time (a stack configured with a slower limit). `on_done` is
    called after each link."""
    counts = LinkCounts()
    pace = 0.0
    next_at = clock()
    for national_id, account in links:
        while True:
            wait = next_at - clock()
            if wait > 0:
                sleep(wait)
            started = clock()
            next_at = started + pace
            body = client.call(
                "POST",
                "identity",
                "/v1/residents:link",
                as_user=registrar,
                json={"national_id": national_id, "subject": account.subject},
                expect=(201, 409, 429),
            )
            code = body.get("code") if isinstance(body, dict) else None
            if code != "rate_limited":
                break
            retry_after = float(body.get("retry_after") or 1)
            pace = max(pace * 1.25, retry_after) if pace else max(interval, retry_after)
            next_at = max(clock() + retry_after, started + pace)
            counts.waits += 1
            counts.waited_seconds += next_at - clock()
            if progress is not None:
                done = counts.linked + counts.already
                progress(f"{registrar}: rate-limited after {done} links, waiting {retry_after:.0f} s (Retry-After)")
        if code is None:
            counts.linked += 1
        elif code in ("subject_already_linked", "already_linked"):
            counts.already += 1
        else:
            raise StepFailed(f"linking {account.username}: {code} ({body.get('detail', '')})")
        if on_done is not None:
            on_done()
    return counts


def sign_up(
    client: PlatformClient,
    users: KeycloakUsers,
    registrar: str,
    residents: Sequence[tuple[str, Account]],
    *,
    progress: Progress | None = notice,
) -> LinkCounts:
    """A few residents (the demo's) sign up: their accounts are created, then `registrar` (signed
    in on `client`) links each (national id, account). Before the roll is frozen. They sign in
    later, when they vote (`client.login(account.username, account.password)`)."""
    accounts = [account for _, account in residents]
    users.import_accounts(accounts)
    counts = link_accounts(client, registrar, residents, progress=progress)
    if progress is not None:
        progress(
            f"{len(accounts)} residents signed up to vote online"
            f" ({counts.linked} linked now, {counts.already} linked on an earlier run)"
        )
    return counts
