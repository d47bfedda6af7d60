"""Evidence files (photos, documents): what is accepted, and the address a file is known by.

A file's address is the hex SHA-256 of its bytes, so identical files are stored once (a second
upload finds the first), anyone holding a file can check it against the address the public
record gives, and a stored file can never be replaced under the same address. What a file is
comes from its content (its magic bytes, `filetype`), never from its name or the client's
declared type; the size is checked before anything is hashed or written. Where files live is
`storage.evidence_store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import filetype

from comuna_platform.errors import InvalidInput
from comuna_projects.storage.evidence_store import EvidenceStore

# Photos and documents a progress report, an expenditure's receipt or a resident's report carries.
DEFAULT_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"})
DEFAULT_MAX_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EvidencePolicy:
    max_bytes: int = DEFAULT_MAX_BYTES
    media_types: frozenset[str] = field(default=DEFAULT_MEDIA_TYPES)

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError("evidence files need a positive size limit")
        if not self.media_types:
            raise ValueError("evidence needs at least one allowed media type")

    def check(self, data: bytes) -> str:
        """The media type of `data`; InvalidInput if it is empty, too large or not allowed."""
        if not data:
            raise InvalidInput("the evidence file is empty", code="evidence_empty")
        if len(data) > self.max_bytes:
            raise InvalidInput(
                f"the evidence file has {len(data)} bytes; at most {self.max_bytes} are accepted",
                code="evidence_too_large",
                max_bytes=self.max_bytes,
            )
        media_type: str | None = filetype.guess_mime(data)
        if media_type not in self.media_types:
            allowed = ", ".join(sorted(self.media_types))
            raise InvalidInput(
                f"the evidence file's content is {media_type or 'of no recognised type'}; accepted: {allowed}",
                code="evidence_type_not_allowed",
            )
        return media_type


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    sha256: str
    size: int
    media_type: str
    # False when an identical file was already stored (nothing was written).
    created: bool


async def store_evidence(store: EvidenceStore, data: bytes, policy: EvidencePolicy) -> StoredEvidence:
    """Check `data` against `policy`, then store it at its address (once, however often sent)."""
    media_type = policy.check(data)
    sha256, created = await store.put(data)
    return StoredEvidence(sha256, len(data), media_type, created)
