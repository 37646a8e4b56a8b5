"""Charset decoding, RFC 2047 and RFC 2231."""

from __future__ import annotations

import pytest

from tidings.mime.decode import decode_bytes, decode_encoded_words, lookup_charset, parse_parameters


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf8", "utf-8"),
        ("UTF-8", "utf-8"),
        ("latin1", "cp1252"),
        ("iso-8859-1", "cp1252"),
        ("ks_c_5601-1987", "cp949"),
        ("x-sjis", "cp932"),
        ("Shift_JIS", "cp932"),
        ("windows-874", "cp874"),
        ("unicode-1-1-utf-7", "utf-7"),
        ("gb2312", "gb18030"),
        ("iso-8859-8-i", "iso-8859-8"),
        ("us-ascii", "ascii"),
        ('"koi8-r"', "koi8_r"),
        ("iso-2022-jp", "iso2022_jp_ext"),
        ("windows-1251", "cp1251"),
        ("iso-8859-15", "iso8859-15"),
        ("x-no-such-charset", None),
        ("base64", None),
        ("rot13", None),
        ("", None),
        (None, None),
    ],
)
def test_lookup_charset(label: str | None, codec: str | None) -> None:
    assert lookup_charset(label) == codec


@pytest.mark.parametrize(
    ("data", "charset", "text", "problem"),
    [
        (b"\x1b$B$3$s$K$A$O\x1b(B", "ISO-2022-JP", "こんにちは", False),
        (b"\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd", "Shift_JIS", "こんにちは", False),
        (b"\xf0\xd2\xc9\xd7\xc5\xd4", "KOI8-R", "Привет", False),
        (b"\x93quoted\x94 \x80 caf\xe9", "windows-1252", "“quoted” € café", False),
        (b"caf\xe9 \x80", "iso-8859-1", "café €", False),
        (b"\xc4\xe3\xba\xc3", "gb2312", "你好", False),
        (b"+AGEAYgBj-", "unicode-1-1-utf-7", "abc", False),
        # us-ascii with 8-bit content: UTF-8 when valid, else windows-1252, no problem flagged
        ("é".encode(), "us-ascii", "é", False),
        (b"caf\xe9", "us-ascii", "café", False),
        (b"caf\xe9", None, "café", False),
        (b"\x81", "us-ascii", "\x81", False),
        # bad sequence in a known charset
        (b"ok \xff\xfe", "utf-8", "ok \ufffd\ufffd", True),
        # unknown charset: best effort, flagged
        (b"hello", "x-bogus", "hello", True),
        (b"hello \xff", "x-bogus", "hello ÿ", True),
    ],
)
def test_decode_bytes(data: bytes, charset: str | None, text: str, problem: bool) -> None:
    assert decode_bytes(data, charset) == (text, problem)


def test_encoded_words() -> None:
    assert decode_encoded_words("=?US-ASCII?Q?Keith_Moore?=") == "Keith Moore"
    assert decode_encoded_words("=?ISO-8859-1?Q?Andr=E9?= Pirard") == "André Pirard"
    assert decode_encoded_words("=?ISO-8859-1?B?SWYgeW91IGNhbiByZWFkIHRoaXMgeW8=?=\r\n "
                                "=?ISO-8859-2?B?dSB1bmRlcnN0YW5kIHRoZSBleGFtcGxlLg==?=") == (
        "If you can read this you understand the example."
    )
    # RFC 2231 §5 language in an encoded-word
    assert decode_encoded_words("=?US-ASCII*EN?Q?Keith_Moore?=") == "Keith Moore"
    # an octet that is not UTF-8 becomes U+FFFD
    assert decode_encoded_words("=?utf-8?B?/w==?=") == "\ufffd"  # invalid UTF-8 octet
    # lenient placement when asked
    assert decode_encoded_words("x=?utf-8?q?y?=", strict_placement=False) == "xy"


def test_rfc2231_parameters() -> None:
    # RFC 2231 §3, §4, §4.1 examples
    head, params = parse_parameters(
        "message/external-body; access-type=URL;\r\n URL*0=\"ftp://\";\r\n"
        " URL*1=\"cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar\""
    )
    assert head == "message/external-body"
    assert params["url"] == "ftp://cs.utk.edu/pub/moore/bulk-mailer/bulk-mailer.tar"
    _, params = parse_parameters("application/x-stuff; title*=us-ascii'en-us'This%20is%20%2A%2A%2Afun%2A%2A%2A")
    assert params["title"] == "This is ***fun***"
    _, params = parse_parameters(
        "application/x-stuff;\r\n title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
        " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n title*2=\"isn't it!\""
    )
    assert params["title"] == "This is even more ***fun*** isn't it!"
    # out-of-order sections are sorted; the extended value wins over a plain one
    _, params = parse_parameters("attachment; filename*1=\"b.txt\"; filename*0=\"a\"; filename=\"plain\"")
    assert params["filename"] == "ab.txt"
    _, params = parse_parameters("attachment; filename*=iso-8859-1''caf%E9.txt")
    assert params["filename"] == "café.txt"
    # RFC 2047 inside a quoted parameter (common in the wild)
    _, params = parse_parameters('application/pdf; name="=?UTF-8?B?w6l0w6kucGRm?="')
    assert params["name"] == "été.pdf"
    # comments, odd spacing, quoted-pairs, missing values
    head, params = parse_parameters('Text/Plain (a comment); charset = "us-ascii" ; x="a\\"b"; broken; =v')
    assert head == "Text/Plain"
    assert params == {"charset": "us-ascii", "x": 'a"b'}
    # raw UTF-8 in a parameter (RFC 6532)
    _, params = parse_parameters('attachment; filename="résumé.pdf"')
    assert params["filename"] == "résumé.pdf"
