"""build_message: RFC 8621 §4.6 creation rules, and build -> parse round trips."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.mime.build import BlobNotFound, BuildError, build_message
from tidings.mime.headers import parse_header_property
from tidings.mime.parse import extract_part, parse_message

BLOBS = {"B1": b"%PDF-1.4\x00\xff binary", "B2": b"\x89PNG\r\n\x1a\n", "MSG": b"From: x@example.com\r\n\r\nhi\r\n"}


def fetch(blob_id: str) -> bytes | None:
    return BLOBS.get(blob_id)


def build(email: dict[str, Any]) -> bytes:
    return build_message(email, fetch_blob=fetch, domain="example.org",
                         now=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))


def test_minimal_message_gets_date_message_id_and_mime_version() -> None:
    raw = build({"bodyValues": {"1": {"value": "hello"}}, "textBody": [{"partId": "1"}]})
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse_message(raw)
    assert msg.sent_at == "2024-05-01T12:00:00Z"
    assert msg.message_id is not None and msg.message_id[0].endswith("@example.org")
    assert msg.body_values["1"].value == "hello"
    assert msg.body_structure["type"] == "text/plain"
    assert msg.body_structure["charset"] == "utf-8"
    mime = parse_header_property("header:MIME-Version")
    assert mime is not None and msg.header(mime) == " 1.0"


def test_empty_email_has_empty_text_body() -> None:
    msg = parse_message(build({}))
    assert msg.body_structure["type"] == "text/plain"
    assert msg.body_values["1"].value == ""


def test_given_headers_and_convenience_properties() -> None:
    raw = build({
        "from": [{"name": "Zoë", "email": "zoe@example.com"}],
        "sender": [{"email": "s@example.com"}],
        "replyTo": [{"name": "List, The", "email": "list@example.com"}],
        "subject": "  odd  spacing ",
        "sentAt": "2014-10-30T14:12:00+08:00",
        "messageId": ["given@example.com"],
        "inReplyTo": ["parent@example.com"],
        "references": ["root@example.com", "parent@example.com"],
        "header:X-Text:asText": "naïve",
        "header:X-Raw": "  raw value",
        "header:List-Id": "<list.example.com>",
        "header:Resent-To:asGroupedAddresses": [
            {"name": "Team", "addresses": [{"name": None, "email": "a@example.com"}]},
            {"name": None, "addresses": [{"name": None, "email": "b@example.com"}]},
        ],
        "header:X-Ids:asMessageIds": ["x@example.com"],
        "header:X-When:asDate": "2020-02-29T23:59:59Z",
        "header:List-Unsubscribe:asURLs": ["mailto:u@example.com", "https://example.com/u"],
        "header:X-Multi:all": ["one", "two"],
        "keywords": {"$seen": True},
        "mailboxIds": {"m1": True},
        "bodyValues": {"1": {"value": "x"}},
        "textBody": [{"partId": "1"}],
    })
    msg = parse_message(raw)
    assert msg.from_ == [{"name": "Zoë", "email": "zoe@example.com"}]
    assert msg.sender == [{"name": None, "email": "s@example.com"}]
    assert msg.reply_to == [{"name": "List, The", "email": "list@example.com"}]
    assert msg.subject == "  odd  spacing "
    assert msg.sent_at == "2014-10-30T14:12:00+08:00"
    assert msg.message_id == ["given@example.com"]
    assert msg.in_reply_to == ["parent@example.com"]
    assert msg.references == ["root@example.com", "parent@example.com"]

    def get(prop: str) -> Any:
        parsed = parse_header_property(prop)
        assert parsed is not None
        return msg.header(parsed)

    assert get("header:X-Text:asText") == "naïve"
    assert get("header:X-Raw") == "  raw value"
    assert get("header:List-Id") == " <list.example.com>"
    assert get("header:Resent-To:asGroupedAddresses") == [
        {"name": "Team", "addresses": [{"name": None, "email": "a@example.com"}]},
        {"name": None, "addresses": [{"name": None, "email": "b@example.com"}]},
    ]
    assert get("header:X-Ids:asMessageIds") == ["x@example.com"]
    assert get("header:X-When:asDate") == "2020-02-29T23:59:59Z"
    assert get("header:List-Unsubscribe:asURLs") == ["mailto:u@example.com", "https://example.com/u"]
    assert get("header:X-Multi:all") == [" one", " two"]
    assert b"keywords" not in raw and b"$seen" not in raw
    assert raw.count(b"Message-ID:") == 1 and raw.count(b"\r\nDate:") == 1


def test_body_structure_with_blobs_and_rfc822() -> None:
    raw = build({
        "bodyValues": {"t": {"value": "text"}, "h": {"value": "<b>html</b>"}},
        "bodyStructure": {
            "type": "multipart/mixed",
            "header:X-Part": "root",
            "subParts": [
                {"type": "multipart/alternative", "subParts": [
                    {"partId": "t", "type": "text/plain", "language": ["en", "fr"]},
                    {"partId": "h", "type": "text/html", "location": "https://example.com/x"},
                ]},
                {"blobId": "B1", "type": "application/pdf", "name": "doc.pdf", "size": 3},
                {"blobId": "MSG", "type": "message/rfc822"},
                {"blobId": "B2", "type": "text/plain", "charset": "iso-8859-1", "disposition": "attachment"},
            ],
        },
    })
    msg = parse_message(raw)
    assert msg.text_body == ["1.1"] and msg.html_body == ["1.2"]
    assert msg.attachments == ["2", "3", "4"]
    assert msg.part("1.1")["language"] == ["en", "fr"]  # type: ignore[index]
    assert msg.part("1.2")["location"] == "https://example.com/x"  # type: ignore[index]
    assert msg.part("4")["charset"] == "iso-8859-1"  # type: ignore[index]
    for part_id, blob in (("2", "B1"), ("3", "MSG"), ("4", "B2")):
        extracted = extract_part(raw, part_id)
        assert extracted is not None and extracted.data == BLOBS[blob]
    assert b"Content-Transfer-Encoding: 7bit" in raw  # message/rfc822 stays unencoded (RFC 2046 §5.2.1)
    assert b"X-Part: root" in raw


def reject(email: dict[str, Any], *properties: str) -> None:
    with pytest.raises(BuildError) as info:
        build(email)
    assert info.value.properties == list(properties), info.value.description


TEXT = {"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1"}]}


def test_creation_constraints() -> None:
    # RFC 8621 §4.6, rule by rule
    reject({**TEXT, "headers": []}, "headers")
    reject({**TEXT, "from": [], "header:From:asAddresses": []}, "from", "header:From:asAddresses")
    reject({**TEXT, "header:subject": " a", "header:Subject:asText": "b"}, "header:subject", "header:Subject:asText")
    reject({**TEXT, "header:Subject:asAddresses": []}, "header:Subject:asAddresses")
    reject({**TEXT, "header:Content-Type": " text/plain"}, "header:Content-Type")
    reject({**TEXT, "bodyStructure": {"partId": "1"}}, "bodyStructure", "textBody")
    reject({"subject": "s", "bodyValues": {"1": {"value": "x"}},
            "bodyStructure": {"partId": "1", "header:Subject": " dup"}}, "subject", "bodyStructure/header:Subject")
    reject({"bodyValues": {"1": {"value": "x"}, "2": {"value": "y"}},
            "textBody": [{"partId": "1"}, {"partId": "2"}]}, "textBody")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "type": "text/html"}]},
           "textBody/0/type")
    reject({"bodyValues": {"1": {"value": "x"}}, "htmlBody": [{"partId": "1", "type": "text/plain"}]},
           "htmlBody/0/type")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "blobId": "B1"}]},
           "textBody/0/partId", "textBody/0/blobId")
    reject({"textBody": [{"partId": "nope"}]}, "textBody/0/partId")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "charset": "utf-8"}]},
           "textBody/0/charset")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "size": 1}]}, "textBody/0/size")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "header:Content-Transfer-Encoding":
                                                                " base64"}]},
           "textBody/0/header:Content-Transfer-Encoding")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "headers": []}]},
           "textBody/0/headers")
    reject({"bodyValues": {"1": {"value": "x", "isTruncated": True}}, "textBody": [{"partId": "1"}]},
           "bodyValues/1/isTruncated")
    reject({"bodyValues": {"1": {"value": "x", "isEncodingProblem": True}}, "textBody": [{"partId": "1"}]},
           "bodyValues/1/isEncodingProblem")
    reject({**TEXT, "bodyValues": {"1": {"value": "x"}, "2": {"value": "unused"}}}, "bodyValues/2")
    reject({"bodyValues": {"1": {"value": "x"}}, "textBody": [{"partId": "1", "type": "text/plain",
                                                              "header:Content-Type": " text/plain"}]},
           "textBody/0/type", "textBody/0/header:Content-Type")
    reject({**TEXT, "sentAt": "yesterday"}, "sentAt")
    reject({**TEXT, "sentAt": "2020-01-01T00:00:00"}, "sentAt")
    reject({**TEXT, "subject": "two\r\nlines"}, "subject")
    reject({**TEXT, "header:X-Raw": " a\r\nInjected: yes"}, "header:X-Raw")
    reject({**TEXT, "messageId": ["has space@x"]}, "messageId")
    reject({**TEXT, "to": [{"name": "x"}]}, "to")
    reject({"bodyStructure": {"type": "multipart/mixed", "partId": "1", "subParts": []},
            "bodyValues": {"1": {"value": "x"}}}, "bodyStructure/subParts")
    reject({"bodyStructure": {"type": "multipart/mixed"}}, "bodyStructure/subParts")
    reject({"bodyStructure": {"blobId": "B1", "bogus": 1}}, "bodyStructure/bogus")


def test_missing_blobs_are_all_reported() -> None:
    with pytest.raises(BlobNotFound) as info:
        build({**TEXT, "attachments": [{"blobId": "nope1"}, {"blobId": "B1"}, {"blobId": "nope2"}]})
    assert info.value.blob_ids == ["nope1", "nope2"]


def test_inline_images_go_in_related() -> None:
    raw = build({
        "bodyValues": {"t": {"value": "t"}, "h": {"value": '<img src="cid:img@x">'}},
        "textBody": [{"partId": "t"}],
        "htmlBody": [{"partId": "h"}],
        "attachments": [{"blobId": "B2", "type": "image/png", "cid": "img@x"},
                        {"blobId": "B1", "type": "application/pdf", "name": "a.pdf"}],
    })
    msg = parse_message(raw)
    structure = msg.body_structure
    assert structure["type"] == "multipart/mixed"
    assert structure["subParts"][0]["type"] == "multipart/alternative"
    assert structure["subParts"][0]["subParts"][1]["type"] == "multipart/related"
    assert msg.part("1.2.2")["cid"] == "img@x"  # type: ignore[index]
    assert msg.text_body == ["1.1"] and msg.html_body == ["1.2.1"] and msg.attachments == ["1.2.2", "2"]


def test_long_and_non_ascii_values_are_encoded() -> None:
    long_line = "word " * 400
    raw = build({
        "subject": "a" * 200,
        "bodyValues": {"1": {"value": long_line + "\n" + "é" * 3000}},
        "textBody": [{"partId": "1"}],
    })
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.isascii()
    msg = parse_message(raw)
    assert msg.subject == "a" * 200
    assert msg.body_values["1"].value == long_line + "\n" + "é" * 3000


# --- round trip -----------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85"),
                max_size=60)
# Parsed header text is NFC (RFC 8621 §4.1.2.2), so generate NFC text for headers.
_name = _text.map(lambda s: unicodedata.normalize("NFC", " ".join(s.split()))).filter(bool)
_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,15}", fullmatch=True).filter(lambda s: ".." not in s
                                                                               and not s.endswith("."))
_email = st.builds(lambda local, domain: f"{local}@{domain}.example", _local,
                   st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True))
_address = st.fixed_dictionaries({"name": st.one_of(st.none(), _name), "email": _email})
_body = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x85\u2028\u2029"),
                max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    subject=_text.map(lambda s: unicodedata.normalize("NFC", s.strip())),
    sender=_address,
    recipients=st.lists(_address, min_size=1, max_size=4),
    text=_body,
    html=_body,
    filename=_name,
    content=st.binary(max_size=400),
)
def test_round_trip(subject: str, sender: dict[str, Any], recipients: list[dict[str, Any]], text: str, html: str,
                    filename: str, content: bytes) -> None:
    blobs = {"att": content}
    email = {
        "from": [sender],
        "to": recipients,
        "subject": subject,
        "bodyValues": {"t": {"value": text}, "h": {"value": html}},
        "textBody": [{"partId": "t"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        "attachments": [{"blobId": "att", "type": "application/octet-stream", "name": filename}],
    }
    raw = build_message(email, fetch_blob=blobs.get, domain="example.org")
    msg = parse_message(raw)
    assert msg.subject == subject
    assert msg.from_ == [sender]
    assert msg.to == recipients
    assert msg.text_body == ["1.1"] and msg.html_body == ["1.2"] and msg.attachments == ["2"]
    assert msg.body_values["1.1"].value == text
    assert msg.body_values["1.2"].value == html
    assert not msg.body_values["1.1"].is_encoding_problem
    attachment = msg.part("2")
    assert attachment is not None and attachment["name"] == filename and attachment["size"] == len(content)
    extracted = extract_part(raw, "2")
    assert extracted is not None and extracted.data == content
    assert msg.has_attachment
