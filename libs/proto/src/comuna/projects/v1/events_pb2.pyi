import datetime

from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.projects.v1 import projects_pb2 as _projects_pb2
from comuna.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProjectCreated(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: _projects_pb2.Project
    def __init__(self, project: _Optional[_Union[_projects_pb2.Project, _Mapping]] = ...) -> None: ...

class MilestoneVerified(_message.Message):
    __slots__ = ("project_id", "milestone_id", "allocation_id", "commune_id", "tranche", "verified_by", "plan_revision")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    TRANCHE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_BY_FIELD_NUMBER: _ClassVar[int]
    PLAN_REVISION_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    milestone_id: str
    allocation_id: str
    commune_id: str
    tranche: _money_pb2.Money
    verified_by: str
    plan_revision: int
    def __init__(self, project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., tranche: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., verified_by: _Optional[str] = ..., plan_revision: _Optional[int] = ...) -> None: ...

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

class ProjectStarted(_message.Message):
    __slots__ = ("project_id", "spokespeople", "started_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SPOKESPEOPLE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    spokespeople: _containers.RepeatedScalarFieldContainer[str]
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., spokespeople: _Optional[_Iterable[str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PlanChanged(_message.Message):
    __slots__ = ("project", "changed_by", "reason", "change_request_id", "removed_milestone_ids")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHANGE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REMOVED_MILESTONE_IDS_FIELD_NUMBER: _ClassVar[int]
    project: _projects_pb2.Project
    changed_by: str
    reason: str
    change_request_id: str
    removed_milestone_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, project: _Optional[_Union[_projects_pb2.Project, _Mapping]] = ..., changed_by: _Optional[str] = ..., reason: _Optional[str] = ..., change_request_id: _Optional[str] = ..., removed_milestone_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MilestoneReported(_message.Message):
    __slots__ = ("project_id", "milestone_id", "reported_by", "reported_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_BY_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    milestone_id: str
    reported_by: str
    reported_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., reported_by: _Optional[str] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MilestoneReturned(_message.Message):
    __slots__ = ("project_id", "milestone_id", "returned_by", "note")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    RETURNED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    milestone_id: str
    returned_by: str
    note: str
    def __init__(self, project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., returned_by: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ProgressReported(_message.Message):
    __slots__ = ("project_id", "report_id", "percent_complete", "evidence_sha256", "reported_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_SHA256_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    report_id: str
    percent_complete: int
    evidence_sha256: _containers.RepeatedScalarFieldContainer[str]
    reported_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., report_id: _Optional[str] = ..., percent_complete: _Optional[int] = ..., evidence_sha256: _Optional[_Iterable[str]] = ..., reported_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProjectStalled(_message.Message):
    __slots__ = ("project_id", "reasons", "stalled_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    STALLED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    stalled_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., stalled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProjectResumed(_message.Message):
    __slots__ = ("project_id", "report_id", "resumed_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    RESUMED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    report_id: str
    resumed_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., report_id: _Optional[str] = ..., resumed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ProjectCompleted(_message.Message):
    __slots__ = ("project_id", "spent", "completed_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SPENT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    spent: _money_pb2.Money
    completed_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., spent: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExpenditureRecorded(_message.Message):
    __slots__ = ("project_id", "expenditure_id", "amount", "spent_on", "supplier", "receipt_sha256")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPENDITURE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SPENT_ON_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_SHA256_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    expenditure_id: str
    amount: _money_pb2.Money
    spent_on: str
    supplier: str
    receipt_sha256: str
    def __init__(self, project_id: _Optional[str] = ..., expenditure_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., spent_on: _Optional[str] = ..., supplier: _Optional[str] = ..., receipt_sha256: _Optional[str] = ...) -> None: ...

class OversightReportChanged(_message.Message):
    __slots__ = ("project_id", "report_id", "kind", "state", "answer", "changed_at")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    report_id: str
    kind: str
    state: str
    answer: str
    changed_at: _timestamp_pb2.Timestamp
    def __init__(self, project_id: _Optional[str] = ..., report_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., answer: _Optional[str] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
