"""HTTP surface of the development issuer, at Keycloak's URLs for one realm.

Stock Keycloak clients (python-keycloak, OIDC libraries, our own `TokenVerifier`) point at
`<base>/realms/<realm>` and work unchanged, so switching to a real Keycloak later is a
configuration change only.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .config import DevIssuerConfig
from .grants import OAuthError, handle_token_request, parse_basic, parse_form
from .keys import SigningKey, load_or_create_signing_key

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
# Token responses must never be cached by a proxy or browser (RFC 6749 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def build_oidc_router(config: DevIssuerConfig, signing_key: SigningKey | None = None) -> APIRouter:
    """Router serving discovery, JWKS, realm info and the token endpoint for `config.realm`."""
    key = signing_key or load_or_create_signing_key(config.signing_key_file)
    router = APIRouter(include_in_schema=False)
    realm_path = "/realms/{realm}"

    @router.get(realm_path)
    async def realm_info(realm: str) -> JSONResponse:
        if realm != config.realm:
            return _realm_not_found()
        return JSONResponse(
            {
                "realm": config.realm,
                "public_key": key.public_key_der_b64(),
                "token-service": f"{config.issuer}/protocol/openid-connect",
                "account-service": f"{config.issuer}/account",
                "tokens-not-before": 0,
            }
        )

    @router.get(realm_path + "/.well-known/openid-configuration")
    async def discovery(realm: str) -> JSONResponse:
        if realm != config.realm:
            return _realm_not_found()
        return JSONResponse(discovery_document(config))

    @router.get(realm_path + "/protocol/openid-connect/certs")
    async def certs(realm: str) -> JSONResponse:
        if realm != config.realm:
            return _realm_not_found()
        return JSONResponse({"keys": [key.public_jwk]})

    @router.post(realm_path + "/protocol/openid-connect/token")
    async def token(realm: str, request: Request) -> JSONResponse:
        if realm != config.realm:
            return _realm_not_found()
        grant_type = "?"
        try:
            form = parse_form(await _read_body(request))
            grant_type = form.get("grant_type") or "?"
            basic = parse_basic(request.headers.get("authorization"))
            grant_type, issued = handle_token_request(config, key, form, basic)
        except OAuthError as exc:
            # Only the grant type and error code are logged: never credentials or tokens.
            logger.info("token request rejected: grant=%r error=%s", grant_type, exc.error)
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=exc.status,
                headers=NO_STORE,
            )
        logger.info("issued access token: grant=%s", grant_type)
        body = {
            "access_token": issued.access_token,
            "expires_in": issued.expires_in,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": issued.scope,
        }
        return JSONResponse(body, headers=NO_STORE)

    return router


def discovery_document(config: DevIssuerConfig) -> dict[str, Any]:
    """The realm's OpenID Provider metadata, restricted to what this issuer really serves.

    Keycloak advertises many more endpoints (authorization, userinfo, logout...); listing
    them here would send clients to URLs that 404, so they are left out on purpose.
    """
    base = f"{config.issuer}/protocol/openid-connect"
    return {
        "issuer": config.issuer,
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/certs",
        "grant_types_supported": ["password", "client_credentials"],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "scopes_supported": ["openid", "profile", "email"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "typ",
            "azp",
            "scope",
            "preferred_username",
            "realm_access",
            "comuna_territories",
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


async def _read_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError(400, "invalid_request", "Request body too large")
    return bytes(body)


def _realm_not_found() -> JSONResponse:
    return JSONResponse(
        {"error": "Realm does not exist", "error_description": "Realm does not exist"},
        status_code=404,
    )
