"""Email/import (RFC 8621 §4.8), Email/parse (§4.9) and Email/copy (§4.7)."""

from __future__ import annotations

from ..helpers import JmapClient
from .mailtools import assert_counts, download, get_one, import_one, message, roles, upload

INNER = (b"From: Inner <inner@example.org>\r\nTo: x@example.org\r\nSubject: Attached one\r\n"
         b"Message-ID: <inner@example.org>\r\nContent-Type: multipart/mixed; boundary=in\r\n\r\n"
         b"--in\r\nContent-Type: text/plain\r\n\r\nInner text.\r\n"
         b"--in\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=a.bin\r\n"
         b"Content-Transfer-Encoding: base64\r\n\r\nAAECAw==\r\n--in--\r\n")
OUTER = (b"From: Outer <outer@example.org>\r\nSubject: Fwd: Attached one\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
         b"--out\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
         b"--out\r\nContent-Type: message/rfc822\r\n\r\n" + INNER + b"\r\n--out--\r\n")


def test_import_defaults_and_keywords(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    raw = (b"Received: from a by b; Tue, 10 May 2022 08:09:10 +0200\r\n"
           b"Received: from c by d; Tue, 10 May 2022 08:00:00 +0200\r\n" + message("Imported"))
    blob = upload(alice, raw)
    result = alice.ok("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {inbox: True},
                                                        "keywords": {"$Seen": True, "$Answered": True}}}})
    created = result["created"]["i"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    assert created["blobId"] == blob and created["size"] == len(raw)
    assert result["oldState"] != result["newState"]
    email = get_one(alice, created["id"], ["receivedAt", "keywords", "mailboxIds"])
    # receivedAt defaults to the most recent Received header's date (RFC 8621 §4.8).
    assert email["receivedAt"] == "2022-05-10T06:09:10Z"
    assert email["keywords"] == {"$seen": True, "$answered": True}
    explicit = import_one(alice, raw, inbox, received_at=["2001-02-03T04:05:06Z"])
    assert get_one(alice, explicit["id"], ["receivedAt"])["receivedAt"] == "2001-02-03T04:05:06Z"
    assert_counts(alice)


def test_import_errors(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    blob = upload(alice, message("x"))
    cases = {
        "noblob": {"blobId": "Bdeadbeef", "mailboxIds": {inbox: True}},
        "nobox": {"blobId": blob, "mailboxIds": {}},
        "badbox": {"blobId": blob, "mailboxIds": {"M999": True}},
        "badkw": {"blobId": blob, "mailboxIds": {inbox: True}, "keywords": {"a b": True}},
        "baddate": {"blobId": blob, "mailboxIds": {inbox: True}, "receivedAt": "2022-01-01"},
        "extra": {"blobId": blob, "mailboxIds": {inbox: True}, "subject": "no"},
    }
    result = alice.ok("Email/import", {"emails": cases})
    assert result["created"] is None
    for key, error in result["notCreated"].items():
        assert error["type"] == "invalidProperties", (key, error)
    assert "blobId" in result["notCreated"]["noblob"]["properties"]
    assert "mailboxIds" in result["notCreated"]["nobox"]["properties"]
    # Another user's upload is not this account's blob.
    state = alice.ok("Email/get", {"ids": []})["state"]
    error = alice.error("Email/import", {"ifInState": "wrong", "emails": {"x": cases["nobox"]}})
    assert error["type"] == "stateMismatch"
    assert alice.ok("Email/get", {"ids": []})["state"] == state
    assert_counts(alice)


def test_import_of_an_other_accounts_blob_is_refused(alice: JmapClient, bob: JmapClient) -> None:
    blob = upload(bob, message("bob's"))
    inbox = roles(alice)["inbox"]
    result = alice.ok("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {inbox: True}}}})
    assert result["notCreated"]["i"]["type"] == "invalidProperties"


def test_unparsable_message_still_imports_with_its_bytes(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    for raw in (b"\x00\x01\x02 binary junk \xff\xfe", b"", b"no header here at all\r\n", b"\r\n\r\n\r\n"):
        created = import_one(alice, raw, inbox)
        assert download(alice, created["blobId"]) == raw
        email = get_one(alice, created["id"], ["size", "bodyStructure", "textBody", "subject", "headers", "preview"],
                        fetchAllBodyValues=True)
        assert email["size"] == len(raw)
    assert_counts(alice)


def test_parse_uploaded_and_attached_messages(alice: JmapClient) -> None:
    blob = upload(alice, OUTER)
    result = alice.ok("Email/parse", {"blobIds": [blob], "fetchAllBodyValues": True})
    parsed = result["parsed"][blob]
    assert parsed["subject"] == "Fwd: Attached one"
    # Email/parse has no id, threadId, mailboxIds, keywords or receivedAt (RFC 8621 §4.9).
    for prop in ("id", "threadId", "mailboxIds", "keywords", "receivedAt"):
        assert prop not in parsed or parsed[prop] is None
    attached = [a for a in parsed["attachments"] if a["type"] == "message/rfc822"]
    assert len(attached) == 1
    inner_blob = attached[0]["blobId"]
    assert download(alice, inner_blob) == INNER
    inner = alice.ok("Email/parse", {"blobIds": [inner_blob], "fetchTextBodyValues": True,
                                     "properties": ["subject", "messageId", "from", "attachments", "bodyValues",
                                                    "textBody", "size", "blobId"]})["parsed"][inner_blob]
    assert inner["subject"] == "Attached one" and inner["messageId"] == ["inner@example.org"]
    assert inner["blobId"] == inner_blob and inner["size"] == len(INNER)
    assert [v["value"] for v in inner["bodyValues"].values()] == ["Inner text."]
    (binary,) = inner["attachments"]
    assert binary["name"] == "a.bin"
    # A part of the attached message downloads too, decoded.
    assert download(alice, binary["blobId"]) == b"\x00\x01\x02\x03"


def test_parse_not_found_and_not_parsable(alice: JmapClient) -> None:
    image = upload(alice, b"\x89PNG\r\n\x1a\n\x00\x00", "image/png")
    result = alice.ok("Email/parse", {"blobIds": ["Bnope", image]})
    assert result["notFound"] == ["Bnope"]
    assert result["notParsable"] == [image]
    assert result["parsed"] is None
    error = alice.error("Email/parse", {"blobIds": [image], "properties": ["bogus"]})
    assert error["type"] == "invalidArguments"


def test_copy_errors(alice: JmapClient, bob: JmapClient) -> None:
    error = alice.error("Email/copy", {"fromAccountId": "Anope", "create": {}})
    assert error["type"] == "fromAccountNotFound"
    error = alice.error("Email/copy", {"fromAccountId": alice.account_id, "create": {}})
    assert error["type"] == "invalidArguments"
    # Bob's account is not shared with Alice.
    error = alice.error("Email/copy", {"fromAccountId": bob.account_id, "create": {}})
    assert error["type"] == "fromAccountNotFound"


def test_nul_bytes_anywhere_still_import(alice: JmapClient) -> None:
    # Regression: NUL in headers or body broke storage that refuses NUL in text (PostgreSQL).
    inbox = roles(alice)["inbox"]
    raw = (b"From: Nul\x00Name <nul@example.com>\r\nTo: a\x00b@example.com\r\nSubject: sub\x00ject\r\n"
           b"Message-ID: <id\x00x@example.com>\r\nReferences: <r\x00@example.com>\r\n"
           b"Content-Type: text/plain; name=\"a\x00.txt\"\r\n\r\nbody \x00 text\r\n")
    created = import_one(alice, raw, inbox)
    assert download(alice, created["blobId"]) == raw
    email = get_one(alice, created["id"], ["subject", "from", "messageId", "preview", "bodyValues"],
                    fetchAllBodyValues=True)
    assert email["subject"] is not None
    found = alice.ok("Email/query", {"filter": {"body": "body"}})["ids"]
    assert created["id"] in found
    assert_counts(alice)
