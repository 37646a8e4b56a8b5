"""LMTP and SMTP in as a final delivery agent with DSN (RFC 3461): the parameters are accepted,
checked, and NOTIFY=SUCCESS gets a "delivered" DSN sent to the envelope sender through the queue."""

from __future__ import annotations

import smtplib

import pytest

from tidings.server import Tidings

from ..helpers import JmapClient
from .sink import Sink
from .test_submission import wait_for
from .tools import emails, message


def _send(client: smtplib.SMTP, mail_from: str, mail_options: list[str], rcpt: list[tuple[str, list[str]]],
          data: bytes) -> list[tuple[int, bytes]]:
    """MAIL, RCPT and DATA with these parameters; the DATA replies (one per recipient over LMTP)."""
    code, text = client.mail(mail_from, mail_options)
    assert code == 250, text
    for address, options in rcpt:
        code, text = client.rcpt(address, options)
        assert code == 250, text
    replies = [client.data(data)]
    if isinstance(client, smtplib.LMTP):
        replies += [client.getreply() for _ in rcpt[1:]]
    return replies


def test_dsn_is_offered(lmtp: smtplib.LMTP, smtp: smtplib.SMTP) -> None:
    assert lmtp.has_extn("dsn") and smtp.has_extn("dsn")


def test_lmtp_notify_success_sends_a_delivered_dsn(lmtp: smtplib.LMTP, sink: Sink, alice: JmapClient) -> None:
    # NOTIFY=NEVER first: no report; then SUCCESS for one of two recipients.
    quiet = _send(lmtp, "carol@remote.test", ["RET=HDRS", "ENVID=quiet"],
                  [("alice@example.com", ["NOTIFY=NEVER"])], message("Quiet", message_id="<q1@remote.test>"))
    assert [code for code, _ in quiet] == [250]
    loud = _send(lmtp, "carol@remote.test", ["RET=FULL", "ENVID=abc+2Bdef"],
                 [("alice@example.com", ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Alice+2Bx@Example.com"]),
                  ("bob@example.com", ["NOTIFY=FAILURE"])],
                 message("Loud", message_id="<l1@remote.test>"))
    assert [code for code, _ in loud] == [250, 250]
    assert {e["subject"] for e in emails(alice)} == {"Quiet", "Loud"}
    [report] = sink.wait(1)
    # RFC 3461 §6.1: the null reverse-path; to the envelope sender.
    assert report.mail_from == "<>" and report.rcpt_tos == ["carol@remote.test"]
    content = report.content
    assert b"report-type=delivery-status" in content
    assert b"Original-Envelope-Id: abc+def" in content
    assert b"Original-Recipient: rfc822;Alice+x@Example.com" in content
    assert b"Final-Recipient: rfc822; alice@example.com" in content and b"Action: delivered" in content
    assert b"bob@example.com" not in content.split(b"message/delivery-status", 1)[1]
    # A success report returns the header section only, whatever RET says.
    assert b"Content-Type: text/rfc822-headers" in content and b"Hello there." not in content
    assert b"Subject: Loud" in content


def test_smtp_accepts_dsn_parameters(smtp: smtplib.SMTP, sink: Sink, alice: JmapClient, mail_tidings: Tidings) -> None:
    replies = _send(smtp, "carol@remote.test", ["ENVID=x1"],
                    [("alice@example.com", ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;alice@example.com"])],
                    message("Via SMTP", message_id="<s1@remote.test>"))
    assert [code for code, _ in replies] == [250]
    # The null sender asks for nothing: no report can go to it.
    replies = _send(smtp, "", [], [("alice@example.com", ["NOTIFY=SUCCESS"])],
                    message("Null", message_id="<s2@remote.test>"))
    assert [code for code, _ in replies] == [250]
    assert {e["subject"] for e in emails(alice)} == {"Via SMTP", "Null"}
    # Something to wait for, proving the queue ran after the two above and sent nothing for them.
    _send(smtp, "dave@remote.test", [], [("alice@example.com", ["NOTIFY=SUCCESS"])],
          message("Marker", message_id="<s3@remote.test>"))
    sink.wait(1)

    def queue_empty() -> bool:
        with mail_tidings.store.outbound_queue() as queue:
            return queue.next_due() is None

    wait_for(queue_empty)
    assert [m.rcpt_tos for m in sink.messages] == [["dave@remote.test"]]


@pytest.mark.parametrize(
    ("command", "argument", "code"),
    [
        ("RCPT", "TO:<alice@example.com> NOTIFY=BOGUS", 501),
        ("RCPT", "TO:<alice@example.com> NOTIFY=NEVER,SUCCESS", 501),
        ("RCPT", "TO:<alice@example.com> NOTIFY=SUCCESS NOTIFY=FAILURE", 501),
        ("RCPT", "TO:<alice@example.com> ORCPT=alice@example.com", 501),
        ("RCPT", "TO:<alice@example.com> ORCPT=rfc822;a+zz@example.com", 501),
        ("RCPT", "TO:<alice@example.com> RET=FULL", 555),
        ("MAIL", "FROM:<carol@remote.test> RET=ALL", 501),
        ("MAIL", "FROM:<carol@remote.test> ENVID=" + "x" * 101, 501),
        ("MAIL", "FROM:<carol@remote.test> ENVID=a=b", 501),
        ("MAIL", "FROM:<carol@remote.test> NOTIFY=SUCCESS", 555),
    ],
)
def test_bad_dsn_parameters(lmtp: smtplib.LMTP, command: str, argument: str, code: int, alice: JmapClient) -> None:
    if command == "RCPT":
        assert lmtp.mail("carol@remote.test")[0] == 250
    got, text = lmtp.docmd(command, argument)
    assert got == code, text
    lmtp.rset()
    # The session goes on: a good transaction after the refusal is delivered.
    replies = _send(lmtp, "carol@remote.test", [], [("alice@example.com", ["NOTIFY=FAILURE"])],
                    message("After", message_id="<a1@remote.test>"))
    assert [c for c, _ in replies] == [250]
    assert [e["subject"] for e in emails(alice)] == ["After"]
