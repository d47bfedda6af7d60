"""Comuna's transparency log checked by an independent implementation of the same formats:
Go's `golang.org/x/mod/sumdb/note` and `sumdb/tlog` (from the Go module proxy), built from
`tests/interop/tlogcheck`. Go opens the signed checkpoint with the published `vkey`, rebuilds the
tree from the C2SP tiles (checking every tile against the signed root), proves entries itself,
and checks Comuna's inclusion and consistency proofs; a changed tile or signature fails."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from comuna_devstack.locations import cache_root
from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import Checkpoint
from tests.unit.tlog.test_merkle import entries, stored

SOURCE = Path(__file__).parent / "tlogcheck"
ORIGIN = "comuna.example/consultations/interop"
SIZE = 70_000
OLD_SIZE = 65_537


@pytest.fixture(scope="module")
def tlogcheck() -> Path:
    go = shutil.which("go")
    assert go is not None, "Go is needed for the interop test (installed on the project's machines)"
    digest = hashlib.sha256(b"".join((SOURCE / f).read_bytes() for f in ("go.mod", "go.sum", "main.go"))).hexdigest()
    binary = cache_root() / "tools" / f"tlogcheck-{digest[:16]}" / "tlogcheck"
    if not binary.exists():
        binary.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOPATH": str(cache_root() / "go"), "GOFLAGS": "-modcacherw"}
        subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env=env, check=True, timeout=600)
    return binary


@pytest.fixture(scope="module")
def log() -> dict[str, Any]:
    leaves = entries(SIZE)
    hashes = stored(leaves)
    signer = note.Signer.generate(ORIGIN)
    root = merkle.fold([hashes[p] for p in merkle.root_positions(SIZE)])
    body = Checkpoint(ORIGIN, SIZE, root).text
    tile_files = {}
    for tile in tiles.tiles_for_size(SIZE):
        assert tile.level is not None
        data = tiles.tile_data([hashes[(tile.level * tiles.TILE_HEIGHT, i)] for i in tile.positions])
        tile_files[tile.path] = base64.b64encode(data).decode()
    checked = []
    for index in (0, 1, 255, 256, 65_535, 65_536, SIZE - 1):
        plan = merkle.ranges_positions(merkle.inclusion_ranges(index, SIZE))
        proof = merkle.hashes_of_ranges(plan, hashes)
        checked.append(
            {
                "index": index,
                "entry": base64.b64encode(leaves[index]).decode(),
                "proof": [base64.b64encode(h).decode() for h in proof],
            }
        )
    old_root = merkle.fold([hashes[p] for p in merkle.root_positions(OLD_SIZE)])
    consistency = merkle.hashes_of_ranges(merkle.ranges_positions(merkle.consistency_ranges(OLD_SIZE, SIZE)), hashes)
    return {
        "vkey": signer.verifier.vkey,
        "checkpoint": note.format_note(body, [note.sign_note(body, signer)]),
        "tiles": tile_files,
        "entries": checked,
        "old_size": OLD_SIZE,
        "old_root": base64.b64encode(old_root).decode(),
        "old_proof": [base64.b64encode(h).decode() for h in consistency],
    }


def check(binary: Path, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    command = [str(binary)]
    done = subprocess.run(command, check=False, input=json.dumps(data), capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout)


def test_go_verifies_the_checkpoint_tiles_and_proofs(tlogcheck: Path, log: dict[str, Any]) -> None:
    assert check(tlogcheck, log) == (0, {"ok": True, "entries": 7})


def test_go_refuses_a_changed_tile(tlogcheck: Path, log: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(log["tiles"]["tile/0/273.p/112"]))
    raw[100] ^= 1
    tampered = {**log, "tiles": {**log["tiles"], "tile/0/273.p/112": base64.b64encode(bytes(raw)).decode()}}
    code, answer = check(tlogcheck, tampered)
    assert code == 1 and answer["ok"] is False


def test_go_refuses_a_checkpoint_signed_by_another_key(tlogcheck: Path, log: dict[str, Any]) -> None:
    other = note.Signer.generate(ORIGIN)
    code, answer = check(tlogcheck, {**log, "vkey": other.verifier.vkey})
    assert code == 1 and "checkpoint signature" in answer["error"]


def test_go_refuses_a_wrong_consistency_proof(tlogcheck: Path, log: dict[str, Any]) -> None:
    code, answer = check(tlogcheck, {**log, "old_size": OLD_SIZE - 1})
    assert code == 1 and "consistency" in answer["error"]
