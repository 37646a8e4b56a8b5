"""VacationResponse (RFC 8621 §8): /get and /set of the singleton, and the automatic reply itself.

The reply follows RFC 3834 (as §8 requires): it is sent only for a message addressed to the user
personally, never to mailing lists, bulk or automatically submitted mail or the null sender, at most
once per sender in `vacation_days`, to the envelope sender, with Auto-Submitted: auto-replied and
the null reverse-path; it goes out through the outbound queue like any other message.
"""

from __future__ import annotations

import email.policy
import email.utils
from collections.abc import Iterable, Sequence
from email.message import EmailMessage
from typing import Any

from ..jmap.context import CallContext
from ..jmap.errors import SetError
from ..jmap.methods import DataType, standard_get, standard_set
from ..jmap.properties import Prop, PropertyTable
from ..jmap.registry import Method, Registry
from ..jmap.types import format_utc, is_bool, is_string, is_utc_date, nullable, parse_date
from ..mime import ParsedMessage
from ..store.base import Store, Transaction, VacationRow
from .delivery import Recipient, Resolver
from .outbox import queue_message

VACATION = "urn:ietf:params:jmap:vacationresponse"
SINGLETON = "singleton"
DEFAULT_SUBJECT = "Auto: {subject}"
DEFAULT_BODY = "I am away at the moment and will read your message when I am back.\n"
# RFC 3834 §2 (and RFC 5230 §4.6): addresses that are never personal correspondents.
_SYSTEM_LOCAL_PARTS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "noreply", "no-reply")

PROPERTIES = PropertyTable(
    [
        Prop("id", server_set=True, immutable=True),
        Prop("isEnabled", is_bool, default=False),
        Prop("fromDate", nullable(is_utc_date), default=None),
        Prop("toDate", nullable(is_utc_date), default=None),
        Prop("subject", nullable(is_string), default=None),
        Prop("textBody", nullable(is_string), default=None),
        Prop("htmlBody", nullable(is_string), default=None),
    ]
)


def _epoch(value: str | None) -> int | None:
    moment = parse_date(value) if value else None
    return int(moment.timestamp()) if moment else None


def to_json(row: VacationRow) -> dict[str, Any]:
    return {
        "id": SINGLETON,
        "isEnabled": row.is_enabled,
        "fromDate": format_utc(row.from_date) if row.from_date is not None else None,
        "toDate": format_utc(row.to_date) if row.to_date is not None else None,
        "subject": row.subject,
        "textBody": row.text_body,
        "htmlBody": row.html_body,
    }


class VacationResponseType(DataType):
    name = "VacationResponse"
    capability = VACATION
    properties = PROPERTIES

    def load(
        self, ctx: CallContext, tx: Any, ids: Sequence[str] | None, properties: set[str]
    ) -> Iterable[dict[str, Any]]:
        if ids is not None and SINGLETON not in ids:
            return []
        return [to_json(tx.mailflow.vacation())]

    def create(self, ctx: CallContext, tx: Any, obj: dict[str, Any]) -> dict[str, Any]:
        # §8: there is exactly one VacationResponse, "singleton"; it is updated, never created.
        raise SetError("singleton", "The VacationResponse is a singleton: update it instead.")

    def update(
        self,
        ctx: CallContext,
        tx: Any,
        obj_id: str,
        current: dict[str, Any],
        new: dict[str, Any],
        changed: set[str],
    ) -> dict[str, Any] | None:
        tx.mailflow.set_vacation(
            VacationRow(
                is_enabled=new["isEnabled"],
                from_date=_epoch(new["fromDate"]),
                to_date=_epoch(new["toDate"]),
                subject=new["subject"],
                text_body=new["textBody"],
                html_body=new["htmlBody"],
            )
        )
        tx.record(self.name, SINGLETON, "updated")
        return None

    def destroy(self, ctx: CallContext, tx: Any, obj_id: str, args: dict[str, Any]) -> None:
        raise SetError("singleton", "The VacationResponse cannot be destroyed.")


def is_automatic(parsed: ParsedMessage, mail_from: str | None) -> bool:
    """RFC 3834 §2: messages no automatic response may answer."""
    if not mail_from:
        return True  # the null reverse-path: a bounce or another auto-reply (§2)
    local = mail_from.rpartition("@")[0].lower()
    if local in _SYSTEM_LOCAL_PARTS or local.startswith("owner-") or local.endswith("-request"):
        return True
    for name, value in parsed.headers:
        lower = name.lower()
        text = value.strip().lower()
        # §2: any Auto-Submitted other than "no".
        if lower == "auto-submitted" and text.split(";")[0].strip() != "no":
            return True
        # Mailing lists (RFC 2369 List-*, RFC 2919 List-Id) and bulk mail (Precedence, in practice).
        if lower.startswith("list-") or lower in ("mailing-list", "x-mailing-list"):
            return True
        if lower == "precedence" and text in ("bulk", "list", "junk"):
            return True
        if lower == "x-auto-response-suppress" and any(w in text for w in ("all", "oof", "autoreply")):
            return True
    return False


class Responder:
    """The delivery hook: decides, inside the recipient's write transaction, whether to reply, and
    queues the reply there (so the reply log and the queue entry commit with the delivery)."""

    def __init__(self, store: Store, resolver: Resolver, *, days: int, give_up: float, hostname: str) -> None:
        self.store = store
        self.resolver = resolver
        self.days = days
        self.give_up = give_up
        self.hostname = hostname

    def __call__(
        self, tx: Transaction, recipient: Recipient, mail_from: str | None, parsed: ParsedMessage, now: int
    ) -> bool:
        vacation = tx.mailflow.vacation()
        if not vacation.is_enabled:
            return False
        # §8: on or after fromDate, before toDate.
        if vacation.from_date is not None and now < vacation.from_date:
            return False
        if vacation.to_date is not None and now >= vacation.to_date:
            return False
        if is_automatic(parsed, mail_from):
            return False
        assert mail_from
        user = recipient.user
        if self.resolver.owns(user, mail_from):
            return False
        # RFC 3834 §2: only when the recipient is named in To or Cc (not for Bcc or list copies).
        named = [a.get("email", "") for a in (parsed.to or []) + (parsed.cc or []) if isinstance(a, dict)]
        if not any(address and self.resolver.owns(user, address) for address in named):
            return False
        sender = mail_from.lower()
        # RFC 3834 §3.1.1 (RFC 5230 :days): at most once per sender in the period.
        if tx.mailflow.vacation_replied_since(sender, now - self.days * 86400):
            return False
        raw = self.compose(vacation, user.address, mail_from, parsed, now)
        blob_id = self.store.blobs.put(raw)
        # §3.3: the null reverse-path, so that nothing answers the answer.
        queue_message(tx, blob_id, len(raw), "", [mail_from], now=now, send_at=now, give_up=self.give_up)
        tx.mailflow.log_vacation_reply(sender, now)
        return True

    def compose(self, vacation: VacationRow, address: str, to: str, parsed: ParsedMessage, now: float) -> bytes:
        message = EmailMessage(policy=email.policy.SMTPUTF8)
        message["From"] = address
        message["To"] = to
        original = parsed.subject or ""
        message["Subject"] = vacation.subject or DEFAULT_SUBJECT.format(subject=original).strip()
        message["Date"] = email.utils.formatdate(now, localtime=False)
        message["Message-ID"] = email.utils.make_msgid(domain=self.hostname)
        # RFC 3834 §5: marks the message as an automatic response.
        message["Auto-Submitted"] = "auto-replied"
        # RFC 3834 §3.1.5: In-Reply-To and References as for a reply.
        if parsed.message_id:
            msgid = f"<{parsed.message_id[0]}>"
            message["In-Reply-To"] = msgid
            references = [f"<{r}>" for r in (parsed.references or [])] + [msgid]
            message["References"] = " ".join(references)
        text = vacation.text_body
        if text is None and vacation.html_body is None:
            text = DEFAULT_BODY
        if text is not None:
            message.set_content(text)
            if vacation.html_body is not None:
                message.add_alternative(vacation.html_body, subtype="html")
        else:
            message.set_content(vacation.html_body or "", subtype="html")
        return message.as_bytes()


def register(registry: Registry, vacation: VacationResponseType) -> None:
    registry.add(Method("VacationResponse/get", VACATION, lambda ctx, args: standard_get(ctx, vacation, args)))
    registry.add(
        Method("VacationResponse/set", VACATION, lambda ctx, args: standard_set(ctx, vacation, args), writes=True)
    )


__all__ = ["VACATION", "Responder", "VacationResponseType", "is_automatic", "register"]
