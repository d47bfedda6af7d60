"""Signed notes, checkpoints and cosignatures: what is signed verifies, anything changed does not."""

from __future__ import annotations

import base64
import hashlib

import pytest

from comuna_platform.tlog import checkpoint, cosignature, note
from comuna_platform.tlog.checkpoint import Checkpoint, CheckpointError
from comuna_platform.tlog.note import NoteError, Signer

ORIGIN = "comuna.example/consultations/2026-Q2"


def test_a_signed_checkpoint_opens_with_its_key_and_keys_round_trip() -> None:
    signer = Signer.generate(ORIGIN)
    assert note.parse_skey(signer.skey) == signer
    assert note.parse_vkey(signer.verifier.vkey) == signer.verifier
    body = Checkpoint(ORIGIN, 42, hashlib.sha256(b"x").digest()).text
    signed = note.format_note(body, [note.sign_note(body, signer)])
    text, valid = note.open_note(signed, [signer.verifier])
    assert text == body and valid == [signer.verifier]
    assert checkpoint.parse_checkpoint(text) == Checkpoint(ORIGIN, 42, hashlib.sha256(b"x").digest())


def test_the_key_id_is_the_spec_hash() -> None:
    signer = Signer.generate("example.com/log")
    public = signer.verifier.public_key
    expected = hashlib.sha256(b"example.com/log\n\x01" + public).digest()[:4]
    assert signer.verifier.key_id == expected
    assert signer.verifier.vkey.split("+")[1] == expected.hex()


def test_a_changed_text_a_foreign_key_or_a_bad_signature_does_not_open() -> None:
    signer, other = Signer.generate(ORIGIN), Signer.generate(ORIGIN)
    body = Checkpoint(ORIGIN, 1, b"\x01" * 32).text
    signed = note.format_note(body, [note.sign_note(body, signer)])
    with pytest.raises(NoteError):
        note.open_note(signed.replace("\n1\n", "\n2\n"), [signer.verifier])
    with pytest.raises(NoteError, match="no signature by a trusted key"):
        note.open_note(signed, [other.verifier])
    forged = note.format_note(body, [note.Signature(ORIGIN, signer.verifier.key_id, b"\x00" * 64)])
    with pytest.raises(NoteError, match="invalid signature"):
        note.open_note(forged, [signer.verifier])


def test_during_a_rotation_either_key_opens_the_note() -> None:
    old, new = Signer.generate(ORIGIN), Signer.generate(ORIGIN)
    body = Checkpoint(ORIGIN, 7, b"\x02" * 32).text
    signed = note.format_note(body, [note.sign_note(body, old), note.sign_note(body, new)])
    assert note.open_note(signed, [old.verifier])[1] == [old.verifier]
    assert note.open_note(signed, [new.verifier])[1] == [new.verifier]


@pytest.mark.parametrize(
    "text",
    [
        "origin\n01\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "origin\n1\n" + base64.b64encode(b"\x00" * 31).decode() + "\n",
        "origin\n1\n" + base64.b64encode(b"\x00" * 32).decode(),
        "\n1\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
        "origin\n1\n",
        "origin\n-1\n" + base64.b64encode(b"\x00" * 32).decode() + "\n",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(CheckpointError):
        checkpoint.parse_checkpoint(text)


def test_a_cosignature_verifies_with_its_time_and_not_on_another_checkpoint() -> None:
    witness = Signer.generate("witness.example/w1", note.COSIGNATURE_V1)
    body = Checkpoint(ORIGIN, 9, b"\x03" * 32).text
    signature = cosignature.cosign(body, witness, 1_767_225_600)
    assert cosignature.cosignature_time(body, signature, witness.verifier) == 1_767_225_600
    _, [parsed] = note.split_note(note.format_note(body, [signature]))
    assert cosignature.cosignature_time(body, parsed, witness.verifier) == 1_767_225_600
    with pytest.raises(NoteError):
        cosignature.cosignature_time(Checkpoint(ORIGIN, 10, b"\x03" * 32).text, signature, witness.verifier)
    retimed = note.Signature(signature.name, signature.key_id, (1).to_bytes(8, "big") + signature.signature[8:])
    with pytest.raises(NoteError):
        cosignature.cosignature_time(body, retimed, witness.verifier)
    with pytest.raises(NoteError):
        cosignature.cosign(body, Signer.generate("log.example"), 1)  # a 0x01 key cannot cosign
