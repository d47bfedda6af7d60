"""Keycloak-compatible development OIDC issuer (one realm), for machines without Keycloak.

Enabled only when `COMUNA_IDENTITY_DEV_ISSUER_CONFIG` names a config file; see `config.py`.
"""

from .config import ClientConfig, DevIssuerConfig, UserConfig, load_config
from .keys import SigningKey, load_or_create_signing_key
from .router import build_oidc_router

__all__ = [
    "ClientConfig",
    "DevIssuerConfig",
    "SigningKey",
    "UserConfig",
    "build_oidc_router",
    "load_config",
    "load_or_create_signing_key",
]
