"""Reports about mail an account sent, arriving as mail: message disposition notifications (MDNs,
RFC 8098) and delivery status notifications (DSNs, RFC 3464) linked to the EmailSubmission they
are about (RFC 8621 §7 mdnBlobIds, dsnBlobIds, deliveryStatus).

Only a delivered message whose top-level type is multipart/report (RFC 6522) does any work here;
every other delivery pays one dictionary lookup. A report names the message it is about by
Message-ID: an MDN in its Original-Message-ID field (RFC 8098 §3.2.5), both kinds in the returned
message or header section (the report's third part). The submission that sent that Message-ID is
found through an index (submissions.message_id, migration 0008), in the account the report was
delivered to, within the delivery's transaction, so the report and its effect commit together.

Effects, per RFC 8621 §7:
- an MDN's blob id is added to mdnBlobIds; with the disposition type "displayed" (RFC 8098
  §3.2.6.2) the recipient's deliveryStatus `displayed` becomes "yes";
- a DSN's blob id is added to dsnBlobIds; a recipient with Action "delivered" gets `delivered`
  "yes", one with "failed" gets "no", and smtpReply becomes the report's SMTP diagnostic (or a
  synthetic reply of the §7 form from its Status). Other actions (delayed, relayed, expanded) change
  nothing but the list: "Receipt of any other DSN SHOULD NOT affect this property."
The recipient is the one named in Original-Recipient (what the ORCPT parameter carried, the
address of the envelope), else Final-Recipient.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import re
from dataclasses import dataclass
from email.message import Message

from ..mime import ParsedMessage
from ..store.base import SubmissionRow, Transaction
from .outbox import SUBMISSION

REPORT_TYPE = "multipart/report"
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_MDN_TYPES = frozenset({"message/disposition-notification", "message/global-disposition-notification"})
_RETURNED_MESSAGE = frozenset({"message/rfc822", "message/global"})
_RETURNED_HEADERS = frozenset({"text/rfc822-headers", "message/global-headers"})
_COMMENT = re.compile(r"\([^()]*\)")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_ENHANCED = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class RecipientReport:
    """One recipient's block: its addresses (Original-Recipient first, then Final-Recipient), the
    DSN Action or MDN disposition type (lower case), and for DSNs the Status and SMTP diagnostic."""

    addresses: tuple[str, ...]
    action: str
    status: str = ""
    diagnostic: str = ""


@dataclass(frozen=True)
class Report:
    kind: str  # "mdn" or "dsn"
    message_ids: tuple[str, ...]
    recipients: tuple[RecipientReport, ...]


def is_report(parsed: ParsedMessage) -> bool:
    """Cheap: the type of the top-level body part, already parsed for the Email."""
    return str(parsed.body_structure.get("type") or "").lower() == REPORT_TYPE


def _fields(text: str) -> list[dict[str, str]]:
    """The blocks of a report body part (RFC 3464 §2.1: header-style fields, blocks separated by a
    blank line), each as lower-cased field name -> unfolded value."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if current:
                blocks.append(current)
            current, name = {}, ""
        elif line[:1] in (" ", "\t") and name:
            current[name] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            current[name] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _part_text(part: Message) -> str:
    if part.is_multipart():
        # The email package parses message/* parts itself: message/delivery-status as a list of its
        # blocks, any other subtype as one message (the first block its header, the rest its body).
        blocks = [block for block in part.get_payload() if isinstance(block, Message)]
        return "\n".join(block.as_string() for block in blocks)
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")


def _address(value: str | None) -> str | None:
    """The address of an `address-type ";" generic-address` field (RFC 3464 §2.3.1, §2.3.2)."""
    if not value:
        return None
    _, semicolon, address = _COMMENT.sub("", value).partition(";")
    address = address.strip().strip("<>").strip()
    return address if semicolon and address else None


def _message_ids(value: str | None) -> list[str]:
    return _MESSAGE_ID.findall(value or "")


def _returned_message_id(part: Message) -> list[str]:
    kind = part.get_content_type()
    if kind in _RETURNED_MESSAGE:
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return _message_ids(str(inner[0].get("Message-ID", "")))
        return []
    headers = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(_part_text(part))
    return _message_ids(str(headers.get("Message-ID", "")))


def read_report(raw: bytes) -> Report | None:
    """The MDN or DSN in a multipart/report message, or None when it is neither (or unreadable)."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    parts = message.get_payload() if message.is_multipart() else None
    if not isinstance(parts, list):
        return None
    kind = ""
    blocks: list[dict[str, str]] = []
    returned: list[str] = []
    for part in parts:
        if not isinstance(part, Message):
            continue
        content_type = part.get_content_type()
        if not kind and content_type in _DSN_TYPES | _MDN_TYPES:
            kind = "dsn" if content_type in _DSN_TYPES else "mdn"
            blocks = _fields(_part_text(part))
        elif content_type in _RETURNED_MESSAGE | _RETURNED_HEADERS:
            returned = returned or _returned_message_id(part)
    if not kind or not blocks:
        return None
    message_ids: list[str] = []
    recipients: list[RecipientReport] = []
    if kind == "mdn":
        # RFC 8098 §3.1: one block; Disposition = mode ";" type ["/" modifiers].
        fields = blocks[0]
        message_ids = _message_ids(fields.get("original-message-id"))
        disposition = _COMMENT.sub("", fields.get("disposition", "")).partition(";")[2]
        action = disposition.split("/", 1)[0].strip().lower()
        recipients.append(RecipientReport(_addresses(fields), action))
    else:
        # RFC 3464 §2.2: the per-message block, then one block per recipient (§2.3).
        for fields in blocks[1:]:
            action = _COMMENT.sub("", fields.get("action", "")).strip().lower()
            status = _COMMENT.sub("", fields.get("status", "")).strip()
            diagnostic_type, _, diagnostic = fields.get("diagnostic-code", "").partition(";")
            recipients.append(RecipientReport(
                _addresses(fields), action, status,
                diagnostic.strip() if diagnostic_type.strip().lower() == "smtp" else "",
            ))
    for found in returned:
        if found not in message_ids:
            message_ids.append(found)
    return Report(kind, tuple(message_ids), tuple(recipients))


def _addresses(fields: dict[str, str]) -> tuple[str, ...]:
    found = [_address(fields.get("original-recipient")), _address(fields.get("final-recipient"))]
    return tuple(a for a in found if a)


def _recipient_key(status: dict[str, dict[str, str]], addresses: tuple[str, ...]) -> str | None:
    """The deliveryStatus key the report is about: exact, then without regard to case."""
    for address in addresses:
        if address in status:
            return address
    lowered = {key.lower(): key for key in status}
    for address in addresses:
        if address.lower() in lowered:
            return lowered[address.lower()]
    return None


def synthetic_reply(status: str, action: str) -> str:
    """RFC 8621 §7 smtpReply for a report without an SMTP diagnostic: code, enhanced code, text."""
    found = _ENHANCED.match(status)
    if found:
        code, enhanced = {"2": "250", "4": "450", "5": "550"}[found.group(1)], status
    else:
        code, enhanced = ("250", "2.0.0") if action == "delivered" else ("550", "5.0.0")
    return f"{code} {enhanced} Reported {action} by a delivery status notification"


def link(tx: Transaction, parsed: ParsedMessage, raw: bytes, blob_id: str) -> list[int]:
    """Link a delivered report to the submissions of this account it is about, in the delivery's
    transaction. Returns the ids of the submissions changed (none for anything but a report)."""
    if not is_report(parsed):
        return []
    report = read_report(raw)
    if report is None or not report.message_ids:
        return []
    rows: list[SubmissionRow] = []
    for message_id in report.message_ids:
        rows.extend(r for r in tx.submissions.with_message_id(message_id) if r.id not in {x.id for x in rows})
    if not rows:
        return []
    # A Message-ID sent more than once: the report is about the sendings that had its recipient.
    named = [r for r in rows if any(_recipient_key(r.delivery_status, x.addresses) for x in report.recipients)]
    changed = []
    for row in named or rows:
        if _apply(tx, row, report, blob_id, parsed.size):
            changed.append(row.id)
    return changed


def _apply(tx: Transaction, row: SubmissionRow, report: Report, blob_id: str, size: int) -> bool:
    listed = row.mdn_blob_ids if report.kind == "mdn" else row.dsn_blob_ids
    if blob_id in listed:
        return False  # the same report delivered again
    status = {key: dict(value) for key, value in row.delivery_status.items()}
    for recipient in report.recipients:
        key = _recipient_key(status, recipient.addresses)
        if key is None:
            continue
        if report.kind == "mdn":
            # RFC 8621 §7 displayed; RFC 8098 §3.2.6.2 disposition-type.
            if recipient.action == "displayed":
                status[key]["displayed"] = "yes"
        elif recipient.action in ("delivered", "failed"):
            # RFC 8621 §7 delivered, per the Action of RFC 3464 §2.3.3.
            status[key]["delivered"] = "yes" if recipient.action == "delivered" else "no"
            status[key]["smtpReply"] = recipient.diagnostic or synthetic_reply(recipient.status, recipient.action)
    # The submission holds a reference on the blob while it lists it (released when destroyed).
    tx.ref_blob(blob_id, "message/rfc822", size, +1)
    field = "mdn_blob_ids" if report.kind == "mdn" else "dsn_blob_ids"
    tx.submissions.update(row.id, {field: [*listed, blob_id], "delivery_status": status})
    tx.record("EmailSubmission", f"{SUBMISSION}{row.id}", "updated")
    return True


__all__ = ["RecipientReport", "Report", "is_report", "link", "read_report", "synthetic_reply"]
