"""Property: Email/set create, then Email/get, gives back what was set (RFC 8621 §4.6)."""

from __future__ import annotations

import itertools
import string
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import JmapClient
from .mailtools import roles

TEXT = st.characters(blacklist_categories=("Cc", "Cs", "Co", "Cn"), blacklist_characters="\u2028\u2029\x85")
LOCAL = st.text(alphabet=string.ascii_letters + string.digits + ".-_+", min_size=1, max_size=12).filter(
    lambda s: not s.startswith(".") and not s.endswith(".") and ".." not in s)
DOMAIN = st.sampled_from(["example.com", "example.org", "mail.example.net", "xn--bcher-kva.example"])
NAME = st.one_of(st.none(), st.text(alphabet=TEXT, min_size=1, max_size=30).map(str.strip).filter(bool))
ADDRESS = st.builds(lambda name, local, domain: {"name": name, "email": f"{local}@{domain}"}, NAME, LOCAL, DOMAIN)
LINE = st.text(alphabet=TEXT, max_size=100)
BODY = st.lists(LINE, min_size=1, max_size=6).map("\n".join)
KEYWORD = st.sampled_from(["$seen", "$flagged", "$answered", "$draft", "work", "to-do", "$forwarded"])
SUBJECT = st.text(alphabet=TEXT, max_size=120).map(lambda s: " ".join(s.split()))

EMAIL = st.fixed_dictionaries(
    {
        "subject": SUBJECT,
        "from": st.lists(ADDRESS, min_size=1, max_size=2),
        "to": st.lists(ADDRESS, min_size=1, max_size=3),
        "cc": st.lists(ADDRESS, max_size=2),
        "keywords": st.sets(KEYWORD, max_size=4),
        "text": BODY,
        "html": st.one_of(st.none(), BODY.map(lambda b: "<p>" + b.replace("&", "&amp;").replace("<", "&lt;") + "</p>")),
    }
)
COUNTER = itertools.count()
# Composition and parsing, whatever the store: run once, on the default backend.
pytestmark = pytest.mark.sqlite_only


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def as_read(addresses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Header text is NFC-normalised when read (RFC 8621 §4.1.2.2, §4.1.2.3).
    return [{"name": nfc(a["name"]) if a["name"] else a["name"], "email": a["email"]} for a in addresses]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=EMAIL)
def test_create_then_get_gives_back_what_was_set(shared_alice: JmapClient, spec: dict[str, Any]) -> None:
    drafts = roles(shared_alice)["drafts"]
    email: dict[str, Any] = {
        "mailboxIds": {drafts: True},
        "keywords": dict.fromkeys(spec["keywords"], True),
        "subject": spec["subject"],
        "from": spec["from"],
        "to": spec["to"],
        "bodyValues": {"t": {"value": spec["text"]}},
        "textBody": [{"partId": "t", "type": "text/plain"}],
    }
    if spec["cc"]:
        email["cc"] = spec["cc"]
    if spec["html"] is not None:
        email["bodyValues"]["h"] = {"value": spec["html"]}
        email["htmlBody"] = [{"partId": "h", "type": "text/html"}]
    key = f"c{next(COUNTER)}"
    result = shared_alice.ok("Email/set", {"create": {key: email}})
    assert result.get("notCreated") is None, result["notCreated"]
    created = result["created"][key]
    got = shared_alice.ok("Email/get", {
        "ids": [created["id"]], "fetchAllBodyValues": True,
        "properties": ["mailboxIds", "keywords", "subject", "from", "to", "cc", "textBody", "htmlBody", "bodyValues",
                       "size", "blobId"],
    })["list"][0]
    assert got["mailboxIds"] == {drafts: True}
    assert got["keywords"] == email["keywords"]
    assert got["subject"] == nfc(spec["subject"])
    assert got["from"] == as_read(spec["from"])
    assert got["to"] == as_read(spec["to"])
    assert got["cc"] == (as_read(spec["cc"]) or None)
    assert got["size"] == created["size"]
    (text_part,) = got["textBody"]
    assert got["bodyValues"][text_part["partId"]]["value"] == spec["text"]
    assert got["bodyValues"][text_part["partId"]]["isEncodingProblem"] is False
    if spec["html"] is not None:
        (html_part,) = got["htmlBody"]
        assert got["bodyValues"][html_part["partId"]]["value"] == spec["html"]
