"""`comuna-consultations record-key`: a signer key and its verifier key that parse and match;
a name the signed-note format refuses is exit status 2 with a one-line reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from comuna_platform.tlog import note

PROGRAM = str(Path(sys.executable).parent / "comuna-consultations")


def test_record_key_prints_a_matching_signer_and_verifier_key() -> None:
    done = subprocess.run(
        [PROGRAM, "record-key", "--name", "comuna.example/record"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    keys = json.loads(done.stdout)
    signer = note.parse_skey(keys["signer_key"])
    assert signer.name == "comuna.example/record"
    assert note.parse_vkey(keys["verifier_key"]) == signer.verifier


def test_record_key_refuses_a_name_with_spaces() -> None:
    done = subprocess.run([PROGRAM, "record-key", "--name", "bad name"], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1
    assert "key name" in done.stderr
