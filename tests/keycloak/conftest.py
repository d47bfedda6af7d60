"""One real Keycloak server for the session (`keycloak_admin`), started on free ports.

The server is a Keycloak distribution named by COMUNA_TEST_KEYCLOAK_HOME (an unzipped
keycloak-quarkus-dist) run with a Java 21+ runtime (COMUNA_TEST_JAVA_HOME or JAVA_HOME), in
`start-dev` mode with an in-memory database, so every session starts from an empty server.
The lead replaces this body with the dev stack's embedded Keycloak; the fixture's name and
the attributes it yields stay.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from comuna_devstack.ports import free_port

START_TIMEOUT_SECONDS = 240.0


@dataclass(frozen=True)
class KeycloakServer:
    base_url: str
    admin_username: str
    admin_password: str


def _home() -> Path:
    home = os.environ.get("COMUNA_TEST_KEYCLOAK_HOME")
    if not home or not (Path(home) / "bin" / "kc.sh").is_file():
        pytest.fail("set COMUNA_TEST_KEYCLOAK_HOME to an unzipped keycloak-quarkus-dist (bin/kc.sh)")
    return Path(home)


def _wait_ready(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Keycloak exited with {process.returncode}; log: {log}")
        try:
            if httpx.get(f"{base_url}/realms/master", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)  # polling a condition with a deadline, not waiting for a fixed time
    pytest.fail(f"Keycloak not ready after {START_TIMEOUT_SECONDS} s; log: {log}")


@pytest.fixture(scope="session")
def keycloak_admin(comuna_scratch_dir: Path) -> Iterator[KeycloakServer]:
    home = _home()
    java_home = os.environ.get("COMUNA_TEST_JAVA_HOME") or os.environ.get("JAVA_HOME", "")
    port, management_port = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    log = comuna_scratch_dir / "keycloak.log"
    env = {
        **os.environ,
        "JAVA_HOME": java_home,
        "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
        "KC_BOOTSTRAP_ADMIN_PASSWORD": password,
    }
    command = [
        str(home / "bin" / "kc.sh"),
        "start-dev",
        "--db=dev-mem",
        "--http-host=127.0.0.1",
        f"--http-port={port}",
        f"--http-management-port={management_port}",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url, log)
        yield KeycloakServer(base_url=base_url, admin_username="admin", admin_password=password)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
