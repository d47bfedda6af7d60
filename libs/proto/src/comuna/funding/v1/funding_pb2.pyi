from comuna.common.v1 import money_pb2 as _money_pb2
from comuna.common.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetAllocationRequest(_message.Message):
    __slots__ = ("allocation_id",)
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    allocation_id: str
    def __init__(self, allocation_id: _Optional[str] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("allocation_id", "consultation_id", "commune_id", "candidate_id", "title", "amount", "disbursed", "funding_source")
    ALLOCATION_ID_FIELD_NUMBER: _ClassVar[int]
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DISBURSED_FIELD_NUMBER: _ClassVar[int]
    FUNDING_SOURCE_FIELD_NUMBER: _ClassVar[int]
    allocation_id: str
    consultation_id: str
    commune_id: str
    candidate_id: str
    title: str
    amount: _money_pb2.Money
    disbursed: _money_pb2.Money
    funding_source: str
    def __init__(self, allocation_id: _Optional[str] = ..., consultation_id: _Optional[str] = ..., commune_id: _Optional[str] = ..., candidate_id: _Optional[str] = ..., title: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., disbursed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., funding_source: _Optional[str] = ...) -> None: ...

class GetLedgerTotalsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LedgerTotal(_message.Message):
    __slots__ = ("currency", "debits_minor", "credits_minor", "transfers")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEBITS_MINOR_FIELD_NUMBER: _ClassVar[int]
    CREDITS_MINOR_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    currency: str
    debits_minor: int
    credits_minor: int
    transfers: int
    def __init__(self, currency: _Optional[str] = ..., debits_minor: _Optional[int] = ..., credits_minor: _Optional[int] = ..., transfers: _Optional[int] = ...) -> None: ...

class GetLedgerTotalsResponse(_message.Message):
    __slots__ = ("totals",)
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    totals: _containers.RepeatedCompositeFieldContainer[LedgerTotal]
    def __init__(self, totals: _Optional[_Iterable[_Union[LedgerTotal, _Mapping]]] = ...) -> None: ...
