"""`comuna-dev bench ballots` with the platform down says how to start it, in one line, with no
traceback (the situation of a bench started while `make run` is still coming up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from comuna_devstack.ports import free_port
from comuna_devstack.stack import KEYCLOAK_PORT_ENV, SERVICES, http_port_env, staff_passwords_file


def test_the_ballots_bench_against_a_stopped_platform_says_to_start_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = staff_passwords_file(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"operator": "x", "registrar": "y"}))
    (state / "secrets.json").write_text(json.dumps({"keycloak": {"admin_password": "z"}}))
    # Every port the bench talks to is free: nothing listens there.
    env = {**os.environ, KEYCLOAK_PORT_ENV: str(free_port())}
    env.update({http_port_env(service): str(free_port()) for service in SERVICES})
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "comuna-dev"),
            "--state-dir",
            str(state),
            "bench",
            "ballots",
            "--ballots",
            "10",
            "--online",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot reach the platform" in done.stderr
    assert "start it with `make run`" in done.stderr
    assert json.loads(done.stdout)["ok"] is False
