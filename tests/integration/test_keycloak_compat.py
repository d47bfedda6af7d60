"""The development issuer must pass for a Keycloak realm with the stock `python-keycloak`
client, unchanged, over real HTTP; and its tokens must satisfy our own `TokenVerifier`.

If this holds, services and tools written against the dev issuer work against a production
Keycloak by changing only URLs and credentials.
"""

from __future__ import annotations

import base64
import json
import socket
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from jwcrypto import jwk  # type: ignore[import-untyped, unused-ignore]
from jwcrypto.jwt import JWTInvalidClaimValue  # type: ignore[import-untyped, unused-ignore]
from keycloak import KeycloakOpenID
from keycloak.exceptions import KeycloakAuthenticationError, KeycloakPostError

from comuna_identity.oidc import build_oidc_router, load_config, load_or_create_signing_key
from comuna_platform.auth import TokenVerifier

REALM = "comuna"
SERVICE_SECRET = "consultations-secret"  # test fixture value, not a real credential
PASSWORD = "alice-password"


@dataclass(frozen=True)
class RunningIssuer:
    base_url: str
    issuer: str
    key_file: Path

    def openid(self, client_id: str, secret: str | None = None) -> KeycloakOpenID:
        # python-keycloak joins paths with urljoin: the server URL needs its trailing slash.
        return KeycloakOpenID(
            server_url=self.base_url + "/",
            realm_name=REALM,
            client_id=client_id,
            client_secret_key=secret,
        )


def _config(port: int, key_file: Path) -> dict[str, Any]:
    return {
        "realm": REALM,
        "issuer_base_url": f"http://127.0.0.1:{port}",
        "signing_key_file": str(key_file),
        "access_token_ttl_seconds": 300,
        "audience": "comuna",
        "users": [
            {
                "username": "alice",
                "password": PASSWORD,
                "realm_roles": ["operator", "registrar"],
                "territories": ["VE.01", "VE.02.01"],
            }
        ],
        "clients": [
            {"client_id": "comuna-web", "secret": None},
            {
                "client_id": "consultations",
                "secret": SERVICE_SECRET,
                "realm_roles": ["service"],
                "territories": ["VE"],
            },
        ],
    }


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningIssuer]:
    # Bind first so the issuer URL (which contains the port) is known before the app is built.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    workdir = tmp_path_factory.mktemp("dev-issuer")
    key_file = workdir / "keys" / "signing.pem"
    config_file = workdir / "issuer.json"
    config_file.write_text(json.dumps(_config(port, key_file)))

    app = FastAPI()
    app.include_router(build_oidc_router(load_config(config_file)))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        yield RunningIssuer(base_url, f"{base_url}/realms/{REALM}", key_file)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def _key_set(openid: KeycloakOpenID) -> jwk.JWKSet:
    key_set = jwk.JWKSet()
    for cert in openid.certs()["keys"]:
        key_set.add(jwk.JWK(**cert))
    return key_set


def test_well_known(running: RunningIssuer) -> None:
    document = running.openid("comuna-web").well_known()
    endpoints = f"{running.issuer}/protocol/openid-connect"
    assert document["issuer"] == running.issuer
    assert document["token_endpoint"] == f"{endpoints}/token"
    assert document["jwks_uri"] == f"{endpoints}/certs"
    assert {"password", "client_credentials"} <= set(document["grant_types_supported"])


def test_certs_are_signing_keys(running: RunningIssuer) -> None:
    keys = running.openid("comuna-web").certs()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "RSA"
    assert (keys[0]["alg"], keys[0]["use"]) == ("RS256", "sig")
    assert keys[0]["kid"]
    assert "d" not in keys[0]  # never the private part


def test_signing_key_file_is_private(running: RunningIssuer) -> None:
    assert stat.S_IMODE(running.key_file.stat().st_mode) == 0o600


def test_public_key_endpoint(running: RunningIssuer) -> None:
    openid = running.openid("comuna-web")
    pem = "-----BEGIN PUBLIC KEY-----\n" + openid.public_key() + "\n-----END PUBLIC KEY-----"
    token = openid.token("alice", PASSWORD)["access_token"]
    key = jwk.JWK.from_pem(pem.encode())
    claims = openid.decode_token(token, key=key, check_claims={"iss": running.issuer, "exp": None})
    assert claims["preferred_username"] == "alice"


@pytest.mark.parametrize("secret", [None, SERVICE_SECRET])
def test_password_grant(running: RunningIssuer, secret: str | None) -> None:
    client_id = "comuna-web" if secret is None else "consultations"
    openid = running.openid(client_id, secret)
    response = openid.token("alice", PASSWORD)
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == 300
    assert response["refresh_expires_in"] == 0
    assert response["not-before-policy"] == 0
    assert "openid" in response["scope"].split()

    claims = openid.decode_token(
        response["access_token"],
        key=_key_set(openid),
        check_claims={"iss": running.issuer, "aud": "comuna", "exp": None},
    )
    assert claims["preferred_username"] == "alice"
    assert claims["azp"] == client_id
    assert claims["typ"] == "Bearer"
    assert claims["realm_access"]["roles"] == ["operator", "registrar"]
    assert claims["comuna_territories"] == ["VE.01", "VE.02.01"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]


def test_subject_is_a_stable_uuid(running: RunningIssuer) -> None:
    openid = running.openid("comuna-web")
    first = _claims(openid.token("alice", PASSWORD)["access_token"])["sub"]
    second = _claims(openid.token("alice", PASSWORD)["access_token"])["sub"]
    assert first == second
    assert len(first) == 36 and first.count("-") == 4


def test_client_credentials_grant(running: RunningIssuer) -> None:
    openid = running.openid("consultations", SERVICE_SECRET)
    response = openid.token(grant_type="client_credentials")
    assert "refresh_token" not in response
    claims = openid.decode_token(
        response["access_token"],
        key=_key_set(openid),
        check_claims={"iss": running.issuer, "aud": "comuna", "exp": None},
    )
    assert claims["preferred_username"] == "service-account-consultations"
    assert claims["azp"] == "consultations"
    assert claims["client_id"] == "consultations"
    assert claims["realm_access"]["roles"] == ["service"]
    assert claims["comuna_territories"] == ["VE"]


def test_client_credentials_with_http_basic(running: RunningIssuer) -> None:
    response = httpx.post(
        f"{running.issuer}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
        auth=("consultations", SERVICE_SECRET),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert _claims(response.json()["access_token"])["azp"] == "consultations"


def test_decode_token_checks_the_audience(running: RunningIssuer) -> None:
    openid = running.openid("comuna-web")
    token = openid.token("alice", PASSWORD)["access_token"]
    with pytest.raises(JWTInvalidClaimValue):
        openid.decode_token(
            token, key=_key_set(openid), check_claims={"iss": running.issuer, "aud": "other", "exp": None}
        )


@pytest.mark.parametrize(("username", "password"), [("alice", "wrong"), ("nobody", PASSWORD), ("", ""), ("alice", "")])
def test_wrong_user_credentials(running: RunningIssuer, username: str, password: str) -> None:
    with pytest.raises(KeycloakAuthenticationError) as info:
        running.openid("comuna-web").token(username, password)
    assert info.value.response_code == 401
    body = json.loads(info.value.response_body or b"{}")
    assert body == {"error": "invalid_grant", "error_description": "Invalid user credentials"}


@pytest.mark.parametrize("secret", ["wrong-secret", None])
def test_wrong_client_secret(running: RunningIssuer, secret: str | None) -> None:
    openid = running.openid("consultations", secret)
    with pytest.raises(KeycloakAuthenticationError) as info:
        openid.token(grant_type="client_credentials")
    body = json.loads(info.value.response_body or b"{}")
    assert (info.value.response_code, body["error"]) == (401, "unauthorized_client")
    with pytest.raises(KeycloakAuthenticationError):
        openid.token("alice", PASSWORD)


def test_unknown_client(running: RunningIssuer) -> None:
    with pytest.raises(KeycloakAuthenticationError) as info:
        running.openid("nope", "x").token(grant_type="client_credentials")
    assert json.loads(info.value.response_body or b"{}")["error"] == "invalid_client"


def test_public_client_has_no_service_account(running: RunningIssuer) -> None:
    with pytest.raises(KeycloakAuthenticationError) as info:
        running.openid("comuna-web").token(grant_type="client_credentials")
    assert json.loads(info.value.response_body or b"{}")["error"] == "unauthorized_client"


def test_unsupported_grant_and_bad_requests(running: RunningIssuer) -> None:
    with pytest.raises(KeycloakPostError) as info:
        running.openid("comuna-web").token(grant_type="authorization_code", code="abc")
    assert info.value.response_code == 400
    assert json.loads(info.value.response_body or b"{}")["error"] == "unsupported_grant_type"

    url = f"{running.issuer}/protocol/openid-connect/token"
    missing = httpx.post(url, data={"client_id": "comuna-web"})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    duplicated = httpx.post(url, content=b"grant_type=password&grant_type=password")
    assert (duplicated.status_code, duplicated.json()["error"]) == (400, "invalid_request")
    bad_scope = httpx.post(url, data={"grant_type": "password", "client_id": "comuna-web", "scope": "admin"})
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")


def test_unknown_realm_is_404(running: RunningIssuer) -> None:
    for path in ("/.well-known/openid-configuration", "/protocol/openid-connect/certs", ""):
        assert httpx.get(f"{running.base_url}/realms/other{path}").status_code == 404
    token = httpx.post(
        f"{running.base_url}/realms/other/protocol/openid-connect/token",
        data={"grant_type": "client_credentials"},
    )
    assert token.status_code == 404


@pytest.mark.asyncio
async def test_token_verifier_accepts_issued_tokens(running: RunningIssuer) -> None:
    user_token = running.openid("comuna-web").token("alice", PASSWORD)["access_token"]
    service_token = running.openid("consultations", SERVICE_SECRET).token(grant_type="client_credentials")[
        "access_token"
    ]
    verifier = TokenVerifier(running.issuer, "comuna")  # JWKS URL derived like Keycloak's
    alice = await verifier.verify(user_token)
    assert alice.username == "alice"
    assert alice.roles == {"operator", "registrar"}
    assert alice.client_id == "comuna-web"
    # The territory claim the built-in issuer still writes is not read: identity decides where.
    assert not hasattr(alice, "territories")
    service = await verifier.verify(service_token)
    assert service.has_role("service")


def test_key_survives_restart(running: RunningIssuer) -> None:
    """A second router over the same key file serves the same kid: tokens outlive restarts."""
    kid = running.openid("comuna-web").certs()["keys"][0]["kid"]
    assert load_or_create_signing_key(running.key_file).kid == kid
