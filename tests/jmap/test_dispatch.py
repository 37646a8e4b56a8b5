"""Processing a Request in memory: method-level errors (RFC 8620 §3.6.2), `using`, creation ids, references."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.jmap.context import CORE, CallContext, CoreLimits
from tidings.jmap.errors import MethodError, RequestError
from tidings.jmap.registry import Method

from .engine import USING, Engine
from .memory import TODO


def _responses(engine: Engine, calls: list[list[Any]], **extra: Any) -> list[list[Any]]:
    return list(engine.request(calls, **extra)["methodResponses"])


def test_unknown_method_is_unknownMethod_and_later_calls_still_run() -> None:
    out = _responses(Engine(), [["Todo/frobnicate", {}, "a"], ["Core/echo", {"x": 1}, "b"]])
    assert out == [["error", {"type": "unknownMethod", "description": "Unknown method 'Todo/frobnicate'."}, "a"],
                   ["Core/echo", {"x": 1}, "b"]]


def test_method_of_a_capability_missing_from_using_is_unknownMethod() -> None:
    out = _responses(Engine(), [["Todo/get", {"accountId": "a1"}, "a"]], using=[CORE])
    assert out[0][0] == "error" and out[0][1]["type"] == "unknownMethod"


def test_unknown_capability_in_using_is_a_request_error() -> None:
    with pytest.raises(RequestError) as info:
        Engine().request([], using=[CORE, "urn:example:nope"])
    assert info.value.kind == "unknownCapability"


def test_too_many_calls_is_the_maxCallsInRequest_limit() -> None:
    engine = Engine(CoreLimits(max_calls_in_request=2))
    assert len(_responses(engine, [["Core/echo", {}, str(i)] for i in range(2)])) == 2
    with pytest.raises(RequestError) as info:
        engine.request([["Core/echo", {}, str(i)] for i in range(3)])
    assert info.value.kind == "limit" and info.value.limit == "maxCallsInRequest"
    assert info.value.to_problem()["limit"] == "maxCallsInRequest"


@pytest.mark.parametrize(
    ("account", "expected"),
    [(None, "invalidArguments"), (7, "invalidArguments"), ("zz", "accountNotFound"),
     ("bare", "accountNotSupportedByMethod")],
)
def test_account_errors(account: Any, expected: str) -> None:
    args = {} if account is None else {"accountId": account}
    out = _responses(Engine(), [["Todo/get", args, "a"]])
    assert out[0][1]["type"] == expected


def test_writing_to_a_read_only_account_is_accountReadOnly_but_reading_is_fine() -> None:
    engine = Engine()
    out = _responses(engine, [["Todo/set", {"accountId": "ro", "create": {"k": {"title": "x"}}}, "a"],
                              ["Todo/get", {"accountId": "ro"}, "b"]])
    assert out[0][1]["type"] == "accountReadOnly"
    assert out[1][0] == "Todo/get"


def test_a_failing_handler_is_serverFail_without_details_and_nothing_is_committed() -> None:
    engine = Engine()

    def explode(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        with ctx.services.backend.write("a1") as tx:
            tx.objects["t99"] = {"id": "t99", "title": "half"}
            raise ZeroDivisionError("secret detail")

    engine.registry.add(Method("Todo/explode", TODO, explode, writes=True))
    out = _responses(engine, [["Todo/explode", {"accountId": "a1"}, "a"], ["Todo/get", {"accountId": "a1"}, "b"]])
    assert out[0][1]["type"] == "serverFail"
    assert "secret" not in str(out[0][1])
    assert out[1][1]["list"] == []


@pytest.mark.parametrize("kind", ["forbidden", "serverUnavailable", "serverPartialFail", "requestTooLarge"])
def test_method_errors_raised_by_handlers_reach_the_client_as_is(kind: str) -> None:
    engine = Engine()

    def fail(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
        raise MethodError(kind, "because")

    engine.registry.add(Method("Core/fail", CORE, fail, account_bound=False))
    assert _responses(engine, [["Core/fail", {}, "a"]]) == [["error", {"type": kind, "description": "because"}, "a"]]


def test_echo_returns_exactly_its_arguments() -> None:
    args = {"a": [1, {"b": None}], "c": "ü", "d": True, "e": -1.5}
    assert _responses(Engine(), [["Core/echo", args, "x"]]) == [["Core/echo", args, "x"]]


def test_result_reference_feeds_ids_from_a_query_into_a_get() -> None:
    engine = Engine()
    first, second = engine.create(title="one"), engine.create(title="two")
    out = _responses(engine, [
        ["Todo/query", {"accountId": "a1", "sort": [{"property": "title"}]}, "q"],
        ["Todo/get", {"accountId": "a1", "#ids": {"resultOf": "q", "name": "Todo/query", "path": "/ids"},
                      "properties": ["title"]}, "g"],
    ])
    assert [o["id"] for o in out[1][1]["list"]] == [first, second]


def test_result_reference_with_star_collects_and_flattens() -> None:
    engine = Engine()
    engine.create(title="one")
    out = _responses(engine, [
        ["Todo/get", {"accountId": "a1"}, "g"],
        ["Core/echo", {"#titles": {"resultOf": "g", "name": "Todo/get", "path": "/list/*/title"}}, "e"],
    ])
    assert out[1] == ["Core/echo", {"titles": ["one"]}, "e"]


@pytest.mark.parametrize(
    "reference",
    [
        {"resultOf": "nope", "name": "Core/echo", "path": "/x"},
        {"resultOf": "e", "name": "Todo/get", "path": "/x"},
        {"resultOf": "e", "name": "Core/echo", "path": "/missing"},
        {"resultOf": "e", "name": "Core/echo", "path": "x"},
        {"resultOf": "e", "name": "Core/echo"},
        "not an object",
    ],
)
def test_bad_result_references_are_invalidResultReference(reference: Any) -> None:
    out = _responses(Engine(), [["Core/echo", {"x": 1}, "e"], ["Core/echo", {"#y": reference}, "f"]])
    assert out[1][1]["type"] == "invalidResultReference"


def test_an_argument_given_directly_and_by_reference_is_invalidArguments() -> None:
    out = _responses(Engine(), [
        ["Core/echo", {"x": 1}, "e"],
        ["Core/echo", {"y": 1, "#y": {"resultOf": "e", "name": "Core/echo", "path": "/x"}}, "f"],
    ])
    assert out[1][1]["type"] == "invalidArguments"


def test_creation_ids_resolve_across_calls_and_come_back_in_createdIds() -> None:
    engine = Engine()
    out = engine.request(
        [
            ["Todo/set", {"accountId": "a1", "create": {"new": {"title": "x"}}}, "s"],
            ["Todo/get", {"accountId": "a1", "ids": ["#new", "#earlier"], "properties": ["title"]}, "g"],
        ],
        createdIds={"earlier": "t-old"},
    )
    created = out["methodResponses"][0][1]["created"]["new"]["id"]
    assert out["methodResponses"][1][1]["list"] == [{"id": created, "title": "x"}]
    assert out["methodResponses"][1][1]["notFound"] == ["t-old"]
    assert out["createdIds"] == {"earlier": "t-old", "new": created}


def test_createdIds_is_absent_from_the_response_when_the_request_has_none() -> None:
    engine = Engine()
    out = engine.request([["Todo/set", {"accountId": "a1", "create": {"n": {"title": "x"}}}, "s"]])
    assert "createdIds" not in out


def test_creation_ids_resolve_within_one_set() -> None:
    engine = Engine()
    out = engine.ok("Todo/set", {"create": {"n": {"title": "x"}}, "update": {"#n": {"title": "y"}},
                                 "destroy": []})
    todo_id = out["created"]["n"]["id"]
    assert out["updated"] == {todo_id: None}
    assert engine.ok("Todo/get", {"ids": [todo_id]})["list"][0]["title"] == "y"


def test_using_is_checked_for_every_capability_before_any_call_runs() -> None:
    engine = Engine()
    with pytest.raises(RequestError):
        engine.request([["Todo/set", {"accountId": "a1", "create": {"n": {"title": "x"}}}, "s"]],
                       using=[*USING, "urn:example:unknown"])
    assert engine.ok("Todo/get", {})["list"] == []
