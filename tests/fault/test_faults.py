"""Fault injection on the whole cycle, on real processes: crashes, NATS pauses and restarts, a
PostgreSQL outage and lost acknowledgements, each landing in the middle of the flow.

After each fault the same invariants must hold (see `Faults.check`): every commune exactly one
allocation and one project, every verified milestone exactly one tranche, the ledger balanced,
every ballot that was accepted counted once, every consumer drained, and `/readyz` 200 again;
while the fault lasted, `/readyz` must have told the truth.

Mid-flow is made deterministic with database locks rather than timing: a `LOCK TABLE
inbox_events` freezes a service's consumers inside their transaction (after some events were
applied), a row lock freezes `:certify` inside its transaction, and then the process is killed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter

import httpx

from comuna_devstack.stack import SERVICES
from tests.fault import probes
from tests.fault.conftest import CONSUMING_SERVICES, Faults
from tests.fault.cycle import Cycle

# What a PostgreSQL outage lasts: longer than any bounded retry schedule should be (transient
# failures must be retried without limit), short enough for `make test`.
PG_OUTAGE_SECONDS = 40.0
NATS_PAUSE_SECONDS = 3.0
# Public reads that need the database, one per service: during an outage each must be 503.
DB_READS = {
    "identity": "/v1/territories",
    "consultations": "/v1/consultations",
    "funding": "/v1/allocations",
    "projects": "/v1/projects",
}


def _count(faults: Faults, cycle: Cycle, service: str) -> int:
    table = {"funding": "allocations", "projects": "projects"}[service]
    # Safe: `table` comes from the literal mapping above.
    sql = f"SELECT count(*) FROM {table} WHERE consultation_id = $1"
    return int(probes.db_value(faults.stack, service, sql, uuid.UUID(cycle.consultation_id)))


def _wait_mid_flow(faults: Faults, cycle: Cycle, service: str) -> int:
    """Wait until `service` has applied a third of the commune events of this cycle."""
    target = max(1, len(cycle.communes) // 3)
    return probes.poll_until(
        f"{service} to apply {target} events of the cycle",
        lambda: (n := _count(faults, cycle, service)) >= target and n,
        timeout=60,
        interval=0.02,
    )


def _kill_while_consuming(faults: Faults, cycle: Cycle, service: str) -> None:
    """kill -9 `service` with some events applied, one handler inside its transaction and the
    rest of its fetched batch unacknowledged; then start it again."""
    _wait_mid_flow(faults, cycle, service)
    with probes.freeze_consumers(faults.stack, service):
        applied = _count(faults, cycle, service)
        expected = len(cycle.communes)
        faults.expect(
            applied < expected, f"the kill of {service} came too late: {applied} of {expected} already applied"
        )
        if applied < expected:
            probes.poll_until(
                f"a {service} handler to wait inside its transaction",
                lambda: probes.lock_waiters(faults.stack, service) >= 1,
                timeout=15,
            )
        faults.stack.kill_service(service)
    print(f"killed {service} with {applied} of {expected} applied")
    faults.stack.start_service(service)


def test_a_clean_cycle_delivers_each_event_once(faults: Faults) -> None:
    mark = faults.proxy.ack_mark()
    cycle = faults.new_cycle()
    cycle.run_until_certified()
    cycle.finish()
    faults.wait_drained()
    acks = faults.proxy.acks(mark)
    redelivered = Counter(f"{a.stream}/{a.consumer}" for a in acks if a.delivered > 1)
    faults.expect(
        not redelivered,
        f"{sum(redelivered.values())} of {len(acks)} deliveries in a clean run were redeliveries: {dict(redelivered)}",
    )
    faults.check(cycle)


def test_identity_killed_during_voting(faults: Faults) -> None:
    cycle = faults.new_cycle()
    cycle.open()
    ballots = cycle.ballots()
    errors: list[BaseException] = []

    def vote() -> None:
        try:
            cycle.vote(ballots)
        except BaseException as exc:
            errors.append(exc)

    voter = threading.Thread(target=vote, name="voter")
    voter.start()
    probes.poll_until("a third of the ballots", lambda: sum(cycle.cast.values()) >= len(ballots) // 3, timeout=60)
    faults.stack.kill_service("identity")
    cast_at_kill = sum(cycle.cast.values())
    # Ballots ask identity nothing (the roll is consultations' own copy and the officer's
    # access is cached), so voting goes on while identity is down.
    probes.poll_until(
        "ballots accepted while identity is down",
        lambda: sum(cycle.cast.values()) >= cast_at_kill + 10 or not voter.is_alive(),
        timeout=30,
    )
    accepted_while_down = sum(cycle.cast.values()) - cast_at_kill
    faults.stack.start_service("identity")
    voter.join(timeout=120)
    assert not errors, f"voting failed: {errors[0]}"
    faults.expect(accepted_while_down > 0, "no ballot was accepted while identity was down")
    faults.expect(
        set(cycle.refusals) <= {503},
        f"while identity was down ballots were answered {dict(cycle.refusals)}, expected only 201 (or 503)",
    )
    cycle.close()
    cycle.certify()
    cycle.finish()
    faults.check(cycle)


def test_consultations_killed_inside_and_just_after_certify(faults: Faults) -> None:
    stack, cycle = faults.stack, faults.new_cycle()
    cycle.open()
    cycle.vote(cycle.ballots())
    cycle.close()
    responses: list[httpx.Response | None] = []
    lock = "SELECT 1 FROM consultations WHERE id = $1 FOR UPDATE"
    with probes.hold_lock(stack, "consultations", lock, uuid.UUID(cycle.consultation_id)):
        certifier = threading.Thread(target=lambda: responses.append(cycle.certify_request()), name="certify")
        certifier.start()
        probes.poll_until(
            ":certify to wait inside its transaction",
            lambda: probes.lock_waiters(stack, "consultations") >= 1,
            timeout=15,
        )
        stack.kill_service("consultations")
    certifier.join(timeout=30)
    stack.start_service("consultations")
    faults.expect(responses == [None], f"the killed :certify answered {responses}")
    faults.expect(
        cycle.status() == "open", f"a :certify killed inside its transaction left the consultation {cycle.status()!r}"
    )

    published_before = probes.stream_last_seq(stack, "CONSULTATIONS")
    cycle.certify()
    stack.kill_service("consultations")  # just after: the outbox relay is still publishing the results
    published = probes.stream_last_seq(stack, "CONSULTATIONS") - published_before
    print(f"killed consultations just after :certify with {published} of {len(cycle.communes) + 1} events published")
    stack.start_service("consultations")
    cycle.finish()
    faults.check(cycle)


def test_funding_killed_while_consuming_certified_results(faults: Faults) -> None:
    cycle = faults.new_cycle()
    cycle.run_until_certified()
    _kill_while_consuming(faults, cycle, "funding")
    cycle.finish()
    faults.check(cycle)


def test_projects_killed_while_consuming_allocations(faults: Faults) -> None:
    cycle = faults.new_cycle()
    cycle.run_until_certified()
    _kill_while_consuming(faults, cycle, "projects")
    cycle.finish()
    faults.check(cycle)


def test_acknowledgements_lost_after_the_handlers_committed(faults: Faults) -> None:
    """The handler commits, its ack never reaches NATS: the consumer must survive the failed ack,
    and the redelivery must find the inbox row and have no second effect."""
    lost = 3
    mark = faults.proxy.ack_mark()
    faults.proxy.drop_acks("CONSULTATIONS", lost)
    cycle = faults.new_cycle()
    cycle.run_until_certified()
    cycle.finish()
    faults.wait_drained()
    acks = faults.proxy.acks(mark)
    dropped = [a for a in acks if a.dropped]
    faults.expect(len(dropped) == lost, f"{len(dropped)} acknowledgements were dropped, expected {lost}")
    for ack in dropped:
        later = [
            a
            for a in acks
            if (a.stream, a.consumer, a.stream_seq) == (ack.stream, ack.consumer, ack.stream_seq) and not a.dropped
        ]
        faults.expect(
            any(a.delivered > ack.delivered for a in later),
            f"{ack.stream} message {ack.stream_seq}: its ack (delivery {ack.delivered}) was lost and it was never"
            f" acknowledged after a redelivery (later acks: {[(a.delivered, a.kind) for a in later]})",
        )
    faults.check(cycle)


def test_nats_paused_mid_flow(faults: Faults) -> None:
    stack, cycle = faults.stack, faults.new_cycle()
    cycle.run_until_certified()
    _wait_mid_flow(faults, cycle, "funding")
    assert stack.nats is not None and stack.nats.pid is not None
    os.kill(stack.nats.pid, signal.SIGSTOP)
    try:
        time.sleep(NATS_PAUSE_SECONDS)  # the fault itself: NATS frozen for a fixed time
    finally:
        os.kill(stack.nats.pid, signal.SIGCONT)
    cycle.finish()
    faults.check(cycle)


def test_nats_restarted_mid_flow(faults: Faults) -> None:
    stack, cycle = faults.stack, faults.new_cycle()
    cycle.run_until_certified()
    _wait_mid_flow(faults, cycle, "funding")
    assert stack.nats is not None
    stack.stop_nats()
    try:
        for service in CONSUMING_SERVICES:
            _expect_readyz(faults, service, 503, "while NATS is down")
    finally:
        stack.start_nats()  # same port, same JetStream store
    faults.wait_ready()
    cycle.finish()
    faults.check(cycle)


def test_postgres_down_longer_than_any_retry_schedule(faults: Faults) -> None:
    stack, cycle = faults.stack, faults.new_cycle()
    cycle.run_until_certified()
    _wait_mid_flow(faults, cycle, "funding")
    assert stack.postgres is not None
    stack.postgres.stop()
    started = time.monotonic()
    try:
        for service in SERVICES:
            _expect_readyz(faults, service, 503, "while PostgreSQL is down")
            _expect_unavailable(faults, service)
        time.sleep(max(0.0, PG_OUTAGE_SECONDS - (time.monotonic() - started)))  # the outage's fixed length
        for service in CONSUMING_SERVICES:
            status, body = probes.readyz(stack, service)
            faults.expect(
                status == 503, f"{service} /readyz answered {status} at the end of the database outage: {body}"
            )
    finally:
        stack.postgres.start()
    faults.wait_ready()
    cycle.finish()
    faults.check(cycle)


def _expect_readyz(faults: Faults, service: str, status: int, when: str, timeout: float = 15.0) -> None:
    """Poll `service`'s /readyz until it answers `status`; record a broken invariant if it never does."""
    seen: Counter[int] = Counter()

    def answered() -> bool:
        code = probes.readyz(faults.stack, service)[0]
        seen[code] += 1
        return code == status

    try:
        probes.poll_until(f"{service} /readyz {status}", answered, timeout=timeout, interval=0.1)
    except probes.Deadline:
        faults.expect(False, f"{service} /readyz never answered {status} {when} in {timeout:.0f}s: {dict(seen)}")


def _expect_unavailable(faults: Faults, service: str) -> None:
    """A read that needs the database answers 503 problem+json with Retry-After, not 500."""
    url = f"{faults.stack.config.http_url(service)}{DB_READS[service]}"
    try:
        response = httpx.get(url, timeout=10.0)
    except httpx.HTTPError as exc:
        faults.expect(False, f"GET {service}{DB_READS[service]} while PostgreSQL is down: {exc!r}")
        return
    problem = response.headers.get("content-type", "").startswith("application/problem+json")
    faults.expect(
        response.status_code == 503 and problem and "retry-after" in response.headers,
        f"GET {service}{DB_READS[service]} while PostgreSQL is down answered {response.status_code}"
        f" {response.headers.get('content-type')} Retry-After={response.headers.get('retry-after')}:"
        f" {response.text[:200]}",
    )
