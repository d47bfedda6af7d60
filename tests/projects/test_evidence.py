"""Evidence files: accepted by their content (not their name), within the size limit, stored
once per SHA-256 under a local directory, atomically, and served back by that address."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from comuna_platform.errors import InvalidInput
from comuna_projects.domain.evidence import EvidencePolicy, store_evidence
from comuna_projects.storage.evidence_store import LocalEvidenceStore

pytestmark = pytest.mark.asyncio

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
PDF = b"%PDF-1.7\n" + b"1 0 obj << >> endobj\n" * 10
POLICY = EvidencePolicy(max_bytes=4096)


def files_under(root: Path) -> list[Path]:
    """Every file under `root` (temporary ones included)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


async def test_a_file_is_stored_at_its_sha256_and_served_back(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    stored = await store_evidence(store, PNG, POLICY)
    assert (stored.sha256, stored.size, stored.media_type, stored.created) == (
        hashlib.sha256(PNG).hexdigest(),
        len(PNG),
        "image/png",
        True,
    )
    assert await store.get(stored.sha256) == PNG
    assert files_under(tmp_path) == [tmp_path / stored.sha256[:2] / stored.sha256]


async def test_identical_files_are_stored_once_even_when_sent_together(tmp_path: Path) -> None:
    store = LocalEvidenceStore(tmp_path)
    first = await store_evidence(store, PDF, POLICY)
    again = await asyncio.gather(*(store_evidence(store, PDF, POLICY) for _ in range(5)))
    assert first.created and not any(s.created for s in again)
    assert {s.sha256 for s in again} == {first.sha256}
    assert files_under(tmp_path) == [tmp_path / first.sha256[:2] / first.sha256]  # no leftover temporary file
    other = await store_evidence(store, JPEG, POLICY)
    assert other.created and other.sha256 != first.sha256 and other.media_type == "image/jpeg"


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
async def test_bad_files_are_refused_and_nothing_is_written(tmp_path: Path, data: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await store_evidence(LocalEvidenceStore(tmp_path), data, POLICY)
    assert refused.value.code == code and refused.value.status == 422
    assert files_under(tmp_path) == []


async def test_the_type_comes_from_the_content_not_from_what_the_client_calls_it(tmp_path: Path) -> None:
    # Only bytes reach the store: a PDF is a PDF whatever it was named, an executable named
    # photo.jpg is refused (the case above).
    stored = await store_evidence(LocalEvidenceStore(tmp_path), PDF, POLICY)
    assert stored.media_type == "application/pdf"


@pytest.mark.parametrize("address", ["../../etc/passwd", "ABC", "g" * 64, "A" * 64, ""])
async def test_a_malformed_address_is_refused_before_the_filesystem_is_touched(tmp_path: Path, address: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        await LocalEvidenceStore(tmp_path).get(address)
    assert refused.value.code == "evidence_address_invalid"


async def test_an_address_nothing_is_stored_at_is_none(tmp_path: Path) -> None:
    assert await LocalEvidenceStore(tmp_path).get("0" * 64) is None


async def test_a_policy_without_a_limit_or_types_is_refused() -> None:
    with pytest.raises(ValueError):
        EvidencePolicy(max_bytes=0)
    with pytest.raises(ValueError):
        EvidencePolicy(media_types=frozenset())
