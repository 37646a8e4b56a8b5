"""SearchSnippet/get (RFC 8621 §5): subject and preview with the matching words marked."""

from __future__ import annotations

import html
from typing import Any

from ..jmap.context import CallContext
from ..jmap.errors import MethodError, invalid_arguments
from ..jmap.query import check_filter
from ..jmap.registry import Method, Registry
from ..jmap.types import is_string
from . import emailquery
from .email import email_pk
from .ids import EMAIL, to_wire
from .mailbox import MAIL

# The store marks matches with these control characters; they are swapped for <mark> after escaping.
START, END = "\x01", "\x02"


def mark(text: str | None) -> str | None:
    """HTML-escape, then turn the store's match markers into <mark> elements (RFC 8621 §5.1)."""
    if text is None:
        return None
    escaped = html.escape(text, quote=False)
    return escaped.replace(START, "<mark>").replace(END, "</mark>")


def snippet_get(ctx: CallContext, args: dict[str, Any]) -> dict[str, Any]:
    unknown = set(args) - {"accountId", "filter", "emailIds"}
    if unknown:
        raise invalid_arguments(f"Unknown arguments: {sorted(unknown)}.")
    email_ids = args.get("emailIds")
    if not isinstance(email_ids, list) or not all(is_string(i) for i in email_ids):
        raise invalid_arguments("'emailIds' must be an array of ids.")
    if len(email_ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.max_objects_in_get} emails.")
    check_filter(args.get("filter"), emailquery.check_condition)
    store_filter = emailquery.normalise(args.get("filter"), ctx.resolve_creation_id)
    wanted = list(dict.fromkeys(email_ids))
    pks = {wire: email_pk(wire) for wire in wanted}
    with ctx.services.backend.read(ctx.account_id) as tx:
        rows = tx.emails.rows([p for p in pks.values() if p is not None])
        found = [p for p in pks.values() if p is not None and p in rows]
        marked = tx.emails.snippets(found, store_filter) if emailquery.text_conditions(store_filter) else {}
    listed = []
    not_found = []
    for wire in wanted:
        pk = pks[wire]
        if pk is None or pk not in rows:
            not_found.append(wire)
            continue
        subject, preview = marked.get(pk, (None, None))
        # Only return text that actually shows a match; otherwise null, as §5.1 allows.
        listed.append({
            "emailId": to_wire(EMAIL, pk),
            "subject": mark(subject) if subject and START in subject else None,
            "preview": mark(preview) if preview and START in preview else None,
        })
    return {"accountId": ctx.account_id, "list": listed, "notFound": not_found or None}


def register(registry: Registry) -> None:
    registry.add(Method("SearchSnippet/get", MAIL, snippet_get))
