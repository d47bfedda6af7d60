"""How the projects service is assembled from the shared platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc
from fastapi import FastAPI

from comuna_platform.events import EventConsumer
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver, identity_territory_lineages
from comuna_platform.supervision import Worker

# Imported for its effect: registers how the domain's events become event messages.
from comuna_projects import messages  # noqa: F401
from comuna_projects.api import execution_routes, open_data_routes, progress_routes
from comuna_projects.api.routes import router
from comuna_projects.consumers import candidates, funding
from comuna_projects.domain.stalls import StallDetector
from comuna_projects.funding_peer import GrpcFundingLedger
from comuna_projects.grpc import servicer
from comuna_projects.settings import Settings


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return servicer.register(runtime, server)


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    """Where evidence files live, the client of funding's ledger, and the stall detector."""
    settings = settings_of(runtime)
    app.state.evidence_store = settings.evidence_store()
    app.state.evidence_policy = settings.evidence_policy
    ledger = GrpcFundingLedger(
        settings.funding_grpc_target, runtime.identity().tokens, timeout=settings.funding_timeout_seconds
    )
    runtime.closers.append(ledger.close)
    app.state.funding_ledger = ledger
    detector = StallDetector(
        runtime.db,
        settings.stall_policy,
        every=settings.stall_check_seconds,
        now=lambda: runtime.clock.now(),  # noqa: PLW0108 (tests swap the clock)
    )
    runtime.workers.add(Worker("stall-detector", detector.run))


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    return [
        *funding.consumers(runtime, settings_of(runtime).plan, lambda: identity_territory_lineages(runtime)),
        candidates.candidate_consumer(runtime),
    ]


SPEC = ServiceSpec(
    name="projects",
    title="Comuna projects",
    description="Execution of funded communal projects under public oversight: plans and change requests, "
    "milestones reported by spokespeople and verified by someone else of the oversight committee (each "
    "verification releasing a tranche), progress reports with evidence, spending within what was "
    "disbursed, residents' oversight reports, and open data.",
    settings_factory=Settings,
    routers=[router, execution_routes.router, progress_routes.router, open_data_routes.router],
    grpc_register=grpc_register,
    consumers=consumers,
    on_startup=on_startup,
    access_resolver=identity_access_resolver,
    territory_lineages=identity_territory_lineages,
)
