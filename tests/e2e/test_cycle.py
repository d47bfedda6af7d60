"""End to end: the four services as separate processes on real PostgreSQL, NATS and gRPC.

Drives the whole thin cycle through the public REST APIs (the same code as `make demo`), then
redelivers every event of every stream and proves none has a second effect.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
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
from comuna_devstack.record_check import dev_witness, wait_for_final_checkpoint
from comuna_devstack.residents import RealmAdmin
from comuna_devstack.stack import DEV_WITNESS_NAME, SERVICES, Stack, StackConfig, console_script
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
        treasury_port=free_port(),
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
        treasury_target=f"127.0.0.1:{stack.config.treasury_port}",
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
    # Co-funded: the national fund pays every winner (rank 1) up to the grant; the state's
    # treasury and the municipality's pledge add theirs; one project per allocation.
    national = [a for a in summary["allocations"] if a["source"] == "national"]
    assert len(national) == 3 and all(0 < a["amount_minor"] <= GRANT_MINOR for a in national)
    assert {a["source"] for a in summary["allocations"]} == {"national", "estado_demo", "municipio_demo"}
    assert len(summary["projects"]) == len(summary["allocations"])
    assert summary["disbursed_minor"] == sum(a["amount_minor"] for a in summary["allocations"])
    # Every project executed under oversight: reported, verified by someone else, paid, every unit
    # spent with a receipt, completed; a resident's observation answered in public and closed.
    assert {p["status"] for p in summary["projects"]} == {"completed"}
    assert summary["spent_minor"] == summary["disbursed_minor"]
    assert summary["execution"]["evidence_files"] == 2 * len(summary["projects"])
    assert summary["execution"]["oversight_report"] == "closed"
    # The public's view: aggregates and the OC4IDS export agree with the ledger's payments.
    open_data = summary["open_data"]
    assert open_data["by_status"] == {"completed": len(summary["projects"])}
    assert open_data["oc4ids_projects"] == len(summary["projects"])
    assert [m["spent_minor"] for m in open_data["money"]] == [summary["spent_minor"]]
    assert open_data["oc4ids_transactions"] == open_data["oc4ids_payments_met"] >= len(summary["projects"])
    assert summary["ledger_balanced"] and summary["ledger_verified"] is True
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


# --- the public record, checked as an outsider would, then tampered with ---------------------
# These come last: each alters the database behind the service's back (then puts it back), and
# the fork cannot be undone.


def _verify(stack: Stack, consultation_id: str, *extra: str) -> tuple[int, dict[str, Any]]:
    """`comuna-verify consultation` on the consultation's public URL, once the checkpoint
    covers everything appended."""
    base = f"{stack.config.http_url('consultations')}/v1/consultations/{consultation_id}"
    wait_for_checkpoint(stack, consultation_id)
    done = subprocess.run(
        [console_script("comuna-verify"), "consultation", base, "--json", *extra],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"stderr": done.stderr}


def wait_for_checkpoint(stack: Stack, consultation_id: str) -> int:
    client = PlatformClient({"consultations": stack.config.http_url("consultations")}, token_url=stack.config.token_url)
    try:
        return wait_for_final_checkpoint(client, f"{client.urls['consultations']}/v1/consultations/{consultation_id}")
    finally:
        client.close()


def _sql(stack: Stack, statement: str, *args: Any) -> Any:
    """One statement in consultations' database as its owner (what an insider with the
    database's keys could do); the first value it returns, if any."""

    async def run() -> Any:
        conn = await asyncpg.connect(stack.database_url("consultations", owner=True).replace("+asyncpg", ""))
        try:
            return await conn.fetchval(statement, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def _recount(client: PlatformClient, consultation_id: str, commune_id: str, reason: str) -> None:
    client.call(
        "POST",
        "consultations",
        f"/v1/consultations/{consultation_id}/communes/{commune_id}:recount",
        as_user="operator",
        json={"reason": reason},
        expect=201,
    )


def test_the_demo_checked_its_record_and_a_witness_cosigned_it(stack: Stack, summary: dict[str, Any]) -> None:
    record = summary["record"]
    assert record["verified"] is True and record["communes"] == 3 and record["log_size"] > 0
    assert DEV_WITNESS_NAME in str(record["cosigners"])
    code, report = _verify(stack, summary["consultation"]["id"])
    assert code == 0 and report["mismatches"] == [], report


def test_a_ballot_row_altered_before_a_recount_is_named(
    stack: Stack, client: PlatformClient, summary: dict[str, Any]
) -> None:
    cid = summary["consultation"]["id"]
    # A table ballot moved from a commune's second-placed candidate to its first: the winner stays.
    results = client.call("GET", "consultations", f"/v1/consultations/{cid}/results")
    commune = next(c for c in results["communes"] if len(c["candidates"]) > 1 and c["candidates"][1]["votes"] > 0)
    first, second = (c["candidate_id"] for c in commune["candidates"][:2])
    ballot = _sql(
        stack,
        "SELECT id FROM ballots WHERE consultation_id = $1 AND candidate_id = $2 AND channel = 'table' LIMIT 1",
        uuid.UUID(cid),
        uuid.UUID(second),
    )
    _sql(stack, "UPDATE ballots SET candidate_id = $1 WHERE id = $2", uuid.UUID(first), ballot)
    try:
        _recount(client, cid, commune["commune_id"], "a recount over a tampered ballot row")
        code, report = _verify(stack, cid)
        assert code == 1, report
        said = " | ".join(report["mismatches"])
        assert commune["commune_code"] in said and "remainder" in said, said
    finally:
        _sql(stack, "UPDATE ballots SET candidate_id = $1 WHERE id = $2", uuid.UUID(second), ballot)
        _recount(client, cid, commune["commune_id"], "the ballot row put back")
    assert _verify(stack, cid)[0] == 0


def test_a_tally_sheet_altered_before_a_recount_is_named(
    stack: Stack, client: PlatformClient, summary: dict[str, Any]
) -> None:
    cid = summary["consultation"]["id"]
    sheet, commune_id, code_of_table = (
        _sql(
            stack,
            f"SELECT {column} FROM tally_sheets WHERE consultation_id = $1 AND confirmed_at IS NOT NULL "
            "ORDER BY id LIMIT 1",
            uuid.UUID(cid),
        )
        for column in ("id", "commune_id", "(SELECT code FROM voting_tables t WHERE t.id = table_id)")
    )
    candidate = _sql(
        stack, "SELECT candidate_id FROM tally_sheet_votes WHERE sheet_id = $1 ORDER BY candidate_id LIMIT 1", sheet
    )
    change = "UPDATE tally_sheet_votes SET votes = votes + $1 WHERE sheet_id = $2 AND candidate_id = $3"
    _sql(stack, change, 1, sheet, candidate)
    try:
        _recount(client, cid, str(commune_id), "a recount over a tampered tally sheet")
        code, report = _verify(stack, cid)
        assert code == 1, report
        said = " | ".join(report["mismatches"])
        assert f"table {code_of_table}" in said and "tally sheet" in said, said
    finally:
        _sql(stack, change, -1, sheet, candidate)
        _recount(client, cid, str(commune_id), "the tally sheet put back")
    assert _verify(stack, cid)[0] == 0


def test_an_altered_bulletin_is_named(stack: Stack, summary: dict[str, Any]) -> None:
    cid = summary["consultation"]["id"]
    index = _sql(stack, "SELECT max(entry_index) FROM record_bulletins WHERE consultation_id = $1", uuid.UUID(cid))
    original = _sql(
        stack,
        "SELECT note FROM record_bulletins WHERE consultation_id = $1 AND entry_index = $2",
        uuid.UUID(cid),
        index,
    )
    forged = original.replace("\nparticipations ", "\nparticipations 1", 1)
    store = "UPDATE record_bulletins SET note = $1 WHERE consultation_id = $2 AND entry_index = $3"
    _sql(stack, store, forged, uuid.UUID(cid), index)
    try:
        code, report = _verify(stack, cid)
        assert code == 1, report
        assert any(f"bulletin {index}" in m for m in report["mismatches"]), report["mismatches"]
    finally:
        _sql(stack, store, original, uuid.UUID(cid), index)
    assert _verify(stack, cid)[0] == 0


def test_an_altered_checkpoint_is_named(stack: Stack, summary: dict[str, Any]) -> None:
    cid = summary["consultation"]["id"]
    size = _sql(stack, "SELECT max(size) FROM tlog_checkpoints WHERE origin LIKE '%' || $1", cid)
    read = "SELECT note FROM tlog_checkpoints WHERE origin LIKE '%' || $1 AND size = $2"
    original = _sql(stack, read, cid, size)
    lines = original.split("\n")
    lines[2] = base64.b64encode(bytes(32)).decode()  # another root, the same signature
    store = "UPDATE tlog_checkpoints SET note = $1 WHERE origin LIKE '%' || $2 AND size = $3"
    _sql(stack, store, "\n".join(lines), cid, size)
    try:
        code, report = _verify(stack, cid)
        assert code == 1, report
        assert any("checkpoint" in m and "signature" in m for m in report["mismatches"]), report["mismatches"]
    finally:
        _sql(stack, store, original, cid, size)
    assert _verify(stack, cid)[0] == 0


def _witness_round(stack: Stack, consultation_id: str) -> subprocess.CompletedProcess[str]:
    """One `comuna-witness watch --once` of the demo's witness (its state from the demo on)."""
    witness = dev_witness(stack.config.state_dir)
    base = f"{stack.config.http_url('consultations')}/v1/consultations/{consultation_id}"
    log_keys = httpx.get(f"{base}/record/keys", timeout=10).json()["verifier_keys"]
    command = [console_script("comuna-witness"), "watch", base, "--key", str(witness.key_file), "--once"]
    command += ["--state", str(stack.config.state_dir / "record" / "witness"), *(f"--log-key={k}" for k in log_keys)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_a_fork_is_named_by_the_verifier_and_refused_by_the_witness(stack: Stack, summary: dict[str, Any]) -> None:
    cid = summary["consultation"]["id"]
    state = stack.config.state_dir / "record" / "verify"
    assert _verify(stack, cid, "--state", str(state))[0] == 0
    cosigned = _witness_round(stack, cid)
    assert cosigned.returncode == 0, cosigned  # an honest log grew since the demo: consistent
    # The insider rewrites one entry and has the log re-hashed and re-signed at the same size: a
    # second root for a size the verifier and the witness already saw.
    origin = _sql(stack, "SELECT origin FROM tlog_logs WHERE origin LIKE '%' || $1", cid)
    size = _sql(stack, "SELECT size FROM tlog_logs WHERE origin = $1", origin)
    _sql(
        stack,
        "UPDATE tlog_entries SET data = data || '\\x0a'::bytea WHERE origin = $1 AND idx = $2",
        origin,
        size - 1,
    )
    for statement in (
        "DELETE FROM tlog_tiles WHERE origin = $1",
        "DELETE FROM tlog_cosignatures WHERE origin = $1",
        "DELETE FROM tlog_checkpoints WHERE origin = $1",
        "UPDATE tlog_logs SET integrated_size = 0 WHERE origin = $1",
    ):
        _sql(stack, statement, origin)
    assert wait_for_checkpoint(stack, cid) == size  # the service's checkpointer signed the new root

    code, report = _verify(stack, cid, "--state", str(state))
    assert code == 1, report
    assert any("fork" in m for m in report["mismatches"]), report["mismatches"]
    refused = _witness_round(stack, cid)
    assert refused.returncode == 1 and "fork" in (refused.stdout + refused.stderr), refused
