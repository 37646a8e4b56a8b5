"""Delivery Status Notifications (RFC 3464): the report returned to a sender whose message could not
be delivered to some recipients."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from email.utils import formatdate

_ENHANCED = re.compile(r"^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Failure:
    recipient: str
    reply: str
    remote_mta: str | None = None


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
    failures: list[Failure],
    original: bytes,
    arrival: float,
    attempted: float,
    message_id: str,
    envelope_id: str | None = None,
) -> bytes:
    """A multipart/report; report-type=delivery-status message (RFC 3464 §2, RFC 6522).

    `message_id` is chosen by the caller so that a report made twice (a crash between delivering it
    and recording the attempt) is the same message, and duplicate suppression drops the second."""
    boundary = "dsn-" + secrets.token_hex(12)
    lines = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_mta}>",
        f"To: <{sender}>",
        "Subject: Undelivered Mail Returned to Sender",
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
        f"Your message could not be delivered to {len(failures)} recipient(s):",
        "",
    ]
    for failure in failures:
        lines.append(f"  {failure.recipient}: {failure.reply}")
    lines += ["", f"--{boundary}", "Content-Type: message/delivery-status", ""]
    # §2.2: per-message fields, then one block of per-recipient fields for each recipient (§2.3).
    lines.append(f"Reporting-MTA: dns; {reporting_mta}")
    if envelope_id:
        lines.append(f"Original-Envelope-Id: {envelope_id}")
    lines.append(f"Arrival-Date: {formatdate(arrival, localtime=False)}")
    for failure in failures:
        lines += [
            "",
            f"Final-Recipient: rfc822; {failure.recipient}",
            "Action: failed",
            f"Status: {status_code(failure.reply)}",
        ]
        if failure.remote_mta:
            lines.append(f"Remote-MTA: dns; {failure.remote_mta}")
        lines.append(f"Diagnostic-Code: smtp; {failure.reply}")
        lines.append(f"Last-Attempt-Date: {formatdate(attempted, localtime=False)}")
    lines += ["", f"--{boundary}", "Content-Type: text/rfc822-headers", ""]
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n"
    return head + _header_block(original) + f"\r\n--{boundary}--\r\n".encode()
