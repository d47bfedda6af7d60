"""An S3-compatible object store on 127.0.0.1: S3Proxy (Apache 2.0) over a local directory.

Projects can keep evidence files in S3-compatible object storage; tests and the dev stack run
a real S3 API server for that rather than a fake. S3Proxy's jar (with its dependencies) comes
from Maven Central once per machine, pinned by SHA-512 (`downloads`), and runs on the Java
runtime Keycloak uses. It speaks AWS signatures v2 and v4 with one access key, and keeps each
bucket as a directory under `data_dir`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from comuna_devstack._process import parent_death_hook, stop_group, tail
from comuna_devstack.downloads import download_pinned, locked, maven_url
from comuna_devstack.errors import DevStackError
from comuna_devstack.keycloak import find_java_home
from comuna_devstack.locations import cache_root
from comuna_devstack.ports import port_is_open

S3PROXY_VERSION = "4.1.0"
# SHA-512 of s3proxy-4.1.0-jar-with-dependencies.jar as published on Maven Central.
S3PROXY_SHA512 = (
    "7ea67712b5f520ba2e3dc8faa9a09fec5cc97a5257f4c353e55ae584dd9074c5"
    "dfaef6941313d3e26e3ea38eded2045e4b6a459791287f2454cb42c5b0d82816"
)
S3_REGION = "us-east-1"

Notify = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def s3proxy_jar(*, notify: Notify = _quiet) -> Path:
    """The S3Proxy jar in the cache, downloading it once per machine."""
    cache = cache_root()
    jar = cache / f"s3proxy-{S3PROXY_VERSION}.jar"
    if jar.is_file():
        return jar
    with locked(cache / f"s3proxy-{S3PROXY_VERSION}.lock"):
        if jar.is_file():
            return jar  # downloaded by another process while we waited
        filename = f"s3proxy-{S3PROXY_VERSION}-jar-with-dependencies.jar"
        with tempfile.TemporaryDirectory(dir=cache, prefix=".s3proxy.") as scratch:
            download = Path(scratch) / filename
            download_pinned(
                maven_url("org.gaul", "s3proxy", S3PROXY_VERSION, filename),
                download,
                sha512=S3PROXY_SHA512,
                what=f"S3Proxy {S3PROXY_VERSION}",
                notify=notify,
            )
            download.rename(jar)
    return jar


class EmbeddedS3:
    """S3Proxy on 127.0.0.1:`port`, buckets under `data_dir`, one access key."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        *,
        access_key: str,
        secret_key: str,
        notify: Notify = _quiet,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.access_key = access_key
        self.secret_key = secret_key
        self.notify = notify
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self, timeout: float = 60.0) -> None:
        if self._process is not None:
            return
        jar = s3proxy_jar(notify=self.notify)
        java_home = find_java_home(notify=self.notify)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        work = self.data_dir.parent / f"{self.data_dir.name}.tmp"
        work.mkdir(exist_ok=True)
        properties = self.data_dir.parent / f"{self.data_dir.name}.properties"
        # The secret goes into a file only this user reads, never onto the command line (`ps`).
        descriptor = os.open(properties, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(
                f"s3proxy.endpoint={self.url}\n"
                "s3proxy.authorization=aws-v2-or-v4\n"
                f"s3proxy.identity={self.access_key}\n"
                f"s3proxy.credential={self.secret_key}\n"
                "jclouds.provider=filesystem\n"
                f"jclouds.filesystem.basedir={self.data_dir}\n"
            )
        self.notify(f"starting S3Proxy {S3PROXY_VERSION} on {self.url}")
        self._log = self.log_file.open("ab")
        self._process = subprocess.Popen(
            [
                str(java_home / "bin" / "java"),
                # Nothing of ours under /tmp: the JVM's temporary files go beside the buckets.
                f"-Djava.io.tmpdir={work}",
                "-XX:-UsePerfData",
                "-jar",
                str(jar),
                "--properties",
                str(properties),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=parent_death_hook(signal.SIGTERM),  # noqa: PLW1509 (only calls prctl, see _process)
        )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while not port_is_open("127.0.0.1", self.port):
            code = self._process.poll()
            if code is not None:
                raise DevStackError(f"S3Proxy exited with code {code}\n--- {self.log_file} ---\n{tail(self.log_file)}")
            if time.monotonic() >= deadline:
                raise DevStackError(f"S3Proxy not listening on {self.url} after {timeout:.0f} s; see {self.log_file}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20.0) -> None:
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
