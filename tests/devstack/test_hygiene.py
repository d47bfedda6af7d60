"""Nothing of the dev stack outlives it: no leftovers under /tmp, none on its ports, none running.

Real PostgreSQL and NATS in child processes, on free ports, with state in a scratch directory
under the dev stack's cache; `/tmp` is snapshotted (`comuna-*`) before and after.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack._process import PidRecord, read_pid_file, start_time, stop_recorded, tail
from comuna_devstack.locations import owned_temp_dir, sweep_abandoned
from comuna_devstack.ports import free_port, port_is_open
from comuna_devstack.postgres import relocated_parent
from tests.devstack.support import (
    busy_ports,
    child_env,
    comuna_dev,
    comuna_tmp_entries,
    free_port_env,
    new_tmp_entries,
    ports_of,
    private_tmpdir,
    wait_until,
)

pytestmark = pytest.mark.timeout(240)

# PostgreSQL and NATS of a Stack, in a child process we can SIGTERM or SIGKILL.
INFRA_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from pathlib import Path
    from comuna_devstack.ports import free_port
    from comuna_devstack.stack import SERVICES, Stack, StackConfig
    config = StackConfig(state_dir=Path(sys.argv[1]), pg_port=int(sys.argv[2]), nats_port=int(sys.argv[3]),
                         http_ports={s: free_port() for s in SERVICES}, grpc_ports={s: free_port() for s in SERVICES},
                         keycloak_port=free_port(), keycloak_management_port=free_port(),
                         treasury_port=free_port(), fast=True)
    stack = Stack(config, notify=lambda message: print("notice:", message, file=sys.stderr, flush=True))
    if sys.argv[4] == "thread":
        # Started off the main thread, the servers get no parent-death signal: a true orphan
        # when this process is killed.
        starter = threading.Thread(target=stack.start_infrastructure)
        starter.start()
        starter.join()
        stack.start = lambda: None
    else:
        stack.start = stack.start_infrastructure  # PostgreSQL and NATS only: what must not leak
    with stack:
        print("up", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def scratch(comuna_scratch_dir: Path) -> Iterator[Path]:
    """A world-traversable directory of this test (pytest's tmp_path is not, as root)."""
    path = Path(tempfile.mkdtemp(prefix="hygiene-", dir=comuna_scratch_dir))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Infra:
    """One `INFRA_SCRIPT` child: a Stack's PostgreSQL and NATS on fixed ports and state dir."""

    def __init__(self, state_dir: Path, pg_port: int, nats_port: int, tmpdir: Path) -> None:
        self.state_dir, self.pg_port, self.nats_port, self.tmpdir = state_dir, pg_port, nats_port, tmpdir
        self.stderr = state_dir.parent / "stderr.log"
        self.data_dir = state_dir / "pg"

    def start(self, *, from_thread: bool = False) -> subprocess.Popen[str]:
        self.stderr = self.state_dir.parent / f"stderr-{len(list(self.state_dir.parent.glob('stderr-*')))}.log"
        mode = "thread" if from_thread else "main"
        with self.stderr.open("w") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-c", INFRA_SCRIPT, str(self.state_dir), str(self.pg_port), str(self.nats_port), mode],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=child_env({"TMPDIR": str(self.tmpdir)}),
            )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == "up", self.stderr.read_text()
        for name, port in (("PostgreSQL", self.pg_port), ("NATS", self.nats_port)):
            # A connect gives up after 0.2 s, which a machine busy with a previous test's
            # shutdown can exceed: a server that is up accepts within seconds, a dead one never.
            deadline = time.monotonic() + 10
            while not port_is_open("127.0.0.1", port):
                assert process.poll() is None and time.monotonic() < deadline, (
                    f"{name} on {port} does not accept connections after 'up'\n--- stderr ---\n"
                    f"{self.stderr.read_text()}\n--- {self.data_dir}/log ---\n{tail(self.data_dir / 'log')}"
                )
                time.sleep(0.05)
        return process

    def recorded(self) -> dict[str, PidRecord]:
        records = {"postgres": _postmaster(self.data_dir)}
        for name in ("nats", "stack"):
            record = read_pid_file(self.state_dir / "pids" / f"{name}.pid")
            assert record is not None, f"no pid file for {name}"
            records[name] = record
        return records

    def assert_nothing_left(self, before_tmp: set[str]) -> None:
        assert busy_ports([self.pg_port, self.nats_port]) == []
        assert list((self.state_dir / "pids").glob("*.pid")) == []
        assert not (self.data_dir / "postmaster.pid").exists()
        assert list(self.tmpdir.iterdir()) == []
        assert new_tmp_entries(before_tmp) == set()


def _postmaster(data_dir: Path) -> PidRecord:
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    started = start_time(pid)
    assert started is not None
    return PidRecord("postgres", pid, started)


@pytest.fixture
def infra(scratch: Path) -> Infra:
    state_dir = scratch / "state"
    return Infra(state_dir, free_port(), free_port(), private_tmpdir(scratch))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_stopped_stack_leaves_nothing_on_its_ports_or_in_tmp(infra: Infra, signum: signal.Signals) -> None:
    before = comuna_tmp_entries()
    process = infra.start()
    records = infra.recorded()
    process.send_signal(signum)
    process.wait(timeout=60)
    assert not any(record.alive() for record in records.values())
    infra.assert_nothing_left(before)


def test_kill_9_then_a_second_start_starts_and_leaves_nothing(infra: Infra) -> None:
    before = comuna_tmp_entries()
    first = infra.start()
    records = infra.recorded()
    first.kill()
    first.wait(timeout=10)
    # The servers follow their killed parent by themselves (PR_SET_PDEATHSIG) ...
    wait_until(lambda: not records["postgres"].alive() and not records["nats"].alive(), 60, "PostgreSQL and NATS gone")
    assert busy_ports([infra.pg_port, infra.nats_port]) == []

    # ... and the next run of the same state directory starts on the same ports.
    second = infra.start()
    second_records = infra.recorded()
    assert second_records["postgres"].pid != records["postgres"].pid
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)
    infra.assert_nothing_left(before)


def test_a_second_start_stops_servers_an_earlier_run_left_alive(infra: Infra) -> None:
    """What the next run does when the servers outlived their killed parent (here: started from
    a thread, where PR_SET_PDEATHSIG does not apply): it stops them, saying so, and starts."""
    before = comuna_tmp_entries()
    first = infra.start(from_thread=True)
    records = infra.recorded()
    first.kill()
    first.wait(timeout=10)
    assert records["postgres"].alive() and records["nats"].alive()
    second = infra.start()
    assert not records["postgres"].alive() and not records["nats"].alive()
    notices = infra.stderr.read_text().splitlines()
    assert f"notice: stopping nats left running by an earlier run (pid {records['nats'].pid})" in notices
    assert (
        f"notice: stopping the PostgreSQL left running on {infra.state_dir / 'pg'} by an earlier run "
        f"(pid {records['postgres'].pid}, port {infra.pg_port})"
    ) in notices
    second.send_signal(signal.SIGTERM)
    second.wait(timeout=60)
    infra.assert_nothing_left(before)


def test_a_state_dir_the_server_account_cannot_reach_gets_its_data_relocated_and_cleaned(
    tmp_path: Path, scratch: Path
) -> None:
    """A checkout in a private directory (root's home, a 0700 folder), as in CI: the data goes
    to its documented place, a killed run is recovered from there, `comuna-dev clean` removes it."""
    before = comuna_tmp_entries()
    state_dir = tmp_path / "checkout" / ".devstack"  # pytest's tmp_path is 0700
    state_dir.parent.mkdir()
    infra = Infra(state_dir, free_port(), free_port(), private_tmpdir(scratch))
    relocated = relocated_parent(state_dir)
    if os.geteuid() == 0:
        infra.data_dir = relocated / "pg"
    try:
        first = infra.start(from_thread=True)  # its servers will outlive it
        assert (infra.data_dir / "PG_VERSION").is_file()
        if os.geteuid() == 0:
            assert f"notice: PostgreSQL data lives in {infra.data_dir}" in infra.stderr.read_text()
        records = infra.recorded()
        first.kill()
        first.wait(timeout=10)
        second = infra.start()
        assert not records["postgres"].alive() and not records["nats"].alive()
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=60)
        infra.assert_nothing_left(before)
        cleaned = subprocess.run(
            comuna_dev(state_dir, "clean"), check=False, capture_output=True, text=True, env=child_env({})
        )
        assert cleaned.returncode == 0, cleaned.stderr
        assert not state_dir.exists() and not relocated.exists()
    finally:
        shutil.rmtree(relocated, ignore_errors=True)


def test_a_second_live_run_on_the_same_state_directory_is_refused(infra: Infra) -> None:
    first = infra.start()
    try:
        refused = subprocess.run(
            comuna_dev(infra.state_dir, "run"),
            check=False,
            capture_output=True,
            text=True,
            env=child_env(free_port_env()),
            timeout=60,
        )
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines() == [
            f"comuna-dev: {infra.state_dir} is in use by another comuna-dev run (pid {first.pid}); "
            "stop it first or choose another --state-dir"
        ]
        assert port_is_open("127.0.0.1", infra.pg_port)  # the running one was left alone
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)


@pytest.mark.parametrize("setting", ["COMUNA_DEV_PG_PORT", "COMUNA_DEV_NATS_PORT", "COMUNA_DEV_FUNDING_HTTP_PORT"])
def test_a_port_taken_by_another_program_is_reported_before_anything_starts(scratch: Path, setting: str) -> None:
    before = comuna_tmp_entries()
    env = free_port_env()
    with socketserver_on_free_port() as taken:
        env[setting] = str(taken)
        state_dir = scratch / "state"
        result = subprocess.run(
            comuna_dev(state_dir, "run"), check=False, capture_output=True, text=True, env=child_env(env), timeout=60
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"comuna-dev: port {taken} is in use by another program; stop it or set {setting}"
    ]
    assert result.stdout == ""
    assert not (state_dir / "pg").exists() and not (state_dir / "nats").exists()  # nothing started
    assert busy_ports(port for port in ports_of(env) if port != taken) == []
    assert list((state_dir / "pids").glob("*.pid")) == []
    assert new_tmp_entries(before) == set()


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_malformed_port_setting_is_refused_in_one_line(scratch: Path, value: str) -> None:
    result = subprocess.run(
        comuna_dev(scratch / "state", "run"),
        check=False,
        capture_output=True,
        text=True,
        env=child_env({"COMUNA_DEV_NATS_PORT": value}),
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"comuna-dev: COMUNA_DEV_NATS_PORT must be a TCP port number (1-65535), not {value!r}"
    ]


def test_the_same_port_configured_twice_is_refused(scratch: Path) -> None:
    env = free_port_env()
    env["COMUNA_DEV_PROJECTS_GRPC_PORT"] = env["COMUNA_DEV_PG_PORT"]
    result = subprocess.run(
        comuna_dev(scratch / "state", "run"),
        check=False,
        capture_output=True,
        text=True,
        env=child_env(env),
        timeout=60,
    )
    assert result.returncode == 2
    assert "is configured twice (COMUNA_DEV_PG_PORT and COMUNA_DEV_PROJECTS_GRPC_PORT)" in result.stderr


def test_a_recorded_pid_reused_by_another_process_is_never_signalled() -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = start_time(bystander.pid)
        assert started is not None
        stale = PidRecord("nats", bystander.pid, started - 1)  # same pid, another process's start time
        assert not stale.alive()
        stop_recorded(stale, grace_period=0.1)
        assert bystander.poll() is None
        assert PidRecord("nats", bystander.pid, started).alive()
    finally:
        bystander.kill()
        bystander.wait()


def test_temp_dirs_of_dead_processes_are_swept_and_live_ones_kept(scratch: Path) -> None:
    mine = owned_temp_dir(scratch, "session")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    abandoned = scratch / f"session.{gone.pid}.12345.abcdefgh"
    (abandoned / "pg").mkdir(parents=True)
    unrelated = scratch / "session-notes"
    unrelated.mkdir()
    assert sweep_abandoned(scratch, "session") == [abandoned]
    assert mine.is_dir() and unrelated.is_dir() and not abandoned.exists()
    assert oct(mine.stat().st_mode & 0o777) == "0o755"


class socketserver_on_free_port:
    """A listening socket standing for "another program" on a port."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen()
        port: int = self._sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
