"""The reference treasury as a real process (`comuna-treasury migrate` then `serve`), on a
database of the session's embedded PostgreSQL, reached through funding's `RemoteSource`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from comuna_devstack.ports import free_port, port_is_open
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.sources import RemoteSource

TOKEN = "treasury-test-token-" + "0123456789abcdef"
CURRENCY = "VES"
OPENING_DEPOSIT = 1_000_000
TERRITORIES = ("VE.01", "VE.01.01")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def program() -> str:
    found = shutil.which("comuna-treasury", path=str(Path(sys.executable).parent))
    assert found is not None, "comuna-treasury is installed with the workspace"
    return found


def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """One `comuna-treasury` command to completion (the token is not in its environment unless given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMUNA_TREASURY_")}
    return subprocess.run(
        [program(), *argv], capture_output=True, text=True, check=False, timeout=timeout, env={**base, **(env or {})}
    )


@dataclass
class TreasuryProcess:
    """`comuna-treasury serve` as a child process; its stderr (the log) goes to a file."""

    database_url: str
    log_dir: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"treasury-{self.port}-{self.starts}.log"

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        self.starts += 1
        argv = [
            program(), "serve",
            "--database-url", self.database_url,
            "--listen", self.target,
            "--name", "Tesorería de prueba",
            "--currency", CURRENCY,
            *(a for t in TERRITORIES for a in ("--territory", t)),
            *self.extra,
        ]  # fmt: skip
        base = {k: v for k, v in os.environ.items() if not k.startswith("COMUNA_TREASURY_")}
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**base, "COMUNA_TREASURY_TOKEN": TOKEN}
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not port_is_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise AssertionError(f"comuna-treasury serve exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"comuna-treasury serve did not listen within {START_TIMEOUT} s:\n{self.log()}")
            time.sleep(0.05)

    def terminate(self) -> int:
        """SIGTERM, then wait for the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"comuna-treasury did not stop on SIGTERM:\n{self.log()}") from None

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)


def new_database(pg: EmbeddedPostgres, *, deposit: int | None = OPENING_DEPOSIT) -> str:
    """A fresh database, migrated by the treasury's own `migrate`, with an opening deposit."""
    name = f"treasury_{uuid.uuid4().hex[:12]}"
    pg.create_database(name)
    url = pg.dsn(name)
    migrated = run("migrate", "--database-url", url, "--currency", CURRENCY)
    assert migrated.returncode == 0, migrated.stderr
    if deposit is not None:
        deposited = run("deposit", "--database-url", url, "--amount-minor", str(deposit), "--reference", "budget 2027")
        assert deposited.returncode == 0, deposited.stderr
    return url


@pytest.fixture(scope="module")
def treasury_db_url(embedded_postgres: EmbeddedPostgres) -> str:
    return new_database(embedded_postgres)


@pytest.fixture(scope="module")
def treasury(treasury_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TreasuryProcess]:
    """One treasury process for a test module (tests use fresh reservation ids and compare totals
    before and after, so they do not depend on one another's order)."""
    process = TreasuryProcess(treasury_db_url, tmp_path_factory.mktemp("treasury"))
    process.start()
    try:
        yield process
    finally:
        if process.process is not None and process.process.poll() is None:
            status = process.terminate()
            assert status == 0, process.log()


@pytest_asyncio.fixture
async def source(treasury: TreasuryProcess) -> AsyncIterator[RemoteSource]:
    client = RemoteSource(treasury.target, TOKEN, 10.0)
    try:
        yield client
    finally:
        await client.close()
