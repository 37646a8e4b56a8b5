"""The DSN extension (RFC 3461) on EmailSubmission: NOTIFY/ORCPT on rcptTo, RET/ENVID on mailFrom,
checked, passed to a next hop that offers DSN, and acted on here when it does not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..helpers import JmapClient, LiveServer, make_tidings
from .conftest import MAIL_CONFIG, require_mailflow
from .sink import Sink
from .test_submission import SUBMISSION, USING, draft, identity, submission, submit, wait_for
from .tools import raw_of


def envelope(rcpt: list[tuple[str, dict[str, Any] | None]], mail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"mailFrom": {"email": "alice@example.com", "parameters": mail},
            "rcptTo": [{"email": address, "parameters": params} for address, params in rcpt]}


@pytest.fixture
def dsn_sink() -> Iterator[Sink]:
    server = Sink(dsn=True).start()
    yield server
    server.stop()


@pytest.fixture
def dsn_alice(tmp_path: Path, dsn_sink: Sink) -> Iterator[JmapClient]:
    """alice on a server whose smarthost offers DSN."""
    tidings = make_tidings(tmp_path / "d", **MAIL_CONFIG, smtp_relay=f"127.0.0.1:{dsn_sink.port}")
    require_mailflow(tidings)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings, mail={"poll": 0.2}).start()
    client = live.client()
    yield client
    client.close()
    live.stop()
    tidings.close()


def test_dsn_is_advertised(alice: JmapClient) -> None:
    extensions = alice.session["accounts"][alice.account_id]["accountCapabilities"][SUBMISSION]
    assert extensions["submissionExtensions"]["DSN"] == []
    # Only what is enforced: SIZE (tooLarge), FUTURERELEASE (HOLDFOR/HOLDUNTIL up to the maximum).
    assert set(extensions["submissionExtensions"]) == {"DSN", "SIZE", "FUTURERELEASE"}
    assert extensions["submissionExtensions"]["SIZE"] == ["200000"]


def test_parameters_reach_a_next_hop_with_dsn(dsn_alice: JmapClient, dsn_sink: Sink) -> None:
    given = envelope(
        [("dave@remote.test", {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;Dave+x=y@Remote.test"}),
         ("erin@remote.test", None),
         ("fay@remote.test", {"notify": "never"})],
        {"RET": "HDRS", "ENVID": "Env 1+x"},
    )
    sub_id = submit(dsn_alice, draft(dsn_alice, to=["dave@remote.test"]), envelope=given)["created"]["s"]["id"]
    [received] = dsn_sink.wait(1)
    # xtext on the wire (RFC 3461 §4): "+" and "=" and space as +XX.
    assert received.mail_parameters == ["RET=HDRS", "ENVID=Env+201+2Bx"]
    assert received.rcpt_parameters == {
        "dave@remote.test": ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Dave+2Bx+3Dy@Remote.test"],
        "erin@remote.test": [],
        "fay@remote.test": ["NOTIFY=NEVER"],
    }
    # The next hop reports itself: no report from here.
    final = wait_for(lambda: (s := submission(dsn_alice, sub_id))["undoStatus"] == "final" and s)
    assert final["dsnBlobIds"] == []
    assert {v["delivered"] for v in final["deliveryStatus"].values()} == {"unknown"}
    assert submission(dsn_alice, sub_id)["envelope"] == given


def test_next_hop_without_dsn(alice: JmapClient, sink: Sink) -> None:
    """RFC 3461 §5.2.2: the message goes without the parameters, and NOTIFY=SUCCESS gets a
    "relayed" DSN from here."""
    given = envelope([("dave@remote.test", {"NOTIFY": "SUCCESS", "ORCPT": "rfc822;dave@remote.test"}),
                      ("erin@remote.test", None)], {"ENVID": "my-id-7"})
    sub_id = submit(alice, draft(alice, to=["dave@remote.test"]), envelope=given)["created"]["s"]["id"]
    [received] = sink.wait(1)
    assert not any(o.upper().startswith(("RET", "ENVID")) for o in received.mail_options)
    status = wait_for(lambda: (s := submission(alice, sub_id))["dsnBlobIds"] and s)
    report = raw_of(alice, status["dsnBlobIds"][0])
    assert b"Action: relayed" in report
    assert b"Original-Recipient: rfc822;dave@remote.test" in report
    assert b"Original-Envelope-Id: my-id-7" in report
    assert b"erin@remote.test" not in report.split(b"message/delivery-status", 1)[1]
    assert status["deliveryStatus"]["dave@remote.test"]["delivered"] == "unknown"


def test_notify_decides_failure_reports(alice: JmapClient, sink: Sink) -> None:
    sink.handler.rcpt_replies["gone@remote.test"] = "550 5.1.1 user unknown"
    never = envelope([("gone@remote.test", {"NOTIFY": "NEVER"}), ("dave@remote.test", None)])
    quiet = submit(alice, draft(alice, to=["dave@remote.test"]), envelope=never)["created"]["s"]["id"]
    wait_for(lambda: submission(alice, quiet)["deliveryStatus"]["gone@remote.test"]["delivered"] == "no")
    assert submission(alice, quiet)["dsnBlobIds"] == []
    # RET=FULL: the failure report returns the whole message (RFC 3461 §4.3).
    full = envelope([("gone@remote.test", {"NOTIFY": "FAILURE"})], {"RET": "FULL"})
    loud = submit(alice, draft(alice, to=["dave@remote.test"], subject="Full return"), envelope=full)
    blobs = wait_for(lambda: submission(alice, loud["created"]["s"]["id"])["dsnBlobIds"])
    report = raw_of(alice, blobs[0])
    assert b"Content-Type: message/rfc822" in report and b"Hello." in report
    assert b"Subject: Full return" in report


def test_local_delivery_with_notify_success(alice: JmapClient, sink: Sink) -> None:
    """RFC 3461 §5.2.3: final delivery here with NOTIFY=SUCCESS gets a "delivered" DSN."""
    given = envelope([("bob@example.com", {"NOTIFY": "SUCCESS,FAILURE"})])
    sub_id = submit(alice, draft(alice, to=["bob@example.com"]), envelope=given)["created"]["s"]["id"]
    status = wait_for(lambda: (s := submission(alice, sub_id))["dsnBlobIds"] and s)
    assert status["deliveryStatus"]["bob@example.com"]["delivered"] == "yes"
    report = raw_of(alice, status["dsnBlobIds"][0])
    assert b"Action: delivered" in report and b"Status: 2.0.0" in report
    assert b"Subject: Successful Mail Delivery Report" in report


@pytest.mark.parametrize(
    ("mail", "rcpt"),
    [
        (None, {"NOTIFY": "NEVER,SUCCESS"}),
        (None, {"NOTIFY": "sometimes"}),
        (None, {"NOTIFY": "SUCCESS,SUCCESS"}),
        (None, {"NOTIFY": None}),
        (None, {"ORCPT": "dave@remote.test"}),
        (None, {"ORCPT": "rfc822;dävé@remote.test"}),
        (None, {"ORCPT": "rfc822;" + "a" * 500}),
        (None, {"FROB": "1"}),
        (None, {"RET": "FULL"}),
        ({"RET": "ALL"}, None),
        ({"RET": None}, None),
        ({"ENVID": "x" * 101}, None),
        ({"ENVID": ""}, None),
        ({"ENVID": "caf\u00e9"}, None),
        ({"NOTIFY": "SUCCESS"}, None),
        ({"SIZE": "big"}, None),
    ],
)
def test_bad_parameters_are_refused(
    alice: JmapClient, sink: Sink, mail: dict[str, Any] | None, rcpt: dict[str, Any] | None
) -> None:
    email_id = draft(alice, to=["dave@remote.test"])
    out = alice.ok("EmailSubmission/set", {"create": {"x": {
        "identityId": identity(alice), "emailId": email_id,
        "envelope": envelope([("dave@remote.test", rcpt)], mail)}}}, USING)
    assert out["notCreated"]["x"]["type"] == "invalidProperties", out
    assert out["notCreated"]["x"]["properties"] == ["envelope"]
    # Nothing was created or queued.
    assert alice.ok("EmailSubmission/query", {}, USING)["ids"] == []
    assert sink.messages == []
