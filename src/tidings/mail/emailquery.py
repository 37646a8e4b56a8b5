"""Email/query filters and sorts (RFC 8621 §4.4): checked, then normalised for the store."""

from __future__ import annotations

from typing import Any

from ..jmap.errors import MethodError, invalid_arguments
from ..jmap.query import Comparator
from ..jmap.types import is_bool, is_string, is_uint, is_utc_date, parse_date
from ..store.base import EmailFilter, EmailSort
from .ids import MAILBOX, from_wire
from .keywords import normalise_keyword

TEXT_CONDITIONS = ("text", "from", "to", "cc", "bcc", "subject", "body")
KEYWORD_CONDITIONS = (
    "hasKeyword", "notKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword",
)
SORTS = (
    "receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword", "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
)
KEYWORD_SORTS = ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword")


def check_condition(condition: dict[str, Any]) -> None:
    for key, value in condition.items():
        if key in ("inMailbox",):
            ok = is_string(value)
        elif key == "inMailboxOtherThan":
            ok = isinstance(value, list) and all(is_string(v) for v in value)
        elif key in ("before", "after"):
            ok = is_utc_date(value)
        elif key in ("minSize", "maxSize"):
            ok = is_uint(value)
        elif key in KEYWORD_CONDITIONS:
            ok = is_string(value)
        elif key == "hasAttachment":
            ok = is_bool(value)
        elif key in TEXT_CONDITIONS:
            ok = is_string(value)
        elif key == "header":
            ok = (
                isinstance(value, list)
                and 1 <= len(value) <= 2
                and all(is_string(v) for v in value)
                and bool(value[0])
            )
        else:
            raise MethodError("unsupportedFilter", f"Unknown Email filter condition {key!r}.")
        if not ok:
            raise invalid_arguments(f"Invalid value for Email filter condition {key!r}.")


def parse_text(text: str) -> list[tuple[bool, str]]:
    """Split search text into terms (RFC 8621 §4.4.1): quoted phrases (with \\-escapes) and words."""
    terms: list[tuple[bool, str]] = []
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char in "\"'":
            quote, i, phrase = char, i + 1, []
            while i < n and text[i] != quote:
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                phrase.append(text[i])
                i += 1
            i += 1
            if "".join(phrase).strip():
                terms.append((True, "".join(phrase)))
            continue
        start = i
        while i < n and not text[i].isspace():
            i += 1
        terms.append((False, text[start:i]))
    return terms


def normalise(node: Any, resolve: Any) -> EmailFilter | None:
    """The filter as the store's EmailFilter tuples (store/base.py); `resolve` maps #creation ids."""
    if node is None:
        return None
    if "operator" in node:
        # RFC 8620 §5.5: an empty AND or NOT matches everything, an empty OR nothing; the store's
        # compiler knows both, so an empty list is kept as it is.
        children = [normalise(c, resolve) for c in node["conditions"]]
        return (node["operator"].lower(), [c for c in children if c is not None])
    parts: list[EmailFilter] = []
    for key, value in node.items():
        if key == "inMailbox":
            pk = from_wire(MAILBOX, resolve(value))
            parts.append(("inMailbox", pk) if pk is not None else ("none",))
        elif key == "inMailboxOtherThan":
            pks = [from_wire(MAILBOX, resolve(v)) for v in value]
            parts.append(("inMailboxOtherThan", [p for p in pks if p is not None]))
        elif key in ("before", "after"):
            moment = parse_date(value)
            assert moment is not None
            parts.append((key, int(moment.timestamp())))
        elif key in ("minSize", "maxSize", "hasAttachment"):
            parts.append((key, value))
        elif key in KEYWORD_CONDITIONS:
            keyword = normalise_keyword(value)
            if keyword is None:
                # An invalid keyword can be on no email.
                parts.append(("none",) if key in ("hasKeyword", "allInThreadHaveKeyword",
                                                 "someInThreadHaveKeyword") else ("and", []))
            else:
                parts.append((key, keyword))
        elif key in TEXT_CONDITIONS:
            parts.append((key, parse_text(value)))
        elif key == "header":
            parts.append(("header", value[0], value[1] if len(value) > 1 else None))
    if len(parts) == 1:
        return parts[0]
    return ("and", parts)


def sort_for_store(comparators: list[Comparator]) -> list[EmailSort]:
    out = []
    for comparator in comparators:
        keyword = None
        if comparator.property in KEYWORD_SORTS:
            raw = comparator.extra.get("keyword")
            if not isinstance(raw, str):
                raise invalid_arguments(f"A {comparator.property} comparator needs a 'keyword'.")
            keyword = normalise_keyword(raw) or "\x00invalid"
        out.append(EmailSort(comparator.property, comparator.is_ascending, comparator.collation, keyword))
    return out


THREAD_KEYWORDS = ("allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword")


def thread_dependent(args: dict[str, Any]) -> bool:
    """Does a query's filter or sort read other emails of the thread (the *InThreadHaveKeyword ones)?"""

    def walk(node: Any) -> bool:
        if not isinstance(node, dict):
            return False
        if "operator" in node:
            return any(walk(c) for c in node.get("conditions") or ())
        return any(key in THREAD_KEYWORDS for key in node)

    sort = args.get("sort") or []
    return walk(args.get("filter")) or any(isinstance(c, dict) and c.get("property") in THREAD_KEYWORDS
                                           for c in sort)


def text_conditions(node: EmailFilter | None) -> bool:
    if node is None:
        return False
    if node[0] in ("and", "or", "not"):
        return any(text_conditions(c) for c in node[1])
    return node[0] in TEXT_CONDITIONS
