"""The C2SP tlog-checkpoint body: origin, tree size, root hash, optional extension lines."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from comuna_platform.tlog.merkle import HASH_SIZE

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class CheckpointError(ValueError):
    """Not a checkpoint body."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(f"{line}\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    if not text.endswith("\n"):
        raise CheckpointError("a checkpoint ends in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a root hash")
    origin, size, root, *extensions = lines
    if not origin or any(not line for line in extensions):
        raise CheckpointError("empty line in a checkpoint")
    if _SIZE.fullmatch(size) is None or int(size) >= 1 << 63:
        raise CheckpointError(f"bad tree size {size!r}")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error as exc:
        raise CheckpointError("root hash is not base64") from exc
    if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode() != root:
        raise CheckpointError("root hash is not 32 bytes in canonical base64")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))
