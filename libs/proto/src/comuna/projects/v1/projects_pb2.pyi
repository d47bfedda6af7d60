import datetime

from comuna.common.v1 import money_pb2 as _money_pb2
from comuna.common.v1 import options_pb2 as _options_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MilestoneStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MILESTONE_STATUS_UNSPECIFIED: _ClassVar[MilestoneStatus]
    MILESTONE_STATUS_PENDING: _ClassVar[MilestoneStatus]
    MILESTONE_STATUS_VERIFIED: _ClassVar[MilestoneStatus]
    MILESTONE_STATUS_FUNDED: _ClassVar[MilestoneStatus]
    MILESTONE_STATUS_REPORTED: _ClassVar[MilestoneStatus]
MILESTONE_STATUS_UNSPECIFIED: MilestoneStatus
MILESTONE_STATUS_PENDING: MilestoneStatus
MILESTONE_STATUS_VERIFIED: MilestoneStatus
MILESTONE_STATUS_FUNDED: MilestoneStatus
MILESTONE_STATUS_REPORTED: MilestoneStatus

class GetProjectRequest(_message.Message):
    __slots__ = ("project_id",)
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    def __init__(self, project_id: _Optional[str] = ...) -> None: ...

class Milestone(_message.Message):
    __slots__ = ("milestone_id", "sequence", "title", "tranche", "status", "disbursement_rejected_reason", "disbursement_rejected_at", "due_on")
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TRANCHE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DISBURSEMENT_REJECTED_REASON_FIELD_NUMBER: _ClassVar[int]
    DISBURSEMENT_REJECTED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_ON_FIELD_NUMBER: _ClassVar[int]
    milestone_id: str
    sequence: int
    title: str
    tranche: _money_pb2.Money
    status: MilestoneStatus
    disbursement_rejected_reason: str
    disbursement_rejected_at: _timestamp_pb2.Timestamp
    due_on: str
    def __init__(self, milestone_id: _Optional[str] = ..., sequence: _Optional[int] = ..., title: _Optional[str] = ..., tranche: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[MilestoneStatus, str]] = ..., disbursement_rejected_reason: _Optional[str] = ..., disbursement_rejected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_on: _Optional[str] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("project_id", "allocation_id", "consultation_id", "commune_id", "title", "budget", "milestones", "commune_code", "stage", "plan_revision", "category")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    MILESTONES_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_CODE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    allocation_id: str
    consultation_id: str
    commune_id: str
    title: str
    budget: _money_pb2.Money
    milestones: _containers.RepeatedCompositeFieldContainer[Milestone]
    commune_code: str
    stage: str
    plan_revision: int
    category: str
    def __init__(self, project_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., title: _Optional[str] = ..., budget: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., milestones: _Optional[_Iterable[_Union[Milestone, _Mapping]]] = ..., commune_code: _Optional[str] = ..., stage: _Optional[str] = ..., plan_revision: _Optional[int] = ..., category: _Optional[str] = ...) -> None: ...
