"""parse_message, extract_part and RFC 8621 §4.1.4 body part handling."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tidings.mime.headers import parse_header_property
from tidings.mime.parse import extract_part, parse_message, truncate_utf8
from tidings.mime.structure import MAX_DEPTH

Load = Callable[[str], bytes]


def test_spec_example_structure(fixture_bytes: Load) -> None:
    # RFC 8621 §4.1.4: textBody [A B C D K], htmlBody [A E K], attachments [C F G H J]
    msg = parse_message(fixture_bytes("spec-list-footer.eml"))
    a, b, c, d, k = "1", "2.1.1.1", "2.1.1.2", "2.1.1.3", "3"
    e, f, g, h, j = "2.1.2.1", "2.1.2.2", "2.2", "2.3", "2.4"
    assert msg.text_body == [a, b, c, d, k]
    assert msg.html_body == [a, e, k]
    assert msg.attachments == [c, f, g, h, j]
    assert msg.part(j)["type"] == "message/rfc822"
    assert msg.part(j)["subParts"] is None
    root = msg.body_structure
    assert root["partId"] is None and root["type"] == "multipart/mixed" and len(root["subParts"]) == 3
    json.dumps(root)


def test_body_part_fields(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("alternative-related.eml"))
    assert msg.text_body == ["1"]
    assert msg.html_body == ["2.1"]
    assert msg.attachments == ["2.2"]
    image = msg.part("2.2")
    assert image is not None
    assert image["type"] == "image/png"
    assert image["cid"] == "logo@example.com"
    assert image["disposition"] == "inline"
    assert image["name"] == "logo.png"
    assert image["charset"] is None
    assert image["size"] == 8  # "iVBORw0KGgo=" decodes to 8 octets
    assert [h["name"] for h in image["headers"]] == [
        "Content-Type", "Content-ID", "Content-Disposition", "Content-Transfer-Encoding"]
    assert image["headers"][1]["value"] == " <logo@example.com>"
    # an image referenced by cid: from the HTML is not counted as an attachment
    assert msg.has_attachment is False
    # preview skips the quoted line; the text part is quoted-printable UTF-8
    assert msg.preview == "Café photo attached."
    assert msg.body_values["1"].value == "Café photo attached.\n> quoted reply line"
    assert msg.message_id == ["alt-related@example.com"]
    assert msg.sent_at == "2003-07-01T10:52:37+02:00"
    assert msg.from_ == [{"name": "Ann Example", "email": "ann@example.com"}]
    assert msg.subject == "Re: [team] Fwd: photos"
    assert msg.cc is None and msg.in_reply_to is None
    assert msg.headers[0] == ("From", ' "Ann Example" <ann@example.com>')


def test_charsets_and_encoding_problems(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("charsets.eml"))
    values = {k: (v.value, v.is_encoding_problem) for k, v in msg.body_values.items()}
    assert values == {
        "1": ("こんにちは", False),
        "2": ("こんにちは", False),
        "3": ("Привет", False),
        "4": ("“quoted” € café", False),
        "5": ("hello ÿ", True),  # unknown charset
        "6": ("plain", True),  # unknown Content-Transfer-Encoding
    }
    assert msg.subject == "メイル"
    assert msg.from_ == [{"name": "みける", "email": "j@example.jp"}]
    assert msg.to == [{"name": "Привет", "email": "r@example.ru"}]


def test_rfc2231_names(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("rfc2231.eml"))
    assert [msg.part(p)["name"] for p in msg.attachments] == [
        "This is even more ***fun*** isn't it!", "€ rates.pdf"]


def test_raw_utf8_headers(fixture_bytes: Load) -> None:
    # RFC 6532 raw UTF-8; bytes that are not UTF-8 become U+FFFD; NUL dropped (§4.1.2.1)
    msg = parse_message(fixture_bytes("utf8-headers.eml"))
    assert msg.from_ == [{"name": "Jörg", "email": "jörg@example.de"}]
    assert msg.to == [{"name": "田中", "email": "tanaka@example.jp"}]
    assert msg.subject == "Grüße \ufffd\ufffd broken"
    prop = parse_header_property("header:X-Nul")
    assert prop is not None and msg.header(prop) == " ab"
    assert msg.body_values["1"].value == "Body é\n"


def test_digest_default_type(fixture_bytes: Load) -> None:
    # RFC 2046 §5.1.5: parts of a multipart/digest default to message/rfc822
    msg = parse_message(fixture_bytes("digest.eml"))
    assert [p["type"] for p in msg.body_structure["subParts"]] == ["message/rfc822", "text/plain"]
    assert msg.attachments == ["1"]
    assert msg.text_body == ["2"]
    extracted = extract_part(fixture_bytes("digest.eml"), "1")
    assert extracted is not None
    assert extracted.data == b"From: one@example.com\r\nSubject: one\r\n\r\nfirst"


def test_multipart_without_boundary_is_text(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("no-boundary.eml"))
    assert msg.body_structure["type"] == "text/plain"
    assert msg.text_body == ["1"]
    assert msg.preview == "just text, no boundary at all"


def test_html_only_preview(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("html-only.eml"))
    assert msg.text_body == ["1"] and msg.html_body == ["1"]
    assert msg.preview == "Title Tom & Jerry <3"
    assert msg.search_text().body == "Title\n\nTom & Jerry <3"


def test_named_text_part_is_attachment(fixture_bytes: Load) -> None:
    # RFC 8621 §4.1.4: a text part with a filename, not first in its multipart, is an attachment;
    # an inline image in a multipart/mixed with both body lists goes to both and not to attachments.
    msg = parse_message(fixture_bytes("text-attachment-named.eml"))
    assert msg.text_body == ["1", "3"]
    assert msg.html_body == ["1", "3"]
    assert msg.attachments == ["2"]
    assert msg.has_attachment is True
    search = msg.search_text()
    assert search.attachment_names == ("notes.txt",)
    assert search.attachment_text == "These are notes."
    assert search.from_ == "a@example.com"


def test_no_content_type_and_empty_input() -> None:
    msg = parse_message(b"")
    assert msg.size == 0
    assert msg.body_structure["type"] == "text/plain"
    assert msg.body_structure["charset"] == "us-ascii"
    assert msg.text_body == ["1"] and msg.preview == ""
    assert msg.subject is None and msg.from_ is None and msg.sent_at is None
    msg = parse_message(b"Subject: hi\n\nbody only\n")
    assert msg.subject == "hi"
    assert msg.body_values["1"].value == "body only\n"


def test_garbage_never_raises() -> None:
    blobs = [
        b"\x00\xff" * 50_000,
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n" * 2000,
        b":::\r\n\r\n",
        b"Content-Type: text/plain; charset=\"\r\n\r\n\xff",
        b"Content-Type: multipart/alternative; boundary=\"\"\r\n\r\n--\r\n--\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!!",
        b"From nobody\r\n\tcontinued\r\nX: y\r\n\r\n",
    ]
    for raw in blobs:
        msg = parse_message(raw)
        json.dumps(msg.body_structure)
        ids = list(msg.parts)
        for part_id in ids[:3] + ids[-3:]:  # each extract parses again: sample, don't loop over 2000
            assert extract_part(raw, part_id) is not None


def test_deep_nesting_is_capped() -> None:
    depth = 500
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth)
    )
    raw = head + b"Content-Type: text/plain\r\n\r\ndeep\r\n" + b"".join(
        b"--b%d--\r\n" % i for i in reversed(range(depth))
    )
    start = time.perf_counter()
    msg = parse_message(raw)
    assert time.perf_counter() - start < 2
    node = msg.body_structure
    levels = 0
    while node["subParts"]:
        node = node["subParts"][0]
        levels += 1
    assert levels == MAX_DEPTH
    assert node["type"] == "application/octet-stream"
    assert extract_part(raw, node["partId"]) is not None


def test_extract_part_decodes(fixture_bytes: Load) -> None:
    raw = fixture_bytes("rfc2231.eml")
    part = extract_part(raw, "2")
    assert part is not None
    assert part.data == b"hello"
    assert part.type == "application/octet-stream"
    assert part.name == "This is even more ***fun*** isn't it!"
    assert extract_part(raw, "9") is None
    assert extract_part(raw, "") is None
    msg = parse_message(raw)
    assert msg.part("3")["size"] == len(extract_part(raw, "3").data)  # type: ignore[union-attr]


def test_base64_size_without_decoding() -> None:
    for payload in (b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)) * 3):
        import base64

        encoded = base64.encodebytes(payload)
        raw = (b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               + encoded.replace(b"\n", b"\r\n"))
        msg = parse_message(raw)
        assert msg.body_structure["size"] == len(payload)
        extracted = extract_part(raw, "1")
        assert extracted is not None and extracted.data == payload


def test_truncate_utf8() -> None:
    assert truncate_utf8("héllo", 0) == ("héllo", False)
    assert truncate_utf8("héllo", 6) == ("héllo", False)
    assert truncate_utf8("héllo", 2) == ("h", True)  # never splits é
    assert truncate_utf8("日本語", 4) == ("日", True)
    assert truncate_utf8("😀x", 3) == ("", True)
    # RFC 8621 §4.2: HTML is not cut inside a tag
    assert truncate_utf8('<p>Hi <a href="https://example.com">x</a>', 15, html=True) == ("<p>Hi ", True)
    assert truncate_utf8("<p>Hi there</p>", 9, html=True) == ("<p>Hi the", True)


def test_body_value_json(fixture_bytes: Load) -> None:
    msg = parse_message(fixture_bytes("alternative-related.eml"))
    assert msg.body_value_json("1", 5) == {"value": "Café", "isEncodingProblem": False, "isTruncated": True}
    assert msg.body_value_json("2.1", 8) == {"value": "<html>", "isEncodingProblem": False, "isTruncated": True}
    assert msg.body_value_json("1")["isTruncated"] is False  # type: ignore[index]
    assert msg.body_value_json("2.2") is None


def test_preview_limit() -> None:
    raw = b"Subject: long\r\n\r\n" + b"word " * 1000
    msg = parse_message(raw)
    assert len(msg.preview) <= 256
    assert msg.preview.startswith("word word")


def test_speed_typical_message(fixture_bytes: Load) -> None:
    raw = fixture_bytes("alternative-related.eml")
    raw = raw.replace(b"Caf=C3=A9 photo attached.", b"Caf=C3=A9 photo attached. " + b"x" * 60 + b"=\r\n" * 120)
    parse_message(raw)
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        parse_message(raw)
    assert (time.perf_counter() - start) / runs < 0.01  # generous bound; typically well under 1 ms


def test_obsolete_white_space_before_colon() -> None:
    # RFC 5322 §4.5 obs-optional / Appendix A.6.3; values and body stay byte-exact
    raw = (b"From  : John Doe <jdoe@machine(comment).  example>\r\nSubject     : Saying Hello\r\n"
           b"Date  : Fri, 21 Nov 1997 09(comment):   55  :  06 -0600\r\n"
           b"Message-ID  : <1234   @   local(blah)  .machine .example>\r\n\r\nBody : kept\r\n")
    msg = parse_message(raw)
    assert msg.from_ == [{"name": "John Doe", "email": "jdoe@machine.example"}]
    assert msg.subject == "Saying Hello"
    assert msg.sent_at == "1997-11-21T09:55:06-06:00"
    assert msg.message_id == ["1234@local.machine.example"]
    assert msg.headers[0] == ("From", " John Doe <jdoe@machine(comment).  example>")
    assert msg.body_values["1"].value == "Body : kept\n"
