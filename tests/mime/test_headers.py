"""RFC 8621 §4.1.2 header parsed forms, §4.1.3 header properties."""

from __future__ import annotations

import pytest

from tidings.mime.headers import (
    HeaderProperty,
    InvalidHeaderProperty,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    form_allowed,
    lookup_header,
    parse_header_form,
    parse_header_property,
)

# The example of RFC 8621 §4.1.2.3 and §4.1.2.4.
SPEC_LIST = (
    '"  James Smythe" <james@example.com>, Friends:\r\n'
    "  jane@example.com, =?UTF-8?Q?John_Sm=C3=AEth?=\r\n"
    "  <john@example.com>;"
)


def test_spec_addresses_example() -> None:
    assert as_addresses(SPEC_LIST) == [
        {"name": "James Smythe", "email": "james@example.com"},
        {"name": None, "email": "jane@example.com"},
        {"name": "John Smîth", "email": "john@example.com"},
    ]


def test_spec_grouped_addresses_example() -> None:
    assert as_grouped_addresses(SPEC_LIST) == [
        {"name": None, "addresses": [{"name": "James Smythe", "email": "james@example.com"}]},
        {
            "name": "Friends",
            "addresses": [
                {"name": None, "email": "jane@example.com"},
                {"name": "John Smîth", "email": "john@example.com"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # RFC 5322 Appendix A.5: comments everywhere
        ("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>",
         [{"name": "Pete", "email": "pete@silly.test"}]),
        # RFC 5322 Appendix A.1.2: quoted and dotted phrases
        ('"Joe Q. Public" <john.q.public@example.com>',
         [{"name": "Joe Q. Public", "email": "john.q.public@example.com"}]),
        ("John Q. Public <JQP@bar.com>", [{"name": "John Q. Public", "email": "JQP@bar.com"}]),
        # RFC 8621: a comment after a bare addr-spec stands in for the name
        ("jdoe@machine.example (John Doe)", [{"name": "John Doe", "email": "jdoe@machine.example"}]),
        # RFC 5322 §4.4 obsolete: routes, empty list elements, CFWS inside addr-spec
        ("<@machine.tld:mary@example.net>, , jdoe@test  . example",
         [{"name": None, "email": "mary@example.net"}, {"name": None, "email": "jdoe@test.example"}]),
        # encoded-word in a quoted display-name (common, though RFC 2047 forbids it)
        ('"=?utf-8?B?0JDQu9C10LrRgdCw0L3QtNGA?=" <a@example.com>',
         [{"name": "Александр", "email": "a@example.com"}]),
        # two adjacent encoded-words: the space between them disappears (RFC 2047 §6.2)
        ("=?ISO-8859-1?Q?Keld_J=F8rn?= =?ISO-8859-1?Q?_Simonsen?= <keld@dkuug.dk>",
         [{"name": "Keld Jørn Simonsen", "email": "keld@dkuug.dk"}]),
        ("", []),
        ("   ", []),
        ('"" <empty@example.com>', [{"name": None, "email": "empty@example.com"}]),
        ("not an address", [{"name": None, "email": "not an address"}]),
        ("Jörg <jörg@example.de>", [{"name": "Jörg", "email": "jörg@example.de"}]),
        ("unterminated <a@example.com", [{"name": "unterminated", "email": "a@example.com"}]),
    ],
)
def test_addresses(raw: str, expected: list[dict[str, object]]) -> None:
    assert as_addresses(raw) == expected


def test_groups_rfc5322_a13() -> None:
    raw = (
        "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
        "         joe@example.org,\r\n  John <jdoe@one.test> (my dear friend); (the end of the group)"
    )
    assert as_grouped_addresses(raw) == [
        {
            "name": "A Group",
            "addresses": [
                {"name": "Chris Jones", "email": "c@public.example"},
                {"name": None, "email": "joe@example.org"},
                {"name": "John", "email": "jdoe@one.test"},
            ],
        }
    ]
    empty = "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;"
    assert as_grouped_addresses(empty) == [{"name": "Hidden recipients", "addresses": []}]
    assert as_addresses(empty) == []
    assert as_grouped_addresses("undisclosed-recipients:;, x@example.com") == [
        {"name": "undisclosed-recipients", "addresses": []},
        {"name": None, "addresses": [{"name": None, "email": "x@example.com"}]},
    ]


def test_text_form() -> None:
    # RFC 8621 §4.1.2.2: unfold, drop leading SP, decode encoded-words, NFC
    assert as_text(" Hello\r\n world") == "Hello world"
    assert as_text(" =?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?q?_ok?=") == "Café ok"
    # RFC 2047 §8 examples
    assert as_text("=?ISO-8859-1?Q?a?= b") == "a b"
    assert as_text("=?ISO-8859-1?Q?a?=  =?ISO-8859-1?Q?b?=") == "ab"
    assert as_text("=?ISO-8859-1?Q?a_b?=") == "a b"
    assert as_text("=?ISO-8859-1?Q?a?= =?ISO-8859-2?Q?_b?=") == "a b"
    # misplaced encoded-words are not decoded (RFC 8621 §4.1.2.2 step 4)
    assert as_text(" x=?utf-8?q?y?=") == "x=?utf-8?q?y?="
    # unknown charset: left alone
    assert as_text("=?x-nonsense?q?abc?=") == "=?x-nonsense?q?abc?="
    # NUL and controls dropped from decoded text
    assert as_text("=?utf-8?q?a=00b=07c?=") == "abc"
    # multi-octet character split across two words
    assert as_text("=?utf-8?q?=E6=97?= =?utf-8?q?=A5?=") == "日"
    # NFC
    assert as_text("=?utf-8?q?e=CC=81?=") == "é"
    assert as_text("") == ""
    assert as_raw(" keep\r\n folding") == " keep\r\n folding"


def test_message_ids() -> None:
    assert as_message_ids(" <1234@local.machine.example> <3456@example.net>") == [
        "1234@local.machine.example",
        "3456@example.net",
    ]
    assert as_message_ids("<abcd.1234@local.machine.test>\r\n (comment)") == ["abcd.1234@local.machine.test"]
    assert as_message_ids('Your message of "Mon" <a@b.example>') == ["a@b.example"]
    assert as_message_ids(" bare@example.com") == ["bare@example.com"]
    assert as_message_ids("") is None
    assert as_message_ids("no ids here") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Thu, 13 Feb 1969 23:32:54 -0330", "1969-02-13T23:32:54-03:30"),
        ("Fri, 21 Nov 1997 09:55:06 -0600", "1997-11-21T09:55:06-06:00"),
        # RFC 5322 §4.3 obsolete: two-digit year, named zone, folding, comments
        ("21 Nov 97 09:55:06 GMT", "1997-11-21T09:55:06Z"),
        ("Thu,\r\n      13\r\n        Feb\r\n          1969\r\n      23:32\r\n               -0330 (Newfoundland Time)",
         "1969-02-13T23:32:00-03:30"),
        ("Mon, 24 Nov 1997 14:22:01 -0000", "1997-11-24T14:22:01Z"),
        ("Tue, 1 Jul 2003 10:52:37 +0200 (CEST)", "2003-07-01T10:52:37+02:00"),
        ("Mon, 31 Feb 2000 10:00:00 EST", None),
        ("1 Jan 2000 25:00:00 +0000", None),
        ("not a date", None),
        ("", None),
    ],
)
def test_date(raw: str, expected: str | None) -> None:
    assert as_date(raw) == expected


def test_urls() -> None:
    raw = " <mailto:list@host.com?subject=help> (List Instructions),\r\n <http://www.host.com/list/>"
    assert as_urls(raw) == ["mailto:list@host.com?subject=help", "http://www.host.com/list/"]
    assert as_urls(" NO (posting not allowed)") is None


def test_form_allowed_table() -> None:
    assert form_allowed("Subject", "Text")
    assert not form_allowed("Subject", "Addresses")
    assert not form_allowed("From", "Date")
    assert form_allowed("from", "GroupedAddresses")
    assert form_allowed("References", "MessageIds")
    assert not form_allowed("References", "Text")
    assert form_allowed("Resent-Date", "Date")
    assert form_allowed("List-Unsubscribe", "URLs")
    assert not form_allowed("List-Unsubscribe", "Text")
    assert not form_allowed("Received", "Text")
    assert form_allowed("Received", "Raw")
    # fields defined in neither RFC 5322 nor RFC 2369 allow every form
    for form in ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs"):
        assert form_allowed("X-Anything", form)
    assert not form_allowed("X-Anything", "Bogus")


def test_parse_header_property() -> None:
    assert parse_header_property("subject") is None
    prop = parse_header_property("header:Resent-To:asAddresses:all")
    assert prop == HeaderProperty(prop="header:Resent-To:asAddresses:all", name="Resent-To",
                                  form="Addresses", all=True)
    assert prop.key == "resent-to"
    assert parse_header_property("header:subject") == HeaderProperty("header:subject", "subject", "Raw", False)
    assert parse_header_property("header:X-A:all") == HeaderProperty("header:X-A:all", "X-A", "Raw", True)


@pytest.mark.parametrize(
    "prop",
    ["header:", "header::asText", "header:a b", "header:X:all:asText", "header:X:asFoo", "header:X:astext",
     "header:X:asText:all:more", "header:Subject:asAddresses", "header:From:asDate", "header:X:"],
)
def test_parse_header_property_rejects(prop: str) -> None:
    with pytest.raises(InvalidHeaderProperty):
        parse_header_property(prop)
    assert issubclass(InvalidHeaderProperty, ValueError)


def test_dispatch_and_lookup() -> None:
    headers = [("To", " a@example.com"), ("Subject", " one"), ("to", " B <b@example.com>")]
    assert parse_header_form("Addresses", " x@example.com") == [{"name": None, "email": "x@example.com"}]
    to_all = parse_header_property("header:TO:asAddresses:all")
    assert to_all is not None
    assert lookup_header(headers, to_all) == [
        [{"name": None, "email": "a@example.com"}],
        [{"name": "B", "email": "b@example.com"}],
    ]
    last = parse_header_property("header:to")
    assert last is not None and lookup_header(headers, last) == " B <b@example.com>"
    missing = parse_header_property("header:X-Missing:all")
    assert missing is not None and lookup_header(headers, missing) == []
    missing_one = parse_header_property("header:X-Missing")
    assert missing_one is not None and lookup_header(headers, missing_one) is None
    with pytest.raises(InvalidHeaderProperty):
        parse_header_form("Nope", "x")
