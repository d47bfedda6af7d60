from comuna.consultations.v1 import events_pb2 as _events_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetCertifiedResultsRequest(_message.Message):
    __slots__ = ("consultation_id",)
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    def __init__(self, consultation_id: _Optional[str] = ...) -> None: ...
