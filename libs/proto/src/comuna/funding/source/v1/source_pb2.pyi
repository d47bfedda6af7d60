import datetime

from comuna.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReservationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_STATUS_UNSPECIFIED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_RESERVED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_REFUSED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_COMMITTED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_CANCELLED: _ClassVar[ReservationStatus]

class MovementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOVEMENT_KIND_UNSPECIFIED: _ClassVar[MovementKind]
    MOVEMENT_KIND_RESERVE: _ClassVar[MovementKind]
    MOVEMENT_KIND_COMMIT: _ClassVar[MovementKind]
    MOVEMENT_KIND_CANCEL: _ClassVar[MovementKind]
    MOVEMENT_KIND_DEPOSIT: _ClassVar[MovementKind]
RESERVATION_STATUS_UNSPECIFIED: ReservationStatus
RESERVATION_STATUS_RESERVED: ReservationStatus
RESERVATION_STATUS_REFUSED: ReservationStatus
RESERVATION_STATUS_COMMITTED: ReservationStatus
RESERVATION_STATUS_CANCELLED: ReservationStatus
MOVEMENT_KIND_UNSPECIFIED: MovementKind
MOVEMENT_KIND_RESERVE: MovementKind
MOVEMENT_KIND_COMMIT: MovementKind
MOVEMENT_KIND_CANCEL: MovementKind
MOVEMENT_KIND_DEPOSIT: MovementKind

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("name", "currency", "territory_ids", "contract_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    TERRITORY_IDS_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    currency: str
    territory_ids: _containers.RepeatedScalarFieldContainer[str]
    contract_version: int
    def __init__(self, name: _Optional[str] = ..., currency: _Optional[str] = ..., territory_ids: _Optional[_Iterable[str]] = ..., contract_version: _Optional[int] = ...) -> None: ...

class CheckFundsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckFundsResponse(_message.Message):
    __slots__ = ("available", "reserved", "committed", "at")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    available: _money_pb2.Money
    reserved: _money_pb2.Money
    committed: _money_pb2.Money
    at: _timestamp_pb2.Timestamp
    def __init__(self, available: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reserved: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., committed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("reservation_id", "amount", "reference", "commune_id", "project_id")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    COMMUNE_ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    amount: _money_pb2.Money
    reference: str
    commune_id: str
    project_id: str
    def __init__(self, reservation_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[str] = ..., commune_id: _Optional[str] = ..., project_id: _Optional[str] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("reservation_id", "status", "reason", "amount", "at", "message")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    status: ReservationStatus
    reason: str
    amount: _money_pb2.Money
    at: _timestamp_pb2.Timestamp
    message: str
    def __init__(self, reservation_id: _Optional[str] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., reason: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class CommitRequest(_message.Message):
    __slots__ = ("reservation_id", "amount")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    amount: _money_pb2.Money
    def __init__(self, reservation_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class CommitResponse(_message.Message):
    __slots__ = ("reservation_id", "status", "committed", "released", "at")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    status: ReservationStatus
    committed: _money_pb2.Money
    released: _money_pb2.Money
    at: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[str] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., committed: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., released: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("reservation_id", "status", "released", "at")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    status: ReservationStatus
    released: _money_pb2.Money
    at: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[str] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., released: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Movement(_message.Message):
    __slots__ = ("id", "reservation_id", "kind", "amount", "at", "reference", "released", "cursor")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    id: str
    reservation_id: str
    kind: MovementKind
    amount: _money_pb2.Money
    at: _timestamp_pb2.Timestamp
    reference: str
    released: _money_pb2.Money
    cursor: str
    def __init__(self, id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., kind: _Optional[_Union[MovementKind, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reference: _Optional[str] = ..., released: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class StatementRequest(_message.Message):
    __slots__ = ("after_cursor", "limit")
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_cursor: str
    limit: int
    def __init__(self, after_cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class StatementResponse(_message.Message):
    __slots__ = ("movements", "next_cursor", "has_more")
    MOVEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    movements: _containers.RepeatedCompositeFieldContainer[Movement]
    next_cursor: str
    has_more: bool
    def __init__(self, movements: _Optional[_Iterable[_Union[Movement, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., has_more: _Optional[bool] = ...) -> None: ...
