"""Parsing the Request object (RFC 8620 §3.3) and its request-level errors (§3.6.1)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.jmap.errors import RequestError
from tidings.jmap.request import MAX_DEPTH, parse_request, request_from_json

from .engine import Engine


def _kind(body: bytes) -> str:
    with pytest.raises(RequestError) as info:
        parse_request(body)
    return info.value.kind


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"nope", b'{"using": [], "methodCalls": []', b"\xff\xfe{}", b'{"a": "\xc3"}',
     b'{"a": "\\ud800"}', b"[1e400]", b"NaN", b'{"a": 1} trailing'],
)
def test_malformed_or_invalid_utf8_json_is_notJSON(body: bytes) -> None:
    assert _kind(body) == "notJSON"


def test_nesting_deeper_than_the_limit_is_notJSON_and_at_the_limit_is_fine() -> None:
    def nested(depth: int) -> bytes:
        inner = b"[" * (depth - 4) + b"]" * (depth - 4)
        return b'{"using": [], "methodCalls": [["Core/echo", {"x": ' + inner + b'}, "c"]]}'

    assert parse_request(nested(MAX_DEPTH)).method_calls[0].name == "Core/echo"
    assert _kind(nested(MAX_DEPTH + 1)) == "notJSON"
    assert _kind(b"[" * 5000 + b"]" * 5000) == "notJSON"


def test_many_brackets_inside_strings_do_not_count_as_nesting() -> None:
    body = orjson.dumps({"using": [], "methodCalls": [["Core/echo", {"s": "[" * 1000}, "c"]]})
    assert parse_request(body).method_calls[0].arguments == {"s": "[" * 1000}


@pytest.mark.parametrize(
    "value",
    [
        [], "x", 1, None, {}, {"using": []}, {"methodCalls": []}, {"using": "core", "methodCalls": []},
        {"using": [1], "methodCalls": []}, {"using": [], "methodCalls": {}},
        {"using": [], "methodCalls": [["a", {}]]}, {"using": [], "methodCalls": [["a", [], "c"]]},
        {"using": [], "methodCalls": [[1, {}, "c"]]}, {"using": [], "methodCalls": [["a", {}, 1]]},
        {"using": [], "methodCalls": ["a"]}, {"using": [], "methodCalls": [], "createdIds": []},
        {"using": [], "methodCalls": [], "createdIds": {"a": 1}},
    ],
)
def test_json_that_is_not_a_request_is_notRequest(value: Any) -> None:
    with pytest.raises(RequestError) as info:
        request_from_json(value)
    assert info.value.kind == "notRequest"


def test_unknown_request_properties_are_ignored() -> None:
    request = request_from_json({"using": ["u"], "methodCalls": [], "whatever": 1})
    assert request.using == ["u"] and request.method_calls == []


def test_problem_documents_carry_type_status_detail_and_limit() -> None:
    problem = RequestError("limit", "too big", limit="maxSizeRequest").to_problem()
    assert problem == {"type": "urn:ietf:params:jmap:error:limit", "status": 400, "detail": "too big",
                       "limit": "maxSizeRequest"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)
names = st.sampled_from(["Core/echo", "Todo/get", "Todo/set", "Todo/query", "Todo/changes", "Todo/queryChanges",
                         "Nope/get", ""])
keys = st.sampled_from(["accountId", "ids", "properties", "create", "update", "destroy", "ifInState", "filter",
                        "sort", "position", "anchor", "limit", "sinceState", "sinceQueryState", "maxChanges",
                        "#ids", "calculateTotal", "anchorOffset", "upToId"])
arguments = st.dictionaries(keys, json_values | st.sampled_from(["a1", "t1", "#k", "0"]), max_size=5)
calls = st.lists(st.tuples(names, arguments, st.text(max_size=3)).map(list), max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | json_values.map(orjson.dumps))
def test_the_parser_answers_any_bytes_with_a_request_or_a_request_error(body: bytes) -> None:
    try:
        parse_request(body)
    except RequestError as error:
        assert error.kind in ("notJSON", "notRequest")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls, st.lists(st.sampled_from(["urn:ietf:params:jmap:core", "urn:example:todo"]), max_size=2))
def test_generated_requests_get_responses_or_method_errors_but_never_serverFail(
    method_calls: list[list[Any]], using: list[str]
) -> None:
    engine = Engine()
    engine.create(title="seed")
    body = orjson.dumps({"using": using, "methodCalls": method_calls})
    response = engine.raw(body)
    assert len(response["methodResponses"]) == len(method_calls)
    for name, args, _ in response["methodResponses"]:
        assert name != "error" or args["type"] != "serverFail", args
