import datetime

from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.common.v1 import territory_pb2 as _territory_pb2
from comuna.identity.v1 import access_pb2 as _access_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

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

class FreezeRollRequest(_message.Message):
    __slots__ = ("consultation_id", "cutoff", "voting_day", "commune_ids")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_FIELD_NUMBER: _ClassVar[int]
    VOTING_DAY_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_IDS_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    cutoff: str
    voting_day: str
    commune_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, consultation_id: _Optional[str] = ..., cutoff: _Optional[str] = ..., voting_day: _Optional[str] = ..., commune_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RollSummary(_message.Message):
    __slots__ = ("consultation_id", "cutoff", "voting_day", "entry_count", "digest", "frozen_at", "commune_count", "status")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    CUTOFF_FIELD_NUMBER: _ClassVar[int]
    VOTING_DAY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    FROZEN_AT_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    cutoff: str
    voting_day: str
    entry_count: int
    digest: str
    frozen_at: _timestamp_pb2.Timestamp
    commune_count: int
    status: str
    def __init__(self, consultation_id: _Optional[str] = ..., cutoff: _Optional[str] = ..., voting_day: _Optional[str] = ..., entry_count: _Optional[int] = ..., digest: _Optional[str] = ..., frozen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., commune_count: _Optional[int] = ..., status: _Optional[str] = ...) -> None: ...

class GetRollRequest(_message.Message):
    __slots__ = ("consultation_id",)
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    def __init__(self, consultation_id: _Optional[str] = ...) -> None: ...

class RollCount(_message.Message):
    __slots__ = ("territory_id", "voters")
    TERRITORY_ID_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    territory_id: str
    voters: int
    def __init__(self, territory_id: _Optional[str] = ..., voters: _Optional[int] = ...) -> None: ...

class GetRollResponse(_message.Message):
    __slots__ = ("summary", "commune_counts", "council_counts", "voter_key", "login_key")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    COUNCIL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    VOTER_KEY_FIELD_NUMBER: _ClassVar[int]
    LOGIN_KEY_FIELD_NUMBER: _ClassVar[int]
    summary: RollSummary
    commune_counts: _containers.RepeatedCompositeFieldContainer[RollCount]
    council_counts: _containers.RepeatedCompositeFieldContainer[RollCount]
    voter_key: bytes
    login_key: bytes
    def __init__(self, summary: _Optional[_Union[RollSummary, _Mapping]] = ..., commune_counts: _Optional[_Iterable[_Union[RollCount, _Mapping]]] = ..., council_counts: _Optional[_Iterable[_Union[RollCount, _Mapping]]] = ..., voter_key: _Optional[bytes] = ..., login_key: _Optional[bytes] = ...) -> None: ...

class StreamRollRequest(_message.Message):
    __slots__ = ("consultation_id", "after_seq", "chunk_size")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    after_seq: int
    chunk_size: int
    def __init__(self, consultation_id: _Optional[str] = ..., after_seq: _Optional[int] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class RollChunk(_message.Message):
    __slots__ = ("first_seq", "entries", "entry_count")
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    first_seq: int
    entries: bytes
    entry_count: int
    def __init__(self, first_seq: _Optional[int] = ..., entries: _Optional[bytes] = ..., entry_count: _Optional[int] = ...) -> None: ...
