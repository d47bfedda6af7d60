"""Helpers for the dev-stack hygiene tests: leftovers under /tmp, ports, processes, polling."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from comuna_devstack.ports import free_port, port_is_free
from comuna_devstack.stack import (
    KEYCLOAK_MANAGEMENT_PORT_ENV,
    KEYCLOAK_PORT_ENV,
    NATS_PORT_ENV,
    PG_PORT_ENV,
    SERVICES,
    grpc_port_env,
    http_port_env,
)

TMP = Path("/tmp")
# Scratch directories other test modules make (and remove) for themselves, and ones that older
# checkouts' test sessions running at the same time on this machine make: the code under test
# never uses these names, so one appearing meanwhile is not its leak. The names the dev stack
# itself used to leak (`comuna-pginstall-*`, `comuna-pgdata-*`) and every other `comuna-*` stay
# checked; the children's TMPDIR, which is private, is checked without exception.
_OTHER_SESSIONS = ("comuna-e2e-", "comuna-fault-", "comuna-pg-", "comuna-stack-")
_OURS = ("comuna-pginstall-", "comuna-pgdata-")


def comuna_tmp_entries() -> set[str]:
    """Names of the /tmp entries that would be leaks of the dev stack (`comuna-*`)."""
    return {
        entry.name
        for entry in TMP.glob("comuna-*")
        if entry.name.startswith(_OURS) or not entry.name.startswith(_OTHER_SESSIONS)
    }


def new_tmp_entries(before: set[str]) -> set[str]:
    return comuna_tmp_entries() - before


def private_tmpdir(base: Path) -> Path:
    """A TMPDIR for child processes: anything they write through `tempfile` shows up here."""
    path = Path(tempfile.mkdtemp(prefix="tmpdir-", dir=base))
    path.chmod(0o755)
    return path


def free_port_env() -> dict[str, str]:
    """Settings moving every port of `comuna-dev run` to a free one."""
    env = {PG_PORT_ENV: str(free_port()), NATS_PORT_ENV: str(free_port())}
    env[KEYCLOAK_PORT_ENV], env[KEYCLOAK_MANAGEMENT_PORT_ENV] = str(free_port()), str(free_port())
    for service in SERVICES:
        env[http_port_env(service)] = str(free_port())
        env[grpc_port_env(service)] = str(free_port())
    return env


def ports_of(env: Mapping[str, str]) -> list[int]:
    return [int(value) for key, value in env.items() if key.endswith("_PORT")]


def busy_ports(ports: Iterable[int]) -> list[int]:
    return [port for port in ports if not port_is_free("127.0.0.1", port)]


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until true; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not {what} after {timeout:.0f}s")
        time.sleep(0.05)


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


def comuna_dev(state_dir: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "comuna-dev"), "--state-dir", str(state_dir), *args]


def stop(process: subprocess.Popen[bytes], signum: signal.Signals, timeout: float = 60) -> int:
    process.send_signal(signum)
    return process.wait(timeout)
