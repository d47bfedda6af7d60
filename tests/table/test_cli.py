"""`comuna-table` as a program: --help everywhere, exit 2 with one line on bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from comuna_table import cli

COMMANDS = ("download", "check-in", "vote", "tally", "status", "sync")


def program() -> list[str]:
    script = shutil.which("comuna-table", path=str(Path(sys.executable).parent))
    assert script is not None, "the console script is installed with the workspace"
    return [script]


def test_help_everywhere() -> None:
    top = subprocess.run([*program(), "--help"], capture_output=True, text=True, check=False)
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        sub = subprocess.run([*program(), command, "--help"], capture_output=True, text=True, check=False)
        assert sub.returncode == 0 and "usage: comuna-table" in sub.stdout, command


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["fly"],
        ["vote"],
        ["vote", "--blank", "--candidate", "x"],
        ["download", "--server", "http://127.0.0.1:1", "--table", "OFF1"],
        ["tally", "--blank", "many"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    done = subprocess.run([*program(), *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stdout == ""


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["status"], "does not exist"),
        (["check-in", "V12345678"], "does not exist"),
        (
            ["download", "--server", "http://127.0.0.1:1", "--consultation", "nope", "--table", "OFF1", "--token", "t"],
            "must be a consultation id",
        ),
        (
            [
                "download",
                "--server",
                "http://127.0.0.1:1",
                "--consultation",
                "8f0c2c9e-52a4-4c55-9d8e-0d5c7d9a3b10",
                "--table",
                "OFF1",
            ],
            "token is needed",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, argv: list[str], reason: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no COMUNA_TABLE_TOKEN from the caller's environment
    done = subprocess.run(
        [*program(), "--db", str(tmp_path / "t.sqlite"), *argv], capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("comuna-table: ") and done.stderr.count("\n") == 1 and reason in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "t.sqlite").exists()


def test_an_unreachable_server_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    argv = ["--db", str(tmp_path / "t.sqlite"), "download", "--server", "http://127.0.0.1:9"]
    argv += ["--consultation", "8f0c2c9e-52a4-4c55-9d8e-0d5c7d9a3b10", "--table", "OFF1", "--token", "t"]
    assert asyncio.run(cli.run(argv)) == 1
    assert "cannot reach the server" in capsys.readouterr().err
    assert not (tmp_path / "t.sqlite").exists()
