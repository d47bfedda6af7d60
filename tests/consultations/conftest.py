"""A real identity service (REST + gRPC) and the consultations service wired to it.

Both run in-process against the session's PostgreSQL and NATS, exactly as `serve` wires them:
consultations fetches a client-credentials token from the test issuer and calls identity's gRPC
server over TCP, for the census and for where each caller may act (ResolvePrincipal).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest_asyncio

import comuna_consultations
from comuna_consultations.service import SPEC as CONSULTATIONS
from comuna_consultations.settings import Settings as ConsultationsSettings
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.auth.roles import Role
from comuna_platform.clock import ManualClock
from tests.consultations.helpers import COMMUNES, OPERATOR, REGISTRAR, Stack, spokesperson_subject
from tests.support.identity import running_identity
from tests.support.issuer import TestIssuer
from tests.support.service import fresh_database, running_service

CONSULTATIONS_MIGRATIONS = Path(comuna_consultations.__file__).parent / "migrations"
# The consultations-only secret of the participations' voter references (test value).
VOTER_REF_SECRET = "test-voter-ref-secret-" + "x" * 32


@pytest_asyncio.fixture(scope="module")
async def stack(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    async with open_stack(embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10]) as stack:
        yield stack


@asynccontextmanager
async def open_stack(
    embedded_postgres: EmbeddedPostgres,
    embedded_nats: EmbeddedNats,
    issuer: TestIssuer,
    suffix: str,
    **consultations_settings: object,
) -> AsyncIterator[Stack]:
    settings: dict[str, Any] = {"voter_ref_secret": VOTER_REF_SECRET, **consultations_settings}
    consultations_url = fresh_database(embedded_postgres, f"consultations_{suffix}", CONSULTATIONS_MIGRATIONS)
    async with running_identity(embedded_postgres, embedded_nats, issuer, f"c_{suffix}") as identity:
        # The people most tests act as; table officers are granted per consultation (helpers.officer).
        await identity.grant(OPERATOR, Role.OPERATOR, "VE")
        await identity.grant(REGISTRAR, Role.REGISTRAR, "VE")
        for commune in COMMUNES:
            await identity.grant(spokesperson_subject(commune), Role.SPOKESPERSON, commune)
        commune_ids = {code: identity.territory_ids[code] for code in COMMUNES}
        async with running_service(
            CONSULTATIONS,
            ConsultationsSettings,
            database_url=consultations_url,
            nats_url=embedded_nats.url,
            issuer=issuer,
            identity_grpc_target=identity.grpc_target,
            **settings,
        ) as consultations:
            # The clock the service reads (`Runtime.clock`), starting at the real time: tests move it.
            clock = ManualClock(datetime.now(UTC))
            consultations.runtime.clock = clock
            yield Stack(identity.service, consultations, commune_ids, itertools.count(10_000_000), identity, clock)
