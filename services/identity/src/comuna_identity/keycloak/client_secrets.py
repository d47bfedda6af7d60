"""Secrets of the confidential clients, from configuration only: never generated here."""

from __future__ import annotations

import json
from pathlib import Path

from comuna_identity.keycloak.spec import SERVICE_CLIENT_IDS


class ConfigurationError(Exception):
    """A setting the sync needs is missing or unusable; the message names it."""


def load_client_secrets(secrets_file: Path | None, secrets_dir: Path | None) -> dict[str, str]:
    """client id -> secret for every `svc-<service>`, from the JSON file and/or the directory
    (one file per client id; the directory wins for a client found in both)."""
    found: dict[str, str] = {}
    if secrets_file is not None:
        try:
            document = json.loads(secrets_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"cannot read KEYCLOAK_CLIENT_SECRETS_FILE {secrets_file}: {exc.__class__.__name__}"
            ) from None
        if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
            raise ConfigurationError(
                f"KEYCLOAK_CLIENT_SECRETS_FILE {secrets_file} must be a JSON object client_id -> secret"
            )
        found |= {k: v for k, v in document.items() if k in SERVICE_CLIENT_IDS}
    if secrets_dir is not None:
        for client_id in SERVICE_CLIENT_IDS:
            path = secrets_dir / client_id
            if path.is_file():
                found[client_id] = path.read_text(encoding="utf-8").strip()
    missing = [client_id for client_id in SERVICE_CLIENT_IDS if not found.get(client_id)]
    if missing:
        raise ConfigurationError(
            f"no secret for {', '.join(missing)}: set COMUNA_IDENTITY_KEYCLOAK_CLIENT_SECRETS_FILE (JSON "
            "{client_id: secret}) or COMUNA_IDENTITY_KEYCLOAK_CLIENT_SECRETS_DIR (one file per client id)"
        )
    return found
