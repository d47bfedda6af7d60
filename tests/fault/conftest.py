"""One real stack for every fault scenario: PostgreSQL, NATS and the four services as separate
processes on free ports, with funding's and projects' NATS connections through `NatsProxy`.

Scenarios share the stack (starting it costs more than most scenarios) and each runs its own
consultation over the same territory. A scenario may leave things broken when it fails (a
consumer that died, NATS paused), so after a failure every service is restarted and PostgreSQL
and NATS are brought back: the next scenario starts healthy and fails only for its own fault.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import signal
import tempfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from comuna_devstack.client import PlatformClient
from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.ports import free_port
from comuna_devstack.stack import SERVICES, Stack, StackConfig
from tests.fault import probes
from tests.fault.cycle import OFFICER, OVERSEER, Commune, Cycle, seed_territory
from tests.fault.invariants import cycle_problems
from tests.fault.nats_proxy import NatsProxy
from tests.support.stacks import shared_keycloak

# Enough that every fault lands with part of the cycle done and part still to do.
COMMUNES = 40
VOTERS_PER_COMMUNE = 2
GRANT_MINOR = 1_000_000
CONSUMING_SERVICES = ("funding", "projects")
_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="package")
def proxy() -> Iterator[NatsProxy]:
    running = NatsProxy(upstream_port=free_port())
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="package")
def stack(proxy: NatsProxy, embedded_keycloak: EmbeddedKeycloak) -> Iterator[Stack]:
    state_dir = Path(tempfile.mkdtemp(prefix="comuna-fault-", dir="/tmp"))
    state_dir.chmod(0o755)
    config = StackConfig(
        state_dir=state_dir,
        pg_port=free_port(),
        nats_port=proxy.upstream_port,
        treasury_port=free_port(),
        http_ports={s: free_port() for s in SERVICES},
        grpc_ports={s: free_port() for s in SERVICES},
        fast=True,
        log_level="WARNING",
        extra_env={
            **{f"COMUNA_{s.upper()}_NATS_URL": proxy.url for s in CONSUMING_SERVICES},
            # The cycle casts its ballots one at a time: each is alone in its batch, and the
            # default hold for company (1 s, secrecy) would make voting needlessly slow.
            "COMUNA_CONSULTATIONS_BALLOT_BATCH_MAX_HOLD_SECONDS": "0.02",
            # Identity's answers (who the officer is, where the commune sits) expire within a
            # second, so an identity outage always finds them expired: ballots then go on only
            # through the caches' stale-if-error, which is what the scenarios test, however long
            # voting took to get there.
            "COMUNA_CONSULTATIONS_ACCESS_CACHE_SECONDS": "1",
        },
        demo_territory=False,
        **shared_keycloak(embedded_keycloak, "fault"),
    )
    if "metrics_ports" in {f.name for f in dataclasses.fields(StackConfig)}:
        # Where /metrics has a port of its own: free ones too, never the fixed dev ports.
        # (Spelled as a dict so this also type-checks where StackConfig has no such field.)
        metrics: dict[str, Any] = {"metrics_ports": {s: free_port() for s in SERVICES}}
        config = dataclasses.replace(config, **metrics)
    try:
        with Stack(config) as running:
            yield running
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="package")
def client(stack: Stack) -> Iterator[PlatformClient]:
    client = PlatformClient(
        {s: stack.config.http_url(s) for s in SERVICES}, token_url=stack.config.token_url, timeout=15.0
    )
    passwords = stack.staff_passwords()
    for user in ("operator", "registrar", "auditor", OFFICER, OVERSEER):
        client.login(user, passwords[user])
    yield client
    client.close()


@pytest.fixture(scope="package")
def communes(client: PlatformClient) -> list[Commune]:
    return seed_territory(client, communes=COMMUNES, voters_per_commune=VOTERS_PER_COMMUNE)


@dataclass
class Faults:
    """What a scenario works with: the stack, the proxy, a fresh cycle, and what it observed."""

    stack: Stack
    proxy: NatsProxy
    client: PlatformClient
    communes: list[Commune]
    # Broken invariants seen during the fault (e.g. /readyz said 200 while the database was down).
    observed: list[str] = field(default_factory=list)

    def new_cycle(self) -> Cycle:
        return Cycle(self.client, self.communes, diagnose=self.diagnose)

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.observed.append(problem)

    def diagnose(self) -> str:
        """Why the event flow is stuck, as far as JetStream and /readyz tell."""
        lines = []
        try:
            backlogs = probes.consumer_backlogs(self.stack)
        except Exception as exc:
            return f"JetStream did not answer: {exc!r}"
        for backlog in backlogs:
            if backlog.drained:
                continue
            owner = backlog.consumer.split("-")[0]
            status, body = probes.readyz(self.stack, owner)
            verdict = "readyz did NOT tell the truth" if status == 200 else "readyz told the truth"
            lines.append(f"  {backlog}; {owner} /readyz answered {status} ({verdict}) {body}")
        return "consumers with a backlog:\n" + "\n".join(lines) if lines else "every consumer is drained"

    def wait_drained(self, timeout: float = 120.0) -> None:
        """Every durable consumer has nothing pending and nothing unacknowledged, e.g. the batch a
        crashed consumer had fetched was redelivered and acknowledged."""

        def drained() -> bool:
            return all(b.drained for b in probes.consumer_backlogs(self.stack))

        try:
            probes.poll_until("every consumer to be drained", drained, timeout=timeout, interval=0.2)
        except probes.Deadline as exc:
            raise AssertionError(f"{exc}\n{self.diagnose()}") from None

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout: float = 60.0) -> None:
        def ready(service: str) -> bool:
            return probes.readyz(self.stack, service)[0] == 200

        for service in services:
            probes.poll_until(
                f"{service} /readyz to answer 200 again",
                functools.partial(ready, service),
                timeout=timeout,
                interval=0.1,
            )

    def check(self, cycle: Cycle) -> None:
        """After the fault: the flow drains, every invariant holds, /readyz is 200 again."""
        self.wait_drained()
        problems = self.observed + cycle_problems(cycle, grant_minor=GRANT_MINOR)
        for service in SERVICES:
            status, body = probes.readyz(self.stack, service)
            if status != 200:
                problems.append(f"{service} /readyz answers {status} after recovery: {body}")
        assert not problems, f"{len(problems)} broken invariants:\n" + "\n".join(f"- {p}" for p in problems)


@pytest.fixture
def faults(
    request: pytest.FixtureRequest, stack: Stack, proxy: NatsProxy, client: PlatformClient, communes: list[Commune]
) -> Iterator[Faults]:
    yield Faults(stack, proxy, client, communes)
    _restore(stack, proxy, restart_services=request.node.stash.get(_FAILED, False))


def _restore(stack: Stack, proxy: NatsProxy, *, restart_services: bool) -> None:
    """Undo whatever a scenario left behind, so the next one starts on a healthy stack."""
    for stream in ("CONSULTATIONS", "FUNDING", "PROJECTS"):
        proxy.drop_acks(stream, 0)
    if stack.nats is not None:
        if stack.nats.pid is not None:
            os.kill(stack.nats.pid, signal.SIGCONT)
        else:
            stack.start_nats()
    if stack.postgres is not None:
        stack.postgres.start()  # adopts a running server, starts a stopped one
    for service in SERVICES:
        missing = service not in stack.processes.children
        if restart_services or missing:
            if not missing:
                stack.kill_service(service)
            stack.start_service(service)
