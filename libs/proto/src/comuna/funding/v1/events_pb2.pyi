from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AllocationCreated(_message.Message):
    __slots__ = ("allocation_id", "consultation_id", "commune_id", "candidate_id", "title", "amount", "funding_source", "transfer_id", "commune_code")
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FUNDING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_CODE_FIELD_NUMBER: _ClassVar[int]
    allocation_id: str
    consultation_id: str
    commune_id: str
    candidate_id: str
    title: str
    amount: _money_pb2.Money
    funding_source: str
    transfer_id: str
    commune_code: str
    def __init__(self, allocation_id: _Optional[str] = ..., consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., title: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., funding_source: _Optional[str] = ..., transfer_id: _Optional[str] = ..., commune_code: _Optional[str] = ...) -> None: ...

class TrancheDisbursed(_message.Message):
    __slots__ = ("disbursement_id", "allocation_id", "project_id", "milestone_id", "commune_id", "amount", "transfer_id")
    DISBURSEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    disbursement_id: str
    allocation_id: str
    project_id: str
    milestone_id: str
    commune_id: str
    amount: _money_pb2.Money
    transfer_id: str
    def __init__(self, disbursement_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., transfer_id: _Optional[str] = ...) -> None: ...

class TrancheRejected(_message.Message):
    __slots__ = ("disbursement_id", "allocation_id", "project_id", "milestone_id", "commune_id", "amount", "reason")
    DISBURSEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MILESTONE_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    disbursement_id: str
    allocation_id: str
    project_id: str
    milestone_id: str
    commune_id: str
    amount: _money_pb2.Money
    reason: str
    def __init__(self, disbursement_id: _Optional[str] = ..., allocation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., milestone_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class AllocationReleased(_message.Message):
    __slots__ = ("allocation_id", "project_id", "commune_id", "funding_source", "amount", "transfer_id", "voided_milestone_ids", "reason")
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    FUNDING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    VOIDED_MILESTONE_IDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    allocation_id: str
    project_id: str
    commune_id: str
    funding_source: str
    amount: _money_pb2.Money
    transfer_id: str
    voided_milestone_ids: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, allocation_id: _Optional[str] = ..., project_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., funding_source: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., transfer_id: _Optional[str] = ..., voided_milestone_ids: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...
