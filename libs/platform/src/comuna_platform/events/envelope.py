"""CloudEvents 1.0 attributes carried in NATS headers (binary content mode).

The payload is the protobuf message; `ce-type` is the message's full protobuf name, which tells
the consumer how to decode it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

CONTENT_TYPE = "application/protobuf"
SPEC_VERSION = "1.0"


@dataclass(frozen=True)
class Envelope:
    event_id: uuid.UUID
    source: str
    event_type: str
    time: datetime
    subject: str

    def to_headers(self) -> dict[str, str]:
        return {
            "Nats-Msg-Id": str(self.event_id),
            "ce-specversion": SPEC_VERSION,
            "ce-id": str(self.event_id),
            "ce-source": self.source,
            "ce-type": self.event_type,
            "ce-time": self.time.isoformat(),
            "ce-subject": self.subject,
            "ce-datacontenttype": CONTENT_TYPE,
        }

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Envelope:
        """Parse the attributes; raises ValueError/KeyError on a malformed envelope."""
        if headers.get("ce-specversion") != SPEC_VERSION:
            raise ValueError(f"unsupported CloudEvents specversion {headers.get('ce-specversion')!r}")
        if headers.get("ce-datacontenttype") != CONTENT_TYPE:
            raise ValueError("unsupported content type")
        return cls(
            event_id=uuid.UUID(headers["ce-id"]),
            source=headers["ce-source"],
            event_type=headers["ce-type"],
            time=datetime.fromisoformat(headers["ce-time"]),
            subject=headers["ce-subject"],
        )
