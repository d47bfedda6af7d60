"""`comuna-consultations record-key` and `comuna-funding journal-key`: a signer key and its
verifier key that parse and match, named by the configured origin unless told; a name the
signed-note format refuses is exit status 2 with a one-line reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from comuna_platform.tlog import note

BIN = Path(sys.executable).parent
COMMANDS = [
    (str(BIN / "comuna-consultations"), "record-key", "comuna.localhost/record"),
    (str(BIN / "comuna-funding"), "journal-key", "comuna.localhost/ledger"),
]


@pytest.mark.parametrize(("program", "command", "default"), COMMANDS)
def test_a_key_prints_a_matching_signer_and_verifier_key(program: str, command: str, default: str) -> None:
    for args, name in ((["--name", "comuna.example/log"], "comuna.example/log"), ([], default)):
        done = subprocess.run([program, command, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        keys = json.loads(done.stdout)
        signer = note.parse_skey(keys["signer_key"])
        assert signer.name == name
        assert note.parse_vkey(keys["verifier_key"]) == signer.verifier


@pytest.mark.parametrize(("program", "command", "default"), COMMANDS)
def test_a_name_with_spaces_is_refused(program: str, command: str, default: str) -> None:
    done = subprocess.run([program, command, "--name", "bad name"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "key name" in done.stderr and command in done.stderr
