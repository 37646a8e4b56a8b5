"""The generic /get /changes /set /query /queryChanges (RFC 8620 §5), on an in-memory data type."""

from __future__ import annotations

from typing import Any

import pytest

from tidings.jmap.context import CoreLimits

from .engine import Engine


@pytest.fixture
def engine() -> Engine:
    return Engine(CoreLimits(max_objects_in_get=5, max_objects_in_set=5))


# -- /get


def test_get_returns_requested_properties_plus_id_and_lists_unknown_ids(engine: Engine) -> None:
    todo = engine.create(title="a")
    out = engine.ok("Todo/get", {"ids": [todo, todo, "t404", "not valid!"], "properties": ["title"]})
    assert out["list"] == [{"id": todo, "title": "a"}]
    assert out["notFound"] == ["t404", "not valid!"]
    assert out["state"] == "1"


def test_get_fills_defaults_on_create_and_returns_them(engine: Engine) -> None:
    out = engine.ok("Todo/set", {"create": {"k": {"title": "a"}}})
    assert out["created"]["k"] == {"id": "t1", "created": 1, "done": False, "priority": 0, "list": "main",
                                   "meta": None}


@pytest.mark.parametrize(
    "args",
    [{"ids": "t1"}, {"ids": [1]}, {"properties": "title"}, {"properties": ["nope"]}, {"bogus": 1}],
)
def test_get_rejects_bad_arguments(engine: Engine, args: dict[str, Any]) -> None:
    assert engine.error("Todo/get", args) == "invalidArguments"


def test_get_over_maxObjectsInGet_is_requestTooLarge(engine: Engine) -> None:
    assert engine.error("Todo/get", {"ids": [f"t{i}" for i in range(6)]}) == "requestTooLarge"
    for i in range(6):
        engine.create(title=str(i))
    assert engine.error("Todo/get", {"ids": None}) == "requestTooLarge"


# -- /changes


def test_changes_reports_created_updated_destroyed_since_a_state(engine: Engine) -> None:
    kept, changed, gone = (engine.create(title=t) for t in "abc")
    state = engine.ok("Todo/get", {"ids": []})["state"]
    new = engine.create(title="d")
    engine.ok("Todo/set", {"update": {changed: {"done": True}}, "destroy": [gone]})
    out = engine.ok("Todo/changes", {"sinceState": state})
    assert (out["created"], out["updated"], out["destroyed"]) == ([new], [changed], [gone])
    assert out["oldState"] == state and out["hasMoreChanges"] is False
    assert kept not in out["created"] + out["updated"] + out["destroyed"]


def test_changes_with_maxChanges_walks_intermediate_states_to_the_end(engine: Engine) -> None:
    ids = [engine.create(title=str(i)) for i in range(5)]
    state, seen = "0", []
    for _ in range(10):
        out = engine.ok("Todo/changes", {"sinceState": state, "maxChanges": 2})
        assert len(out["created"]) + len(out["updated"]) + len(out["destroyed"]) <= 2
        seen += out["created"]
        state = out["newState"]
        if not out["hasMoreChanges"]:
            break
    assert seen == ids
    assert state == engine.ok("Todo/get", {"ids": []})["state"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"sinceState": "bogus"}, "cannotCalculateChanges"),
        ({"sinceState": "999"}, "cannotCalculateChanges"),
        ({"sinceState": 0}, "invalidArguments"),
        ({}, "invalidArguments"),
        ({"sinceState": "0", "maxChanges": 0}, "invalidArguments"),
        ({"sinceState": "0", "maxChanges": -1}, "invalidArguments"),
        ({"sinceState": "0", "extra": 1}, "invalidArguments"),
    ],
)
def test_changes_errors(engine: Engine, args: dict[str, Any], expected: str) -> None:
    assert engine.error("Todo/changes", args) == expected


# -- /set


def test_set_with_a_stale_ifInState_is_stateMismatch_and_changes_nothing(engine: Engine) -> None:
    state = engine.ok("Todo/get", {"ids": []})["state"]
    engine.create(title="a")
    assert engine.error("Todo/set", {"ifInState": state, "create": {"k": {"title": "b"}}}) == "stateMismatch"
    assert len(engine.ok("Todo/get", {})["list"]) == 1
    current = engine.ok("Todo/get", {"ids": []})["state"]
    assert engine.ok("Todo/set", {"ifInState": current, "create": {"k": {"title": "b"}}})["created"]


def test_set_over_maxObjectsInSet_is_requestTooLarge(engine: Engine) -> None:
    create = {str(i): {"title": str(i)} for i in range(6)}
    assert engine.error("Todo/set", {"create": create}) == "requestTooLarge"


@pytest.mark.parametrize(
    "args",
    [{"create": []}, {"create": "x"}, {"update": []}, {"update": 0}, {"destroy": {}}, {"destroy": [1]},
     {"destroy": False}, {"ifInState": 3}, {"unknown": True}],
)
def test_set_rejects_arguments_of_the_wrong_type(engine: Engine, args: dict[str, Any]) -> None:
    assert engine.error("Todo/set", args) == "invalidArguments"


def test_set_reports_each_set_error_type_and_applies_the_rest() -> None:
    engine = Engine()
    a, b = engine.create(title="a"), engine.create(title="b")
    out = engine.ok("Todo/set", {
        "create": {
            "ok": {"title": "fine"},
            "bad": {"title": 7},
            "unknown": {"title": "x", "colour": "red"},
            "serverset": {"title": "x", "id": "mine"},
            "notobject": 5,
            "no": {"title": "forbidden"},
        },
        "update": {
            a: {"title": "renamed"},
            "t404": {"title": "x"},
            b: {"title": "y"},
            "#nope": {"title": "z"},
        },
        "destroy": [b, "t405"],
    })
    assert set(out["created"]) == {"ok"}
    assert {k: v["type"] for k, v in out["notCreated"].items()} == {
        "bad": "invalidProperties", "unknown": "invalidProperties", "serverset": "invalidProperties",
        "notobject": "invalidProperties", "no": "forbidden",
    }
    assert out["notCreated"]["bad"]["properties"] == ["title"]
    assert out["notCreated"]["unknown"]["properties"] == ["colour"]
    assert out["updated"] == {a: None}
    assert {k: v["type"] for k, v in out["notUpdated"].items()} == {
        "t404": "notFound", b: "willDestroy", "#nope": "notFound",
    }
    assert out["destroyed"] == [b]
    assert out["notDestroyed"] == {"t405": {"type": "notFound"}}
    assert out["newState"] != out["oldState"]


def test_update_may_repeat_server_set_and_immutable_values_but_not_change_them(engine: Engine) -> None:
    todo = engine.create(title="a")
    current = engine.ok("Todo/get", {"ids": [todo]})["list"][0]
    # §5.3: a whole object passed back is fine while server-set values are unchanged.
    out = engine.ok("Todo/set", {"update": {todo: {**current, "title": "b"}}})
    assert out["updated"] == {todo: None}
    out = engine.ok("Todo/set", {"update": {todo: {"id": "t9", "list": "other", "created": 99}}})
    assert out["notUpdated"][todo]["type"] == "invalidProperties"
    assert out["notUpdated"][todo]["properties"] == ["created", "id", "list"]


def test_update_with_true_for_a_number_is_invalid_even_where_python_thinks_true_equals_one(engine: Engine) -> None:
    todo = engine.create(title="a", priority=1)
    out = engine.ok("Todo/set", {"update": {todo: {"priority": True}}})
    assert out["notUpdated"][todo]["properties"] == ["priority"]
    out = engine.ok("Todo/set", {"update": {todo: {"created": True}}})
    assert out["notUpdated"][todo]["properties"] == ["created"]


def test_patch_null_resets_to_the_default_and_nested_paths_patch_objects(engine: Engine) -> None:
    todo = engine.create(title="a", priority=3, meta={"tags": {"x": True}, "note": "n"})
    out = engine.ok("Todo/set", {"update": {todo: {"priority": None, "meta/tags/y": True, "meta/note": None}}})
    assert out["updated"] == {todo: None}
    got = engine.ok("Todo/get", {"ids": [todo]})["list"][0]
    assert got["priority"] == 0
    assert got["meta"] == {"tags": {"x": True, "y": True}}


@pytest.mark.parametrize(
    "patch",
    [
        {"meta/missing/x": 1},  # every part but the last must exist
        {"meta": {}, "meta/tags": {}},  # one path may not be a prefix of another
        {"meta/tags": {}, "meta!": 1, "meta": None},  # ... even when other paths sort between them
        {"title/x": 1},  # not an object
    ],
)
def test_bad_patches_are_invalidPatch(engine: Engine, patch: dict[str, Any]) -> None:
    todo = engine.create(title="a", meta={"tags": {}})
    out = engine.ok("Todo/set", {"update": {todo: patch}})
    assert out["notUpdated"][todo]["type"] in ("invalidPatch", "invalidProperties")
    assert out["notUpdated"][todo]["type"] == ("invalidProperties" if "meta!" in patch else "invalidPatch")


def test_a_patch_that_is_not_an_object_is_invalidPatch(engine: Engine) -> None:
    todo = engine.create(title="a")
    assert engine.ok("Todo/set", {"update": {todo: [1]}})["notUpdated"][todo]["type"] == "invalidPatch"


def test_a_rejected_create_leaves_no_trace_in_state_or_changes(engine: Engine) -> None:
    state = engine.ok("Todo/get", {"ids": []})["state"]
    out = engine.ok("Todo/set", {"create": {"x": {"title": "forbidden"}}})
    assert out["newState"] == state
    assert engine.ok("Todo/changes", {"sinceState": state})["created"] == []


# -- /query


@pytest.fixture
def listed(engine: Engine) -> list[str]:
    return [engine.create(title=t, done=d, priority=p) for t, d, p in
            [("apple", False, 2), ("banana", True, 1), ("cherry", False, 3), ("date", True, 2), ("elder", False, 1)]]


def _query(engine: Engine, **args: Any) -> dict[str, Any]:
    return engine.ok("Todo/query", args)


def test_query_filters_with_and_or_not(engine: Engine, listed: list[str]) -> None:
    a, b, c, d, e = listed
    assert _query(engine, filter={"done": True})["ids"] == [b, d]
    assert _query(engine, filter={"operator": "NOT", "conditions": [{"done": True}]})["ids"] == [a, c, e]
    assert _query(engine, filter={"operator": "OR", "conditions": [{"titleContains": "rr"},
                                                                  {"titleContains": "ana"}]})["ids"] == [b, c]
    assert _query(engine, filter={"operator": "AND", "conditions": [{"done": False},
                                                                   {"titleContains": "e"}]})["ids"] == [a, c, e]


def test_query_windows_by_position_anchor_and_limit(engine: Engine, listed: list[str]) -> None:
    a, b, c, d, e = listed
    assert _query(engine, position=1, limit=2, calculateTotal=True) | {"queryState": None} == {
        "accountId": "a1", "queryState": None, "canCalculateChanges": True, "position": 1, "ids": [b, c], "total": 5,
    }
    assert _query(engine, position=-2)["ids"] == [d, e]
    assert _query(engine, position=-2)["position"] == 3
    assert _query(engine, position=-99)["ids"] == listed
    assert _query(engine, position=9)["ids"] == []
    assert _query(engine, anchor=c, anchorOffset=-1, limit=2)["ids"] == [b, c]
    assert _query(engine, anchor=c, anchorOffset=-9, limit=1)["ids"] == [a]
    assert _query(engine, anchor=c, position=4)["ids"] == [c, d, e]  # position ignored with an anchor
    assert _query(engine, anchorOffset=3)["ids"] == listed  # anchorOffset ignored without an anchor
    assert "total" not in _query(engine)


def test_query_clamps_limit_to_the_server_maximum_and_says_so(engine: Engine, listed: list[str]) -> None:
    assert _query(engine, limit=1000)["limit"] == 50
    assert "limit" not in _query(engine, limit=3)


def test_query_sorts_by_several_comparators(engine: Engine, listed: list[str]) -> None:
    a, b, c, d, e = listed
    ids = _query(engine, sort=[{"property": "priority", "isAscending": False}, {"property": "title"}])["ids"]
    assert ids == [c, a, d, b, e]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"anchor": "t404"}, "anchorNotFound"),
        ({"sort": [{"property": "done"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": []}, "invalidArguments"),
        ({"limit": -1}, "invalidArguments"),
        ({"position": "1"}, "invalidArguments"),
        ({"position": 2**60}, "invalidArguments"),
        ({"calculateTotal": 1}, "invalidArguments"),
        ({"sort": [{"property": "title", "isAscending": "yes"}]}, "invalidArguments"),
        ({"sort": [{"property": "title", "extra": 1}]}, "invalidArguments"),
        ({"sort": {}}, "invalidArguments"),
        ({"anchor": 5}, "invalidArguments"),
        ({"nope": 1}, "invalidArguments"),
    ],
)
def test_query_errors(engine: Engine, listed: list[str], args: dict[str, Any], expected: str) -> None:
    assert engine.error("Todo/query", args) == expected


def test_deeply_nested_filters_are_refused_not_crashed_on(engine: Engine) -> None:
    node: dict[str, Any] = {"done": True}
    for _ in range(100):
        node = {"operator": "NOT", "conditions": [node]}
    assert engine.error("Todo/query", {"filter": node}) == "unsupportedFilter"


# -- /queryChanges


def test_query_changes_removes_changed_ids_and_adds_them_back_at_their_new_index(
    engine: Engine, listed: list[str]
) -> None:
    a, b, c, _, e = listed
    before = _query(engine, filter={"done": False})
    engine.ok("Todo/set", {"update": {b: {"done": False}, c: {"done": True}}, "destroy": [e]})
    out = engine.ok("Todo/queryChanges", {"filter": {"done": False}, "sinceQueryState": before["queryState"],
                                          "calculateTotal": True})
    assert set(out["removed"]) >= {c, e}
    assert out["added"] == [{"id": b, "index": 1}]
    assert out["total"] == 2
    # Replaying the changes on the old results gives the new results (RFC 8620 §5.6).
    ids = [i for i in before["ids"] if i not in out["removed"]]
    for item in out["added"]:
        ids.insert(item["index"], item["id"])
    assert ids == _query(engine, filter={"done": False})["ids"] == [a, b]
    assert out["newQueryState"] == _query(engine)["queryState"]


def test_query_changes_with_too_few_maxChanges_is_tooManyChanges(engine: Engine, listed: list[str]) -> None:
    state = _query(engine)["queryState"]
    engine.ok("Todo/set", {"update": {i: {"title": "z" + i} for i in listed[:3]}})
    assert engine.error("Todo/queryChanges", {"sinceQueryState": state, "maxChanges": 2}) == "tooManyChanges"
    out = engine.ok("Todo/queryChanges", {"sinceQueryState": state, "maxChanges": 6, "upToId": listed[0]})
    assert len(out["removed"]) == 3


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"sinceQueryState": "junk"}, "cannotCalculateChanges"),
        ({}, "invalidArguments"),
        ({"sinceQueryState": "0", "maxChanges": -1}, "invalidArguments"),
        ({"sinceQueryState": "0", "upToId": 4}, "invalidArguments"),
        ({"sinceQueryState": "0", "position": 0}, "invalidArguments"),
        ({"sinceQueryState": "0", "filter": {"colour": 1}}, "unsupportedFilter"),
    ],
)
def test_query_changes_errors(engine: Engine, args: dict[str, Any], expected: str) -> None:
    assert engine.error("Todo/queryChanges", args) == expected
