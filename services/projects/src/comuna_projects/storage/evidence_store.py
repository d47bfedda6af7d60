"""Where evidence files live, content-addressed (`domain.evidence`).

`LocalEvidenceStore` keeps files under a directory (the default); an S3-compatible store will
implement the same `EvidenceStore` protocol. Writes are atomic (a temporary file in the same
directory, then a rename), so a crash never leaves a partial file at an address.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from comuna_platform.errors import InvalidInput

_ADDRESS = re.compile(r"^[0-9a-f]{64}$")


def address_of(data: bytes) -> str:
    """A file's address: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def check_address(sha256: str) -> str:
    if not _ADDRESS.match(sha256):
        raise InvalidInput("an evidence address is 64 lowercase hex digits (SHA-256)", code="evidence_address_invalid")
    return sha256


class EvidenceStore(Protocol):
    async def put(self, data: bytes) -> tuple[str, bool]:
        """Store `data` at its address: (address, False if an identical file was there already)."""
        ...

    async def get(self, sha256: str) -> bytes | None:
        """The file at `sha256`, None if nothing is stored there."""
        ...


class LocalEvidenceStore:
    """Files under `root/<first two hex digits>/<address>`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> tuple[str, bool]:
        sha256 = address_of(data)
        return sha256, await asyncio.to_thread(self._write_once, sha256, data)

    def _write_once(self, sha256: str, data: bytes) -> bool:
        path = self._path(sha256)
        if path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            # Two uploads of one file may race here: both write the same bytes, one rename wins.
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return True

    async def get(self, sha256: str) -> bytes | None:
        path = self._path(check_address(sha256))
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
