"""`comuna-dev run` (what `make run` starts) as a real process, on free ports: after `kill -9`
a second run starts, and a run stopped by SIGTERM leaves nothing on its ports, running, or in /tmp."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from keycloak import KeycloakAdmin, KeycloakOpenID

from comuna_devstack._process import PidRecord, read_pid_file, start_time
from comuna_devstack.stack import KEYCLOAK_PORT_ENV, http_port_env
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

pytestmark = pytest.mark.timeout(600)

RECORDED = ("stack", "nats", "keycloak", "identity", "consultations", "funding", "projects")


@pytest.fixture
def scratch(comuna_scratch_dir: Path) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="run-", dir=comuna_scratch_dir))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Run:
    """One `comuna-dev run` child with its output in files."""

    def __init__(self, state_dir: Path, env: dict[str, str], index: int) -> None:
        self.state_dir = state_dir
        self.stdout = state_dir.parent / f"run-{index}.out"
        self.stderr = state_dir.parent / f"run-{index}.err"
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            self.process = subprocess.Popen(comuna_dev(state_dir, "run"), stdout=out, stderr=err, env=env)

    def wait_up(self, timeout: float = 300) -> None:
        def up() -> bool:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stderr.read_text()[-3000:]}"
            return "Comuna is up" in self.stdout.read_text()

        wait_until(up, timeout, "up")

    def recorded(self) -> list[PidRecord]:
        records = []
        for name in RECORDED:
            record = read_pid_file(self.state_dir / "pids" / f"{name}.pid")
            assert record is not None, f"no pid file for {name}"
            records.append(record)
        postmaster = int((self.state_dir / "pg" / "postmaster.pid").read_text().split()[0])
        started = start_time(postmaster)
        assert started is not None
        return [*records, PidRecord("postgres", postmaster, started)]


def assert_keycloak_serves_the_staff(state_dir: Path, ports: dict[str, str]) -> None:
    """What `make run` promises: stock python-keycloak logs a seeded staff member in to the
    real Keycloak and uses Keycloak's own endpoints; the admin API lists what the sync made."""
    base = f"http://127.0.0.1:{ports[KEYCLOAK_PORT_ENV]}"
    password = json.loads((state_dir / "staff-passwords.json").read_text())["operator"]
    cli = KeycloakOpenID(server_url=base, realm_name="comuna", client_id="comuna-cli")
    tokens = cli.token("operator", password)
    assert cli.userinfo(tokens["access_token"])["preferred_username"] == "operator"
    refreshed = cli.refresh_token(tokens["refresh_token"])
    cli.logout(refreshed["refresh_token"])
    admin_password = json.loads((state_dir / "secrets.json").read_text())["keycloak"]["admin_password"]
    admin = KeycloakAdmin(
        server_url=base, username="admin", password=admin_password, realm_name="comuna", user_realm_name="master"
    )
    assert {"operator", "table_officer", "service"} <= {role["name"] for role in admin.get_realm_roles()}
    assert {"comuna-cli", "svc-identity", "svc-consultations"} <= {c["clientId"] for c in admin.get_clients()}
    assert_identity_imports_as_its_runtime_role(ports, cli.token("operator", password))


def assert_identity_imports_as_its_runtime_role(ports: dict[str, str], tokens: dict[str, str]) -> None:
    """A bulk import stages rows in a temporary table: the runtime role (not the owner) must be
    allowed to create one. The seeded country root imported again changes nothing."""
    url = f"http://127.0.0.1:{ports[http_port_env('identity')]}/v1/territories:import"
    body = b"code,name,kind,parent_code,valid_from\nVE,Venezuela,country,,1900-01-01\n"
    headers = {"Authorization": f"Bearer {tokens['access_token']}", "Content-Type": "text/csv"}
    response = httpx.post(url, content=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["changes"] is False


def test_kill_9_then_a_second_run_starts_and_sigterm_leaves_nothing(scratch: Path) -> None:
    before = comuna_tmp_entries()
    tmpdir = private_tmpdir(scratch)
    ports = free_port_env()
    env = child_env({**ports, "TMPDIR": str(tmpdir)})
    state_dir = scratch / "state"

    first = Run(state_dir, env, 1)
    first.wait_up()
    assert_keycloak_serves_the_staff(state_dir, ports)
    killed = first.recorded()
    first.process.kill()
    first.process.wait(timeout=10)

    second = Run(state_dir, env, 2)
    second.wait_up()
    assert not any(record.alive() for record in killed)
    survivors = second.recorded()
    assert "Traceback" not in second.stderr.read_text()

    second.process.send_signal(signal.SIGTERM)
    assert second.process.wait(timeout=120) == 128 + signal.SIGTERM
    assert not any(record.alive() for record in survivors)
    assert busy_ports(ports_of(ports)) == []
    assert list((state_dir / "pids").iterdir()) == []
    assert not (state_dir / "pg" / "postmaster.pid").exists()
    assert list(tmpdir.iterdir()) == []
    assert new_tmp_entries(before) == set()

    cleaned = subprocess.run(comuna_dev(state_dir, "clean"), check=False, capture_output=True, text=True, env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not state_dir.exists()
    assert cleaned.stderr.splitlines()[-1] == f"comuna-dev: removed {state_dir}"
