"""The steps every command shares: whose keys to trust, the signed checkpoint, saved state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from comuna_verify.checkpoint import SignedCheckpoint, open_checkpoint
from comuna_verify.http import Client, UsageError
from comuna_verify.notes import ED25519, NoteError, PublicKey, parse_vkey
from comuna_verify.state import SavedCheckpoints, consistency_problem
from comuna_verify.tiles import TileReader


def parse_keys(vkeys: Sequence[str], option: str, key_type: int) -> list[PublicKey]:
    """Keys given on the command line; UsageError naming the bad one."""
    keys = []
    for vkey in vkeys:
        try:
            key = parse_vkey(vkey)
        except NoteError as exc:
            raise UsageError(f"{option} {vkey[:40]!r}: {exc}") from exc
        if key.key_type != key_type:
            wanted = "an Ed25519 (0x01)" if key_type == ED25519 else "a cosignature/v1 (0x04)"
            raise UsageError(f"{option} {key.name}: not {wanted} key")
        keys.append(key)
    return keys


def log_keys(client: Client, pinned: Sequence[str]) -> tuple[list[PublicKey], str | None, list[str]]:
    """The log keys (pinned, else as the platform publishes them), the published origin (None
    when pinned) and problems with published keys."""
    if pinned:
        return parse_keys(pinned, "--log-key", ED25519), None, []
    published = client.get_ok("record/keys").json()
    if not isinstance(published, dict) or not isinstance(published.get("verifier_keys"), list):
        raise UsageError(f"{client.url('record/keys')} is not {{origin, verifier_keys}}; pin keys with --log-key")
    keys, problems = [], []
    for vkey in published["verifier_keys"]:
        try:
            keys.append(parse_vkey(str(vkey)))
        except NoteError as exc:
            problems.append(f"record/keys: {exc}")
    return keys, str(published.get("origin")), problems


def fetch_checkpoint(
    client: Client, keys: Sequence[PublicKey], witness_keys: Sequence[PublicKey], origin: str | None
) -> SignedCheckpoint:
    """The log's latest checkpoint, its signatures sorted; UsageError if it is not one at all."""
    note = client.get_ok("record/checkpoint").text()
    try:
        signed = open_checkpoint(note, keys, witness_keys)
    except NoteError as exc:
        raise UsageError(f"{client.url('record/checkpoint')} is not a signed checkpoint: {exc}") from exc
    if origin is not None and signed.checkpoint.origin != origin:
        signed.problems.append(f"checkpoint: origin {signed.checkpoint.origin} is not the published origin {origin}")
    return signed


def check_state(state_dir: Path, signed: SignedCheckpoint, reader: TileReader) -> list[str]:
    """The new checkpoint against every saved one of its origin; saved when signed and
    consistent (so a verifier that once saw a fork keeps seeing it)."""
    saved = SavedCheckpoints(state_dir, signed.checkpoint.origin)
    previous, problems = saved.load()
    for old in previous:
        problem = consistency_problem(old, signed.checkpoint, reader)
        if problem:
            problems.append(problem)
    if not problems and signed.signed:
        saved.save(signed.note, signed.checkpoint)
    return problems
