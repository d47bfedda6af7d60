"""Both programs as programs: installed, --help everywhere, usage errors exit 2 with one line."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from comuna_verify import cli, witness
from tests.verify.conftest import Published, Runner

HELP = [
    ("comuna-verify", []),
    ("comuna-verify", ["consultation"]),
    ("comuna-verify", ["receipt"]),
    ("comuna-verify", ["ledger"]),
    ("comuna-witness", []),
    ("comuna-witness", ["keygen"]),
    ("comuna-witness", ["watch"]),
]


def script(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found is not None, f"{name} is installed with the workspace"
    return found


@pytest.mark.parametrize(("program", "command"), HELP)
def test_help_everywhere(program: str, command: list[str]) -> None:
    done = subprocess.run([script(program), *command, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith(f"usage: {program}"), done.stderr


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["consultation"],
        ["consultation", "ftp://example.org/x"],
        ["consultation", "http://127.0.0.1:1/c", "--bogus"],
        ["receipt", "http://127.0.0.1:1/c"],
    ],
)
def test_verify_usage_errors(run: Runner, argv: list[str]) -> None:
    ran = run(cli.main, *argv)
    assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1, ran.err


@pytest.mark.parametrize("argv", [[], ["keygen"], ["watch", "http://x.invalid/c"], ["dance"]])
def test_witness_usage_errors(run: Runner, argv: list[str]) -> None:
    ran = run(witness.main, *argv)
    assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1, ran.err


def test_unreachable_server(run: Runner, tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1/consultations/x"
    for ran in (
        run(cli.main, "consultation", base),
        run(cli.main, "receipt", base, "A" * 22),
    ):
        assert ran.status == 2 and ran.out == "" and ran.err.count("\n") == 1
        assert f"cannot reach {base}" in ran.err and "is the platform running?" in ran.err


def test_state_must_be_a_directory(run: Runner, published: Published, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    ran = run(cli.main, "consultation", published.base, "--state", str(not_a_dir))
    assert ran.status == 2 and ran.err.count("\n") == 1 and "is not a directory" in ran.err


def test_a_base_that_is_not_a_consultation(run: Runner, published: Published) -> None:
    ran = run(cli.main, "consultation", published.base + "/nothing-here")
    assert ran.status == 2 and ran.err.count("\n") == 1 and "answered 404" in ran.err


def test_a_bad_witness_key_option(run: Runner, published: Published) -> None:
    ran = run(cli.main, "consultation", published.base, "--witness-key", published.signer.verifier.vkey)
    assert ran.status == 2 and "not a cosignature/v1 (0x04) key" in ran.err
