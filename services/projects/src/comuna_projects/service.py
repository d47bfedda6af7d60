"""How the projects service is assembled from the shared platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc

from comuna_platform.events import EventConsumer
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver, identity_territory_lineages

# Imported for its effect: registers how the domain's events become event messages.
from comuna_projects import messages  # noqa: F401
from comuna_projects.api.routes import router
from comuna_projects.consumers import funding
from comuna_projects.grpc import servicer
from comuna_projects.settings import Settings


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return servicer.register(runtime, server)


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    return funding.consumers(runtime, settings_of(runtime).plan)


SPEC = ServiceSpec(
    name="projects",
    title="Comuna projects",
    description="Execution of funded communal projects: milestones verified by overseers in the "
    "commune's territory, each verification releasing a tranche of the allocation.",
    settings_factory=Settings,
    routers=[router],
    grpc_register=grpc_register,
    consumers=consumers,
    access_resolver=identity_access_resolver,
    territory_lineages=identity_territory_lineages,
)
