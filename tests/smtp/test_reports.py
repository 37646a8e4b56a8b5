"""MDNs (RFC 8098) and remote DSNs (RFC 3464) delivered over LMTP, or locally through the queue,
linked to the EmailSubmission they are about (RFC 8621 §7 mdnBlobIds, dsnBlobIds, deliveryStatus)."""

from __future__ import annotations

import re
import smtplib

import orjson

from ..helpers import JmapClient, LiveServer
from ..wire.test_push_eventsource import EventReader
from .sink import Sink
from .test_submission import USING, draft, submission, submit, wait_for
from .tools import emails, lmtp_send, raw_of


def _message_id(content: bytes) -> str:
    found = re.search(rb"^Message-ID: <([^>]+)>", content, re.MULTILINE | re.IGNORECASE)
    assert found, content[:500]
    return found.group(1).decode()


def mdn(message_id: str, *, recipient: str, disposition: str = "displayed", to: str = "alice@example.com",
        report_id: str = "<mdn1@remote.test>") -> bytes:
    """An MDN as a recipient's mail client sends it (RFC 8098 §3)."""
    return (
        f"From: <{recipient}>\r\nTo: <{to}>\r\nSubject: Read: Hi\r\nMessage-ID: {report_id}\r\n"
        "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
        "--b1\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mua.remote.test; Some Client\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Message-ID: <{message_id}>\r\n"
        f"Disposition: manual-action/MDN-sent-manually; {disposition}\r\n"
        "\r\n--b1--\r\n"
    ).encode()


def remote_dsn(message_id: str, blocks: list[tuple[str, str, str, str]], *,
               report_id: str = "<dsn1@mx.remote.test>") -> bytes:
    """A DSN from a remote MTA (RFC 3464): blocks of (original recipient, action, status,
    diagnostic), and the returned header section naming the message."""
    per_recipient = ""
    for original, action, status, diagnostic in blocks:
        per_recipient += (
            f"\r\nOriginal-Recipient: rfc822;{original}\r\nFinal-Recipient: rfc822; {original.upper()}\r\n"
            f"Action: {action}\r\nStatus: {status}\r\n"
        )
        if diagnostic:
            per_recipient += f"Diagnostic-Code: smtp; {diagnostic}\r\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.remote.test>\r\nTo: <alice@example.com>\r\n"
        f"Subject: Delivery Status Notification\r\nMessage-ID: {report_id}\r\n"
        "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\nAuto-Submitted: auto-replied\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b2"\r\n'
        "\r\n--b2\r\nContent-Type: text/plain\r\n\r\nA report.\r\n"
        "--b2\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.remote.test\r\n"
        f"{per_recipient}"
        "\r\n--b2\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: Alice <alice@example.com>\r\nSubject: Hi\r\nMessage-ID: <{message_id}>\r\n"
        "\r\n--b2--\r\n"
    ).encode()


def _sent(alice: JmapClient, sink: Sink, to: list[str]) -> tuple[str, str]:
    """Submit a message to remote recipients through the sink; (submission id, its Message-ID)."""
    sub_id = submit(alice, draft(alice, to=to))["created"]["s"]["id"]
    [received] = sink.wait(1)
    wait_for(lambda: submission(alice, sub_id)["undoStatus"] == "final")
    return sub_id, _message_id(received.content)


def _deliver(lmtp: smtplib.LMTP, data: bytes, mail_from: str = "") -> None:
    rcpt, replies = lmtp_send(lmtp, mail_from, ["alice@example.com"], data)
    assert [code for code, _ in replies] == [250], (rcpt, replies)


def test_mdn_links_and_sets_displayed(alice: JmapClient, sink: Sink, lmtp: smtplib.LMTP) -> None:
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test", "erin@remote.test"])
    state = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
    _deliver(lmtp, mdn(message_id, recipient="dave@remote.test"), mail_from="dave@remote.test")
    got = wait_for(lambda: (s := submission(alice, sub_id))["mdnBlobIds"] and s)
    assert got["deliveryStatus"]["dave@remote.test"]["displayed"] == "yes"
    assert got["deliveryStatus"]["erin@remote.test"]["displayed"] == "unknown"
    assert got["dsnBlobIds"] == []
    # The blob is the whole report as delivered (RFC 8621 §7), and it is an Email in the Inbox too.
    [blob_id] = got["mdnBlobIds"]
    assert b"Disposition: manual-action/MDN-sent-manually; displayed" in raw_of(alice, blob_id)
    assert any(e["blobId"] == blob_id for e in emails(alice, "blobId"))
    # A state change of EmailSubmission: /changes (and so push) sees the update.
    changes = alice.ok("EmailSubmission/changes", {"sinceState": state}, USING)
    assert changes["updated"] == [sub_id] and changes["created"] == []


def test_mdn_with_another_disposition_links_only(alice: JmapClient, sink: Sink, lmtp: smtplib.LMTP) -> None:
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test"])
    _deliver(lmtp, mdn(message_id, recipient="dave@remote.test", disposition="deleted"))
    got = wait_for(lambda: (s := submission(alice, sub_id))["mdnBlobIds"] and s)
    assert got["deliveryStatus"]["dave@remote.test"]["displayed"] == "unknown"


def test_remote_dsn_updates_delivered(alice: JmapClient, sink: Sink, lmtp: smtplib.LMTP) -> None:
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test", "erin@remote.test", "fay@remote.test"])
    before = submission(alice, sub_id)["deliveryStatus"]
    assert {v["delivered"] for v in before.values()} == {"unknown"}
    report = remote_dsn(message_id, [
        ("erin@remote.test", "failed", "5.1.1", "550 5.1.1 <erin@remote.test>: user unknown"),
        ("dave@remote.test", "delivered", "2.0.0", ""),
        ("fay@remote.test", "delayed", "4.4.7", "451 4.4.7 still trying"),
    ])
    _deliver(lmtp, report)
    got = wait_for(lambda: (s := submission(alice, sub_id))["dsnBlobIds"] and s)
    status = got["deliveryStatus"]
    assert status["erin@remote.test"] == {"smtpReply": "550 5.1.1 <erin@remote.test>: user unknown",
                                          "delivered": "no", "displayed": "unknown"}
    # No SMTP diagnostic: a synthetic reply of the §7 form, from the Status.
    assert status["dave@remote.test"]["delivered"] == "yes"
    assert status["dave@remote.test"]["smtpReply"].startswith("250 2.0.0 ")
    # "Receipt of any other DSN SHOULD NOT affect this property" (§7).
    assert status["fay@remote.test"] == before["fay@remote.test"]
    [blob_id] = got["dsnBlobIds"]
    assert b"Action: failed" in raw_of(alice, blob_id)
    assert got["mdnBlobIds"] == []


def test_reports_about_other_messages_change_nothing(
    alice: JmapClient, sink: Sink, lmtp: smtplib.LMTP, mail_server: LiveServer
) -> None:
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test"])
    state = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
    # Unknown Message-ID; an ordinary message; a report for alice's message delivered to bob.
    _deliver(lmtp, mdn("unknown@remote.test", recipient="dave@remote.test", report_id="<o1@remote.test>"))
    _deliver(lmtp, b"From: <dave@remote.test>\r\nTo: <alice@example.com>\r\nSubject: plain\r\n"
                   b"Message-ID: <o2@remote.test>\r\n\r\nHello.\r\n")
    _, replies = lmtp_send(lmtp, "", ["bob@example.com"], mdn(message_id, recipient="dave@remote.test",
                                                               report_id="<o3@remote.test>"))
    assert [code for code, _ in replies] == [250]
    assert len(emails(alice)) == 3  # the draft and the two deliveries
    assert alice.ok("EmailSubmission/changes", {"sinceState": state}, USING)["updated"] == []
    got = submission(alice, sub_id)
    assert got["mdnBlobIds"] == [] and got["deliveryStatus"]["dave@remote.test"]["displayed"] == "unknown"


def test_local_mdn_through_the_queue(alice: JmapClient, mail_server: LiveServer) -> None:
    """alice writes to bob (local); bob's client sends the MDN back with EmailSubmission: it reaches
    alice through the queue's local delivery and is linked to her submission."""
    sub_id = submit(alice, draft(alice, to=["bob@example.com"]))["created"]["s"]["id"]
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["bob@example.com"]["delivered"] == "yes")
    bob = mail_server.client("bob", "hunter2")
    try:
        [received] = emails(bob, "messageId", "mailboxIds")
        report = mdn(received["messageId"][0], recipient="bob@example.com", report_id="<mdn-bob@example.com>")
        upload = bob.http.post(f"/jmap/upload/{bob.account_id}/", content=report,
                               headers={"Content-Type": "message/rfc822"})
        assert upload.status_code == 201, upload.text
        inbox = next(iter(received["mailboxIds"]))
        imported = bob.ok("Email/import", {"emails": {"m": {"blobId": upload.json()["blobId"],
                                                           "mailboxIds": {inbox: True}}}})
        email_id = imported["created"]["m"]["id"]
        identity = bob.ok("Identity/get", {}, USING)["list"][0]["id"]
        envelope = {"mailFrom": {"email": "bob@example.com", "parameters": None},
                    "rcptTo": [{"email": "alice@example.com", "parameters": None}]}
        sent = bob.ok("EmailSubmission/set", {"create": {"r": {"identityId": identity, "emailId": email_id,
                                                               "envelope": envelope}}}, USING)
        assert "r" in sent["created"], sent
    finally:
        bob.close()
    got = wait_for(lambda: (s := submission(alice, sub_id))["mdnBlobIds"] and s)
    assert got["deliveryStatus"]["bob@example.com"]["displayed"] == "yes"


def test_mdn_over_smtp_and_destroying_the_submission(alice: JmapClient, sink: Sink, smtp: smtplib.SMTP) -> None:
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test"])
    code, _ = smtp.mail("")
    assert code == 250
    assert smtp.rcpt("alice@example.com")[0] == 250
    assert smtp.data(mdn(message_id, recipient="dave@remote.test"))[0] == 250
    got = wait_for(lambda: (s := submission(alice, sub_id))["mdnBlobIds"] and s)
    assert got["deliveryStatus"]["dave@remote.test"]["displayed"] == "yes"
    # Destroying the record releases its hold on the report; the report stays an Email.
    assert alice.ok("EmailSubmission/set", {"destroy": [sub_id]}, USING)["destroyed"] == [sub_id]
    assert b"Original-Message-ID" in raw_of(alice, got["mdnBlobIds"][0])


def test_event_source_sees_the_submission_change(
    alice: JmapClient, sink: Sink, lmtp: smtplib.LMTP, mail_server: LiveServer
) -> None:
    """RFC 8620 §7: the link is an EmailSubmission state change, pushed like any other."""
    sub_id, message_id = _sent(alice, sink, ["dave@remote.test"])
    before = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
    url = f"{mail_server.url}/jmap/eventsource/?types=EmailSubmission&closeafter=no&ping=0"
    reader = EventReader(url, {"Authorization": alice.http.headers["Authorization"]})
    try:
        assert reader.status == 200
        _deliver(lmtp, mdn(message_id, recipient="dave@remote.test"))
        wait_for(lambda: submission(alice, sub_id)["mdnBlobIds"])
        after = alice.ok("EmailSubmission/get", {"ids": []}, USING)["state"]
        assert after != before

        def pushed() -> bool:
            states: dict[str, str] = {}
            for event in reader.wait_for("state"):
                states.update(orjson.loads(event["data"])["changed"].get(alice.account_id, {}))
            return states.get("EmailSubmission") == after

        wait_for(pushed)
    finally:
        reader.close()
