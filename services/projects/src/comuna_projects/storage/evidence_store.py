"""Where evidence files live, content-addressed (`domain.evidence`).

`LocalEvidenceStore` keeps files under a directory (the default); `S3EvidenceStore` in a bucket
of S3-compatible object storage, under `<prefix>sha256/<first two hex digits>/<address>`. Both
write a file whole or not at all (a temporary file then a rename; one PUT of the whole body),
so no partial file is ever at an address, and neither writes a file that is already there.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

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


@dataclass(frozen=True, slots=True)
class S3Location:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"
    prefix: str = ""


def s3_client(location: S3Location) -> Any:
    """A boto3 S3 client for `location` (path-style: S3-compatible servers rarely have
    per-bucket hosts)."""
    return boto3.client(
        "s3",
        endpoint_url=location.endpoint_url,
        aws_access_key_id=location.access_key,
        aws_secret_access_key=location.secret_key,
        region_name=location.region,
        config=BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
        ),
    )


class S3EvidenceStore:
    """Files in an S3-compatible bucket (boto3, its calls run off the event loop)."""

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self._client = s3_client(location)

    def _key(self, sha256: str) -> str:
        return f"{self.location.prefix}sha256/{sha256[:2]}/{sha256}"

    async def put(self, data: bytes) -> tuple[str, bool]:
        sha256 = address_of(data)
        return sha256, await asyncio.to_thread(self._write_once, sha256, data)

    def _write_once(self, sha256: str, data: bytes) -> bool:
        key = self._key(sha256)
        if self._exists(key):
            return False
        # Two uploads of one file may race here: both PUT the same bytes under the same key.
        self._client.put_object(Bucket=self.location.bucket, Key=key, Body=data, ContentLength=len(data))
        return True

    def _exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.location.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    async def get(self, sha256: str) -> bytes | None:
        return await asyncio.to_thread(self._read, check_address(sha256))

    def _read(self, sha256: str) -> bytes | None:
        try:
            answer = self._client.get_object(Bucket=self.location.bucket, Key=self._key(sha256))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        body: bytes = answer["Body"].read()
        return body
