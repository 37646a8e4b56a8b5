"""Email/get (RFC 8621 §4.1, §4.2): every property, header forms, body parts, bodyValues, downloads."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from tidings.server import Tidings

from ..helpers import JmapClient, LiveServer
from .mailtools import download, get_one, import_one, roles, upload

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x01\x02" * 50

INNER = (
    b"From: Carol <carol@example.org>\r\n"
    b"To: dave@example.org\r\n"
    b"Subject: Inner message\r\n"
    b"Date: Mon, 31 Jan 2022 09:00:00 +0100\r\n"
    b"Message-ID: <inner@example.org>\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"The forwarded text.\r\n"
)


def rich_message() -> bytes:
    pdf = base64.encodebytes(PDF).replace(b"\n", b"\r\n")
    png = base64.encodebytes(PNG).replace(b"\n", b"\r\n")
    return (
        b"Received: from mx.example.com by mail.example.net; Wed, 02 Feb 2022 11:00:00 +0000\r\n"
        b"Received: from client by mx.example.com; Wed, 02 Feb 2022 10:59:00 +0000\r\n"
        b"From: =?UTF-8?Q?Ren=C3=A9e_Dupont?= <renee@example.com>\r\n"
        b"Sender: secretary@example.com\r\n"
        b"Reply-To: replies@example.com\r\n"
        b"To: Bob <bob@example.com>, Friends: ann@example.com, \"Ben B.\" <ben@example.com>;\r\n"
        b"Cc: cc@example.com\r\n"
        b"Bcc: hidden@example.com\r\n"
        b"Subject: =?UTF-8?B?Q2Fmw6k=?= plans\r\n"
        b"Date: Wed, 02 Feb 2022 11:58:00 +0100\r\n"
        b"Message-ID: <msg1@example.com>\r\n"
        b"In-Reply-To: <parent@example.com>\r\n"
        b"References: <root@example.com>\r\n  <parent@example.com>\r\n"
        b"List-Post: <mailto:list@example.com>, <https://example.com/post>\r\n"
        b"Comments:  a  comment \r\n"
        b"X-Custom: one\r\n"
        b"X-Custom: two\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
        b"\r\n"
        b"preamble\r\n"
        b"--outer\r\n"
        b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
        b"\r\n"
        b"--alt\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"Caf=C3=A9 at noon? =E2=82=AC5 each.\r\n"
        b"--alt\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"\r\n"
        b"<p>Caf\xc3\xa9 at <b>noon</b>? \xe2\x82\xac5 each.</p>\r\n"
        b"--alt--\r\n"
        b"--outer\r\n"
        b"Content-Type: application/pdf; name=\"plan.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"plan.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Language: en, fr\r\n"
        b"Content-Location: http://example.com/plan.pdf\r\n"
        b"X-Part: marked\r\n"
        b"\r\n" + pdf +
        b"--outer\r\n"
        b"Content-Type: image/png\r\n"
        b"Content-Disposition: inline; filename=\"dot.png\"\r\n"
        b"Content-ID: <dot@example.com>\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + png +
        b"--outer\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n" + INNER +
        b"--outer--\r\n"
    )


@pytest.fixture(scope="module")
def rich(shared_alice: JmapClient) -> dict[str, Any]:
    inbox = roles(shared_alice)["inbox"]
    raw = rich_message()
    created = import_one(shared_alice, raw, inbox, keywords={"$Seen": True, "Custom": True})
    return {"raw": raw, "inbox": inbox, **created}


def test_default_properties_are_those_of_rfc8621_4_2(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    email = get_one(shared_alice, rich["id"])
    assert set(email) == {
        "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
        "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
        "preview", "bodyValues", "textBody", "htmlBody", "attachments",
    }
    assert email["id"] == rich["id"] and email["blobId"] == rich["blobId"]
    assert email["threadId"] == rich["threadId"]
    assert email["mailboxIds"] == {rich["inbox"]: True}
    # Keywords are case-insensitive and returned lower-cased (RFC 8621 §4.1.1).
    assert email["keywords"] == {"$seen": True, "custom": True}
    assert email["size"] == len(rich["raw"]) == rich["size"]
    # receivedAt defaults to the date of the most recent (topmost) Received header (RFC 8621 §4.8).
    assert email["receivedAt"] == "2022-02-02T11:00:00Z"
    assert email["bodyValues"] == {}


def test_convenience_properties(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    email = get_one(shared_alice, rich["id"], ["messageId", "inReplyTo", "references", "sender", "from", "to", "cc",
                                              "bcc", "replyTo", "subject", "sentAt", "hasAttachment", "preview"])
    assert email["messageId"] == ["msg1@example.com"]
    assert email["inReplyTo"] == ["parent@example.com"]
    assert email["references"] == ["root@example.com", "parent@example.com"]
    assert email["sender"] == [{"name": None, "email": "secretary@example.com"}]
    assert email["from"] == [{"name": "Renée Dupont", "email": "renee@example.com"}]
    # Convenience address properties are the asAddresses form: groups flattened (RFC 8621 §4.1.2.3).
    assert email["to"] == [
        {"name": "Bob", "email": "bob@example.com"},
        {"name": None, "email": "ann@example.com"},
        {"name": "Ben B.", "email": "ben@example.com"},
    ]
    assert email["cc"] == [{"name": None, "email": "cc@example.com"}]
    assert email["bcc"] == [{"name": None, "email": "hidden@example.com"}]
    assert email["replyTo"] == [{"name": None, "email": "replies@example.com"}]
    assert email["subject"] == "Café plans"
    # sentAt is a Date with the original offset (RFC 8621 §4.1.2.6).
    assert email["sentAt"] == "2022-02-02T11:58:00+01:00"
    assert email["hasAttachment"] is True
    assert email["preview"] == "Café at noon? €5 each."


def test_header_forms(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    props = [
        "header:Subject", "header:subject:asText", "header:From:asAddresses", "header:To:asGroupedAddresses",
        "header:References:asMessageIds", "header:Date:asDate", "header:List-Post:asURLs",
        "header:X-Custom", "header:X-Custom:all", "header:x-custom:asText:all", "header:X-Missing",
        "header:X-Missing:all", "header:Comments:asText", "header:Received:all", "header:Sender:asRaw",
    ]
    email = get_one(shared_alice, rich["id"], props)
    assert email["header:Subject"] == " =?UTF-8?B?Q2Fmw6k=?= plans"
    assert email["header:subject:asText"] == "Café plans"
    assert email["header:From:asAddresses"] == [{"name": "Renée Dupont", "email": "renee@example.com"}]
    assert email["header:To:asGroupedAddresses"] == [
        {"name": None, "addresses": [{"name": "Bob", "email": "bob@example.com"}]},
        {"name": "Friends", "addresses": [{"name": None, "email": "ann@example.com"},
                                          {"name": "Ben B.", "email": "ben@example.com"}]},
    ]
    assert email["header:References:asMessageIds"] == ["root@example.com", "parent@example.com"]
    assert email["header:Date:asDate"] == "2022-02-02T11:58:00+01:00"
    assert email["header:List-Post:asURLs"] == ["mailto:list@example.com", "https://example.com/post"]
    # Without :all, the last instance (RFC 8621 §4.1.3).
    assert email["header:X-Custom"] == " two"
    assert email["header:X-Custom:all"] == [" one", " two"]
    assert email["header:x-custom:asText:all"] == ["one", "two"]
    assert email["header:X-Missing"] is None
    assert email["header:X-Missing:all"] == []
    # asText: unfolded, the leading space removed, inner whitespace kept (RFC 8621 §4.1.2.2).
    assert email["header:Comments:asText"].startswith("a  comment")
    assert len(email["header:Received:all"]) == 2
    assert email["header:Sender:asRaw"] == " secretary@example.com"


def test_headers_property_lists_every_field_in_order(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    headers = get_one(shared_alice, rich["id"], ["headers"])["headers"]
    names = [h["name"] for h in headers]
    assert names[:3] == ["Received", "Received", "From"]
    assert names.count("X-Custom") == 2
    assert {"name": "References", "value": " <root@example.com>\r\n  <parent@example.com>"} in headers


@pytest.mark.parametrize(
    "prop",
    [
        "header:Subject:asAddresses",   # Subject allows Raw and Text only (RFC 8621 §4.1.2)
        "header:From:asDate",
        "header:Date:asMessageIds",
        "header:To:asText",
        "header:Subject:asBogus",
        "header:Subject:all:asText",    # :all must come last
        "header:",
        "header:Sub ject",
        "unknownProperty",
    ],
)
def test_forbidden_or_unknown_properties_are_invalid_arguments(
    shared_alice: JmapClient, rich: dict[str, Any], prop: str
) -> None:
    error = shared_alice.error("Email/get", {"ids": [rich["id"]], "properties": [prop]})
    assert error["type"] == "invalidArguments"


def test_unknown_body_property_is_invalid_arguments(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    error = shared_alice.error("Email/get", {"ids": [rich["id"]], "properties": ["textBody"],
                                             "bodyProperties": ["partId", "nope"]})
    assert error["type"] == "invalidArguments"


def test_body_structure_and_part_lists(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    email = get_one(shared_alice, rich["id"], ["bodyStructure", "textBody", "htmlBody", "attachments"],
                    bodyProperties=["partId", "blobId", "size", "name", "type", "charset", "disposition", "cid",
                                    "language", "location", "subParts", "header:X-Part", "header:Content-Type:asRaw"])
    top = email["bodyStructure"]
    assert top["type"] == "multipart/mixed" and top["partId"] is None and top["blobId"] is None
    assert [p["type"] for p in top["subParts"]] == ["multipart/alternative", "application/pdf", "image/png",
                                                    "message/rfc822"]
    alternative, pdf, png, inner = top["subParts"]
    assert [p["type"] for p in alternative["subParts"]] == ["text/plain", "text/html"]
    assert pdf["name"] == "plan.pdf" and pdf["disposition"] == "attachment" and pdf["size"] == len(PDF)
    assert pdf["language"] == ["en", "fr"] and pdf["location"] == "http://example.com/plan.pdf"
    assert pdf["header:X-Part"] == " marked"
    assert pdf["header:Content-Type:asRaw"] == ' application/pdf; name="plan.pdf"'
    assert png["cid"] == "dot@example.com" and png["disposition"] == "inline"
    # A message/rfc822 part is a leaf: its subParts is null (RFC 8621 §4.1.4).
    assert inner["subParts"] is None
    # Text parts: charset defaults, charset null for non-text.
    assert alternative["subParts"][0]["charset"] == "utf-8" and pdf["charset"] is None
    # RFC 8621 §4.1.4 parseStructure: an inline image after the alternative in multipart/mixed is
    # displayed in both bodies, and not an attachment as both bodies exist.
    assert [p["type"] for p in email["textBody"]] == ["text/plain", "image/png"]
    assert [p["type"] for p in email["htmlBody"]] == ["text/html", "image/png"]
    assert [p["type"] for p in email["attachments"]] == ["application/pdf", "message/rfc822"]
    for part in email["textBody"] + email["htmlBody"] + email["attachments"]:
        assert "subParts" in part


def test_default_body_properties(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    email = get_one(shared_alice, rich["id"], ["textBody"])
    assert set(email["textBody"][0]) == {"partId", "blobId", "size", "name", "type", "charset", "disposition", "cid",
                                         "language", "location"}


def test_part_blob_downloads_decoded(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    email = get_one(shared_alice, rich["id"], ["attachments", "textBody"])
    pdf, inner = email["attachments"]
    png = email["textBody"][1]
    assert download(shared_alice, pdf["blobId"], "plan.pdf") == PDF
    assert len(PDF) == pdf["size"]
    assert download(shared_alice, png["blobId"]) == PNG
    # The CRLF before the next boundary is the boundary's, not the part's (RFC 2046 §5.1.1).
    assert download(shared_alice, inner["blobId"]) == INNER[:-2]
    assert inner["size"] == len(INNER) - 2


def test_raw_blob_download_is_exact(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    assert download(shared_alice, rich["blobId"]) == rich["raw"]


def test_lf_only_message_is_kept_as_sent(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    raw = b"From: a@example.com\nSubject: bare LF\n\nline one\nline two\n"
    created = import_one(shared_alice, raw, rich["inbox"])
    assert download(shared_alice, created["blobId"]) == raw
    email = get_one(shared_alice, created["id"], ["size", "subject", "bodyValues"], fetchTextBodyValues=True)
    assert email["size"] == len(raw)
    assert email["subject"] == "bare LF"
    assert next(iter(email["bodyValues"].values()))["value"] == "line one\nline two\n"


def test_fetch_body_values_flags(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    def values(**flags: Any) -> dict[str, Any]:
        return get_one(shared_alice, rich["id"], ["bodyValues"], **flags)["bodyValues"]

    text = values(fetchTextBodyValues=True)
    assert list(text) == ["1.1"] or len(text) == 1
    (value,) = text.values()
    # Decoded (CTE and charset); the CRLF before the boundary belongs to the boundary (RFC 2046 §5.1.1).
    assert value == {"value": "Café at noon? €5 each.", "isEncodingProblem": False, "isTruncated": False}
    html = values(fetchHTMLBodyValues=True)
    (html_value,) = html.values()
    assert html_value["value"].startswith("<p>Café")
    everything = values(fetchAllBodyValues=True)
    # Every text/* part, and not the message/rfc822 or binary ones.
    assert len(everything) == 2
    assert values() == {}


def test_max_body_value_bytes_cuts_on_a_utf8_boundary(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    # "Café" is 5 octets: 4 would split the é, so the value is "Caf" (3 octets).
    for limit, expected in [(4, "Caf"), (5, "Café"), (6, "Café ")]:
        email = get_one(shared_alice, rich["id"], ["bodyValues"], fetchTextBodyValues=True, maxBodyValueBytes=limit)
        (value,) = email["bodyValues"].values()
        assert value["value"] == expected and value["isTruncated"] is True
        assert len(value["value"].encode()) <= limit
    big = get_one(shared_alice, rich["id"], ["bodyValues"], fetchTextBodyValues=True, maxBodyValueBytes=10_000)
    assert next(iter(big["bodyValues"].values()))["isTruncated"] is False


def test_max_body_value_bytes_zero_means_no_limit(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    # RFC 8621 §4.2: 0, the default, means no truncation; a negative value is not an UnsignedInt.
    email = get_one(shared_alice, rich["id"], ["bodyValues"], fetchTextBodyValues=True, maxBodyValueBytes=0)
    assert next(iter(email["bodyValues"].values()))["isTruncated"] is False
    error = shared_alice.error("Email/get", {"ids": [rich["id"]], "maxBodyValueBytes": -1})
    assert error["type"] == "invalidArguments"


def test_encoding_problem_is_flagged(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    raw = (b"From: a@example.com\r\nSubject: bad\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: 8bit\r\n\r\nbad \xff\xfe bytes\r\n")
    created = import_one(shared_alice, raw, rich["inbox"])
    email = get_one(shared_alice, created["id"], ["bodyValues"], fetchAllBodyValues=True)
    (value,) = email["bodyValues"].values()
    assert value["isEncodingProblem"] is True
    assert "\ufffd" in value["value"]


def test_unknown_charset_is_an_encoding_problem(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    raw = (b"From: a@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
           b"\r\nhello\r\n")
    created = import_one(shared_alice, raw, rich["inbox"])
    email = get_one(shared_alice, created["id"], ["bodyValues"], fetchAllBodyValues=True)
    (value,) = email["bodyValues"].values()
    assert value["isEncodingProblem"] is True


def test_not_found_and_properties_with_id(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    result = shared_alice.ok("Email/get", {"ids": [rich["id"], "E999999", "bogus", "M1"], "properties": ["size"]})
    assert result["notFound"] == ["E999999", "bogus", "M1"]
    # The id is always returned (RFC 8620 §5.1).
    assert result["list"] == [{"id": rich["id"], "size": rich["size"]}]


def test_empty_properties_give_only_ids(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    result = shared_alice.ok("Email/get", {"ids": [rich["id"]], "properties": []})
    assert result["list"] == [{"id": rich["id"]}]


def test_all_properties_at_once(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    props = ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
             "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment",
             "preview", "bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "headers"]
    email = get_one(shared_alice, rich["id"], props, fetchAllBodyValues=True)
    assert set(email) == set(props)


def test_state_matches_email_changes(shared_alice: JmapClient, rich: dict[str, Any]) -> None:
    state = shared_alice.ok("Email/get", {"ids": []})["state"]
    changes = shared_alice.ok("Email/changes", {"sinceState": state})
    assert changes["created"] == [] and changes["oldState"] == state == changes["newState"]


def test_upload_of_attachment_blob_is_not_an_email(shared_alice: JmapClient) -> None:
    blob = upload(shared_alice, b"not a message at all", "text/plain")
    result = shared_alice.ok("Email/get", {"ids": [blob]})
    assert result["notFound"] == [blob]


def test_empty_blob_download_completes(shared_alice: JmapClient) -> None:
    # Regression: a zero-length blob file got no closing body message, and the connection was dropped.
    blob = upload(shared_alice, b"", "text/plain")
    for _ in range(2):  # the same keep-alive connection must still work afterwards
        assert download(shared_alice, blob) == b""


@pytest.mark.sqlite_only  # rewrites a stored document through SQLite directly
def test_an_email_stored_without_text_ranges_gives_the_same_body_values(
    tidings: Tidings, server: LiveServer
) -> None:
    # Ingest records where each text part lies (the structure document's textRanges) so that
    # bodyValues are decoded from slices; an email stored before that is parsed in full instead.
    alice = server.client("alice", "secret")
    created = import_one(alice, rich_message(), roles(alice)["inbox"])
    args = {"fetchAllBodyValues": True, "maxBodyValueBytes": 12}
    ranged = get_one(alice, created["id"], ["bodyValues"], **args)
    assert ranged["bodyValues"]["1.1"] == {"value": "Café at noo", "isEncodingProblem": False, "isTruncated": True}
    db = sqlite3.connect(Path(tidings.config.data_dir) / "tidings.sqlite3", isolation_level=None)
    try:
        (document,) = db.execute("SELECT structure FROM emails").fetchone()
        structure = orjson.loads(document)
        assert set(structure.pop("textRanges")) == {"1.1", "1.2"}
        db.execute("UPDATE emails SET structure = ?", (orjson.dumps(structure),))
    finally:
        db.close()
    assert get_one(alice, created["id"], ["bodyValues"], **args) == ranged
