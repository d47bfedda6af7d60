"""Identity's protobuf edge: domain events -> event messages, territories -> `TerritoryRef`.

Imported where the service is assembled (`service.py`), which registers the translations the
unit of work uses when a use case stages one of `domain.events`.
"""

from __future__ import annotations

from comuna.common.v1 import territory_pb2
from comuna.identity.v1 import events_pb2
from comuna.identity.v1 import identity_pb2 as pb
from comuna_identity.domain.events import ResidentRegistered, TerritoryCreated
from comuna_identity.storage.models import Territory
from comuna_identity.vocabulary import IneligibilityReason, TerritoryKind
from comuna_platform.events.translation import translates

KIND_TO_PROTO = {
    TerritoryKind.COUNTRY: territory_pb2.TERRITORY_KIND_COUNTRY,
    TerritoryKind.STATE: territory_pb2.TERRITORY_KIND_STATE,
    TerritoryKind.MUNICIPALITY: territory_pb2.TERRITORY_KIND_MUNICIPALITY,
    TerritoryKind.COMMUNE: territory_pb2.TERRITORY_KIND_COMMUNE,
    TerritoryKind.COMMUNAL_CIRCUIT: territory_pb2.TERRITORY_KIND_COMMUNAL_CIRCUIT,
    TerritoryKind.COMMUNAL_COUNCIL: territory_pb2.TERRITORY_KIND_COMMUNAL_COUNCIL,
}

REASON_TO_PROTO = {
    None: pb.INELIGIBILITY_REASON_UNSPECIFIED,
    IneligibilityReason.NOT_REGISTERED: pb.INELIGIBILITY_REASON_NOT_REGISTERED,
    IneligibilityReason.UNDER_AGE: pb.INELIGIBILITY_REASON_UNDER_AGE,
    IneligibilityReason.OTHER_COMMUNE: pb.INELIGIBILITY_REASON_OTHER_COMMUNE,
}


def territory_ref(t: Territory) -> territory_pb2.TerritoryRef:
    return territory_pb2.TerritoryRef(id=str(t.id), code=t.code, kind=KIND_TO_PROTO[TerritoryKind(t.kind)], name=t.name)


@translates(TerritoryCreated)
def territory_created(event: TerritoryCreated) -> events_pb2.TerritoryCreated:
    return events_pb2.TerritoryCreated(
        territory=territory_ref(event.territory), parent_id=str(event.parent_id) if event.parent_id else ""
    )


@translates(ResidentRegistered)
def resident_registered(event: ResidentRegistered) -> events_pb2.ResidentRegistered:
    return events_pb2.ResidentRegistered(
        resident_id=str(event.resident_id), council_id=str(event.council_id), commune_id=str(event.commune_id)
    )
