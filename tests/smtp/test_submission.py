"""EmailSubmission (RFC 8621 §7) and the outbound queue, against real SMTP sinks."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..helpers import JmapClient, LiveServer, make_tidings
from .conftest import MAIL_CONFIG, require_mailflow
from .sink import Sink
from .tools import emails, mailbox_id, raw_of

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", SUBMISSION]


def draft(client: JmapClient, *, to: list[str], bcc: list[str] | None = None, sender: str = "alice@example.com",
          subject: str = "Hi", size: int = 0) -> str:
    body = "Hello.\n" + "x" * size
    email: dict[str, Any] = {
        "mailboxIds": {mailbox_id(client, "drafts"): True},
        "keywords": {"$draft": True},
        "from": [{"name": "Alice", "email": sender}],
        "to": [{"email": a} for a in to],
        "subject": subject,
        "textBody": [{"partId": "1", "type": "text/plain"}],
        "bodyValues": {"1": {"value": body}},
    }
    if bcc:
        email["bcc"] = [{"email": a} for a in bcc]
    created = client.ok("Email/set", {"create": {"d": email}})
    assert "d" in (created["created"] or {}), created
    return str(created["created"]["d"]["id"])


def identity(client: JmapClient) -> str:
    return str(client.ok("Identity/get", {}, USING)["list"][0]["id"])


def submit(client: JmapClient, email_id: str, **extra: Any) -> dict[str, Any]:
    return client.ok("EmailSubmission/set", {"create": {"s": {"identityId": identity(client), "emailId": email_id,
                                                             **extra}}}, USING)


def submission(client: JmapClient, submission_id: str) -> dict[str, Any]:
    result: dict[str, Any] = client.ok("EmailSubmission/get", {"ids": [submission_id]}, USING)["list"][0]
    return result


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def test_send_through_smarthost(alice: JmapClient, sink: Sink) -> None:
    email_id = draft(alice, to=["dave@remote.test", "erin@remote.test"], bcc=["hidden@remote.test"])
    sent_box = mailbox_id(alice, "sent")
    request = alice.request(
        [[
            "EmailSubmission/set",
            {
                "accountId": alice.account_id,
                "create": {"s": {"identityId": identity(alice), "emailId": email_id}},
                "onSuccessUpdateEmail": {
                    "#s": {f"mailboxIds/{mailbox_id(alice, 'drafts')}": None, f"mailboxIds/{sent_box}": True,
                           "keywords/$draft": None}
                },
            },
            "0",
        ]],
        USING,
    )
    (name, out, _), (implicit, email_set, call_id) = request["methodResponses"]
    assert name == "EmailSubmission/set" and implicit == "Email/set" and call_id == "0"
    created = out["created"]["s"]
    assert created["undoStatus"] == "pending"
    assert email_set["updated"] == {email_id: None}
    # §7: the envelope derived from the headers, Bcc included as a recipient.
    got = submission(alice, created["id"])
    assert got["envelope"] == {
        "mailFrom": {"email": "alice@example.com", "parameters": None},
        "rcptTo": [{"email": a, "parameters": None} for a in ("dave@remote.test", "erin@remote.test",
                                                                "hidden@remote.test")],
    }
    [received] = sink.wait(1)
    assert received.mail_from == "alice@example.com"
    assert received.rcpt_tos == ["dave@remote.test", "erin@remote.test", "hidden@remote.test"]
    # §7.5: the Bcc header field is removed from the message sent.
    assert b"\r\nBcc:" not in received.content and not received.content.startswith(b"Bcc:")
    assert b"hidden@remote.test" not in received.content
    assert b"Subject: Hi" in received.content
    status = wait_for(lambda: (s := submission(alice, created["id"]))["undoStatus"] == "final" and s)
    assert set(status["deliveryStatus"]) == {"dave@remote.test", "erin@remote.test", "hidden@remote.test"}
    for value in status["deliveryStatus"].values():
        # Relayed elsewhere: "unknown" (§7: relaying is not final delivery).
        assert value == {"smtpReply": "250 2.0.0 Ok: queued", "delivered": "unknown", "displayed": "unknown"}
    [moved] = alice.ok("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})["list"]
    assert moved == {"id": email_id, "mailboxIds": {sent_box: True}, "keywords": {}}


def test_changes_follow_the_queue(alice: JmapClient, sink: Sink) -> None:
    state = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
    email_id = draft(alice, to=["dave@remote.test"])
    sub_id = submit(alice, email_id)["created"]["s"]["id"]
    wait_for(lambda: submission(alice, sub_id)["undoStatus"] == "final")
    changes = alice.ok("EmailSubmission/changes", {"sinceState": state}, USING)
    assert changes["created"] == [sub_id]
    middle = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
    assert middle != state


def test_local_recipients_are_delivered_directly(alice: JmapClient, mail_server: LiveServer, sink: Sink) -> None:
    email_id = draft(alice, to=["bob@example.com", "nobody@example.com"])
    sub_id = submit(alice, email_id)["created"]["s"]["id"]
    status = wait_for(lambda: (s := submission(alice, sub_id))["deliveryStatus"]["bob@example.com"]["delivered"]
                      == "yes" and s)
    assert status["deliveryStatus"]["bob@example.com"]["smtpReply"].startswith("250")
    nobody = wait_for(lambda: (d := submission(alice, sub_id)["deliveryStatus"]["nobody@example.com"])["delivered"]
                      == "no" and d)
    assert nobody["smtpReply"] == "550 5.1.1 No such user here"
    bob = mail_server.client("bob", "hunter2")
    [got] = emails(bob, "subject", "from")
    assert got["subject"] == "Hi"
    bob.close()
    assert sink.messages == []
    # The unknown local recipient produced a DSN in alice's Inbox.
    dsn = wait_for(lambda: submission(alice, sub_id)["dsnBlobIds"])
    assert b"Final-Recipient: rfc822; nobody@example.com" in raw_of(alice, dsn[0])


def test_permanent_failure_makes_a_dsn(alice: JmapClient, sink: Sink) -> None:
    sink.handler.rcpt_replies["gone@remote.test"] = "550 5.1.1 <gone@remote.test>: user unknown"
    email_id = draft(alice, to=["gone@remote.test", "dave@remote.test"], subject="Bounce me")
    sub_id = submit(alice, email_id)["created"]["s"]["id"]
    status = wait_for(lambda: (s := submission(alice, sub_id))["dsnBlobIds"] and s)
    assert status["deliveryStatus"]["gone@remote.test"] == {
        "smtpReply": "550 5.1.1 <gone@remote.test>: user unknown", "delivered": "no", "displayed": "unknown"}
    assert status["deliveryStatus"]["dave@remote.test"]["delivered"] == "unknown"
    report = raw_of(alice, status["dsnBlobIds"][0])
    # RFC 3464: a multipart/report with a message/delivery-status part.
    assert b"report-type=delivery-status" in report
    assert b"Action: failed" in report and b"Status: 5.1.1" in report
    assert b"Diagnostic-Code: smtp; 550 5.1.1 <gone@remote.test>: user unknown" in report
    assert b"Subject: Bounce me" in report  # the original's header fields (text/rfc822-headers)
    inbox = mailbox_id(alice, "inbox")
    assert any(e["mailboxIds"] == {inbox: True} and e["subject"] == "Undelivered Mail Returned to Sender"
               for e in emails(alice))


def test_temporary_failure_is_retried(alice: JmapClient, sink: Sink) -> None:
    sink.handler.data_replies = ["451 4.3.0 Try again later", "452 4.3.1 Still busy"]
    email_id = draft(alice, to=["dave@remote.test"])
    sub_id = submit(alice, email_id)["created"]["s"]["id"]
    seen = wait_for(lambda: (d := submission(alice, sub_id)["deliveryStatus"]["dave@remote.test"])["smtpReply"]
                    .startswith("45") and d)
    assert seen["delivered"] == "queued"
    sink.wait(1)
    final = wait_for(lambda: (d := submission(alice, sub_id)["deliveryStatus"]["dave@remote.test"])["smtpReply"]
                     .startswith("250") and d)
    assert final["delivered"] == "unknown"
    assert sink.handler.attempts == 3


def test_gives_up_after_the_configured_time(tmp_path: Path, sink: Sink) -> None:
    sink.handler.data_replies = ["451 4.3.0 Try again later"] * 1000
    tidings = make_tidings(tmp_path / "d", **{**MAIL_CONFIG, "queue_give_up": 1},
                           smtp_relay=f"127.0.0.1:{sink.port}")
    require_mailflow(tidings)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings, mail={"poll": 0.2}).start()
    alice = live.client()
    try:
        sub_id = submit(alice, draft(alice, to=["dave@remote.test"]))["created"]["s"]["id"]
        status = wait_for(lambda: (s := submission(alice, sub_id))["dsnBlobIds"] and s)
        assert status["deliveryStatus"]["dave@remote.test"] == {
            "smtpReply": "451 4.3.0 Try again later", "delivered": "no", "displayed": "unknown"}
        assert sink.handler.attempts >= 2
        assert b"Status: 4.3.0" in raw_of(alice, status["dsnBlobIds"][0])
    finally:
        alice.close()
        live.stop()
        tidings.close()


def test_future_release_and_cancel(alice: JmapClient, sink: Sink) -> None:
    email_id = draft(alice, to=["dave@remote.test"])
    hold = {"mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "3600"}},
            "rcptTo": [{"email": "dave@remote.test", "parameters": None}]}
    created = submit(alice, email_id, envelope=hold)["created"]["s"]
    send_at = time.mktime(time.strptime(created["sendAt"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert 3590 < send_at - time.time() <= 3600
    assert created["undoStatus"] == "pending"
    canceled = alice.ok("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}}, USING)
    assert created["id"] in canceled["updated"]
    got = submission(alice, created["id"])
    assert got["undoStatus"] == "canceled"
    again = alice.ok("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "pending"}}}, USING)
    assert again["notUpdated"][created["id"]]["type"] == "invalidProperties"
    # Too far ahead, or a HOLDUNTIL that is not a date.
    too_far = {**hold, "mailFrom": {"email": "alice@example.com", "parameters": {"HOLDFOR": "9999999"}}}
    out = alice.ok("EmailSubmission/set", {"create": {"x": {"identityId": identity(alice), "emailId": email_id,
                                                            "envelope": too_far}}}, USING)
    assert out["notCreated"]["x"]["type"] == "invalidProperties"
    time.sleep(0.5)
    assert sink.messages == []


def test_sent_submission_cannot_be_canceled(alice: JmapClient, sink: Sink) -> None:
    sub_id = submit(alice, draft(alice, to=["dave@remote.test"]))["created"]["s"]["id"]
    wait_for(lambda: submission(alice, sub_id)["undoStatus"] == "final")
    out = alice.ok("EmailSubmission/set", {"update": {sub_id: {"undoStatus": "canceled"}}}, USING)
    assert out["notUpdated"][sub_id]["type"] == "cannotUnsend"


def test_rejections(alice: JmapClient, mail_tidings: Any) -> None:
    ident = identity(alice)

    def create(**obj: Any) -> dict[str, Any]:
        out = alice.ok("EmailSubmission/set", {"create": {"x": {"identityId": ident, **obj}}}, USING)
        assert out["notCreated"], out
        result: dict[str, Any] = out["notCreated"]["x"]
        return result

    good = draft(alice, to=["dave@remote.test"])
    assert create(emailId="E999")["type"] == "invalidProperties"
    assert create(emailId=good, identityId="I999")["type"] == "invalidProperties"
    assert create(emailId=draft(alice, to=["dave@remote.test"], sender="bob@example.com"))["type"] == "forbiddenFrom"
    envelope = {"mailFrom": {"email": "bob@example.com", "parameters": None},
                "rcptTo": [{"email": "dave@remote.test", "parameters": None}]}
    assert create(emailId=good, envelope=envelope)["type"] == "forbiddenMailFrom"
    no_rcpt = {**envelope, "mailFrom": {"email": "alice@example.com", "parameters": None}, "rcptTo": []}
    assert create(emailId=good, envelope=no_rcpt)["type"] == "noRecipients"
    bad = {**no_rcpt, "rcptTo": [{"email": "not an address", "parameters": None}]}
    error = create(emailId=good, envelope=bad)
    assert error["type"] == "invalidRecipients" and error["invalidRecipients"] == ["not an address"]
    big = draft(alice, to=["dave@remote.test"], size=250_000)
    error = create(emailId=big)
    assert error["type"] == "tooLarge" and error["maxSize"] == 200_000
    assert create(emailId=good, undoStatus="final")["type"] == "invalidProperties"


def test_query_and_query_changes(alice: JmapClient, sink: Sink) -> None:
    first = draft(alice, to=["dave@remote.test"])
    second = draft(alice, to=["erin@remote.test"])
    a = submit(alice, first)["created"]["s"]["id"]
    query = alice.ok("EmailSubmission/query", {"sort": [{"property": "sentAt"}]}, USING)
    b = submit(alice, second)["created"]["s"]["id"]
    everything = alice.ok("EmailSubmission/query", {"sort": [{"property": "emailId"}]}, USING)
    assert everything["ids"] == [a, b]
    by_email = alice.ok("EmailSubmission/query", {"filter": {"emailIds": [second]}}, USING)
    assert by_email["ids"] == [b]
    later = alice.ok("EmailSubmission/query", {"filter": {"after": "2100-01-01T00:00:00Z"}}, USING)
    assert later["ids"] == []
    changes = alice.ok("EmailSubmission/queryChanges", {"sinceQueryState": query["queryState"],
                                                         "sort": [{"property": "sentAt"}]}, USING)
    assert {"id": b, "index": 1} in changes["added"]
    bad = alice.error("EmailSubmission/query", {"filter": {"frob": 1}}, USING)
    assert bad["type"] == "unsupportedFilter"
    # Destroying the record leaves the delivery alone (§7.5).
    assert alice.ok("EmailSubmission/set", {"destroy": [a]}, USING)["destroyed"] == [a]
    sink.wait(2)


def test_dkim_signature(tmp_path: Path, sink: Sink) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem)
    tidings = make_tidings(tmp_path / "d", **MAIL_CONFIG, smtp_relay=f"127.0.0.1:{sink.port}",
                           dkim_selector="s1", dkim_key_file=str(key_file))
    require_mailflow(tidings)
    tidings.accounts.add_user("alice", "secret")
    live = LiveServer(tidings, mail={"poll": 0.2}).start()
    alice = live.client()
    try:
        submit(alice, draft(alice, to=["dave@remote.test"], bcc=["hidden@remote.test"]))
        [received] = sink.wait(1)
    finally:
        alice.close()
        live.stop()
        tidings.close()
    assert received.content.startswith(b"DKIM-Signature: ")
    assert b"d=example.com" in received.content and b"s=s1" in received.content
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.example.com."
        return record

    assert dkim.verify(received.content, dnsfunc=dns)


def test_direct_mx_delivery(tmp_path: Path, sink: Sink) -> None:
    tidings = make_tidings(tmp_path / "d", **MAIL_CONFIG)  # no smarthost
    require_mailflow(tidings)
    tidings.accounts.add_user("alice", "secret")
    looked_up = []

    def mx(domain: str) -> list[str]:
        looked_up.append(domain)
        return ["127.0.0.1"]

    live = LiveServer(tidings, mail={"poll": 0.2, "mx_resolver": mx, "mx_port": sink.port}).start()
    alice = live.client()
    try:
        submit(alice, draft(alice, to=["dave@remote.test", "zed@other.test"]))
        sink.wait(2)
    finally:
        alice.close()
        live.stop()
        tidings.close()
    assert sorted(looked_up) == ["other.test", "remote.test"]
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["dave@remote.test", "zed@other.test"]


@pytest.mark.parametrize("restart_with_worker", [True])
def test_queued_submission_survives_a_restart(tmp_path: Path, sink: Sink, restart_with_worker: bool) -> None:
    config = {**MAIL_CONFIG, "smtp_relay": f"127.0.0.1:{sink.port}"}
    first = make_tidings(tmp_path / "d", **config)
    require_mailflow(first)
    first.accounts.add_user("alice", "secret")
    live = LiveServer(first).start()  # no queue worker: the submission stays queued
    alice = live.client()
    sub_id = submit(alice, draft(alice, to=["dave@remote.test"], subject="Across a restart"))["created"]["s"]["id"]
    alice.close()
    live.stop()
    first.close()
    assert sink.messages == []

    second = make_tidings(tmp_path / "d", **config)
    live = LiveServer(second, mail={"poll": 0.2}).start()
    alice = live.client()
    try:
        [received] = sink.wait(1)
        assert b"Subject: Across a restart" in received.content
        wait_for(lambda: submission(alice, sub_id)["undoStatus"] == "final")
    finally:
        alice.close()
        live.stop()
        second.close()
