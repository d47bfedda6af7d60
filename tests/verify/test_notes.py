"""Signed notes, keys, checkpoints and cosignatures: interoperable with the platform's code both
ways, and any tampering is caught."""

from __future__ import annotations

import pytest

from comuna_platform.tlog import cosignature, note
from comuna_platform.tlog.checkpoint import Checkpoint as PlatformCheckpoint
from comuna_verify import notes
from comuna_verify.checkpoint import open_checkpoint, parse_body

ORIGIN = "example.org/log"
ROOT = bytes(range(32))


def platform_checkpoint(signers: list[note.Signer], size: int = 7) -> str:
    body = PlatformCheckpoint(ORIGIN, size, ROOT).text
    return note.format_note(body, [note.sign_note(body, s) for s in signers])


def test_keys_parse_as_the_platform_writes_them() -> None:
    signer = note.Signer.generate("log.example")
    key = notes.parse_vkey(signer.verifier.vkey)
    assert (key.name, key.key_type, key.key) == ("log.example", notes.ED25519, signer.verifier.public_key)
    assert key.key_id == signer.verifier.key_id and key.vkey == signer.verifier.vkey
    private = notes.parse_skey(signer.skey)
    assert private.public == key and private.skey == signer.skey


@pytest.mark.parametrize(
    "bad",
    ["nope", "a+00000000+AAAA", "a b+12345678+" + "A" * 44],
)
def test_bad_keys_are_refused(bad: str) -> None:
    with pytest.raises(notes.NoteError):
        notes.parse_vkey(bad)


def test_a_key_id_that_does_not_match_is_refused() -> None:
    vkey = note.Signer.generate("log.example").verifier.vkey
    name, key_id, key = vkey.split("+", 2)
    wrong = f"{int(key_id, 16) ^ 1:08x}"
    with pytest.raises(notes.NoteError, match="does not match"):
        notes.parse_vkey(f"{name}+{wrong}+{key}")


def test_a_platform_checkpoint_opens_with_our_code() -> None:
    old, new = note.Signer.generate("log.example"), note.Signer.generate("log.example")  # a rotation overlap
    signed = platform_checkpoint([old, new])
    keys = [notes.parse_vkey(old.verifier.vkey), notes.parse_vkey(new.verifier.vkey)]
    opened = open_checkpoint(signed, keys)
    assert opened.problems == [] and opened.signers == ["log.example", "log.example"]
    assert (opened.checkpoint.origin, opened.checkpoint.size, opened.checkpoint.root) == (ORIGIN, 7, ROOT)


def test_a_broken_checkpoint_signature_is_named() -> None:
    signer = note.Signer.generate("log.example")
    body, lines = notes.split_note(platform_checkpoint([signer]))
    tampered = body.replace("\n7\n", "\n8\n") + "\n" + lines[0].line
    opened = open_checkpoint(tampered, [notes.parse_vkey(signer.verifier.vkey)])
    assert opened.signers == []
    assert "checkpoint: invalid signature by log key log.example" in opened.problems
    assert "checkpoint: no valid signature by a log key" in opened.problems
    other = open_checkpoint(platform_checkpoint([signer]), [notes.parse_vkey(note.Signer.generate("x").verifier.vkey)])
    assert other.problems == ["checkpoint: no valid signature by a log key"]


def test_our_cosignature_verifies_with_the_platform() -> None:
    witness = notes.PrivateKey.generate("witness.example", notes.COSIGNATURE_V1)
    body = PlatformCheckpoint(ORIGIN, 7, ROOT).text
    line = notes.cosign(body, witness, 1_790_000_000)
    platform_verifier = note.parse_vkey(witness.public.vkey)
    _, (signature,) = note.split_note(body + "\n" + line.line)
    assert cosignature.cosignature_time(body, signature, platform_verifier) == 1_790_000_000
    with pytest.raises(note.NoteError):
        cosignature.cosignature_time(body.replace("7", "8"), signature, platform_verifier)


def test_a_platform_cosignature_verifies_with_ours() -> None:
    signer = note.Signer.generate("log.example")
    witness = note.Signer.generate("witness.example", note.COSIGNATURE_V1)
    body = PlatformCheckpoint(ORIGIN, 7, ROOT).text
    signed = note.format_note(body, [note.sign_note(body, signer), cosignature.cosign(body, witness, 42)])
    log_key, witness_key = notes.parse_vkey(signer.verifier.vkey), notes.parse_vkey(witness.verifier.vkey)
    opened = open_checkpoint(signed, [log_key], [witness_key])
    assert opened.problems == []
    assert [(c.name, c.verified, c.timestamp) for c in opened.cosigners] == [("witness.example", True, 42)]
    unknown = open_checkpoint(signed, [log_key])
    assert [(c.name, c.verified) for c in unknown.cosigners] == [("witness.example", None)]
    forged = signed.replace(signed.split("\n")[-2], notes.cosign(body.replace("7", "9"), _ours(witness), 42).line[:-1])
    bad = open_checkpoint(forged, [log_key], [witness_key])
    assert bad.problems == ["checkpoint: invalid cosignature by witness witness.example"]


def _ours(signer: note.Signer) -> notes.PrivateKey:
    return notes.parse_skey(signer.skey)


@pytest.mark.parametrize(
    "body",
    ["example\n7\n", "example\nseven\n" + "A" * 43 + "=\n", "example\n7\nAAAA\n", "example\n07\n" + "A" * 43 + "=\n"],
)
def test_bad_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(notes.NoteError):
        parse_body(body)


def test_malformed_notes_are_refused() -> None:
    good = "text\n\n\u2014 name AAAAAAAA\n"
    assert notes.split_note(good)[0] == "text\n"
    for bad in ("no blank line\n", "text\n\nnot a signature\n", "text\n\n\u2014 name !!!\n", "a\n\n" + good):
        with pytest.raises(notes.NoteError):
            notes.split_note(bad)
