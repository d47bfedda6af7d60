"""End to end: the four services as separate processes on real PostgreSQL, NATS and gRPC.

Drives the whole thin cycle through the public REST APIs (the same code as `make demo`), then
redelivers every event of every stream and proves none has a second effect.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import nats
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from comuna_devstack.client import PlatformClient, items
from comuna_devstack.demo import run_demo
from comuna_devstack.keycloak import EmbeddedKeycloak
from comuna_devstack.ports import free_port
from comuna_devstack.record_check import dev_witness
from comuna_devstack.residents import RealmAdmin
from comuna_devstack.stack import SERVICES, Stack, StackConfig
from tests.support.stacks import shared_keycloak

GRANT_MINOR = 1_000_000


@pytest.fixture(scope="module")
def stack(embedded_keycloak: EmbeddedKeycloak) -> Iterator[Stack]:
    state_dir = Path(tempfile.mkdtemp(prefix="comuna-e2e-", dir="/tmp"))
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
        **shared_keycloak(embedded_keycloak, "e2e"),
    )
    try:
        with Stack(config) as running:
            yield running
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[PlatformClient]:
    client = PlatformClient({s: stack.config.http_url(s) for s in SERVICES}, token_url=stack.config.token_url)
    yield client
    client.close()


IDENTITY_CALLS = "comuna_grpc_requests_total"


def identity_grpc_calls(stack: Stack) -> dict[str, float]:
    """Identity's gRPC calls served so far, per method (its /metrics, on the internal port)."""
    text = httpx.get(f"http://127.0.0.1:{stack.config.metrics_ports['identity']}/metrics", timeout=5).text
    calls: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(IDENTITY_CALLS + "{"):
            labels, value = line.rsplit(" ", 1)
            method = labels.split('method="', 1)[1].split('"', 1)[0]
            calls[method] = calls.get(method, 0.0) + float(value)
    return calls


@pytest.fixture(scope="module")
def ballot_phase_calls() -> dict[str, dict[str, float]]:
    return {}


@pytest.fixture(scope="module")
def summary(stack: Stack, client: PlatformClient, ballot_phase_calls: dict[str, dict[str, float]]) -> dict[str, Any]:
    return run_demo(
        client,
        stack.staff_passwords(),
        keycloak=RealmAdmin.for_stack(stack.config),
        before_ballots=lambda: ballot_phase_calls.setdefault("before", identity_grpc_calls(stack)),
        after_ballots=lambda: ballot_phase_calls.setdefault("after", identity_grpc_calls(stack)),
        record_state=stack.config.state_dir / "record",
        witness=dev_witness(stack.config.state_dir),
    )


def test_every_service_is_healthy_over_grpc_and_has_its_stream(stack: Stack) -> None:
    for service in SERVICES:
        with grpc.insecure_channel(f"127.0.0.1:{stack.config.grpc_ports[service]}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # Server reflection lists the service's own API next to health and reflection.
            listed = next(
                iter(
                    reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
                    )
                )
            )
            names = {s.name for s in listed.list_services_response.service}
            assert f"comuna.{service}.v1.{service.capitalize()}Service" in names
            assert "grpc.health.v1.Health" in names

    async def stream_names() -> set[str]:
        nc = await nats.connect(stack.nats_url, **stack.nats_options())
        try:
            return {info.config.name for info in await nc.jetstream().streams_info()}
        finally:
            await nc.close()

    assert {s.upper() for s in SERVICES} <= asyncio.run(stream_names())


def test_the_whole_cycle(summary: dict[str, Any]) -> None:
    assert summary["communes"] == 3
    assert len(summary["winners"]) == 3
    assert [a["amount_minor"] for a in summary["allocations"]] == [GRANT_MINOR] * 3
    assert len(summary["projects"]) == 3
    assert summary["disbursed_minor"] == 3 * GRANT_MINOR
    assert summary["ledger_balanced"]
    assert summary["consultation"]["double_votes_refused"] > 0
    assert summary["consultation"]["ineligible_refused"] > 0
    assert summary["consultation"]["roll"]["entries"] > 0 and len(summary["consultation"]["roll"]["digest"]) == 64


def test_residents_vote_online_once_whatever_the_channel(summary: dict[str, Any]) -> None:
    online = summary["consultation"]["online"]
    # Each signed up (an account of their own, linked by the registrar before the freeze: a new realm)...
    assert online["voters"] >= 2 and online["linked_now"] == online["voters"] and online["already_linked"] == 0
    # ...and cast one online ballot with their own token, its receipt recorded; counted in the result.
    assert online["ballots_accepted"] == online["receipts_recorded"] == online["voters"]
    # A second online ballot: 409 already_voted; a table after voting online: refused.
    assert online["double_votes_refused"] == 1
    assert online["refused_at_table_after_online"] == 1


def test_ballots_are_matched_against_the_streamed_roll_without_asking_identity(
    summary: dict[str, Any], ballot_phase_calls: dict[str, dict[str, float]]
) -> None:
    before, after = ballot_phase_calls["before"], ballot_phase_calls["after"]
    # The roll came from identity over the stream before voting started...
    assert before.get("/comuna.identity.v1.IdentityService/StreamRoll", 0) >= 1
    # ...and while every ballot was cast, identity was asked nothing about voters: at most
    # who the officer and each resident voting online are (ResolvePrincipal, cached per person)
    # and where a table's commune sits (GetTerritory, cached 30 s per commune), never per ballot.
    during = {m: after.get(m, 0) - before.get(m, 0) for m in after if after.get(m, 0) != before.get(m, 0)}
    ballots = summary["consultation"]["ballots_accepted"] + summary["consultation"]["ineligible_refused"]
    online = summary["consultation"]["online"]["voters"]
    principal, territory = (f"/comuna.identity.v1.IdentityService/{m}" for m in ("ResolvePrincipal", "GetTerritory"))
    assert set(during) <= {principal, territory}, during
    assert during.get(principal, 0) <= 3 + online and during.get(territory, 0) <= 12 < ballots, (during, ballots)


def _snapshot(client: PlatformClient, consultation_id: str) -> dict[str, Any]:
    allocations = items(client.call("GET", "funding", "/v1/allocations", params={"consultation_id": consultation_id}))
    projects = items(client.call("GET", "projects", "/v1/projects", params={"consultation_id": consultation_id}))
    return {
        "allocations": sorted(a["id"] for a in allocations),
        "projects": sorted(p["id"] for p in projects),
        "milestones": sorted(
            (m["id"], m["status"])
            for p in projects
            for m in client.call("GET", "projects", f"/v1/projects/{p['id']}")["milestones"]
        ),
        "ledger": client.call("GET", "funding", "/v1/ledger/totals"),
    }


async def _redeliver_everything(stack: Stack) -> int:
    """Republish every stored event under a new Nats-Msg-Id (so the server does not drop it as a
    duplicate) but the same CloudEvents id: to every consumer it is a redelivery. The read-only
    user reads the streams; each event is republished as its producer (nobody else may)."""
    nc = await nats.connect(stack.nats_url, **stack.nats_options())
    js = nc.jetstream()
    count = 0
    try:
        for service in ("consultations", "funding", "projects"):
            producer = await nats.connect(stack.nats_url, **stack.nats_options(service))
            try:
                info = await js.stream_info(service.upper())
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    stored = await js.get_msg(service.upper(), seq)
                    headers = dict(stored.headers or {})
                    headers["Nats-Msg-Id"] = f"redelivery-{headers['ce-id']}"
                    await producer.jetstream().publish(stored.subject, stored.data or b"", headers=headers)
                    count += 1
            finally:
                await producer.close()
    finally:
        await nc.close()
    return count


async def _consumers_drained(stack: Stack) -> bool:
    nc = await nats.connect(stack.nats_url, **stack.nats_options())
    js = nc.jetstream()
    try:
        for service in SERVICES:
            for consumer in await js.consumers_info(service.upper()):
                if consumer.num_pending or consumer.num_ack_pending:
                    return False
        return True
    finally:
        await nc.close()


def test_redelivered_events_have_no_second_effect(
    stack: Stack, client: PlatformClient, summary: dict[str, Any]
) -> None:
    consultation_id = summary["consultation"]["id"]
    before = _snapshot(client, consultation_id)
    assert asyncio.run(_redeliver_everything(stack)) > 0
    client.wait_for("consumers to process the redelivered events", lambda: asyncio.run(_consumers_drained(stack)))
    # Drained means acknowledged, and a consumer acknowledges only after its inbox transaction.
    assert _snapshot(client, consultation_id) == before


def test_metrics_only_on_the_internal_port_and_the_edges_hold(stack: Stack, summary: dict[str, Any]) -> None:
    import httpx

    for service in SERVICES:
        rest = stack.config.http_url(service)
        scraped = httpx.get(stack.config.metrics_url(service), timeout=10)
        assert scraped.status_code == 200 and "comuna_http_requests_total" in scraped.text
        public = httpx.get(f"{rest}/metrics", timeout=10)
        assert public.status_code == 404 and public.headers["x-content-type-options"] == "nosniff"
        evil = httpx.get(f"{rest}/healthz", headers={"Host": "evil.example"}, timeout=10)
        assert evil.status_code == 400 and evil.json()["code"] == "host_not_allowed"
        huge = httpx.get(f"{rest}/healthz", headers={"Authorization": "Bearer " + "a" * 32 * 1024}, timeout=10)
        assert huge.status_code == 431 and huge.headers["content-type"] == "application/problem+json"
