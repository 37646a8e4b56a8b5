"""SearchSnippet/get (RFC 8621 §5)."""

from __future__ import annotations

from ..helpers import JmapClient
from .mailtools import import_one, message, roles


def test_snippets_mark_matches_and_escape_html(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    first = import_one(alice, message("Dinner <tonight> & more", body="We could have dinner at 8 <b>sharp</b>.\r\n"),
                       inbox)
    second = import_one(alice, message("Unrelated", body="Nothing to see; dinner is not here either.\r\n"), inbox)
    third = import_one(alice, message("Nothing", body="Nothing at all.\r\n"), inbox)
    result = alice.ok("SearchSnippet/get", {"filter": {"text": "dinner"},
                                            "emailIds": [first["id"], second["id"], third["id"], "E9999"]})
    snippets = {s["emailId"]: s for s in result["list"]}
    assert result["notFound"] == ["E9999"]
    subject = snippets[first["id"]]["subject"]
    assert subject == "<mark>Dinner</mark> &lt;tonight&gt; &amp; more"
    preview = snippets[first["id"]]["preview"]
    # Text that looks like markup is never passed through as markup (it may be escaped or left out).
    assert "<mark>dinner</mark>" in preview and "<b>" not in preview
    # No match in the subject: null (RFC 8621 §5.1).
    assert snippets[second["id"]]["subject"] is None
    assert "<mark>dinner</mark>" in snippets[second["id"]]["preview"]
    assert snippets[third["id"]] == {"emailId": third["id"], "subject": None, "preview": None}


def test_snippets_without_text_condition_are_null(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    email = import_one(alice, message("Hello"), inbox)
    result = alice.ok("SearchSnippet/get", {"filter": {"inMailbox": inbox}, "emailIds": [email["id"]]})
    assert result["list"] == [{"emailId": email["id"], "subject": None, "preview": None}]
    result = alice.ok("SearchSnippet/get", {"filter": None, "emailIds": [email["id"]]})
    assert result["list"] == [{"emailId": email["id"], "subject": None, "preview": None}]


def test_snippets_follow_the_condition_fields(alice: JmapClient) -> None:
    inbox = roles(alice)["inbox"]
    email = import_one(alice, message("Apples and pears", body="We sell apples.\r\n"), inbox)
    subject_only = alice.ok("SearchSnippet/get", {"filter": {"subject": "apples"}, "emailIds": [email["id"]]})
    assert subject_only["list"][0]["subject"] == "<mark>Apples</mark> and pears"
    assert subject_only["list"][0]["preview"] is None
    phrase = alice.ok("SearchSnippet/get", {"filter": {"body": '"sell apples"'}, "emailIds": [email["id"]]})
    assert "We <mark>sell apples</mark>" in phrase["list"][0]["preview"].replace("</mark> <mark>", " ")
    # Accents and case do not matter.
    accent = alice.ok("SearchSnippet/get", {"filter": {"text": "PÉARS"}, "emailIds": [email["id"]]})
    assert accent["list"][0]["subject"] == "Apples and <mark>pears</mark>"


def test_snippet_errors(alice: JmapClient) -> None:
    assert alice.error("SearchSnippet/get", {"emailIds": "E1"})["type"] == "invalidArguments"
    assert alice.error("SearchSnippet/get", {"emailIds": [], "filter": {"bogus": 1}})["type"] == "unsupportedFilter"
