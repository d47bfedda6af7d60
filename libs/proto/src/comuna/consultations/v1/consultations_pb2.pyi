from comuna.common.v1 import options_pb2 as _options_pb2
from comuna.consultations.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListCertifiedResultsRequest(_message.Message):
    __slots__ = ("consultation_id", "page_size", "page_token")
    CONSULTATION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    consultation_id: str
    page_size: int
    page_token: str
    def __init__(self, consultation_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCertifiedResultsResponse(_message.Message):
    __slots__ = ("summary", "results", "next_page_token")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    summary: _events_pb2.ConsultationCertified
    results: _containers.RepeatedCompositeFieldContainer[_events_pb2.CommuneResult]
    next_page_token: str
    def __init__(self, summary: _Optional[_Union[_events_pb2.ConsultationCertified, _Mapping]] = ..., results: _Optional[_Iterable[_Union[_events_pb2.CommuneResult, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
