"""How the identity service is assembled from the shared platform."""

from __future__ import annotations

from functools import cache

import grpc
from fastapi import FastAPI

from comuna_platform.runtime import Runtime, ServiceSpec

from comuna_identity.api.routes import router
from comuna_identity.domain.census import CensusHasher
from comuna_identity.grpc import servicer
from comuna_identity.settings import Settings


@cache
def settings() -> Settings:
    return Settings()


def hasher() -> CensusHasher:
    return CensusHasher(settings().census_hash_key.get_secret_value().encode())


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    app.state.census_hasher = hasher()
    config_path = settings().dev_issuer_config
    if config_path is not None:
        from comuna_identity.oidc.config import load_config
        from comuna_identity.oidc.router import build_oidc_router

        app.include_router(build_oidc_router(load_config(config_path)))


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return servicer.register(runtime, server, hasher(), settings().voting_age)


SPEC = ServiceSpec(
    name="identity",
    title="Comuna identity",
    description="Territory register (states to communal councils) and the census of residents, "
    "holding only keyed hashes of national id numbers.",
    settings_factory=settings,
    routers=[router],
    grpc_register=grpc_register,
    on_startup=on_startup,
)
