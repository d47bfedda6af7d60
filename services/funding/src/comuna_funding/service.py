"""How the funding service is assembled from the shared platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from fastapi import FastAPI

# Imported for its effect: registers how the domain's events become event messages.
from comuna_funding import messages  # noqa: F401
from comuna_funding.api import cofunding_routes, export_routes, journal_routes, ledger_routes, statement_routes
from comuna_funding.api.journal_routes import JournalKeys
from comuna_funding.api.routes import router
from comuna_funding.commitments import SourceCommitments, SourceDirectory
from comuna_funding.consumers.allocations import commune_result_consumer
from comuna_funding.consumers.disbursements import milestone_consumer
from comuna_funding.domain.allocations import GrantPolicy
from comuna_funding.domain.cofunding import CommitPolicy
from comuna_funding.domain.expiry import PendingExpiry
from comuna_funding.grpc import servicer
from comuna_funding.settings import Settings
from comuna_funding.storage import journal
from comuna_funding.storage.models import journal_tables
from comuna_funding.transfer_commits import TransferCommits
from comuna_platform.events import EventConsumer
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver, identity_territory_lineages
from comuna_platform.supervision import Worker
from comuna_platform.tlog.checkpointer import Checkpointer


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def grant_policy(settings: Settings) -> GrantPolicy:
    return GrantPolicy(
        amount_minor=settings.grant_amount_minor,
        currency=settings.grant_currency,
        funding_source=settings.funding_source,
    )


def on_startup(runtime: Runtime, app: FastAPI) -> None:
    """The ledger's journal (origin, signers, witnesses), its checkpointer, and the expiry of
    pending transfers whose timeout passed."""
    settings = settings_of(runtime)
    journal.configure(settings.record_origin)
    signers = settings.record_signers()
    app.state.journal_keys = JournalKeys(signers, settings.record_witnesses())
    if signers:
        checkpointer = Checkpointer(
            runtime.db,
            journal_tables,
            signers,
            every=settings.record_checkpoint_seconds,
            now=lambda: runtime.clock.now(),  # noqa: PLW0108 (tests swap the clock)
        )
        runtime.workers.add(Worker("journal-checkpointer", checkpointer.run))
    runtime.workers.add(Worker("pending-expiry", PendingExpiry(runtime.db, settings.expiry_seconds).run))
    # Remote funders' commitments: Reserve, Commit, then post (or void) the pending transfer.
    directory = SourceDirectory(settings.source_credentials)
    runtime.workers.add(Worker("source-commitments", SourceCommitments(runtime.db, directory).run))
    app.state.funding_settings = settings
    app.state.transfer_commits = TransferCommits(runtime.db)


def commit_policy(settings: Settings) -> CommitPolicy:
    return CommitPolicy(remote_timeout_seconds=settings.source_commit_timeout_seconds)


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    settings = settings_of(runtime)
    return [
        commune_result_consumer(
            runtime, grant_policy(settings), lambda: identity_territory_lineages(runtime), commit_policy(settings)
        ),
        milestone_consumer(runtime),
    ]


SPEC = ServiceSpec(
    name="funding",
    title="Comuna funding",
    description="A double-entry ledger of public money for communal projects: grants earmarked for "
    "each commune's winning project and tranches paid out on verified milestones, all open to the public.",
    settings_factory=Settings,
    routers=[
        router,
        ledger_routes.router,
        cofunding_routes.router,
        journal_routes.router,
        statement_routes.router,
        export_routes.router,
    ],
    on_startup=on_startup,
    grpc_register=servicer.register,
    consumers=consumers,
    # The ledger's writes (operators) and the platform's operations endpoints are protected.
    access_resolver=identity_access_resolver,
    territory_lineages=identity_territory_lineages,
)
