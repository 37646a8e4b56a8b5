"""Threads (RFC 8621 §3): joining, splitting by subject, late parents, merges, Thread/get and /changes."""

from __future__ import annotations

from ..helpers import JmapClient
from .mailtools import assert_counts, import_one, message, roles


def test_replies_join_and_a_new_subject_starts_a_new_thread(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    root = import_one(alice, message("Budget", msgid="b1@x"), inbox)
    reply = import_one(alice, message("RE: [team] Budget", msgid="b2@x", in_reply_to="b1@x"), inbox)
    forward = import_one(alice, message("Fwd: Budget", msgid="b3@x", references="<b1@x> <b2@x>"), inbox)
    changed = import_one(alice, message("Something else entirely", msgid="b4@x", in_reply_to="b2@x"), inbox)
    unrelated = import_one(alice, message("Budget"), inbox)
    assert root["threadId"] == reply["threadId"] == forward["threadId"]
    assert changed["threadId"] != root["threadId"]
    # The same subject without any link is another conversation.
    assert unrelated["threadId"] != root["threadId"]
    thread = alice.ok("Thread/get", {"ids": [root["threadId"]]})["list"][0]
    assert thread == {"id": root["threadId"], "emailIds": [root["id"], reply["id"], forward["id"]]}
    assert_counts(alice)


def test_out_of_order_arrival_joins_up(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    reply = import_one(alice, message("Re: Party", msgid="p2@x", in_reply_to="p1@x", references="<p1@x>"), inbox,
                       received_at=["2022-05-02T00:00:00Z"])
    parent = import_one(alice, message("Party", msgid="p1@x"), inbox, received_at=["2022-05-01T00:00:00Z"])
    assert parent["threadId"] == reply["threadId"]
    # emailIds are sorted by receivedAt, oldest first (RFC 8621 §3).
    thread = alice.ok("Thread/get", {"ids": [parent["threadId"]]})["list"][0]
    assert thread["emailIds"] == [parent["id"], reply["id"]]


def test_a_message_linking_two_threads_merges_them(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    a = import_one(alice, message("Trip", msgid="a@x"), inbox, received_at=["2022-06-01T00:00:00Z"])
    b = import_one(alice, message("Re: Trip", msgid="b@x", in_reply_to="missing@x"), inbox,
                   received_at=["2022-06-02T00:00:00Z"], keywords={"$seen": True})
    assert a["threadId"] != b["threadId"]
    email_state = alice.ok("Email/get", {"ids": []})["state"]
    thread_state = alice.ok("Thread/get", {"ids": []})["state"]
    link = import_one(alice, message("Re: Trip", msgid="c@x", references="<a@x> <missing@x>"), inbox,
                      received_at=["2022-06-03T00:00:00Z"])
    ids = alice.ok("Email/get", {"ids": [a["id"], b["id"], link["id"]], "properties": ["threadId"]})["list"]
    assert len({e["threadId"] for e in ids}) == 1
    merged = ids[0]["threadId"]
    gone = ({a["threadId"], b["threadId"]} - {merged}).pop()
    thread = alice.ok("Thread/get", {"ids": [merged, gone]})
    assert thread["list"][0]["emailIds"] == [a["id"], b["id"], link["id"]]
    assert thread["notFound"] == [gone]
    # The moved emails are reported updated (their threadId changed); the emptied thread destroyed.
    changes = alice.ok("Email/changes", {"sinceState": email_state})
    moved = b["id"] if gone == b["threadId"] else a["id"]
    assert changes["created"] == [link["id"]] and changes["updated"] == [moved]
    thread_changes = alice.ok("Thread/changes", {"sinceState": thread_state})
    assert thread_changes["destroyed"] == [gone]
    assert merged in thread_changes["updated"] + thread_changes["created"]
    assert_counts(alice)


def test_thread_get_all_and_not_found(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    one = import_one(alice, message("One"), inbox)
    two = import_one(alice, message("Two"), inbox)
    listed = alice.ok("Thread/get", {"ids": None})["list"]
    assert sorted(t["id"] for t in listed) == sorted([one["threadId"], two["threadId"]])
    result = alice.ok("Thread/get", {"ids": ["T999", "bogus"]})
    assert result["list"] == [] and result["notFound"] == ["T999", "bogus"]
    result = alice.ok("Thread/get", {"ids": [one["threadId"]], "properties": ["id"]})
    assert result["list"] == [{"id": one["threadId"]}]


def test_thread_changes_paging(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    state = alice.ok("Thread/get", {"ids": []})["state"]
    made = [import_one(alice, message(f"Topic {n}"), inbox)["threadId"] for n in range(3)]
    seen: list[str] = []
    while True:
        changes = alice.ok("Thread/changes", {"sinceState": state, "maxChanges": 2})
        assert len(changes["created"]) + len(changes["updated"]) <= 2
        seen += changes["created"]
        state = changes["newState"]
        if not changes["hasMoreChanges"]:
            break
    assert sorted(seen) == sorted(made)
    assert alice.error("Thread/changes", {"sinceState": "bogus"})["type"] == "cannotCalculateChanges"
