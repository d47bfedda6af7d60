import datetime

from comuna.common.v1 import territory_pb2 as _territory_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RoleAssignment(_message.Message):
    __slots__ = ("id", "role", "territory", "consultation_id", "table_code", "valid_from", "valid_until")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERRITORY_FIELD_NUMBER: _ClassVar[int]
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    TABLE_CODE_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: str
    territory: _territory_pb2.TerritoryRef
    consultation_id: str
    table_code: str
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., role: _Optional[str] = ..., territory: _Optional[_Union[_territory_pb2.TerritoryRef, _Mapping]] = ..., consultation_id: _Optional[str] = ..., table_code: _Optional[str] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
