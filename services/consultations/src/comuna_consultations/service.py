"""How the consultations service is assembled from the shared platform."""

from __future__ import annotations

from typing import cast

import grpc
from fastapi import FastAPI

# lifecycle/voting/results/tables messages are imported for their effect: they register how each
# slice's domain events become event messages.
from comuna_consultations.assemblies import api as assemblies_api
from comuna_consultations.assemblies import messages as assemblies_messages  # noqa: F401
from comuna_consultations.clients.identity import IdentityClient
from comuna_consultations.domain.pseudonyms import Pseudonyms
from comuna_consultations.lifecycle import api as lifecycle_api
from comuna_consultations.lifecycle import messages as lifecycle_messages  # noqa: F401
from comuna_consultations.offline import api as offline_api
from comuna_consultations.offline.signing import SnapshotKeys
from comuna_consultations.record import api as record_api
from comuna_consultations.results import api as results_api
from comuna_consultations.results import grpc as results_grpc
from comuna_consultations.results import messages as results_messages  # noqa: F401
from comuna_consultations.roll import api as roll_api
from comuna_consultations.roll.loader import RollLoader
from comuna_consultations.settings import Settings
from comuna_consultations.storage.models import record_tables
from comuna_consultations.storage.record import Record
from comuna_consultations.tables import api as tables_api
from comuna_consultations.tables import messages as tables_messages  # noqa: F401
from comuna_consultations.voting import api as voting_api
from comuna_consultations.voting.group_commit import BallotWriter, BatchPolicy
from comuna_consultations.voting.roll_lookups import RollLookups
from comuna_consultations.voting.snapshot import VotingSnapshotCache
from comuna_consultations.voting.usecases import Voting
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver, identity_territory_lineages
from comuna_platform.supervision import Worker
from comuna_platform.tlog.checkpointer import Checkpointer


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
    app.state.voting_snapshots = VotingSnapshotCache(
        runtime.db,
        ttl=settings.voting_snapshot_ttl_seconds,
        server_now=lambda: runtime.clock.now(),  # noqa: PLW0108 (tests swap the clock)
    )
    app.state.pseudonyms = pseudonyms_of(settings)
    app.state.voting = Voting(
        app.state.voting_snapshots,
        RollLookups(runtime.db),
        BallotWriter(runtime.db, batch_policy(settings), record_origin=settings.record_origin),
        app.state.pseudonyms,
    )
    # Offline tables' snapshot key (None: offline tables refused with 503); a malformed key stops startup.
    signing_key = settings.snapshot_signing_key
    app.state.snapshot_keys = (
        None if signing_key is None else SnapshotKeys.from_seed_b64(signing_key.get_secret_value())
    )
    loader = RollLoader(
        runtime.db, app.state.identity, poll_seconds=settings.roll_poll_seconds, chunk_size=settings.roll_chunk_size
    )
    runtime.workers.add(Worker("roll-loader", loader.run))
    # The public record: served always; checkpoints signed only with configured keys.
    signers, witnesses = settings.record_signers(), settings.record_witnesses()
    app.state.record = Record(settings.record_origin, signers, witnesses)
    if signers:
        checkpointer = Checkpointer(
            runtime.db,
            record_tables,
            signers,
            every=settings.record_checkpoint_seconds,
            now=lambda: runtime.clock.now(),  # noqa: PLW0108 (tests swap the clock)
        )
        runtime.workers.add(Worker("record-checkpointer", checkpointer.run))


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(
        max_size=settings.ballot_batch_max,
        min_size=settings.ballot_batch_min,
        linger=settings.ballot_batch_linger_seconds,
        max_hold=settings.ballot_batch_max_hold_seconds,
        writers=settings.ballot_batch_writers,
    )


def pseudonyms_of(settings: Settings) -> Pseudonyms | None:
    """None without a configured secret: ballots then answer 503 `voter_ref_secret_missing`."""
    secret = settings.voter_ref_secret.get_secret_value().encode()
    return Pseudonyms(secret) if secret else None


def grpc_register(runtime: Runtime, server: grpc.aio.Server) -> list[str]:
    return results_grpc.register(runtime, server)


SPEC = ServiceSpec(
    name="consultations",
    title="Comuna consultations",
    description="Popular consultations: communes' assembly candidates, secret one-person-one-vote ballots, "
    "and certified results ranked by a published rule.",
    settings_factory=Settings,
    # Voting first: the router tries routes in order, and on voting day nearly every request is
    # a ballot.
    routers=[
        voting_api.router,
        lifecycle_api.router,
        assemblies_api.router,
        roll_api.router,
        results_api.router,
        tables_api.router,
        offline_api.router,
        record_api.router,
    ],
    grpc_register=grpc_register,
    on_startup=on_startup,
    access_resolver=identity_access_resolver,
    territory_lineages=identity_territory_lineages,
)
