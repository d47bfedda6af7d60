"""Evidence files: accepted by their content (not their name), within the size limit, stored
once per SHA-256, whole or not at all, and served back by that address; in a local directory
and in a bucket of a real S3-compatible server (S3Proxy, run by the dev stack's code)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from comuna_platform.errors import InvalidInput
from comuna_projects.domain.evidence import EvidencePolicy, store_evidence
from comuna_projects.storage.evidence_store import (
    EvidenceStore,
    LocalEvidenceStore,
    S3EvidenceStore,
    S3Location,
    s3_client,
)

pytestmark = pytest.mark.asyncio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 10
POLICY = EvidencePolicy(max_bytes=4096)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> EvidenceStore:
    if request.param == "local":
        return LocalEvidenceStore(tmp_path / "evidence")
    location: S3Location = request.getfixturevalue("s3_location")
    return S3EvidenceStore(location)


def contents(store: EvidenceStore) -> list[str]:
    """Everything the store holds (temporary files included), as names of files or keys."""
    if isinstance(store, LocalEvidenceStore):
        if not store.root.exists():
            return []
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3EvidenceStore)
    client = s3_client(store.location)
    listed = client.list_objects_v2(Bucket=store.location.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def where(store: EvidenceStore, sha256: str) -> str:
    """The name a file of this address has in the store."""
    if isinstance(store, LocalEvidenceStore):
        return f"{sha256[:2]}/{sha256}"
    return f"comuna/sha256/{sha256[:2]}/{sha256}"


async def test_a_file_is_stored_at_its_sha256_and_served_back(store: EvidenceStore) -> None:
    stored = await store_evidence(store, PNG, POLICY)
    assert (stored.sha256, stored.size, stored.media_type, stored.created) == (
        hashlib.sha256(PNG).hexdigest(),
        len(PNG),
        "image/png",
        True,
    )
    assert await store.get(stored.sha256) == PNG
    assert await asyncio.to_thread(contents, store) == [where(store, stored.sha256)]


async def test_identical_files_are_stored_once_even_when_sent_together(store: EvidenceStore) -> None:
    first = await store_evidence(store, PDF, POLICY)
    again = await asyncio.gather(*(store_evidence(store, PDF, POLICY) for _ in range(5)))
    assert first.created and not any(s.created for s in again)
    assert {s.sha256 for s in again} == {first.sha256}
    # One file, no leftover temporary one.
    assert await asyncio.to_thread(contents, store) == [where(store, first.sha256)]
    other = await store_evidence(store, JPEG, POLICY)
    assert other.created and other.sha256 != first.sha256 and other.media_type == "image/jpeg"
    assert await store.get(other.sha256) == JPEG and await store.get(first.sha256) == PDF


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "evidence_empty"),
        (PNG + bytes(4096), "evidence_too_large"),
        (b"MZ\x90\x00" + bytes(100), "evidence_type_not_allowed"),  # a Windows executable
        (b"<html><script>alert(1)</script></html>", "evidence_type_not_allowed"),
        (b"GIF89a" + bytes(50), "evidence_type_not_allowed"),  # an image, but not one accepted
    ],
)
async def test_bad_files_are_refused_and_nothing_is_written(store: EvidenceStore, data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await store_evidence(store, data, POLICY)
    assert refused.value.code == code and refused.value.status == 422
    assert await asyncio.to_thread(contents, store) == []


async def test_the_type_comes_from_the_content_not_from_what_the_client_calls_it(store: EvidenceStore) -> None:
    # Only bytes reach the store: a PDF is a PDF whatever it was named, an executable named
    # photo.jpg is refused (the case above).
    stored = await store_evidence(store, PDF, POLICY)
    assert stored.media_type == "application/pdf"


@pytest.mark.parametrize("address", ["../../etc/passwd", "ABC", "g" * 64, "A" * 64, ""])
async def test_a_malformed_address_is_refused_before_the_store_is_asked(store: EvidenceStore, address: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await store.get(address)
    assert refused.value.code == "evidence_address_invalid"


async def test_an_address_nothing_is_stored_at_is_none(store: EvidenceStore) -> None:
    assert await store.get("0" * 64) is None


async def test_a_policy_without_a_limit_or_types_is_refused() -> None:
    with pytest.raises(ValueError):
        EvidencePolicy(max_bytes=0)
    with pytest.raises(ValueError):
        EvidencePolicy(media_types=frozenset())
