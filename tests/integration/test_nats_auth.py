"""NATS with authentication, as the dev stack runs it: only the rightful service publishes.

A real nats-server with the dev stack's accounts (`comuna_devstack.nats_auth`), funding and
projects running as their own NATS users on real PostgreSQL. A genuine certified result from
consultations' user flows through both; the same event forged by an anonymous connection or
with another service's credentials is refused by the server and moves nothing. The read-only
user reads every stream with a stock nats-py client and can neither publish nor take over a
service's durable consumer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import NotFoundError

import comuna_funding
import comuna_projects
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.identity.v1 import events_pb2 as identity_events
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.nats_auth import READER, SERVICE_CONSUMERS, accounts_config
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.service import SPEC as FUNDING
from comuna_funding.settings import Settings as FundingSettings
from comuna_platform.auth.access import Resolution
from comuna_platform.events.registry import subject_of
from comuna_platform.events.streams import ensure_stream, service_inbox_prefix
from comuna_projects.service import SPEC as PROJECTS
from comuna_projects.settings import Settings as ProjectsSettings
from tests.funding.helpers import eventually, publish
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

pytestmark = pytest.mark.asyncio

CERTIFIED = "consultations.commune_result.certified"
USERS = ("identity", "consultations", "funding", "projects", READER)


@dataclass
class Platform:
    server: EmbeddedNats
    passwords: dict[str, str]
    funding: RunningService
    projects: RunningService

    async def connect(self, user: str, **options: Any) -> NATS:
        if user != READER:
            options.setdefault("inbox_prefix", service_inbox_prefix(user))
        return await nats.connect(self.server.url, user=user, password=self.passwords[user], **options)


@pytest_asyncio.fixture(scope="module")
async def platform(
    embedded_postgres: EmbeddedPostgres, issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    passwords = {user: uuid.uuid4().hex for user in USERS}
    store = tmp_path_factory.mktemp("nats-auth") / "jetstream"
    with EmbeddedNats(store, free_port(), accounts=accounts_config(passwords)) as server:
        # Consultations' stream exists before funding binds its consumer, as in the dev stack.
        producer = await nats.connect(
            server.url,
            user="consultations",
            password=passwords["consultations"],
            inbox_prefix=service_inbox_prefix("consultations"),
        )
        await ensure_stream(producer.jetstream(), "consultations")
        await producer.close()
        suffix = uuid.uuid4().hex[:8]
        funding_url = fresh_database(
            embedded_postgres, f"funding_auth_{suffix}", Path(comuna_funding.__file__).parent / "migrations"
        )
        projects_url = fresh_database(
            embedded_postgres, f"projects_auth_{suffix}", Path(comuna_projects.__file__).parent / "migrations"
        )
        async with (
            running_service(
                FUNDING,
                FundingSettings,
                database_url=funding_url,
                nats_url=server.url,
                issuer=issuer,
                nats_user="funding",
                nats_password=passwords["funding"],
            ) as funding,
            running_service(
                PROJECTS,
                ProjectsSettings,
                database_url=projects_url,
                nats_url=server.url,
                issuer=issuer,
                nats_user="projects",
                nats_password=passwords["projects"],
            ) as projects,
        ):
            yield Platform(server, passwords, funding, projects)


def certified(consultation_id: str) -> consultation_events.CommuneResultCertified:
    candidate = str(uuid.uuid4())
    return consultation_events.CommuneResultCertified(
        consultation_id=consultation_id,
        consultation_code="2040-Q1",
        result=consultation_events.CommuneResult(
            commune_id=str(uuid.uuid4()),
            commune_code="VE.09.09.C0001",
            commune_name="Inventada",
            ballots=10,
            winner_candidate_id=candidate,
            candidates=[consultation_events.CandidateResult(candidate_id=candidate, title="Plaza", votes=10, rank=1)],
        ),
    )


async def effects(platform: Platform, consultation_id: str) -> tuple[int, int]:
    """(allocations in funding, projects in projects) for a consultation."""
    allocations = await platform.funding.client.get("/v1/allocations", params={"consultation_id": consultation_id})
    projects = await platform.projects.client.get("/v1/projects", params={"consultation_id": consultation_id})
    assert allocations.status_code == 200 and projects.status_code == 200
    return len(allocations.json()["items"]), len(projects.json()["items"])


async def stored_events(platform: Platform) -> int:
    reader = await platform.connect(READER)
    try:
        return int((await reader.jetstream().stream_info("CONSULTATIONS")).state.messages)
    finally:
        await reader.close()


async def test_the_rightful_producer_moves_money(platform: Platform) -> None:
    consultation_id = str(uuid.uuid4())
    producer = await platform.connect("consultations")
    try:
        await publish(producer.jetstream(), CERTIFIED, certified(consultation_id), source="/comuna/consultations")
    finally:
        await producer.close()

    async def both() -> bool:
        return await effects(platform, consultation_id) == (1, 1)

    await eventually(both, "the allocation and the project of a genuine certified result")


async def test_an_anonymous_connection_is_refused(platform: Platform) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(platform.server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2)
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(
            platform.server.url,
            user="consultations",
            password="guessed",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )


@pytest.mark.parametrize("forger", ["funding", "projects", "identity", READER])
async def test_a_forged_event_with_other_credentials_is_refused_and_moves_nothing(
    platform: Platform, forger: str
) -> None:
    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    before = await stored_events(platform)
    consultation_id = str(uuid.uuid4())
    nc = await platform.connect(forger, error_cb=on_error)
    try:
        js = nc.jetstream(timeout=1.0)
        with pytest.raises(NatsTimeoutError):  # the server drops it: no stream ever acknowledges
            await publish(js, CERTIFIED, certified(consultation_id), source="/comuna/consultations")
        # Also fire-and-forget, as a core NATS publish.
        await nc.publish(CERTIFIED, certified(consultation_id).SerializeToString())
        await nc.flush()

        async def reported() -> bool:
            return any(f'permissions violation for publish to "{CERTIFIED}"' in v for v in violations)

        await eventually(reported, "the server to report the permission violation")
    finally:
        await nc.close()
    # Nothing reached the stream, so there is nothing for funding and projects to act on.
    assert await stored_events(platform) == before
    assert await effects(platform, consultation_id) == (0, 0)


async def test_a_stock_client_reads_events_with_the_read_only_user(platform: Platform) -> None:
    consultation_id = str(uuid.uuid4())
    producer = await platform.connect("consultations")
    await publish(producer.jetstream(), CERTIFIED, certified(consultation_id), source="/comuna/consultations")
    await producer.close()

    violations: list[str] = []

    async def on_error(error: Exception) -> None:
        violations.append(str(error))

    reader = await nats.connect(
        platform.server.url, user=READER, password=platform.passwords[READER], error_cb=on_error
    )
    try:
        js = reader.jetstream(timeout=2.0)
        # An ephemeral pull consumer of its own over the whole stream: fetch and acknowledge.
        subscription = await js.pull_subscribe(CERTIFIED, stream="CONSULTATIONS")
        seen: set[str] = set()
        while consultation_id not in seen:
            for message in await subscription.fetch(10, timeout=5):
                seen.add(consultation_events.CommuneResultCertified.FromString(message.data).consultation_id)
                await message.ack_sync()
        # A durable of its own works too.
        durable = await js.pull_subscribe(CERTIFIED, durable="press-desk", stream="CONSULTATIONS")
        assert len(await durable.fetch(1, timeout=5)) == 1
        # It publishes no event subject...
        with pytest.raises(NatsTimeoutError):
            await publish(js, CERTIFIED, certified(str(uuid.uuid4())), source="/comuna/consultations")
        # ...and cannot take over a service's durable (it would steal the events that service applies).
        [funding_durable] = SERVICE_CONSUMERS["funding"]["consultations"]
        with pytest.raises((NatsTimeoutError, NotFoundError)):
            stolen = await js.pull_subscribe(CERTIFIED, durable=funding_durable, stream="CONSULTATIONS")
            await stolen.fetch(1, timeout=1)
        with pytest.raises(NatsTimeoutError):
            await js.delete_consumer("CONSULTATIONS", funding_durable)
    finally:
        await reader.close()
    assert any(f'permissions violation for publish to "{CERTIFIED}"' in v for v in violations)
    assert any(funding_durable in v.lower() for v in violations)


@pytest.mark.parametrize("service", ["funding", "projects"])
async def test_services_hear_identitys_assignment_events_under_their_own_permissions(
    platform: Platform, service: str
) -> None:
    """Each service's NATS user may subscribe to `identity.role_assignment.>` (to drop cached
    answers of who may act where); identity's genuine event reaches it."""
    running: RunningService = getattr(platform, service)
    resolver = running.app.state.access_resolver

    async def listening() -> bool:
        return bool(resolver.listening)

    await eventually(listening, f"{service} to subscribe to identity's assignment events")

    async def known(subject: str) -> Resolution:
        return Resolution(subject)

    # No identity runs here: the cache is filled from a stand-in loader, the event is real.
    resolver.cache._load = known
    for subject in ("revoked-person", "other-person"):
        await resolver.cache.get(subject)
    identity = await platform.connect("identity")
    try:
        js = identity.jetstream()
        await ensure_stream(js, "identity")
        event = identity_events.RoleAssignmentRevoked(subject="revoked-person", assignment_id=str(uuid.uuid4()))
        await publish(js, subject_of(event), event, source="/comuna/identity")
    finally:
        await identity.close()

    async def dropped() -> bool:
        return len(resolver.cache) == 1

    await eventually(dropped, f"{service} to drop the revoked person's entry")
