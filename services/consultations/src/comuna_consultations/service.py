"""How the consultations service is assembled from the shared platform."""

from __future__ import annotations

from typing import cast

import grpc
from fastapi import FastAPI

# lifecycle/voting/results messages are imported for their effect: they register how each
# slice's domain events become event messages.
from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.lifecycle import api as lifecycle_api
from comuna_consultations.lifecycle import messages as lifecycle_messages  # noqa: F401
from comuna_consultations.offline import api as offline_api
from comuna_consultations.offline.signing import SnapshotKeys
from comuna_consultations.results import api as results_api
from comuna_consultations.results import grpc as results_grpc
from comuna_consultations.results import messages as results_messages  # noqa: F401
from comuna_consultations.roll import api as roll_api
from comuna_consultations.roll.loader import RollLoader
from comuna_consultations.settings import Settings
from comuna_consultations.voting import api as voting_api
from comuna_consultations.voting.snapshot import VotingSnapshotCache
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver, identity_territory_lineages
from comuna_platform.supervision import Worker


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    """The identity client (on the runtime's one channel to identity, which the runtime closes),
    the ballot cache and the roll loader."""
    settings = settings_of(runtime)
    identity = runtime.identity()
    app.state.identity = IdentityClient(
        identity.channel,
        tokens=identity.tokens,
        timeout=identity.timeout,
        max_in_flight=settings.identity_max_in_flight,
    )
    app.state.voting_snapshots = VotingSnapshotCache(runtime.db, ttl=settings.voting_snapshot_ttl_seconds)
    # Offline tables' snapshot key (None: offline tables refused with 503); a malformed key stops startup.
    signing_key = settings.snapshot_signing_key
    app.state.snapshot_keys = (
        None if signing_key is None else SnapshotKeys.from_seed_b64(signing_key.get_secret_value())
    )
    loader = RollLoader(
        runtime.db, app.state.identity, poll_seconds=settings.roll_poll_seconds, chunk_size=settings.roll_chunk_size
    )
    runtime.workers.add(Worker("roll-loader", loader.run))


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return results_grpc.register(runtime, server)


SPEC = ServiceSpec(
    name="consultations",
    title="Comuna consultations",
    description="Popular consultations: communes' assembly candidates, secret one-person-one-vote ballots, "
    "and certified results ranked by a published rule.",
    settings_factory=Settings,
    routers=[lifecycle_api.router, roll_api.router, voting_api.router, results_api.router, offline_api.router],
    grpc_register=grpc_register,
    on_startup=on_startup,
    access_resolver=identity_access_resolver,
    territory_lineages=identity_territory_lineages,
)
