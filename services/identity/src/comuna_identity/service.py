"""How the identity service is assembled from the shared platform."""

from __future__ import annotations

import asyncio
from typing import cast

import grpc
from fastapi import FastAPI

# Imported for its effect: registers how identity's domain events become event messages.
from comuna_identity import messages  # noqa: F401
from comuna_identity.api import access, audit, census, enrolment, register_bulk, rolls
from comuna_identity.api.census_cli import census_from
from comuna_identity.api.resolver import DatabaseAccessResolver
from comuna_identity.api.routes import router
from comuna_identity.domain import census_rotation
from comuna_identity.domain.census import Census
from comuna_identity.domain.census_import import Preparer
from comuna_identity.domain.roll import RollFreezer
from comuna_identity.domain.roll_keys import RollSecret
from comuna_identity.grpc import servicer
from comuna_identity.settings import Settings
from comuna_platform.auth.access import AccessResolver
from comuna_platform.runtime import Runtime, ServiceSpec
from comuna_platform.supervision import Worker


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def census_for(settings: Settings) -> Census:
    """The census's keys from settings; refuses to start without a usable ring and roll secret."""
    return census_from(settings)


def roll_secret_for(settings: Settings) -> RollSecret | None:
    """None without a configured secret: the roll methods then answer 503 `roll_secret_missing`."""
    secret = settings.roll_secret.get_secret_value().encode()
    return RollSecret(secret) if secret else None


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    settings = settings_of(runtime)
    census = census_for(settings)
    app.state.census = census
    # Worker processes for big imports, started on the first one that needs them.
    preparer = Preparer(census)
    app.state.census_preparer = preparer

    async def close_preparer() -> None:
        preparer.close()

    runtime.closers.append(close_preparer)

    async def rotation(stop: asyncio.Event) -> None:
        await census_rotation.run_worker(
            runtime.db, census, settings.census_rotation_batch, stop, settings.census_rotation_idle_seconds
        )

    runtime.workers.add(Worker("census-rotation", rotation))
    secret = roll_secret_for(settings)
    app.state.roll_secret = secret
    if secret is not None:
        freezer = RollFreezer(
            runtime.db,
            secret,
            voting_age=settings.voting_age,
            threads=settings.roll_threads,
            poll_seconds=settings.roll_poll_seconds,
        )
        runtime.workers.add(Worker("roll-freezer", freezer.run))


def access_resolver(runtime: Runtime) -> AccessResolver:
    return DatabaseAccessResolver(runtime.db)


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    settings = settings_of(runtime)
    return servicer.register(runtime, server, roll_secret_for(settings))


SPEC = ServiceSpec(
    name="identity",
    title="Comuna identity",
    description="Territory register (states to communal councils), the census of residents "
    "(only keyed hashes of national id numbers), and who may act where: role assignments, "
    "resolved for every service, and the enrolment of residents' accounts.",
    settings_factory=Settings,
    routers=[router, register_bulk.router, access.router, enrolment.router, census.router, audit.router, rolls.router],
    grpc_register=grpc_register,
    on_startup=on_startup,
    access_resolver=access_resolver,
)
