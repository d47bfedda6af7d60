"""Property: no input makes any endpoint of any service answer 5xx, and every error is problem+json.

Every operation of every service's OpenAPI document gets generated path and query parameters
and JSON bodies built from its schemas, plausible values (schema examples, known ids) with
one hostile value put in (NUL, lone surrogates, huge and negative numbers, non-ASCII digits,
very long strings) so that it gets past validation to the use case and the database; with a
token of each role, of all of them, or none at all; against the four services running
in-process on the real PostgreSQL and NATS.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.cli import openapi_document
from tests.support import platform as platform_people
from tests.support.issuer import TestIssuer
from tests.support.platform import SERVICES, Platform, running_platform

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROLES = ("operator", "registrar", "spokesperson", "table_officer", "overseer", "service")
HOSTILE_STRINGS = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "２０４０-Q1",
    "٢٠٢٦-Q1",
    "9223372036854775808",
    "-9223372036854775809",
    "-1",
    "0",
    "1e309",
    "NaN",
    "x" * 5000,
    "' OR 1=1 --",
    "../../etc/passwd",
    "%00",
    " ",
    "",
    "VE.01",
    "VE..01",
    "😀",
    "\u202e",
    "null",
    "[]",
]
HUGE_INTS = [2**31, 2**63, 2**63 - 1, -(2**63) - 1, 10**30, -1, 0]


def _operations() -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    found = []
    for service in SERVICES:
        document = openapi_document(importlib.import_module(f"comuna_{service}.service").SPEC)
        for path, item in document["paths"].items():
            for method, operation in item.items():
                found.append((service, method.upper(), path, operation, document))
    return found


OPERATIONS = _operations()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Platform]:
    # With its workers: /readyz reports them, and it must be 200 while everything is up.
    async with running_platform(embedded_postgres, embedded_nats, issuer, workers=True) as running:
        # One real consultation, so generated ids can hit existing rows too.
        response = await running.services["consultations"].client.post(
            "/v1/consultations",
            json={
                "code": "2030-Q1",
                "title": "Fuzzed",
                "assemblies_open_at": "2030-01-01T00:00:00Z",
                "candidates_close_at": "2030-01-15T00:00:00Z",
                "roll_cutoff_at": "2030-01-20T00:00:00Z",
                "voting_opens_at": "2030-02-01T00:00:00Z",
                "voting_closes_at": "2030-02-02T00:00:00Z",
                "certification_opens_at": "2030-02-03T00:00:00Z",
            },
            headers=issuer.headers(subject=platform_people.OPERATOR, roles=[]),
        )
        assert response.status_code == 201, response.text
        running.territory_ids["consultation"] = uuid.UUID(response.json()["id"])
        yield running


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def plausible(schema: dict[str, Any], document: dict[str, Any], known_ids: list[str], depth: int = 0) -> Any:
    """A strategy of values that match the schema well enough to get past validation, so that a
    single hostile value put into them (see `requests`) reaches the use case and the database."""
    schema = _resolve(schema, document)
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema["oneOf"]
        return st.one_of([plausible(option, document, known_ids, depth) for option in options])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    examples = [*schema.get("examples", []), *([schema["example"]] if "example" in schema else [])]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "uuid":
            return st.sampled_from(known_ids) | st.uuids().map(str)
        if fmt == "date-time":
            return st.sampled_from(["2030-01-01T00:00:00Z", "2030-02-01T00:00:00+04:00", "2031-12-31T23:59:59Z"])
        if fmt == "date":
            return st.sampled_from(["1970-01-01", "2010-06-30", "0001-01-01", "9999-12-31"])
        # Real territory codes, so lookups by code find rows and go on to use the other values.
        return st.sampled_from(examples or ["VE", "VE.01", "VE.01.01", "VE.01.01.C1", "Comuna", "2031-Q2"])
    if kind == "integer":
        low, high = schema.get("minimum", -5), schema.get("maximum", 2000)
        return st.integers(min_value=low, max_value=max(low, min(high, low + 2000)))
    if kind == "number":
        return st.floats(min_value=0, max_value=1000, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        if depth >= 4:
            return st.just([])
        return st.lists(plausible(schema.get("items", {}), document, known_ids, depth + 1), min_size=1, max_size=3)
    if kind == "object" or "properties" in schema:
        if depth >= 4:
            return st.just({})
        properties = {
            name: plausible(prop, document, known_ids, depth + 1) for name, prop in schema.get("properties", {}).items()
        }
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {name: strategy for name, strategy in properties.items() if name in required},
            optional={name: strategy for name, strategy in properties.items() if name not in required},
        )
    return st.none() | st.text(max_size=10) | st.integers()


# What PostgreSQL cannot store at all: a third of the hostile values.
UNSTORABLE = ["\x00", "a\x00b", "VE.01\x00", "\ud800", "x\udfffy"]
HOSTILE = (
    st.sampled_from(UNSTORABLE)
    | st.sampled_from([*HOSTILE_STRINGS, *HUGE_INTS])
    | st.text(st.characters() | st.sampled_from("\x00\ud800\udc00"), max_size=30)
)


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [at] + [leaf for key, item in value.items() for leaf in _leaves(item, (*at, key))]
    if isinstance(value, list):
        return [at] + [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*at, index))]
    return [at]


def _replace(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    head, rest = at[0], at[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _quote(value: str) -> str:
    # Lone surrogates cannot be UTF-8: send their (invalid) bytes, as a raw client could.
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(
    draw: st.DrawFn, operation: dict[str, Any], document: dict[str, Any], known_ids: list[str]
) -> dict[str, Any]:
    """A plausible request with (usually) exactly one hostile value: in a path or query
    parameter, a body field (at any depth) or as an extra body key."""
    parameters = operation.get("parameters", [])
    values: dict[tuple[str, str], Any] = {
        (p["in"], p["name"]): draw(plausible(p.get("schema", {}), document, known_ids)) for p in parameters
    }
    content = operation.get("requestBody", {}).get("content", {})
    body: Any = None
    if "application/json" in content:
        body = draw(plausible(content["application/json"]["schema"], document, known_ids))
    targets: list[Any] = [("parameter", key) for key in values]
    if body is not None:
        targets += [("body", leaf) for leaf in _leaves(body)] + [("extra_key", ())]
    target = draw(st.sampled_from(targets)) if targets and draw(st.integers(0, 9)) else None
    if target is not None:
        kind, where = target
        hostile = draw(HOSTILE)
        if kind == "parameter":
            values[where] = hostile
        elif kind == "body":
            body = _replace(body, where, hostile)
        elif isinstance(body, dict):
            body = {**body, draw(st.sampled_from(["x\x00", "\ud800", "extra"])): hostile}
    path_values = {name: _text(value) for (location, name), value in values.items() if location == "path"}
    query = [
        (name, _text(value))
        for (location, name), value in values.items()
        if location == "query"
        and value is not None
        and (target == ("parameter", (location, name)) or draw(st.booleans()))
    ]
    return {
        "path_values": path_values,
        "query": "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query),
        "body": None if body is None else json.dumps(body, ensure_ascii=True).encode(),
        # Every role alone and anonymous; and, as often as all of those, every role at once, so
        # that hostile values also get past the role checks to the use cases.
        "role": draw(st.sampled_from((None, *ROLES, *["all"] * 7))),
    }


_TOKENS: dict[str, str] = {}


# Who acts in each role: people hold assignments in the platform's identity (a table officer
# needs a consultation, so "table_officer" is a person with none); services are a token role.
_SUBJECTS = {
    "operator": platform_people.OPERATOR,
    "registrar": platform_people.REGISTRAR,
    "spokesperson": platform_people.SPOKESPERSON,
    "overseer": platform_people.OVERSEER,
    "table_officer": "no-assignment",
    "all": platform_people.EVERYTHING,
}


def _token(issuer: TestIssuer, role: str) -> str:
    # Minted once per role: the verifier caches it, and signing is the slow part of a request.
    if role not in _TOKENS:
        if role == "service":
            _TOKENS[role] = issuer.token(roles=["service"], ttl=3600)
        else:
            _TOKENS[role] = issuer.token(subject=_SUBJECTS[role], roles=[], ttl=3600)
    return _TOKENS[role]


@pytest.mark.parametrize(
    ("service", "method", "path", "operation", "document"),
    OPERATIONS,
    ids=[f"{service}:{method}:{path}" for service, method, path, _, _ in OPERATIONS],
)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_no_input_makes_an_endpoint_fail(
    platform: Platform,
    issuer: TestIssuer,
    service: str,
    method: str,
    path: str,
    operation: dict[str, Any],
    document: dict[str, Any],
    data: st.DataObject,
) -> None:
    known_ids = [str(value) for value in platform.territory_ids.values()]
    request = data.draw(requests(operation, document, known_ids))
    url = path
    for name, value in request["path_values"].items():
        url = url.replace("{" + name + "}", _quote(value))
    if request["query"]:
        url += "?" + request["query"]
    headers = {"content-type": "application/json"} if request["body"] is not None else {}
    if request["role"] is not None:
        headers["authorization"] = f"Bearer {_token(issuer, request['role'])}"
    response = await platform.services[service].client.request(method, url, content=request["body"], headers=headers)
    # No 5xx at all: every dependency is up here, so not even a 503 is excusable.
    assert response.status_code < 500, (
        f"{method} {url} as {request['role']} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json", (method, url, response.text[:300])
        assert response.json()["status"] == response.status_code
