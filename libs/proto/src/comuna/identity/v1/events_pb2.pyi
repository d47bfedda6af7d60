from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.common.v1 import territory_pb2 as _territory_pb2
from comuna.identity.v1 import access_pb2 as _access_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TerritoryCreated(_message.Message):
    __slots__ = ("territory", "parent_id")
    TERRITORY_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    territory: _territory_pb2.TerritoryRef
    parent_id: str
    def __init__(self, territory: _Optional[_Union[_territory_pb2.TerritoryRef, _Mapping]] = ..., parent_id: _Optional[str] = ...) -> None: ...

class TerritoryChanged(_message.Message):
    __slots__ = ("territory", "parent_id", "valid_from", "status")
    TERRITORY_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    territory: _territory_pb2.TerritoryRef
    parent_id: str
    valid_from: str
    status: str
    def __init__(self, territory: _Optional[_Union[_territory_pb2.TerritoryRef, _Mapping]] = ..., parent_id: _Optional[str] = ..., valid_from: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class TerritoriesImported(_message.Message):
    __slots__ = ("created", "changed")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    created: int
    changed: int
    def __init__(self, created: _Optional[int] = ..., changed: _Optional[int] = ...) -> None: ...

class ResidentRegistered(_message.Message):
    __slots__ = ("resident_id", "council_id", "commune_id")
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    resident_id: str
    council_id: str
    commune_id: str
    def __init__(self, resident_id: _Optional[str] = ..., council_id: _Optional[str] = ..., commune_id: _Optional[str] = ...) -> None: ...

class RoleAssignmentGranted(_message.Message):
    __slots__ = ("subject", "assignment")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    assignment: _access_pb2.RoleAssignment
    def __init__(self, subject: _Optional[str] = ..., assignment: _Optional[_Union[_access_pb2.RoleAssignment, _Mapping]] = ...) -> None: ...

class RoleAssignmentRevoked(_message.Message):
    __slots__ = ("subject", "assignment_id", "reason")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    subject: str
    assignment_id: str
    reason: str
    def __init__(self, subject: _Optional[str] = ..., assignment_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
