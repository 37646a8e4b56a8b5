"""VacationResponse (RFC 8621 §8) and its automatic replies (RFC 3834)."""

from __future__ import annotations

import smtplib
import time

from ..helpers import JmapClient
from .sink import Sink
from .tools import lmtp_send, message

VACATION = "urn:ietf:params:jmap:vacationresponse"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", VACATION]


def enable(client: JmapClient, **values: object) -> None:
    out = client.ok("VacationResponse/set", {"update": {"singleton": {"isEnabled": True, **values}}}, USING)
    assert out["updated"] == {"singleton": None}, out


def test_singleton(alice: JmapClient) -> None:
    got = alice.ok("VacationResponse/get", {}, USING)
    assert got["list"] == [{"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None,
                            "subject": None, "textBody": None, "htmlBody": None}]
    assert alice.ok("VacationResponse/get", {"ids": ["other"]}, USING)["notFound"] == ["other"]
    out = alice.ok("VacationResponse/set", {"create": {"x": {"isEnabled": True}}, "destroy": ["singleton"]}, USING)
    assert out["notCreated"]["x"]["type"] == "singleton"
    assert out["notDestroyed"]["singleton"]["type"] == "singleton"
    enable(alice, subject="Away", fromDate="2024-01-01T00:00:00Z")
    [value] = alice.ok("VacationResponse/get", {}, USING)["list"]
    assert value["isEnabled"] is True and value["subject"] == "Away" and value["fromDate"] == "2024-01-01T00:00:00Z"
    bad = alice.ok("VacationResponse/set", {"update": {"singleton": {"toDate": "tomorrow"}}}, USING)
    assert bad["notUpdated"]["singleton"]["type"] == "invalidProperties"


def test_replies_once_per_sender(alice: JmapClient, lmtp: smtplib.LMTP, sink: Sink) -> None:
    enable(alice, textBody="Back on Monday.")
    lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("Question", message_id="<q1@remote.test>"))
    [reply] = sink.wait(1)
    # RFC 3834 §3.3: the null reverse-path; §4: to the envelope sender.
    assert reply.mail_from == "<>"
    assert reply.rcpt_tos == ["carol@remote.test"]
    assert b"Auto-Submitted: auto-replied" in reply.content  # §5
    assert b"In-Reply-To: <q1@remote.test>" in reply.content  # §3.1.5
    assert b"Subject: Auto: Question" in reply.content
    assert b"Back on Monday." in reply.content
    assert b"From: alice@example.com" in reply.content
    # §3.1.1: not again to the same sender within vacation_days.
    lmtp_send(lmtp, "carol@remote.test", ["alice@example.com"], message("Again", message_id="<q2@remote.test>"))
    lmtp_send(lmtp, "dan@remote.test", ["alice@example.com"],
              message("Other sender", sender="dan@remote.test", message_id="<q3@remote.test>"))
    sink.wait(2)
    time.sleep(0.5)
    assert [m.rcpt_tos for m in sink.messages] == [["carol@remote.test"], ["dan@remote.test"]]


def test_never_replies_to_automatic_mail(alice: JmapClient, lmtp: smtplib.LMTP, sink: Sink) -> None:
    enable(alice)
    cases = [
        ("carol@remote.test", "List-Id: <news.remote.test>\r\n"),
        ("dan@remote.test", "Precedence: bulk\r\n"),
        ("erin@remote.test", "Auto-Submitted: auto-generated\r\n"),
        ("", ""),  # the null sender: a bounce
        ("mailer-daemon@remote.test", ""),
        ("news-request@remote.test", ""),
    ]
    for number, (sender, extra) in enumerate(cases):
        lmtp_send(lmtp, sender, ["alice@example.com"], message(f"m{number}", message_id=f"<a{number}@x>", extra=extra))
    # Not addressed to alice personally (she is Bcc'd): no reply either (RFC 3834 §2).
    lmtp_send(lmtp, "frank@remote.test", ["alice@example.com"], message("bcc", to="x@remote.test", message_id="<b@x>"))
    # Outside the dates: no reply.
    time.sleep(0.5)
    assert sink.messages == []
    enable(alice, fromDate="2099-01-01T00:00:00Z")
    lmtp_send(lmtp, "gina@remote.test", ["alice@example.com"], message("later", message_id="<c@x>"))
    enable(alice, fromDate=None, toDate="2000-01-01T00:00:00Z")
    lmtp_send(lmtp, "gina@remote.test", ["alice@example.com"], message("earlier", message_id="<d@x>"))
    time.sleep(0.5)
    assert sink.messages == []
    # Auto-Submitted: no still gets a reply.
    enable(alice, fromDate=None, toDate=None)
    lmtp_send(lmtp, "hal@remote.test", ["alice@example.com"],
              message("ok", message_id="<e@x>", extra="Auto-Submitted: no\r\n"))
    assert [m.rcpt_tos for m in sink.wait(1)] == [["hal@remote.test"]]
