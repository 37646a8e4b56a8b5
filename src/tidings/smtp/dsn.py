"""Delivery Status Notifications (RFC 3464): the report returned to a sender whose message could not
be delivered to some recipients, or, when they asked for it with NOTIFY=SUCCESS (RFC 3461), was
delivered or relayed without DSN."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.utils import formatdate

_ENHANCED = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Notice:
    """One recipient's block: its address, the last SMTP reply, the host that gave it, the Action
    (RFC 3464 §2.3.3: failed, delivered, relayed) and the ORCPT it was sent with (RFC 3461 §4.2)."""

    recipient: str
    reply: str
    remote_mta: str | None = None
    action: str = "failed"
    original_recipient: str | None = None



def status_code(reply: str) -> str:
    """The RFC 3463 status of an SMTP reply: its enhanced code, else one from its class."""
    found = _ENHANCED.match(reply)
    if found:
        return found.group(1)
    return f"{reply[:1]}.0.0" if reply[:1] in ("4", "5") else "5.0.0"


def _header_block(original: bytes) -> bytes:
    end = original.find(b"\r\n\r\n")
    return original if end < 0 else original[: end + 2]


def compose(
    *,
    reporting_mta: str,
    sender: str,
    notices: list[Notice],
    original: bytes,
    arrival: float,
    attempted: float,
    message_id: str,
    envelope_id: str | None = None,
    return_full: bool = False,
) -> bytes:
    """A multipart/report; report-type=delivery-status message (RFC 3464 §2, RFC 6522).

    `message_id` is chosen by the caller so that a report made twice (a crash between delivering it
    and recording the attempt) is the same message, and duplicate suppression drops the second.
    The third part is the original's header section, or the whole message when `return_full`
    (RET=FULL, RFC 3461 §4.3) and the report has a failure."""
    boundary = "dsn-" + secrets.token_hex(12)
    failures = [n for n in notices if n.action == "failed"]
    others = [n for n in notices if n.action != "failed"]
    subject = "Undelivered Mail Returned to Sender" if failures else "Successful Mail Delivery Report"
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        f"Subject: {subject}",
        f"Date: {formatdate(attempted, localtime=False)}",
        f"Message-ID: <{message_id}>",
        # RFC 3834 §5: DSNs are automatic responses too.
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "",
        "This is a delivery status notification (RFC 3464).",
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
    ]
    if failures:
        lines += [f"Your message could not be delivered to {len(failures)} recipient(s):", ""]
        lines += [f"  {n.recipient}: {n.reply}" for n in failures]
        lines.append("")
    if others:
        lines += ["As you asked, a report of the delivery of your message:", ""]
        lines += [f"  {n.recipient}: {n.action} ({n.reply})" for n in others]
        lines.append("")
    lines += [f"--{boundary}", "Content-Type: message/delivery-status", ""]
    # §2.2: per-message fields, then one block of per-recipient fields for each recipient (§2.3).
    lines.append(f"Reporting-MTA: dns; {reporting_mta}")
    if envelope_id:
        lines.append(f"Original-Envelope-Id: {envelope_id}")
    lines.append(f"Arrival-Date: {formatdate(arrival, localtime=False)}")
    for notice in notices:
        lines.append("")
        if notice.original_recipient:
            # §2.3.1: the ORCPT the message was sent with, as given.
            lines.append(f"Original-Recipient: {notice.original_recipient}")
        lines += [
            f"Final-Recipient: rfc822; {notice.recipient}",
            f"Action: {notice.action}",
            f"Status: {status_code(notice.reply)}",
        ]
        if notice.remote_mta:
            lines.append(f"Remote-MTA: dns; {notice.remote_mta}")
        lines.append(f"Diagnostic-Code: smtp; {notice.reply}")
        lines.append(f"Last-Attempt-Date: {formatdate(attempted, localtime=False)}")
    full = return_full and bool(failures)
    lines += ["", f"--{boundary}", "Content-Type: message/rfc822" if full else "Content-Type: text/rfc822-headers", ""]
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"
    returned = original if full else _header_block(original)
    return head + returned + f"\r\n--{boundary}--\r\n".encode()
