"""How the identity service is assembled from the shared platform."""

from __future__ import annotations

from typing import cast

import grpc
from fastapi import FastAPI

# Imported for its effect: registers how identity's domain events become event messages.
from comuna_identity import messages  # noqa: F401
from comuna_identity.api import access, audit, enrolment
from comuna_identity.api.resolver import DatabaseAccessResolver
from comuna_identity.api.routes import router
from comuna_identity.domain.census import CensusHasher
from comuna_identity.grpc import servicer
from comuna_identity.settings import Settings
from comuna_platform.auth.access import AccessResolver
from comuna_platform.runtime import Runtime, ServiceSpec


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def hasher_for(settings: Settings) -> CensusHasher:
    return CensusHasher(settings.census_hash_key.get_secret_value().encode())


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    settings = settings_of(runtime)
    app.state.census_hasher = hasher_for(settings)


def access_resolver(runtime: Runtime) -> AccessResolver:
    return DatabaseAccessResolver(runtime.db)


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    settings = settings_of(runtime)
    return servicer.register(runtime, server, hasher_for(settings), settings.voting_age)


SPEC = ServiceSpec(
    name="identity",
    title="Comuna identity",
    description="Territory register (states to communal councils), the census of residents "
    "(only keyed hashes of national id numbers), and who may act where: role assignments, "
    "resolved for every service, and the enrolment of residents' accounts.",
    settings_factory=Settings,
    routers=[router, access.router, enrolment.router, audit.router],
    grpc_register=grpc_register,
    on_startup=on_startup,
    access_resolver=access_resolver,
)
