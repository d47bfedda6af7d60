"""The token endpoint's decisions: parse the form, authenticate the client, run the grant.

Kept free of FastAPI so the exact Keycloak error semantics (status, `error`,
`error_description`, and the order in which checks fail) can be read and tested in one place.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote_plus

from .config import ClientConfig, DevIssuerConfig
from .keys import SigningKey
from .tokens import (
    IssuedToken,
    granted_scope,
    issue_for_service_account,
    issue_for_user,
)

INVALID_CLIENT = "Invalid client or Invalid client credentials"
# Compared against when the user does not exist, so a miss costs the same as a wrong password.
_DUMMY_PASSWORD = b"\x00" * 32


class OAuthError(Exception):
    """An RFC 6749 error response, with the status code Keycloak uses for it."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


def parse_form(body: bytes) -> dict[str, str]:
    """Decode `application/x-www-form-urlencoded`; repeated parameters are refused (RFC 6749 3.2)."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError(400, "invalid_request", "Malformed form body") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError(400, "invalid_request", f"duplicated parameter: {name}")
        form[name] = value
    return form


def parse_basic(authorization: str | None) -> tuple[str, str] | None:
    """Client id and secret from HTTP Basic, each form-url-decoded as RFC 6749 2.3.1 requires."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OAuthError(400, "invalid_request", "Malformed Basic authorization header") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError(400, "invalid_request", "Malformed Basic authorization header")
    return unquote_plus(client_id), unquote_plus(secret)


def handle_token_request(
    config: DevIssuerConfig,
    key: SigningKey,
    form: Mapping[str, str],
    basic: tuple[str, str] | None,
) -> tuple[str, IssuedToken]:
    """Run the grant; returns (grant_type, token) or raises `OAuthError`.

    Check order follows Keycloak's TokenEndpoint: grant type, then client, then the grant.
    """
    grant_type = _param(form, "grant_type")
    if grant_type is None:
        raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
    if grant_type not in ("password", "client_credentials"):
        raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type")
    client = authenticate_client(config, form, basic)
    scope = granted_scope(_param(form, "scope"))
    if scope is None:
        raise OAuthError(400, "invalid_scope", f"Invalid scopes: {_param(form, 'scope')}")
    if grant_type == "password":
        return grant_type, _password_grant(config, key, form, client, scope)
    if client.is_public:
        raise OAuthError(
            401,
            "unauthorized_client",
            "Public client not allowed to retrieve service account",
        )
    return grant_type, issue_for_service_account(config, key, client, scope)


def authenticate_client(
    config: DevIssuerConfig, form: Mapping[str, str], basic: tuple[str, str] | None
) -> ClientConfig:
    """Keycloak's "client id and secret" authenticator: Basic header first, then the form."""
    secret: str | None
    if basic is not None:
        client_id, secret = basic
        form_client = _param(form, "client_id")
        if form_client is not None and form_client != client_id:
            raise OAuthError(400, "invalid_request", "Client ids do not match")
    else:
        client_id = _param(form, "client_id") or ""
        secret = _param(form, "client_secret")
    if not client_id:
        raise OAuthError(400, "invalid_client", "Missing client_id parameter")
    client = config.client(client_id)
    if client is None:
        raise OAuthError(401, "invalid_client", INVALID_CLIENT)
    if client.secret is None:  # public client: nothing to prove, exactly as in Keycloak
        return client
    if not secret or not _equal(secret, client.secret.get_secret_value()):
        raise OAuthError(401, "unauthorized_client", INVALID_CLIENT)
    return client


def _password_grant(
    config: DevIssuerConfig,
    key: SigningKey,
    form: Mapping[str, str],
    client: ClientConfig,
    scope: str,
) -> IssuedToken:
    user = config.user(_param(form, "username") or "")
    password = _param(form, "password") or ""
    expected = user.password.get_secret_value().encode() if user else _DUMMY_PASSWORD
    if not hmac.compare_digest(password.encode(), expected) or user is None:
        raise OAuthError(401, "invalid_grant", "Invalid user credentials")
    return issue_for_user(config, key, user, client, scope)


def _param(form: Mapping[str, str], name: str) -> str | None:
    """A form value, with empty meaning absent (python-keycloak sends empty fields)."""
    return form.get(name) or None


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
