"""Identity (RFC 8621 §6) over the real API."""

from __future__ import annotations

from ..helpers import JmapClient

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", SUBMISSION]


def test_default_identity(alice: JmapClient) -> None:
    got = alice.ok("Identity/get", {}, USING)
    [identity] = got["list"]
    assert identity == {
        "id": identity["id"],
        "name": "",
        "email": "alice@example.com",
        "replyTo": None,
        "bcc": None,
        "textSignature": "",
        "htmlSignature": "",
        "mayDelete": False,
    }
    # §6: mayDelete false is honoured.
    out = alice.ok("Identity/set", {"destroy": [identity["id"]]}, USING)
    assert out["notDestroyed"][identity["id"]]["type"] == "forbidden"
    # The default identity is in the change log like any other.
    changes = alice.ok("Identity/changes", {"sinceState": "0"}, USING)
    assert changes["created"] == [identity["id"]]


def test_create_update_destroy(alice: JmapClient) -> None:
    state = alice.ok("Identity/get", {}, USING)["state"]
    out = alice.ok(
        "Identity/set",
        {
            "create": {
                "own": {"email": "alice+news@example.com", "name": "Alice News"},
                "alias": {"email": "postmaster@example.com", "bcc": [{"name": None, "email": "alice@example.com"}]},
                "theirs": {"email": "bob@example.com"},
                "foreign": {"email": "alice@elsewhere.test"},
                "catchall": {"email": "anything@example.net"},
                "bad": {"email": "alice@example.com", "replyTo": "nope"},
            }
        },
        USING,
    )
    assert set(out["created"]) == {"own", "alias"}
    assert out["created"]["own"]["mayDelete"] is True
    # §6.3: only the user's own addresses (never via a catch-all).
    assert {k: v["type"] for k, v in out["notCreated"].items()} == {
        "theirs": "forbiddenFrom",
        "foreign": "forbiddenFrom",
        "catchall": "forbiddenFrom",
        "bad": "invalidProperties",
    }
    own = out["created"]["own"]["id"]
    updated = alice.ok(
        "Identity/set",
        {"update": {own: {"textSignature": "-- \nAlice", "email": "other@example.com"}}},
        USING,
    )
    assert updated["notUpdated"][own]["type"] == "invalidProperties"  # email is immutable
    alice.ok("Identity/set", {"update": {own: {"textSignature": "-- \nAlice"}}}, USING)
    got = alice.ok("Identity/get", {"ids": [own]}, USING)["list"][0]
    assert got["textSignature"] == "-- \nAlice"
    assert alice.ok("Identity/set", {"destroy": [own]}, USING)["destroyed"] == [own]
    changes = alice.ok("Identity/changes", {"sinceState": state}, USING)
    assert changes["created"] == [out["created"]["alias"]["id"]]
    assert changes["destroyed"] == []  # created and destroyed since: never seen (RFC 8620 §5.2)


def test_capabilities_in_session(alice: JmapClient) -> None:
    session = alice.session
    assert session["capabilities"][SUBMISSION] == {}
    account = session["accounts"][alice.account_id]["accountCapabilities"]
    assert account[SUBMISSION]["maxDelayedSend"] == 604800
    assert account[SUBMISSION]["submissionExtensions"]["FUTURERELEASE"] == ["604800"]
    assert "urn:ietf:params:jmap:vacationresponse" in account
