import datetime

from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.common.v1 import territory_pb2 as _territory_pb2
from comuna.identity.v1 import access_pb2 as _access_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IneligibilityReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INELIGIBILITY_REASON_UNSPECIFIED: _ClassVar[IneligibilityReason]
    INELIGIBILITY_REASON_NOT_REGISTERED: _ClassVar[IneligibilityReason]
    INELIGIBILITY_REASON_UNDER_AGE: _ClassVar[IneligibilityReason]
    INELIGIBILITY_REASON_OTHER_COMMUNE: _ClassVar[IneligibilityReason]
INELIGIBILITY_REASON_UNSPECIFIED: IneligibilityReason
INELIGIBILITY_REASON_NOT_REGISTERED: IneligibilityReason
INELIGIBILITY_REASON_UNDER_AGE: IneligibilityReason
INELIGIBILITY_REASON_OTHER_COMMUNE: IneligibilityReason

class ResolvePrincipalRequest(_message.Message):
    __slots__ = ("subject",)
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    def __init__(self, subject: _Optional[str] = ...) -> None: ...

class ResolvePrincipalResponse(_message.Message):
    __slots__ = ("subject", "assignments", "resident_id", "resolved_at")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    RESIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_AT_FIELD_NUMBER: _ClassVar[int]
    subject: str
    assignments: _containers.RepeatedCompositeFieldContainer[_access_pb2.RoleAssignment]
    resident_id: str
    resolved_at: _timestamp_pb2.Timestamp
    def __init__(self, subject: _Optional[str] = ..., assignments: _Optional[_Iterable[_Union[_access_pb2.RoleAssignment, _Mapping]]] = ..., resident_id: _Optional[str] = ..., resolved_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetTerritoryRequest(_message.Message):
    __slots__ = ("id", "code", "as_of")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: str
    as_of: str
    def __init__(self, id: _Optional[str] = ..., code: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class GetTerritoryResponse(_message.Message):
    __slots__ = ("territory", "ancestors")
    TERRITORY_FIELD_NUMBER: _ClassVar[int]
    ANCESTORS_FIELD_NUMBER: _ClassVar[int]
    territory: _territory_pb2.TerritoryRef
    ancestors: _containers.RepeatedCompositeFieldContainer[_territory_pb2.TerritoryRef]
    def __init__(self, territory: _Optional[_Union[_territory_pb2.TerritoryRef, _Mapping]] = ..., ancestors: _Optional[_Iterable[_Union[_territory_pb2.TerritoryRef, _Mapping]]] = ...) -> None: ...

class ListCommunesRequest(_message.Message):
    __slots__ = ("under_code", "page_size", "page_token", "as_of")
    UNDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    under_code: str
    page_size: int
    page_token: str
    as_of: str
    def __init__(self, under_code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., as_of: _Optional[str] = ...) -> None: ...

class ListCommunesResponse(_message.Message):
    __slots__ = ("communes", "next_page_token")
    COMMUNES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    communes: _containers.RepeatedCompositeFieldContainer[_territory_pb2.TerritoryRef]
    next_page_token: str
    def __init__(self, communes: _Optional[_Iterable[_Union[_territory_pb2.TerritoryRef, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CheckEligibilityRequest(_message.Message):
    __slots__ = ("consultation_id", "commune_id", "national_id", "as_of")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    NATIONAL_ID_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    commune_id: str
    national_id: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., national_id: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckEligibilityResponse(_message.Message):
    __slots__ = ("eligible", "reason", "voter_ref")
    ELIGIBLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VOTER_REF_FIELD_NUMBER: _ClassVar[int]
    eligible: bool
    reason: IneligibilityReason
    voter_ref: str
    def __init__(self, eligible: _Optional[bool] = ..., reason: _Optional[_Union[IneligibilityReason, str]] = ..., voter_ref: _Optional[str] = ...) -> None: ...
