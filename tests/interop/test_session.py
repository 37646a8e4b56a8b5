"""What clients and conformance tools read first: the session (RFC 8620 §2) and the event source.

Session URLs are absolute; the event source answers `200 text/event-stream`; every capability and
account capability present has the keys its RFC defines, and the values are honest: each advertised
limit is enforced at exactly that value, each advertised sort and collation works.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tidings.demo import fill

from ..helpers import CORE, MAIL, USING, JmapClient, LiveServer, make_tidings
from .conftest import Demo

SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"
WEBSOCKET = "urn:ietf:params:jmap:websocket"

# Capability -> (keys of its session value, keys of its account value or None when it has none),
# as the defining RFCs list them.
RFC_KEYS: dict[str, tuple[set[str], set[str] | None]] = {
    # RFC 8620 §2
    CORE: (
        {"maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests", "maxCallsInRequest",
         "maxObjectsInGet", "maxObjectsInSet", "collationAlgorithms"},
        None,
    ),
    # RFC 8621 §1.3.1
    MAIL: (
        set(),
        {"maxMailboxesPerEmail", "maxMailboxDepth", "maxSizeMailboxName", "maxSizeAttachmentsPerEmail",
         "emailQuerySortOptions", "mayCreateTopLevelMailbox"},
    ),
    # RFC 8621 §1.3.2
    SUBMISSION: (set(), {"maxDelayedSend", "submissionExtensions"}),
    # RFC 8621 §1.3.3
    VACATION: (set(), set()),
    # RFC 8887 §4
    WEBSOCKET: ({"url", "supportsPush"}, None),
    # RFC 9749 §4
    "urn:ietf:params:jmap:webpush-vapid": ({"applicationServerKey"}, None),
    # RFC 9404 §3
    "urn:ietf:params:jmap:blob": (set(), {"maxSizeBlobSet", "maxDataSources", "supportedTypes",
                                          "supportedDigestAlgorithms"}),
    # RFC 9425 §3, RFC 9007 §2, RFC 9661 §2
    "urn:ietf:params:jmap:quota": (set(), set()),
    "urn:ietf:params:jmap:mdn": (set(), set()),
    "urn:ietf:params:jmap:sieve": (set(), {"maxSizeScriptName", "maxSizeScript", "maxNumberScripts",
                                           "maxNumberRedirects", "sieveExtensions", "notificationMethods",
                                           "externalLists", "implementation"}),
}


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def test_session_urls_are_absolute_templates(demo: Demo) -> None:
    client = JmapClient(demo.url, _basic(demo))
    session = client.session
    for name in ("apiUrl", "downloadUrl", "uploadUrl", "eventSourceUrl"):
        assert session[name].startswith(demo.url + "/"), name
    # RFC 8620 §2: the variables each template MUST contain.
    for name, variables in (
        ("downloadUrl", ("accountId", "blobId", "type", "name")),
        ("uploadUrl", ("accountId",)),
        ("eventSourceUrl", ("types", "closeafter", "ping")),
    ):
        assert all("{" + v + "}" in session[name] for v in variables), name
    client.close()


def test_event_source_answers_200_text_event_stream(demo: Demo) -> None:
    session = JmapClient(demo.url, _basic(demo)).session
    url = _expand(session["eventSourceUrl"], types="*", closeafter="no", ping="0")
    with (
        httpx.Client(auth=(demo.username, demo.password), timeout=10) as http,
        http.stream("GET", url, headers={"Accept": "text/event-stream"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].split(";")[0] == "text/event-stream"
        assert "no-cache" in response.headers.get("cache-control", "")


def test_every_capability_has_its_rfc_keys(demo: Demo) -> None:
    client = JmapClient(demo.url, _basic(demo))
    session = client.session
    capabilities = session["capabilities"]
    for urn, value in capabilities.items():
        if not urn.startswith("urn:ietf:params:jmap:"):
            continue  # a vendor extension: its own document defines it
        assert urn in RFC_KEYS, f"{urn} is not a capability an RFC defines"
        session_keys, _ = RFC_KEYS[urn]
        assert isinstance(value, dict) and session_keys <= set(value), (urn, value)

    # RFC 8620 §2: every account capability is one the server announces; each primary account exists.
    for account in session["accounts"].values():
        assert set(account) >= {"name", "isPersonal", "isReadOnly", "accountCapabilities"}
        for urn, value in account["accountCapabilities"].items():
            assert urn in capabilities and urn != CORE
            _, account_keys = RFC_KEYS.get(urn, (set(), set()))
            assert account_keys is not None, f"{urn} has no account capability in its RFC"
            assert account_keys <= set(value), (urn, value)
    for urn, account_id in session["primaryAccounts"].items():
        assert urn in capabilities and account_id in session["accounts"]
    assert session["username"] == demo.username and isinstance(session["state"], str)

    core = capabilities[CORE]
    assert all(_is_uint(core[k]) and core[k] >= 1 for k in RFC_KEYS[CORE][0] - {"collationAlgorithms"})
    assert "i;unicode-casemap" in core["collationAlgorithms"]
    mail = session["accounts"][demo.account_id]["accountCapabilities"][MAIL]
    assert mail["maxMailboxesPerEmail"] is None or mail["maxMailboxesPerEmail"] >= 1
    assert mail["maxSizeMailboxName"] >= 100  # RFC 8621 §1.3.1: at least 100
    assert isinstance(mail["mayCreateTopLevelMailbox"], bool)
    if SUBMISSION in capabilities:
        submission = session["accounts"][demo.account_id]["accountCapabilities"][SUBMISSION]
        assert _is_uint(submission["maxDelayedSend"])
        extensions = submission["submissionExtensions"]
        assert all(isinstance(v, list) and all(isinstance(a, str) for a in v) for v in extensions.values())
        if submission["maxDelayedSend"] > 0:  # RFC 8621 §1.3.2: FUTURERELEASE comes with delayed send
            assert "FUTURERELEASE" in extensions
    if WEBSOCKET in capabilities:
        websocket = capabilities[WEBSOCKET]
        assert websocket["url"] == "ws" + demo.url.removeprefix("http") + "/jmap/ws"
        assert isinstance(websocket["supportsPush"], bool)
    client.close()


# -- honest values: a server with small limits, each enforced exactly at what it advertises

LIMITS = {
    "max_size_upload": 2000,
    "max_size_request": 20000,
    "max_calls_in_request": 4,
    "max_objects_in_get": 5,
    "max_objects_in_set": 5,
}


@pytest.fixture
def small(tmp_path: Path) -> Iterator[JmapClient]:
    tidings = make_tidings(tmp_path / "data", **LIMITS)
    user = tidings.accounts.add_user("demo", "demo-password")
    fill(tidings.store, user.account_id, user.address)
    server = LiveServer(tidings).start()
    client = server.client("demo", "demo-password")
    yield client
    client.close()
    server.stop()
    tidings.close()


def test_core_limits_are_enforced_as_advertised(small: JmapClient) -> None:
    core = small.session["capabilities"][CORE]
    assert core["maxSizeUpload"] == LIMITS["max_size_upload"]
    upload = small.session["uploadUrl"].replace("{accountId}", small.account_id)
    assert small.http.post(upload, content=b"x" * core["maxSizeUpload"]).status_code == 201
    refused = small.http.post(upload, content=b"x" * (core["maxSizeUpload"] + 1))
    # RFC 8620 §3.6.1: a limit problem naming the limit (the status is the server's choice).
    assert refused.status_code in (400, 413) and refused.json()["limit"] == "maxSizeUpload"

    echo = [["Core/echo", {}, str(i)] for i in range(core["maxCallsInRequest"])]
    assert len(small.request(echo)["methodResponses"]) == core["maxCallsInRequest"]
    too_many = small.http.post("/jmap/api/", json={"using": USING, "methodCalls": [*echo, ["Core/echo", {}, "x"]]})
    assert too_many.status_code in (400, 413) and too_many.json()["limit"] == "maxCallsInRequest"

    big = {"using": USING, "methodCalls": [["Core/echo", {"pad": ""}, "0"]]}
    overhead = len(httpx.Request("POST", "/", json=big).content)
    big["methodCalls"][0][1]["pad"] = "x" * (core["maxSizeRequest"] - overhead)
    assert small.http.post("/jmap/api/", json=big).status_code == 200
    big["methodCalls"][0][1]["pad"] += "x"
    assert small.http.post("/jmap/api/", json=big).json()["limit"] == "maxSizeRequest"

    ids = small.ok("Email/query", {"limit": core["maxObjectsInGet"] + 1})["ids"]
    assert len(small.ok("Email/get", {"ids": ids[:-1], "properties": ["id"]})["list"]) == core["maxObjectsInGet"]
    assert small.error("Email/get", {"ids": ids, "properties": ["id"]})["type"] == "requestTooLarge"
    update = {i: {"keywords/$seen": True} for i in ids}
    assert small.error("Email/set", {"update": update})["type"] == "requestTooLarge"
    del update[ids[-1]]
    assert len(small.ok("Email/set", {"update": update})["updated"]) == core["maxObjectsInSet"]


def test_collations_and_sort_options_work_as_advertised(small: JmapClient) -> None:
    core = small.session["capabilities"][CORE]
    mail = small.session["accounts"][small.account_id]["accountCapabilities"][MAIL]
    for collation in core["collationAlgorithms"]:
        sort = [{"property": "subject", "collation": collation}]
        assert small.ok("Email/query", {"sort": sort, "limit": 3})["ids"]
        assert small.ok("Mailbox/query", {"sort": [{"property": "name", "collation": collation}]})["ids"]
    assert small.error("Email/query", {"sort": [{"property": "subject", "collation": "i;octet-nonsense"}]})[
        "type"] == "unsupportedSort"
    for option in mail["emailQuerySortOptions"]:
        comparator: dict[str, Any] = {"property": option, "isAscending": False}
        if "Keyword" in option:
            comparator["keyword"] = "$flagged"
        ids = small.ok("Email/query", {"sort": [comparator]})["ids"]
        assert ids, option
    assert small.error("Email/query", {"sort": [{"property": "bcc"}]})["type"] == "unsupportedSort"


def test_mail_account_limits_are_enforced_as_advertised(small: JmapClient) -> None:
    mail = small.session["accounts"][small.account_id]["accountCapabilities"][MAIL]

    # maxSizeMailboxName, in octets of UTF-8.
    longest = "é" * (mail["maxSizeMailboxName"] // 2)
    made = small.ok("Mailbox/set", {"create": {"a": {"name": longest}, "b": {"name": longest + "é"}}})
    assert "a" in made["created"] and made["notCreated"]["b"]["type"] == "invalidProperties"

    # mayCreateTopLevelMailbox, and maxMailboxDepth: a chain that deep is fine, one deeper is not.
    assert mail["mayCreateTopLevelMailbox"] is True
    depth = mail["maxMailboxDepth"]
    parent = made["created"]["a"]["id"]
    for level in range(2, depth + 1):
        parent = small.ok("Mailbox/set", {"create": {"m": {"name": f"L{level}", "parentId": parent}}})[
            "created"]["m"]["id"]
    deeper = small.ok("Mailbox/set", {"create": {"m": {"name": "too deep", "parentId": parent}}})
    assert deeper["notCreated"]["m"]["type"] == "invalidProperties"

    # maxMailboxesPerEmail is null: an email may be in every mailbox.
    assert mail["maxMailboxesPerEmail"] is None
    everywhere = {m: True for m in small.ok("Mailbox/query", {})["ids"]}
    some = small.ok("Email/query", {"limit": 1})["ids"][0]
    assert some in small.ok("Email/set", {"update": {some: {"mailboxIds": everywhere}}})["updated"]

    # maxSizeAttachmentsPerEmail: the sum of the attachments' own sizes, however they are encoded.
    limit = mail["maxSizeAttachmentsPerEmail"]
    upload = small.session["uploadUrl"].replace("{accountId}", small.account_id)
    half = small.http.post(upload, content=b"a" * (limit // 2), headers={"Content-Type": "text/plain"}).json()
    rest = small.http.post(upload, content=b"b" * (limit - limit // 2), headers={"Content-Type": "text/plain"}).json()
    one = small.http.post(upload, content=b"c", headers={"Content-Type": "text/plain"}).json()
    drafts = small.ok("Mailbox/query", {"filter": {"role": "drafts"}})["ids"][0]

    def draft(*blobs: dict[str, Any]) -> dict[str, Any]:
        return {
            "mailboxIds": {drafts: True},
            "subject": "attachments",
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": "see attached"}},
            "attachments": [{"blobId": b["blobId"], "type": "text/plain", "name": f"{i}.txt"}
                            for i, b in enumerate(blobs)],
        }

    result = small.ok("Email/set", {"create": {"fits": draft(half, rest), "over": draft(half, rest, one),
                                               "twice": draft(half, half, rest)}})
    assert "fits" in result["created"]
    # RFC 8620 §5.3: a create that would exceed a server limit on the object's size is tooLarge.
    assert result["notCreated"]["over"]["type"] == "tooLarge"
    assert result["notCreated"]["twice"]["type"] == "tooLarge"


def _basic(demo: Demo) -> str:
    return httpx.BasicAuth(demo.username, demo.password)._auth_header


def _expand(template: str, **values: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
