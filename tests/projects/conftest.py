"""Fixtures of the projects tests: a real S3-compatible server (the dev stack's S3Proxy) and a
fresh bucket on it per test."""

from __future__ import annotations

import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack.ports import free_port
from comuna_devstack.s3 import S3_REGION, EmbeddedS3
from comuna_projects.storage.evidence_store import S3Location, s3_client


@pytest.fixture(scope="session")
def s3_server(comuna_scratch_dir: Path) -> Iterator[EmbeddedS3]:
    """S3Proxy for the session, its buckets in the session's scratch directory."""
    with tempfile.TemporaryDirectory(prefix="s3-", dir=comuna_scratch_dir) as scratch:
        server = EmbeddedS3(
            Path(scratch) / "buckets",
            free_port(),
            access_key=f"test-{secrets.token_hex(4)}",
            secret_key=secrets.token_urlsafe(24),
        )
        with server:
            yield server


@pytest.fixture
def s3_location(s3_server: EmbeddedS3) -> S3Location:
    """A bucket of its own for the test."""
    location = S3Location(
        endpoint_url=s3_server.url,
        bucket=f"evidence-{uuid.uuid4().hex[:12]}",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=S3_REGION,
        prefix="comuna/",
    )
    client = s3_client(location)
    client.create_bucket(Bucket=location.bucket)
    return location
