from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
EVENT_SUBJECT_FIELD_NUMBER: _ClassVar[int]
event_subject: _descriptor.FieldDescriptor
ALLOWED_CALLERS_FIELD_NUMBER: _ClassVar[int]
allowed_callers: _descriptor.FieldDescriptor
