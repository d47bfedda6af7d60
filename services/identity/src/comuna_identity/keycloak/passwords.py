"""Generated passwords of the seeded staff, kept in one 0600 JSON file and reused next run."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


class PasswordFileError(Exception):
    """The passwords file exists but cannot be used."""


class PasswordBook:
    """username -> password. `save` writes atomically, readable by the owner only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._passwords: dict[str, str] = self._load(path) if path is not None else {}

    @staticmethod
    def _load(path: Path) -> dict[str, str]:
        if not path.exists():
            return {}
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PasswordFileError(f"cannot read passwords file {path}: {exc}") from None
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise PasswordFileError(f"passwords file {path} must be a JSON object of username -> password")
        return document

    def get(self, username: str) -> str | None:
        return self._passwords.get(username)

    def generate(self, username: str) -> str:
        # 24 URL-safe characters (144 bits): far above the realm's length(12) policy.
        password = secrets.token_urlsafe(18)
        self._passwords[username] = password
        return password

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self._passwords, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)
