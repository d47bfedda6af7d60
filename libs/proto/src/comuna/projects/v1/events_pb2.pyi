import datetime

from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.projects.v1 import projects_pb2 as _projects_pb2
from comuna.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProjectCreated(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _projects_pb2.Project
    def __init__(self, project: _Optional[_Union[_projects_pb2.Project, _Mapping]] = ...) -> None: ...

class MilestoneVerified(_message.Message):
    __slots__ = ("project_id", "milestone_id", "allocation_id", "commune_id", "tranche", "verified_by")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANCHE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_BY_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    milestone_id: str
    allocation_id: str
    commune_id: str
    tranche: _money_pb2.Money
    verified_by: str
    def __init__(self, project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., tranche: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., verified_by: _Optional[str] = ...) -> None: ...

class MilestoneFunded(_message.Message):
    __slots__ = ("project_id", "milestone_id", "disbursement_id")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    DISBURSEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    milestone_id: str
    disbursement_id: str
    def __init__(self, project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., disbursement_id: _Optional[str] = ...) -> None: ...

class ProjectCancelled(_message.Message):
    __slots__ = ("project_id", "allocation_id", "commune_id", "reason", "cancelled_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    allocation_id: str
    commune_id: str
    reason: str
    cancelled_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., reason: _Optional[str] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
