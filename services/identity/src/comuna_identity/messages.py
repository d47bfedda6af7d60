"""Identity's protobuf edge: domain events -> event messages, territories -> `TerritoryRef`,
role assignments -> `RoleAssignment`.

Imported where the service is assembled (`service.py`), which registers the translations the
unit of work uses when a use case stages one of `domain.events`.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from comuna.common.v1 import territory_pb2
from comuna.identity.v1 import access_pb2, events_pb2
from comuna_identity.domain.access import AssignmentView
from comuna_identity.domain.events import (
    ResidentRegistered,
    RoleAssignmentGranted,
    RoleAssignmentRevoked,
    TerritoriesImported,
    TerritoryChanged,
    TerritoryCreated,
)
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.events.translation import translates

KIND_TO_PROTO = {
    TerritoryKind.COUNTRY: territory_pb2.TERRITORY_KIND_COUNTRY,
    TerritoryKind.STATE: territory_pb2.TERRITORY_KIND_STATE,
    TerritoryKind.MUNICIPALITY: territory_pb2.TERRITORY_KIND_MUNICIPALITY,
    TerritoryKind.PARISH: territory_pb2.TERRITORY_KIND_PARISH,
    TerritoryKind.COMMUNE: territory_pb2.TERRITORY_KIND_COMMUNE,
    TerritoryKind.COMMUNAL_CIRCUIT: territory_pb2.TERRITORY_KIND_COMMUNAL_CIRCUIT,
    TerritoryKind.COMMUNAL_COUNCIL: territory_pb2.TERRITORY_KIND_COMMUNAL_COUNCIL,
}


def territory_ref(t: TerritoryAt) -> territory_pb2.TerritoryRef:
    return territory_pb2.TerritoryRef(id=str(t.id), code=t.code, kind=KIND_TO_PROTO[TerritoryKind(t.kind)], name=t.name)


@translates(TerritoryCreated)
def territory_created(event: TerritoryCreated) -> events_pb2.TerritoryCreated:
    return events_pb2.TerritoryCreated(
        territory=territory_ref(event.territory), parent_id=str(event.parent_id) if event.parent_id else ""
    )


@translates(TerritoryChanged)
def territory_changed(event: TerritoryChanged) -> events_pb2.TerritoryChanged:
    t = event.territory
    return events_pb2.TerritoryChanged(
        territory=territory_ref(t),
        parent_id=str(t.parent_id) if t.parent_id else "",
        valid_from=t.valid_from.isoformat(),
        status=t.status,
    )


@translates(TerritoriesImported)
def territories_imported(event: TerritoriesImported) -> events_pb2.TerritoriesImported:
    return events_pb2.TerritoriesImported(created=event.created, changed=event.changed)


@translates(ResidentRegistered)
def resident_registered(event: ResidentRegistered) -> events_pb2.ResidentRegistered:
    return events_pb2.ResidentRegistered(
        resident_id=str(event.resident_id), council_id=str(event.council_id), commune_id=str(event.commune_id)
    )


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def role_assignment(view: AssignmentView) -> access_pb2.RoleAssignment:
    a = view.assignment
    message = access_pb2.RoleAssignment(
        id=str(a.id),
        role=a.role,
        territory=territory_ref(view.territory),
        consultation_id=str(a.consultation_id) if a.consultation_id else "",
        table_code=a.table_code or "",
        valid_from=timestamp(a.valid_from),
    )
    if a.valid_until is not None:
        message.valid_until.CopyFrom(timestamp(a.valid_until))
    return message


@translates(RoleAssignmentGranted)
def role_assignment_granted(event: RoleAssignmentGranted) -> events_pb2.RoleAssignmentGranted:
    return events_pb2.RoleAssignmentGranted(
        subject=event.assignment.subject, assignment=role_assignment(AssignmentView(event.assignment, event.territory))
    )


@translates(RoleAssignmentRevoked)
def role_assignment_revoked(event: RoleAssignmentRevoked) -> events_pb2.RoleAssignmentRevoked:
    return events_pb2.RoleAssignmentRevoked(
        subject=event.subject, assignment_id=str(event.assignment_id), reason=event.reason
    )
