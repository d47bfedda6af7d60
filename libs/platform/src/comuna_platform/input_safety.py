"""Characters PostgreSQL cannot store, found wherever a request carries text.

PostgreSQL `text` refuses NUL (U+0000), and a lone UTF-16 surrogate (U+D800..U+DFFF, which JSON's
`\\ud800` escape can produce) cannot even be encoded as UTF-8. Either one reaching a query used to
come back as a 500. REST (`comuna_platform.http.edges`) and gRPC (`comuna_platform.rpc`) refuse
them at the edge with this one rule, naming where they were found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UNSTORABLE_MESSAGE = "contains a character that cannot be stored (NUL or a lone surrogate)"

# A path into a request: ("query", "after"), ("body", "milestones", 0, "note"), ...
Location = tuple[str | int, ...]


def is_unstorable(text: str) -> bool:
    return UNSTORABLE.search(text) is not None


@dataclass(frozen=True)
class InputProblem:
    location: Location
    message: str
    type: str

    def as_error(self) -> dict[str, Any]:
        """The shape of one entry of a 422 problem's `errors`, as FastAPI's validation uses."""
        return {"location": [str(part) for part in self.location], "message": self.message, "type": self.type}


def unstorable(location: Location) -> InputProblem:
    return InputProblem(location, UNSTORABLE_MESSAGE, "invalid_characters")


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers the keys it saw more than once."""

    duplicate_keys: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicates: list[str] = []
        for key, _ in pairs:
            if key in seen:
                duplicates.append(key)
            seen.add(key)
        obj.duplicate_keys = tuple(duplicates)
    return obj


def decode_json(body: bytes) -> Any:
    """`json.loads` that keeps duplicate keys visible (the last one would silently win)."""
    return json.loads(body, object_pairs_hook=_object_pairs)


def json_problems(document: Any, root: Location = ("body",)) -> list[InputProblem]:
    """Duplicate keys and unstorable characters (in keys and values) of a decoded JSON document.

    Iterative, not recursive: a deeply nested document that `json` accepted must not overflow
    the stack here.
    """
    problems: list[InputProblem] = []
    stack: list[tuple[Location, Any]] = [(root, document)]
    while stack:
        location, value = stack.pop()
        if isinstance(value, str):
            if is_unstorable(value):
                problems.append(unstorable(location))
        elif isinstance(value, dict):
            for key in getattr(value, "duplicate_keys", ()):
                problems.append(InputProblem((*location, key), "appears more than once in the object", "duplicate_key"))
            for key, item in value.items():
                if is_unstorable(key):
                    problems.append(unstorable((*location, key)))
                stack.append(((*location, key), item))
        elif isinstance(value, list):
            stack.extend(((*location, index), item) for index, item in enumerate(value))
    problems.sort(key=lambda problem: [str(part) for part in problem.location])
    return problems


def message_problems(message: Message, root: Location = ()) -> list[InputProblem]:
    """Unstorable characters in every string field of a protobuf message, nested ones included."""
    return [unstorable(location) for location in _unstorable_fields(message, root)]


def _unstorable_fields(message: Message, location: Location) -> Iterator[Location]:
    for field, value in message.ListFields():
        here = (*location, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for key, item in value.items():
                if isinstance(key, str) and is_unstorable(key):
                    yield (*here, key)
                yield from _scalar_or_message(value_field, item, (*here, str(key)))
        elif _is_repeated(field):
            for index, item in enumerate(value):
                yield from _scalar_or_message(field, item, (*here, index))
        else:
            yield from _scalar_or_message(field, value, here)


def _scalar_or_message(field: FieldDescriptor, value: Any, location: Location) -> Iterator[Location]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        yield from _unstorable_fields(value, location)
    elif field.type == FieldDescriptor.TYPE_STRING and is_unstorable(value):
        yield location


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)
