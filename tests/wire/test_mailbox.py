"""Mailbox (RFC 8621 §2) over a real socket: every property, /get /changes /set /query /queryChanges."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from ..helpers import JmapClient, LiveServer

PROPERTIES = {"id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails", "totalThreads",
              "unreadThreads", "myRights", "isSubscribed"}
RIGHTS = {"mayReadItems", "mayAddItems", "mayRemoveItems", "maySetSeen", "maySetKeywords", "mayCreateChild",
          "mayRename", "mayDelete", "maySubmit"}


def _create(client: JmapClient, **boxes: dict[str, Any]) -> dict[str, Any]:
    return client.ok("Mailbox/set", {"create": boxes})


def _ids(client: JmapClient, **boxes: dict[str, Any]) -> dict[str, str]:
    out = _create(client, **boxes)
    assert not out["notCreated"], out["notCreated"]
    return {k: v["id"] for k, v in out["created"].items()}


def _by_role(client: JmapClient) -> dict[str, dict[str, Any]]:
    return {m["role"]: m for m in client.ok("Mailbox/get", {"ids": None})["list"] if m["role"]}


def _set_counts(live: LiveServer, mailbox_id: str, total: int) -> None:
    with sqlite3.connect(live.tidings.store.path) as conn:  # type: ignore[attr-defined]
        conn.execute("UPDATE mailboxes SET total_emails = ? WHERE id = ?", (total, int(mailbox_id[1:])))


def test_every_property_is_returned_with_the_right_types(client: JmapClient) -> None:
    boxes = client.ok("Mailbox/get", {"ids": None})["list"]
    assert len(boxes) == 6
    for box in boxes:
        assert set(box) == PROPERTIES
        assert set(box["myRights"]) == RIGHTS
        assert isinstance(box["sortOrder"], int) and box["parentId"] is None and box["isSubscribed"] is True
    inbox = _by_role(client)["inbox"]
    assert inbox["myRights"]["mayDelete"] is False and inbox["myRights"]["mayRename"] is False


def test_get_with_properties_returns_only_those_plus_id(client: JmapClient) -> None:
    out = client.ok("Mailbox/get", {"ids": None, "properties": ["name", "role"]})
    assert all(set(m) == {"id", "name", "role"} for m in out["list"])
    assert client.error("Mailbox/get", {"properties": ["colour"]})["type"] == "invalidArguments"


def test_create_returns_defaults_and_server_set_properties(client: JmapClient) -> None:
    out = _create(client, a={"name": "Projects"})
    created = out["created"]["a"]
    assert created["parentId"] is None and created["role"] is None and created["sortOrder"] == 0
    assert created["isSubscribed"] is True and created["totalEmails"] == 0 and created["myRights"]["mayDelete"]
    assert "name" not in created


def test_create_reports_a_name_the_server_normalised(client: JmapClient) -> None:
    out = _create(client, a={"name": "Cafe\u0301"})
    assert out["created"]["a"]["name"] == "Café"


@pytest.mark.parametrize(
    ("box", "bad"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 491}, "name"),
        ({"name": "tab\there"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "Inbox2", "role": "inbox"}, "role"),
        ({"name": "r", "role": "nonsense"}, "role"),
        ({"name": "p", "parentId": "M999"}, "parentId"),
        ({"name": "p", "parentId": "not an id"}, "parentId"),
        ({"name": "s", "sortOrder": -1}, "sortOrder"),
        ({"name": "s", "isSubscribed": "yes"}, "isSubscribed"),
        ({"name": "s", "totalEmails": 3}, "totalEmails"),
        ({"name": "Inbox"}, "name"),  # a sibling has that name
    ],
)
def test_invalid_creates_name_the_bad_property(client: JmapClient, box: dict[str, Any], bad: str) -> None:
    out = _create(client, a=box)
    assert out["notCreated"]["a"]["type"] == "invalidProperties"
    assert out["notCreated"]["a"]["properties"] == [bad]


def test_a_parent_and_child_can_be_created_and_destroyed_in_one_call(client: JmapClient) -> None:
    ids = _ids(client, child={"name": "child", "parentId": "#parent"}, parent={"name": "parent"})
    assert client.ok("Mailbox/get", {"ids": [ids["child"]]})["list"][0]["parentId"] == ids["parent"]
    out = client.ok("Mailbox/set", {"destroy": [ids["parent"], ids["child"]]})
    assert sorted(out["destroyed"]) == sorted(ids.values()) and out["notDestroyed"] is None


def test_destroying_a_parent_alone_is_mailboxHasChild(client: JmapClient) -> None:
    ids = _ids(client, parent={"name": "parent"}, child={"name": "child", "parentId": "#parent"})
    out = client.ok("Mailbox/set", {"destroy": [ids["parent"]]})
    assert out["notDestroyed"][ids["parent"]]["type"] == "mailboxHasChild"


@pytest.mark.sqlite_only  # counts set, and the file checked, through SQLite directly
def test_a_mailbox_with_email_is_kept_unless_onDestroyRemoveEmails(client: JmapClient, live: LiveServer) -> None:
    box = _ids(client, a={"name": "full"})["a"]
    _set_counts(live, box, 2)
    out = client.ok("Mailbox/set", {"destroy": [box]})
    assert out["notDestroyed"][box]["type"] == "mailboxHasEmail"
    assert client.error("Mailbox/set", {"destroy": [box], "onDestroyRemoveEmails": 1})["type"] == "invalidArguments"
    out = client.ok("Mailbox/set", {"destroy": [box], "onDestroyRemoveEmails": True})
    assert out["destroyed"] == [box]


def test_the_inbox_cannot_be_destroyed_renamed_or_lose_its_role(client: JmapClient) -> None:
    inbox = _by_role(client)["inbox"]["id"]
    out = client.ok("Mailbox/set", {"destroy": [inbox], "update": {}})
    assert out["notDestroyed"][inbox]["type"] == "forbidden"
    for patch in ({"name": "Post"}, {"role": None}):
        out = client.ok("Mailbox/set", {"update": {inbox: patch}})
        assert out["notUpdated"][inbox]["type"] == "forbidden"


def test_roles_stay_unique_and_may_move_between_mailboxes(client: JmapClient) -> None:
    roles = _by_role(client)
    box = _ids(client, a={"name": "Old archive"})["a"]
    out = client.ok("Mailbox/set", {"update": {box: {"role": "archive"}}})
    assert out["notUpdated"][box]["properties"] == ["role"]
    out = client.ok("Mailbox/set", {"update": {roles["archive"]["id"]: {"role": None}, box: {"role": "archive"}}})
    assert out["notUpdated"] is None
    assert _by_role(client)["archive"]["id"] == box


def test_moves_that_would_make_a_loop_or_go_too_deep_are_refused(client: JmapClient) -> None:
    ids = _ids(client, a={"name": "a"}, b={"name": "b", "parentId": "#a"}, c={"name": "c", "parentId": "#b"})
    for target in (ids["a"], ids["c"]):
        out = client.ok("Mailbox/set", {"update": {ids["a"]: {"parentId": target}}})
        assert out["notUpdated"][ids["a"]]["properties"] == ["parentId"]
    parent = ids["c"]
    for depth in range(7):
        parent = _ids(client, x={"name": f"d{depth}", "parentId": parent})["x"]
    out = _create(client, x={"name": "too deep", "parentId": parent})
    assert out["notCreated"]["x"]["properties"] == ["parentId"]


def test_update_patches_properties_and_rejects_server_set_ones(client: JmapClient) -> None:
    box = _ids(client, a={"name": "a"})["a"]
    out = client.ok("Mailbox/set", {"update": {box: {"name": "b", "sortOrder": 3, "isSubscribed": False,
                                                     "totalEmails": 0, "myRights/mayDelete": True}}})
    assert out["updated"] == {box: None}
    got = client.ok("Mailbox/get", {"ids": [box]})["list"][0]
    assert (got["name"], got["sortOrder"], got["isSubscribed"]) == ("b", 3, False)
    out = client.ok("Mailbox/set", {"update": {box: {"totalEmails": 5}}})
    assert out["notUpdated"][box] == {"type": "invalidProperties", "properties": ["totalEmails"],
                                      "description": out["notUpdated"][box]["description"]}
    out = client.ok("Mailbox/set", {"update": {box: {"myRights/mayDelete": False}}})
    assert out["notUpdated"][box]["properties"] == ["myRights"]


def test_changes_report_updatedProperties_only_for_count_changes(client: JmapClient, live: LiveServer) -> None:
    box = _ids(client, a={"name": "a"})["a"]
    state = client.ok("Mailbox/get", {"ids": []})["state"]
    with live.tidings.store.write(client.account_id) as tx:
        tx.record("Mailbox", box, "updated", counts_only=True)
    out = client.ok("Mailbox/changes", {"sinceState": state})
    assert out["updated"] == [box]
    assert set(out["updatedProperties"]) == {"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}
    client.ok("Mailbox/set", {"update": {box: {"name": "renamed"}}})
    out = client.ok("Mailbox/changes", {"sinceState": state})
    assert out["updated"] == [box] and out["updatedProperties"] is None
    assert client.error("Mailbox/changes", {"sinceState": "x"})["type"] == "cannotCalculateChanges"


@pytest.fixture
def tree(client: JmapClient) -> dict[str, str]:
    return _ids(client, work={"name": "Work", "sortOrder": 1},
                alpha={"name": "alpha", "parentId": "#work", "isSubscribed": False},
                beta={"name": "Beta", "parentId": "#work"},
                home={"name": "Home", "sortOrder": 2})


def _query(client: JmapClient, **args: Any) -> list[str]:
    return list(client.ok("Mailbox/query", args)["ids"])


def test_query_filters(client: JmapClient, tree: dict[str, str]) -> None:
    roles = _by_role(client)
    assert _query(client, filter={"parentId": tree["work"]}, sort=[{"property": "name"}]) == [tree["alpha"],
                                                                                                  tree["beta"]]
    assert set(_query(client, filter={"parentId": None})) == {tree["work"], tree["home"],
                                                              *(m["id"] for m in roles.values())}
    assert _query(client, filter={"name": "BET"}) == [tree["beta"]]
    assert _query(client, filter={"role": "trash"}) == [roles["trash"]["id"]]
    assert len(_query(client, filter={"hasAnyRole": True})) == 6
    assert len(_query(client, filter={"hasAnyRole": False})) == 4
    assert _query(client, filter={"isSubscribed": False}) == [tree["alpha"]]
    assert _query(client, filter={"operator": "AND", "conditions": [{"hasAnyRole": False},
                                                                    {"parentId": None}]},
                  sort=[{"property": "sortOrder"}]) == [tree["work"], tree["home"]]
    assert client.error("Mailbox/query", {"filter": {"colour": "red"}})["type"] == "unsupportedFilter"
    assert client.error("Mailbox/query", {"filter": {"parentId": "M²"}})["type"] == "invalidArguments"
    assert client.error("Mailbox/query", {"sort": [{"property": "myRights"}]})["type"] == "unsupportedSort"


def test_sort_by_name_uses_the_requested_collation(client: JmapClient, tree: dict[str, str]) -> None:
    flat = {"filter": {"parentId": tree["work"]}}
    assert _query(client, **flat, sort=[{"property": "name", "collation": "i;ascii-casemap"}]) == [
        tree["alpha"], tree["beta"]]
    assert _query(client, **flat, sort=[{"property": "name", "collation": "i;octet"}]) == [
        tree["beta"], tree["alpha"]]


def test_sortAsTree_puts_children_right_after_their_parent(client: JmapClient, tree: dict[str, str]) -> None:
    ids = _query(client, filter={"hasAnyRole": False}, sort=[{"property": "sortOrder"}, {"property": "name"}],
                 sortAsTree=True)
    assert ids == [tree["work"], tree["alpha"], tree["beta"], tree["home"]]


def test_filterAsTree_drops_mailboxes_whose_ancestors_do_not_match(client: JmapClient, tree: dict[str, str]) -> None:
    client.ok("Mailbox/set", {"update": {tree["work"]: {"isSubscribed": False}}})
    assert set(_query(client, filter={"isSubscribed": False})) == {tree["work"], tree["alpha"]}
    assert set(_query(client, filter={"isSubscribed": True, "hasAnyRole": False}, filterAsTree=True)) == {
        tree["home"]}


def _replay(before: list[str], changes: dict[str, Any]) -> list[str]:
    ids = [i for i in before if i not in changes["removed"]]
    for item in changes["added"]:
        ids.insert(item["index"], item["id"])
    return ids


def test_queryChanges_replays_to_the_new_results_even_when_a_parent_moves_its_subtree(
    client: JmapClient, tree: dict[str, str]
) -> None:
    args: dict[str, Any] = {"filter": {"hasAnyRole": False}, "sort": [{"property": "name"}], "sortAsTree": True}
    before = client.ok("Mailbox/query", args)
    # Renaming Work moves it after Home, and its children with it, though they did not change.
    client.ok("Mailbox/set", {"update": {tree["work"]: {"name": "zz Work"}}})
    changes = client.ok("Mailbox/queryChanges", {**args, "sinceQueryState": before["queryState"]})
    after = client.ok("Mailbox/query", args)
    assert _replay(before["ids"], changes) == after["ids"] == [tree["home"], tree["work"], tree["alpha"],
                                                               tree["beta"]]
    assert changes["newQueryState"] == after["queryState"]


def test_queryChanges_with_filterAsTree_reports_children_leaving_with_their_parent(
    client: JmapClient, tree: dict[str, str]
) -> None:
    args: dict[str, Any] = {"filter": {"isSubscribed": True, "hasAnyRole": False}, "filterAsTree": True}
    before = client.ok("Mailbox/query", args)
    client.ok("Mailbox/set", {"update": {tree["work"]: {"isSubscribed": False}}})
    changes = client.ok("Mailbox/queryChanges", {**args, "sinceQueryState": before["queryState"]})
    assert _replay(before["ids"], changes) == client.ok("Mailbox/query", args)["ids"] == [tree["home"]]


def test_queryChanges_errors(client: JmapClient) -> None:
    assert client.error("Mailbox/queryChanges", {"sinceQueryState": "nope"})["type"] == "cannotCalculateChanges"
    assert client.error("Mailbox/queryChanges", {"sinceQueryState": "0", "sortAsTree": 1})["type"] == (
        "invalidArguments")
