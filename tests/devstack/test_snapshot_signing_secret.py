"""The dev stack makes consultations' snapshot signing key like its other dev secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from comuna_devstack.stack import DevSecrets


def test_a_snapshot_signing_key_is_generated_once_and_added_to_an_older_secrets_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = DevSecrets.load_or_create(path)
    assert len(base64.b64decode(first.snapshot_signing_key, validate=True)) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert DevSecrets.load_or_create(path).snapshot_signing_key == first.snapshot_signing_key

    older = json.loads(path.read_text())
    del older["snapshot_signing_key"]
    path.write_text(json.dumps(older))
    upgraded = DevSecrets.load_or_create(path)
    assert upgraded.snapshot_signing_key and upgraded.snapshot_signing_key != first.snapshot_signing_key
    assert upgraded.roll_secret == first.roll_secret
    assert json.loads(path.read_text())["snapshot_signing_key"] == upgraded.snapshot_signing_key
