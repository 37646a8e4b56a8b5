"""A first end-to-end pass over a real socket: session, echo, mailboxes."""

from __future__ import annotations

from ..helpers import CORE, JmapClient, LiveServer


def test_session_lists_account_capabilities_and_absolute_urls(alice: JmapClient, server: LiveServer) -> None:
    session = alice.session
    assert session["username"] == "alice"
    assert CORE in session["capabilities"]
    assert session["apiUrl"].startswith(server.url)
    account = session["accounts"][alice.account_id]
    assert account["isPersonal"] is True
    assert "urn:ietf:params:jmap:mail" in account["accountCapabilities"]


def test_echo_returns_its_arguments(alice: JmapClient) -> None:
    response = alice.request([["Core/echo", {"hello": [1, 2, {"x": None}]}, "e"]])
    assert response["methodResponses"] == [["Core/echo", {"hello": [1, 2, {"x": None}]}, "e"]]
    assert response["sessionState"] == alice.session["state"]


def test_new_account_has_the_six_default_mailboxes(alice: JmapClient) -> None:
    result = alice.ok("Mailbox/get", {"ids": None})
    roles = sorted(m["role"] for m in result["list"])
    assert roles == ["archive", "drafts", "inbox", "junk", "sent", "trash"]
    assert all(m["totalEmails"] == 0 and m["unreadThreads"] == 0 for m in result["list"])


def test_wrong_password_is_401_with_challenge(server: LiveServer) -> None:
    client = server.client("alice", "wrong")
    response = client.http.get("/.well-known/jmap")
    assert response.status_code == 401
    assert "Basic" in response.headers["www-authenticate"]
    assert response.headers["content-type"] == "application/problem+json"
