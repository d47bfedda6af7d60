"""Checkpoints seen before, kept in a directory, and whether a new one is consistent with them.

An append-only log's checkpoints must all be views of one growing tree: the same size never
has two roots (else the log forked, showing different histories to different people), a later
checkpoint is never smaller, and a larger one extends a smaller one (a consistency proof,
computed here from the larger tree's public hash tiles, verifies).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from comuna_verify import merkle
from comuna_verify.checkpoint import Checkpoint, parse_body
from comuna_verify.notes import NoteError, split_note
from comuna_verify.tiles import TileError, TileReader


def origin_key(origin: str) -> str:
    """A file name for an origin: readable, and unique by a hash (origins hold '/')."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", origin)[:80]
    return f"{readable}-{hashlib.sha256(origin.encode()).hexdigest()[:12]}"


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Never a half-written file: a crash leaves the old one or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_checkpoint_file(path: Path) -> Checkpoint:
    """A saved note's checkpoint (its signatures were checked when it was saved)."""
    text, _ = split_note(path.read_text(encoding="utf-8"))
    return parse_body(text)


def consistency_problem(old: Checkpoint, new: Checkpoint, reader: TileReader) -> str | None:
    """Why `new` is not a consistent successor of `old` (None: it is)."""
    if old.size == new.size:
        if old.root != new.root:
            return f"fork: the log signed two roots for size {new.size} ({old.root_b64} and {new.root_b64})"
        return None
    if old.size > new.size:
        return f"the log shrank: it signed size {old.size} before, now {new.size}"
    try:
        proof = merkle.consistency_proof(old.size, new.size, reader.subtree_of(new.size))
        merkle.verify_consistency(old.size, old.root, new.size, new.root, proof)
    except merkle.ProofError as exc:
        return f"fork: the checkpoint of size {old.size} is not a prefix of size {new.size} ({exc})"
    except TileError as exc:
        return f"cannot prove size {old.size} is a prefix of size {new.size}: {exc}"
    return None


class SavedCheckpoints:
    """The checkpoints of one origin a verifier has seen, one file per size:
    `<dir>/<origin key>/checkpoint-<size>`."""

    def __init__(self, directory: Path, origin: str) -> None:
        self.directory = directory / origin_key(origin)
        self.origin = origin

    def load(self) -> tuple[list[Checkpoint], list[str]]:
        """The saved checkpoints, smallest first, and problems with unreadable files."""
        found, problems = [], []
        if self.directory.is_dir():
            for path in sorted(self.directory.glob("checkpoint-*")):
                try:
                    checkpoint = read_checkpoint_file(path)
                except (NoteError, OSError, UnicodeDecodeError) as exc:
                    problems.append(f"state: {path} is not a checkpoint ({exc}); remove it")
                    continue
                if checkpoint.origin != self.origin:
                    problems.append(f"state: {path} is of origin {checkpoint.origin}, not {self.origin}")
                    continue
                found.append(checkpoint)
        return sorted(found, key=lambda c: c.size), problems

    def save(self, note: str, checkpoint: Checkpoint) -> Path:
        path = self.directory / f"checkpoint-{checkpoint.size}"
        write_atomically(path, note)
        return path
