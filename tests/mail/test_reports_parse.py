"""Reading MDNs (RFC 8098) and DSNs (RFC 3464) out of multipart/report messages (mail/reports.py),
and the RFC 3461 parameter grammar (mail/dsnparams.py)."""

from __future__ import annotations

import pytest

from tidings.mail import dsnparams
from tidings.mail.reports import RecipientReport, is_report, read_report, synthetic_reply
from tidings.mime import parse_message

GLOBAL_DSN = (
    b"From: <MAILER-DAEMON@mx.remote.test>\r\nTo: <alice@example.com>\r\nSubject: failure\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\r\n\r\n'
    b"--x\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n"
    b"--x\r\nContent-Type: message/global-delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.remote.test\r\n\r\n"
    b"Final-Recipient: rfc822; Erin@Remote.test\r\n"
    b"Action: failed (mailbox gone)\r\nStatus: 5.1.1 (bad mailbox)\r\n"
    b"Diagnostic-Code: smtp; 550 5.1.1 this mailbox\r\n  does not exist\r\n\r\n"
    b"--x\r\nContent-Type: message/rfc822\r\n\r\n"
    b"From: Alice <alice@example.com>\r\nMessage-ID: <orig@example.com>\r\n\r\nHi.\r\n"
    b"--x--\r\n"
)


def test_global_dsn_with_comments_folding_and_the_returned_message() -> None:
    assert is_report(parse_message(GLOBAL_DSN))
    report = read_report(GLOBAL_DSN)
    assert report is not None and report.kind == "dsn"
    assert report.message_ids == ("orig@example.com",)
    assert report.recipients == (
        RecipientReport(("Erin@Remote.test",), "failed", "5.1.1", "550 5.1.1 this mailbox does not exist"),
    )


def test_mdn_fields() -> None:
    raw = (
        b"From: <bob@remote.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=y\r\n\r\n"
        b"--y\r\nContent-Type: text/plain\r\n\r\nRead.\r\n"
        b"--y\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Original-Recipient: rfc822;bob+x@remote.test\r\nFinal-Recipient: rfc822;bob@remote.test\r\n"
        b"Original-Message-ID: <m1@example.com>\r\n"
        b"Disposition: automatic-action/MDN-sent-automatically; Displayed/error\r\n\r\n"
        b"--y--\r\n"
    )
    report = read_report(raw)
    assert report is not None and report.kind == "mdn"
    assert report.message_ids == ("m1@example.com",)
    assert report.recipients == (RecipientReport(("bob+x@remote.test", "bob@remote.test"), "displayed"),)


def test_other_mail_is_not_a_report() -> None:
    plain = b"From: <a@b.test>\r\nSubject: x\r\n\r\nHello.\r\n"
    assert not is_report(parse_message(plain))
    assert read_report(plain) is None
    other = (b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=x; boundary="z"\r\n\r\n'
             b"--z\r\nContent-Type: text/plain\r\n\r\nNo report part.\r\n--z--\r\n")
    assert read_report(other) is None


def test_synthetic_reply() -> None:
    assert synthetic_reply("5.2.2", "failed").startswith("550 5.2.2 ")
    assert synthetic_reply("", "delivered").startswith("250 2.0.0 ")


def test_xtext() -> None:
    assert dsnparams.xtext_encode("a b+c=d\u00e9") == "a+20b+2Bc+3Dd+E9"
    assert dsnparams.xtext_decode("a+20b+2Bc+3Dd") == "a b+c=d"
    for bad in ("a+2", "a+zz", "a=b", "a b", "a+2b"):
        with pytest.raises(dsnparams.ParameterError):
            dsnparams.xtext_decode(bad)


def test_parameter_values() -> None:
    assert dsnparams.check_decoded("notify", "failure, delay") == "FAILURE,DELAY"
    assert dsnparams.check_encoded("ORCPT", "rfc822;a+2Bb@x.test") == "rfc822;a+b@x.test"
    assert dsnparams.encode("ORCPT", "rfc822;a+b@x.test") == "ORCPT=rfc822;a+2Bb@x.test"
    assert dsnparams.wants(None, "FAILURE") and not dsnparams.wants(None, "SUCCESS")
    assert not dsnparams.wants("NEVER", "FAILURE") and dsnparams.wants("SUCCESS,DELAY", "SUCCESS")
    for name, value in (("NOTIFY", ""), ("RET", "hdr"), ("ENVID", "\x01"), ("ORCPT", ";x@y")):
        with pytest.raises(dsnparams.ParameterError):
            dsnparams.check_decoded(name, value)
