"""Fixtures: an honest record published in a temp directory and served on 127.0.0.1, and a way
to run the programs in-process (exit status, stdout, stderr)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from comuna_platform.tlog.note import Signer
from tests.verify import record


@dataclass
class Published:
    root: Path
    server: record.RecordServer
    signer: Signer
    log: record.Log
    receipts: list[str]

    @property
    def base(self) -> str:
        return self.server.base

    def file(self, path: str) -> Path:
        found = self.root / record.BASE_PATH.lstrip("/") / path
        return found / record.INDEX if found.is_dir() else found

    def republish(self, texts: list[str], results: list[record.ResultSpec], **kwargs: object) -> record.Log:
        self.log = record.publish(self.root, texts, results, self.signer, self.receipts, **kwargs)  # type: ignore[arg-type]
        return self.log


@pytest.fixture
def published(tmp_path: Path) -> Iterator[Published]:
    texts, results, receipts = record.scenario()
    signer = record.new_signer()
    log = record.publish(tmp_path / "www", texts, results, signer, receipts)
    with record.serving(tmp_path / "www") as server:
        yield Published(tmp_path / "www", server, signer, log, receipts)


@dataclass
class Ran:
    status: int
    out: str
    err: str


Runner = Callable[..., Ran]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Run `main(argv)` of a program in-process, as its console script would."""

    def runner(main: Callable[[list[str]], int], *argv: str) -> Ran:
        capsys.readouterr()
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse: --help and usage errors
            status = int(exc.code or 0)
        captured = capsys.readouterr()
        return Ran(status, captured.out, captured.err)

    return runner
