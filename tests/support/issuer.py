"""Tokens from the real Keycloak for tests: the realm `comuna`, provisioned by identity's own
`keycloak sync`, exactly as `make run` and an operator provision it.

A test asks for a person by subject (`issuer.headers(subject=...)`): the person is created in
Keycloak with that user id (so the test can grant identity assignments to it beforehand) and
logs in with the password grant of the public client (enabled in development). Service
tokens are client-credentials tokens of the `svc-<service>` clients. Tokens are cached until
shortly before they expire. What a person may do comes only from identity's assignments:
asking for a person's roles or territories here is refused, so no test can lean on claims.
Tests of pure token logic (expired, forged, malformed claims) sign their own tokens with
`tests.support.signing_issuer.SigningKeyIssuer`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_identity.keycloak.settings import KeycloakSettings
from comuna_identity.keycloak.spec import PUBLIC_CLIENT_ID, SERVICE_CLIENT_IDS
from comuna_identity.keycloak.sync import SyncOptions, run_sync
from comuna_platform.auth.roles import SERVICE_ROLE
from comuna_platform.auth.verifier import DEFAULT_LEEWAY_SECONDS
from comuna_platform.migrations import upgrade

REALM = "comuna"
AUDIENCE = "comuna"
PUBLIC_CLIENT = PUBLIC_CLIENT_ID
SERVICE_CLIENTS = SERVICE_CLIENT_IDS
# Keycloak keeps user ids in a 36-character column.
_MAX_SUBJECT = 36
_EXPIRY_MARGIN_SECONDS = 30


class TestIssuer:
    __test__ = False  # not a pytest test class

    def __init__(self, keycloak: EmbeddedKeycloak, realm: str, client_secrets: dict[str, str]) -> None:
        self.keycloak = keycloak
        self.realm = realm
        self.base_url = keycloak.base_url
        self.issuer_url = keycloak.issuer_url(realm)
        self.jwks_url = f"{self.issuer_url}/protocol/openid-connect/certs"
        self.token_url = f"{self.issuer_url}/protocol/openid-connect/token"
        self.client_secrets = dict(client_secrets)
        self._http = httpx.Client(timeout=30.0)
        self._passwords: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._clients: set[str] = set()
        self._expired: dict[str, str] = {}
        self._foreign: TestIssuer | None = None
        self._lock = threading.RLock()

    def close(self) -> None:
        self._http.close()

    # -- people --------------------------------------------------------------------------------
    def person(self, subject: str | None = None) -> str:
        """Ensure a Keycloak user with this id (a new one when None) exists; returns its subject."""
        subject = subject or str(uuid.uuid4())
        if len(subject) > _MAX_SUBJECT or not subject.strip():
            raise ValueError(f"a Keycloak user id has 1 to {_MAX_SUBJECT} characters, not {subject!r}")
        with self._lock:
            if subject in self._passwords:
                return subject
            password = secrets.token_urlsafe(18)
            username = username_of(subject)
            user = {
                "id": subject,
                "username": username,
                "enabled": True,
                "email": f"{username}@test.comuna.invalid",
                "emailVerified": True,
                "firstName": "Test",
                "lastName": username,
                "credentials": [{"type": "password", "value": password, "temporary": False}],
            }
            response = self._http.post(
                f"{self.base_url}/admin/realms/{self.realm}/partialImport",
                json={"ifResourceExists": "FAIL", "users": [user]},
                headers=self._admin_headers(),
            )
            if response.status_code != 200:
                raise RuntimeError(f"cannot create Keycloak user {subject}: {response.status_code} {response.text}")
            self._passwords[subject] = password
            return subject

    def password_of(self, subject: str) -> str:
        self.person(subject)
        return self._passwords[subject]

    # -- tokens --------------------------------------------------------------------------------
    def token(
        self,
        *,
        roles: Sequence[str] = (),
        territories: Sequence[str] = (),
        subject: str | None = None,
        client_id: str | None = None,
        **unsupported: Any,
    ) -> str:
        """A Keycloak access token: a service's (`roles=["service"]`, `client_id="svc-..."`)
        or a person's (`subject=`; a new person when None). `territories` is ignored: no token
        carries where anyone may act.

        Three real variants of a person's token: `ttl=<= 0` an expired one, `iss=<anything>`
        one of another realm of the same server, `comuna_territories=[...]` one that carries
        that claim (a hard-coded claim mapper on a client of its own)."""
        del territories
        ttl = unsupported.pop("ttl", None)
        foreign = unsupported.pop("iss", None) is not None
        claimed = unsupported.pop("comuna_territories", None)
        realm_access = unsupported.pop("realm_access", None)
        if unsupported:
            raise TypeError(
                f"Keycloak issues real tokens; {sorted(unsupported)} cannot be chosen: sign such a token with "
                "tests.support.signing_issuer.SigningKeyIssuer"
            )
        if ttl is not None and ttl <= 0:
            # Expired tokens are a person's (a service's would look the same to the verifier).
            return self.expired_token(self.person(subject))
        if client_id is not None and client_id not in (*SERVICE_CLIENTS, PUBLIC_CLIENT):
            # Some other confidential client of the realm, its service account holding `roles`.
            return self.foreign_client_token(client_id, list(roles))
        if SERVICE_ROLE in roles:
            return self.service_token(client_id or "svc-consultations")
        if roles:
            raise ValueError(
                f"a person's roles come from identity's assignments, not from the token: grant {list(roles)} "
                "to the subject in identity instead"
            )
        subject = self.person(subject)
        if realm_access is not None:
            # Keycloak itself then says the person holds these realm roles.
            self.assign_realm_roles(subject, list(realm_access["roles"]))
            if claimed is None:
                return self._login(PUBLIC_CLIENT, subject)[0]
        if ttl is not None and ttl <= 0:
            return self.expired_token(subject)
        if foreign:
            return self.foreign_token()
        if claimed is not None:
            return self.claim_carrying_token(subject, list(claimed))
        return self.person_token(subject)

    def headers(self, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(**kwargs)}"}

    def service_token(self, client_id: str) -> str:
        secret = self.client_secrets.get(client_id)
        if secret is None:
            raise ValueError(f"no confidential client {client_id!r}; the realm has {', '.join(SERVICE_CLIENTS)}")
        return self._cached(
            f"client:{client_id}",
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        )

    def person_token(self, subject: str) -> str:
        return self._cached(
            f"person:{subject}",
            {
                "grant_type": "password",
                "client_id": PUBLIC_CLIENT,
                "username": username_of(subject),
                "password": self._passwords[subject],
            },
        )

    def expired_token(self, subject: str) -> str:
        """A token of a client whose tokens live one second, once past the services' leeway."""
        with self._lock:
            if subject in self._expired:
                return self._expired[subject]
        client = self._ensure_client("test-short-lived", {"attributes": {"access.token.lifespan": "1"}})
        token, expires = self._login(client, subject)
        # Waiting for the wall clock, not for the system under test: nothing here can flake.
        while time.time() < expires + DEFAULT_LEEWAY_SECONDS + 1:
            time.sleep(0.25)
        with self._lock:
            self._expired[subject] = token
        return token

    def foreign_token(self) -> str:
        """A token of the realm `elsewhere` on the same Keycloak: valid there, not here."""
        with self._lock:
            if self._foreign is None:
                self._foreign = TestIssuer(self.keycloak, "elsewhere", {})
                self._foreign._create_realm()
        return self._foreign.person_token(self._foreign.person())

    def claim_carrying_token(self, subject: str, territories: list[str]) -> str:
        """A token with `comuna_territories` set by Keycloak itself, as a misconfigured realm might."""
        mapper = {
            "name": "comuna-territories",
            "protocol": "openid-connect",
            "protocolMapper": "oidc-hardcoded-claim-mapper",
            "config": {
                "claim.name": "comuna_territories",
                "claim.value": json.dumps(territories),
                "jsonType.label": "JSON",
                "access.token.claim": "true",
            },
        }
        client = self._ensure_client(
            f"test-claims-{abs(hash(tuple(territories))) % 10**8}", {"protocolMappers": [mapper]}
        )
        return self._login(client, subject)[0]

    def foreign_client_token(self, client_id: str, roles: list[str]) -> str:
        """A client-credentials token of a client that is none of Comuna's services."""
        with self._lock:
            if client_id not in self.client_secrets:
                secret = secrets.token_urlsafe(24)
                extra = {
                    "publicClient": False,
                    "serviceAccountsEnabled": True,
                    "directAccessGrantsEnabled": False,
                    "secret": secret,
                }
                self._ensure_client(client_id, extra)
                headers = self._admin_headers()
                base = f"{self.base_url}/admin/realms/{self.realm}"
                found = self._http.get(f"{base}/clients", params={"clientId": client_id}, headers=headers).json()
                account = self._http.get(f"{base}/clients/{found[0]['id']}/service-account-user", headers=headers)
                account.raise_for_status()
                self.assign_realm_roles(account.json()["id"], roles)
                self.client_secrets[client_id] = secret
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": self.client_secrets[client_id],
        }
        return self._cached(f"client:{client_id}", form)

    def assign_realm_roles(self, subject: str, roles: list[str]) -> None:
        headers = self._admin_headers()
        base = f"{self.base_url}/admin/realms/{self.realm}"
        wanted = []
        if not roles:
            return
        for name in roles:
            response = self._http.get(f"{base}/roles/{name}", headers=headers)
            response.raise_for_status()
            wanted.append(response.json())
        self._http.post(f"{base}/users/{subject}/role-mappings/realm", json=wanted, headers=headers).raise_for_status()

    def _ensure_client(self, client_id: str, extra: dict[str, Any]) -> str:
        """A public client with direct grants and the services' audience, plus `extra`."""
        with self._lock:
            if client_id in self._clients:
                return client_id
            audience = {
                "name": "comuna-audience",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-audience-mapper",
                "config": {"included.custom.audience": AUDIENCE, "access.token.claim": "true"},
            }
            representation = {
                "clientId": client_id,
                "publicClient": True,
                "directAccessGrantsEnabled": True,
                "standardFlowEnabled": False,
                **{key: value for key, value in extra.items() if key != "protocolMappers"},
                "protocolMappers": [audience, *extra.get("protocolMappers", [])],
            }
            response = self._http.post(
                f"{self.base_url}/admin/realms/{self.realm}/clients", json=representation, headers=self._admin_headers()
            )
            if response.status_code not in (201, 409):
                raise RuntimeError(f"cannot create client {client_id}: {response.status_code} {response.text}")
            self._clients.add(client_id)
            return client_id

    def _create_realm(self) -> None:
        response = self._http.post(
            f"{self.base_url}/admin/realms", json={"realm": self.realm, "enabled": True}, headers=self._admin_headers()
        )
        if response.status_code not in (201, 409):
            raise RuntimeError(f"cannot create realm {self.realm}: {response.status_code} {response.text}")
        self._ensure_client(PUBLIC_CLIENT, {})

    def _login(self, client_id: str, subject: str) -> tuple[str, float]:
        """A fresh password-grant token and its `exp` (wall clock)."""
        form = {
            "grant_type": "password",
            "client_id": client_id,
            "username": username_of(subject),
            "password": self._passwords[subject],
        }
        response = self._http.post(self.token_url, data=form)
        if response.status_code != 200:
            raise RuntimeError(f"Keycloak refused {client_id} for {subject}: {response.status_code} {response.text}")
        token = str(response.json()["access_token"])
        return token, time.time() + float(response.json()["expires_in"])

    def _cached(self, key: str, form: dict[str, str]) -> str:
        with self._lock:
            cached = self._tokens.get(key)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
        response = self._http.post(self.token_url, data=form)
        if response.status_code != 200:
            raise RuntimeError(f"Keycloak refused a token for {key}: {response.status_code} {response.text}")
        body = response.json()
        token = str(body["access_token"])
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + float(body["expires_in"]) - _EXPIRY_MARGIN_SECONDS)
        return token

    def _admin_headers(self) -> dict[str, str]:
        response = self._http.post(
            f"{self.base_url}/realms/master/protocol/openid-connect/token",
            data={
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": self.keycloak.admin_username,
                "password": self.keycloak.admin_password,
            },
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


def username_of(subject: str) -> str:
    """Keycloak usernames are lower case; the subject keeps each test person's name unique."""
    return "p-" + re.sub(r"[^a-z0-9._-]", "-", subject.lower())


def provision_realm(
    keycloak: EmbeddedKeycloak,
    postgres: EmbeddedPostgres,
    work_dir: Path,
    *,
    realm: str = REALM,
    identity_migrations: Path,
) -> dict[str, str]:
    """Run identity's `keycloak sync` (development mode) for `realm`; returns the client secrets."""
    database = f"kc_sync_{realm}"
    postgres.create_database(database)
    upgrade(identity_migrations, postgres.dsn(database))
    client_secrets = {client: secrets.token_urlsafe(24) for client in SERVICE_CLIENTS}
    secrets_file = work_dir / f"client-secrets-{realm}.json"
    secrets_file.parent.mkdir(parents=True, exist_ok=True)
    secrets_file.write_text(json.dumps(client_secrets))
    settings = KeycloakSettings(
        database_url=postgres.dsn(database),
        census_hash_key="k" * 32,
        roll_secret="r" * 32,
        keycloak_url=keycloak.base_url,
        keycloak_realm=realm,
        keycloak_admin_username=keycloak.admin_username,
        keycloak_admin_password=keycloak.admin_password,
        keycloak_development=True,
        keycloak_client_secrets_file=secrets_file,
    )
    asyncio.run(run_sync(settings, SyncOptions(), lambda change: None))
    return client_secrets


@contextmanager
def keycloak_issuer(
    keycloak: EmbeddedKeycloak,
    postgres: EmbeddedPostgres,
    work_dir: Path,
    *,
    identity_migrations: Path,
    realm: str = REALM,
) -> Iterator[TestIssuer]:
    client_secrets = provision_realm(keycloak, postgres, work_dir, realm=realm, identity_migrations=identity_migrations)
    issuer = TestIssuer(keycloak, realm, client_secrets)
    try:
        yield issuer
    finally:
        issuer.close()
