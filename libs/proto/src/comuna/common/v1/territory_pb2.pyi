from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TerritoryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TERRITORY_KIND_UNSPECIFIED: _ClassVar[TerritoryKind]
    TERRITORY_KIND_COUNTRY: _ClassVar[TerritoryKind]
    TERRITORY_KIND_STATE: _ClassVar[TerritoryKind]
    TERRITORY_KIND_MUNICIPALITY: _ClassVar[TerritoryKind]
    TERRITORY_KIND_COMMUNE: _ClassVar[TerritoryKind]
    TERRITORY_KIND_COMMUNAL_CIRCUIT: _ClassVar[TerritoryKind]
    TERRITORY_KIND_COMMUNAL_COUNCIL: _ClassVar[TerritoryKind]
    TERRITORY_KIND_PARISH: _ClassVar[TerritoryKind]
TERRITORY_KIND_UNSPECIFIED: TerritoryKind
TERRITORY_KIND_COUNTRY: TerritoryKind
TERRITORY_KIND_STATE: TerritoryKind
TERRITORY_KIND_MUNICIPALITY: TerritoryKind
TERRITORY_KIND_COMMUNE: TerritoryKind
TERRITORY_KIND_COMMUNAL_CIRCUIT: TerritoryKind
TERRITORY_KIND_COMMUNAL_COUNCIL: TerritoryKind
TERRITORY_KIND_PARISH: TerritoryKind

class TerritoryRef(_message.Message):
    __slots__ = ("id", "code", "kind", "name")
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    id: str
    code: str
    kind: TerritoryKind
    name: str
    def __init__(self, id: _Optional[str] = ..., code: _Optional[str] = ..., kind: _Optional[_Union[TerritoryKind, str]] = ..., name: _Optional[str] = ...) -> None: ...
