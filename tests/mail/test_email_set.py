"""Email/set (RFC 8621 §4.6): create from JMAP properties, keyword and mailbox patches, destroy; Email/changes,
Thread/changes and exact Mailbox counts (RFC 8621 §2) after every step."""

from __future__ import annotations

from typing import Any

import pytest

from ..helpers import JmapClient
from .mailtools import assert_counts, download, get_one, import_one, message, roles, set_ok, upload

DRAFT = {
    "from": [{"name": "Alice", "email": "alice@example.com"}],
    "to": [{"name": "Bob", "email": "bob@example.com"}],
    "subject": "Draft",
    "keywords": {"$draft": True},
    "bodyValues": {"t": {"value": "Hello Bob"}},
    "textBody": [{"partId": "t", "type": "text/plain"}],
}


def create(client: JmapClient, email: dict[str, Any], **extra: Any) -> dict[str, Any]:
    result = client.ok("Email/set", {"create": {"c": email}, **extra})
    assert result.get("notCreated") is None, result["notCreated"]
    return dict(result["created"]["c"])


def not_created(client: JmapClient, email: dict[str, Any]) -> dict[str, Any]:
    result = client.ok("Email/set", {"create": {"c": email}})
    assert result.get("created") is None, result
    return dict(result["notCreated"]["c"])


def update(client: JmapClient, email_id: str, patch: dict[str, Any]) -> dict[str, Any]:
    return set_ok(client, {"update": {email_id: patch}})


def test_create_text_html_and_attachments(alice: JmapClient) -> None:
    box = roles(alice)
    pdf = b"%PDF-1.4 binary \x00\x01\x02\xff"
    blob = upload(alice, pdf, "application/pdf")
    created = create(alice, {
        "mailboxIds": {box["drafts"]: True},
        "keywords": {"$draft": True, "$seen": True},
        "from": [{"name": "Alice Émile", "email": "alice@example.com"}],
        "to": [{"name": None, "email": "bob@example.com"}],
        "cc": [{"name": "Carol", "email": "carol@example.com"}],
        "subject": "Réunion demain",
        "sentAt": "2022-03-01T10:00:00+02:00",
        "messageId": ["draft1@example.com"],
        "header:X-Mailer:asText": "Tidings test",
        "header:List-Id": " <list.example.com>",
        "bodyValues": {"t": {"value": "Plain ünïcode text"}, "h": {"value": "<p>HTML <b>text</b></p>"}},
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "attachments": [{"blobId": blob, "type": "application/pdf", "name": "reçu.pdf"}],
        "receivedAt": "2022-03-01T08:00:00Z",
    })
    assert set(created) >= {"id", "blobId", "threadId", "size"}
    email = get_one(alice, created["id"], [
        "mailboxIds", "keywords", "from", "to", "cc", "subject", "sentAt", "messageId", "receivedAt",
        "header:X-Mailer:asText", "header:List-Id", "textBody", "htmlBody", "attachments", "bodyValues",
        "hasAttachment", "preview", "bodyStructure", "size", "blobId",
    ], fetchAllBodyValues=True)
    assert email["mailboxIds"] == {box["drafts"]: True}
    assert email["keywords"] == {"$draft": True, "$seen": True}
    assert email["from"] == [{"name": "Alice Émile", "email": "alice@example.com"}]
    assert email["to"] == [{"name": None, "email": "bob@example.com"}]
    assert email["subject"] == "Réunion demain"
    assert email["sentAt"] == "2022-03-01T10:00:00+02:00"
    assert email["messageId"] == ["draft1@example.com"]
    assert email["receivedAt"] == "2022-03-01T08:00:00Z"
    assert email["header:X-Mailer:asText"] == "Tidings test"
    assert email["header:List-Id"] == " <list.example.com>"
    assert email["bodyStructure"]["type"] == "multipart/mixed"
    assert [p["type"] for p in email["textBody"]] == ["text/plain"]
    assert [p["type"] for p in email["htmlBody"]] == ["text/html"]
    (attachment,) = email["attachments"]
    assert attachment["name"] == "reçu.pdf" and attachment["type"] == "application/pdf"
    assert download(alice, attachment["blobId"]) == pdf
    values = email["bodyValues"]
    assert values[email["textBody"][0]["partId"]]["value"] == "Plain ünïcode text"
    assert values[email["htmlBody"][0]["partId"]]["value"] == "<p>HTML <b>text</b></p>"
    assert email["hasAttachment"] is True
    assert email["preview"] == "Plain ünïcode text"
    assert email["size"] == created["size"] == len(download(alice, created["blobId"]))
    assert_counts(alice)


def test_create_from_body_structure(alice: JmapClient) -> None:
    box = roles(alice)
    blob = upload(alice, b"GIF89a....", "image/gif")
    created = create(alice, {
        "mailboxIds": {box["drafts"]: True},
        "subject": "structured",
        "bodyValues": {"1": {"value": "text part"}, "2": {"value": "<img src=\"cid:pic\">"}},
        "bodyStructure": {
            "type": "multipart/alternative",
            "subParts": [
                {"partId": "1", "type": "text/plain"},
                {"type": "multipart/related", "subParts": [
                    {"partId": "2", "type": "text/html"},
                    {"blobId": blob, "type": "image/gif", "cid": "pic", "disposition": "inline",
                     "header:X-Part-Note:asText": "note"},
                ]},
            ],
        },
    })
    email = get_one(alice, created["id"], ["bodyStructure", "textBody", "htmlBody", "attachments"],
                    bodyProperties=["type", "cid", "subParts", "header:X-Part-Note:asText"])
    top = email["bodyStructure"]
    assert top["type"] == "multipart/alternative"
    related = top["subParts"][1]
    assert [p["type"] for p in related["subParts"]] == ["text/html", "image/gif"]
    assert related["subParts"][1]["cid"] == "pic"
    assert related["subParts"][1]["header:X-Part-Note:asText"] == "note"
    assert [p["type"] for p in email["textBody"]] == ["text/plain"]
    assert [p["type"] for p in email["htmlBody"]] == ["text/html"]
    assert [p["type"] for p in email["attachments"]] == ["image/gif"]


@pytest.mark.parametrize(
    ("email", "bad"),
    [
        ({"mailboxIds": {}}, "mailboxIds"),
        ({"mailboxIds": {"M999": True}}, "mailboxIds"),
        ({"keywords": {"bad keyword": True}}, "keywords"),
        ({"keywords": {"$seen": False}}, "keywords"),
        ({"id": "E1"}, "id"),
        ({"size": 12}, "size"),
        ({"headers": [{"name": "X", "value": "y"}]}, "headers"),
        ({"from": "alice@example.com"}, "from"),
        ({"subject": 12}, "subject"),
        ({"header:Subject:asAddresses": []}, None),
        ({"bodyValues": {"t": {"value": "x"}}, "textBody": [{"partId": "nope", "type": "text/plain"}]}, None),
        ({"textBody": [{"blobId": "x", "partId": "y"}]}, None),
        # textBody must be a single text/plain part (RFC 8621 §4.6).
        ({"bodyValues": {"t": {"value": "x"}}, "textBody": [{"partId": "t", "type": "text/html"}]}, None),
        ({"bodyValues": {"t": {"value": "x", "isTruncated": True}},
          "textBody": [{"partId": "t", "type": "text/plain"}]}, None),
        # bodyStructure excludes textBody/htmlBody/attachments.
        ({"bodyValues": {"t": {"value": "x"}}, "bodyStructure": {"partId": "t", "type": "text/plain"},
          "textBody": [{"partId": "t", "type": "text/plain"}]}, None),
        ({"receivedAt": "yesterday"}, "receivedAt"),
        # Content-Transfer-Encoding must not be given on a part.
        ({"bodyValues": {"t": {"value": "x"}}, "textBody": [
            {"partId": "t", "type": "text/plain", "header:Content-Transfer-Encoding": " base64"}]}, None),
    ],
)
def test_invalid_properties(shared_alice: JmapClient, email: dict[str, Any], bad: str | None) -> None:
    # One server for every case: none of them may leave anything behind.
    box = roles(shared_alice)
    full = {"mailboxIds": {box["drafts"]: True}, **email}
    error = not_created(shared_alice, full)
    assert error["type"] == "invalidProperties", error
    if bad is not None:
        assert bad in error["properties"]
    assert_counts(shared_alice)
    assert shared_alice.ok("Email/get", {"ids": None})["list"] == []


def test_blob_not_found_lists_the_blobs(alice: JmapClient) -> None:
    box = roles(alice)
    error = not_created(alice, {"mailboxIds": {box["drafts"]: True},
                                "attachments": [{"blobId": "Bdeadbeef", "type": "image/png"}]})
    assert error["type"] == "blobNotFound"
    assert error["notFound"] == ["Bdeadbeef"]


def test_create_with_creation_id_mailbox_in_same_request(alice: JmapClient) -> None:
    response = alice.request([
        ["Mailbox/set", {"accountId": alice.account_id, "create": {"m": {"name": "Projects"}}}, "0"],
        ["Email/set", {"accountId": alice.account_id,
                       "create": {"e": {"mailboxIds": {"#m": True}, "subject": "in new box"}}}, "1"],
        ["Email/get", {"accountId": alice.account_id, "ids": ["#e"], "properties": ["mailboxIds", "subject"]}, "2"],
    ])
    mailbox_id = response["methodResponses"][0][1]["created"]["m"]["id"]
    got = response["methodResponses"][2][1]["list"][0]
    assert got["mailboxIds"] == {mailbox_id: True} and got["subject"] == "in new box"
    assert_counts(alice)


def test_keyword_and_mailbox_patches_keep_counts_exact(alice: JmapClient) -> None:
    box = roles(alice)
    inbox, archive, trash = box["inbox"], box["archive"], box["trash"]
    first = import_one(alice, message("Plans", msgid="p1@x"), inbox)
    reply = import_one(alice, message("Re: Plans", msgid="p2@x", in_reply_to="p1@x"), inbox)
    other = import_one(alice, message("Other", msgid="o1@x"), inbox, keywords={"$seen": True})
    assert first["threadId"] == reply["threadId"] != other["threadId"]
    assert_counts(alice)
    state = alice.ok("Email/get", {"ids": []})["state"]
    thread_state = alice.ok("Thread/get", {"ids": []})["state"]

    # Keyword patch paths, case-insensitive keyword names (RFC 8621 §4.1.1).
    update(alice, first["id"], {"keywords/$Seen": True})
    assert get_one(alice, first["id"], ["keywords"])["keywords"] == {"$seen": True}
    assert_counts(alice)
    update(alice, first["id"], {"keywords/$flagged": True, "keywords/$seen": None})
    assert get_one(alice, first["id"], ["keywords"])["keywords"] == {"$flagged": True}
    assert_counts(alice)
    # Whole-map replacement.
    update(alice, reply["id"], {"keywords": {"$seen": True, "$answered": True}})
    assert_counts(alice)

    # Mailbox patches: add a second mailbox, then move (remove the first).
    update(alice, first["id"], {f"mailboxIds/{archive}": True})
    assert get_one(alice, first["id"], ["mailboxIds"])["mailboxIds"] == {inbox: True, archive: True}
    assert_counts(alice)
    update(alice, first["id"], {f"mailboxIds/{inbox}": None})
    assert get_one(alice, first["id"], ["mailboxIds"])["mailboxIds"] == {archive: True}
    assert_counts(alice)
    # Move the unread half of the thread to the trash: the trash rules of RFC 8621 §2 apply.
    update(alice, first["id"], {"keywords/$seen": None})
    assert_counts(alice)
    update(alice, first["id"], {"mailboxIds": {trash: True}})
    assert_counts(alice)
    update(alice, reply["id"], {"keywords/$seen": None})
    assert_counts(alice)
    update(alice, reply["id"], {f"mailboxIds/{trash}": True})
    assert_counts(alice)
    # $draft counts as read.
    update(alice, other["id"], {"keywords": {"$draft": True}})
    assert_counts(alice)

    changes = alice.ok("Email/changes", {"sinceState": state})
    assert sorted(changes["updated"]) == sorted([first["id"], reply["id"], other["id"]])
    assert changes["created"] == [] and changes["destroyed"] == []
    # Keywords and mailboxes do not change a Thread's emailIds.
    thread_changes = alice.ok("Thread/changes", {"sinceState": thread_state})
    assert thread_changes["created"] == [] and thread_changes["destroyed"] == []


def test_flagging_changes_the_email_but_no_mailbox(alice: JmapClient) -> None:
    # $flagged moves no count (RFC 8621 §2: counts depend on membership and $seen/$draft only), so a flag
    # is logged for the Email alone and Mailbox/changes has nothing to report.
    box = roles(alice)
    first = import_one(alice, message("Flag me", msgid="f1@x"), box["inbox"])
    import_one(alice, message("Re: Flag me", msgid="f2@x", in_reply_to="f1@x"), box["inbox"],
               keywords={"$seen": True})
    email_state = alice.ok("Email/get", {"ids": []})["state"]
    mailbox_state = alice.ok("Mailbox/get", {"ids": []})["state"]
    update(alice, first["id"], {"keywords/$flagged": True})
    assert get_one(alice, first["id"], ["keywords"])["keywords"] == {"$flagged": True}
    assert alice.ok("Email/changes", {"sinceState": email_state})["updated"] == [first["id"]]
    assert alice.ok("Mailbox/changes", {"sinceState": mailbox_state})["updated"] == []
    assert_counts(alice)
    # Then $seen on the same email does move the unread counts.
    update(alice, first["id"], {"keywords/$seen": True})
    assert alice.ok("Mailbox/changes", {"sinceState": mailbox_state})["updated"] == [box["inbox"]]
    assert_counts(alice)


def test_mailbox_counts_with_many_threads_and_mailboxes(alice: JmapClient) -> None:
    box = roles(alice)
    inbox, archive, trash = box["inbox"], box["archive"], box["trash"]
    ids = []
    for n in range(6):
        ids.append(import_one(alice, message(f"T{n % 2}", msgid=f"m{n}@x",
                                             in_reply_to=f"m{n - 2}@x" if n >= 2 else None), inbox)["id"])
    assert_counts(alice)
    set_ok(alice, {"update": {
        ids[0]: {"mailboxIds": {trash: True}},
        ids[1]: {"keywords/$seen": True, f"mailboxIds/{archive}": True},
        ids[2]: {"mailboxIds": {archive: True, trash: True}},
        ids[3]: {"keywords": {"$seen": True}},
    }})
    assert_counts(alice)
    set_ok(alice, {"destroy": [ids[4], ids[1]]})
    assert_counts(alice)


def test_at_least_one_mailbox(alice: JmapClient) -> None:
    box = roles(alice)
    email = import_one(alice, message("x"), box["inbox"])
    patches: list[dict[str, Any]] = [{"mailboxIds": {}}, {f"mailboxIds/{box['inbox']}": None}, {"mailboxIds": None}]
    for patch in patches:
        result = alice.ok("Email/set", {"update": {email["id"]: patch}})
        error = result["notUpdated"][email["id"]]
        assert error["type"] == "invalidProperties", error
    assert get_one(alice, email["id"], ["mailboxIds"])["mailboxIds"] == {box["inbox"]: True}
    assert_counts(alice)


def test_update_invalid_patches(alice: JmapClient) -> None:
    box = roles(alice)
    email = import_one(alice, message("x"), box["inbox"])
    bad: list[dict[str, Any]] = [{"keywords/bad word": True}, {"keywords/$seen": False}, {"mailboxIds/M999": True},
                                 {"subject": "changed"}, {"keywords": {"$seen": "yes"}}, {"size": 3}]
    for patch in bad:
        result = alice.ok("Email/set", {"update": {email["id"]: patch}})
        assert result["notUpdated"][email["id"]]["type"] == "invalidProperties", (patch, result)
    result = alice.ok("Email/set", {"update": {"E999": {"keywords/$seen": True}}})
    assert result["notUpdated"]["E999"]["type"] == "notFound"
    assert_counts(alice)


def test_unchanged_immutable_value_may_be_sent_back(alice: JmapClient) -> None:
    box = roles(alice)
    email = import_one(alice, message("same subject"), box["inbox"])
    update(alice, email["id"], {"subject": "same subject", "keywords/$seen": True})


def test_destroy_and_changes(alice: JmapClient) -> None:
    box = roles(alice)
    first = import_one(alice, message("Alpha", msgid="a1@x"), box["inbox"])
    second = import_one(alice, message("Re: Alpha", msgid="a2@x", in_reply_to="a1@x"), box["inbox"])
    email_state = alice.ok("Email/get", {"ids": []})["state"]
    thread_state = alice.ok("Thread/get", {"ids": []})["state"]
    set_ok(alice, {"destroy": [second["id"]]})
    assert_counts(alice)
    thread = alice.ok("Thread/get", {"ids": [first["threadId"]]})["list"][0]
    assert thread["emailIds"] == [first["id"]]
    changes = alice.ok("Thread/changes", {"sinceState": thread_state})
    assert changes["updated"] == [first["threadId"]]
    set_ok(alice, {"destroy": [first["id"]]})
    assert_counts(alice)
    changes = alice.ok("Email/changes", {"sinceState": email_state})
    assert sorted(changes["destroyed"]) == sorted([first["id"], second["id"]])
    thread_changes = alice.ok("Thread/changes", {"sinceState": thread_state})
    assert thread_changes["destroyed"] == [first["threadId"]]
    assert alice.ok("Thread/get", {"ids": [first["threadId"]]})["notFound"] == [first["threadId"]]
    result = alice.ok("Email/set", {"destroy": [first["id"]]})
    assert result["notDestroyed"][first["id"]]["type"] == "notFound"

    # A message made by Email/set is no longer downloadable once no email holds it (no upload keeps it).
    draft = create(alice, {"mailboxIds": {box["drafts"]: True}, **DRAFT})
    assert download(alice, draft["blobId"]).startswith(b"From: ")
    set_ok(alice, {"destroy": [draft["id"]]})
    response = alice.http.get(f"/jmap/download/{alice.account_id}/{draft['blobId']}/x")
    assert response.status_code == 404


def test_if_in_state(alice: JmapClient) -> None:
    box = roles(alice)
    email = import_one(alice, message("x"), box["inbox"])
    state = alice.ok("Email/get", {"ids": []})["state"]
    result = set_ok(alice, {"ifInState": state, "update": {email["id"]: {"keywords/$seen": True}}})
    assert result["oldState"] == state and result["newState"] != state
    error = alice.error("Email/set", {"ifInState": state, "update": {email["id"]: {"keywords/$flagged": True}}})
    assert error["type"] == "stateMismatch"
    assert get_one(alice, email["id"], ["keywords"])["keywords"] == {"$seen": True}


def test_mailbox_destroy_with_on_destroy_remove_emails(alice: JmapClient) -> None:
    box = roles(alice)
    made = alice.ok("Mailbox/set", {"create": {"m": {"name": "Doomed"}}})["created"]["m"]["id"]
    only_here = import_one(alice, message("only here", msgid="d1@x"), made)
    also_inbox = import_one(alice, message("Re: only here", msgid="d2@x", in_reply_to="d1@x"), made)
    update(alice, also_inbox["id"], {f"mailboxIds/{box['inbox']}": True})
    assert_counts(alice)
    result = alice.ok("Mailbox/set", {"destroy": [made]})
    assert result["notDestroyed"][made]["type"] == "mailboxHasEmail"
    email_state = alice.ok("Email/get", {"ids": []})["state"]
    result = alice.ok("Mailbox/set", {"destroy": [made], "onDestroyRemoveEmails": True})
    assert result["destroyed"] == [made]
    assert_counts(alice)
    got = alice.ok("Email/get", {"ids": [only_here["id"], also_inbox["id"]], "properties": ["mailboxIds"]})
    assert got["notFound"] == [only_here["id"]]
    assert got["list"][0]["mailboxIds"] == {box["inbox"]: True}
    changes = alice.ok("Email/changes", {"sinceState": email_state})
    assert changes["destroyed"] == [only_here["id"]] and changes["updated"] == [also_inbox["id"]]


def test_role_change_to_trash_keeps_counts_exact(alice: JmapClient) -> None:
    box = roles(alice)
    made = alice.ok("Mailbox/set", {"create": {"m": {"name": "Bin"}}})["created"]["m"]["id"]
    first = import_one(alice, message("Thread", msgid="r1@x"), box["inbox"], keywords={"$seen": True})
    second = import_one(alice, message("Re: Thread", msgid="r2@x", in_reply_to="r1@x"), made)
    assert first["threadId"] == second["threadId"]
    assert_counts(alice)
    # Move the trash role to the new mailbox: unreadThreads of every mailbox follows the new trash.
    set_ok_mailbox = alice.ok("Mailbox/set", {"update": {box["trash"]: {"role": None}, made: {"role": "trash"}}})
    assert not set_ok_mailbox.get("notUpdated"), set_ok_mailbox
    assert_counts(alice)


def test_mailbox_changes_report_counts_only(alice: JmapClient) -> None:
    box = roles(alice)
    state = alice.ok("Mailbox/get", {"ids": []})["state"]
    import_one(alice, message("x"), box["inbox"])
    changes = alice.ok("Mailbox/changes", {"sinceState": state})
    assert changes["updated"] == [box["inbox"]]
    assert set(changes["updatedProperties"]) == {"totalEmails", "unreadEmails", "totalThreads", "unreadThreads"}


def test_destroyed_ids_are_never_reused(alice: JmapClient) -> None:
    # RFC 8620 §1.2: an id is never reused, even after the newest object is destroyed.
    box = roles(alice)
    first = create(alice, {"mailboxIds": {box["drafts"]: True}, **DRAFT})
    set_ok(alice, {"destroy": [first["id"]]})
    second = create(alice, {"mailboxIds": {box["drafts"]: True}, **DRAFT})
    assert second["id"] != first["id"] and second["threadId"] != first["threadId"]
    made = alice.ok("Mailbox/set", {"create": {"m": {"name": "Short-lived"}}})["created"]["m"]["id"]
    alice.ok("Mailbox/set", {"destroy": [made]})
    again = alice.ok("Mailbox/set", {"create": {"m": {"name": "Next"}}})["created"]["m"]["id"]
    assert again != made
    state = alice.ok("Mailbox/get", {"ids": []})["state"]
    assert alice.ok("Mailbox/changes", {"sinceState": state})["created"] == []


def test_destroying_the_trash_mailbox_keeps_counts_exact(alice: JmapClient) -> None:
    box = roles(alice)
    first = import_one(alice, message("Gone", msgid="g1@x"), box["inbox"], keywords={"$seen": True})
    second = import_one(alice, message("Re: Gone", msgid="g2@x", in_reply_to="g1@x"), box["trash"])
    update(alice, first["id"], {f"mailboxIds/{box['trash']}": True})
    assert_counts(alice)
    result = alice.ok("Mailbox/set", {"destroy": [box["trash"]], "onDestroyRemoveEmails": True})
    assert result["destroyed"] == [box["trash"]], result
    assert_counts(alice)
    got = alice.ok("Email/get", {"ids": [first["id"], second["id"]], "properties": ["mailboxIds"]})
    assert got["notFound"] == [second["id"]]
    assert got["list"][0]["mailboxIds"] == {box["inbox"]: True}


def test_the_same_message_twice(alice: JmapClient) -> None:
    box = roles(alice)
    raw = message("Twice", msgid="twice@x")
    first = import_one(alice, raw, box["inbox"])
    second = import_one(alice, raw, box["archive"], keywords={"$seen": True})
    assert first["id"] != second["id"] and first["blobId"] == second["blobId"]
    assert first["threadId"] == second["threadId"]
    assert_counts(alice)
    set_ok(alice, {"destroy": [first["id"]]})
    # The blob is still held by the other email.
    assert download(alice, second["blobId"]) == raw
    assert_counts(alice)
