"""The ledger benchmark runs end to end against a whole dev stack (tiny sizes: the figures are
for `comuna-dev bench ledger`), reports every figure, and finds the ledger sound after its load;
its command refuses bad sizes and says how to start a platform that is down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comuna_devstack.benches import ledger
from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import SUPERUSER
from comuna_devstack.stack import KEYCLOAK_PORT_ENV, SERVICES, Stack, StackConfig, http_port_env, staff_passwords_file
from tests.support.stacks import shared_keycloak

pytestmark = pytest.mark.timeout(900)

SINGLE, BATCHED, BATCH_SIZE = 120, 1_500, 500
SHAPE = ledger.Shape(commitments=12, communes=8)


@pytest.fixture(scope="module")
def stack(embedded_keycloak: EmbeddedKeycloak) -> Iterator[Stack]:
    # `comuna-stack-`: a prefix the dev-stack hygiene tests know is another module's scratch.
    state_dir = Path(tempfile.mkdtemp(prefix="comuna-stack-ledger-", dir="/tmp"))
    state_dir.chmod(0o755)
    config = StackConfig(
        state_dir=state_dir,
        pg_port=free_port(),
        nats_port=free_port(),
        treasury_port=free_port(),
        http_ports={s: free_port() for s in SERVICES},
        grpc_ports={s: free_port() for s in SERVICES},
        metrics_ports={s: free_port() for s in SERVICES},
        fast=True,
        log_level="WARNING",
        **shared_keycloak(embedded_keycloak, "bench-ledger"),
    )
    try:
        with Stack(config) as running:
            yield running
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


def test_the_ledger_bench_reports_its_figures_and_leaves_a_sound_ledger(stack: Stack) -> None:
    config = stack.config
    report = ledger.run_bench(
        {s: config.http_url(s) for s in SERVICES},
        config.token_url,
        stack.staff_passwords(),
        single=SINGLE,
        batched=BATCHED,
        concurrency=8,
        batch_size=BATCH_SIZE,
        admin_url=f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{config.pg_port}/postgres",
        state_dir=config.state_dir,
        metrics_url=config.metrics_url("funding"),
        shape=SHAPE,
    )
    assert report["ok"] is True, report["correctness"]

    single = report["api"]["single"]
    assert single["statuses"] == {"201": SINGLE} and single["errors"] == []
    assert single["transfers"] == SINGLE and single["transfers_per_second"] > 0
    assert 0 < single["p50_ms"] <= single["p99_ms"]
    assert single["handler_mean_ms"] > 0
    # CPU read from /proc: the funding process (its pid file) and PostgreSQL both did work.
    assert single["cpu"]["cpu_ms_per_transfer"]["funding"] > 0
    assert single["cpu"]["cpu_ms_per_transfer"]["postgres"] > 0
    assert single["cpu"]["per_second_with_a_whole_core"]["funding"] > 0

    batched = report["api"]["batched"]
    assert batched["statuses"] == {"200": BATCHED // BATCH_SIZE}
    assert batched["transfers"] == BATCHED and batched["transfers_per_second"] > 0
    largest = report["api"]["largest_batch"]
    assert largest["transfers"] == ledger.MAX_BATCH
    # Whether the largest batch the API names fits under the service's body limit is reported.
    assert largest["status"] in (200, 413)

    sql = report["plain_sql"]
    for name, count in [("single_plain", SINGLE), ("single_journaled", SINGLE)]:
        assert sql[name]["accepted"] == count and sql[name]["transactions"] == count, name
        assert sql[name]["per_second"] > 0, name
    for name in ("batched_plain", "batched_journaled"):
        assert sql[name]["accepted"] == BATCHED and sql[name]["transactions"] == BATCHED // BATCH_SIZE, name
    assert sql["balanced"] is True

    assert report["targets"] == {"single_per_second": 2_500, "batched_per_second": 20_000}
    assert set(report["meets_targets"]) == {"single_per_second", "batched_per_second"}
    assert report["api_to_plain_sql"]["single"] > 0 and report["api_to_plain_sql"]["batched"] > 0

    checks = report["correctness"]
    created = SHAPE.commitments + SINGLE + BATCHED + (ledger.MAX_BATCH if largest["status"] == 200 else 0)
    assert (checks["transfers_created"], checks["transfers_expected"]) == (created, created)
    accounts = 1 + SHAPE.commitments + SHAPE.communes
    assert checks["journal_entries_added"] == checks["journal_entries_expected"] == accounts + created
    assert all(value for value in checks.values() if isinstance(value, bool)), checks
    assert report["verify"]["ok"] is True and report["verify"]["mismatches"] == 0
    assert report["verify"]["seconds"] > 0
    assert report["load_average"] and report["cpu_count"]


def _comuna_dev(state: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "comuna-dev"), "--state-dir", str(state), "bench", "ledger", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_bad_sizes_are_refused_in_one_line(tmp_path: Path) -> None:
    for args in (["--batch-size", "4001"], ["--batch-size", "0"], ["--single", "0"], ["--concurrency", "0"]):
        done = _comuna_dev(tmp_path, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip().splitlines() == [
            "comuna-dev bench ledger: --single, --batched and --concurrency must be at least 1, "
            "--batch-size from 1 to 4000"
        ]


def test_against_a_stopped_platform_it_says_to_start_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    path = staff_passwords_file(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"operator": "x"}))
    # Every port the bench talks to is free: nothing listens there.
    env = {**os.environ, KEYCLOAK_PORT_ENV: str(free_port())}
    env.update({http_port_env(service): str(free_port()) for service in SERVICES})
    done = _comuna_dev(state, "--single", "10", "--batched", "10", env=env)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot reach the platform" in done.stderr and "start it with `make run`" in done.stderr
    assert json.loads(done.stdout)["ok"] is False
