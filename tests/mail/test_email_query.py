"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5; RFC 8620 §5.5, §5.6)."""

from __future__ import annotations

from typing import Any

import pytest

from ..helpers import JmapClient
from .mailtools import import_one, message, roles, set_ok

# name: (raw-message arguments, mailbox roles, keywords, receivedAt)
MESSAGES: dict[str, tuple[dict[str, Any], list[str], list[str], str]] = {
    "report": ({"subject": "Quarterly report", "sender": "Zoe Adams <zoe@example.com>", "to": "bob@example.com",
                "cc": "Carol <carol@example.com>", "msgid": "report@x", "date": "Sat, 01 Jan 2022 09:00:00 +0000",
                "body": "The numbers look good. Café crème for all of us.\r\n"},
               ["inbox"], ["$seen"], "2022-01-01T10:00:00Z"),
    "reply": ({"subject": "Re: Quarterly report", "sender": "Bob <bob@example.com>", "to": "zoe@example.com",
               "msgid": "reply@x", "in_reply_to": "report@x", "date": "Sun, 02 Jan 2022 09:00:00 +0000",
               "body": "Thanks for the report, see the \"final figures\" attached.\r\n"},
              ["inbox"], ["$seen", "$flagged"], "2022-01-02T10:00:00Z"),
    "lunch": ({"subject": "Lunch plans", "sender": "alice@example.com", "to": "Dave <dave@example.com>",
               "msgid": "lunch@x", "date": "Mon, 03 Jan 2022 09:00:00 +0000",
               "headers": {"Bcc": "eve@example.com"},
               "content_type": "multipart/mixed; boundary=b",
               "body": "--b\r\nContent-Type: text/plain\r\n\r\nLet's meet at the usual place.\r\n--b\r\n"
                       "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=menu.pdf\r\n"
                       "\r\n%PDF\r\n--b--\r\n"},
              ["archive"], [], "2022-01-03T10:00:00Z"),
    "lunch2": ({"subject": "Re: Lunch plans", "sender": "Dave <dave@example.com>", "to": "alice@example.com",
                "msgid": "lunch2@x", "in_reply_to": "lunch@x", "date": "Tue, 04 Jan 2022 09:00:00 +0000",
                "headers": {"X-Priority": "1 (Highest)"}, "body": "Sounds good to me.\r\n"},
               ["inbox"], [], "2022-01-04T10:00:00Z"),
    "ecole": ({"subject": "=?UTF-8?Q?=C3=89COLE_news?=", "sender": "=?UTF-8?Q?=C3=89lodie?= <elodie@example.fr>",
               "to": "team@example.fr", "msgid": "ecole@x", "date": "Wed, 05 Jan 2022 09:00:00 +0000",
               "body": "Accented words: résumé naïve.\r\n"},
              ["inbox", "archive"], ["$flagged"], "2022-01-05T10:00:00Z"),
    "apple": ({"subject": "apple", "sender": "adam@example.com", "to": "Zed <zed@example.com>", "msgid": "apple@x",
               "date": "Thu, 06 Jan 2022 09:00:00 +0000", "body": "padding " * 300 + "\r\n"},
              ["trash"], ["$seen"], "2022-01-06T10:00:00Z"),
    "banana": ({"subject": "Banana", "sender": "Bee <b@example.com>", "to": "Ann <ann@example.com>",
                "msgid": "banana@x", "date": "Fri, 01 Jan 2021 09:00:00 +0000", "body": "Yellow fruit.\r\n"},
               ["inbox"], [], "2022-01-07T10:00:00Z"),
}


@pytest.fixture(scope="module")
def data(shared_alice: JmapClient) -> dict[str, Any]:
    box = roles(shared_alice)
    ids: dict[str, str] = {}
    threads: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for name, (args, mailbox_roles, keywords, received) in MESSAGES.items():
        created = import_one(shared_alice, message(**args), box[mailbox_roles[0]],
                             keywords=dict.fromkeys(keywords, True), received_at=[received])
        if len(mailbox_roles) > 1:
            set_ok(shared_alice, {"update": {created["id"]: {f"mailboxIds/{box[r]}": True for r in mailbox_roles}}})
        ids[name] = created["id"]
        threads[name] = created["threadId"]
        sizes[name] = created["size"]
    assert threads["report"] == threads["reply"] and threads["lunch"] == threads["lunch2"]
    return {"box": box, "ids": ids, "names": {v: k for k, v in ids.items()}, "threads": threads, "sizes": sizes}


def names(client: JmapClient, data: dict[str, Any], filter: Any = None, sort: Any = None, **args: Any) -> list[str]:
    query: dict[str, Any] = {"filter": filter, **args}
    if sort is not None:
        query["sort"] = sort
    result = client.ok("Email/query", query)
    return [data["names"][i] for i in result["ids"]]


def matching(client: JmapClient, data: dict[str, Any], filter: Any) -> set[str]:
    return set(names(client, data, filter))


ALL = set(MESSAGES)


def test_no_filter_default_sort_is_newest_first(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    assert names(shared_alice, data) == ["banana", "apple", "ecole", "lunch2", "lunch", "reply", "report"]


def test_mailbox_conditions(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    box = data["box"]
    assert matching(shared_alice, data, {"inMailbox": box["inbox"]}) == {"report", "reply", "lunch2", "ecole",
                                                                        "banana"}
    assert matching(shared_alice, data, {"inMailbox": box["archive"]}) == {"lunch", "ecole"}
    assert matching(shared_alice, data, {"inMailbox": "M9999"}) == set()
    # In at least one mailbox not in the list (RFC 8621 §4.4.1).
    assert matching(shared_alice, data, {"inMailboxOtherThan": [box["trash"]]}) == ALL - {"apple"}
    assert matching(shared_alice, data, {"inMailboxOtherThan": [box["inbox"]]}) == {"lunch", "ecole", "apple"}
    assert matching(shared_alice, data, {"inMailboxOtherThan": [box["inbox"], box["archive"]]}) == {"apple"}
    assert matching(shared_alice, data, {"inMailboxOtherThan": []}) == ALL


def test_date_and_size_conditions(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    # before: strictly before; after: the same or after (RFC 8621 §4.4.1).
    assert matching(shared_alice, data, {"before": "2022-01-03T10:00:00Z"}) == {"report", "reply"}
    assert matching(shared_alice, data, {"after": "2022-01-06T10:00:00Z"}) == {"apple", "banana"}
    assert matching(shared_alice, data, {"after": "2022-01-02T00:00:00Z", "before": "2022-01-03T00:00:00Z"}) == {
        "reply"}
    sizes = data["sizes"]
    apple = sizes["apple"]
    assert matching(shared_alice, data, {"minSize": apple}) == {"apple"}
    assert matching(shared_alice, data, {"maxSize": apple}) == ALL - {"apple"}
    assert matching(shared_alice, data, {"maxSize": min(sizes.values())}) == set()


def test_keyword_conditions(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    assert matching(shared_alice, data, {"hasKeyword": "$seen"}) == {"report", "reply", "apple"}
    # Keywords are case-insensitive (RFC 8621 §4.1.1).
    assert matching(shared_alice, data, {"hasKeyword": "$SEEN"}) == {"report", "reply", "apple"}
    assert matching(shared_alice, data, {"notKeyword": "$seen"}) == {"lunch", "lunch2", "ecole", "banana"}
    assert matching(shared_alice, data, {"allInThreadHaveKeyword": "$seen"}) == {"report", "reply", "apple"}
    assert matching(shared_alice, data, {"allInThreadHaveKeyword": "$flagged"}) == {"ecole"}
    assert matching(shared_alice, data, {"someInThreadHaveKeyword": "$flagged"}) == {"report", "reply", "ecole"}
    assert matching(shared_alice, data, {"noneInThreadHaveKeyword": "$flagged"}) == {"lunch", "lunch2", "apple",
                                                                                    "banana"}
    assert matching(shared_alice, data, {"hasKeyword": "never-used"}) == set()


def test_has_attachment(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    assert matching(shared_alice, data, {"hasAttachment": True}) == {"lunch"}
    assert matching(shared_alice, data, {"hasAttachment": False}) == ALL - {"lunch"}


def test_text_conditions(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    def m(**condition: Any) -> set[str]:
        return matching(shared_alice, data, condition)

    assert m(text="report") == {"report", "reply"}
    assert m(text="quarterly numbers") == {"report"}           # every word must be present
    assert m(text="carol") == {"report"}                       # Cc is searched by text
    assert m(text="eve") == {"lunch"}                          # and Bcc
    assert m(text="usual place") == {"lunch"}                  # and the body
    assert m(**{"from": "zoe"}) == {"report"}
    assert m(**{"from": "zoe@example.com"}) == {"report"}
    assert m(to="zoe") == {"reply"}
    assert m(cc="carol") == {"report"}
    assert m(bcc="eve") == {"lunch"}
    assert m(subject="lunch") == {"lunch", "lunch2"}
    assert m(subject="usual") == set()
    assert m(body="usual") == {"lunch"}
    assert m(body="lunch") == set()
    # Case- and accent-insensitive; RFC 2047 words decoded before matching.
    assert m(subject="ecole") == {"ecole"}
    assert m(subject="École") == {"ecole"}
    assert m(**{"from": "elodie"}) == {"ecole"}
    assert m(body="RESUME") == {"ecole"}
    assert m(body="cafe") == {"report"}
    # Phrases: the exact sequence of words.
    assert m(body='"final figures"') == {"reply"}
    assert m(body='"figures final"') == set()
    assert m(body="'usual place'") == {"lunch"}
    assert m(text='"numbers look" good') == {"report"}


def test_header_condition(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    assert matching(shared_alice, data, {"header": ["X-Priority"]}) == {"lunch2"}
    assert matching(shared_alice, data, {"header": ["x-priority", "highest"]}) == {"lunch2"}
    assert matching(shared_alice, data, {"header": ["X-Priority", "lowest"]}) == set()
    assert matching(shared_alice, data, {"header": ["In-Reply-To"]}) == {"reply", "lunch2"}
    # Values are decoded (RFC 2047) before matching.
    assert matching(shared_alice, data, {"header": ["Subject", "ÉCOLE"]}) == {"ecole"}
    for bad in ([], ["a", "b", "c"], [1], [""]):
        error = shared_alice.error("Email/query", {"filter": {"header": bad}})
        assert error["type"] == "invalidArguments"


def test_header_condition_on_a_whole_message_id(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    # A whole "<id>" in Message-ID is looked up by index (migration 0010) and gives what the
    # plain "contains" match gives: case-insensitive, the field's own brackets, nothing else.
    assert matching(shared_alice, data, {"header": ["Message-ID", "<lunch@x>"]}) == {"lunch"}
    assert matching(shared_alice, data, {"header": ["message-id", "<LUNCH@X>"]}) == {"lunch"}
    assert matching(shared_alice, data, {"header": ["Message-ID", "lunch"]}) == {"lunch", "lunch2"}
    assert matching(shared_alice, data, {"header": ["Message-ID", "<nothing@x>"]}) == set()
    # In-Reply-To holds the parent's id: not an index lookup, the same "contains" answer.
    assert matching(shared_alice, data, {"header": ["In-Reply-To", "<lunch@x>"]}) == {"lunch2"}
    no_match = {"operator": "NOT", "conditions": [{"header": ["Message-ID", "<lunch@x>"]}]}
    assert "lunch" not in matching(shared_alice, data, no_match)


def test_operators(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    box = data["box"]
    inbox = {"inMailbox": box["inbox"]}
    seen = {"hasKeyword": "$seen"}
    assert matching(shared_alice, data, {"operator": "AND", "conditions": [inbox, seen]}) == {"report", "reply"}
    assert matching(shared_alice, data, {"operator": "OR", "conditions": [seen, {"hasAttachment": True}]}) == {
        "report", "reply", "apple", "lunch"}
    # NOT: none of the conditions (RFC 8620 §5.5).
    assert matching(shared_alice, data, {"operator": "NOT", "conditions": [inbox, seen]}) == {"lunch"}
    nested = {"operator": "AND", "conditions": [
        {"operator": "NOT", "conditions": [{"inMailbox": box["trash"]}]},
        {"operator": "OR", "conditions": [{"subject": "lunch"}, {"from": "bee"}]},
    ]}
    assert matching(shared_alice, data, nested) == {"lunch", "lunch2", "banana"}
    # Several properties in one condition: all must apply.
    assert matching(shared_alice, data, {"inMailbox": box["inbox"], "hasKeyword": "$flagged"}) == {"reply", "ecole"}
    assert matching(shared_alice, data, {}) == ALL
    assert matching(shared_alice, data, {"operator": "OR", "conditions": []}) == set()
    assert matching(shared_alice, data, {"operator": "AND", "conditions": []}) == ALL


def test_unsupported_filter_and_invalid_values(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    assert shared_alice.error("Email/query", {"filter": {"bogus": 1}})["type"] == "unsupportedFilter"
    for condition in ({"before": "yesterday"}, {"minSize": -1}, {"hasAttachment": "yes"}, {"inMailbox": 3},
                      {"inMailboxOtherThan": "M1"}, {"text": 5}):
        error = shared_alice.error("Email/query", {"filter": condition})
        assert error["type"] in ("invalidArguments", "unsupportedFilter"), (condition, error)
    error = shared_alice.error("Email/query", {"filter": {"operator": "XOR", "conditions": []}})
    assert error["type"] in ("invalidArguments", "unsupportedFilter")


def test_sorts(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    def s(*comparators: dict[str, Any], filter: Any = None) -> list[str]:
        return names(shared_alice, data, filter, list(comparators))

    assert s({"property": "receivedAt", "isAscending": True}) == [
        "report", "reply", "lunch", "lunch2", "ecole", "apple", "banana"]
    # sentAt: banana was sent in 2021.
    assert s({"property": "sentAt"})[0] == "banana"
    assert s({"property": "sentAt", "isAscending": False})[-1] == "banana"
    sizes = data["sizes"]
    assert [sizes[n] for n in s({"property": "size"})] == sorted(sizes.values())
    by_size = s({"property": "size", "isAscending": False})
    assert [sizes[n] for n in by_size] == sorted(sizes.values(), reverse=True)
    # from: the name, else the email, of the first address (RFC 8621 §4.4.2).
    # adam@example.com, alice@example.com, Bee, Bob, Dave, Élodie, Zoe Adams
    assert s({"property": "from"}) == ["apple", "lunch", "banana", "reply", "lunch2", "ecole", "report"]
    # to: Ann, bob@example.com, Dave, alice@example.com ... by name else email.
    assert s({"property": "to"}) == ["lunch2", "banana", "report", "lunch", "ecole", "apple", "reply"]
    # subject: the base subject (RFC 5256): "Re: " removed; default i;unicode-casemap.
    subject = s({"property": "subject"}, {"property": "receivedAt", "isAscending": True})
    assert subject == ["apple", "banana", "ecole", "lunch", "lunch2", "report", "reply"]
    assert s({"property": "subject", "collation": "i;ascii-casemap"},
             {"property": "receivedAt", "isAscending": True})[:2] == ["apple", "banana"]
    # i;octet: upper case sorts before lower case.
    assert s({"property": "subject", "collation": "i;octet"},
             {"property": "receivedAt", "isAscending": True})[:2] == ["banana", "lunch"]
    flagged_first = s({"property": "hasKeyword", "keyword": "$flagged", "isAscending": False},
                      {"property": "receivedAt", "isAscending": True})
    assert flagged_first == ["reply", "ecole", "report", "lunch", "lunch2", "apple", "banana"]
    some = s({"property": "someInThreadHaveKeyword", "keyword": "$FLAGGED", "isAscending": False},
             {"property": "receivedAt", "isAscending": True})
    assert some == ["report", "reply", "ecole", "lunch", "lunch2", "apple", "banana"]
    everyone = s({"property": "allInThreadHaveKeyword", "keyword": "$seen", "isAscending": False},
                 {"property": "receivedAt", "isAscending": True})
    assert everyone == ["report", "reply", "apple", "lunch", "lunch2", "ecole", "banana"]


def test_unsupported_sort(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    for comparator in ({"property": "bogus"}, {"property": "subject", "collation": "x-unknown"}):
        assert shared_alice.error("Email/query", {"sort": [comparator]})["type"] == "unsupportedSort"
    # A keyword sort needs its keyword.
    error = shared_alice.error("Email/query", {"sort": [{"property": "hasKeyword"}]})
    assert error["type"] in ("invalidArguments", "unsupportedSort")


def test_collapse_threads(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    box = data["box"]
    # Fast path: one inMailbox condition, sorted by receivedAt; the general path must agree with it.
    for ascending in (False, True):
        sort = [{"property": "receivedAt", "isAscending": ascending}]
        fast = shared_alice.ok("Email/query", {"filter": {"inMailbox": box["inbox"]}, "sort": sort,
                                               "collapseThreads": True, "calculateTotal": True})
        general = shared_alice.ok("Email/query", {
            "filter": {"operator": "AND", "conditions": [{"inMailbox": box["inbox"]}]}, "sort": sort,
            "collapseThreads": True, "calculateTotal": True})
        assert fast["ids"] == general["ids"] and fast["total"] == general["total"] == 4
        expected = ["banana", "ecole", "lunch2", "reply"]
        if ascending:
            expected = ["report", "lunch2", "ecole", "banana"]
        assert [data["names"][i] for i in fast["ids"]] == expected
    # Any sort: the first email of each thread in the sorted list stands for it.
    by_subject = names(shared_alice, data, None, [{"property": "subject", "isAscending": False}],
                       collapseThreads=True)
    # Ties (same base subject) fall back to the id, newest first, like the last comparator.
    assert by_subject == ["reply", "lunch2", "ecole", "banana", "apple"]
    flagged = names(shared_alice, data, {"hasKeyword": "$flagged"}, None, collapseThreads=True)
    assert flagged == ["ecole", "reply"]


def test_paging(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    full = shared_alice.ok("Email/query", {})["ids"]
    assert len(full) == 7

    def page(**args: Any) -> dict[str, Any]:
        return shared_alice.ok("Email/query", args)

    result = page(position=2, limit=3, calculateTotal=True)
    assert result["ids"] == full[2:5] and result["position"] == 2 and result["total"] == 7
    assert result["canCalculateChanges"] is True
    assert "total" not in page(limit=1)
    result = page(position=-2)
    assert result["ids"] == full[-2:] and result["position"] == 5
    result = page(position=-100, limit=2)
    assert result["ids"] == full[:2] and result["position"] == 0
    assert page(position=50)["ids"] == []
    result = page(anchor=full[3])
    assert result["ids"] == full[3:] and result["position"] == 3
    result = page(anchor=full[3], anchorOffset=-2, limit=2)
    assert result["ids"] == full[1:3] and result["position"] == 1
    result = page(anchor=full[3], anchorOffset=10)
    assert result["ids"] == []
    result = page(anchor=full[1], anchorOffset=-5, limit=2)
    assert result["ids"] == full[:2] and result["position"] == 0
    assert shared_alice.error("Email/query", {"anchor": "E99999"})["type"] == "anchorNotFound"
    assert shared_alice.error("Email/query", {"anchor": "bogus"})["type"] == "anchorNotFound"
    assert shared_alice.error("Email/query", {"limit": -1})["type"] == "invalidArguments"
    # Anchors in the fast path too.
    inbox = {"inMailbox": data["box"]["inbox"]}
    fast = shared_alice.ok("Email/query", {"filter": inbox})["ids"]
    result = page(filter=inbox, anchor=fast[2], anchorOffset=-1, limit=2)
    assert result["ids"] == fast[1:3] and result["position"] == 1
    result = page(filter=inbox, position=-1, calculateTotal=True)
    assert result["ids"] == fast[-1:] and result["total"] == len(fast)
    assert shared_alice.error("Email/query", {"filter": inbox, "anchor": data["ids"]["apple"]})["type"] == \
        "anchorNotFound"


# -- Email/queryChanges (RFC 8620 §5.6)


def replay(old: list[str], changes: dict[str, Any]) -> list[str]:
    """The client's algorithm: drop every removed id, then insert the added ones at their indexes, lowest first."""
    removed = set(changes["removed"])
    out = [i for i in old if i not in removed]
    for item in sorted(changes["added"], key=lambda a: a["index"]):
        out.insert(item["index"], item["id"])
    return out


QUERIES: list[dict[str, Any]] = [
    {"filter": {"inMailbox": "inbox"}},
    {"filter": {"inMailbox": "inbox"}, "collapseThreads": True},
    {"filter": {"inMailbox": "inbox"}, "sort": [{"property": "receivedAt", "isAscending": True}],
     "collapseThreads": True},
    {"sort": [{"property": "subject"}, {"property": "receivedAt", "isAscending": False}], "collapseThreads": True},
    {"filter": {"hasKeyword": "$flagged"}},
    {"filter": {"notKeyword": "$seen"}, "collapseThreads": True},
    {"filter": {"someInThreadHaveKeyword": "$flagged"}},
    {"filter": {"noneInThreadHaveKeyword": "$seen"}, "collapseThreads": True},
    {"sort": [{"property": "allInThreadHaveKeyword", "keyword": "$seen"}, {"property": "receivedAt"}]},
    {"filter": {"text": "plans"}, "sort": [{"property": "size", "isAscending": False}]},
]


def _resolve(query: dict[str, Any], box: dict[str, str]) -> dict[str, Any]:
    out = dict(query)
    if "filter" in out and "inMailbox" in out["filter"]:
        out["filter"] = {"inMailbox": box[out["filter"]["inMailbox"]]}
    return out


def test_query_changes_replay_to_the_new_results(alice: JmapClient) -> None:
    box = roles(alice)
    ids = {}
    for n, (subject, reply_to) in enumerate([("Plans", None), ("Re: Plans", 0), ("Other", None), ("Third", None),
                                              ("Re: Other", 2)]):
        ids[n] = import_one(alice, message(subject, msgid=f"q{n}@x",
                                           in_reply_to=f"q{reply_to}@x" if reply_to is not None else None),
                            box["inbox"], received_at=[f"2022-02-0{n + 1}T00:00:00Z"])["id"]
    queries = [_resolve(q, box) for q in QUERIES]
    before = [alice.ok("Email/query", q) for q in queries]

    # A mixture of changes: new mail (joining a thread), keywords, moves, a destroy.
    import_one(alice, message("Re: Third", msgid="q5@x", in_reply_to="q3@x"), box["inbox"],
               received_at=["2022-02-09T00:00:00Z"])
    set_ok(alice, {"update": {ids[0]: {"keywords/$flagged": True},
                              ids[2]: {"keywords/$seen": True},
                              ids[1]: {"mailboxIds": {box["archive"]: True}}},
                   "destroy": [ids[4]]})
    set_ok(alice, {"update": {ids[3]: {"keywords/$seen": True, "keywords/$flagged": True}}})

    for query, old in zip(queries, before, strict=True):
        changes = alice.ok("Email/queryChanges", {**{k: v for k, v in query.items()},
                                                  "sinceQueryState": old["queryState"], "calculateTotal": True})
        new = alice.ok("Email/query", query)
        assert changes["oldQueryState"] == old["queryState"]
        assert changes["newQueryState"] == new["queryState"]
        assert replay(old["ids"], changes) == new["ids"], query
        assert changes["total"] == len(new["ids"])


def test_query_changes_errors(alice: JmapClient) -> None:
    box = roles(alice)
    old = alice.ok("Email/query", {})
    for n in range(3):
        import_one(alice, message(f"M{n}"), box["inbox"])
    error = alice.error("Email/queryChanges", {"sinceQueryState": old["queryState"], "maxChanges": 2})
    assert error["type"] == "tooManyChanges"
    changes = alice.ok("Email/queryChanges", {"sinceQueryState": old["queryState"], "maxChanges": 6})
    assert len(changes["added"]) == 3
    for state in ("bogus", "999999"):
        error = alice.error("Email/queryChanges", {"sinceQueryState": state})
        assert error["type"] == "cannotCalculateChanges"
    error = alice.error("Email/queryChanges", {})
    assert error["type"] == "invalidArguments"


def test_query_changes_when_a_thread_mate_changes(alice: JmapClient) -> None:
    # An email whose own properties did not change can enter or leave the results when another email of
    # its thread changes (thread-keyword conditions and sorts, collapseThreads).
    box = roles(alice)
    first = import_one(alice, message("Topic", msgid="t1@x"), box["inbox"],
                       received_at=["2022-03-01T00:00:00Z"])
    second = import_one(alice, message("Re: Topic", msgid="t2@x", in_reply_to="t1@x"), box["inbox"],
                        received_at=["2022-03-02T00:00:00Z"])
    import_one(alice, message("Unrelated"), box["inbox"], received_at=["2022-03-03T00:00:00Z"])
    queries: list[dict[str, Any]] = [
        {"filter": {"someInThreadHaveKeyword": "$flagged"}},
        {"filter": {"noneInThreadHaveKeyword": "$flagged"}},
        {"filter": {"allInThreadHaveKeyword": "$seen"}},
        {"sort": [{"property": "someInThreadHaveKeyword", "keyword": "$flagged", "isAscending": False},
                  {"property": "receivedAt"}]},
        {"filter": {"notKeyword": "$seen"}, "collapseThreads": True},
        {"filter": {"inMailbox": box["inbox"]}, "collapseThreads": True},
    ]
    steps = [
        {first["id"]: {"keywords/$flagged": True}},
        {second["id"]: {"keywords/$seen": True}},
        {first["id"]: {"keywords/$seen": True}},
        {second["id"]: {"mailboxIds": {box["archive"]: True}}},
        {first["id"]: {"mailboxIds": {box["archive"]: True}}},
    ]
    for step in steps:
        before = [alice.ok("Email/query", q) for q in queries]
        set_ok(alice, {"update": step})
        for query, old in zip(queries, before, strict=True):
            changes = alice.ok("Email/queryChanges", {**query, "sinceQueryState": old["queryState"]})
            new = alice.ok("Email/query", query)
            assert replay(old["ids"], changes) == new["ids"], (step, query)


def test_search_text_is_never_query_syntax(shared_alice: JmapClient, data: dict[str, Any]) -> None:
    # Whatever the user types is searched for, never parsed as full-text query syntax.
    for text in ['"', "'", '"unclosed phrase', "a*b", "NEAR(a b)", "AND", "OR NOT", "-x", "(", ")", "\\", "^x",
                 "col:umn", "{subject}", "€ ü 中文", "'it''s'", '"a \\" b"', "   ", ""]:
        for key in ("text", "subject", "body", "from"):
            result = shared_alice.call("Email/query", {"filter": {key: text}})
            assert result[0] == "Email/query", (key, text, result)
        snippet = shared_alice.call("SearchSnippet/get",
                                    {"filter": {"text": text}, "emailIds": [data["ids"]["report"]]})
        assert snippet[0] == "SearchSnippet/get", (text, snippet)
    assert matching(shared_alice, data, {"text": "numbers*"}) <= {"report"}


def test_email_changes_paging(alice: JmapClient) -> None:
    box = roles(alice)
    state = alice.ok("Email/get", {"ids": []})["state"]
    made = [import_one(alice, message(f"P{n}"), box["inbox"])["id"] for n in range(5)]
    seen: list[str] = []
    while True:
        changes = alice.ok("Email/changes", {"sinceState": state, "maxChanges": 2})
        assert len(changes["created"]) + len(changes["updated"]) + len(changes["destroyed"]) <= 2
        seen += changes["created"]
        state = changes["newState"]
        if not changes["hasMoreChanges"]:
            break
    assert sorted(seen) == sorted(made)
    assert alice.ok("Email/changes", {"sinceState": state})["created"] == []
