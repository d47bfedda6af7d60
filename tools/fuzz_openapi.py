"""Schemathesis against every service's OpenAPI, anonymously and with a token of every staff role.

    .venv/bin/python tools/fuzz_openapi.py --start                # own stack on free ports, temp dir
    .venv/bin/python tools/fuzz_openapi.py --state-dir .devstack  # a running `make run`

Tokens come from that stack's Keycloak (password grant for the dev seed's staff, who hold
identity assignments; client credentials for a service client). The only check is `not_a_server_error`: whatever
Schemathesis sends, no service may answer 5xx. Exit status 0 when none did, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from comuna_devstack.ports import free_port
from comuna_devstack.stack import PUBLIC_CLIENT, SERVICES, DevSecrets, Stack, StackConfig

# Dev seed staff (Keycloak users with identity assignments) -> the role they act with.
STAFF_USERS = {
    "operator": "operator",
    "registrar": "registrar",
    "auditor": "auditor",
    "spokesperson-c001": "spokesperson",
    "overseer-c001": "overseer",
}


@contextmanager
def stack_on_free_ports() -> Iterator[StackConfig]:
    state_dir = Path(tempfile.mkdtemp(prefix="comuna-fuzz-", dir="/tmp"))
    state_dir.chmod(0o755)
    config = StackConfig(
        state_dir=state_dir,
        pg_port=free_port(),
        nats_port=free_port(),
        http_ports={s: free_port() for s in SERVICES},
        grpc_ports={s: free_port() for s in SERVICES},
        metrics_ports={s: free_port() for s in SERVICES},
        fast=True,
        log_level="WARNING",
    )
    try:
        with Stack(config):
            yield config
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def tokens(config: StackConfig) -> dict[str, str]:
    """Role -> bearer token, from the stack's Keycloak."""
    secrets = DevSecrets.load_or_create(config.state_dir / "secrets.json")
    passwords = Stack.read_staff_passwords(config.state_dir)
    url = config.token_url
    found: dict[str, str] = {}
    with httpx.Client(timeout=30) as client:
        for user, role in STAFF_USERS.items():
            form = {
                "grant_type": "password",
                "client_id": PUBLIC_CLIENT,
                "username": user,
                "password": passwords[user],
            }
            found[role] = client.post(url, data=form).raise_for_status().json()["access_token"]
        client_id, secret = next(iter(secrets.client_secrets.items()))
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
        found["service"] = client.post(url, data=form).raise_for_status().json()["access_token"]
    return found


def run_schemathesis(service: str, config: StackConfig, token: str | None, max_examples: int) -> tuple[int, str]:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--no-color",
        "run",
        f"{config.http_url(service)}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(max_examples),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-allow-x00",
        "true",
        "--workers",
        "1",
        "--seed",
        "1",
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    return completed.returncode, completed.stdout + completed.stderr


def summary_line(output: str) -> str:
    """Schemathesis' closing line, e.g. `No issues found in 12.3s` or `2 failures in 20s`."""
    lines = [line.strip(" =") for line in output.splitlines() if line.strip(" =")]
    return lines[-1] if lines else "(no output)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--start", action="store_true", help="start a stack on free ports in a temporary directory")
    where.add_argument(
        "--state-dir", type=Path, help="state directory of a running `make run` (its ports are the defaults)"
    )
    parser.add_argument("--max-examples", type=int, default=30, help="examples per operation and phase")
    parser.add_argument("--services", default=",".join(SERVICES), help="comma-separated subset of the services")
    parser.add_argument("--output-dir", type=Path, help="keep each run's full Schemathesis output there")
    args = parser.parse_args()
    services = [s for s in args.services.split(",") if s]

    with stack_on_free_ports() if args.start else _running(args.state_dir) as config:
        by_role: dict[str | None, str | None] = {None: None}
        by_role.update(tokens(config))
        failed = False
        started = time.monotonic()
        for service in services:
            for role, token in by_role.items():
                code, output = run_schemathesis(service, config, token, args.max_examples)
                server_errors = len(re.findall(r"Server error", output))
                label = role or "anonymous"
                if args.output_dir is not None:
                    args.output_dir.mkdir(parents=True, exist_ok=True)
                    (args.output_dir / f"{service}-{label}.txt").write_text(output)
                print(f"{service:<14} {label:<16} exit {code}  5xx cases {server_errors:<3} {summary_line(output)}")
                if code != 0:
                    failed = True
                    print(output[-4000:], file=sys.stderr)
        print(json.dumps({"services": services, "seconds": round(time.monotonic() - started, 1), "ok": not failed}))
    return 1 if failed else 0


@contextmanager
def _running(state_dir: Path) -> Iterator[StackConfig]:
    yield StackConfig(state_dir=state_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
