"""How the funding service is assembled from the shared platform."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

# Imported for its effect: registers how the domain's events become event messages.
from comuna_funding import messages  # noqa: F401
from comuna_funding.api.routes import router
from comuna_funding.consumers.allocations import commune_result_consumer
from comuna_funding.consumers.disbursements import milestone_consumer
from comuna_funding.domain.allocations import GrantPolicy
from comuna_funding.grpc import servicer
from comuna_funding.settings import Settings
from comuna_platform.events import EventConsumer
from comuna_platform.runtime import Runtime, ServiceSpec, identity_access_resolver


def settings_of(runtime: Runtime) -> Settings:
    return cast(Settings, runtime.settings)


def grant_policy(settings: Settings) -> GrantPolicy:
    return GrantPolicy(
        amount_minor=settings.grant_amount_minor,
        currency=settings.grant_currency,
        funding_source=settings.funding_source,
    )


def consumers(runtime: Runtime) -> Sequence[EventConsumer]:
    return [commune_result_consumer(runtime, grant_policy(settings_of(runtime))), milestone_consumer(runtime)]


SPEC = ServiceSpec(
    name="funding",
    title="Comuna funding",
    description="A double-entry ledger of public money for communal projects: grants earmarked for "
    "each commune's winning project and tranches paid out on verified milestones, all open to the public.",
    settings_factory=Settings,
    routers=[router],
    grpc_register=servicer.register,
    consumers=consumers,
    # Only the platform's operations endpoints (parked messages) are protected here.
    access_resolver=identity_access_resolver,
)
