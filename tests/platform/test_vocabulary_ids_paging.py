"""The shared vocabulary helpers: CHECK text from enums, ids, and page tokens."""

from __future__ import annotations

import base64
import uuid
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_platform.errors import InvalidInput
from comuna_platform.ids import DeterministicIds, parse_id, try_parse_id
from comuna_platform.paging import decode_page_token, encode_page_token, page_size_of
from comuna_platform.vocabulary import one_of


class Colour(StrEnum):
    RED = "red"
    DARK_BLUE = "dark_blue"


def test_check_text_lists_the_enum_in_declaration_order() -> None:
    assert one_of("colour", Colour) == "colour IN ('red', 'dark_blue')"
    assert one_of("colour", [Colour.DARK_BLUE]) == "colour IN ('dark_blue')"
    with pytest.raises(ValueError):
        one_of("colour", [])


def test_a_value_that_would_need_quoting_is_refused() -> None:
    class Bad(StrEnum):
        QUOTE = "it's"

    with pytest.raises(ValueError):
        one_of("x", Bad)


@pytest.mark.parametrize("raw", ["", "nope", "\x00", "123e4567-e89b-12d3-a456-42661417400"])
def test_parse_id_refuses_with_a_stable_code_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_id(raw, "commune_id")
    assert refused.value.code == "invalid_id" and refused.value.extra["field"] == "commune_id"
    assert try_parse_id(raw) is None


def test_parse_id_accepts_any_spelling_of_a_uuid() -> None:
    value = uuid.uuid4()
    assert parse_id(str(value).upper(), "id") == value == try_parse_id("{" + str(value) + "}")
    assert try_parse_id(None) is None and try_parse_id(42) is None


def test_deterministic_ids_keep_the_values_funding_has_always_produced() -> None:
    namespace = uuid.UUID("0b6f3c5e-9a51-4f0e-8a53-6d2f4c1e7a90")
    milestone = uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert DeterministicIds(namespace).derive("disbursement", milestone) == uuid.uuid5(
        namespace, f"disbursement/{milestone}"
    )


@given(
    st.lists(
        st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, categories=["L", "N", "P"]), max_size=60),
        min_size=1,
        max_size=3,
    )
)
def test_text_keys_round_trip(key: list[str]) -> None:
    kinds = [str] * len(key)
    assert decode_page_token(encode_page_token(*key), kinds) == tuple(key)


@given(st.integers(min_value=0, max_value=2**63 - 1), st.uuids())
def test_int_and_uuid_keys_round_trip(seq: int, value: uuid.UUID) -> None:
    assert decode_page_token(encode_page_token(seq, value), [int, uuid.UUID]) == (seq, value)


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("token", "kinds"),
    [
        ("%%%", [str]),
        ("Zm9v", [str]),  # "foo": no version
        (_raw("v1:not json"), [str]),
        (_raw('v1:{"a":1}'), [str]),
        (_raw('v1:["a","b"]'), [str]),  # wrong arity
        (_raw('v1:["a\\u0000"]'), [str]),  # NUL never reaches the database
        (_raw("v1:[9223372036854775808]"), [int]),  # past bigint
        (_raw("v1:[-1]"), [int]),
        (_raw("v1:[true]"), [int]),
        (_raw('v1:["5"]'), [int]),
        (_raw('v1:["not-a-uuid"]'), [uuid.UUID]),
        ("A" * 600, [str]),
        ("\x00", [str]),
    ],
)
def test_a_token_we_did_not_issue_is_invalid_input(token: str, kinds: list[type]) -> None:
    with pytest.raises(InvalidInput) as refused:
        decode_page_token(token, kinds)
    assert refused.value.code == "invalid_page_token"


def test_empty_token_is_the_first_page_and_tokens_are_versioned() -> None:
    assert decode_page_token("", [str]) is None
    token = encode_page_token("VE.01")
    assert base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).startswith(b"v1:")


def test_page_sizes_follow_aip_158() -> None:
    assert page_size_of(0, default=100, maximum=500) == 100
    assert page_size_of(10_000, default=100, maximum=500) == 500
    assert page_size_of(7, default=100, maximum=500) == 7
    with pytest.raises(InvalidInput) as refused:
        page_size_of(-5, default=100, maximum=500)
    assert refused.value.code == "invalid_page_size"
